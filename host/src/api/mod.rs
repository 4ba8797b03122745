//! HTTP APIs: the native `/api/v1`, the MLflow-compatible routes, and `/health`.

pub mod error;
pub mod extract;
mod mlflow;
mod native;
pub mod openapi;
pub mod paging;
pub mod reply;
pub mod routes;
pub(crate) mod scoring;
pub mod search;
pub mod wire;

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::service::Service;
use crate::workspace::ArtifactFile;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The workspace service.
    pub svc: Arc<Service>,
    /// The local compute target's executor.
    pub executor: Arc<crate::jobs::Executor>,
    /// Online endpoints.
    pub serving: Arc<crate::serving::Serving>,
    /// Users, tokens, roles, audit.
    pub access: Arc<crate::auth::Access>,
    /// Signed-in browsers of the web portal.
    pub sessions: Arc<crate::portal::Sessions>,
    /// The route table the router was built from (set once the router is built).
    pub routes: Arc<std::sync::OnceLock<Vec<routes::RouteSpec>>>,
}

/// Largest JSON body accepted (bulk imports); log-batch has its own 1 MB limit.
pub const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// The whole HTTP application: every route with its policy (see [`routes`]).
pub fn router(state: AppState) -> Router {
    let mut api = routes::Api::new(state.clone());
    api.route(
        axum::http::Method::GET,
        "/health",
        crate::auth::Policy::Public,
        routes::doc("Whether the server is up", health),
    );
    native::routes(&mut api);
    openapi::routes(&mut api);
    scoring::routes(&mut api);
    mlflow::routes(&mut api);
    crate::portal::routes(&mut api);
    let (router, table) = api.finish();
    let matcher = routes::TableMatcher::new(&table);
    let _ = state.routes.set(table);
    let app = router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            matcher,
            routes::only_table_routes,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state);
    // paths are normalized before routing, so the table sees every request as it is written
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::map_request(merge_slashes))
}

/// Collapses repeated slashes in the request path (`//model-versions/get-artifact`), as
/// MLflow's server (Werkzeug) does; the query string is kept.
async fn merge_slashes(mut req: axum::extract::Request) -> axum::extract::Request {
    let uri = req.uri();
    if !uri.path().contains("//") {
        return req;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
    req
}

/// The answer of `GET /health`.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Streams an artifact's bytes as a response body.
pub(crate) fn artifact_response(file: &ArtifactFile, mut reader: Box<dyn Read + Send>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break; // client went away
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    // artifacts are user content: never let a browser sniff them into something executable
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file.path)),
    );
    if let Some(size) = file.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(d) = &file.digest
        && let Ok(v) = HeaderValue::from_str(&format!("\"sha256:{d}\""))
    {
        headers.insert(header::ETAG, v);
    }
    resp
}

/// [`artifact_response`] for the bytes `span` (first, last) of the file when a range was asked
/// for: 206 with `Content-Range`; every file answer says it takes ranges.
pub(crate) fn ranged_artifact_response(
    file: &ArtifactFile,
    reader: Box<dyn Read + Send>,
    span: Option<(u64, u64)>,
) -> Response {
    let mut resp = artifact_response(file, reader);
    let headers = resp.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let (Some((first, last)), Some(size)) = (span, file.size) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(last - first + 1));
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
            headers.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = axum::http::StatusCode::PARTIAL_CONTENT;
    }
    resp
}

fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "py" | "md" | "csv" | "yaml" | "yml" | "toml" | "mlmodel" => {
            "text/plain; charset=utf-8"
        }
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}
