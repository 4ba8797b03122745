//! Online endpoints against the real binary: a model trained by a train job, deployed behind
//! the built-in `scorer-tabular` and scored through every route with predictions equal to
//! in-process inference; traffic split and mirror; a blue/green swap under load with no failed
//! request; 429 / 504 / scorer-crash behaviour with the `bad-scorer` fixture; precise 4xx for
//! bad input; metrics in Prometheus and JSON form.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, dataset, plugin_wasm};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

/// Uploads a dataset and trains a small model on it; returns the run id.
fn train(h: &Http, data: &str, spec: Value) -> String {
    h.raw(
        "POST",
        &format!("{WS}/datasets/{data}/versions"),
        Some(dataset(&format!("{data}.csv"))),
    )
    .ok();
    let j = h.post(&format!("{WS}/jobs"), spec).ok();
    let id = j["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let j = h.get(&format!("{WS}/jobs/{id}")).ok();
        match j["state"].as_str() {
            Some("Completed") => return j["run_id"].as_str().unwrap().to_string(),
            Some("Failed" | "Canceled") => panic!("train job failed: {j}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "train job did not finish: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn iris_run(h: &Http) -> String {
    train(
        h,
        "iris",
        json!({ "type": "train", "name": "iris", "train": {
            "dataset": "iris:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [16] },
            "optimizer": { "kind": "adam", "lr": 0.02 },
            "epochs": 30, "batch_size": 16, "seed": 3 } }),
    )
}

/// A scoring client: raw POST with headers.
struct Scorer {
    base: String,
    client: reqwest::blocking::Client,
    key: Option<String>,
}

/// A scoring answer.
struct Answer {
    status: u16,
    json: Value,
    deployment: String,
    retry_after: Option<String>,
}

impl Scorer {
    fn new(s: &Server, key: Option<&str>) -> Self {
        Self {
            base: s.url.clone(),
            client: reqwest::blocking::Client::new(),
            key: key.map(String::from),
        }
    }

    fn post(&self, path: &str, ct: &str, body: &[u8], pin: Option<&str>) -> Answer {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", ct)
            .body(body.to_vec())
            .timeout(Duration::from_secs(60));
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        if let Some(p) = pin {
            r = r.header("x-atrium-deployment", p);
        }
        let resp = r.send().expect("scoring request");
        let status = resp.status().as_u16();
        let deployment = resp
            .headers()
            .get("x-atrium-deployment")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = resp.bytes().unwrap();
        Answer {
            status,
            json: serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
            deployment,
            retry_after,
        }
    }

    fn json(&self, endpoint: &str, body: Value) -> Answer {
        self.post(
            &format!("/endpoints/{endpoint}/score"),
            "application/json",
            body.to_string().as_bytes(),
            None,
        )
    }
}

fn create_endpoint(h: &Http, name: &str) -> String {
    let v = h.put(&format!("{WS}/endpoints/{name}"), json!({})).ok();
    v["key"]
        .as_str()
        .expect("key shown on creation")
        .to_string()
}

fn deploy(h: &Http, endpoint: &str, name: &str, body: Value) -> atrium_tests::Resp {
    h.put(
        &format!("{WS}/endpoints/{endpoint}/deployments/{name}"),
        body,
    )
}

const IRIS_COLS: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

/// The first `n` iris rows as (values, CSV text with header).
fn iris_rows(n: usize) -> (Vec<Vec<f64>>, String) {
    let csv = String::from_utf8(dataset("iris.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx: Vec<usize> = IRIS_COLS
        .iter()
        .map(|c| header.iter().position(|h| h == c).unwrap())
        .collect();
    let rows: Vec<Vec<f64>> = lines
        .step_by(7)
        .take(n)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            idx.iter().map(|i| f[*i].parse().unwrap()).collect()
        })
        .collect();
    let mut text = IRIS_COLS.join(",");
    text.push('\n');
    for r in &rows {
        text.push_str(
            &r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        text.push('\n');
    }
    (rows, text)
}

/// In-process inference of the same rows (`atrium model predict --output json`).
fn reference(s: &Server, run: &str, csv: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rows.csv");
    std::fs::write(&f, csv).unwrap();
    let (ok, out, err) = s.cli(&[
        "--output",
        "json",
        "model",
        "predict",
        "--run",
        run,
        "--file",
        f.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // the endpoint's shape: `predictions` for the list, `probabilities` beside it
    let v: Value = serde_json::from_str(&out).unwrap();
    let preds = v["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"));
    preds
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "prediction": p, "probabilities": v["probabilities"][i] }))
        .collect()
}

/// Asserts an answer's predictions (and probabilities) match the in-process ones.
fn assert_same(answer: &Value, want: &[Value]) {
    let got = answer["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions: {answer}"));
    assert_eq!(got.len(), want.len(), "{answer}");
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got[i], w["prediction"], "row {i}: {answer}");
        let probs = w["probabilities"].as_object().unwrap();
        for (label, p) in probs {
            let q = answer["probabilities"][i][label].as_f64().unwrap();
            assert!(
                (q - p.as_f64().unwrap()).abs() < 1e-5,
                "row {i} label {label}: {q} vs {p}"
            );
        }
    }
}

#[test]
fn deploy_and_score_through_every_route() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = iris_run(&h);
    // register the trained model and deploy it by alias
    let v = h
        .post(
            &format!("{WS}/models/iris/versions"),
            json!({ "run_id": run, "path": "model", "aliases": ["champion"] }),
        )
        .ok();
    assert_eq!(v["version"], 1, "{v}");
    let key = create_endpoint(&h, "iris-prod");
    let d = deploy(
        &h,
        "iris-prod",
        "blue",
        json!({ "model": "models:/iris@champion" }),
    )
    .ok();
    assert_eq!(d["deployments"][0]["model_name"], "iris");
    assert_eq!(d["deployments"][0]["model_version"], 1);
    assert_eq!(
        d["traffic"]["blue"], 100,
        "first deployment takes all traffic: {d}"
    );
    assert_eq!(d["state"]["blue"]["state"], "warm");
    assert_eq!(d["deployments"][0]["scorer_name"], "scorer-tabular");

    let (rows, csv) = iris_rows(8);
    let want = reference(&s, &run, &csv);
    let sc = Scorer::new(&s, Some(&key));
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            IRIS_COLS
                .iter()
                .zip(r)
                .map(|(c, v)| (c.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let split = json!({ "columns": IRIS_COLS, "data": rows });

    // the raw route, MLflow's payloads, CSV, and the Open Inference Protocol
    let a = sc.json("iris-prod", json!({ "dataframe_records": records }));
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.deployment, "blue");
    assert_same(&a.json, &want);
    for body in [
        json!({ "dataframe_split": split }),
        json!({ "dataframe_records": records }),
        json!({ "instances": records }),
        json!({ "inputs": rows }),
    ] {
        let a = sc.post(
            "/endpoints/iris-prod/invocations",
            "application/json",
            body.to_string().as_bytes(),
            None,
        );
        assert_eq!(a.status, 200, "{body}: {}", a.json);
        assert_same(&a.json, &want);
    }
    let a = sc.post(
        "/endpoints/iris-prod/invocations",
        "text/csv",
        csv.as_bytes(),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.json);
    assert_same(&a.json, &want);
    // the CLI: the answer on stdout; a refusal in the usual `error: CODE: message` form
    let body = json!({ "dataframe_records": records }).to_string();
    let (ok, out, err) = s.cli(&[
        "endpoint",
        "invoke",
        "iris-prod",
        "--data",
        &body,
        "--key",
        &key,
    ]);
    assert!(ok, "{err}");
    assert_same(&serde_json::from_str(&out).unwrap(), &want);
    let (ok, out, err) = s.cli(&[
        "endpoint",
        "invoke",
        "iris-prod",
        "--data",
        "{\"dataframe_records\": [{\"sepal_length\": 1}]}",
        "--key",
        &key,
    ]);
    assert!(!ok && out.is_empty(), "{out}");
    let line = err.lines().next().unwrap_or_default();
    let code = line
        .strip_prefix("error: ")
        .and_then(|r| r.split_once(": "))
        .map(|(c, _)| c);
    assert!(
        code.is_some_and(
            |c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')
        ) && line.contains("(HTTP 400"),
        "{err}"
    );
    // the alias moves to a version 2; the deployment keeps serving version 1, and says so
    let (ok, out, err) = s.cli(&["endpoint", "show", "iris-prod"]);
    assert!(
        ok && out.contains("models:/iris@champion (serves version 1)"),
        "{out}{err}"
    );
    let v2 = h
        .post(
            &format!("{WS}/models/iris/versions"),
            json!({ "run_id": run, "path": "model", "aliases": ["champion"] }),
        )
        .ok();
    assert_eq!(v2["version"], 2, "{v2}");
    let (ok, out, err) = s.cli(&["endpoint", "show", "iris-prod"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("models:/iris@champion (serves version 1; @champion is now version 2"),
        "{out}"
    );
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let oip = json!({ "id": "r1", "inputs": [
        { "name": "input", "shape": [rows.len(), 4], "datatype": "FP64", "data": flat } ] });
    let a = sc.post(
        "/v2/models/iris-prod/infer",
        "application/json",
        oip.to_string().as_bytes(),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["model_name"], "iris-prod");
    assert_eq!(a.json["id"], "r1");
    let preds = a.json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "predictions")
        .unwrap();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(preds["data"][i], w["prediction"]);
    }
    assert_eq!(h.get("/v2/health/ready").status, 200);
    assert_eq!(h.get("/v2/models/iris-prod/ready").status, 200);
    assert_eq!(h.get("/v2/models/nope/ready").status, 404);

    // credentials
    let anon = Scorer::new(&s, None);
    let a = anon.json("iris-prod", json!({ "dataframe_records": records }));
    assert_eq!(a.status, 401, "{}", a.json);
    let wrong = Scorer::new(&s, Some("atk_wrong"));
    assert_eq!(
        wrong.json("iris-prod", json!({ "inputs": rows })).status,
        401
    );
    // an API token with Reader on the endpoint's workspace scores without the key; a token
    // without a role there does not, nor does it see the model's metadata
    h.post("/api/v1/users", json!({ "name": "scoring-reader" }))
        .ok();
    h.post("/api/v1/users", json!({ "name": "scoring-stranger" }))
        .ok();
    h.put(
        &format!("{WS}/roles/scoring-reader"),
        json!({ "role": "Reader" }),
    )
    .ok();
    let tok = |u: &str| {
        h.post("/api/v1/tokens", json!({ "user": u })).ok()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let reader = Scorer::new(&s, Some(&tok("scoring-reader")));
    let a = reader.json("iris-prod", json!({ "inputs": rows }));
    assert_eq!(a.status, 200, "{}", a.json);
    let stranger_token = tok("scoring-stranger");
    let stranger = Scorer::new(&s, Some(&stranger_token));
    assert_eq!(
        stranger.json("iris-prod", json!({ "inputs": rows })).status,
        401
    );
    assert_eq!(
        s.http_as(Some(&stranger_token))
            .get("/v2/models/iris-prod")
            .status,
        401
    );
    assert_eq!(s.http_as(None).get("/v2/models/iris-prod").status, 401);

    // bad input: precise 4xx
    let bad = sc.post(
        "/endpoints/iris-prod/score",
        "application/json",
        b"{\"dataframe_split\": ",
        None,
    );
    assert_eq!(bad.status, 400, "{}", bad.json);
    assert!(
        bad.json["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{}",
        bad.json
    );
    let a = sc.json("iris-prod", json!({ "dataframe_records": [{ "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4 }] }));
    assert_eq!(a.status, 400);
    assert!(
        a.json["message"].as_str().unwrap().contains("petal_width"),
        "{}",
        a.json
    );
    let a = sc.json("iris-prod", json!({ "dataframe_records": [{ "sepal_length": "abc", "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2 }] }));
    assert_eq!(a.status, 400);
    let m = a.json["message"].as_str().unwrap();
    assert!(m.contains("sepal_length") && m.contains("abc"), "{m}");
    let a = sc.json("iris-prod", json!({ "inputs": [[5.1, 3.5, 1.4]] }));
    assert_eq!(a.status, 400);
    assert!(
        a.json["message"].as_str().unwrap().contains("4 features"),
        "{}",
        a.json
    );
    let a = sc.post(
        "/endpoints/iris-prod/invocations",
        "application/xml",
        b"<a/>",
        None,
    );
    assert_eq!(a.status, 415, "{}", a.json);
    let a = sc.json("no-such-endpoint", json!({ "inputs": rows }));
    assert_eq!(a.status, 404);
    let a = sc.post(
        "/endpoints/iris-prod/score",
        "application/json",
        b"{}",
        Some("green"),
    );
    assert_eq!(a.status, 404);
    assert!(
        a.json["message"].as_str().unwrap().contains("green"),
        "{}",
        a.json
    );

    // management errors leave the endpoint as it was
    let r = deploy(
        &h,
        "iris-prod",
        "green",
        json!({ "model": "runs:/nope/model" }),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    let r = deploy(
        &h,
        "iris-prod",
        "green",
        json!({ "model": "models:/iris/7" }),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    let r = deploy(
        &h,
        "iris-prod",
        "green",
        json!({ "model": "models:/nope@champion" }),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    assert!(r.message().contains("nope"), "{}", r.json);
    // the served version cannot be deleted; the error names the deployment
    for path in [
        format!("{WS}/models/iris/versions/1"),
        format!("{WS}/models/iris"),
    ] {
        let r = h.delete(&path);
        assert_eq!(r.status, 409, "{}", r.json);
        assert!(
            r.message().contains("'blue'") && r.message().contains("iris-prod"),
            "{}",
            r.json
        );
    }
    let r = h.put(
        &format!("{WS}/endpoints/iris-prod/traffic"),
        json!({ "traffic": { "blue": 90 } }),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("sum to 100"), "{}", r.json);
    let r = deploy(
        &h,
        "iris-prod",
        "green",
        json!({ "model": format!("runs:/{run}/model"), "instances": 0 }),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("instances"), "{}", r.json);
    let r = h.put(&format!("{WS}/endpoints/Bad_Name"), json!({}));
    assert_eq!(r.status, 400);
    let e = h.get(&format!("{WS}/endpoints/iris-prod")).ok();
    assert_eq!(e["deployments"].as_array().unwrap().len(), 1, "{e}");
    assert_eq!(e["traffic"], json!({ "blue": 100 }));

    // metrics: JSON and Prometheus
    let m = h.get(&format!("{WS}/endpoints/iris-prod/metrics")).ok();
    let blue = &m["deployments"]["blue"];
    assert!(blue["requests"].as_u64().unwrap() >= 8, "{m}");
    assert!(blue["by_status"]["400"].as_u64().unwrap() >= 4, "{m}");
    assert!(
        m["deployments"][""]["by_status"]["401"].as_u64().unwrap() >= 2,
        "{m}"
    );
    let text = String::from_utf8(h.get("/metrics").bytes).unwrap();
    // every series names the replica that served it
    let series = "atrium_endpoint_requests_total{workspace=\"default\",endpoint=\"iris-prod\",deployment=\"blue\",replica=\"";
    assert!(
        text.lines()
            .any(|l| l.starts_with(series) && l.contains("\",status=\"200\"}")),
        "{series}... missing from\n{text}"
    );
    assert!(text.contains("atrium_endpoint_request_duration_seconds_bucket"));

    // after a restart the endpoint is cold and starts on its first request
    s.restart();
    let h = s.http();
    let e = h.get(&format!("{WS}/endpoints/iris-prod")).ok();
    assert_eq!(e["state"]["blue"]["state"], "cold", "{e}");
    let sc = Scorer::new(&s, Some(&key));
    let a = sc.json("iris-prod", json!({ "dataframe_records": records }));
    assert_eq!(a.status, 200, "{}", a.json);
    assert_same(&a.json, &want);

    // key rotation: the old key stops working
    let k2 = h
        .post(
            &format!("{WS}/endpoints/iris-prod:regenerate-key"),
            json!({}),
        )
        .ok()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sc.json("iris-prod", json!({ "inputs": rows })).status, 401);
    assert_eq!(
        Scorer::new(&s, Some(&k2))
            .json("iris-prod", json!({ "inputs": rows }))
            .status,
        200
    );

    // deletion
    let r = h.delete(&format!("{WS}/endpoints/iris-prod/deployments/blue"));
    assert_eq!(
        r.status, 409,
        "a deployment taking traffic stays: {}",
        r.json
    );
    h.delete(&format!("{WS}/endpoints/iris-prod")).ok();
    assert_eq!(
        Scorer::new(&s, Some(&k2))
            .json("iris-prod", json!({ "inputs": rows }))
            .status,
        404
    );
}

#[test]
fn traffic_split_mirror_and_swap_under_load() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = iris_run(&h);
    h.put(
        &format!("{WS}/endpoints/iris-ab"),
        json!({ "auth_mode": "none" }),
    )
    .ok();
    let model = format!("runs:/{run}/model");
    deploy(&h, "iris-ab", "blue", json!({ "model": model })).ok();
    deploy(
        &h,
        "iris-ab",
        "green",
        json!({ "model": model, "instances": 1 }),
    )
    .ok();
    let e = h.get(&format!("{WS}/endpoints/iris-ab")).ok();
    assert_eq!(
        e["traffic"],
        json!({ "blue": 100 }),
        "a second deployment gets no traffic by itself"
    );

    let sc = Scorer::new(&s, None);
    let body = json!({ "inputs": [[5.1, 3.5, 1.4, 0.2]] });
    h.put(
        &format!("{WS}/endpoints/iris-ab/traffic"),
        json!({ "traffic": { "blue": 70, "green": 30 } }),
    )
    .ok();
    let n = 400;
    let mut green = 0;
    for _ in 0..n {
        let a = sc.json("iris-ab", body.clone());
        assert_eq!(a.status, 200, "{}", a.json);
        if a.deployment == "green" {
            green += 1;
        }
    }
    // 30 % of 400 = 120, sd ≈ 9.2: within 5 sd
    assert!((74..=166).contains(&green), "green answered {green} of {n}");

    // a pinned request goes where it is pinned, whatever the split
    let a = sc.post(
        "/endpoints/iris-ab/score",
        "application/json",
        body.to_string().as_bytes(),
        Some("green"),
    );
    assert_eq!((a.status, a.deployment.as_str()), (200, "green"));

    // mirror: 50 % of blue's requests copied to green, responses discarded
    h.put(
        &format!("{WS}/endpoints/iris-ab/traffic"),
        json!({ "traffic": { "blue": 100 }, "mirror": { "green": 50 } }),
    )
    .ok();
    let before =
        h.get(&format!("{WS}/endpoints/iris-ab/metrics")).ok()["deployments"]["green"]["mirrored"]
            .as_u64()
            .unwrap_or(0);
    for _ in 0..200 {
        let a = sc.json("iris-ab", body.clone());
        assert_eq!((a.status, a.deployment.as_str()), (200, "blue"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let m = h.get(&format!("{WS}/endpoints/iris-ab/metrics")).ok();
    let mirrored = m["deployments"]["green"]["mirrored"].as_u64().unwrap() - before;
    // 50 % of 200, sd ≈ 7.1
    assert!((65..=135).contains(&mirrored), "mirrored {mirrored}: {m}");
    let r = h.put(
        &format!("{WS}/endpoints/iris-ab/traffic"),
        json!({ "traffic": { "blue": 100 }, "mirror": { "green": 60 } }),
    );
    assert_eq!(r.status, 400);

    // blue/green swap under load: clients hammer the endpoint while blue is replaced twice
    h.put(
        &format!("{WS}/endpoints/iris-ab/traffic"),
        json!({ "traffic": { "blue": 100 } }),
    )
    .ok();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let base = s.url.clone();
            let body = body.to_string();
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = c
                        .post(format!("{base}/endpoints/iris-ab/score"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send();
                    match r {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failed.lock().unwrap().push(format!(
                            "{} {}",
                            r.status(),
                            r.text().unwrap_or_default()
                        )),
                        Err(e) => failed.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let d = deploy(
        &h,
        "iris-ab",
        "blue",
        json!({ "model": model, "instances": 3, "scorer_config": { "probabilities": false } }),
    )
    .ok();
    assert_eq!(d["state"]["blue"]["instances"], 3, "{d}");
    std::thread::sleep(Duration::from_millis(300));
    deploy(
        &h,
        "iris-ab",
        "blue",
        json!({ "model": model, "instances": 2 }),
    )
    .ok();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed requests during the swap: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "only {} requests",
        ok.load(Ordering::Relaxed)
    );
}

#[test]
fn busy_timeouts_and_crashing_scorers() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = iris_run(&h);
    let manifest = "kind = \"scorer\"\nname = \"bad-scorer\"\nversion = \"1.0.0\"\n";
    h.push_component(
        "default",
        "bad-scorer",
        "1.0.0",
        plugin_wasm("bad_scorer"),
        manifest,
    )
    .ok();
    h.put(
        &format!("{WS}/endpoints/flaky"),
        json!({ "auth_mode": "none" }),
    )
    .ok();
    let model = format!("runs:/{run}/model");
    // a scorer that refuses to open is not deployed, and the endpoint stays as it was
    let r = deploy(
        &h,
        "flaky",
        "blue",
        json!({ "model": model, "scorer": "bad-scorer@1.0.0",
        "scorer_config": { "fail_open": true } }),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("refusing to open"), "{}", r.json);
    assert!(
        h.get(&format!("{WS}/endpoints/flaky")).ok()["deployments"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    deploy(
        &h,
        "flaky",
        "blue",
        json!({ "model": model, "scorer": "bad-scorer@1.0.0",
        "instances": 1, "max_concurrent_requests": 2, "request_timeout_ms": 1000 }),
    )
    .ok();
    let sc = Scorer::new(&s, None);
    let text = |body: &str| {
        sc.post(
            "/endpoints/flaky/score",
            "text/plain",
            body.as_bytes(),
            None,
        )
    };
    let a = text("hello");
    assert_eq!((a.status, a.json.as_str()), (200, Some("hello")));
    let a = text("predict");
    assert_eq!(a.status, 200, "the scorer reaches the model: {}", a.json);

    // 429: one instance, a queue of one; four slow requests at once
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let a = text("sleep:600");
                    (a.status, a.retry_after)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    assert!(!busy.is_empty(), "{answers:?}");
    assert!(
        busy.iter().all(|a| a.1.as_deref() == Some("1")),
        "{answers:?}"
    );
    assert!(answers.iter().any(|a| a.0 == 200), "{answers:?}");

    // 504: a spinning request is cut by its deadline; the next one is served
    let t = Instant::now();
    let a = text("spin");
    assert_eq!(a.status, 504, "{}", a.json);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let a = text("after-spin");
    assert_eq!(a.status, 200, "{}", a.json);

    // 500 with the scorer's message; the instance is replaced
    let a = text("trap");
    assert_eq!(a.status, 500, "{}", a.json);
    assert!(
        a.json["message"]
            .as_str()
            .unwrap()
            .contains("exploded on purpose"),
        "{}",
        a.json
    );
    let a = text("after-trap");
    assert_eq!(a.status, 200, "{}", a.json);

    let m = h.get(&format!("{WS}/endpoints/flaky/metrics")).ok();
    let st = &m["deployments"]["blue"]["by_status"];
    // the queued slow request may run out of time too (the timeout counts the queueing)
    assert!(
        st["429"].as_u64().unwrap() >= 1 && st["504"].as_u64().unwrap() >= 1 && st["500"] == 1,
        "{m}"
    );

    // the scorer version in use cannot be deleted
    let r = h.delete(&format!("{WS}/components/bad-scorer/versions/1.0.0"));
    assert_eq!(r.status, 409, "{}", r.json);
    assert!(r.message().contains("flaky"), "{}", r.json);
}

#[test]
fn batch_score_job_writes_a_scored_dataset_version() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = iris_run(&h);
    h.post(
        &format!("{WS}/models/iris/versions"),
        json!({ "run_id": run, "path": "model", "aliases": ["champion"] }),
    )
    .ok();
    // bad specs are refused at submission, nothing queued
    for (spec, status, needle) in [
        (
            json!({ "model": "models:/nope/1", "dataset": "iris:1" }),
            404,
            "nope",
        ),
        (
            json!({ "model": "models:/iris@champion", "dataset": "missing:1" }),
            404,
            "missing",
        ),
        (
            json!({ "model": "models:/iris@champion", "dataset": "iris:1", "batch_size": 0 }),
            400,
            "batch_size",
        ),
    ] {
        let r = h.post(
            &format!("{WS}/jobs"),
            json!({ "type": "batch-score", "batch_score": spec }),
        );
        assert_eq!(r.status, status, "{}", r.json);
        assert!(r.message().contains(needle), "{}", r.json);
    }
    let j = h
        .post(
            &format!("{WS}/jobs"),
            json!({ "type": "batch-score", "name": "score-iris",
                    "batch_score": { "model": "models:/iris@champion", "dataset": "iris:1", "batch_size": 40 } }),
        )
        .ok();
    let id = j["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let j = loop {
        let j = h.get(&format!("{WS}/jobs/{id}")).ok();
        if matches!(
            j["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            break j;
        }
        assert!(Instant::now() < deadline, "{j}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(j["state"], "Completed", "{j}");
    let out = h.get(&format!("{WS}/datasets/iris-scored/versions/1")).ok();
    assert_eq!(out["rows"], 150, "{out}");
    let csv = String::from_utf8(
        h.get(&format!("{WS}/datasets/iris-scored/versions/1/data"))
            .bytes,
    )
    .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(
        header.contains(&"prediction") && header.iter().any(|c| c.starts_with("p_")),
        "{header:?}"
    );
    // the same rows predicted in-process
    let (_, sample) = iris_rows(150);
    let want = reference(&s, &run, &sample);
    let pcol = header.iter().position(|c| *c == "prediction").unwrap();
    let all: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(
            all[i * 7][pcol],
            w["prediction"].as_str().unwrap(),
            "row {}",
            i * 7
        );
    }
    let log = String::from_utf8(h.get(&format!("{WS}/jobs/{id}/logs")).bytes).unwrap();
    assert!(log.contains("batch 4/4"), "{log}");
    let run_json = h
        .get(&format!("{WS}/runs/{}", j["run_id"].as_str().unwrap()))
        .ok();
    assert!(run_json.to_string().contains("iris-scored:1"), "{run_json}");
}

#[test]
fn endpoints_on_postgres_survive_a_restart() {
    let mut s = Server::start(Backend::Postgres);
    let h = s.http();
    let run = iris_run(&h);
    h.post(
        &format!("{WS}/models/iris/versions"),
        json!({ "run_id": run, "path": "model" }),
    )
    .ok();
    let key = create_endpoint(&h, "iris-pg");
    deploy(&h, "iris-pg", "blue", json!({ "model": "models:/iris/1" })).ok();
    deploy(
        &h,
        "iris-pg",
        "green",
        json!({ "model": format!("runs:/{run}/model"), "instances": 1 }),
    )
    .ok();
    h.put(
        &format!("{WS}/endpoints/iris-pg/traffic"),
        json!({ "traffic": { "blue": 50, "green": 50 } }),
    )
    .ok();
    let body = json!({ "inputs": [[6.3, 3.3, 6.0, 2.5]] });
    let first = Scorer::new(&s, Some(&key)).json("iris-pg", body.clone());
    assert_eq!(first.status, 200, "{}", first.json);
    s.restart();
    let h = s.http();
    let e = h.get(&format!("{WS}/endpoints/iris-pg")).ok();
    assert_eq!(e["traffic"], json!({ "blue": 50, "green": 50 }), "{e}");
    for dep in ["blue", "green"] {
        let a = Scorer::new(&s, Some(&key)).post(
            "/endpoints/iris-pg/score",
            "application/json",
            body.to_string().as_bytes(),
            Some(dep),
        );
        assert_eq!((a.status, a.deployment.as_str()), (200, dep), "{}", a.json);
        assert_eq!(a.json["predictions"], first.json["predictions"]);
    }
    let r = h.delete(&format!("{WS}/models/iris/versions/1"));
    assert_eq!(r.status, 409, "{}", r.json);
}

#[test]
fn a_team_uploaded_scorer_does_its_own_pre_and_post_processing() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = train(
        &h,
        "digits",
        json!({ "type": "train", "name": "digits", "train": {
            "dataset": "digits:1", "target": "target", "task": "classification",
            "model": { "family": "mlp", "hidden": [64] },
            "optimizer": { "kind": "adam", "lr": 0.01 },
            "epochs": 8, "batch_size": 64, "seed": 1 } }),
    );
    let manifest = std::fs::read_to_string(
        atrium_tests::root().join("plugins/examples/scorer-digits/plugin.toml"),
    )
    .unwrap();
    h.push_component(
        "default",
        "scorer-digits",
        "0.1.0",
        plugin_wasm("scorer_digits"),
        &manifest,
    )
    .ok();
    h.put(
        &format!("{WS}/endpoints/digits"),
        json!({ "auth_mode": "none" }),
    )
    .ok();
    deploy(
        &h,
        "digits",
        "custom",
        json!({ "model": format!("runs:/{run}/model"), "scorer": "scorer-digits@0.1.0",
                "scorer_config": { "min_confidence": 0.0 } }),
    )
    .ok();
    // the first digits rows as 0-255 images, and the same rows predicted in-process (0-16)
    let csv = String::from_utf8(dataset("digits.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let rows: Vec<Vec<f64>> = lines
        .take(5)
        .map(|l| l.split(',').take(64).map(|v| v.parse().unwrap()).collect())
        .collect();
    let sample = std::iter::once(header.to_string())
        .chain(csv.lines().skip(1).take(5).map(String::from))
        .collect::<Vec<_>>()
        .join("\n");
    let want = reference(&s, &run, &sample);
    let images: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|p| (p * 255.0 / 16.0).round() as u32)
                .collect()
        })
        .collect();
    let sc = Scorer::new(&s, None);
    let a = sc.json("digits", json!({ "images": images }));
    assert_eq!(a.status, 200, "{}", a.json);
    let digits = a.json["digits"].as_array().unwrap();
    assert_eq!(digits.len(), 5, "{}", a.json);
    for (d, w) in digits.iter().zip(&want) {
        assert_eq!(d["digit"], w["prediction"], "{}", a.json);
        assert_eq!(d["top3"].as_array().unwrap().len(), 3);
    }
    let a = sc.json("digits", json!({ "images": [[0, 1, 2]] }));
    assert_eq!(a.status, 400, "{}", a.json);
    assert!(
        a.json["message"].as_str().unwrap().contains("64"),
        "{}",
        a.json
    );
}
