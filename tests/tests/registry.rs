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
