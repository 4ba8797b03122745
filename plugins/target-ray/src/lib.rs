//! `target-ray`, Atrium's built-in compute target for Ray (checked against Ray 2.60): jobs go
//! to the Jobs REST API of the head node's dashboard, through `wasi:http` only.
//!
//! Config (operator settings of the instance):
//! - `url` (required): the dashboard's base URL, e.g. `http://127.0.0.1:8265`;
//! - `token_secret` (optional): the name of a granted secret holding Ray's auth token (the value
//!   of `RAY_AUTH_TOKEN` of a cluster started with `RAY_AUTH_MODE=token`), sent as
//!   `Authorization: Bearer <token>` (a value already starting with `Bearer ` is taken as is);
//! - `path` (optional): the `PATH` of the job when the request's environment has none (used
//!   literally, nothing is expanded).
//!
//! A job's attempt is the Ray job `atrium-<job-id>-<attempt>` (its `submission_id`, which is the
//! handle; Ray refuses a second submission with the same id, so a retried submit is idempotent).
//! Its entrypoint is `exec /usr/bin/env 'NAME=value'... ARGV...`, every word single-quoted: the
//! environment travels in the entrypoint rather than in `runtime_env.env_vars`, because Ray
//! (a) sets a runtime environment up for `env_vars`, which cost ~240 ms per job (measured:
//! 1544 vs 1305 ms submit → SUCCEEDED of a trivial job), (b) expands `$NAME` in their values
//! with no escape, and (c) applies them to its own job supervisor, which execs `bash` from
//! `PATH` (a `PATH` without bash left the job PENDING forever). In the entrypoint, a value
//! reaches the job byte for byte and touches nothing of Ray's.

use atrium_sdk::v0_2::target::atrium::plugin::types::PluginError;
use atrium_sdk::v0_2::target::exports::atrium::plugin::compute_target::{
    Guest, JobRequest, JobState, JobStatus, Pool, Resources,
};
use serde_json::{Map, Value, json};

/// Config key: the Ray dashboard's base URL.
pub const KEY_URL: &str = "url";
/// Config key: the name of the secret holding the Bearer token.
pub const KEY_TOKEN_SECRET: &str = "token_secret";
/// Config key: the job's `PATH` when the request has none.
pub const KEY_PATH: &str = "path";
/// The one pool `describe` answers.
pub const POOL: &str = "default";
/// Timeout of each HTTP request (a target call may take 30 s in all).
pub const TIMEOUT_MS: u64 = 10_000;
/// Longest engine message passed on (bytes).
pub const MAX_MESSAGE: usize = 500;
/// Longest excerpt of an error body in an error message (bytes).
pub const MAX_EXCERPT: usize = 300;
/// The program that sets the job's environment before its command.
pub const ENV_BIN: &str = "/usr/bin/env";

/// The plugin's settings, read from config and secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Base URL, without a trailing `/`.
    pub url: String,
    /// The Bearer token, if one is configured.
    pub token: Option<String>,
    /// `PATH` for jobs whose request has none.
    pub path: Option<String>,
}

impl Settings {
    /// Reads the settings through `config` and `secret` lookups; an error names the key.
    pub fn load(
        config: impl Fn(&str) -> Option<String>,
        secret: impl Fn(&str) -> Result<String, PluginError>,
    ) -> Result<Self, PluginError> {
        let set = |k: &str| {
            config(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let url = set(KEY_URL).ok_or_else(|| {
            PluginError::InvalidArgument(format!(
                "config '{KEY_URL}' is not set: set it to the Ray dashboard's URL (http://HOST:8265)"
            ))
        })?;
        let url = check_url(&url)?;
        let token = match set(KEY_TOKEN_SECRET) {
            None => None,
            Some(name) => {
                let v = secret(&name).map_err(|e| {
                    let why = error_text(&e);
                    let m = format!("config '{KEY_TOKEN_SECRET}' names secret '{name}': {why}");
                    match e {
                        PluginError::AccessDenied(_) => PluginError::AccessDenied(m),
                        PluginError::NotFound(_) => PluginError::NotFound(m),
                        _ => PluginError::InvalidArgument(m),
                    }
                })?;
                let v = v.trim();
                let v = v.strip_prefix("Bearer ").unwrap_or(v).trim();
                if v.is_empty() || v.chars().any(|c| c.is_control() || c == ' ') {
                    return Err(PluginError::InvalidArgument(format!(
                        "config '{KEY_TOKEN_SECRET}': secret '{name}' is not a token (empty, or holds spaces or control characters)"
                    )));
                }
                Some(v.to_string())
            }
        };
        let path = set(KEY_PATH);
        if let Some(p) = &path
            && p.contains('\0')
        {
            return Err(PluginError::InvalidArgument(format!(
                "config '{KEY_PATH}' holds a NUL byte"
            )));
        }
        Ok(Settings { url, token, path })
    }
}

/// The message inside a plugin error.
pub fn error_text(e: &PluginError) -> &str {
    match e {
        PluginError::InvalidArgument(m)
        | PluginError::NotFound(m)
        | PluginError::AccessDenied(m)
        | PluginError::ResourceExhausted(m)
        | PluginError::Unsupported(m)
        | PluginError::Internal(m) => m,
    }
}

/// Checks the `url` config (http or https, a host, no query) and drops trailing slashes.
pub fn check_url(url: &str) -> Result<String, PluginError> {
    let bad = |why: &str| {
        PluginError::InvalidArgument(format!(
            "config '{KEY_URL}' ('{url}') {why}: set it to the Ray dashboard's URL (http://HOST:8265)"
        ))
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("has no host"));
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("holds a query, a fragment or spaces"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The Ray submission id of a job's attempt, which is the handle.
pub fn submission_id(job_id: &str, attempt: u32) -> String {
    format!("atrium-{job_id}-{attempt}")
}

/// `s` as one POSIX shell word: bare if it has only safe characters, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+:,./_-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The request's environment as `NAME=value` pairs: the last value of a repeated name wins;
/// `default_path` is the `PATH` when none is given.
pub fn env_pairs(
    env: &[(String, String)],
    default_path: Option<&str>,
) -> Result<Vec<(String, String)>, PluginError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(PluginError::InvalidArgument(format!(
                "environment variable '{}' has an invalid name or a NUL byte",
                k.escape_debug()
            )));
        }
        vars.retain(|(n, _)| n != k);
        vars.push((k.clone(), v.clone()));
    }
    if let Some(p) = default_path
        && !vars.iter().any(|(k, _)| k == "PATH")
    {
        vars.push(("PATH".into(), p.to_string()));
    }
    Ok(vars)
}

/// The entrypoint: `exec` of `env` with the job's variables, then the quoted argv.
pub fn entrypoint(argv: &[String], env: &[(String, String)]) -> Result<String, PluginError> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(PluginError::InvalidArgument(
            "the job's argv is empty".to_string(),
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(PluginError::InvalidArgument(
            "the job's argv holds a NUL byte".to_string(),
        ));
    }
    if argv[0].contains('=') {
        return Err(PluginError::InvalidArgument(format!(
            "the job's command '{}' holds '=' (env would take it for a variable)",
            argv[0]
        )));
    }
    let mut s = format!("exec {ENV_BIN}");
    for (k, v) in env {
        s.push(' ');
        s.push_str(&shell_quote(&format!("{k}={v}")));
    }
    for a in argv {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    Ok(s)
}

/// Checks a job id for use in a Ray submission id (a file name on the head node, a URL segment).
pub fn check_job_id(id: &str) -> Result<(), PluginError> {
    if id.is_empty()
        || id.len() > 200
        || id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == '\\')
    {
        return Err(PluginError::InvalidArgument(format!(
            "job id '{}' cannot name a Ray job (1-200 characters, no spaces, slashes or control characters)",
            id.escape_debug()
        )));
    }
    Ok(())
}

/// The body of `POST /api/jobs/` for a job's attempt.
pub fn submit_body(job: &JobRequest, default_path: Option<&str>) -> Result<Value, PluginError> {
    check_job_id(&job.job_id)?;
    let env = env_pairs(&job.env, default_path)?;
    let mut body = Map::new();
    body.insert(
        "submission_id".into(),
        json!(submission_id(&job.job_id, job.attempt)),
    );
    body.insert("entrypoint".into(), json!(entrypoint(&job.argv, &env)?));
    let r = job.resources;
    if r.cpus.is_finite() && r.cpus > 0.0 {
        body.insert("entrypoint_num_cpus".into(), json!(r.cpus));
    }
    if r.gpus > 0 {
        body.insert("entrypoint_num_gpus".into(), json!(r.gpus));
    }
    if r.memory_mb > 0 {
        body.insert(
            "entrypoint_memory".into(),
            json!(r.memory_mb.saturating_mul(1 << 20)),
        );
    }
    if !job.labels.is_empty() {
        let labels: Map<String, Value> = job
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        body.insert("metadata".into(), Value::Object(labels));
    }
    Ok(Value::Object(body))
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A short excerpt of an error body: the exception line of a Python traceback (what Ray's
/// dashboard answers a 500 or 400 with), else the body's start.
pub fn error_excerpt(body: &str) -> String {
    let body = body.trim();
    if body.contains("Traceback (most recent call last)")
        && let Some(line) = body.lines().rev().map(str::trim_end).find(|l| {
            !l.is_empty() && !l.starts_with(char::is_whitespace) && l.contains(": ") && *l != "."
        })
    {
        return shorten(line.trim(), MAX_EXCERPT);
    }
    shorten(
        &body.split_whitespace().collect::<Vec<_>>().join(" "),
        MAX_EXCERPT,
    )
}

/// Whether a refused submission means the submission id is taken (Ray answers 500 with
/// "Job with submission_id ... already exists").
pub fn is_duplicate(status: u16, body: &str) -> bool {
    !(200..300).contains(&status) && body.contains("already exists")
}

/// A Ray job's details (`GET /api/jobs/{id}`) mapped onto Atrium's states.
pub fn job_status(details: &Value) -> Result<JobStatus, String> {
    let raw = details
        .get("status")
        .and_then(Value::as_str)
        .ok_or("Ray's job details have no status")?;
    let state = match raw {
        "PENDING" => JobState::Queued,
        "RUNNING" => JobState::Running,
        "SUCCEEDED" => JobState::Succeeded,
        "FAILED" => JobState::Failed,
        "STOPPED" => JobState::Canceled,
        _ => JobState::Unknown,
    };
    let exit_code = details
        .get("driver_exit_code")
        .and_then(Value::as_i64)
        .map(|c| c.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
    let kind = details
        .get("error_type")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    let prefix = kind.map(|k| format!("{k}: ")).unwrap_or_default();
    let msg = details
        .get("message")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| without_ray_lines(m, MAX_MESSAGE.saturating_sub(prefix.len())));
    let message = match msg {
        Some(m) => Some(shorten(&format!("{prefix}{m}"), MAX_MESSAGE)),
        None => kind.map(str::to_string),
    };
    Ok(JobStatus {
        state,
        raw_state: raw.to_string(),
        exit_code,
        message,
    })
}

/// A failed job's message without the lines Ray writes itself at the top of its log (the
/// entrypoint, long with this plugin's prefix), keeping the job's last output lines within
/// `max` bytes: "Job entrypoint command failed with exit code 3, last available logs
/// (truncated to 20,000 chars):\n..." becomes "... exit code 3; last output:\n...".
pub fn without_ray_lines(message: &str, max: usize) -> String {
    let Some(at) = message.find(", last available logs") else {
        return message.to_string();
    };
    let head = &message[..at];
    let logs = message[at..].split_once('\n').map_or("", |(_, l)| l);
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| {
            !l.starts_with("Running entrypoint for job ") && !l.contains("INFO job_manager.py:")
        })
        .collect();
    let budget = max.saturating_sub(head.len() + 16);
    let mut tail: Vec<&str> = Vec::new();
    let mut used = 0;
    for l in lines.iter().rev() {
        if used + l.len() + 1 > budget {
            if tail.is_empty() {
                let mut start = l.len().saturating_sub(budget);
                while !l.is_char_boundary(start) {
                    start += 1;
                }
                tail.push(&l[start..]);
            }
            break;
        }
        used += l.len() + 1;
        tail.push(l);
    }
    tail.reverse();
    let tail = tail.join("\n");
    if tail.trim().is_empty() {
        head.to_string()
    } else {
        format!("{head}; last output:\n{tail}")
    }
}

/// The status of a job Ray answered 404 for.
pub fn forgotten(handle: &str) -> JobStatus {
    JobStatus {
        state: JobState::Unknown,
        raw_state: String::new(),
        exit_code: None,
        message: Some(format!(
            "Ray no longer knows job {handle} (its head node restarted, or the job was deleted)"
        )),
    }
}

/// The bytes of a `GET /api/jobs/{id}/logs` answer (`{"logs": "..."}`) from `offset`.
pub fn logs_from(body: &[u8], offset: u64) -> Result<Vec<u8>, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("Ray's logs answer is not JSON: {e}"))?;
    let logs = match v.get("logs") {
        Some(Value::String(s)) => s.as_bytes(),
        Some(Value::Null) | None => b"",
        Some(_) => return Err("Ray's logs answer has no logs string".into()),
    };
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(logs.len());
    Ok(logs[start..].to_vec())
}

/// The pool from `GET /api/cluster_status` (`data.clusterStatus.loadMetricsReport.usage`:
/// resource → [used, total]) and `GET /api/jobs/` (its PENDING jobs are the queue).
pub fn pool(cluster: &Value, jobs: &Value) -> Result<Pool, String> {
    let usage = cluster
        .pointer("/data/clusterStatus/loadMetricsReport/usage")
        .and_then(Value::as_object)
        .ok_or("Ray has not reported its cluster's resources yet (no loadMetricsReport in /api/cluster_status)")?;
    let pair = |name: &str| -> (f64, f64) {
        let p = usage.get(name).and_then(Value::as_array);
        let at = |i: usize| {
            p.and_then(|p| p.get(i))
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(0.0)
        };
        (at(0), at(1))
    };
    let res = |f: &dyn Fn((f64, f64)) -> f64| Resources {
        cpus: f(pair("CPU")) as f32,
        memory_mb: (f(pair("memory")) / (1u64 << 20) as f64) as u64,
        gpus: f(pair("GPU")).floor() as u32,
    };
    let capacity = res(&|(_, total)| total);
    let available = res(&|(used, total)| (total - used).max(0.0));
    let jobs = jobs
        .as_array()
        .ok_or("Ray's job list (/api/jobs/) is not a JSON list")?;
    let queued = jobs
        .iter()
        .filter(|j| j.get("status").and_then(Value::as_str) == Some("PENDING"))
        .count();
    Ok(Pool {
        name: POOL.into(),
        capacity,
        available,
        queued_jobs: u32::try_from(queued).unwrap_or(u32::MAX),
    })
}

/// `s` as one URL path segment (everything but unreserved characters percent-encoded).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; the error names what was asked.
    pub fn json(&self, what: &str) -> Result<Value, PluginError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            PluginError::Internal(format!(
                "Ray's answer to {what} is not JSON ({e}): {}",
                error_excerpt(&self.text())
            ))
        })
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error for an unexpected answer to `what`.
    pub fn error(&self, what: &str) -> PluginError {
        PluginError::Internal(format!(
            "Ray answered {what} with HTTP {}: {}",
            self.status,
            error_excerpt(&self.text())
        ))
    }
}

/// The error for a 401/403 answer, or None.
pub fn auth_error(status: u16, url: &str, has_token: bool, body: &str) -> Option<PluginError> {
    if status != 401 && status != 403 {
        return None;
    }
    let why = error_excerpt(body);
    Some(PluginError::AccessDenied(if has_token {
        format!(
            "Ray at {url} refused the token (HTTP {status}: {why}): check the secret named by config '{KEY_TOKEN_SECRET}'"
        )
    } else {
        format!(
            "Ray at {url} requires a token (HTTP {status}: {why}): set config '{KEY_TOKEN_SECRET}' to a secret holding it"
        )
    }))
}

/// A client of one Ray cluster's Jobs API.
pub struct Ray {
    /// Its settings.
    pub settings: Settings,
}

impl Ray {
    /// A client from the instance's config and secrets.
    pub fn from_host() -> Result<Self, PluginError> {
        use atrium_sdk::v0_2::target::atrium::plugin::{config, secrets};
        let settings = Settings::load(config::get, secrets::get)?;
        Ok(Ray { settings })
    }

    /// Sends `method path` (with a JSON body); transport failures and refused tokens are errors,
    /// any other status is an answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, PluginError> {
        let url = format!("{}{path}", self.settings.url);
        let auth = self.settings.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = vec![("accept", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let bytes = body.map(|b| b.to_string().into_bytes());
        if bytes.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let r = atrium_sdk::http::request(method, &url, &headers, bytes.as_deref(), TIMEOUT_MS)
            .map_err(|e| {
                let at = &self.settings.url;
                PluginError::Internal(if e.0.contains("is larger than") {
                    format!("Ray at {at} answered more than this plugin reads: {e}")
                } else {
                    format!("Ray is unreachable at {at}: {e}")
                })
            })?;
        let answer = Answer {
            status: r.status,
            body: r.body,
        };
        if let Some(e) = auth_error(
            answer.status,
            &self.settings.url,
            self.settings.token.is_some(),
            &answer.text(),
        ) {
            return Err(e);
        }
        Ok(answer)
    }

    /// `GET /api/jobs/{handle}`: the details, or None on 404.
    pub fn details(&self, handle: &str) -> Result<Option<Value>, PluginError> {
        let what = format!("GET /api/jobs/{handle}");
        let a = self.call("GET", &format!("/api/jobs/{}", path_segment(handle)), None)?;
        match a.status {
            404 => Ok(None),
            _ if a.ok() => a.json(&what).map(Some),
            _ => Err(a.error(&what)),
        }
    }
}

/// The Ray compute target.
pub struct RayTarget;

impl Guest for RayTarget {
    fn describe() -> Result<Vec<Pool>, PluginError> {
        let ray = Ray::from_host()?;
        let c = ray.call("GET", "/api/cluster_status", None)?;
        if !c.ok() {
            return Err(c.error("GET /api/cluster_status"));
        }
        let cluster = c.json("GET /api/cluster_status")?;
        let j = ray.call("GET", "/api/jobs/", None)?;
        if !j.ok() {
            return Err(j.error("GET /api/jobs/"));
        }
        let jobs = j.json("GET /api/jobs/")?;
        Ok(vec![pool(&cluster, &jobs).map_err(PluginError::Internal)?])
    }

    fn submit(job: JobRequest) -> Result<String, PluginError> {
        let ray = Ray::from_host()?;
        let body = submit_body(&job, ray.settings.path.as_deref())?;
        let handle = submission_id(&job.job_id, job.attempt);
        let a = ray.call("POST", "/api/jobs/", Some(&body))?;
        if a.ok() {
            return Ok(handle);
        }
        if is_duplicate(a.status, &a.text()) && ray.details(&handle)?.is_some() {
            return Ok(handle);
        }
        Err(PluginError::Internal(format!(
            "Ray refused job {handle} (HTTP {}): {}",
            a.status,
            error_excerpt(&a.text())
        )))
    }

    fn status(handle: String) -> Result<JobStatus, PluginError> {
        let ray = Ray::from_host()?;
        match ray.details(&handle)? {
            None => Ok(forgotten(&handle)),
            Some(d) => job_status(&d).map_err(PluginError::Internal),
        }
    }

    fn cancel(handle: String) -> Result<(), PluginError> {
        let ray = Ray::from_host()?;
        let path = format!("/api/jobs/{}/stop", path_segment(&handle));
        let a = ray.call("POST", &path, None)?;
        // {"stopped": false}: it had ended already; 404: Ray does not know it
        if a.ok() || a.status == 404 {
            Ok(())
        } else {
            Err(a.error(&format!("POST /api/jobs/{handle}/stop")))
        }
    }

    fn logs(handle: String, offset: u64) -> Result<Option<Vec<u8>>, PluginError> {
        let ray = Ray::from_host()?;
        let path = format!("/api/jobs/{}/logs", path_segment(&handle));
        let a = ray.call("GET", &path, None)?;
        match a.status {
            404 => Ok(None),
            _ if a.ok() => logs_from(&a.body, offset)
                .map(Some)
                .map_err(PluginError::Internal),
            _ => Err(a.error(&format!("GET /api/jobs/{handle}/logs"))),
        }
    }
}

// Only in the component: a native cdylib cannot carry the WIT export names (`a:b/c@0.2.0#f`)
// in its linker version script, and the rlib's unit tests need no exports.
#[cfg(target_arch = "wasm32")]
atrium_sdk::export_target_0_2!(RayTarget);

#[cfg(test)]
mod tests;
