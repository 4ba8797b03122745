//! What a job kind needs from where it runs ([`JobCtx`]): the host's executor in-process
//! ([`HostCtx`]), or a worker that talks to a host over HTTP (`crate::worker`). A job kind
//! never calls back into the executor; it gets one of these.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::Running;
use super::executor::Executor;
use crate::store::{JobRow, JobState, LogBatch};
use crate::train::spec::dataset_ref;
use crate::workspace::dataset::Table;
use crate::workspace::{DomainResult, Workspace};

/// The services a running job uses: its log, its run, its inputs, its state.
pub trait JobCtx: Send + Sync + 'static {
    /// Appends a line to the job's log.
    fn line(&self, text: &str);
    /// Logs params, tags and metric points to the job's run.
    fn log(&self, batch: LogBatch) -> impl Future<Output = DomainResult<()>> + Send;
    /// Stores an artifact of the job's run at `path`.
    fn upload(&self, path: &str, bytes: Vec<u8>) -> impl Future<Output = DomainResult<()>> + Send;
    /// Loads a pinned dataset version (`name:version`): its reference and its table.
    fn dataset(&self, r: &str) -> impl Future<Output = DomainResult<(String, Table)>> + Send;
    /// Moves the job to `state` (Preparing, Running, Finalizing).
    fn set_state(&self, state: JobState) -> impl Future<Output = DomainResult<()>> + Send;
    /// The cancel flag and the live progress.
    fn running(&self) -> &Running;
    /// Threads the job may use.
    fn threads(&self) -> usize;
}

/// A job running inside the host process (the local target).
pub struct HostCtx {
    /// The executor (its service, logs and configuration).
    pub ex: Arc<Executor>,
    /// The job's workspace.
    pub ws: Workspace,
    /// The job.
    pub job: JobRow,
    /// Its run.
    pub run_id: String,
    /// Its live state.
    pub live: Arc<Running>,
}

impl JobCtx for HostCtx {
    fn line(&self, text: &str) {
        self.ex.logs.line(&self.job.id, text);
    }

    async fn log(&self, batch: LogBatch) -> DomainResult<()> {
        self.ex
            .svc
            .store
            .log_batch(self.ws.id, &self.run_id, batch)
            .await
    }

    async fn upload(&self, path: &str, bytes: Vec<u8>) -> DomainResult<()> {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
        self.ex
            .svc
            .upload_artifact(&self.ws, &self.run_id, path, stream)
            .await
            .map(|_| ())
    }

    async fn dataset(&self, r: &str) -> DomainResult<(String, Table)> {
        let t = &self.ex.svc;
        let (name, version) = dataset_ref(r)?;
        let d = t.store.dataset(self.ws.id, name, version).await?;
        let table = t.dataset_table(&self.ws, &d).await?;
        Ok((format!("{}:{}", d.name, d.version), table))
    }

    async fn set_state(&self, state: JobState) -> DomainResult<()> {
        self.ex
            .svc
            .store
            .set_job_state(self.job.key, state, None, None)
            .await
    }

    fn running(&self) -> &Running {
        &self.live
    }

    fn threads(&self) -> usize {
        self.ex.cfg.threads_per_slot
    }
}
