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
    /// The web portal (`/`, `/ui/...`): errors are HTML pages.
    Portal,
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
        DomainError::RangeNotSatisfiable(_) => {
            ("INVALID_PARAMETER_VALUE", StatusCode::RANGE_NOT_SATISFIABLE)
        }
        DomainError::Unavailable(_) => ("TEMPORARILY_UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
        DomainError::Internal(_) => ("INTERNAL_ERROR", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn respond(e: &DomainError, flavor: Flavor) -> Response {
    let (code, status) = code_and_status(e, flavor);
    if flavor == Flavor::Portal {
        return crate::portal::error_page(status, code, &e.to_string());
    }
    let mut resp = (status, ErrorBody::new(code, e.to_string())).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // the database is back within seconds (a restart, a failover): say when to retry
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
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

/// MLflow features Atrium does not serve, by a fragment of their routes: an unknown route
/// that matches one answers `ENDPOINT_NOT_FOUND` naming the feature.
const UNSUPPORTED_MLFLOW: &[(&str, &str)] = &[
    (
        "/graphql",
        "MLflow's GraphQL API (used only by MLflow's own UI)",
    ),
    ("/mlflow/traces", "MLflow tracing (traces and spans)"),
    ("/mlflow/spans", "MLflow tracing (traces and spans)"),
    ("/v1/traces", "MLflow tracing (traces and spans)"),
    ("/get-trace-artifact", "MLflow tracing (traces and spans)"),
    ("/unified-traces", "MLflow tracing (traces and spans)"),
    ("/mlflow/assessments", "GenAI assessments"),
    (
        "/mlflow/gateway",
        "the MLflow AI gateway (secrets, endpoints, providers, model definitions)",
    ),
    (
        "/gateway-proxy",
        "the MLflow AI gateway (secrets, endpoints, providers, model definitions)",
    ),
    (
        "/mlflow/secrets",
        "the MLflow AI gateway's secrets (Atrium's key vault: /api/v1/workspaces/{ws}/secrets)",
    ),
    (
        "/mlflow/endpoints",
        "the MLflow AI gateway's endpoints (Atrium's endpoints: /api/v1/workspaces/{ws}/endpoints)",
    ),
    ("/mlflow/model-definitions", "the MLflow AI gateway"),
    ("/3.0/mlflow/datasets", "GenAI evaluation datasets"),
    ("/mlflow/scorers", "GenAI scorers"),
    ("/mlflow/issues", "GenAI issues"),
    ("/mlflow/label-schemas", "GenAI labeling sessions"),
    ("/mlflow/review-queues", "GenAI labeling sessions"),
    ("/mlflow/prompt-optimization", "GenAI prompt optimization"),
    (
        "/create-promptlab-run",
        "MLflow's prompt lab (used only by MLflow's own UI)",
    ),
    (
        "/metrics/get-history-bulk",
        "the bulk metric history route used only by MLflow's own UI",
    ),
    ("/mlflow/webhooks", "registry webhooks"),
    (
        "/mlflow/workspaces",
        "MLflow's workspaces API (Atrium selects a workspace with /ws/{name} in the tracking URI)",
    ),
    (
        "/mlflow/artifacts/presigned",
        "presigned artifact URLs (artifacts go through the server)",
    ),
    (
        "/mlflow-artifacts/mpu/",
        "multipart artifact uploads (uploads stream through the server)",
    ),
    (
        "/mlflow-artifacts/presigned/",
        "presigned artifact URLs (artifacts go through the server)",
    ),
];

/// Answers unknown routes in the common error shape (naming the MLflow feature, if it is one).
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let message = match UNSUPPORTED_MLFLOW
        .iter()
        .find(|(frag, _)| path.contains(frag))
    {
        Some((_, feature)) => {
            format!("no such endpoint: {path}: Atrium does not support {feature}")
        }
        None => format!("no such endpoint: {path}"),
    };
    (
        StatusCode::NOT_FOUND,
        ErrorBody::new("ENDPOINT_NOT_FOUND", message),
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
