//! Workspaces and their datastores.

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{
    DEFAULT_EXPERIMENT_NAME, DomainError, DomainResult, LifecycleStage, Workspace, now_millis,
};

/// A datastore row: where a workspace keeps artifact bytes.
#[derive(Debug, Clone)]
pub struct Datastore {
    /// Internal key.
    pub id: i64,
    /// Name within the workspace (`default` for the one created with it).
    pub name: String,
    /// Backend kind (`local` for now).
    pub kind: String,
    /// Backend configuration as JSON.
    pub config: serde_json::Value,
    /// Whether new artifacts of the workspace go here unless an experiment says otherwise.
    pub is_default: bool,
    /// Name of the workspace it belongs to.
    pub workspace: String,
}

/// Columns of a datastore row (table alias `d`).
pub(crate) const DATASTORE_COLUMNS: &str =
    "d.id, d.name, d.kind, d.config, d.is_default, w.name AS workspace";

/// The tables a datastore row is selected from (`d`, with its workspace `w`).
pub(crate) const DATASTORE_FROM: &str = "datastores d JOIN workspaces w ON w.id = d.workspace_id";

fn workspace_from(r: &impl RowExt) -> DomainResult<Workspace> {
    Ok(Workspace {
        id: r.i64("id")?,
        name: r.text("name")?,
        description: r.text("description")?,
        created_at: r.i64("created_at")?,
        anonymous_read: r.i64("anonymous_read")? != 0,
    })
}

pub(crate) fn datastore_from(r: &impl RowExt) -> DomainResult<Datastore> {
    let config = r.text("config")?;
    Ok(Datastore {
        id: r.i64("id")?,
        name: r.text("name")?,
        kind: r.text("kind")?,
        config: serde_json::from_str(&config)
            .map_err(|e| DomainError::Internal(format!("datastore config is not JSON: {e}")))?,
        is_default: r.i64("is_default")? != 0,
        workspace: r.text("workspace")?,
    })
}

impl Store {
    /// Creates a workspace with its Default experiment and default datastore.
    /// Returns `AlreadyExists` if the name is taken.
    pub async fn create_workspace(
        &self,
        name: &str,
        description: &str,
        datastore_config: serde_json::Value,
        builtins: &[super::ComponentRow],
    ) -> DomainResult<Workspace> {
        let now = now_millis();
        let config = datastore_config.to_string();
        let res: Result<Workspace, sqlx::Error> = with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let row = sqlx::query(
                "INSERT INTO workspaces (name, description, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, name, description, created_at, anonymous_read",
            )
            .bind(name)
            .bind(description)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let ws = workspace_from(&row).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            sqlx::query(
                "INSERT INTO experiments (workspace_id, number, name, lifecycle_stage, creation_time, last_update_time) \
                 VALUES ($1, 0, $2, $3, $4, $4)",
            )
            .bind(ws.id)
            .bind(DEFAULT_EXPERIMENT_NAME)
            .bind(LifecycleStage::Active.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO datastores (workspace_id, name, kind, config, is_default, created_at) \
                 VALUES ($1, 'default', 'plugin', $2, 1, $3)",
            )
            .bind(ws.id)
            .bind(&config)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for c in builtins {
                sqlx::query(
                    "INSERT INTO components (workspace_id, name, version, kind, digest, size, api_version, manifest, builtin, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)",
                )
                .bind(ws.id)
                .bind(&c.name)
                .bind(&c.version)
                .bind(&c.kind)
                .bind(&c.digest)
                .bind(c.size)
                .bind(&c.api_version)
                .bind(&c.manifest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(ws)
        }
        .await
        });
        match res {
            Ok(ws) => Ok(ws),
            Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                "workspace '{name}' already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a workspace's description.
    pub async fn update_workspace(&self, name: &str, description: &str) -> DomainResult<Workspace> {
        let row = with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE workspaces SET description = $1 WHERE name = $2 RETURNING id, name, description, created_at, anonymous_read"
        )
        .bind(description)
        .bind(name)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(workspace_from)
        .transpose()
        })?;
        row.ok_or_else(|| not_found(name))
    }

    /// Allows or stops anonymous read-only access to a workspace.
    pub async fn set_anonymous_read(&self, name: &str, on: bool) -> DomainResult<()> {
        let n = with_db!(self, write, |p| sqlx::query(
            "UPDATE workspaces SET anonymous_read = $1 WHERE name = $2"
        )
        .bind(on as i64)
        .bind(name)
        .execute(p)
        .await?
        .rows_affected());
        if n == 0 {
            return Err(not_found(name));
        }
        Ok(())
    }

    /// Looks a workspace up by name.
    pub async fn workspace(&self, name: &str) -> DomainResult<Workspace> {
        let row = with_db!(self, read, |p| {
            sqlx::query(
            "SELECT id, name, description, created_at, anonymous_read FROM workspaces WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(workspace_from)
        .transpose()
        })?;
        row.ok_or_else(|| not_found(name))
    }

    /// All workspaces, by name.
    pub async fn list_workspaces(&self) -> DomainResult<Vec<Workspace>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT id, name, description, created_at, anonymous_read FROM workspaces ORDER BY name",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(workspace_from).collect()
        })
    }

    /// Deletes a workspace and everything in it; returns its datastores so their bytes can be freed.
    pub async fn delete_workspace(&self, name: &str) -> DomainResult<Vec<Datastore>> {
        let stores: DomainResult<Vec<Datastore>> = with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let Some(row) = sqlx::query("SELECT id FROM workspaces WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Err(not_found(name));
            };
            let id = row.i64("id")?;
            let stores = sqlx::query("SELECT d.id, d.name, d.kind, d.config, d.is_default, w.name AS workspace FROM datastores d JOIN workspaces w ON w.id = d.workspace_id WHERE d.workspace_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(datastore_from)
                .collect::<DomainResult<Vec<_>>>()?;
            sqlx::query("DELETE FROM metric_chunks WHERE run_id IN (SELECT id FROM runs WHERE workspace_id = $1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM artifacts WHERE run_id IN (SELECT id FROM runs WHERE workspace_id = $1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM workspaces WHERE id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(stores)
        }
        .await
        });
        if stores.is_ok() {
            // its role assignments went with it
            self.access_changed().await;
        }
        stores
    }

    /// The datastore that new artifacts of a workspace go to.
    pub async fn default_datastore(&self, workspace_id: i64) -> DomainResult<Datastore> {
        let row = with_db!(self, read, |p| {
            sqlx::query(
            "SELECT d.id, d.name, d.kind, d.config, d.is_default, w.name AS workspace FROM datastores d JOIN workspaces w ON w.id = d.workspace_id WHERE d.workspace_id = $1 AND d.is_default = 1"
        )
        .bind(workspace_id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(datastore_from)
        .transpose()
        })?;
        row.ok_or_else(|| {
            DomainError::Internal(format!("workspace {workspace_id} has no default datastore"))
        })
    }

    /// A datastore by key.
    pub async fn datastore(&self, id: i64) -> DomainResult<Datastore> {
        let row = with_db!(self, read, |p| {
            sqlx::query(
            "SELECT d.id, d.name, d.kind, d.config, d.is_default, w.name AS workspace FROM datastores d JOIN workspaces w ON w.id = d.workspace_id WHERE d.id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(datastore_from)
        .transpose()
        })?;
        row.ok_or_else(|| DomainError::Internal(format!("datastore {id} is missing")))
    }

    /// All datastores of all workspaces (for garbage collection).
    pub async fn all_datastores(&self) -> DomainResult<Vec<Datastore>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query("SELECT d.id, d.name, d.kind, d.config, d.is_default, w.name AS workspace FROM datastores d JOIN workspaces w ON w.id = d.workspace_id ORDER BY d.id")
                .fetch_all(p)
                .await?;
            rows.iter().map(datastore_from).collect()
        })
    }
}

fn not_found(name: &str) -> DomainError {
    DomainError::NotFound(format!("workspace '{name}' does not exist"))
}
