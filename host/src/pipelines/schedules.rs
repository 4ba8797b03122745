//! Schedules: a pipeline run on a cron or recurrence trigger in an IANA time zone, with
//! catch-up (`latest`, `none`, `all` bounded) for ticks missed while no host ran, and an overlap
//! policy (`skip`, `queue`, `allow`) for ticks that come while an earlier run still runs.
//! [`Scheduler::tick`] takes the time as an argument (tests inject it); each tick is claimed by
//! a unique row and its run has a unique origin, so a tick fires once, across restarts and hosts.

use std::collections::BTreeMap;
use std::sync::Arc;

use atrium_schedules::{Catchup, Overlap, Schedule, SignedDuration, Timestamp, Trigger};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RunRequest, parse_ref, submit_tick};
use crate::jobs::Executor;
use crate::jobs::pipeline::StepHost;
use crate::jobs::pipeline::prepare::rfc3339;
use crate::service::Service;
use crate::store::ScheduleRow;
use crate::workspace::{DomainError, DomainResult, Millis, Workspace};

/// How late a tick may fire and still count as on time (not missed) under `catchup = none`.
pub const GRACE_SECS: i64 = 60;
/// How old a claimed, unrecorded tick must be before another pass submits it (its host died).
pub const STALE_CLAIM_SECS: i64 = 30;
/// Runs at once under `overlap = allow` when `max_concurrency` is not set.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 3;

/// A schedule (Azure ML's key names).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The pipeline: `name:version`, or `name@latest` (or `name`), resolved at each tick.
    pub pipeline: String,
    /// `{type = "cron", expression = "0 2 * * *"}` or `{type = "recurrence", frequency, interval, schedule}`.
    #[schemars(with = "serde_json::Value")]
    pub trigger: Trigger,
    /// IANA time zone of the trigger (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// No tick before this time (RFC 3339).
    #[serde(default)]
    pub start_time: Option<String>,
    /// No tick after this time (RFC 3339).
    #[serde(default)]
    pub end_time: Option<String>,
    /// Input values of its runs.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub inputs: serde_json::Map<String, Value>,
    /// Settings of its runs.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub settings: serde_json::Map<String, Value>,
    /// Experiment of its runs.
    #[serde(default)]
    pub experiment: Option<String>,
    /// Ticks missed while no host ran: `latest` (default: one run), `none`, or `all` (at most `max_catchup_runs`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub catchup: Catchup,
    /// The most missed ticks `catchup = all` runs (default 5).
    #[serde(default)]
    pub max_catchup_runs: Option<usize>,
    /// A tick while an earlier run still runs: `skip` (default), `queue` (run after it) or `allow`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub overlap: Overlap,
    /// Runs at once under `overlap = allow` (1-10, default 3).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Whether it fires (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

fn ts(s: &str, field: &str) -> DomainResult<Timestamp> {
    s.parse::<Timestamp>().map_err(|e| {
        DomainError::invalid(format!(
            "{field} '{s}' is not an RFC 3339 time (2026-12-24T02:00:00Z): {e}"
        ))
    })
}

fn at(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl ScheduleRequest {
    /// The schedule it describes, compiled (every field checked).
    fn compiled(&self, anchor: Millis) -> DomainResult<atrium_schedules::Compiled> {
        let mut s = Schedule::new(self.trigger.clone());
        if let Some(tz) = &self.time_zone {
            s.time_zone = tz.clone();
        }
        s.start_time = self
            .start_time
            .as_deref()
            .map(|t| ts(t, "start_time"))
            .transpose()?;
        s.end_time = self
            .end_time
            .as_deref()
            .map(|t| ts(t, "end_time"))
            .transpose()?;
        s.compile(at(anchor))
            .map_err(|e| DomainError::invalid(e.to_string()))
    }

    fn check(&self) -> DomainResult<()> {
        if let Some(m) = self.max_concurrency
            && !(1..=10).contains(&m)
        {
            return Err(DomainError::invalid(
                "max_concurrency must be between 1 and 10",
            ));
        }
        if self.max_catchup_runs == Some(0) {
            return Err(DomainError::invalid("max_catchup_runs must be at least 1"));
        }
        Ok(())
    }

    fn run_request(&self) -> RunRequest {
        RunRequest {
            inputs: self.inputs.clone(),
            settings: self.settings.clone(),
            display_name: None,
            experiment: self.experiment.clone(),
        }
    }
}

/// A tick as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TickView {
    /// The scheduled time (RFC 3339).
    pub tick: String,
    /// Pending, Submitted, Skipped, Queued or Failed.
    pub outcome: String,
    /// The pipeline run it started.
    pub job: Option<String>,
    /// Why it was skipped or failed.
    pub detail: Option<String>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Its definition.
    #[schemars(with = "serde_json::Value")]
    pub definition: ScheduleRequest,
    /// The trigger in words.
    pub describe: String,
    /// Whether it fires.
    pub enabled: bool,
    /// The next ticks (RFC 3339), when enabled.
    pub next: Vec<String>,
    /// The latest ticks, newest first.
    pub ticks: Vec<TickView>,
    /// Creation time (ms).
    pub created_at: Millis,
    /// Who created it.
    pub created_by: Option<String>,
}

fn definition(row: &ScheduleRow) -> DomainResult<ScheduleRequest> {
    serde_json::from_str(&row.definition)
        .map_err(|e| DomainError::Internal(format!("stored schedule '{}': {e}", row.name)))
}

async fn view(svc: &Service, row: &ScheduleRow, now: Millis) -> DomainResult<ScheduleView> {
    let def = definition(row)?;
    let mut next = Vec::new();
    if row.enabled
        && let Ok(c) = def.compiled(row.enabled_at)
    {
        let mut t = at(row.cursor.max(now));
        for _ in 0..3 {
            match c.next_after(t) {
                Some(n) => {
                    next.push(n.to_string());
                    t = n;
                }
                None => break,
            }
        }
    }
    let describe = {
        let mut s = Schedule::new(def.trigger.clone());
        if let Some(tz) = &def.time_zone {
            s.time_zone = tz.clone();
        }
        s.describe()
    };
    let ticks = svc
        .store
        .ticks(row.id, None, 20)
        .await?
        .into_iter()
        .map(|t| TickView {
            tick: rfc3339(t.tick),
            outcome: t.outcome,
            job: t.job,
            detail: t.detail,
        })
        .collect();
    Ok(ScheduleView {
        name: row.name.clone(),
        definition: def,
        describe,
        enabled: row.enabled,
        next,
        ticks,
        created_at: row.created_at,
        created_by: row.created_by.clone(),
    })
}

/// Creates a schedule; its pipeline and inputs are checked now, the version resolved at each tick.
pub async fn create(
    svc: &Service,
    ws: &Workspace,
    name: &str,
    req: ScheduleRequest,
    by: Option<&str>,
    now: Millis,
) -> DomainResult<ScheduleView> {
    atrium_pipelines::check::check_name("schedule", name).map_err(|e| DomainError::invalid(e.0))?;
    req.check()?;
    req.compiled(now)?;
    let (n, v) = parse_ref(&req.pipeline)?;
    let row = svc.store.pipeline(ws.id, n, v).await?;
    let spec: atrium_pipelines::PipelineSpec = serde_json::from_str(&row.spec)
        .map_err(|e| DomainError::Internal(format!("stored pipeline: {e}")))?;
    let nested = super::resolve_nested(svc, ws, &spec, 0).await?;
    let checked =
        crate::jobs::pipeline::checked_of(&spec, &nested).map_err(DomainError::invalid)?;
    checked
        .resolve_inputs(&req.inputs)
        .map_err(|e| DomainError::invalid(e.0))?;
    super::merge_settings(&spec.settings, &req.settings)?;
    let text = serde_json::to_string(&req).map_err(|e| DomainError::Internal(e.to_string()))?;
    let row = svc
        .store
        .create_schedule(ws.id, name, &text, req.enabled, now, by)
        .await?;
    view(svc, &row, now).await
}

/// One schedule.
pub async fn get(
    svc: &Service,
    ws: &Workspace,
    name: &str,
    now: Millis,
) -> DomainResult<ScheduleView> {
    view(svc, &svc.store.schedule(ws.id, name).await?, now).await
}

/// The schedules of a workspace.
pub async fn list(svc: &Service, ws: &Workspace, now: Millis) -> DomainResult<Vec<ScheduleView>> {
    let mut out = Vec::new();
    for row in svc.store.list_schedules(Some(ws.id)).await? {
        out.push(view(svc, &row, now).await?);
    }
    Ok(out)
}

/// Enables (ticks from now on fire; none of the time it was off) or disables a schedule.
pub async fn set_enabled(
    svc: &Service,
    ws: &Workspace,
    name: &str,
    enabled: bool,
    now: Millis,
) -> DomainResult<ScheduleView> {
    let row = svc
        .store
        .set_schedule_enabled(ws.id, name, enabled, now)
        .await?;
    view(svc, &row, now).await
}

/// Deletes a schedule (the runs it started stay).
pub async fn delete(svc: &Service, ws: &Workspace, name: &str) -> DomainResult<()> {
    svc.store.delete_schedule(ws.id, name).await
}

/// What one pass of the scheduler did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pass {
    /// Runs submitted.
    pub submitted: usize,
    /// Ticks skipped (overlap).
    pub skipped: usize,
    /// Ticks queued (overlap = queue).
    pub queued: usize,
    /// Ticks missed and not run (catch-up).
    pub missed: u64,
    /// Ticks whose run could not be submitted.
    pub failed: usize,
}

/// Fires the ticks of every enabled schedule.
pub struct Scheduler {
    ex: Arc<Executor>,
}

impl Scheduler {
    /// A scheduler submitting through `ex`.
    pub fn new(ex: Arc<Executor>) -> Arc<Self> {
        Arc::new(Self { ex })
    }

    /// Runs [`Scheduler::tick`] with the clock every second, until the process ends.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.tick(crate::workspace::now_millis()).await {
                    tracing::warn!(error = %e, "schedule pass failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }

    /// One pass at time `now` (ms): due ticks fired, queued ticks started when nothing runs.
    pub async fn tick(&self, now: Millis) -> DomainResult<Pass> {
        let svc = self.ex.service().clone();
        let mut pass = Pass::default();
        // a host without enabled schedules does one read a second, not two
        let rows = svc.store.list_schedules(None).await?;
        if rows.is_empty() {
            return Ok(pass);
        }
        let workspaces: BTreeMap<i64, Workspace> = svc
            .store
            .list_workspaces()
            .await?
            .into_iter()
            .map(|w| (w.id, w))
            .collect();
        for row in rows {
            let Some(ws) = workspaces.get(&row.workspace_id) else {
                continue;
            };
            if let Err(e) = self.schedule_pass(&svc, ws, &row, now, &mut pass).await {
                tracing::warn!(schedule = row.name.as_str(), error = %e, "schedule pass failed");
            }
        }
        Ok(pass)
    }

    async fn schedule_pass(
        &self,
        svc: &Service,
        ws: &Workspace,
        row: &ScheduleRow,
        now: Millis,
        pass: &mut Pass,
    ) -> DomainResult<()> {
        let def = definition(row)?;
        let compiled = def.compiled(row.enabled_at)?;
        // ticks claimed by a host that stopped before submitting them, and queued ticks
        // (a live host records its claimed tick within milliseconds: only old claims are resumed)
        let stale = crate::workspace::now_millis() - STALE_CLAIM_SECS * 1000;
        for t in svc.store.stale_ticks(row.id, stale).await? {
            self.fire(svc, ws, row, &def, t, pass, None).await?;
        }
        if def.overlap == Overlap::Queue
            && svc.store.active_schedule_runs(row.id).await? == 0
            && let Some(t) = svc
                .store
                .ticks(row.id, Some("Queued"), 1)
                .await?
                .into_iter()
                .next()
        {
            self.submit(svc, ws, row, &def, t.tick, pass).await?;
        }
        let due = atrium_schedules::due(
            &compiled,
            at(row.cursor.max(row.enabled_at)),
            at(now),
            def.catchup,
            def.max_catchup_runs
                .unwrap_or(atrium_schedules::DEFAULT_MAX_CATCHUP_RUNS),
            SignedDuration::from_secs(GRACE_SECS),
        );
        pass.missed += due.missed;
        if due.missed > 0 {
            tracing::info!(schedule = row.name.as_str(), missed = due.missed, catchup = ?def.catchup, "ticks missed while no host ran");
        }
        // the ticks of one pass (catch-up) overlap only with runs from before it under `skip`;
        // under `queue` they run one after the other, under `allow` up to max_concurrency
        let before = svc.store.active_schedule_runs(row.id).await?;
        let mut started = 0;
        for t in due.run {
            let ms = t.as_millisecond();
            if svc.store.claim_tick(row.id, ms, "Pending").await? {
                let active = match def.overlap {
                    Overlap::Skip => before,
                    Overlap::Queue | Overlap::Allow => before + started,
                };
                if self
                    .fire(svc, ws, row, &def, ms, pass, Some(active))
                    .await?
                {
                    started += 1;
                }
            }
        }
        svc.store
            .advance_schedule(row.id, due.cursor.as_millisecond())
            .await
    }

    /// A claimed tick: submitted, skipped or queued per the overlap policy.
    #[allow(clippy::too_many_arguments)]
    async fn fire(
        &self,
        svc: &Service,
        ws: &Workspace,
        row: &ScheduleRow,
        def: &ScheduleRequest,
        tick: Millis,
        pass: &mut Pass,
        active: Option<i64>,
    ) -> DomainResult<bool> {
        let origin = format!("schedule:{}:{tick}", row.id);
        // a resumed tick whose run was submitted before the host stopped: record it
        if active.is_none()
            && let Some(j) = svc.store.job_by_origin(ws.id, &origin).await?
        {
            svc.store
                .set_tick(row.id, tick, "Submitted", Some(&j.id), None)
                .await?;
            return Ok(false);
        }
        let active = match active {
            Some(n) => n,
            None => svc.store.active_schedule_runs(row.id).await?,
        };
        let limit = match def.overlap {
            Overlap::Skip | Overlap::Queue => 1,
            Overlap::Allow => def.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY) as i64,
        };
        if active >= limit {
            if def.overlap == Overlap::Queue {
                pass.queued += 1;
                svc.store
                    .set_tick(
                        row.id,
                        tick,
                        "Queued",
                        None,
                        Some("waiting for the previous run to end"),
                    )
                    .await?;
                return Ok(false);
            }
            pass.skipped += 1;
            let why = if limit == 1 {
                "the previous run is still running (overlap = skip)".to_string()
            } else {
                format!("{active} runs are running, max_concurrency is {limit}")
            };
            svc.store
                .set_tick(row.id, tick, "Skipped", None, Some(&why))
                .await?;
            return Ok(false);
        }
        self.submit(svc, ws, row, def, tick, pass).await?;
        Ok(true)
    }

    async fn submit(
        &self,
        svc: &Service,
        ws: &Workspace,
        row: &ScheduleRow,
        def: &ScheduleRequest,
        tick: Millis,
        pass: &mut Pass,
    ) -> DomainResult<()> {
        let origin = format!("schedule:{}:{tick}", row.id);
        let mut req = def.run_request();
        req.display_name = Some(format!(
            "{}-{}",
            row.name,
            at(tick).strftime("%Y%m%dT%H%M%SZ")
        ));
        match submit_tick(
            &self.ex,
            ws,
            &def.pipeline,
            &req,
            &row.name,
            origin,
            rfc3339(tick),
        )
        .await
        {
            Ok(job) => {
                pass.submitted += 1;
                tracing::info!(schedule = row.name.as_str(), tick = %rfc3339(tick), job = job.id.as_str(), "scheduled run submitted");
                svc.store
                    .set_tick(row.id, tick, "Submitted", Some(&job.id), None)
                    .await
            }
            Err(e) => {
                pass.failed += 1;
                tracing::warn!(schedule = row.name.as_str(), error = %e, "scheduled run refused");
                svc.store
                    .set_tick(row.id, tick, "Failed", None, Some(&e.to_string()))
                    .await
            }
        }
    }
}
