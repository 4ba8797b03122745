//! Compute-target plugins (plugin API 0.2): one sandboxed instance per call to start, watch
//! and stop jobs on an engine, with what the guest returns checked against the contract
//! (a hostile or broken target cannot hand the host unbounded or malformed answers).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::v0_2::target::ComputeTargetPlugin;
use super::v0_2::target::exports::atrium::plugin::compute_target as wit;
use super::{Kind, guest_error_0_2};
use super::{KindPre, Loader, PluginEngine, PluginState, RuntimeError, StoreSpec, call_error};

/// Longest handle a target may return.
pub const MAX_HANDLE: usize = 256;
/// Most pools a target may describe.
pub const MAX_POOLS: usize = 64;
/// Longest engine message kept.
pub const MAX_MESSAGE: usize = 2000;

/// A job to start (the host's form of the WIT `job-request`).
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// Job id (the idempotency key).
    pub job_id: String,
    /// Attempt, from 1.
    pub attempt: u32,
    /// The run it logs into.
    pub run_id: String,
    /// The worker's command line.
    pub argv: Vec<String>,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// CPUs, memory, GPUs.
    pub resources: Resources,
    /// Labels for the engine's views.
    pub labels: Vec<(String, String)>,
    /// Time limit.
    pub timeout_secs: Option<u64>,
}

/// CPUs, memory and GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Resources {
    /// CPUs.
    pub cpus: f32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// GPUs.
    pub gpus: u32,
}

/// An engine's state of a job, mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineState {
    /// Waiting on the engine.
    Queued,
    /// Running.
    Running,
    /// Ended successfully.
    Succeeded,
    /// Ended with an error.
    Failed,
    /// Stopped by a cancel.
    Canceled,
    /// The engine no longer knows the job.
    Unknown,
}

impl EngineState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the job has ended on the engine.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// What the engine says about a job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobStatus {
    /// Mapped state.
    pub state: EngineState,
    /// The engine's own state.
    pub raw_state: String,
    /// Exit code, once ended.
    pub exit_code: Option<i32>,
    /// The engine's message.
    pub message: Option<String>,
}

/// A pool of an engine.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Pool {
    /// Name (partition, node group).
    pub name: String,
    /// What it holds.
    pub capacity: Resources,
    /// What is free now.
    pub available: Resources,
    /// Jobs waiting in it.
    pub queued_jobs: u32,
}

/// A compute-target component with its store settings; each call runs in a fresh instance on
/// the calling (blocking) thread.
#[derive(Clone)]
pub struct TargetPlugin {
    /// The loader holding the component.
    pub loader: Arc<Loader>,
    /// sha256 of the component.
    pub digest: String,
    /// Store settings (grants, memory cap, log tags).
    pub spec: StoreSpec,
    /// Deadline of one call.
    pub deadline: Duration,
    /// `name@version`, for messages.
    pub label: String,
}

fn short(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn resources(r: wit::Resources) -> Resources {
    let finite = |v: f32| if v.is_finite() && v >= 0.0 { v } else { 0.0 };
    Resources {
        cpus: finite(r.cpus),
        memory_mb: r.memory_mb,
        gpus: r.gpus,
    }
}

impl TargetPlugin {
    fn instance(&self) -> Result<(Store<PluginState>, ComputeTargetPlugin), RuntimeError> {
        let pre = self.loader.pre(&self.digest, Kind::Target)?;
        let KindPre::Target2(pre) = pre.as_ref() else {
            return Err(RuntimeError::Contract(format!(
                "{} is a plugin API 0.1 target, whose world predates the worker: rebuild it against atrium:plugin@0.2.0",
                self.label
            )));
        };
        let mut store = PluginState::new(&self.spec)?.into_store(self.loader.engine().engine());
        store.set_epoch_deadline(PluginEngine::ticks(self.deadline));
        let b = pre.instantiate(&mut store).map_err(|e| {
            self.named(call_error(store.data(), e, self.deadline, self.spec.memory))
        })?;
        Ok((store, b))
    }

    fn named(&self, e: RuntimeError) -> RuntimeError {
        match e {
            RuntimeError::Internal(m) => RuntimeError::Internal(m),
            RuntimeError::Guest(m) => RuntimeError::Guest(format!("{}: {m}", self.label)),
            other => RuntimeError::Guest(format!("{} failed: {other}", self.label)),
        }
    }

    fn call<R>(
        &self,
        f: impl FnOnce(
            &mut Store<PluginState>,
            &ComputeTargetPlugin,
        ) -> wasmtime::Result<
            Result<R, super::v0_2::target::atrium::plugin::types::PluginError>,
        >,
    ) -> Result<R, RuntimeError> {
        let (mut store, b) = self.instance()?;
        store.set_epoch_deadline(PluginEngine::ticks(self.deadline));
        match f(&mut store, &b) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.named(guest_error_0_2(e))),
            Err(e) => Err(self.named(call_error(store.data(), e, self.deadline, self.spec.memory))),
        }
    }

    /// The engine's pools.
    pub fn describe(&self) -> Result<Vec<Pool>, RuntimeError> {
        let pools = self.call(|s, b| b.atrium_plugin_compute_target().call_describe(s))?;
        if pools.len() > MAX_POOLS {
            return Err(self.named(RuntimeError::Contract(format!(
                "it described {} pools; at most {MAX_POOLS} are accepted",
                pools.len()
            ))));
        }
        Ok(pools
            .into_iter()
            .map(|p| Pool {
                name: short(p.name, 200),
                capacity: resources(p.capacity),
                available: resources(p.available),
                queued_jobs: p.queued_jobs,
            })
            .collect())
    }

    /// Starts a job; returns the engine's handle.
    pub fn submit(&self, job: &JobRequest) -> Result<String, RuntimeError> {
        let req = wit::JobRequest {
            job_id: job.job_id.clone(),
            attempt: job.attempt,
            run_id: job.run_id.clone(),
            argv: job.argv.clone(),
            env: job.env.clone(),
            resources: wit::Resources {
                cpus: job.resources.cpus,
                memory_mb: job.resources.memory_mb,
                gpus: job.resources.gpus,
            },
            labels: job.labels.clone(),
            timeout_secs: job.timeout_secs,
        };
        let handle = self.call(|s, b| b.atrium_plugin_compute_target().call_submit(s, &req))?;
        if handle.is_empty() || handle.len() > MAX_HANDLE || handle.chars().any(char::is_control) {
            return Err(self.named(RuntimeError::Contract(format!(
                "it returned an unusable job handle ({} bytes; a handle has 1-{MAX_HANDLE} printable characters)",
                handle.len()
            ))));
        }
        Ok(handle)
    }

    /// The engine's state of a job.
    pub fn status(&self, handle: &str) -> Result<JobStatus, RuntimeError> {
        let st = self.call(|s, b| b.atrium_plugin_compute_target().call_status(s, handle))?;
        Ok(JobStatus {
            state: match st.state {
                wit::JobState::Queued => EngineState::Queued,
                wit::JobState::Running => EngineState::Running,
                wit::JobState::Succeeded => EngineState::Succeeded,
                wit::JobState::Failed => EngineState::Failed,
                wit::JobState::Canceled => EngineState::Canceled,
                wit::JobState::Unknown => EngineState::Unknown,
            },
            raw_state: short(st.raw_state, 64),
            exit_code: st.exit_code,
            message: st.message.map(|m| short(m, MAX_MESSAGE)),
        })
    }

    /// Stops a job.
    pub fn cancel(&self, handle: &str) -> Result<(), RuntimeError> {
        self.call(|s, b| b.atrium_plugin_compute_target().call_cancel(s, handle))
    }

    /// The job's output from byte `offset`, if the engine keeps it.
    pub fn logs(&self, handle: &str, offset: u64) -> Result<Option<Vec<u8>>, RuntimeError> {
        self.call(|s, b| {
            b.atrium_plugin_compute_target()
                .call_logs(s, handle, offset)
        })
    }
}
