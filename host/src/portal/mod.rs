//! The web portal at `/`: server-rendered pages (templates in the `atrium-portal` crate),
//! registered in the API's route table with the same policies, so a Reader's browser is refused
//! a write exactly like a Reader's token.
//!
//! Map: [`session`] sign-in sessions, cookie and CSRF token · [`pages`] runs, run, compare,
//! charts' series, artifacts · [`manage`] models, endpoints, jobs, sweeps · [`admin`] datasets,
//! secrets, roles, audit · [`components`] components and datastores · [`people`] users and
//! tokens · [`pipelines`] pipelines, pipeline runs (steps, cancel) and schedules · this file:
//! the routes, the page frame and errors.

mod admin;
mod components;
mod manage;
mod pages;
mod people;
mod pipelines;
pub mod session;

use atrium_portal::Template;
use atrium_portal::views::{Chrome, ErrorPage, HomePage, LoginPage, WsRow};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub use session::Sessions;

use crate::api::AppState;
use crate::api::error::{Flavor, error_response};
use crate::api::routes::Api;
use crate::auth::token::Credentials;
use crate::auth::{Policy, Principal};
use crate::workspace::DomainError;

/// Whether a route path belongs to the portal (its errors are HTML, it takes the session cookie).
pub fn is_portal_path(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/") || path == "/ws/{ws}/"
}

/// Registers the portal's routes.
pub fn routes(api: &mut Api) {
    use Policy::*;
    api.add(Method::GET, "/", Public, get(home))
        .add(Method::GET, "/ws/{ws}/", Read, get(home_ws))
        .add(Method::GET, "/ui/login", Public, get(login_page))
        .add(Method::POST, "/ui/login", Public, post(login))
        .add(Method::POST, "/ui/logout", Public, post(logout))
        .add(Method::GET, "/ui/assets/{name}", Public, get(asset))
        .add(
            Method::GET,
            "/ui/tokens",
            Authenticated,
            get(people::tokens),
        )
        .add(
            Method::POST,
            "/ui/tokens/create",
            Authenticated,
            post(people::create_token),
        )
        .add(
            Method::POST,
            "/ui/tokens/revoke",
            Authenticated,
            post(people::revoke_token),
        )
        .add(Method::GET, "/ui/users", Admin, get(people::users))
        .add(
            Method::POST,
            "/ui/users/create",
            Admin,
            post(people::create_user),
        )
        .add(
            Method::POST,
            "/ui/users/token",
            Admin,
            post(people::create_user_token),
        )
        .add(
            Method::POST,
            "/ui/users/revoke",
            Admin,
            post(people::revoke_user_token),
        );
    api.scope("/ui/ws/{ws}", |api| {
        api.add(Method::GET, "", Read, get(pages::experiments))
            .add(Method::GET, "/experiments/{id}", Read, get(pages::runs))
            .add(Method::GET, "/runs/{id}", Read, get(pages::run))
            .add(
                Method::GET,
                "/runs/{id}/artifacts",
                Read,
                get(pages::artifacts),
            )
            .add(Method::GET, "/runs/{id}/raw", Read, get(pages::raw))
            .add(Method::GET, "/series", Read, get(pages::series))
            .add(Method::GET, "/compare", Read, get(pages::compare))
            .add(Method::GET, "/models", Read, get(manage::models))
            .add(Method::GET, "/models/{name}", Read, get(manage::model))
            .add(
                Method::POST,
                "/models/{name}/alias",
                Write,
                post(manage::set_alias),
            )
            .add(Method::GET, "/endpoints", Read, get(manage::endpoints))
            .add(
                Method::GET,
                "/endpoints/{name}",
                Read,
                get(manage::endpoint),
            )
            .add(
                Method::GET,
                "/endpoints/{name}/live",
                Read,
                get(manage::endpoint_live),
            )
            .add(
                Method::POST,
                "/endpoints/{name}/traffic",
                Write,
                post(manage::set_traffic),
            )
            .add(
                Method::POST,
                "/endpoints/{name}/test",
                Write,
                post(manage::test_endpoint),
            )
            .add(
                Method::POST,
                "/endpoints/{name}/regenerate-key",
                Own,
                post(manage::regenerate_key),
            )
            .add(Method::GET, "/datasets", Read, get(admin::datasets))
            .add(Method::GET, "/datasets/{name}", Read, get(admin::dataset))
            .add(
                Method::GET,
                "/datasets/{name}/data",
                Read,
                get(admin::dataset_data),
            )
            .add(
                Method::GET,
                "/components",
                Read,
                get(components::components),
            )
            .add(
                Method::GET,
                "/components/{name}/{version}",
                Read,
                get(components::component),
            )
            .add(Method::GET, "/settings", Read, get(admin::settings))
            .add(Method::POST, "/secrets/set", Write, post(admin::set_secret))
            .add(
                Method::POST,
                "/secrets/delete",
                Write,
                post(admin::delete_secret),
            )
            .add(Method::POST, "/roles/assign", Own, post(admin::assign_role))
            .add(Method::POST, "/roles/remove", Own, post(admin::remove_role))
            .add(Method::GET, "/audit", Own, get(admin::audit))
            .add(Method::GET, "/jobs", Read, get(manage::jobs))
            .add(Method::GET, "/jobs/{id}", Read, get(manage::job))
            .add(Method::GET, "/jobs/{id}/log", Read, get(manage::job_log))
            .add(Method::GET, "/jobs/{id}/trials", Read, get(manage::trials))
            .add(
                Method::POST,
                "/jobs/{id}/register-best",
                Write,
                post(manage::register_best),
            )
            .add(
                Method::POST,
                "/jobs/{id}/cancel",
                Write,
                post(manage::cancel_job),
            )
            .add(Method::GET, "/pipelines", Read, get(pipelines::list))
            .add(
                Method::GET,
                "/pipelines/runs/{id}",
                Read,
                get(pipelines::run),
            )
            .add(
                Method::POST,
                "/pipelines/runs/{id}/cancel",
                Write,
                post(pipelines::cancel),
            )
            .add(Method::GET, "/schedules", Read, get(pipelines::schedules));
    });
}

/// An error answered as an HTML page.
#[derive(Debug)]
pub struct PortalError(pub DomainError);

impl<E: Into<DomainError>> From<E> for PortalError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        error_response(&self.0, Flavor::Portal)
    }
}

/// What a page handler answers.
pub type Page = Result<Response, PortalError>;

/// A form's outcome as the page's flash message: a user's mistake (bad input, an unknown or
/// existing name, a wrong state) shows inline; a refusal stays a 403 page (so the audit log
/// records it as denied) and a failure stays an error page.
pub fn flash(r: Result<String, DomainError>) -> Result<(bool, String), PortalError> {
    match r {
        Ok(m) => Ok((true, m)),
        Err(
            e @ (DomainError::InvalidArgument(_)
            | DomainError::NotFound(_)
            | DomainError::InvalidState(_)
            | DomainError::AlreadyExists(_)),
        ) => Ok((false, e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The HTML error page for a refused or failed request.
pub fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    let page = ErrorPage {
        chrome: Chrome {
            title: format!("{} {code}", status.as_u16()),
            v: atrium_portal::assets::version(),
            ..Default::default()
        },
        status: status.as_u16(),
        code: code.to_string(),
        message: message.to_string(),
    };
    let mut resp = (status, html(&page)).into_response();
    no_store(&mut resp);
    resp
}

/// The redirect to the sign-in page for a browser that is not signed in.
pub fn to_login(uri: &Uri) -> Response {
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let loc = format!("/ui/login?next={}", atrium_portal::fmt::url_enc(next));
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&loc) {
        resp.headers_mut().insert(header::LOCATION, v.clone());
        // htmx follows HX-Redirect for a part requested by a page whose session ended
        resp.headers_mut().insert("hx-redirect", v);
    }
    resp
}

/// Renders a template (a template error is a bug: answered as 500).
pub fn html<T: Template>(t: &T) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "portal template failed");
        format!("<!doctype html><p>template error: {e}</p>")
    }))
}

/// An HTML page response that no cache keeps (pages carry the CSRF token).
pub fn page<T: Template>(t: &T) -> Page {
    let mut resp = html(t).into_response();
    no_store(&mut resp);
    Ok(resp)
}

fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
}

/// The page frame for the caller in workspace `ws` (empty: no workspace).
pub async fn chrome(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &str,
    section: &'static str,
    title: impl Into<String>,
) -> Result<Chrome, PortalError> {
    let mut c = Chrome {
        ws: ws.to_string(),
        v: atrium_portal::assets::version(),
        section,
        title: title.into(),
        ..Default::default()
    };
    if let Some((_, s)) = st.sessions.of_request(headers) {
        c.csrf = s.csrf;
    }
    if let Principal::User(id) = who {
        c.user = Some(id.user.clone());
        c.admin = id.admin;
        c.workspaces = st.access.workspaces_of(id).await?;
        if !ws.is_empty() {
            c.role = st
                .access
                .role(id, ws)
                .await?
                .map(|r| r.as_str().to_string())
                .unwrap_or_default();
        }
    }
    if !ws.is_empty() && !c.workspaces.iter().any(|w| w == ws) {
        c.workspaces.push(ws.to_string());
    }
    Ok(c)
}

/// `GET /`: the caller's workspaces (and those anyone may read).
async fn home(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Page {
    let c = chrome(&st, &who, &headers, "", "", "Workspaces").await?;
    let mut rows = Vec::new();
    let all = st.svc.store.list_workspaces().await?;
    for w in all {
        let role = match &who {
            Principal::User(id) => st
                .access
                .role(id, &w.name)
                .await?
                .map(|r| r.as_str().to_string()),
            Principal::Anonymous => None,
        };
        let role = match role {
            Some(r) => r,
            None if w.anonymous_read => "anonymous read".to_string(),
            None => continue,
        };
        rows.push(WsRow {
            name: w.name,
            description: w.description,
            role,
        });
    }
    page(&HomePage { chrome: c, rows })
}

/// `GET /ws/{ws}/`: where an MLflow client's links (`/ws/W/#/experiments/...`) land; the
/// page's script follows the fragment.
async fn home_ws(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(ws): Path<String>,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws, "", "Workspace").await?;
    let rows = vec![WsRow {
        name: ws.clone(),
        description: String::new(),
        role: c.role.clone(),
    }];
    page(&HomePage { chrome: c, rows })
}

/// The query of the sign-in page.
#[derive(Deserialize)]
struct NextQuery {
    /// Where to go after signing in.
    #[serde(default)]
    next: Option<String>,
}

/// A path on this server to return to (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

async fn login_page(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Page {
    let c = chrome(&st, &who, &headers, "", "", "Sign in").await?;
    page(&LoginPage {
        chrome: c,
        next: safe_next(q.next.as_deref()),
        error: None,
    })
}

/// The sign-in form.
#[derive(Deserialize)]
struct LoginForm {
    /// Optional user name (the token names its user anyway).
    #[serde(default)]
    user: String,
    /// An API token.
    token: String,
    /// Where to go next.
    #[serde(default)]
    next: Option<String>,
}

/// Whether a form post comes from this server's own pages (the Origin, when sent, is ours).
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        host,
    ) {
        (None, _) => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|s| s == "same-origin" || s == "none"),
        (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
        (Some(_), None) => false,
    }
}

async fn login(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Page {
    let next = safe_next(f.next.as_deref());
    let fail = |msg: String| -> Page {
        let page = LoginPage {
            chrome: Chrome {
                title: "Sign in".into(),
                v: atrium_portal::assets::version(),
                ..Default::default()
            },
            next: next.clone(),
            error: Some(msg),
        };
        let mut resp = (StatusCode::UNAUTHORIZED, html(&page)).into_response();
        no_store(&mut resp);
        Ok(resp)
    };
    if !same_origin(&headers) {
        return Err(DomainError::PermissionDenied(
            "sign-in forms are accepted only from this server's own page".into(),
        )
        .into());
    }
    let token = f.token.trim().to_string();
    if token.is_empty() {
        return fail("enter an API token".into());
    }
    let creds = if f.user.trim().is_empty() {
        Credentials::Bearer(token)
    } else {
        Credentials::Basic {
            user: f.user.trim().to_string(),
            password: token,
        }
    };
    match st.access.authenticate(&creds).await {
        Ok(id) => {
            let (sid, _) = st.sessions.create(creds);
            tracing::info!(user = %id.user, "portal sign-in");
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::SEE_OTHER;
            let h = resp.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(&next).unwrap_or(HeaderValue::from_static("/")),
            );
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&sid)) {
                h.insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(DomainError::Unauthenticated(m)) => fail(m),
        Err(e) => Err(e.into()),
    }
}

/// `POST /ui/logout`: ends the session (htmx follows `HX-Redirect` to the sign-in page); the
/// route guard has checked the session's CSRF token, as for every portal write.
async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Page {
    if let Some((id, _)) = st.sessions.of_request(&headers) {
        st.sessions.remove(&id);
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert("hx-redirect", HeaderValue::from_static("/ui/login"));
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        h.insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// The query of an asset request.
#[derive(Deserialize)]
struct AssetQuery {
    /// The asset version the page asked for.
    #[serde(default)]
    v: Option<String>,
}

/// `GET /ui/assets/{name}`: an embedded file; cached for good when asked with this build's `v`.
async fn asset(Path(name): Path<String>, Query(q): Query<AssetQuery>) -> Response {
    let Some(a) = atrium_portal::assets::get(&name) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("no asset '{name}'"),
        );
    };
    let cache = if q.v.as_deref() == Some(atrium_portal::assets::version()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut resp = Response::new(Body::from(a.bytes));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/ui/ws/a")), "/ui/ws/a");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn only_our_origin_may_post_the_sign_in_form() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
