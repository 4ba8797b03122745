//! Python environments: versioned workspace assets (API and CLI), and command jobs running
//! inside them (built once by uv per machine, cached, a bad requirement failing the job with
//! uv's message) — against the real binary and the real uv and PyPI.

use atrium_tests::{Backend, Server, job_log, wait_job_states};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

/// Submits a job spec with a code directory of `files` through the CLI; the CLI's outcome
/// and the job (JSON) or the error text.
fn submit_with_code(s: &Server, spec: &Value, files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    for (path, text) in files {
        std::fs::write(code.join(path), text).unwrap();
    }
    let file = dir.path().join("job.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let (ok, out, err) = s.cli(&[
        "job",
        "submit",
        file.to_str().unwrap(),
        "--code",
        code.to_str().unwrap(),
        "--output",
        "json",
    ]);
    (ok, if ok { out } else { err })
}

#[test]
fn environments_are_versioned_assets_with_precise_errors() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let url = format!("{WS}/environments");
    let a = h.post(
        &url,
        json!({"name": "sk", "python": ">=3.10", "requirements": ["scikit-learn==1.9.1"], "description": "sklearn"}),
    );
    assert_eq!(a.status, 201, "{}", a.json);
    let a = a.ok();
    assert_eq!(a["ref"], "sk:1");
    // the same content (another order, a duplicate) answers the existing version
    let same = h.post(
        &url,
        json!({"name": "sk", "python": " >=3.10", "requirements": ["scikit-learn==1.9.1", "scikit-learn==1.9.1"]}),
    );
    assert_eq!(same.status, 200);
    assert_eq!(same.ok()["hash"], a["hash"]);
    let b = h.post(
        &url,
        json!({"name": "sk", "requirements_txt": "# pinned\nscikit-learn==1.9.1\nnumpy==2.3.5  # math\n"}),
    );
    assert_eq!(b.status, 201);
    let b = b.ok();
    assert_eq!(b["ref"], "sk:2");
    assert_eq!(
        b["requirements"],
        json!(["scikit-learn==1.9.1", "numpy==2.3.5"])
    );
    let list = h.get(&url).ok();
    let refs: Vec<&str> = list["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["atrium-mlflow:1", "sk:1", "sk:2"]);
    assert_eq!(list["environments"][0]["builtin"], true);
    assert_eq!(
        h.get(&format!("{url}/sk/versions/latest")).ok()["version"],
        2
    );
    assert_eq!(
        h.get(&format!("{url}/sk/versions/1")).ok()["description"],
        "sklearn"
    );
    assert_eq!(
        h.get(&format!("{url}/sk")).ok()["environments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    for (body, status, needle) in [
        (json!({"name": "atrium-x"}), 400, "reserved for built-in"),
        (json!({"name": "bad name"}), 400, "invalid environment name"),
        (
            json!({"name": "e", "requirements": ["-e ."]}),
            400,
            "requirement 1 ('-e .'): pip options",
        ),
        (
            json!({"name": "e", "python": "latest"}),
            400,
            "python must be",
        ),
        (
            json!({"name": "e", "requirements_txt": "ok\n--index-url http://x\n"}),
            400,
            "requirements.txt line 2",
        ),
        (
            json!({"name": "e", "pyproject_toml": "[tool]\n"}),
            400,
            "no [project] table",
        ),
        (
            json!({"name": "e", "requirments": []}),
            400,
            "unknown field `requirments`",
        ),
    ] {
        let r = h.post(&url, body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.json);
        assert!(r.message().contains(needle), "{body}: {}", r.message());
    }
    let r = h.raw("POST", &url, Some(b"{\"name\": ".to_vec()));
    assert_eq!(r.status, 400, "{}", r.json);
    for (path, status) in [
        ("/nope/versions/1", 404),
        ("/sk/versions/3", 404),
        ("/sk/versions/zero", 400),
        ("/atrium-mlflow/versions/2", 404),
        ("/nope", 404),
    ] {
        assert_eq!(h.get(&format!("{url}{path}")).status, status, "{path}");
    }
    // nothing was stored by the refused calls
    assert_eq!(
        h.get(&url).ok()["environments"].as_array().unwrap().len(),
        3
    );

    // the CLI: create from a file, list, show
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("pyproject.toml");
    std::fs::write(
        &req,
        "[project]\nname = \"x\"\nrequires-python = \">=3.9\"\ndependencies = [\"six==1.16.0\"]\n",
    )
    .unwrap();
    let (ok, out, err) = s.cli(&[
        "environment",
        "create",
        "tools",
        "--file",
        req.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("created environment tools:1"), "{out}");
    let (ok, out, _) = s.cli(&[
        "environment",
        "create",
        "tools",
        "--file",
        req.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("already has this content"), "{out}");
    let (ok, out, _) = s.cli(&["environment", "show", "tools:1"]);
    assert!(
        ok && out.contains("six==1.16.0") && out.contains(">=3.9"),
        "{out}"
    );
    let (ok, out, _) = s.cli(&["environment", "list"]);
    assert!(
        ok && out.contains("atrium-mlflow:1") && out.contains("tools:1"),
        "{out}"
    );
    let (ok, _, err) = s.cli(&["environment", "show", "tools:9"]);
    assert!(!ok && err.contains("tools:9 does not exist"), "{err}");

    // job specs: an unknown environment or a requirements_file outside the snapshot is
    // refused at submission, and a train job takes none
    let cmd =
        |env: Value| json!({"type": "command", "environment": env, "command": {"command": "true"}});
    let r = h.post(&format!("{WS}/jobs"), cmd(json!("nope:1")));
    assert_eq!(r.status, 404, "{}", r.json);
    assert!(
        r.message().contains("environment nope:1 does not exist"),
        "{}",
        r.message()
    );
    let r = h.post(
        &format!("{WS}/jobs"),
        cmd(json!({"requirements_file": "requirements.txt"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("has none"), "{}", r.message());
    let (ok, err) = submit_with_code(
        &s,
        &cmd(json!({"requirements_file": "reqs.txt"})),
        &[("a.py", "")],
    );
    assert!(!ok);
    assert!(
        err.contains("'reqs.txt' is not in the code snapshot"),
        "{err}"
    );
    assert_eq!(
        h.get(&format!("{WS}/jobs")).ok()["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn command_jobs_run_in_their_environment_built_once_and_cached() {
    let s = Server::start_with_args(
        tempfile::tempdir().unwrap().keep().as_path(),
        None,
        &["--job-slots", "2", "--threads-per-slot", "1"],
    );
    let h = s.http();
    // the README's example as written: `python train.py` in the built-in atrium-mlflow
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("train.py"),
        "import sys, mlflow\nwith mlflow.start_run() as run:\n    mlflow.log_param('lr', 0.1)\n    for s in range(3):\n        mlflow.log_metric('loss', 1.0 / (s + 1), step=s)\n    print('python', sys.executable, 'run', run.info.run_id)\n",
    )
    .unwrap();
    let run_cli = || {
        let (ok, out, err) = s.cli(&[
            "job",
            "submit",
            "--command",
            "python train.py",
            "--code",
            code.path().to_str().unwrap(),
            "--environment",
            "atrium-mlflow",
            "--output",
            "json",
        ]);
        assert!(ok, "{out}{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    let first = run_cli();
    let (j, seen) = wait_job_states(&h, &first, 300);
    let log = job_log(&h, &first);
    assert_eq!(j["state"], "Completed", "{log}");
    assert!(seen.iter().any(|s| s == "Preparing"), "states: {seen:?}");
    assert!(
        log.contains("preparing the environment atrium-mlflow:1"),
        "{log}"
    );
    assert!(log.contains("environment built in"), "{log}");
    assert!(
        log.contains("mlflow-skinny==3.17.2"),
        "uv's output is in the job log: {log}"
    );
    let run = j["run_id"].as_str().unwrap();
    let r = h.get(&format!("{WS}/runs/{run}")).ok();
    assert_eq!(r["params"]["lr"], "0.1");
    let pts = h.get(&format!("{WS}/runs/{run}/metrics/loss")).ok();
    assert_eq!(pts["points"].as_array().unwrap().len(), 3);
    // again: a cache hit, well under 100 ms
    let second = run_cli();
    let (j, _) = wait_job_states(&h, &second, 120);
    let log = job_log(&h, &second);
    assert_eq!(j["state"], "Completed", "{log}");
    let ms: u64 = log
        .lines()
        .find_map(|l| l.split("environment ready (cached, ").nth(1))
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no cache hit: {log}"))
        .parse()
        .unwrap();
    assert!(ms <= 100, "cache hit took {ms} ms");
    assert!(!log.contains("$ uv venv"), "{log}");

    // two jobs needing the same new environment at once (a requirements.txt of the snapshot):
    // it is built once
    let spec = json!({
        "type": "command",
        "environment": {"python": ">=3.9", "requirements_file": "requirements.txt"},
        "command": {"command": "python -c 'import six; print(\"six\", six.__version__)'"},
    });
    let files = [("requirements.txt", "six==1.16.0\n")];
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let (ok, out) = submit_with_code(&s, &spec, &files);
            assert!(ok, "{out}");
            let v: Value = serde_json::from_str(&out).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    let mut builds = 0;
    for id in &ids {
        let (j, _) = wait_job_states(&h, id, 300);
        let log = job_log(&h, id);
        assert_eq!(j["state"], "Completed", "{log}");
        assert!(log.contains("six 1.16.0"), "{log}");
        builds += log.matches("$ uv venv").count();
    }
    assert_eq!(builds, 1, "the environment is built once");

    // a requirement no registry has: the job fails while preparing, with uv's message, and
    // the next job with a good environment still runs
    let bad = h.post(
        &format!("{WS}/jobs"),
        json!({"type": "command", "environment": {"requirements": ["atrium-no-such-package-xyz==1.0"]},
               "command": {"command": "echo never"}}),
    );
    assert_eq!(bad.status, 201, "{}", bad.json);
    let id = bad.ok()["id"].as_str().unwrap().to_string();
    let (j, seen) = wait_job_states(&h, &id, 300);
    let err = j["error"].as_str().unwrap_or("");
    assert_eq!(j["state"], "Failed");
    assert_eq!(seen.last().map(String::as_str), Some("Failed"));
    assert!(!seen.iter().any(|s| s == "Running"), "{seen:?}");
    assert!(err.starts_with("preparing the inline environment"), "{err}");
    assert!(
        err.contains("atrium-no-such-package-xyz"),
        "uv's message: {err}"
    );
    assert!(!job_log(&h, &id).contains("never"));
}
