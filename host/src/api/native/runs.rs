//! Run endpoints: create, read, update, lifecycle, logging, search, history, bulk import.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PointJson, RunJson};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws};
use crate::api::reply::{Created, Empty};
use crate::api::routes::Target;
use crate::api::search::{self, RunSearch};
use crate::api::wire::{WireF64, de_f64, de_opt_i64};
use crate::store::{LogBatch, NewRun, RunUpdate};
use crate::workspace::metric::downsample;
use crate::workspace::{
    DomainError, LifecycleStage, Metric, MetricPoint, RunStatus, ViewType, now_millis, validate,
};

type Reply<T> = Result<Json<T>, ApiError>;

/// Most items in one native log call or one bulk run.
pub const MAX_NATIVE_BATCH: usize = 10_000;
/// Most runs in one bulk import.
pub const MAX_BULK_RUNS: usize = 10_000;

fn run_id(id: &str) -> Result<&str, DomainError> {
    validate::run_id(id)?;
    Ok(id)
}

/// A metric point to log.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricIn {
    /// Metric name.
    key: String,
    /// The value: a number, or "NaN" / "Infinity" / "-Infinity".
    #[serde(deserialize_with = "de_f64")]
    #[schemars(with = "WireF64")]
    value: f64,
    /// Milliseconds since the epoch (default: now).
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    /// Training step (default 0).
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
}

fn metrics_of(list: Vec<MetricIn>, now: i64) -> Vec<Metric> {
    list.into_iter()
        .map(|m| Metric {
            key: m.key,
            point: MetricPoint {
                value: m.value,
                timestamp: m.timestamp.unwrap_or(now),
                step: m.step.unwrap_or(0),
            },
        })
        .collect()
}

/// The body of `POST .../runs`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReq {
    /// The experiment (default 0, `Default`).
    #[serde(default)]
    experiment_id: Option<i64>,
    /// Display name (default: generated; MLflow's `run_name` is accepted too).
    #[serde(default, alias = "run_name")]
    name: Option<String>,
    /// Who ran it.
    #[serde(default)]
    user_id: Option<String>,
    /// Milliseconds since the epoch (default: now).
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    /// Initial state (default `RUNNING`).
    #[serde(default)]
    status: Option<RunStatus>,
    /// Tags.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The parent run, for a nested run.
    #[serde(default)]
    parent_run_id: Option<String>,
}

fn new_run(req: CreateReq) -> Result<NewRun, DomainError> {
    validate::tags(&req.tags)?;
    if let Some(p) = &req.parent_run_id {
        validate::run_id(p)?;
    }
    Ok(NewRun {
        experiment_id: req.experiment_id.unwrap_or(0),
        name: req.name,
        user_id: req.user_id.unwrap_or_default(),
        start_time: req.start_time.unwrap_or_else(now_millis),
        status: req.status,
        tags: req.tags,
        parent_run_id: req.parent_run_id,
    })
}

/// `POST .../runs`.
pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<CreateReq>,
) -> Result<Created<RunJson>, ApiError> {
    let run = st.svc.store.create_run(ws.id, new_run(req)?).await?;
    Ok(Created(run.into()))
}

/// `GET .../runs/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<RunJson> {
    let run = st.svc.store.run(ws.id, run_id(&id)?).await?;
    Ok(Json(run.into()))
}

/// The body of `PATCH .../runs/{id}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateReq {
    /// New state.
    #[serde(default)]
    status: Option<RunStatus>,
    /// Milliseconds since the epoch.
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    /// New display name (MLflow's `run_name` is accepted too).
    #[serde(default, alias = "run_name")]
    name: Option<String>,
}

/// `PATCH .../runs/{id}`.
pub async fn update(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateReq>,
) -> Reply<RunJson> {
    let id = run_id(&id)?;
    st.svc
        .store
        .update_run(
            ws.id,
            id,
            RunUpdate {
                status: req.status,
                end_time: req.end_time,
                name: req.name,
            },
        )
        .await?;
    let run = st.svc.store.run(ws.id, id).await?;
    Ok(Json(run.into()))
}

/// `DELETE .../runs/{id}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<Empty> {
    st.svc
        .store
        .set_run_stage(ws.id, run_id(&id)?, LifecycleStage::Deleted)
        .await?;
    Ok(Json(Empty {}))
}

/// `POST .../runs/{id}:restore`.
pub async fn restore(State(st): State<AppState>, Ws(ws): Ws, Target(id): Target) -> Reply<RunJson> {
    let id = run_id(&id)?;
    st.svc
        .store
        .set_run_stage(ws.id, id, LifecycleStage::Active)
        .await?;
    let run = st.svc.store.run(ws.id, id).await?;
    Ok(Json(run.into()))
}

/// The body of `POST .../runs/{id}/log`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogReq {
    /// Metric points.
    #[serde(default)]
    metrics: Vec<MetricIn>,
    /// Parameters (write-once: the same value again is fine).
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// Tags (last writer wins).
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn batch_of(req: LogReq) -> Result<LogBatch, DomainError> {
    let total = req.metrics.len() + req.params.len() + req.tags.len();
    if total > MAX_NATIVE_BATCH {
        return Err(DomainError::invalid(format!(
            "a native log call may hold at most {MAX_NATIVE_BATCH} items, got {total}"
        )));
    }
    let batch = LogBatch {
        metrics: metrics_of(req.metrics, now_millis()),
        params: req.params.into_iter().collect(),
        tags: req.tags.into_iter().collect(),
    };
    batch.validate(false)?;
    Ok(batch)
}

/// `POST .../runs/{id}/log`: metrics, params and tags together, all or nothing.
pub async fn log(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<LogReq>,
) -> Reply<Empty> {
    let batch = batch_of(req)?;
    st.svc.store.log_batch(ws.id, run_id(&id)?, batch).await?;
    Ok(Json(Empty {}))
}

/// The query of `GET .../runs/{id}/metrics/{key}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Downsample to at most this many points (at least 2), keeping the shape.
    max_points: Option<i64>,
}

/// A metric's history.
#[derive(Serialize, JsonSchema)]
pub struct MetricHistory {
    /// The metric.
    key: String,
    /// Points logged.
    total_points: usize,
    /// The points answered (all, or downsampled).
    points: Vec<PointJson>,
}

/// `GET .../runs/{id}/metrics/{key}?max_points=N`: the history, optionally downsampled.
pub async fn metric_history(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    Params(q): Params<HistoryQuery>,
) -> Reply<MetricHistory> {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    let key = p.get("key").map(String::as_str).unwrap_or("");
    let points = st.svc.store.metric_history(ws.id, run_id(id)?, key).await?;
    let total = points.len();
    let points = match q.max_points {
        Some(n) if n < 2 => {
            return Err(DomainError::invalid("max_points must be at least 2").into());
        }
        Some(n) => downsample(&points, n as usize),
        None => points,
    };
    Ok(Json(MetricHistory {
        key: key.to_string(),
        total_points: total,
        points: points.iter().map(PointJson::from).collect(),
    }))
}

/// `DELETE .../runs/{id}/tags/{key}`.
pub async fn delete_tag(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Reply<Empty> {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    let key = p.get("key").map(String::as_str).unwrap_or("");
    st.svc.store.delete_run_tag(ws.id, run_id(id)?, key).await?;
    Ok(Json(Empty {}))
}

/// An experiment id as clients send it: a number or a string.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IdValue {
    /// As a string, like MLflow.
    Text(String),
    /// As a number.
    Number(i64),
}

impl IdValue {
    fn text(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

/// The body of `POST .../runs:search` (MLflow's field names are accepted too).
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchReq {
    /// Only runs of these experiments (default: all).
    #[serde(default)]
    experiment_ids: Vec<IdValue>,
    /// A filter in MLflow's syntax, e.g. `metrics.loss < 0.5 and params.lr = '0.1'` (or
    /// `filter_string`).
    #[serde(default, alias = "filter_string")]
    filter: Option<String>,
    /// E.g. `metrics.loss ASC`, `attributes.start_time DESC`.
    #[serde(default)]
    order_by: Vec<String>,
    /// `ACTIVE_ONLY` (default), `DELETED_ONLY` or `ALL` (or `run_view_type`).
    #[serde(default, alias = "run_view_type")]
    view: Option<String>,
    /// Page size (default 1000, 1 to 50000).
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    /// From the previous page's `next_page_token`.
    #[serde(default)]
    page_token: Option<String>,
}

/// A page of runs.
#[derive(Serialize, JsonSchema)]
pub struct RunList {
    /// The page.
    runs: Vec<RunJson>,
    /// The next page, if any.
    next_page_token: Option<String>,
}

async fn run_search(
    st: &AppState,
    ws: &crate::workspace::Workspace,
    req: SearchReq,
) -> Reply<RunList> {
    let ids: Vec<String> = req.experiment_ids.into_iter().map(IdValue::text).collect();
    let view = req
        .view
        .as_deref()
        .map(ViewType::parse)
        .transpose()?
        .unwrap_or_default();
    let (runs, next) = search::runs(
        &st.svc,
        ws,
        RunSearch {
            experiment_ids: &ids,
            filter: req.filter.as_deref().unwrap_or(""),
            order_by: &req.order_by,
            view,
            max_results: req.max_results,
            page_token: req.page_token.as_deref(),
        },
    )
    .await?;
    Ok(Json(RunList {
        runs: runs.into_iter().map(RunJson::from).collect(),
        next_page_token: next,
    }))
}

/// The query of `GET .../runs`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only runs of these experiments (repeat the parameter; default: all).
    #[serde(default)]
    experiment_id: Vec<String>,
    /// A filter in MLflow's syntax (or `filter_string`).
    #[serde(alias = "filter_string")]
    filter: Option<String>,
    /// E.g. `metrics.loss ASC` (repeat the parameter).
    #[serde(default)]
    order_by: Vec<String>,
    /// `ACTIVE_ONLY` (default), `DELETED_ONLY` or `ALL`.
    view: Option<String>,
    /// Page size (default 1000, 1 to 50000).
    max_results: Option<i64>,
    /// From the previous page's `next_page_token`.
    page_token: Option<String>,
}

/// `GET .../runs?experiment_id=..&filter=..&order_by=..&view=..&max_results=..&page_token=..`.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<ListQuery>,
) -> Reply<RunList> {
    let req = SearchReq {
        experiment_ids: q.experiment_id.into_iter().map(IdValue::Text).collect(),
        filter: q.filter,
        order_by: q.order_by,
        view: q.view,
        max_results: q.max_results,
        page_token: q.page_token,
    };
    run_search(&st, &ws, req).await
}

/// `POST .../runs:search` with the same fields as a JSON body.
pub async fn search(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<SearchReq>,
) -> Reply<RunList> {
    run_search(&st, &ws, req).await
}

/// One run of a bulk import: the fields of a new run and of a log call.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRun {
    /// The experiment (default 0, `Default`).
    #[serde(default)]
    experiment_id: Option<i64>,
    /// Display name (or `run_name`).
    #[serde(default, alias = "run_name")]
    name: Option<String>,
    /// Who ran it.
    #[serde(default)]
    user_id: Option<String>,
    /// Milliseconds since the epoch (default: now).
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    /// State (default `RUNNING`).
    #[serde(default)]
    status: Option<RunStatus>,
    /// Tags.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The parent run, for a nested run.
    #[serde(default)]
    parent_run_id: Option<String>,
    /// Metric points.
    #[serde(default)]
    metrics: Vec<MetricIn>,
    /// Parameters.
    #[serde(default)]
    params: BTreeMap<String, String>,
}

impl BulkRun {
    /// The run to create and the data to log into it (the tags go with the run).
    fn split(self) -> (CreateReq, LogReq) {
        (
            CreateReq {
                experiment_id: self.experiment_id,
                name: self.name,
                user_id: self.user_id,
                start_time: self.start_time,
                status: self.status,
                tags: self.tags,
                parent_run_id: self.parent_run_id,
            },
            LogReq {
                metrics: self.metrics,
                params: self.params,
                tags: BTreeMap::new(),
            },
        )
    }
}

/// The body of `POST .../runs:bulk`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReq {
    /// The runs (at most 10000).
    runs: Vec<BulkRun>,
}

/// The runs a bulk import created.
#[derive(Serialize, JsonSchema)]
pub struct BulkCreated {
    /// Their ids, in the order sent.
    run_ids: Vec<String>,
}

/// `POST .../runs:bulk`: creates many finished runs with their data in one transaction.
pub async fn bulk(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<BulkReq>,
) -> Result<Created<BulkCreated>, ApiError> {
    if req.runs.len() > MAX_BULK_RUNS {
        return Err(DomainError::invalid(format!(
            "a bulk import may hold at most {MAX_BULK_RUNS} runs, got {}",
            req.runs.len()
        ))
        .into());
    }
    let mut runs = Vec::with_capacity(req.runs.len());
    for (i, r) in req.runs.into_iter().enumerate() {
        let (run, data) = r.split();
        let new = new_run(run).map_err(|e| DomainError::invalid(format!("runs[{i}]: {e}")))?;
        let batch = batch_of(data).map_err(|e| DomainError::invalid(format!("runs[{i}]: {e}")))?;
        runs.push((new, batch));
    }
    let run_ids = st.svc.store.create_runs_bulk(ws.id, runs).await?;
    Ok(Created(BulkCreated { run_ids }))
}
