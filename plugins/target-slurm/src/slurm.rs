//! The Slurm side of the target without any I/O: configuration, JWT minting, the batch script
//! and the submit body, and reading slurmrestd's answers (job states, errors, pools). Written
//! against the v0.0.38 REST API (Slurm 22.05 to 23.11); v0.0.36 and v0.0.37 share its shapes.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use atrium_sdk::v0_2::target::atrium::plugin::types::PluginError;
use atrium_sdk::v0_2::target::exports::atrium::plugin::compute_target::{
    JobRequest, JobState, JobStatus, Pool, Resources,
};

/// REST API versions whose job shapes this plugin speaks.
pub const API_VERSIONS: [&str; 3] = ["v0.0.36", "v0.0.37", "v0.0.38"];
/// The API version used when `api_version` is not set.
pub const DEFAULT_API_VERSION: &str = "v0.0.38";
/// The job's working directory when `work_dir` is not set.
pub const DEFAULT_WORK_DIR: &str = "/tmp";
/// The job's output file when `output` is not set (`%j` is the Slurm job id).
pub const DEFAULT_OUTPUT: &str = "/tmp/atrium-slurm-%j.out";
/// The `PATH` a job gets when its request has none.
pub const DEFAULT_PATH: &str = "/usr/bin:/bin";
/// Lifetime of a minted JWT, in seconds.
pub const TOKEN_LIFETIME_SECS: u64 = 600;
/// Slurm's "Invalid job id specified" (a job it never had, or forgot after MinJobAge).
pub const ESLURM_INVALID_JOB_ID: i64 = 2017;
/// Slurm's "Job/step already completing or completed".
pub const ESLURM_ALREADY_DONE: i64 = 2021;
/// Most pools the host accepts from one `describe`.
pub const MAX_POOLS: usize = 64;
/// Longest `comment` sent (the job's labels).
pub const MAX_COMMENT: usize = 1000;

/// How requests authenticate to slurmrestd.
#[derive(Clone, PartialEq)]
pub enum Auth {
    /// slurmrestd's HS256 key: a JWT is minted for every call.
    Key(Vec<u8>),
    /// A ready JWT.
    Token(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Key(k) => write!(f, "Key(<{} bytes>)", k.len()),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// The plugin's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// slurmrestd's base URL, without a trailing `/` (`http://127.0.0.1:6820`).
    pub url: String,
    /// REST API version (`v0.0.38`).
    pub api_version: String,
    /// The Slurm user jobs run as (`X-SLURM-USER-NAME`, the JWT's `sun`).
    pub user: String,
    /// The partition jobs go to and `describe` reports (all partitions when unset).
    pub partition: Option<String>,
    /// The credential.
    pub auth: Auth,
    /// The job's `current_working_directory`.
    pub work_dir: String,
    /// The job's `standard_output` and `standard_error`.
    pub output: String,
}

fn invalid(m: impl Into<String>) -> PluginError {
    PluginError::InvalidArgument(m.into())
}

fn bad_text(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || c.is_whitespace())
}

impl Settings {
    /// Reads and checks the configuration: `config` answers config keys, `secret` resolves
    /// secret names (as the host's `config::get` and `secrets::get` do).
    pub fn load(
        config: impl Fn(&str) -> Option<String>,
        secret: impl Fn(&str) -> Result<String, PluginError>,
    ) -> Result<Self, PluginError> {
        let get = |k: &str| {
            config(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let url = get("url").ok_or_else(|| {
            invalid("config 'url' is required: slurmrestd's address, e.g. http://127.0.0.1:6820")
        })?;
        let url = url.trim_end_matches('/').to_string();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !bad_text(r) && !r.starts_with('/') => {}
            _ => {
                return Err(invalid(format!(
                    "config 'url' must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:6820 (got '{url}')"
                )));
            }
        }
        let api_version = get("api_version").unwrap_or_else(|| DEFAULT_API_VERSION.into());
        if !API_VERSIONS.contains(&api_version.as_str()) {
            return Err(invalid(format!(
                "config 'api_version' is '{api_version}'; this plugin speaks {} (Slurm 20.11 to 23.11; GET /openapi/v3 lists what a slurmrestd offers)",
                API_VERSIONS.join(", ")
            )));
        }
        let user = get("user").unwrap_or_else(|| "root".into());
        if bad_text(&user) || user.contains(':') {
            return Err(invalid(format!(
                "config 'user' is not a valid user name: '{user}'"
            )));
        }
        let partition = get("partition");
        if let Some(p) = &partition
            && (bad_text(p) || p.contains(','))
        {
            return Err(invalid(format!(
                "config 'partition' is not a partition name: '{p}'"
            )));
        }
        let auth = match (get("jwt_key_secret"), get("token_secret")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "set one of config 'jwt_key_secret' and 'token_secret', not both",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "config 'jwt_key_secret' (the name of a secret holding slurmrestd's HS256 key, base64) or 'token_secret' (the name of a secret holding a JWT) is required",
                ));
            }
            (Some(name), None) => {
                let v = fetch_secret(&secret, &name, "jwt_key_secret")?;
                Auth::Key(decode_key(&v).ok_or_else(|| {
                    invalid(format!(
                        "secret '{name}' (config 'jwt_key_secret') is not base64 of slurmrestd's HS256 key (make it with `base64 -w0 jwt_hs256.key`)"
                    ))
                })?)
            }
            (None, Some(name)) => {
                let v = fetch_secret(&secret, &name, "token_secret")?;
                let t = v
                    .trim()
                    .strip_prefix("SLURM_JWT=")
                    .unwrap_or(v.trim())
                    .to_string();
                if t.is_empty() || bad_text(&t) || t.split('.').count() != 3 {
                    return Err(invalid(format!(
                        "secret '{name}' (config 'token_secret') does not hold a JWT (three dot-separated parts, as `scontrol token` prints)"
                    )));
                }
                Auth::Token(t)
            }
        };
        let work_dir = get("work_dir").unwrap_or_else(|| DEFAULT_WORK_DIR.into());
        if !work_dir.starts_with('/') || work_dir.contains(['\n', '\r', '\0']) {
            return Err(invalid(format!(
                "config 'work_dir' must be an absolute path on the Slurm nodes (got '{work_dir}')"
            )));
        }
        let output = get("output").unwrap_or_else(|| DEFAULT_OUTPUT.into());
        if output.contains(['\n', '\r', '\0']) {
            return Err(invalid("config 'output' holds a line break"));
        }
        Ok(Settings {
            url,
            api_version,
            user,
            partition,
            auth,
            work_dir,
            output,
        })
    }

    /// The URL of an API path (`/jobs`): `{url}/slurm/{api_version}{path}`.
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/slurm/{}{path}", self.url, self.api_version)
    }

    /// The token of a call made at `now` (seconds since the epoch).
    pub fn token(&self, now: u64) -> String {
        match &self.auth {
            Auth::Key(k) => jwt_hs256(k, &self.user, now, TOKEN_LIFETIME_SECS),
            Auth::Token(t) => t.clone(),
        }
    }
}

fn fetch_secret(
    secret: &impl Fn(&str) -> Result<String, PluginError>,
    name: &str,
    key: &str,
) -> Result<String, PluginError> {
    let note = |m: String| format!("secret '{name}' (config '{key}'): {m}");
    secret(name).map_err(|e| match e {
        PluginError::InvalidArgument(m) => PluginError::InvalidArgument(note(m)),
        PluginError::NotFound(m) => PluginError::NotFound(note(m)),
        PluginError::AccessDenied(m) => PluginError::AccessDenied(note(m)),
        PluginError::ResourceExhausted(m) => PluginError::ResourceExhausted(note(m)),
        PluginError::Unsupported(m) => PluginError::Unsupported(note(m)),
        PluginError::Internal(m) => PluginError::Internal(note(m)),
    })
}

/// Decodes a base64 key (standard or URL-safe alphabet, padding optional, whitespace ignored).
pub fn decode_key(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let key = STANDARD
        .decode(&s)
        .or_else(|_| STANDARD_NO_PAD.decode(&s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
        .ok()?;
    (!key.is_empty()).then_some(key)
}

/// An HS256 JWT `{"exp": now + lifetime, "iat": now, "sun": user}` signed with `key`, the form
/// slurmctld's auth/jwt accepts.
pub fn jwt_hs256(key: &[u8], user: &str, now: u64, lifetime: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // written out (not through a map) so the bytes signed never depend on key order
    let claims = format!(
        r#"{{"exp":{},"iat":{now},"sun":{}}}"#,
        now + lifetime,
        Value::String(user.to_string())
    );
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// `s` as one bash word: single-quoted, each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script: bash `exec`s the command line.
pub fn batch_script(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    format!("#!/bin/bash\nexec {}\n", words.join(" "))
}

/// The Slurm job name of an attempt: `atrium-<job-id>-<attempt>` (the idempotency key).
pub fn job_name(job_id: &str, attempt: u32) -> String {
    format!("atrium-{job_id}-{attempt}")
}

/// The `POST /job/submit` body of a job request (checked: a request Slurm could not take, or
/// that would not run as asked, is refused here).
pub fn submit_body(job: &JobRequest, s: &Settings) -> Result<Value, PluginError> {
    if job.job_id.is_empty()
        || job.job_id.len() > 128
        || !job
            .job_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(invalid(format!(
            "job id '{}' is not usable in a Slurm job name (letters, digits, '.', '_', '-'; at most 128)",
            job.job_id
        )));
    }
    if job.argv.is_empty() {
        return Err(invalid("the job's argv is empty"));
    }
    if job.argv.iter().any(|a| a.contains('\0')) {
        return Err(invalid("an argument of the job holds a NUL byte"));
    }
    let mut env = Map::new();
    for (k, v) in &job.env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(invalid(format!(
                "environment variable '{}' cannot be passed (empty name, '=' in the name, or a NUL byte)",
                k.replace('\0', "\\0")
            )));
        }
        env.insert(k.clone(), Value::String(v.clone()));
    }
    env.entry("PATH")
        .or_insert_with(|| Value::String(DEFAULT_PATH.into()));
    let r = &job.resources;
    let cpus = if r.cpus.is_finite() && r.cpus > 1.0 {
        r.cpus.ceil().min(u32::MAX as f32) as u32
    } else {
        1
    };
    let comment: String = job
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_COMMENT)
        .collect();
    let mut p = Map::new();
    p.insert("name".into(), job_name(&job.job_id, job.attempt).into());
    if let Some(part) = &s.partition {
        p.insert("partition".into(), part.clone().into());
    }
    p.insert("tasks".into(), 1.into());
    p.insert("cpus_per_task".into(), cpus.into());
    if r.memory_mb > 0 {
        p.insert("memory_per_node".into(), r.memory_mb.into());
    }
    if r.gpus > 0 {
        // v0.0.38 has no tres_per_node; `gres` becomes it (and works with cons_res too)
        p.insert("gres".into(), format!("gpu:{}", r.gpus).into());
    }
    if let Some(t) = job.timeout_secs.filter(|&t| t > 0) {
        p.insert("time_limit".into(), t.div_ceil(60).into());
    }
    p.insert(
        "current_working_directory".into(),
        s.work_dir.clone().into(),
    );
    p.insert("standard_output".into(), s.output.clone().into());
    p.insert("standard_error".into(), s.output.clone().into());
    p.insert("comment".into(), comment.into());
    p.insert("environment".into(), Value::Object(env));
    Ok(json!({"script": batch_script(&job.argv), "job": p}))
}

/// A handle as a Slurm job id.
pub fn parse_handle(handle: &str) -> Result<u32, PluginError> {
    match handle.parse::<u32>() {
        Ok(id) if id > 0 && handle.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(invalid(format!(
            "'{handle}' is not a Slurm job id (a positive number)"
        ))),
    }
}

/// One entry of slurmrestd's `errors[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmError {
    /// `error_number` (or `error_code`), when given.
    pub number: Option<i64>,
    /// `error`, with `description` when it says more.
    pub text: String,
}

/// The entries of `errors[]` in an answer (none when there is no such list).
pub fn slurm_errors(body: &Value) -> Vec<SlurmError> {
    let Some(list) = body.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let number = e
                .get("error_number")
                .or_else(|| e.get("error_code"))
                .and_then(Value::as_i64);
            let field = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            let text = match (field("error"), field("description")) {
                (Some(a), Some(b)) if a != b => format!("{a}: {b}"),
                (Some(a), _) => a.to_string(),
                (None, Some(b)) => b.to_string(),
                (None, None) if e.is_string() => e.as_str().unwrap_or_default().to_string(),
                (None, None) => e.to_string(),
            };
            SlurmError { number, text }
        })
        .collect()
}

/// Whether one of the errors is Slurm error `number`.
pub fn has_error(errors: &[SlurmError], number: i64) -> bool {
    errors.iter().any(|e| e.number == Some(number))
}

/// The error of a refused request: `what` (`"submitting job atrium-1-1"`), the HTTP status and
/// Slurm's errors (or the body, when it carries none).
pub fn refusal(what: &str, status: u16, errors: &[SlurmError], body: &str) -> PluginError {
    let detail = if errors.is_empty() {
        let b: String = body.trim().chars().take(300).collect();
        if b.is_empty() { "no details".into() } else { b }
    } else {
        errors
            .iter()
            .map(|e| match e.number {
                Some(n) => format!("{} (error {n})", e.text),
                None => e.text.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut m = format!("Slurm refused {what} (HTTP {status}): {detail}");
    if status == 401 || status == 403 {
        m.push_str(" (check config 'user' and the JWT secret)");
        return PluginError::AccessDenied(m);
    }
    if status == 404 {
        m.push_str(
            " (check config 'url' and 'api_version': slurmrestd serves only the versions it loaded with -s openapi/VERSION)",
        );
    }
    // slurmctld rejecting the JWT reaches the client as a 500 with an unspecified error
    if status == 500 && errors.iter().all(|e| e.number.is_none_or(|n| n <= 0)) {
        m.push_str(
            " (slurmrestd answers this way when slurmctld rejects the JWT: a wrong key, an expired token or an unknown user)",
        );
    }
    const BAD_REQUEST: [i64; 5] = [2000, 2014, 2015, 2127, 9001];
    if status == 400
        || errors
            .iter()
            .any(|e| e.number.is_some_and(|n| BAD_REQUEST.contains(&n)))
    {
        PluginError::InvalidArgument(m)
    } else {
        PluginError::Internal(m)
    }
}

fn job_state(job: &Value) -> String {
    match job.get("job_state") {
        Some(Value::String(s)) => s.to_ascii_uppercase(),
        Some(Value::Array(a)) => a
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// A Slurm job state mapped onto Atrium's (None: a state this plugin does not know).
pub fn map_state(raw: &str) -> Option<JobState> {
    Some(match raw {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" => JobState::Queued,
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "RESIZING" | "SIGNALING" | "STAGE_OUT"
        | "STOPPED" => JobState::Running,
        "COMPLETED" => JobState::Succeeded,
        "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE"
        | "PREEMPTED" | "SPECIAL_EXIT" => JobState::Failed,
        "CANCELLED" | "REVOKED" => JobState::Canceled,
        _ => return None,
    })
}

/// What a `GET /job/{id}` entry says: the mapped state, the raw one, the exit code of a job
/// that ran and ended (`exit_code` is a raw wait status), and Slurm's reason.
pub fn job_status(job: &Value) -> JobStatus {
    let raw = job_state(job);
    let reason = job
        .get("state_reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "None")
        .map(str::to_string);
    let Some(state) = map_state(&raw) else {
        return JobStatus {
            state: JobState::Unknown,
            message: Some(format!(
                "Slurm reports job state '{raw}', which this plugin does not know"
            )),
            raw_state: raw,
            exit_code: None,
        };
    };
    let ended = matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Canceled
    );
    // a job that never reached a node (BadConstraints, cancelled while pending) has no exit
    let launched = job
        .get("batch_host")
        .and_then(Value::as_str)
        .is_none_or(|h| !h.is_empty());
    let wait = job.get("exit_code").and_then(Value::as_i64);
    let (mut exit_code, mut signal) = (None, None);
    if let (true, true, Some(w)) = (ended, launched, wait) {
        let sig = w & 0x7f;
        if sig != 0 {
            signal = Some(sig);
        } else {
            exit_code = Some(((w >> 8) & 0xff) as i32);
        }
    }
    let message = match (signal, reason) {
        (Some(n), Some(r)) => Some(format!("killed by signal {n} ({r})")),
        (Some(n), None) => Some(format!("killed by signal {n}")),
        (None, r) => r,
    };
    JobStatus {
        state,
        raw_state: raw,
        exit_code,
        message,
    }
}

/// The status of a job Slurm no longer knows (error 2017).
pub fn gone(id: u32) -> JobStatus {
    JobStatus {
        state: JobState::Unknown,
        raw_state: "gone".into(),
        exit_code: None,
        message: Some(format!(
            "Slurm no longer knows job {id} (finished jobs are forgotten after MinJobAge)"
        )),
    }
}

/// The entry of job `id` in a `GET /job/{id}` answer.
pub fn find_job(body: &Value, id: u32) -> Option<&Value> {
    let jobs = body.get("jobs")?.as_array()?;
    jobs.iter()
        .find(|j| j.get("job_id").and_then(Value::as_u64) == Some(u64::from(id)))
        .or_else(|| jobs.first())
}

/// The newest job named `name` in a `GET /jobs` answer.
pub fn find_job_by_name(body: &Value, name: &str) -> Option<u64> {
    body.get("jobs")?
        .as_array()?
        .iter()
        .filter(|j| j.get("name").and_then(Value::as_str) == Some(name))
        .filter_map(|j| j.get("job_id").and_then(Value::as_u64))
        .max()
}

/// The GPUs in a gres string (`gpu:2`, `gpu:a100:4(S:0-1),mps:100`, `gpu:a100:1(IDX:0,2)`).
pub fn gres_gpus(gres: &str) -> u32 {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in gres.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&gres[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&gres[start..]);
    items
        .iter()
        .map(|item| item.split('(').next().unwrap_or_default().trim())
        .filter(|item| item.split(':').next() == Some("gpu"))
        .map(|item| {
            let parts: Vec<&str> = item.split(':').collect();
            match parts.len() {
                1 => 1,
                _ => parts[parts.len() - 1].parse::<u32>().unwrap_or(0),
            }
        })
        .sum()
}

/// The CPUs, memory (MB) and GPUs in a TRES string (`cpu=2,mem=4000M,node=1,gres/gpu=2`).
pub fn tres(s: &str) -> Resources {
    let mut r = Resources {
        cpus: 0.0,
        memory_mb: 0,
        gpus: 0,
    };
    for item in s.split(',') {
        let Some((k, v)) = item.split_once('=') else {
            continue;
        };
        match k.trim() {
            "cpu" => r.cpus = v.trim().parse().unwrap_or(0.0),
            "mem" => {
                let v = v.trim();
                let (n, unit) =
                    v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
                let n: u64 = n.parse().unwrap_or(0);
                r.memory_mb = match unit {
                    "K" => n / 1024,
                    "G" => n * 1024,
                    "T" => n * 1024 * 1024,
                    _ => n,
                };
            }
            "gres/gpu" => r.gpus = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    r
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Whether a node takes jobs (not down, drained, failing, powered off or not responding).
fn usable(node: &Value) -> bool {
    const OUT: [&str; 10] = [
        "DOWN",
        "DRAIN",
        "DRAINED",
        "DRAINING",
        "FAIL",
        "FAILING",
        "FUTURE",
        "NOT_RESPONDING",
        "POWERED_DOWN",
        "UNKNOWN",
    ];
    let state = node
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let flags = node.get("state_flags").and_then(Value::as_array);
    let words = state.split(['+', ' ', '*']).map(str::to_string).chain(
        flags
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string),
    );
    let mut any = false;
    for w in words.filter(|w| !w.is_empty()) {
        any = true;
        if OUT.contains(&w.to_ascii_uppercase().as_str()) {
            return false;
        }
    }
    any && !state.ends_with('*')
}

/// One pool per partition (only `only` when given) from `GET /partitions`, `/nodes` and
/// `/jobs`: capacity of its nodes, what is idle on its usable nodes, and its PENDING jobs.
pub fn pools(
    partitions: &Value,
    nodes: &Value,
    jobs: &Value,
    only: Option<&str>,
) -> Result<Vec<Pool>, PluginError> {
    let empty = Vec::new();
    let parts = partitions
        .get("partitions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let nodes = nodes
        .get("nodes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let jobs = jobs.get("jobs").and_then(Value::as_array).unwrap_or(&empty);
    let names: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .collect();
    if let Some(want) = only
        && !names.contains(&want)
    {
        return Err(PluginError::NotFound(format!(
            "config 'partition' is '{want}', which Slurm does not have (it has: {})",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    }
    let mut out = Vec::new();
    for p in parts {
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            continue;
        };
        if only.is_some_and(|w| w != name) {
            continue;
        }
        let mut capacity = Resources {
            cpus: 0.0,
            memory_mb: 0,
            gpus: 0,
        };
        let mut available = capacity;
        let mut matched = false;
        for n in nodes {
            let member = n
                .get("partitions")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|x| x.as_str() == Some(name)));
            if !member {
                continue;
            }
            matched = true;
            let gpus = gres_gpus(n.get("gres").and_then(Value::as_str).unwrap_or_default());
            let mem = u64_of(n, "real_memory");
            capacity.cpus += u64_of(n, "cpus") as f32;
            capacity.memory_mb += mem;
            capacity.gpus += gpus;
            if usable(n) {
                available.cpus += u64_of(n, "idle_cpus") as f32;
                available.memory_mb += mem.saturating_sub(u64_of(n, "alloc_memory"));
                let used = gres_gpus(
                    n.get("gres_used")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                available.gpus += gpus.saturating_sub(used);
            }
        }
        if !matched {
            // nodes that do not list their partitions: the partition's own totals, none known free
            capacity = tres(p.get("tres").and_then(Value::as_str).unwrap_or_default());
            if let Some(c) = p.get("total_cpus").and_then(Value::as_u64) {
                capacity.cpus = c as f32;
            }
        }
        let queued = jobs
            .iter()
            .filter(|j| job_state(j) == "PENDING")
            .filter(|j| {
                j.get("partition")
                    .and_then(Value::as_str)
                    .is_some_and(|ps| ps.split(',').any(|x| x == name))
            })
            .count();
        out.push(Pool {
            name: name.to_string(),
            capacity,
            available,
            queued_jobs: queued.min(u32::MAX as usize) as u32,
        });
        if out.len() == MAX_POOLS {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(extra: &[(&str, &str)]) -> Result<Settings, PluginError> {
        let mut cfg: BTreeMap<String, String> = [("url", "http://127.0.0.1:6820/")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !extra
            .iter()
            .any(|(k, _)| *k == "jwt_key_secret" || *k == "token_secret" || *k == "-auth")
        {
            cfg.insert("jwt_key_secret".into(), "slurm-key".into());
        }
        Settings::load(
            |k| cfg.get(k).cloned(),
            |name| match name {
                "slurm-key" => Ok("ENt4LGj0LFZ26anHhDu9LXX2VwfQvrA9FHtfVvVHab8=".into()),
                "slurm-token" => Ok("SLURM_JWT=aaa.bbb.ccc\n".into()),
                "junk" => Ok("not base64!".into()),
                other => Err(PluginError::AccessDenied(format!("{other} is not granted"))),
            },
        )
    }

    fn msg(e: PluginError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn settings_defaults_and_checks() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.url, "http://127.0.0.1:6820");
        assert_eq!(s.api_version, "v0.0.38");
        assert_eq!(s.user, "root");
        assert_eq!(s.partition, None);
        assert_eq!(s.work_dir, "/tmp");
        assert_eq!(s.output, "/tmp/atrium-slurm-%j.out");
        assert!(matches!(&s.auth, Auth::Key(k) if k.len() == 32));
        assert_eq!(
            s.api_url("/jobs"),
            "http://127.0.0.1:6820/slurm/v0.0.38/jobs"
        );
        assert!(!format!("{s:?}").contains("ENt4"), "the key is not printed");

        let s = settings(&[
            ("-auth", ""),
            ("token_secret", "slurm-token"),
            ("partition", "gpu"),
        ])
        .unwrap();
        assert_eq!(s.auth, Auth::Token("aaa.bbb.ccc".into()));
        assert_eq!(s.token(0), "aaa.bbb.ccc");
        assert_eq!(s.partition.as_deref(), Some("gpu"));

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("url", "")], "config 'url' is required"),
            (&[("url", "127.0.0.1:6820")], "config 'url' must be an http"),
            (&[("url", "http://")], "config 'url' must be an http"),
            (
                &[("api_version", "v0.0.40")],
                "config 'api_version' is 'v0.0.40'",
            ),
            (&[("user", "ro ot")], "config 'user'"),
            (&[("partition", "a,b")], "config 'partition'"),
            (&[("-auth", "")], "config 'jwt_key_secret' (the name"),
            (
                &[
                    ("token_secret", "slurm-token"),
                    ("jwt_key_secret", "slurm-key"),
                ],
                "not both",
            ),
            (
                &[("jwt_key_secret", "junk")],
                "secret 'junk' (config 'jwt_key_secret') is not base64",
            ),
            (
                &[("jwt_key_secret", "nope")],
                "AccessDenied(\"secret 'nope' (config 'jwt_key_secret'): nope is not granted",
            ),
            (
                &[("-auth", ""), ("token_secret", "slurm-key")],
                "does not hold a JWT",
            ),
            (
                &[("work_dir", "relative")],
                "config 'work_dir' must be an absolute path",
            ),
        ];
        for (extra, want) in cases {
            let got = msg(settings(extra).unwrap_err());
            assert!(got.contains(want), "{extra:?}: {got}");
        }
        assert!(matches!(
            settings(&[("url", "")]),
            Err(PluginError::InvalidArgument(_))
        ));
    }

    #[test]
    fn keys_decode_in_any_base64_form() {
        let k = decode_key("ENt4LGj0LFZ26anHhDu9LXX2VwfQvrA9FHtfVvVHab8=\n").unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(
            decode_key("ENt4LGj0LFZ26anHhDu9LXX2VwfQvrA9FHtfVvVHab8"),
            Some(k.clone())
        );
        assert_eq!(
            decode_key("ENt4LGj0LFZ26anHhDu9LXX2VwfQvrA9FHtfVvVHab8="),
            Some(k)
        );
        assert_eq!(decode_key(""), None);
        assert_eq!(decode_key("***"), None);
    }

    #[test]
    fn jwt_matches_a_reference_signature() {
        // RFC 4231 test case 2 key; signature computed independently with Python's hmac:
        // base64url(hmac.new(b"Jefe", header + b"." + payload, sha256).digest())
        let t = jwt_hs256(b"Jefe", "root", 1_700_000_000, 600);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        assert_eq!(
            parts[1],
            "eyJleHAiOjE3MDAwMDA2MDAsImlhdCI6MTcwMDAwMDAwMCwic3VuIjoicm9vdCJ9"
        );
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            json!({"exp": 1_700_000_600u64, "iat": 1_700_000_000u64, "sun": "root"})
        );
        assert_eq!(parts[2], "gM4UXtJmjWaAKWx64-9E3OUSbRTWu4mhgRKXTcwNNRI");
        assert!(!t.contains('='));
    }

    #[test]
    fn scripts_quote_every_word() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let argv: Vec<String> = [
            "/opt/atrium bin/atrium",
            "--x",
            "$HOME `id` \"q\" \\ ;|&",
            "a\nb",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            batch_script(&argv),
            "#!/bin/bash\nexec '/opt/atrium bin/atrium' '--x' '$HOME `id` \"q\" \\ ;|&' 'a\nb'\n"
        );
    }

    fn request() -> JobRequest {
        JobRequest {
            job_id: "0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4".into(),
            attempt: 2,
            run_id: "r1".into(),
            argv: vec!["/usr/bin/atrium".into(), "worker".into(), "run".into()],
            env: vec![("ATRIUM_TOKEN".into(), "t0k".into())],
            resources: Resources {
                cpus: 1.5,
                memory_mb: 512,
                gpus: 1,
            },
            labels: vec![
                ("workspace".into(), "default".into()),
                ("job".into(), "x\ny".into()),
            ],
            timeout_secs: Some(61),
        }
    }

    #[test]
    fn submit_body_has_every_field() {
        let s = settings(&[
            ("partition", "debug"),
            ("work_dir", "/scratch"),
            ("output", "/logs/%j.out"),
        ])
        .unwrap();
        let b = submit_body(&request(), &s).unwrap();
        assert_eq!(
            b,
            json!({
                "script": "#!/bin/bash\nexec '/usr/bin/atrium' 'worker' 'run'\n",
                "job": {
                    "name": "atrium-0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4-2",
                    "partition": "debug",
                    "tasks": 1,
                    "cpus_per_task": 2,
                    "memory_per_node": 512,
                    "gres": "gpu:1",
                    "time_limit": 2,
                    "current_working_directory": "/scratch",
                    "standard_output": "/logs/%j.out",
                    "standard_error": "/logs/%j.out",
                    "comment": "workspace=default,job=x y",
                    "environment": {"ATRIUM_TOKEN": "t0k", "PATH": "/usr/bin:/bin"},
                }
            })
        );
    }

    #[test]
    fn submit_body_minimal_and_refusals() {
        let s = settings(&[]).unwrap();
        let mut r = request();
        r.resources = Resources {
            cpus: 0.0,
            memory_mb: 0,
            gpus: 0,
        };
        r.timeout_secs = None;
        r.env = vec![("PATH".into(), "/opt/bin".into())];
        r.labels.clear();
        let b = submit_body(&r, &s).unwrap();
        let job = b["job"].as_object().unwrap();
        assert_eq!(job["cpus_per_task"], 1);
        assert_eq!(job["environment"], json!({"PATH": "/opt/bin"}));
        for k in ["partition", "memory_per_node", "gres", "time_limit"] {
            assert!(!job.contains_key(k), "{k}");
        }
        assert_eq!(job["current_working_directory"], "/tmp");
        r.timeout_secs = Some(120);
        assert_eq!(submit_body(&r, &s).unwrap()["job"]["time_limit"], 2);

        let mut bad = request();
        bad.argv.clear();
        assert!(msg(submit_body(&bad, &s).unwrap_err()).contains("argv is empty"));
        let mut bad = request();
        bad.env.push(("A=B".into(), "1".into()));
        assert!(msg(submit_body(&bad, &s).unwrap_err()).contains("'A=B'"));
        let mut bad = request();
        bad.job_id = "a b".into();
        assert!(matches!(
            submit_body(&bad, &s),
            Err(PluginError::InvalidArgument(_))
        ));
    }

    #[test]
    fn handles_are_positive_numbers() {
        assert_eq!(parse_handle("42").unwrap(), 42);
        for h in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1.0",
            "abc",
            "1;rm",
            "99999999999",
        ] {
            assert!(
                matches!(parse_handle(h), Err(PluginError::InvalidArgument(_))),
                "{h}"
            );
        }
    }

    fn status(v: Value) -> (JobState, String, Option<i32>, Option<String>) {
        let s = job_status(&v);
        (s.state, s.raw_state, s.exit_code, s.message)
    }

    #[test]
    fn statuses_map_as_seen_on_slurm_22_05() {
        // shapes from GET /slurm/v0.0.38/job/{id} on Slurm 22.05.8
        let j = |state: &str, reason: &str, exit: i64, host: &str| json!({"job_id": 4, "job_state": state, "state_reason": reason, "exit_code": exit, "batch_host": host});
        use JobState::*;
        assert_eq!(
            status(j("PENDING", "Priority", 0, "")),
            (Queued, "PENDING".into(), None, Some("Priority".into()))
        );
        assert_eq!(
            status(j("RUNNING", "None", 0, "vm")),
            (Running, "RUNNING".into(), None, None)
        );
        assert_eq!(status(j("COMPLETING", "None", 0, "vm")).0, Running);
        assert_eq!(
            status(j("COMPLETED", "None", 0, "vm")),
            (Succeeded, "COMPLETED".into(), Some(0), None)
        );
        assert_eq!(
            status(j("FAILED", "NonZeroExitCode", 768, "vm")),
            (
                Failed,
                "FAILED".into(),
                Some(3),
                Some("NonZeroExitCode".into())
            )
        );
        assert_eq!(
            status(j("FAILED", "NonZeroExitCode", 32512, "vm")).2,
            Some(127)
        );
        assert_eq!(
            status(j("FAILED", "JobLaunchFailure", 9, "vm")),
            (
                Failed,
                "FAILED".into(),
                None,
                Some("killed by signal 9 (JobLaunchFailure)".into())
            )
        );
        assert_eq!(
            status(j("CANCELLED", "None", 15, "vm")),
            (
                Canceled,
                "CANCELLED".into(),
                None,
                Some("killed by signal 15".into())
            )
        );
        // never reached a node: exit_code 1 is not SIGHUP
        assert_eq!(
            status(j("FAILED", "BadConstraints", 1, "")),
            (Failed, "FAILED".into(), None, Some("BadConstraints".into()))
        );
        assert_eq!(status(j("CANCELLED", "PartitionConfig", 0, "")).2, None);
        for (s, want) in [
            ("CONFIGURING", Queued),
            ("REQUEUED", Queued),
            ("SUSPENDED", Running),
            ("TIMEOUT", Failed),
            ("NODE_FAIL", Failed),
            ("OUT_OF_MEMORY", Failed),
            ("BOOT_FAIL", Failed),
            ("DEADLINE", Failed),
            ("PREEMPTED", Failed),
        ] {
            assert_eq!(status(j(s, "None", 0, "vm")).0, want, "{s}");
        }
        let (st, raw, _, m) = status(j("WEIRD", "None", 0, "vm"));
        assert_eq!((st, raw.as_str()), (Unknown, "WEIRD"));
        assert!(m.unwrap().contains("does not know"));
        // newer APIs give a list of states
        assert_eq!(status(json!({"job_state": ["RUNNING"]})).0, Running);
        let g = gone(7);
        assert_eq!((g.state, g.raw_state.as_str()), (Unknown, "gone"));
        assert!(g.message.unwrap().contains("Slurm no longer knows job 7"));
    }

    #[test]
    fn errors_are_read_and_classified() {
        // GET /job/999 on Slurm 22.05.8 (HTTP 500)
        let body = json!({"errors": [{"description": "Unable to find JobId=999", "error_number": 2017,
            "error": "Invalid job id specified", "source": "slurm_load_job"}], "jobs": []});
        let e = slurm_errors(&body);
        assert_eq!(
            e,
            vec![SlurmError {
                number: Some(2017),
                text: "Invalid job id specified: Unable to find JobId=999".into()
            }]
        );
        assert!(has_error(&e, ESLURM_INVALID_JOB_ID));
        // POST /job/submit without environment (HTTP 400): error_code, not error_number
        let body = json!({"errors": [{"error": "environment must be set", "error_code": 2127},
            {"error_code": 9001, "error": "Failure during parsing"}]});
        let e = slurm_errors(&body);
        let r = refusal("submitting job x", 400, &e, "");
        assert_eq!(format!("{:?}", r), format!("{:?}", PluginError::InvalidArgument("Slurm refused submitting job x (HTTP 400): environment must be set (error 2127); Failure during parsing (error 9001)".into())));
        // a bad partition (HTTP 500, error 2000)
        let e = slurm_errors(
            &json!({"errors": [{"error_code": 2000, "error": "Invalid partition name specified"}]}),
        );
        assert!(
            matches!(refusal("x", 500, &e, ""), PluginError::InvalidArgument(m) if m.contains("Invalid partition name specified (error 2000)"))
        );
        // a rejected JWT (HTTP 500, error -1)
        let e = slurm_errors(
            &json!({"errors": [{"description": "Failed while looking for jobs", "error_number": -1, "error": "Unspecified error", "source": "slurm_load_jobs"}]}),
        );
        assert!(
            matches!(refusal("x", 500, &e, ""), PluginError::Internal(m) if m.contains("rejects the JWT"))
        );
        // no token at all: plain text
        assert_eq!(format!("{:?}", refusal("listing jobs", 401, &[], "Authentication failure")), format!("{:?}", PluginError::AccessDenied("Slurm refused listing jobs (HTTP 401): Authentication failure (check config 'user' and the JWT secret)".into())));
        // an API version slurmrestd did not load
        let r = refusal(
            "listing jobs",
            404,
            &[],
            "Unable find requested URL. Please view /openapi/v3 for API reference.",
        );
        assert!(
            matches!(r, PluginError::Internal(m) if m.contains("HTTP 404): Unable find requested URL") && m.contains("'api_version'"))
        );
        assert!(slurm_errors(&json!({"errors": []})).is_empty());
        assert!(slurm_errors(&Value::Null).is_empty());
    }

    #[test]
    fn jobs_are_found_by_name_and_id() {
        let body = json!({"jobs": [
            {"job_id": 3, "name": "atrium-a-1", "job_state": "CANCELLED"},
            {"job_id": 9, "name": "atrium-a-1", "job_state": "RUNNING"},
            {"job_id": 4, "name": "atrium-a-10"},
        ]});
        assert_eq!(find_job_by_name(&body, "atrium-a-1"), Some(9));
        assert_eq!(find_job_by_name(&body, "atrium-a-2"), None);
        assert_eq!(find_job(&body, 4).unwrap()["name"], "atrium-a-10");
        assert_eq!(find_job_by_name(&json!({}), "x"), None);
    }

    #[test]
    fn gres_and_tres_strings() {
        assert_eq!(gres_gpus(""), 0);
        assert_eq!(gres_gpus("(null)"), 0);
        assert_eq!(gres_gpus("gpu:2"), 2);
        assert_eq!(gres_gpus("gpu"), 1);
        assert_eq!(gres_gpus("gpu:a100:4(S:0-1),mps:100"), 4);
        assert_eq!(gres_gpus("gpu:a100:1(IDX:0,2),gpu:v100:2(IDX:1)"), 3);
        assert_eq!(gres_gpus("gpu:a100:0(IDX:N/A)"), 0);
        assert_eq!(gres_gpus("mps:100"), 0);
        assert_eq!(
            format!("{:?}", tres("cpu=2,mem=4000M,node=1,billing=2")),
            format!(
                "{:?}",
                Resources {
                    cpus: 2.0,
                    memory_mb: 4000,
                    gpus: 0
                }
            )
        );
        assert_eq!(
            format!("{:?}", tres("cpu=64,mem=1T,gres/gpu=8")),
            format!(
                "{:?}",
                Resources {
                    cpus: 64.0,
                    memory_mb: 1 << 20,
                    gpus: 8
                }
            )
        );
        assert_eq!(
            format!("{:?}", tres("mem=2G")),
            format!(
                "{:?}",
                Resources {
                    cpus: 0.0,
                    memory_mb: 2048,
                    gpus: 0
                }
            )
        );
    }

    #[test]
    fn pools_from_partitions_nodes_and_jobs() {
        // shapes from Slurm 22.05.8 (trimmed)
        let parts = json!({"partitions": [
            {"name": "debug", "nodes": "vm", "total_cpus": 2, "tres": "cpu=2,mem=4000M,node=1,billing=2"},
            {"name": "gpu", "nodes": "g[1-2]", "total_cpus": 16, "tres": "cpu=16,mem=64000M,gres/gpu=4"},
            {"name": "orphan", "total_cpus": 8, "tres": "cpu=8,mem=1G,gres/gpu=1"},
        ]});
        let nodes = json!({"nodes": [
            {"name": "vm", "state": "mixed", "state_flags": [], "cpus": 2, "idle_cpus": 1, "real_memory": 4000,
             "alloc_memory": 100, "gres": "", "gres_used": "", "partitions": ["debug"]},
            {"name": "g1", "state": "idle", "state_flags": [], "cpus": 8, "idle_cpus": 8, "real_memory": 32000,
             "alloc_memory": 0, "gres": "gpu:a100:2(S:0)", "gres_used": "gpu:a100:1(IDX:0)", "partitions": ["gpu", "debug"]},
            {"name": "g2", "state": "idle", "state_flags": ["DRAIN"], "cpus": 8, "idle_cpus": 8, "real_memory": 32000,
             "alloc_memory": 0, "gres": "gpu:2", "gres_used": "gpu:0", "partitions": ["gpu"]},
        ]});
        let jobs = json!({"jobs": [
            {"job_id": 1, "job_state": "PENDING", "partition": "debug"},
            {"job_id": 2, "job_state": "PENDING", "partition": "gpu,debug"},
            {"job_id": 3, "job_state": "RUNNING", "partition": "debug"},
        ]});
        let p = pools(&parts, &nodes, &jobs, None).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "debug");
        assert_eq!(
            format!("{:?}", p[0].capacity),
            format!(
                "{:?}",
                Resources {
                    cpus: 10.0,
                    memory_mb: 36000,
                    gpus: 2
                }
            )
        );
        assert_eq!(
            format!("{:?}", p[0].available),
            format!(
                "{:?}",
                Resources {
                    cpus: 9.0,
                    memory_mb: 35900,
                    gpus: 1
                }
            )
        );
        assert_eq!(p[0].queued_jobs, 2);
        assert_eq!(
            format!("{:?}", p[1].capacity),
            format!(
                "{:?}",
                Resources {
                    cpus: 16.0,
                    memory_mb: 64000,
                    gpus: 4
                }
            )
        );
        assert_eq!(
            format!("{:?}", p[1].available),
            format!(
                "{:?}",
                Resources {
                    cpus: 8.0,
                    memory_mb: 32000,
                    gpus: 1
                }
            ),
            "the drained node is not available"
        );
        assert_eq!(p[1].queued_jobs, 1);
        assert_eq!(
            format!("{:?}", p[2].capacity),
            format!(
                "{:?}",
                Resources {
                    cpus: 8.0,
                    memory_mb: 1024,
                    gpus: 1
                }
            )
        );
        assert_eq!(
            format!("{:?}", p[2].available),
            format!(
                "{:?}",
                Resources {
                    cpus: 0.0,
                    memory_mb: 0,
                    gpus: 0
                }
            )
        );

        let only = pools(&parts, &nodes, &jobs, Some("gpu")).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name, "gpu");
        let e = pools(&parts, &nodes, &jobs, Some("nope")).unwrap_err();
        assert!(msg(e).contains("(it has: debug, gpu, orphan)"));
        // a down or non-responding node gives nothing
        let down = json!({"nodes": [{"state": "down", "cpus": 2, "idle_cpus": 2, "real_memory": 10, "partitions": ["debug"]},
                                     {"state": "idle*", "cpus": 2, "idle_cpus": 2, "real_memory": 10, "partitions": ["debug"]}]});
        let p = pools(&parts, &down, &json!({}), Some("debug")).unwrap();
        assert_eq!(p[0].capacity.cpus, 4.0);
        assert_eq!(p[0].available.cpus, 0.0);
    }
}
