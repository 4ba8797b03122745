//! The local compute target: claims queued jobs into a fixed number of slots (each with its
//! own thread budget, so slots × threads never exceeds the cores) and runs them.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::logs::JobLogs;
use super::spec::{JobKind, JobSpec, SnapshotFile};
use super::{Running, command, sweep, train};
use crate::service::Service;
use crate::store::{JobRow, JobState, LEASE_MS, LEASE_RENEW_MS, NewJob, NewRun, RunUpdate};
use crate::train::spec::dataset_ref;
use crate::workspace::{
    DomainError, DomainResult, LifecycleStage, RunStatus, Workspace, now_millis, validate,
};

/// How the local target runs jobs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Jobs running at once.
    pub slots: usize,
    /// Threads each job may use.
    pub threads_per_slot: usize,
    /// Base URL of this host, for command jobs' `MLFLOW_TRACKING_URI`.
    pub base_url: String,
    /// The data directory (job logs and working directories).
    pub data_dir: PathBuf,
    /// The uv binary that builds job environments (`None`: looked up, see
    /// [`atrium_environments::find_uv`]).
    pub uv: Option<PathBuf>,
}

/// How an attempt ended, when not successfully.
pub(super) enum Failure {
    /// Cancel was requested.
    Canceled,
    /// It failed, with the reason.
    Failed(String),
    /// The engine or the worker was lost (unreachable, forgot the job, died without a word):
    /// the attempt failed through no fault of the job, and runs again if `retries` allows.
    Lost(String),
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Failure::Failed(e.to_string())
    }
}

/// The executor of the local compute target.
pub struct Executor {
    pub(super) svc: Arc<Service>,
    pub(super) cfg: ExecutorConfig,
    pub(super) logs: JobLogs,
    /// The machine's environment cache, or why there is none (uv missing).
    pub(super) envs: Result<atrium_environments::Cache, String>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    /// Attempts that workers run, by job id.
    pub(super) remote: Mutex<HashMap<String, Arc<super::remote::Attempt>>>,
    /// Jobs running on compute targets: job id → (workspace id, target, its `max_jobs`).
    on_targets: Mutex<HashMap<String, (i64, String, u32)>>,
    /// Attempts an engine was running when the host stopped (with their target's
    /// `max_jobs`), reconciled once started.
    adopted: Mutex<Vec<(JobRow, u32)>>,
    /// Pipeline jobs orchestrating (in the host, outside the slots).
    pipelines: Mutex<std::collections::HashSet<String>>,
    /// Counts ended jobs; pipeline runs wait on it for their steps.
    ended: tokio::sync::watch::Sender<u64>,
    /// Held while a pipeline step checks the cache and starts (single-flight).
    flight: tokio::sync::Mutex<()>,
    wake: Notify,
}

/// How a submitted job's code directory is filled.
pub enum Code {
    /// No code.
    None,
    /// A tar archive to store as the run's `code/` artifacts.
    Tar(Vec<u8>),
    /// Files already stored (a pipeline's snapshot, a step's data inputs).
    Files(Vec<super::pipeline::prepare::StepFile>),
}

/// What ties a job to the pipeline run it is a step of.
pub struct Link {
    /// Unique origin (`step:<pipeline job>:<step>:<attempt>`, `schedule:<id>:<tick>`).
    pub origin: String,
    /// The pipeline job (None for a schedule's run).
    pub parent_job: Option<String>,
    /// The run its run nests under.
    pub parent_run: Option<String>,
    /// The step (tagged on its run).
    pub step: Option<String>,
}

impl Executor {
    /// Recovers jobs interrupted by a restart (re-queued if they have retries left, else
    /// failed with the reason) and returns the executor; [`Executor::start`] starts it.
    pub async fn new(svc: Arc<Service>, cfg: ExecutorConfig) -> DomainResult<Arc<Self>> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if cfg.slots == 0 || cfg.threads_per_slot == 0 {
            return Err(DomainError::invalid(
                "job slots and threads per slot must be at least 1",
            ));
        }
        if cfg.slots * cfg.threads_per_slot > cores {
            return Err(DomainError::invalid(format!(
                "{} slots × {} threads would oversubscribe the {cores} cores",
                cfg.slots, cfg.threads_per_slot
            )));
        }
        let (requeued, ended) = svc.store.recover_jobs(true).await?;
        if requeued > 0 || !ended.is_empty() {
            tracing::warn!(
                requeued,
                ended = ended.len(),
                "jobs interrupted by a restart"
            );
        }
        let mut adopted = Vec::new();
        for job in svc.store.adopt_remote_jobs(true).await? {
            let max = max_jobs(&svc, &job).await;
            adopted.push((job, max));
        }
        if !adopted.is_empty() {
            tracing::info!(
                jobs = adopted.len(),
                "jobs on compute targets to reconcile with their engines"
            );
        }
        let logs = JobLogs::new(&cfg.data_dir).map_err(DomainError::from)?;
        let reaped = command::reap_orphans(&logs);
        if reaped > 0 {
            tracing::warn!(
                reaped,
                "killed commands a previous host process left running"
            );
        }
        let envs = atrium_environments::find_uv(cfg.uv.as_deref())
            .and_then(|uv| atrium_environments::Cache::new(cfg.data_dir.join("environments"), uv))
            .map_err(|e| e.to_string());
        if let Err(e) = &envs {
            tracing::warn!(
                error = e.as_str(),
                "jobs with an environment cannot run on this host"
            );
        }
        let me = Arc::new(Self {
            svc,
            cfg,
            logs,
            envs,
            running: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            on_targets: Mutex::new(HashMap::new()),
            adopted: Mutex::new(adopted),
            pipelines: Mutex::new(Default::default()),
            ended: tokio::sync::watch::channel(0).0,
            flight: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        });
        me.end_interrupted(ended, "interrupted by a host restart")
            .await;
        Ok(me)
    }

    /// Ends the runs of jobs that recovery ended (their attempt was interrupted).
    async fn end_interrupted(&self, ended: Vec<JobRow>, why: &str) {
        for job in ended {
            let (status, what) = if job.cancel_requested {
                (RunStatus::Killed, "canceled".to_string())
            } else {
                (RunStatus::Failed, format!("failed: {why}"))
            };
            self.logs.line(&job.id, &format!("job {what}"));
            if let (Some(ws), Some(run)) = (self.workspace_of(&job).await, &job.run_id)
                && let Err(e) = self.finish_run(&ws, run, status).await
            {
                tracing::warn!(job = job.id.as_str(), error = %e, "cannot end the run of an interrupted job");
            }
        }
    }

    /// Every [`LEASE_RENEW_MS`]: renews the leases of this replica's jobs (letting go of those
    /// another replica took over, and passing on cancel requests made through any replica),
    /// recovers jobs whose owner stopped renewing, and adopts their attempts on engines.
    async fn keep_leases(self: Arc<Self>) {
        let mut last_renewed = std::time::Instant::now();
        let lease = Duration::from_millis(LEASE_MS as u64);
        loop {
            tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS as u64)).await;
            match self.svc.store.renew_leases().await {
                Ok(held) => {
                    last_renewed = std::time::Instant::now();
                    let held: HashMap<String, bool> = held.into_iter().collect();
                    let running: Vec<(String, Arc<Running>)> = self
                        .running
                        .lock()
                        .expect("running jobs")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (id, r) in running {
                        match held.get(&id) {
                            Some(true) => r.cancel.store(true, Ordering::Relaxed),
                            Some(false) => {}
                            // not claimed yet in the store's eyes (a claim in flight) or taken over
                            None if r.started.elapsed() > lease => self.let_go(&id, &r),
                            None => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew job leases");
                    if last_renewed.elapsed() > lease {
                        // other replicas may take these jobs over now: stop them here
                        let running: Vec<(String, Arc<Running>)> = self
                            .running
                            .lock()
                            .expect("running jobs")
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        for (id, r) in running {
                            self.let_go(&id, &r);
                        }
                    }
                    continue;
                }
            }
            match self.svc.store.recover_jobs(false).await {
                Ok((requeued, ended)) => {
                    if requeued > 0 || !ended.is_empty() {
                        tracing::warn!(
                            requeued,
                            ended = ended.len(),
                            "took over jobs of a replica that stopped renewing its leases"
                        );
                        self.end_interrupted(ended, "interrupted: the replica running it stopped")
                            .await;
                        self.wake.notify_one();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot recover lapsed jobs"),
            }
            match self.svc.store.adopt_remote_jobs(false).await {
                Ok(jobs) => {
                    for job in jobs {
                        tracing::info!(
                            job = job.id.as_str(),
                            "adopted a job on a compute target whose replica stopped"
                        );
                        let max = max_jobs(&self.svc, &job).await;
                        let running = self.track(&job, max);
                        let me = self.clone();
                        tokio::spawn(async move { me.resume(job, running).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot adopt lapsed jobs on compute targets"),
            }
        }
    }

    /// Stops an attempt whose lease this replica lost, recording nothing (another replica runs
    /// the job now, or will): local work is canceled; attempts on engines and the
    /// orchestration of sweeps and pipelines stop watching.
    fn let_go(&self, id: &str, r: &Running) {
        if r.lost.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            job = id,
            "lost the job's lease; another replica takes it over"
        );
        self.logs.line(
            id,
            "this replica lost the job's lease; another replica takes it over",
        );
        let orchestrates = self.pipelines.lock().expect("pipeline jobs").contains(id)
            || self
                .on_targets
                .lock()
                .expect("jobs on targets")
                .contains_key(id)
            || r.sweep.get().is_some();
        if !orchestrates {
            r.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Starts claiming and running jobs: local ones into the slots, jobs on compute targets up
    /// to each target's `max_jobs`; first picks up the attempts engines ran across a restart.
    pub fn start(self: &Arc<Self>) {
        let adopted = std::mem::take(&mut *self.adopted.lock().expect("adopted jobs"));
        for (job, max) in adopted {
            let running = self.track(&job, max);
            let me = self.clone();
            tokio::spawn(async move { me.resume(job, running).await });
        }
        tokio::spawn(self.clone().keep_leases());
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                loop {
                    match me.svc.store.claim_pipeline_job().await {
                        Ok(Some(job)) => {
                            me.pipelines
                                .lock()
                                .expect("pipeline jobs")
                                .insert(job.id.clone());
                            me.launch(job, 0)
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot claim pipeline jobs");
                            break;
                        }
                    }
                }
                while me.local_busy() < me.cfg.slots {
                    match me.svc.store.claim_job(false, &[]).await {
                        Ok(Some(job)) => me.launch(job, 0),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot claim jobs");
                            break;
                        }
                    }
                }
                loop {
                    let full = me.full_targets();
                    match me.svc.store.claim_job(true, &full).await {
                        Ok(Some(job)) => {
                            let max = max_jobs(&me.svc, &job).await;
                            me.launch(job, max)
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot claim jobs for compute targets");
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    /// Records a job as running (on a compute target too, when it names one, whose
    /// `max_jobs` is `max`).
    fn track(&self, job: &JobRow, max: u32) -> Arc<Running> {
        let running = Running::new();
        if super::remote::is_compute_target(&job.target) {
            self.on_targets
                .lock()
                .expect("jobs on targets")
                .insert(job.id.clone(), (job.workspace_id, job.target.clone(), max));
        }
        self.running
            .lock()
            .expect("running jobs")
            .insert(job.id.clone(), running.clone());
        running
    }

    fn launch(self: &Arc<Self>, job: JobRow, max: u32) {
        let running = self.track(&job, max);
        let me = self.clone();
        tokio::spawn(async move { me.run(job, running).await });
    }

    /// Jobs in the local slots.
    fn local_busy(&self) -> usize {
        let remote = self.on_targets.lock().expect("jobs on targets").len()
            + self.pipelines.lock().expect("pipeline jobs").len();
        self.running
            .lock()
            .expect("running jobs")
            .len()
            .saturating_sub(remote)
    }

    /// Compute targets running as many jobs as their `max_jobs` allows.
    fn full_targets(&self) -> Vec<String> {
        let mut load: HashMap<(i64, &str), (u32, u32)> = HashMap::new();
        let on = self.on_targets.lock().expect("jobs on targets");
        for (ws, name, max) in on.values() {
            let e = load.entry((*ws, name.as_str())).or_insert((0, *max));
            e.0 += 1;
            e.1 = e.1.min(*max);
        }
        let mut full: Vec<String> = load
            .into_iter()
            .filter(|(_, (n, max))| n >= max)
            .map(|((_, name), _)| name.to_string())
            .collect();
        full.sort();
        full.dedup();
        full
    }

    /// The logs of jobs.
    pub fn logs(&self) -> &JobLogs {
        &self.logs
    }

    /// The live trials of a running sweep or AutoML job.
    pub fn sweep_view(&self, job: &str) -> Option<crate::sweep::SweepState> {
        let running = self
            .running
            .lock()
            .expect("running jobs")
            .get(job)
            .cloned()?;
        let view = running.sweep.get()?;
        Some(view.lock().expect("sweep view").clone())
    }

    /// A sweep's or AutoML job's state: live while it runs, else as last stored (empty before
    /// its first trial).
    pub async fn sweep_state(&self, job: &JobRow) -> DomainResult<crate::sweep::SweepState> {
        if let Some(s) = self.sweep_view(&job.id) {
            return Ok(s);
        }
        match self.svc.store.sweep_state(job.key).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| DomainError::Internal(format!("sweep state: {e}"))),
            None => Ok(crate::sweep::SweepState::default()),
        }
    }

    /// Progress of a running job.
    pub fn progress(&self, job: &str) -> Option<serde_json::Value> {
        self.running
            .lock()
            .expect("running jobs")
            .get(job)
            .map(|r| r.progress())
    }

    /// Requests cancellation: a queued job ends at once, a running one within one batch (train)
    /// or by signal (command).
    pub async fn cancel(&self, ws: &Workspace, id: &str) -> DomainResult<JobRow> {
        let job = self.svc.store.request_cancel(ws.id, id).await?;
        if let Some(r) = self.running.lock().expect("running jobs").get(id) {
            r.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if job.state == JobState::Canceled
            && let Some(run) = &job.run_id
        {
            let _ = self.finish_run(ws, run, RunStatus::Killed).await;
        }
        Ok(job)
    }

    /// Submits a job: pins dataset versions, creates its run (SCHEDULED) in its experiment,
    /// stores a command job's code snapshot (a tar archive) as the run's `code/` artifacts.
    pub async fn submit(
        &self,
        ws: &Workspace,
        spec: JobSpec,
        code: Option<Vec<u8>>,
    ) -> DomainResult<JobRow> {
        if spec.kind == JobKind::Pipeline {
            return Err(DomainError::invalid(
                "pipelines are submitted with `atrium pipeline submit NAME` (POST /pipelines/{name}/runs), not as jobs",
            ));
        }
        self.submit_with(ws, spec, code.map_or(Code::None, Code::Tar), None)
            .await
    }

    /// Submits a job with its code and, for a pipeline step or a scheduled run, its link (an
    /// origin submitted before returns that job).
    pub async fn submit_with(
        &self,
        ws: &Workspace,
        mut spec: JobSpec,
        code: Code,
        link: Option<Link>,
    ) -> DomainResult<JobRow> {
        spec.check()?;
        if let Some(l) = &link
            && let Some(existing) = self.svc.store.job_by_origin(ws.id, &l.origin).await?
        {
            return Ok(existing);
        }
        let (code, files) = match code {
            Code::None => (None, None),
            Code::Tar(t) => (Some(t), None),
            Code::Files(f) => (None, Some(f)),
        };
        let compute = spec.compute.as_deref().unwrap_or(super::remote::LOCAL);
        super::remote::check_target(compute, spec.kind)?;
        let t = &self.svc;
        if super::remote::is_compute_target(compute) {
            t.store.compute(ws.id, compute).await.map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::NotFound(format!(
                    "compute target '{compute}' does not exist in workspace '{}' (the built-in targets are {} and {}; `atrium compute list` shows the others)",
                    ws.name,
                    super::remote::LOCAL,
                    super::remote::LOCAL_PROCESS
                )),
                other => other,
            })?;
        }
        if let Some(train) = &mut spec.train {
            for r in [Some(&mut train.dataset), train.validation_dataset.as_mut()]
                .into_iter()
                .flatten()
            {
                let (name, version) = dataset_ref(r)?;
                let d = t.store.dataset(ws.id, name, version).await?;
                *r = format!("{}:{}", d.name, d.version);
            }
        }
        if let Some(train) = &spec.train {
            self.check_train_data(ws, train).await?;
        }
        if let Some(cmd) = &spec.command {
            t.check_secrets_exist(ws, &cmd.secrets).await?;
        }
        if let Some(b) = &mut spec.batch_score {
            b.dataset = self.pin_dataset(ws, &b.dataset).await?;
            crate::serving::model::resolve(t, ws, &b.model).await?;
        }
        if let Some(a) = &mut spec.automl {
            for r in [Some(&mut a.dataset), a.validation_dataset.as_mut()]
                .into_iter()
                .flatten()
            {
                *r = self.pin_dataset(ws, r).await?;
            }
        }
        if let Some(s) = &mut spec.sweep
            && let Some(train) = s.trial.get_mut("train").and_then(|t| t.as_object_mut())
        {
            for key in ["dataset", "validation_dataset"] {
                if let Some(serde_json::Value::String(r)) = train.get_mut(key)
                    && !r.contains("${{")
                {
                    *r = self.pin_dataset(ws, r).await?;
                }
            }
        }
        if matches!(spec.kind, JobKind::Sweep | JobKind::Automl) {
            self.check_sweep(ws, &spec).await?;
        }
        let command_sweep = spec
            .sweep
            .as_ref()
            .is_some_and(|s| s.trial.get("type").and_then(|t| t.as_str()) == Some("command"));
        if (code.is_some() || files.as_ref().is_some_and(|f| !f.is_empty()))
            && !(spec.kind == JobKind::Command || command_sweep)
        {
            return Err(DomainError::invalid(
                "only command jobs and sweeps over a command template take a code snapshot",
            ));
        }
        let environment = match &spec.environment {
            Some(r) => {
                let file = match r {
                    super::spec::EnvironmentRef::Inline(i) => match &i.requirements_file {
                        Some(path) => Some(snapshot_text(code.as_deref(), path).await?),
                        None => None,
                    },
                    super::spec::EnvironmentRef::Named(_) => None,
                };
                Some(t.resolve_environment(ws, r, file.as_deref()).await?)
            }
            None => None,
        };
        if let Some(cmd) = spec.command.as_mut() {
            cmd.resolved_environment = environment.clone();
        }
        if let Some(cmd) = spec
            .sweep
            .as_mut()
            .and_then(|s| s.trial.get_mut("command"))
            .and_then(|c| c.as_object_mut())
        {
            cmd.remove("resolved_environment");
            if let Some(e) = &environment {
                cmd.insert(
                    "resolved_environment".into(),
                    serde_json::to_value(e).map_err(|e| DomainError::Internal(e.to_string()))?,
                );
            }
        }
        let exp_name = spec
            .experiment
            .clone()
            .unwrap_or_else(|| crate::workspace::DEFAULT_EXPERIMENT_NAME.to_string());
        let exp = match t.store.experiment_by_name(ws.id, &exp_name).await {
            Ok(e) => e,
            Err(DomainError::NotFound(_)) => {
                validate::experiment_name(&exp_name)?;
                match t
                    .store
                    .create_experiment(ws.id, &exp_name, &Default::default())
                    .await
                {
                    Err(DomainError::AlreadyExists(_)) => {
                        t.store.experiment_by_name(ws.id, &exp_name).await?
                    }
                    other => other?,
                }
            }
            Err(e) => return Err(e),
        };
        if exp.lifecycle_stage != LifecycleStage::Active {
            return Err(DomainError::InvalidState(format!(
                "experiment '{exp_name}' is deleted"
            )));
        }
        // the job's id is chosen now so that its run is tagged with it when created
        let job_uuid = uuid::Uuid::now_v7().simple().to_string();
        let run = t
            .store
            .create_run(
                ws.id,
                NewRun {
                    experiment_id: exp.id,
                    name: spec.name.clone(),
                    user_id: "atrium-job".into(),
                    start_time: now_millis(),
                    status: Some(RunStatus::Scheduled),
                    tags: [(
                        "atrium.job.type".to_string(),
                        spec.kind.as_str().to_string(),
                    )]
                    .into_iter()
                    .chain([("atrium.job.id".to_string(), job_uuid.clone())])
                    .chain(
                        link.as_ref()
                            .and_then(|l| l.step.clone())
                            .map(|s| ("atrium.pipeline.step".to_string(), s)),
                    )
                    .collect(),
                    parent_run_id: link.as_ref().and_then(|l| l.parent_run.clone()),
                },
            )
            .await?;
        if let (Some(cmd), Some(files)) = (spec.command.as_mut(), files) {
            cmd.snapshot = self.share_files(ws, &run.id, files).await?;
        }
        if let (Some(cmd), Some(tar)) = (spec.command.as_mut(), code.clone()) {
            cmd.snapshot = self.store_snapshot(ws, &run.id, tar).await?;
        }
        // a command sweep's trials all run the snapshot stored with the sweep's run
        if let (Some(s), Some(tar)) = (spec.sweep.as_mut(), code)
            && let Some(cmd) = s.trial.get_mut("command").and_then(|c| c.as_object_mut())
        {
            let files = self.store_snapshot(ws, &run.id, tar).await?;
            cmd.insert(
                "snapshot".into(),
                serde_json::to_value(files).map_err(|e| DomainError::Internal(e.to_string()))?,
            );
        }
        let json =
            serde_json::to_string(&spec).map_err(|e| DomainError::Internal(e.to_string()))?;
        let name = spec.name.clone().unwrap_or_else(|| run.name.clone());
        let datasets = spec.datasets();
        let job = t
            .store
            .submit_job(
                ws.id,
                NewJob {
                    kind: spec.kind.as_str(),
                    name: &name,
                    spec: &json,
                    datasets: &datasets,
                    retries: spec.retries as i64,
                    // a sweep's own work (sampling, judging) runs in the host; its trials go
                    // to its compute target
                    target: if matches!(spec.kind, JobKind::Sweep | JobKind::Pipeline) {
                        super::remote::LOCAL
                    } else {
                        spec.compute.as_deref().unwrap_or(super::remote::LOCAL)
                    },
                    origin: link.as_ref().map(|l| l.origin.as_str()),
                    parent: link.as_ref().and_then(|l| l.parent_job.as_deref()),
                    uuid: Some(&job_uuid),
                    run_id: Some(&run.id),
                },
            )
            .await;
        let job = match job {
            Err(DomainError::AlreadyExists(_)) if link.is_some() => {
                // another host (or this one before a restart) submitted it first
                let _ = t
                    .store
                    .set_run_stage(ws.id, &run.id, LifecycleStage::Deleted)
                    .await;
                let origin = &link.as_ref().expect("a link").origin;
                return t.store.job_by_origin(ws.id, origin).await?.ok_or_else(|| {
                    DomainError::Internal(format!("the job for {origin} vanished"))
                });
            }
            other => other?,
        };
        self.wake.notify_one();
        Ok(job)
    }

    /// Queues a sweep's trial as a job of its own on the sweep's compute target, logging into
    /// the trial's run (`spec` comes from the sweep's template, checked when it was submitted).
    pub(super) async fn submit_trial_job(
        &self,
        ws: &Workspace,
        spec: &JobSpec,
        run_id: &str,
    ) -> DomainResult<JobRow> {
        let t = &self.svc;
        let json = serde_json::to_string(spec).map_err(|e| DomainError::Internal(e.to_string()))?;
        let job = t
            .store
            .submit_job(
                ws.id,
                NewJob {
                    kind: spec.kind.as_str(),
                    name: spec.name.as_deref().unwrap_or("trial"),
                    spec: &json,
                    datasets: &spec.datasets(),
                    retries: 0,
                    target: spec.compute.as_deref().unwrap_or(super::remote::LOCAL),
                    origin: None,
                    parent: None,
                    uuid: None,
                    run_id: Some(run_id),
                },
            )
            .await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// Gives a trial's run the code snapshot its sweep's run holds (`code/`, the same blobs), so
    /// that the trial's worker finds it where every command job's worker looks.
    pub(super) async fn share_snapshot(
        &self,
        ws: &Workspace,
        from_run: &str,
        to_run: &str,
        files: &[SnapshotFile],
    ) -> DomainResult<()> {
        let t = &self.svc;
        let run = t.store.active_run(ws.id, from_run).await?;
        let ds = t.store.artifact_datastore(ws.id, run.experiment_id).await?;
        for f in files {
            let bytes = t.read_bytes(&ds, &f.digest).await?;
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
            t.upload_artifact(ws, to_run, &format!("code/{}", f.path), stream)
                .await?;
        }
        Ok(())
    }

    /// Gives a run's `code/` the files a step's code directory holds (read by digest from
    /// their datastores; the same blobs when the run's datastore is theirs).
    async fn share_files(
        &self,
        ws: &Workspace,
        run_id: &str,
        files: Vec<super::pipeline::prepare::StepFile>,
    ) -> DomainResult<Vec<SnapshotFile>> {
        let t = &self.svc;
        let default = t.store.default_datastore(ws.id).await?;
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let ds = match f.datastore {
                Some(id) if id != default.id => t.store.datastore(id).await?,
                _ => default.clone(),
            };
            let bytes = t.read_bytes(&ds, &f.file.digest).await?;
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
            t.upload_artifact(ws, run_id, &format!("code/{}", f.file.path), stream)
                .await?;
            out.push(f.file);
        }
        Ok(out)
    }

    /// `name` or `name:version` → `name:version` of an existing dataset version.
    async fn pin_dataset(&self, ws: &Workspace, r: &str) -> DomainResult<String> {
        let (name, version) = dataset_ref(r)?;
        let d = self.svc.store.dataset(ws.id, name, version).await?;
        Ok(format!("{}:{}", d.name, d.version))
    }

    /// Checks a sweep before it is queued: the sampler accepts the search space (it is asked
    /// for one trial, which is discarded), that trial's train spec is valid on the data, the
    /// primary metric is one the trials log, and the early-termination component answers.
    async fn check_sweep(&self, ws: &Workspace, spec: &JobSpec) -> DomainResult<()> {
        let plan = sweep::Plan::of(spec)?;
        let t = &self.svc;
        let (sampler_ref, opts) = plan.sweep.sampler.resolve()?;
        let sampler = t
            .strategy_plugin(ws, &sampler_ref, crate::plugins::Kind::Sampler)
            .await?;
        let label = sampler.label.clone();
        let dims = plan.sweep.dimensions();
        let maximize = plan.sweep.objective.goal == crate::sweep::Goal::Maximize;
        let (seed, opts) = (
            plan.sweep.seed,
            crate::sweep::spec::options_to_params(&opts)?,
        );
        let sample = tokio::task::spawn_blocking(move || {
            let mut study =
                crate::plugins::strategy::Study::create(sampler, &dims, maximize, seed, &opts)?;
            study.suggest(1)
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?
        .map_err(|e| {
            DomainError::invalid(format!("the sampler {label} refuses this sweep: {e}"))
        })?;
        let first = sample.into_iter().next().ok_or_else(|| {
            DomainError::invalid(format!(
                "the sampler {label} has no trial to propose for this search space"
            ))
        })?;
        let params = plan.params_of(&first)?;
        let trial = plan.trial_job(&params).map_err(|e| {
            DomainError::invalid(format!(
                "trial 1 ({}) is not a valid job: {e}",
                serde_json::to_string(&params).unwrap_or_default()
            ))
        })?;
        // a command trial's metrics are whatever its script logs; a train trial's are known
        if let sweep::TrialJob::Command(cmd) = &trial {
            t.check_secrets_exist(ws, &cmd.secrets).await?;
        }
        if let sweep::TrialJob::Train(train) = trial {
            let (outputs, validated) = self.check_train_data(ws, &train).await?;
            let logged = sweep::logged_metrics(train.task, validated, outputs);
            let primary = &plan.sweep.objective.primary_metric;
            if !logged.contains(primary) {
                return Err(DomainError::invalid(format!(
                    "the trials do not log the primary metric '{primary}'; they log {}",
                    logged.join(", ")
                )));
            }
        }
        if let Some(e) = &plan.sweep.early_termination {
            let (c, opts) = e.resolve()?;
            let plugin = t
                .strategy_plugin(ws, &c, crate::plugins::Kind::Stopper)
                .await?;
            let label = plugin.label.clone();
            tokio::task::spawn_blocking(move || {
                crate::plugins::strategy::Stopper::new(plugin).decide(maximize, &opts, 0, &[])
            })
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?
            .map_err(|e| {
                DomainError::invalid(format!(
                    "the early-termination component {label} does not work: {e}"
                ))
            })?;
        }
        Ok(())
    }

    /// Prepares a train job's data once at submission, so a missing column, a stray value or
    /// an unseen label is refused with a precise error instead of failing the job later.
    /// Returns the model's outputs (classes) and whether there are validation rows.
    async fn check_train_data(
        &self,
        ws: &Workspace,
        spec: &crate::train::TrainSpec,
    ) -> DomainResult<(usize, bool)> {
        let t = &self.svc;
        let (name, version) = dataset_ref(&spec.dataset)?;
        let table = t
            .dataset_table(ws, &t.store.dataset(ws.id, name, version).await?)
            .await?;
        let val = match &spec.validation_dataset {
            Some(v) => {
                let (name, version) = dataset_ref(v)?;
                Some(
                    t.dataset_table(ws, &t.store.dataset(ws.id, name, version).await?)
                        .await?,
                )
            }
            None => None,
        };
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || {
            train::prepare(&spec, &table, val.as_ref())
                .map(|p| (p.pre.outputs(), p.val.as_ref().is_some_and(|v| v.n > 0)))
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?
    }

    /// Stores each regular file of a tar archive as an artifact `code/<path>` of the run.
    async fn store_snapshot(
        &self,
        ws: &Workspace,
        run_id: &str,
        tar: Vec<u8>,
    ) -> DomainResult<Vec<SnapshotFile>> {
        let files = unpack_snapshot(tar).await?;
        let mut snapshot = Vec::with_capacity(files.len());
        for (path, executable, bytes) in files {
            let size = bytes.len() as u64;
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
            let file = self
                .svc
                .upload_artifact(ws, run_id, &format!("code/{path}"), stream)
                .await?;
            snapshot.push(SnapshotFile {
                path,
                digest: file.digest.unwrap_or_default(),
                size,
                executable,
            });
        }
        Ok(snapshot)
    }

    async fn workspace_of(&self, job: &JobRow) -> Option<Workspace> {
        self.svc
            .store
            .list_workspaces()
            .await
            .ok()?
            .into_iter()
            .find(|w| w.id == job.workspace_id)
    }

    async fn finish_run(
        &self,
        ws: &Workspace,
        run_id: &str,
        status: RunStatus,
    ) -> DomainResult<()> {
        self.svc
            .store
            .update_run(
                ws.id,
                run_id,
                RunUpdate {
                    status: Some(status),
                    end_time: Some(now_millis()),
                    name: None,
                },
            )
            .await
            .map(|_| ())
    }

    async fn run(self: Arc<Self>, job: JobRow, running: Arc<Running>) {
        let outcome = self.attempt(&job, &running).await;
        self.finish_unless_lost(job, &running, outcome).await;
    }

    /// Records the attempt's end, unless this replica lost the job's lease meanwhile.
    async fn finish_unless_lost(
        self: Arc<Self>,
        job: JobRow,
        running: &Running,
        outcome: Result<(), Failure>,
    ) {
        if running.lost.load(Ordering::Relaxed) {
            let id = &job.id;
            self.on_targets.lock().expect("jobs on targets").remove(id);
            self.running.lock().expect("running jobs").remove(id);
            self.pipelines.lock().expect("pipeline jobs").remove(id);
            self.wake.notify_one();
            return;
        }
        self.finish(job, outcome).await;
    }

    /// Watches an attempt an engine ran across a restart to its end.
    async fn resume(self: Arc<Self>, job: JobRow, running: Arc<Running>) {
        let outcome = match self.workspace_of(&job).await {
            Some(ws) => super::dispatch::resume(&self, &ws, &job, &running).await,
            None => Err(Failure::Failed("the job's workspace is gone".into())),
        };
        self.finish_unless_lost(job, &running, outcome).await;
    }

    async fn finish(self: Arc<Self>, job: JobRow, outcome: Result<(), Failure>) {
        let id = job.id.clone();
        self.on_targets.lock().expect("jobs on targets").remove(&id);
        self.running.lock().expect("running jobs").remove(&id);
        self.pipelines.lock().expect("pipeline jobs").remove(&id);
        let ws = self.workspace_of(&job).await;
        if let Err(Failure::Lost(why)) = &outcome
            && job.attempts <= job.retries
        {
            let canceled = match &ws {
                Some(ws) => self
                    .svc
                    .store
                    .job(ws.id, &id)
                    .await
                    .map(|j| j.cancel_requested)
                    .unwrap_or(true),
                None => true,
            };
            if !canceled {
                self.logs.line(
                    &id,
                    &format!(
                        "attempt {} was lost: {why}; retrying (attempt {} of {})",
                        job.attempts,
                        job.attempts + 1,
                        job.retries + 1
                    ),
                );
                match self.svc.store.requeue_job(job.key, why).await {
                    Ok(()) => {
                        self.wake.notify_one();
                        return;
                    }
                    Err(e) => {
                        tracing::error!(job = id.as_str(), error = %e, "cannot queue the job again")
                    }
                }
            }
        }
        let (state, status, error) = match outcome {
            Ok(()) => (JobState::Completed, RunStatus::Finished, None),
            Err(Failure::Canceled) => (JobState::Canceled, RunStatus::Killed, None),
            Err(Failure::Failed(m) | Failure::Lost(m)) => {
                (JobState::Failed, RunStatus::Failed, Some(m))
            }
        };
        match &error {
            Some(e) => self.logs.line(&id, &format!("job failed: {e}")),
            None => self
                .logs
                .line(&id, &format!("job {}", state.as_str().to_lowercase())),
        }
        if let (Some(ws), Some(run)) = (&ws, &job.run_id) {
            let log = self.logs.read_from(&id, 0).unwrap_or_default();
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(log))]);
            if let Err(e) = self
                .svc
                .upload_artifact(ws, run, "logs/job.log", stream)
                .await
            {
                tracing::warn!(job = id.as_str(), error = %e, "cannot attach the job log to its run");
            }
            if let Err(e) = self.finish_run(ws, run, status).await {
                tracing::warn!(job = id.as_str(), error = %e, "cannot end the job's run");
            }
        }
        if let Err(e) = self
            .svc
            .store
            .set_job_state(job.key, state, None, error.as_deref())
            .await
        {
            tracing::error!(job = id.as_str(), error = %e, "cannot record the job's end");
        }
        tracing::info!(job = id.as_str(), state = state.as_str(), "job ended");
        self.ended.send_modify(|n| *n += 1);
        self.wake.notify_one();
    }

    async fn attempt(
        self: &Arc<Self>,
        job: &JobRow,
        running: &Arc<Running>,
    ) -> Result<(), Failure> {
        let spec: JobSpec = serde_json::from_str(&job.spec)
            .map_err(|e| Failure::Failed(format!("stored spec: {e}")))?;
        let ws = self
            .workspace_of(job)
            .await
            .ok_or_else(|| Failure::Failed("the job's workspace is gone".into()))?;
        let run_id = job
            .run_id
            .clone()
            .ok_or_else(|| Failure::Failed("the job has no run".into()))?;
        self.logs.line(
            &job.id,
            &format!(
                "attempt {} of job {} ({}) on the {} target",
                job.attempts, job.id, job.kind, job.target
            ),
        );
        // a command job with an environment is Preparing until it is ready (command::run)
        let preparing = spec.kind == JobKind::Command
            && spec
                .command
                .as_ref()
                .is_some_and(|c| c.resolved_environment.is_some());
        let state = if preparing {
            JobState::Preparing
        } else {
            JobState::Running
        };
        // on a compute target the job stays Starting while the engine queues it: its worker
        // reports Preparing and Running
        let on_target = super::remote::is_compute_target(&job.target);
        if !on_target {
            self.svc
                .store
                .set_job_state(job.key, state, None, None)
                .await?;
        }
        self.svc
            .store
            .update_run(
                ws.id,
                &run_id,
                RunUpdate {
                    status: Some(RunStatus::Running),
                    end_time: None,
                    name: None,
                },
            )
            .await?;
        if job.cancel_requested {
            return Err(Failure::Canceled);
        }
        if job.target == super::remote::LOCAL_PROCESS {
            return super::remote::run_process(self, &ws, job, &run_id, running).await;
        }
        if on_target {
            return super::dispatch::run(self, &ws, job, &spec, &run_id, running).await;
        }
        match (spec.kind, &spec.train, &spec.command) {
            (JobKind::Train, Some(t), _) => {
                let ctx = Arc::new(super::ctx::HostCtx {
                    ex: self.clone(),
                    ws: ws.clone(),
                    job: job.clone(),
                    run_id: run_id.clone(),
                    live: running.clone(),
                });
                train::run(&ctx, t, &run_id).await
            }
            (JobKind::Command, _, Some(c)) => {
                command::run(self, &ws, job, c, &run_id, running).await
            }
            (JobKind::Sweep | JobKind::Automl, _, _) => {
                sweep::run(self, &ws, job, &spec, &run_id, running).await
            }
            (JobKind::Pipeline, _, _) if spec.pipeline.is_some() => {
                let pj = super::pipeline::parse_job(spec.pipeline.as_ref().expect("checked"))?;
                super::pipeline::run(self, &ws, job, &pj, &run_id, running).await
            }
            (JobKind::BatchScore, _, _) if spec.batch_score.is_some() => {
                let b = spec.batch_score.as_ref().expect("checked");
                super::batch::run(self, &ws, job, b, &run_id, running).await
            }
            _ => Err(Failure::Failed("the stored spec is incomplete".into())),
        }
    }

    /// Moves a job to `state` (Running after its environment is ready, Finalizing, ...).
    pub(super) async fn set_state(&self, job: &JobRow, state: JobState) -> Result<(), Failure> {
        self.svc
            .store
            .set_job_state(job.key, state, None, None)
            .await?;
        Ok(())
    }

    /// Moves a job to Finalizing.
    pub(super) async fn finalizing(&self, job: &JobRow) -> Result<(), Failure> {
        self.set_state(job, JobState::Finalizing).await
    }
}

/// The `max_jobs` of the compute target a job names (the default when it cannot be read).
async fn max_jobs(svc: &Service, job: &JobRow) -> u32 {
    match svc.store.compute(job.workspace_id, &job.target).await {
        Ok(row) => serde_json::from_str::<crate::compute::ComputeDefinition>(&row.definition)
            .map(|d| d.max_jobs)
            .unwrap_or(crate::compute::DEFAULT_MAX_JOBS),
        Err(_) => crate::compute::DEFAULT_MAX_JOBS,
    }
}

/// The text of one file of a code snapshot (a tar archive), for an inline environment's
/// `requirements_file`.
async fn snapshot_text(code: Option<&[u8]>, path: &str) -> DomainResult<String> {
    let Some(tar) = code else {
        return Err(DomainError::invalid(format!(
            "the environment's requirements_file '{path}' is read from the code snapshot, and the job has none (--code DIR)"
        )));
    };
    let tar = tar.to_vec();
    let wanted = path.trim_start_matches("./").to_string();
    tokio::task::spawn_blocking(move || {
        let mut archive = tar::Archive::new(&tar[..]);
        let entries = archive.entries().map_err(|e| {
            DomainError::invalid(format!("the code snapshot is not a tar archive: {e}"))
        })?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| DomainError::invalid(format!("the code snapshot is damaged: {e}")))?;
            let name = entry
                .path()
                .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
                .unwrap_or_default();
            if name == wanted && entry.header().entry_type().is_file() {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(|e| {
                    DomainError::invalid(format!(
                        "the environment's requirements_file '{wanted}' is not UTF-8 text: {e}"
                    ))
                })?;
                return Ok(text);
            }
        }
        Err(DomainError::invalid(format!(
            "the environment's requirements_file '{wanted}' is not in the code snapshot"
        )))
    })
    .await
    .map_err(|e| DomainError::Internal(e.to_string()))?
}

impl super::pipeline::StepHost for Executor {
    fn service(&self) -> &Arc<Service> {
        &self.svc
    }

    async fn submit_step(
        &self,
        ws: &Workspace,
        s: super::pipeline::StepJob,
    ) -> DomainResult<JobRow> {
        let super::pipeline::StepJob {
            spec,
            files,
            origin,
            parent_job,
            parent_run,
            step,
        } = s;
        let code = if files.is_empty() {
            Code::None
        } else {
            Code::Files(files)
        };
        self.submit_with(
            ws,
            spec,
            code,
            Some(Link {
                origin,
                parent_job: Some(parent_job),
                parent_run: Some(parent_run),
                step: Some(step),
            }),
        )
        .await
    }

    async fn cancel_job(&self, ws: &Workspace, id: &str) {
        if let Err(e) = self.cancel(ws, id).await {
            tracing::debug!(job = id, error = %e, "step job not canceled");
        }
    }

    fn line(&self, job: &str, text: &str) {
        self.logs.line(job, text);
    }

    fn ended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ended.subscribe()
    }

    fn flight(&self) -> &tokio::sync::Mutex<()> {
        &self.flight
    }
}

/// The regular files of a code snapshot (a tar archive): (path, executable, bytes), each path
/// checked as an artifact path.
pub(crate) async fn unpack_snapshot(tar: Vec<u8>) -> DomainResult<Vec<(String, bool, Vec<u8>)>> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries = archive.entries().map_err(|e| {
            DomainError::invalid(format!("the code snapshot is not a tar archive: {e}"))
        })?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| DomainError::invalid(format!("the code snapshot is damaged: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .map_err(|e| DomainError::invalid(e.to_string()))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            validate::artifact_path(&path)?;
            let mode = entry.header().mode().unwrap_or(0o644);
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| DomainError::invalid(format!("the code snapshot is damaged: {e}")))?;
            out.push((path, mode & 0o111 != 0, bytes));
        }
        Ok::<_, DomainError>(out)
    })
    .await
    .map_err(|e| DomainError::Internal(e.to_string()))?
}
