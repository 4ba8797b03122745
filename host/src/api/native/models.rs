//! Model registry endpoints: registered models, versions (registered from a run's artifacts or
//! uploaded as multipart), aliases, file downloads, and scoring rows with a version.
//!
//! Upload: `POST .../models/{name}/versions` with `Content-Type: multipart/form-data`, one part
//! named `file` per file whose filename is the path inside the version (e.g. `model.json`,
//! `extra/vocab.txt`), plus an optional part named `meta` holding
//! `{"description", "tags", "aliases"}` as JSON.
//!
//! Predict: `POST .../models/{name}/versions/{version}/predict` scores rows (MLflow's
//! `dataframe_split` / `dataframe_records`, or a CSV) with the version's Atrium model.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Deleted;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws, body_bytes, parse_native_json};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc};
use crate::api::reply::{Created, FileBytes};
use crate::api::{AppState, artifact_response, paging};
use crate::service::RegisterRequest;
use crate::store::{ArtifactRow, ModelUpdate, VersionUpdate};
use crate::train::Predictions;
use crate::workspace::registry::{
    ModelVersion, RegisteredModel, Selector, canonical_stage, check_description, check_model_name,
    parse_version,
};
use crate::workspace::{DomainError, Workspace, validate};

type Reply<T> = Result<Json<T>, ApiError>;

/// A file of a model version.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ModelFile")]
pub struct FileJson {
    /// Path inside the version.
    path: String,
    /// Bytes.
    size: i64,
    /// sha256 of the content.
    digest: String,
}

/// A model version with its lineage.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ModelVersion")]
pub struct VersionJson {
    /// The registered model's name.
    name: String,
    /// 1, 2, … (never reused).
    version: i64,
    /// `models:/name/version`.
    #[serde(rename = "ref")]
    reference: String,
    /// Where the files came from (`runs:/<run>/<path>`, an MLflow URI, or `upload`).
    source: String,
    /// The run it was registered from.
    run_id: Option<String>,
    /// The MLflow logged model it was registered from (`m-...`).
    logged_model_id: Option<String>,
    /// `READY` once its files are in place.
    status: String,
    /// MLflow's legacy stage (`None`, `Staging`, `Production`, `Archived`).
    stage: String,
    /// Aliases pointing at it.
    aliases: Vec<String>,
    /// Tags.
    tags: BTreeMap<String, String>,
    /// Training dataset `name:version`, when known.
    dataset: Option<String>,
    /// The training job's id, when known.
    job_id: Option<String>,
    /// Free text.
    description: String,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Last change.
    updated_at: i64,
    /// Its files (a single version's reads and registration only).
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileJson>>,
}

/// A model version as JSON (with its files when given).
pub(crate) fn version_json(v: ModelVersion, files: Option<Vec<ArtifactRow>>) -> VersionJson {
    VersionJson {
        reference: v.uri(),
        name: v.name,
        version: v.version,
        source: v.source,
        run_id: v.run_id,
        logged_model_id: v.model_id,
        status: v.status,
        stage: v.stage,
        aliases: v.aliases,
        tags: v.tags,
        dataset: v.dataset,
        job_id: v.job,
        description: v.description,
        created_at: v.created_at,
        updated_at: v.updated_at,
        files: files.map(|fs| {
            fs.into_iter()
                .map(|f| FileJson {
                    path: f.path,
                    size: f.size,
                    digest: f.digest,
                })
                .collect()
        }),
    }
}

/// A registered model.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Model")]
pub struct ModelJson {
    /// Unique in the workspace.
    name: String,
    /// Free text.
    description: String,
    /// Tags.
    tags: BTreeMap<String, String>,
    /// Alias → version.
    aliases: BTreeMap<String, i64>,
    /// The highest version, if any.
    latest_version: Option<i64>,
    /// How many versions exist.
    version_count: i64,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Last change of the model or one of its versions.
    updated_at: i64,
    /// Its versions (`GET .../models/{name}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<Vec<VersionJson>>,
}

/// A registered model as JSON (with its versions when given).
fn model_json(m: RegisteredModel, versions: Option<Vec<ModelVersion>>) -> ModelJson {
    ModelJson {
        name: m.name,
        description: m.description,
        tags: m.tags,
        aliases: m.aliases,
        latest_version: m.latest_version,
        version_count: m.version_count,
        created_at: m.created_at,
        updated_at: m.updated_at,
        versions: versions.map(|vs| vs.into_iter().map(|v| version_json(v, None)).collect()),
    }
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
    st.svc.resolve_in(ws, name, &selector_of(version)?).await
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

/// The query of `GET .../models`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size (default 100, 1 to 1000).
    max_results: Option<i64>,
    /// From the previous page's `next_page_token`.
    page_token: Option<String>,
}

/// A page of registered models.
#[derive(Serialize, JsonSchema)]
pub struct ModelList {
    /// By name.
    models: Vec<ModelJson>,
    /// The next page, if any.
    next_page_token: Option<String>,
}

/// `GET .../models?max_results=N&page_token=T`: registered models by name.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<ListQuery>,
) -> Reply<ModelList> {
    let limit = q.max_results.unwrap_or(100).clamp(1, 1000) as usize;
    let offset = paging::decode(q.page_token.as_deref())?;
    let all = st.svc.store.registered_models(ws.id, None).await?;
    let total = all.len();
    let models = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|m| model_json(m, None))
        .collect();
    let next_page_token = paging::next(offset, total.saturating_sub(offset), limit);
    Ok(Json(ModelList {
        models,
        next_page_token,
    }))
}

/// `GET .../models/{name}`: the model with its versions.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<ModelJson> {
    let m = st.svc.store.registered_model(ws.id, &name).await?;
    let versions = st
        .svc
        .store
        .model_versions(ws.id, Some(&name), None)
        .await?;
    Ok(Json(model_json(m, Some(versions))))
}

/// The body of `PATCH .../models/{name}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelReq {
    /// New name (MLflow's `new_name` is accepted too).
    #[serde(default, alias = "new_name")]
    name: Option<String>,
    /// Free text.
    #[serde(default)]
    description: Option<String>,
    /// Tag changes: a string sets the tag, `null` removes it.
    #[serde(default)]
    tags: BTreeMap<String, Option<String>>,
}

/// `PATCH .../models/{name}` with `{"name"?, "description"?, "tags"?: {k: v | null}}`.
pub async fn update(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateModelReq>,
) -> Reply<ModelJson> {
    if let Some(n) = &req.name {
        check_model_name(n)?;
    }
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let (set_tags, delete_tags) = tag_changes(req.tags)?;
    let m = st
        .svc
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
    Ok(Json(model_json(m, None)))
}

/// `DELETE .../models/{name}`: the model with all its versions.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<Deleted<String>> {
    st.svc.delete_registered_model(&ws, &name).await?;
    Ok(Json(Deleted { deleted: name }))
}

/// A model's versions.
#[derive(Serialize, JsonSchema)]
pub struct VersionList {
    /// Oldest first.
    versions: Vec<VersionJson>,
}

/// `GET .../models/{name}/versions`: every version of a model.
pub async fn list_versions(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<VersionList> {
    st.svc.store.registered_model(ws.id, &name).await?;
    let versions = st
        .svc
        .store
        .model_versions(ws.id, Some(&name), None)
        .await?;
    Ok(Json(VersionList {
        versions: versions
            .into_iter()
            .map(|v| version_json(v, None))
            .collect(),
    }))
}

/// Registering from a run's artifacts (the JSON body of `POST .../models/{name}/versions`).
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    /// The run whose artifacts hold the model.
    #[serde(default)]
    run_id: Option<String>,
    /// Or: an MLflow logged model (`m-...` or `models:/m-...`) to register.
    #[serde(default)]
    model_id: Option<String>,
    /// The model's directory among the run's artifacts (default `model`).
    #[serde(default)]
    path: Option<String>,
    /// Free text.
    #[serde(default)]
    description: Option<String>,
    /// Tags of the version.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Aliases to point at the version.
    #[serde(default)]
    aliases: Vec<String>,
}

/// The `meta` part of an upload.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMeta {
    /// Free text.
    #[serde(default)]
    description: Option<String>,
    /// Tags of the version.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Aliases to point at the version.
    #[serde(default)]
    aliases: Vec<String>,
}

/// What `POST .../models/{name}/versions` registers: a run's artifacts (JSON), or files
/// uploaded as multipart (see the module documentation).
pub enum Registration {
    /// From a run.
    FromRun(RegisterReq),
    /// Uploaded files (read as the handler streams them into the datastore).
    Upload(Multipart),
}

impl<S: Send + Sync> FromRequest<S> for Registration {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("multipart/form-data"));
        if multipart {
            let form = Multipart::from_request(req, state)
                .await
                .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?;
            Ok(Self::Upload(form))
        } else {
            let bytes = body_bytes(req, state).await?;
            Ok(Self::FromRun(parse_native_json(&bytes)?))
        }
    }
}

impl DocInput for Registration {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        let meta = g.request::<UploadMeta>();
        op.body = Some(BodyDoc {
            required: true,
            content: vec![
                ("application/json", g.request::<RegisterReq>()),
                (
                    "multipart/form-data",
                    json!({
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": { "type": "string", "format": "binary" },
                                "description": "One part per file; its filename is the path inside the version.",
                            },
                            "meta": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": meta,
                                "description": "Optional JSON: description, tags, aliases.",
                            },
                        },
                        "additionalProperties": false,
                    }),
                ),
            ],
        });
    }
}

/// `POST .../models/{name}/versions`: registers the next version, from
/// `{"run_id", "path", "description"?, "tags"?, "aliases"?}` or from a multipart upload (see
/// the module documentation). Creates the registered model if absent.
pub async fn register(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    body: Registration,
) -> Result<Created<VersionJson>, ApiError> {
    let v = match body {
        Registration::Upload(form) => {
            let mut up = st.svc.begin_model_upload(&ws).await?;
            let meta = read_upload(&st, form, &mut up).await?;
            let req = register_request(&name, meta.description, meta.tags, meta.aliases);
            st.svc.register_model_upload(&ws, req, up).await?
        }
        Registration::FromRun(meta) if meta.model_id.is_some() => {
            if meta.run_id.is_some() {
                return Err(DomainError::invalid(
                    "give either 'run_id' (a run's directory) or 'model_id' (a logged model), not both",
                )
                .into());
            }
            let given = meta.model_id.unwrap_or_default();
            let model_id = given.strip_prefix("models:/").unwrap_or(&given).to_string();
            let path = meta.path.unwrap_or_default();
            let req = register_request(&name, meta.description, meta.tags, meta.aliases);
            st.svc
                .register_model_from_logged_model(
                    &ws,
                    req,
                    &model_id,
                    &path,
                    format!("models:/{model_id}"),
                )
                .await?
        }
        Registration::FromRun(meta) => {
            let run_id = meta.run_id.ok_or_else(|| {
                DomainError::invalid(
                    "missing 'run_id' or 'model_id': register from a run's artifacts or an MLflow logged model, or upload files as multipart/form-data",
                )
            })?;
            let path = meta.path.unwrap_or_else(|| "model".to_string());
            let req = register_request(&name, meta.description, meta.tags, meta.aliases);
            st.svc
                .register_model_from_run(&ws, req, &run_id, &path, None)
                .await?
        }
    };
    let files = st.svc.store.model_files(ws.id, &v.name, v.version).await?;
    Ok(Created(version_json(v, Some(files))))
}

fn register_request(
    name: &str,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    aliases: Vec<String>,
) -> RegisterRequest {
    RegisterRequest {
        name: name.to_string(),
        create_model: true,
        description: description.unwrap_or_default(),
        tags,
        aliases,
    }
}

/// Reads the `meta` and `file` parts of an upload.
async fn read_upload(
    st: &AppState,
    mut form: Multipart,
    up: &mut crate::service::ModelUpload<'_>,
) -> Result<UploadMeta, DomainError> {
    let mut meta = UploadMeta::default();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?
    {
        let part = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(String::from);
        match part.as_str() {
            "meta" => {
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| DomainError::invalid(format!("cannot read part '{part}': {e}")))?;
                meta = parse_native_json(&data).map_err(|e| {
                    DomainError::invalid(format!(
                        "an upload's meta takes description, tags and aliases only: {e}"
                    ))
                })?;
            }
            "file" => {
                let path = file_name.filter(|f| !f.is_empty()).ok_or_else(|| {
                    DomainError::invalid(
                        "a 'file' part needs a filename: the path inside the model version",
                    )
                })?;
                // the part's bytes go to the datastore as they arrive
                st.svc.add_model_file(up, path, field).await?;
            }
            other => {
                return Err(DomainError::invalid(format!(
                    "unexpected part '{other}': send 'file' parts and an optional 'meta'"
                )));
            }
        }
    }
    Ok(meta)
}

/// `GET .../models/{name}/versions/{version}` (number, `@alias` or `latest`): the version with
/// its lineage and files.
pub async fn get_version(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply<VersionJson> {
    let v = resolve(&st, &ws, &name, &version).await?;
    let files = st.svc.store.model_files(ws.id, &v.name, v.version).await?;
    Ok(Json(version_json(v, Some(files))))
}

/// The body of `PATCH .../models/{name}/versions/{version}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersionReq {
    /// Free text.
    #[serde(default)]
    description: Option<String>,
    /// MLflow's legacy stage: `None`, `Staging`, `Production` or `Archived`.
    #[serde(default)]
    stage: Option<String>,
    /// Tag changes: a string sets the tag, `null` removes it.
    #[serde(default)]
    tags: BTreeMap<String, Option<String>>,
}

/// `PATCH .../models/{name}/versions/{version}` with `{"description"?, "stage"?, "tags"?}`.
pub async fn update_version(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<UpdateVersionReq>,
) -> Reply<VersionJson> {
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let stage = req.stage.as_deref().map(canonical_stage).transpose()?;
    let (set_tags, delete_tags) = tag_changes(req.tags)?;
    let v = resolve(&st, &ws, &name, &version).await?;
    let v = st
        .svc
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
    Ok(Json(version_json(v, None)))
}

/// `DELETE .../models/{name}/versions/{version}`.
pub async fn delete_version(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply<Deleted<String>> {
    let v = resolve(&st, &ws, &name, &version).await?;
    st.svc.delete_model_version(&ws, &name, v.version).await?;
    Ok(Json(Deleted { deleted: v.uri() }))
}

/// The body of `PUT .../models/{name}/aliases/{alias}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasReq {
    /// The version the alias points at.
    version: i64,
}

/// `PUT .../models/{name}/aliases/{alias}` with `{"version": N}`: points (or moves) the alias.
pub async fn put_alias(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, alias)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<AliasReq>,
) -> Reply<VersionJson> {
    let v = st
        .svc
        .set_model_alias(&ws, &name, &alias, req.version)
        .await?;
    Ok(Json(version_json(v, None)))
}

/// `DELETE .../models/{name}/aliases/{alias}`.
pub async fn delete_alias(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, alias)): Path<(String, String, String)>,
) -> Reply<Deleted<String>> {
    st.svc
        .store
        .delete_model_alias(ws.id, &name, &alias)
        .await?;
    Ok(Json(Deleted {
        deleted: format!("{name}@{alias}"),
    }))
}

/// `GET .../models/{name}/versions/{version}/files/{*path}`: one file of the version.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version, path)): Path<(String, String, String, String)>,
) -> Result<FileBytes, ApiError> {
    let v = resolve(&st, &ws, &name, &version).await?;
    let (file, reader) = st
        .svc
        .open_model_version_file(&ws, &name, v.version, &path)
        .await?;
    Ok(FileBytes(artifact_response(&file, reader)))
}

/// One value of a row to score: a number, a string, a boolean, or `null` (missing). The model
/// reads it as text, as it reads a CSV cell.
pub struct Cell(Option<String>);

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl serde::de::Visitor<'_> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, a string, a boolean or null")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Cell, E> {
                Ok(Cell(Some(v)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Cell, E> {
                Ok(Cell(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Cell, E> {
                Ok(Cell(None))
            }
        }
        d.deserialize_any(CellVisitor)
    }
}

impl JsonSchema for Cell {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cell".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["number", "string", "boolean", "null"],
            "description": "A value of a column; null is a missing value.",
        })
    }
}

/// Rows as pandas' `split` orientation: the column names once, then each row's values.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataframeSplit {
    /// Column names.
    columns: Vec<String>,
    /// One array per row, as long as `columns`.
    data: Vec<Vec<Cell>>,
    /// Row labels, as pandas writes them (ignored).
    #[serde(default)]
    index: Option<Vec<serde_json::Value>>,
}

/// The JSON body of `POST .../models/{name}/versions/{version}/predict`: MLflow's scoring
/// shapes, exactly one of them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictReq {
    /// `{"columns": [...], "data": [[...], ...]}`.
    #[serde(default)]
    dataframe_split: Option<DataframeSplit>,
    /// `[{"column": value, ...}, ...]`, one object per row (an absent column is missing).
    #[serde(default)]
    dataframe_records: Option<Vec<BTreeMap<String, Cell>>>,
}

/// The rows to score: MLflow's JSON shapes, or a CSV (`text/csv`, a header row then rows).
pub enum PredictBody {
    /// `dataframe_split` or `dataframe_records`.
    Json(PredictReq),
    /// A CSV table.
    Csv(crate::workspace::dataset::Table),
}

impl<S: Send + Sync> FromRequest<S> for PredictBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let csv = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("text/csv")
            });
        let bytes = body_bytes(req, state).await?;
        if csv {
            let (table, _) = crate::workspace::dataset::parse_upload(&bytes, None)?;
            Ok(Self::Csv(table))
        } else {
            Ok(Self::Json(parse_native_json(&bytes)?))
        }
    }
}

impl DocInput for PredictBody {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: true,
            content: vec![
                ("application/json", g.request::<PredictReq>()),
                ("text/csv", crate::api::openapi::describe::text()),
            ],
        });
    }
}

/// A row as the model reads it: column → value as text, missing values left out.
type Row = std::collections::HashMap<String, String>;

impl PredictBody {
    /// The rows, at most [`crate::service::MAX_PREDICT_ROWS`] of them.
    fn into_rows(self) -> Result<Vec<Row>, DomainError> {
        use crate::service::check_predict_rows;
        match self {
            Self::Csv(t) => {
                check_predict_rows(t.rows.len())?;
                let header = t.header;
                Ok(t.rows
                    .into_iter()
                    .map(|r| header.iter().cloned().zip(r).collect())
                    .collect())
            }
            Self::Json(PredictReq {
                dataframe_split: Some(split),
                dataframe_records: None,
            }) => {
                check_predict_rows(split.data.len())?;
                // pandas' row labels mean nothing to the model
                drop(split.index);
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = split.columns.iter().find(|c| !seen.insert(*c)) {
                    return Err(DomainError::invalid(format!(
                        "dataframe_split.columns names '{dup}' twice"
                    )));
                }
                let width = split.columns.len();
                split
                    .data
                    .into_iter()
                    .enumerate()
                    .map(|(i, values)| {
                        if values.len() != width {
                            return Err(DomainError::invalid(format!(
                                "dataframe_split.data[{i}] holds {} values, but 'columns' names {width}",
                                values.len()
                            )));
                        }
                        Ok(split
                            .columns
                            .iter()
                            .zip(values)
                            .filter_map(|(c, v)| v.0.map(|v| (c.clone(), v)))
                            .collect())
                    })
                    .collect()
            }
            Self::Json(PredictReq {
                dataframe_split: None,
                dataframe_records: Some(records),
            }) => {
                check_predict_rows(records.len())?;
                Ok(records
                    .into_iter()
                    .map(|r| {
                        r.into_iter()
                            .filter_map(|(c, v)| v.0.map(|v| (c, v)))
                            .collect()
                    })
                    .collect())
            }
            Self::Json(PredictReq {
                dataframe_split: Some(_),
                dataframe_records: Some(_),
            }) => Err(DomainError::invalid(
                "give either 'dataframe_split' or 'dataframe_records', not both",
            )),
            Self::Json(PredictReq { .. }) => Err(DomainError::invalid(
                "give the rows to score as 'dataframe_split' ({\"columns\": [...], \"data\": [[...]]}) or 'dataframe_records' ([{\"column\": value}]), or send a CSV as text/csv",
            )),
        }
    }
}

/// `POST .../models/{name}/versions/{version}/predict` (number, `@alias` or `latest`) with
/// `{"dataframe_split": ...}`, `{"dataframe_records": ...}` or a CSV: scores the rows with the
/// version's Atrium model on the server.
pub async fn predict(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    body: PredictBody,
) -> Reply<Predictions> {
    let selector = selector_of(&version)?;
    let rows = body.into_rows()?;
    let out = st
        .svc
        .predict_model_version(&ws, &name, &selector, rows)
        .await?;
    Ok(Json(Predictions::new(out.predictions, out.classification)))
}
