//! Crash safety: acknowledged batches survive `kill -9`; unacknowledged ones are all-or-nothing;
//! interrupted uploads leave nothing visible.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atrium_tests::{Backend, Server, json};

const WS: &str = "/api/v1/workspaces/default";
const PER_BATCH: i64 = 100;

#[test]
fn acknowledged_batches_survive_sigkill() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let runs: Vec<String> = (0..4)
        .map(|i| {
            h.post(&format!("{WS}/runs"), json!({ "name": format!("w{i}") }))
                .ok()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let acked: Arc<Mutex<BTreeMap<String, Vec<i64>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for run in runs.clone() {
        let (acked, stop, base, token) =
            (acked.clone(), stop.clone(), s.url.clone(), s.token.clone());
        writers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let mut batch = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let metrics: Vec<_> = (0..PER_BATCH)
                    .map(|k| json!({ "key": "m", "value": batch as f64, "timestamp": 1, "step": batch * PER_BATCH + k }))
                    .collect();
                let body = json!({ "run_id": run, "metrics": metrics, "tags": [{ "key": "last", "value": batch.to_string() }] });
                match client.post(format!("{base}/api/2.0/mlflow/runs/log-batch")).bearer_auth(&token).json(&body).send() {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().entry(run.clone()).or_default().push(batch),
                    _ => break, // the server is gone
                }
                batch += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    s.restart();
    let h = s.http();
    let acked = acked.lock().unwrap();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(total > 20, "the writers barely ran ({total} batches)");
    for run in &runs {
        let hist = h.get(&format!("{WS}/runs/{run}/metrics/m")).ok();
        let mut per_batch: BTreeMap<i64, i64> = BTreeMap::new();
        for p in hist["points"].as_array().unwrap() {
            *per_batch
                .entry(p["step"].as_i64().unwrap() / PER_BATCH)
                .or_default() += 1;
        }
        let mine = acked.get(run).cloned().unwrap_or_default();
        for b in &mine {
            assert_eq!(
                per_batch.get(b),
                Some(&PER_BATCH),
                "acknowledged batch {b} of run {run} is incomplete"
            );
        }
        for (b, n) in &per_batch {
            assert_eq!(*n, PER_BATCH, "batch {b} of run {run} is half-written");
        }
        // at most the one in-flight batch may have landed without its acknowledgement
        assert!(per_batch.len() <= mine.len() + 1);
        let tag: i64 = h.get(&format!("{WS}/runs/{run}")).ok()["tags"]["last"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(tag >= *mine.last().unwrap());
    }
}

fn tmp_files(s: &Server) -> usize {
    let mut n = 0;
    for ds in std::fs::read_dir(s.data_dir.join("datastores"))
        .unwrap()
        .flatten()
    {
        n += std::fs::read_dir(ds.path().join(".tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
    }
    n
}

#[test]
fn interrupted_uploads_leave_nothing_visible() {
    let mut s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = h.post(&format!("{WS}/runs"), json!({})).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = s.url.trim_start_matches("http://").to_string();

    // 1. the client goes away mid-upload
    {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "PUT {WS}/runs/{run}/artifacts/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000\r\n\r\n",
            s.token
        )
        .unwrap();
        c.write_all(&vec![7u8; 100_000]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    } // dropped: connection closed with 9.9 MB missing
    std::thread::sleep(Duration::from_millis(500));
    let list = h.get(&format!("{WS}/runs/{run}/artifacts")).ok();
    assert_eq!(list["files"].as_array().unwrap().len(), 0);
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/big.bin")).status,
        404
    );
    assert_eq!(tmp_files(&s), 0, "the partial upload was not discarded");

    // 2. the server is killed mid-upload
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    write!(c, "PUT {WS}/runs/{run}/artifacts/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000\r\n\r\n", s.token).unwrap();
    c.write_all(&vec![7u8; 300_000]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tmp_files(&s), 1, "the upload should be in progress");
    s.kill9();
    drop(c);
    s.restart();
    let h = s.http();
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/big.bin")).status,
        404
    );
    assert_eq!(
        tmp_files(&s),
        0,
        "restart cleans leftovers of interrupted uploads"
    );
    // and a complete upload still works
    let r = h.raw(
        "PUT",
        &format!("{WS}/runs/{run}/artifacts/big.bin"),
        Some(vec![7u8; 1_000_000]),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        h.get(&format!("{WS}/runs/{run}/artifacts/big.bin"))
            .bytes
            .len(),
        1_000_000
    );
}
