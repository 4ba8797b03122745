//! Job endpoints: submit (JSON, or multipart with a spec and a code archive), list, get with
//! live progress, cancel, and logs (tail or follow).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use axum::response::Response;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws, body_bytes};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc, text};
use crate::api::reply::{Created, PlainText};
use crate::api::routes::Target;
use crate::auth::{Principal, Role};
use crate::jobs::{JobSpec, SpecFormat};
use crate::store::{JobRow, JobState};
use crate::workspace::DomainError;

type Reply<T> = Result<Json<T>, ApiError>;

/// Largest code archive accepted with a command job.
pub const MAX_CODE_BYTES: usize = 256 << 20;

/// A job.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Job")]
pub struct JobJson {
    /// Public id.
    id: String,
    /// Display name.
    name: String,
    /// `train`, `command`, `sweep`, `automl` or `batch-score`.
    #[serde(rename = "type")]
    kind: String,
    /// `Queued`, `Starting`, `Preparing`, `Running`, `Finalizing`, `Completed`, `Failed` or `Canceled`.
    state: &'static str,
    /// Compute target.
    target: String,
    /// The run it produced.
    run_id: Option<String>,
    /// Attempts started.
    attempts: i64,
    /// Retries allowed after an interruption by a host restart.
    retries: i64,
    /// Why it failed.
    error: Option<String>,
    /// Whether cancellation was requested.
    cancel_requested: bool,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Start of the current attempt.
    started_at: Option<i64>,
    /// When it ended.
    ended_at: Option<i64>,
    /// The engine's handle of the current attempt (jobs on a compute target).
    #[serde(skip_serializing_if = "Option::is_none")]
    handle: Option<String>,
    /// The engine's last reported state of it (`PENDING`, `RUNNING`, `COMPLETED`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    engine_state: Option<String>,
    /// The replica that claimed the current attempt (its `--replica` name).
    #[serde(skip_serializing_if = "Option::is_none")]
    replica: Option<String>,
    /// The spec as submitted (JSON).
    spec: Map<String, Value>,
    /// Live progress while it runs on this host (epoch, batch, fraction, elapsed and
    /// estimated remaining seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Map<String, Value>>,
}

/// A job as JSON (with live progress when it runs on this host).
fn job_json(st: &AppState, j: JobRow) -> Result<JobJson, DomainError> {
    let spec = serde_json::from_str(&j.spec)
        .map_err(|e| DomainError::Internal(format!("stored spec of job {}: {e}", j.id)))?;
    let progress = match st.executor.progress(&j.id) {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    };
    Ok(JobJson {
        state: j.state.as_str(),
        id: j.id,
        name: j.name,
        kind: j.kind,
        target: j.target,
        run_id: j.run_id,
        attempts: j.attempts,
        retries: j.retries,
        error: j.error,
        cancel_requested: j.cancel_requested,
        created_at: j.created_at,
        started_at: j.started_at,
        ended_at: j.ended_at,
        handle: j.handle,
        engine_state: j.engine_state,
        replica: j.owner,
        spec,
        progress,
    })
}

/// A job submission: a JSON, TOML or YAML spec, or multipart with parts `spec` (TOML, YAML or
/// JSON) and `code` (a tar archive of the code directory, for command jobs).
pub struct Submission {
    spec: JobSpec,
    code: Option<Vec<u8>>,
}

/// Parses a spec whose text holds no NUL character: in `format` when the request names one
/// (a media type, a part's file name), else in the format its text shows (one error either way).
fn parse_spec(text: &str, format: Option<SpecFormat>) -> Result<JobSpec, DomainError> {
    let spec = match format {
        Some(f) => JobSpec::parse_as(text, f)?,
        None => JobSpec::parse(text)?,
    };
    // an escape in any of the three languages: the spec as JSON shows it
    let json = serde_json::to_string(&spec).map_err(|e| DomainError::Internal(e.to_string()))?;
    if json.contains("\\u0000") {
        return Err(DomainError::invalid(
            "the job spec contains a NUL character (\\u0000), which no name or value may hold",
        ));
    }
    Ok(spec)
}

impl<S: Send + Sync> FromRequest<S> for Submission {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (text, format, code) = spec_and_code(req, state, "job").await?;
        Ok(Self {
            spec: parse_spec(&text, format)?,
            code,
        })
    }
}

/// A spec's text, the format the request names for it (a media type, a part's file name), and
/// a code archive: from a text body, or multipart with parts `spec` and optionally `code`.
pub(super) async fn spec_and_code<S: Send + Sync>(
    req: Request,
    state: &S,
    what: &str,
) -> Result<(String, Option<SpecFormat>, Option<Vec<u8>>), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type.starts_with("multipart/form-data") {
        let body = body_bytes(req, state).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| DomainError::Malformed(format!("the {what} spec is not UTF-8")))?;
        // the body's media type names its format (application/json, application/toml, ...)
        return Ok((
            text.to_string(),
            SpecFormat::from_media_type(&content_type),
            None,
        ));
    }
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?;
    let (mut spec, mut code) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?
    {
        let part = field.name().unwrap_or("").to_string();
        // the part's file name or media type names the format; else it is guessed
        let format = field
            .file_name()
            .and_then(SpecFormat::from_name)
            .or_else(|| field.content_type().and_then(SpecFormat::from_media_type));
        let data = field
            .bytes()
            .await
            .map_err(|e| DomainError::invalid(format!("cannot read part '{part}': {e}")))?;
        match part.as_str() {
            "spec" => {
                let text = String::from_utf8(data.to_vec())
                    .map_err(|_| DomainError::invalid(format!("the {what} spec is not UTF-8")))?;
                spec = Some((text, format));
            }
            "code" => code = Some(data.to_vec()),
            other => {
                return Err(DomainError::invalid(format!(
                    "unexpected part '{other}': send 'spec' and optionally 'code'"
                ))
                .into());
            }
        }
    }
    let (text, format) = spec.ok_or_else(|| DomainError::invalid("missing part 'spec'"))?;
    Ok((text, format, code))
}

impl DocInput for Submission {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: true,
            content: vec![
                ("application/json", g.request::<JobSpec>()),
                ("text/plain", text()),
                (
                    "multipart/form-data",
                    json!({
                        "type": "object",
                        "properties": {
                            "spec": { "type": "string", "description": "The spec: TOML, YAML or JSON." },
                            "code": {
                                "type": "string",
                                "format": "binary",
                                "description": "A tar archive of the code directory (command jobs).",
                            },
                        },
                        "required": ["spec"],
                        "additionalProperties": false,
                    }),
                ),
            ],
        });
    }
}

/// `POST .../jobs`: a JSON job spec (or TOML / YAML as text), or multipart with a code archive.
pub async fn submit(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    Submission { spec, code }: Submission,
) -> Result<Created<JobJson>, ApiError> {
    if asks_for_secrets(&serde_json::to_value(&spec).unwrap_or_default()) {
        // the command sees the values: only an Owner may hand them out
        super::require_role(&st, &p, &ws.name, Role::Owner, "a job that reads secrets").await?;
    }
    let job = st.executor.submit(&ws, spec, code).await?;
    Ok(Created(job_json(&st, job)?))
}

/// Whether a job spec names secrets anywhere (a command job, or a sweep's command trials).
pub(super) fn asks_for_secrets(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "secrets" && v.as_array().is_some_and(|a| !a.is_empty())) || asks_for_secrets(v)
        }),
        Value::Array(a) => a.iter().any(asks_for_secrets),
        _ => false,
    }
}

/// The query of `GET .../jobs`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs in this state (`Queued`, `Starting`, `Preparing`, `Running`, `Finalizing`, `Completed`,
    /// `Failed`, `Canceled`; any case).
    state: Option<String>,
    /// At most this many (default 100, 1 to 1000).
    limit: Option<i64>,
}

/// Jobs, newest first.
#[derive(Serialize, JsonSchema)]
pub struct JobList {
    /// Newest first.
    jobs: Vec<JobJson>,
}

/// `GET .../jobs?state=Running&limit=N`: newest first.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<ListQuery>,
) -> Reply<JobList> {
    let state = q.state.as_deref().map(JobState::parse).transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let jobs = st.svc.store.list_jobs(ws.id, state, limit).await?;
    Ok(Json(JobList {
        jobs: jobs
            .into_iter()
            .map(|j| job_json(&st, j))
            .collect::<Result<_, _>>()?,
    }))
}

/// `GET .../jobs/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<JobJson> {
    let job = st.svc.store.job(ws.id, &id).await?;
    Ok(Json(job_json(&st, job)?))
}

/// The leaderboard of a sweep or AutoML job.
#[derive(Serialize, JsonSchema)]
pub struct Trials {
    /// The job.
    job: JobJson,
    /// `primary_metric`, `goal`, `best`, `counts` by trial state, `exhausted`, `note` and
    /// `trials` (best first).
    #[serde(flatten)]
    board: Map<String, Value>,
}

/// `GET .../jobs/{id}/trials`: the leaderboard of a sweep or AutoML job (live while it runs).
pub async fn trials(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<Trials> {
    let job = st.svc.store.job(ws.id, &id).await?;
    if !matches!(job.kind.as_str(), "sweep" | "automl") {
        return Err(DomainError::invalid(format!(
            "job {id} is a {} job; only sweep and automl jobs have trials",
            job.kind
        ))
        .into());
    }
    let state = st.executor.sweep_state(&job).await?;
    let mut board = match state.leaderboard() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    board.remove("job");
    Ok(Json(Trials {
        job: job_json(&st, job)?,
        board,
    }))
}

/// `POST .../jobs/{id}:cancel`.
pub async fn cancel(State(st): State<AppState>, Ws(ws): Ws, Target(id): Target) -> Reply<JobJson> {
    let job = st.executor.cancel(&ws, &id).await?;
    Ok(Json(job_json(&st, job)?))
}

/// The query of `GET .../jobs/{id}/logs`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only the last N lines.
    tail: Option<i64>,
    /// Keep the response open and stream new output until the job ends.
    #[serde(default)]
    follow: bool,
}

/// `GET .../jobs/{id}/logs?tail=N&follow=true`: the log (its last N lines), or with `follow`
/// a stream that carries new output until the job ends.
pub async fn logs(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    Params(q): Params<LogsQuery>,
) -> Result<PlainText, ApiError> {
    let job = st.svc.store.job(ws.id, &id).await?;
    let logs = st.executor.logs().clone();
    let head = match q.tail {
        Some(n) if n >= 0 => {
            let mut t = logs.tail(&job.id, n as usize)?;
            if !t.is_empty() {
                t.push('\n');
            }
            t.into_bytes()
        }
        _ => logs.read_from(&job.id, 0)?,
    };
    // a job another replica ran (or runs): its log is attached to its run when it ends
    let elsewhere = job
        .owner
        .as_deref()
        .is_some_and(|o| o != st.svc.store.replica());
    let head = if head.is_empty() && elsewhere {
        match (&job.run_id, job.state.is_terminal()) {
            (Some(run), true) => match st.svc.open_artifact(&ws, run.as_str(), "logs/job.log").await {
                Ok((_, mut r)) => tokio::task::spawn_blocking(move || {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut r, &mut b).map(|_| b)
                })
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))?
                .map_err(|e| DomainError::Internal(e.to_string()))?,
                Err(_) => head,
            },
            _ => format!(
                "job {} runs on replica {}: its live log is served there (and attached to its run as logs/job.log when it ends)\n",
                job.id,
                job.owner.as_deref().unwrap_or("?")
            )
            .into_bytes(),
        }
    } else {
        head
    };
    let follow = q.follow && !elsewhere;
    let text = |b: Body| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(b)
            .map(PlainText)
            .map_err(|e| ApiError::from(DomainError::Internal(e.to_string())))
    };
    if !follow || job.state.is_terminal() {
        return text(Body::from(head));
    }
    let offset = std::fs::metadata(logs.path(&job.id))
        .map(|m| m.len())
        .unwrap_or(0);
    let svc = st.svc.clone();
    let (ws_id, job_id) = (ws.id, job.id.clone());
    let stream =
        futures_util::stream::unfold((offset, false, Some(head)), move |(offset, done, head)| {
            let (logs, svc, job_id) = (logs.clone(), svc.clone(), job_id.clone());
            async move {
                if let Some(h) = head {
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(h)),
                        (offset, false, None),
                    ));
                }
                if done {
                    return None;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let ended = match svc.store.job(ws_id, &job_id).await {
                        Ok(j) => j.state.is_terminal(),
                        Err(_) => true,
                    };
                    let chunk = logs.read_from(&job_id, offset).unwrap_or_default();
                    if !chunk.is_empty() || ended {
                        let next = offset + chunk.len() as u64;
                        return Some((Ok(Bytes::from(chunk)), (next, ended, None)));
                    }
                }
            }
        });
    text(Body::from_stream(stream))
}

/// The id of the caller's token (a worker's job token).
fn token_of(p: &Principal) -> Option<&str> {
    p.identity().map(|i| i.token_id.as_str())
}

/// `GET .../jobs/{id}/work`: what the worker of the job's running attempt needs (its job
/// token only).
pub async fn work(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    Path((_, id)): Path<(String, String)>,
) -> Reply<crate::jobs::remote::Work> {
    Ok(Json(st.executor.worker_work(&ws, &id, token_of(&p)).await?))
}

/// `POST .../jobs/{id}/events`: a worker's heartbeat, with a batch (stored once per batch id),
/// a state and progress; answers whether cancel was requested.
pub async fn events(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    Path((_, id)): Path<(String, String)>,
    JsonBody(ev): JsonBody<crate::jobs::remote::Events>,
) -> Reply<crate::jobs::remote::EventsReply> {
    Ok(Json(
        st.executor
            .worker_events(&ws, &id, token_of(&p), ev)
            .await?,
    ))
}

/// The answer to a worker's result.
#[derive(Serialize, JsonSchema)]
pub struct ReportReply {
    /// Always true: the host ends the job when the worker exits.
    accepted: bool,
}

/// `POST .../jobs/{id}/result`: how the worker's attempt ended.
pub async fn result(
    State(st): State<AppState>,
    Ws(_ws): Ws,
    Extension(p): Extension<Principal>,
    Path((_, id)): Path<(String, String)>,
    JsonBody(r): JsonBody<crate::jobs::remote::Report>,
) -> Reply<ReportReply> {
    st.executor.worker_result(&id, token_of(&p), r).await?;
    Ok(Json(ReportReply { accepted: true }))
}
