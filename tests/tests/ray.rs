//! Jobs on a real Ray cluster (a head node on loopback with token auth, started by
//! `scripts/engines/ray.sh` from the test command) through the built-in `target-ray` plugin:
//! a command job in an environment that logs through the real mlflow client, and cancel of a
//! running job.
//!
//! `ATRIUM_TEST_RAY_ENV` names the env file `ray.sh start DIR` wrote (DIR/env).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atrium_tests::{
    Backend, Server, engine_env, job_log, metric_steps, wait_engine_state, wait_job_state,
    wait_job_states,
};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

fn ray_env() -> BTreeMap<String, String> {
    engine_env("ATRIUM_TEST_RAY_ENV", "ray.sh")
}

fn ray_target(s: &Server) -> Value {
    let env = ray_env();
    let h = s.http();
    let r = h.put(
        &format!("{WS}/secrets/ray-token"),
        json!({ "value": env["RAY_TOKEN"] }),
    );
    assert!(r.status == 201 || r.status == 200, "{}", r.json);
    let (ok, out, err) = s.cli(&[
        "compute",
        "create",
        "ray",
        "--plugin",
        "target-ray",
        "--config",
        &format!("url={}", env["RAY_URL"]),
        "--config",
        "token_secret=ray-token",
        "--secret",
        "ray-token",
        "--allow-private",
        "--cpus",
        "1",
        "--output",
        "json",
    ]);
    assert!(ok, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_command_job_in_an_environment_on_ray_logs_through_mlflow() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let created = ray_target(&s);
    assert_eq!(created["health"], "ok", "{created}");
    assert!(
        created["pools"][0]["capacity"]["cpus"].as_f64().unwrap() >= 1.0,
        "{created}"
    );
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(
        code.join("train.py"),
        "import sys, mlflow\nwith mlflow.start_run():\n    for s in range(3):\n        mlflow.log_metric('loss', 1.0 / (s + 1), step=s)\n    mlflow.log_param('where', 'ray')\n    print('logged from', sys.executable)\n",
    )
    .unwrap();
    let file = dir.path().join("job.toml");
    std::fs::write(
        &file,
        "type = \"command\"\ncompute = \"ray\"\nenvironment = \"atrium-mlflow\"\n[command]\ncommand = \"python train.py\"\n",
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
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (j, seen) = wait_job_states(&h, &id, 300);
    let log = job_log(&h, &id);
    assert_eq!(j["state"], "Completed", "{j}\n{log}");
    assert!(
        seen.iter().any(|s| s == "Preparing" || s == "Running"),
        "{seen:?}"
    );
    assert!(
        log.contains("submitted to compute target 'ray' (target-ray@"),
        "{log}"
    );
    assert!(
        log.contains("preparing the environment atrium-mlflow:1"),
        "{log}"
    );
    assert!(log.contains("logged from "), "the command's output: {log}");
    let log = wait_engine_state(&h, &id, "SUCCEEDED", 30);
    assert!(log.contains("engine: SUCCEEDED"), "{log}");
    assert_eq!(j["handle"], format!("atrium-{id}-1"), "{j}");
    let run = j["run_id"].as_str().unwrap();
    assert_eq!(metric_steps(&h, run, "loss"), vec![0, 1, 2]);
    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(r["params"]["where"], "ray", "{r}");
    assert_eq!(r["status"], "FINISHED", "{r}");
}

#[test]
fn a_running_ray_job_stops_on_cancel() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    ray_target(&s);
    let j = h
        .post(
            &format!("{WS}/jobs"),
            json!({ "type": "command", "compute": "ray", "command": { "command": "echo started; sleep 300" } }),
        )
        .ok();
    let id = j["id"].as_str().unwrap().to_string();
    wait_job_state(&h, &id, "Running", 180);
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
