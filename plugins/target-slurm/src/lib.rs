//! Atrium's built-in Slurm compute target (plugin API 0.2): starts, watches and cancels jobs
//! through slurmrestd's REST API (v0.0.38 by default), over wasi:http only.
//!
//! Config: `url` (required), `api_version`, `user`, `partition`, `work_dir`, `output`, and one
//! of `jwt_key_secret` (a secret holding slurmrestd's HS256 key in base64; a JWT is minted per
//! call) or `token_secret` (a secret holding a ready JWT). Each job is a batch script that
//! `exec`s the request's argv, named `atrium-<job-id>-<attempt>` so that a repeated submit
//! finds it instead of starting it twice. slurmrestd serves no job output: `logs` is none.

pub mod slurm;

use std::time::{SystemTime, UNIX_EPOCH};

use atrium_sdk::v0_2::target::atrium::plugin::{config, secrets, types::PluginError};
use atrium_sdk::v0_2::target::exports::atrium::plugin::compute_target::{
    Guest, JobRequest, JobStatus, Pool,
};
use serde_json::Value;

use slurm::{ESLURM_ALREADY_DONE, ESLURM_INVALID_JOB_ID, Settings, SlurmError};

/// How long one request may wait for the connection and for the answer to start; a call
/// makes at most three, within the host's 20 s deadline.
pub const REQUEST_TIMEOUT_MS: u64 = 6000;

/// The plugin.
pub struct SlurmTarget;

/// An answer of slurmrestd: status, JSON body (`Null` when not JSON), its `errors[]`, the text.
struct Reply {
    status: u16,
    json: Value,
    errors: Vec<SlurmError>,
    text: String,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.errors.is_empty()
    }
}

/// The checked configuration and the token of this call.
struct Client {
    s: Settings,
    token: String,
}

impl Client {
    fn new() -> Result<Self, PluginError> {
        let s = Settings::load(config::get, secrets::get)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let token = s.token(now);
        Ok(Client { s, token })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, PluginError> {
        let url = self.s.api_url(path);
        let payload = body.map(Value::to_string);
        let headers = [
            ("X-SLURM-USER-NAME", self.s.user.as_str()),
            ("X-SLURM-USER-TOKEN", self.token.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ];
        let r = atrium_sdk::http::request(
            method,
            &url,
            &headers,
            payload.as_deref().map(str::as_bytes),
            REQUEST_TIMEOUT_MS,
        )
        .map_err(|e| {
            PluginError::Internal(format!("Slurm is unreachable at {}: {e}", self.s.url))
        })?;
        let text = r.text();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let errors = slurm::slurm_errors(&json);
        Ok(Reply {
            status: r.status,
            json,
            errors,
            text,
        })
    }

    /// A GET that must succeed.
    fn get(&self, path: &str, what: &str) -> Result<Value, PluginError> {
        let r = self.call("GET", path, None)?;
        if !r.ok() {
            return Err(slurm::refusal(what, r.status, &r.errors, &r.text));
        }
        Ok(r.json)
    }
}

impl Guest for SlurmTarget {
    fn describe() -> Result<Vec<Pool>, PluginError> {
        let c = Client::new()?;
        let partitions = c.get("/partitions", "listing partitions")?;
        let nodes = c.get("/nodes", "listing nodes")?;
        let jobs = c.get("/jobs", "listing jobs")?;
        slurm::pools(&partitions, &nodes, &jobs, c.s.partition.as_deref())
    }

    fn submit(job: JobRequest) -> Result<String, PluginError> {
        let c = Client::new()?;
        let body = slurm::submit_body(&job, &c.s)?;
        let name = slurm::job_name(&job.job_id, job.attempt);
        let jobs = c.get("/jobs", "listing jobs")?;
        if let Some(id) = slurm::find_job_by_name(&jobs, &name) {
            atrium_sdk::log!(
                atrium_sdk::v0_2::target,
                Info,
                "Slurm already has job {id} named {name}; not submitting it again"
            );
            return Ok(id.to_string());
        }
        let r = c.call("POST", "/job/submit", Some(&body))?;
        let id = r.json.get("job_id").and_then(Value::as_u64);
        if !r.ok() {
            // Slurm may keep a job it refused (pending forever on PartitionConfig): drop it
            if let Some(id) = id {
                let _ = c.call("DELETE", &format!("/job/{id}"), None);
            }
            return Err(slurm::refusal(
                &format!("job {name}"),
                r.status,
                &r.errors,
                &r.text,
            ));
        }
        let id = id.ok_or_else(|| {
            PluginError::Internal(format!(
                "Slurm accepted job {name} (HTTP {}) without a job_id: {}",
                r.status,
                r.text.chars().take(300).collect::<String>()
            ))
        })?;
        Ok(id.to_string())
    }

    fn status(handle: String) -> Result<JobStatus, PluginError> {
        let id = slurm::parse_handle(&handle)?;
        let c = Client::new()?;
        let r = c.call("GET", &format!("/job/{id}"), None)?;
        if slurm::has_error(&r.errors, ESLURM_INVALID_JOB_ID) {
            return Ok(slurm::gone(id));
        }
        if !r.ok() {
            return Err(slurm::refusal(
                &format!("reading job {id}"),
                r.status,
                &r.errors,
                &r.text,
            ));
        }
        match slurm::find_job(&r.json, id) {
            Some(j) => Ok(slurm::job_status(j)),
            None => Ok(slurm::gone(id)),
        }
    }

    fn cancel(handle: String) -> Result<(), PluginError> {
        let id = slurm::parse_handle(&handle)?;
        let c = Client::new()?;
        let r = c.call("DELETE", &format!("/job/{id}"), None)?;
        if r.ok()
            || slurm::has_error(&r.errors, ESLURM_INVALID_JOB_ID)
            || slurm::has_error(&r.errors, ESLURM_ALREADY_DONE)
        {
            return Ok(());
        }
        Err(slurm::refusal(
            &format!("cancelling job {id}"),
            r.status,
            &r.errors,
            &r.text,
        ))
    }

    fn logs(handle: String, _offset: u64) -> Result<Option<Vec<u8>>, PluginError> {
        slurm::parse_handle(&handle)?;
        Ok(None)
    }
}

atrium_sdk::export_target_0_2!(SlurmTarget);
