//! Jobs on a real Slurm cluster (single node: munged, slurmctld, slurmd, slurmrestd, started by
//! `scripts/engines/slurm.sh` from the test command) through the built-in `target-slurm` plugin:
//! `atrium compute create`, a train job whose model lands in its run, cancel of a running job,
//! the engine unreachable, and a host restart mid-job reconciled with the engine.
//!
//! `ATRIUM_TEST_SLURM_ENV` names the env file `slurm.sh start DIR` wrote (DIR/env).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atrium_tests::{
    Backend, Server, engine_env, job_log, job_of, metric_steps, upload_iris, wait_engine_state,
    wait_job_state, wait_job_states,
};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

fn slurm_env() -> BTreeMap<String, String> {
    engine_env("ATRIUM_TEST_SLURM_ENV", "slurm.sh")
}

/// Creates compute target `name` on the test cluster with the CLI (the key as a secret).
fn slurm_target(s: &Server, name: &str, url: Option<&str>) -> Value {
    let env = slurm_env();
    let h = s.http();
    let r = h.put(
        &format!("{WS}/secrets/slurm-key"),
        json!({ "value": env["SLURM_JWT_KEY_B64"] }),
    );
    assert!(r.status == 201 || r.status == 200, "{}", r.json);
    let url = url.unwrap_or(&env["SLURM_URL"]);
    let (ok, out, err) = s.cli(&[
        "compute",
        "create",
        name,
        "--plugin",
        "target-slurm",
        "--config",
        &format!("url={url}"),
        "--config",
        "jwt_key_secret=slurm-key",
        "--config",
        &format!("partition={}", env["SLURM_PARTITION"]),
        "--secret",
        "slurm-key",
        "--allow-private",
        "--cpus",
        "1",
        "--output",
        "json",
    ]);
    assert!(ok, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn iris_job(epochs: u64) -> Value {
    json!({
        "type": "train",
        "name": "iris-on-slurm",
        "compute": "slurm",
        "train": {
            "dataset": "iris:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [16], "activation": "relu" },
            "optimizer": { "kind": "adam", "lr": 0.01 },
            "epochs": epochs, "batch_size": 16, "validation_split": 0.2, "seed": 7,
        }
    })
}

fn command_job(command: &str) -> Value {
    json!({ "type": "command", "name": "cmd-on-slurm", "compute": "slurm", "command": { "command": command } })
}

#[test]
fn a_train_job_runs_on_slurm_and_its_model_lands_in_its_run() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let created = slurm_target(&s, "slurm", None);
    assert_eq!(created["health"], "ok", "{created}");
    assert_eq!(created["pools"][0]["name"], "debug", "{created}");
    assert!(
        created["pools"][0]["capacity"]["cpus"].as_f64().unwrap() >= 1.0,
        "{created}"
    );
    let (ok, out, err) = s.cli(&["compute", "show", "slurm"]);
    assert!(
        ok && out.contains("health:    ok") && out.contains("debug ("),
        "{out}{err}"
    );
    upload_iris(&h);
    let j = h.post(&format!("{WS}/jobs"), iris_job(8)).ok();
    assert_eq!(j["target"], "slurm");
    let id = j["id"].as_str().unwrap();
    let (j, seen) = wait_job_states(&h, id, 180);
    let log = job_log(&h, id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    // it ran on the worker (a short attempt can be Running for less than one poll)
    assert!(
        seen.iter().any(|s| s == "Running") || log.contains("running attempt 1"),
        "{seen:?}\n{log}"
    );
    assert!(
        log.contains("submitted to compute target 'slurm' (target-slurm@"),
        "{log}"
    );
    let log = wait_engine_state(&h, id, "COMPLETED", 30);
    assert!(log.contains("engine: COMPLETED"), "{log}");
    assert!(
        log.contains("epoch 8 loss="),
        "the worker's lines reach the job log: {log}"
    );
    assert!(j["handle"].as_str().unwrap().parse::<u64>().is_ok(), "{j}");
    let run = j["run_id"].as_str().unwrap();
    assert_eq!(metric_steps(&h, run, "loss"), (1..=8).collect::<Vec<_>>());
    let files = h.get(&format!("{WS}/runs/{run}/artifacts?path=model")).ok();
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{files}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"model/model.safetensors"), "{names:?}");
    let m = h.post(
        &format!("{WS}/models/iris-from-slurm/versions"),
        json!({ "run_id": run, "path": "model" }),
    );
    assert_eq!(m.status, 201, "{}", m.json);
    // a target with no unfinished job can go
    let (ok, out, err) = s.cli(&["compute", "delete", "slurm"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn a_running_slurm_job_stops_on_cancel() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    slurm_target(&s, "slurm", None);
    let j = h
        .post(
            &format!("{WS}/jobs"),
            command_job("echo started; sleep 300"),
        )
        .ok();
    let id = j["id"].as_str().unwrap().to_string();
    wait_job_state(&h, &id, "Running", 120);
    // a target with a running job cannot be deleted
    let r = h.delete(&format!("{WS}/compute/slurm"));
    assert_eq!(r.status, 409, "{}", r.json);
    let t0 = Instant::now();
    let r = h.post(&format!("{WS}/jobs/{id}:cancel"), json!({}));
    assert_eq!(r.status, 200, "{}", r.json);
    let (j, _) = wait_job_states(&h, &id, 60);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Canceled", "{j}\n{log}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "{:?}\n{log}",
        t0.elapsed()
    );
    assert!(log.contains("started"), "{log}");
    let run = h
        .get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
        .ok();
    assert_eq!(run["status"], "KILLED", "{run}");
}

#[test]
fn an_unreachable_engine_fails_the_job_with_the_reason() {
    // a TCP relay to slurmrestd that the test can take away
    let env = slurm_env();
    let upstream = env["SLURM_URL"].trim_start_matches("http://").to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = listener.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let Ok(client) = conn else { continue };
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut a, mut b) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    slurm_target(&s, "slurm", Some(&format!("http://{relay}")));
    // the relay goes away: the next connection is refused
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = std::net::TcpStream::connect(relay);
    std::thread::sleep(Duration::from_millis(200));
    let j = h
        .post(&format!("{WS}/jobs"), command_job("echo never"))
        .ok();
    let id = j["id"].as_str().unwrap();
    let (j, _) = wait_job_states(&h, id, 60);
    let log = job_log(&h, id);
    assert_eq!(j["state"], "Failed", "{j}\n{log}");
    let e = j["error"].as_str().unwrap();
    assert!(
        e.contains("compute target 'slurm' did not take the job") && e.contains("unreachable"),
        "{e}"
    );
    let shown = h.get(&format!("{WS}/compute/slurm")).ok();
    assert_eq!(shown["health"], "error", "{shown}");
}

#[test]
fn a_host_restart_mid_job_is_reconciled_with_slurm() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    slurm_target(&s, "slurm", None);
    let j = h
        .post(
            &format!("{WS}/jobs"),
            command_job("for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done"),
        )
        .ok();
    let id = j["id"].as_str().unwrap().to_string();
    wait_job_state(&h, &id, "Running", 120);
    let handle = job_of(&h, &id)["handle"].as_str().unwrap().to_string();
    s.restart_same_port();
    let h = s.http();
    let (j, _) = wait_job_states(&h, &id, 120);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert_eq!(
        j["handle"],
        handle.as_str(),
        "the same Slurm job, not a second one"
    );
    assert_eq!(j["attempts"], 1, "{j}");
    assert!(
        log.contains("reconciling attempt 1 with compute target 'slurm'"),
        "{log}"
    );
    assert!(log.contains("tick 6"), "{log}");
}

/// The pid of the `atrium worker run --job ID` process on this machine.
fn worker_pid(job: &str) -> Option<i32> {
    let want = format!("worker\0run\0--job\0{job}\0");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmd).contains(&want).then_some(pid)
    })
}

#[test]
fn a_worker_killed_on_slurm_fails_its_job_and_keeps_every_acknowledged_point_once() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    slurm_target(&s, "slurm", None);
    upload_iris(&h);
    let mut spec = iris_job(100_000);
    spec["train"]["batch_size"] = json!(4);
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (pid, run) = loop {
        let j = job_of(&h, &id);
        if let (Some(pid), Some(run)) = (worker_pid(&id), j["run_id"].as_str())
            && metric_steps(&h, run, "loss").len() >= 3
        {
            break (pid, run.to_string());
        }
        assert!(Instant::now() < deadline, "{j}\n{}", job_log(&h, &id));
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on the worker's pid, found by its command line.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (j, _) = wait_job_states(&h, &id, 90);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Failed", "{j}\n{log}");
    let error = j["error"].as_str().unwrap();
    assert!(
        error.contains("failed on the engine")
            && error.contains("before its worker reported a result"),
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

/// Intervals overlapping at some instant, at most.
fn max_overlap(intervals: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = intervals
        .iter()
        .flat_map(|&(a, b)| [(a, 1), (b, -1)])
        .collect();
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn an_eight_trial_sweep_spreads_over_slurm_with_early_termination() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    slurm_target(&s, "slurm", None);
    upload_iris(&h);
    // the grid runs the learning rates in order: the two that cannot learn come last and are
    // judged against the six that did
    let spec = json!({
        "type": "sweep", "name": "iris-on-slurm", "compute": "slurm",
        "sweep": {
            "trial": { "type": "train", "train": {
                "dataset": "iris", "target": "target", "task": "classification",
                "epochs": 300, "batch_size": 4, "validation_split": 0.2, "seed": 3,
                "model": { "family": "mlp", "hidden": [16] },
                "optimizer": { "kind": "sgd", "lr": "${{search_space.lr}}" }
            }},
            "search_space": { "lr": { "kind": "choice",
                "values": [0.05, 0.04, 0.03, 0.02, 0.06, 0.08, 0.0000001, 0.00000001] } },
            "objective": { "primary_metric": "val_accuracy", "goal": "maximize" },
            "sampler": "grid",
            "early_termination": { "policy": "median", "evaluation_interval": 1, "delay_evaluation": 5 },
            "limits": { "max_total_trials": 8, "max_concurrent_trials": 3 }
        }
    });
    let j = h.post(&format!("{WS}/jobs"), spec).ok();
    assert_eq!(
        j["target"], "local",
        "the sweep itself runs in the host: {j}"
    );
    let id = j["id"].as_str().unwrap().to_string();
    let (j, _) = wait_job_states(&h, &id, 600);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert_eq!(log.matches("runs as job").count(), 8, "{log}");
    let sweep = h.get(&format!("{WS}/jobs/{id}/trials")).ok();
    let trials = sweep["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 8, "{sweep}");
    let stopped = trials
        .iter()
        .filter(|t| t["state"] == "early-terminated")
        .count();
    assert!(stopped >= 1, "median stopping never fired: {sweep}");
    assert!(
        trials
            .iter()
            .all(|t| t["state"] == "completed" || t["state"] == "early-terminated"),
        "{sweep}"
    );
    // one job per trial on Slurm, never more than max_concurrent_trials at once
    let jobs = h.get(&format!("{WS}/jobs?limit=100")).ok();
    let on_slurm: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["target"] == "slurm")
        .collect();
    assert_eq!(on_slurm.len(), 8, "{jobs}");
    let spans: Vec<(i64, i64)> = on_slurm
        .iter()
        .map(|j| {
            (
                j["created_at"].as_i64().unwrap(),
                j["ended_at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(max_overlap(&spans) <= 3, "{spans:?}");
    for t in trials {
        let run = h
            .get(&format!("{WS}/runs/{}", t["run_id"].as_str().unwrap()))
            .ok();
        assert_eq!(run["tags"]["mlflow.parentRunId"], j["run_id"], "{run}");
        assert!(run["params"]["lr"].is_string(), "{run}");
    }
}

#[test]
fn a_lost_attempt_on_slurm_runs_again_when_retries_allow() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    slurm_target(&s, "slurm", None);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("first-attempt");
    let spec = json!({
        "type": "command", "compute": "slurm", "retries": 1,
        "command": {"command": format!(
            "if [ -f {m} ]; then echo second-attempt; else touch {m}; sleep 300; fi",
            m = marker.display()
        )},
    });
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let pid = loop {
        if marker.exists()
            && let Some(pid) = worker_pid(&id)
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "{}", job_log(&h, &id));
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on the worker's pid, found by its command line.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (j, _) = wait_job_states(&h, &id, 120);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert_eq!(j["attempts"], 2, "{j}");
    assert!(
        log.contains("attempt 1 was lost: the job failed on the engine"),
        "{log}"
    );
    assert!(log.contains("retrying (attempt 2 of 2)"), "{log}");
    assert!(log.contains("second-attempt"), "{log}");
    let run = h
        .get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
        .ok();
    assert_eq!(run["status"], "FINISHED", "{run}");
}
