//! Run artifact endpoints: list, upload (streamed), download (streamed), delete.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::api::extract::{QueryMap, Ws};
use crate::api::{AppState, artifact_response};
use crate::workspace::{DomainError, validate};

fn parts(p: &BTreeMap<String, String>) -> Result<(&str, &str), DomainError> {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    validate::run_id(id)?;
    Ok((id, p.get("path").map(String::as_str).unwrap_or("")))
}

/// `GET .../runs/{id}/artifacts?path=dir`: the directory's immediate children.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let (id, _) = parts(&p)?;
    let files = st
        .tracking
        .list_artifacts(&ws, id, q.get("path").unwrap_or(""))
        .await?;
    Ok(Json(json!({ "files": files })))
}

/// `PUT .../runs/{id}/artifacts/{path}` with the raw bytes as body.
pub async fn upload(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, path) = parts(&p)?;
    let file = st
        .tracking
        .upload_artifact(&ws, id, path, body.into_data_stream())
        .await?;
    Ok((StatusCode::CREATED, Json(json!(file))))
}

/// `GET .../runs/{id}/artifacts/{path}`: the bytes.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let (id, path) = parts(&p)?;
    let (file, reader) = st.tracking.open_artifact(&ws, id, path).await?;
    Ok(artifact_response(&file, reader))
}

/// `DELETE .../runs/{id}/artifacts/{path}`: a file or a whole directory.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (id, path) = parts(&p)?;
    let n = st.tracking.delete_artifact(&ws, id, path).await?;
    Ok(Json(json!({ "deleted": n })))
}
