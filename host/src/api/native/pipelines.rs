//! Pipeline and schedule endpoints: publish versions, list and show them, submit and plan runs,
//! show, rerun and cancel runs; create, list, show, enable, disable and delete schedules.

use axum::extract::{FromRequest, Path, Request, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc, text};
use crate::api::reply::{Created, Empty};
use crate::auth::{Principal, Role};
use crate::pipelines::schedules::{self, ScheduleRequest, ScheduleView};
use crate::pipelines::{self, PipelineView, PlanStep, RerunRequest, RunRequest, RunView};
use crate::workspace::{DomainError, now_millis};

type Reply<T> = Result<Json<T>, ApiError>;

/// The most bytes a pipeline's code archive may have.
pub const MAX_CODE_BYTES: usize = 256 << 20;

/// A publication: a spec (JSON, TOML or YAML), or multipart with `spec` and `code` (a tar
/// archive of the directory its command steps run in).
pub struct Publication {
    spec: atrium_pipelines::PipelineSpec,
    code: Option<Vec<u8>>,
}

impl<S: Send + Sync> FromRequest<S> for Publication {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (text, format, code) = super::jobs::spec_and_code(req, state, "pipeline").await?;
        Ok(Self {
            spec: pipelines::parse(&text, format)?,
            code,
        })
    }
}

impl DocInput for Publication {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: true,
            content: vec![
                (
                    "application/json",
                    json!({"type": "object", "description": "A pipeline spec: name, inputs, outputs, settings, jobs."}),
                ),
                ("text/plain", text()),
                (
                    "multipart/form-data",
                    json!({
                        "type": "object",
                        "properties": {
                            "spec": { "type": "string", "description": "The spec: TOML, YAML or JSON." },
                            "code": { "type": "string", "format": "binary", "description": "A tar archive of the directory its command steps run in." },
                        },
                        "required": ["spec"],
                        "additionalProperties": false,
                    }),
                ),
            ],
        });
    }
}

/// Runs of a pipeline whose steps read secrets are started by an Owner only.
async fn secrets_need_owner(
    st: &AppState,
    p: &Principal,
    ws: &str,
    pipeline: &PipelineView,
) -> Result<(), ApiError> {
    if super::jobs::asks_for_secrets(&pipeline.spec) {
        super::require_role(
            st,
            p,
            ws,
            Role::Owner,
            "a pipeline whose steps read secrets",
        )
        .await?;
    }
    Ok(())
}

/// `POST .../pipelines`: publish a version (201; the existing version when the content is the same).
pub async fn publish(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    Publication { spec, code }: Publication,
) -> Result<Created<PipelineView>, ApiError> {
    let v = pipelines::publish(&st.svc, &ws, spec, code, Some(p.actor())).await?;
    Ok(Created(v))
}

/// Pipelines.
#[derive(Serialize, JsonSchema)]
pub struct PipelineList {
    /// The latest version of each pipeline, or every version of one.
    pipelines: Vec<PipelineView>,
}

/// `GET .../pipelines`: the latest version of each.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Reply<PipelineList> {
    Ok(Json(PipelineList {
        pipelines: pipelines::list(&st.svc, &ws, None).await?,
    }))
}

/// `GET .../pipelines/{name}`: every version, newest first.
pub async fn versions(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<PipelineList> {
    Ok(Json(PipelineList {
        pipelines: pipelines::list(&st.svc, &ws, Some(&name)).await?,
    }))
}

/// `GET .../pipelines/{name}/versions/{version}` (a number or `latest`).
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply<PipelineView> {
    let r = if version == "latest" {
        format!("{name}@latest")
    } else {
        format!("{name}:{version}")
    };
    Ok(Json(pipelines::get(&st.svc, &ws, &r).await?))
}

/// `POST .../pipelines/{ref}/runs`: submit a run (`name`, `name:version`, `name@latest`).
pub async fn submit(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    Path((_, reference)): Path<(String, String)>,
    JsonBody(req): JsonBody<RunRequest>,
) -> Result<Created<RunView>, ApiError> {
    let v = pipelines::get(&st.svc, &ws, &reference).await?;
    secrets_need_owner(&st, &p, &ws.name, &v).await?;
    let job = pipelines::submit(&st.executor, &ws, &reference, &req).await?;
    Ok(Created(pipelines::run_view(&st.svc, &ws, &job.id).await?))
}

/// The plan of a run.
#[derive(Serialize, JsonSchema)]
pub struct Plan {
    /// Each step: its cache key and whether it would be served by the cache.
    steps: Vec<PlanStep>,
}

/// `POST .../pipelines/{ref}/plan`: what a run with these inputs would do, nothing started.
pub async fn plan(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, reference)): Path<(String, String)>,
    JsonBody(req): JsonBody<RunRequest>,
) -> Reply<Plan> {
    Ok(Json(Plan {
        steps: pipelines::plan(&st.svc, &ws, &reference, &req).await?,
    }))
}

/// The query of `GET .../pipeline-runs`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Only runs of this pipeline.
    pipeline: Option<String>,
    /// At most this many (default 50, 1 to 500).
    limit: Option<i64>,
}

/// Pipeline runs.
#[derive(Serialize, JsonSchema)]
pub struct RunList {
    /// Newest first.
    runs: Vec<RunView>,
}

/// `GET .../pipeline-runs`: newest first.
pub async fn runs(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<RunsQuery>,
) -> Reply<RunList> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(RunList {
        runs: pipelines::list_runs(&st.svc, &ws, q.pipeline.as_deref(), limit).await?,
    }))
}

/// `GET .../pipeline-runs/{id}`: the DAG with each step's state, job, run, outputs, cache hits.
pub async fn run(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<RunView> {
    Ok(Json(pipelines::run_view(&st.svc, &ws, &id).await?))
}

/// `POST .../pipeline-runs/{id}/rerun`: a new run from a step, or of the failed steps.
pub async fn rerun(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<RerunRequest>,
) -> Result<Created<RunView>, ApiError> {
    let job = pipelines::rerun(&st.executor, &ws, &id, &req).await?;
    Ok(Created(pipelines::run_view(&st.svc, &ws, &job.id).await?))
}

/// `POST .../pipeline-runs/{id}/cancel`.
pub async fn cancel(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<RunView> {
    Ok(Json(pipelines::cancel(&st.executor, &ws, &id).await?))
}

/// Schedules.
#[derive(Serialize, JsonSchema)]
pub struct ScheduleList {
    /// By name.
    schedules: Vec<ScheduleView>,
}

/// `PUT .../schedules/{name}` with a [`ScheduleRequest`].
pub async fn create_schedule(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    Path((_, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<ScheduleRequest>,
) -> Result<Created<ScheduleView>, ApiError> {
    let v = pipelines::get(&st.svc, &ws, &req.pipeline).await?;
    secrets_need_owner(&st, &p, &ws.name, &v).await?;
    Ok(Created(
        schedules::create(&st.svc, &ws, &name, req, Some(p.actor()), now_millis()).await?,
    ))
}

/// `GET .../schedules`.
pub async fn list_schedules(State(st): State<AppState>, Ws(ws): Ws) -> Reply<ScheduleList> {
    Ok(Json(ScheduleList {
        schedules: schedules::list(&st.svc, &ws, now_millis()).await?,
    }))
}

/// `GET .../schedules/{name}`: with its next and latest ticks.
pub async fn get_schedule(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<ScheduleView> {
    Ok(Json(
        schedules::get(&st.svc, &ws, &name, now_millis()).await?,
    ))
}

/// `POST .../schedules/{name}/enable`.
pub async fn enable(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<ScheduleView> {
    Ok(Json(
        schedules::set_enabled(&st.svc, &ws, &name, true, now_millis()).await?,
    ))
}

/// `POST .../schedules/{name}/disable`.
pub async fn disable(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<ScheduleView> {
    Ok(Json(
        schedules::set_enabled(&st.svc, &ws, &name, false, now_millis()).await?,
    ))
}

/// `DELETE .../schedules/{name}`.
pub async fn delete_schedule(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<Empty> {
    schedules::delete(&st.svc, &ws, &name).await?;
    Ok(Json(Empty {}))
}

/// A scheduler pass to run.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TickRequest {
    /// The time the pass takes as now (RFC 3339; default: now).
    at: Option<String>,
}

/// What a pass did.
#[derive(Serialize, JsonSchema)]
pub struct TickReply {
    /// Runs submitted.
    submitted: usize,
    /// Ticks skipped (overlap).
    skipped: usize,
    /// Ticks queued (overlap = queue).
    queued: usize,
    /// Ticks missed and not run (catch-up).
    missed: u64,
    /// Ticks whose run was refused.
    failed: usize,
}

/// `POST /api/v1/scheduler/tick`: one pass of the scheduler over every workspace, as of `at`.
pub async fn scheduler_tick(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<TickRequest>,
) -> Reply<TickReply> {
    let now = match &req.at {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| DomainError::invalid(format!("at '{t}' is not an RFC 3339 time: {e}")))?
            .as_millisecond(),
        None => now_millis(),
    };
    let p = schedules::Scheduler::new(st.executor.clone())
        .tick(now)
        .await?;
    Ok(Json(TickReply {
        submitted: p.submitted,
        skipped: p.skipped,
        queued: p.queued,
        missed: p.missed,
        failed: p.failed,
    }))
}
