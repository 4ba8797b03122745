//! Scoring routes: the raw `POST /endpoints/{name}/score` (body and content type go to the
//! scorer as they are), MLflow's `/invocations`, the Open Inference Protocol's
//! `/v2/models/{name}/infer` with its health routes, and Prometheus `/metrics`.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::routes::Api;
use crate::auth::{Policy, Principal};
use crate::serving::{AZURE_PIN_HEADER, PIN_HEADER, ScoreRequest, ServeError};

/// Content type the scorer receives for MLflow `/invocations` JSON bodies.
pub const MLFLOW_JSON: &str = "application/json; format=mlflow";
/// Content type the scorer receives for Open Inference Protocol bodies.
pub const OIP_JSON: &str = "application/json; format=oip";

/// Registers the scoring routes (outside any workspace: endpoint names are unique on the
/// host). Scoring takes the endpoint's key or an API token with Reader on its workspace.
pub fn routes(api: &mut Api) {
    use Policy::*;
    api.post("/endpoints/{name}/score", Scoring, score)
        .post("/endpoints/{name}/invocations", Scoring, invocations)
        .post("/v2/models/{name}/infer", Scoring, oip_infer)
        .get("/v2/models/{name}", Scoring, oip_model)
        .get("/v2/models/{name}/ready", Scoring, oip_model_ready)
        .get("/v2/health/live", Public, oip_health)
        .get("/v2/health/ready", Public, oip_health)
        .get("/metrics", Admin, prometheus);
}

/// The bearer token sent, if any (an endpoint key, or an API token).
fn bearer(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::AUTHORIZATION).and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
            .map(|k| k.trim().to_string())
    })
}

/// Whether the caller's API token holds Reader on the endpoint's workspace.
async fn is_reader(st: &AppState, endpoint: &str, principal: &Principal) -> bool {
    let (Principal::User(id), Some(ws)) = (principal, st.serving.workspace_of(endpoint)) else {
        return false;
    };
    matches!(st.access.role(id, &ws).await, Ok(Some(_)))
}

fn error(e: &ServeError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        status,
        axum::Json(json!({ "error_code": e.code(), "message": e.to_string() })),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn run(
    st: &AppState,
    name: &str,
    headers: &HeaderMap,
    principal: &Principal,
    content_type: String,
    body: Bytes,
) -> Response {
    let key = bearer(headers);
    let reader = is_reader(st, name, principal).await;
    let pin = header_str(headers, PIN_HEADER).or_else(|| header_str(headers, AZURE_PIN_HEADER));
    let req = ScoreRequest {
        key,
        reader,
        pin,
        content_type,
        body,
    };
    match st.serving.score(name, req).await {
        Ok(s) => {
            let mut resp = Response::new(Body::from(s.body));
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&s.content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&s.deployment) {
                h.insert(PIN_HEADER, v);
            }
            resp
        }
        Err(e) => error(&e),
    }
}

/// `POST /endpoints/{name}/score`.
async fn score(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = header_str(&headers, header::CONTENT_TYPE)
        .unwrap_or_else(|| "application/json".to_string());
    run(&st, &name, &headers, &principal, ct, body).await
}

/// `POST /endpoints/{name}/invocations`: MLflow's scoring protocol (`dataframe_split`,
/// `dataframe_records`, `instances`, `inputs`, or CSV).
async fn invocations(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct =
        header_str(&headers, header::CONTENT_TYPE).unwrap_or_else(|| "application/json".into());
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ct = match base.as_str() {
        "application/json" => MLFLOW_JSON.to_string(),
        "text/csv" => "text/csv".to_string(),
        other => {
            return error(&ServeError::UnsupportedMedia(format!(
                "content type '{other}' is not supported by /invocations; use application/json or text/csv"
            )));
        }
    };
    run(&st, &name, &headers, &principal, ct, body).await
}

/// `POST /v2/models/{name}/infer`: the Open Inference Protocol (KServe v2).
async fn oip_infer(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&st, &name, &headers, &principal, OIP_JSON.to_string(), body).await
}

/// Checks the caller may see an endpoint (its key, or Reader on its workspace).
async fn admitted(
    st: &AppState,
    name: &str,
    headers: &HeaderMap,
    principal: &Principal,
) -> Result<(), Response> {
    let reader = is_reader(st, name, principal).await;
    st.serving
        .admits(name, bearer(headers).as_deref(), reader)
        .map_err(|e| error(&e))
}

/// `GET /v2/models/{name}`: model metadata.
async fn oip_model(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admitted(&st, &name, &headers, &principal).await {
        return r;
    }
    match st.serving.versions(&name) {
        Some(versions) => axum::Json(json!({
            "name": name,
            "versions": versions,
            "platform": "atrium",
        }))
        .into_response(),
        None => error(&ServeError::UnknownEndpoint(name)),
    }
}

/// `GET /v2/models/{name}/ready`: 200 when the endpoint takes traffic.
async fn oip_model_ready(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admitted(&st, &name, &headers, &principal).await {
        return r;
    }
    match st.serving.versions(&name) {
        Some(_) if st.serving.takes_traffic(&name) => StatusCode::OK.into_response(),
        Some(_) => error(&ServeError::NoTraffic(name)),
        None => error(&ServeError::UnknownEndpoint(name)),
    }
}

/// `GET /v2/health/live` and `/v2/health/ready`.
async fn oip_health() -> Response {
    StatusCode::OK.into_response()
}

/// `GET /metrics`: every endpoint's series in the Prometheus text format.
async fn prometheus(State(st): State<AppState>) -> Response {
    let text = st.serving.metrics().prometheus();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}
