//! Compute targets without an engine: creation is validated (the plugin must be a 0.2 target
//! whose engine answers), jobs naming a target are checked at submission, and a hostile target
//! plugin (one that spins, returns garbage, claims success for jobs that never ran, forgets
//! jobs, traps) ends each job with the reason instead of hanging it or the host.

use atrium_tests::{Backend, Http, Server, job_log, plugin_wasm, upload_iris, wait_job_states};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

const HOSTILE: &str =
    "kind = \"target\"\n[capabilities]\nconfig = [\"mode\"]\n[limits]\ntimeout_ms = 1000\n";

fn iris_job(compute: &str) -> Value {
    json!({
        "type": "train",
        "name": "iris-remote",
        "compute": compute,
        "train": {
            "dataset": "iris:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [8], "activation": "relu" },
            "optimizer": { "kind": "adam", "lr": 0.01 },
            "epochs": 2, "batch_size": 16, "validation_split": 0.2, "seed": 7,
        }
    })
}

fn hostile_target(h: &Http, name: &str, mode: &str) {
    let r = h.put(
        &format!("{WS}/compute/{name}"),
        json!({
            "component": "fx-target-hostile", "version": "1",
            "config": { "mode": mode }, "host": "engine.invalid",
        }),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["health"], "ok");
    assert_eq!(r.json["pools"][0]["name"], "hostile");
}

#[test]
fn compute_targets_are_validated_on_creation() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let put = |name: &str, body: Value| h.put(&format!("{WS}/compute/{name}"), body);
    // the component must exist, be a target, and be built against plugin API 0.2
    let r = put("a", json!({"component": "nope", "host": "x"}));
    assert_eq!(r.status, 404, "{}", r.json);
    let r = put("a", json!({"component": "stop-median", "host": "x"}));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("not a target plugin"), "{}", r.json);
    let manifest =
        std::fs::read_to_string(atrium_tests::root().join("plugins/examples/target/plugin.toml"))
            .unwrap();
    let r = h.push_component(
        "default",
        "old-target",
        "1",
        plugin_wasm("example_target"),
        &manifest,
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let r = put(
        "a",
        json!({"component": "old-target", "version": "1", "host": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("plugin API 0.1.0"), "{}", r.json);
    // names, hosts, unknown fields, missing secrets
    let r = put(
        "local",
        json!({"component": "target-slurm", "config": {"url": "http://127.0.0.1:9"}}),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.message().contains("built-in compute target"),
        "{}",
        r.json
    );
    let r = put("a", json!({"component": "target-slurm"}));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("config url"), "{}", r.json);
    let r = put("a", json!({"component": "target-slurm", "bogus": 1}));
    assert_eq!(r.status, 400, "{}", r.json);
    let r = put(
        "a",
        json!({"component": "target-slurm", "config": {"url": "http://127.0.0.1:9"}, "secrets": ["nope"]}),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    // an engine that does not answer: refused with the reason, nothing stored
    let r = put(
        "a",
        json!({"component": "target-ray", "config": {"url": "http://127.0.0.1:9"}, "allow_private": true}),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("does not work"), "{}", r.json);
    // a private address needs the operator's explicit allow
    let r = put(
        "a",
        json!({"component": "target-ray", "config": {"url": "http://127.0.0.1:9"}}),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("private address"), "{}", r.json);
    let listed = h.get(&format!("{WS}/compute")).ok();
    assert_eq!(listed["compute"].as_array().unwrap().len(), 0, "{listed}");
    // a working one: listed, shown with its pools, deletable
    let r = h.push_component(
        "default",
        "fx-target-hostile",
        "1",
        plugin_wasm("fx_target_hostile"),
        HOSTILE,
    );
    assert_eq!(r.status, 201, "{}", r.json);
    hostile_target(&h, "ok", "liar");
    let r = put(
        "ok",
        json!({"component": "fx-target-hostile", "version": "1", "host": "x"}),
    );
    assert_eq!(r.status, 409, "{}", r.json);
    let shown = h.get(&format!("{WS}/compute/ok")).ok();
    assert_eq!(shown["pools"][0]["capacity"]["cpus"], 4.0, "{shown}");
    assert_eq!(shown["jobs"], 0);
    let listed = h.get(&format!("{WS}/compute")).ok();
    assert_eq!(listed["compute"][0]["name"], "ok", "{listed}");
    // jobs naming targets are checked at submission
    let r = h.post(&format!("{WS}/jobs"), iris_job("elsewhere"));
    assert_eq!(r.status, 404, "{}", r.json);
    let r = h.post(
        &format!("{WS}/jobs"),
        json!({"type": "batch-score", "compute": "ok", "batch_score": {"model": "m:1", "dataset": "d:1"}}),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert_eq!(h.delete(&format!("{WS}/compute/ok")).status, 200);
    assert_eq!(h.get(&format!("{WS}/compute/ok")).status, 404);
}

#[test]
fn a_hostile_target_ends_its_jobs_with_the_reason() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    upload_iris(&h);
    let r = h.push_component(
        "default",
        "fx-target-hostile",
        "1",
        plugin_wasm("fx_target_hostile"),
        HOSTILE,
    );
    assert_eq!(r.status, 201, "{}", r.json);
    for (mode, why) in [
        ("spin", "exceeded its deadline"),
        ("garbage", "unusable job handle"),
        ("liar", "its worker never reported a result"),
        ("forget", "no longer knows the job"),
        ("trap", "crashed"),
    ] {
        hostile_target(&h, mode, mode);
        let j = h.post(&format!("{WS}/jobs"), iris_job(mode)).ok();
        let id = j["id"].as_str().unwrap();
        let (j, _) = wait_job_states(&h, id, 120);
        let log = job_log(&h, id);
        assert_eq!(j["state"], "Failed", "{mode}: {j}\n{log}");
        assert!(
            j["error"].as_str().unwrap().contains(why),
            "{mode}: {j}\n{log}"
        );
        // its run ended too, and the host still serves
        let run = h
            .get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
            .ok();
        assert_eq!(run["status"], "FAILED", "{mode}: {run}");
        assert_eq!(h.get("/health").status, 200);
    }
    // a failed job frees its target: it can be deleted
    assert_eq!(h.delete(&format!("{WS}/compute/liar")).status, 200);
}
