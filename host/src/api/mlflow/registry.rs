//! MLflow's model registry: `registered-models/*` and `model-versions/*`, aliases and legacy
//! stages, in MLflow's wire format. Parameters come from the query string (GET) or the JSON
//! body (other methods; the query string is read too, as MLflow's server does for DELETE).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::experiments::Tag;
use crate::api::AppState;
use crate::api::error::MlflowError;
use crate::api::extract::{MlflowWs, QueryMap, mlflow_from_value, parse_json};
use crate::api::paging;
use crate::api::wire::{de_opt_i64, de_stringish};
use crate::service::RegisterRequest;
use crate::store::{ModelUpdate, VersionUpdate};
use crate::workspace::filter::{Entity, Expr, parse, parse_order_by};
use crate::workspace::registry::{
    Field, ModelVersion, RegisteredModel, STAGES, VersionSource, canonical_stage, check_alias,
    check_description, check_model_name, classify_source, eval_filter, model_attribute,
    parse_version, version_attribute,
};
use crate::workspace::{DomainError, Workspace, validate};

type Reply = Result<Json<Value>, MlflowError>;

/// Most registered models in one search page (MLflow's limit).
const MAX_MODEL_RESULTS: i64 = 1000;
/// Most model versions in one search page (MLflow's limit; its client asks for 10,000).
const MAX_VERSION_RESULTS: i64 = 200_000;

/// Request parameters: the query string's values (repeated keys as lists) overlaid by the JSON
/// body's fields, deserialized into `T`.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Params<T> {
    type Rejection = MlflowError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let q = QueryMap::parse(req.uri().query().unwrap_or(""));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| DomainError::Malformed(format!("cannot read request body: {e}")))?;
        let mut merged = serde_json::Map::new();
        for (k, vs) in q.0 {
            let v = if vs.len() == 1 {
                json!(vs[0])
            } else {
                json!(vs)
            };
            merged.insert(k, v);
        }
        match parse_json::<Value>(&bytes)? {
            Value::Object(body) => merged.extend(body),
            _ => {
                return Err(DomainError::Malformed("the body must be a JSON object".into()).into());
            }
        }
        Ok(Self(mlflow_from_value(&Value::Object(merged))?))
    }
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, DomainError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::api::wire::missing(name))
}

fn version_of(v: &Option<String>) -> Result<i64, DomainError> {
    parse_version(required(v, "version")?)
}

fn de_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

fn key_values(m: &BTreeMap<String, String>) -> Vec<Value> {
    m.iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

/// A model version in MLflow's JSON shape.
fn version_json(v: &ModelVersion) -> Value {
    json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.created_at,
        "last_updated_timestamp": v.updated_at,
        "user_id": "",
        "current_stage": v.stage,
        "description": v.description,
        "source": v.source,
        "run_id": v.run_id.clone().unwrap_or_default(),
        "model_id": v.model_id.clone().unwrap_or_default(),
        "status": v.status,
        "run_link": "",
        "tags": key_values(&v.tags),
        "aliases": v.aliases,
    })
}

/// The highest version in each legacy stage (all stages, or those asked for).
fn latest_per_stage<'a>(versions: &'a [ModelVersion], stages: &[&str]) -> Vec<&'a ModelVersion> {
    let mut out: Vec<&ModelVersion> = STAGES
        .iter()
        .filter(|s| stages.is_empty() || stages.contains(s))
        .filter_map(|s| {
            versions
                .iter()
                .filter(|v| v.stage == *s)
                .max_by_key(|v| v.version)
        })
        .collect();
    out.sort_by_key(|v| v.version);
    out
}

/// A registered model in MLflow's JSON shape.
fn model_json(m: &RegisteredModel, versions: &[ModelVersion]) -> Value {
    let mine: Vec<ModelVersion> = versions
        .iter()
        .filter(|v| v.name == m.name)
        .cloned()
        .collect();
    json!({
        "name": m.name,
        "creation_timestamp": m.created_at,
        "last_updated_timestamp": m.updated_at,
        "user_id": "",
        "description": m.description,
        "latest_versions": latest_per_stage(&mine, &[]).into_iter().map(version_json).collect::<Vec<_>>(),
        "tags": key_values(&m.tags),
        "aliases": m.aliases.iter().map(|(a, v)| json!({ "alias": a, "version": v.to_string() })).collect::<Vec<_>>(),
    })
}

async fn model_reply(st: &AppState, ws: &Workspace, name: &str) -> Reply {
    let m = st.svc.store.registered_model(ws.id, name).await?;
    let versions = st.svc.store.model_versions(ws.id, Some(name), None).await?;
    Ok(Json(
        json!({ "registered_model": model_json(&m, &versions) }),
    ))
}

#[derive(Deserialize)]
pub struct CreateModelReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST registered-models/create`.
pub async fn create_model(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<CreateModelReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    check_model_name(name)?;
    let description = req.description.unwrap_or_default();
    check_description(&description)?;
    let tags = super::tag_map(req.tags)?;
    let m = st
        .svc
        .store
        .create_registered_model(ws.id, name, &description, &tags)
        .await?;
    Ok(Json(json!({ "registered_model": model_json(&m, &[]) })))
}

#[derive(Deserialize)]
pub struct NameReq {
    #[serde(default)]
    name: Option<String>,
}

/// `GET registered-models/get`.
pub async fn get_model(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<NameReq>,
) -> Reply {
    model_reply(&st, &ws, required(&req.name, "name")?).await
}

#[derive(Deserialize)]
pub struct RenameReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    new_name: Option<String>,
}

/// `POST registered-models/rename`.
pub async fn rename_model(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<RenameReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let new_name = required(&req.new_name, "new_name")?;
    check_model_name(new_name)?;
    if new_name != name {
        st.svc
            .store
            .update_registered_model(
                ws.id,
                name,
                &ModelUpdate {
                    new_name: Some(new_name.to_string()),
                    ..ModelUpdate::default()
                },
            )
            .await?;
    }
    model_reply(&st, &ws, new_name).await
}

#[derive(Deserialize)]
pub struct UpdateModelReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `PATCH registered-models/update`.
pub async fn update_model(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<UpdateModelReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    st.svc
        .store
        .update_registered_model(
            ws.id,
            name,
            &ModelUpdate {
                description: req.description,
                ..ModelUpdate::default()
            },
        )
        .await?;
    model_reply(&st, &ws, name).await
}

/// `DELETE registered-models/delete`.
pub async fn delete_model(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<NameReq>,
) -> Reply {
    st.svc
        .delete_registered_model(&ws, required(&req.name, "name")?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SearchReq {
    #[serde(default)]
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_list")]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
}

fn page_bounds(req: &SearchReq, default: i64, max: i64) -> Result<(usize, usize), DomainError> {
    let limit = req.max_results.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(DomainError::invalid(format!(
            "Invalid value {limit} for parameter 'max_results' supplied: it must be between 1 and {max}"
        )));
    }
    Ok((paging::decode(req.page_token.as_deref())?, limit as usize))
}

/// Sorts by the `order_by` clauses (then by the given tie-breakers).
fn sort_by<T>(
    items: &mut [T],
    order_by: &[String],
    resolver: crate::workspace::filter::AttributeResolver,
    field: impl Fn(&T, &str) -> Field,
    default: &[(&str, bool)],
) -> Result<(), DomainError> {
    let mut keys: Vec<(String, bool)> = Vec::new();
    for o in order_by {
        let ob = parse_order_by(o, resolver, &[Entity::Attribute])?;
        keys.push((ob.key, ob.ascending));
    }
    keys.extend(default.iter().map(|(k, a)| (k.to_string(), *a)));
    items.sort_by(|a, b| {
        for (k, asc) in &keys {
            let o = match (field(a, k), field(b, k)) {
                (Field::Text(x), Field::Text(y)) => x.cmp(&y),
                (Field::Number(x), Field::Number(y)) => x.total_cmp(&y),
                (Field::Null, Field::Null) => std::cmp::Ordering::Equal,
                (Field::Null, _) => std::cmp::Ordering::Greater,
                (_, Field::Null) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Equal,
            };
            let o = if *asc { o } else { o.reverse() };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

fn model_field(m: &RegisteredModel, key: &str) -> Field {
    match key {
        "name" => Field::Text(m.name.clone()),
        "creation_time" => Field::Number(m.created_at as f64),
        "last_update_time" => Field::Number(m.updated_at as f64),
        _ => Field::Null,
    }
}

fn version_field(v: &ModelVersion, key: &str) -> Field {
    match key {
        "name" => Field::Text(v.name.clone()),
        "version_number" => Field::Number(v.version as f64),
        "run_id" => v.run_id.clone().map(Field::Text).unwrap_or(Field::Null),
        "source" => Field::Text(v.source.clone()),
        "current_stage" => Field::Text(v.stage.clone()),
        "status" => Field::Text(v.status.clone()),
        "creation_time" => Field::Number(v.created_at as f64),
        "last_update_time" => Field::Number(v.updated_at as f64),
        _ => Field::Null,
    }
}

fn filter_of(
    f: Option<&str>,
    resolver: crate::workspace::filter::AttributeResolver,
) -> Result<Option<Expr>, DomainError> {
    parse(f.unwrap_or(""), resolver, &[Entity::Tag, Entity::Attribute])
}

/// `GET registered-models/search`.
pub async fn search_models(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<SearchReq>,
) -> Reply {
    let (offset, limit) = page_bounds(&req, 100, MAX_MODEL_RESULTS)?;
    let filter = filter_of(req.filter.as_deref(), model_attribute)?;
    let mut models = st.svc.store.registered_models(ws.id, None).await?;
    if let Some(f) = &filter {
        models.retain(|m| eval_filter(f, &|k| model_field(m, k), &m.tags));
    }
    sort_by(
        &mut models,
        &req.order_by,
        model_attribute,
        model_field,
        &[("name", true)],
    )?;
    let versions = st.svc.store.model_versions(ws.id, None, None).await?;
    let page: Vec<Value> = models
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| model_json(m, &versions))
        .collect();
    let mut out = json!({ "registered_models": page });
    if let Some(t) = paging::next(offset, models.len().saturating_sub(offset), limit) {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct LatestReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "de_list")]
    stages: Vec<String>,
}

/// `POST|GET registered-models/get-latest-versions`: the highest version in each stage.
pub async fn latest_versions(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<LatestReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let stages = req
        .stages
        .iter()
        .map(|s| canonical_stage(s))
        .collect::<Result<Vec<_>, _>>()?;
    st.svc.store.registered_model(ws.id, name).await?;
    let versions = st.svc.store.model_versions(ws.id, Some(name), None).await?;
    let latest = latest_per_stage(&versions, &stages);
    Ok(Json(json!({
        "model_versions": latest.into_iter().map(version_json).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
pub struct TagReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_stringish")]
    version: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

fn de_opt_stringish<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_stringish")] String);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

/// `POST registered-models/set-tag`.
pub async fn set_model_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<TagReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    let tags: BTreeMap<String, String> =
        [(key.to_string(), req.value.clone().unwrap_or_default())].into();
    validate::tags(&tags)?;
    st.svc
        .store
        .update_registered_model(
            ws.id,
            name,
            &ModelUpdate {
                set_tags: tags,
                ..ModelUpdate::default()
            },
        )
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE registered-models/delete-tag`.
pub async fn delete_model_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<TagReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    let m = st.svc.store.registered_model(ws.id, name).await?;
    if !m.tags.contains_key(key) {
        return Err(
            DomainError::NotFound(format!("registered model '{name}' has no tag '{key}'")).into(),
        );
    }
    st.svc
        .store
        .update_registered_model(
            ws.id,
            name,
            &ModelUpdate {
                delete_tags: vec![key.to_string()],
                ..ModelUpdate::default()
            },
        )
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct AliasReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default, deserialize_with = "de_opt_stringish")]
    version: Option<String>,
}

/// `POST registered-models/alias`: points an alias at a version.
pub async fn set_alias(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<AliasReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let version = version_of(&req.version)?;
    st.svc.set_model_alias(&ws, name, alias, version).await?;
    Ok(Json(json!({})))
}

/// `DELETE registered-models/alias`.
pub async fn delete_alias(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<AliasReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    check_alias(alias)?;
    st.svc.store.delete_model_alias(ws.id, name, alias).await?;
    Ok(Json(json!({})))
}

/// `GET registered-models/alias`: the version an alias points at.
pub async fn get_by_alias(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<AliasReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let v = st.svc.store.model_alias(ws.id, name, alias).await?;
    let v = st.svc.store.model_version(ws.id, name, v).await?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

#[derive(Deserialize)]
pub struct CreateVersionReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST model-versions/create`: registers what `source` names as the next version of an
/// existing registered model: a run's artifact directory (`runs:/<run>/<path>` or its
/// `mlflow-artifacts:` URI), a logged model (`models:/m-...` or its URI), another version
/// (`models:/NAME/VERSION`, copied without copying bytes), or an external URI (recorded as is;
/// the files stay where they are). Versions reference their files, so they outlive the run.
pub async fn create_version(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<CreateVersionReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let source = required(&req.source, "source")?;
    let run_id = req.run_id.clone().filter(|r| !r.is_empty());
    let model_id = req.model_id.clone().filter(|m| !m.is_empty());
    let register = RegisterRequest {
        name: name.to_string(),
        create_model: false,
        description: req.description.unwrap_or_default(),
        tags: super::tag_map(req.tags)?,
        aliases: Vec::new(),
    };
    // the registered model must exist before anything is resolved (MLflow's order of errors)
    st.svc.store.registered_model(ws.id, name).await?;
    let v = match classify_source(source)? {
        VersionSource::Run { run_id: run, path } => {
            if run_id.as_deref().is_some_and(|r| r != run) {
                return Err(invalid_source_for(source, "run_id").into());
            }
            match st
                .svc
                .register_model_from_run(
                    &ws,
                    register.clone(),
                    &run,
                    &path,
                    Some(source.to_string()),
                )
                .await
            {
                // a run this server does not hold (or a directory it has no files in) is
                // recorded as MLflow records it: the source, no files
                Err(DomainError::NotFound(_)) => {
                    st.svc
                        .register_model_external(&ws, register, source.to_string(), Some(run))
                        .await?
                }
                other => other?,
            }
        }
        VersionSource::LoggedModel { model_id: m, path } => {
            if model_id.as_deref().is_some_and(|given| given != m) {
                return Err(invalid_source_for(source, "model_id").into());
            }
            st.svc
                .register_model_from_logged_model(&ws, register, &m, &path, source.to_string())
                .await?
        }
        VersionSource::Version(from) => {
            let src = st.svc.resolve_in(&ws, &from.name, &from.selector).await?;
            let canonical = src.uri();
            st.svc
                .register_model_copy(&ws, register, &from, canonical)
                .await?
        }
        VersionSource::External => {
            st.svc
                .register_model_external(&ws, register, source.to_string(), run_id)
                .await?
        }
        VersionSource::Local => {
            // only inside the run's own local artifact directory (an experiment created with a
            // local artifact_location), as MLflow allows it
            let inside = match &run_id {
                Some(r) => {
                    let run = st.svc.store.run_info(ws.id, r).await?;
                    let root = run.artifact_uri.trim_start_matches("file://").to_string();
                    let src = source.trim_start_matches("file://");
                    !root.contains(':') && (src == root || src.starts_with(&format!("{root}/")))
                }
                None => false,
            };
            if !inside {
                return Err(DomainError::invalid(format!(
                    "Invalid model version source: '{source}'. To use a local path as a model version source, the run_id request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the run_id."
                ))
                .into());
            }
            st.svc
                .register_model_external(&ws, register, source.to_string(), run_id)
                .await?
        }
    };
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

fn invalid_source_for(source: &str, id: &str) -> DomainError {
    DomainError::invalid(format!(
        "Invalid model version source: '{source}'. The {id} request parameter must identify the resource that contains the source."
    ))
}

#[derive(Deserialize)]
pub struct VersionReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_stringish")]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    archive_existing_versions: Option<bool>,
}

fn de_opt_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) => Some(s.eq_ignore_ascii_case("true")),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a boolean, got {other}"
            )));
        }
    })
}

/// `GET model-versions/get`.
pub async fn get_version(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<VersionReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let v = st
        .svc
        .store
        .model_version(ws.id, name, version_of(&req.version)?)
        .await?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

/// `PATCH model-versions/update`.
pub async fn update_version(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<VersionReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let version = version_of(&req.version)?;
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let v = st
        .svc
        .store
        .update_model_version(
            ws.id,
            name,
            version,
            &VersionUpdate {
                description: req.description,
                ..VersionUpdate::default()
            },
        )
        .await?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

/// `POST model-versions/transition-stage`: sets the legacy stage, optionally archiving the
/// other versions in that stage.
pub async fn transition_stage(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<VersionReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let version = version_of(&req.version)?;
    let stage = canonical_stage(required(&req.stage, "stage")?)?;
    let v = st
        .svc
        .store
        .update_model_version(
            ws.id,
            name,
            version,
            &VersionUpdate {
                stage: Some(stage.to_string()),
                ..VersionUpdate::default()
            },
        )
        .await?;
    if req.archive_existing_versions == Some(true) && matches!(stage, "Staging" | "Production") {
        st.svc
            .store
            .archive_other_versions(ws.id, name, version, stage)
            .await?;
    }
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

/// `DELETE model-versions/delete`.
pub async fn delete_version(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<VersionReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    st.svc
        .delete_model_version(&ws, name, version_of(&req.version)?)
        .await?;
    Ok(Json(json!({})))
}

/// `GET model-versions/search`.
pub async fn search_versions(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<SearchReq>,
) -> Reply {
    let (offset, limit) = page_bounds(&req, 10_000, MAX_VERSION_RESULTS)?;
    let filter = filter_of(req.filter.as_deref(), version_attribute)?;
    let mut versions = st.svc.store.model_versions(ws.id, None, None).await?;
    if let Some(f) = &filter {
        versions.retain(|v| eval_filter(f, &|k| version_field(v, k), &v.tags));
    }
    // MLflow's order: the most recently updated first by default; ties by name, newest version
    let order_by = if req.order_by.is_empty() {
        vec!["last_updated_timestamp DESC".to_string()]
    } else {
        req.order_by.clone()
    };
    sort_by(
        &mut versions,
        &order_by,
        version_attribute,
        version_field,
        &[("name", true), ("version_number", false)],
    )?;
    let page: Vec<Value> = versions
        .iter()
        .skip(offset)
        .take(limit)
        .map(version_json)
        .collect();
    let mut out = json!({ "model_versions": page });
    if let Some(t) = paging::next(offset, versions.len().saturating_sub(offset), limit) {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

/// `POST model-versions/set-tag`.
pub async fn set_version_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<TagReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let version = version_of(&req.version)?;
    let key = required(&req.key, "key")?;
    let tags: BTreeMap<String, String> =
        [(key.to_string(), req.value.clone().unwrap_or_default())].into();
    validate::tags(&tags)?;
    st.svc
        .store
        .update_model_version(
            ws.id,
            name,
            version,
            &VersionUpdate {
                set_tags: tags,
                ..VersionUpdate::default()
            },
        )
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE model-versions/delete-tag`.
pub async fn delete_version_tag(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<TagReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let version = version_of(&req.version)?;
    let key = required(&req.key, "key")?;
    let v = st.svc.store.model_version(ws.id, name, version).await?;
    if !v.tags.contains_key(key) {
        return Err(DomainError::NotFound(format!(
            "model version {name}/{version} has no tag '{key}'"
        ))
        .into());
    }
    st.svc
        .store
        .update_model_version(
            ws.id,
            name,
            version,
            &VersionUpdate {
                delete_tags: vec![key.to_string()],
                ..VersionUpdate::default()
            },
        )
        .await?;
    Ok(Json(json!({})))
}

/// `GET model-versions/get-download-uri`: where the version's own files are served (through
/// the artifact proxy, so they stay reachable after the source run is deleted).
pub async fn download_uri(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<VersionReq>,
) -> Reply {
    let name = required(&req.name, "name")?;
    let v = st
        .svc
        .store
        .model_version(ws.id, name, version_of(&req.version)?)
        .await?;
    // a version recorded with a source this server holds no files of downloads from its source
    let external = st
        .svc
        .store
        .model_files(ws.id, &v.name, v.version)
        .await?
        .is_empty();
    let uri = if external {
        v.source.clone()
    } else {
        registry_artifact_uri(&v)
    };
    Ok(Json(json!({ "artifact_uri": uri })))
}

/// The MLflow artifact URI of a version's files: `mlflow-artifacts:/_registry/<name>/<version>`.
pub(crate) fn registry_artifact_uri(v: &ModelVersion) -> String {
    format!(
        "mlflow-artifacts:/{}/{}/{}",
        super::artifacts::REGISTRY_PREFIX,
        v.name,
        v.version
    )
}
