//! The OpenAPI 3.1 document of the native API, generated from the route table and the handlers'
//! types (so it cannot drift), and the docs page that renders it.
//!
//! - [`describe`]: what a handler's signature says (request body, query, responses).
//! - [`document`]: the document assembled from the table.
//! - `docs.html`: a self-contained page (plain JavaScript, no external assets) that fetches
//!   the document and renders it.

pub mod describe;
pub mod document;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use self::describe::{DocOutput, Generators, OpDoc, ResponseDoc};
use super::AppState;
use super::routes::{Api, doc};
use crate::auth::Policy;

/// Registers `GET /api/v1/openapi.json` and `GET /api/docs` (both public: the API's shape is
/// no secret, and the page must load in a browser that holds no token).
pub fn routes(api: &mut Api) {
    api.route(
        Method::GET,
        "/api/v1/openapi.json",
        Policy::Public,
        doc("The OpenAPI 3.1 document of this API", openapi_json),
    )
    .route(
        Method::GET,
        "/api/docs",
        Policy::Public,
        doc("The API documentation page", docs_page),
    );
}

/// `GET /api/v1/openapi.json`.
async fn openapi_json(State(st): State<AppState>) -> Json<Value> {
    let table = st.routes.get().map(Vec::as_slice).unwrap_or(&[]);
    Json(document::build(table))
}

/// An HTML page.
pub struct Html(pub &'static str);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut resp = self.0.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // the page needs nothing from elsewhere: its script and style are inline
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'",
            ),
        );
        resp
    }
}

impl DocOutput for Html {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.responses.push(ResponseDoc {
            status: 200,
            description: "The page",
            content: vec![("text/html", describe::text())],
        });
    }
}

/// `GET /api/docs`: renders `/api/v1/openapi.json`.
async fn docs_page() -> Html {
    Html(include_str!("docs.html"))
}
