//! The pipeline job kind: runs a checked pipeline's steps as child jobs in dependency order.
//! Map: `mod.rs` (the stored run description, the loop: start, watch, retry, skip, cancel),
//! `prepare` (a step's job spec, input files and cache key; the cache lookup), `values` (values
//! between steps, their content hashes, reading outputs). The state is in `pipeline_steps`, so a
//! restarted host continues where it stopped; a step attempt's job has a unique origin, so it is
//! never submitted twice. The host is reached through [`StepHost`], never the executor itself.

pub mod prepare;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use atrium_pipelines::{Checked, Interface, PipelineSpec, Settings, StepKind};
use serde::{Deserialize, Serialize};

use super::Running;
use super::executor::Failure;
use super::spec::{JobSpec, SnapshotFile};
use crate::service::Service;
use crate::store::{JobRow, JobState, StepRow};
use crate::workspace::{DomainError, DomainResult, Workspace, now_millis};
pub use values::{Outputs, Val};

/// Step states.
pub mod state {
    /// Not started yet.
    pub const PENDING: &str = "Pending";
    /// Its job is queued (or it waits for a retry or an identical step).
    pub const QUEUED: &str = "Queued";
    /// Its job runs.
    pub const RUNNING: &str = "Running";
    /// Ran and succeeded.
    pub const COMPLETED: &str = "Completed";
    /// Served by the cache (or pinned by a rerun).
    pub const CACHED: &str = "Cached";
    /// Not run: its condition was false, or an upstream step did not succeed.
    pub const SKIPPED: &str = "Skipped";
    /// Failed after its retries.
    pub const FAILED: &str = "Failed";
    /// Canceled.
    pub const CANCELED: &str = "Canceled";

    /// Whether a step in this state has ended.
    pub fn terminal(s: &str) -> bool {
        matches!(s, COMPLETED | CACHED | SKIPPED | FAILED | CANCELED)
    }

    /// Whether it ended with outputs.
    pub fn succeeded(s: &str) -> bool {
        matches!(s, COMPLETED | CACHED)
    }
}

/// The row holding a finished pipeline run's outputs (not a step: step names start with a letter).
pub const OUTPUTS_ROW: &str = "$outputs";

/// Where a Cached step's outputs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reused {
    /// The pipeline job whose step produced them.
    pub job: String,
    /// That step.
    pub step: String,
    /// Its run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Set while the step waits for that identical step to finish (single-flight).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

/// A published pipeline a step runs, pinned at submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nested {
    /// `name:version`.
    pub reference: String,
    /// Its spec.
    pub spec: PipelineSpec,
    /// Its code snapshot.
    pub snapshot: Vec<SnapshotFile>,
    /// The pipelines its own steps run.
    #[serde(default)]
    pub nested: BTreeMap<String, Nested>,
}

/// What a pipeline job runs (its spec's `pipeline` section): everything pinned at submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineJob {
    /// `name:version`.
    pub pipeline: String,
    /// The version's spec.
    pub spec: PipelineSpec,
    /// Its code snapshot (command steps run in it).
    #[serde(default)]
    pub snapshot: Vec<SnapshotFile>,
    /// The inputs, resolved and pinned.
    pub inputs: BTreeMap<String, Val>,
    /// The settings, with the submission's overrides.
    pub settings: Settings,
    /// Published pipelines its steps run, by the reference written.
    #[serde(default)]
    pub nested: BTreeMap<String, Nested>,
    /// Steps whose outputs come from an earlier run (a rerun): step → (outputs, origin).
    #[serde(default)]
    pub pinned: BTreeMap<String, (Outputs, Reused)>,
    /// Steps a rerun runs again, whatever the cache holds.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub force: BTreeSet<String>,
    /// The run this one reruns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// The schedule that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The tick it was started for (RFC 3339), `${{creation_context.trigger_time}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_time: Option<String>,
}

/// The interface of a nested pipeline's spec (for checking the outer one).
pub fn interface_of(n: &Nested) -> Result<Interface, String> {
    checked_of(&n.spec, &n.nested).map(|c| c.interface())
}

/// Checks a spec whose nested pipelines are pinned.
pub fn checked_of(
    spec: &PipelineSpec,
    nested: &BTreeMap<String, Nested>,
) -> Result<Checked, String> {
    atrium_pipelines::check(spec, &|r| {
        nested
            .get(r)
            .ok_or_else(|| format!("'{r}' was not resolved at submission"))
            .and_then(interface_of)
    })
    .map_err(|e| e.0)
}

/// A step's job, to submit.
pub struct StepJob {
    /// Its spec.
    pub spec: JobSpec,
    /// The files its code directory holds (already stored, by digest).
    pub files: Vec<prepare::StepFile>,
    /// `step:<pipeline job>:<step>:<attempt>`.
    pub origin: String,
    /// The pipeline job.
    pub parent_job: String,
    /// The pipeline job's run (the step's run is nested under it).
    pub parent_run: String,
    /// The step's name (tagged on its run).
    pub step: String,
}

/// What the pipeline job kind needs from the host it runs in.
pub trait StepHost: Send + Sync + 'static {
    /// The workspace service.
    fn service(&self) -> &Arc<Service>;
    /// Submits a step's job; the existing job when its origin was submitted before.
    fn submit_step(
        &self,
        ws: &Workspace,
        s: StepJob,
    ) -> impl Future<Output = DomainResult<JobRow>> + Send;
    /// Requests cancellation of a job.
    fn cancel_job(&self, ws: &Workspace, id: &str) -> impl Future<Output = ()> + Send;
    /// Appends a line to a job's log.
    fn line(&self, job: &str, text: &str);
    /// A receiver that changes whenever a job ends.
    fn ended(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Held while a step checks the cache and starts (single-flight within this host).
    fn flight(&self) -> &tokio::sync::Mutex<()>;
}

/// Runs a pipeline job to its end.
pub(super) async fn run<H: StepHost>(
    host: &Arc<H>,
    ws: &Workspace,
    job: &JobRow,
    pj: &PipelineJob,
    run_id: &str,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let svc = host.service().clone();
    let checked = checked_of(&pj.spec, &pj.nested).map_err(Failure::Failed)?;
    svc.store.init_steps(job.key, ws.id, &checked.order).await?;
    let mut ended = host.ended();
    let max_parallel = pj
        .settings
        .max_parallel
        .map(|m| m as usize)
        .unwrap_or(usize::MAX);
    let mut canceled_children: BTreeSet<String> = BTreeSet::new();
    let mut timed_out: BTreeSet<String> = BTreeSet::new();
    let mut said_stopping = false;
    host.line(
        &job.id,
        &format!(
            "pipeline {} with {} steps: {}",
            pj.pipeline,
            checked.order.len(),
            checked.order.join(", ")
        ),
    );
    loop {
        if running.lost.load(Ordering::Relaxed) {
            return Err(Failure::Lost(
                "this replica lost the pipeline's lease".into(),
            ));
        }
        let cancel = running.cancel.load(Ordering::Relaxed);
        let rows: BTreeMap<String, StepRow> = svc
            .store
            .steps(job.key)
            .await?
            .into_iter()
            .map(|r| (r.step.clone(), r))
            .collect();
        let mut values: BTreeMap<String, Outputs> = BTreeMap::new();
        for (s, r) in &rows {
            if state::succeeded(&r.state)
                && let Some(o) = &r.outputs
            {
                values.insert(
                    s.clone(),
                    serde_json::from_str(o).map_err(|e| {
                        Failure::Failed(format!("stored outputs of step '{s}': {e}"))
                    })?,
                );
            }
        }
        let failed: Vec<&String> = rows
            .iter()
            .filter(|(_, r)| r.state == state::FAILED)
            .map(|(s, _)| s)
            .collect();
        let stopping = !failed.is_empty() && !pj.settings.continue_on_step_failure;
        if stopping && !said_stopping {
            said_stopping = true;
            host.line(
                &job.id,
                &format!(
                    "step {} failed: stopping the other steps (continue_on_step_failure is false)",
                    failed[0]
                ),
            );
        }
        let mut active = rows
            .values()
            .filter(|r| matches!(r.state.as_str(), state::QUEUED | state::RUNNING))
            .count();
        let mut next_wake: Option<i64> = None;
        for name in &checked.order {
            let Some(row) = rows.get(name) else { continue };
            let step = &pj.spec.jobs[name];
            let mut row = row.clone();
            match row.state.as_str() {
                state::PENDING => {
                    if cancel {
                        end(
                            &mut row,
                            state::CANCELED,
                            Some("the pipeline run was canceled before the step started"),
                        );
                        svc.store.save_step(job.key, &row).await?;
                        continue;
                    }
                    if stopping {
                        end(
                            &mut row,
                            state::SKIPPED,
                            Some(&format!("not run: step {} failed", failed[0])),
                        );
                        svc.store.save_step(job.key, &row).await?;
                        continue;
                    }
                    let deps = &checked.deps[name];
                    if let Some((d, r)) = deps
                        .iter()
                        .filter_map(|d| rows.get(d).map(|r| (d, r)))
                        .find(|(_, r)| state::terminal(&r.state) && !state::succeeded(&r.state))
                    {
                        let why = format!("not run: upstream step {d} is {}", r.state);
                        end(&mut row, state::SKIPPED, Some(&why));
                        host.line(&job.id, &format!("step {name}: skipped ({why})"));
                        svc.store.save_step(job.key, &row).await?;
                        continue;
                    }
                    if !deps
                        .iter()
                        .all(|d| rows.get(d).is_some_and(|r| state::succeeded(&r.state)))
                    {
                        continue;
                    }
                    if active >= max_parallel {
                        continue;
                    }
                    let started =
                        start(host, ws, job, pj, &checked, name, &mut row, &values, run_id).await;
                    if let Err(e) = started {
                        end(&mut row, state::FAILED, Some(&e));
                        host.line(&job.id, &format!("step {name} failed: {e}"));
                    }
                    if matches!(row.state.as_str(), state::QUEUED | state::RUNNING) {
                        active += 1;
                    }
                    svc.store.save_step(job.key, &row).await?;
                }
                state::QUEUED | state::RUNNING => {
                    let Some(child) = row.child_job.clone() else {
                        // waiting: for a retry's backoff, or for an identical step in flight
                        if cancel || stopping {
                            end(
                                &mut row,
                                if cancel {
                                    state::CANCELED
                                } else {
                                    state::SKIPPED
                                },
                                Some(if cancel {
                                    "the pipeline run was canceled"
                                } else {
                                    "not run: another step failed"
                                }),
                            );
                            svc.store.save_step(job.key, &row).await?;
                            continue;
                        }
                        let due = row.retry_at.unwrap_or(0);
                        if due > now_millis() {
                            soonest(&mut next_wake, due);
                            continue;
                        }
                        let res =
                            start(host, ws, job, pj, &checked, name, &mut row, &values, run_id)
                                .await;
                        if let Err(e) = res {
                            end(&mut row, state::FAILED, Some(&e));
                            host.line(&job.id, &format!("step {name} failed: {e}"));
                        }
                        if row.child_job.is_none() && !state::terminal(&row.state) {
                            soonest(&mut next_wake, now_millis() + 200);
                        }
                        svc.store.save_step(job.key, &row).await?;
                        continue;
                    };
                    if (cancel || stopping) && !canceled_children.contains(&child) {
                        canceled_children.insert(child.clone());
                        host.cancel_job(ws, &child).await;
                    }
                    let cj = match svc.store.job(ws.id, &child).await {
                        Ok(j) => j,
                        Err(e) => {
                            end(
                                &mut row,
                                state::FAILED,
                                Some(&format!("its job {child} is gone: {e}")),
                            );
                            svc.store.save_step(job.key, &row).await?;
                            continue;
                        }
                    };
                    if let (Some(t), Some(started)) = (step.timeout_secs, cj.started_at)
                        && step.kind != StepKind::Command
                        && !cj.state.is_terminal()
                        && now_millis() - started > t as i64 * 1000
                        && timed_out.insert(child.clone())
                    {
                        host.line(
                            &job.id,
                            &format!("step {name} ran past its timeout of {t} s: canceling it"),
                        );
                        host.cancel_job(ws, &child).await;
                    }
                    match cj.state {
                        JobState::Completed => {
                            let c = values::Collect {
                                pipeline: &pj.spec.name,
                                step: name,
                                kind: step.kind,
                                declared: &step.outputs,
                                used: checked.used_outputs.get(name),
                            };
                            let outs = if step.kind == StepKind::Pipeline {
                                nested_outputs(&svc, &cj).await
                            } else {
                                values::collect(&svc, ws, &c, &cj).await
                            };
                            match outs {
                                Ok(o) => {
                                    row.outputs =
                                        Some(serde_json::to_string(&o).expect("outputs serialize"));
                                    end(&mut row, state::COMPLETED, None);
                                    if let Some(key) = &row.cache_key {
                                        svc.store
                                            .record_cache(
                                                ws.id,
                                                key,
                                                &crate::store::CacheRow {
                                                    job_uuid: job.id.clone(),
                                                    step: name.clone(),
                                                    run_id: cj.run_id.clone(),
                                                    outputs: row
                                                        .outputs
                                                        .clone()
                                                        .unwrap_or_default(),
                                                    created_at: 0,
                                                },
                                            )
                                            .await?;
                                    }
                                    host.line(
                                        &job.id,
                                        &format!("step {name}: completed ({})", summary(&o)),
                                    );
                                }
                                Err(e) => {
                                    end(&mut row, state::FAILED, Some(&e));
                                    host.line(&job.id, &format!("step {name} failed: {e}"));
                                }
                            }
                            svc.store.save_step(job.key, &row).await?;
                            active = active.saturating_sub(1);
                        }
                        JobState::Failed | JobState::Canceled => {
                            let timed = timed_out.contains(&child);
                            let why = if timed {
                                format!(
                                    "ran past its timeout of {} s",
                                    step.timeout_secs.unwrap_or(0)
                                )
                            } else {
                                cj.error
                                    .clone()
                                    .unwrap_or_else(|| "its job was canceled".into())
                            };
                            let by_us = canceled_children.contains(&child);
                            if cj.state == JobState::Canceled && by_us && !timed {
                                end(
                                    &mut row,
                                    state::CANCELED,
                                    Some(if cancel {
                                        "the pipeline run was canceled"
                                    } else {
                                        "canceled: another step failed"
                                    }),
                                );
                                host.line(&job.id, &format!("step {name}: canceled"));
                            } else if (row.attempt as u32) <= step.retries && !cancel && !stopping {
                                let wait = step.backoff_secs(row.attempt as u32);
                                row.state = state::QUEUED.into();
                                row.child_job = None;
                                row.retry_at = Some(now_millis() + (wait * 1000.0) as i64);
                                row.error = Some(format!("attempt {} failed: {why}", row.attempt));
                                host.line(&job.id, &format!("step {name}: attempt {} of {} failed ({why}); retrying in {wait:.1} s", row.attempt, step.retries + 1));
                                soonest(&mut next_wake, row.retry_at.unwrap_or(0));
                            } else {
                                end(&mut row, state::FAILED, Some(&why));
                                host.line(&job.id, &format!("step {name} failed: {why}"));
                            }
                            svc.store.save_step(job.key, &row).await?;
                            active = active.saturating_sub(1);
                        }
                        JobState::Queued | JobState::Starting => {}
                        _ => {
                            if row.state != state::RUNNING {
                                row.state = state::RUNNING.into();
                                svc.store.save_step(job.key, &row).await?;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let after = svc.store.steps(job.key).await?;
        let steps: Vec<&StepRow> = after.iter().filter(|r| r.step != OUTPUTS_ROW).collect();
        if steps.iter().all(|r| state::terminal(&r.state)) {
            return finish(&svc, job, &checked, &steps, cancel).await;
        }
        // a step moved in this pass: the steps after it may start now
        if steps
            .iter()
            .any(|r| rows.get(&r.step).is_none_or(|b| b.state != r.state))
        {
            continue;
        }
        // wait for a job to end, a retry to be due, or a poll (Running states, cancel)
        let wait = next_wake
            .map(|w| (w - now_millis()).clamp(0, 500) as u64)
            .unwrap_or(500);
        tokio::select! {
            _ = ended.changed() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
        }
    }
}

/// Keeps the earliest of the times the loop must wake at.
fn soonest(next: &mut Option<i64>, at: i64) {
    *next = Some(next.map_or(at, |w| w.min(at)));
}

fn end(row: &mut StepRow, st: &str, why: Option<&str>) {
    row.state = st.to_string();
    row.error = why.map(str::to_string);
    row.ended_at = Some(now_millis());
    row.retry_at = None;
}

fn summary(o: &Outputs) -> String {
    if o.is_empty() {
        return "no outputs".into();
    }
    o.iter()
        .map(|(k, v)| format!("{k} = {}", atrium_pipelines::bind::display(&v.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outputs a nested pipeline job recorded.
async fn nested_outputs(svc: &Service, cj: &JobRow) -> Result<Outputs, String> {
    let rows = svc.store.steps(cj.key).await.map_err(|e| e.to_string())?;
    let row = rows
        .iter()
        .find(|r| r.step == OUTPUTS_ROW)
        .ok_or("the nested pipeline recorded no outputs")?;
    serde_json::from_str(row.outputs.as_deref().unwrap_or("{}")).map_err(|e| e.to_string())
}

/// Starts a step: its condition, a pin, the cache, or a child job.
#[allow(clippy::too_many_arguments)]
async fn start<H: StepHost>(
    host: &Arc<H>,
    ws: &Workspace,
    job: &JobRow,
    pj: &PipelineJob,
    checked: &Checked,
    name: &str,
    row: &mut StepRow,
    values: &BTreeMap<String, Outputs>,
    run_id: &str,
) -> Result<(), String> {
    let svc = host.service();
    let step = &pj.spec.jobs[name];
    if row.started_at.is_none() {
        row.started_at = Some(now_millis());
    }
    if let Some((outs, from)) = pj.pinned.get(name) {
        row.outputs = Some(serde_json::to_string(outs).expect("outputs serialize"));
        row.reused_from = Some(serde_json::to_string(from).expect("reuse serializes"));
        end(row, state::CACHED, None);
        host.line(
            &job.id,
            &format!(
                "step {name}: kept from run {} ({})",
                from.job,
                summary(outs)
            ),
        );
        return Ok(());
    }
    let p = prepare::prepare(svc, ws, job, pj, checked, name, values).await?;
    if let Some(false) = p.when {
        end(
            row,
            state::SKIPPED,
            Some(&format!(
                "its condition is false: {}",
                step.when.as_deref().unwrap_or("")
            )),
        );
        host.line(&job.id, &format!("step {name}: skipped (condition false)"));
        return Ok(());
    }
    if step.kind == StepKind::RegisterModel {
        let outs = prepare::register(svc, ws, job, name, &p).await?;
        row.outputs = Some(serde_json::to_string(&outs).expect("outputs serialize"));
        end(row, state::COMPLETED, None);
        host.line(
            &job.id,
            &format!("step {name}: completed ({})", summary(&outs)),
        );
        return Ok(());
    }
    let _flight = host.flight().lock().await;
    if let Some(key) = &p.key {
        row.cache_key = Some(key.clone());
        if !pj.settings.force_rerun && !pj.force.contains(name) && step.is_deterministic {
            if let Some((outs, from)) = prepare::lookup(svc, ws, key)
                .await
                .map_err(|e| e.to_string())?
            {
                row.outputs = Some(serde_json::to_string(&outs).expect("outputs serialize"));
                row.reused_from = Some(serde_json::to_string(&from).expect("reuse serializes"));
                end(row, state::CACHED, None);
                host.line(
                    &job.id,
                    &format!(
                        "step {name}: cached, reusing step {} of run {} ({})",
                        from.step,
                        from.job,
                        summary(&outs)
                    ),
                );
                return Ok(());
            }
            // an identical step runs now elsewhere: wait for it instead of running twice
            if let Some((other, other_step)) = svc
                .store
                .step_in_flight(ws.id, key, job.key)
                .await
                .map_err(|e| e.to_string())?
            {
                let first = row.reused_from.is_none();
                row.state = state::QUEUED.into();
                row.reused_from = Some(
                    serde_json::to_string(&Reused {
                        job: other.clone(),
                        step: other_step.clone(),
                        run: None,
                        waiting: true,
                    })
                    .expect("reuse serializes"),
                );
                if first {
                    host.line(&job.id, &format!("step {name}: waiting for the identical step {other_step} of run {other}"));
                }
                return Ok(());
            }
        }
    }
    row.reused_from = None;
    let attempt = row.attempt + 1;
    let spec = p.spec.ok_or("the step has no job to run")?;
    let cj = host
        .submit_step(
            ws,
            StepJob {
                spec,
                files: p.files,
                origin: format!("step:{}:{name}:{attempt}", job.id),
                parent_job: job.id.clone(),
                parent_run: run_id.to_string(),
                step: name.to_string(),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    row.attempt = attempt;
    row.child_job = Some(cj.id.clone());
    row.state = state::QUEUED.into();
    row.retry_at = None;
    host.line(
        &job.id,
        &format!("step {name}: attempt {attempt} queued as job {}", cj.id),
    );
    Ok(())
}

/// Ends the pipeline job: its outputs recorded, its state from its steps'.
async fn finish(
    svc: &Service,
    job: &JobRow,
    checked: &Checked,
    steps: &[&StepRow],
    canceled: bool,
) -> Result<(), Failure> {
    if canceled {
        return Err(Failure::Canceled);
    }
    let failed: Vec<&str> = steps
        .iter()
        .filter(|r| r.state == state::FAILED || r.state == state::CANCELED)
        .map(|r| r.step.as_str())
        .collect();
    if !failed.is_empty() {
        let first = steps
            .iter()
            .find(|r| r.state == state::FAILED || r.state == state::CANCELED)
            .expect("one failed");
        return Err(Failure::Failed(format!(
            "step {} failed{}: {}",
            failed.join(", "),
            if failed.len() > 1 {
                " (first shown)"
            } else {
                ""
            },
            first.error.as_deref().unwrap_or("no reason recorded")
        )));
    }
    let mut outs = Outputs::new();
    for (o, (_, s, n)) in &checked.outputs {
        let row = steps.iter().find(|r| r.step == *s);
        if let Some(v) = row
            .and_then(|r| r.outputs.as_deref())
            .and_then(|t| serde_json::from_str::<Outputs>(t).ok())
            .and_then(|m| m.get(n).cloned())
        {
            outs.insert(o.clone(), v);
        }
    }
    svc.store
        .init_steps(job.key, job.workspace_id, &[OUTPUTS_ROW.to_string()])
        .await?;
    svc.store
        .save_step(
            job.key,
            &StepRow {
                step: OUTPUTS_ROW.into(),
                state: state::COMPLETED.into(),
                attempt: 0,
                child_job: None,
                cache_key: None,
                reused_from: None,
                outputs: Some(serde_json::to_string(&outs).expect("outputs serialize")),
                error: None,
                retry_at: None,
                started_at: None,
                ended_at: Some(now_millis()),
            },
        )
        .await?;
    Ok(())
}

/// Parses a pipeline job's stored section.
pub fn parse_job(v: &serde_json::Value) -> DomainResult<PipelineJob> {
    serde_json::from_value(v.clone())
        .map_err(|e| DomainError::Internal(format!("stored pipeline job: {e}")))
}
