//! Pipelines against the real binary: validation, a diamond in parallel and serialised, the
//! step cache (full hit, one changed scalar, identical bytes as a new dataset version, a deleted
//! output), failure propagation both ways, retries with backoff, conditions, cancel, SIGKILL of
//! the host mid-run, rerun from a step and of the failed steps, nested pipelines, and the
//! prepare → train → register walkthrough (SQLite and PostgreSQL).

use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, dataset};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

fn server() -> Server {
    server_on(Backend::Sqlite)
}

/// A server with two job slots (so that branches can overlap) on SQLite or a fresh PostgreSQL
/// database.
fn server_on(backend: Backend) -> Server {
    Server::start_fresh(backend, &["--job-slots", "2", "--threads-per-slot", "1"])
}

fn publish(h: &Http, spec: Value) -> Value {
    let r = h.post(&format!("{WS}/pipelines"), spec);
    assert_eq!(r.status, 201, "{}", r.json);
    r.json
}

fn submit(h: &Http, pipeline: &str, body: Value) -> String {
    let r = h.post(&format!("{WS}/pipelines/{pipeline}/runs"), body);
    assert_eq!(r.status, 201, "{}", r.json);
    r.json["id"].as_str().unwrap().to_string()
}

fn run_of(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/pipeline-runs/{id}")).ok()
}

/// Polls until the pipeline run ends (or panics with its log).
fn wait_run(h: &Http, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = run_of(h, id);
        if matches!(
            v["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            return v;
        }
        if Instant::now() > deadline {
            let log =
                String::from_utf8_lossy(&h.get(&format!("{WS}/jobs/{id}/logs")).bytes).to_string();
            panic!("pipeline run {id} did not end in {secs} s: {v}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

fn states(run: &Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn out(run: &Value, s: &str, name: &str) -> Value {
    step(run, s)["outputs"][name]["value"].clone()
}

fn job_count(h: &Http) -> usize {
    h.get(&format!("{WS}/jobs?limit=1000")).ok()["jobs"]
        .as_array()
        .unwrap()
        .len()
}

fn job(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/jobs/{id}")).ok()
}

/// (start, end) of a step's job, ms.
fn span(h: &Http, run: &Value, s: &str) -> (i64, i64) {
    let j = job(h, step(run, s)["job"].as_str().unwrap());
    (
        j["started_at"].as_i64().unwrap(),
        j["ended_at"].as_i64().unwrap(),
    )
}

fn diamond() -> Value {
    json!({
        "name": "diamond",
        "inputs": {"n": 3},
        "outputs": {"total": "${{parent.jobs.d.outputs.sum}}"},
        "jobs": {
            "a": {"type": "command", "command": "echo $((${{parent.inputs.n}} * 2)) > $ATRIUM_OUTPUTS/x", "outputs": {"x": {"type": "integer"}}},
            "b": {"type": "command", "inputs": {"v": "${{parent.jobs.a.outputs.x}}"}, "command": "sleep 1; echo $((${{inputs.v}} + 1)) > $ATRIUM_OUTPUTS/y", "outputs": {"y": {"type": "integer"}}},
            "c": {"type": "command", "command": "sleep 1; echo $((${{parent.jobs.a.outputs.x}} + 2)) > $ATRIUM_OUTPUTS/z", "outputs": {"z": {"type": "integer"}}},
            "d": {"type": "command", "command": "echo $((${{parent.jobs.b.outputs.y}} + ${{parent.jobs.c.outputs.z}})) > $ATRIUM_OUTPUTS/sum", "outputs": {"sum": {"type": "number"}}}
        }
    })
}

/// Cycles, unknown references, type mismatches and reserved names are refused at publication,
/// each naming the step and field; the same content publishes as the same version.
#[test]
fn validation_and_versions() {
    let s = server();
    let h = s.http();
    for (spec, needle) in [
        (
            json!({"name": "p", "jobs": {"a": {"type": "command", "command": "echo ${{parent.jobs.b.outputs.o}}", "outputs": {"o": {"type": "string"}}}, "b": {"type": "command", "command": "echo ${{parent.jobs.a.outputs.o}}", "outputs": {"o": {"type": "string"}}}}}),
            "the steps form a cycle",
        ),
        (
            json!({"name": "p", "jobs": {"a": {"type": "command", "command": "echo ${{parent.jobs.zz.outputs.o}}"}}}),
            "step 'a': field command.command: ${{parent.jobs.zz.outputs.o}}: there is no step 'zz'",
        ),
        (
            json!({"name": "p", "jobs": {"a": {"type": "command", "command": "x", "outputs": {"auc": {"type": "number"}}}, "t": {"type": "train", "train": {"dataset": "${{parent.jobs.a.outputs.auc}}", "target": "y", "task": "classification"}}}}),
            "step 't': field train.dataset expects a dataset, and ${{parent.jobs.a.outputs.auc}} is a number",
        ),
        (
            json!({"name": "p", "jobs": {"parent": {"type": "command", "command": "x"}}}),
            "step name 'parent' is reserved",
        ),
        (
            json!({"name": "p", "inputs": {"home": 1}, "jobs": {"a": {"type": "command", "command": "x"}}}),
            "input name 'home' is reserved",
        ),
        (
            json!({"name": "p", "jobs": {"a": {"type": "command", "command": "x", "retry": 2}}}),
            "unknown field `retry`",
        ),
        (
            json!({"name": "p", "jobs": {"a": {"type": "pipeline", "pipeline": "nope@latest"}}}),
            "step 'a': pipeline 'nope@latest': no pipeline named 'nope'",
        ),
    ] {
        let r = h.post(&format!("{WS}/pipelines"), spec);
        assert_eq!(r.status, 400, "{}", r.json);
        assert!(
            r.message().contains(needle),
            "wanted '{needle}' in: {}",
            r.message()
        );
    }
    assert_eq!(
        h.get(&format!("{WS}/pipelines")).ok()["pipelines"],
        json!([])
    );
    let v1 = publish(&h, diamond());
    assert_eq!(
        (v1["reference"].as_str(), v1["created"].as_bool()),
        (Some("diamond:1"), Some(true))
    );
    let again = publish(&h, diamond());
    assert_eq!(
        (again["reference"].as_str(), again["created"].as_bool()),
        (Some("diamond:1"), Some(false))
    );
    let mut changed = diamond();
    changed["inputs"]["n"] = json!(4);
    assert_eq!(publish(&h, changed)["reference"], "diamond:2");
    assert_eq!(
        h.get(&format!("{WS}/pipelines/diamond/versions/latest"))
            .ok()["version"],
        2
    );
    assert_eq!(
        h.get(&format!("{WS}/pipelines/diamond")).ok()["pipelines"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // inputs are checked at submission
    let r = h.post(
        &format!("{WS}/pipelines/diamond:1/runs"),
        json!({"inputs": {"n": "three"}}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.message()
            .contains("input 'n': \"three\" is not a integer"),
        "{}",
        r.message()
    );
    let r = h.post(
        &format!("{WS}/pipelines/diamond:1/runs"),
        json!({"inputs": {"m": 1}}),
    );
    assert!(
        r.message().contains("the pipeline has no input 'm'"),
        "{}",
        r.message()
    );
    assert_eq!(
        h.post(&format!("{WS}/pipelines/diamond:9/runs"), json!({}))
            .status,
        404
    );
    assert_eq!(job_count(&h), 0, "a refused submission leaves no job");
}

/// A→(B, C)→D: B and C overlap in time, D sees both outputs, the steps' runs nest under the
/// pipeline's run; with max_parallel = 1 B and C run one after the other.
#[test]
fn diamond_in_parallel_and_serialised() {
    diamond_on(Backend::Sqlite);
}

/// The same diamond on PostgreSQL.
#[test]
fn diamond_on_postgres() {
    diamond_on(Backend::Postgres);
}

fn diamond_on(backend: Backend) {
    let s = server_on(backend);
    let h = s.http();
    publish(&h, diamond());
    let id = submit(&h, "diamond", json!({}));
    let run = wait_run(&h, &id, 120);
    assert_eq!(run["state"], "Completed", "{run}");
    assert_eq!(out(&run, "a", "x"), 6);
    assert_eq!(out(&run, "b", "y"), 7);
    assert_eq!(out(&run, "c", "z"), 8);
    assert_eq!(out(&run, "d", "sum"), 15.0);
    assert_eq!(run["outputs"]["total"]["value"], 15.0);
    let (b, c) = (span(&h, &run, "b"), span(&h, &run, "c"));
    assert!(b.0 < c.1 && c.0 < b.1, "B {b:?} and C {c:?} should overlap");
    let d = span(&h, &run, "d");
    assert!(d.0 >= b.1 && d.0 >= c.1, "D starts after B and C");
    // tracking: each step's run is nested under the pipeline's run
    let parent = run["run_id"].as_str().unwrap();
    for s in ["a", "b", "c", "d"] {
        let r = h
            .get(&format!(
                "{WS}/runs/{}",
                step(&run, s)["run_id"].as_str().unwrap()
            ))
            .ok();
        assert_eq!(r["parent_run_id"], parent, "{r}");
    }
    let id = submit(
        &h,
        "diamond",
        json!({"inputs": {"n": 5}, "settings": {"max_parallel": 1}}),
    );
    let run = wait_run(&h, &id, 120);
    assert_eq!(run["state"], "Completed", "{run}");
    assert_eq!(run["outputs"]["total"]["value"], 23.0);
    let (b, c) = (span(&h, &run, "b"), span(&h, &run, "c"));
    assert!(
        b.1 <= c.0 || c.1 <= b.0,
        "max_parallel = 1: B {b:?} and C {c:?} must not overlap"
    );
}

/// The cache: a full hit starts no job; one changed scalar reruns exactly that step and its
/// descendants; identical bytes as a new dataset version still hit; a deleted output reruns.
#[test]
fn cache_by_content() {
    let s = server();
    let h = s.http();
    let up = h.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    );
    assert_eq!(up.status, 201, "{}", up.json);
    publish(
        &h,
        json!({
            "name": "cached",
            "inputs": {"data": {"type": "dataset", "default": "iris"}, "k": 2, "m": 10},
            "jobs": {
                "rows": {"type": "command", "inputs": {"csv": "${{parent.inputs.data}}"}, "command": "wc -l < ${{inputs.csv}} > $ATRIUM_OUTPUTS/n; cp ${{inputs.csv}} $ATRIUM_OUTPUTS/copy", "outputs": {"n": {"type": "integer"}, "copy": {"type": "file"}}},
                "times_k": {"type": "command", "command": "echo $((${{parent.jobs.rows.outputs.n}} * ${{parent.inputs.k}})) > $ATRIUM_OUTPUTS/v", "outputs": {"v": {"type": "integer"}}},
                "plus_m": {"type": "command", "command": "echo $((${{parent.jobs.rows.outputs.n}} + ${{parent.inputs.m}})) > $ATRIUM_OUTPUTS/v", "outputs": {"v": {"type": "integer"}}},
                "sum": {"type": "command", "command": "echo $((${{parent.jobs.times_k.outputs.v}} + ${{parent.jobs.plus_m.outputs.v}})) > $ATRIUM_OUTPUTS/s", "outputs": {"s": {"type": "integer"}}}
            }
        }),
    );
    let first = wait_run(&h, &submit(&h, "cached", json!({})), 120);
    assert_eq!(first["state"], "Completed", "{first}");
    assert_eq!(out(&first, "rows", "n"), 151);
    assert_eq!(out(&first, "sum", "s"), 151 * 2 + 161);
    // a full hit: every step Cached, no child job started
    let jobs = job_count(&h);
    let plan = h
        .post(&format!("{WS}/pipelines/cached/plan"), json!({}))
        .ok();
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "cached" && s["key"].is_string()),
        "{plan}"
    );
    let second = wait_run(&h, &submit(&h, "cached", json!({})), 60);
    assert_eq!(second["state"], "Completed");
    assert!(
        states(&second).iter().all(|(_, st)| st == "Cached"),
        "{second}"
    );
    assert_eq!(step(&second, "sum")["reused_from"]["job"], first["id"]);
    assert_eq!(job_count(&h), jobs + 1, "only the pipeline job itself");
    // one changed scalar: that step and its descendants run, the others are Cached
    let third = wait_run(&h, &submit(&h, "cached", json!({"inputs": {"k": 3}})), 120);
    for (s, want) in [
        ("rows", "Cached"),
        ("plus_m", "Cached"),
        ("times_k", "Completed"),
        ("sum", "Completed"),
    ] {
        assert_eq!(step(&third, s)["state"], want, "{s}: {third}");
    }
    assert_eq!(out(&third, "sum", "s"), 151 * 3 + 161);
    // the same bytes uploaded again as iris:2 hit the cache
    let up = h.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    );
    assert_eq!(up.json["version"], 2, "{}", up.json);
    let fourth = wait_run(
        &h,
        &submit(&h, "cached", json!({"inputs": {"data": "iris:2"}})),
        60,
    );
    assert_eq!(fourth["inputs"]["data"]["value"], "iris:2");
    assert!(
        states(&fourth).iter().all(|(_, st)| st == "Cached"),
        "{fourth}"
    );
    // a deleted output forces the step (and what reads it) to run again
    let rows_run = step(&first, "rows")["run_id"].as_str().unwrap().to_string();
    h.delete(&format!("{WS}/runs/{rows_run}/artifacts/outputs/copy"))
        .ok();
    let plan = h
        .post(&format!("{WS}/pipelines/cached/plan"), json!({}))
        .ok();
    assert_eq!(plan["steps"][0]["step"], "rows");
    assert_eq!(plan["steps"][0]["action"], "run", "{plan}");
    let fifth = wait_run(&h, &submit(&h, "cached", json!({})), 120);
    assert_eq!(step(&fifth, "rows")["state"], "Completed", "{fifth}");
    // rows' outputs have the same content, so the steps after it hit again
    assert_eq!(step(&fifth, "sum")["state"], "Cached", "{fifth}");
    // a deleted run takes its step's result with it
    h.delete(&format!(
        "{WS}/runs/{}",
        step(&fifth, "rows")["run_id"].as_str().unwrap()
    ))
    .ok();
    let plan = h
        .post(&format!("{WS}/pipelines/cached/plan"), json!({}))
        .ok();
    assert_eq!(plan["steps"][0]["action"], "run", "{plan}");
    // force_rerun runs everything
    let forced = wait_run(
        &h,
        &submit(&h, "cached", json!({"settings": {"force_rerun": true}})),
        120,
    );
    assert!(
        states(&forced).iter().all(|(_, st)| st == "Completed"),
        "{forced}"
    );
}

fn branches(continue_on_failure: bool) -> Value {
    json!({
        "name": format!("branches-{continue_on_failure}"),
        "settings": {"continue_on_step_failure": continue_on_failure},
        "jobs": {
            "a": {"type": "command", "command": "echo 1 > $ATRIUM_OUTPUTS/x", "outputs": {"x": {"type": "integer"}}},
            "b": {"type": "command", "command": "echo ${{parent.jobs.a.outputs.x}}; exit 3", "outputs": {"y": {"type": "integer"}}},
            "c": {"type": "command", "command": "sleep 3; echo ${{parent.jobs.a.outputs.x}} > $ATRIUM_OUTPUTS/z", "outputs": {"z": {"type": "integer"}}},
            "d": {"type": "command", "command": "echo ${{parent.jobs.b.outputs.y}} ${{parent.jobs.c.outputs.z}}"}
        }
    })
}

/// A failure cancels the running branch and skips the rest by default; with
/// continue_on_step_failure the independent branch finishes. Either way the run fails.
#[test]
fn failure_propagation_both_ways() {
    let s = server();
    let h = s.http();
    publish(&h, branches(false));
    publish(&h, branches(true));
    let stop = wait_run(&h, &submit(&h, "branches-false", json!({})), 120);
    assert_eq!(stop["state"], "Failed");
    assert!(stop["error"].as_str().unwrap().contains("step b"), "{stop}");
    assert_eq!(step(&stop, "a")["state"], "Completed");
    assert_eq!(step(&stop, "b")["state"], "Failed");
    assert!(
        step(&stop, "b")["error"]
            .as_str()
            .unwrap()
            .contains("status 3"),
        "{stop}"
    );
    assert_eq!(step(&stop, "c")["state"], "Canceled", "{stop}");
    assert_eq!(step(&stop, "d")["state"], "Skipped");
    let go_on = wait_run(&h, &submit(&h, "branches-true", json!({})), 120);
    assert_eq!(go_on["state"], "Failed");
    assert_eq!(step(&go_on, "c")["state"], "Completed", "{go_on}");
    assert_eq!(out(&go_on, "c", "z"), 1);
    assert_eq!(step(&go_on, "d")["state"], "Skipped");
    assert!(
        step(&go_on, "d")["error"]
            .as_str()
            .unwrap()
            .contains("upstream step b is Failed"),
        "{go_on}"
    );
}

/// retries: 2 with backoff: two failed attempts, then Completed; the waits grow by the factor.
/// A false `when` skips its step and the run completes. Cancel mid-run stops the running step
/// and never starts the pending one.
#[test]
fn retries_conditions_and_cancel() {
    let s = server();
    let h = s.http();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    publish(
        &h,
        json!({
            "name": "flaky",
            "inputs": {"counter": {"type": "string"}},
            "jobs": {
                "try": {
                    "type": "command",
                    "retries": 2, "retry_backoff_secs": 0.5, "backoff_factor": 2,
                    "command": "n=$(cat ${{parent.inputs.counter}} 2>/dev/null || echo 0); echo $((n + 1)) > ${{parent.inputs.counter}}; [ $n -ge 2 ] && echo $n > $ATRIUM_OUTPUTS/n",
                    "outputs": {"n": {"type": "integer"}}
                },
                "big": {"type": "command", "when": "${{parent.jobs.try.outputs.n}} > 100", "command": "echo never"},
                "after": {"type": "command", "command": "echo ${{parent.jobs.try.outputs.n}}"}
            }
        }),
    );
    let run = wait_run(
        &h,
        &submit(
            &h,
            "flaky",
            json!({"inputs": {"counter": counter.to_str().unwrap()}}),
        ),
        120,
    );
    assert_eq!(run["state"], "Completed", "{run}");
    assert_eq!(step(&run, "try")["attempt"], 3);
    assert_eq!(out(&run, "try", "n"), 2);
    assert_eq!(step(&run, "big")["state"], "Skipped");
    assert!(
        step(&run, "big")["error"]
            .as_str()
            .unwrap()
            .contains("condition is false")
    );
    assert_eq!(step(&run, "after")["state"], "Completed");
    // the backoff: each attempt's job starts at least 0.5 s, then 1 s, after the last ended
    let jobs = h.get(&format!("{WS}/jobs?limit=100")).ok();
    let mut attempts: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["name"] == "flaky.try")
        .collect();
    attempts.sort_by_key(|j| j["created_at"].as_i64());
    assert_eq!(attempts.len(), 3);
    for (i, min) in [(1, 450), (2, 950)] {
        let gap = attempts[i]["created_at"].as_i64().unwrap()
            - attempts[i - 1]["ended_at"].as_i64().unwrap();
        assert!(
            gap >= min,
            "attempt {} started {gap} ms after the previous ended (backoff {min} ms)",
            i + 1
        );
    }
    // cancel mid-run
    publish(
        &h,
        json!({"name": "slow", "jobs": {
            "long": {"type": "command", "command": "sleep 60; echo 1 > $ATRIUM_OUTPUTS/o", "outputs": {"o": {"type": "integer"}}},
            "next": {"type": "command", "command": "echo ${{parent.jobs.long.outputs.o}}"}
        }}),
    );
    let id = submit(&h, "slow", json!({}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while step(&run_of(&h, &id), "long")["state"] != "Running" {
        assert!(Instant::now() < deadline, "the long step never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = h.post(&format!("{WS}/pipeline-runs/{id}/cancel"), json!({}));
    assert_eq!(r.status, 200, "{}", r.json);
    let run = wait_run(&h, &id, 60);
    assert_eq!(run["state"], "Canceled", "{run}");
    assert_eq!(step(&run, "long")["state"], "Canceled");
    assert_eq!(step(&run, "next")["state"], "Canceled");
    assert!(
        step(&run, "next")["job"].is_null(),
        "the pending step never started"
    );
}

/// Rerun of the failed steps (after a failure, with an input override) and from a step: the
/// kept steps are pinned to the original outputs, the others run again.
#[test]
fn rerun_failed_and_from_a_step() {
    let s = server();
    let h = s.http();
    publish(
        &h,
        json!({
            "name": "rerun",
            "inputs": {"fail": false},
            "jobs": {
                "a": {"type": "command", "command": "echo 5 > $ATRIUM_OUTPUTS/x", "outputs": {"x": {"type": "integer"}}},
                "b": {"type": "command", "command": "[ ${{parent.inputs.fail}} = false ] && echo $((${{parent.jobs.a.outputs.x}} + 1)) > $ATRIUM_OUTPUTS/y", "outputs": {"y": {"type": "integer"}}},
                "c": {"type": "command", "command": "echo $((${{parent.jobs.b.outputs.y}} * 2)) > $ATRIUM_OUTPUTS/z", "outputs": {"z": {"type": "integer"}}}
            }
        }),
    );
    let failed = wait_run(
        &h,
        &submit(&h, "rerun", json!({"inputs": {"fail": true}})),
        120,
    );
    assert_eq!(failed["state"], "Failed");
    assert_eq!(step(&failed, "c")["state"], "Skipped");
    let fid = failed["id"].as_str().unwrap();
    let r = h.post(&format!("{WS}/pipeline-runs/{fid}/rerun"), json!({}));
    assert_eq!(r.status, 400, "{}", r.json);
    let r = h.post(
        &format!("{WS}/pipeline-runs/{fid}/rerun"),
        json!({"from": "zz"}),
    );
    assert!(r.message().contains("no step 'zz'"), "{}", r.message());
    let r = h.post(
        &format!("{WS}/pipeline-runs/{fid}/rerun"),
        json!({"failed": true, "inputs": {"fail": false}}),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let again = wait_run(&h, r.json["id"].as_str().unwrap(), 120);
    assert_eq!(again["state"], "Completed", "{again}");
    assert_eq!(again["rerun_of"], fid);
    assert_eq!(step(&again, "a")["state"], "Cached");
    assert_eq!(step(&again, "a")["reused_from"]["job"], fid);
    assert_eq!(step(&again, "b")["state"], "Completed");
    assert_eq!(out(&again, "c", "z"), 12);
    let aid = again["id"].as_str().unwrap();
    let r = h.post(
        &format!("{WS}/pipeline-runs/{aid}/rerun"),
        json!({"from": "b"}),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let from_b = wait_run(&h, r.json["id"].as_str().unwrap(), 120);
    assert_eq!(from_b["state"], "Completed", "{from_b}");
    assert_eq!(step(&from_b, "a")["state"], "Cached");
    assert_eq!(step(&from_b, "b")["state"], "Completed");
    assert_eq!(step(&from_b, "c")["state"], "Completed");
    assert_ne!(step(&from_b, "b")["job"], step(&again, "b")["job"]);
    // a run that has not ended is not rerun
    publish(
        &h,
        json!({"name": "nap", "jobs": {"z": {"type": "command", "command": "sleep 30"}}}),
    );
    let nap = submit(&h, "nap", json!({}));
    let r = h.post(
        &format!("{WS}/pipeline-runs/{nap}/rerun"),
        json!({"failed": true}),
    );
    assert_eq!(r.status, 409, "{}", r.json);
    h.post(&format!("{WS}/pipeline-runs/{nap}/cancel"), json!({}));
}

/// SIGKILL of the host while a step runs: after the restart the run finishes, the steps that
/// had completed are not run again, and no step attempt has two jobs.
#[test]
fn host_killed_mid_run() {
    killed_on(Backend::Sqlite);
}

/// The same on PostgreSQL.
#[test]
fn host_killed_mid_run_postgres() {
    killed_on(Backend::Postgres);
}

fn killed_on(backend: Backend) {
    let mut s = Server::start(backend);
    let h = s.http();
    publish(
        &h,
        json!({"name": "chain", "jobs": {
            "a": {"type": "command", "command": "echo 1 > $ATRIUM_OUTPUTS/x", "outputs": {"x": {"type": "integer"}}},
            "b": {"type": "command", "command": "sleep 4; echo $((${{parent.jobs.a.outputs.x}} + 1)) > $ATRIUM_OUTPUTS/y", "outputs": {"y": {"type": "integer"}}},
            "c": {"type": "command", "command": "echo $((${{parent.jobs.b.outputs.y}} + 1)) > $ATRIUM_OUTPUTS/z", "outputs": {"z": {"type": "integer"}}}
        }}),
    );
    let id = submit(&h, "chain", json!({}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while step(&run_of(&h, &id), "b")["state"] != "Running" {
        assert!(Instant::now() < deadline, "step b never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let a_job = step(&run_of(&h, &id), "a")["job"].clone();
    s.kill9();
    s.restart();
    let h = s.http();
    let run = wait_run(&h, &id, 120);
    assert_eq!(run["state"], "Completed", "{run}");
    assert_eq!(out(&run, "c", "z"), 3);
    assert_eq!(step(&run, "a")["job"], a_job, "a is not run again");
    assert_eq!(
        step(&run, "b")["attempt"],
        1,
        "b's attempt continued as the same job"
    );
    let jobs = h.get(&format!("{WS}/jobs?limit=100")).ok();
    for name in ["chain.a", "chain.b", "chain.c"] {
        let n = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["name"] == name)
            .count();
        assert_eq!(n, 1, "{name} has {n} jobs");
    }
}

/// A published pipeline runs as a step of another; its outputs feed the next step.
#[test]
fn nested_pipeline_step() {
    let s = server();
    let h = s.http();
    publish(
        &h,
        json!({"name": "inner", "inputs": {"k": {"type": "integer"}}, "outputs": {"sq": "${{parent.jobs.sq.outputs.v}}"},
               "jobs": {"sq": {"type": "command", "command": "echo $((${{parent.inputs.k}} * ${{parent.inputs.k}})) > $ATRIUM_OUTPUTS/v", "outputs": {"v": {"type": "integer"}}}}}),
    );
    let r = h.post(&format!("{WS}/pipelines"), json!({"name": "outer", "jobs": {"sub": {"type": "pipeline", "pipeline": "inner@latest", "inputs": {"k": "x"}}}}));
    assert!(
        r.message().contains("expects a integer, got a string"),
        "{}",
        r.message()
    );
    publish(
        &h,
        json!({"name": "outer", "jobs": {
            "sub": {"type": "pipeline", "pipeline": "inner@latest", "inputs": {"k": 7}},
            "use": {"type": "command", "command": "echo $((${{parent.jobs.sub.outputs.sq}} + 1)) > $ATRIUM_OUTPUTS/o", "outputs": {"o": {"type": "integer"}}}
        }}),
    );
    let run = wait_run(&h, &submit(&h, "outer", json!({})), 120);
    assert_eq!(run["state"], "Completed", "{run}");
    assert_eq!(out(&run, "sub", "sq"), 49);
    assert_eq!(out(&run, "use", "o"), 50);
    let inner = run_of(&h, step(&run, "sub")["job"].as_str().unwrap());
    assert_eq!(inner["pipeline"], "inner:1");
    assert_eq!(inner["state"], "Completed");
}

fn walkthrough(backend: Backend) {
    let s = match backend {
        Backend::Sqlite => server(),
        Backend::Postgres => server_on(Backend::Postgres),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prepare.sh"), "#!/bin/sh\n# keeps the rows of the three classes, drops nothing else\ncp \"$ATRIUM_INPUT_RAW\" \"$ATRIUM_OUTPUTS/clean\"\n").unwrap();
    let spec = dir.path().join("retrain.yaml");
    std::fs::write(
        &spec,
        r#"name: retrain
inputs:
  raw: {type: dataset, default: iris}
  min_accuracy: {type: number, default: 0.5}
outputs:
  model: ${{parent.jobs.register.outputs.model}}
jobs:
  prepare:
    type: command
    inputs: {raw: "${{parent.inputs.raw}}"}
    command: sh prepare.sh
    outputs: {clean: {type: dataset, name: iris-clean}}
  train:
    type: train
    train: {dataset: "${{parent.jobs.prepare.outputs.clean}}", target: target, task: classification, epochs: 30}
  register:
    type: register-model
    when: "${{parent.jobs.train.outputs.val_accuracy}} >= ${{parent.inputs.min_accuracy}}"
    register_model: {model: "${{parent.jobs.train.outputs.model}}", name: iris-classifier, alias: champion}
"#,
    )
    .unwrap();
    let h = s.http();
    let up = h.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    );
    assert_eq!(up.status, 201, "{}", up.json);
    let (ok, o, e) = s.cli(&[
        "pipeline",
        "publish",
        spec.to_str().unwrap(),
        "--code",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{o}{e}");
    assert!(o.contains("published retrain:1"), "{o}");
    let (ok, o, e) = s.cli(&["pipeline", "submit", "retrain", "--wait"]);
    assert!(ok, "{o}{e}");
    assert!(
        o.contains("Completed") && o.contains("models:/iris-classifier/1"),
        "{o}"
    );
    let runs = h.get(&format!("{WS}/pipeline-runs")).ok();
    let run = &runs["runs"][0];
    assert_eq!(out(run, "prepare", "clean"), "iris-clean:1");
    assert!(out(run, "train", "val_accuracy").as_f64().unwrap() >= 0.5);
    let v = h
        .get(&format!("{WS}/models/iris-classifier/versions/1"))
        .ok();
    assert_eq!(v["run_id"], step(run, "train")["run_id"], "{v}");
    // the cached rerun: the plan says so, and the run reuses everything but the registration
    let (ok, o, _) = s.cli(&["pipeline", "plan", "retrain"]);
    assert!(ok && o.matches("cached").count() >= 2, "{o}");
    let (ok, o, e) = s.cli(&["pipeline", "submit", "retrain", "--wait"]);
    assert!(ok, "{o}{e}");
    let runs = h.get(&format!("{WS}/pipeline-runs")).ok();
    let again = &runs["runs"][0];
    assert_eq!(step(again, "prepare")["state"], "Cached");
    assert_eq!(step(again, "train")["state"], "Cached");
    assert_eq!(out(again, "register", "model"), "models:/iris-classifier/2");
    // a bar the model does not clear skips the registration
    let (ok, o, e) = s.cli(&[
        "pipeline",
        "submit",
        "retrain",
        "-i",
        "min_accuracy=1.5",
        "--wait",
    ]);
    assert!(ok, "{o}{e}");
    assert!(o.contains("Skipped"), "{o}");
    let (ok, o, _) = s.cli(&["pipeline", "list", "--runs"]);
    assert!(ok && o.contains("retrain:1"), "{o}");
}

/// The README's walkthrough: prepare data → train → register if the metric clears a bar, its
/// cached rerun, and a bar that skips the registration (SQLite).
#[test]
fn prepare_train_register_sqlite() {
    walkthrough(Backend::Sqlite);
}

/// The same on PostgreSQL.
#[test]
fn prepare_train_register_postgres() {
    walkthrough(Backend::Postgres);
}

/// Two identical steps in flight run once: the second run's step waits for the first and
/// ends Cached, reusing its outputs.
#[test]
fn identical_steps_in_flight_run_once() {
    let s = server();
    let h = s.http();
    publish(
        &h,
        json!({"name": "sf", "jobs": {"s": {"type": "command", "command": "sleep 2; echo 7 > $ATRIUM_OUTPUTS/v", "outputs": {"v": {"type": "integer"}}}}}),
    );
    let first = submit(&h, "sf", json!({}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while step(&run_of(&h, &first), "s")["job"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the first run's step never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = submit(&h, "sf", json!({}));
    let (a, b) = (wait_run(&h, &first, 60), wait_run(&h, &second, 60));
    assert_eq!(
        (a["state"].as_str(), b["state"].as_str()),
        (Some("Completed"), Some("Completed"))
    );
    assert_eq!(step(&a, "s")["state"], "Completed");
    assert_eq!(step(&b, "s")["state"], "Cached", "{b}");
    assert_eq!(step(&b, "s")["reused_from"]["job"], first);
    assert_eq!(out(&b, "s", "v"), 7);
    let jobs = h.get(&format!("{WS}/jobs?limit=100")).ok();
    assert_eq!(
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["name"] == "sf.s")
            .count(),
        1
    );
}

/// A changed `cache_version`, `is_deterministic = false` and a changed code snapshot each miss
/// the cache; the same content hits it.
#[test]
fn cache_misses_on_version_determinism_and_code() {
    let s = server();
    let h = s.http();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(code.join("run.sh"), "echo 1 > \"$ATRIUM_OUTPUTS/v\"\n").unwrap();
    let publish_with = |extra: &str| {
        let f = dir.path().join("keyed.yaml");
        std::fs::write(
            &f,
            format!("name: keyed\njobs:\n  s:\n    type: command\n    command: sh run.sh\n    outputs: {{v: {{type: integer}}}}\n{extra}"),
        )
        .unwrap();
        let (ok, o, e) = s.cli(&[
            "pipeline",
            "publish",
            f.to_str().unwrap(),
            "--code",
            code.to_str().unwrap(),
        ]);
        assert!(ok, "{o}{e}");
        o
    };
    let state_of_run = |pipeline: &str| {
        let run = wait_run(&h, &submit(&h, pipeline, json!({})), 60);
        assert_eq!(run["state"], "Completed", "{run}");
        step(&run, "s")["state"].as_str().unwrap().to_string()
    };
    assert!(publish_with("").contains("keyed:1"));
    assert_eq!(state_of_run("keyed:1"), "Completed");
    assert_eq!(state_of_run("keyed:1"), "Cached");
    assert!(publish_with("    cache_version: \"2\"\n").contains("keyed:2"));
    assert_eq!(
        state_of_run("keyed:2"),
        "Completed",
        "a new cache_version misses"
    );
    assert_eq!(state_of_run("keyed:2"), "Cached");
    assert!(publish_with("    is_deterministic: false\n").contains("keyed:3"));
    assert_eq!(state_of_run("keyed:3"), "Completed");
    assert_eq!(
        state_of_run("keyed:3"),
        "Completed",
        "a step that is not deterministic always runs"
    );
    std::fs::write(
        code.join("run.sh"),
        "# the same result, other code\necho 1 > \"$ATRIUM_OUTPUTS/v\"\n",
    )
    .unwrap();
    assert!(
        publish_with("").contains("keyed:4"),
        "other code is other content"
    );
    assert_eq!(
        state_of_run("keyed:4"),
        "Completed",
        "a changed code snapshot misses"
    );
}
