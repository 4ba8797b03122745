//! The worker: `atrium worker run` runs one attempt of one job wherever a host is reachable
//! over HTTP. It fetches the work with its job token, runs the job kind with a [`JobCtx`] that
//! batches log output and metrics to the host (each batch with an id the host stores once, so
//! a retried batch is never stored twice), heartbeats every second (the answer carries a
//! cancel), uploads outputs as run artifacts and reports the result.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::Method;

use super::Running;
use super::command::{self, Launch, Sink};
use super::ctx::JobCtx;
use super::executor::Failure;
use super::remote::{Events, EventsReply, KeyValue, PointIn, ProgressIn, Report, Work};
use super::spec::CommandSpec;
use crate::cli::client::{Client, ClientError, encode_path};
use crate::store::{JobState, LogBatch};
use crate::train::spec::dataset_ref;
use crate::workspace::dataset::Table;
use crate::workspace::{DomainError, DomainResult};

/// How long a report is retried while the host is unreachable or answers 5xx.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// Log output sent in one batch at most.
const MAX_LOG_BATCH: usize = 512 << 10;

/// What a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The host's base URL.
    pub server: String,
    /// The job's workspace.
    pub workspace: String,
    /// The job.
    pub job: String,
    /// The job token the host minted for the attempt.
    pub token: String,
    /// Where environments and working directories live on this machine.
    pub dir: PathBuf,
    /// The uv binary (`None`: looked up).
    pub uv: Option<PathBuf>,
}

/// Why a worker could not run its job or report on it.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The host refused or could not be reached.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The work is unusable.
    #[error("{0}")]
    Work(String),
}

/// What is waiting to be sent.
#[derive(Default)]
struct Pending {
    log: Vec<u8>,
    metrics: Vec<PointIn>,
    params: Vec<KeyValue>,
    tags: Vec<KeyValue>,
    state: Option<JobState>,
}

/// The context of a job run by this worker.
struct WorkerCtx {
    client: Client,
    work: Work,
    live: Arc<Running>,
    pending: std::sync::Mutex<Pending>,
    /// The next batch id; held while a report is in flight, so batches go one at a time.
    next: tokio::sync::Mutex<i64>,
}

fn api_err(e: ClientError) -> DomainError {
    DomainError::Internal(format!("cannot report to the host: {e}"))
}

/// Whether a failed call is worth retrying: the host unreachable, overloaded or restarting.
fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { .. } => true,
        ClientError::Api { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// Retries `f` with backoff while it fails transiently, for [`RETRY_FOR`] at most.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let start = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match f().await {
            Err(e) if transient(&e) && start.elapsed() < RETRY_FOR => {
                tracing::warn!(error = %e, "the host did not answer; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// The longest prefix of `b` (at most `max` bytes) that does not split a UTF-8 sequence.
fn utf8_prefix(b: &[u8], max: usize) -> usize {
    let mut n = b.len().min(max);
    while n > 0 && n < b.len() && (b[n] & 0xC0) == 0x80 {
        n -= 1;
    }
    n
}

impl WorkerCtx {
    fn path(&self, rest: &str) -> String {
        self.client
            .ws_path(&format!("/jobs/{}{rest}", encode_path(&self.work.job)))
    }

    /// Sends what is pending as one batch (or a bare heartbeat), retried until the host
    /// answers; applies a cancel it carries.
    async fn flush(&self) -> Result<EventsReply, ClientError> {
        let mut next = self.next.lock().await;
        loop {
            let mut ev = Events {
                attempt: self.work.attempt,
                ..Default::default()
            };
            {
                let mut p = self.pending.lock().expect("pending");
                let n = utf8_prefix(&p.log, MAX_LOG_BATCH);
                let log: Vec<u8> = p.log.drain(..n).collect();
                ev.log = String::from_utf8_lossy(&log).into_owned();
                ev.metrics = std::mem::take(&mut p.metrics);
                ev.params = std::mem::take(&mut p.params);
                ev.tags = std::mem::take(&mut p.tags);
                ev.state = p.state.take().map(|s| s.as_str().to_string());
            }
            let epochs = self.live.epochs.load(Ordering::Relaxed);
            if epochs > 0 {
                ev.progress = Some(ProgressIn {
                    epoch: self.live.epoch.load(Ordering::Relaxed),
                    epochs,
                    batch: self.live.batch.load(Ordering::Relaxed),
                    batches: self.live.batches.load(Ordering::Relaxed),
                });
            }
            let has_batch = !ev.log.is_empty()
                || !ev.metrics.is_empty()
                || !ev.params.is_empty()
                || !ev.tags.is_empty();
            if has_batch {
                ev.batch = Some(*next);
            }
            let body = serde_json::to_value(&ev).expect("events serialize");
            let path = self.path("/events");
            let v = retry(|| self.client.call(Method::POST, &path, Some(&body))).await?;
            let reply: EventsReply = serde_json::from_value(v).map_err(|e| ClientError::Api {
                status: reqwest::StatusCode::OK,
                code: "BAD_RESPONSE".into(),
                message: format!("the host's answer to a report is not understood: {e}"),
            })?;
            if has_batch {
                *next += 1;
            }
            if reply.cancel {
                self.live.cancel.store(true, Ordering::Relaxed);
            }
            let more = !self.pending.lock().expect("pending").log.is_empty();
            if !more || !has_batch {
                return Ok(reply);
            }
        }
    }

    /// Heartbeats (and sends pending output) every second until the job ends.
    async fn report_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = self.flush().await {
                // the host is gone or refuses this attempt: stop the job
                eprintln!("worker: cannot report to the host: {e}; stopping the job");
                self.live.cancel.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    fn sink(self: &Arc<Self>) -> Sink {
        let me = self.clone();
        Arc::new(move |b: &[u8]| me.pending.lock().expect("pending").log.extend_from_slice(b))
    }
}

impl JobCtx for WorkerCtx {
    fn line(&self, text: &str) {
        let mut p = self.pending.lock().expect("pending");
        p.log.extend_from_slice(text.as_bytes());
        p.log.push(b'\n');
    }

    async fn log(&self, batch: LogBatch) -> DomainResult<()> {
        {
            let mut p = self.pending.lock().expect("pending");
            p.metrics.extend(batch.metrics.iter().map(|m| PointIn {
                key: m.key.clone(),
                value: m.point.value,
                timestamp: m.point.timestamp,
                step: m.point.step,
            }));
            p.params.extend(
                batch
                    .params
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value }),
            );
            p.tags.extend(
                batch
                    .tags
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value }),
            );
        }
        // acknowledged once the host has stored it
        self.flush().await.map(|_| ()).map_err(api_err)
    }

    async fn upload(&self, path: &str, bytes: Vec<u8>) -> DomainResult<()> {
        let url = self.client.ws_path(&format!(
            "/runs/{}/artifacts/{}",
            encode_path(&self.work.run_id),
            encode_path(path)
        ));
        retry(|| self.client.put_bytes(&url, bytes.clone()))
            .await
            .map(|_| ())
            .map_err(|e| DomainError::Internal(format!("cannot upload {path}: {e}")))
    }

    async fn dataset(&self, r: &str) -> DomainResult<(String, Table)> {
        let (name, version) = dataset_ref(r)?;
        let version = version
            .map(|v| v.to_string())
            .ok_or_else(|| DomainError::invalid(format!("dataset '{r}' is not pinned")))?;
        let path = self.client.ws_path(&format!(
            "/datasets/{}/versions/{version}/data",
            encode_path(name)
        ));
        let bytes = retry(|| async {
            let mut buf = Vec::new();
            self.client.download(&path, &mut buf).await.map(|_| buf)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("cannot download dataset {r}: {e}")))?;
        let table =
            tokio::task::spawn_blocking(move || crate::workspace::dataset::parse_csv(&bytes))
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))??;
        Ok((format!("{name}:{version}"), table))
    }

    async fn set_state(&self, state: JobState) -> DomainResult<()> {
        self.pending.lock().expect("pending").state = Some(state);
        self.flush().await.map(|_| ()).map_err(api_err)
    }

    fn running(&self) -> &Running {
        &self.live
    }

    fn threads(&self) -> usize {
        self.work.threads.max(1)
    }
}

/// Runs the attempt of `args.job` that `args.token` belongs to, and reports how it ended.
pub async fn run(args: WorkerArgs) -> Result<(), WorkerError> {
    let client = Client::new(&args.server, &args.workspace, Some(&args.token))?;
    let path = client.ws_path(&format!("/jobs/{}/work", encode_path(&args.job)));
    let work: Work = serde_json::from_value(retry(|| client.get(&path)).await?)
        .map_err(|e| WorkerError::Work(format!("the host's work is not understood: {e}")))?;
    eprintln!(
        "worker: attempt {} of {} job {} (run {})",
        work.attempt, work.kind, work.job, work.run_id
    );
    let ctx = Arc::new(WorkerCtx {
        client,
        work,
        live: Running::new(),
        pending: Default::default(),
        next: tokio::sync::Mutex::new(1),
    });
    let reporter = tokio::spawn(ctx.clone().report_loop());
    let outcome = run_kind(&ctx, &args).await;
    reporter.abort();
    let (outcome, error) = match &outcome {
        Ok(()) => ("completed", None),
        Err(Failure::Canceled) => ("canceled", None),
        Err(Failure::Failed(m) | Failure::Lost(m)) => ("failed", Some(m.clone())),
    };
    if let Some(e) = &error {
        ctx.line(&format!("the worker's attempt failed: {e}"));
    }
    // everything logged reaches the host before the result
    ctx.flush().await?;
    let report = serde_json::to_value(Report {
        attempt: ctx.work.attempt,
        outcome: outcome.into(),
        error,
    })
    .expect("report serializes");
    let path = ctx.path("/result");
    retry(|| ctx.client.call(Method::POST, &path, Some(&report))).await?;
    eprintln!("worker: attempt {} {outcome}", ctx.work.attempt);
    Ok(())
}

async fn run_kind(ctx: &Arc<WorkerCtx>, args: &WorkerArgs) -> Result<(), Failure> {
    let spec = &ctx.work.spec;
    let part = |name: &str| {
        spec.get(name)
            .cloned()
            .ok_or_else(|| Failure::Failed(format!("the work has no {name} part")))
    };
    ctx.line(&format!(
        "worker on {} running attempt {}",
        hostname(),
        ctx.work.attempt
    ));
    match ctx.work.kind.as_str() {
        "train" => {
            let train: crate::train::TrainSpec = serde_json::from_value(part("train")?)
                .map_err(|e| Failure::Failed(format!("the work's train part: {e}")))?;
            ctx.set_state(JobState::Running).await?;
            super::train::run(ctx, &train, &ctx.work.run_id.clone()).await
        }
        "command" => {
            let cmd: CommandSpec = serde_json::from_value(part("command")?)
                .map_err(|e| Failure::Failed(format!("the work's command part: {e}")))?;
            run_command(ctx, args, &cmd).await
        }
        other => Err(Failure::Failed(format!(
            "a {other} job does not run on a worker"
        ))),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this machine".into())
}

async fn run_command(
    ctx: &Arc<WorkerCtx>,
    args: &WorkerArgs,
    spec: &CommandSpec,
) -> Result<(), Failure> {
    let work = &ctx.work;
    let sink = ctx.sink();
    let envs = atrium_environments::find_uv(args.uv.as_deref())
        .and_then(|uv| atrium_environments::Cache::new(args.dir.join("environments"), uv))
        .map_err(|e| e.to_string());
    if spec.resolved_environment.is_some() {
        ctx.set_state(JobState::Preparing).await?;
    }
    let env = command::prepare_env_in(&envs, spec, &sink, &ctx.live.cancel).await?;
    ctx.set_state(JobState::Running).await?;
    let dir = args.dir.join("jobs").join(&work.job);
    let code = dir.join("code");
    let result = async {
        materialize(ctx, spec, &code).await?;
        let mut vars: Vec<(String, String)> = work
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.extend(command::tracking_vars(
            &format!(
                "{}/ws/{}",
                args.server.trim_end_matches('/'),
                work.workspace
            ),
            &args.token,
            &work.run_id,
            work.experiment_id,
            &work.job,
            &work.job,
        ));
        command::launch(
            Launch {
                spec,
                dir: &code,
                vars,
                python: env.as_ref(),
                cancel: &ctx.live.cancel,
            },
            sink,
        )
        .await?;
        for (path, bytes) in command::collect_outputs(&code)? {
            ctx.upload(&path, bytes)
                .await
                .map_err(|e| Failure::Failed(format!("cannot store the output {path}: {e}")))?;
        }
        Ok(())
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&code).await;
    let _ = tokio::fs::remove_dir_all(command::outputs_dir(&code)).await;
    result
}

/// Downloads the code snapshot into `dir`, checking each file's digest.
async fn materialize(
    ctx: &Arc<WorkerCtx>,
    spec: &CommandSpec,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    use sha2::Digest;
    let _ = tokio::fs::remove_dir_all(dir).await;
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    for f in &spec.snapshot {
        let url = ctx.client.ws_path(&format!(
            "/runs/{}/artifacts/{}",
            encode_path(&ctx.work.run_id),
            encode_path(&format!("code/{}", f.path))
        ));
        let bytes = retry(|| async {
            let mut buf = Vec::new();
            ctx.client.download(&url, &mut buf).await.map(|_| buf)
        })
        .await
        .map_err(|e| Failure::Failed(format!("cannot download code/{}: {e}", f.path)))?;
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        if digest != f.digest {
            return Err(Failure::Failed(format!(
                "code/{} arrived damaged (sha256 {digest}, expected {})",
                f.path, f.digest
            )));
        }
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        tokio::fs::write(&path, bytes).await.map_err(io)?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(io)?;
        }
    }
    Ok(())
}

fn io(e: std::io::Error) -> Failure {
    Failure::Failed(format!("cannot write the code snapshot: {e}"))
}
