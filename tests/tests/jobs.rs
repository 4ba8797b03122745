//! Datasets, train jobs on Candle, command jobs, cancel and restart recovery — against the real
//! binary, on SQLite (and one train job on PostgreSQL).

use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, dataset, python};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

fn upload(h: &Http, name: &str, bytes: Vec<u8>) -> atrium_tests::Resp {
    h.raw(
        "POST",
        &format!("{WS}/datasets/{name}/versions"),
        Some(bytes),
    )
}

fn submit(h: &Http, spec: Value) -> Value {
    h.post(&format!("{WS}/jobs"), spec).ok()
}

fn job(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/jobs/{id}")).ok()
}

/// Polls until the job ends (or panics with its log after `secs`).
fn wait_job(h: &Http, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job(h, id);
        if matches!(
            j["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            return j;
        }
        if Instant::now() > deadline {
            let log = h.get(&format!("{WS}/jobs/{id}/logs")).bytes;
            panic!(
                "job {id} did not end: {j}\nlog:\n{}",
                String::from_utf8_lossy(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until `pred` holds for the job.
fn wait_until(h: &Http, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job(h, id);
        if pred(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never reached the expected state: {j}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn history(h: &Http, run: &str, key: &str) -> Vec<(i64, f64)> {
    let v = h.get(&format!("{WS}/runs/{run}/metrics/{key}")).ok();
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["step"].as_i64().unwrap(), p["value"].as_f64().unwrap()))
        .collect()
}

fn iris_spec(epochs: u64) -> Value {
    json!({
        "type": "train",
        "name": "iris-mlp",
        "experiment": "iris",
        "train": {
            "dataset": "iris:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [16], "activation": "relu" },
            "optimizer": { "kind": "adam", "lr": 0.01 },
            "epochs": epochs, "batch_size": 16, "validation_split": 0.2, "seed": 7,
            "checkpoint_every": 5
        }
    })
}

#[test]
fn datasets_are_versioned_validated_and_protected() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let v1 = upload(&h, "iris", dataset("iris.csv"));
    assert_eq!(v1.status, 201, "{}", v1.json);
    assert_eq!(v1.json["ref"], "iris:1");
    assert_eq!(v1.json["rows"], 150);
    assert_eq!(
        upload(&h, "iris", dataset("iris.csv")).ok()["ref"],
        "iris:2"
    );
    let got = h
        .get(&format!("{WS}/datasets/iris/versions/1?preview=3"))
        .ok();
    assert_eq!(got["schema"][0]["name"], "sepal_length");
    assert_eq!(got["schema"][0]["kind"], "numeric");
    assert_eq!(got["preview"].as_array().unwrap().len(), 3);
    assert_eq!(got["preview"][0][0], "5.1");
    let latest = h
        .get(&format!("{WS}/datasets/iris/versions/latest?preview=0"))
        .ok();
    assert_eq!(latest["version"], 2);
    assert_eq!(
        h.get(&format!("{WS}/datasets/iris/versions/1/data")).bytes,
        dataset("iris.csv")
    );

    // bad data: precise errors, nothing stored
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty"),
        (b"a,b\n1,2\n3\n", "line 3 has 1 fields; the header has 2"),
        (b"a,a\n1,2\n", "names column 'a' twice"),
        (b"a,b\n1,\xff\n", "UTF-8"),
        (b"a,b\n", "no rows"),
        (b"x,y,z\n1,2,3\n4,5\n", "line 3 has 2 fields"),
    ];
    for (bytes, needle) in cases {
        let r = upload(&h, "bad", bytes.to_vec());
        assert_eq!(r.status, 400, "{needle}: {}", r.json);
        assert!(
            r.message().contains(needle),
            "expected '{needle}' in: {}",
            r.message()
        );
    }
    for bad_name in [".hidden", "a%20b", "x%2F..%2Fy"] {
        let r = upload(&h, bad_name, b"a\n1\n".to_vec());
        assert_eq!(r.status, 400, "{bad_name}: {}", r.json);
        assert!(
            r.message().contains("invalid dataset name"),
            "{}",
            r.message()
        );
    }
    let all = h.get(&format!("{WS}/datasets")).ok();
    assert_eq!(all["datasets"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(h.get(&format!("{WS}/datasets/nope/versions/1")).status, 404);

    // a version a job uses cannot be deleted; an unused one can
    let j = submit(&h, iris_spec(2));
    wait_job(&h, j["id"].as_str().unwrap(), 120);
    let r = h.delete(&format!("{WS}/datasets/iris/versions/1"));
    assert_eq!(r.status, 409, "{}", r.json);
    assert!(r.message().contains("job"), "{}", r.message());
    h.delete(&format!("{WS}/datasets/iris/versions/2")).ok();
    assert_eq!(
        h.get(&format!("{WS}/datasets")).ok()["datasets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn train_job_logs_epochs_and_saves_a_reloadable_model() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "iris", dataset("iris.csv")).ok();
    let j = submit(&h, iris_spec(30));
    assert_eq!(j["type"], "train");
    assert_eq!(j["spec"]["train"]["dataset"], "iris:1");
    let id = j["id"].as_str().unwrap();
    let run = j["run_id"].as_str().unwrap().to_string();
    let done = wait_job(&h, id, 300);
    assert_eq!(done["state"], "Completed", "{done}");
    assert_eq!(done["attempts"], 1);
    assert!(done["started_at"].as_i64().is_some() && done["ended_at"].as_i64().is_some());

    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(r["status"], "FINISHED", "{r}");
    assert_eq!(r["params"]["optimizer.kind"], "adam", "{r}");
    assert_eq!(r["params"]["model.hidden"], "[16]", "{r}");
    assert_eq!(r["tags"]["atrium.job.id"], id);
    for key in ["loss", "val_loss", "val_accuracy", "val_f1_macro", "lr"] {
        let points = history(&h, &run, key);
        assert_eq!(points.len(), 30, "{key}");
        assert_eq!(
            points.iter().map(|p| p.0).collect::<Vec<_>>(),
            (1..=30).collect::<Vec<_>>(),
            "{key} steps are epochs"
        );
    }
    let acc = history(&h, &run, "val_accuracy");
    assert!(
        acc.last().unwrap().1 >= 0.9,
        "iris validation accuracy {:?}",
        acc.last()
    );
    let loss = history(&h, &run, "loss");
    assert!(loss.last().unwrap().1 < loss[0].1, "loss falls: {loss:?}");

    let files = h.get(&format!("{WS}/runs/{run}/artifacts?path=model")).ok();
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in [
        "model/model.json",
        "model/model.safetensors",
        "model/MLmodel",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let card: Value = serde_json::from_slice(
        &h.get(&format!("{WS}/runs/{run}/artifacts/model/model.json"))
            .bytes,
    )
    .unwrap();
    assert_eq!(card["format"], "atrium.tabular/1");
    assert_eq!(
        card["signature"]["output"]["labels"],
        json!(["0", "1", "2"])
    );
    assert_eq!(
        card["preprocessor"]["features"].as_array().unwrap().len(),
        4
    );
    let ckpts = h
        .get(&format!("{WS}/runs/{run}/artifacts?path=checkpoints"))
        .ok();
    assert_eq!(
        ckpts["files"].as_array().unwrap().len(),
        6,
        "a checkpoint every 5 of 30 epochs: {ckpts}"
    );
    let log = String::from_utf8(h.get(&format!("{WS}/jobs/{id}/logs")).bytes).unwrap();
    assert!(log.contains("epoch 30 "), "{log}");
    let tail = String::from_utf8(h.get(&format!("{WS}/jobs/{id}/logs?tail=1")).bytes).unwrap();
    assert_eq!(tail.trim(), "job completed");
    let run_log = String::from_utf8(
        h.get(&format!("{WS}/runs/{run}/artifacts/logs/job.log"))
            .bytes,
    )
    .unwrap();
    assert!(
        run_log.contains("epoch 30 "),
        "the job log is a run artifact"
    );

    // the CLI loads the model back and scores a CSV the same way twice, matching the labels
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iris.csv");
    std::fs::write(&csv, dataset("iris.csv")).unwrap();
    let csv = csv.to_str().unwrap();
    let (ok, a, err) = s.cli(&["model", "predict", "--run", &run, "--file", csv]);
    assert!(ok, "{err}");
    let (_, b, _) = s.cli(&["model", "predict", "--run", &run, "--file", csv]);
    assert_eq!(a, b, "the reloaded model predicts deterministically");
    let truth: Vec<String> = String::from_utf8(dataset("iris.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect();
    let preds: Vec<&str> = a
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(preds.len(), 150);
    let right = preds
        .iter()
        .zip(&truth)
        .filter(|(p, t)| **p == t.as_str())
        .count();
    assert!(right >= 135, "{right}/150 right");
}

#[test]
fn same_data_and_seed_give_the_same_metrics() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "wine", dataset("wine.csv")).ok();
    let spec = json!({
        "type": "train",
        "train": {
            "dataset": "wine", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [32, 16], "activation": "tanh", "dropout": 0.1, "batch_norm": true },
            "optimizer": { "kind": "adamw", "lr": 0.005, "weight_decay": 0.01, "schedule": { "kind": "cosine", "min_lr": 0.0001 } },
            "epochs": 15, "batch_size": 32, "seed": 42
        }
    });
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let j = submit(&h, spec.clone());
            assert_eq!(
                j["spec"]["train"]["dataset"], "wine:1",
                "the latest version is pinned at submission"
            );
            let done = wait_job(&h, j["id"].as_str().unwrap(), 300);
            assert_eq!(done["state"], "Completed", "{done}");
            j["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    for key in ["loss", "val_loss", "val_accuracy", "lr"] {
        let a: Vec<f64> = history(&h, &runs[0], key)
            .into_iter()
            .map(|p| p.1)
            .collect();
        let b: Vec<f64> = history(&h, &runs[1], key)
            .into_iter()
            .map(|p| p.1)
            .collect();
        assert_eq!(a.len(), 15);
        assert_eq!(a, b, "{key} differs between identical jobs");
    }
    let w = |run: &str| {
        h.get(&format!(
            "{WS}/runs/{run}/artifacts/model/model.safetensors"
        ))
        .bytes
    };
    assert_eq!(w(&runs[0]), w(&runs[1]), "identical weights");
}

#[test]
fn regression_with_linear_and_mlp() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "diabetes", dataset("diabetes.csv")).ok();
    for model in [
        json!({ "family": "linear" }),
        json!({ "family": "mlp", "hidden": [32] }),
    ] {
        let j = submit(
            &h,
            json!({ "type": "train", "train": {
                "dataset": "diabetes:1", "target": "target", "task": "regression", "model": model,
                "optimizer": { "kind": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": { "kind": "step", "step_size": 20, "gamma": 0.5 } },
                "epochs": 60, "batch_size": 32, "seed": 1,
                "early_stopping": { "patience": 8 }
            }}),
        );
        let done = wait_job(&h, j["id"].as_str().unwrap(), 300);
        assert_eq!(done["state"], "Completed", "{done}");
        let run = j["run_id"].as_str().unwrap();
        let r2 = history(&h, run, "val_r2");
        let rmse = history(&h, run, "val_rmse");
        assert!(!r2.is_empty() && r2.len() == rmse.len());
        let best = r2.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        assert!(best > 0.3, "{model}: best validation R² {best}");
        assert!(
            rmse.iter().all(|p| p.1 > 20.0 && p.1 < 100.0),
            "RMSE in target units: {rmse:?}"
        );
        let lr = history(&h, run, "lr");
        assert!((lr[0].1 - 0.01).abs() < 1e-12);
        if lr.len() > 20 {
            assert!((lr[20].1 - 0.005).abs() < 1e-12, "step schedule: {lr:?}");
        }
    }
}

#[test]
fn bad_train_specs_are_refused_at_submit() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "iris", dataset("iris.csv")).ok();
    let mut stray = String::from_utf8(dataset("iris.csv")).unwrap();
    stray = stray.replacen("4.9,3.0,1.4,0.2,0", "4.9,three,1.4,0.2,0", 1);
    upload(&h, "stray", stray.into_bytes()).ok();
    upload(
        &h,
        "holes",
        b"a,b,target\n1,2,x\n2,,y\n3,4,x\n5,6,y\n".to_vec(),
    )
    .ok();
    upload(
        &h,
        "unseen",
        b"sepal_length,sepal_width,petal_length,petal_width,target\n5,3,1,0.2,7\n".to_vec(),
    )
    .ok();
    let spec = |train: Value| json!({ "type": "train", "train": train });
    let cases = [
        (
            spec(json!({ "dataset": "iris:1", "target": "nope", "task": "classification" })),
            400,
            "column 'nope' is not in the dataset",
        ),
        (
            spec(json!({ "dataset": "iris:9", "target": "target", "task": "classification" })),
            404,
            "iris:9",
        ),
        (
            spec(json!({ "dataset": "stray:1", "target": "target", "task": "classification" })),
            400,
            "feature 'sepal_width' is numeric but row 2 has the non-numeric value 'three'",
        ),
        (
            spec(
                json!({ "dataset": "holes:1", "target": "target", "task": "classification", "missing": "fail" }),
            ),
            400,
            "row 2 has no value for 'b'",
        ),
        (
            spec(
                json!({ "dataset": "iris:1", "validation_dataset": "unseen:1", "target": "target", "task": "classification" }),
            ),
            400,
            "class label '7' was never seen in training",
        ),
        (
            spec(
                json!({ "dataset": "iris:1", "target": "target", "task": "classification", "epochs": 0 }),
            ),
            400,
            "epochs",
        ),
        (
            spec(
                json!({ "dataset": "iris:1", "target": "target", "task": "classification", "model": { "family": "linear" } }),
            ),
            400,
            "logistic",
        ),
        (
            spec(
                json!({ "dataset": "iris:1", "target": "target", "task": "classification", "device": "cuda" }),
            ),
            400,
            "cuda feature",
        ),
        (
            spec(
                json!({ "dataset": "iris:1", "target": "target", "task": "classification", "optimizer": { "kind": "rmsprop" } }),
            ),
            400,
            "rmsprop",
        ),
        (json!({ "type": "train" }), 400, "[train]"),
        (
            json!({ "type": "command", "command": { "command": "true", "secrets": ["db-password"] } }),
            400,
            "secret",
        ),
    ];
    for (body, status, needle) in cases {
        let r = h.post(&format!("{WS}/jobs"), body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.json);
        assert!(
            r.message().contains(needle),
            "expected '{needle}' in: {}",
            r.message()
        );
    }
    let r = h.raw("POST", &format!("{WS}/jobs"), Some(b"{not json".to_vec()));
    assert_eq!(r.status, 400);
    // drop and impute make the holey dataset usable
    for policy in ["drop", "impute"] {
        let j = submit(
            &h,
            spec(
                json!({ "dataset": "holes:1", "target": "target", "task": "classification", "missing": policy, "epochs": 2, "validation_split": 0.0 }),
            ),
        );
        assert_eq!(
            wait_job(&h, j["id"].as_str().unwrap(), 120)["state"],
            "Completed"
        );
    }
    assert_eq!(
        h.get(&format!("{WS}/jobs")).ok()["jobs"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "refused jobs leave nothing"
    );
    assert_eq!(
        h.get(&format!("{WS}/jobs?state=Completed")).ok()["jobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(h.get(&format!("{WS}/jobs?state=Bogus")).status, 400);
    assert_eq!(h.get(&format!("{WS}/jobs/0000")).status, 404);
}

#[test]
fn cancel_stops_train_and_command_jobs() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "digits", dataset("digits.csv")).ok();
    let j = submit(
        &h,
        json!({ "type": "train", "train": { "dataset": "digits:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [256, 256] }, "epochs": 100000, "batch_size": 8 } }),
    );
    let id = j["id"].as_str().unwrap();
    let running = wait_until(&h, id, 120, |j| {
        j["progress"]["batch"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(running["state"], "Running");
    assert_eq!(running["progress"]["epochs"], 100000);
    assert!(running["progress"]["batches"].as_u64().unwrap() > 100);
    let asked = Instant::now();
    h.post(&format!("{WS}/jobs/{id}:cancel"), json!({})).ok();
    let done = wait_job(&h, id, 30);
    assert_eq!(done["state"], "Canceled", "{done}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "a train job stops within a batch"
    );
    let run = h
        .get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
        .ok();
    assert_eq!(run["status"], "KILLED");
    let r = h.post(&format!("{WS}/jobs/{id}:cancel"), json!({}));
    assert_eq!(r.status, 409, "{}", r.json);

    // a command job is stopped by signal, its whole process group with it
    let j = submit(
        &h,
        json!({ "type": "command", "command": { "command": "echo started; sleep 300 & wait" } }),
    );
    let id = j["id"].as_str().unwrap();
    wait_until(&h, id, 60, |j| j["state"] == "Running");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&h.get(&format!("{WS}/jobs/{id}/logs")).bytes)
        .contains("started")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    h.post(&format!("{WS}/jobs/{id}:cancel"), json!({})).ok();
    assert_eq!(wait_job(&h, id, 30)["state"], "Canceled");
    assert_eq!(
        h.get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
            .ok()["status"],
        "KILLED"
    );

    // a queued job is canceled at once
    let blocker = submit(
        &h,
        json!({ "type": "command", "command": { "command": "sleep 300" } }),
    );
    let queued = submit(
        &h,
        json!({ "type": "command", "command": { "command": "true" } }),
    );
    wait_until(&h, blocker["id"].as_str().unwrap(), 60, |j| {
        j["state"] == "Running"
    });
    assert_eq!(job(&h, queued["id"].as_str().unwrap())["state"], "Queued");
    let c = h
        .post(
            &format!("{WS}/jobs/{}:cancel", queued["id"].as_str().unwrap()),
            json!({}),
        )
        .ok();
    assert_eq!(c["state"], "Canceled");
    h.post(
        &format!("{WS}/jobs/{}:cancel", blocker["id"].as_str().unwrap()),
        json!({}),
    )
    .ok();
    assert_eq!(
        wait_job(&h, blocker["id"].as_str().unwrap(), 30)["state"],
        "Canceled"
    );
}

#[test]
fn restart_requeues_waiting_jobs_and_fails_or_retries_interrupted_ones() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("ran-once");
    let running = submit(
        &h,
        json!({ "type": "command", "command": { "command": "sleep 300" } }),
    );
    let queued = submit(
        &h,
        json!({ "type": "command", "command": { "command": "echo after-restart" } }),
    );
    let retried = submit(
        &h,
        json!({ "type": "command", "retries": 1, "command": {
            "command": format!("if [ -f {m} ]; then echo second-attempt; else touch {m}; sleep 300; fi", m = marker.display())
        } }),
    );
    let rid = running["id"].as_str().unwrap();
    wait_until(&h, rid, 60, |j| j["state"] == "Running");
    s.kill9();
    s.restart();
    let h = s.http();
    let j = wait_job(&h, rid, 30);
    assert_eq!(j["state"], "Failed");
    assert_eq!(j["error"], "interrupted by a host restart");
    assert_eq!(
        h.get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
            .ok()["status"],
        "FAILED"
    );
    let q = wait_job(&h, queued["id"].as_str().unwrap(), 60);
    assert_eq!(q["state"], "Completed", "{q}");
    // the retried job ran to the sleep before a second kill, then again after it
    let tid = retried["id"].as_str().unwrap();
    wait_until(&h, tid, 60, |j| j["state"] == "Running");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the retried job never started its command"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.kill9();
    s.restart();
    let h = s.http();
    let t = wait_job(&h, tid, 60);
    assert_eq!(t["state"], "Completed", "{t}");
    assert_eq!(t["attempts"], 2);
    let log = String::from_utf8(h.get(&format!("{WS}/jobs/{tid}/logs")).bytes).unwrap();
    assert!(log.contains("second-attempt"), "{log}");
    // the killed host's sleep was reaped when the host came back
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "sleep 300"])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&ps.stdout);
    for pid in pids.split_whitespace() {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let env = String::from_utf8_lossy(&env);
        assert!(
            !env.contains(&format!("ATRIUM_JOB_ID={rid}"))
                && !env.contains(&format!("ATRIUM_JOB_ID={tid}")),
            "orphan {pid} left running"
        );
    }
}

#[test]
fn command_jobs_run_mlflow_scripts_under_tracking_via_cli() {
    let py = python();
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("train.py"),
        r#"import os, sys, argparse
import mlflow
p = argparse.ArgumentParser(); p.add_argument("--lr", type=float); p.add_argument("--fail", action="store_true")
a = p.parse_args()
print("undeclared:", os.environ.get("ATRIUM_TEST_UNDECLARED"), "declared:", os.environ.get("GREETING"))
job_run = os.environ["MLFLOW_RUN_ID"]  # mlflow unsets it once start_run adopts it
with mlflow.start_run() as run:
    assert run.info.run_id == job_run
    mlflow.log_param("lr", a.lr)
    for step in range(3):
        mlflow.log_metric("score", a.lr * step, step=step)
    print("logged to", run.info.run_id)
    sys.stderr.write("to stderr\n")
    if a.fail:
        sys.exit(3)
"#,
    )
    .unwrap();
    std::fs::write(code.path().join(".gitignore"), "data/\n*.tmp\n").unwrap();
    std::fs::create_dir(code.path().join("data")).unwrap();
    std::fs::write(code.path().join("data/big.bin"), vec![0u8; 1000]).unwrap();
    std::fs::write(code.path().join("scratch.tmp"), "x").unwrap();
    std::fs::create_dir(code.path().join("lib")).unwrap();
    std::fs::write(code.path().join("lib/util.py"), "X = 1\n").unwrap();
    let dir = code.path().to_str().unwrap();
    let cmd = format!("{} train.py --lr 0.5", py.display());
    let out = std::process::Command::new(atrium_tests::bin())
        .args([
            "job",
            "submit",
            "--command",
            &cmd,
            "--code",
            dir,
            "--experiment",
            "scripts",
            "--env",
            "GREETING=hi",
            "--follow",
        ])
        .env("ATRIUM_SERVER", &s.url)
        .env("ATRIUM_TOKEN", &s.token)
        .env("ATRIUM_TEST_UNDECLARED", "leak")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("undeclared: None declared: hi"),
        "only declared env passes: {stdout}"
    );
    assert!(stdout.contains("to stderr"), "{stdout}");
    let run = stdout
        .lines()
        .find_map(|l| l.strip_prefix("logged to "))
        .expect("run id printed")
        .trim()
        .to_string();
    assert!(
        stdout.contains(&format!("completed: run {run}")),
        "{stdout}"
    );
    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(r["status"], "FINISHED");
    assert_eq!(r["params"]["lr"], "0.5");
    assert_eq!(history(&h, &run, "score").len(), 3);
    let code_files = h.get(&format!("{WS}/runs/{run}/artifacts?path=code")).ok();
    let names: Vec<&str> = code_files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"code/train.py") && names.contains(&"code/lib"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("data") || n.contains("scratch")),
        "ignored files stay out: {names:?}"
    );
    assert!(
        !names.contains(&"code/.gitignore"),
        "hidden files stay out: {names:?}"
    );
    let log = String::from_utf8(
        h.get(&format!("{WS}/runs/{run}/artifacts/logs/job.log"))
            .bytes,
    )
    .unwrap();
    assert!(log.contains("logged to") && log.contains("to stderr"));

    // a failing script: non-zero CLI exit, FAILED run, the exit status as the reason
    let cmd = format!("{} train.py --lr 0.1 --fail", py.display());
    let (ok, stdout, stderr) = s.cli(&[
        "job",
        "submit",
        "--command",
        &cmd,
        "--code",
        dir,
        "--follow",
    ]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("failed: the command exited with status 3"),
        "{stderr}"
    );
    let (ok, list, _) = s.cli(&["job", "list", "--state", "Failed"]);
    assert!(
        ok && list.contains("command exited with status 3"),
        "{list}"
    );
    let failed = h.get(&format!("{WS}/jobs?state=Failed")).ok();
    let run = failed["jobs"][0]["run_id"].as_str().unwrap();
    assert_eq!(h.get(&format!("{WS}/runs/{run}")).ok()["status"], "FAILED");
}

#[test]
fn cli_dataset_and_train_job_with_follow() {
    let s = Server::start(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iris.csv");
    std::fs::write(&csv, dataset("iris.csv")).unwrap();
    let (ok, out, err) = s.cli(&["dataset", "create", "iris", "--file", csv.to_str().unwrap()]);
    assert!(ok && out.contains("iris:1"), "{out}{err}");
    let (ok, out, _) = s.cli(&["dataset", "show", "iris", "--rows", "2"]);
    assert!(
        ok && out.contains("petal_width") && out.contains("numeric") && out.contains("5.1"),
        "{out}"
    );
    let (ok, out, _) = s.cli(&["dataset", "list"]);
    assert!(ok && out.contains("iris:1") && out.contains("150"), "{out}");
    let spec = dir.path().join("job.toml");
    std::fs::write(
        &spec,
        "type = \"train\"\nname = \"iris-cli\"\nexperiment = \"cli\"\n\n[train]\ndataset = \"iris:1\"\ntarget = \"target\"\ntask = \"classification\"\nepochs = 10\nbatch_size = 16\n\n[train.model]\nfamily = \"logistic\"\n\n[train.optimizer]\nkind = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n",
    )
    .unwrap();
    let (ok, out, err) = s.cli(&["job", "submit", spec.to_str().unwrap(), "--follow"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("final metrics:") && out.contains("val_accuracy="),
        "{out}"
    );
    assert!(out.contains("completed: run "), "{out}");
    let (ok, out, _) = s.cli(&["job", "list"]);
    assert!(
        ok && out.contains("iris-cli") && out.contains("Completed"),
        "{out}"
    );
    let id = s.http().get(&format!("{WS}/jobs")).ok()["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, _) = s.cli(&["job", "logs", &id, "--tail", "1"]);
    assert!(ok && out.trim() == "job completed", "{out}");
    let (ok, out, _) = s.cli(&["job", "show", &id]);
    assert!(ok && out.contains("Completed"), "{out}");
    let yaml = dir.path().join("job.yaml");
    std::fs::write(
        &yaml,
        "type: train\ntrain:\n  dataset: iris:1\n  target: nope\n  task: classification\n",
    )
    .unwrap();
    let (ok, _, err) = s.cli(&["job", "submit", yaml.to_str().unwrap()]);
    assert!(
        !ok && err.contains("column 'nope' is not in the dataset"),
        "{err}"
    );
}

#[test]
fn train_job_on_postgres() {
    let s = Server::start(Backend::Postgres);
    let h = s.http();
    upload(&h, "iris", dataset("iris.csv")).ok();
    let j = submit(&h, iris_spec(5));
    let done = wait_job(&h, j["id"].as_str().unwrap(), 120);
    assert_eq!(done["state"], "Completed", "{done}");
    assert_eq!(
        history(&h, j["run_id"].as_str().unwrap(), "val_accuracy").len(),
        5
    );
    assert_eq!(
        h.delete(&format!("{WS}/datasets/iris/versions/1")).status,
        409
    );
    let c = submit(
        &h,
        json!({ "type": "command", "command": { "command": "sleep 300" } }),
    );
    wait_until(&h, c["id"].as_str().unwrap(), 60, |j| {
        j["state"] == "Running"
    });
    h.post(
        &format!("{WS}/jobs/{}:cancel", c["id"].as_str().unwrap()),
        json!({}),
    )
    .ok();
    assert_eq!(
        wait_job(&h, c["id"].as_str().unwrap(), 30)["state"],
        "Canceled"
    );
}

#[test]
fn a_spec_error_is_reported_once_in_the_format_of_the_file() {
    let s = Server::start(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    // a TOML typo (an unclosed string): the TOML error alone, not also a YAML one
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "type = \"train\"\n[train]\ndataset = \"iris:1\ntarget = \"t\"\n",
    )
    .unwrap();
    let (ok, _, err) = s.cli(&["job", "submit", bad.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert_eq!(err.matches("invalid job spec").count(), 1, "{err}");
    assert!(
        err.contains("invalid job spec (TOML)") && !err.contains("YAML"),
        "{err}"
    );
    // a YAML one in a .yaml file: the YAML error
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "type: train\ntrain:\n  dataset: iris:1\n   target: t\n",
    )
    .unwrap();
    let (ok, _, err) = s.cli(&["sweep", "submit", bad.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("invalid job spec (YAML)") && !err.contains("TOML"),
        "{err}"
    );
    // the API: the media type names the format
    let r = s
        .http()
        .request(reqwest::Method::POST, &format!("{WS}/jobs"))
        .header("content-type", "application/toml")
        .body("type = \"train\"\n[train\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().unwrap();
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("invalid job spec (TOML)") && !msg.contains("YAML"),
        "{msg}"
    );
}

#[test]
fn dataset_upload_detects_or_takes_the_delimiter() {
    let s = Server::start(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    // a ';'-separated file: detected, stored comma-separated
    let iris = String::from_utf8(dataset("iris.csv")).unwrap();
    let semi = dir.path().join("iris-semicolon.csv");
    std::fs::write(&semi, iris.replace(',', ";")).unwrap();
    let (ok, out, err) = s.cli(&[
        "dataset",
        "create",
        "iris",
        "--file",
        semi.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("iris:1"), "{out}{err}");
    assert!(err.contains("';'-separated"), "{err}");
    let v = s.http().get(&format!("{WS}/datasets/iris/versions/1")).ok();
    assert_eq!(v["schema"].as_array().unwrap().len(), 5, "{v}");
    let stored = s.http().get(&format!("{WS}/datasets/iris/versions/1/data"));
    assert_eq!(String::from_utf8(stored.bytes).unwrap(), iris);
    // the wrong delimiter given: refused, naming the likely one; nothing stored
    let (ok, _, err) = s.cli(&[
        "dataset",
        "create",
        "iris",
        "--file",
        semi.to_str().unwrap(),
        "--delimiter",
        ",",
    ]);
    assert!(
        !ok && err.contains("one column") && err.contains("--delimiter ;"),
        "{err}"
    );
    let r = upload(&s.http(), "iris", iris.replace(',', ";").into_bytes());
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["delimiter"], ";");
    let r = s.http().raw(
        "POST",
        &format!("{WS}/datasets/iris/versions?delimiter=,"),
        Some(iris.replace(',', ";").into_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    // a tab-separated one with the delimiter given
    let tsv = dir.path().join("iris.tsv");
    std::fs::write(&tsv, iris.replace(',', "\t")).unwrap();
    let (ok, out, err) = s.cli(&[
        "dataset",
        "create",
        "iris",
        "--file",
        tsv.to_str().unwrap(),
        "--delimiter",
        "tab",
    ]);
    assert!(ok && out.contains("iris:3"), "{out}{err}");
    let list = s.http().get(&format!("{WS}/datasets?name=iris")).ok();
    assert_eq!(list["datasets"].as_array().unwrap().len(), 3, "{list}");
}

#[test]
fn follow_prints_every_epoch_and_how_training_ended() {
    let s = Server::start(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(upload(&s.http(), "iris", dataset("iris.csv")).status, 201);
    // early stopping after 4 of 30 epochs (min_delta too large for any improvement)
    let spec = dir.path().join("job.toml");
    std::fs::write(
        &spec,
        "type = \"train\"\nname = \"iris-es\"\n\n[train]\ndataset = \"iris:1\"\ntarget = \"target\"\ntask = \"classification\"\nepochs = 30\nbatch_size = 16\nvalidation_split = 0.2\nearly_stopping = { patience = 3, min_delta = 1000.0 }\n\n[train.model]\nfamily = \"logistic\"\n\n[train.optimizer]\nkind = \"sgd\"\nlr = 0.1\n",
    )
    .unwrap();
    // not a terminal: no progress bar, but one line per epoch, none skipped
    let (ok, out, err) = s.cli(&["job", "submit", spec.to_str().unwrap(), "--follow"]);
    assert!(ok, "{out}{err}");
    for e in 1..=4 {
        let lines = out
            .lines()
            .filter(|l| l.starts_with(&format!("epoch {e}/30: ")))
            .count();
        assert_eq!(lines, 1, "epoch {e}: {out}");
    }
    assert!(!out.contains("epoch 5/30"), "{out}");
    assert!(
        out.contains("stopped early after epoch 4/30: no val_loss improvement in 3 epochs"),
        "{out}"
    );
    assert!(
        out.contains("final metrics (epoch 1, the best val_loss"),
        "{out}"
    );
    let id = s.http().get(&format!("{WS}/jobs")).ok()["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let log = String::from_utf8(s.http().get(&format!("{WS}/jobs/{id}/logs")).bytes).unwrap();
    assert!(
        log.contains("trained 4 of 30 epochs (stopped early); the model keeps epoch 1"),
        "{log}"
    );
    // --output json with --follow: stdout is one JSON document, the epochs go to stderr
    let (ok, out, err) = s.cli(&[
        "job",
        "submit",
        spec.to_str().unwrap(),
        "--follow",
        "--output",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["state"], "Completed");
    assert!(
        err.contains("epoch 4/30: ") && err.contains("stopped early"),
        "{err}"
    );
}
