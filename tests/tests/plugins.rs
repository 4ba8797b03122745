//! The plugin platform end to end: the registry's upload validation, datastores as storage
//! plugins, and the hostile-plugin suite (one test per behaviour). Each hostile call must give a
//! precise error, keep the host serving, leave no partial data, and not affect other instances.

use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, json, plugin_wasm};
use serde_json::Value;

const WS: &str = "/api/v1/workspaces/default";

const STORAGE_MANIFEST: &str =
    "kind = \"storage\"\n[capabilities]\ndirs = [{ guest = \"/data\", write = true }]\n";

/// A storage manifest with the given extra lines (limits, capabilities).
fn storage_manifest(extra_caps: &str, limits: &str) -> String {
    format!(
        "kind = \"storage\"\n[capabilities]\ndirs = [{{ guest = \"/data\", write = true }}]\n{extra_caps}\n[limits]\n{limits}\n"
    )
}

/// Registers fixture `stem` as a storage component, makes a datastore of it with `grants`, and
/// an experiment whose runs use it; returns a run id in that experiment.
fn hostile_run(h: &Http, stem: &str, manifest: &str, grants: Value) -> String {
    let name = stem.replace('_', "-");
    let r = h.push_component("default", &name, "1", plugin_wasm(stem), manifest);
    assert_eq!(r.status, 201, "{}", r.json);
    let mut body = json!({ "component": name, "version": "1" });
    for (k, v) in grants.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = h.put(&format!("{WS}/datastores/ds-{name}"), body);
    assert_eq!(r.status, 201, "{}", r.json);
    let exp = h
        .post(
            &format!("{WS}/experiments"),
            json!({ "name": format!("exp-{name}"), "artifact_datastore": format!("ds-{name}") }),
        )
        .ok();
    assert_eq!(exp["artifact_datastore"], format!("ds-{name}"));
    h.post(&format!("{WS}/runs"), json!({ "experiment_id": exp["id"] }))
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn default_run(h: &Http) -> String {
    h.post(&format!("{WS}/runs"), json!({})).ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The host still answers, and the built-in datastore still works, right now.
fn assert_healthy(h: &Http) {
    assert_eq!(h.get("/health").status, 200);
    let run = default_run(h);
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/ok.txt"),
        Some(b"still fine".to_vec()),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/ok.txt")).bytes,
        b"still fine"
    );
}

fn datastore_dir(s: &Server, name: &str) -> std::path::PathBuf {
    let h = s.http();
    let ds = h.get(&format!("{WS}/datastores/{name}")).ok();
    let rel = ds["grants"]["dirs"]["/data"].as_str().unwrap().to_string();
    s.data_dir.join(rel)
}

#[test]
fn registry_validates_uploads() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    // built-ins are registered in every workspace
    let list = h.get(&format!("{WS}/components")).ok();
    let components = list["components"].as_array().unwrap();
    for (name, kind) in [
        ("storage-fs", "storage"),
        ("sampler-random", "sampler"),
        ("sampler-grid", "sampler"),
        ("sampler-tpe", "sampler"),
        ("stop-bandit", "stopper"),
        ("stop-median", "stopper"),
        ("stop-truncation", "stopper"),
        ("stop-asha", "stopper"),
    ] {
        let builtin = components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("built-in {name} missing: {list}"));
        assert_eq!(
            (builtin["kind"].as_str(), builtin["builtin"].as_bool()),
            (Some(kind), Some(true)),
            "{builtin}"
        );
        // the stoppers are incremental 0.2 policies; the others' newest worlds are 0.1's
        let api = if kind == "stopper" { "0.2.0" } else { "0.1.0" };
        assert_eq!(builtin["api_version"], api, "{builtin}");
    }

    // every example loads as its kind (all five worlds)
    for kind in ["storage", "scorer", "sampler", "stopper", "target"] {
        let manifest = std::fs::read_to_string(
            atrium_tests::root().join(format!("plugins/examples/{kind}/plugin.toml")),
        )
        .unwrap();
        let r = h.push_component(
            "default",
            &format!("example-{kind}"),
            "0.1.0",
            plugin_wasm(&format!("example_{kind}")),
            &manifest,
        );
        assert_eq!(r.status, 201, "{kind}: {}", r.json);
        assert_eq!(r.json["kind"], kind);
        assert_eq!(r.json["digest"].as_str().unwrap().len(), 64);
        // the examples are built against plugin API 0.1, which keeps loading
        assert_eq!(r.json["api_version"], "0.1.0", "{kind}");
    }
    // a target built against 0.2 loads beside them (and not as another kind)
    let r = h.push_component(
        "default",
        "target-v2",
        "1.0.0",
        plugin_wasm("fx_target_v2"),
        "kind = \"target\"\n",
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["api_version"], "0.2.0");
    let r = h.push_component(
        "default",
        "target-v2-as-stopper",
        "1.0.0",
        plugin_wasm("fx_target_v2"),
        "kind = \"stopper\"\n",
    );
    assert_eq!(r.status, 400, "{}", r.json);
    // same bytes again: fine; other bytes under the same version: refused
    let manifest = "kind = \"stopper\"\n";
    let r = h.push_component(
        "default",
        "example-stopper",
        "0.1.0",
        plugin_wasm("example_stopper"),
        manifest,
    );
    assert_eq!(r.status, 200);
    let r = h.push_component(
        "default",
        "example-stopper",
        "0.1.0",
        plugin_wasm("fx_stopper"),
        manifest,
    );
    assert_eq!((r.status, r.code()), (409, "RESOURCE_ALREADY_EXISTS"));
    assert!(r.message().contains("immutable"), "{}", r.message());

    let refused = |wasm: Vec<u8>, manifest: &str, needle: &str| {
        let r = h.push_component("default", "bad", "1", wasm, manifest);
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_PARAMETER_VALUE"),
            "{}",
            r.json
        );
        assert!(
            r.message().contains(needle),
            "expected '{needle}' in: {}",
            r.message()
        );
    };
    // a core module, garbage, too large
    refused(
        b"\0asm\x01\0\0\0".to_vec(),
        STORAGE_MANIFEST,
        "core WebAssembly module, not a component",
    );
    refused(
        b"definitely not wasm".to_vec(),
        STORAGE_MANIFEST,
        "not WebAssembly",
    );
    let mut big = b"\0asm\x0d\0\x01\0".to_vec();
    big.resize((32 << 20) + 100, 0);
    refused(big, STORAGE_MANIFEST, "the limit is 33554432 bytes");
    // the wrong world, a forbidden import, a future API version
    refused(
        plugin_wasm("fx_stopper"),
        STORAGE_MANIFEST,
        "does not export atrium:plugin/storage@0.1.0",
    );
    refused(
        plugin_wasm("fx_sockets"),
        STORAGE_MANIFEST,
        "a storage plugin may not import wasi:sockets/",
    );
    refused(
        plugin_wasm("fx_future_api"),
        "kind = \"stopper\"\n",
        "built for plugin API 9.0.0; this host serves plugin API 0.1.0 and 0.2.0",
    );
    refused(
        plugin_wasm("example_target"),
        "kind = \"sampler\"\n",
        "may not import atrium:plugin/config",
    );
    // bad manifests and names
    refused(
        plugin_wasm("example_stopper"),
        "kind = \"nonsense\"\n",
        "invalid manifest",
    );
    refused(
        plugin_wasm("example_stopper"),
        "kind = \"stopper\"\n[capabilities]\nsecrets = [\"x\"]\n",
        "cannot read secrets",
    );
    let r = h.push_component(
        "default",
        "Bad Name",
        "1",
        plugin_wasm("example_stopper"),
        manifest,
    );
    assert_eq!(r.status, 400);
    // nothing of the refused uploads was registered
    let names: Vec<String> = h.get(&format!("{WS}/components")).ok()["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"bad".to_string()));

    // a component in use by a datastore cannot be deleted; otherwise it can
    let r = h.delete(&format!("{WS}/components/storage-fs/versions/0.1.0"));
    assert_eq!((r.status, r.code()), (409, "INVALID_STATE"), "{}", r.json);
    h.delete(&format!("{WS}/components/example-stopper/versions/0.1.0"))
        .ok();
    assert_eq!(
        h.get(&format!("{WS}/components/example-stopper/versions/0.1.0"))
            .status,
        404
    );
}

#[test]
fn datastores_are_storage_plugins() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    // the default datastore is storage-fs
    let ds = h.get(&format!("{WS}/datastores")).ok();
    assert_eq!(ds["datastores"][0]["component"], "storage-fs");
    assert_eq!(ds["datastores"][0]["default"], true);

    // a second datastore from an uploaded component, chosen by an experiment
    let manifest =
        std::fs::read_to_string(atrium_tests::root().join("plugins/examples/storage/plugin.toml"))
            .unwrap();
    h.push_component(
        "default",
        "my-store",
        "1.0.0",
        plugin_wasm("example_storage"),
        &manifest,
    )
    .ok();
    let r = h.put(
        &format!("{WS}/datastores/archive"),
        json!({ "component": "my-store", "version": "1.0.0", "dirs": { "/data": "archive" } }),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    let r = h.put(
        &format!("{WS}/datastores/archive"),
        json!({ "component": "my-store", "version": "1.0.0" }),
    );
    assert_eq!(r.status, 409);
    let r = h.put(
        &format!("{WS}/datastores/nope"),
        json!({ "component": "missing", "version": "1" }),
    );
    assert_eq!(r.status, 404);
    let exp = h
        .post(
            &format!("{WS}/experiments"),
            json!({ "name": "archived", "artifact_datastore": "archive" }),
        )
        .ok();
    let run = h
        .post(&format!("{WS}/runs"), json!({ "experiment_id": exp["id"] }))
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let up = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/data/blob.bin"),
        Some(payload.clone()),
    );
    assert_eq!(up.status, 201, "{}", up.json);
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/data/blob.bin"))
            .bytes,
        payload
    );
    let digest = up.json["digest"].as_str().unwrap();
    let on_disk = s
        .data_dir
        .join("datastores/archive/sha256")
        .join(&digest[..2])
        .join(digest);
    assert_eq!(std::fs::metadata(on_disk).unwrap().len(), 3_000_000);
    // a datastore holding artifacts cannot be deleted
    let r = h.delete(&format!("{WS}/datastores/archive"));
    assert_eq!(r.status, 409);
    let r = h.delete(&format!("{WS}/datastores/default"));
    assert_eq!(r.status, 409);
}

#[test]
fn hostile_infinite_loop_hits_the_deadline() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = hostile_run(
        &h,
        "fx_spin",
        &storage_manifest("", "timeout_ms = 1000"),
        json!({}),
    );
    let base = s.url.clone();
    let spinning = std::thread::spawn(move || {
        let t = Instant::now();
        let r = Http::new(&base).raw(
            "PUT",
            &format!("{WS}/runs/{run}/artifacts/x.bin"),
            Some(b"x".to_vec()),
        );
        (r, t.elapsed())
    });
    // meanwhile, other requests and other plugin instances are served
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert_healthy(&h);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "the host stalled behind the loop: {:?}",
        t.elapsed()
    );
    let (r, took) = spinning.join().unwrap();
    assert_eq!((r.status, r.code()), (502, "PLUGIN_FAILED"), "{}", r.json);
    assert!(
        r.message().contains("exceeded its deadline of 1000 ms"),
        "{}",
        r.message()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_healthy(&h);
}

#[test]
fn hostile_memory_growth_hits_the_cap() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = hostile_run(
        &h,
        "fx_hog",
        &storage_manifest("", "memory_mb = 64"),
        json!({}),
    );
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/x.bin"),
        Some(b"x".to_vec()),
    );
    assert_eq!((r.status, r.code()), (502, "PLUGIN_FAILED"), "{}", r.json);
    assert!(
        r.message().contains("exceeded its memory limit of 64 MiB"),
        "{}",
        r.message()
    );
    assert_healthy(&h);
}

#[test]
fn hostile_huge_return_value_is_stopped() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = hostile_run(
        &h,
        "fx_huge_return",
        &storage_manifest("", "memory_mb = 128"),
        json!({}),
    );
    let up = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/x.bin"),
        Some(b"hello".to_vec()),
    );
    assert_eq!(up.status, 201, "{}", up.json);
    let r = h.get(&format!("{WS}/runs/{run}/artifacts/x.bin"));
    assert_eq!((r.status, r.code()), (502, "PLUGIN_FAILED"), "{}", r.json);
    assert!(
        r.message().contains("exceeded its memory limit of 128 MiB"),
        "{}",
        r.message()
    );
    assert_healthy(&h);
}

#[test]
fn hostile_sandbox_escapes_are_refused() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = hostile_run(&h, "fx_naive_fs", STORAGE_MANIFEST, json!({}));
    // plant a symlink inside the granted directory that points outside
    let dir = datastore_dir(&s, "ds-fx-naive-fs");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("planted")).unwrap();
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/x.bin"),
        Some(b"x".to_vec()),
    );
    assert_eq!((r.status, r.code()), (502, "PLUGIN_FAILED"), "{}", r.json);
    let m = r.message();
    assert!(
        !m.contains("LEAKED") && !m.contains("root:"),
        "the sandbox leaked: {m}"
    );
    for path in ["/data/../../etc/passwd", "/etc/passwd", "/data/planted"] {
        assert!(m.contains(path), "{path} not attempted: {m}");
    }
    // guest logs reach the host's log, tagged with workspace, component and version
    let log = std::fs::read_to_string(&s.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("sandbox probe"))
        .expect("the plugin's log line");
    assert!(
        line.contains("workspace") && line.contains("default") && line.contains("fx-naive-fs"),
        "{line}"
    );
    assert_healthy(&h);
}

#[test]
fn hostile_http_needs_a_grant_and_a_public_address() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let authority = format!("127.0.0.1:{port}");
    let manifest = storage_manifest(
        &format!("http = [\"{authority}\"]\nconfig = [\"url\"]"),
        "timeout_ms = 5000",
    );
    let url = format!("http://{authority}/health");
    let wasm = plugin_wasm("fx_http_call");
    h.push_component("default", "fx-http-call", "1", wasm, &manifest)
        .ok();
    let exp_with = |name: &str, grants: Value| -> String {
        let mut body =
            json!({ "component": "fx-http-call", "version": "1", "config": { "url": url } });
        for (k, v) in grants.as_object().unwrap() {
            body[k] = v.clone();
        }
        h.put(&format!("{WS}/datastores/{name}"), body).ok();
        let exp = h
            .post(
                &format!("{WS}/experiments"),
                json!({ "name": name, "artifact_datastore": name }),
            )
            .ok();
        h.post(&format!("{WS}/runs"), json!({ "experiment_id": exp["id"] }))
            .ok()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let upload = |run: &str| {
        h.raw(
            "PUT",
            &format!("{WS}/runs/{run}/artifacts/x.bin"),
            Some(b"x".to_vec()),
        )
    };
    // requested but not granted
    let r = upload(&exp_with("no-grant", json!({})));
    assert_eq!(r.status, 502);
    assert!(r.message().contains("HttpRequestDenied"), "{}", r.message());
    // granted, but the host resolves to loopback
    let r = upload(&exp_with("loopback", json!({ "http": [authority] })));
    assert!(
        r.message().contains("DestinationIpProhibited"),
        "{}",
        r.message()
    );
    // granted with private addresses allowed: the call goes through
    let r = upload(&exp_with(
        "allowed",
        json!({ "http": [authority], "http_private": true }),
    ));
    assert!(
        r.message().contains("fetched status 200"),
        "{}",
        r.message()
    );
    assert_healthy(&h);
}

#[test]
fn hostile_secret_requests_are_denied() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    // requested by the manifest, not granted by the operator
    let run = hostile_run(
        &h,
        "fx_secret",
        &storage_manifest("secrets = [\"db-password\"]", ""),
        json!({}),
    );
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/x.bin"),
        Some(b"x".to_vec()),
    );
    assert_eq!(r.status, 502);
    assert!(
        r.message().contains("secret 'db-password' is not granted"),
        "{}",
        r.message()
    );
    assert_healthy(&h);
}

#[test]
fn hostile_trap_mid_write_leaves_nothing() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = hostile_run(&h, "fx_trap_write", STORAGE_MANIFEST, json!({}));
    // 3 MB arrives in several chunks: the plugin panics on the second
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/x.bin"),
        Some(vec![1u8; 3_000_000]),
    );
    assert_eq!((r.status, r.code()), (502, "PLUGIN_FAILED"), "{}", r.json);
    assert!(r.message().contains("crashed"), "{}", r.message());
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/x.bin")).status,
        404
    );
    assert!(
        h.get(&format!("{WS}/runs/{run}/artifacts")).ok()["files"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // the partial temporary file is removed by a fresh instance
    let tmp = datastore_dir(&s, "ds-fx-trap-write").join(".tmp");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "partial data left behind"
    );
    assert_healthy(&h);
}
