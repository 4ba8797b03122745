//! The `atrium` CLI as a client of a running server.

use atrium_tests::{Backend, Server, json};

const WS: &str = "/api/v1/workspaces/default";

#[test]
fn cli_verbs_against_a_server() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();

    let (ok, out, err) = s.cli(&["workspace", "create", "team-a", "--description", "vision"]);
    assert!(ok, "{err}");
    assert!(out.contains("team-a") && out.contains("vision"), "{out}");
    let (ok, out, _) = s.cli(&["workspace", "list", "--output", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team-a"]);
    let (ok, _, err) = s.cli(&["workspace", "create", "Not Valid"]);
    assert!(!ok);
    assert!(
        err.contains("INVALID_PARAMETER_VALUE") && err.contains("Not Valid"),
        "{err}"
    );

    let exp = h
        .post(&format!("{WS}/experiments"), json!({ "name": "iris" }))
        .ok()["id"]
        .as_i64()
        .unwrap();
    let mut ids = Vec::new();
    for (i, opt) in ["adam", "sgd", "rmsprop"].iter().enumerate() {
        let id = h
            .post(
                &format!("{WS}/runs"),
                json!({ "experiment_id": exp, "name": format!("r{i}") }),
            )
            .ok()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let metrics: Vec<_> = (0..50).map(|s| json!({ "key": "acc", "value": 0.5 + i as f64 * 0.2 + s as f64 * 0.001, "step": s })).collect();
        h.post(
            &format!("{WS}/runs/{id}/log"),
            json!({ "metrics": metrics, "params": { "opt": opt } }),
        )
        .ok();
        ids.push(id);
    }
    h.raw(
        "PUT",
        &format!("{WS}/runs/{}/artifacts/model/weights.bin", ids[0]),
        Some(b"0123456789".to_vec()),
    )
    .ok();

    let (ok, out, _) = s.cli(&["experiment", "list"]);
    assert!(ok);
    assert!(out.contains("iris") && out.contains("Default"), "{out}");

    // run list by experiment name, with an OR filter, as JSON
    let (ok, out, err) = s.cli(&[
        "run",
        "list",
        "--experiment",
        "iris",
        "--filter",
        "metrics.acc > 0.6 and (params.opt = 'sgd' or params.opt = 'rmsprop')",
        "--order-by",
        "metrics.acc DESC",
        "--output",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r2", "r1"]);
    let (ok, out, _) = s.cli(&["run", "list", "-e", &exp.to_string()]);
    assert!(ok);
    assert!(out.contains("r0") && out.contains("opt=adam"), "{out}");
    let (ok, _, err) = s.cli(&["run", "list", "--experiment", "nope"]);
    assert!(!ok && err.contains("no experiment named 'nope'"), "{err}");
    let (ok, _, err) = s.cli(&["run", "list", "--filter", "metrics.acc >"]);
    assert!(!ok && err.contains("position"), "{err}");

    let (ok, out, _) = s.cli(&["run", "show", &ids[1]]);
    assert!(ok);
    assert!(
        out.contains("param opt") && out.contains("sgd") && out.contains("metric acc"),
        "{out}"
    );
    let (ok, out, _) = s.cli(&[
        "run",
        "metrics",
        &ids[1],
        "acc",
        "--max-points",
        "5",
        "--output",
        "json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["points"].as_array().unwrap().len(), 5);
    assert_eq!(v["total_points"], 50);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.bin");
    let (ok, _, err) = s.cli(&[
        "artifact",
        "get",
        &ids[0],
        "model/weights.bin",
        "-O",
        dest.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789");
    let (ok, _, err) = s.cli(&[
        "artifact",
        "get",
        &ids[0],
        "model/missing.bin",
        "-O",
        dest.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("RESOURCE_DOES_NOT_EXIST"), "{err}");
    let (ok, out, _) = s.cli(&["artifact", "list", &ids[0]]);
    assert!(ok && out.contains("model") && out.contains("dir"), "{out}");
    let src = dir.path().join("notes.txt");
    std::fs::write(&src, "notes").unwrap();
    let (ok, _, err) = s.cli(&[
        "artifact",
        "put",
        &ids[1],
        "docs/notes.txt",
        src.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        h.get(&format!("{WS}/runs/{}/artifacts/docs/notes.txt", ids[1]))
            .bytes,
        b"notes"
    );

    // gc through the CLI, and --workspace selects another workspace
    h.delete(&format!("{WS}/runs/{}", ids[0])).ok();
    let (ok, out, _) = s.cli(&["gc", "--output", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["runs_purged"].as_i64(), v["blobs_deleted"].as_i64()),
        (Some(1), Some(1))
    );
    let (ok, out, _) = s.cli(&[
        "--workspace",
        "team-a",
        "experiment",
        "list",
        "--output",
        "json",
    ]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["experiments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (ok, _, err) = atrium_tests::Server::cli_at("http://127.0.0.1:9", &["workspace", "list"]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
}

#[test]
fn plugin_new_builds_and_pushes() {
    let s = Server::start(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(atrium_tests::bin())
        .args(["plugin", "new", "--kind", "stopper", "my-stopper"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_dir = dir.path().join("my-stopper");
    assert!(
        std::fs::read_to_string(crate_dir.join("plugin.toml"))
            .unwrap()
            .contains("name = \"my-stopper\"")
    );
    // it builds for wasm32-wasip2 as is (sharing the plugins' target dir to reuse dependencies)
    let target = atrium_tests::root().join("plugins/target");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(&crate_dir)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .unwrap();
    assert!(status.success());
    let wasm = target.join("wasm32-wasip2/release/my_stopper.wasm");
    let (ok, out, err) = s.cli(&[
        "component",
        "push",
        wasm.to_str().unwrap(),
        "--manifest",
        crate_dir.join("plugin.toml").to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["name"].as_str(),
            v["version"].as_str(),
            v["kind"].as_str()
        ),
        (Some("my-stopper"), Some("0.1.0"), Some("stopper"))
    );
    let (ok, out, _) = s.cli(&["component", "list"]);
    assert!(
        ok && out.contains("my-stopper") && out.contains("storage-fs"),
        "{out}"
    );
    // the CLI reports upload refusals precisely
    let (ok, _, err) = s.cli(&[
        "component",
        "push",
        wasm.to_str().unwrap(),
        "--manifest",
        crate_dir.join("plugin.toml").to_str().unwrap(),
        "--name",
        "as-storage",
    ]);
    assert!(ok, "{err}");
    let bad_manifest = dir.path().join("bad.toml");
    std::fs::write(
        &bad_manifest,
        "kind = \"storage\"\nname = \"x\"\nversion = \"1\"\n",
    )
    .unwrap();
    let (ok, _, err) = s.cli(&[
        "component",
        "push",
        wasm.to_str().unwrap(),
        "--manifest",
        bad_manifest.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("does not export atrium:plugin/storage"),
        "{err}"
    );
    // datastores through the CLI
    let (ok, out, err) = s.cli(&[
        "datastore",
        "create",
        "second",
        "--component",
        "storage-fs",
        "--version",
        "0.1.0",
        "--config",
        "root=/data",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("second"), "{out}");
    let (ok, out, _) = s.cli(&["datastore", "list"]);
    assert!(
        ok && out.contains("default") && out.contains("second"),
        "{out}"
    );
    let (ok, _, _) = s.cli(&["datastore", "delete", "second"]);
    assert!(ok);
}

#[test]
fn login_saves_a_profile_and_a_401_says_where_the_cli_looked() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start(Backend::Sqlite);
    let (ok, _, err) = s.cli(&["workspace", "create", "team-a"]);
    assert!(ok, "{err}");
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("cfg");
    let profile = cfg.join("atrium/config.toml");
    let cfg_env = cfg.to_str().unwrap().to_string();
    let cli = |args: &[&str], stdin: Option<&str>| {
        atrium_tests::cli_raw(args, &[("XDG_CONFIG_HOME", &cfg_env)], home.path(), stdin)
    };

    // nothing anywhere: the 401 lists every place the CLI looked, and how to log in
    let (ok, _, err) = cli(&["whoami", "--server", &s.url], None);
    assert!(!ok, "{err}");
    for needle in [
        "UNAUTHENTICATED",
        "the CLI found no API token",
        "--token / ATRIUM_TOKEN",
        "ATRIUM_TOKEN_FILE",
        profile.to_str().unwrap(),
        "atrium-data/admin.token",
        &format!("atrium login --server {}", s.url),
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains("Authorization"), "{err}");

    // a token the server refuses is not saved
    let (ok, _, err) = cli(&["login", "--server", &s.url, "--token", "atr_nope"], None);
    assert!(!ok && err.contains("nothing was saved"), "{err}");
    assert!(!profile.exists());

    // login with the token on stdin: checked, saved 0600; later commands need no flags
    let (ok, out, err) = cli(
        &["login", "--server", &s.url, "-w", "team-a"],
        Some(&s.token),
    );
    assert!(
        ok && out.contains("logged in to") && out.contains("admin"),
        "{out}{err}"
    );
    let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, out, err) = cli(&["whoami"], None);
    assert!(ok && out.contains("admin"), "{out}{err}");
    // the workspace saved with the login
    let (ok, _, err) = cli(&["experiment", "create", "in-team-a"], None);
    assert!(ok, "{err}");
    let (ok, out, _) = s.cli(&["experiment", "list", "-w", "team-a"]);
    assert!(ok && out.contains("in-team-a"), "{out}");

    // a second token, logged in, then revoked: the 401 says the token came from the profile
    let (ok, tok2, err) = s.cli(&["token", "create", "--description", "laptop"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["login", "--server", &s.url, "--token", tok2.trim()], None);
    assert!(ok, "{err}");
    let id = s.http().get("/api/v1/tokens").ok()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["description"] == "laptop")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = s.cli(&["token", "revoke", &id]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["whoami"], None);
    assert!(!ok, "{err}");
    assert!(
        err.contains("revoked") && err.contains("the CLI sent the token from the profile"),
        "{err}"
    );
    // flags and ATRIUM_TOKEN win over the profile
    let (ok, out, err) = atrium_tests::cli_raw(
        &["whoami"],
        &[("XDG_CONFIG_HOME", &cfg_env), ("ATRIUM_TOKEN", &s.token)],
        home.path(),
        None,
    );
    assert!(ok && out.contains("admin"), "{out}{err}");

    // logout forgets it
    let (ok, out, err) = cli(&["logout"], None);
    assert!(ok && out.contains("logged out of"), "{out}{err}");
    let (ok, _, err) = cli(&["whoami", "--server", &s.url], None);
    assert!(!ok && err.contains("found no API token"), "{err}");
    assert!(!std::fs::read_to_string(&profile).unwrap().contains("atr_"));
}

#[test]
fn scripting_closed_pipes_one_json_form_and_one_meaning_of_f() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    for i in 0..20 {
        h.post(&format!("{WS}/runs"), json!({ "name": format!("r{i}") }))
            .ok();
    }
    // `... --output json | head`: the reader is gone before the CLI writes; no panic
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(atrium_tests::bin())
        .args(["run", "list", "--output", "json"])
        .env("ATRIUM_SERVER", &s.url)
        .env("ATRIUM_TOKEN", &s.token)
        .env("XDG_CONFIG_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}: {err}",
        out.status
    );

    // --output json: one pretty JSON document on stdout, whatever the command
    let (ok, _, err) = s.cli(&["workspace", "create", "js-a"]);
    assert!(ok, "{err}");
    for args in [
        &["whoami"][..],
        &["token", "list"],
        &["run", "list"],
        &["experiment", "list"],
        &["component", "list"],
        &["workspace", "delete", "js-a"],
    ] {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let (ok, out, err) = s.cli(&a);
        assert!(ok, "{args:?}: {err}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert_eq!(
            out.trim_end(),
            serde_json::to_string_pretty(&v).unwrap(),
            "{args:?}"
        );
    }

    // -f is --follow, and only that
    let code = tempfile::tempdir().unwrap();
    let (ok, out, err) = s.cli(&[
        "job",
        "submit",
        "--command",
        "echo from-the-job",
        "--code",
        code.path().to_str().unwrap(),
        "-f",
    ]);
    assert!(ok && out.contains("from-the-job"), "{out}{err}");
    assert!(err.contains("submitted job"), "{err}");
    let id = h.get(&format!("{WS}/jobs")).ok()["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, err) = s.cli(&["job", "logs", &id, "-f"]);
    assert!(ok && out.contains("from-the-job"), "{out}{err}");
    for args in [
        &["run", "list", "-f", "metrics.acc > 1"][..],
        &["dataset", "create", "d", "-f", "x.csv"],
        &["model", "predict", "--run", "r", "-f", "x.csv"],
        &["secret", "set", "s", "-f", "x"],
        &["endpoint", "invoke", "e", "-f", "x"],
    ] {
        let (ok, _, err) = s.cli(args);
        assert!(
            !ok && err.contains("unexpected argument '-f'"),
            "{args:?}: {err}"
        );
    }
}
