//! Users, tokens, role assignments, the audit log and the route table.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, QueryMap, Ws};
use crate::api::paging;
use crate::auth::{AuditFilter, Identity, Principal, Role, check_user_name};
use crate::workspace::{DomainError, now_millis};

/// The identity behind a request that passed an `Authenticated` or `Admin` guard.
fn identity(p: &Principal) -> Result<&Identity, ApiError> {
    p.identity().ok_or_else(|| {
        ApiError(DomainError::Unauthenticated(
            "this needs an API token".into(),
        ))
    })
}

/// `GET /api/v1/routes`: every route with its policy.
pub async fn route_table(State(st): State<AppState>) -> Json<Value> {
    Json(json!({ "routes": st.routes.get().cloned().unwrap_or_default() }))
}

fn roles_json(roles: &[(String, String, Role)]) -> Vec<Value> {
    roles
        .iter()
        .map(|(w, u, r)| json!({ "workspace": w, "user": u, "role": r.as_str() }))
        .collect()
}

/// `GET /api/v1/whoami`.
pub async fn whoami(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let id = identity(&p)?;
    let roles = match &id.scope {
        Some((w, r)) => vec![(w.clone(), id.user.clone(), *r)],
        None => st.access.store().list_roles(None, Some(&id.user)).await?,
    };
    Ok(Json(json!({
        "user": id.user,
        "admin": id.admin,
        "token_id": id.token_id,
        "roles": roles_json(&roles),
    })))
}

/// `GET /api/v1/users`.
pub async fn list_users(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = st.access.store().list_users().await?;
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserReq {
    name: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<NewUserReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let u = st.access.create_user(&req.name, req.admin).await?;
    Ok((StatusCode::CREATED, Json(json!(u))))
}

/// `GET /api/v1/users/{user}`: the user and their roles.
pub async fn get_user(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let u = st.access.user(&name).await?;
    let roles = st.access.store().list_roles(None, Some(&name)).await?;
    Ok(Json(json!({
        "name": u.name,
        "admin": u.admin,
        "created_at": u.created_at,
        "roles": roles_json(&roles),
    })))
}

/// `DELETE /api/v1/users/{user}`: the user, their tokens and roles (not the last admin).
pub async fn delete_user(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({})))
}

/// `GET /api/v1/tokens`: the caller's tokens (an admin: `?user=NAME`, or `?all=true`).
pub async fn list_tokens(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let id = identity(&p)?;
    let all = q.get("all") == Some("true");
    let user = q.get("user").unwrap_or(&id.user);
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
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewTokenReq {
    #[serde(default)]
    description: String,
    /// Lifetime in seconds (none: does not expire).
    #[serde(default)]
    expires_in_secs: Option<u64>,
    /// Another user (server admins only).
    #[serde(default)]
    user: Option<String>,
}

/// Longest token lifetime accepted: ten years.
const MAX_TOKEN_SECS: u64 = 10 * 365 * 24 * 3600;

/// `POST /api/v1/tokens`: a new token, shown once.
pub async fn create_token(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<NewTokenReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = identity(&p)?;
    if id.scope.is_some() {
        return Err(DomainError::PermissionDenied(
            "a workspace-scoped token cannot create tokens".into(),
        )
        .into());
    }
    let user = req.user.as_deref().unwrap_or(&id.user);
    check_user_name(user)?;
    if user != id.user && !id.admin {
        return Err(DomainError::PermissionDenied(
            "creating tokens for other users needs the server admin role".into(),
        )
        .into());
    }
    if user == crate::auth::JOBS_USER {
        return Err(DomainError::invalid("the built-in job user only gets job tokens").into());
    }
    let expires_at = match req.expires_in_secs {
        Some(0) => return Err(DomainError::invalid("expires_in_secs must be positive").into()),
        Some(s) if s > MAX_TOKEN_SECS => {
            return Err(DomainError::invalid(format!(
                "expires_in_secs must be at most {MAX_TOKEN_SECS} (ten years)"
            ))
            .into());
        }
        Some(s) => Some(now_millis() + (s as i64) * 1000),
        None => None,
    };
    let t = st
        .access
        .create_token(user, &req.description, expires_at, None)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens (admins: anyone's).
pub async fn revoke_token(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(token_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = identity(&p)?;
    let t = st.access.token(&token_id).await?;
    if t.user != id.user && !id.admin {
        // someone else's token id answers like an unknown one
        return Err(DomainError::NotFound(format!("token '{token_id}' does not exist")).into());
    }
    st.access.revoke(&token_id).await?;
    Ok(Json(json!({ "id": token_id, "revoked": true })))
}

/// `GET /api/v1/workspaces/{ws}/roles`.
pub async fn list_roles(State(st): State<AppState>, Ws(ws): Ws) -> Result<Json<Value>, ApiError> {
    let roles = st.access.store().list_roles(Some(&ws.name), None).await?;
    Ok(Json(json!({ "roles": roles_json(&roles) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleReq {
    role: String,
}

/// `PUT /api/v1/workspaces/{ws}/roles/{user}`: assigns or changes a role.
pub async fn assign_role(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, user)): Path<(String, String)>,
    JsonBody(req): JsonBody<RoleReq>,
) -> Result<Json<Value>, ApiError> {
    let role = Role::parse(&req.role)?;
    let u = st.access.user(&user).await?;
    if u.name == crate::auth::JOBS_USER {
        return Err(DomainError::invalid("the built-in job user cannot hold roles").into());
    }
    st.access
        .store()
        .set_role(ws.id, &u.name, role, now_millis())
        .await?;
    Ok(Json(
        json!({ "workspace": ws.name, "user": u.name, "role": role.as_str() }),
    ))
}

/// `DELETE /api/v1/workspaces/{ws}/roles/{user}`.
pub async fn remove_role(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !st.access.store().remove_role(ws.id, &user).await? {
        return Err(DomainError::NotFound(format!(
            "user '{user}' has no role on workspace '{}'",
            ws.name
        ))
        .into());
    }
    Ok(Json(json!({})))
}

/// Most audit records per page.
const MAX_AUDIT_PAGE: i64 = 1000;

fn audit_filter(q: &QueryMap, workspace: Option<String>) -> Result<AuditFilter, DomainError> {
    let limit = q.int("max_results")?.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(DomainError::invalid(format!(
            "max_results must be between 1 and {MAX_AUDIT_PAGE}"
        )));
    }
    let before = match q.get("page_token").filter(|t| !t.is_empty()) {
        Some(t) => Some(paging::decode(Some(t))? as i64),
        None => None,
    };
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(String::from);
    if let Some(r) = q.get("result")
        && !matches!(r, "ok" | "denied" | "failed")
    {
        return Err(DomainError::invalid(format!(
            "result must be ok, denied or failed, not '{r}'"
        )));
    }
    Ok(AuditFilter {
        workspace: workspace.or_else(|| text("workspace")),
        actor: text("actor"),
        action: text("action"),
        object: text("object"),
        result: text("result"),
        since: q.int("since")?,
        until: q.int("until")?,
        before_id: before,
        limit: limit as u32,
    })
}

async fn audit_page(st: &AppState, f: AuditFilter) -> Result<Json<Value>, ApiError> {
    let limit = f.limit as usize;
    let mut f = f;
    f.limit += 1;
    let mut entries = st.access.store().list_audit(&f).await?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| paging::encode(e.id as usize))
    } else {
        None
    };
    Ok(Json(json!({ "entries": entries, "next_page_token": next })))
}

/// `GET /api/v1/workspaces/{ws}/audit` (Owner): filters `actor`, `action`, `object`,
/// `result`, `since`, `until` (ms), paged by `page_token` / `max_results`.
pub async fn workspace_audit(
    State(st): State<AppState>,
    Path(ws): Path<String>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    audit_page(&st, audit_filter(&q, Some(ws))?).await
}

/// `GET /api/v1/audit` (admin): the whole host's records, `workspace` as a further filter.
pub async fn host_audit(State(st): State<AppState>, q: QueryMap) -> Result<Json<Value>, ApiError> {
    audit_page(&st, audit_filter(&q, None)?).await
}
