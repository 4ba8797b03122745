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

/// The server's log without terminal colour codes.
fn log_of(s: &Server) -> String {
    let raw = std::fs::read_to_string(&s.log).unwrap();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI ... final byte in '@'..='~'
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn cached_files(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(cache.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    v.sort();
    v
}

/// Artifacts go through the built-in storage-fs component: a run's file round-trips.
fn plugins_work(s: &Server) {
    let h = s.http();
    let run = h.post(&format!("{WS}/runs"), json!({})).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/a.txt"),
        Some(b"hello".to_vec()),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/a.txt")).bytes,
        b"hello"
    );
}

#[test]
fn built_in_plugins_compile_once_per_user_cache_and_the_first_start_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let c = cache.path().to_str().unwrap();
    // a first start on a fresh data directory and an empty cache compiles, and says so first
    let d1 = tempfile::tempdir().unwrap();
    let s1 = Server::start_with_args(d1.path(), None, &["--cache-dir", c]);
    let log = log_of(&s1);
    let said = log
        .find("preparing built-in plugins: compiling them (first start only")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(said < log.find("built-in plugins ready").unwrap(), "{log}");
    let builtins = s1.http().get(&format!("{WS}/components")).ok()["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["builtin"] == true)
        .count();
    assert!(builtins > 0);
    assert_eq!(cached_files(cache.path()).len(), builtins);
    plugins_work(&s1);
    drop(s1);

    // another fresh data directory, same cache: nothing compiled, everything works
    let d2 = tempfile::tempdir().unwrap();
    let s2 = Server::start_with_args(d2.path(), None, &["--cache-dir", c]);
    let log = log_of(&s2);
    assert!(!log.contains("compiling them"), "{log}");
    assert!(log.contains("built-in plugins ready compiled=0"), "{log}");
    plugins_work(&s2);
    drop(s2);

    // a damaged cache file is not trusted: compiled again and replaced
    let files = cached_files(cache.path());
    for f in &files {
        std::fs::write(f, b"not a precompiled component").unwrap();
    }
    let d3 = tempfile::tempdir().unwrap();
    let s3 = Server::start_with_args(d3.path(), None, &["--cache-dir", c]);
    let log = log_of(&s3);
    assert!(log.contains("unusable precompiled component"), "{log}");
    plugins_work(&s3);
    for f in &files {
        assert!(
            std::fs::metadata(f).unwrap().len() > 100,
            "{} not replaced",
            f.display()
        );
    }
    drop(s3);

    // the cache turned off: compiled in the data directory only
    let empty = tempfile::tempdir().unwrap();
    let d4 = tempfile::tempdir().unwrap();
    let s4 = Server::start_with_env(
        d4.path(),
        None,
        &["--cache-dir", "off"],
        &[("XDG_CACHE_HOME", empty.path().to_str().unwrap())],
    );
    assert!(log_of(&s4).contains("compiling them"));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    plugins_work(&s4);
}
