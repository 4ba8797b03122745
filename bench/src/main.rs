//! Tracking benchmark: the same client workload against `atrium serve`, `mlflow server` and
//! FastTrackML (`fml server`, the Go MLflow-compatible server), SQLite backends all three, run
//! side by side in one process. See bench/RESULTS.md.
//!
//! Workloads: log-batch of 1000 metrics from 4 client threads (points/s), create-run from
//! 4 client threads (runs/s), and run search with a filter over N seeded runs (p50/p99 ms).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Args {
    atrium: PathBuf,
    mlflow: PathBuf,
    fasttrackml: PathBuf,
    runs: usize,
    seconds: f64,
    threads: usize,
    queries: usize,
    skip_mlflow: bool,
    skip_fasttrackml: bool,
    also_normal: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        atrium: PathBuf::from("target/release/atrium"),
        mlflow: PathBuf::from("bench/.venv/bin/mlflow"),
        fasttrackml: PathBuf::from("bench/.venv/bin/fml"),
        runs: 100_000,
        seconds: 10.0,
        threads: 4,
        queries: 40,
        skip_mlflow: false,
        skip_fasttrackml: false,
        also_normal: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--atrium" => a.atrium = val().into(),
            "--mlflow" => a.mlflow = val().into(),
            "--fasttrackml" => a.fasttrackml = val().into(),
            "--runs" => a.runs = val().parse().expect("--runs N"),
            "--seconds" => a.seconds = val().parse().expect("--seconds S"),
            "--threads" => a.threads = val().parse().expect("--threads N"),
            "--queries" => a.queries = val().parse().expect("--queries N"),
            "--skip-mlflow" => a.skip_mlflow = true,
            "--skip-fasttrackml" => a.skip_fasttrackml = true,
            "--also-normal" => a.also_normal = true,
            other => panic!(
                "unknown flag {other}; flags: --atrium BIN --mlflow BIN --fasttrackml BIN --runs N --seconds S --threads N --queries N --skip-mlflow --skip-fasttrackml --also-normal"
            ),
        }
    }
    a
}

struct Proc {
    child: Child,
    url: String,
    /// Atrium's bootstrap admin token (sent as `Authorization: Bearer`); None for the peers.
    token: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_health(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::blocking::get(format!("{url}/health"))
            && r.status().is_success()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} never became healthy");
}

fn start_atrium(bin: &PathBuf, sync: &str) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("ATRIUM_LOG", "warn")
        .env("ATRIUM_SQLITE_SYNC", sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start atrium");
    // the first start also prints where the bootstrap admin token went
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "atrium exited before listening"
        );
        if let Some(u) = line.trim().strip_prefix("atrium listening on ") {
            break u.to_string();
        }
    };
    // keep draining: a closed pipe would fail the server's next print
    std::thread::spawn(move || for _ in out.lines() {});
    // written before the listen line; every route but the health checks needs it
    let token = std::fs::read_to_string(dir.path().join("admin.token"))
        .expect("admin.token in the data dir")
        .trim()
        .to_string();
    wait_health(&url, Duration::from_secs(30));
    Proc {
        child,
        url,
        token: Some(token),
        _dir: dir,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_mlflow(bin: &PathBuf) -> (Proc, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mlflow.db");
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--backend-store-uri",
        ])
        .arg(format!("sqlite:///{}", db.display()))
        .arg("--default-artifact-root")
        .arg(dir.path().join("artifacts"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mlflow server (run bench/run.sh to create bench/.venv)");
    let url = format!("http://127.0.0.1:{port}");
    wait_health(&url, Duration::from_secs(180));
    (
        Proc {
            child,
            url,
            token: None,
            _dir: dir,
        },
        db,
    )
}

fn start_fasttrackml(bin: &PathBuf) -> (Proc, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fasttrackml.db");
    let port = free_port();
    let child = Command::new(bin)
        .args(["server", "--listen-address", &format!("127.0.0.1:{port}")])
        .arg("--database-uri")
        .arg(format!("sqlite://{}", db.display()))
        .arg("--default-artifact-root")
        .arg(dir.path().join("artifacts"))
        .args(["--log-level", "warn"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fml server (bench/run.sh installs fasttrackml into bench/.venv)");
    let url = format!("http://127.0.0.1:{port}");
    wait_health(&url, Duration::from_secs(60));
    (
        Proc {
            child,
            url,
            token: None,
            _dir: dir,
        },
        db,
    )
}

/// A minimal HTTP/1.1 keep-alive client for the throughput phases: one socket per client thread,
/// no extra runtime threads, so the client takes as little CPU from the server as possible.
struct Lean {
    addr: String,
    /// The `Authorization` header line (with its CRLF), or empty.
    auth: String,
    stream: Option<std::io::BufReader<std::net::TcpStream>>,
}

impl Lean {
    fn new(base: &str, token: Option<&str>) -> Self {
        Self {
            addr: base.trim_start_matches("http://").to_string(),
            auth: token
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default(),
            stream: None,
        }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> Value {
        use std::io::{Read, Write};
        let s = self.stream.get_or_insert_with(|| {
            let tcp = std::net::TcpStream::connect(&self.addr).expect("connect");
            tcp.set_nodelay(true).unwrap();
            std::io::BufReader::new(tcp)
        });
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            self.auth,
            body.len()
        );
        let w = s.get_mut();
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(body).unwrap();
        let mut status_line = String::new();
        s.read_line(&mut status_line).unwrap();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        let (mut len, mut chunked, mut close) = (0usize, false, false);
        loop {
            let mut line = String::new();
            s.read_line(&mut line).unwrap();
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            } else if l.starts_with("connection:") && l.contains("close") {
                close = true;
            }
        }
        let mut data = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                s.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0u8; n + 2];
                s.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&chunk[..n]);
            }
        } else {
            data.resize(len, 0);
            s.read_exact(&mut data).unwrap();
        }
        if close {
            self.stream = None;
        }
        let v: Value = serde_json::from_slice(&data).unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(4)
        .build()
        .unwrap()
}

fn post(c: &reqwest::blocking::Client, url: &str, token: Option<&str>, body: Vec<u8>) -> Value {
    let mut req = c.post(url).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.body(body).send().expect("request");
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

fn create_run(c: &mut Lean, exp: &str) -> String {
    let body = format!("{{\"experiment_id\":\"{exp}\",\"start_time\":1,\"tags\":[]}}");
    let v = c.post("/api/2.0/mlflow/runs/create", body.as_bytes());
    v["run"]["info"]["run_id"].as_str().unwrap().to_string()
}

fn create_experiment(srv: &Proc, name: &str) -> String {
    let v = post(
        &client(),
        &format!("{}/api/2.0/mlflow/experiments/create", srv.url),
        srv.token.as_deref(),
        json!({ "name": name }).to_string().into_bytes(),
    );
    v["experiment_id"].as_str().unwrap().to_string()
}

/// A log-batch body of 1000 metrics over 10 keys, written directly (the client must stay cheap:
/// it shares the machine with the server under test).
fn batch_body(run: &str, batch: i64) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::with_capacity(100_000);
    let _ = write!(s, "{{\"run_id\":\"{run}\",\"metrics\":[");
    for k in 0..1000i64 {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"key\":\"m{}\",\"value\":{},\"timestamp\":{},\"step\":{}}}",
            k % 10,
            (batch * 1000 + k) as f64 * 0.001,
            1_700_000_000_000i64 + batch,
            batch * 100 + k / 10
        );
    }
    s.push_str("]}");
    s.into_bytes()
}

/// Points per second of log-batch(1000 metrics) from `threads` clients, each on its own run.
fn ingest(srv: &Proc, threads: usize, seconds: f64) -> f64 {
    let exp = create_experiment(srv, "ingest");
    let points = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (base, token) = (srv.url.clone(), srv.token.clone());
            let (exp, points) = (exp.clone(), points.clone());
            std::thread::spawn(move || {
                let mut c = Lean::new(&base, token.as_deref());
                let run = create_run(&mut c, &exp);
                let mut batch = 0i64;
                while Instant::now() < deadline {
                    let body = batch_body(&run, batch);
                    c.post("/api/2.0/mlflow/runs/log-batch", &body);
                    points.fetch_add(1000, Ordering::Relaxed);
                    batch += 1;
                }
                let _ = t;
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    points.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Runs created per second from `threads` clients.
fn create_runs(srv: &Proc, threads: usize, seconds: f64) -> f64 {
    let exp = create_experiment(srv, "create-runs");
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (base, token) = (srv.url.clone(), srv.token.clone());
            let (exp, count) = (exp.clone(), count.clone());
            std::thread::spawn(move || {
                let mut c = Lean::new(&base, token.as_deref());
                while Instant::now() < deadline {
                    create_run(&mut c, &exp);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

const OPTS: [&str; 3] = ["adam", "sgd", "rmsprop"];

/// The seeded run `i`: deterministic params and metric so both servers hold the same data.
fn seeded(i: usize) -> (&'static str, String, f64) {
    let acc = ((i * 7919) % 10_000) as f64 / 10_000.0;
    (
        OPTS[i % 3],
        format!("{}", 10f64.powi(-((i % 4) as i32 + 1))),
        acc,
    )
}

/// Seeds Atrium through its native bulk API.
fn seed_atrium(srv: &Proc, exp: &str, runs: usize) -> Duration {
    let c = client();
    let start = Instant::now();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(10_000) {
        let list: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                let (opt, lr, acc) = seeded(i);
                json!({
                    "experiment_id": exp.parse::<i64>().unwrap(), "name": format!("run-{i}"),
                    "start_time": 1_700_000_000_000i64 + i as i64,
                    "params": { "opt": opt, "lr": lr }, "tags": { "family": "mlp" },
                    "metrics": [{ "key": "acc", "value": acc, "step": 0, "timestamp": 1_700_000_000_000i64 }],
                })
            })
            .collect();
        post(
            &c,
            &format!("{}/api/v1/workspaces/default/runs:bulk", srv.url),
            srv.token.as_deref(),
            json!({ "runs": list }).to_string().into_bytes(),
        );
    }
    start.elapsed()
}

/// Seeds MLflow's SQLite database directly with the same runs (its API would take hours).
fn seed_mlflow(db: &std::path::Path, exp: &str, runs: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let exp: i64 = exp.parse().unwrap();
        let mut tx = conn.begin().await.unwrap();
        for i in 0..runs {
            let (opt, lr, acc) = seeded(i);
            let id = format!("{:032x}", i as u128 + (1u128 << 100));
            let t = 1_700_000_000_000i64 + i as i64;
            sqlx::query(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) \
                 VALUES ($1, $2, 'LOCAL', '', '', 'bench', 'FINISHED', $3, $3, '', 'active', '', $4)",
            )
            .bind(&id).bind(format!("run-{i}")).bind(t).bind(exp)
            .execute(&mut *tx).await.unwrap();
            for (k, v) in [("opt", opt.to_string()), ("lr", lr)] {
                sqlx::query("INSERT INTO params (key, value, run_uuid) VALUES ($1, $2, $3)")
                    .bind(k).bind(v).bind(&id).execute(&mut *tx).await.unwrap();
            }
            for (k, v) in [("family", "mlp".to_string()), ("mlflow.runName", format!("run-{i}"))] {
                sqlx::query("INSERT INTO tags (key, value, run_uuid) VALUES ($1, $2, $3)")
                    .bind(k).bind(v).bind(&id).execute(&mut *tx).await.unwrap();
            }
            for table in ["metrics", "latest_metrics"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid) VALUES ('acc', $1, 1700000000000, 0, 0, $2)"
                )))
                .bind(acc).bind(&id).execute(&mut *tx).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
    });
}

/// Seeds FastTrackML's SQLite database directly with the same runs (its schema is MLflow's with
/// typed param values, metric contexts and a row number per run).
fn seed_fasttrackml(db: &std::path::Path, exp: &str, runs: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let exp: i64 = exp.parse().unwrap();
        let mut tx = conn.begin().await.unwrap();
        // the default (empty) metric context, as the server creates it on the first metric
        sqlx::query("INSERT OR IGNORE INTO contexts (id, json) VALUES (1, '{}')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let base: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(row_num) + 1, 0) FROM runs")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        for i in 0..runs {
            let (opt, lr, acc) = seeded(i);
            let id = format!("{:032x}", i as u128 + (1u128 << 100));
            let t = 1_700_000_000_000i64 + i as i64;
            sqlx::query(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, row_num) \
                 VALUES ($1, $2, 'LOCAL', '', '', 'bench', 'FINISHED', $3, $3, '', 'active', '', $4, $5)",
            )
            .bind(&id).bind(format!("run-{i}")).bind(t).bind(exp).bind(base + i as i64)
            .execute(&mut *tx).await.unwrap();
            for (k, v) in [("opt", opt.to_string()), ("lr", lr)] {
                sqlx::query("INSERT INTO params (key, value_str, run_uuid) VALUES ($1, $2, $3)")
                    .bind(k).bind(v).bind(&id).execute(&mut *tx).await.unwrap();
            }
            for (k, v) in [("family", "mlp".to_string()), ("mlflow.runName", format!("run-{i}"))] {
                sqlx::query("INSERT INTO tags (key, value, run_uuid) VALUES ($1, $2, $3)")
                    .bind(k).bind(v).bind(&id).execute(&mut *tx).await.unwrap();
            }
            sqlx::query(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan, iter, context_id) VALUES ('acc', $1, 1700000000000, $2, 0, 0, 1, 1)",
            )
            .bind(acc).bind(&id).execute(&mut *tx).await.unwrap();
            sqlx::query(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid, last_iter, context_id) VALUES ('acc', $1, 1700000000000, 0, 0, $2, 1, 1)",
            )
            .bind(acc).bind(&id).execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
}

/// p50 and p99 latency (ms) of a search, after one warm-up call; also the hit count.
fn search(srv: &Proc, exp: &str, filter: &str, queries: usize) -> (f64, f64, usize) {
    let c = client();
    let body = json!({ "experiment_ids": [exp], "filter": filter, "max_results": 100, "run_view_type": "ACTIVE_ONLY" })
        .to_string()
        .into_bytes();
    let url = format!("{}/api/2.0/mlflow/runs/search", srv.url);
    let token = srv.token.as_deref();
    let hits = post(&c, &url, token, body.clone())["runs"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let mut ms: Vec<f64> = (0..queries)
        .map(|_| {
            let t = Instant::now();
            post(&c, &url, token, body.clone());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.99), hits)
}

struct Row {
    name: &'static str,
    atrium: f64,
    /// (mlflow server, FastTrackML), each when measured.
    peers: [Option<f64>; 2],
    unit: &'static str,
    higher_is_better: bool,
}

/// A peer's figures: ingest points/s, create-run runs/s, search p50 and p99 ms.
#[derive(Default, Clone, Copy)]
struct PeerFigures {
    ingest: Option<f64>,
    create: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

/// Runs the three workloads against a peer server and reports them under `name`.
fn measure_peer(
    name: &str,
    (srv, db): (Proc, PathBuf),
    seed: fn(&std::path::Path, &str, usize),
    a: &Args,
    filter: &str,
) -> PeerFigures {
    let ingest = ingest(&srv, a.threads, a.seconds);
    println!("{name} ingest: {ingest:.0} points/s");
    let create = create_runs(&srv, a.threads, a.seconds);
    println!("{name} create-run: {create:.1} runs/s");
    let exp = create_experiment(&srv, "search");
    seed(&db, &exp, a.runs);
    let (p50, p99, hits) = search(&srv, &exp, filter, a.queries.min(10));
    println!("{name} search p50 {p50:.1} ms p99 {p99:.1} ms ({hits} runs on the first page)");
    PeerFigures {
        ingest: Some(ingest),
        create: Some(create),
        p50: Some(p50),
        p99: Some(p99),
    }
}

fn main() {
    let mut a = parse_args();
    a.atrium =
        std::fs::canonicalize(&a.atrium).expect("atrium binary (build with cargo build --release)");
    if !a.skip_mlflow {
        a.mlflow = std::fs::canonicalize(&a.mlflow)
            .expect("mlflow executable (bench/run.sh creates bench/.venv)");
    }
    if !a.skip_fasttrackml {
        a.fasttrackml = std::fs::canonicalize(&a.fasttrackml)
            .expect("fml executable (bench/run.sh installs fasttrackml into bench/.venv)");
    }
    println!(
        "# tracking benchmark: {} client threads, {} s per throughput phase, {} seeded runs",
        a.threads, a.seconds, a.runs
    );
    let filter = "metrics.acc > 0.9 and params.opt = 'adam'";
    let mut rows = Vec::new();

    let atrium = start_atrium(&a.atrium, "full");
    let a_ingest = ingest(&atrium, a.threads, a.seconds);
    println!("atrium ingest: {a_ingest:.0} points/s");
    let a_create = create_runs(&atrium, a.threads, a.seconds);
    println!("atrium create-run: {a_create:.0} runs/s");
    let a_exp = create_experiment(&atrium, "search");
    let seed_time = seed_atrium(&atrium, &a_exp, a.runs);
    println!(
        "atrium bulk seed of {} runs: {:.1} s",
        a.runs,
        seed_time.as_secs_f64()
    );
    let (a_p50, a_p99, a_hits) = search(&atrium, &a_exp, filter, a.queries);
    println!("atrium search p50 {a_p50:.1} ms p99 {a_p99:.1} ms ({a_hits} runs on the first page)");
    let or_filter = "metrics.acc > 0.9 and (params.opt = 'adam' or params.opt = 'sgd')";
    let (o_p50, o_p99, _) = search(&atrium, &a_exp, or_filter, a.queries);
    println!("atrium search with OR p50 {o_p50:.1} ms p99 {o_p99:.1} ms");
    drop(atrium);
    let mut normal = None;
    if a.also_normal {
        let atrium = start_atrium(&a.atrium, "normal");
        let i = ingest(&atrium, a.threads, a.seconds);
        let c = create_runs(&atrium, a.threads, a.seconds);
        println!("atrium (sqlite_sync=normal) ingest: {i:.0} points/s, create-run: {c:.0} runs/s");
        normal = Some((i, c));
    }

    let m = if a.skip_mlflow {
        PeerFigures::default()
    } else {
        measure_peer("mlflow", start_mlflow(&a.mlflow), seed_mlflow, &a, filter)
    };
    let f = if a.skip_fasttrackml {
        PeerFigures::default()
    } else {
        measure_peer(
            "fasttrackml",
            start_fasttrackml(&a.fasttrackml),
            seed_fasttrackml,
            &a,
            filter,
        )
    };

    let row = |name, atrium, peers, unit, higher_is_better| Row {
        name,
        atrium,
        peers,
        unit,
        higher_is_better,
    };
    rows.push(row(
        "log-batch ingest (1000 metrics/request)",
        a_ingest,
        [m.ingest, f.ingest],
        "points/s",
        true,
    ));
    rows.push(row(
        "create-run",
        a_create,
        [m.create, f.create],
        "runs/s",
        true,
    ));
    if let Some((i, c)) = normal {
        rows.push(row(
            "log-batch ingest, sqlite_sync=normal",
            i,
            [m.ingest, f.ingest],
            "points/s",
            true,
        ));
        rows.push(row(
            "create-run, sqlite_sync=normal",
            c,
            [m.create, f.create],
            "runs/s",
            true,
        ));
    }
    rows.push(row(
        "search p50 (filter, 100 per page)",
        a_p50,
        [m.p50, f.p50],
        "ms",
        false,
    ));
    rows.push(row("search p99", a_p99, [m.p99, f.p99], "ms", false));
    println!(
        "\n| workload | atrium | mlflow server | fasttrackml | × mlflow | × fasttrackml |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        let figure = |v: Option<f64>| {
            v.map(|x| format!("{x:.1} {}", r.unit))
                .unwrap_or_else(|| "—".into())
        };
        let ratio = |v: Option<f64>| {
            v.map(|p| {
                let x = if r.higher_is_better {
                    r.atrium / p
                } else {
                    p / r.atrium
                };
                if x >= 10.0 {
                    format!("{x:.0}×")
                } else {
                    format!("{x:.2}×")
                }
            })
            .unwrap_or_else(|| "—".into())
        };
        println!(
            "| {} | {:.1} {} | {} | {} | {} | {} |",
            r.name,
            r.atrium,
            r.unit,
            figure(r.peers[0]),
            figure(r.peers[1]),
            ratio(r.peers[0]),
            ratio(r.peers[1]),
        );
    }
}
