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
    MetricIn, MetricOut, de_f64, de_i64, de_id_string, de_opt_i64, experiment_id,
};
use crate::api::{paging, search};
use crate::store::{LogBatch, NewRun, RunUpdate};
use crate::workspace::logged_model::ModelMetric;
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
            .ok_or_else(|| crate::api::wire::missing("run_id"))?;
        validate::run_id(id)?;
        Ok(id)
    }
}

fn run_id_from_query(q: &QueryMap) -> Result<&str, DomainError> {
    let id = q
        .get("run_id")
        .filter(|s| !s.is_empty())
        .or(q.get("run_uuid").filter(|s| !s.is_empty()))
        .ok_or_else(|| crate::api::wire::missing("run_id"))?;
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
        .svc
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
    Ok(Json(json!({ "run": run_json(&run, None) })))
}

pub async fn get(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let run = st.svc.store.run(ws.id, run_id_from_query(&q)?).await?;
    let io = st.svc.store.run_io(&[run.key]).await?;
    Ok(Json(json!({ "run": run_json(&run, io.get(&run.key)) })))
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
        .svc
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
    st.svc
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
    st.svc
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
        &st.svc,
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
    let keys: Vec<i64> = runs.iter().map(|r| r.key).collect();
    let io = st.svc.store.run_io(&keys).await?;
    let mut out =
        json!({ "runs": runs.iter().map(|r| run_json(r, io.get(&r.key))).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct LogMetricReq {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(deserialize_with = "de_f64")]
    value: f64,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

/// A metric of MLflow's `log-batch`: key, value and timestamp are required there.
#[derive(Deserialize)]
pub struct BatchMetricIn {
    key: String,
    #[serde(deserialize_with = "de_f64")]
    value: f64,
    #[serde(deserialize_with = "de_i64")]
    timestamp: i64,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

/// The metrics of a request that name a logged model, as that model's metric records.
fn model_metrics<'a>(
    run_id: &str,
    items: impl Iterator<
        Item = (
            &'a Metric,
            &'a Option<String>,
            &'a Option<String>,
            &'a Option<String>,
        ),
    >,
) -> Vec<(String, ModelMetric)> {
    items
        .filter_map(|(m, model, dn, dd)| {
            let model = model.as_ref().filter(|s| !s.is_empty())?;
            Some((
                model.clone(),
                ModelMetric {
                    key: m.key.clone(),
                    value: m.point.value,
                    timestamp: m.point.timestamp,
                    step: m.point.step,
                    run_id: Some(run_id.to_string()),
                    dataset_name: dn.clone().filter(|s| !s.is_empty()),
                    dataset_digest: dd.clone().filter(|s| !s.is_empty()),
                },
            ))
        })
        .collect()
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
    log_with_models(st, ws_id, run_id, batch, limits, Vec::new()).await
}

/// Logs a batch to a run and, for metrics that name a logged model, to that model too. Model ids
/// are checked before anything is written.
async fn log_with_models(
    st: &AppState,
    ws_id: i64,
    run_id: &str,
    batch: LogBatch,
    limits: bool,
    models: Vec<(String, ModelMetric)>,
) -> Reply {
    log_keyed(st, ws_id, run_id, batch, limits, models, None).await
}

/// [`log_with_models`] under an optional `Idempotency-Key`: a batch whose key the run has
/// already seen (a retry after a lost answer, on any replica) is acknowledged and not stored
/// again.
async fn log_keyed(
    st: &AppState,
    ws_id: i64,
    run_id: &str,
    batch: LogBatch,
    limits: bool,
    models: Vec<(String, ModelMetric)>,
    key: Option<&str>,
) -> Reply {
    batch.validate(limits)?;
    for (id, _) in &models {
        crate::workspace::logged_model::check_model_id(id)?;
        st.svc.store.logged_model(ws_id, id, false).await?;
    }
    // replicas on PostgreSQL: a batch without a key is keyed by its content, so a client that
    // resends it after a lost answer (on the other replica) does not store it twice; an
    // identical batch logged again stores nothing, as MLflow stores identical points once
    let content;
    let key = match key {
        Some(k) => Some(k),
        None if st.svc.store.dialect() == crate::store::Dialect::Postgres => {
            content = format!("content:{}", batch.content_key());
            Some(content.as_str())
        }
        None => None,
    };
    let fresh = match key {
        Some(k) => {
            st.svc
                .store
                .log_batch_once(ws_id, run_id, crate::store::BatchMark::Key(k), &batch)
                .await?
        }
        None => {
            st.svc.store.log_batch(ws_id, run_id, batch).await?;
            true
        }
    };
    if fresh {
        st.svc.store.log_model_metrics(ws_id, &models).await?;
    }
    Ok(Json(json!({})))
}

/// The `Idempotency-Key` header of a request, checked: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, DomainError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v.to_str().unwrap_or("");
    if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            "the Idempotency-Key header must be 1 to 128 visible ASCII characters",
        ));
    }
    Ok(Some(k.to_string()))
}

pub async fn log_metric(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<LogMetricReq>,
) -> Reply {
    let run = RunRef {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    };
    let run_id = run.id()?;
    let key = req
        .key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| crate::api::wire::missing("key"))?;
    let m = metric(
        MetricIn {
            key,
            value: req.value,
            timestamp: req.timestamp,
            step: req.step,
        },
        now_millis(),
    );
    let models = model_metrics(
        run_id,
        [(&m, &req.model_id, &req.dataset_name, &req.dataset_digest)].into_iter(),
    );
    log_with_models(
        &st,
        ws.id,
        run_id,
        LogBatch {
            metrics: vec![m],
            ..Default::default()
        },
        true,
        models,
    )
    .await
}

#[derive(Deserialize)]
pub struct KeyValueReq {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

impl KeyValueReq {
    /// The run id, key and value (absent value: empty), MLflow's errors for missing ones.
    fn parts(self) -> Result<(String, String, String), DomainError> {
        let run = RunRef {
            run_id: self.run_id,
            run_uuid: self.run_uuid,
        };
        let id = run.id()?.to_string();
        let key = self
            .key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| crate::api::wire::missing("key"))?;
        Ok((id, key, self.value.unwrap_or_default()))
    }
}

pub async fn log_param(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<KeyValueReq>,
) -> Reply {
    let (run, key, value) = req.parts()?;
    let batch = LogBatch {
        params: vec![(key, value)],
        ..Default::default()
    };
    log(&st, ws.id, &run, batch, true).await
}

pub async fn set_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<KeyValueReq>,
) -> Reply {
    let (run, key, value) = req.parts()?;
    let batch = LogBatch {
        tags: vec![(key, value)],
        ..Default::default()
    };
    log(&st, ws.id, &run, batch, true).await
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
    st.svc
        .store
        .delete_run_tag(ws.id, req.run.id()?, &req.key)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ParamIn {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
pub struct LogBatchReq {
    // not flattened: flatten would buffer the whole 1000-metric body twice
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<BatchMetricIn>,
    #[serde(default)]
    params: Vec<ParamIn>,
    #[serde(default)]
    tags: Vec<ParamIn>,
}

pub async fn log_batch(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    headers: axum::http::HeaderMap,
    MlflowJson(req, size): MlflowJson<LogBatchReq>,
) -> Reply {
    let key = idempotency_key(&headers)?;
    if size > validate::MAX_BATCH_BYTES {
        return Err(DomainError::invalid(format!(
            "log-batch request is {size} bytes; the limit is {} bytes",
            validate::MAX_BATCH_BYTES
        ))
        .into());
    }
    let run = RunRef {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    };
    let run_id = run.id()?;
    let metrics: Vec<Metric> = req
        .metrics
        .iter()
        .map(|m| Metric {
            key: m.key.clone(),
            point: MetricPoint {
                value: m.value,
                timestamp: m.timestamp,
                step: m.step.unwrap_or(0),
            },
        })
        .collect();
    let models = model_metrics(
        run_id,
        metrics
            .iter()
            .zip(&req.metrics)
            .map(|(m, r)| (m, &r.model_id, &r.dataset_name, &r.dataset_digest)),
    );
    let batch = LogBatch {
        metrics,
        params: req
            .params
            .into_iter()
            .map(|p| (p.key, p.value.unwrap_or_default()))
            .collect(),
        tags: req
            .tags
            .into_iter()
            .map(|p| (p.key, p.value.unwrap_or_default()))
            .collect(),
    };
    log_keyed(&st, ws.id, run_id, batch, true, models, key.as_deref()).await
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
    let points = st.svc.store.metric_history(ws.id, run_id, key).await?;
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

/// Run tag holding the models logged to a run (MLflow 2's `log-model` history).
const LOG_MODEL_HISTORY_TAG: &str = "mlflow.log-model.history";

#[derive(Deserialize)]
pub struct LogModelReq {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    model_json: Option<String>,
}

/// `POST runs/log-model`: appends a model's metadata to the run's `mlflow.log-model.history` tag.
pub async fn log_model(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<LogModelReq>,
) -> Reply {
    let run_id = RunRef {
        run_id: req.run_id,
        run_uuid: None,
    };
    let run_id = run_id.id()?;
    let model: Value = req
        .model_json
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::api::wire::missing("model_json"))
        .and_then(|s| {
            serde_json::from_str(s)
                .map_err(|e| DomainError::invalid(format!("model_json is not valid JSON: {e}")))
        })?;
    let run = st.svc.store.run(ws.id, run_id).await?;
    let mut history: Vec<Value> = match run.tags.get(LOG_MODEL_HISTORY_TAG) {
        Some(t) => serde_json::from_str(t).unwrap_or_default(),
        None => Vec::new(),
    };
    history.push(model);
    let value =
        serde_json::to_string(&history).map_err(|e| DomainError::Internal(e.to_string()))?;
    let batch = LogBatch {
        tags: vec![(LOG_MODEL_HISTORY_TAG.to_string(), value)],
        ..Default::default()
    };
    log(&st, ws.id, run_id, batch, false).await
}

/// Most runs one bulk-interval request may name (MLflow's limit).
const MAX_BULK_RUNS: usize = 100;
/// Most sampled steps per run (MLflow's limit).
const MAX_BULK_STEPS: i64 = 2500;

/// `GET metrics/get-history-bulk-interval?run_ids=..&metric_key=..[&start_step&end_step]
/// [&max_results]`: one metric of up to 100 runs, sampled to at most `max_results` steps shared by
/// the runs (every run's first and last step kept), as MLflow samples it for charts.
pub async fn metric_history_bulk_interval(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
) -> Reply {
    let run_ids: Vec<&String> = q.all("run_ids").iter().filter(|r| !r.is_empty()).collect();
    if run_ids.is_empty() {
        return Err(crate::api::wire::missing("run_ids").into());
    }
    if run_ids.len() > MAX_BULK_RUNS {
        return Err(DomainError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. Received {} run_ids.",
            run_ids.len()
        ))
        .into());
    }
    let key = q
        .get("metric_key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| crate::api::wire::missing("metric_key"))?;
    let max_results = q.int("max_results")?.unwrap_or(MAX_BULK_STEPS);
    if !(1..=MAX_BULK_STEPS).contains(&max_results) {
        return Err(DomainError::invalid(format!(
            "max_results must be between 1 and {MAX_BULK_STEPS}."
        ))
        .into());
    }
    let range = match (q.int("start_step")?, q.int("end_step")?) {
        (Some(a), Some(b)) if a > b => {
            return Err(DomainError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={a} and end_step={b}."
            ))
            .into());
        }
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => {
            return Err(DomainError::invalid(
                "If either start step or end step are specified, both must be specified.",
            )
            .into());
        }
    };
    let mut histories = Vec::with_capacity(run_ids.len());
    for id in &run_ids {
        validate::run_id(id)?;
        histories.push((*id, st.svc.store.metric_history(ws.id, id, key).await?));
    }
    let mut all: Vec<i64> = histories
        .iter()
        .flat_map(|(_, h)| h.iter().map(|p| p.step))
        .collect();
    all.sort_unstable();
    all.dedup();
    let (start, end) = range.unwrap_or((0, all.last().copied().unwrap_or(0)));
    let in_range: Vec<i64> = all
        .iter()
        .copied()
        .filter(|s| (start..=end).contains(s))
        .collect();
    let mut steps: std::collections::BTreeSet<i64> = if in_range.len() <= max_results as usize {
        in_range.iter().copied().collect()
    } else {
        let interval = in_range.len() as f64 / max_results as f64;
        let mut picked: std::collections::BTreeSet<i64> = (0..max_results as usize)
            .map(|i| in_range[(i as f64 * interval) as usize])
            .collect();
        picked.extend(in_range.last());
        picked
    };
    // every run's own first and last step survive the sampling
    for (_, h) in &histories {
        for s in [
            h.iter().map(|p| p.step).min(),
            h.iter().map(|p| p.step).max(),
        ]
        .into_iter()
        .flatten()
        {
            if (start..=end).contains(&s) {
                steps.insert(s);
            }
        }
    }
    let per_run = (max_results as usize).max(steps.len());
    let mut metrics = Vec::new();
    for (run, h) in &histories {
        for p in h.iter().filter(|p| steps.contains(&p.step)).take(per_run) {
            let mut m = serde_json::to_value(MetricOut {
                key: key.to_string(),
                value: p.value,
                timestamp: p.timestamp,
                step: p.step,
            })
            .unwrap_or_default();
            m["run_id"] = json!(run);
            metrics.push(m);
        }
    }
    Ok(Json(json!({ "metrics": metrics })))
}
