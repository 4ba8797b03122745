//! Tracking benchmark: the same client workload against `atrium serve` and `mlflow server`
//! (SQLite backends both), run side by side in one process. See bench/README in RESULTS.md.
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
    runs: usize,
    seconds: f64,
    threads: usize,
    queries: usize,
    skip_mlflow: bool,
    also_normal: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        atrium: PathBuf::from("target/release/atrium"),
        mlflow: PathBuf::from("bench/.venv/bin/mlflow"),
        runs: 100_000,
        seconds: 10.0,
        threads: 4,
        queries: 40,
        skip_mlflow: false,
        also_normal: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--atrium" => a.atrium = val().into(),
            "--mlflow" => a.mlflow = val().into(),
            "--runs" => a.runs = val().parse().expect("--runs N"),
            "--seconds" => a.seconds = val().parse().expect("--seconds S"),
            "--threads" => a.threads = val().parse().expect("--threads N"),
            "--queries" => a.queries = val().parse().expect("--queries N"),
            "--skip-mlflow" => a.skip_mlflow = true,
            "--also-normal" => a.also_normal = true,
            other => panic!(
                "unknown flag {other}; flags: --atrium BIN --mlflow BIN --runs N --seconds S --threads N --queries N --skip-mlflow"
            ),
        }
    }
    a
}

struct Proc {
    child: Child,
    url: String,
    /// Atrium's bootstrap admin token (sent as `Authorization: Bearer`); None for mlflow.
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("atrium listening on ")
        .expect("listen line")
        .to_string();
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
    mlflow: Option<f64>,
    unit: &'static str,
    higher_is_better: bool,
}

fn main() {
    let mut a = parse_args();
    a.atrium =
        std::fs::canonicalize(&a.atrium).expect("atrium binary (build with cargo build --release)");
    if !a.skip_mlflow {
        a.mlflow = std::fs::canonicalize(&a.mlflow)
            .expect("mlflow executable (bench/run.sh creates bench/.venv)");
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

    let (mut m_ingest, mut m_create, mut m_p50, mut m_p99) = (None, None, None, None);
    if !a.skip_mlflow {
        let (mlflow, db) = start_mlflow(&a.mlflow);
        let v = ingest(&mlflow, a.threads, a.seconds);
        println!("mlflow ingest: {v:.0} points/s");
        m_ingest = Some(v);
        let v = create_runs(&mlflow, a.threads, a.seconds);
        println!("mlflow create-run: {v:.1} runs/s");
        m_create = Some(v);
        let m_exp = create_experiment(&mlflow, "search");
        seed_mlflow(&db, &m_exp, a.runs);
        let (p50, p99, hits) = search(&mlflow, &m_exp, filter, a.queries.min(10));
        println!("mlflow search p50 {p50:.1} ms p99 {p99:.1} ms ({hits} runs on the first page)");
        m_p50 = Some(p50);
        m_p99 = Some(p99);
    }

    rows.push(Row {
        name: "log-batch ingest (1000 metrics/request)",
        atrium: a_ingest,
        mlflow: m_ingest,
        unit: "points/s",
        higher_is_better: true,
    });
    rows.push(Row {
        name: "create-run",
        atrium: a_create,
        mlflow: m_create,
        unit: "runs/s",
        higher_is_better: true,
    });
    if let Some((i, c)) = normal {
        rows.push(Row {
            name: "log-batch ingest, sqlite_sync=normal",
            atrium: i,
            mlflow: m_ingest,
            unit: "points/s",
            higher_is_better: true,
        });
        rows.push(Row {
            name: "create-run, sqlite_sync=normal",
            atrium: c,
            mlflow: m_create,
            unit: "runs/s",
            higher_is_better: true,
        });
    }
    rows.push(Row {
        name: "search p50 (filter, 100 per page)",
        atrium: a_p50,
        mlflow: m_p50,
        unit: "ms",
        higher_is_better: false,
    });
    rows.push(Row {
        name: "search p99",
        atrium: a_p99,
        mlflow: m_p99,
        unit: "ms",
        higher_is_better: false,
    });
    println!("\n| workload | atrium | mlflow server | ratio |\n|---|---|---|---|");
    for r in rows {
        let ratio = r.mlflow.map(|m| {
            if r.higher_is_better {
                r.atrium / m
            } else {
                m / r.atrium
            }
        });
        println!(
            "| {} | {:.1} {} | {} | {} |",
            r.name,
            r.atrium,
            r.unit,
            r.mlflow
                .map(|m| format!("{m:.1} {}", r.unit))
                .unwrap_or_else(|| "—".into()),
            ratio
                .map(|x| format!("{x:.0}×"))
                .unwrap_or_else(|| "—".into()),
        );
    }
}
