//! Users, tokens, role assignments, the audit log and the route table.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws};
use crate::api::paging;
use crate::api::reply::{Created, Empty};
use crate::api::routes::RouteSpec;
use crate::auth::{AuditEntry, AuditFilter, Identity, NewToken, Principal, Role, TokenInfo, User};
use crate::workspace::DomainError;

type Reply<T> = Result<Json<T>, ApiError>;

/// The identity behind a request that passed an `Authenticated` or `Admin` guard.
fn identity(p: &Principal) -> Result<&Identity, ApiError> {
    p.identity().ok_or_else(|| {
        ApiError(DomainError::Unauthenticated(
            "this needs an API token".into(),
        ))
    })
}

/// The route table.
#[derive(Serialize, JsonSchema)]
pub struct RouteList {
    /// Every route with its policy.
    routes: Vec<RouteSpec>,
}

/// `GET /api/v1/routes`: every route with its policy.
pub async fn route_table(State(st): State<AppState>) -> Json<RouteList> {
    Json(RouteList {
        routes: st.routes.get().cloned().unwrap_or_default(),
    })
}

/// A role assignment.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "RoleAssignment")]
pub struct RoleJson {
    /// The workspace.
    workspace: String,
    /// The user.
    user: String,
    /// `Reader`, `Contributor` or `Owner`.
    role: Role,
}

fn roles_json(roles: Vec<(String, String, Role)>) -> Vec<RoleJson> {
    roles
        .into_iter()
        .map(|(workspace, user, role)| RoleJson {
            workspace,
            user,
            role,
        })
        .collect()
}

/// The caller.
#[derive(Serialize, JsonSchema)]
pub struct WhoAmI {
    /// User name.
    user: String,
    /// Server admin.
    admin: bool,
    /// The token of this request.
    token_id: String,
    /// Roles (a workspace-scoped token: its one role).
    roles: Vec<RoleJson>,
}

/// `GET /api/v1/whoami`.
pub async fn whoami(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Reply<WhoAmI> {
    let id = identity(&p)?;
    let roles = match &id.scope {
        Some((w, r)) => vec![(w.clone(), id.user.clone(), *r)],
        None => st.access.store().list_roles(None, Some(&id.user)).await?,
    };
    Ok(Json(WhoAmI {
        user: id.user.clone(),
        admin: id.admin,
        token_id: id.token_id.clone(),
        roles: roles_json(roles),
    }))
}

/// The users of the host.
#[derive(Serialize, JsonSchema)]
pub struct UserList {
    /// By name.
    users: Vec<User>,
}

/// `GET /api/v1/users`.
pub async fn list_users(State(st): State<AppState>) -> Reply<UserList> {
    let users = st.access.store().list_users().await?;
    Ok(Json(UserList { users }))
}

/// The body of `POST /api/v1/users`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserReq {
    /// Unique name.
    name: String,
    /// Make the user a server admin.
    #[serde(default)]
    admin: bool,
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<NewUserReq>,
) -> Result<Created<User>, ApiError> {
    let u = st.access.create_user(&req.name, req.admin).await?;
    Ok(Created(u))
}

/// A user with their roles.
#[derive(Serialize, JsonSchema)]
pub struct UserDetail {
    /// Unique name.
    name: String,
    /// Server admin.
    admin: bool,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Roles on workspaces.
    roles: Vec<RoleJson>,
}

/// `GET /api/v1/users/{user}`: the user and their roles.
pub async fn get_user(State(st): State<AppState>, Path(name): Path<String>) -> Reply<UserDetail> {
    let u = st.access.user(&name).await?;
    let roles = st.access.store().list_roles(None, Some(&name)).await?;
    Ok(Json(UserDetail {
        name: u.name,
        admin: u.admin,
        created_at: u.created_at,
        roles: roles_json(roles),
    }))
}

/// `DELETE /api/v1/users/{user}`: the user, their tokens and roles (not the last admin).
pub async fn delete_user(State(st): State<AppState>, Path(name): Path<String>) -> Reply<Empty> {
    let u = st.access.user(&name).await?;
    if u.name == crate::auth::JOBS_USER {
        return Err(DomainError::invalid("the built-in job user cannot be deleted").into());
    }
    if u.admin {
        let admins = st
            .access
            .store()
            .list_users()
            .await?
            .iter()
            .filter(|x| x.admin)
            .count();
        if admins <= 1 {
            return Err(DomainError::InvalidState(format!(
                "'{name}' is the last server admin; create another admin first"
            ))
            .into());
        }
    }
    st.access.store().delete_user(&name).await?;
    Ok(Json(Empty {}))
}

/// The query of `GET /api/v1/tokens`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokensQuery {
    /// Another user's tokens (server admins only).
    user: Option<String>,
    /// Every user's tokens (server admins only).
    #[serde(default)]
    all: bool,
}

/// Tokens (their public data, never the secret).
#[derive(Serialize, JsonSchema)]
pub struct TokenList {
    /// Newest first.
    tokens: Vec<TokenInfo>,
}

/// `GET /api/v1/tokens`: the caller's tokens (an admin: `?user=NAME`, or `?all=true`).
pub async fn list_tokens(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Params(q): Params<TokensQuery>,
) -> Reply<TokenList> {
    let id = identity(&p)?;
    let all = q.all;
    let user = q.user.as_deref().unwrap_or(&id.user);
    if (all || user != id.user) && !id.admin {
        return Err(DomainError::PermissionDenied(
            "listing other users' tokens needs the server admin role".into(),
        )
        .into());
    }
    let tokens = st
        .access
        .store()
        .list_tokens(if all { None } else { Some(user) })
        .await?;
    Ok(Json(TokenList { tokens }))
}

/// The body of `POST /api/v1/tokens`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenReq {
    /// Free text.
    #[serde(default)]
    description: String,
    /// Lifetime in seconds (none: does not expire).
    #[serde(default)]
    expires_in_secs: Option<u64>,
    /// Another user (server admins only).
    #[serde(default)]
    user: Option<String>,
}

/// `POST /api/v1/tokens`: a new token, shown once.
pub async fn create_token(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<NewTokenReq>,
) -> Result<Created<NewToken>, ApiError> {
    let t = st
        .access
        .issue_token(
            identity(&p)?,
            req.user.as_deref(),
            &req.description,
            req.expires_in_secs,
        )
        .await?;
    Ok(Created(t))
}

/// A revoked token.
#[derive(Serialize, JsonSchema)]
pub struct Revoked {
    /// The token's id.
    id: String,
    /// Always true.
    revoked: bool,
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens (admins: anyone's).
pub async fn revoke_token(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(token_id): Path<String>,
) -> Reply<Revoked> {
    st.access.revoke_as(identity(&p)?, &token_id).await?;
    Ok(Json(Revoked {
        id: token_id,
        revoked: true,
    }))
}

/// A workspace's role assignments.
#[derive(Serialize, JsonSchema)]
pub struct RoleList {
    /// By user.
    roles: Vec<RoleJson>,
}

/// `GET /api/v1/workspaces/{ws}/roles`.
pub async fn list_roles(State(st): State<AppState>, Ws(ws): Ws) -> Reply<RoleList> {
    let roles = st.access.store().list_roles(Some(&ws.name), None).await?;
    Ok(Json(RoleList {
        roles: roles_json(roles),
    }))
}

/// The body of `PUT .../roles/{user}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleReq {
    /// `Reader`, `Contributor` or `Owner` (any case).
    role: String,
}

/// `PUT /api/v1/workspaces/{ws}/roles/{user}`: assigns or changes a role.
pub async fn assign_role(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, user)): Path<(String, String)>,
    JsonBody(req): JsonBody<RoleReq>,
) -> Reply<RoleJson> {
    let role = Role::parse(&req.role)?;
    let user = st.access.assign_role(ws.id, &user, role).await?;
    Ok(Json(RoleJson {
        workspace: ws.name,
        user,
        role,
    }))
}

/// `DELETE /api/v1/workspaces/{ws}/roles/{user}`.
pub async fn remove_role(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, user)): Path<(String, String)>,
) -> Reply<Empty> {
    if !st.access.store().remove_role(ws.id, &user).await? {
        return Err(DomainError::NotFound(format!(
            "user '{user}' has no role on workspace '{}'",
            ws.name
        ))
        .into());
    }
    Ok(Json(Empty {}))
}

/// Most audit records per page.
const MAX_AUDIT_PAGE: i64 = 1000;

/// The filters of an audit query.
macro_rules! audit_query {
    ($(#[$m:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        #[derive(Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($extra)*
            /// Only this caller (a user name, `anonymous`, `datastore:NAME`, `job:ID`).
            actor: Option<String>,
            /// Only this action, e.g. `DELETE /api/v1/workspaces/{ws}/runs/{id}`.
            action: Option<String>,
            /// Only records whose object contains this text.
            object: Option<String>,
            /// Only `ok`, `denied` or `failed`.
            result: Option<String>,
            /// Only records at or after this time (ms since the epoch).
            since: Option<i64>,
            /// Only records before this time (ms since the epoch).
            until: Option<i64>,
            /// Page size (default 100, 1 to 1000).
            max_results: Option<i64>,
            /// From the previous page's `next_page_token`.
            page_token: Option<String>,
        }

        impl $name {
            fn filter(self, workspace: Option<String>) -> Result<AuditFilter, DomainError> {
                let limit = self.max_results.unwrap_or(100);
                if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
                    return Err(DomainError::invalid(format!(
                        "max_results must be between 1 and {MAX_AUDIT_PAGE}"
                    )));
                }
                let before = match self.page_token.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => Some(paging::decode(Some(t))? as i64),
                    None => None,
                };
                if let Some(r) = &self.result
                    && !matches!(r.as_str(), "ok" | "denied" | "failed")
                {
                    return Err(DomainError::invalid(format!(
                        "result must be ok, denied or failed, not '{r}'"
                    )));
                }
                Ok(AuditFilter {
                    workspace,
                    actor: self.actor,
                    action: self.action,
                    object: self.object,
                    result: self.result,
                    since: self.since,
                    until: self.until,
                    before_id: before,
                    limit: limit as u32,
                })
            }
        }
    };
}

audit_query!(
    /// The query of `GET .../workspaces/{ws}/audit`.
    AuditQuery {}
);

audit_query!(
    /// The query of `GET /api/v1/audit`.
    HostAuditQuery {
        /// Only this workspace's records.
        workspace: Option<String>,
    }
);

/// A page of audit records.
#[derive(Serialize, JsonSchema)]
pub struct AuditPage {
    /// Newest first.
    entries: Vec<AuditEntry>,
    /// The next (older) page, if any.
    next_page_token: Option<String>,
}

async fn audit_page(st: &AppState, f: AuditFilter) -> Reply<AuditPage> {
    let limit = f.limit as usize;
    let mut f = f;
    f.limit += 1;
    let mut entries = st.access.store().list_audit(&f).await?;
    let next_page_token = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| paging::encode(e.id as usize))
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_page_token,
    }))
}

/// `GET /api/v1/workspaces/{ws}/audit` (Owner): filters `actor`, `action`, `object`,
/// `result`, `since`, `until` (ms), paged by `page_token` / `max_results`.
pub async fn workspace_audit(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<AuditQuery>,
) -> Reply<AuditPage> {
    audit_page(&st, q.filter(Some(ws.name))?).await
}

/// `GET /api/v1/audit` (admin): the whole host's records, `workspace` as a further filter.
pub async fn host_audit(
    State(st): State<AppState>,
    Params(q): Params<HostAuditQuery>,
) -> Reply<AuditPage> {
    let ws = q.workspace.clone().filter(|w| !w.is_empty());
    audit_page(&st, q.filter(ws)?).await
}
