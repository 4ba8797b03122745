//! Users, API tokens, role assignments and the audit log.

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::auth::{AuditEntry, AuditFilter, NewAuditEntry, Role, TokenInfo, User};
use crate::workspace::{DomainError, DomainResult, Millis};

/// A stored token found by its hash, with its user's admin flag.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The token's public data.
    pub info: TokenInfo,
    /// Whether its user is a server admin.
    pub admin: bool,
}

/// A token row to insert.
pub struct TokenRow<'a> {
    /// Public id.
    pub id: &'a str,
    /// Owner.
    pub user: &'a str,
    /// SHA-256 of the token.
    pub hash: &'a str,
    /// Free text.
    pub description: &'a str,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry, if any.
    pub expires_at: Option<Millis>,
    /// Workspace and role the token is limited to, if any.
    pub scope: Option<(&'a str, Role)>,
}

/// The token columns with the user's admin flag (a macro so queries stay `&'static str`).
macro_rules! select_token {
    ($rest:literal) => {
        concat!(
            "SELECT t.id, t.user_name, t.description, t.created_at, t.expires_at, t.revoked_at, \
             t.scope_workspace, t.scope_role, u.is_admin \
             FROM api_tokens t JOIN users u ON u.name = t.user_name ",
            $rest
        )
    };
}

fn user_from(r: &impl RowExt) -> DomainResult<User> {
    Ok(User {
        name: r.text("name")?,
        admin: r.i64("is_admin")? != 0,
        created_at: r.i64("created_at")?,
    })
}

fn token_from(r: &impl RowExt) -> DomainResult<TokenRecord> {
    let scope_role = r
        .opt_text("scope_role")?
        .map(|s| Role::parse(&s))
        .transpose()?;
    Ok(TokenRecord {
        info: TokenInfo {
            id: r.text("id")?,
            user: r.text("user_name")?,
            description: r.text("description")?,
            created_at: r.i64("created_at")?,
            expires_at: r.opt_i64("expires_at")?,
            revoked_at: r.opt_i64("revoked_at")?,
            scope_workspace: r.opt_text("scope_workspace")?,
            scope_role,
        },
        admin: r.i64("is_admin")? != 0,
    })
}

fn audit_from(r: &impl RowExt) -> DomainResult<AuditEntry> {
    Ok(AuditEntry {
        id: r.i64("id")?,
        at: r.i64("at")?,
        workspace: r.opt_text("workspace")?,
        actor: r.text("actor")?,
        token_id: r.opt_text("token_id")?,
        action: r.text("action")?,
        object: r.text("object")?,
        status: r.i64("status")? as u16,
        result: r.text("result")?,
    })
}

impl Store {
    /// Creates a user; `AlreadyExists` if the name is taken.
    pub async fn create_user(&self, name: &str, admin: bool, now: Millis) -> DomainResult<User> {
        let res = with_db!(self, write, |p| sqlx::query(
            "INSERT INTO users (name, is_admin, created_at) VALUES ($1, $2, $3)"
        )
        .bind(name)
        .bind(admin as i64)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()));
        match res {
            Ok(_) => {
                self.access_changed().await;
                Ok(User {
                    name: name.to_string(),
                    admin,
                    created_at: now,
                })
            }
            Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                "user '{name}' already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A user by name.
    pub async fn user(&self, name: &str) -> DomainResult<Option<User>> {
        with_db!(self, read, |p| sqlx::query(
            "SELECT name, is_admin, created_at FROM users WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(user_from)
        .transpose())
    }

    /// All users, by name.
    pub async fn list_users(&self) -> DomainResult<Vec<User>> {
        with_db!(self, read, |p| sqlx::query(
            "SELECT name, is_admin, created_at FROM users ORDER BY name"
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(user_from)
        .collect())
    }

    /// Deletes a user with their tokens and role assignments; false if there was none.
    pub async fn delete_user(&self, name: &str) -> DomainResult<bool> {
        let n = with_db!(self, write, |p| sqlx::query(
            "DELETE FROM users WHERE name = $1"
        )
        .bind(name)
        .execute(p)
        .await?
        .rows_affected());
        self.access_changed().await;
        Ok(n > 0)
    }

    /// Stores a new token (its hash only).
    pub async fn create_token(&self, t: &TokenRow<'_>) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO api_tokens (id, user_name, token_hash, description, created_at, expires_at, scope_workspace, scope_role) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        .bind(t.id)
        .bind(t.user)
        .bind(t.hash)
        .bind(t.description)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.scope.map(|(w, _)| w))
        .bind(t.scope.map(|(_, r)| r.as_str()))
        .execute(p)
        .await
        .map(|_| ())
        })?;
        self.access_changed().await;
        Ok(())
    }

    /// The token with this hash, revoked or expired ones included.
    pub async fn token_by_hash(&self, hash: &str) -> DomainResult<Option<TokenRecord>> {
        with_db!(self, read, |p| sqlx::query(select_token!(
            "WHERE t.token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(token_from)
        .transpose())
    }

    /// A token by its public id.
    pub async fn token(&self, id: &str) -> DomainResult<Option<TokenRecord>> {
        with_db!(self, read, |p| sqlx::query(select_token!(
            "WHERE t.id = $1"
        ))
        .bind(id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(token_from)
        .transpose())
    }

    /// Tokens of one user (or of everyone), newest first.
    pub async fn list_tokens(&self, user: Option<&str>) -> DomainResult<Vec<TokenInfo>> {
        with_db!(self, read, |p| sqlx::query(select_token!(
            "WHERE ($1 IS NULL OR t.user_name = $1) ORDER BY t.created_at DESC, t.id"
        ))
        .bind(user)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| token_from(r).map(|t| t.info))
        .collect())
    }

    /// Marks a token revoked (kept for the record); false if it was unknown or already revoked.
    pub async fn revoke_token(&self, id: &str, now: Millis) -> DomainResult<bool> {
        let n = with_db!(self, write, |p| sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
        )
        .bind(now)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        self.access_changed().await;
        Ok(n > 0)
    }

    /// The role a user holds on a workspace, if any.
    pub async fn role_of(&self, workspace: &str, user: &str) -> DomainResult<Option<Role>> {
        let role: Option<String> = with_db!(self, read, |p| sqlx::query(
            "SELECT r.role FROM role_assignments r JOIN workspaces w ON w.id = r.workspace_id \
             WHERE w.name = $1 AND r.user_name = $2"
        )
        .bind(workspace)
        .bind(user)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(|r| r.text("role"))
        .transpose())?;
        role.map(|r| Role::parse(&r)).transpose()
    }

    /// Assigns (or changes) a user's role on a workspace.
    pub async fn set_role(
        &self,
        workspace_id: i64,
        user: &str,
        role: Role,
        now: Millis,
    ) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO role_assignments (workspace_id, user_name, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, user_name) DO UPDATE SET role = excluded.role"
        )
        .bind(workspace_id)
        .bind(user)
        .bind(role.as_str())
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        self.access_changed().await;
        Ok(())
    }

    /// Removes a user's role on a workspace; false if they had none.
    pub async fn remove_role(&self, workspace_id: i64, user: &str) -> DomainResult<bool> {
        let n = with_db!(self, write, |p| sqlx::query(
            "DELETE FROM role_assignments WHERE workspace_id = $1 AND user_name = $2"
        )
        .bind(workspace_id)
        .bind(user)
        .execute(p)
        .await?
        .rows_affected());
        self.access_changed().await;
        Ok(n > 0)
    }

    /// Role assignments: (workspace, user, role), filtered by workspace or user.
    pub async fn list_roles(
        &self,
        workspace: Option<&str>,
        user: Option<&str>,
    ) -> DomainResult<Vec<(String, String, Role)>> {
        let rows: Vec<(String, String, String)> = with_db!(self, read, |p| sqlx::query(
            "SELECT w.name AS ws, r.user_name, r.role FROM role_assignments r \
             JOIN workspaces w ON w.id = r.workspace_id \
             WHERE ($1 IS NULL OR w.name = $1) AND ($2 IS NULL OR r.user_name = $2) \
             ORDER BY w.name, r.user_name"
        )
        .bind(workspace)
        .bind(user)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| Ok((r.text("ws")?, r.text("user_name")?, r.text("role")?)))
        .collect::<DomainResult<Vec<_>>>())?;
        rows.into_iter()
            .map(|(w, u, r)| Ok((w, u, Role::parse(&r)?)))
            .collect()
    }

    /// Appends an audit record. On SQLite it is queued for the group-commit writer and written
    /// with its next group (one commit for many records and the runs and metrics beside them);
    /// [`Self::list_audit`] waits for what is queued.
    pub async fn insert_audit(&self, e: &NewAuditEntry) -> DomainResult<()> {
        if let super::Db::Sqlite { writer, .. } = &self.db {
            return writer.audit(e.clone());
        }
        with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO audit_log (at, workspace, actor, token_id, action, object, status, result) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        .bind(e.at)
        .bind(e.workspace.as_deref())
        .bind(&e.actor)
        .bind(e.token_id.as_deref())
        .bind(&e.action)
        .bind(&e.object)
        .bind(e.status as i64)
        .bind(e.result)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Audit records matching a filter, newest first (every record queued before the call
    /// included).
    pub async fn list_audit(&self, f: &AuditFilter) -> DomainResult<Vec<AuditEntry>> {
        if let super::Db::Sqlite { writer, .. } = &self.db {
            writer.flush().await;
        }
        let action = f.action.as_ref().map(|a| format!("%{a}%"));
        let object = f.object.as_ref().map(|o| format!("%{o}%"));
        with_db!(self, read, |p| {
            sqlx::query(
            "SELECT id, at, workspace, actor, token_id, action, object, status, result FROM audit_log \
             WHERE ($1 IS NULL OR workspace = $1) AND ($2 IS NULL OR actor = $2) \
             AND ($3 IS NULL OR action LIKE $3) AND ($4 IS NULL OR object LIKE $4) \
             AND ($5 IS NULL OR result = $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
             AND ($8 IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9"
        )
        .bind(f.workspace.as_deref())
        .bind(f.actor.as_deref())
        .bind(action.as_deref())
        .bind(object.as_deref())
        .bind(f.result.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(f.before_id)
        .bind(f.limit as i64)
        .fetch_all(p)
        .await?
        .iter()
        .map(audit_from)
        .collect()
        })
    }
}
