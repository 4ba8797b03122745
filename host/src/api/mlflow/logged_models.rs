//! MLflow 3 logged models: `/api/2.0/mlflow/logged-models/*` (create, get, finalize, delete,
//! search, tags, params, artifact listing and download).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::experiments::Tag;
use super::registry::Params;
use crate::api::error::MlflowError;
use crate::api::extract::{MlflowWs, QueryMap};
use crate::api::wire::{MetricOut, de_id_string, de_opt_i64, experiment_id};
use crate::api::{AppState, artifact_response, paging};
use crate::service::ArtifactScope;
use crate::store::NewLoggedModel;
use crate::workspace::filter::{Entity, parse_order_by};
use crate::workspace::logged_model::{
    self, DatasetScope, LoggedModel, LoggedModelStatus, MAX_SEARCH_RESULTS, check_model_id,
};
use crate::workspace::registry::Field;
use crate::workspace::{DomainError, validate};

type Reply = Result<Json<Value>, MlflowError>;

fn pairs(m: &BTreeMap<String, String>) -> Vec<Value> {
    m.iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

/// A logged model in MLflow's JSON shape.
pub(crate) fn model_json(m: &LoggedModel) -> Value {
    let mut info = json!({
        "model_id": m.id,
        "experiment_id": m.experiment_id.to_string(),
        "name": m.name,
        "artifact_uri": m.artifact_uri,
        "creation_timestamp_ms": m.created_at,
        "last_updated_timestamp_ms": m.updated_at,
        "status": m.status.as_str(),
        "tags": pairs(&m.tags),
    });
    if let Some(t) = &m.model_type {
        info["model_type"] = json!(t);
    }
    if let Some(r) = &m.source_run_id {
        info["source_run_id"] = json!(r);
    }
    if let Some(s) = &m.status_message {
        info["status_message"] = json!(s);
    }
    let metrics: Vec<Value> = m
        .metrics
        .iter()
        .map(|x| {
            let mut v = serde_json::to_value(MetricOut {
                key: x.key.clone(),
                value: x.value,
                timestamp: x.timestamp,
                step: x.step,
            })
            .unwrap_or_default();
            v["model_id"] = json!(m.id);
            for (k, f) in [
                ("run_id", &x.run_id),
                ("dataset_name", &x.dataset_name),
                ("dataset_digest", &x.dataset_digest),
            ] {
                if let Some(f) = f {
                    v[k] = json!(f);
                }
            }
            v
        })
        .collect();
    json!({ "info": info, "data": { "params": pairs(&m.params), "metrics": metrics } })
}

fn tag_pairs(tags: Vec<Tag>, what: &str) -> Result<BTreeMap<String, String>, DomainError> {
    let mut out = BTreeMap::new();
    for t in tags {
        validate::key(what, &t.key)?;
        out.insert(t.key, t.value);
    }
    Ok(out)
}

#[derive(Deserialize)]
pub struct CreateReq {
    #[serde(default, deserialize_with = "de_id_string")]
    experiment_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<Tag>,
    #[serde(default)]
    tags: Vec<Tag>,
}

/// `POST logged-models`.
pub async fn create(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<CreateReq>,
) -> Reply {
    if req.experiment_id.is_empty() {
        return Err(crate::api::wire::missing("experiment_id").into());
    }
    let experiment_id = experiment_id(&req.experiment_id)?;
    let name = match req.name.filter(|n| !n.is_empty()) {
        Some(n) => {
            logged_model::check_name(&n)?;
            n
        }
        None => crate::store::generate_run_name(),
    };
    let model = st
        .svc
        .store
        .create_logged_model(
            ws.id,
            NewLoggedModel {
                experiment_id,
                name,
                model_type: req.model_type.filter(|t| !t.is_empty()),
                source_run_id: req.source_run_id.filter(|r| !r.is_empty()),
                params: tag_pairs(req.params, "param")?,
                tags: tag_pairs(req.tags, "tag")?,
            },
        )
        .await?;
    Ok(Json(json!({ "model": model_json(&model) })))
}

/// `GET logged-models/{model_id}`.
pub async fn get(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    q: QueryMap,
) -> Reply {
    let id = model_param(&p)?;
    let allow_deleted = q.get("allow_deleted").is_some_and(|v| v == "true");
    let model = st.svc.store.logged_model(ws.id, id, allow_deleted).await?;
    Ok(Json(json!({ "model": model_json(&model) })))
}

fn model_param(p: &[(String, String)]) -> Result<&str, DomainError> {
    let id = p
        .iter()
        .find(|(k, _)| k == "model_id")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    check_model_id(id)?;
    Ok(id)
}

#[derive(Deserialize)]
pub struct FinalizeReq {
    #[serde(default)]
    status: Option<Value>,
}

/// `PATCH logged-models/{model_id}`: finalize (set the status).
pub async fn finalize(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    Params(req): Params<FinalizeReq>,
) -> Reply {
    let id = model_param(&p)?;
    let status = match req.status {
        Some(Value::String(s)) => LoggedModelStatus::parse(&s)?,
        Some(Value::Number(n)) => LoggedModelStatus::parse(&n.to_string())?,
        _ => {
            return Err(crate::api::wire::missing("status").into());
        }
    };
    let model = st
        .svc
        .store
        .set_logged_model_status(ws.id, id, status, None)
        .await?;
    Ok(Json(json!({ "model": model_json(&model) })))
}

/// `DELETE logged-models/{model_id}`.
pub async fn delete(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
) -> Reply {
    let id = model_param(&p)?;
    st.svc.store.delete_logged_model(ws.id, id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct TagsReq {
    #[serde(default)]
    tags: Vec<Tag>,
}

/// `PATCH logged-models/{model_id}/tags`.
pub async fn set_tags(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    Params(req): Params<TagsReq>,
) -> Reply {
    let id = model_param(&p)?;
    let tags = tag_pairs(req.tags, "tag")?;
    st.svc
        .store
        .set_logged_model_pairs(ws.id, id, &tags, false)
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE logged-models/{model_id}/tags/{tag_key}`.
pub async fn delete_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
) -> Reply {
    let id = model_param(&p)?;
    let key = p
        .iter()
        .find(|(k, _)| k == "tag_key")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    st.svc.store.delete_logged_model_tag(ws.id, id, key).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ParamsReq {
    #[serde(default)]
    params: Vec<Tag>,
}

/// `POST logged-models/{model_id}/params`.
pub async fn log_params(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    Params(req): Params<ParamsReq>,
) -> Reply {
    let id = model_param(&p)?;
    let params = tag_pairs(req.params, "param")?;
    for (k, v) in &params {
        validate::param_value(k, v)?;
    }
    st.svc
        .store
        .set_logged_model_pairs(ws.id, id, &params, true)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
pub struct DatasetReq {
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
pub struct OrderReq {
    #[serde(default)]
    field_name: Option<String>,
    #[serde(default)]
    ascending: Option<bool>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
pub struct SearchReq {
    #[serde(default)]
    experiment_ids: Vec<Value>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetReq>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderReq>,
    #[serde(default)]
    page_token: Option<String>,
}

fn scopes(datasets: Vec<DatasetReq>) -> Result<Vec<DatasetScope>, DomainError> {
    datasets
        .into_iter()
        .map(|d| match d.dataset_name.filter(|n| !n.is_empty()) {
            Some(name) => Ok(DatasetScope {
                name,
                digest: d.dataset_digest.filter(|d| !d.is_empty()),
            }),
            None => Err(DomainError::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            )),
        })
        .collect()
}

/// One ordering key of a logged model search.
struct SortKey {
    attribute: Option<&'static str>,
    metric: Option<String>,
    ascending: bool,
    scopes: Vec<DatasetScope>,
}

fn sort_keys(order_by: Vec<OrderReq>) -> Result<Vec<SortKey>, DomainError> {
    let mut keys = Vec::new();
    let (mut has_created, mut has_id) = (false, false);
    for o in order_by {
        let field = o.field_name.unwrap_or_default();
        let ascending = o.ascending.unwrap_or(true);
        let ob = parse_order_by(
            &field,
            logged_model::attribute,
            &[Entity::Attribute, Entity::Metric],
        )
        .map_err(|_| DomainError::invalid(format!("Invalid order by field name: {field}")))?;
        match ob.entity {
            Entity::Metric => {
                let mut scopes = Vec::new();
                if let Some(name) = o.dataset_name.filter(|n| !n.is_empty()) {
                    scopes.push(DatasetScope {
                        name,
                        digest: o.dataset_digest.filter(|d| !d.is_empty()),
                    });
                }
                keys.push(SortKey {
                    attribute: None,
                    metric: Some(ob.key),
                    ascending,
                    scopes,
                });
            }
            _ => {
                let attr = logged_model::attribute(&ob.key).ok_or_else(|| {
                    DomainError::invalid(format!("Invalid order by field name: {field}"))
                })?;
                has_created |= attr == "creation_timestamp";
                has_id |= attr == "model_id";
                keys.push(SortKey {
                    attribute: Some(attr),
                    metric: None,
                    ascending,
                    scopes: Vec::new(),
                });
            }
        }
    }
    // MLflow's tie-breakers: newest first, then by id
    if !has_created {
        keys.push(SortKey {
            attribute: Some("creation_timestamp"),
            metric: None,
            ascending: false,
            scopes: Vec::new(),
        });
    }
    if !has_id {
        keys.push(SortKey {
            attribute: Some("model_id"),
            metric: None,
            ascending: true,
            scopes: Vec::new(),
        });
    }
    Ok(keys)
}

fn sort_value(m: &LoggedModel, k: &SortKey) -> Field {
    match (&k.attribute, &k.metric) {
        (Some(a), _) => m.attribute(a),
        (None, Some(metric)) => m
            .latest_metric(metric, &k.scopes)
            .map(Field::Number)
            .unwrap_or(Field::Null),
        _ => Field::Null,
    }
}

/// `POST logged-models/search`.
pub async fn search(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<SearchReq>,
) -> Reply {
    let limit = req.max_results.unwrap_or(MAX_SEARCH_RESULTS);
    if limit < 1 {
        return Err(DomainError::invalid(format!(
            "Invalid value {limit} for parameter 'max_results' supplied: it must be a positive integer"
        ))
        .into());
    }
    let ids = crate::api::search::id_strings(&req.experiment_ids)
        .iter()
        .map(|s| experiment_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    let scopes = scopes(req.datasets)?;
    let filter = logged_model::parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let keys = sort_keys(req.order_by)?;
    let offset = paging::decode(req.page_token.as_deref())?;
    let mut models = st.svc.store.logged_models(ws.id, &ids).await?;
    models.retain(|m| {
        filter.as_ref().is_none_or(|f| m.matches(f, &scopes))
            && (scopes.is_empty() || m.metrics.iter().any(|x| logged_model::in_scope(x, &scopes)))
    });
    models.sort_by(|a, b| {
        for k in &keys {
            let o = match (sort_value(a, k), sort_value(b, k)) {
                (Field::Text(x), Field::Text(y)) => x.cmp(&y),
                (Field::Number(x), Field::Number(y)) => x.total_cmp(&y),
                (Field::Null, Field::Null) => std::cmp::Ordering::Equal,
                // missing values sort last in either direction
                (Field::Null, _) => return std::cmp::Ordering::Greater,
                (_, Field::Null) => return std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Equal,
            };
            let o = if k.ascending { o } else { o.reverse() };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let limit = limit as usize;
    let page: Vec<Value> = models
        .iter()
        .skip(offset)
        .take(limit)
        .map(model_json)
        .collect();
    let mut out = json!({ "models": page });
    if let Some(t) = paging::next(offset, models.len().saturating_sub(offset), limit) {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

/// `GET logged-models/{model_id}/artifacts/directories?artifact_directory_path=`.
pub async fn list_artifacts(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    q: QueryMap,
) -> Reply {
    let id = model_param(&p)?;
    let model = st.svc.store.logged_model(ws.id, id, false).await?;
    let dir = q.get("artifact_directory_path").unwrap_or("");
    let files = st
        .svc
        .list_artifacts(&ws, ArtifactScope::Model(id), dir)
        .await?;
    Ok(Json(json!({
        "root_uri": model.artifact_uri,
        "files": files.iter().map(|f| super::artifacts::file_json(f, 0)).collect::<Vec<_>>(),
    })))
}

/// `GET logged-models/{model_id}/artifacts/files?artifact_file_path=`: one file's bytes.
pub async fn download_artifact(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    q: QueryMap,
) -> Result<Response, MlflowError> {
    let id = model_param(&p)?;
    let path = q.require("artifact_file_path")?;
    let (file, reader) = st
        .svc
        .open_artifact(&ws, ArtifactScope::Model(id), path)
        .await?;
    Ok(artifact_response(&file, reader))
}
