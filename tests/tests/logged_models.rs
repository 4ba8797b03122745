//! MLflow 3 logged models inside Atrium, against the real binary on SQLite and PostgreSQL: a
//! model logged through the MLflow API (its files through the artifact proxy) is listed and read
//! by the native API, registered with `atrium model register --logged-model`, predicted with
//! `atrium model predict --model models:/m-...`, and deployed behind an endpoint; its files
//! survive the source run's deletion and `atrium gc`; bad ids change nothing.

use atrium_tests::{Backend, Http, Server, dataset, train_iris};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";
const ML: &str = "/api/2.0/mlflow";

/// `atrium ... -o json`, asserting success.
fn cli_json(s: &Server, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend(args);
    let (ok, out, err) = s.cli(&all);
    assert!(ok, "atrium {all:?} failed:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Logs the run's trained model as an MLflow logged model, as `mlflow.<flavor>.log_model` does:
/// create, upload the files through the artifact proxy, finalize. Returns the model id.
fn log_model(h: &Http, run: &str) -> String {
    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    let exp = r["experiment_id"].as_i64().unwrap().to_string();
    let m = h
        .post(
            &format!("{ML}/logged-models"),
            json!({ "experiment_id": exp, "name": "iris-mlp", "source_run_id": run,
                    "params": [{ "key": "hidden", "value": "16" }] }),
        )
        .ok();
    let id = m["model"]["info"]["model_id"].as_str().unwrap().to_string();
    let location = m["model"]["info"]["artifact_uri"].as_str().unwrap();
    assert_eq!(
        location,
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    assert_eq!(m["model"]["info"]["status"], "LOGGED_MODEL_PENDING");
    for f in ["model.json", "model.safetensors"] {
        let bytes = h.get(&format!("{WS}/runs/{run}/artifacts/model/{f}")).bytes;
        assert!(!bytes.is_empty());
        let up = h.raw(
            "PUT",
            &format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/models/{id}/artifacts/{f}"),
            Some(bytes),
        );
        assert_eq!(up.status, 200, "{:?}", up.json);
    }
    let done = h
        .patch(
            &format!("{ML}/logged-models/{id}"),
            json!({ "status": "LOGGED_MODEL_READY" }),
        )
        .ok();
    assert_eq!(done["model"]["info"]["status"], "LOGGED_MODEL_READY");
    h.post(
        &format!("{ML}/runs/outputs"),
        json!({ "run_id": run, "models": [{ "model_id": id, "step": 5 }] }),
    )
    .ok();
    id
}

fn scenario(backend: Backend) {
    let s = Server::start(backend);
    let h = s.http();
    let (run, _) = train_iris(&h);
    let id = log_model(&h, &run);

    // the native API sees the model and its files
    let m = h.get(&format!("{WS}/logged-models/{id}")).ok();
    assert_eq!(m["source_run_id"], run.as_str());
    assert_eq!(m["params"], json!({ "hidden": "16" }));
    let files = h.get(&format!("{WS}/logged-models/{id}/artifacts")).ok();
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["model.json", "model.safetensors"]);
    let listed = h.get(&format!("{WS}/logged-models")).ok();
    assert_eq!(listed["logged_models"][0]["id"], id.as_str());
    // the run lists it among its outputs (MLflow's runs/get)
    let got = h.get(&format!("{ML}/runs/get?run_id={run}")).ok();
    assert_eq!(
        got["run"]["outputs"]["model_outputs"],
        json!([{ "model_id": id, "step": 5 }])
    );

    // predictions: from the logged model, the run, and a registered version agree
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.csv");
    std::fs::write(&rows, dataset("iris.csv")).unwrap();
    let rows = rows.to_str().unwrap();
    let from_model = cli_json(
        &s,
        &[
            "model",
            "predict",
            "--model",
            &format!("models:/{id}"),
            "--file",
            rows,
        ],
    );
    let from_run = cli_json(&s, &["model", "predict", "--run", &run, "--file", rows]);
    assert_eq!(from_model, from_run);
    let v = cli_json(
        &s,
        &[
            "model",
            "register",
            "--name",
            "iris-lm",
            "--logged-model",
            &id,
        ],
    );
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(v["logged_model_id"], id.as_str(), "{v}");
    assert_eq!(v["run_id"], run.as_str(), "{v}");
    let from_version = cli_json(
        &s,
        &[
            "model",
            "predict",
            "--model",
            "models:/iris-lm/1",
            "--file",
            rows,
        ],
    );
    assert_eq!(from_version, from_run);
    // MLflow's view of the version, and of the logged model's registrations
    let mv = h
        .get(&format!("{ML}/model-versions/get?name=iris-lm&version=1"))
        .ok();
    assert_eq!(mv["model_version"]["model_id"], id.as_str());
    let lm = h.get(&format!("{ML}/logged-models/{id}")).ok();
    let tags = lm["model"]["info"]["tags"].as_array().unwrap();
    assert!(
        tags.iter().any(|t| t["key"] == "mlflow.modelVersions"
            && t["value"] == r#"[{"name": "iris-lm", "version": 1}]"#),
        "{lm}"
    );

    // a deployment of the logged model itself
    h.put(&format!("{WS}/endpoints/iris-lm"), json!({})).ok();
    h.put(
        &format!("{WS}/endpoints/iris-lm/deployments/blue"),
        json!({ "model": format!("models:/{id}") }),
    )
    .ok();
    let e = h.get(&format!("{WS}/endpoints/iris-lm")).ok();
    assert_eq!(e["deployments"][0]["model_name"], id.as_str(), "{e}");

    // the registered version keeps its files after the run and the logged model are gone
    h.delete(&format!("{WS}/runs/{run}")).ok();
    h.raw("DELETE", &format!("{ML}/logged-models/{id}"), None);
    h.post("/api/v1/gc", json!({})).ok();
    let again = cli_json(
        &s,
        &[
            "model",
            "predict",
            "--model",
            "models:/iris-lm/1",
            "--file",
            rows,
        ],
    );
    assert_eq!(again, from_run);
    let gone = h.get(&format!("{WS}/logged-models/{id}"));
    assert_eq!(gone.status, 404, "{:?}", gone.json);

    // bad input is refused precisely and changes nothing
    let r = h.get(&format!("{WS}/logged-models/m-nope"));
    assert_eq!(r.status, 404);
    let (ok, _, err) = s.cli(&[
        "model",
        "register",
        "--name",
        "iris-lm",
        "--logged-model",
        "m-0123456789abcdef0123456789abcdef",
    ]);
    assert!(!ok && err.contains("not found"), "{err}");
    let r = h.post(
        &format!("{ML}/logged-models"),
        json!({ "experiment_id": "0", "name": "a/b" }),
    );
    assert_eq!(r.status, 400, "{:?}", r.json);
    let r = h.post(
        &format!("{ML}/logged-models"),
        json!({ "experiment_id": "999" }),
    );
    assert_eq!(r.status, 404, "{:?}", r.json);
    let versions = h.get(&format!("{WS}/models/iris-lm/versions")).ok();
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
}

#[test]
fn logged_models_on_sqlite() {
    scenario(Backend::Sqlite);
}

#[test]
fn logged_models_on_postgres() {
    scenario(Backend::Postgres);
}
