//! Error responses: `{"error_code": "...", "message": "..."}` with the right HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use crate::workspace::DomainError;

/// The one error shape of every API.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// A stable code: `RESOURCE_DOES_NOT_EXIST`, `RESOURCE_ALREADY_EXISTS`,
    /// `INVALID_PARAMETER_VALUE`, `MALFORMED_REQUEST`, `INVALID_STATE`, `PLUGIN_FAILED`,
    /// `UNAUTHENTICATED`, `PERMISSION_DENIED`, `INTERNAL_ERROR`, `ENDPOINT_NOT_FOUND`,
    /// `BAD_REQUEST` (and the scoring routes' own codes).
    pub error_code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ErrorBody {
    fn new(code: &str, message: String) -> Json<Self> {
        Json(Self {
            error_code: code.to_string(),
            message,
        })
    }
}

/// Which API answers: statuses differ slightly (MLflow sends 400 for "already exists").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `/api/v1`.
    Native,
    /// `/api/2.0/mlflow`.
    Mlflow,
}

/// MLflow's error code and the HTTP status for a domain error.
pub fn code_and_status(e: &DomainError, flavor: Flavor) -> (&'static str, StatusCode) {
    match e {
        DomainError::NotFound(_) => ("RESOURCE_DOES_NOT_EXIST", StatusCode::NOT_FOUND),
        DomainError::AlreadyExists(_) => (
            "RESOURCE_ALREADY_EXISTS",
            if flavor == Flavor::Mlflow {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::CONFLICT
            },
        ),
        DomainError::InvalidArgument(_) => ("INVALID_PARAMETER_VALUE", StatusCode::BAD_REQUEST),
        DomainError::Malformed(_) => ("MALFORMED_REQUEST", StatusCode::BAD_REQUEST),
        DomainError::InvalidState(_) => (
            "INVALID_STATE",
            if flavor == Flavor::Mlflow {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::CONFLICT
            },
        ),
        DomainError::Plugin(_) => ("PLUGIN_FAILED", StatusCode::BAD_GATEWAY),
        DomainError::Unauthenticated(_) => ("UNAUTHENTICATED", StatusCode::UNAUTHORIZED),
        DomainError::PermissionDenied(_) => ("PERMISSION_DENIED", StatusCode::FORBIDDEN),
        DomainError::Internal(_) => ("INTERNAL_ERROR", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn respond(e: &DomainError, flavor: Flavor) -> Response {
    let (code, status) = code_and_status(e, flavor);
    let mut resp = (status, ErrorBody::new(code, e.to_string())).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"atrium\", Basic realm=\"atrium\""),
        );
    }
    resp
}

/// The response for a domain error in the given API flavour.
pub fn error_response(e: &DomainError, flavor: Flavor) -> Response {
    respond(e, flavor)
}

/// An error answered by the native API.
#[derive(Debug)]
pub struct ApiError(pub DomainError);

/// An error answered by the MLflow-compatible API.
#[derive(Debug)]
pub struct MlflowError(pub DomainError);

impl<E: Into<DomainError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl<E: Into<DomainError>> From<E> for MlflowError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond(&self.0, Flavor::Native)
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        respond(&self.0, Flavor::Mlflow)
    }
}

/// Answers unknown routes in the common error shape.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        ErrorBody::new(
            "ENDPOINT_NOT_FOUND",
            format!("no such endpoint: {}", uri.path()),
        ),
    )
        .into_response()
}

/// Answers a known route called with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorBody::new(
            "BAD_REQUEST",
            format!("{method} is not allowed on {}", uri.path()),
        ),
    )
        .into_response()
}
