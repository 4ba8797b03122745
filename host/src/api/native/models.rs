//! Model registry endpoints: registered models, versions (registered from a run's artifacts or
//! uploaded as multipart), aliases, and file downloads.
//!
//! Upload: `POST .../models/{name}/versions` with `Content-Type: multipart/form-data`, one part
//! named `file` per file whose filename is the path inside the version (e.g. `model.json`,
//! `extra/vocab.txt`), plus an optional part named `meta` holding
//! `{"description", "tags", "aliases"}` as JSON.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, QueryMap, Ws, parse_json};
use crate::api::{AppState, artifact_response, paging};
use crate::store::{ArtifactRow, ModelUpdate, VersionUpdate};
use crate::tracking::{ModelFileUpload, RegisterRequest};
use crate::workspace::registry::{
    ModelVersion, RegisteredModel, Selector, canonical_stage, check_description, check_model_name,
    parse_version,
};
use crate::workspace::{DomainError, Workspace, validate};

type Reply = Result<Json<Value>, ApiError>;

/// A model version as JSON (with its files when given).
pub(crate) fn version_json(v: &ModelVersion, files: Option<&[ArtifactRow]>) -> Value {
    let mut out = json!({
        "name": v.name,
        "version": v.version,
        "ref": v.uri(),
        "source": v.source,
        "run_id": v.run_id,
        "logged_model_id": v.model_id,
        "status": v.status,
        "stage": v.stage,
        "aliases": v.aliases,
        "tags": v.tags,
        "dataset": v.dataset,
        "job_id": v.job,
        "description": v.description,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
    });
    if let Some(files) = files {
        out["files"] = json!(
            files
                .iter()
                .map(|f| json!({ "path": f.path, "size": f.size, "digest": f.digest }))
                .collect::<Vec<_>>()
        );
    }
    out
}

/// A registered model as JSON (with its versions when given).
fn model_json(m: &RegisteredModel, versions: Option<&[ModelVersion]>) -> Value {
    let mut out = json!({
        "name": m.name,
        "description": m.description,
        "tags": m.tags,
        "aliases": m.aliases,
        "latest_version": m.latest_version,
        "version_count": m.version_count,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    });
    if let Some(vs) = versions {
        out["versions"] = json!(vs.iter().map(|v| version_json(v, None)).collect::<Vec<_>>());
    }
    out
}

/// `{version}` in a path: a number, `@alias` or `latest`.
fn selector_of(v: &str) -> Result<Selector, DomainError> {
    if let Some(alias) = v.strip_prefix('@') {
        return Ok(Selector::Alias(alias.to_string()));
    }
    if v.eq_ignore_ascii_case("latest") {
        return Ok(Selector::Latest);
    }
    parse_version(v).map(Selector::Version).map_err(|_| {
        DomainError::invalid(format!(
            "model version must be a positive integer, '@ALIAS' or 'latest', got '{v}'"
        ))
    })
}

async fn resolve(
    st: &AppState,
    ws: &Workspace,
    name: &str,
    version: &str,
) -> Result<ModelVersion, DomainError> {
    st.tracking
        .resolve_in(ws, name, &selector_of(version)?)
        .await
}

/// Tag changes: a string sets the tag, `null` removes it.
fn tag_changes(
    tags: BTreeMap<String, Option<String>>,
) -> Result<(BTreeMap<String, String>, Vec<String>), DomainError> {
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    for (k, v) in tags {
        match v {
            Some(v) => {
                set.insert(k, v);
            }
            None => {
                validate::key("tag", &k)?;
                delete.push(k);
            }
        }
    }
    validate::tags(&set)?;
    Ok((set, delete))
}

/// `GET .../models?max_results=N&page_token=T`: registered models by name.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws, q: QueryMap) -> Reply {
    let limit = q.int("max_results")?.unwrap_or(100).clamp(1, 1000) as usize;
    let offset = paging::decode(q.get("page_token"))?;
    let all = st.tracking.store.registered_models(ws.id, None).await?;
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| model_json(m, None))
        .collect();
    let next = paging::next(offset, all.len().saturating_sub(offset), limit);
    Ok(Json(json!({ "models": page, "next_page_token": next })))
}

/// `GET .../models/{name}`: the model with its versions.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply {
    let m = st.tracking.store.registered_model(ws.id, &name).await?;
    let versions = st
        .tracking
        .store
        .model_versions(ws.id, Some(&name), None)
        .await?;
    Ok(Json(model_json(&m, Some(&versions))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelReq {
    /// New name.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, Option<String>>,
}

/// `PATCH .../models/{name}` with `{"name"?, "description"?, "tags"?: {k: v | null}}`.
pub async fn update(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateModelReq>,
) -> Reply {
    if let Some(n) = &req.name {
        check_model_name(n)?;
    }
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let (set_tags, delete_tags) = tag_changes(req.tags)?;
    let m = st
        .tracking
        .store
        .update_registered_model(
            ws.id,
            &name,
            &ModelUpdate {
                new_name: req.name.filter(|n| *n != name),
                description: req.description,
                set_tags,
                delete_tags,
            },
        )
        .await?;
    Ok(Json(model_json(&m, None)))
}

/// `DELETE .../models/{name}`: the model with all its versions.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply {
    st.tracking.delete_registered_model(&ws, &name).await?;
    Ok(Json(json!({ "deleted": name })))
}

/// `GET .../models/{name}/versions`: every version of a model.
pub async fn list_versions(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply {
    st.tracking.store.registered_model(ws.id, &name).await?;
    let versions = st
        .tracking
        .store
        .model_versions(ws.id, Some(&name), None)
        .await?;
    Ok(Json(json!({
        "versions": versions.iter().map(|v| version_json(v, None)).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    #[serde(default)]
    run_id: Option<String>,
    /// An MLflow logged model (`m-...`) to register instead of a run's directory.
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    aliases: Vec<String>,
}

/// `POST .../models/{name}/versions`: registers the next version, from
/// `{"run_id", "path", "description"?, "tags"?, "aliases"?}` or from a multipart upload (see
/// the module documentation). Creates the registered model if absent.
pub async fn register(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let v = if multipart {
        let form = Multipart::from_request(req, &st)
            .await
            .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?;
        let (meta, files) = read_upload(form).await?;
        st.tracking
            .register_model_upload(&ws, register_request(&name, meta), files)
            .await?
    } else {
        let bytes = axum::body::Bytes::from_request(req, &st)
            .await
            .map_err(|e| DomainError::Malformed(format!("cannot read request body: {e}")))?;
        let mut meta: RegisterReq = parse_json(&bytes)?;
        if let Some(model_id) = meta.model_id.take() {
            let model_id = model_id
                .strip_prefix("models:/")
                .unwrap_or(&model_id)
                .to_string();
            if meta.run_id.is_some() {
                return Err(DomainError::invalid(
                    "give either 'run_id' (a run's directory) or 'model_id' (a logged model), not both",
                )
                .into());
            }
            let path = meta.path.take().unwrap_or_default();
            let source = format!("models:/{model_id}");
            st.tracking
                .register_model_from_logged_model(
                    &ws,
                    register_request(&name, meta),
                    &model_id,
                    &path,
                    source,
                )
                .await?
        } else {
            let run_id = meta.run_id.take().ok_or_else(|| {
                DomainError::invalid(
                    "missing 'run_id' or 'model_id': register from a run's artifacts or an MLflow logged model, or upload files as multipart/form-data",
                )
            })?;
            let path = meta.path.take().unwrap_or_else(|| "model".to_string());
            st.tracking
                .register_model_from_run(&ws, register_request(&name, meta), &run_id, &path, None)
                .await?
        }
    };
    let files = st
        .tracking
        .store
        .model_files(ws.id, &v.name, v.version)
        .await?;
    Ok((StatusCode::CREATED, Json(version_json(&v, Some(&files)))))
}

fn register_request(name: &str, meta: RegisterReq) -> RegisterRequest {
    RegisterRequest {
        name: name.to_string(),
        create_model: true,
        description: meta.description.unwrap_or_default(),
        tags: meta.tags,
        aliases: meta.aliases,
    }
}

/// Reads the `meta` and `file` parts of an upload.
async fn read_upload(
    mut form: Multipart,
) -> Result<(RegisterReq, Vec<ModelFileUpload>), DomainError> {
    let mut meta = RegisterReq::default();
    let mut files = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?
    {
        let part = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(String::from);
        let data = field
            .bytes()
            .await
            .map_err(|e| DomainError::invalid(format!("cannot read part '{part}': {e}")))?;
        match part.as_str() {
            "meta" => {
                meta = parse_json(&data)?;
                if meta.run_id.is_some() || meta.path.is_some() {
                    return Err(DomainError::invalid(
                        "an upload's meta takes description, tags and aliases only",
                    ));
                }
            }
            "file" => {
                let path = file_name.filter(|f| !f.is_empty()).ok_or_else(|| {
                    DomainError::invalid(
                        "a 'file' part needs a filename: the path inside the model version",
                    )
                })?;
                files.push(ModelFileUpload {
                    path,
                    bytes: data.to_vec(),
                });
            }
            other => {
                return Err(DomainError::invalid(format!(
                    "unexpected part '{other}': send 'file' parts and an optional 'meta'"
                )));
            }
        }
    }
    Ok((meta, files))
}

/// `GET .../models/{name}/versions/{version}` (number, `@alias` or `latest`): the version with
/// its lineage and files.
pub async fn get_version(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply {
    let v = resolve(&st, &ws, &name, &version).await?;
    let files = st
        .tracking
        .store
        .model_files(ws.id, &v.name, v.version)
        .await?;
    Ok(Json(version_json(&v, Some(&files))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersionReq {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, Option<String>>,
}

/// `PATCH .../models/{name}/versions/{version}` with `{"description"?, "stage"?, "tags"?}`.
pub async fn update_version(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<UpdateVersionReq>,
) -> Reply {
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let stage = req.stage.as_deref().map(canonical_stage).transpose()?;
    let (set_tags, delete_tags) = tag_changes(req.tags)?;
    let v = resolve(&st, &ws, &name, &version).await?;
    let v = st
        .tracking
        .store
        .update_model_version(
            ws.id,
            &name,
            v.version,
            &VersionUpdate {
                description: req.description,
                stage: stage.map(String::from),
                set_tags,
                delete_tags,
            },
        )
        .await?;
    Ok(Json(version_json(&v, None)))
}

/// `DELETE .../models/{name}/versions/{version}`.
pub async fn delete_version(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply {
    let v = resolve(&st, &ws, &name, &version).await?;
    st.tracking
        .delete_model_version(&ws, &name, v.version)
        .await?;
    Ok(Json(json!({ "deleted": v.uri() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasReq {
    version: i64,
}

/// `PUT .../models/{name}/aliases/{alias}` with `{"version": N}`: points (or moves) the alias.
pub async fn put_alias(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, alias)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<AliasReq>,
) -> Reply {
    let v = st
        .tracking
        .set_model_alias(&ws, &name, &alias, req.version)
        .await?;
    Ok(Json(version_json(&v, None)))
}

/// `DELETE .../models/{name}/aliases/{alias}`.
pub async fn delete_alias(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, alias)): Path<(String, String, String)>,
) -> Reply {
    st.tracking
        .store
        .delete_model_alias(ws.id, &name, &alias)
        .await?;
    Ok(Json(json!({ "deleted": format!("{name}@{alias}") })))
}

/// `GET .../models/{name}/versions/{version}/files/{*path}`: one file of the version.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version, path)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let v = resolve(&st, &ws, &name, &version).await?;
    let (file, reader) = st
        .tracking
        .open_model_version_file(&ws, &name, v.version, &path)
        .await?;
    Ok(artifact_response(&file, reader))
}
