//! The workspace secret store against the real binary: values go in through the API and the
//! CLI and never come out (responses, CLI output, the server log, the database file); storage
//! plugins read only granted secrets; command jobs get them as environment variables; the
//! master key is checked at startup.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, bin, plugin_wasm};
use base64::Engine;
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

/// A value distinctive enough that finding it anywhere is a leak.
const VALUE: &str = "s3cr3t-VALUE-7f3a9c41d2";
const VALUE2: &str = "second-VALUE-0b8e44e1a97c5";

const SECRET_MANIFEST: &str = "kind = \"storage\"\n[capabilities]\ndirs = [{ guest = \"/data\", write = true }]\nsecrets = [\"db-password\"]\n";

/// Asserts `needle` is nowhere in `haystack`.
fn assert_absent(what: &str, haystack: &[u8], needle: &str) {
    assert!(
        !haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes()),
        "the secret value leaked into {what}"
    );
}

/// Runs the CLI with `input` on standard input.
fn cli_stdin(s: &Server, args: &[&str], input: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env("ATRIUM_SERVER", &s.url)
        .env("ATRIUM_TOKEN", &s.token)
        .env_remove("ATRIUM_WORKSPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run atrium cli");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Every server log of a data directory (one per start).
fn server_logs(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("server-") && name.ends_with(".log") {
            all.extend(std::fs::read(e.path()).unwrap());
        }
    }
    all
}

/// The SQLite database with its WAL and shared-memory files.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("atrium.db") {
            all.extend(std::fs::read(e.path()).unwrap());
        }
    }
    assert!(!all.is_empty(), "no database files in {}", dir.display());
    all
}

/// Starts `atrium serve` on `dir` expecting it to fail; returns its stderr.
fn start_fails(dir: &Path, env_key: Option<&str>) -> String {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("ATRIUM_CONFIG")
        .env_remove("ATRIUM_DATABASE_URL")
        .env_remove("ATRIUM_MASTER_KEY")
        .env_remove("ATRIUM_MASTER_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(k) = env_key {
        cmd.env("ATRIUM_MASTER_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(!status.success(), "the server started: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server neither started nor failed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `atrium serve` on `dir` with the master key in the environment, waits until it
/// listens, and stops it.
fn starts_with_env_key(dir: &Path, key: &str) {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("ATRIUM_CONFIG")
        .env_remove("ATRIUM_DATABASE_URL")
        .env_remove("ATRIUM_MASTER_KEY_FILE")
        .env("ATRIUM_MASTER_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("atrium listening on"),
        "the server did not start with the key in ATRIUM_MASTER_KEY"
    );
}

fn put_secret(h: &Http, ws: &str, name: &str, value: &str) -> atrium_tests::Resp {
    h.put(
        &format!("/api/v1/workspaces/{ws}/secrets/{name}"),
        json!({ "value": value }),
    )
}

/// A datastore of the `secret` fixture with `grants`, an experiment on it and a run there.
fn fixture_run(h: &Http, ds: &str, grants: Value) -> String {
    let mut body = json!({ "component": "fx-secret", "version": "1" });
    for (k, v) in grants.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = h.put(&format!("{WS}/datastores/{ds}"), body);
    assert_eq!(r.status, 201, "{}", r.json);
    let exp = h
        .post(
            &format!("{WS}/experiments"),
            json!({ "name": format!("exp-{ds}"), "artifact_datastore": ds }),
        )
        .ok();
    h.post(&format!("{WS}/runs"), json!({ "experiment_id": exp["id"] }))
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Uploads an artifact through the fixture; its answer tells what `secrets.get` returned.
fn fixture_put(h: &Http, run: &str) -> atrium_tests::Resp {
    h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/x.bin"),
        Some(b"x".to_vec()),
    )
}

fn wait_job(h: &Http, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = h.get(&format!("{WS}/jobs/{id}")).ok();
        if matches!(
            j["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits a command job that prints the length of `$API_TOKEN`; returns (job, its log).
fn token_length_job(h: &Http) -> (Value, String) {
    let j = h
        .post(
            &format!("{WS}/jobs"),
            json!({ "type": "command", "command": {
                "command": "echo \"token length ${#API_TOKEN}\"", "secrets": ["API_TOKEN"] } }),
        )
        .ok();
    let done = wait_job(h, j["id"].as_str().unwrap());
    let log = h
        .get(&format!("{WS}/jobs/{}/logs", j["id"].as_str().unwrap()))
        .bytes;
    (done, String::from_utf8_lossy(&log).into())
}

#[test]
fn secrets_api_and_cli_never_reveal_values() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let mut seen: Vec<u8> = Vec::new();

    // create, replace: 201 then 200, metadata only
    let r = put_secret(&h, "default", "db-password", VALUE);
    seen.extend_from_slice(&r.bytes);
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["name"], "db-password");
    assert_eq!(r.json["version"], 1);
    assert!(r.json.get("value").is_none());
    let r = put_secret(&h, "default", "db-password", VALUE2);
    seen.extend_from_slice(&r.bytes);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["version"], 2);
    assert!(r.json["updated_at"].as_i64() >= r.json["created_at"].as_i64());

    let r = h.get(&format!("{WS}/secrets"));
    seen.extend_from_slice(&r.bytes);
    let list = r.ok();
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["secrets"][0]["name"], "db-password");
    let r = h.get(&format!("{WS}/secrets/db-password"));
    seen.extend_from_slice(&r.bytes);
    let one = r.ok();
    assert_eq!(one["version"], 2);
    assert_eq!(one["datastores"], json!([]));

    // precise refusals, none of which echoes the value
    let r = h.get(&format!("{WS}/secrets/nope"));
    assert_eq!((r.status, r.code()), (404, "RESOURCE_DOES_NOT_EXIST"));
    assert!(
        r.message()
            .contains("secret 'nope' does not exist in workspace 'default'")
    );
    for (path, body, status, needle) in [
        (
            "bad%20name",
            json!({ "value": VALUE }),
            400,
            "invalid secret name",
        ),
        ("k", json!({ "value": "" }), 400, "must not be empty"),
        (
            "k",
            json!({ "value": "x".repeat(65 * 1024) }),
            400,
            "the limit is 65536 bytes",
        ),
        (
            "k",
            json!({ "value": 5 }),
            400,
            "with the value as a string",
        ),
        (
            "k",
            json!({ "value": VALUE, "note": VALUE }),
            400,
            "no other field",
        ),
        ("k", json!({ "valeu": VALUE }), 400, "{\"value\""),
    ] {
        let r = h.put(&format!("{WS}/secrets/{path}"), body);
        seen.extend_from_slice(&r.bytes);
        assert_eq!(r.status, status, "{path}: {}", r.json);
        assert!(r.message().contains(needle), "{}", r.message());
    }
    let r = h.raw(
        "PUT",
        &format!("{WS}/secrets/k"),
        Some(format!("{{\"value\": \"{VALUE}").into_bytes()),
    );
    seen.extend_from_slice(&r.bytes);
    assert_eq!((r.status, r.code()), (400, "MALFORMED_REQUEST"));

    // the CLI: stdin loses one trailing newline, --file is taken as is
    let (ok, out, err) = cli_stdin(
        &s,
        &["secret", "set", "API_TOKEN"],
        format!("{VALUE}\n").as_bytes(),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("created secret API_TOKEN (version 1)"),
        "{out}"
    );
    seen.extend(out.as_bytes());
    seen.extend(err.as_bytes());
    let (done, log) = token_length_job(&h);
    assert_eq!(done["state"], "Completed", "{done}\n{log}");
    assert!(
        log.contains(&format!("token length {}", VALUE.len())),
        "{log}"
    );
    seen.extend(log.as_bytes());
    let file = s.data_dir.join("value.txt");
    std::fs::write(&file, format!("{VALUE2}\n")).unwrap();
    let (ok, out, err) = s.cli(&[
        "secret",
        "set",
        "API_TOKEN",
        "--file",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    std::fs::remove_file(&file).unwrap();
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 2);
    seen.extend(out.as_bytes());
    let (_, log) = token_length_job(&h);
    assert!(
        log.contains(&format!("token length {}", VALUE2.len() + 1)),
        "{log}"
    );
    seen.extend(log.as_bytes());
    for args in [
        vec!["secret", "list"],
        vec!["secret", "list", "-o", "json"],
        vec!["secret", "show", "API_TOKEN"],
        vec!["secret", "show", "API_TOKEN", "-o", "json"],
    ] {
        let (ok, out, err) = s.cli(&args);
        assert!(ok, "{args:?}: {err}");
        assert!(out.contains("API_TOKEN"), "{args:?}: {out}");
        seen.extend(out.as_bytes());
        seen.extend(err.as_bytes());
    }
    let (ok, out, _) = s.cli(&["secret", "list", "-o", "json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_TOKEN", "db-password"]);
    let (ok, _, err) = s.cli(&["secret", "show", "missing"]);
    assert!(
        !ok && err.contains("secret 'missing' does not exist"),
        "{err}"
    );
    let (ok, out, err) = s.cli(&["secret", "delete", "API_TOKEN"]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted secret API_TOKEN"), "{out}");
    let (ok, _, err) = s.cli(&["secret", "delete", "API_TOKEN"]);
    assert!(!ok && err.contains("does not exist"), "{err}");

    // API delete
    let r = h.delete(&format!("{WS}/secrets/db-password"));
    seen.extend_from_slice(&r.bytes);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(h.delete(&format!("{WS}/secrets/db-password")).status, 404);
    assert!(
        h.get(&format!("{WS}/secrets")).ok()["secrets"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // deleting a workspace deletes its secrets
    h.put("/api/v1/workspaces/team-a", json!({})).ok();
    assert_eq!(put_secret(&h, "team-a", "token", VALUE).status, 201);
    h.delete("/api/v1/workspaces/team-a").ok();
    h.put("/api/v1/workspaces/team-a", json!({})).ok();
    let r = h.get("/api/v1/workspaces/team-a/secrets").ok();
    assert!(r["secrets"].as_array().unwrap().is_empty(), "{r}");

    // one stays, so the database holds ciphertext of it
    assert_eq!(put_secret(&h, "default", "kept", VALUE).status, 201);
    for v in [VALUE, VALUE2] {
        assert_absent("an API response or the CLI's output", &seen, v);
        assert_absent("the database files", &database_bytes(&s.data_dir), v);
    }
    assert!(
        database_bytes(&s.data_dir).windows(4).any(|w| w == b"kept"),
        "the database files hold no secret row at all"
    );
    s.stop();
    for v in [VALUE, VALUE2] {
        assert_absent("the database files", &database_bytes(&s.data_dir), v);
        assert_absent("the server log", &server_logs(&s.data_dir), v);
    }
}

#[test]
fn storage_plugin_reads_only_granted_secrets_across_restarts() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let r = h.push_component(
        "default",
        "fx-secret",
        "1",
        plugin_wasm("fx_secret"),
        SECRET_MANIFEST,
    );
    assert_eq!(r.status, 201, "{}", r.json);

    // a grant naming a secret that does not exist is refused
    let r = h.put(
        &format!("{WS}/datastores/ds-missing"),
        json!({ "component": "fx-secret", "version": "1", "secrets": ["db-password"] }),
    );
    assert_eq!(
        (r.status, r.code()),
        (404, "RESOURCE_DOES_NOT_EXIST"),
        "{}",
        r.json
    );
    assert!(
        r.message()
            .contains("secret 'db-password' does not exist in workspace 'default'"),
        "{}",
        r.message()
    );

    // granted and set: the plugin reads the value
    assert_eq!(put_secret(&h, "default", "db-password", VALUE).status, 201);
    let granted = fixture_run(&h, "ds-granted", json!({ "secrets": ["db-password"] }));
    let r = fixture_put(&h, &granted);
    assert_eq!(r.status, 502, "{}", r.json);
    assert!(
        r.message()
            .contains(&format!("got a secret of {} bytes", VALUE.len())),
        "{}",
        r.message()
    );
    // requested but not granted: denied
    let denied = fixture_run(&h, "ds-denied", json!({}));
    let r = fixture_put(&h, &denied);
    assert_eq!(r.status, 502);
    assert!(
        r.message().contains("secret 'db-password' is not granted"),
        "{}",
        r.message()
    );

    // a replaced value reaches the open datastore at once
    assert_eq!(put_secret(&h, "default", "db-password", VALUE2).status, 200);
    let r = fixture_put(&h, &granted);
    assert!(
        r.message()
            .contains(&format!("got a secret of {} bytes", VALUE2.len())),
        "{}",
        r.message()
    );
    // a secret a datastore is granted cannot be deleted
    let shown = h.get(&format!("{WS}/secrets/db-password")).ok();
    assert_eq!(shown["datastores"], json!(["ds-granted"]));
    let r = h.delete(&format!("{WS}/secrets/db-password"));
    assert_eq!((r.status, r.code()), (409, "INVALID_STATE"), "{}", r.json);
    assert!(
        r.message().contains("granted to datastore 'ds-granted'"),
        "{}",
        r.message()
    );

    // after a restart the secret still decrypts
    s.restart();
    let h = s.http();
    let r = fixture_put(&h, &granted);
    assert!(
        r.message()
            .contains(&format!("got a secret of {} bytes", VALUE2.len())),
        "{}",
        r.message()
    );
    let r = fixture_put(&h, &denied);
    assert!(r.message().contains("is not granted"), "{}", r.message());
    s.stop();
    assert_absent("the server log", &server_logs(&s.data_dir), VALUE);
    assert_absent("the server log", &server_logs(&s.data_dir), VALUE2);
}

#[test]
fn master_key_is_generated_private_and_checked_at_startup() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let key_file = s.data_dir.join("master.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let log = String::from_utf8_lossy(&server_logs(&s.data_dir)).to_string();
    assert!(
        log.contains(&format!("generated master key at {}", key_file.display()))
            && log.contains("back it up"),
        "{log}"
    );
    assert_eq!(put_secret(&h, "default", "API_TOKEN", VALUE).status, 201);
    s.stop();
    let original = std::fs::read(&key_file).unwrap();

    // another key, in the environment or in the key file: refused with the reason
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let err = start_fails(&s.data_dir, Some(&other));
    assert!(
        err.contains("the master key from ATRIUM_MASTER_KEY")
            && err.contains("is not the key this database's secrets were sealed with"),
        "{err}"
    );
    let err = start_fails(&s.data_dir, Some("not-a-key"));
    assert!(
        err.contains("ATRIUM_MASTER_KEY is not a usable master key"),
        "{err}"
    );
    assert!(!err.contains("not-a-key"), "{err}");
    std::fs::write(&key_file, format!("{other}\n")).unwrap();
    let err = start_fails(&s.data_dir, None);
    assert!(
        err.contains(&format!(
            "the master key from key file {}",
            key_file.display()
        )) && err.contains("is not the key"),
        "{err}"
    );
    // a lost key file is not silently replaced while secrets exist
    std::fs::remove_file(&key_file).unwrap();
    let err = start_fails(&s.data_dir, None);
    assert!(
        err.contains("does not exist, but this database holds secrets"),
        "{err}"
    );
    assert!(!key_file.exists());

    // the original key opens them again: in the environment, or restored to the key file
    let original_b64 = String::from_utf8(original.clone()).unwrap();
    starts_with_env_key(&s.data_dir, original_b64.trim());
    assert!(
        !key_file.exists(),
        "a key in the environment writes no key file"
    );
    std::fs::write(&key_file, &original).unwrap();
    let s2 = Server::start_in(&s.data_dir, None);
    let h = s2.http();
    let (done, log) = token_length_job(&h);
    assert_eq!(done["state"], "Completed", "{done}\n{log}");
    assert!(
        log.contains(&format!("token length {}", VALUE.len())),
        "{log}"
    );
    drop(s2);
    assert_absent("the server log", &server_logs(&s.data_dir), VALUE);
    assert_absent(
        "the server log",
        &server_logs(&s.data_dir),
        original_b64.trim(),
    );
}

#[test]
fn command_jobs_get_secrets_as_environment_variables() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    // unknown secret: refused at submission; a name that is no environment name: refused
    let r = h.post(
        &format!("{WS}/jobs"),
        json!({ "type": "command", "command": { "command": "true", "secrets": ["API_TOKEN"] } }),
    );
    assert_eq!(
        (r.status, r.code()),
        (404, "RESOURCE_DOES_NOT_EXIST"),
        "{}",
        r.json
    );
    assert!(
        r.message().contains("secret 'API_TOKEN' does not exist"),
        "{}",
        r.message()
    );
    let r = h.post(
        &format!("{WS}/jobs"),
        json!({ "type": "command", "command": { "command": "true", "secrets": ["db-password"] } }),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.message().contains("environment variable"),
        "{}",
        r.message()
    );

    assert_eq!(put_secret(&h, "default", "API_TOKEN", VALUE).status, 201);
    let (done, log) = token_length_job(&h);
    assert_eq!(done["state"], "Completed", "{done}\n{log}");
    assert!(
        log.contains(&format!("token length {}", VALUE.len())),
        "{log}"
    );
    assert_absent("the job log", log.as_bytes(), VALUE);

    // through the CLI
    let code = tempfile::tempdir().unwrap();
    let (ok, out, err) = s.cli(&[
        "job",
        "submit",
        "--command",
        "echo \"cli token length ${#API_TOKEN}\"",
        "--secret",
        "API_TOKEN",
        "--code",
        code.path().to_str().unwrap(),
        "--follow",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!("cli token length {}", VALUE.len()))
            || err.contains(&format!("cli token length {}", VALUE.len())),
        "{out}\n{err}"
    );
    assert_absent("the CLI's output", format!("{out}{err}").as_bytes(), VALUE);
}

#[test]
fn secrets_on_postgres() {
    let mut s = Server::start(Backend::Postgres);
    let h = s.http();
    assert_eq!(put_secret(&h, "default", "API_TOKEN", VALUE).status, 201);
    let r = put_secret(&h, "default", "API_TOKEN", VALUE2);
    assert_eq!((r.status, r.json["version"].as_i64()), (200, Some(2)));
    assert_eq!(put_secret(&h, "default", "other", VALUE).status, 201);
    let list = h.get(&format!("{WS}/secrets")).ok();
    assert_eq!(list["secrets"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(h.delete(&format!("{WS}/secrets/other")).status, 200);
    s.restart();
    let h = s.http();
    let (done, log) = token_length_job(&h);
    assert_eq!(done["state"], "Completed", "{done}\n{log}");
    assert!(
        log.contains(&format!("token length {}", VALUE2.len())),
        "{log}"
    );
    let list = h.get(&format!("{WS}/secrets")).ok();
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1, "{list}");
    s.stop();
    assert_absent("the server log", &server_logs(&s.data_dir), VALUE2);
}
