//! MLflow run endpoints: lifecycle, logging, search, metric history.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::experiments::Tag;
use super::{run_info_json, run_json};
use crate::api::AppState;
use crate::api::error::MlflowError;
use crate::api::extract::{MlflowJson, MlflowWs, QueryMap};
use crate::api::wire::{
    MetricIn, MetricOut, de_f64, de_id_string, de_opt_i64, de_stringish, experiment_id,
};
use crate::api::{paging, search};
use crate::store::{LogBatch, NewRun, RunUpdate};
use crate::workspace::{
    DomainError, LifecycleStage, Metric, MetricPoint, ViewType, now_millis, validate,
};

type Reply = Result<Json<Value>, MlflowError>;

/// The run id of a request: MLflow sends `run_id` and the legacy `run_uuid`.
#[derive(Debug, Deserialize, Default)]
pub struct RunRef {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
}

impl RunRef {
    fn id(&self) -> Result<&str, DomainError> {
        let id = self
            .run_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.run_uuid.as_deref().filter(|s| !s.is_empty()))
            .ok_or_else(|| DomainError::invalid("missing value for required parameter 'run_id'"))?;
        validate::run_id(id)?;
        Ok(id)
    }
}

fn run_id_from_query(q: &QueryMap) -> Result<&str, DomainError> {
    let id = q
        .get("run_id")
        .filter(|s| !s.is_empty())
        .or(q.get("run_uuid").filter(|s| !s.is_empty()))
        .ok_or_else(|| DomainError::invalid("missing value for required parameter 'run_id'"))?;
    validate::run_id(id)?;
    Ok(id)
}

#[derive(Deserialize)]
pub struct CreateReq {
    #[serde(default, deserialize_with = "de_id_string")]
    experiment_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn create(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<CreateReq>,
) -> Reply {
    let exp = if req.experiment_id.is_empty() {
        0
    } else {
        experiment_id(&req.experiment_id)?
    };
    let tags = super::tag_map(req.tags)?;
    let run = st
        .tracking
        .store
        .create_run(
            ws.id,
            NewRun {
                experiment_id: exp,
                name: req.run_name,
                user_id: req.user_id.unwrap_or_default(),
                start_time: req.start_time.unwrap_or_else(now_millis),
                status: None,
                tags,
                parent_run_id: None,
            },
        )
        .await?;
    Ok(Json(json!({ "run": run_json(&run) })))
}

pub async fn get(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let run = st.tracking.store.run(ws.id, run_id_from_query(&q)?).await?;
    Ok(Json(json!({ "run": run_json(&run) })))
}

#[derive(Deserialize)]
pub struct UpdateReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    #[serde(default)]
    run_name: Option<String>,
}

pub async fn update(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<UpdateReq>,
) -> Reply {
    let status = req.status.as_deref().map(str::parse).transpose()?;
    let run = st
        .tracking
        .store
        .update_run(
            ws.id,
            req.run.id()?,
            RunUpdate {
                status,
                end_time: req.end_time,
                name: req.run_name,
            },
        )
        .await?;
    Ok(Json(json!({ "run_info": run_info_json(&run) })))
}

pub async fn delete(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<RunRef>,
) -> Reply {
    st.tracking
        .store
        .set_run_stage(ws.id, req.id()?, LifecycleStage::Deleted)
        .await?;
    Ok(Json(json!({})))
}

pub async fn restore(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<RunRef>,
) -> Reply {
    st.tracking
        .store
        .set_run_stage(ws.id, req.id()?, LifecycleStage::Active)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SearchReq {
    #[serde(default)]
    experiment_ids: Vec<serde_json::Value>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
}

pub async fn search(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<SearchReq>,
) -> Reply {
    let ids = search::id_strings(&req.experiment_ids);
    let view = req
        .run_view_type
        .as_deref()
        .map(ViewType::parse)
        .transpose()?
        .unwrap_or_default();
    let (runs, next) = search::runs(
        &st.tracking,
        &ws,
        search::RunSearch {
            experiment_ids: &ids,
            filter: req.filter.as_deref().unwrap_or(""),
            order_by: &req.order_by,
            view,
            max_results: req.max_results,
            page_token: req.page_token.as_deref(),
        },
    )
    .await?;
    let mut out = json!({ "runs": runs.iter().map(run_json).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct LogMetricReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    key: String,
    #[serde(deserialize_with = "de_f64")]
    value: f64,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
}

fn metric(m: MetricIn, now: i64) -> Metric {
    Metric {
        key: m.key,
        point: MetricPoint {
            value: m.value,
            timestamp: m.timestamp.unwrap_or(now),
            step: m.step.unwrap_or(0),
        },
    }
}

async fn log(st: &AppState, ws_id: i64, run_id: &str, batch: LogBatch, limits: bool) -> Reply {
    batch.validate(limits)?;
    st.tracking.store.log_batch(ws_id, run_id, batch).await?;
    Ok(Json(json!({})))
}

pub async fn log_metric(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<LogMetricReq>,
) -> Reply {
    let m = metric(
        MetricIn {
            key: req.key,
            value: req.value,
            timestamp: req.timestamp,
            step: req.step,
        },
        now_millis(),
    );
    log(
        &st,
        ws.id,
        req.run.id()?,
        LogBatch {
            metrics: vec![m],
            ..Default::default()
        },
        true,
    )
    .await
}

#[derive(Deserialize)]
pub struct KeyValueReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    key: String,
    #[serde(default, deserialize_with = "de_stringish")]
    value: String,
}

pub async fn log_param(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<KeyValueReq>,
) -> Reply {
    let batch = LogBatch {
        params: vec![(req.key, req.value)],
        ..Default::default()
    };
    log(&st, ws.id, req.run.id()?, batch, true).await
}

pub async fn set_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<KeyValueReq>,
) -> Reply {
    let batch = LogBatch {
        tags: vec![(req.key, req.value)],
        ..Default::default()
    };
    log(&st, ws.id, req.run.id()?, batch, true).await
}

#[derive(Deserialize)]
pub struct DeleteTagReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    key: String,
}

pub async fn delete_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<DeleteTagReq>,
) -> Reply {
    st.tracking
        .store
        .delete_run_tag(ws.id, req.run.id()?, &req.key)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ParamIn {
    key: String,
    #[serde(default, deserialize_with = "de_stringish")]
    value: String,
}

#[derive(Deserialize)]
pub struct LogBatchReq {
    // not flattened: flatten would buffer the whole 1000-metric body twice
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default)]
    params: Vec<ParamIn>,
    #[serde(default)]
    tags: Vec<ParamIn>,
}

pub async fn log_batch(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, size): MlflowJson<LogBatchReq>,
) -> Reply {
    if size > validate::MAX_BATCH_BYTES {
        return Err(DomainError::invalid(format!(
            "log-batch request is {size} bytes; the limit is {} bytes",
            validate::MAX_BATCH_BYTES
        ))
        .into());
    }
    let now = now_millis();
    let batch = LogBatch {
        metrics: req.metrics.into_iter().map(|m| metric(m, now)).collect(),
        params: req.params.into_iter().map(|p| (p.key, p.value)).collect(),
        tags: req.tags.into_iter().map(|p| (p.key, p.value)).collect(),
    };
    let run = RunRef {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    };
    log(&st, ws.id, run.id()?, batch, true).await
}

pub async fn metric_history(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
) -> Reply {
    let run_id = run_id_from_query(&q)?;
    let key = q.require("metric_key")?;
    let limit = match q.int("max_results")? {
        None => 25_000,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            return Err(
                DomainError::invalid(format!("max_results must be positive, got {n}")).into(),
            );
        }
    };
    let offset = paging::decode(q.get("page_token"))?;
    let points = st.tracking.store.metric_history(ws.id, run_id, key).await?;
    let page: Vec<MetricOut> = points
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| MetricOut {
            key: key.to_string(),
            value: p.value,
            timestamp: p.timestamp,
            step: p.step,
        })
        .collect();
    let mut out = json!({ "metrics": page });
    if points.len() > offset + limit {
        out["next_page_token"] = json!(paging::encode(offset + limit));
    }
    Ok(Json(out))
}
