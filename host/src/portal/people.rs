//! Users and tokens: `/ui/tokens` lists, creates and revokes the caller's own tokens;
//! `/ui/users` (server admins) lists users with their roles, creates users, and manages every
//! user's tokens. A token's value is shown once, on the page that created it.

use std::collections::BTreeMap;

use atrium_portal::fmt;
use atrium_portal::views::{PeoplePage, TokenRow, UserRow};
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::{Page, PortalError, chrome, flash, page};
use crate::api::AppState;
use crate::auth::{Identity, Principal, TokenInfo};
use crate::workspace::{DomainError, now_millis};

/// The signed-in identity (the routes' guards let only users through).
fn identity(who: &Principal) -> Result<&Identity, PortalError> {
    who.identity()
        .ok_or_else(|| DomainError::Unauthenticated("sign in first".into()).into())
}

/// A token as a table row.
fn token_row(t: TokenInfo, me: &Identity, now: i64) -> TokenRow {
    let (state, active) = match (t.revoked_at, t.expires_at) {
        (Some(at), _) => (format!("revoked {}", fmt::time(at)), false),
        (None, Some(e)) if e <= now => ("expired".to_string(), false),
        _ => ("active".to_string(), true),
    };
    TokenRow {
        current: t.id == me.token_id,
        expires: t
            .expires_at
            .map(fmt::time)
            .unwrap_or_else(|| "never".into()),
        scope: match (t.scope_workspace, t.scope_role) {
            (Some(w), Some(r)) => format!("{w} ({})", r.as_str()),
            (Some(w), None) => w,
            _ => String::new(),
        },
        created: fmt::time(t.created_at),
        id: t.id,
        user: t.user,
        description: t.description,
        state,
        active,
    }
}

/// Renders the tokens page (`all = false`) or the admins' users page (`all = true`).
async fn people_page(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    all: bool,
    created: Option<String>,
    flash: Option<(bool, String)>,
) -> Page {
    let me = identity(who)?;
    let title = if all {
        "Users and tokens"
    } else {
        "Your tokens"
    };
    let c = chrome(
        st,
        who,
        headers,
        "",
        if all { "users" } else { "tokens" },
        title,
    )
    .await?;
    let now = now_millis();
    let store = st.access.store();
    let infos = store
        .list_tokens(if all { None } else { Some(&me.user) })
        .await?;
    let mut users = Vec::new();
    if all {
        let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (ws, user, role) in store.list_roles(None, None).await? {
            roles
                .entry(user)
                .or_default()
                .push(format!("{ws}: {}", role.as_str()));
        }
        for u in store.list_users().await? {
            if u.name == crate::auth::JOBS_USER {
                continue;
            }
            let tokens = infos
                .iter()
                .filter(|t| {
                    t.user == u.name
                        && t.revoked_at.is_none()
                        && t.expires_at.is_none_or(|e| e > now)
                })
                .count();
            users.push(UserRow {
                roles: roles.remove(&u.name).unwrap_or_default().join(", "),
                created: fmt::time(u.created_at),
                name: u.name,
                admin: u.admin,
                tokens,
            });
        }
    }
    let tokens = infos
        .into_iter()
        .filter(|t| t.user != crate::auth::JOBS_USER)
        .map(|t| token_row(t, me, now))
        .collect();
    page(&PeoplePage {
        chrome: c,
        all,
        users,
        tokens,
        me: me.user.clone(),
        created,
        flash,
    })
}

/// `GET /ui/tokens`: the caller's tokens.
pub async fn tokens(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Page {
    people_page(&st, &who, &headers, false, None, None).await
}

/// `GET /ui/users` (server admins): users, their roles, every token.
pub async fn users(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Page {
    people_page(&st, &who, &headers, true, None, None).await
}

/// The create-token form.
#[derive(Deserialize)]
pub struct TokenForm {
    /// Free text.
    #[serde(default)]
    description: String,
    /// Lifetime in days (empty: never expires).
    #[serde(default)]
    expires_days: String,
    /// Another user (admins' page only).
    #[serde(default)]
    user: Option<String>,
}

/// Creates a token from the form and renders the page with its value (shown once).
async fn create(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    all: bool,
    f: TokenForm,
) -> Page {
    let me = identity(who)?;
    let days = f.expires_days.trim();
    let expires = if days.is_empty() {
        Ok(None)
    } else {
        days.parse::<u64>()
            .map_err(|_| DomainError::invalid(format!("expiry '{days}' is not a number of days")))
            .and_then(|d| {
                d.checked_mul(86_400)
                    .map(Some)
                    .ok_or_else(|| DomainError::invalid("expiry is too far away"))
            })
    };
    let user = if all {
        f.user.as_deref().map(str::trim).filter(|u| !u.is_empty())
    } else {
        None
    };
    let r = match expires {
        Ok(secs) => {
            st.access
                .issue_token(me, user, f.description.trim(), secs)
                .await
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(t) => {
            let msg = format!("token {} created for {}", t.info.id, t.info.user);
            people_page(st, who, headers, all, Some(t.token), Some((true, msg))).await
        }
        Err(e) => people_page(st, who, headers, all, None, Some(flash(Err(e))?)).await,
    }
}

/// `POST /ui/tokens/create`: a token for the caller.
pub async fn create_token(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Page {
    create(&st, &who, &headers, false, f).await
}

/// `POST /ui/users/token` (server admins): a token for any user.
pub async fn create_user_token(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Page {
    create(&st, &who, &headers, true, f).await
}

/// The revoke form.
#[derive(Deserialize)]
pub struct RevokeForm {
    /// The token's public id.
    id: String,
}

/// Revokes a token and renders the page again.
async fn revoke(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    all: bool,
    f: RevokeForm,
) -> Page {
    let me = identity(who)?;
    let id = f.id.trim();
    let r = st.access.revoke_as(me, id).await;
    let shown = flash(r.map(|()| format!("token {id} revoked")))?;
    people_page(st, who, headers, all, None, Some(shown)).await
}

/// `POST /ui/tokens/revoke`: one of the caller's tokens.
pub async fn revoke_token(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(f): Form<RevokeForm>,
) -> Page {
    revoke(&st, &who, &headers, false, f).await
}

/// `POST /ui/users/revoke` (server admins): anyone's token.
pub async fn revoke_user_token(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(f): Form<RevokeForm>,
) -> Page {
    revoke(&st, &who, &headers, true, f).await
}

/// The create-user form.
#[derive(Deserialize)]
pub struct UserForm {
    /// Unique name.
    name: String,
    /// `true` for a server admin (a checkbox: absent when unchecked).
    #[serde(default)]
    admin: Option<String>,
}

/// `POST /ui/users/create` (server admins).
pub async fn create_user(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(f): Form<UserForm>,
) -> Page {
    let name = f.name.trim();
    let admin = f.admin.as_deref() == Some("true");
    let r = st.access.create_user(name, admin).await.map(|u| {
        format!(
            "user {} created{}: give them a role in a workspace's settings and a token below",
            u.name,
            if u.admin { " (server admin)" } else { "" }
        )
    });
    let shown = flash(r)?;
    people_page(&st, &who, &headers, true, None, Some(shown)).await
}
