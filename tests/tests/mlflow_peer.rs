//! MLflow's own REST test modules (`test_rest_tracking.py`, `test_model_registry.py`, vendored in
//! tests/peer/mlflow) against the real binary: every test in Atrium's scope must pass (the ones
//! that do not count are named in tests/peer/scope.sh and the README's MLflow section).

use std::process::Command;

use atrium_tests::{bin, root};

#[test]
fn mlflow_own_rest_tests_pass() {
    let out = Command::new(root().join("tests/peer/scope.sh"))
        .arg(bin())
        .env("PEER_WORK", root().join("target/peer-mlflow"))
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .expect("run tests/peer/scope.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
        .unwrap_or("(no pytest summary line)");
    // shown with --nocapture, and in the failure message
    println!("MLflow REST test modules against atrium: {summary}");
    assert!(
        out.status.success()
            && summary.contains(" passed")
            // "1 xfailed" (an expected failure) is fine; "N failed" or "N errors" is not
            && !summary.split([',', ' ']).any(|w| w == "failed" || w.starts_with("error")),
        "MLflow's REST test modules failed against atrium ({}): {summary}\n{stdout}\n{stderr}",
        out.status
    );
}
