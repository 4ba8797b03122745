//! Runs the Python compatibility suite (tests/python) with the real `mlflow` client against a
//! real server, on SQLite and on PostgreSQL.

use std::path::PathBuf;
use std::process::Command;

use atrium_tests::{Backend, Server, root};

/// The pinned client the suite runs with.
const REQUIREMENTS: &str = "tests/python/requirements.txt";

/// The virtualenv python: `ATRIUM_TEST_PYTHON`, or `tests/python/.venv`, created when missing.
fn python() -> PathBuf {
    static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(p) = std::env::var("ATRIUM_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root().join("tests/python/.venv");
    let py = venv.join("bin/python");
    let stamp = venv.join(".requirements");
    let wanted = std::fs::read_to_string(root().join(REQUIREMENTS)).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(root().join(REQUIREMENTS))
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install -r {REQUIREMENTS} failed");
        std::fs::write(&stamp, wanted).unwrap();
    }
    py
}

fn run_suite(backend: Backend) {
    let py = python();
    let s = Server::start(backend);
    let out = Command::new(py)
        .args(["-m", "unittest", "-v", "test_mlflow_compat"])
        .current_dir(root().join("tests/python"))
        .env("ATRIUM_URL", &s.url)
        .env("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mlflow compatibility suite failed:\n{stderr}\nserver log:\n{}",
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    assert!(stderr.contains("OK"), "{stderr}");
}

#[test]
fn mlflow_client_against_sqlite() {
    run_suite(Backend::Sqlite);
}

#[test]
fn mlflow_client_against_postgres() {
    run_suite(Backend::Postgres);
}
