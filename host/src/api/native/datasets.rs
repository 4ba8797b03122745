//! Dataset endpoints: upload a CSV as the next version, list, get with schema and preview,
//! download, delete.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{QueryMap, Ws};
use crate::store::DatasetRow;
use crate::workspace::DomainError;

type Reply = Result<Json<Value>, ApiError>;

/// A dataset version as JSON.
fn dataset_json(d: &DatasetRow) -> Value {
    json!({
        "name": d.name,
        "version": d.version,
        "ref": format!("{}:{}", d.name, d.version),
        "digest": d.digest,
        "size": d.size,
        "rows": d.rows,
        "schema": serde_json::from_str::<Value>(&d.schema).unwrap_or(Value::Null),
        "created_at": d.created_at,
    })
}

fn version_of(v: &str) -> Result<Option<i64>, DomainError> {
    if v == "latest" {
        return Ok(None);
    }
    v.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .map(Some)
        .ok_or_else(|| {
            DomainError::invalid(format!(
                "dataset version must be a positive integer or 'latest', got '{v}'"
            ))
        })
}

/// `POST .../datasets/{name}/versions?delimiter=D` with the CSV as the body: creates the next
/// version (stored comma-separated; the delimiter is detected unless given: `,` `;` `tab` `|`).
pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    q: QueryMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let delimiter = q
        .get("delimiter")
        .map(crate::workspace::dataset::parse_delimiter)
        .transpose()?;
    let (d, used) = st
        .tracking
        .upload_dataset(&ws, &name, body.to_vec(), delimiter)
        .await?;
    let mut v = dataset_json(&d);
    v["delimiter"] = json!(crate::workspace::dataset::delimiter_name(used));
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET .../datasets?name=N`: every version (of one dataset, or of all).
pub async fn list(State(st): State<AppState>, Ws(ws): Ws, q: QueryMap) -> Reply {
    let all = st
        .tracking
        .store
        .list_datasets(ws.id, q.get("name"))
        .await?;
    Ok(Json(
        json!({ "datasets": all.iter().map(dataset_json).collect::<Vec<_>>() }),
    ))
}

/// `GET .../datasets/{name}/versions/{version}?preview=N`: the version with its schema and the
/// first N rows (default 10).
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    q: QueryMap,
) -> Reply {
    let d = st
        .tracking
        .store
        .dataset(ws.id, &name, version_of(&version)?)
        .await?;
    let n = q.int("preview")?.unwrap_or(10).clamp(0, 1000) as usize;
    let mut out = dataset_json(&d);
    if n > 0 {
        let table = st.tracking.dataset_table(&ws, &d).await?;
        out["columns"] = json!(table.header);
        out["preview"] = json!(table.rows.iter().take(n).collect::<Vec<_>>());
    }
    Ok(Json(out))
}

/// `GET .../datasets/{name}/versions/{version}/data`: the CSV as uploaded.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let d = st
        .tracking
        .store
        .dataset(ws.id, &name, version_of(&version)?)
        .await?;
    let ds = st.tracking.store.datastore(d.datastore_id).await?;
    let bytes = st.tracking.read_bytes(&ds, &d.digest).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/csv")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-{}.csv\"", d.name, d.version),
        )
        .body(Body::from(bytes))
        .map_err(|e| DomainError::Internal(e.to_string()))?)
}

/// `DELETE .../datasets/{name}/versions/{version}`: refused while a job references it.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply {
    let v =
        version_of(&version)?.ok_or_else(|| DomainError::invalid("name the version to delete"))?;
    let d = st.tracking.store.delete_dataset(ws.id, &name, v).await?;
    Ok(Json(dataset_json(&d)))
}
