//! MLflow experiment endpoints.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::experiment_json;
use crate::api::AppState;
use crate::api::error::MlflowError;
use crate::api::extract::{MlflowJson, MlflowWs, QueryMap};
use crate::api::search;
use crate::api::wire::{de_id_string, de_opt_i64, experiment_id};
use crate::workspace::{DomainError, LifecycleStage, ViewType, validate};

type Reply = Result<Json<Value>, MlflowError>;

/// A key/value pair in MLflow requests.
#[derive(Debug, Deserialize)]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

#[derive(Deserialize)]
pub struct CreateReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn create(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<CreateReq>,
) -> Reply {
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| crate::api::wire::missing("name"))?;
    validate::experiment_name(&name)?;
    let location = req
        .artifact_location
        .as_deref()
        .filter(|l| !l.is_empty())
        .map(artifact_location)
        .transpose()?;
    let tags = super::tag_map(req.tags)?;
    let e = st
        .svc
        .store
        .create_experiment_at(ws.id, &name, &tags, location.as_deref())
        .await?;
    Ok(Json(json!({ "experiment_id": e.id.to_string() })))
}

/// A client-given experiment artifact location, as MLflow keeps it: a URI as given, a local
/// path made absolute (against the server's working directory, as `mlflow server` does). The
/// client then reads and writes those artifacts itself. A `mlflow-artifacts:` location other than
/// the server's own is refused: proxied artifacts live in the workspace's datastore.
fn artifact_location(loc: &str) -> Result<String, DomainError> {
    if loc.starts_with("mlflow-artifacts:") {
        return Err(DomainError::invalid(format!(
            "artifact_location '{loc}' is not supported: artifacts proxied by this server live in \
             the workspace's datastore, under a location the server chooses; omit \
             artifact_location, or give a path or URI (file:, s3:, ...) that the client writes to itself"
        )));
    }
    let has_scheme = loc.split_once(':').is_some_and(|(s, _)| {
        s.len() > 1
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    });
    if has_scheme {
        return Ok(loc.to_string());
    }
    let path = std::path::Path::new(loc);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| DomainError::Internal(format!("working directory: {e}")))?
            .join(path)
    };
    Ok(abs.to_string_lossy().into_owned())
}

pub async fn get(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let id = experiment_id(q.require("experiment_id")?)?;
    let e = st.svc.store.experiment(ws.id, id).await?;
    Ok(Json(json!({ "experiment": experiment_json(&e) })))
}

pub async fn get_by_name(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let name = q.require("experiment_name")?;
    let e = st.svc.store.experiment_by_name(ws.id, name).await?;
    Ok(Json(json!({ "experiment": experiment_json(&e) })))
}

#[derive(Deserialize, Default)]
pub struct SearchReq {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    view_type: Option<String>,
}

async fn run_search(st: &AppState, ws: &crate::workspace::Workspace, req: SearchReq) -> Reply {
    let view = req
        .view_type
        .as_deref()
        .map(ViewType::parse)
        .transpose()?
        .unwrap_or_default();
    let (exps, next) = search::experiments(
        &st.svc,
        ws,
        req.filter.as_deref().unwrap_or(""),
        &req.order_by,
        view,
        req.max_results,
        req.page_token.as_deref(),
    )
    .await?;
    let mut out = json!({ "experiments": exps.iter().map(experiment_json).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

pub async fn search(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<SearchReq>,
) -> Reply {
    run_search(&st, &ws, req).await
}

pub async fn search_get(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let req = SearchReq {
        max_results: q.int("max_results")?,
        page_token: q.get("page_token").map(String::from),
        filter: q.get("filter").map(String::from),
        order_by: q.all("order_by").to_vec(),
        view_type: q.get("view_type").map(String::from),
    };
    run_search(&st, &ws, req).await
}

#[derive(Deserialize)]
pub struct IdReq {
    #[serde(default, deserialize_with = "de_id_string")]
    experiment_id: String,
    #[serde(default)]
    new_name: Option<String>,
}

fn required_id(id: &str) -> Result<i64, DomainError> {
    if id.is_empty() {
        return Err(crate::api::wire::missing("experiment_id"));
    }
    experiment_id(id)
}

pub async fn update(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<IdReq>,
) -> Reply {
    let id = required_id(&req.experiment_id)?;
    let name = req
        .new_name
        .ok_or_else(|| crate::api::wire::missing("new_name"))?;
    validate::experiment_name(&name)?;
    st.svc.store.rename_experiment(ws.id, id, &name).await?;
    Ok(Json(json!({})))
}

pub async fn delete(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<IdReq>,
) -> Reply {
    let id = required_id(&req.experiment_id)?;
    st.svc
        .store
        .set_experiment_stage(ws.id, id, LifecycleStage::Deleted)
        .await?;
    Ok(Json(json!({})))
}

pub async fn restore(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<IdReq>,
) -> Reply {
    let id = required_id(&req.experiment_id)?;
    st.svc
        .store
        .set_experiment_stage(ws.id, id, LifecycleStage::Active)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct TagReq {
    #[serde(default, deserialize_with = "de_id_string")]
    experiment_id: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
}

pub async fn set_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<TagReq>,
) -> Reply {
    let id = required_id(&req.experiment_id)?;
    validate::key("tag", &req.key)?;
    let value = req.value.unwrap_or_default();
    validate::tag_value(&req.key, &value)?;
    st.svc
        .store
        .set_experiment_tag(ws.id, id, &req.key, Some(&value))
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    MlflowJson(req, _): MlflowJson<TagReq>,
) -> Reply {
    let id = required_id(&req.experiment_id)?;
    st.svc
        .store
        .set_experiment_tag(ws.id, id, &req.key, None)
        .await?;
    Ok(Json(json!({})))
}
