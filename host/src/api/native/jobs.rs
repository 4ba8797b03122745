//! Job endpoints: submit (JSON, or multipart with a spec and a code archive), list, get with
//! live progress, cancel, and logs (tail or follow).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::split_action;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{QueryMap, Ws};
use crate::auth::{Principal, Role};
use crate::jobs::{JobSpec, SpecFormat};
use crate::store::{JobRow, JobState};
use crate::workspace::DomainError;

type Reply = Result<Json<Value>, ApiError>;

/// Largest code archive accepted with a command job.
pub const MAX_CODE_BYTES: usize = 256 << 20;

/// A job as JSON (with live progress when it runs on this host).
fn job_json(st: &AppState, j: &JobRow) -> Value {
    let mut v = json!({
        "id": j.id,
        "name": j.name,
        "type": j.kind,
        "state": j.state.as_str(),
        "target": j.target,
        "run_id": j.run_id,
        "attempts": j.attempts,
        "retries": j.retries,
        "error": j.error,
        "cancel_requested": j.cancel_requested,
        "created_at": j.created_at,
        "started_at": j.started_at,
        "ended_at": j.ended_at,
        "spec": serde_json::from_str::<Value>(&j.spec).unwrap_or(Value::Null),
    });
    if let Some(p) = st.executor.progress(&j.id) {
        v["progress"] = p;
    }
    v
}

/// `POST .../jobs`: a JSON job spec, or multipart with parts `spec` (TOML, YAML or JSON) and
/// `code` (a tar archive of the code directory, for command jobs).
pub async fn submit(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let multipart = content_type.starts_with("multipart/form-data");
    // a body's media type names its format (application/json, application/toml, ...)
    let req_format = SpecFormat::from_media_type(&content_type);
    let (spec, code) = if multipart {
        let mut form = Multipart::from_request(req, &st)
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
                        .map_err(|_| DomainError::invalid("the job spec is not UTF-8"))?;
                    spec = Some(match format {
                        Some(f) => JobSpec::parse_as(&text, f)?,
                        None => JobSpec::parse(&text)?,
                    });
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
        (
            spec.ok_or_else(|| DomainError::invalid("missing part 'spec'"))?,
            code,
        )
    } else {
        let body = Bytes::from_request(req, &st)
            .await
            .map_err(|e| DomainError::Malformed(format!("cannot read the body: {e}")))?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| DomainError::Malformed("the job spec is not UTF-8".into()))?;
        (
            match req_format {
                Some(f) => JobSpec::parse_as(text, f)?,
                None => JobSpec::parse(text)?,
            },
            None,
        )
    };
    if asks_for_secrets(&serde_json::to_value(&spec).unwrap_or_default()) {
        // the command sees the values: only an Owner may hand them out
        super::require_role(&st, &p, &ws.name, Role::Owner, "a job that reads secrets").await?;
    }
    let job = st.executor.submit(&ws, spec, code).await?;
    Ok((StatusCode::CREATED, Json(job_json(&st, &job))))
}

/// Whether a job spec names secrets anywhere (a command job, or a sweep's command trials).
fn asks_for_secrets(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "secrets" && v.as_array().is_some_and(|a| !a.is_empty())) || asks_for_secrets(v)
        }),
        Value::Array(a) => a.iter().any(asks_for_secrets),
        _ => false,
    }
}

/// `GET .../jobs?state=Running&limit=N`: newest first.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws, q: QueryMap) -> Reply {
    let state = q
        .get("state")
        .filter(|s| !s.is_empty())
        .map(JobState::parse)
        .transpose()?;
    let limit = q.int("limit")?.unwrap_or(100).clamp(1, 1000);
    let jobs = st.tracking.store.list_jobs(ws.id, state, limit).await?;
    Ok(Json(
        json!({ "jobs": jobs.iter().map(|j| job_json(&st, j)).collect::<Vec<_>>() }),
    ))
}

/// `GET .../jobs/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    let job = st.tracking.store.job(ws.id, &id).await?;
    Ok(Json(job_json(&st, &job)))
}

/// `GET .../jobs/{id}/trials`: the leaderboard of a sweep or AutoML job (live while it runs).
pub async fn trials(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    let job = st.tracking.store.job(ws.id, &id).await?;
    if !matches!(job.kind.as_str(), "sweep" | "automl") {
        return Err(DomainError::invalid(format!(
            "job {id} is a {} job; only sweep and automl jobs have trials",
            job.kind
        ))
        .into());
    }
    let state = match st.executor.sweep_view(&job.id) {
        Some(s) => s,
        None => match st.tracking.store.sweep_state(job.key).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| DomainError::Internal(format!("sweep state: {e}")))?,
            None => crate::sweep::SweepState::default(),
        },
    };
    let mut board = state.leaderboard();
    board["job"] = job_json(&st, &job);
    Ok(Json(board))
}

/// `POST .../jobs/{id}:cancel`.
pub async fn action(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, target)): Path<(String, String)>,
) -> Reply {
    match split_action(&target)? {
        (id, "cancel") => {
            let job = st.executor.cancel(&ws, id).await?;
            Ok(Json(job_json(&st, &job)))
        }
        (_, other) => Err(DomainError::NotFound(format!(
            "unknown job action '{other}'; known: cancel"
        ))
        .into()),
    }
}

/// `GET .../jobs/{id}/logs?tail=N&follow=true`: the log (its last N lines), or with `follow`
/// a stream that carries new output until the job ends.
pub async fn logs(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    q: QueryMap,
) -> Result<Response, ApiError> {
    let job = st.tracking.store.job(ws.id, &id).await?;
    let logs = st.executor.logs().clone();
    let head = match q.int("tail")? {
        Some(n) if n >= 0 => {
            let mut t = logs.tail(&job.id, n as usize)?;
            if !t.is_empty() {
                t.push('\n');
            }
            t.into_bytes()
        }
        _ => logs.read_from(&job.id, 0)?,
    };
    let follow = matches!(q.get("follow"), Some("true" | "1" | ""));
    let text = |b: Body| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(b)
            .map_err(|e| ApiError::from(DomainError::Internal(e.to_string())))
    };
    if !follow || job.state.is_terminal() {
        return text(Body::from(head));
    }
    let offset = std::fs::metadata(logs.path(&job.id))
        .map(|m| m.len())
        .unwrap_or(0);
    let tracking = st.tracking.clone();
    let (ws_id, job_id) = (ws.id, job.id.clone());
    let stream =
        futures_util::stream::unfold((offset, false, Some(head)), move |(offset, done, head)| {
            let (logs, tracking, job_id) = (logs.clone(), tracking.clone(), job_id.clone());
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
                    let ended = match tracking.store.job(ws_id, &job_id).await {
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
