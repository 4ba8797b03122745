//! The access service: who a token belongs to, which role it holds where, token and user
//! management, audit records. Verifications and roles are cached ([`super::cache`]) under the
//! store's access epoch, so a request's checks cost no read of the store.

use std::sync::Arc;

use serde::Serialize;

use super::audit::NewAuditEntry;
use super::cache::AuthCache;
use super::token::{self, Credentials};
use super::{Role, check_user_name};
use crate::store::{Store, TokenRow};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// The built-in user that job tokens belong to (created by the migration; it has no roles
/// and no tokens but the job-scoped ones the host makes for running jobs).
pub const JOBS_USER: &str = "atrium-jobs";

/// Longest token lifetime accepted: ten years.
pub const MAX_TOKEN_SECS: u64 = 10 * 365 * 24 * 3600;

/// A user.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct User {
    /// Unique name.
    pub name: String,
    /// Server admin: creates workspaces and users, Owner of every workspace.
    pub admin: bool,
    /// Creation time.
    pub created_at: Millis,
}

/// A token's public data (never the token itself).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TokenInfo {
    /// Public id (`tok_…`), used to revoke.
    pub id: String,
    /// Its user.
    pub user: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry, if any.
    pub expires_at: Option<Millis>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
    /// The one workspace a scoped token works in.
    pub scope_workspace: Option<String>,
    /// The role a scoped token has there.
    pub scope_role: Option<Role>,
}

/// A freshly created token: the secret value, shown once, and its public data.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NewToken {
    /// The token; only its hash is stored.
    pub token: String,
    /// Its public data.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// Server admin.
    pub admin: bool,
    /// The token used.
    pub token_id: String,
    /// For a scoped token: the only workspace and the role it has there.
    pub scope: Option<(String, Role)>,
}

/// Users, tokens, roles and audit records over the metadata store.
pub struct Access {
    svc: Arc<crate::service::Service>,
    cache: AuthCache,
}

/// Refuses Basic credentials whose user is not the token's.
fn check_basic_user(cred: &Credentials, token_user: &str) -> DomainResult<()> {
    match cred {
        Credentials::Basic { user, .. } if user != token_user => Err(DomainError::Unauthenticated(
            "the password is not an API token of that user".into(),
        )),
        _ => Ok(()),
    }
}

fn expired(token_id: &str) -> DomainError {
    DomainError::Unauthenticated(format!("API token {token_id} has expired"))
}

impl Access {
    /// The access service over the workspace service's store.
    pub fn new(svc: Arc<crate::service::Service>) -> Self {
        Self {
            svc,
            cache: AuthCache::default(),
        }
    }

    /// Resolves credentials to an identity; `Unauthenticated` says why not.
    pub async fn authenticate(&self, cred: &Credentials) -> DomainResult<Identity> {
        let digest = token::digest(cred.token());
        // taken before the read: a change committed meanwhile makes the entry stale at once
        let epoch = self.store().access_epoch();
        if let Some(epoch) = epoch
            && let Some((identity, expires_at)) = self.cache.token(&digest, epoch)
        {
            check_basic_user(cred, &identity.user)?;
            if expires_at.is_some_and(|e| e <= now_millis()) {
                return Err(expired(&identity.token_id));
            }
            return Ok(identity);
        }
        let rec = self
            .store()
            .token_by_hash(&hex::encode(digest))
            .await?
            .ok_or_else(|| DomainError::Unauthenticated("invalid API token".into()))?;
        check_basic_user(cred, &rec.info.user)?;
        if rec.info.revoked_at.is_some() {
            return Err(DomainError::Unauthenticated(format!(
                "API token {} has been revoked",
                rec.info.id
            )));
        }
        if rec.info.expires_at.is_some_and(|e| e <= now_millis()) {
            return Err(expired(&rec.info.id));
        }
        let scope = match (rec.info.scope_workspace, rec.info.scope_role) {
            (Some(w), Some(r)) => Some((w, r)),
            _ => None,
        };
        let identity = Identity {
            user: rec.info.user,
            admin: rec.admin && scope.is_none(),
            token_id: rec.info.id,
            scope,
        };
        if let Some(epoch) = epoch {
            self.cache
                .put_token(digest, identity.clone(), rec.info.expires_at, epoch);
        }
        Ok(identity)
    }

    /// The role an identity holds on a workspace (admins: Owner everywhere).
    pub async fn role(&self, who: &Identity, workspace: &str) -> DomainResult<Option<Role>> {
        if let Some((ws, role)) = &who.scope {
            return Ok((ws == workspace).then_some(*role));
        }
        if who.admin {
            return Ok(Some(Role::Owner));
        }
        let epoch = self.store().access_epoch();
        if let Some(epoch) = epoch
            && let Some(role) = self.cache.role(&who.user, workspace, epoch)
        {
            return Ok(role);
        }
        let role = self.store().role_of(workspace, &who.user).await?;
        if let Some(epoch) = epoch {
            self.cache.put_role(&who.user, workspace, role, epoch);
        }
        Ok(role)
    }

    /// The workspaces an identity may open, by name: those it holds a role on; a server admin
    /// (Owner everywhere) every one; a scoped token its one workspace.
    pub async fn workspaces_of(&self, who: &Identity) -> DomainResult<Vec<String>> {
        if let Some((ws, _)) = &who.scope {
            return Ok(vec![ws.clone()]);
        }
        if who.admin {
            let all = self.svc.store.list_workspaces().await?;
            return Ok(all.into_iter().map(|w| w.name).collect());
        }
        let mut names: Vec<String> = self
            .store()
            .list_roles(None, Some(&who.user))
            .await?
            .into_iter()
            .map(|(ws, _, _)| ws)
            .collect();
        names.dedup();
        Ok(names)
    }

    /// Creates a user.
    pub async fn create_user(&self, name: &str, admin: bool) -> DomainResult<User> {
        check_user_name(name)?;
        if name == JOBS_USER {
            return Err(DomainError::invalid(format!(
                "'{JOBS_USER}' is reserved for job tokens"
            )));
        }
        self.store().create_user(name, admin, now_millis()).await
    }

    /// Gives an existing user a role on a workspace (replacing the one they had); returns the
    /// user's name as stored. The built-in job user cannot hold roles.
    pub async fn assign_role(
        &self,
        workspace_id: i64,
        user: &str,
        role: Role,
    ) -> DomainResult<String> {
        let u = self.user(user).await?;
        if u.name == JOBS_USER {
            return Err(DomainError::invalid(
                "the built-in job user cannot hold roles",
            ));
        }
        self.store()
            .set_role(workspace_id, &u.name, role, now_millis())
            .await?;
        Ok(u.name)
    }

    /// A user that must exist.
    pub async fn user(&self, name: &str) -> DomainResult<User> {
        self.store()
            .user(name)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user '{name}' does not exist")))
    }

    /// Creates a token for a user; `expires_at` in ms, `scope` for job tokens.
    pub async fn create_token(
        &self,
        user: &str,
        description: &str,
        expires_at: Option<Millis>,
        scope: Option<(&str, Role)>,
    ) -> DomainResult<NewToken> {
        let now = now_millis();
        if description.len() > 256 {
            return Err(DomainError::invalid(
                "token description is longer than 256 characters",
            ));
        }
        if let Some(e) = expires_at
            && e <= now
        {
            return Err(DomainError::invalid("token expiry is in the past"));
        }
        let u = self.user(user).await?;
        let value = token::generate();
        let id = token::new_id();
        self.store()
            .create_token(&TokenRow {
                id: &id,
                user: &u.name,
                hash: &token::hash(&value),
                description,
                created_at: now,
                expires_at,
                scope,
            })
            .await?;
        Ok(NewToken {
            token: value,
            info: TokenInfo {
                id,
                user: u.name,
                description: description.to_string(),
                created_at: now,
                expires_at,
                revoked_at: None,
                scope_workspace: scope.map(|(w, _)| w.to_string()),
                scope_role: scope.map(|(_, r)| r),
            },
        })
    }

    /// Creates a token as `caller` asks: for themselves, or (server admins) for another user.
    /// A workspace-scoped token creates none, the job user gets none this way, and a lifetime
    /// is positive and at most ten years.
    pub async fn issue_token(
        &self,
        caller: &Identity,
        user: Option<&str>,
        description: &str,
        expires_in_secs: Option<u64>,
    ) -> DomainResult<NewToken> {
        if caller.scope.is_some() {
            return Err(DomainError::PermissionDenied(
                "a workspace-scoped token cannot create tokens".into(),
            ));
        }
        let user = user.unwrap_or(&caller.user);
        check_user_name(user)?;
        if user != caller.user && !caller.admin {
            return Err(DomainError::PermissionDenied(
                "creating tokens for other users needs the server admin role".into(),
            ));
        }
        if user == JOBS_USER {
            return Err(DomainError::invalid(
                "the built-in job user only gets job tokens",
            ));
        }
        let expires_at = match expires_in_secs {
            Some(0) => return Err(DomainError::invalid("expires_in_secs must be positive")),
            Some(s) if s > MAX_TOKEN_SECS => {
                return Err(DomainError::invalid(format!(
                    "expires_in_secs must be at most {MAX_TOKEN_SECS} (ten years)"
                )));
            }
            Some(s) => Some(now_millis() + (s as i64) * 1000),
            None => None,
        };
        self.create_token(user, description, expires_at, None).await
    }

    /// Revokes a token as `caller`: one of their own, or (server admins) anyone's; someone
    /// else's token answers like an unknown one.
    pub async fn revoke_as(&self, caller: &Identity, id: &str) -> DomainResult<()> {
        let t = self.token(id).await?;
        if t.user != caller.user && !caller.admin {
            return Err(DomainError::NotFound(format!(
                "token '{id}' does not exist"
            )));
        }
        self.revoke(id).await
    }

    /// A token by id.
    pub async fn token(&self, id: &str) -> DomainResult<TokenInfo> {
        self.store()
            .token(id)
            .await?
            .map(|r| r.info)
            .ok_or_else(|| DomainError::NotFound(format!("token '{id}' does not exist")))
    }

    /// Revokes a token: the next request with it is refused.
    pub async fn revoke(&self, id: &str) -> DomainResult<()> {
        let t = self.token(id).await?;
        if t.revoked_at.is_some() {
            return Ok(());
        }
        self.store().revoke_token(id, now_millis()).await?;
        Ok(())
    }

    /// Appends an audit record; a failure to write it is logged, never fails the caller.
    pub async fn audit(&self, entry: NewAuditEntry) {
        if let Err(e) = self.store().insert_audit(&entry).await {
            tracing::error!(error = %e, action = entry.action.as_str(), "cannot write the audit record");
        }
    }

    /// The store (for listings).
    pub fn store(&self) -> &Store {
        &self.svc.store
    }
}
