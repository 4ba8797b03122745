//! Experiment endpoints.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ExperimentJson;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws};
use crate::api::reply::{Created, Empty};
use crate::api::routes::Target;
use crate::api::search;
use crate::workspace::{DomainError, LifecycleStage, ViewType, validate};

type Reply<T> = Result<Json<T>, ApiError>;

fn id_of(s: &str) -> Result<i64, DomainError> {
    crate::api::wire::experiment_id(s)
}

/// The query of `GET .../experiments`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A filter in MLflow's syntax, e.g. `name LIKE 'exp%'` (MLflow's `filter_string` is
    /// accepted too).
    #[serde(alias = "filter_string")]
    filter: Option<String>,
    /// `name`, `creation_time`, `last_update_time` or `experiment_id`, with `ASC` / `DESC`.
    #[serde(default)]
    order_by: Vec<String>,
    /// `ACTIVE_ONLY` (default), `DELETED_ONLY` or `ALL`.
    view: Option<String>,
    /// Page size (default 1000, 1 to 50000).
    max_results: Option<i64>,
    /// From the previous page's `next_page_token`.
    page_token: Option<String>,
}

/// A page of experiments.
#[derive(Serialize, JsonSchema)]
pub struct ExperimentList {
    /// The page.
    experiments: Vec<ExperimentJson>,
    /// The next page, if any.
    next_page_token: Option<String>,
}

/// `GET .../experiments?filter=..&order_by=..&view=..&max_results=..&page_token=..`.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<ListQuery>,
) -> Reply<ExperimentList> {
    let view = q
        .view
        .as_deref()
        .map(ViewType::parse)
        .transpose()?
        .unwrap_or_default();
    let (exps, next) = search::experiments(
        &st.svc,
        &ws,
        q.filter.as_deref().unwrap_or(""),
        &q.order_by,
        view,
        q.max_results,
        q.page_token.as_deref(),
    )
    .await?;
    Ok(Json(ExperimentList {
        experiments: exps.into_iter().map(ExperimentJson::from).collect(),
        next_page_token: next,
    }))
}

/// The body of `POST .../experiments`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReq {
    /// Unique in the workspace.
    name: String,
    /// Tags.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Datastore for the experiment's artifacts (default: the workspace's).
    #[serde(default)]
    artifact_datastore: Option<String>,
}

/// `POST .../experiments`.
pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<CreateReq>,
) -> Result<Created<ExperimentJson>, ApiError> {
    validate::experiment_name(&req.name)?;
    validate::tags(&req.tags)?;
    if let Some(ds) = &req.artifact_datastore {
        st.svc.store.datastore_by_name(ws.id, ds).await?;
    }
    let mut e = st
        .svc
        .store
        .create_experiment(ws.id, &req.name, &req.tags)
        .await?;
    if let Some(ds) = &req.artifact_datastore {
        st.svc.set_experiment_datastore(&ws, e.id, Some(ds)).await?;
        e = st.svc.store.experiment(ws.id, e.id).await?;
    }
    Ok(Created(e.into()))
}

/// `GET .../experiments/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<ExperimentJson> {
    let e = st.svc.store.experiment(ws.id, id_of(&id)?).await?;
    Ok(Json(e.into()))
}

/// The body of `PATCH .../experiments/{id}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateReq {
    /// New name (MLflow's `new_name` is accepted too).
    #[serde(default, alias = "new_name")]
    name: Option<String>,
    /// Tags to set.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Tags to remove.
    #[serde(default)]
    remove_tags: Vec<String>,
    /// Datastore for new artifacts of the experiment ("" for the workspace default).
    #[serde(default)]
    artifact_datastore: Option<String>,
}

/// `PATCH .../experiments/{id}`.
pub async fn update(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateReq>,
) -> Reply<ExperimentJson> {
    let id = id_of(&id)?;
    let store = &st.svc.store;
    store.experiment(ws.id, id).await?;
    if let Some(name) = &req.name {
        validate::experiment_name(name)?;
    }
    validate::tags(&req.tags)?;
    if let Some(name) = &req.name {
        store.rename_experiment(ws.id, id, name).await?;
    }
    for (k, v) in &req.tags {
        store.set_experiment_tag(ws.id, id, k, Some(v)).await?;
    }
    for k in &req.remove_tags {
        store.set_experiment_tag(ws.id, id, k, None).await?;
    }
    if let Some(ds) = &req.artifact_datastore {
        st.svc
            .set_experiment_datastore(&ws, id, Some(ds.as_str()).filter(|d| !d.is_empty()))
            .await?;
    }
    let e = store.experiment(ws.id, id).await?;
    Ok(Json(e.into()))
}

/// `DELETE .../experiments/{id}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply<Empty> {
    st.svc
        .store
        .set_experiment_stage(ws.id, id_of(&id)?, LifecycleStage::Deleted)
        .await?;
    Ok(Json(Empty {}))
}

/// `POST .../experiments/{id}:restore`.
pub async fn restore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Target(id): Target,
) -> Reply<ExperimentJson> {
    let id = id_of(&id)?;
    st.svc
        .store
        .set_experiment_stage(ws.id, id, LifecycleStage::Active)
        .await?;
    let e = st.svc.store.experiment(ws.id, id).await?;
    Ok(Json(e.into()))
}
