//! Dataset endpoints: upload a CSV as the next version, list, get with schema and preview,
//! download, delete.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{Params, Ws, body_bytes};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc, text};
use crate::api::reply::{Created, CsvFile};
use crate::store::DatasetRow;
use crate::workspace::DomainError;
use crate::workspace::dataset::ColumnSchema;

type Reply<T> = Result<Json<T>, ApiError>;

/// A dataset version.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "DatasetVersion")]
pub struct DatasetJson {
    /// The dataset's name.
    name: String,
    /// 1, 2, …
    version: i64,
    /// `name:version`, how jobs name it.
    #[serde(rename = "ref")]
    reference: String,
    /// sha256 of the CSV.
    digest: String,
    /// Bytes.
    size: i64,
    /// Data rows.
    rows: i64,
    /// The inferred columns.
    schema: Vec<ColumnSchema>,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Column names (with a preview only).
    #[serde(skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
    /// The first rows (with a preview only).
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<Vec<Vec<String>>>,
    /// The delimiter the upload used (`,` `;` `tab` `|`; on creation only: versions are stored
    /// comma-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<String>,
}

fn dataset_json(d: &DatasetRow) -> Result<DatasetJson, DomainError> {
    let schema = serde_json::from_str(&d.schema).map_err(|e| {
        DomainError::Internal(format!(
            "stored schema of dataset {}:{}: {e}",
            d.name, d.version
        ))
    })?;
    Ok(DatasetJson {
        name: d.name.clone(),
        version: d.version,
        reference: format!("{}:{}", d.name, d.version),
        digest: d.digest.clone(),
        size: d.size,
        rows: d.rows,
        schema,
        created_at: d.created_at,
        columns: None,
        preview: None,
        delimiter: None,
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

/// A CSV request body.
pub struct CsvBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(body_bytes(req, state).await?))
    }
}

impl DocInput for CsvBody {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: true,
            content: vec![("text/csv", text())],
        });
    }
}

/// The query of `POST .../datasets/{name}/versions`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    /// The CSV's delimiter: `,` `;` `tab` (or a tab character) `|`; detected when absent.
    delimiter: Option<String>,
}

/// `POST .../datasets/{name}/versions?delimiter=D` with the CSV as the body: creates the next
/// version (stored comma-separated; the delimiter is detected unless given: `,` `;` `tab` `|`).
pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Params(q): Params<CreateQuery>,
    CsvBody(body): CsvBody,
) -> Result<Created<DatasetJson>, ApiError> {
    let delimiter = q
        .delimiter
        .as_deref()
        .map(crate::workspace::dataset::parse_delimiter)
        .transpose()?;
    let (d, used) = st
        .svc
        .upload_dataset(&ws, &name, body.to_vec(), delimiter)
        .await?;
    let mut v = dataset_json(&d)?;
    v.delimiter = Some(crate::workspace::dataset::delimiter_name(used));
    Ok(Created(v))
}

/// The query of `GET .../datasets`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only the versions of this dataset.
    name: Option<String>,
}

/// Dataset versions.
#[derive(Serialize, JsonSchema)]
pub struct DatasetList {
    /// By name, then version.
    datasets: Vec<DatasetJson>,
}

/// `GET .../datasets?name=N`: every version (of one dataset, or of all).
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<ListQuery>,
) -> Reply<DatasetList> {
    let all = st.svc.store.list_datasets(ws.id, q.name.as_deref()).await?;
    Ok(Json(DatasetList {
        datasets: all.iter().map(dataset_json).collect::<Result<_, _>>()?,
    }))
}

/// The query of `GET .../datasets/{name}/versions/{version}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Rows of preview (default 10, at most 1000; 0: none).
    preview: Option<i64>,
}

/// `GET .../datasets/{name}/versions/{version}?preview=N`: the version with its schema and the
/// first N rows (default 10).
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    Params(q): Params<GetQuery>,
) -> Reply<DatasetJson> {
    let d = st
        .svc
        .store
        .dataset(ws.id, &name, version_of(&version)?)
        .await?;
    let n = q.preview.unwrap_or(10).clamp(0, 1000) as usize;
    let mut out = dataset_json(&d)?;
    if n > 0 {
        let table = st.svc.dataset_table(&ws, &d).await?;
        out.preview = Some(table.rows.into_iter().take(n).collect());
        out.columns = Some(table.header);
    }
    Ok(Json(out))
}

/// `GET .../datasets/{name}/versions/{version}/data`: the CSV as uploaded.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Result<CsvFile, ApiError> {
    let d = st
        .svc
        .store
        .dataset(ws.id, &name, version_of(&version)?)
        .await?;
    let bytes = st.svc.dataset_bytes(&d).await?;
    Ok(CsvFile::dataset(&d.name, d.version, bytes))
}

/// `DELETE .../datasets/{name}/versions/{version}`: refused while a job references it.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply<DatasetJson> {
    let v =
        version_of(&version)?.ok_or_else(|| DomainError::invalid("name the version to delete"))?;
    let d = st.svc.store.delete_dataset(ws.id, &name, v).await?;
    Ok(Json(dataset_json(&d)?))
}
