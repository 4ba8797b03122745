//! Replicas: two `atrium serve` on one PostgreSQL, with an S3 default datastore (SeaweedFS),
//! behave as one service. Job leases (a job runs on one replica at a time; a killed replica's
//! jobs are taken over once their leases lapse, sweeps resuming from their saved state),
//! cancel requests made through either replica, log batches retried on the other replica after
//! a kill stored once (`Idempotency-Key`), and secret and traffic changes seen by the other
//! replica within a second (its deployments warm before their first request there).

use std::time::{Duration, Instant};

use atrium_tests::{
    Http, Server, dataset, drop_pg_database, fresh_pg_database, new_run, plugin_wasm, s3_bucket,
    s3_datastore, train_iris,
};
use serde_json::{Value, json};

/// The master key every replica shares (secrets sealed by one are opened by the other).
const MASTER_KEY: &str = "YXRyaXVtLXJlcGxpY2EtdGVzdC1tYXN0ZXIta2V5ISE=";

const WS: &str = "/api/v1/workspaces/default";

/// A fresh PostgreSQL database, dropped at the end.
struct PgDb(String);

impl Drop for PgDb {
    fn drop(&mut self) {
        drop_pg_database(&self.0);
    }
}

/// Two replicas named `a` and `b` on one fresh database, each with its own data directory.
struct Pair {
    servers: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
    token: String,
    db: PgDb,
}

impl Pair {
    /// Two replicas; the default workspace's default datastore is a fresh S3 bucket.
    fn start(slots: &str) -> Self {
        let db = PgDb(fresh_pg_database());
        let mut servers = Vec::new();
        let mut dirs = Vec::new();
        for name in ["a", "b"] {
            let dir = tempfile::tempdir().unwrap();
            servers.push(Server::start_with_env(
                dir.path(),
                Some(db.0.clone()),
                &[
                    "--replica",
                    name,
                    "--job-slots",
                    slots,
                    "--threads-per-slot",
                    "1",
                ],
                &[("ATRIUM_MASTER_KEY", MASTER_KEY)],
            ));
            dirs.push(dir);
        }
        // the bootstrap admin lives in the shared database: the first replica made it
        let token = servers[0].token.clone();
        assert!(!token.is_empty());
        let p = Self {
            servers,
            _dirs: dirs,
            token,
            db,
        };
        let bucket = s3_bucket("replicas");
        s3_datastore(&p.http(0), "s3", &bucket, None, true).ok();
        p
    }

    fn http(&self, i: usize) -> Http {
        self.servers[i].http_as(Some(&self.token))
    }

    fn index_of(name: &str) -> usize {
        match name {
            "a" => 0,
            "b" => 1,
            other => panic!("unknown replica '{other}'"),
        }
    }
}

fn job(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/jobs/{id}")).ok()
}

fn wait_job(h: &Http, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job(h, id);
        if pred(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} never got there: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn board(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/jobs/{id}/trials")).ok()
}

fn log_of(h: &Http, id: &str) -> String {
    String::from_utf8_lossy(&h.get(&format!("{WS}/jobs/{id}/logs")).bytes).to_string()
}

/// A replica killed mid-sweep: the other takes the sweep's lease once it lapses and finishes
/// it from the saved state; finished trials keep their runs and none is run twice.
#[test]
fn a_sweep_survives_its_replica_being_killed() {
    let mut p = Pair::start("1");
    let h0 = p.http(0);
    let r = h0.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    );
    assert!(r.status < 300, "{}", r.message());
    let spec = json!({
        "type": "sweep",
        "name": "iris-sweep",
        "experiment": "sweeps",
        "sweep": {
            "trial": {
                "type": "train",
                "train": {
                    "dataset": "iris", "target": "target", "task": "classification",
                    "epochs": 150, "batch_size": "${{search_space.batch}}", "seed": 1,
                    "model": { "hidden": "${{search_space.hidden}}" },
                    "optimizer": { "lr": "${{search_space.lr}}" }
                }
            },
            "search_space": {
                "lr": { "kind": "loguniform", "low": 1e-3, "high": 1e-1 },
                "hidden": { "kind": "choice", "values": [[8], [16]] },
                "batch": { "kind": "choice", "values": [8, 16] }
            },
            "objective": { "primary_metric": "val_accuracy", "goal": "maximize" },
            "sampler": "tpe",
            "limits": { "max_total_trials": 6 },
            "seed": 5
        }
    });
    // submitted through the second replica: any replica takes any request
    let id = p.http(1).post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    let before = loop {
        let b = board(&h0, &id);
        if b["counts"]["completed"].as_u64().unwrap_or(0) >= 2 && b["counts"]["running"] == 1 {
            break b;
        }
        assert!(Instant::now() < deadline, "the sweep never got going: {b}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let owner = job(&h0, &id)["replica"].as_str().unwrap().to_string();
    let dead = Pair::index_of(&owner);
    let alive = 1 - dead;
    p.servers[dead].kill9();
    let h = p.http(alive);
    let after = wait_job(&h, &id, 600, |j| {
        matches!(
            j["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        )
    });
    assert_eq!(after["state"], "Completed", "{after}\n{}", log_of(&h, &id));
    assert_eq!(after["replica"], ["a", "b"][alive], "{after}");
    let b = board(&h, &id);
    let trials = b["trials"].as_array().unwrap();
    let mut ids: Vec<u64> = trials.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=6).collect::<Vec<_>>(),
        "no trial repeated or skipped"
    );
    assert!(trials.iter().all(|t| t["state"] == "completed"), "{b}");
    for t in before["trials"].as_array().unwrap() {
        if t["state"] == "completed" {
            let now = trials.iter().find(|x| x["id"] == t["id"]).unwrap();
            assert_eq!(now["run_id"], t["run_id"], "finished trials keep their run");
            assert_eq!(now["value"], t["value"]);
        }
    }
    let log = log_of(&h, &id);
    assert!(log.contains("resuming the sweep"), "{log}");
    drop(p.db);
}

/// A command job on a killed replica runs its next attempt on the other one; a cancel made
/// through one replica stops a job running on the other.
#[test]
fn jobs_move_to_a_live_replica_and_cancel_reaches_any() {
    let mut p = Pair::start("1");
    let submit = |h: &Http, spec: Value| -> String {
        h.post(&format!("{WS}/jobs"), spec).ok()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // the cancel first: a long job, canceled through the replica not running it
    let long = submit(
        &p.http(0),
        json!({ "type": "command", "command": { "command": "sleep 300" } }),
    );
    let j = wait_job(&p.http(0), &long, 60, |j| j["state"] == "Running");
    let runs_on = Pair::index_of(j["replica"].as_str().unwrap());
    let other = p.http(1 - runs_on);
    let asked = Instant::now();
    let r = other.post(&format!("{WS}/jobs/{long}:cancel"), json!({}));
    assert!(r.status < 300, "{}", r.message());
    let j = wait_job(&other, &long, 30, |j| j["state"] == "Canceled");
    assert_eq!(j["replica"], ["a", "b"][runs_on], "{j}");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the cancel took {took:?} to reach the replica running the job"
    );
    // the other replica serves the log of the ended job (attached to its run)
    let log = log_of(&other, &long);
    assert!(log.contains("job canceled"), "{log}");
    // then the takeover: a job with a retry left, its replica killed mid-attempt (its first
    // attempt leaves a mark and waits, the second finds the mark and ends)
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("first");
    let script = format!(
        "if [ -e '{m}' ]; then echo second; else touch '{m}'; sleep 300; fi",
        m = mark.display()
    );
    let moved = submit(
        &p.http(0),
        json!({ "type": "command", "retries": 1, "command": { "command": script } }),
    );
    let j = wait_job(&p.http(0), &moved, 60, |j| j["state"] == "Running");
    time_until(30, "the first attempt's mark", || mark.exists());
    let dead = Pair::index_of(j["replica"].as_str().unwrap());
    let alive = 1 - dead;
    p.servers[dead].kill9();
    let h = p.http(alive);
    let j = wait_job(&h, &moved, 120, |j| {
        matches!(
            j["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        )
    });
    assert_eq!(j["attempts"], 2, "{j}");
    assert_eq!(j["replica"], ["a", "b"][alive], "{j}");
    drop(p.db);
}

/// Log batches sent alternately to two replicas with an `Idempotency-Key` each; one replica is
/// killed mid-ingest and the client retries what failed on the other, and resends some batches
/// on purpose: every acknowledged batch is kept, none is stored twice.
#[test]
fn ingest_retried_on_another_replica_is_stored_once() {
    let mut p = Pair::start("1");
    let h0 = p.http(0);
    let run = new_run(&h0, "ingest");
    let urls: Vec<String> = p.servers.iter().map(|s| s.url.clone()).collect();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let send = |url: &str, i: usize| -> bool {
        let metrics: Vec<Value> = (0..10)
            .map(|j| json!({ "key": "loss", "value": (i * 10 + j) as f64, "timestamp": 1000 + i, "step": i * 10 + j }))
            .collect();
        client
            .post(format!("{url}/api/2.0/mlflow/runs/log-batch"))
            .bearer_auth(&p.token)
            .header("Idempotency-Key", format!("batch-{i}"))
            .json(&json!({ "run_id": run, "metrics": metrics }))
            .send()
            .is_ok_and(|r| r.status().is_success())
    };
    let batches = 300;
    let mut dead: Option<usize> = None;
    let mut acked = 0;
    for i in 0..batches {
        if i == 120 {
            p.servers[0].kill9();
            dead = Some(0);
        }
        let first = i % 2;
        let order = [first, 1 - first];
        let mut ok = false;
        for r in order {
            if dead == Some(r) {
                continue;
            }
            if send(&urls[r], i) {
                ok = true;
                break;
            }
        }
        assert!(ok, "batch {i} was refused by every live replica");
        acked += 1;
        // a lost answer: the client sends the same batch again, to the other live replica
        if i % 7 == 0 {
            let again = if dead.is_some() { 1 } else { 1 - first };
            assert!(send(&urls[again], i), "batch {i} resent");
        }
    }
    assert_eq!(acked, batches);
    let h1 = p.http(1);
    let hist = h1
        .get(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss&max_results=25000"
        ))
        .ok();
    let points = hist["metrics"].as_array().unwrap();
    assert_eq!(points.len(), batches * 10, "every batch once");
    let mut steps: Vec<i64> = points.iter().map(|m| m["step"].as_i64().unwrap()).collect();
    steps.sort();
    steps.dedup();
    assert_eq!(steps.len(), batches * 10, "no step twice");
    // a malformed key is refused and stores nothing
    let r = h1
        .request(reqwest::Method::POST, "/api/2.0/mlflow/runs/log-batch")
        .header("Idempotency-Key", "x".repeat(200))
        .json(&json!({ "run_id": run, "metrics": [{ "key": "bad", "value": 1.0, "timestamp": 1, "step": 0 }] }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body = r.text().unwrap();
    assert!(body.contains("Idempotency-Key"), "{body}");
    drop(p.db);
}

/// Score `body` on the endpoint through `url` with the endpoint's key; the answering
/// deployment.
fn score(url: &str, endpoint: &str, key: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/endpoints/{endpoint}/score"))
        .bearer_auth(key)
        .json(&json!({ "inputs": [[5.1, 3.5, 1.4, 0.2]] }))
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap();
    let dep = r
        .headers()
        .get("x-atrium-deployment")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (r.status().as_u16(), dep)
}

/// How long until `pred` holds (polled every 10 ms; panics after `secs`).
fn time_until(secs: u64, what: &str, mut pred: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what} did not happen within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// An endpoint deployed through one replica is warm on the other before its first request
/// there; a traffic change and a secret change made through one replica take effect on the
/// other within a second; each replica labels the series it serves in /metrics.
#[test]
fn changes_through_one_replica_reach_the_other_within_a_second() {
    let p = Pair::start("1");
    let (ha, hb) = (p.http(0), p.http(1));
    let (run, _) = train_iris(&ha);
    let key = ha.put(&format!("{WS}/endpoints/iris"), json!({})).ok()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let model = format!("runs:/{run}/model");
    for d in ["blue", "green"] {
        ha.put(
            &format!("{WS}/endpoints/iris/deployments/{d}"),
            json!({ "model": model }),
        )
        .ok();
    }
    // warm on the other replica without a request there (it loads the model from S3)
    time_until(30, "blue warm on replica b", || {
        hb.get(&format!("{WS}/endpoints/iris")).ok()["state"]["blue"]["state"] == "warm"
    });
    let b = &p.servers[1].url;
    assert_eq!(score(b, "iris", &key), (200, "blue".to_string()));
    // traffic moved through a: b routes to green within a second
    ha.put(
        &format!("{WS}/endpoints/iris/traffic"),
        json!({ "traffic": { "green": 100 } }),
    )
    .ok();
    let took = time_until(5, "the traffic change on replica b", || {
        score(b, "iris", &key).1 == "green"
    });
    assert!(
        took < Duration::from_secs(1),
        "b routed to green after {took:?}"
    );
    // a secret replaced through a: b's datastore uses the new value within a second (a wrong
    // key makes b's uploads fail, the right one makes them work again)
    let r = new_run(&hb, "rotation");
    let mut n = 0;
    let mut upload = || {
        n += 1;
        hb.raw(
            "PUT",
            &format!("{WS}/runs/{r}/artifacts/f{n}.txt"),
            Some(format!("content {n}").into_bytes()),
        )
        .status
    };
    assert!(upload() < 300);
    let right = atrium_tests::s3_env()["S3_SECRET_KEY"].clone();
    ha.put(
        &format!("{WS}/secrets/s3-secret-key"),
        json!({ "value": "wrong" }),
    )
    .ok();
    let took = time_until(5, "the wrong key on replica b", || upload() >= 400);
    assert!(
        took < Duration::from_secs(1),
        "b used the new secret after {took:?}"
    );
    ha.put(
        &format!("{WS}/secrets/s3-secret-key"),
        json!({ "value": right }),
    )
    .ok();
    let took = time_until(5, "the right key on replica b", || upload() < 300);
    assert!(
        took < Duration::from_secs(1),
        "b used the restored secret after {took:?}"
    );
    // a component uploaded through a is used through b (b fetches its bytes)
    let manifest =
        std::fs::read_to_string(atrium_tests::root().join("plugins/examples/storage/plugin.toml"))
            .unwrap();
    let r = ha.push_component(
        "default",
        "my-storage",
        "1",
        plugin_wasm("example_storage"),
        &manifest,
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let r = hb.put(
        &format!("{WS}/datastores/mine"),
        json!({ "component": "my-storage", "version": "1" }),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    // each replica labels what it served
    let a = &p.servers[0].url;
    assert_eq!(score(a, "iris", &key).0, 200);
    for (i, name) in ["a", "b"].iter().enumerate() {
        let text = String::from_utf8(p.http(i).get("/metrics").bytes).unwrap();
        assert!(
            text.contains(&format!(
                "deployment=\"green\",replica=\"{name}\",status=\"200\""
            )),
            "{text}"
        );
    }
    drop(p.db);
}

/// The database away for 5 s under load (every connection cut, new ones refused, as in a
/// restart): requests in flight and meanwhile fail whole with 503 and a `Retry-After` hint,
/// the host reconnects by itself, and every acknowledged batch is stored once (those that
/// failed are retried after the outage with the same `Idempotency-Key`).
#[test]
fn a_database_outage_fails_requests_cleanly_and_the_host_reconnects() {
    let db = PgDb(fresh_pg_database());
    let pg = db.0.clone();
    let (hostport, rest) = {
        let after = pg.split_once('@').map(|(_, r)| r).unwrap_or(&pg);
        let after = after
            .trim_start_matches("postgres://")
            .trim_start_matches("postgresql://");
        let (hp, rest) = after.split_once('/').unwrap();
        (hp.to_string(), rest.to_string())
    };
    let gate = atrium_tests::Gate::new(&hostport);
    let via_gate = pg.replacen(&hostport, &gate.addr, 1);
    assert!(via_gate.ends_with(&rest));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_args(
        dir.path(),
        Some(via_gate),
        &["--job-slots", "1", "--threads-per-slot", "1"],
    );
    let h = s.http();
    let run = new_run(&h, "outage");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let send = |i: usize| -> (u16, Option<String>) {
        let metrics: Vec<Value> = (0..10)
            .map(|j| json!({ "key": "loss", "value": j as f64, "timestamp": 1000 + i, "step": i * 10 + j }))
            .collect();
        let r = client
            .post(format!("{}/api/2.0/mlflow/runs/log-batch", s.url))
            .bearer_auth(&s.token)
            .header("Idempotency-Key", format!("batch-{i}"))
            .json(&json!({ "run_id": run, "metrics": metrics }))
            .send()
            .unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        (r.status().as_u16(), retry)
    };
    let batches = 120;
    let mut failed = Vec::new();
    let mut outage: Option<Instant> = None;
    for i in 0..batches {
        if i == 40 {
            gate.shut();
            outage = Some(Instant::now());
        }
        if outage.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            gate.open();
            outage = None;
        }
        let (status, retry) = send(i);
        match status {
            200 => {}
            503 => {
                assert_eq!(retry.as_deref(), Some("1"), "a 503 says when to retry");
                failed.push(i);
            }
            other => panic!("batch {i}: status {other}"),
        }
        if outage.is_some() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(!failed.is_empty(), "the outage failed no request");
    gate.open();
    // the host is back by itself: the failed batches, retried, are stored
    for i in &failed {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match send(*i).0 {
                200 => break,
                503 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                other => panic!("batch {i} retried: status {other}"),
            }
        }
    }
    let hist = h
        .get(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss&max_results=25000"
        ))
        .ok();
    let mut steps: Vec<i64> = hist["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(
        steps.len(),
        batches * 10,
        "every batch once, none half-written"
    );
    steps.sort();
    steps.dedup();
    assert_eq!(steps.len(), batches * 10);
    drop(db);
}

/// Garbage collection on one replica spares blobs another replica is making visible (marked
/// pending before they appear, for an hour at most): a blob uploaded through b whose run is
/// purged at once is left alone by a's GC and freed by b's, which holds its uploads off itself.
#[test]
fn gc_on_one_replica_spares_blobs_another_is_uploading() {
    let p = Pair::start("1");
    let (ha, hb) = (p.http(0), p.http(1));
    let run = new_run(&hb, "gc");
    let r = hb.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/blob.bin"),
        Some(b"bytes b is making visible".to_vec()),
    );
    assert!(r.status < 300, "{}", r.json);
    hb.post("/api/2.0/mlflow/runs/delete", json!({ "run_id": run }))
        .ok();
    let gc_a = ha.post("/api/v1/gc", json!({})).ok();
    assert_eq!(gc_a["runs_purged"], 1, "{gc_a}");
    assert_eq!(
        gc_a["blobs_deleted"], 0,
        "a spares b's pending blob: {gc_a}"
    );
    let gc_b = hb.post("/api/v1/gc", json!({})).ok();
    assert_eq!(gc_b["blobs_deleted"], 1, "b frees its own: {gc_b}");
    drop(p.db);
}

/// The real mlflow client logging through a load balancer in front of two replicas, one
/// killed with SIGKILL mid-ingest: the client's own retries land on the other replica, and
/// every batch it logged is stored exactly once (on PostgreSQL a batch without a key is keyed
/// by its content).
#[test]
fn the_mlflow_client_logs_through_a_replica_kill() {
    let mut p = Pair::start("1");
    let lb = atrium_tests::Balancer::new(
        p.servers
            .iter()
            .map(|s| {
                s.url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect(),
    );
    let batches = 400;
    let script = format!(
        r#"
import sys
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric
c = MlflowClient()
exp = c.create_experiment("through-a-kill")
run = c.create_run(exp).info.run_id
print("run", run, flush=True)
for b in range({batches}):
    c.log_batch(run, metrics=[Metric("loss", float(b * 10 + j), 1000 + b, b * 10 + j) for j in range(10)])
    if b == {half}:
        print("half", flush=True)
        sys.stdin.readline()
print("done", flush=True)
"#,
        half = batches / 3
    );
    let mut child = std::process::Command::new(atrium_tests::python())
        .arg("-c")
        .arg(script)
        .env("MLFLOW_TRACKING_URI", format!("http://{}", lb.addr))
        .env("MLFLOW_TRACKING_TOKEN", &p.token)
        .env("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, Write};
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let Some(run) = line.trim().strip_prefix("run ").map(str::to_string) else {
        let _ = child.wait();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("the client printed {line:?}:\n{err}");
    };
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "half");
    // the client goes on logging while one replica dies
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    p.servers[0].kill9();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success() && rest.contains("done"), "{rest}\n{err}");
    let hist = p
        .http(1)
        .get(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss&max_results=25000"
        ))
        .ok();
    let mut steps: Vec<i64> = hist["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps.len(), batches * 10, "every batch once");
    steps.sort();
    steps.dedup();
    assert_eq!(steps.len(), batches * 10, "no step twice");
    drop(p.db);
}
