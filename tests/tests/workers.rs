//! Workers: jobs on the `local-process` target run in an `atrium worker` process of their own,
//! which fetches its work over the API with a job token, streams logs and metrics back in
//! batches stored once per batch id, uploads the model, heartbeats, stops on cancel and reports
//! its result — against the real binary (SQLite and PostgreSQL), real uv, the real mlflow client.

use std::time::{Duration, Instant};

use atrium_tests::{
    Backend, Http, Server, dataset, job_log, job_of, metric_steps, upload_iris, wait_job_states,
};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

fn iris_job(epochs: u64) -> Value {
    json!({
        "type": "train",
        "name": "iris-worker",
        "compute": "local-process",
        "train": {
            "dataset": "iris:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [16], "activation": "relu" },
            "optimizer": { "kind": "adam", "lr": 0.01 },
            "epochs": epochs, "batch_size": 16, "validation_split": 0.2, "seed": 7,
        }
    })
}

/// The worker process's pid, from the job log's "worker process N started".
fn worker_pid(h: &Http, id: &str) -> Option<i32> {
    job_log(h, id)
        .lines()
        .find_map(|l| l.strip_prefix("worker process "))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
}

fn train_in_a_worker(backend: Backend) {
    let s = Server::start(backend);
    let h = s.http();
    upload_iris(&h);
    let j = h.post(&format!("{WS}/jobs"), iris_job(12)).ok();
    assert_eq!(j["target"], "local-process");
    let id = j["id"].as_str().unwrap();
    let (j, _) = wait_job_states(&h, id, 180);
    let log = job_log(&h, id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert!(log.contains("on the local-process target"), "{log}");
    assert!(worker_pid(&h, id).is_some(), "{log}");
    assert!(
        log.contains("worker on "),
        "the worker's lines reach the job log: {log}"
    );
    assert!(log.contains("epoch 12 loss="), "{log}");
    let run = j["run_id"].as_str().unwrap();
    // every epoch once, in order
    assert_eq!(metric_steps(&h, run, "loss"), (1..=12).collect::<Vec<_>>());
    assert_eq!(metric_steps(&h, run, "val_accuracy").len(), 12);
    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(r["status"], "FINISHED", "{r}");
    assert_eq!(r["params"]["model.family"], "mlp", "{r}");
    assert_eq!(r["tags"]["atrium.train.epochs"], "12", "{r}");
    // the model the worker uploaded, usable as the registry and endpoints use it
    let files = h.get(&format!("{WS}/runs/{run}/artifacts?path=model")).ok();
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{files}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in [
        "model/MLmodel",
        "model/model.json",
        "model/model.safetensors",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let m = h.post(
        &format!("{WS}/models/iris-from-worker/versions"),
        json!({ "run_id": run, "path": "model" }),
    );
    assert_eq!(m.status, 201, "{}", m.json);
}

#[test]
fn a_train_job_runs_in_a_worker_process_on_sqlite() {
    train_in_a_worker(Backend::Sqlite);
}

#[test]
fn a_train_job_runs_in_a_worker_process_on_postgres() {
    train_in_a_worker(Backend::Postgres);
}

#[test]
fn compute_targets_are_checked_at_submission() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let mut spec = iris_job(1);
    spec["compute"] = json!("gpu-cluster");
    let r = h.post(&format!("{WS}/jobs"), spec);
    assert_eq!(r.status, 404, "{}", r.json);
    assert!(
        r.message()
            .contains("compute target 'gpu-cluster' does not exist")
            && r.message().contains("local-process"),
        "{}",
        r.json
    );
    let r = h.post(
        &format!("{WS}/jobs"),
        json!({
            "type": "batch-score", "compute": "local-process",
            "batch_score": {"model": "m:1", "dataset": "d:1"}
        }),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.message().contains("runs on the local target only"),
        "{}",
        r.json
    );
    let listed = h.get(&format!("{WS}/jobs")).ok();
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
}

#[test]
fn a_command_in_a_worker_logs_through_mlflow_and_stops_on_cancel() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        code.join("train.py"),
        "import os, sys, time, mlflow\nwith mlflow.start_run() as run:\n    for s in range(3):\n        mlflow.log_metric('loss', 1.0 / (s + 1), step=s)\n    print('logged from', sys.executable)\n    if os.environ.get('TOKEN_FILE'):\n        open(os.environ['TOKEN_FILE'], 'w').write(os.environ['ATRIUM_TOKEN'])\n        time.sleep(120)\n",
    )
    .unwrap();
    let submit = |env: &[(&str, &str)]| {
        let file = dir.path().join("job.json");
        let env: serde_json::Map<String, Value> =
            env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        std::fs::write(
            &file,
            json!({
                "type": "command", "compute": "local-process", "environment": "atrium-mlflow",
                "command": {"command": "python train.py", "env": env},
            })
            .to_string(),
        )
        .unwrap();
        let (ok, out, err) = s.cli(&[
            "job",
            "submit",
            file.to_str().unwrap(),
            "--code",
            code.to_str().unwrap(),
            "--output",
            "json",
        ]);
        assert!(ok, "{out}{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    // `python train.py` in atrium-mlflow, as written, from a worker
    let id = submit(&[]);
    let (j, seen) = wait_job_states(&h, &id, 300);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert!(
        seen.iter().any(|s| s == "Preparing" || s == "Running"),
        "{seen:?}"
    );
    assert!(
        log.contains("preparing the environment atrium-mlflow:1"),
        "{log}"
    );
    assert!(log.contains("logged from "), "the command's output: {log}");
    let run = j["run_id"].as_str().unwrap();
    assert_eq!(metric_steps(&h, run, "loss"), vec![0, 1, 2]);

    // a long one: its job token opens the worker routes and nothing else does
    let tf = token_file.to_str().unwrap().to_string();
    let id = submit(&[("TOKEN_FILE", &tf)]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !token_file.exists() {
        assert!(Instant::now() < deadline, "{}", job_log(&h, &id));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let token = std::fs::read_to_string(&token_file).unwrap();
    let work_url = format!("{WS}/jobs/{id}/work");
    let events_url = format!("{WS}/jobs/{id}/events");
    let admin = h.get(&work_url);
    assert_eq!(
        admin.status, 403,
        "the admin's token is not the job's: {}",
        admin.json
    );
    let w = s.http_as(Some(&token));
    let work = w.get(&work_url).ok();
    assert_eq!(work["type"], "command");
    let attempt = work["attempt"].as_i64().unwrap();
    let run = work["run_id"].as_str().unwrap().to_string();
    // a batch retried is stored once
    let batch = json!({
        "attempt": attempt, "batch": 1000,
        "metrics": [{"key": "probe", "value": 0.5, "timestamp": 1, "step": 7},
                    {"key": "probe", "value": "NaN", "timestamp": 2, "step": 8}],
        "log": "probe line\n",
    });
    let first = w.post(&events_url, batch.clone()).ok();
    assert_eq!(first["stored"], true, "{first}");
    assert_eq!(first["cancel"], false, "{first}");
    let again = w.post(&events_url, batch.clone()).ok();
    assert_eq!(again["stored"], false, "{again}");
    assert_eq!(metric_steps(&h, &run, "probe"), vec![7, 8]);
    assert_eq!(job_log(&h, &id).matches("probe line").count(), 1);
    // precise errors
    let mut stale = batch.clone();
    stale["attempt"] = json!(attempt + 5);
    let r = w.post(&events_url, stale);
    assert!(r.status == 409 || r.status == 400, "{}", r.json);
    assert!(
        r.message().contains(&format!("attempt {}", attempt + 5)),
        "{}",
        r.json
    );
    let r = w.post(&events_url, json!({"attempt": attempt, "log": "x"}));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("needs a batch id"), "{}", r.json);
    let r = w.post(&events_url, json!({"attempt": attempt, "bogus": 1}));
    assert_eq!(r.status, 400, "{}", r.json);
    let r = w.post(
        &events_url,
        json!({"attempt": attempt, "state": "Completed"}),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.message().contains("reports the end as its result"),
        "{}",
        r.json
    );
    // cancel reaches the worker through its heartbeat and stops the command
    let asked = Instant::now();
    let c = h.post(&format!("{WS}/jobs/{id}:cancel"), json!({}));
    assert_eq!(c.status, 200, "{}", c.json);
    let (j, _) = wait_job_states(&h, &id, 30);
    let took = asked.elapsed();
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Canceled", "{j}\n{log}");
    assert!(log.contains("stopping the command (SIGTERM)"), "{log}");
    assert!(took < Duration::from_secs(5), "cancel took {took:?}\n{log}");
    // the token died with the attempt
    assert_eq!(w.get(&work_url).status, 401);
}

#[test]
fn a_killed_worker_fails_its_job_and_keeps_every_acknowledged_point_once() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    h.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    );
    let mut spec = iris_job(100_000);
    spec["train"]["batch_size"] = json!(4);
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (pid, run) = loop {
        let j = job_of(&h, &id);
        if let (Some(pid), Some(run)) = (worker_pid(&h, &id), j["run_id"].as_str())
            && metric_steps(&h, run, "loss").len() >= 3
        {
            break (pid, run.to_string());
        }
        assert!(Instant::now() < deadline, "{j}\n{}", job_log(&h, &id));
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on the worker's pid, read from the job log.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (j, _) = wait_job_states(&h, &id, 60);
    assert_eq!(j["state"], "Failed", "{j}");
    let error = j["error"].as_str().unwrap();
    assert!(
        error.contains("the worker was killed by signal 9 before reporting a result"),
        "{error}"
    );
    let got = metric_steps(&h, &run, "loss");
    let want: Vec<i64> = (1..=got.len() as i64).collect();
    assert_eq!(
        got, want,
        "every stored epoch once, none missing before the last"
    );
    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(r["status"], "FAILED", "{r}");
}

#[test]
fn a_host_restart_reaps_the_orphaned_worker_and_retries_its_job() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("first-attempt");
    let spec = json!({
        "type": "command", "compute": "local-process", "retries": 1,
        "command": {"command": format!(
            "if [ -f {m} ]; then echo second-attempt; else touch {m}; sleep 300; fi",
            m = marker.display()
        )},
    });
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "{}", job_log(&h, &id));
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_worker = worker_pid(&h, &id).expect("the worker's pid is logged");
    s.kill9();
    s.restart();
    let h = s.http();
    let (j, _) = wait_job_states(&h, &id, 120);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert_eq!(j["attempts"], 2, "{j}");
    assert!(log.contains("second-attempt"), "{log}");
    // the killed host's worker and its sleep were reaped when the host came back
    assert!(
        !std::path::Path::new(&format!("/proc/{first_worker}")).exists()
            || std::fs::read_to_string(format!("/proc/{first_worker}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the first worker {first_worker} is still running"
    );
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let env = std::fs::read(p.path().join("environ")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&env).contains(&format!("ATRIUM_WORK_KEY={id}")),
            "{:?} of job {id} left running",
            p.path()
        );
    }
}
