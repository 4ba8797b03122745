//! The native tracking API end to end, against SQLite and against PostgreSQL.

use atrium_tests::{Backend, Http, Server, json};
use serde_json::Value;

/// Defines one test per backend for a scenario.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(atrium_tests::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(atrium_tests::Backend::Postgres) } )*
        }
    };
}

both_backends!(
    workspaces,
    runs_params_metrics_tags,
    search_filters_order_and_pages,
    artifacts_and_gc,
    bad_input,
    concurrent_writes_are_isolated,
);

const WS: &str = "/api/v1/workspaces/default";

fn create_run(h: &Http, ws: &str, exp: i64, name: &str) -> String {
    let r = h
        .post(
            &format!("{ws}/runs"),
            json!({ "experiment_id": exp, "name": name }),
        )
        .ok();
    r["id"].as_str().unwrap().to_string()
}

fn workspaces(b: Backend) {
    let s = Server::start(b);
    let h = s.http();
    let list = h.get("/api/v1/workspaces").ok();
    assert_eq!(list["workspaces"][0]["name"], "default");
    let r = h.put(
        "/api/v1/workspaces/team-a",
        json!({ "description": "vision" }),
    );
    assert_eq!(r.status, 201);
    let r = h.put(
        "/api/v1/workspaces/team-a",
        json!({ "description": "vision team" }),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json["description"], "vision team");
    let r = h.put("/api/v1/workspaces/Bad_Name", json!({}));
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(r.message().contains("Bad_Name"));
    assert_eq!(h.get("/api/v1/workspaces/team-a").ok()["name"], "team-a");
    let r = h.get("/api/v1/workspaces/nope");
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    // every workspace starts with the Default experiment (id 0)
    let exps = h.get("/api/v1/workspaces/team-a/experiments").ok();
    assert_eq!(exps["experiments"][0]["name"], "Default");
    assert_eq!(exps["experiments"][0]["id"], 0);
    // data in one workspace is invisible from another
    let run = create_run(&h, "/api/v1/workspaces/team-a", 0, "r");
    assert_eq!(h.get(&format!("{WS}/runs/{run}")).status, 404);
    assert_eq!(
        h.get(&format!("/api/v1/workspaces/team-a/runs/{run}"))
            .status,
        200
    );
    let r = h.delete("/api/v1/workspaces/default");
    assert_eq!(r.status, 400);
    h.delete("/api/v1/workspaces/team-a").ok();
    assert_eq!(h.get("/api/v1/workspaces/team-a").status, 404);
    assert_eq!(
        h.get(&format!("/api/v1/workspaces/team-a/runs/{run}"))
            .status,
        404
    );
    // the name can be reused and starts empty
    h.put("/api/v1/workspaces/team-a", json!({})).ok();
    let runs = h
        .post("/api/v1/workspaces/team-a/runs:search", json!({}))
        .ok();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);
}

fn runs_params_metrics_tags(b: Backend) {
    let s = Server::start(b);
    let h = s.http();
    let exp = h.post(
        &format!("{WS}/experiments"),
        json!({ "name": "iris", "tags": { "team": "a" } }),
    );
    assert_eq!(exp.status, 201);
    let exp_id = exp.json["id"].as_i64().unwrap();
    assert_eq!(exp_id, 1);
    let dup = h.post(&format!("{WS}/experiments"), json!({ "name": "iris" }));
    assert_eq!((dup.status, dup.code()), (409, "RESOURCE_ALREADY_EXISTS"));

    let run = create_run(&h, WS, exp_id, "first");
    let log = format!("{WS}/runs/{run}/log");
    let metrics: Vec<Value> =
        (0..100).map(|i| json!({ "key": "loss", "value": 1.0 / (i as f64 + 1.0), "step": i, "timestamp": 1000 + i })).collect();
    h.post(&log, json!({ "metrics": metrics, "params": { "lr": "0.1", "opt": "adam" }, "tags": { "t": "1" } })).ok();
    // same param value again: fine; a different one: refused, and nothing of that batch is written
    h.post(&log, json!({ "params": { "lr": "0.1" } })).ok();
    let r = h.post(&log, json!({ "metrics": [{ "key": "ghost", "value": 1 }], "params": { "lr": "0.2" }, "tags": { "t": "ghost" } }));
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(r.message().contains("write-once"), "{}", r.message());
    h.post(&log, json!({ "tags": { "t": "2" } })).ok();

    let got = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(got["params"], json!({ "lr": "0.1", "opt": "adam" }));
    assert_eq!(got["tags"]["t"], "2");
    assert_eq!(got["tags"]["mlflow.runName"], "first");
    assert_eq!(got["metrics"]["loss"]["step"], 99);
    assert!(got["metrics"].get("ghost").is_none());
    assert_eq!(got["status"], "RUNNING");

    // doubles round-trip exactly
    h.post(&log, json!({ "metrics": [{ "key": "exact", "value": 0.1 + 0.2 }, { "key": "tiny", "value": 1e-300 }] })).ok();
    let got2 = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(got2["metrics"]["exact"]["value"].as_f64(), Some(0.1 + 0.2));
    assert_eq!(got2["metrics"]["tiny"]["value"].as_f64(), Some(1e-300));
    // an older step logged later does not become the latest value
    h.post(
        &log,
        json!({ "metrics": [{ "key": "loss", "value": 42.0, "step": 3 }] }),
    )
    .ok();
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}")).ok()["metrics"]["loss"]["step"],
        99
    );

    let hist = h.get(&format!("{WS}/runs/{run}/metrics/loss")).ok();
    assert_eq!(hist["total_points"], 101);
    let down = h
        .get(&format!("{WS}/runs/{run}/metrics/loss?max_points=10"))
        .ok();
    let pts = down["points"].as_array().unwrap();
    assert_eq!(pts.len(), 10);
    assert_eq!(pts[0]["step"], 0);
    assert_eq!(pts[9]["step"], 99);

    h.delete(&format!("{WS}/runs/{run}/tags/t")).ok();
    assert!(
        h.get(&format!("{WS}/runs/{run}")).ok()["tags"]
            .get("t")
            .is_none()
    );

    let done = h
        .patch(&format!("{WS}/runs/{run}"), json!({ "status": "FINISHED" }))
        .ok();
    assert_eq!(done["status"], "FINISHED");
    assert!(done["end_time"].as_i64().is_some());

    // soft delete and restore; a deleted run refuses writes
    h.delete(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}")).ok()["lifecycle_stage"],
        "deleted"
    );
    let r = h.post(&log, json!({ "tags": { "x": "y" } }));
    assert_eq!((r.status, r.code()), (409, "INVALID_STATE"));
    let restored = h.post(&format!("{WS}/runs/{run}:restore"), json!({})).ok();
    assert_eq!(restored["lifecycle_stage"], "active");

    // nested runs
    let child = h
        .post(
            &format!("{WS}/runs"),
            json!({ "experiment_id": exp_id, "parent_run_id": run }),
        )
        .ok();
    assert_eq!(child["parent_run_id"], run.as_str());
    assert_eq!(child["tags"]["mlflow.parentRunId"], run.as_str());
    let r = h.post(
        &format!("{WS}/runs"),
        json!({ "experiment_id": exp_id, "parent_run_id": "f".repeat(32) }),
    );
    assert_eq!(r.status, 404);

    // experiment rename, tags, delete (runs follow) and restore
    let e = h
        .patch(
            &format!("{WS}/experiments/{exp_id}"),
            json!({ "name": "iris-v2", "tags": { "k": "v" } }),
        )
        .ok();
    assert_eq!(
        (e["name"].as_str(), e["tags"]["k"].as_str()),
        (Some("iris-v2"), Some("v"))
    );
    h.delete(&format!("{WS}/experiments/{exp_id}")).ok();
    let runs = h
        .post(
            &format!("{WS}/runs:search"),
            json!({ "experiment_ids": [exp_id] }),
        )
        .ok();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);
    h.post(&format!("{WS}/experiments/{exp_id}:restore"), json!({}))
        .ok();
    let runs = h
        .post(
            &format!("{WS}/runs:search"),
            json!({ "experiment_ids": [exp_id] }),
        )
        .ok();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
}

fn search_filters_order_and_pages(b: Backend) {
    let s = Server::start(b);
    let h = s.http();
    let exp = h
        .post(&format!("{WS}/experiments"), json!({ "name": "sweep" }))
        .ok()["id"]
        .as_i64()
        .unwrap();
    let opts = ["adam", "sgd", "rmsprop"];
    let runs: Vec<Value> = (0..300)
        .map(|i| {
            json!({
                "experiment_id": exp,
                "name": format!("run-{i:03}"),
                "start_time": 1_700_000_000_000i64 + i,
                "params": { "opt": opts[i as usize % 3], "seed": i.to_string() },
                "metrics": [{ "key": "acc", "value": i as f64 / 300.0, "step": 0 }],
                "tags": { "family": if i % 2 == 0 { "MLP" } else { "linear" } },
            })
        })
        .collect();
    let r = h.post(&format!("{WS}/runs:bulk"), json!({ "runs": runs }));
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["run_ids"].as_array().unwrap().len(), 300);

    let search = |filter: &str, order: Value| -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({ "experiment_ids": [exp], "filter": filter, "order_by": order, "max_results": 70 });
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let page = h.post(&format!("{WS}/runs:search"), body).ok();
            out.extend(page["runs"].as_array().unwrap().iter().cloned());
            match page["next_page_token"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        out
    };
    let acc = |r: &Value| r["metrics"]["acc"]["value"].as_f64().unwrap();
    let expected = |pred: &dyn Fn(usize) -> bool| (0..300).filter(|&i| pred(i)).count();

    let all = search("", json!([]));
    assert_eq!(all.len(), 300);
    // default order: newest first
    assert_eq!(all[0]["name"], "run-299");
    let mut ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300, "pages overlap or skip");

    let f = "metrics.acc > 0.9 and (params.opt = 'adam' or params.opt = 'sgd')";
    let got = search(f, json!(["metrics.acc DESC"]));
    assert_eq!(
        got.len(),
        expected(&|i| i as f64 / 300.0 > 0.9 && i % 3 != 2)
    );
    assert!(got.windows(2).all(|w| acc(&w[0]) >= acc(&w[1])));
    assert!(got.iter().all(|r| r["params"]["opt"] != "rmsprop"));

    // ordering by a metric pages through runs with it, then runs without it
    let extra: Vec<Value> = (0..5)
        .map(|i| json!({ "experiment_id": exp, "name": format!("no-acc-{i}"), "params": { "opt": "adam" } }))
        .collect();
    h.post(&format!("{WS}/runs:bulk"), json!({ "runs": extra }))
        .ok();
    let by_acc = search("", json!(["metrics.acc DESC"]));
    assert_eq!(by_acc.len(), 305);
    assert!(by_acc[..300].windows(2).all(|w| acc(&w[0]) >= acc(&w[1])));
    assert!(
        by_acc[300..]
            .iter()
            .all(|r| r["metrics"].get("acc").is_none())
    );
    let mut ids: Vec<&str> = by_acc.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 305);
    let asc = search("params.opt = 'adam'", json!(["metrics.acc ASC"]));
    assert_eq!(asc.len(), 105);
    assert!(asc[..100].windows(2).all(|w| acc(&w[0]) <= acc(&w[1])));
    assert_eq!(asc[104]["metrics"].get("acc"), None);
    // a page that starts past every run with the metric
    let body = json!({ "experiment_ids": [exp], "order_by": ["metrics.acc DESC"], "max_results": 3, "page_token": paging_token(301) });
    let page = h.post(&format!("{WS}/runs:search"), body).ok();
    let names: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| n.starts_with("no-acc-")), "{names:?}");

    let got = search(
        "params.opt = 'rmsprop' or metrics.acc < 0.01",
        json!(["metrics.acc ASC"]),
    );
    assert_eq!(
        got.len(),
        expected(&|i| i % 3 == 2 || (i as f64 / 300.0) < 0.01)
    );
    assert!(got.windows(2).all(|w| acc(&w[0]) <= acc(&w[1])));

    assert_eq!(search("tags.family LIKE 'ML%'", json!([])).len(), 150);
    assert_eq!(
        search("tags.family LIKE 'ml%'", json!([])).len(),
        0,
        "LIKE is case-sensitive"
    );
    assert_eq!(search("tags.family ILIKE 'ml%'", json!([])).len(), 150);
    assert_eq!(search("params.seed IN ('1', '2', '3')", json!([])).len(), 3);
    assert_eq!(search("params.missing IS NULL", json!([])).len(), 305);
    assert_eq!(
        search(
            "attributes.status = 'FINISHED' and attributes.run_name = 'run-007'",
            json!([])
        )
        .len(),
        1
    );
    assert_eq!(
        search("tags.mlflow.runName = 'run-008'", json!([])).len(),
        1
    );
    let by_name = search("", json!(["attributes.run_name ASC"]));
    assert_eq!(
        (by_name[0]["name"].as_str(), by_name[5]["name"].as_str()),
        (Some("no-acc-0"), Some("run-000"))
    );
    let by_param = search("params.opt = 'sgd'", json!(["params.seed DESC"]));
    assert_eq!(by_param[0]["params"]["seed"], "97"); // text order
    // the GET form with query parameters
    let r = h.get(&format!(
        "{WS}/runs?experiment_id={exp}&filter=metrics.acc%20%3E%3D%200.99&order_by=metrics.acc%20DESC"
    ));
    assert_eq!(r.ok()["runs"].as_array().unwrap().len(), 3);

    // errors name the position
    let r = h.post(
        &format!("{WS}/runs:search"),
        json!({ "filter": "metrics.acc > 0.9 and (params.opt = 'adam'" }),
    );
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(
        r.message().contains("position") && r.message().contains("')'"),
        "{}",
        r.message()
    );
    let r = h.post(
        &format!("{WS}/runs:search"),
        json!({ "filter": "metrics.acc >> 1" }),
    );
    assert!(r.message().contains("position 13"), "{}", r.message());
    let r = h.post(
        &format!("{WS}/runs:search"),
        json!({ "page_token": "garbage" }),
    );
    assert_eq!(r.status, 400);
    let r = h.post(
        &format!("{WS}/runs:search"),
        json!({ "order_by": ["metrics.acc sideways"] }),
    );
    assert_eq!(r.status, 400);
}

/// The page token for an offset, as the server encodes it.
fn paging_token(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"offset\":{offset}}}"))
}

fn blob_files(s: &Server) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        let mut n = 0;
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    n += walk(&path);
                } else if path.components().any(|c| c.as_os_str() == "sha256") {
                    n += 1;
                }
            }
        }
        n
    }
    walk(&s.data_dir.join("datastores"))
}

fn artifacts_and_gc(b: Backend) {
    let s = Server::start(b);
    let h = s.http();
    let r1 = create_run(&h, WS, 0, "a");
    let r2 = create_run(&h, WS, 0, "b");
    let payload = b"weights \x00\x01\x02 and more".to_vec();
    let up = h.raw(
        "PUT",
        &format!("{WS}/runs/{r1}/artifacts/model/weights.bin"),
        Some(payload.clone()),
    );
    assert_eq!(up.status, 201, "{}", up.json);
    let digest = up.json["digest"].as_str().unwrap().to_string();
    h.raw(
        "PUT",
        &format!("{WS}/runs/{r1}/artifacts/model/spec.json"),
        Some(b"{}".to_vec()),
    )
    .ok();
    h.raw(
        "PUT",
        &format!("{WS}/runs/{r1}/artifacts/readme.txt"),
        Some(b"hi".to_vec()),
    )
    .ok();
    // identical content in another run is stored once
    let up2 = h
        .raw(
            "PUT",
            &format!("{WS}/runs/{r2}/artifacts/copy.bin"),
            Some(payload.clone()),
        )
        .ok();
    assert_eq!(up2["digest"], digest.as_str());
    assert_eq!(blob_files(&s), 3);

    let root = h.get(&format!("{WS}/runs/{r1}/artifacts")).ok();
    let names: Vec<(&str, bool)> = root["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["is_dir"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, vec![("model", true), ("readme.txt", false)]);
    let sub = h.get(&format!("{WS}/runs/{r1}/artifacts?path=model")).ok();
    assert_eq!(sub["files"].as_array().unwrap().len(), 2);
    let got = h.get(&format!("{WS}/runs/{r1}/artifacts/model/weights.bin"));
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, payload);

    // a file cannot turn into a directory and back; traversal is refused
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{r1}/artifacts/readme.txt/x"),
        Some(b"x".to_vec()),
    );
    assert_eq!(r.status, 409);
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{r1}/artifacts/model"),
        Some(b"x".to_vec()),
    );
    assert_eq!(r.status, 409);
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{r1}/artifacts/a/..%2F..%2Fetc"),
        Some(b"x".to_vec()),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert_eq!(
        h.get(&format!("{WS}/runs/{r1}/artifacts/nope.txt")).status,
        404
    );

    // deleting a run keeps its blobs until gc; gc frees only what nothing references
    h.delete(&format!("{WS}/runs/{r1}")).ok();
    assert_eq!(blob_files(&s), 3);
    let gc = h.post("/api/v1/gc", json!({})).ok();
    assert_eq!(gc["runs_purged"], 1);
    assert_eq!(gc["blobs_deleted"], 2, "{gc}");
    assert_eq!(blob_files(&s), 1);
    assert_eq!(
        h.get(&format!("{WS}/runs/{r2}/artifacts/copy.bin")).bytes,
        payload
    );
    assert_eq!(h.get(&format!("{WS}/runs/{r1}")).status, 404);
    // deleting an artifact, then gc, frees the last blob
    h.delete(&format!("{WS}/runs/{r2}/artifacts/copy.bin")).ok();
    let gc = h.post("/api/v1/gc", json!({})).ok();
    assert_eq!(
        (gc["runs_purged"].as_i64(), gc["blobs_deleted"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(blob_files(&s), 0);
}

fn bad_input(b: Backend) {
    let s = Server::start(b);
    let h = s.http();
    let run = create_run(&h, WS, 0, "r");
    let log = format!("{WS}/runs/{run}/log");

    let r = h.raw("POST", &log, Some(b"{\"metrics\": [".to_vec()));
    assert_eq!((r.status, r.code()), (400, "MALFORMED_REQUEST"));
    assert!(r.message().contains("line 1"), "{}", r.message());
    let r = h.post(&log, json!({ "metrics": [{ "key": "a", "value": "abc" }] }));
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    let r = h.post(
        &log,
        json!({ "metrics": [{ "key": "bad;key", "value": 1 }] }),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("bad;key"));

    let r = h.get(&format!("{WS}/runs/{}", "0".repeat(32)));
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    let r = h.get(&format!("{WS}/runs/not-a-run"));
    assert_eq!(r.status, 404);
    let r = h.get(&format!("{WS}/experiments/999"));
    assert_eq!(r.status, 404);
    let r = h.get("/api/v1/nothing-here");
    assert_eq!((r.status, r.code()), (404, "ENDPOINT_NOT_FOUND"));

    // MLflow log-batch limits, all or nothing, in MLflow's error shape
    let mlflow = "/api/2.0/mlflow/runs/log-batch";
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({ "key": "m", "value": i, "timestamp": 0, "step": i }))
        .collect();
    let r = h.post(mlflow, json!({ "run_id": run, "metrics": too_many }));
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(r.message().contains("1000"), "{}", r.message());
    let params: Vec<Value> = (0..101)
        .map(|i| json!({ "key": format!("p{i}"), "value": "v" }))
        .collect();
    let r = h.post(mlflow, json!({ "run_id": run, "params": params }));
    assert_eq!(r.status, 400);
    // each value is within its own limit, but together they exceed 1 MB
    let tags: Vec<Value> = (0..100)
        .map(|i| json!({ "key": format!("t{i}"), "value": "x".repeat(8000) }))
        .collect();
    let params: Vec<Value> = (0..100)
        .map(|i| json!({ "key": format!("p{i}"), "value": "y".repeat(3000) }))
        .collect();
    let r = h.post(
        mlflow,
        json!({ "run_id": run, "tags": tags, "params": params }),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("bytes"), "{}", r.message());
    let got = h.get(&format!("{WS}/runs/{run}")).ok();
    assert!(got["metrics"].as_object().unwrap().is_empty());
    assert!(got["params"].as_object().unwrap().is_empty());
    let r = h.post(mlflow, json!({ "run_id": "f".repeat(32), "metrics": [{ "key": "a", "value": 1, "timestamp": 0 }] }));
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    let r = h.post(
        "/api/2.0/mlflow/experiments/create",
        json!({ "name": "Default" }),
    );
    assert_eq!((r.status, r.code()), (400, "RESOURCE_ALREADY_EXISTS"));
    let r = h.raw(
        "POST",
        "/api/2.0/mlflow/runs/create",
        Some(b"not json".to_vec()),
    );
    assert_eq!((r.status, r.code()), (400, "MALFORMED_REQUEST"));
    let r = h.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=missing");
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    let r = h.get("/ws/no-such-ws/api/2.0/mlflow/experiments/get?experiment_id=0");
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    assert!(r.message().contains("no-such-ws"));
}

/// Many clients at once (their writes share group commits on SQLite): every request gets its own
/// verdict, rejected ones write nothing, accepted ones are all there.
fn concurrent_writes_are_isolated(b: Backend) {
    let s = Server::start(b);
    let h = s.http();
    let good = create_run(&h, WS, 0, "good");
    let contested = create_run(&h, WS, 0, "contested");
    let gone = create_run(&h, WS, 0, "gone");
    h.delete(&format!("{WS}/runs/{gone}")).ok();
    let dead_exp = h
        .post(&format!("{WS}/experiments"), json!({ "name": "dead" }))
        .ok()["id"]
        .as_i64()
        .unwrap();
    h.delete(&format!("{WS}/experiments/{dead_exp}")).ok();
    let base = s.url.clone();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (base, good, contested, gone) = (base.clone(), good.clone(), contested.clone(), gone.clone());
            std::thread::spawn(move || {
                let h = Http::new(&base);
                let mut verdicts = Vec::new();
                for i in 0..40 {
                    let (kind, r) = match i % 5 {
                        0 => ("good", h.post(&format!("{WS}/runs/{good}/log"), json!({ "metrics": [{ "key": "m", "value": t, "step": i }], "tags": { format!("t{t}"): i.to_string() } }))),
                        1 => ("contested", h.post(&format!("{WS}/runs/{contested}/log"), json!({ "params": { "p": t.to_string() }, "metrics": [{ "key": format!("by{t}"), "value": 1 }] }))),
                        2 => ("gone", h.post(&format!("{WS}/runs/{gone}/log"), json!({ "metrics": [{ "key": "x", "value": 1 }] }))),
                        3 => ("dead", h.post(&format!("{WS}/runs"), json!({ "experiment_id": dead_exp }))),
                        _ => ("new", h.post(&format!("{WS}/runs"), json!({ "experiment_id": 0, "name": format!("n{t}-{i}") }))),
                    };
                    verdicts.push((kind, t, r.status));
                }
                verdicts
            })
        })
        .collect();
    let verdicts: Vec<(&str, i32, u16)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    for (kind, _, status) in &verdicts {
        let expected: &[u16] = match *kind {
            "good" => &[200],
            "contested" => &[200, 400],
            "gone" => &[409],
            "dead" => &[409],
            _ => &[201],
        };
        assert!(expected.contains(status), "{kind}: {status}");
    }
    // the good run has every point
    let hist = h.get(&format!("{WS}/runs/{good}/metrics/m")).ok();
    assert_eq!(hist["total_points"], 64);
    // the contested param has one value; only the thread that set it logged its metric
    let c = h.get(&format!("{WS}/runs/{contested}")).ok();
    let winner = c["params"]["p"].as_str().unwrap().to_string();
    let accepted: Vec<i32> = verdicts
        .iter()
        .filter(|v| v.0 == "contested" && v.2 == 200)
        .map(|v| v.1)
        .collect();
    assert!(
        accepted.iter().all(|t| t.to_string() == winner),
        "{accepted:?} vs {winner}"
    );
    let metric_keys: Vec<&String> = c["metrics"].as_object().unwrap().keys().collect();
    assert_eq!(metric_keys, vec![&format!("by{winner}")]);
    // nothing reached the deleted run; the new runs all exist
    assert!(
        h.get(&format!("{WS}/runs/{gone}")).ok()["metrics"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    let runs = h
        .post(
            &format!("{WS}/runs:search"),
            json!({ "experiment_ids": [0], "filter": "attributes.run_name LIKE 'n%'" }),
        )
        .ok();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 64);
}
