//! Run endpoints: create, read, update, lifecycle, logging, search, history, bulk import.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PointJson, RunJson, split_action};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, QueryMap, Ws};
use crate::api::search::{self, RunSearch};
use crate::api::wire::{MetricIn, de_opt_i64};
use crate::store::{LogBatch, NewRun, RunUpdate};
use crate::workspace::metric::downsample;
use crate::workspace::{
    DomainError, LifecycleStage, Metric, MetricPoint, RunStatus, ViewType, now_millis, validate,
};

type Reply = Result<Json<Value>, ApiError>;

/// Most items in one native log call or one bulk run.
pub const MAX_NATIVE_BATCH: usize = 10_000;
/// Most runs in one bulk import.
pub const MAX_BULK_RUNS: usize = 10_000;

fn run_id(id: &str) -> Result<&str, DomainError> {
    validate::run_id(id)?;
    Ok(id)
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

#[derive(Deserialize)]
pub struct CreateReq {
    #[serde(default)]
    experiment_id: Option<i64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    status: Option<RunStatus>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
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

pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<CreateReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let run = st.tracking.store.create_run(ws.id, new_run(req)?).await?;
    Ok((StatusCode::CREATED, Json(json!(RunJson::from(&run)))))
}

pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    let run = st.tracking.store.run(ws.id, run_id(&id)?).await?;
    Ok(Json(json!(RunJson::from(&run))))
}

#[derive(Deserialize)]
pub struct UpdateReq {
    #[serde(default)]
    status: Option<RunStatus>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    #[serde(default)]
    name: Option<String>,
}

pub async fn update(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateReq>,
) -> Reply {
    let id = run_id(&id)?;
    st.tracking
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
    let run = st.tracking.store.run(ws.id, id).await?;
    Ok(Json(json!(RunJson::from(&run))))
}

pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    st.tracking
        .store
        .set_run_stage(ws.id, run_id(&id)?, LifecycleStage::Deleted)
        .await?;
    Ok(Json(json!({})))
}

/// `POST .../runs/{id}:restore`.
pub async fn action(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, target)): Path<(String, String)>,
) -> Reply {
    match split_action(&target)? {
        (id, "restore") => {
            let id = run_id(id)?;
            st.tracking
                .store
                .set_run_stage(ws.id, id, LifecycleStage::Active)
                .await?;
            let run = st.tracking.store.run(ws.id, id).await?;
            Ok(Json(json!(RunJson::from(&run))))
        }
        (_, other) => Err(DomainError::NotFound(format!(
            "unknown run action '{other}'; known: restore"
        ))
        .into()),
    }
}

#[derive(Deserialize)]
pub struct LogReq {
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default)]
    params: BTreeMap<String, String>,
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
) -> Reply {
    let batch = batch_of(req)?;
    st.tracking
        .store
        .log_batch(ws.id, run_id(&id)?, batch)
        .await?;
    Ok(Json(json!({})))
}

/// `GET .../runs/{id}/metrics/{key}?max_points=N`: the history, optionally downsampled.
pub async fn metric_history(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    q: QueryMap,
) -> Reply {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    let key = p.get("key").map(String::as_str).unwrap_or("");
    let points = st
        .tracking
        .store
        .metric_history(ws.id, run_id(id)?, key)
        .await?;
    let total = points.len();
    let points = match q.int("max_points")? {
        Some(n) if n < 2 => {
            return Err(DomainError::invalid("max_points must be at least 2").into());
        }
        Some(n) => downsample(&points, n as usize),
        None => points,
    };
    Ok(Json(json!({
        "key": key,
        "total_points": total,
        "points": points.iter().map(PointJson::from).collect::<Vec<_>>(),
    })))
}

pub async fn delete_tag(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Reply {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    let key = p.get("key").map(String::as_str).unwrap_or("");
    st.tracking
        .store
        .delete_run_tag(ws.id, run_id(id)?, key)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
pub struct SearchReq {
    #[serde(default)]
    experiment_ids: Vec<Value>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    view: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
}

async fn run_search(st: &AppState, ws: &crate::workspace::Workspace, req: SearchReq) -> Reply {
    let ids = search::id_strings(&req.experiment_ids);
    let view = req
        .view
        .as_deref()
        .map(ViewType::parse)
        .transpose()?
        .unwrap_or_default();
    let (runs, next) = search::runs(
        &st.tracking,
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
    Ok(Json(json!({
        "runs": runs.iter().map(RunJson::from).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

/// `GET .../runs?experiment_id=..&filter=..&order_by=..&view=..&max_results=..&page_token=..`.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws, q: QueryMap) -> Reply {
    let req = SearchReq {
        experiment_ids: q
            .all("experiment_id")
            .iter()
            .map(|s| Value::String(s.clone()))
            .collect(),
        filter: q.get("filter").map(String::from),
        order_by: q.all("order_by").to_vec(),
        view: q.get("view").map(String::from),
        max_results: q.int("max_results")?,
        page_token: q.get("page_token").map(String::from),
    };
    run_search(&st, &ws, req).await
}

/// `POST .../runs:search` with the same fields as a JSON body.
pub async fn search(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<SearchReq>,
) -> Reply {
    run_search(&st, &ws, req).await
}

#[derive(Deserialize)]
pub struct BulkRun {
    #[serde(flatten)]
    run: CreateReq,
    #[serde(flatten)]
    data: LogReq,
}

#[derive(Deserialize)]
pub struct BulkReq {
    runs: Vec<BulkRun>,
}

/// `POST .../runs:bulk`: creates many finished runs with their data in one transaction.
pub async fn bulk(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<BulkReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if req.runs.len() > MAX_BULK_RUNS {
        return Err(DomainError::invalid(format!(
            "a bulk import may hold at most {MAX_BULK_RUNS} runs, got {}",
            req.runs.len()
        ))
        .into());
    }
    let mut runs = Vec::with_capacity(req.runs.len());
    for (i, r) in req.runs.into_iter().enumerate() {
        let new = new_run(r.run).map_err(|e| DomainError::invalid(format!("runs[{i}]: {e}")))?;
        let batch =
            batch_of(r.data).map_err(|e| DomainError::invalid(format!("runs[{i}]: {e}")))?;
        runs.push((new, batch));
    }
    let ids = st.tracking.store.create_runs_bulk(ws.id, runs).await?;
    Ok((StatusCode::CREATED, Json(json!({ "run_ids": ids }))))
}
