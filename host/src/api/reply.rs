//! Typed replies of the native API: the status and the media type are in the type, so that the
//! OpenAPI document (see [`super::openapi`]) says what the handler sends.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use super::openapi::describe::{DocOutput, Generators, OpDoc, ResponseDoc};

/// `201 Created` with the new object.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

impl<T: JsonSchema> DocOutput for Created<T> {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.json::<T>(g, 201, "Created");
    }
}

/// A create-or-replace: `201 Created` when the object is new, `200 OK` when it existed.
pub struct Upserted<T> {
    /// Whether the object is new.
    pub created: bool,
    /// The object.
    pub body: T,
}

impl<T: Serialize> IntoResponse for Upserted<T> {
    fn into_response(self) -> Response {
        let status = if self.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        (status, Json(self.body)).into_response()
    }
}

impl<T: JsonSchema> DocOutput for Upserted<T> {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.json::<T>(g, 200, "Replaced or updated");
        op.json::<T>(g, 201, "Created");
    }
}

/// The empty object `{}`: the call succeeded and has nothing to add.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The bytes of a stored file, with the file's content type (octet-stream when unknown).
pub struct FileBytes(pub Response);

impl IntoResponse for FileBytes {
    fn into_response(self) -> Response {
        self.0
    }
}

impl DocOutput for FileBytes {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        // any media type: the file's own (text, JSON, images) or application/octet-stream
        op.responses.push(ResponseDoc {
            status: 200,
            description: "The file's bytes",
            content: vec![("*/*", serde_json::Value::Null)],
        });
    }
}

/// A CSV file.
pub struct CsvFile(pub Response);

impl CsvFile {
    /// A dataset version's CSV as a download named `NAME-VERSION.csv`.
    pub fn dataset(name: &str, version: i64, bytes: Vec<u8>) -> Self {
        let mut resp = Response::new(axum::body::Body::from(bytes));
        let h = resp.headers_mut();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/csv"),
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
            "attachment; filename=\"{name}-{version}.csv\""
        )) {
            h.insert(axum::http::header::CONTENT_DISPOSITION, v);
        }
        Self(resp)
    }
}

impl IntoResponse for CsvFile {
    fn into_response(self) -> Response {
        self.0
    }
}

impl DocOutput for CsvFile {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.responses.push(ResponseDoc {
            status: 200,
            description: "The CSV as uploaded",
            content: vec![("text/csv", super::openapi::describe::text())],
        });
    }
}

/// Plain text (logs), possibly streamed.
pub struct PlainText(pub Response);

impl IntoResponse for PlainText {
    fn into_response(self) -> Response {
        self.0
    }
}

impl DocOutput for PlainText {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.responses.push(ResponseDoc {
            status: 200,
            description: "Text",
            content: vec![("text/plain", super::openapi::describe::text())],
        });
    }
}
