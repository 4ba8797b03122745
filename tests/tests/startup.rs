//! Starting the server: one server per SQLite data directory (a lock the kernel drops when the
//! process dies), and the first start's preparation of the built-in plugins.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atrium_tests::{Http, Server, bin, fresh_pg_database};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

/// Runs `atrium serve` on `dir` expecting it to exit by itself; returns (success, stderr).
fn serve_expecting_exit(dir: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("ATRIUM_CONFIG")
        .env_remove("ATRIUM_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second server kept running on a locked data directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/jobs/{id}")).ok()
}

fn wait_state(h: &Http, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(h, id);
        if j["state"] == want {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} never got {want}: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_second_server_on_a_sqlite_data_dir_is_refused_and_kill9_leaves_no_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(dir.path(), None);
    let h = first.http();
    let spec = json!({ "type": "command", "command": { "command": "sleep 300" } });
    let id = h.post(&format!("{WS}/jobs"), spec).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&h, &id, "Running");

    // another port, same data directory: refused, naming the holder
    let (ok, err) = serve_expecting_exit(dir.path(), &[]);
    assert!(!ok, "the second server started: {err}");
    let pid = first.pid().unwrap();
    assert!(
        err.contains("in use by another atrium server") && err.contains(&format!("PID {pid}")),
        "{err}"
    );
    // and so is the recovery path that also opens the data directory
    let (ok, err) = serve_expecting_exit(dir.path(), &["--reset-admin-token"]);
    assert!(!ok && err.contains(&format!("PID {pid}")), "{err}");
    // the first server's job was not touched
    std::thread::sleep(Duration::from_millis(500));
    let j = job(&h, &id);
    assert_eq!(j["state"], "Running", "{j}");
    assert!(j["error"].is_null(), "{j}");

    // kill -9: the kernel drops the lock, the next server starts and recovers the job
    first.kill9();
    first.restart();
    let h = first.http();
    let j = wait_state(&h, &id, "Failed");
    assert_eq!(j["error"], "interrupted by a host restart");
}

#[test]
fn servers_sharing_postgresql_may_share_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_pg_database();
    let a = Server::start_in(dir.path(), Some(db.clone()));
    let b = Server::start_in(dir.path(), Some(db.clone()));
    assert_eq!(a.http().get("/health").status, 200);
    assert_eq!(b.http().get("/health").status, 200);
    drop(a);
    drop(b);
    atrium_tests::drop_pg_database(&db);
}
