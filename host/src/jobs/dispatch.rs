//! Jobs on a compute target: the attempt is handed to the target plugin (`submit` of an
//! `atrium worker run` command line with a fresh job token), watched through `status` while its
//! worker reports to the host, stopped with `cancel`; the handle and the token id are stored so
//! that a restarted host reconciles the attempt with its engine ([`resume`]).
//!
//! Every way an attempt can go wrong ends it with the reason: the plugin trapping or running
//! past its deadline, the engine not answering (for [`ENGINE_GRACE`]), the engine forgetting
//! the job, the engine claiming an end the worker never reported, a worker that never calls
//! or stops heartbeating. Those are [`Failure::Lost`]: the job runs again while its `retries`
//! allow; a failure the worker reports (the job's own) is final.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Running;
use super::executor::{Executor, Failure};
use super::remote::{
    Attempt, CANCEL_GRACE, HEARTBEAT_TIMEOUT, begin_attempt, end_attempt, passed_to_workers,
    register_attempt,
};
use crate::compute::ComputeTarget;
use crate::plugins::target::{EngineState, JobRequest, JobStatus, Resources};
use crate::store::JobRow;
use crate::workspace::Workspace;

/// How often the engine is asked for the attempt's state while its worker runs (the worker's
/// own calls carry its progress; the engine's state matters for its start and its end).
const POLL: Duration = Duration::from_millis(500);
/// How often the engine is asked after the job ended (its worker is exiting).
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// How long the engine may fail to answer before the attempt fails.
pub const ENGINE_GRACE: Duration = Duration::from_secs(30);
/// How long an engine may run the job without its worker calling the host.
const FIRST_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the engine may take to end a job whose worker reported its result.
const END_LAG: Duration = Duration::from_secs(15);
/// How long the engine may take to carry out a stop before the job ends without it.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// What a command job's engine time limit adds to its own timeout (the environment build).
const ENGINE_SLACK_SECS: u64 = 600;

/// Runs an attempt on the job's compute target: submits it, then watches it to its end.
pub(super) async fn run(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    spec: &super::JobSpec,
    run_id: &str,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let target = ex.svc.compute_target(ws, &job.target).await.map_err(|e| {
        Failure::Failed(format!(
            "compute target '{}' cannot be used: {e}",
            job.target
        ))
    })?;
    let what = format!("worker on {}", target.name);
    let (token, attempt) = begin_attempt(ex, ws, job, run_id, running, &what).await?;
    let req = request(ex, ws, job, spec, run_id, &target, &token);
    let result = submit_and_watch(ex, job, req, &target, &attempt).await;
    end_attempt(ex, job, attempt.token_id()).await;
    result
}

async fn submit_and_watch(
    ex: &Arc<Executor>,
    job: &JobRow,
    req: JobRequest,
    target: &ComputeTarget,
    attempt: &Arc<Attempt>,
) -> Result<(), Failure> {
    let plugin = target.plugin.clone();
    let t0 = Instant::now();
    let handle = tokio::task::spawn_blocking(move || plugin.submit(&req))
        .await
        .map_err(|e| Failure::Failed(format!("submit task: {e}")))?
        .map_err(|e| {
            Failure::Lost(format!(
                "compute target '{}' did not take the job: {e}",
                target.name
            ))
        })?;
    ex.svc
        .store
        .set_job_handle(job.key, &handle, attempt.token_id())
        .await?;
    ex.logs.line(
        &job.id,
        &format!(
            "submitted to compute target '{}' ({}) as {handle} in {} ms",
            target.name,
            target.plugin.label,
            t0.elapsed().as_millis()
        ),
    );
    watch(ex, job, target, &handle, attempt, None).await
}

/// Picks up an attempt an engine was running when the host stopped: rebuilds what the host
/// tracks of it from the database and watches it to its end.
pub(super) async fn resume(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let stored = ex.svc.store.remote_attempt(job.key).await?;
    let (Some(handle), Some(token_id)) = (stored.handle, stored.token_id) else {
        return Err(Failure::Failed(
            "interrupted by a host restart before its engine took it".into(),
        ));
    };
    let run_id = job
        .run_id
        .clone()
        .ok_or_else(|| Failure::Failed("the job has no run".into()))?;
    let attempt = register_attempt(ex, job, token_id.clone(), &run_id, running);
    ex.logs.line(
        &job.id,
        &format!(
            "the host restarted; reconciling attempt {} with compute target '{}' ({handle})",
            job.attempts, job.target
        ),
    );
    let result = match ex.svc.compute_target(ws, &job.target).await {
        Ok(target) => watch(ex, job, &target, &handle, &attempt, stored.engine_state).await,
        Err(e) => Err(Failure::Failed(format!(
            "compute target '{}' cannot be used after the restart: {e}",
            job.target
        ))),
    };
    end_attempt(ex, job, &token_id).await;
    result
}

/// The worker's command line and environment for this attempt.
fn request(
    ex: &Executor,
    ws: &Workspace,
    job: &JobRow,
    spec: &super::JobSpec,
    run_id: &str,
    target: &ComputeTarget,
    token: &str,
) -> JobRequest {
    let d = &target.definition;
    let bin = d.worker_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "atrium".into())
    });
    let server = d
        .server_url
        .clone()
        .unwrap_or_else(|| ex.cfg.base_url.clone());
    let dir = d
        .worker_dir
        .clone()
        .unwrap_or_else(|| ex.cfg.data_dir.join("worker").display().to_string());
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| passed_to_workers(k) && k != "PATH")
        .collect();
    let path = d
        .worker_path
        .clone()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    env.push(("PATH".into(), path));
    if d.worker_bin.is_none()
        && let Some(uv) = &ex.cfg.uv
    {
        env.push(("ATRIUM_UV".into(), uv.display().to_string()));
    }
    let threads = d
        .cpus
        .map(|c| (c.ceil() as usize).max(1))
        .unwrap_or(ex.cfg.threads_per_slot);
    env.extend([
        ("ATRIUM_TOKEN".to_string(), token.to_string()),
        ("ATRIUM_WORKSPACE".to_string(), ws.name.clone()),
        ("RAYON_NUM_THREADS".to_string(), threads.to_string()),
        ("ATRIUM_WORK_KEY".to_string(), job.id.clone()),
    ]);
    JobRequest {
        job_id: job.id.clone(),
        attempt: job.attempts.max(1) as u32,
        run_id: run_id.to_string(),
        argv: vec![
            bin,
            "--server".into(),
            server,
            "worker".into(),
            "run".into(),
            "--job".into(),
            job.id.clone(),
            "--dir".into(),
            dir,
        ],
        env,
        resources: Resources {
            cpus: d.cpus.unwrap_or(ex.cfg.threads_per_slot as f32),
            memory_mb: d.memory_mb.unwrap_or(0),
            gpus: 0,
        },
        labels: vec![
            ("workspace".into(), ws.name.clone()),
            ("job".into(), job.id.clone()),
            ("job-name".into(), job.name.clone()),
            ("kind".into(), job.kind.clone()),
        ],
        timeout_secs: spec
            .command
            .as_ref()
            .and_then(|c| c.timeout_secs)
            .map(|t| t + ENGINE_SLACK_SECS),
    }
}

fn describe_end(st: &JobStatus) -> String {
    let mut s = st.raw_state.clone();
    if let Some(c) = st.exit_code {
        s.push_str(&format!(", exit code {c}"));
    }
    if let Some(m) = st.message.as_deref().filter(|m| !m.is_empty()) {
        s.push_str(&format!(": {m}"));
    }
    s
}

/// Asks the engine for the attempt's state; a change of its raw state goes to the job log and
/// the job's `engine_state`.
async fn poll_engine(
    ex: &Executor,
    job: &JobRow,
    target: &ComputeTarget,
    handle: &str,
    last_raw: &mut Option<String>,
) -> Result<JobStatus, String> {
    let plugin = target.plugin.clone();
    let h = handle.to_string();
    let st = tokio::task::spawn_blocking(move || plugin.status(&h))
        .await
        .map_err(|e| format!("status task: {e}"))?
        .map_err(|e| e.to_string())?;
    if last_raw.as_deref() != Some(st.raw_state.as_str()) {
        ex.logs.line(
            &job.id,
            &format!("engine: {} ({})", describe_end(&st), st.state.as_str()),
        );
        let _ = ex.svc.store.set_engine_state(job.key, &st.raw_state).await;
        *last_raw = Some(st.raw_state.clone());
    }
    Ok(st)
}

/// Polls the engine until the attempt ends; cancels it on the engine when asked to, or when
/// its worker goes silent.
async fn watch(
    ex: &Arc<Executor>,
    job: &JobRow,
    target: &ComputeTarget,
    handle: &str,
    attempt: &Arc<Attempt>,
    mut last_raw: Option<String>,
) -> Result<(), Failure> {
    let mut failing_since: Option<Instant> = None;
    let mut running_since: Option<Instant> = None;
    let mut cancel_seen: Option<Instant> = None;
    let mut cancel_sent = false;
    let mut stop_reason: Option<String> = None;
    let mut stopped_at: Option<Instant> = None;
    loop {
        // a cancel: the worker stops on its next heartbeat; the engine is told when there is
        // no worker yet, or when the worker does not stop in time
        if attempt.cancel_requested() && !cancel_sent {
            let at = *cancel_seen.get_or_insert_with(Instant::now);
            if !attempt.contacted() || at.elapsed() > CANCEL_GRACE {
                cancel_on_engine(ex, job, target, handle).await;
                cancel_sent = true;
                stopped_at.get_or_insert_with(Instant::now);
            }
        }
        // everything the attempt logged is stored once its worker reported: the job ends now,
        // and the engine's end of it is watched in the background
        if let Some(outcome) = attempt.take_reported() {
            tokio::spawn(settle(
                ex.clone(),
                job.clone(),
                target.clone(),
                handle.to_string(),
                last_raw,
            ));
            return outcome;
        }
        match poll_engine(ex, job, target, handle, &mut last_raw).await {
            Ok(st) => {
                if failing_since.take().is_some() {
                    ex.logs.line(&job.id, "the engine answers again");
                }
                if st.state.is_terminal() || st.state == EngineState::Unknown {
                    return ended(attempt, &st, stop_reason);
                }
                if st.state == EngineState::Running {
                    running_since.get_or_insert_with(Instant::now);
                }
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(|| {
                    ex.logs.line(
                        &job.id,
                        &format!("compute target '{}' did not answer: {e}", target.name),
                    );
                    Instant::now()
                });
                if since.elapsed() > ENGINE_GRACE {
                    if let Some(outcome) = attempt.take_reported() {
                        return outcome;
                    }
                    cancel_on_engine(ex, job, target, handle).await;
                    return Err(Failure::Lost(format!(
                        "compute target '{}' stopped answering for {} s: {e}",
                        target.name,
                        ENGINE_GRACE.as_secs()
                    )));
                }
            }
        }
        if stop_reason.is_none() {
            if attempt.contacted() && attempt.silent_for() > HEARTBEAT_TIMEOUT {
                stop_reason = Some(format!(
                    "the worker sent no heartbeat for {} s; canceled on the engine",
                    attempt.silent_for().as_secs()
                ));
                cancel_on_engine(ex, job, target, handle).await;
                stopped_at.get_or_insert_with(Instant::now);
            } else if !attempt.contacted()
                && running_since.is_some_and(|t| t.elapsed() > FIRST_CALL_TIMEOUT)
            {
                stop_reason = Some(format!(
                    "the engine ran the job for {} s but its worker never called the host (check server_url and worker_bin of compute target '{}'); canceled on the engine",
                    FIRST_CALL_TIMEOUT.as_secs(),
                    target.name
                ));
                cancel_on_engine(ex, job, target, handle).await;
                stopped_at.get_or_insert_with(Instant::now);
            }
        }
        // a stop the engine does not carry out must not hang the job
        if stopped_at.is_some_and(|t| t.elapsed() > STOP_TIMEOUT) {
            ex.logs.line(
                &job.id,
                &format!(
                    "compute target '{}' still runs {handle} {} s after it was told to stop; the job ends without it",
                    target.name,
                    STOP_TIMEOUT.as_secs()
                ),
            );
            return match (attempt.take_reported(), stop_reason) {
                (Some(outcome), _) => outcome,
                (None, _) if attempt.cancel_requested() => Err(Failure::Canceled),
                (None, why) => Err(Failure::Lost(why.unwrap_or_else(|| "stopped".into()))),
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = attempt.report_arrived.notified() => {}
        }
    }
}

/// After the job ended: waits for the engine to end it too (its worker exits right after
/// reporting), recording the engine's last state; one still running after [`END_LAG`] is
/// stopped.
async fn settle(
    ex: Arc<Executor>,
    job: JobRow,
    target: ComputeTarget,
    handle: String,
    mut last_raw: Option<String>,
) {
    let since = Instant::now();
    while since.elapsed() < END_LAG {
        if let Ok(st) = poll_engine(&ex, &job, &target, &handle, &mut last_raw).await
            && (st.state.is_terminal() || st.state == EngineState::Unknown)
        {
            return;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
    ex.logs.line(
        &job.id,
        &format!(
            "the engine still ran {handle} {} s after its worker reported; stopping it",
            END_LAG.as_secs()
        ),
    );
    cancel_on_engine(&ex, &job, &target, &handle).await;
}

/// How the attempt ended, once the engine says it has: as its worker reported, else as the
/// engine tells (an end the worker never reported is a failure, whatever the engine claims).
fn ended(attempt: &Attempt, st: &JobStatus, stop_reason: Option<String>) -> Result<(), Failure> {
    if let Some(outcome) = attempt.take_reported() {
        return outcome;
    }
    if attempt.cancel_requested() {
        return Err(Failure::Canceled);
    }
    if let Some(why) = stop_reason {
        return Err(Failure::Lost(why));
    }
    Err(Failure::Lost(match st.state {
        EngineState::Unknown => format!(
            "the engine no longer knows the job{}",
            st.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        EngineState::Succeeded => format!(
            "the engine reports the job ended ({}), but its worker never reported a result",
            describe_end(st)
        ),
        EngineState::Canceled => format!(
            "the job was canceled on the engine ({}) before its worker reported a result",
            describe_end(st)
        ),
        _ => format!(
            "the job failed on the engine ({}) before its worker reported a result",
            describe_end(st)
        ),
    }))
}

async fn cancel_on_engine(ex: &Arc<Executor>, job: &JobRow, target: &ComputeTarget, handle: &str) {
    let plugin = target.plugin.clone();
    let h = handle.to_string();
    match tokio::task::spawn_blocking(move || plugin.cancel(&h)).await {
        Ok(Ok(())) => ex.logs.line(
            &job.id,
            &format!("asked compute target '{}' to stop {handle}", target.name),
        ),
        Ok(Err(e)) => ex.logs.line(
            &job.id,
            &format!(
                "compute target '{}' did not stop {handle}: {e}",
                target.name
            ),
        ),
        Err(e) => ex.logs.line(&job.id, &format!("cancel task: {e}")),
    }
}
