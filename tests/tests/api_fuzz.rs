//! Schemathesis (pinned, tests/python/schemathesis) fuzzing every native route of a live
//! server with the admin token: no 5xx, every response conforming to its schema, every error in
//! the one error shape.

use std::process::Command;
use std::time::Instant;

use atrium_tests::{Backend, Http, Server, dataset, json, python_env};

/// Data for the fuzzer to find: ids and names it draws from, next to what it generates, and
/// the token the token deletion is aimed at.
struct Seeds {
    run: String,
    job: String,
    token: String,
}

fn seed(h: &Http, ws: &str) -> Seeds {
    let base = format!("/api/v1/workspaces/{ws}");
    let exp = h
        .post(&format!("{base}/experiments"), json!({ "name": "seed" }))
        .ok();
    let run = h
        .post(
            &format!("{base}/runs"),
            json!({ "experiment_id": exp["id"], "name": "seed", "tags": { "t": "1" } }),
        )
        .ok();
    let run = run["id"].as_str().unwrap().to_string();
    h.post(
        &format!("{base}/runs/{run}/log"),
        json!({
            "metrics": [{ "key": "loss", "value": 0.5, "step": 1 }, { "key": "loss", "value": "NaN", "step": 2 }],
            "params": { "lr": "0.1" },
        }),
    )
    .ok();
    let r = h.raw(
        "PUT",
        &format!("{base}/runs/{run}/artifacts/model/model.json"),
        Some(b"{\"w\": 1}".to_vec()),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let r = h.raw(
        "POST",
        &format!("{base}/models/seed/versions"),
        Some(
            json!({ "run_id": run, "path": "model" })
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    h.put(
        &format!("{base}/models/seed/aliases/champion"),
        json!({ "version": 1 }),
    )
    .ok();
    let r = h.raw(
        "POST",
        &format!("{base}/datasets/seed/versions"),
        Some(dataset("iris.csv")),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    h.put(
        &format!("{base}/secrets/seed"),
        json!({ "value": "s3cret" }),
    )
    .ok();
    h.put(
        &format!("{base}/endpoints/seed-ep"),
        json!({ "description": "seed" }),
    )
    .ok();
    let job = h
        .post(
            &format!("{base}/jobs"),
            json!({ "type": "command", "name": "seed", "command": { "command": "echo fuzz" } }),
        )
        .ok();
    // what the destructive routes of the host may destroy: a user and a token of their own
    h.post("/api/v1/users", json!({ "name": "fuzz-doomed" }))
        .ok();
    let token = h
        .post(
            "/api/v1/tokens",
            json!({ "user": "fuzz-doomed", "description": "fuzz" }),
        )
        .ok();
    Seeds {
        run,
        job: job["id"].as_str().unwrap().to_string(),
        token: token["id"].as_str().unwrap().to_string(),
    }
}

/// The schemathesis configuration: the fuzzed workspace fixed, known names and ids mixed into
/// what it generates, and the deletions of a workspace, a user and a token aimed at ones of
/// their own (else the run deletes its own workspace, or the admin's token, and goes on
/// testing 404s and 401s).
fn config(seeds: &Seeds) -> String {
    format!(
        r#"
# no state carried from one run to the next (crashes replayed, examples remembered)
[cache]
enabled = false

[parameters]
"path.ws" = "fuzz"
"path.id" = {{ dictionary = "ids", probability = 0.5 }}
"path.name" = {{ dictionary = "names", probability = 0.5 }}
"path.version" = {{ dictionary = "versions", probability = 0.5 }}
"path.key" = {{ dictionary = "keys", probability = 0.5 }}

[dictionaries]
ids = {{ values = ["{run}", "{job}", "0", "1"] }}
names = {{ values = ["seed", "seed-ep", "default", "scorer-tabular"] }}
versions = {{ values = ["1", "latest", "@champion"] }}
keys = {{ values = ["loss", "t"] }}

[[operations]]
include-operation-id = "delete_workspaces_ws"
parameters = {{ "path.ws" = "fuzz-doomed" }}

[[operations]]
include-operation-id = "delete_users_user"
parameters = {{ "path.user" = "fuzz-doomed" }}

[[operations]]
include-operation-id = "delete_tokens_id"
parameters = {{ "path.id" = "{token}" }}
"#,
        run = seeds.run,
        job = seeds.job,
        token = seeds.token,
    )
}

#[test]
fn schemathesis_against_sqlite() {
    fuzz(Backend::Sqlite);
}

#[test]
fn schemathesis_against_postgres() {
    fuzz(Backend::Postgres);
}

fn fuzz(backend: Backend) {
    let py = python_env(
        "tests/python/schemathesis/requirements.txt",
        "tests/python/schemathesis/.venv",
    );
    let s = Server::start(backend);
    let h = s.http();
    for ws in ["fuzz", "fuzz-doomed"] {
        let r = h.put(&format!("/api/v1/workspaces/{ws}"), json!({}));
        assert_eq!(r.status, 201, "{}", r.json);
    }
    let seeds = seed(&h, "fuzz");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("schemathesis.toml");
    std::fs::write(&cfg, config(&seeds)).unwrap();
    let examples = std::env::var("ATRIUM_FUZZ_EXAMPLES").unwrap_or_else(|_| "15".into());
    let started = Instant::now();
    let out = Command::new(py)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&cfg)
        .args(["run", &format!("{}/api/v1/openapi.json", s.url)])
        .args(["--header", &format!("Authorization: Bearer {}", s.token)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            &examples,
            // one worker: with two threads CPython 3.11 now and then fails inside schemathesis
            // itself ("SystemError: AST constructor recursion depth mismatch", a runtime error
            // of the tool, not a finding)
            "--workers",
            "1",
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--suppress-health-check",
            "all",
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(dir.path().join("junit.xml"))
        .current_dir(dir.path())
        .env_remove("SCHEMATHESIS_HOOKS")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed on {backend:?} after {took:?}:\n{stdout}\n{stderr}\nserver log (tail):\n{}",
        tail(&std::fs::read_to_string(&s.log).unwrap_or_default(), 200)
    );
    eprintln!("schemathesis passed on {backend:?} in {took:?}:\n{stdout}");
    // the fuzzer saw every operation of the document
    let doc = s.http_as(None).get("/api/v1/openapi.json").ok();
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap_or_default();
    let tested = junit.matches("<testcase ").count();
    assert_eq!(
        tested, ops,
        "schemathesis tested {tested} of {ops} operations:\n{stdout}"
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
