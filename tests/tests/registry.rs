//! The model registry against the real binary, on SQLite and PostgreSQL: register a trained
//! model from a run (CLI and API) and from uploaded files, versions, aliases, `models:/`
//! resolution, lineage, file downloads that survive the run's deletion and `atrium gc`,
//! precise errors that change nothing, and the MLflow duplicate-name error.

use atrium_tests::{Backend, Http, Server, dataset};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

/// Trains a small iris model with a train job; returns (run id, job id).
fn train(h: &Http) -> (String, String) {
    atrium_tests::train_iris(h)
}

/// Runs the CLI with `-o json`, asserting success; returns the parsed output.
fn cli_json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (ok, out, err) = s.cli(&all);
    assert!(ok, "atrium {all:?} failed:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn model(h: &Http, name: &str) -> Value {
    h.get(&format!("{WS}/models/{name}")).ok()
}

fn scenario(backend: Backend) {
    let s = Server::start(backend);
    let h = s.http();
    let (run, job) = train(&h);
    let run_file = |p: &str| {
        let r = h.get(&format!("{WS}/runs/{run}/artifacts/model/{p}"));
        assert_eq!(r.status, 200, "{p}");
        r.bytes
    };
    let (card, weights) = (run_file("model.json"), run_file("model.safetensors"));

    // register with the CLI: version 1, with an alias and lineage
    let v1 = cli_json(
        &s,
        &[
            "model",
            "register",
            "--run",
            &run,
            "--name",
            "iris-clf",
            "--alias",
            "champion",
            "--description",
            "first",
        ],
    );
    assert_eq!(v1["version"], 1, "{v1}");
    assert_eq!(v1["ref"], "models:/iris-clf/1");
    assert_eq!(v1["aliases"], json!(["champion"]));
    assert_eq!(v1["status"], "READY");
    assert_eq!(v1["run_id"], run.as_str());
    assert_eq!(v1["dataset"], "iris:1");
    assert_eq!(v1["job_id"], job.as_str());
    assert_eq!(v1["source"], format!("runs:/{run}/model"));
    assert_eq!(v1["description"], "first");
    let mut paths: Vec<&str> = v1["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["MLmodel", "model.json", "model.safetensors"]);

    // register through the API: version 2
    let r = h.post(
        &format!("{WS}/models/iris-clf/versions"),
        json!({ "run_id": run, "path": "model", "tags": { "stage": "candidate" } }),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["tags"]["stage"], "candidate");
    assert_eq!(r.json["aliases"], json!([]));

    // the alias moves to 2, then back to 1 with the CLI
    let moved = h
        .put(
            &format!("{WS}/models/iris-clf/aliases/champion"),
            json!({ "version": 2 }),
        )
        .ok();
    assert_eq!(moved["version"], 2);
    assert_eq!(moved["aliases"], json!(["champion"]));
    let by_alias = h
        .get(&format!("{WS}/models/iris-clf/versions/@champion"))
        .ok();
    assert_eq!(by_alias["version"], 2);
    assert_eq!(
        h.get(&format!("{WS}/models/iris-clf/versions/1")).ok()["aliases"],
        json!([])
    );
    let (ok, out, err) = s.cli(&["model", "alias", "iris-clf", "champion", "1"]);
    assert!(ok, "{out}{err}");
    let shown = cli_json(&s, &["model", "show", "models:/iris-clf@champion"]);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["dataset"], "iris:1");
    let (ok, out, err) = s.cli(&["model", "alias", "iris-clf", "temp", "2"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        model(&h, "iris-clf")["aliases"],
        json!({ "champion": 1, "temp": 2 })
    );
    let (ok, out, err) = s.cli(&["model", "alias", "iris-clf", "temp", "--delete"]);
    assert!(ok, "{out}{err}");
    let latest = cli_json(&s, &["model", "show", "iris-clf/latest"]);
    assert_eq!(latest["version"], 2);
    let m = cli_json(&s, &["model", "show", "iris-clf"]);
    assert_eq!(m["versions"].as_array().unwrap().len(), 2);
    assert_eq!(m["aliases"], json!({ "champion": 1 }));

    // files are downloadable and identical to the run's
    let file = |v: &str, p: &str| h.get(&format!("{WS}/models/iris-clf/versions/{v}/files/{p}"));
    assert_eq!(file("1", "model.json").bytes, card);
    assert_eq!(file("@champion", "model.safetensors").bytes, weights);

    // predictions through models:/ equal those from the run
    let rows = tempfile::tempdir().unwrap();
    let csv = rows.path().join("iris.csv");
    std::fs::write(&csv, dataset("iris.csv")).unwrap();
    let csv = csv.to_str().unwrap();
    let from_run = cli_json(&s, &["model", "predict", "--run", &run, "--file", csv]);
    let from_registry = cli_json(
        &s,
        &[
            "model",
            "predict",
            "--model",
            "models:/iris-clf@champion",
            "--file",
            csv,
        ],
    );
    // the endpoint's shape: `predictions` (one per row) and `probabilities`
    assert_eq!(from_run["predictions"].as_array().unwrap().len(), 150);
    assert_eq!(from_run["probabilities"].as_array().unwrap().len(), 150);
    assert_eq!(from_run, from_registry);

    // precise errors, and nothing changes after a refused call
    let before = model(&h, "iris-clf");
    let r = h.get(&format!("{WS}/models/nope"));
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    assert!(r.message().contains("name=nope"), "{}", r.message());
    let r = file("9", "model.json");
    assert_eq!(r.status, 404);
    assert!(r.message().contains("iris-clf/9"), "{}", r.message());
    let r = h.get(&format!("{WS}/models/iris-clf/versions/@ghost"));
    assert_eq!(r.status, 404);
    assert!(r.message().contains("'ghost'"), "{}", r.message());
    let r = file("1", "nothing.bin");
    assert_eq!(r.status, 404);
    assert!(r.message().contains("nothing.bin"), "{}", r.message());
    let r = h.post(
        &format!("{WS}/models/iris-clf/versions"),
        json!({ "run_id": "0".repeat(32), "path": "model" }),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    assert!(r.message().contains(&"0".repeat(32)), "{}", r.message());
    let r = h.post(
        &format!("{WS}/models/iris-clf/versions"),
        json!({ "run_id": run, "path": "nomodel" }),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    assert!(r.message().contains("nomodel"), "{}", r.message());
    let r = h.post(
        &format!("{WS}/models/iris-clf/versions"),
        json!({ "run_id": run, "path": "model/model.json" }),
    );
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    let r = h.post(
        &format!("{WS}/models/bad:name/versions"),
        json!({ "run_id": run }),
    );
    // MLflow's rule: no '/' or ':' (spaces are allowed)
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("bad:name"), "{}", r.message());
    for bad in ["v3", "latest", "9lives"] {
        let r = h.put(
            &format!("{WS}/models/iris-clf/aliases/{bad}"),
            json!({ "version": 1 }),
        );
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_PARAMETER_VALUE"),
            "{bad}"
        );
        assert!(r.message().contains(bad), "{}", r.message());
    }
    let r = h.put(
        &format!("{WS}/models/iris-clf/aliases/challenger"),
        json!({ "version": 99 }),
    );
    assert_eq!(r.status, 404);
    assert!(r.message().contains("iris-clf/99"), "{}", r.message());
    let r = h.post(
        "/api/2.0/mlflow/registered-models/create",
        json!({ "name": "iris-clf" }),
    );
    assert_eq!((r.status, r.code()), (400, "RESOURCE_ALREADY_EXISTS"));
    let (ok, _, err) = s.cli(&["model", "show", "nope"]);
    assert!(!ok && err.contains("name=nope not found"), "{err}");
    let after = model(&h, "iris-clf");
    assert_eq!(before, after, "a refused call changed the model");
    assert_eq!(after["version_count"], 2);
    assert_eq!(after["latest_version"], 2);

    // upload a directory as a model
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.json"), &card).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &weights).unwrap();
    std::fs::create_dir(dir.path().join("extra")).unwrap();
    std::fs::write(dir.path().join("extra/notes.txt"), b"hand made").unwrap();
    let up = cli_json(
        &s,
        &[
            "model",
            "register",
            "--dir",
            dir.path().to_str().unwrap(),
            "--name",
            "uploaded",
            "--tag",
            "origin=laptop",
        ],
    );
    assert_eq!(up["version"], 1, "{up}");
    assert_eq!(up["source"], "upload");
    assert_eq!(up["run_id"], Value::Null);
    assert_eq!(up["dataset"], "iris:1", "lineage from the model card");
    assert_eq!(up["tags"]["origin"], "laptop");
    assert_eq!(
        h.get(&format!(
            "{WS}/models/uploaded/versions/1/files/extra/notes.txt"
        ))
        .bytes,
        b"hand made"
    );
    let list = cli_json(&s, &["model", "list"]);
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["iris-clf", "uploaded"]);

    // the versions keep their files after the run is deleted and garbage collected
    h.delete(&format!("{WS}/runs/{run}")).ok();
    let gc = h.post("/api/v1/gc", json!({})).ok();
    assert!(gc["runs_purged"].as_u64().unwrap() >= 1, "{gc}");
    assert_eq!(h.get(&format!("{WS}/runs/{run}")).status, 404);
    assert_eq!(file("1", "model.safetensors").bytes, weights);
    assert_eq!(file("2", "model.json").bytes, card);
    let again = cli_json(
        &s,
        &[
            "model",
            "predict",
            "--model",
            "iris-clf@champion",
            "--file",
            csv,
        ],
    );
    assert_eq!(again, from_run);
    let v = h.get(&format!("{WS}/models/iris-clf/versions/1")).ok();
    assert_eq!(v["run_id"], run.as_str(), "lineage survives the run");

    // deleting versions: numbers are never reused; aliases on a deleted version go away
    let (ok, out, err) = s.cli(&["model", "delete", "iris-clf", "--version", "1"]);
    assert!(ok, "{out}{err}");
    assert_eq!(file("1", "model.json").status, 404);
    assert_eq!(model(&h, "iris-clf")["aliases"], json!({}));
    let r = h.get(&format!("{WS}/models/iris-clf/versions/@champion"));
    assert_eq!(r.status, 404);
    h.post("/api/v1/gc", json!({})).ok();
    assert_eq!(
        file("2", "model.safetensors").bytes,
        weights,
        "shared blobs stay while another version references them"
    );
    let r = h.post(
        &format!("{WS}/models/iris-clf/versions"),
        json!({ "run_id": run, "path": "model" }),
    );
    assert_eq!(r.status, 404, "the purged run is gone: {}", r.json);
    assert!(r.message().contains(&run), "{}", r.message());
    let r = h.raw(
        "POST",
        &format!("{WS}/models/iris-clf/versions"),
        Some(b"{\"run_id\": ".to_vec()),
    );
    assert_eq!((r.status, r.code()), (400, "MALFORMED_REQUEST"));
    let v3 = cli_json(
        &s,
        &[
            "model",
            "register",
            "--dir",
            dir.path().to_str().unwrap(),
            "--name",
            "iris-clf",
        ],
    );
    assert_eq!(v3["version"], 3, "version numbers are not reused: {v3}");
    let mut dup = s.cli(&["model", "delete", "iris-clf"]);
    assert!(dup.0, "{}{}", dup.1, dup.2);
    assert_eq!(h.get(&format!("{WS}/models/iris-clf")).status, 404);
    dup = s.cli(&["model", "delete", "iris-clf"]);
    assert!(
        !dup.0 && dup.2.contains("name=iris-clf not found"),
        "{}",
        dup.2
    );
    h.post("/api/v1/gc", json!({})).ok();
    assert_eq!(
        h.get(&format!(
            "{WS}/models/uploaded/versions/latest/files/model.safetensors"
        ))
        .bytes,
        weights,
        "the uploaded version still holds its files"
    );
}

#[test]
fn registry_on_sqlite() {
    scenario(Backend::Sqlite);
}

#[test]
fn registry_on_postgres() {
    scenario(Backend::Postgres);
}

/// Asserts two `{"predictions", "probabilities"}` answers agree: the same predictions, and
/// probabilities equal as f32.
fn assert_same_scores(a: &Value, b: &Value) {
    assert_eq!(a["predictions"], b["predictions"], "predictions differ");
    let (pa, pb) = (
        a["probabilities"].as_array().unwrap(),
        b["probabilities"].as_array().unwrap(),
    );
    assert_eq!(pa.len(), pb.len());
    for (i, (x, y)) in pa.iter().zip(pb).enumerate() {
        let f32s = |v: &Value| -> Vec<(String, f32)> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, p)| (k.clone(), p.as_f64().unwrap() as f32))
                .collect()
        };
        assert_eq!(f32s(x), f32s(y), "row {i}: {x} vs {y}");
    }
}

/// POSTs rows to `.../models/{name}/versions/{v}/predict` as `h`.
fn predict(h: &Http, name: &str, v: &str, body: Value) -> atrium_tests::Resp {
    h.post(&format!("{WS}/models/{name}/versions/{v}/predict"), body)
}

/// Creates a user with a token (and a role on `default`, if given); returns its client.
fn user(s: &Server, name: &str, role: Option<&str>) -> Http {
    let admin = s.http();
    admin.post("/api/v1/users", json!({ "name": name })).ok();
    if let Some(role) = role {
        admin
            .put(&format!("{WS}/roles/{name}"), json!({ "role": role }))
            .ok();
    }
    let token = admin.post("/api/v1/tokens", json!({ "user": name })).ok()["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.http_as(Some(&token))
}

#[test]
fn a_model_version_scores_rows_through_the_server() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let (run, _) = train(&h);
    let v1 = cli_json(
        &s,
        &[
            "model", "register", "--run", &run, "--name", "iris-clf", "--alias", "champion",
        ],
    );
    assert_eq!(v1["version"], 1, "{v1}");

    // the iris rows: features as JSON numbers, the targets aside
    let text = String::from_utf8(dataset("iris.csv")).unwrap();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let target = header.iter().position(|c| *c == "target").unwrap();
    let features: Vec<&str> = header.iter().copied().filter(|c| *c != "target").collect();
    let mut data = Vec::new();
    let mut targets = Vec::new();
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        targets.push(cells[target].to_string());
        data.push(
            cells
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != target)
                .map(|(_, c)| c.parse::<f64>().map(Value::from).unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(data.len(), 150);

    // dataframe_split through the alias
    let split = predict(
        &h,
        "iris-clf",
        "@champion",
        json!({ "dataframe_split": { "columns": features, "data": data } }),
    )
    .ok();
    let preds = split["predictions"].as_array().unwrap();
    let probs = split["probabilities"].as_array().unwrap();
    assert_eq!((preds.len(), probs.len()), (150, 150), "{split}");
    for p in probs {
        let sum: f64 = p
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}: {p}");
        assert_eq!(p.as_object().unwrap().len(), 3, "{p}");
    }
    let right = preds
        .iter()
        .zip(&targets)
        .filter(|(p, t)| p.as_str() == Some(t.as_str()))
        .count();
    assert!(right as f64 / 150.0 > 0.6, "{right} of 150 right: {split}");

    // the same answer as the CLI's local predict, and as dataframe_records through `latest`
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iris.csv");
    std::fs::write(&csv, dataset("iris.csv")).unwrap();
    let local = cli_json(
        &s,
        &[
            "model",
            "predict",
            "--model",
            "models:/iris-clf@champion",
            "--file",
            csv.to_str().unwrap(),
        ],
    );
    // (the CLI prints each f32 probability widened to f64; the server its shortest f32 form)
    assert_same_scores(&split, &local);
    let records: Vec<Value> = data
        .iter()
        .map(|row| {
            features
                .iter()
                .zip(row)
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let by_records = predict(
        &h,
        "iris-clf",
        "latest",
        json!({ "dataframe_records": records }),
    )
    .ok();
    assert_eq!(by_records, split);
    // numbers as strings, a pandas index, and a CSV body score the same
    let first = predict(
        &h,
        "iris-clf",
        "1",
        json!({ "dataframe_split": {
            "columns": features,
            "data": [["5.1", "3.5", "1.4", "0.2"]],
            "index": [0],
        } }),
    )
    .ok();
    assert_eq!(first["predictions"][0], split["predictions"][0], "{first}");
    assert_eq!(first["probabilities"][0], split["probabilities"][0]);
    let r = h
        .request(
            reqwest::Method::POST,
            &format!("{WS}/models/iris-clf/versions/1/predict"),
        )
        .header("content-type", "text/csv")
        .body(dataset("iris.csv"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let from_csv: Value = r.json().unwrap();
    assert_eq!(from_csv, split);
    let none = predict(&h, "iris-clf", "1", json!({ "dataframe_records": [] })).ok();
    assert_eq!(none, json!({ "predictions": [], "probabilities": [] }));

    // precise errors
    let before = model(&h, "iris-clf");
    let one = |row: Value| json!({ "dataframe_records": [row] });
    let row =
        json!({ "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2 });
    for (v, name) in [("9", "iris-clf"), ("@ghost", "iris-clf"), ("1", "nope")] {
        let r = predict(&h, name, v, one(row.clone()));
        assert_eq!(
            (r.status, r.code()),
            (404, "RESOURCE_DOES_NOT_EXIST"),
            "{v}: {}",
            r.json
        );
    }
    assert!(
        predict(&h, "iris-clf", "9", one(row.clone()))
            .message()
            .contains("iris-clf/9")
    );
    let r = predict(&h, "iris-clf", "v1", one(row.clone()));
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(r.message().contains("'v1'"), "{}", r.message());
    let mut partial = row.clone();
    partial.as_object_mut().unwrap().remove("petal_width");
    let r = predict(&h, "iris-clf", "1", one(partial));
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER_VALUE"),
        "{}",
        r.json
    );
    assert!(r.message().contains("petal_width"), "{}", r.message());
    let mut missing = row.clone();
    missing["petal_width"] = Value::Null;
    let r = predict(&h, "iris-clf", "1", one(missing));
    assert_eq!(r.status, 400, "null is a missing value: {}", r.json);
    assert!(r.message().contains("petal_width"), "{}", r.message());
    let mut bad = row.clone();
    bad["sepal_length"] = json!("tall");
    let r = predict(&h, "iris-clf", "1", one(bad));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.message().contains("sepal_length") && r.message().contains("tall"),
        "{}",
        r.message()
    );
    let mut nested = row.clone();
    nested["sepal_length"] = json!([5.1]);
    let r = predict(&h, "iris-clf", "1", one(nested));
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER_VALUE"),
        "{}",
        r.json
    );
    let r = predict(&h, "iris-clf", "1", json!({ "dataframe_recrods": [row] }));
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(
        r.message().contains("dataframe_recrods") && r.message().contains("dataframe_records"),
        "{}",
        r.message()
    );
    for body in [
        json!({}),
        json!({ "dataframe_records": [row], "dataframe_split": { "columns": [], "data": [] } }),
    ] {
        let r = predict(&h, "iris-clf", "1", body);
        assert_eq!(r.status, 400, "{}", r.json);
        assert!(r.message().contains("dataframe_split"), "{}", r.message());
    }
    let r = predict(
        &h,
        "iris-clf",
        "1",
        json!({ "dataframe_split": { "columns": ["sepal_length"], "data": [[1.0, 2.0]] } }),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("data[0]"), "{}", r.message());
    let many = vec![json!({}); 100_001];
    let r = predict(&h, "iris-clf", "1", json!({ "dataframe_records": many }));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("100000"), "{}", r.message());
    // a version without an Atrium model (an uploaded sklearn model)
    let sk = tempfile::tempdir().unwrap();
    std::fs::write(sk.path().join("MLmodel"), b"flavors:\n  sklearn: {}\n").unwrap();
    std::fs::write(sk.path().join("model.pkl"), b"not a pickle").unwrap();
    let up = cli_json(
        &s,
        &[
            "model",
            "register",
            "--dir",
            sk.path().to_str().unwrap(),
            "--name",
            "skl",
        ],
    );
    assert_eq!(up["version"], 1, "{up}");
    let r = predict(&h, "skl", "latest", one(row.clone()));
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_PARAMETER_VALUE"),
        "{}",
        r.json
    );
    assert!(
        r.message().contains("no Atrium model") && r.message().contains("model.json"),
        "{}",
        r.message()
    );
    assert_eq!(model(&h, "iris-clf"), before, "scoring changed the model");

    // a Reader may score; a token without a role on the workspace sees no workspace
    let reader = user(&s, "rita", Some("Reader"));
    let r = predict(&reader, "iris-clf", "@champion", one(row.clone()));
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["predictions"][0], split["predictions"][0]);
    let stranger = user(&s, "sam", None);
    let r = predict(&stranger, "iris-clf", "@champion", one(row.clone()));
    assert_eq!(r.status, 404, "{}", r.json);
    assert!(r.message().contains("no role on it"), "{}", r.message());
    let r = predict(&s.http_as(None), "iris-clf", "@champion", one(row));
    assert_eq!((r.status, r.code()), (401, "UNAUTHENTICATED"));
}
