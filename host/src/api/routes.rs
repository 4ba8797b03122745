//! The route table: every route is registered with the [`Policy`] that guards it, and the
//! router is built from that table, so a route cannot exist without a policy. The guard
//! resolves the caller, checks the policy, and records state-changing calls in the audit log.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use serde::Serialize;

use super::AppState;
use super::error::{Flavor, error_response};
use super::openapi::describe::{Described, DocInput, Generators, OpDoc};
use crate::auth::token::Credentials;
use crate::auth::{NewAuditEntry, Policy, Principal, Role, audit};
use crate::workspace::{DEFAULT_WORKSPACE, DomainError, now_millis};

/// One route of the table.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "Route")]
pub struct RouteSpec {
    /// HTTP method (GET routes answer HEAD too).
    pub method: String,
    /// Path template, e.g. `/api/v1/workspaces/{ws}/runs/{id}`.
    pub path: String,
    /// What the caller needs.
    pub policy: Policy,
    /// For an action route, the action after the last path segment: `POST .../{id}:restore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// What the operation is, takes and answers (documented routes: the native API).
    #[serde(skip)]
    pub doc: Option<RouteDoc>,
}

/// The documentation of a route: a summary, and its operation as the handler's types say.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// One line.
    pub summary: &'static str,
    /// The request and responses, from the handler's signature.
    pub describe: fn(&mut Generators) -> OpDoc,
}

/// A handler with its summary, for [`Api::route`].
pub struct Doc<H> {
    handler: H,
    summary: &'static str,
    action: Option<&'static str>,
    limit: Option<DefaultBodyLimit>,
}

/// Documents a handler: `summary` is one line; the rest comes from its signature.
pub fn doc<H>(summary: &'static str, handler: H) -> Doc<H> {
    Doc {
        handler,
        summary,
        action: None,
        limit: None,
    }
}

impl<H> Doc<H> {
    /// Makes the route an action: the last path segment is `{id}:{action}`, and the handler
    /// reads the id with [`Target`].
    pub fn action(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// Replaces the default body limit of the route.
    pub fn body_limit(mut self, limit: DefaultBodyLimit) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// The id in the last path segment of an action route, without its `:action` suffix.
#[derive(Debug, Clone)]
pub struct Target(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = super::error::ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Target>()
            .map(|t| Target(t.0.clone()))
            .ok_or_else(|| {
                DomainError::Internal("Target read on a route that is not an action".into()).into()
            })
    }
}

impl DocInput for Target {
    fn describe(_: &mut Generators, _: &mut OpDoc) {}
}

/// Checks the `:action` suffix of an action route's last path segment; hands the id before
/// it to the handler as a [`Target`].
async fn split_action(
    State(action): State<&'static str>,
    mut req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let last = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| p.iter().last().map(|(_, v)| v.to_string()))
        .unwrap_or_default();
    req = Request::from_parts(parts, body);
    match last.rsplit_once(':') {
        Some((id, a)) if a == action => {
            req.extensions_mut().insert(Target(id.to_string()));
            next.run(req).await
        }
        Some((_, a)) => error_response(
            &DomainError::NotFound(format!("unknown action '{a}'; known: {action}")),
            Flavor::Native,
        ),
        None => error_response(
            &DomainError::NotFound(format!(
                "POST {} is not an action; use POST {{id}}:{action}",
                req.uri().path()
            )),
            Flavor::Native,
        ),
    }
}

/// Builds the router and its table together.
pub struct Api {
    state: AppState,
    router: Router<AppState>,
    table: Vec<RouteSpec>,
    prefix: String,
}

/// What the guard of one route knows.
#[derive(Clone)]
struct Guard {
    state: AppState,
    policy: Policy,
    /// `METHOD /path/template`.
    action: Arc<str>,
    flavor: Flavor,
}

impl Api {
    /// An empty table for this application state.
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            router: Router::new(),
            table: Vec::new(),
            prefix: String::new(),
        }
    }

    /// Registers the routes `f` adds below `prefix`.
    pub fn scope(&mut self, prefix: &str, f: impl FnOnce(&mut Self)) -> &mut Self {
        let outer = self.prefix.clone();
        self.prefix.push_str(prefix);
        f(self);
        self.prefix = outer;
        self
    }

    /// Registers one method of a documented route under a policy: the handler's signature
    /// gives the operation's request and responses (see [`super::openapi`]).
    pub fn route<H, T, A>(
        &mut self,
        method: Method,
        path: &str,
        policy: Policy,
        d: Doc<H>,
    ) -> &mut Self
    where
        H: Handler<T, AppState> + Described<A>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("no method filter for {method}"));
        let mut mr = axum::routing::on(filter, d.handler);
        if let Some(action) = d.action {
            mr = mr.route_layer(axum::middleware::from_fn_with_state(action, split_action));
        }
        if let Some(limit) = d.limit {
            mr = mr.layer(limit);
        }
        let doc = RouteDoc {
            summary: d.summary,
            describe: <H as Described<A>>::describe,
        };
        self.register(method, path, policy, mr, d.action, Some(doc))
    }

    /// Registers one method of a route (`mr` holds that method only) under a policy.
    pub fn add(
        &mut self,
        method: Method,
        path: &str,
        policy: Policy,
        mr: MethodRouter<AppState>,
    ) -> &mut Self {
        self.register(method, path, policy, mr, None, None)
    }

    fn register(
        &mut self,
        method: Method,
        path: &str,
        policy: Policy,
        mr: MethodRouter<AppState>,
        action: Option<&'static str>,
        doc: Option<RouteDoc>,
    ) -> &mut Self {
        let full = format!("{}{path}", self.prefix);
        let flavor = if full.contains("/mlflow") {
            Flavor::Mlflow
        } else if crate::portal::is_portal_path(&full) {
            Flavor::Portal
        } else {
            Flavor::Native
        };
        let guard = Guard {
            state: self.state.clone(),
            policy,
            action: Arc::from(format!("{method} {full}")),
            flavor,
        };
        let mr = mr.route_layer(axum::middleware::from_fn_with_state(guard, authorize));
        self.router = std::mem::take(&mut self.router).route(&full, mr);
        self.table.push(RouteSpec {
            method: method.to_string(),
            path: full,
            policy,
            action,
            doc,
        });
        self
    }

    /// GET (and HEAD).
    pub fn get<H, T>(&mut self, path: &str, policy: Policy, h: H) -> &mut Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, policy, axum::routing::get(h))
    }

    /// POST.
    pub fn post<H, T>(&mut self, path: &str, policy: Policy, h: H) -> &mut Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, policy, axum::routing::post(h))
    }

    /// PUT.
    pub fn put<H, T>(&mut self, path: &str, policy: Policy, h: H) -> &mut Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PUT, path, policy, axum::routing::put(h))
    }

    /// PATCH.
    pub fn patch<H, T>(&mut self, path: &str, policy: Policy, h: H) -> &mut Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PATCH, path, policy, axum::routing::patch(h))
    }

    /// DELETE.
    pub fn delete<H, T>(&mut self, path: &str, policy: Policy, h: H) -> &mut Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::DELETE, path, policy, axum::routing::delete(h))
    }

    /// The router and its table.
    pub fn finish(self) -> (Router<AppState>, Vec<RouteSpec>) {
        (self.router, self.table)
    }
}

/// The table as a path matcher: path template → methods registered with a policy.
#[derive(Clone)]
pub struct TableMatcher(Arc<matchit::Router<Vec<String>>>);

impl TableMatcher {
    /// Indexes a route table.
    pub fn new(table: &[RouteSpec]) -> Self {
        let mut by_path: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for r in table {
            by_path.entry(&r.path).or_default().push(r.method.clone());
        }
        let mut m = matchit::Router::new();
        for (path, methods) in by_path {
            // the table was accepted by axum's router, which uses the same matcher
            let _ = m.insert(path, methods);
        }
        Self(Arc::new(m))
    }

    /// Whether a request's method and path match a route of the table.
    pub fn admits(&self, method: &Method, path: &str) -> bool {
        let m = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.0
            .at(path)
            .is_ok_and(|hit| hit.value.iter().any(|x| x == m))
    }
}

/// Deny by default: a request that matches no route of the table never reaches the router,
/// so a route added to the router without going through [`Api`] (and its policy) is dead.
pub async fn only_table_routes(
    State(m): State<TableMatcher>,
    req: Request,
    next: Next,
) -> Response {
    if m.admits(req.method(), req.uri().path()) {
        next.run(req).await
    } else if m.0.at(req.uri().path()).is_ok() {
        super::error::method_not_allowed(req.method().clone(), req.uri().clone()).await
    } else {
        super::error::not_found(req.uri().clone()).await
    }
}

/// Reads the credentials of a request: `None` when it sends none.
fn credentials(headers: &HeaderMap) -> Result<Option<Credentials>, DomainError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| {
        DomainError::Unauthenticated("the Authorization header is not valid text".into())
    })?;
    Credentials::parse(v)
        .map(Some)
        .map_err(|m| DomainError::Unauthenticated(m.into()))
}

const NEEDS_TOKEN: &str = "this needs an API token: send `Authorization: Bearer <token>` \
     (the mlflow client: MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD)";

/// Who is calling: the user behind the credentials, or anonymous; 401 for bad credentials.
/// Portal routes also take the session cookie (then a write must carry the session's CSRF
/// token); the API routes never do, so a browser's cookie cannot drive them.
async fn identify(g: &Guard, parts: &axum::http::request::Parts) -> Result<Principal, DomainError> {
    let headers = &parts.headers;
    if g.flavor == Flavor::Portal && headers.get(header::AUTHORIZATION).is_none() {
        let Some((_, session)) = g.state.sessions.of_request(headers) else {
            return Ok(Principal::Anonymous);
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = headers
                .get(crate::portal::session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !crate::portal::session::same_token(sent, &session.csrf) {
                return Err(DomainError::PermissionDenied(
                    "this form's CSRF token is missing or stale: reload the page and try again"
                        .into(),
                ));
            }
        }
        return match g.state.access.authenticate(&session.creds).await {
            Ok(id) => Ok(Principal::User(id)),
            // a revoked token or deleted user ends the session: browse as anonymous
            Err(DomainError::Unauthenticated(_)) => Ok(Principal::Anonymous),
            Err(e) => Err(e),
        };
    }
    Ok(match credentials(headers)? {
        // endpoint keys are bearer tokens too: the scoring handler checks those
        Some(c) if g.policy != Policy::Scoring || c.is_user_token() => {
            Principal::User(g.state.access.authenticate(&c).await?)
        }
        _ => Principal::Anonymous,
    })
}

/// Decides whether the caller may use the route.
async fn check(
    g: &Guard,
    principal: &Principal,
    workspace: Option<&str>,
) -> Result<(), DomainError> {
    let need = match g.policy {
        Policy::Public | Policy::Scoring => return Ok(()),
        Policy::Authenticated => {
            return match principal {
                Principal::Anonymous => Err(DomainError::Unauthenticated(NEEDS_TOKEN.into())),
                _ => Ok(()),
            };
        }
        Policy::Admin => {
            return match principal {
                Principal::Anonymous => Err(DomainError::Unauthenticated(NEEDS_TOKEN.into())),
                Principal::User(id) if id.admin => Ok(()),
                Principal::User(_) => Err(DomainError::PermissionDenied(
                    "this needs the server admin role".into(),
                )),
            };
        }
        p => p.role().unwrap_or(Role::Owner),
    };
    let ws = workspace.unwrap_or(DEFAULT_WORKSPACE);
    let anonymous_read = || async {
        need == Role::Reader
            && g.state
                .svc
                .workspace(ws)
                .await
                .is_ok_and(|w| w.anonymous_read)
    };
    let id = match principal {
        Principal::Anonymous if anonymous_read().await => return Ok(()),
        Principal::Anonymous => return Err(DomainError::Unauthenticated(NEEDS_TOKEN.into())),
        Principal::User(id) => id,
    };
    match g.state.access.role(id, ws).await? {
        Some(r) if r >= need => Ok(()),
        Some(r) => Err(DomainError::PermissionDenied(format!(
            "this needs the {} role on workspace '{ws}'; {} has {}",
            need.as_str(),
            id.user,
            r.as_str()
        ))),
        None if g.policy == Policy::PutWorkspace => Err(DomainError::PermissionDenied(
            "creating a workspace needs the server admin role".into(),
        )),
        None if anonymous_read().await => Ok(()),
        // a workspace the caller cannot see answers exactly like one that does not exist; the
        // hint lists only the caller's own workspaces, so it is the same either way
        None => Err(DomainError::NotFound(format!(
            "workspace '{ws}' does not exist {}",
            own_workspaces_hint(&g.state.access.workspaces_of(id).await?)
        ))),
    }
}

/// `(or you have no role on it; your workspaces: a, b)` for a workspace the caller cannot see.
pub fn own_workspaces_hint(own: &[String]) -> String {
    if own.is_empty() {
        "(or you have no role on it; you have a role on no workspace)".to_string()
    } else {
        format!(
            "(or you have no role on it; your workspaces: {})",
            own.join(", ")
        )
    }
}

/// Largest MLflow JSON body read for the ids it names (audit records).
const SNIFF_LIMIT: u64 = 64 * 1024;

/// The ids an MLflow request body names (`run_id=…, name=…`), for the audit record.
async fn sniff_ids(parts: &axum::http::request::Parts, body: Body) -> (Body, String) {
    let small = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n <= SNIFF_LIMIT);
    if !small {
        return (body, String::new());
    }
    let Ok(bytes) = axum::body::to_bytes(body, SNIFF_LIMIT as usize).await else {
        return (Body::empty(), String::new());
    };
    let mut ids = Vec::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        for k in [
            "experiment_id",
            "run_id",
            "name",
            "new_name",
            "version",
            "alias",
            "key",
        ] {
            if let Some(v) = m.get(k)
                && (v.is_string() || v.is_number())
            {
                let v = v.to_string();
                ids.push(format!("{k}={}", v.trim_matches('"')));
            }
        }
    }
    (Body::from(bytes), ids.join(","))
}

/// The guard in front of every route.
async fn authorize(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    let workspace = params.as_ref().and_then(|p| {
        p.iter()
            .find(|(k, _)| *k == "ws")
            .map(|(_, v)| v.to_string())
    });
    if g.flavor == Flavor::Native
        && let Some(p) = &params
        && let Some(Err(e)) = p
            .iter()
            .map(|(k, v)| super::extract::no_nul(&format!("path parameter '{k}'"), v))
            .find(Result::is_err)
    {
        return error_response(&e, g.flavor);
    }
    let principal = match identify(&g, &parts).await {
        Ok(p) => p,
        Err(e) => return error_response(&e, g.flavor),
    };
    let verdict = check(&g, &principal, workspace.as_deref()).await;
    let audited = g.policy.audited() && !matches!(parts.method, Method::GET | Method::HEAD);
    if !audited {
        return match verdict {
            Ok(()) => {
                parts.extensions.insert(principal);
                next.run(Request::from_parts(parts, body)).await
            }
            // a browser that is not signed in goes to the sign-in page, and comes back after
            Err(DomainError::Unauthenticated(_)) if g.flavor == Flavor::Portal => {
                crate::portal::to_login(&parts.uri)
            }
            Err(e) => error_response(&e, g.flavor),
        };
    }
    let (body, ids) = if g.flavor == Flavor::Mlflow {
        sniff_ids(&parts, body).await
    } else {
        (body, String::new())
    };
    let mut object = parts.uri.path().to_string();
    if !ids.is_empty() {
        object = format!("{object} {ids}");
    }
    let scoped_ws = g.policy.role().map(|_| {
        workspace
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKSPACE.into())
    });
    let (resp, denied) = match verdict {
        Ok(()) => {
            parts.extensions.insert(principal.clone());
            (next.run(Request::from_parts(parts, body)).await, false)
        }
        Err(e @ DomainError::Unauthenticated(_)) => {
            // no identity to record; the log line is enough
            tracing::info!(
                action = &*g.action,
                object = object.as_str(),
                "unauthenticated call refused"
            );
            return error_response(&e, g.flavor);
        }
        Err(e) => (error_response(&e, g.flavor), true),
    };
    let status = resp.status().as_u16();
    g.state
        .access
        .audit(NewAuditEntry {
            at: now_millis(),
            workspace: scoped_ws,
            actor: principal.actor().to_string(),
            token_id: principal.identity().map(|i| i.token_id.clone()),
            action: g.action.to_string(),
            object,
            status,
            result: audit::result_of(status, denied),
        })
        .await;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(method: &str, path: &str) -> RouteSpec {
        RouteSpec {
            method: method.into(),
            path: path.into(),
            policy: Policy::Read,
            action: None,
            doc: None,
        }
    }

    #[test]
    fn the_hint_names_only_the_callers_workspaces() {
        assert_eq!(
            own_workspaces_hint(&["team-a".into(), "team-b".into()]),
            "(or you have no role on it; your workspaces: team-a, team-b)"
        );
        assert!(own_workspaces_hint(&[]).contains("no workspace"));
    }

    #[test]
    fn only_routes_of_the_table_pass() {
        let m = TableMatcher::new(&[
            spec("GET", "/api/v1/workspaces/{ws}/runs/{id}"),
            spec("DELETE", "/api/v1/workspaces/{ws}/runs/{id}"),
            spec("PUT", "/api/v1/workspaces/{ws}/runs/{id}/artifacts/{*path}"),
        ]);
        assert!(m.admits(&Method::GET, "/api/v1/workspaces/a/runs/r1"));
        assert!(m.admits(&Method::HEAD, "/api/v1/workspaces/a/runs/r1"));
        assert!(m.admits(&Method::DELETE, "/api/v1/workspaces/a/runs/r1"));
        assert!(!m.admits(&Method::POST, "/api/v1/workspaces/a/runs/r1"));
        assert!(m.admits(
            &Method::PUT,
            "/api/v1/workspaces/a/runs/r1/artifacts/d/f.txt"
        ));
        assert!(!m.admits(&Method::GET, "/api/v1/workspaces/a/secret-route"));
        assert!(!m.admits(&Method::GET, "/"));
    }
}
