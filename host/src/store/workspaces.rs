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
}

fn workspace_from(r: &impl RowExt) -> DomainResult<Workspace> {
    Ok(Workspace {
        id: r.i64("id")?,
        name: r.text("name")?,
        description: r.text("description")?,
        created_at: r.i64("created_at")?,
    })
}

fn datastore_from(r: &impl RowExt) -> DomainResult<Datastore> {
    let config = r.text("config")?;
    Ok(Datastore {
        id: r.i64("id")?,
        name: r.text("name")?,
        kind: r.text("kind")?,
        config: serde_json::from_str(&config)
            .map_err(|e| DomainError::Internal(format!("datastore config is not JSON: {e}")))?,
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
    ) -> DomainResult<Workspace> {
        let now = now_millis();
        let config = datastore_config.to_string();
        let res: Result<Workspace, sqlx::Error> = with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let row = sqlx::query(
                "INSERT INTO workspaces (name, description, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, name, description, created_at",
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
                 VALUES ($1, 'default', 'local', $2, 1, $3)",
            )
            .bind(ws.id)
            .bind(&config)
            .bind(now)
            .execute(&mut *tx)
            .await?;
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
            "UPDATE workspaces SET description = $1 WHERE name = $2 RETURNING id, name, description, created_at"
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

    /// Looks a workspace up by name.
    pub async fn workspace(&self, name: &str) -> DomainResult<Workspace> {
        let row = with_db!(self, read, |p| sqlx::query(
            "SELECT id, name, description, created_at FROM workspaces WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(workspace_from)
        .transpose())?;
        row.ok_or_else(|| not_found(name))
    }

    /// All workspaces, by name.
    pub async fn list_workspaces(&self) -> DomainResult<Vec<Workspace>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT id, name, description, created_at FROM workspaces ORDER BY name",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(workspace_from).collect()
        })
    }

    /// Deletes a workspace and everything in it; returns its datastores so their bytes can be freed.
    pub async fn delete_workspace(&self, name: &str) -> DomainResult<Vec<Datastore>> {
        with_db!(self, write, |p| {
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
            let stores = sqlx::query("SELECT id, name, kind, config FROM datastores WHERE workspace_id = $1")
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
        })
    }

    /// The datastore that new artifacts of a workspace go to.
    pub async fn default_datastore(&self, workspace_id: i64) -> DomainResult<Datastore> {
        let row = with_db!(self, read, |p| {
            sqlx::query(
            "SELECT id, name, kind, config FROM datastores WHERE workspace_id = $1 AND is_default = 1"
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
        let row = with_db!(self, read, |p| sqlx::query(
            "SELECT id, name, kind, config FROM datastores WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(datastore_from)
        .transpose())?;
        row.ok_or_else(|| DomainError::Internal(format!("datastore {id} is missing")))
    }

    /// All datastores of all workspaces (for garbage collection).
    pub async fn all_datastores(&self) -> DomainResult<Vec<Datastore>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query("SELECT id, name, kind, config FROM datastores ORDER BY id")
                .fetch_all(p)
                .await?;
            rows.iter().map(datastore_from).collect()
        })
    }
}

fn not_found(name: &str) -> DomainError {
    DomainError::NotFound(format!("workspace '{name}' does not exist"))
}
