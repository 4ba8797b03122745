//! Sweeps and AutoML against the real binary: trials as child runs, built-in samplers and
//! stoppers (Wasm components), resume after a restart, cancel, failing samplers, bad specs.

use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, dataset, plugin_wasm};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

fn upload(h: &Http, name: &str, file: &str) {
    let r = h.raw(
        "POST",
        &format!("{WS}/datasets/{name}/versions"),
        Some(dataset(file)),
    );
    assert!(r.status < 300, "{}", r.message());
}

fn board(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/jobs/{id}/trials")).ok()
}

fn wait_until(h: &Http, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let b = board(h, id);
        if pred(&b) {
            return b;
        }
        if Instant::now() > deadline {
            let log = h.get(&format!("{WS}/jobs/{id}/logs")).bytes;
            panic!(
                "sweep {id} never got there: {b}\nlog:\n{}",
                String::from_utf8_lossy(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ended(b: &Value) -> bool {
    matches!(
        b["job"]["state"].as_str(),
        Some("Completed" | "Failed" | "Canceled")
    )
}

fn run(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/runs/{id}")).ok()
}

/// A sweep over the train template on iris (fast trials).
fn iris_sweep(sampler: Value, space: Value, limits: Value, epochs: u64) -> Value {
    json!({
        "type": "sweep",
        "name": "iris-sweep",
        "experiment": "sweeps",
        "sweep": {
            "trial": {
                "type": "train",
                "train": {
                    "dataset": "iris",
                    "target": "target",
                    "task": "classification",
                    "epochs": epochs,
                    "batch_size": "${{search_space.batch}}",
                    "seed": 1,
                    "model": { "hidden": "${{search_space.hidden}}" },
                    "optimizer": { "lr": "${{search_space.lr}}" }
                }
            },
            "search_space": space,
            "objective": { "primary_metric": "val_accuracy", "goal": "maximize" },
            "sampler": sampler,
            "limits": limits,
            "seed": 5
        }
    })
}

fn small_space() -> Value {
    json!({
        "lr": { "kind": "choice", "values": [0.01, 0.05] },
        "hidden": { "kind": "choice", "values": [[8], [16, 8]] },
        "batch": { "kind": "choice", "values": [16] }
    })
}

/// Digits: TPE with median stopping reaches ≥ 0.97 validation accuracy within 30 trials;
/// trials are child runs with their parameters, stopped ones end KILLED with the reason, and
/// the sweep run names the best trial.
#[test]
fn digits_sweep_finds_a_good_model_and_records_every_trial() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "digits", "digits.csv");
    let spec = json!({
        "type": "sweep",
        "name": "digits-tpe",
        "experiment": "digits",
        "sweep": {
            "trial": {
                "type": "train",
                "train": {
                    "dataset": "digits",
                    "target": "target",
                    "task": "classification",
                    "epochs": 20,
                    "seed": 0,
                    "batch_size": "${{search_space.batch}}",
                    "model": { "hidden": "${{search_space.hidden}}" },
                    "optimizer": { "kind": "adam", "lr": "${{search_space.lr}}" }
                }
            },
            "search_space": {
                "lr": { "kind": "loguniform", "low": 3e-4, "high": 3e-2 },
                "hidden": { "kind": "choice", "values": [[32], [64], [128], [128, 64]] },
                "batch": { "kind": "choice", "values": [32, 64, 128] }
            },
            "objective": { "primary_metric": "val_accuracy", "goal": "maximize" },
            "sampler": { "name": "tpe", "options": { "n_startup_trials": 8 } },
            "early_termination": { "policy": "median", "evaluation_interval": 1, "delay_evaluation": 5 },
            "limits": { "max_total_trials": 30, "max_concurrent_trials": 2 },
            "seed": 42
        }
    });
    let job = h.post(&format!("{WS}/jobs"), spec).ok();
    let id = job["id"].as_str().unwrap().to_string();
    let b = wait_until(&h, &id, 600, ended);
    assert_eq!(b["job"]["state"], "Completed", "{b}");
    let trials = b["trials"].as_array().unwrap();
    assert!(trials.len() <= 30 && trials.len() >= 20, "{}", trials.len());
    let best = b["best"]["value"].as_f64().unwrap();
    assert!(best >= 0.97, "best validation accuracy {best}");
    let parent = job["run_id"].as_str().unwrap();
    let stopped: Vec<&Value> = trials
        .iter()
        .filter(|t| t["state"] == "early-terminated")
        .collect();
    assert!(!stopped.is_empty(), "median stopping never fired: {b}");
    for t in trials {
        let r = run(&h, t["run_id"].as_str().unwrap());
        assert_eq!(r["tags"]["mlflow.parentRunId"], parent, "{r}");
        for k in ["lr", "hidden", "batch"] {
            assert!(r["params"][k].is_string(), "param {k} of {r}");
        }
        match t["state"].as_str().unwrap() {
            "completed" => assert_eq!(r["status"], "FINISHED"),
            "early-terminated" => {
                assert_eq!(r["status"], "KILLED");
                assert_eq!(r["tags"]["atrium.sweep.end_reason"], "early-terminated");
                assert!(t["step"].as_u64().unwrap() < 20, "{t}");
            }
            other => panic!("trial {t} ended {other}"),
        }
    }
    let p = run(&h, parent);
    assert_eq!(p["status"], "FINISHED");
    assert_eq!(
        p["tags"]["atrium.sweep.best_trial"],
        b["best"]["trial"].to_string()
    );
    assert_eq!(p["tags"]["atrium.sweep.best_run_id"], b["best"]["run_id"]);
    let best_run = run(&h, b["best"]["run_id"].as_str().unwrap());
    assert_eq!(best_run["tags"]["atrium.sweep.best"], "true");
    // the leaderboard from the CLI
    let (ok, out, err) = s.cli(&["sweep", "show", &id, "--top", "3"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("best trial") && out.contains("val_accuracy"),
        "{out}"
    );
}

/// Grid stops at the grid; a search space the sampler cannot handle is refused at submit.
#[test]
fn grid_stops_at_the_grid_and_refuses_continuous_spaces() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "iris", "iris.csv");
    // submitted as TOML through the CLI, followed to the end
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.toml");
    std::fs::write(
        &path,
        r#"type = "sweep"
name = "iris-grid"
experiment = "sweeps"

[sweep]
sampler = "grid"
objective = { primary_metric = "val_accuracy", goal = "maximize" }
limits = { max_total_trials = 10 }

[sweep.search_space]
lr = { kind = "choice", values = [0.01, 0.05] }
hidden = { kind = "choice", values = [[8], [16, 8]] }
batch = { kind = "choice", values = [16] }

[sweep.trial]
type = "train"
[sweep.trial.train]
dataset = "iris"
target = "target"
task = "classification"
epochs = 5
batch_size = "${{search_space.batch}}"
model = { hidden = "${{search_space.hidden}}" }
optimizer = { lr = "${{search_space.lr}}" }
"#,
    )
    .unwrap();
    let (ok, out, err) = s.cli(&["sweep", "submit", path.to_str().unwrap(), "--follow"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("trial 4 completed") && out.contains("best trial"),
        "{out}"
    );
    let id = err
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .unwrap()
        .to_string();
    let b = wait_until(&h, &id, 300, ended);
    assert_eq!(b["job"]["state"], "Completed", "{b}");
    assert_eq!(
        b["trials"].as_array().unwrap().len(),
        4,
        "2 × 2 × 1 points: {b}"
    );
    assert_eq!(b["exhausted"], true);
    let mut seen: Vec<String> = b["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["params"].to_string())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "every grid point once");

    let mut space = small_space();
    space["lr"] = json!({ "kind": "normal", "mu": 0.01, "sigma": 0.001 });
    let r = h.post(
        &format!("{WS}/jobs"),
        iris_sweep(json!("grid"), space, json!({}), 5),
    );
    assert_eq!(r.status, 400, "{}", r.message());
    assert!(
        r.message().contains("'lr'") && r.message().contains("normal"),
        "{}",
        r.message()
    );
}

/// Bad specs get precise 400s and create nothing.
#[test]
fn bad_sweep_specs_are_refused_precisely() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "iris", "iris.csv");
    let post = |spec: Value| {
        let r = h.post(&format!("{WS}/jobs"), spec);
        assert_eq!(r.status, 400, "{}", r.message());
        r.message().to_string()
    };
    let mut spec = iris_sweep(json!("tpe"), small_space(), json!({}), 5);
    spec["sweep"]["objective"]["primary_metric"] = json!("val_auc");
    let m = post(spec);
    assert!(m.contains("'val_auc'") && m.contains("val_accuracy"), "{m}");
    let mut spec = iris_sweep(json!("tpe"), small_space(), json!({}), 5);
    spec["sweep"]["trial"]["train"]["epochs"] = json!("${{search_space.epochs}}");
    assert!(post(spec).contains("search_space.epochs"));
    assert!(
        post(iris_sweep(json!("annealing"), small_space(), json!({}), 5))
            .contains("unknown sampler")
    );
    let mut spec = iris_sweep(json!("random"), small_space(), json!({}), 5);
    spec["sweep"]["early_termination"] = json!({ "policy": "bandit" });
    assert!(post(spec).contains("slack_factor or slack_amount"));
    let mut space = small_space();
    space["lr"] = json!({ "kind": "choice", "values": [-1.0] });
    let m = post(iris_sweep(json!("random"), space, json!({}), 5));
    assert!(m.contains("optimizer.lr"), "{m}");
    let mut spec = iris_sweep(json!("random"), small_space(), json!({}), 5);
    spec["sweep"]["trial"]["train"]["target"] = json!("colour");
    assert!(post(spec).contains("'colour'"));
    let jobs = h.get(&format!("{WS}/jobs")).ok();
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        0,
        "nothing was queued"
    );
    // the strategies are registered components of the workspace
    let listed = h.get(&format!("{WS}/components")).ok().to_string();
    for name in [
        "sampler-random",
        "sampler-grid",
        "sampler-tpe",
        "stop-bandit",
        "stop-median",
        "stop-truncation",
        "stop-asha",
    ] {
        assert!(listed.contains(name), "{name} missing from {listed}");
    }
}

/// A host restart in the middle resumes the sweep: finished trials keep their runs and values
/// and are not repeated; the interrupted trial runs again.
#[test]
fn a_sweep_resumes_after_a_host_restart() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "iris", "iris.csv");
    let space = json!({
        "lr": { "kind": "loguniform", "low": 1e-3, "high": 1e-1 },
        "hidden": { "kind": "choice", "values": [[8], [16]] },
        "batch": { "kind": "choice", "values": [8, 16] }
    });
    let spec = iris_sweep(json!("tpe"), space, json!({ "max_total_trials": 8 }), 150);
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = wait_until(&h, &id, 300, |b| {
        b["counts"]["completed"].as_u64().unwrap_or(0) >= 2 && b["counts"]["running"] == 1
    });
    s.kill9();
    s.restart();
    let h = s.http();
    let after = wait_until(&h, &id, 600, ended);
    assert_eq!(after["job"]["state"], "Completed", "{after}");
    let trials = after["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 8, "{after}");
    let mut ids: Vec<u64> = trials.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=8).collect::<Vec<_>>(),
        "no trial repeated or skipped"
    );
    for t in before["trials"].as_array().unwrap() {
        if t["state"] == "completed" {
            let now = trials.iter().find(|x| x["id"] == t["id"]).unwrap();
            assert_eq!(now["run_id"], t["run_id"], "finished trials keep their run");
            assert_eq!(now["value"], t["value"]);
        }
    }
    assert!(trials.iter().all(|t| t["state"] == "completed"), "{after}");
    let log = String::from_utf8_lossy(&h.get(&format!("{WS}/jobs/{id}/logs")).bytes).to_string();
    assert!(log.contains("resuming the sweep"), "{log}");
}

/// Canceling a sweep cancels its running trial; a sampler that traps or spins fails the sweep
/// with a clear message and leaves finished trials intact.
#[test]
fn cancel_and_failing_samplers() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "iris", "iris.csv");
    let spec = iris_sweep(
        json!("random"),
        small_space(),
        json!({ "max_total_trials": 4 }),
        100_000,
    );
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = wait_until(&h, &id, 120, |b| {
        b["trials"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["state"] == "running" && t["step"].as_u64().is_some())
        })
    });
    let trial_run = b["trials"][0]["run_id"].as_str().unwrap().to_string();
    h.post(&format!("{WS}/jobs/{id}:cancel"), json!({})).ok();
    let b = wait_until(&h, &id, 60, ended);
    assert_eq!(b["job"]["state"], "Canceled");
    let r = run(&h, &trial_run);
    assert_eq!(r["status"], "KILLED");
    assert_eq!(r["tags"]["atrium.sweep.end_reason"], "canceled");

    for (mode, expect) in [("trap", "crashed"), ("spin", "deadline")] {
        let manifest = "kind = \"sampler\"\nname = \"bad\"\n[limits]\ntimeout_ms = 500\n";
        let r = h.push_component(
            "default",
            "bad-sampler",
            mode,
            plugin_wasm("bad_sampler"),
            manifest,
        );
        assert!(r.status < 300, "{}", r.message());
        let spec = iris_sweep(
            json!({ "component": "bad-sampler", "version": mode, "options": { "mode": mode, "after": 2 } }),
            small_space(),
            json!({ "max_total_trials": 6 }),
            5,
        );
        let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = wait_until(&h, &id, 120, ended);
        assert_eq!(b["job"]["state"], "Failed", "{b}");
        let err = b["job"]["error"].as_str().unwrap();
        assert!(
            err.contains("sampler")
                && err.contains(&format!("bad-sampler@{mode}"))
                && err.contains(expect),
            "{err}"
        );
        assert_eq!(b["counts"]["completed"], 2, "finished trials stay: {b}");
        for t in b["trials"].as_array().unwrap() {
            assert_eq!(run(&h, t["run_id"].as_str().unwrap())["status"], "FINISHED");
        }
    }
}

/// AutoML searches families and hyperparameters, reports a leaderboard and marks the best
/// model (with its artifacts) ready to register; regression optimizes RMSE downwards.
#[test]
fn automl_classification_and_regression() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload(&h, "wine", "wine.csv");
    upload(&h, "diabetes", "diabetes.csv");
    let wine = json!({
        "type": "automl",
        "name": "wine-automl",
        "automl": {
            "task": "classification",
            "dataset": "wine",
            "target": "target",
            "primary_metric": "f1_macro",
            "epochs": 15,
            "limits": { "max_trials": 6, "exit_score": 0.999 },
            "seed": 3
        }
    });
    let id = h.post(&format!("{WS}/jobs"), wine).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = wait_until(&h, &id, 300, ended);
    assert_eq!(b["job"]["state"], "Completed", "{b}");
    assert_eq!(b["primary_metric"], "val_f1_macro");
    assert!(b["best"]["value"].as_f64().unwrap() > 0.85, "{b}");
    let best = b["best"]["run_id"].as_str().unwrap();
    assert_eq!(run(&h, best)["tags"]["atrium.sweep.best"], "true");
    let arts = h
        .get(&format!("{WS}/runs/{best}/artifacts?path=model"))
        .ok();
    assert!(arts.to_string().contains("model.safetensors"), "{arts}");
    let models: Vec<String> = b["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["params"]["model"].to_string())
        .collect();
    assert!(models.len() <= 6, "{models:?}");

    let diabetes = json!({
        "type": "automl",
        "automl": {
            "task": "regression",
            "dataset": "diabetes",
            "target": "target",
            "epochs": 10,
            "allowed_models": ["linear"],
            "sampler": "random",
            "limits": { "max_trials": 3 }
        }
    });
    let id = h.post(&format!("{WS}/jobs"), diabetes).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = wait_until(&h, &id, 300, ended);
    assert_eq!(b["job"]["state"], "Completed", "{b}");
    assert_eq!(b["goal"], "minimize");
    let values: Vec<f64> = b["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["value"].as_f64())
        .collect();
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(
        b["best"]["value"].as_f64().unwrap(),
        min,
        "the lowest RMSE wins"
    );
    assert!(
        b["trials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["params"]["model"] == "linear"),
        "{b}"
    );
    let r = h.post(
        &format!("{WS}/jobs"),
        json!({ "type": "automl", "automl": { "task": "regression", "dataset": "diabetes", "target": "target", "primary_metric": "auc" } }),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("classification"), "{}", r.message());
}

/// A sweep over a command template: each trial runs the script (an MLflow script) on the
/// sweep's code snapshot with its parameters on the command line; the primary metric the script
/// logs is judged as it appears, and its last value is the trial's value.
#[test]
fn command_template_sweeps_run_mlflow_scripts() {
    // the trials run `python` of the sweep's environment: the built-in one with the MLflow client
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("objective.py"),
        r#"import argparse, time
import mlflow
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); p.add_argument("--tag")
a = p.parse_args()
with mlflow.start_run():
    for step in range(1, 7):
        mlflow.log_metric("score", 1.0 - (a.x - 0.3) ** 2 - 0.1 / step, step=step)
        time.sleep(0.3)
"#,
    )
    .unwrap();
    let spec = code.path().join("sweep.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"type: sweep
name: objective
experiment: scripts
environment: atrium-mlflow
sweep:
  trial:
    type: command
    command:
      command: "python objective.py --x ${{{{search_space.x}}}} --tag ${{{{search_space.tag}}}}"
  search_space:
    x: {{ kind: uniform, low: 0.0, high: 1.0 }}
    tag: {{ kind: choice, values: [a, b] }}
  objective: {{ primary_metric: score, goal: maximize }}
  sampler: random
  early_termination: {{ policy: bandit, slack_amount: 0.05, delay_evaluation: 2 }}
  limits: {{ max_total_trials: 4, max_concurrent_trials: 2 }}
  seed: 9
"#
        ),
    )
    .unwrap();
    let (ok, out, err) = s.cli(&[
        "sweep",
        "submit",
        spec.to_str().unwrap(),
        "--code",
        code.path().to_str().unwrap(),
        "--follow",
    ]);
    assert!(ok, "{out}\n{err}");
    let id = err
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .unwrap()
        .to_string();
    let b = board(&h, &id);
    let trials = b["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4, "{b}");
    for t in trials {
        let r = run(&h, t["run_id"].as_str().unwrap());
        let x = r["params"]["x"].as_str().unwrap().parse::<f64>().unwrap();
        let history = h
            .get(&format!(
                "{WS}/runs/{}/metrics/score",
                t["run_id"].as_str().unwrap()
            ))
            .ok();
        let points = history["points"].as_array().unwrap();
        assert!(!points.is_empty(), "{r}");
        match t["state"].as_str().unwrap() {
            "completed" => {
                assert_eq!(points.len(), 6);
                let last = 1.0 - (x - 0.3f64).powi(2) - 0.1 / 6.0;
                assert!((t["value"].as_f64().unwrap() - last).abs() < 1e-9, "{t}");
            }
            "early-terminated" => {
                assert!(points.len() < 6, "stopped before the end: {t}");
                assert_eq!(r["status"], "KILLED");
            }
            other => panic!("trial {t} ended {other}"),
        }
        let arts = h
            .get(&format!(
                "{WS}/runs/{}/artifacts?path=logs",
                t["run_id"].as_str().unwrap()
            ))
            .ok();
        assert!(arts.to_string().contains("trial.log"), "{arts}");
        let log = h
            .get(&format!(
                "{WS}/runs/{}/artifacts/logs/trial.log",
                t["run_id"].as_str().unwrap()
            ))
            .bytes;
        let log = String::from_utf8_lossy(&log);
        assert!(
            log.contains("preparing the environment atrium-mlflow:1"),
            "{log}"
        );
    }
}
