//! The built-in `storage-s3` datastore against a real S3 store (SeaweedFS, started by
//! scripts/test.sh): artifacts from 1 MiB to 256 MiB byte-exact (multipart beyond one part),
//! ranged reads, listing past 1000 objects (garbage collection pages through them), precise
//! refusals at creation (wrong key, unknown key, missing bucket, host not granted), and the
//! store going away for 10 s (uploads fail cleanly, nothing half-visible, a later retry works).

use std::time::{Duration, Instant};

use atrium_tests::{
    Backend, Gate, Http, Server, new_run, s3_bucket, s3_datastore, s3_env, s3_keys,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const WS: &str = "/api/v1/workspaces/default";
const MIB: usize = 1 << 20;

/// Deterministic bytes that do not repeat within a part.
fn content(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn put(h: &Http, run: &str, path: &str, body: Vec<u8>) -> atrium_tests::Resp {
    h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/{path}"),
        Some(body),
    )
}

fn get_range(h: &Http, run: &str, path: &str, range: &str) -> reqwest::blocking::Response {
    h.request(
        reqwest::Method::GET,
        &format!("{WS}/runs/{run}/artifacts/{path}"),
    )
    .header("Range", range)
    .timeout(Duration::from_secs(300))
    .send()
    .unwrap()
}

/// Artifacts of 1, 9 (two parts) and 256 MiB go to the S3 default datastore and come back
/// byte-exact; ranged reads (a middle span, a suffix, past the end) read only what they ask.
#[test]
fn artifacts_round_trip_through_s3_with_ranged_reads() {
    let s = Server::start_fresh(Backend::Sqlite, &[]);
    let h = s.http();
    let bucket = s3_bucket("roundtrip");
    let ds = s3_datastore(&h, "s3", &bucket, None, true).ok();
    assert_eq!(ds["default"], true, "{ds}");
    let listed = h.get(&format!("{WS}/datastores")).ok();
    assert_eq!(
        listed["datastores"][0]["name"], "s3",
        "the default is listed first"
    );
    let r = new_run(&h, "s3-artifacts");
    for (i, size) in [MIB, 9 * MIB, 256 * MIB].into_iter().enumerate() {
        let data = content(size, i as u32 + 1);
        let digest = hex(&data);
        let up = put(&h, &r, &format!("f{i}.bin"), data.clone()).ok();
        assert_eq!(up["digest"], digest.as_str(), "{up}");
        assert_eq!(up["size"], size as u64);
        let got = h.get(&format!("{WS}/runs/{r}/artifacts/f{i}.bin"));
        assert_eq!(got.status, 200);
        assert!(
            got.bytes == data,
            "{size}-byte artifact came back different"
        );
        if size == 256 * MIB {
            let mid = get_range(&h, &r, "f2.bin", "bytes=200000000-200000099");
            assert_eq!(mid.status(), 206);
            assert_eq!(
                mid.headers()["content-range"],
                format!("bytes 200000000-200000099/{size}").as_str()
            );
            assert_eq!(
                mid.bytes().unwrap().as_ref(),
                &data[200_000_000..200_000_100]
            );
            let tail = get_range(&h, &r, "f2.bin", "bytes=-5");
            assert_eq!(tail.status(), 206);
            assert_eq!(tail.bytes().unwrap().as_ref(), &data[size - 5..]);
            let past = get_range(&h, &r, "f2.bin", &format!("bytes={size}-"));
            assert_eq!(past.status(), 416);
        }
    }
    // what the bucket holds: every artifact under its content name; the large ones as an
    // index object naming their multipart blob
    let keys = s3_keys(&bucket);
    let names = keys.iter().filter(|k| k.starts_with("sha256/")).count();
    let blobs = keys.iter().filter(|k| k.starts_with("blobs/")).count();
    assert_eq!((names, blobs), (3, 2), "{keys:?}");
}

/// More than 1000 blobs: garbage collection lists the datastore page by page and frees them
/// all once their run is purged.
#[test]
fn listing_pages_past_1000_objects() {
    let s = Server::start_fresh(Backend::Sqlite, &[]);
    let h = s.http();
    let bucket = s3_bucket("listing");
    s3_datastore(&h, "s3", &bucket, None, true).ok();
    let r = new_run(&h, "many");
    let n = 1050;
    let client = reqwest::blocking::Client::new();
    for i in 0..n {
        let resp = client
            .put(format!("{}{WS}/runs/{r}/artifacts/small/{i}.txt", s.url))
            .bearer_auth(&s.token)
            .body(format!("object {i}"))
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    }
    assert_eq!(
        s3_keys(&bucket)
            .iter()
            .filter(|k| k.starts_with("sha256/"))
            .count(),
        n
    );
    h.post("/api/2.0/mlflow/runs/delete", json!({ "run_id": r }))
        .ok();
    let gc = h.post("/api/v1/gc", json!({})).ok();
    assert_eq!(gc["blobs_deleted"], n as u64, "{gc}");
    assert!(s3_keys(&bucket).is_empty());
}

/// Creating a datastore checks it works: a wrong secret key, an unknown access key, a
/// missing bucket and a host not granted are each refused with what to fix, and nothing is
/// created.
#[test]
fn bad_credentials_and_missing_buckets_are_refused_at_creation() {
    let s = Server::start_fresh(Backend::Sqlite, &[]);
    let h = s.http();
    let env = s3_env();
    let bucket = s3_bucket("refusals");
    let endpoint = env["S3_ENDPOINT"].clone();
    let host = endpoint.trim_start_matches("http://").to_string();
    let secret = |name: &str, value: &str| {
        h.put(&format!("{WS}/secrets/{name}"), json!({ "value": value }))
            .ok();
    };
    secret("good-access", &env["S3_ACCESS_KEY"]);
    secret("good-secret", &env["S3_SECRET_KEY"]);
    secret("bad-secret", "not-the-secret-key");
    secret("bad-access", "nobody");
    let create = |name: &str, access: &str, key: &str, bucket: &str, http: &[&str]| -> Value {
        let r = h.put(
            &format!("{WS}/datastores/{name}"),
            json!({
                "component": "storage-s3",
                "config": {
                    "endpoint": endpoint, "bucket": bucket,
                    "access_key_secret": access, "secret_key_secret": key
                },
                "http": http, "http_private": true, "secrets": [access, key],
            }),
        );
        assert_eq!(r.status, 400, "{name}: {}", r.json);
        r.json
    };
    let cases = [
        (
            create("wrong-key", "good-access", "bad-secret", &bucket, &[&host]),
            vec!["SignatureDoesNotMatch", "secret 'bad-secret'"],
        ),
        (
            create(
                "unknown-key",
                "bad-access",
                "good-secret",
                &bucket,
                &[&host],
            ),
            vec!["InvalidAccessKeyId", "'nobody'"],
        ),
        (
            create(
                "no-bucket",
                "good-access",
                "good-secret",
                "atrium-missing-bucket",
                &[&host],
            ),
            vec!["bucket 'atrium-missing-bucket' does not exist"],
        ),
        (
            create("no-grant", "good-access", "good-secret", &bucket, &[]),
            vec!["does not let this plugin reach"],
        ),
    ];
    for (answer, needles) in cases {
        let msg = answer["message"].as_str().unwrap_or_default();
        assert!(msg.contains("does not work"), "{msg}");
        for n in needles {
            assert!(msg.contains(n), "'{n}' missing from: {msg}");
        }
    }
    let listed = h.get(&format!("{WS}/datastores")).ok();
    assert_eq!(
        listed["datastores"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

/// The store unreachable for 10 s: an upload in flight and one started meanwhile fail with a
/// precise error and leave nothing visible (no artifact row, no content-named object); once
/// the store is back, the same uploads succeed.
#[test]
fn the_store_away_for_ten_seconds_fails_uploads_cleanly() {
    let s = Server::start_fresh(Backend::Sqlite, &[]);
    let h = s.http();
    let env = s3_env();
    let gate = Gate::new(env["S3_ENDPOINT"].trim_start_matches("http://"));
    let bucket = s3_bucket("outage");
    s3_datastore(
        &h,
        "s3",
        &bucket,
        Some(&format!("http://{}", gate.addr)),
        true,
    )
    .ok();
    let r = new_run(&h, "outage");
    assert!(put(&h, &r, "before.bin", content(2 * MIB, 1)).status < 300);
    // an upload of 96 MiB under way when the store goes away
    let big = content(96 * MIB, 2);
    let big_digest = hex(&big);
    let (url, token, run_id) = (s.url.clone(), s.token.clone(), r.clone());
    let body = big.clone();
    let inflight = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .put(format!("{url}{WS}/runs/{run_id}/artifacts/big.bin"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(300))
            .body(body)
            .send()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    });
    std::thread::sleep(Duration::from_millis(300));
    gate.shut();
    let down = Instant::now();
    let during = put(&h, &r, "during.bin", content(3 * MIB, 3));
    assert_eq!(during.status, 502, "{}", during.json);
    // the gate accepts and drops connections: the plugin retries, then says what failed
    let msg = during.message();
    assert!(
        msg.contains("S3 at http://") && msg.contains("5 attempts"),
        "{msg}"
    );
    // the upload in flight is refused: an error answer, or the connection closed before the
    // whole body went (the server answered the failure early); never an acknowledgement
    match inflight.join().unwrap() {
        Ok((status, text)) => {
            assert!(
                status >= 500,
                "the upload in flight answered {status}: {text}"
            )
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let left = Duration::from_secs(10).saturating_sub(down.elapsed());
    std::thread::sleep(left);
    gate.open();
    // nothing half-visible: neither artifact is listed, no content-named object exists
    let listed = h.get(&format!("{WS}/runs/{r}/artifacts")).ok();
    let paths: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["before.bin"], "{listed}");
    let name = format!("sha256/{}/{big_digest}", &big_digest[..2]);
    assert!(
        !s3_keys(&bucket).contains(&name),
        "a cut upload is not visible"
    );
    // the store is back: the same uploads work
    assert!(put(&h, &r, "during.bin", content(3 * MIB, 3)).status < 300);
    let again = put(&h, &r, "big.bin", big.clone()).ok();
    assert_eq!(again["digest"], big_digest.as_str());
    assert!(h.get(&format!("{WS}/runs/{r}/artifacts/big.bin")).bytes == big);
}

/// The peak resident memory of a process (VmHWM), in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// A 320 MiB model version uploaded as multipart streams into the S3 datastore (the host's
/// peak memory grows by far less than the file) and comes back byte-exact.
#[test]
fn model_uploads_stream_into_the_datastore() {
    let s = Server::start_fresh(Backend::Sqlite, &[]);
    let h = s.http();
    let bucket = s3_bucket("models");
    s3_datastore(&h, "s3", &bucket, None, true).ok();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights.bin");
    let data = content(320 * MIB, 9);
    std::fs::write(&weights, &data).unwrap();
    let digest = hex(&data);
    drop(data);
    // a small upload first: the plugin instances and pools exist before the baseline
    let small = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(b"warm".to_vec()).file_name("w.txt"),
    );
    let r = reqwest::blocking::Client::new()
        .post(format!("{}{WS}/models/warm/versions", s.url))
        .bearer_auth(&s.token)
        .multipart(small)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let pid = s.pid().unwrap();
    let before = peak_mib(pid);
    let form = reqwest::blocking::multipart::Form::new()
        .text("meta", json!({ "description": "big" }).to_string())
        .file("file", &weights)
        .unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{}{WS}/models/big/versions", s.url))
        .bearer_auth(&s.token)
        .timeout(Duration::from_secs(600))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let grew = peak_mib(pid).saturating_sub(before);
    assert!(
        grew < 160,
        "the host's peak memory grew by {grew} MiB for a 320 MiB upload"
    );
    let got = h.get(&format!("{WS}/models/big/versions/1/files/weights.bin"));
    assert_eq!(got.status, 200);
    assert_eq!(hex(&got.bytes), digest);
}
