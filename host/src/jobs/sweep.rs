//! Sweep and AutoML jobs: the sampler plugin proposes trials, each trial trains in-process on
//! Candle as a child run of the sweep's run, every epoch's primary metric goes to the
//! early-termination plugin, and the study state is saved after every suggestion and
//! observation so a restarted host resumes where it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::command::{self, Work};
use super::executor::{Executor, Failure};
use super::spec::{CommandSpec, JobKind, JobSpec};
use super::train::{device_for, epoch_metrics, prepare, save_model};
use super::{Prepared, Running};
use crate::plugins::Kind;
use crate::plugins::strategy::{Progress, Stopper, Study};
use crate::store::{JobRow, LogBatch, NewRun, RunUpdate};
use crate::sweep::spec::{choice_text, options_to_params, substitute};
use crate::sweep::{AutomlSpec, Goal, SweepSpec, SweepState, TrialRecord, TrialState, better};
use crate::train::TrainSpec;
use crate::train::model::TrainedModel;
use crate::train::net::Net;
use crate::train::spec::{Task, dataset_ref};
use crate::train::trainer::{self, EpochReport, Observer, TrainError};
use crate::workspace::dataset::Table;
use crate::workspace::{DomainError, Metric, MetricPoint, RunStatus, Workspace, now_millis};

/// How trials are built from sampled parameters.
#[derive(Clone)]
pub enum TrialSource {
    /// A train job template with placeholders.
    Template(Value),
    /// AutoML's model-family search.
    Automl(Box<AutomlSpec>),
}

/// What one trial runs.
pub enum TrialJob {
    /// In-process training on Candle.
    Train(TrainSpec),
    /// A command on the sweep's code snapshot, logging through MLflow into the trial's run.
    Command(CommandSpec),
}

/// A sweep ready to run: the search and the way to build trials.
#[derive(Clone)]
pub struct Plan {
    /// Space, objective, strategies and limits.
    pub sweep: SweepSpec,
    /// Trial builder.
    pub source: TrialSource,
    /// Stop once a trial reaches this value.
    pub exit_score: Option<f64>,
    /// The compute target each trial runs on as a job of its own (`None`: in the host).
    pub compute: Option<String>,
}

impl Plan {
    /// The plan of a sweep or AutoML job spec.
    pub fn of(spec: &JobSpec) -> Result<Self, DomainError> {
        if let Some(s) = &spec.sweep {
            return Ok(Plan {
                sweep: s.clone(),
                source: TrialSource::Template(s.trial.clone()),
                exit_score: None,
                compute: spec
                    .compute
                    .clone()
                    .filter(|c| super::remote::is_compute_target(c)),
            });
        }
        if let Some(a) = &spec.automl {
            return Ok(Plan {
                sweep: a.sweep(),
                source: TrialSource::Automl(Box::new(a.clone())),
                exit_score: a.limits.exit_score,
                compute: None,
            });
        }
        Err(DomainError::invalid("not a sweep or AutoML job"))
    }

    /// The job of a trial with these parameters.
    pub fn trial_job(&self, params: &BTreeMap<String, Value>) -> Result<TrialJob, DomainError> {
        match &self.source {
            TrialSource::Automl(a) => a.trial(params).map(TrialJob::Train),
            TrialSource::Template(t) => {
                let filled = substitute(t, params);
                let job: JobSpec = serde_json::from_value(filled).map_err(|e| {
                    DomainError::invalid(format!(
                        "the filled-in trial template is not a job spec: {e}"
                    ))
                })?;
                job.check()?;
                match (job.train, job.command) {
                    (Some(t), _) => Ok(TrialJob::Train(t)),
                    (_, Some(c)) => Ok(TrialJob::Command(c)),
                    _ => Err(DomainError::invalid(
                        "the trial template must be a train or a command job",
                    )),
                }
            }
        }
    }

    /// Parameters as JSON values from a sampler trial.
    pub fn params_of(
        &self,
        trial: &crate::plugins::strategy::Trial,
    ) -> Result<BTreeMap<String, Value>, DomainError> {
        let mut out = BTreeMap::new();
        for (name, dim) in &self.sweep.search_space {
            let p = trial
                .params
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| {
                    DomainError::Plugin(format!("the sampler's trial {} lacks '{name}'", trial.id))
                })?;
            out.insert(name.clone(), dim.value_of(name, &p.1)?);
        }
        Ok(out)
    }

    fn maximize(&self) -> bool {
        self.sweep.objective.goal == Goal::Maximize
    }
}

/// Metric names a train trial logs per epoch, for checking the primary metric at submission.
pub fn logged_metrics(task: Task, validated: bool, classes: usize) -> Vec<String> {
    let mut names = vec!["loss".to_string(), "lr".to_string()];
    let base: Vec<&str> = match task {
        Task::Classification if classes == 2 => vec!["accuracy", "f1_macro", "auc"],
        Task::Classification => vec!["accuracy", "f1_macro"],
        Task::Regression => vec!["rmse", "r2"],
    };
    if validated {
        names.push("val_loss".into());
        names.extend(base.iter().map(|b| format!("val_{b}")));
    } else {
        names.extend(base.iter().map(|b| b.to_string()));
    }
    names
}

/// The value of `metric` in an epoch report.
fn metric_in(r: &EpochReport, metric: &str) -> Option<f64> {
    match metric {
        "loss" => Some(r.loss),
        "lr" => Some(r.lr),
        m => r.metrics.iter().find(|(k, _)| k == m).map(|(_, v)| *v),
    }
}

/// Loaded tables and prepared data, shared by the trials of one sweep.
#[derive(Default)]
struct DataCache {
    tables: tokio::sync::Mutex<HashMap<String, Arc<(String, Table)>>>,
    prepared: tokio::sync::Mutex<HashMap<String, Arc<Prepared>>>,
}

/// What is shared by every trial of one sweep attempt.
struct Ctx {
    ex: Arc<Executor>,
    ws: Workspace,
    job: JobRow,
    parent_run: String,
    experiment_id: i64,
    plan: Plan,
    data: DataCache,
    threads: usize,
    sweep_name: String,
}

/// A running trial's controls.
#[derive(Default)]
struct TrialCtl {
    cancel: AtomicBool,
    reason: Mutex<Option<TrialState>>,
    /// The primary metric's latest value.
    last: Mutex<Option<f64>>,
}

impl TrialCtl {
    fn stop(&self, reason: TrialState) {
        let mut r = self.reason.lock().expect("trial reason");
        if r.is_none() {
            *r = Some(reason);
        }
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// What trials tell the sweep.
enum Event {
    Started {
        trial: u64,
        run_id: String,
    },
    Progress {
        trial: u64,
        step: u64,
        value: f64,
        /// The trial's last epoch: recorded, not judged.
        last: bool,
        reply: std::sync::mpsc::SyncSender<bool>,
    },
    Done {
        trial: u64,
        state: TrialState,
        value: Option<f64>,
        error: Option<String>,
    },
}

impl Ctx {
    async fn table(&self, r: &str) -> Result<Arc<(String, Table)>, DomainError> {
        let mut tables = self.data.tables.lock().await;
        if let Some(t) = tables.get(r) {
            return Ok(t.clone());
        }
        let t = &self.ex.svc;
        let (name, version) = dataset_ref(r)?;
        let d = t.store.dataset(self.ws.id, name, version).await?;
        let table = t.dataset_table(&self.ws, &d).await?;
        let loaded = Arc::new((format!("{}:{}", d.name, d.version), table));
        tables.insert(r.to_string(), loaded.clone());
        Ok(loaded)
    }

    /// The prepared data of a trial (prepared once per distinct data setting).
    async fn prepared(&self, spec: &TrainSpec) -> Result<(String, Arc<Prepared>), DomainError> {
        let key = serde_json::json!([
            spec.dataset,
            spec.validation_dataset,
            spec.target,
            spec.features,
            spec.task,
            spec.missing,
            spec.validation_split,
            spec.seed
        ])
        .to_string();
        let train = self.table(&spec.dataset).await?;
        let mut cache = self.data.prepared.lock().await;
        if let Some(p) = cache.get(&key) {
            return Ok((train.0.clone(), p.clone()));
        }
        let val = match &spec.validation_dataset {
            Some(v) => Some(self.table(v).await?),
            None => None,
        };
        let (spec2, train2) = (spec.clone(), train.clone());
        let p = tokio::task::spawn_blocking(move || {
            prepare(&spec2, &train2.1, val.as_ref().map(|v| &v.1))
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))??;
        let p = Arc::new(p);
        cache.insert(key, p.clone());
        Ok((train.0.clone(), p))
    }
}

/// Logs a trial's epochs to its run, reports the primary metric and waits for the verdict.
struct TrialObserver {
    ctx: Arc<Ctx>,
    rt: tokio::runtime::Handle,
    trial: u64,
    run_id: String,
    ctl: Arc<TrialCtl>,
    tx: mpsc::UnboundedSender<Event>,
    epochs: usize,
    /// Epoch metrics not yet written.
    pending: Vec<Metric>,
    /// When they were last written.
    flushed: Instant,
}

/// How often a trial's buffered epoch metrics are written to its run.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

impl TrialObserver {
    /// Writes the buffered metrics to the trial's run.
    fn flush(&mut self) -> Result<(), String> {
        self.flushed = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let metrics = std::mem::take(&mut self.pending);
        self.rt
            .block_on(self.ctx.ex.svc.store.log_batch(
                self.ctx.ws.id,
                &self.run_id,
                LogBatch {
                    metrics,
                    ..Default::default()
                },
            ))
            .map_err(|e| format!("cannot log metrics: {e}"))
    }
}

impl Observer for TrialObserver {
    fn batch(&mut self, _: usize, _: usize, _: usize) {}

    fn epoch(&mut self, r: &EpochReport, _net: &Net, _checkpoint: bool) -> Result<(), String> {
        self.pending.extend(epoch_metrics(r));
        // trials are short: one commit per FLUSH_EVERY instead of one per epoch
        if self.flushed.elapsed() >= FLUSH_EVERY || r.epoch >= self.epochs {
            self.flush()?;
        }
        let primary = &self.ctx.plan.sweep.objective.primary_metric;
        let Some(value) = metric_in(r, primary) else {
            let mut names = vec!["loss".to_string(), "lr".to_string()];
            names.extend(r.metrics.iter().map(|m| m.0.clone()));
            return Err(format!(
                "the trial does not log the primary metric '{primary}'; it logs {}",
                names.join(", ")
            ));
        };
        *self.ctl.last.lock().expect("trial value") = Some(value);
        let (reply, verdict) = std::sync::mpsc::sync_channel(1);
        let sent = self.tx.send(Event::Progress {
            trial: self.trial,
            step: r.epoch as u64,
            value,
            last: r.epoch >= self.epochs,
            reply,
        });
        if sent.is_ok() && verdict.recv().unwrap_or(false) {
            self.ctl.stop(TrialState::EarlyTerminated);
        }
        Ok(())
    }

    fn canceled(&self) -> bool {
        self.ctl.cancel.load(Ordering::Relaxed)
    }
}

/// Runs one trial to its end and reports it.
async fn run_trial(
    ctx: Arc<Ctx>,
    trial: TrialRecord,
    ctl: Arc<TrialCtl>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let id = trial.id;
    let (state, value, error) = match trial_body(&ctx, &trial, &ctl, &tx).await {
        Ok(v) => (TrialState::Completed, Some(v), None),
        Err(TrialFailure::Stopped(best)) => {
            let reason =
                (*ctl.reason.lock().expect("trial reason")).unwrap_or(TrialState::Canceled);
            (reason, best, None)
        }
        Err(TrialFailure::Failed(m)) => (TrialState::Failed, None, Some(m)),
    };
    let _ = tx.send(Event::Done {
        trial: id,
        state,
        value,
        error,
    });
}

enum TrialFailure {
    /// Stopped by the policy, a timeout or the sweep's end; the best value reached.
    Stopped(Option<f64>),
    Failed(String),
}

impl From<DomainError> for TrialFailure {
    fn from(e: DomainError) -> Self {
        TrialFailure::Failed(e.to_string())
    }
}

async fn trial_body(
    ctx: &Arc<Ctx>,
    trial: &TrialRecord,
    ctl: &Arc<TrialCtl>,
    tx: &mpsc::UnboundedSender<Event>,
) -> Result<f64, TrialFailure> {
    let t = &ctx.ex.svc;
    let run = t
        .store
        .create_run(
            ctx.ws.id,
            NewRun {
                experiment_id: ctx.experiment_id,
                name: Some(format!("{}-trial-{}", ctx.sweep_name, trial.id)),
                user_id: "atrium-sweep".into(),
                start_time: now_millis(),
                status: Some(RunStatus::Running),
                tags: [
                    ("atrium.sweep.trial".to_string(), trial.id.to_string()),
                    ("atrium.job.id".to_string(), ctx.job.id.clone()),
                    ("atrium.job.type".to_string(), "trial".to_string()),
                ]
                .into(),
                parent_run_id: Some(ctx.parent_run.clone()),
            },
        )
        .await?;
    let _ = tx.send(Event::Started {
        trial: trial.id,
        run_id: run.id.clone(),
    });
    let outcome = match ctx.plan.trial_job(&trial.params) {
        Err(e) => {
            log_params(ctx, trial, &run.id).await;
            Err(TrialFailure::Failed(e.to_string()))
        }
        Ok(job) if ctx.plan.compute.is_some() => {
            remote_trial(ctx, trial, ctl, tx, &run.id, job).await
        }
        Ok(TrialJob::Train(spec)) => train_trial(ctx, trial, ctl, tx, &run.id, spec).await,
        Ok(TrialJob::Command(spec)) => command_trial(ctx, trial, ctl, tx, &run.id, spec).await,
    };
    let (status, reason) = match &outcome {
        Ok(_) => (RunStatus::Finished, None),
        Err(TrialFailure::Stopped(_)) => {
            let r = (*ctl.reason.lock().expect("trial reason")).unwrap_or(TrialState::Canceled);
            (RunStatus::Killed, Some(r.as_str().to_string()))
        }
        Err(TrialFailure::Failed(m)) => (RunStatus::Failed, Some(format!("failed: {m}"))),
    };
    let mut tags = Vec::new();
    if let Some(r) = reason {
        tags.push(("atrium.sweep.end_reason".to_string(), r));
    }
    if !tags.is_empty() {
        let _ = t
            .store
            .log_batch(
                ctx.ws.id,
                &run.id,
                LogBatch {
                    tags,
                    ..Default::default()
                },
            )
            .await;
    }
    let _ = t
        .store
        .update_run(
            ctx.ws.id,
            &run.id,
            RunUpdate {
                status: Some(status),
                end_time: Some(now_millis()),
                name: None,
            },
        )
        .await;
    outcome
}

/// Logs the sampled parameters as the trial run's params.
async fn log_params(ctx: &Arc<Ctx>, trial: &TrialRecord, run_id: &str) -> bool {
    let params: Vec<(String, String)> = trial
        .params
        .iter()
        .map(|(k, v)| (k.clone(), choice_text(v)))
        .collect();
    ctx.ex
        .svc
        .store
        .log_batch(
            ctx.ws.id,
            run_id,
            LogBatch {
                params,
                ..Default::default()
            },
        )
        .await
        .is_ok()
}

async fn train_trial(
    ctx: &Arc<Ctx>,
    trial: &TrialRecord,
    ctl: &Arc<TrialCtl>,
    tx: &mpsc::UnboundedSender<Event>,
    run_id: &str,
    spec: TrainSpec,
) -> Result<f64, TrialFailure> {
    let t = &ctx.ex.svc;
    log_params(ctx, trial, run_id).await;
    let (dataset, prepared) = ctx.prepared(&spec).await?;
    t.store
        .log_batch(
            ctx.ws.id,
            run_id,
            LogBatch {
                tags: vec![("atrium.dataset".into(), dataset.clone())],
                ..Default::default()
            },
        )
        .await?;
    let device = device_for(spec.device)?;
    let mut obs = TrialObserver {
        ctx: ctx.clone(),
        rt: tokio::runtime::Handle::current(),
        trial: trial.id,
        run_id: run_id.to_string(),
        ctl: ctl.clone(),
        tx: tx.clone(),
        epochs: spec.epochs,
        pending: Vec::new(),
        flushed: Instant::now(),
    };
    let threads = ctx.threads;
    let (spec2, p) = (spec.clone(), prepared.clone());
    let trained = tokio::task::spawn_blocking(move || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("atrium-trial-{i}"))
            .build()
            .map_err(|e| TrialFailure::Failed(format!("cannot start the training threads: {e}")))?;
        let out = pool.install(|| {
            trainer::train(&spec2, &p.pre, &p.train, p.val.as_ref(), &device, &mut obs)
        });
        // what a stopped or failed trial reported still lands in its run
        let flushed = obs.flush();
        let out = out.map_err(|e| match e {
            TrainError::Canceled => TrialFailure::Stopped(None),
            other => TrialFailure::Failed(other.to_string()),
        })?;
        flushed.map_err(TrialFailure::Failed)?;
        Ok(out)
    })
    .await
    .map_err(|e| TrialFailure::Failed(format!("the trial's task failed: {e}")))?;
    let outcome = match trained {
        Ok(o) => o,
        Err(TrialFailure::Stopped(_)) => return Err(TrialFailure::Stopped(None)),
        Err(other) => return Err(other),
    };
    let primary = &ctx.plan.sweep.objective.primary_metric;
    let value = match primary.as_str() {
        "loss" | "lr" => None,
        m => outcome
            .metrics
            .iter()
            .find(|(k, _)| k == m)
            .map(|(_, v)| *v),
    }
    .or(*ctl.last.lock().expect("trial value"));
    let model = TrainedModel::new(
        outcome.net,
        spec.task,
        prepared.pre.clone(),
        dataset,
        &outcome.metrics,
    );
    save_model(t, &ctx.ws, run_id, model).await?;
    t.store
        .log_batch(
            ctx.ws.id,
            run_id,
            LogBatch {
                tags: vec![("atrium.train.epochs".into(), outcome.epochs.to_string())],
                ..Default::default()
            },
        )
        .await?;
    value.ok_or(TrialFailure::Stopped(None))
}

/// Runs a command trial: the sweep's code snapshot, the filled-in command with `MLFLOW_RUN_ID`
/// pointing at the trial's run; the primary metric the script logs is polled and judged.
async fn command_trial(
    ctx: &Arc<Ctx>,
    trial: &TrialRecord,
    ctl: &Arc<TrialCtl>,
    tx: &mpsc::UnboundedSender<Event>,
    run_id: &str,
    spec: CommandSpec,
) -> Result<f64, TrialFailure> {
    let ex = &ctx.ex;
    log_params(ctx, trial, run_id).await;
    let key = format!("{}-trial-{}", ctx.job.id, trial.id);
    let work = ex.logs.work_dir(&key);
    let _ = tokio::fs::remove_dir_all(&work).await;
    let code = work.join("code");
    let env = match command::prepare_env(ex, &key, &spec, &ctl.cancel).await {
        Ok(env) => env,
        Err(Failure::Canceled) => return Err(TrialFailure::Stopped(None)),
        Err(Failure::Failed(m) | Failure::Lost(m)) => return Err(TrialFailure::Failed(m)),
    };
    command::materialize(ex, &ctx.ws, run_id, &spec, &code).await?;
    let poller = tokio::spawn(poll_metric(
        ctx.clone(),
        trial.id,
        run_id.to_string(),
        ctl.clone(),
        tx.clone(),
    ));
    let result = command::execute(
        ex,
        &ctx.ws,
        Work {
            key: &key,
            job: &ctx.job.id,
            run_id,
            experiment_id: ctx.experiment_id,
            dir: &code,
            cancel: &ctl.cancel,
        },
        &spec,
        env.as_ref(),
    )
    .await;
    poller.abort();
    let _ = tokio::fs::remove_dir_all(&work).await;
    let log = ex.logs.read_from(&key, 0).unwrap_or_default();
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(log))]);
    let _ = ex
        .svc
        .upload_artifact(&ctx.ws, run_id, "logs/trial.log", stream)
        .await;
    let _ = std::fs::remove_file(ex.logs.path(&key));
    let primary = &ctx.plan.sweep.objective.primary_metric;
    let points = ex
        .svc
        .store
        .metric_history(ctx.ws.id, run_id, primary)
        .await?;
    match result {
        _ if ctl.cancel.load(Ordering::Relaxed) => Err(TrialFailure::Stopped(None)),
        Ok(()) => points.last().map(|p| p.value).ok_or_else(|| {
            TrialFailure::Failed(format!(
                "the command never logged the primary metric '{primary}'"
            ))
        }),
        Err(Failure::Canceled) => Err(TrialFailure::Stopped(None)),
        Err(Failure::Failed(m) | Failure::Lost(m)) => Err(TrialFailure::Failed(m)),
    }
}

/// Runs a trial as a job of its own on the sweep's compute target (logging into the trial's
/// run through its worker); the primary metric is polled and judged as for a command trial,
/// and a trial the policy stops is canceled.
async fn remote_trial(
    ctx: &Arc<Ctx>,
    trial: &TrialRecord,
    ctl: &Arc<TrialCtl>,
    tx: &mpsc::UnboundedSender<Event>,
    run_id: &str,
    job: TrialJob,
) -> Result<f64, TrialFailure> {
    let ex = &ctx.ex;
    log_params(ctx, trial, run_id).await;
    let (kind, train, command) = match job {
        TrialJob::Train(t) => (JobKind::Train, Some(t), None),
        TrialJob::Command(c) => (JobKind::Command, None, Some(c)),
    };
    let spec = JobSpec {
        kind,
        name: Some(format!("{}-trial-{}", ctx.sweep_name, trial.id)),
        experiment: None,
        retries: 0,
        compute: ctx.plan.compute.clone(),
        environment: None,
        train,
        command,
        sweep: None,
        automl: None,
        batch_score: None,
        pipeline: None,
    };
    if let Some(c) = &spec.command {
        ex.share_snapshot(&ctx.ws, &ctx.parent_run, run_id, &c.snapshot)
            .await?;
    }
    let child = ex.submit_trial_job(&ctx.ws, &spec, run_id).await?;
    ex.logs.line(
        &ctx.job.id,
        &format!(
            "trial {} runs as job {} on compute target '{}'",
            trial.id, child.id, child.target
        ),
    );
    let poller = tokio::spawn(poll_metric(
        ctx.clone(),
        trial.id,
        run_id.to_string(),
        ctl.clone(),
        tx.clone(),
    ));
    let mut cancel_sent = false;
    let ended = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if ctl.cancel.load(Ordering::Relaxed) && !cancel_sent {
            cancel_sent = true;
            if let Err(e) = ex.cancel(&ctx.ws, &child.id).await {
                tracing::debug!(job = child.id.as_str(), error = %e, "trial job cancel");
            }
        }
        match ex.svc.store.job(ctx.ws.id, &child.id).await {
            Ok(j) if j.state.is_terminal() => break j,
            Ok(_) => {}
            Err(e) => {
                poller.abort();
                return Err(TrialFailure::Failed(format!("trial job {}: {e}", child.id)));
            }
        }
    };
    poller.abort();
    let primary = &ctx.plan.sweep.objective.primary_metric;
    let points = ex
        .svc
        .store
        .metric_history(ctx.ws.id, run_id, primary)
        .await?;
    let last = points.last().map(|p| p.value);
    match ended.state {
        _ if ctl.cancel.load(Ordering::Relaxed) => Err(TrialFailure::Stopped(last)),
        crate::store::JobState::Completed => last.ok_or_else(|| {
            TrialFailure::Failed(format!(
                "trial job {} never logged the primary metric '{primary}'",
                child.id
            ))
        }),
        crate::store::JobState::Canceled => Err(TrialFailure::Stopped(last)),
        _ => Err(TrialFailure::Failed(format!(
            "trial job {} failed: {}",
            child.id,
            ended.error.unwrap_or_else(|| "no reason given".into())
        ))),
    }
}

/// Reports the primary metric a command trial logs, as it appears, and applies the verdicts.
async fn poll_metric(
    ctx: Arc<Ctx>,
    trial: u64,
    run_id: String,
    ctl: Arc<TrialCtl>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let primary = ctx.plan.sweep.objective.primary_metric.clone();
    let mut reported = 0usize;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Ok(points) = ctx
            .ex
            .svc
            .store
            .metric_history(ctx.ws.id, &run_id, &primary)
            .await
        else {
            continue;
        };
        for p in points.iter().skip(reported) {
            reported += 1;
            *ctl.last.lock().expect("trial value") = Some(p.value);
            let (reply, verdict) = std::sync::mpsc::sync_channel(1);
            if tx
                .send(Event::Progress {
                    trial,
                    step: p.step.max(0) as u64,
                    value: p.value,
                    last: false,
                    reply,
                })
                .is_err()
            {
                return;
            }
            let stop = tokio::task::spawn_blocking(move || verdict.recv().unwrap_or(false))
                .await
                .unwrap_or(false);
            if stop {
                ctl.stop(TrialState::EarlyTerminated);
                return;
            }
        }
    }
}

/// Whether the policy judges a trial at `step`: at `delay_evaluation` and later, on multiples
/// of `evaluation_interval` (ASHA judges at its own rungs, so only the delay applies to it).
/// The plugin applies the same schedule; skipping the other calls saves moving the history.
fn judged_at(e: Option<&crate::sweep::spec::EarlyTermination>, step: u64) -> bool {
    let Some(e) = e else { return false };
    let interval = e.evaluation_interval.max(1);
    step >= e.delay_evaluation
        && (e.policy.as_deref() == Some("asha") || step.is_multiple_of(interval))
}

/// Calls the study off the async threads.
async fn with_study<R: Send + 'static>(
    study: &mut Option<Study>,
    f: impl FnOnce(&mut Study) -> Result<R, crate::plugins::RuntimeError> + Send + 'static,
) -> Result<R, String> {
    let mut s = study.take().ok_or("the sampler failed earlier")?;
    let (s, r) = tokio::task::spawn_blocking(move || {
        let r = f(&mut s);
        (s, r)
    })
    .await
    .map_err(|e| format!("sampler task: {e}"))?;
    let r = r.map_err(|e| e.to_string());
    if r.is_ok() {
        *study = Some(s);
    }
    r
}

/// Runs (or resumes) a sweep or AutoML job's attempt.
pub(super) async fn run(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    spec: &JobSpec,
    run_id: &str,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let plan = Plan::of(spec)?;
    let t = &ex.svc;
    let (sampler_ref, sampler_opts) = plan.sweep.sampler.resolve()?;
    let sampler = t.strategy_plugin(ws, &sampler_ref, Kind::Sampler).await?;
    let stopper = match &plan.sweep.early_termination {
        Some(e) => {
            let (c, opts) = e.resolve()?;
            Some((
                Arc::new(Mutex::new(Stopper::new(
                    t.strategy_plugin(ws, &c, Kind::Stopper).await?,
                ))),
                opts,
            ))
        }
        None => None,
    };
    let saved = t.store.sweep_state(job.key).await?;
    let (mut state, mut study) = match saved {
        Some(text) => {
            let mut st: SweepState = serde_json::from_str(&text)
                .map_err(|e| Failure::Failed(format!("the saved sweep state is damaged: {e}")))?;
            let snap = base64::engine::general_purpose::STANDARD
                .decode(st.sampler.as_deref().unwrap_or(""))
                .map_err(|e| Failure::Failed(format!("the saved sampler state is damaged: {e}")))?;
            let last = st.last_id;
            let plugin = sampler.clone();
            let study = tokio::task::spawn_blocking(move || Study::restore(plugin, &snap, last))
                .await
                .map_err(|e| Failure::Failed(e.to_string()))?
                .map_err(|e| Failure::Failed(format!("cannot restore the sampler: {e}")))?;
            let mut interrupted = 0;
            for tr in st
                .trials
                .iter_mut()
                .filter(|t| t.state == TrialState::Running)
            {
                if let Some(run) = tr.run_id.take() {
                    let _ = t
                        .store
                        .log_batch(
                            ws.id,
                            &run,
                            LogBatch {
                                tags: vec![(
                                    "atrium.sweep.end_reason".into(),
                                    "interrupted by a host restart; the trial runs again".into(),
                                )],
                                ..Default::default()
                            },
                        )
                        .await;
                    let _ = t
                        .store
                        .update_run(
                            ws.id,
                            &run,
                            RunUpdate {
                                status: Some(RunStatus::Killed),
                                end_time: Some(now_millis()),
                                name: None,
                            },
                        )
                        .await;
                }
                tr.state = TrialState::Pending;
                tr.steps.clear();
                interrupted += 1;
            }
            ex.logs.line(
                &job.id,
                &format!(
                    "resuming the sweep: {} trials finished, {interrupted} interrupted trials run again",
                    st.trials.iter().filter(|t| t.state.is_terminal()).count()
                ),
            );
            (st, Some(study))
        }
        None => {
            let plugin = sampler.clone();
            let dims = plan.sweep.dimensions();
            let (max, seed) = (plan.maximize(), plan.sweep.seed);
            let opts = options_to_params(&sampler_opts)?;
            let study =
                tokio::task::spawn_blocking(move || Study::create(plugin, &dims, max, seed, &opts))
                    .await
                    .map_err(|e| Failure::Failed(e.to_string()))?
                    .map_err(|e| Failure::Failed(format!("cannot start the sampler: {e}")))?;
            let st = SweepState {
                started_at: now_millis(),
                goal: Some(plan.sweep.objective.goal),
                primary_metric: plan.sweep.objective.primary_metric.clone(),
                ..Default::default()
            };
            (st, Some(study))
        }
    };
    // a resumed sweep's policy is told what its trials reported before the restart
    if let Some((policy, _)) = &stopper {
        let mut p = policy.lock().expect("stopper");
        for tr in &state.trials {
            for &(step, value) in &tr.steps {
                p.observe(Progress {
                    trial_id: tr.id,
                    step,
                    value,
                });
            }
        }
    }
    let parent = t.store.run(ws.id, run_id).await?;
    let limits = plan.sweep.limits.clone();
    let cores = ex.cfg.threads_per_slot.max(1);
    // trials on a compute target use its cores, not the slot's
    let concurrent = if plan.compute.is_some() {
        (limits.max_concurrent_trials as usize).max(1)
    } else {
        (limits.max_concurrent_trials as usize).min(cores).max(1)
    };
    let threads = (cores / concurrent).max(1);
    ex.logs.line(
        &job.id,
        &format!(
            "sweep over {} dimensions with {}; up to {} trials, {concurrent} at once ({threads} threads each){}",
            plan.sweep.search_space.len(),
            sampler.label,
            limits.max_total_trials,
            if plan.compute.is_some() {
                format!(
                    "; each trial is a job on compute target '{}'",
                    plan.compute.as_deref().unwrap_or_default()
                )
            } else if (limits.max_concurrent_trials as usize) > concurrent {
                format!(
                    "; max_concurrent_trials {} is capped by the slot's {cores} threads",
                    limits.max_concurrent_trials
                )
            } else {
                String::new()
            }
        ),
    );
    let ctx = Arc::new(Ctx {
        ex: ex.clone(),
        ws: ws.clone(),
        job: job.clone(),
        parent_run: run_id.to_string(),
        experiment_id: parent.experiment_id,
        plan: plan.clone(),
        data: DataCache::default(),
        threads,
        sweep_name: parent.name.clone(),
    });
    let shared = Arc::new(Mutex::new(state.clone()));
    let _ = running.sweep.set(shared.clone());
    let publish = |st: &SweepState| {
        *shared.lock().expect("sweep view") = st.clone();
    };
    let save = |st: &SweepState| {
        let text = serde_json::to_string(st).unwrap_or_default();
        let store = &t.store;
        let key = job.key;
        async move { store.save_sweep_state(key, &text).await }
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut ctls: HashMap<u64, Arc<TrialCtl>> = HashMap::new();
    let mut started: HashMap<u64, Instant> = HashMap::new();
    let mut failure: Option<Failure> = None;
    let mut stop_starting = false;
    let deadline = limits.timeout.map(|s| state.started_at + (s as i64) * 1000);
    let maximize = plan.maximize();
    loop {
        if running.lost.load(Ordering::Relaxed) {
            // another replica resumes the sweep from its saved state
            for c in ctls.values() {
                c.stop(TrialState::Canceled);
            }
            return Err(Failure::Lost("this replica lost the sweep's lease".into()));
        }
        // start trials while there is room
        while failure.is_none() && !stop_starting && ctls.len() < concurrent {
            if running.cancel.load(Ordering::Relaxed) {
                break;
            }
            if deadline.is_some_and(|d| now_millis() >= d) {
                state.note = Some(format!(
                    "the sweep timeout of {} s was reached",
                    limits.timeout.unwrap_or(0)
                ));
                stop_starting = true;
                break;
            }
            let next = match state
                .trials
                .iter()
                .position(|t| t.state == TrialState::Pending)
            {
                Some(i) => Some(i),
                None if state.exhausted
                    || state.trials.len() >= limits.max_total_trials as usize =>
                {
                    None
                }
                None => match with_study(&mut study, |s| s.suggest(1)).await {
                    Ok(mut ts) if !ts.is_empty() => {
                        let tr = ts.remove(0);
                        match plan.params_of(&tr) {
                            Ok(params) => {
                                state.last_id = tr.id;
                                state.trials.push(TrialRecord {
                                    id: tr.id,
                                    params,
                                    state: TrialState::Pending,
                                    run_id: None,
                                    value: None,
                                    steps: Vec::new(),
                                    error: None,
                                    started_at: None,
                                    ended_at: None,
                                });
                                match with_study(&mut study, |s| s.snapshot()).await {
                                    Ok(snap) => {
                                        state.sampler = Some(
                                            base64::engine::general_purpose::STANDARD.encode(snap),
                                        );
                                        save(&state).await?;
                                        Some(state.trials.len() - 1)
                                    }
                                    Err(e) => {
                                        failure = Some(Failure::Failed(format!(
                                            "the sampler failed: {e}"
                                        )));
                                        None
                                    }
                                }
                            }
                            Err(e) => {
                                failure = Some(Failure::Failed(format!("the sampler failed: {e}")));
                                None
                            }
                        }
                    }
                    Ok(_) => {
                        state.exhausted = true;
                        ex.logs.line(&job.id, "the sampler has nothing more to try");
                        save(&state).await?;
                        None
                    }
                    Err(e) => {
                        failure = Some(Failure::Failed(format!("the sampler failed: {e}")));
                        None
                    }
                },
            };
            let Some(i) = next else { break };
            let tr = &mut state.trials[i];
            tr.state = TrialState::Running;
            tr.started_at = Some(now_millis());
            tr.steps.clear();
            let ctl = Arc::new(TrialCtl::default());
            ctls.insert(tr.id, ctl.clone());
            started.insert(tr.id, Instant::now());
            ex.logs.line(
                &job.id,
                &format!(
                    "trial {} started: {}",
                    tr.id,
                    serde_json::to_string(&tr.params).unwrap_or_default()
                ),
            );
            tokio::spawn(run_trial(ctx.clone(), tr.clone(), ctl, tx.clone()));
            publish(&state);
        }
        if ctls.is_empty() {
            break;
        }
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = tokio::time::sleep(Duration::from_millis(200)) => None,
        };
        // cancel, timeouts
        if running.cancel.load(Ordering::Relaxed) {
            stop_starting = true;
            for c in ctls.values() {
                c.stop(TrialState::Canceled);
            }
        }
        if deadline.is_some_and(|d| now_millis() >= d) && !stop_starting {
            state.note = Some(format!(
                "the sweep timeout of {} s was reached",
                limits.timeout.unwrap_or(0)
            ));
            stop_starting = true;
            for c in ctls.values() {
                c.stop(TrialState::Canceled);
            }
        }
        if let Some(tt) = limits.trial_timeout {
            for (id, s) in &started {
                if s.elapsed() >= Duration::from_secs(tt)
                    && let Some(c) = ctls.get(id)
                {
                    c.stop(TrialState::TimedOut);
                }
            }
        }
        let Some(event) = event else { continue };
        match event {
            Event::Started { trial, run_id } => {
                if let Some(tr) = state.trials.iter_mut().find(|t| t.id == trial) {
                    tr.run_id = Some(run_id);
                }
                save(&state).await?;
            }
            Event::Progress {
                trial,
                step,
                value,
                last,
                reply,
            } => {
                if let Some(tr) = state.trials.iter_mut().find(|t| t.id == trial) {
                    tr.steps.push((step, value));
                }
                if let Some((policy, _)) = &stopper {
                    policy.lock().expect("stopper").observe(Progress {
                        trial_id: trial,
                        step,
                        value,
                    });
                }
                let mut stop = false;
                if let Some((policy, opts)) = &stopper
                    && failure.is_none()
                    && !last
                    && judged_at(plan.sweep.early_termination.as_ref(), step)
                {
                    let (policy, opts) = (policy.clone(), opts.clone());
                    let verdict = tokio::task::spawn_blocking(move || {
                        policy
                            .lock()
                            .expect("stopper")
                            .decide(maximize, &opts, step, &[trial])
                    })
                    .await
                    .map_err(|e| Failure::Failed(e.to_string()))?;
                    match verdict {
                        Ok(ids) => stop = ids.contains(&trial),
                        Err(e) => {
                            failure = Some(Failure::Failed(format!(
                                "the early-termination policy failed: {e}"
                            )));
                            for c in ctls.values() {
                                c.stop(TrialState::Canceled);
                            }
                        }
                    }
                }
                if stop {
                    ex.logs.line(
                        &job.id,
                        &format!("trial {trial} early-terminated at step {step} ({value:.6})"),
                    );
                    if let Some(c) = ctls.get(&trial) {
                        c.stop(TrialState::EarlyTerminated);
                    }
                }
                let _ = reply.send(stop);
                publish(&state);
            }
            Event::Done {
                trial,
                state: end,
                value,
                error,
            } => {
                ctls.remove(&trial);
                started.remove(&trial);
                let goal = plan.sweep.objective.goal;
                let Some(tr) = state.trials.iter_mut().find(|t| t.id == trial) else {
                    continue;
                };
                tr.state = end;
                tr.ended_at = Some(now_millis());
                tr.error = error.clone();
                tr.value = match end {
                    TrialState::Completed => value,
                    TrialState::EarlyTerminated | TrialState::TimedOut => tr.best_step(goal),
                    _ => None,
                };
                let (v, failed) = (tr.value, matches!(end, TrialState::Failed));
                ex.logs.line(
                    &job.id,
                    &format!(
                        "trial {trial} {}{}{}",
                        end.as_str(),
                        v.map(|v| format!(": {} = {v:.6}", plan.sweep.objective.primary_metric))
                            .unwrap_or_default(),
                        error.map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                );
                // a trial canceled with the sweep tells the sampler nothing
                if end != TrialState::Canceled && failure.is_none() {
                    let observed = with_study(&mut study, move |s| {
                        s.observe(trial, v, failed)?;
                        s.snapshot()
                    })
                    .await;
                    match observed {
                        Ok(snap) => {
                            state.sampler =
                                Some(base64::engine::general_purpose::STANDARD.encode(snap));
                        }
                        Err(e) => {
                            failure = Some(Failure::Failed(format!("the sampler failed: {e}")));
                            for c in ctls.values() {
                                c.stop(TrialState::Canceled);
                            }
                        }
                    }
                }
                save(&state).await?;
                let finished = state
                    .trials
                    .iter()
                    .filter(|t| t.state.is_terminal())
                    .count();
                if let Some(best) = state.best() {
                    let best_value = best.value.unwrap_or(f64::NAN);
                    let _ = t
                        .store
                        .log_batch(
                            ws.id,
                            run_id,
                            LogBatch {
                                metrics: vec![Metric {
                                    key: format!("best_{}", plan.sweep.objective.primary_metric),
                                    point: MetricPoint {
                                        value: best_value,
                                        timestamp: now_millis(),
                                        step: finished as i64,
                                    },
                                }],
                                ..Default::default()
                            },
                        )
                        .await;
                    if let Some(exit) = plan.exit_score
                        && !stop_starting
                        && (best_value == exit || better(goal, best_value, exit))
                    {
                        state.note =
                            Some(format!("trial {} reached the exit score {exit}", best.id));
                        stop_starting = true;
                        for c in ctls.values() {
                            c.stop(TrialState::Canceled);
                        }
                    }
                }
                publish(&state);
            }
        }
    }
    // canceled trials that never started stay pending; they are not part of the result
    publish(&state);
    save(&state).await?;
    if let Some(f) = failure {
        return Err(f);
    }
    if running.cancel.load(Ordering::Relaxed) {
        return Err(Failure::Canceled);
    }
    ex.finalizing(job).await?;
    if let Some(best) = state.best().cloned() {
        let mut tags = vec![
            ("atrium.sweep.best_trial".to_string(), best.id.to_string()),
            (
                "atrium.sweep.best_value".to_string(),
                best.value.unwrap_or(f64::NAN).to_string(),
            ),
        ];
        if let Some(r) = &best.run_id {
            tags.push(("atrium.sweep.best_run_id".to_string(), r.clone()));
            // the best model is ready to register
            let _ = t
                .store
                .log_batch(
                    ws.id,
                    r,
                    LogBatch {
                        tags: vec![("atrium.sweep.best".into(), "true".into())],
                        ..Default::default()
                    },
                )
                .await;
        }
        for (k, v) in &best.params {
            tags.push((format!("atrium.sweep.best.{k}"), choice_text(v)));
        }
        t.store
            .log_batch(
                ws.id,
                run_id,
                LogBatch {
                    tags,
                    ..Default::default()
                },
            )
            .await?;
        ex.logs.line(
            &job.id,
            &format!(
                "best trial {}: {} = {} with {}",
                best.id,
                plan.sweep.objective.primary_metric,
                best.value.unwrap_or(f64::NAN),
                serde_json::to_string(&best.params).unwrap_or_default()
            ),
        );
    } else {
        return Err(Failure::Failed(
            "no trial finished with a value of the primary metric".into(),
        ));
    }
    Ok(())
}
