//! Command jobs: materialize the code snapshot, run the command in its own process group with
//! only the declared environment plus the MLflow variables that point it at its run, stream
//! stdout/stderr into the job log, and stop it by signal on cancel or timeout.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Running;
use super::executor::{Executor, Failure};
use super::logs::JobLogs;
use super::spec::CommandSpec;
use crate::store::JobRow;
use crate::workspace::{DomainError, Workspace};

/// How long a command gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Writes the snapshot files into `dir`.
pub(super) async fn materialize(
    ex: &Executor,
    ws: &Workspace,
    run_id: &str,
    spec: &CommandSpec,
    dir: &Path,
) -> Result<(), DomainError> {
    let t = &ex.svc;
    let run = t.store.active_run(ws.id, run_id).await?;
    let ds = t.store.artifact_datastore(ws.id, run.experiment_id).await?;
    tokio::fs::create_dir_all(dir).await?;
    for f in &spec.snapshot {
        let bytes = t.read_bytes(&ds, &f.digest).await?;
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, bytes).await?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).await?;
        }
    }
    Ok(())
}

/// Kills the process groups of command jobs that a host which died without stopping them left
/// running, and removes their working directories. Returns how many groups were killed.
///
/// Commands are found by the `ATRIUM_WORK_KEY` in their environment (so a reused pid is never
/// hit), by scanning the processes rather than trusting the pid file alone: a host killed
/// between starting a command and writing its pid file leaves no file behind.
pub(super) fn reap_orphans(logs: &JobLogs) -> usize {
    let Ok(entries) = std::fs::read_dir(logs.dir()) else {
        return 0;
    };
    let mut left: Vec<std::path::PathBuf> = Vec::new();
    let mut markers: Vec<Vec<u8>> = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        if dir.is_dir() {
            let key = e.file_name().to_string_lossy().to_string();
            markers.push(format!("ATRIUM_WORK_KEY={key}").into_bytes());
            left.push(dir);
        }
    }
    let killed = kill_marked(&markers);
    for dir in left {
        let _ = std::fs::remove_dir_all(&dir);
    }
    killed
}

/// Kills (SIGKILL) the process groups of every process whose environment holds one of
/// `markers` (`ATRIUM_WORK_KEY=<key>`), except this process's own group; returns how many.
fn kill_marked(markers: &[Vec<u8>]) -> usize {
    if markers.is_empty() {
        return 0;
    }
    // SAFETY: getpgrp(2) only reads this process's group id.
    let own = unsafe { libc::getpgrp() };
    let mut groups = std::collections::BTreeSet::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if env
            .split(|b| *b == 0)
            .any(|kv| markers.iter().any(|m| kv == &m[..]))
        {
            // SAFETY: getpgid(2) only reads another process's group id.
            let pgid = unsafe { libc::getpgid(pid) };
            if pgid > 0 && pgid != own {
                groups.insert(pgid);
            }
        }
    }
    for g in &groups {
        signal_group(*g as u32, libc::SIGKILL);
    }
    groups.len()
}

/// Kills whatever still runs for work key `key` (a worker's command after the worker died).
pub(super) fn kill_work(key: &str) -> usize {
    kill_marked(&[format!("ATRIUM_WORK_KEY={key}").into_bytes()])
}

/// Sends `signal` to the whole process group led by `pid`.
fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

fn describe(status: ExitStatus) -> Result<(), Failure> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Failure::Failed(format!(
            "the command exited with status {code}"
        ))),
        (None, Some(sig)) => Err(Failure::Failed(format!(
            "the command was killed by signal {sig}"
        ))),
        (None, None) => Err(Failure::Failed("the command ended abnormally".into())),
    }
}

/// Runs a command job's attempt.
pub(super) async fn run(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    spec: &CommandSpec,
    run_id: &str,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let env = prepare_env(ex, &job.id, spec, &running.cancel).await?;
    if env.is_some() {
        ex.set_state(job, crate::store::JobState::Running).await?;
    }
    let work = ex.logs.work_dir(&job.id);
    let _ = tokio::fs::remove_dir_all(&work).await;
    let code = work.join("code");
    let result = async {
        materialize(ex, ws, run_id, spec, &code).await?;
        let run = ex.svc.store.active_run(ws.id, run_id).await?;
        execute(
            ex,
            ws,
            Work {
                key: &job.id,
                job: &job.id,
                run_id,
                experiment_id: run.experiment_id,
                dir: &code,
                cancel: &running.cancel,
            },
            spec,
            env.as_ref(),
        )
        .await?;
        for (path, bytes) in collect_outputs(&code)? {
            let stream =
                futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
            ex.svc
                .upload_artifact(ws, run_id, &path, stream)
                .await
                .map_err(|e| Failure::Failed(format!("cannot store the output {path}: {e}")))?;
        }
        Ok(())
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    result
}

/// Finds or builds the command's environment (none when the spec has none), uv's output in
/// the log of `key`. A failure names the environment and quotes uv.
pub(super) async fn prepare_env(
    ex: &Executor,
    key: &str,
    spec: &CommandSpec,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Option<atrium_environments::Ready>, Failure> {
    let logs = ex.logs.clone();
    let k = key.to_string();
    let sink: Sink = Arc::new(move |b: &[u8]| logs.append(&k, b));
    prepare_env_in(&ex.envs, spec, &sink, cancel).await
}

/// Finds or builds the command's environment in `cache`, its progress and uv's output written
/// to `sink`.
pub(crate) async fn prepare_env_in(
    cache: &Result<atrium_environments::Cache, String>,
    spec: &CommandSpec,
    sink: &Sink,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Option<atrium_environments::Ready>, Failure> {
    let Some(env) = &spec.resolved_environment else {
        return Ok(None);
    };
    let label = env.label();
    let failed =
        |e: &dyn std::fmt::Display| Failure::Failed(format!("preparing the {label} failed: {e}"));
    let cache = cache.as_ref().map_err(|e| failed(e))?;
    say(
        sink,
        &format!("preparing the {label} ({})", &env.hash[..12]),
    );
    let s = sink.clone();
    let log = move |l: &str| say(&s, l);
    match cache.ensure(&env.definition, &log, cancel).await {
        Ok(r) => {
            say(
                sink,
                &if r.hit {
                    format!("environment ready (cached, {} ms)", r.elapsed.as_millis())
                } else {
                    format!("environment built in {:.1} s", r.elapsed.as_secs_f64())
                },
            );
            Ok(Some(r))
        }
        Err(atrium_environments::EnvError::Canceled) => Err(Failure::Canceled),
        Err(e) => Err(failed(&e)),
    }
}

/// Where a command's output (and the lines about it) go.
pub(crate) type Sink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Writes one line to a sink.
pub(crate) fn say(sink: &Sink, line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    sink(&b);
}

/// Where and for whom a command runs.
pub(super) struct Work<'a> {
    /// Log and working-directory key (the job id, or a sweep trial's own key).
    pub key: &'a str,
    /// The job it belongs to.
    pub job: &'a str,
    /// The run it logs into.
    pub run_id: &'a str,
    /// That run's experiment.
    pub experiment_id: i64,
    /// The materialized code.
    pub dir: &'a Path,
    /// Set to stop it (SIGTERM, then SIGKILL after the grace period).
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

/// Where a command whose working directory is `code` writes its outputs (`$ATRIUM_OUTPUTS`).
pub(crate) fn outputs_dir(code: &Path) -> std::path::PathBuf {
    code.parent().unwrap_or(code).join("outputs")
}

/// The files a command left in its outputs directory: (path under `outputs/`, bytes), at most
/// [`MAX_OUTPUT_FILES`] of them.
pub(crate) fn collect_outputs(code: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let root = outputs_dir(code);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(&root)
                    .map(|p| p.to_string_lossy().to_string())
                    .unwrap_or_default();
                if out.len() >= MAX_OUTPUT_FILES {
                    return Err(Failure::Failed(format!(
                        "the command left more than {MAX_OUTPUT_FILES} files in $ATRIUM_OUTPUTS"
                    )));
                }
                let bytes = std::fs::read(&path)
                    .map_err(|e| Failure::Failed(format!("cannot read the output {rel}: {e}")))?;
                out.push((format!("outputs/{rel}"), bytes));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The most files a command may leave in `$ATRIUM_OUTPUTS`.
pub(crate) const MAX_OUTPUT_FILES: usize = 1000;

/// How long a job token outlives the command's timeout (or lives without one).
const TOKEN_SLACK_SECS: u64 = 600;
const TOKEN_DEFAULT_SECS: u64 = 7 * 24 * 3600;

/// Runs a command to its end, streaming its output into the log of `work.key`. The command
/// gets an API token with Contributor on the job's workspace only (for the mlflow client),
/// revoked when it ends.
pub(super) async fn execute(
    ex: &Arc<Executor>,
    ws: &Workspace,
    work: Work<'_>,
    spec: &CommandSpec,
    env: Option<&atrium_environments::Ready>,
) -> Result<(), Failure> {
    let access = crate::auth::Access::new(ex.svc.clone());
    let lifetime = spec
        .timeout_secs
        .map(|s| s + TOKEN_SLACK_SECS)
        .unwrap_or(TOKEN_DEFAULT_SECS);
    let token = access
        .create_token(
            crate::auth::JOBS_USER,
            &format!("job {}", work.job),
            Some(crate::workspace::now_millis() + lifetime as i64 * 1000),
            Some((&ws.name, crate::auth::Role::Contributor)),
        )
        .await?;
    let result = spawn_and_wait(ex, ws, work, spec, env, &token.token).await;
    if let Err(e) = access.revoke(&token.info.id).await {
        tracing::warn!(error = %e, token = token.info.id.as_str(), "cannot revoke a job token");
    }
    result
}

async fn spawn_and_wait(
    ex: &Arc<Executor>,
    ws: &Workspace,
    work: Work<'_>,
    spec: &CommandSpec,
    env: Option<&atrium_environments::Ready>,
    token: &str,
) -> Result<(), Failure> {
    // resolved as the command starts, so it runs with the values current then
    let secrets = if spec.secrets.is_empty() {
        Default::default()
    } else {
        ex.svc
            .resolve_secrets(ws, &spec.secrets, &format!("job:{}", work.job))
            .await
            .map_err(|e| Failure::Failed(format!("cannot pass the job's secrets: {e}")))?
    };
    let mut vars: Vec<(String, String)> = secrets
        .iter()
        .map(|(n, v)| (n.clone(), v.expose().to_string()))
        .collect();
    drop(secrets);
    vars.extend(tracking_vars(
        &format!("{}/ws/{}", ex.cfg.base_url.trim_end_matches('/'), ws.name),
        token,
        work.run_id,
        work.experiment_id,
        work.job,
        work.key,
    ));
    let logs = ex.logs.clone();
    let k = work.key.to_string();
    let sink: Sink = Arc::new(move |b: &[u8]| logs.append(&k, b));
    launch(
        Launch {
            spec,
            dir: work.dir,
            vars,
            python: env,
            cancel: work.cancel,
        },
        sink,
    )
    .await
}

/// The variables that point a command at its run (the mlflow client's and Atrium's own).
pub(crate) fn tracking_vars(
    tracking_uri: &str,
    token: &str,
    run_id: &str,
    experiment_id: i64,
    job: &str,
    key: &str,
) -> Vec<(String, String)> {
    [
        ("MLFLOW_TRACKING_URI", tracking_uri.to_string()),
        ("MLFLOW_TRACKING_TOKEN", token.to_string()),
        ("ATRIUM_TOKEN", token.to_string()),
        ("MLFLOW_RUN_ID", run_id.to_string()),
        ("MLFLOW_EXPERIMENT_ID", experiment_id.to_string()),
        ("ATRIUM_JOB_ID", job.to_string()),
        ("ATRIUM_WORK_KEY", key.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A command to start.
pub(crate) struct Launch<'a> {
    /// The command line, its declared variables and its timeout.
    pub spec: &'a CommandSpec,
    /// Its working directory (the materialized code).
    pub dir: &'a Path,
    /// Variables set after the spec's own: secrets, then the tracking variables.
    pub vars: Vec<(String, String)>,
    /// The environment it runs in.
    pub python: Option<&'a atrium_environments::Ready>,
    /// Set to stop it (SIGTERM, then SIGKILL after the grace period).
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

/// Runs a command in its own process group to its end (or its timeout, or cancel), its output
/// and the lines about it written to `sink`; its pid is left in `pid` beside `dir`.
pub(crate) async fn launch(l: Launch<'_>, sink: Sink) -> Result<(), Failure> {
    let Launch {
        spec,
        dir,
        vars,
        python: env,
        cancel,
    } = l;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .current_dir(dir)
        .env_clear();
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    if let Some(env) = env {
        // the environment's python, pip-installed scripts and `python` first on PATH
        let mut path = std::ffi::OsString::from(env.bin.as_os_str());
        if let Some(host) = std::env::var_os("PATH") {
            path.push(":");
            path.push(host);
        }
        cmd.env("PATH", path).env("VIRTUAL_ENV", &env.dir);
    }
    cmd.env("PYTHONUNBUFFERED", "1");
    // what the command leaves here becomes its run's `outputs/` artifacts (pipeline outputs)
    let outputs = std::path::absolute(outputs_dir(dir)).unwrap_or_else(|_| outputs_dir(dir));
    let _ = std::fs::remove_dir_all(&outputs);
    std::fs::create_dir_all(&outputs)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", outputs.display())))?;
    cmd.env("ATRIUM_OUTPUTS", &outputs);
    cmd.envs(&spec.env);
    cmd.envs(vars);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    say(&sink, &format!("$ {}", spec.command));
    let spawned = cmd.spawn();
    let mut child =
        spawned.map_err(|e| Failure::Failed(format!("cannot start the command: {e}")))?;
    let pid = child.id().unwrap_or(0);
    // remembered so that a host that crashes can kill the group when it starts again
    let _ = std::fs::write(dir.parent().unwrap_or(dir).join("pid"), pid.to_string());
    let mut pumps = Vec::new();
    let outs: [Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ];
    for mut out in outs.into_iter().flatten() {
        let sink = sink.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 16 << 10];
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink(&buf[..n]);
            }
        }));
    }
    let deadline = spec
        .timeout_secs
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut stop: Option<Failure> = None;
    let mut termed: Option<tokio::time::Instant> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if let Some(at) = termed {
            if at.elapsed() >= GRACE {
                say(&sink, "the command ignored SIGTERM; killing it (SIGKILL)");
                signal_group(pid, libc::SIGKILL);
                termed = None;
            }
            continue;
        }
        if stop.is_some() {
            continue;
        }
        let timed_out = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if cancel.load(Ordering::Relaxed) || timed_out {
            stop = Some(if timed_out {
                Failure::Failed(format!(
                    "the command ran past its timeout of {} s",
                    spec.timeout_secs.unwrap_or(0)
                ))
            } else {
                Failure::Canceled
            });
            say(&sink, "stopping the command (SIGTERM)");
            signal_group(pid, libc::SIGTERM);
            termed = Some(tokio::time::Instant::now());
        }
    };
    // the command ended: whatever it left behind in its group goes too
    signal_group(pid, libc::SIGKILL);
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    let status =
        status.map_err(|e| Failure::Failed(format!("cannot wait for the command: {e}")))?;
    match stop {
        Some(f) => Err(f),
        None => describe(status),
    }
}
