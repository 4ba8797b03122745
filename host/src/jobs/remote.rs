//! Jobs run by a worker (`atrium worker run`) instead of inside the host.
//!
//! - the worker protocol, host side: the work a worker fetches ([`Work`]), the event batches it
//!   reports ([`Events`], each batch stored once however often it is retried), its result
//!   ([`Report`]); only the job token minted for the attempt is accepted;
//! - the `local-process` target: one worker process per job on this machine, watched by the
//!   host (a worker that dies, hangs or stops heartbeating ends its job with the reason).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Running;
use super::executor::{Executor, Failure};
use crate::store::{JobRow, JobState, LogBatch};
use crate::workspace::{DomainError, DomainResult, Metric, MetricPoint, Workspace};

/// The built-in target that runs jobs inside the host process.
pub const LOCAL: &str = "local";
/// The built-in target that runs each job in its own `atrium worker` process on the host's
/// machine.
pub const LOCAL_PROCESS: &str = "local-process";

/// How long a worker may stay silent before its job is failed (it heartbeats every second).
pub(super) const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker gets to stop after a cancel before it is killed.
pub(super) const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Checks that a job of `kind` may run on `compute`: the local target runs every kind, a
/// worker (local-process or a compute target) runs train and command jobs, and a sweep on a
/// compute target sends its trials there. Whether a named compute target exists is checked on
/// submission.
pub fn check_target(compute: &str, kind: super::JobKind) -> DomainResult<()> {
    match compute {
        LOCAL => Ok(()),
        _ if matches!(kind, super::JobKind::Train | super::JobKind::Command) => Ok(()),
        // a sweep runs in the host and sends each trial to the compute target as a job
        _ if kind == super::JobKind::Sweep && is_compute_target(compute) => Ok(()),
        other => Err(DomainError::invalid(format!(
            "a {} job runs on the local target only; train and command jobs can run on {other}",
            kind.as_str()
        ))),
    }
}

/// Whether `compute` names a compute target (not one of the built-in local targets).
pub fn is_compute_target(compute: &str) -> bool {
    compute != LOCAL && compute != LOCAL_PROCESS
}

/// What a worker fetches to run its job's attempt.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Work {
    /// The job.
    pub job: String,
    /// The attempt this worker runs (events and the result carry it).
    pub attempt: i64,
    /// `train` or `command`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The job's workspace.
    pub workspace: String,
    /// The run it logs into.
    pub run_id: String,
    /// That run's experiment.
    pub experiment_id: i64,
    /// Threads the job may use.
    pub threads: usize,
    /// The job spec as stored (datasets pinned, the code snapshot and environment resolved).
    pub spec: serde_json::Map<String, serde_json::Value>,
    /// The values of the secrets a command job asks for, by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// A metric point a worker reports; a value that is not finite travels as `"NaN"`,
/// `"Infinity"` or `"-Infinity"`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    /// Metric name.
    pub key: String,
    /// The value.
    #[serde(with = "wire_f64")]
    #[schemars(with = "serde_json::Value")]
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Training step.
    #[serde(default)]
    pub step: i64,
}

mod wire_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum W {
            N(f64),
            S(String),
        }
        match W::deserialize(d)? {
            W::N(v) => Ok(v),
            W::S(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => Err(serde::de::Error::custom(format!(
                    "'{s}' is not a number (NaN, Infinity and -Infinity are)"
                ))),
            },
        }
    }
}

/// A key and a value.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// Live progress a worker reports (train jobs).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressIn {
    /// Current epoch.
    pub epoch: u64,
    /// Total epochs.
    pub epochs: u64,
    /// Batch within the epoch.
    pub batch: u64,
    /// Batches per epoch.
    pub batches: u64,
}

/// A worker's report: a heartbeat, and optionally a batch (log text, metric points, params and
/// tags, stored together and at most once per `batch` id), a state, progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// The attempt (from the work).
    pub attempt: i64,
    /// The batch's id, counting from 1 within the attempt; needed when anything is logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
    /// Log output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
    /// Metric points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<PointIn>,
    /// Params.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    /// `Preparing`, `Running` or `Finalizing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Live progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressIn>,
}

/// The host's answer to a report.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventsReply {
    /// Cancel was requested: stop, then report `canceled`.
    pub cancel: bool,
    /// Whether the batch was stored now (`false`: it was already, or there was none).
    pub stored: bool,
}

/// How an attempt ended, as its worker reports it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The attempt (from the work).
    pub attempt: i64,
    /// `completed`, `failed` or `canceled`.
    pub outcome: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An attempt a worker runs, as the host tracks it.
pub(super) struct Attempt {
    job_key: i64,
    attempt: i64,
    token_id: String,
    run_id: String,
    live: Arc<Running>,
    last_seen: Mutex<Instant>,
    /// Whether its worker has called the host yet.
    contacted: std::sync::atomic::AtomicBool,
    reported: Mutex<Option<Result<(), Failure>>>,
    /// Signalled when the result arrives.
    pub(super) report_arrived: tokio::sync::Notify,
}

impl Attempt {
    /// Attempt `attempt` of job `job_key`, whose worker holds the token `token_id`.
    pub(super) fn new(
        job_key: i64,
        attempt: i64,
        token_id: String,
        run_id: String,
        live: Arc<Running>,
    ) -> Arc<Self> {
        Arc::new(Self {
            job_key,
            attempt,
            token_id,
            run_id,
            live,
            last_seen: Mutex::new(Instant::now()),
            contacted: std::sync::atomic::AtomicBool::new(false),
            reported: Mutex::new(None),
            report_arrived: tokio::sync::Notify::new(),
        })
    }

    /// The id of its worker's job token.
    pub(super) fn token_id(&self) -> &str {
        &self.token_id
    }

    /// Whether its worker has called the host.
    pub(super) fn contacted(&self) -> bool {
        self.contacted.load(Ordering::Relaxed)
    }

    /// How long since its worker last called (or since the attempt began).
    pub(super) fn silent_for(&self) -> Duration {
        self.last_seen.lock().expect("heartbeat").elapsed()
    }

    /// The result its worker reported, taken.
    pub(super) fn take_reported(&self) -> Option<Result<(), Failure>> {
        self.reported.lock().expect("report").take()
    }

    /// Whether cancel was requested.
    pub(super) fn cancel_requested(&self) -> bool {
        self.live.cancel.load(Ordering::Relaxed)
    }
}

impl Executor {
    /// The attempt of job `id` a worker runs, if the caller's token is its job token.
    fn attempt_of(&self, id: &str, token_id: Option<&str>) -> DomainResult<Arc<Attempt>> {
        let a = self
            .remote
            .lock()
            .expect("remote attempts")
            .get(id)
            .cloned()
            .ok_or_else(|| {
                DomainError::InvalidState(format!("job {id} has no attempt running on a worker"))
            })?;
        if token_id != Some(a.token_id.as_str()) {
            return Err(DomainError::PermissionDenied(format!(
                "only the worker of job {id} (with the job token of attempt {}) may fetch its work or report on it",
                a.attempt
            )));
        }
        *a.last_seen.lock().expect("heartbeat") = Instant::now();
        a.contacted.store(true, Ordering::Relaxed);
        Ok(a)
    }

    fn check_attempt(a: &Attempt, id: &str, attempt: i64) -> DomainResult<()> {
        if attempt != a.attempt {
            return Err(DomainError::InvalidState(format!(
                "attempt {attempt} of job {id} is over; attempt {} is running",
                a.attempt
            )));
        }
        if a.reported.lock().expect("report").is_some() {
            return Err(DomainError::InvalidState(format!(
                "attempt {attempt} of job {id} has already reported its result"
            )));
        }
        Ok(())
    }

    /// `GET .../jobs/{id}/work`: the work of the attempt the caller's job token belongs to.
    pub async fn worker_work(
        &self,
        ws: &Workspace,
        id: &str,
        token_id: Option<&str>,
    ) -> DomainResult<Work> {
        let a = self.attempt_of(id, token_id)?;
        let job = self.svc.store.job(ws.id, id).await?;
        let spec: super::JobSpec = serde_json::from_str(&job.spec)
            .map_err(|e| DomainError::Internal(format!("stored spec: {e}")))?;
        let secrets = match &spec.command {
            Some(c) if !c.secrets.is_empty() => self
                .svc
                .resolve_secrets(ws, &c.secrets, &format!("job:{id}"))
                .await?
                .iter()
                .map(|(n, v)| (n.clone(), v.expose().to_string()))
                .collect(),
            _ => BTreeMap::new(),
        };
        let run = self.svc.store.active_run(ws.id, &a.run_id).await?;
        let serde_json::Value::Object(spec) = serde_json::from_str(&job.spec)
            .map_err(|e| DomainError::Internal(format!("stored spec: {e}")))?
        else {
            return Err(DomainError::Internal("stored spec is not an object".into()));
        };
        Ok(Work {
            job: job.id,
            attempt: a.attempt,
            kind: job.kind,
            workspace: ws.name.clone(),
            run_id: a.run_id.clone(),
            experiment_id: run.experiment_id,
            threads: self.cfg.threads_per_slot,
            spec,
            secrets,
        })
    }

    /// `POST .../jobs/{id}/events`: a heartbeat with an optional batch, state and progress.
    pub async fn worker_events(
        &self,
        ws: &Workspace,
        id: &str,
        token_id: Option<&str>,
        ev: Events,
    ) -> DomainResult<EventsReply> {
        let a = self.attempt_of(id, token_id)?;
        Self::check_attempt(&a, id, ev.attempt)?;
        let batch = LogBatch {
            metrics: ev
                .metrics
                .iter()
                .map(|m| Metric {
                    key: m.key.clone(),
                    point: MetricPoint {
                        value: m.value,
                        timestamp: m.timestamp,
                        step: m.step,
                    },
                })
                .collect(),
            params: ev
                .params
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
            tags: ev
                .tags
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        };
        let has_batch = !ev.log.is_empty()
            || !batch.metrics.is_empty()
            || !batch.params.is_empty()
            || !batch.tags.is_empty();
        let mut stored = false;
        match ev.batch {
            Some(n) if n < 1 => {
                return Err(DomainError::invalid(format!(
                    "batch ids count from 1; got {n}"
                )));
            }
            Some(n) => {
                batch.validate(true)?;
                stored = self
                    .svc
                    .store
                    .log_batch_once(
                        ws.id,
                        &a.run_id,
                        crate::store::BatchMark::Job(a.job_key, a.attempt, n),
                        &batch,
                    )
                    .await?;
                if stored && !ev.log.is_empty() {
                    self.logs.append(id, ev.log.as_bytes());
                }
            }
            None if has_batch => {
                return Err(DomainError::invalid(
                    "a report with log output, metrics, params or tags needs a batch id",
                ));
            }
            None => {}
        }
        if let Some(s) = &ev.state {
            let state = JobState::parse(s)?;
            if !matches!(
                state,
                JobState::Preparing | JobState::Running | JobState::Finalizing
            ) {
                return Err(DomainError::invalid(format!(
                    "a worker moves its job to Preparing, Running or Finalizing, not {}; it reports the end as its result",
                    state.as_str()
                )));
            }
            self.svc
                .store
                .set_job_state(a.job_key, state, None, None)
                .await?;
        }
        if let Some(p) = ev.progress {
            a.live.epoch.store(p.epoch, Ordering::Relaxed);
            a.live.epochs.store(p.epochs, Ordering::Relaxed);
            a.live.batch.store(p.batch, Ordering::Relaxed);
            a.live.batches.store(p.batches, Ordering::Relaxed);
        }
        Ok(EventsReply {
            cancel: a.live.cancel.load(Ordering::Relaxed),
            stored,
        })
    }

    /// `POST .../jobs/{id}/result`: how the attempt ended; the host ends the job when the
    /// worker exits.
    pub async fn worker_result(
        &self,
        id: &str,
        token_id: Option<&str>,
        r: Report,
    ) -> DomainResult<()> {
        let a = self.attempt_of(id, token_id)?;
        Self::check_attempt(&a, id, r.attempt)?;
        let outcome = match r.outcome.as_str() {
            "completed" => Ok(()),
            "canceled" => Err(Failure::Canceled),
            "failed" => Err(Failure::Failed(r.error.clone().unwrap_or_else(|| {
                "the worker reported a failure without a reason".into()
            }))),
            other => {
                return Err(DomainError::invalid(format!(
                    "unknown outcome '{other}': expected completed, failed or canceled"
                )));
            }
        };
        *a.reported.lock().expect("report") = Some(outcome);
        a.report_arrived.notify_one();
        Ok(())
    }
}

/// Mints the job token of an attempt a worker runs (Contributor on the job's workspace, `what`
/// names the worker in the token list) and registers the attempt; returns the token's secret.
pub(super) async fn begin_attempt(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    run_id: &str,
    running: &Arc<Running>,
    what: &str,
) -> Result<(String, Arc<Attempt>), Failure> {
    let access = crate::auth::Access::new(ex.svc.clone());
    let token = access
        .create_token(
            crate::auth::JOBS_USER,
            &format!("job {} ({what})", job.id),
            Some(crate::workspace::now_millis() + 7 * 24 * 3600 * 1000),
            Some((&ws.name, crate::auth::Role::Contributor)),
        )
        .await?;
    let attempt = register_attempt(ex, job, token.info.id.clone(), run_id, running);
    Ok((token.token, attempt))
}

/// Registers the attempt of `job` whose worker holds the token `token_id`, so that the worker
/// routes accept that token.
pub(super) fn register_attempt(
    ex: &Executor,
    job: &JobRow,
    token_id: String,
    run_id: &str,
    running: &Arc<Running>,
) -> Arc<Attempt> {
    let attempt = Attempt::new(
        job.key,
        job.attempts,
        token_id,
        run_id.to_string(),
        running.clone(),
    );
    ex.remote
        .lock()
        .expect("remote attempts")
        .insert(job.id.clone(), attempt.clone());
    attempt
}

/// Forgets an attempt and revokes its worker's token (one already gone is fine).
pub(super) async fn end_attempt(ex: &Arc<Executor>, job: &JobRow, token_id: &str) {
    ex.remote.lock().expect("remote attempts").remove(&job.id);
    let access = crate::auth::Access::new(ex.svc.clone());
    if let Err(e) = access.revoke(token_id).await
        && !matches!(e, DomainError::NotFound(_))
    {
        tracing::warn!(error = %e, token = token_id, "cannot revoke a job token");
    }
}

/// Runs an attempt in a worker process of its own: mints the job token, starts
/// `atrium worker run`, and waits until it exits, killing it when it stops heartbeating or
/// ignores a cancel. The attempt ends as the worker reported, or failed with why it did not.
pub(super) async fn run_process(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    run_id: &str,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let (token, attempt) = begin_attempt(ex, ws, job, run_id, running, "worker").await?;
    let result = watch_process(ex, ws, job, &token, &attempt).await;
    end_attempt(ex, job, attempt.token_id()).await;
    result
}

async fn watch_process(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    token: &str,
    attempt: &Attempt,
) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Failed(format!("cannot find the atrium binary: {e}")))?;
    // the work directory marks the worker (and its command) for the reaper after a crash
    let work = ex.logs.work_dir(&job.id);
    let _ = tokio::fs::create_dir_all(&work).await;
    let out_path = ex.logs.dir().join(format!("{}.worker.log", job.id));
    let out = std::fs::File::create(&out_path)
        .map_err(|e| Failure::Failed(format!("cannot create the worker's log: {e}")))?;
    let err = out
        .try_clone()
        .map_err(|e| Failure::Failed(format!("cannot create the worker's log: {e}")))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["--server", &ex.cfg.base_url, "worker", "run"])
        .args(["--job", &job.id])
        .arg("--dir")
        .arg(ex.cfg.data_dir.join("worker"))
        .env_clear();
    // only what a process needs: no secret of the host (its keys, admin token) is passed on
    for (k, v) in std::env::vars_os() {
        if passed_to_workers(&k.to_string_lossy()) {
            cmd.env(&k, v);
        }
    }
    if let Some(uv) = &ex.cfg.uv {
        cmd.env("ATRIUM_UV", uv);
    }
    cmd.env("ATRIUM_TOKEN", token)
        .env("ATRIUM_WORKSPACE", &ws.name)
        .env("RAYON_NUM_THREADS", ex.cfg.threads_per_slot.to_string())
        .env("ATRIUM_WORK_KEY", &job.id)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        // its own process group, apart from the host's (the reaper kills groups)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot start the worker: {e}")))?;
    ex.logs.line(
        &job.id,
        &format!("worker process {} started", child.id().unwrap_or(0)),
    );
    let mut canceled_at: Option<Instant> = None;
    let mut killed: Option<String> = None;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if killed.is_some() {
            continue;
        }
        if running_cancel(attempt) {
            let at = *canceled_at.get_or_insert_with(Instant::now);
            if at.elapsed() > CANCEL_GRACE {
                killed = Some(format!(
                    "the worker did not stop within {} s of the cancel; killed",
                    CANCEL_GRACE.as_secs()
                ));
                let _ = child.start_kill();
            }
        }
        let silent = attempt.last_seen.lock().expect("heartbeat").elapsed();
        if silent > HEARTBEAT_TIMEOUT {
            killed = Some(format!(
                "the worker sent no heartbeat for {} s; killed",
                silent.as_secs()
            ));
            let _ = child.start_kill();
        }
    };
    // a command a killed worker left behind goes too
    let left = super::command::kill_work(&job.id);
    if left > 0 {
        ex.logs.line(
            &job.id,
            &format!("killed {left} process group(s) the worker left running"),
        );
    }
    let _ = tokio::fs::remove_dir_all(&work).await;
    let reported = attempt.reported.lock().expect("report").take();
    let tail = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    match (reported, killed) {
        (Some(outcome), _) => outcome,
        (None, _) if running_cancel(attempt) => Err(Failure::Canceled),
        (None, Some(why)) => Err(Failure::Failed(why)),
        (None, None) => {
            let status = match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("could not be waited for ({e})"),
            };
            let last: Vec<&str> = tail.lines().rev().take(5).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            Err(Failure::Failed(if last.is_empty() {
                format!("the worker {status} before reporting a result")
            } else {
                format!(
                    "the worker {status} before reporting a result; its last output: {}",
                    last.join(" | ")
                )
            }))
        }
    }
}

/// Whether a variable of the host's environment reaches its worker processes: the locale,
/// paths, and how this machine reaches package registries (proxies, CA bundles, uv and pip
/// settings); nothing of Atrium's own (keys, tokens, database URLs).
pub(super) fn passed_to_workers(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "TZ",
        "TMPDIR",
        "RUST_LOG",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ];
    let lower = name.to_ascii_lowercase();
    EXACT.contains(&name)
        || name.starts_with("LC_")
        || name.starts_with("UV_")
        || name.starts_with("PIP_")
        || matches!(
            lower.as_str(),
            "http_proxy" | "https_proxy" | "no_proxy" | "all_proxy"
        )
}

fn running_cancel(a: &Attempt) -> bool {
    a.live.cancel.load(Ordering::Relaxed)
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended abnormally".into(),
    }
}
