//! Run artifact endpoints: list, upload (streamed), download (streamed), delete.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Deleted;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{Params, Ws};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc, binary};
use crate::api::reply::{Created, FileBytes};
use crate::workspace::{ArtifactFile, DomainError, validate};

fn parts(p: &BTreeMap<String, String>) -> Result<(&str, &str), DomainError> {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    validate::run_id(id)?;
    Ok((id, p.get("path").map(String::as_str).unwrap_or("")))
}

/// The query of `GET .../runs/{id}/artifacts`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The directory to list (default: the root).
    path: Option<String>,
}

/// A directory's immediate children.
#[derive(Serialize, JsonSchema)]
pub struct ArtifactList {
    /// Files and directories, by path.
    files: Vec<ArtifactFile>,
}

/// `GET .../runs/{id}/artifacts?path=dir`: the directory's immediate children.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    Params(q): Params<ListQuery>,
) -> Result<Json<ArtifactList>, ApiError> {
    let (id, _) = parts(&p)?;
    let files = st
        .svc
        .list_artifacts(&ws, id, q.path.as_deref().unwrap_or(""))
        .await?;
    Ok(Json(ArtifactList { files }))
}

/// A raw request body, streamed.
pub struct RawBody(Body);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(req.into_body()))
    }
}

impl DocInput for RawBody {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: false,
            content: vec![("application/octet-stream", binary())],
        });
    }
}

/// `PUT .../runs/{id}/artifacts/{path}` with the raw bytes as body.
pub async fn upload(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    RawBody(body): RawBody,
) -> Result<Created<ArtifactFile>, ApiError> {
    let (id, path) = parts(&p)?;
    let file = st
        .svc
        .upload_artifact(&ws, id, path, body.into_data_stream())
        .await?;
    Ok(Created(file))
}

/// `GET .../runs/{id}/artifacts/{path}`: the bytes.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    crate::api::extract::Ranged(range): crate::api::extract::Ranged,
) -> Result<FileBytes, ApiError> {
    let (id, path) = parts(&p)?;
    let (file, reader, span) = st.svc.open_artifact_range(&ws, id, path, range).await?;
    Ok(FileBytes(crate::api::ranged_artifact_response(
        &file, reader, span,
    )))
}

/// `DELETE .../runs/{id}/artifacts/{path}`: a file or a whole directory.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Deleted<u64>>, ApiError> {
    let (id, path) = parts(&p)?;
    let n = st.svc.delete_artifact(&ws, id, path).await?;
    Ok(Json(Deleted { deleted: n }))
}
