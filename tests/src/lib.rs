//! Test harness: builds and starts the real `atrium` binary on a free port, against SQLite or a
//! fresh PostgreSQL database, and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use serde_json::json;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `atrium` binary: `ATRIUM_BIN`, or built once (debug profile) by this harness.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("ATRIUM_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // A clean environment: variables cargo sets for test processes would otherwise change
        // build-script fingerprints and force a rebuild of the whole tree on every run.
        let mut cmd = Command::new(cargo);
        cmd.env_clear();
        for (k, v) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            let keep = matches!(
                k_str.as_ref(),
                "PATH"
                    | "HOME"
                    | "CARGO_HOME"
                    | "RUSTUP_HOME"
                    | "RUSTUP_TOOLCHAIN"
                    | "CARGO_TARGET_DIR"
                    | "TMPDIR"
            ) || k_str.starts_with("CARGO_PROFILE_")
                || k_str.starts_with("CARGO_REGISTRIES_")
                || k_str.starts_with("CARGO_NET_");
            if keep {
                cmd.env(k, v);
            }
        }
        let status = cmd
            .args(["build", "-p", "atrium", "--bin", "atrium"])
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the atrium binary failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join("target"));
        target.join("debug").join("atrium")
    })
    .clone()
}

/// A component the build script compiled from `plugins/` (fixtures and examples included).
pub fn plugin_wasm(stem: &str) -> Vec<u8> {
    bin(); // building the host builds the plugins
    let path = root()
        .join("plugins/target/wasm32-wasip2/release")
        .join(format!("{stem}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which metadata database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in the data directory.
    Sqlite,
    /// A fresh database on the local PostgreSQL server.
    Postgres,
}

/// The PostgreSQL server tests use (`ATRIUM_TEST_PG`, default the local trust-auth server).
pub fn pg_admin_url() -> String {
    std::env::var("ATRIUM_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs one statement on the admin database.
fn pg_admin(sql: String) -> Result<(), String> {
    let admin = pg_admin_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .map_err(|e| format!("PostgreSQL at {admin} is required for this test: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Creates an empty PostgreSQL database and returns its URL.
pub fn fresh_pg_database() -> String {
    let name = format!("atrium_test_{}", uuid_like());
    pg_admin(format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    format!("{base}/{name}")
}

/// Drops a database made by [`fresh_pg_database`] (best effort).
pub fn drop_pg_database(url: &str) {
    if let Some((_, name)) = url.rsplit_once('/')
        && name.starts_with("atrium_test_")
    {
        let _ = pg_admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

/// Server URL → its admin token, so that every [`Http`] client and CLI call made against a
/// test server authenticates (auth is always on).
fn tokens() -> &'static std::sync::Mutex<std::collections::HashMap<String, String>> {
    static T: OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        OnceLock::new();
    T.get_or_init(Default::default)
}

/// The admin token of the test server at `url` (empty if none is known).
pub fn token_for(url: &str) -> String {
    tokens()
        .lock()
        .unwrap()
        .get(url.trim_end_matches('/'))
        .cloned()
        .unwrap_or_default()
}

/// The file `atrium serve` writes its bootstrap admin token to, in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The data directory (kept for restarts).
    pub data_dir: PathBuf,
    /// The database URL when not SQLite.
    pub database_url: Option<String>,
    _tmp: Option<tempfile::TempDir>,
    /// Captured stderr of the server (its log).
    pub log: PathBuf,
    /// The bootstrap admin's API token (from the data directory).
    pub token: String,
}

impl Server {
    /// Starts a server with a fresh data directory (and a fresh database for PostgreSQL).
    pub fn start(backend: Backend) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_pg_database()),
        };
        let mut s = Self::start_in(tmp.path(), db);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server with a fresh data directory (removed when the server is dropped), a fresh
    /// database for PostgreSQL, and extra `serve` flags.
    pub fn start_fresh(backend: Backend, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_pg_database()),
        };
        let mut s = Self::start_with_args(tmp.path(), db, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(data_dir: &Path, database_url: Option<String>) -> Self {
        Self::start_with_args(data_dir, database_url, &[])
    }

    /// Starts a server on an existing data directory with extra `serve` flags.
    pub fn start_with_args(data_dir: &Path, database_url: Option<String>, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, database_url, extra, &[])
    }

    /// Starts a server on an existing data directory with extra `serve` flags and environment
    /// variables.
    pub fn start_with_env(
        data_dir: &Path,
        database_url: Option<String>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = data_dir.join(format!("server-{}.log", uuid_like()));
        let mut cmd = Command::new(bin());
        // one uv download cache for every test server (job environments)
        if std::env::var_os("UV_CACHE_DIR").is_none() {
            cmd.env("UV_CACHE_DIR", root().join("target/uv-cache"));
        }
        cmd.envs(env.iter().copied());
        cmd.arg("serve").args(extra).arg("--data-dir").arg(data_dir);
        if !extra.contains(&"--listen") {
            cmd.arg("--listen").arg("127.0.0.1:0");
        }
        cmd.env_remove("ATRIUM_CONFIG")
            .env_remove("ATRIUM_DATABASE_URL")
            .env("ATRIUM_LOG", "info,tower_http=warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(url) = &database_url {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd.spawn().expect("start atrium");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("atrium listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let token = std::fs::read_to_string(data_dir.join(ADMIN_TOKEN_FILE))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        tokens()
            .lock()
            .unwrap()
            .insert(url.trim_end_matches('/').to_string(), token.clone());
        let s = Self {
            child: Some(child),
            url,
            data_dir: data_dir.to_path_buf(),
            database_url,
            _tmp: None,
            log,
            token,
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::blocking::get(format!("{}/health", self.url))
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server never became healthy");
    }

    /// An HTTP client for this server, authenticated as the bootstrap admin.
    pub fn http(&self) -> Http {
        Http::with_token(&self.url, Some(&self.token))
    }

    /// An HTTP client for this server sending `token` (`None`: no credentials).
    pub fn http_as(&self, token: Option<&str>) -> Http {
        Http::with_token(&self.url, token)
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no shutdown, no flush).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server with SIGTERM and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts on the same data directory and database.
    pub fn restart(&mut self) {
        self.stop();
        let mut next = Self::start_in(&self.data_dir, self.database_url.clone());
        self.child = next.child.take();
        self.url = next.url.clone();
        self.log = next.log.clone();
        self.token = next.token.clone();
    }

    /// Restarts on the same data directory, database and port (so that workers find it
    /// again).
    pub fn restart_same_port(&mut self) {
        self.stop();
        let addr = self
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let mut next = Self::start_with_args(
            &self.data_dir,
            self.database_url.clone(),
            &["--listen", &addr],
        );
        self.child = next.child.take();
        self.url = next.url.clone();
        self.log = next.log.clone();
        self.token = next.token.clone();
    }

    /// Runs the CLI against this server; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        Self::cli_at(&self.url, args)
    }

    /// Runs the CLI against any server URL (with that test server's admin token).
    pub fn cli_at(url: &str, args: &[&str]) -> (bool, String, String) {
        Self::cli_with_token(url, &token_for(url), args)
    }

    /// Runs the CLI against a server URL with a given API token (empty: none).
    pub fn cli_with_token(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            // no `atrium login` profile of the person running the tests
            .env("XDG_CONFIG_HOME", empty_config_home())
            .env("ATRIUM_SERVER", url)
            .env_remove("ATRIUM_WORKSPACE")
            .env_remove("ATRIUM_TOKEN_FILE")
            .env_remove("ATRIUM_DATA_DIR");
        if token.is_empty() {
            cmd.env_remove("ATRIUM_TOKEN");
        } else {
            cmd.env("ATRIUM_TOKEN", token);
        }
        let out = cmd.output().expect("run atrium cli");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

/// An empty directory for `XDG_CONFIG_HOME`, so CLI calls see no saved login.
fn empty_config_home() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

/// Runs the CLI with none of the harness's settings: no server, token, workspace or data
/// directory from the environment, `env` added, in `cwd`, with `stdin` as its input; returns
/// (success, stdout, stderr).
pub fn cli_raw(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", empty_config_home())
        .env_remove("ATRIUM_SERVER")
        .env_remove("ATRIUM_TOKEN")
        .env_remove("ATRIUM_WORKSPACE")
        .env_remove("ATRIUM_TOKEN_FILE")
        .env_remove("ATRIUM_DATA_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run atrium cli");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        let owned = self._tmp.is_some();
        self.stop();
        if owned && let Some(url) = &self.database_url {
            drop_pg_database(url);
        }
    }
}

/// A response: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub json: Value,
    /// Raw body.
    pub bytes: Vec<u8>,
}

impl Resp {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.json["error_code"].as_str().unwrap_or("")
    }
    /// The message of an error response.
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }
    /// Panics unless the status is 2xx; returns the JSON.
    pub fn ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {} {}",
            self.status,
            self.json
        );
        self.json
    }
}

/// A blocking HTTP client with JSON helpers.
pub struct Http {
    /// Base URL.
    pub base: String,
    client: reqwest::blocking::Client,
    token: Option<String>,
}

impl Http {
    /// A client for a base URL, with the admin token of the test server there.
    pub fn new(base: &str) -> Self {
        let t = token_for(base);
        Self::with_token(base, Some(t.as_str()).filter(|t| !t.is_empty()))
    }

    /// A client for a base URL sending `token` (`None`: no credentials).
    pub fn with_token(base: &str, token: Option<&str>) -> Self {
        Self {
            base: base.to_string(),
            client: reqwest::blocking::Client::new(),
            token: token.map(String::from),
        }
    }

    /// A request builder with this client's credentials.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request with an optional raw body.
    pub fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.request(m, path).timeout(Duration::from_secs(120));
        if let Some(b) = body {
            req = req.body(b).header("content-type", "application/json");
        }
        let r = req.send().expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().unwrap().to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            json,
            bytes,
        }
    }
    /// GET.
    pub fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, None)
    }
    /// POST JSON.
    pub fn post(&self, path: &str, body: Value) -> Resp {
        self.raw("POST", path, Some(body.to_string().into_bytes()))
    }
    /// PUT JSON.
    pub fn put(&self, path: &str, body: Value) -> Resp {
        self.raw("PUT", path, Some(body.to_string().into_bytes()))
    }
    /// PATCH JSON.
    pub fn patch(&self, path: &str, body: Value) -> Resp {
        self.raw("PATCH", path, Some(body.to_string().into_bytes()))
    }
    /// DELETE.
    pub fn delete(&self, path: &str) -> Resp {
        self.raw("DELETE", path, None)
    }

    /// Uploads a component with its manifest (multipart PUT).
    pub fn push_component(
        &self,
        ws: &str,
        name: &str,
        version: &str,
        wasm: Vec<u8>,
        manifest: &str,
    ) -> Resp {
        let form = reqwest::blocking::multipart::Form::new()
            .part(
                "component",
                reqwest::blocking::multipart::Part::bytes(wasm).file_name("c.wasm"),
            )
            .part(
                "manifest",
                reqwest::blocking::multipart::Part::text(manifest.to_string()),
            );
        let r = self
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/workspaces/{ws}/components/{name}/versions/{version}"),
            )
            .multipart(form)
            .timeout(Duration::from_secs(120))
            .send()
            .expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().unwrap().to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            json,
            bytes,
        }
    }
}

/// The pinned Python requirements of the suites that use the real `mlflow` client.
const REQUIREMENTS: &str = "tests/python/requirements.txt";

/// A Python with the pinned `mlflow` client: `ATRIUM_TEST_PYTHON`, or the virtualenv
/// `tests/python/.venv`, created when missing or stale.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("ATRIUM_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    python_env(REQUIREMENTS, "tests/python/.venv")
}

/// A virtualenv at `venv` (relative to the workspace root) with the pinned `requirements`
/// installed, created when missing or when the requirements changed; returns its Python.
pub fn python_env(requirements: &str, venv: &str) -> PathBuf {
    python_env_with(Path::new("python3"), requirements, venv)
}

/// [`python_env`] with the interpreter `python` (a path, or a name on `PATH`).
pub fn python_env_with(python: &Path, requirements: &str, venv: &str) -> PathBuf {
    static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = VENV.lock().unwrap_or_else(|e| e.into_inner());
    let venv = root().join(venv);
    let py = venv.join("bin/python");
    let stamp = venv.join(".requirements");
    let wanted = std::fs::read_to_string(root().join(requirements)).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let ok = Command::new(python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(root().join(requirements))
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install -r {requirements} failed");
        std::fs::write(&stamp, wanted).unwrap();
    }
    py
}

/// Uploads iris (once per server) and trains a small MLP on it with a train job; returns the
/// job's (run id, job id) once it completed.
pub fn train_iris(h: &Http) -> (String, String) {
    const WS: &str = "/api/v1/workspaces/default";
    h.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    );
    let j = h
        .post(
            &format!("{WS}/jobs"),
            serde_json::json!({
                "type": "train",
                "name": "iris-mlp",
                "experiment": "iris",
                "train": {
                    "dataset": "iris:1", "target": "target", "task": "classification",
                    "model": { "family": "mlp", "hidden": [16], "activation": "relu" },
                    "optimizer": { "kind": "adam", "lr": 0.01 },
                    "epochs": 5, "batch_size": 16, "validation_split": 0.2, "seed": 7
                }
            }),
        )
        .ok();
    let id = j["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let j = h.get(&format!("{WS}/jobs/{id}")).ok();
        match j["state"].as_str() {
            Some("Completed") => return (j["run_id"].as_str().unwrap().to_string(), id),
            Some("Failed" | "Canceled") => panic!("train job ended badly: {j}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "train job did not end: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A test dataset from `tests/data`.
pub fn dataset(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/data").join(name)).unwrap()
}

/// The job `id` of the `default` workspace.
pub fn job_of(h: &Http, id: &str) -> Value {
    h.get(&format!("/api/v1/workspaces/default/jobs/{id}")).ok()
}

/// Waits until job `id` of the `default` workspace is in state `want` (panics after `secs`).
pub fn wait_job_state(h: &Http, id: &str, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while job_of(h, id)["state"] != want {
        assert!(
            Instant::now() < deadline,
            "job {id} never reached {want}: {}\n{}",
            job_of(h, id),
            job_log(h, id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the engine state recorded for job `id` is `want` (the engine ends a job a
/// moment after its worker reported; panics after `secs`); returns the job's log.
pub fn wait_engine_state(h: &Http, id: &str, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while job_of(h, id)["engine_state"] != want {
        assert!(
            Instant::now() < deadline,
            "the engine never reported {want} for job {id}: {}\n{}",
            job_of(h, id),
            job_log(h, id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    job_log(h, id)
}

/// The variables of the env file an engine script (`scripts/engines/*.sh start DIR`) wrote,
/// from the path in `var`; panics naming the script when it is not set.
pub fn engine_env(var: &str, script: &str) -> std::collections::BTreeMap<String, String> {
    let path = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: start the engine with `scripts/engines/{script} start DIR` and set \
             it to DIR/env (scripts/test.sh does both)"
        )
    });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The steps of metric `key` of run `run` (`default` workspace), in order.
pub fn metric_steps(h: &Http, run: &str, key: &str) -> Vec<i64> {
    let v = h
        .get(&format!(
            "/api/v1/workspaces/default/runs/{run}/metrics/{key}"
        ))
        .ok();
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_i64().unwrap())
        .collect()
}

/// Uploads `iris.csv` as dataset `iris` of the `default` workspace (version 1 on a new server).
pub fn upload_iris(h: &Http) {
    let up = h.raw(
        "POST",
        "/api/v1/workspaces/default/datasets/iris/versions",
        Some(dataset("iris.csv")),
    );
    assert_eq!(up.status, 201, "{}", up.json);
}

/// The log of job `id` of the `default` workspace.
pub fn job_log(h: &Http, id: &str) -> String {
    String::from_utf8_lossy(
        &h.get(&format!("/api/v1/workspaces/default/jobs/{id}/logs"))
            .bytes,
    )
    .to_string()
}

/// Polls job `id` of the `default` workspace until it ends (or panics with its log after
/// `secs`); the job and the states it was seen in.
pub fn wait_job_states(h: &Http, id: &str, secs: u64) -> (Value, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let j = job_of(h, id);
        let state = j["state"].as_str().unwrap_or("").to_string();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if matches!(state.as_str(), "Completed" | "Failed" | "Canceled") {
            return (j, seen);
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not end in {secs} s: {j}\nlog:\n{}",
            job_log(h, id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run (MLflow API) in a new experiment named `exp`; its id.
pub fn new_run(h: &Http, exp: &str) -> String {
    let e = h
        .post(
            "/api/2.0/mlflow/experiments/create",
            serde_json::json!({ "name": exp }),
        )
        .ok()["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    h.post(
        "/api/2.0/mlflow/runs/create",
        serde_json::json!({ "experiment_id": e, "start_time": 1 }),
    )
    .ok()["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The SeaweedFS that `scripts/engines/seaweedfs.sh start DIR` started (scripts/test.sh does):
/// its `DIR/env` (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, ...).
pub fn s3_env() -> std::collections::BTreeMap<String, String> {
    engine_env("ATRIUM_TEST_S3_ENV", "seaweedfs.sh")
}

/// Creates a fresh bucket (named after `tag`) in the test SeaweedFS with boto3 from the
/// script's venv, and returns its name.
pub fn s3_bucket(tag: &str) -> String {
    let env = s3_env();
    let name = format!("atrium-{tag}-{}", uuid_like()).to_ascii_lowercase();
    let py = root().join(".tools/seaweedfs/bin/python");
    let script = format!(
        "import boto3\nboto3.client('s3', endpoint_url='{}', aws_access_key_id='{}', \
         aws_secret_access_key='{}', region_name='us-east-1').create_bucket(Bucket='{name}')\n",
        env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]
    );
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    assert!(
        out.status.success(),
        "creating bucket {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// The keys in a bucket of the test SeaweedFS (every page), via boto3.
pub fn s3_keys(bucket: &str) -> Vec<String> {
    let env = s3_env();
    let py = root().join(".tools/seaweedfs/bin/python");
    let script = format!(
        "import boto3\nc = boto3.client('s3', endpoint_url='{}', aws_access_key_id='{}', \
         aws_secret_access_key='{}', region_name='us-east-1')\n\
         for p in c.get_paginator('list_objects_v2').paginate(Bucket='{bucket}'):\n\
         \x20   for o in p.get('Contents', []): print(o['Key'])\n",
        env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]
    );
    let out = Command::new(&py).arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Creates datastore `name` of the `default` workspace on the built-in `storage-s3` against
/// `endpoint` (the test SeaweedFS when `None`) and `bucket`, with the admin identity's keys
/// stored as the secrets `s3-access-key` / `s3-secret-key`; `default` makes it the workspace's
/// default datastore. Returns the server's answer.
pub fn s3_datastore(
    h: &Http,
    name: &str,
    bucket: &str,
    endpoint: Option<&str>,
    default: bool,
) -> Resp {
    let env = s3_env();
    for (secret, value) in [
        ("s3-access-key", &env["S3_ACCESS_KEY"]),
        ("s3-secret-key", &env["S3_SECRET_KEY"]),
    ] {
        h.put(
            &format!("/api/v1/workspaces/default/secrets/{secret}"),
            serde_json::json!({ "value": value }),
        )
        .ok();
    }
    let endpoint = endpoint.unwrap_or(&env["S3_ENDPOINT"]).to_string();
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    h.put(
        &format!("/api/v1/workspaces/default/datastores/{name}"),
        serde_json::json!({
            "component": "storage-s3",
            "config": { "endpoint": endpoint, "bucket": bucket },
            "http": [host],
            "http_private": true,
            "secrets": ["s3-access-key", "s3-secret-key"],
            "default": default,
        }),
    )
}

/// A TCP relay to `target` that can be shut (every connection cut, new ones refused) and
/// opened again: an object store or database going away and coming back.
pub struct Gate {
    /// `127.0.0.1:PORT` of the relay.
    pub addr: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Gate {
    /// A relay to `target` (`host:port`), open.
    pub fn new(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = std::sync::Arc::new(AtomicBool::new(true));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, l, target) = (open.clone(), live.clone(), target.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if !o.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                {
                    let mut l = l.lock().unwrap();
                    l.push(client.try_clone().unwrap());
                    l.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        // this side is done sending: pass the half-close on
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { addr, open, live }
    }

    /// Cuts every connection and refuses new ones.
    pub fn shut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A TCP load balancer on loopback: each new connection goes to the next of `targets` that
/// accepts it (round robin, skipping those that refuse: a killed host).
pub struct Balancer {
    /// `127.0.0.1:PORT` of the balancer.
    pub addr: String,
}

impl Balancer {
    /// A balancer over `targets` (`host:port` each).
    pub fn new(targets: Vec<String>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut next = 0usize;
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let server = (0..targets.len()).find_map(|i| {
                    let t = &targets[(next + i) % targets.len()];
                    std::net::TcpStream::connect(t).ok()
                });
                next = next.wrapping_add(1);
                let Some(server) = server else { continue };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { addr }
    }
}
