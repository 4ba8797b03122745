//! The component registry, datastores beyond the default, and experiments' artifact datastores.

use super::rows::RowExt;
use super::workspaces::{DATASTORE_COLUMNS, DATASTORE_FROM, datastore_from};
use super::{Datastore, Store, is_unique_violation, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A registered component version.
#[derive(Debug, Clone)]
pub struct ComponentRow {
    /// Registry name.
    pub name: String,
    /// Version label.
    pub version: String,
    /// Plugin kind.
    pub kind: String,
    /// sha256 of the component.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// API version embedded by the SDK, if any.
    pub api_version: Option<String>,
    /// The manifest as JSON.
    pub manifest: String,
    /// Whether the host registered it itself.
    pub builtin: bool,
    /// Registration time.
    pub created_at: Millis,
}

const COMPONENT_COLUMNS: &str =
    "name, version, kind, digest, size, api_version, manifest, builtin, created_at";

fn component_from(r: &impl RowExt) -> DomainResult<ComponentRow> {
    Ok(ComponentRow {
        name: r.text("name")?,
        version: r.text("version")?,
        kind: r.text("kind")?,
        digest: r.text("digest")?,
        size: r.i64("size")?,
        api_version: r.opt_text("api_version")?,
        manifest: r.text("manifest")?,
        builtin: r.i64("builtin")? != 0,
        created_at: r.i64("created_at")?,
    })
}

impl Store {
    /// Registers a component version. Versions are immutable: registering the same bytes again
    /// is a no-op (returns `false`), different bytes under an existing version are refused.
    pub async fn register_component(
        &self,
        workspace_id: i64,
        c: &ComponentRow,
    ) -> DomainResult<bool> {
        if let Some(existing) = self.component(workspace_id, &c.name, &c.version).await? {
            if existing.digest == c.digest {
                return Ok(false);
            }
            return Err(DomainError::AlreadyExists(format!(
                "component {}@{} already exists with other content (sha256 {}); versions are immutable: push a new version",
                c.name, c.version, existing.digest
            )));
        }
        let res = with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO components (workspace_id, name, version, kind, digest, size, api_version, manifest, builtin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        .bind(workspace_id)
        .bind(&c.name)
        .bind(&c.version)
        .bind(&c.kind)
        .bind(&c.digest)
        .bind(c.size)
        .bind(&c.api_version)
        .bind(&c.manifest)
        .bind(i64::from(c.builtin))
        .bind(now_millis())
        .execute(p)
        .await
        .map(|_| ())
        });
        match res {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                "component {}@{} was registered concurrently",
                c.name, c.version
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A component version.
    pub async fn component(
        &self,
        workspace_id: i64,
        name: &str,
        version: &str,
    ) -> DomainResult<Option<ComponentRow>> {
        with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COMPONENT_COLUMNS} FROM components WHERE workspace_id = $1 AND name = $2 AND version = $3"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(component_from).transpose()
        })
    }

    /// All component versions of a workspace, by name then registration.
    pub async fn list_components(&self, workspace_id: i64) -> DomainResult<Vec<ComponentRow>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COMPONENT_COLUMNS} FROM components WHERE workspace_id = $1 ORDER BY name, created_at, version"
            )))
            .bind(workspace_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(component_from).collect()
        })
    }

    /// Removes a component version unless a datastore uses it.
    pub async fn delete_component(
        &self,
        workspace_id: i64,
        name: &str,
        version: &str,
    ) -> DomainResult<()> {
        for ds in self.list_datastores(workspace_id).await? {
            if ds.config.get("component").and_then(|v| v.as_str()) == Some(name)
                && ds.config.get("version").and_then(|v| v.as_str()) == Some(version)
            {
                return Err(DomainError::InvalidState(format!(
                    "component {name}@{version} serves datastore '{}': delete the datastore first",
                    ds.name
                )));
            }
        }
        let n = with_db!(self, write, |p| sqlx::query(
            "DELETE FROM components WHERE workspace_id = $1 AND name = $2 AND version = $3"
        )
        .bind(workspace_id)
        .bind(name)
        .bind(version)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(DomainError::NotFound(format!(
                "component {name}@{version} does not exist"
            )));
        }
        Ok(())
    }

    /// Records that this replica is about to make blob `digest` visible in a datastore (before
    /// it does), so that garbage collection on other replicas spares it until it is referenced.
    pub async fn mark_pending_blob(&self, datastore_id: i64, digest: &str) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO pending_blobs (datastore_id, digest, replica, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (datastore_id, digest, replica) DO UPDATE SET created_at = excluded.created_at",
            )
            .bind(datastore_id)
            .bind(digest)
            .bind(&self.replica)
            .bind(now_millis())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Blobs of a datastore other replicas marked pending since `since` (this replica's own are
    /// covered by its GC lock); older marks, of uploads long finished or lost, are dropped.
    pub async fn pending_blobs_of_others(
        &self,
        datastore_id: i64,
        since: Millis,
    ) -> DomainResult<std::collections::HashSet<String>> {
        with_db!(self, write, |p| {
            sqlx::query("DELETE FROM pending_blobs WHERE created_at < $1")
                .bind(since)
                .execute(p)
                .await?;
            let rows = sqlx::query(
                "SELECT digest FROM pending_blobs WHERE datastore_id = $1 AND replica <> $2",
            )
            .bind(datastore_id)
            .bind(&self.replica)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| r.text("digest")).collect()
        })
    }

    /// Keeps an uploaded component's bytes (once per digest), for replicas that lack its file.
    pub async fn put_component_file(&self, digest: &str, bytes: &[u8]) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO component_files (digest, bytes, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(digest)
            .bind(bytes)
            .bind(now_millis())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        self.announce(super::Change::Component {
            digest: digest.to_string(),
        })
        .await;
        Ok(())
    }

    /// The bytes of an uploaded component, if kept.
    pub async fn component_file(&self, digest: &str) -> DomainResult<Option<Vec<u8>>> {
        let bytes = with_db!(self, read, |p| {
            sqlx::query("SELECT bytes FROM component_files WHERE digest = $1")
                .bind(digest)
                .fetch_optional(p)
                .await?
                .map(|r| sqlx::Row::try_get::<Vec<u8>, _>(&r, "bytes"))
                .transpose()?
        });
        Ok(bytes)
    }

    /// The digests of every uploaded (not built-in) component of any workspace.
    pub async fn uploaded_component_digests(&self) -> DomainResult<Vec<String>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query("SELECT DISTINCT digest FROM components WHERE builtin = 0")
                .fetch_all(p)
                .await?;
            rows.iter().map(|r| r.text("digest")).collect()
        })
    }

    /// Adds a datastore to a workspace.
    pub async fn create_datastore(
        &self,
        workspace_id: i64,
        name: &str,
        kind: &str,
        config: &serde_json::Value,
    ) -> DomainResult<Datastore> {
        let res = with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO datastores (workspace_id, name, kind, config, is_default, created_at) VALUES ($1, $2, $3, $4, 0, $5)"
        )
        .bind(workspace_id)
        .bind(name)
        .bind(kind)
        .bind(config.to_string())
        .bind(now_millis())
        .execute(p)
        .await
        .map(|_| ())
        });
        match res {
            Ok(()) => self.datastore_by_name(workspace_id, name).await,
            Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                "datastore '{name}' already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The datastores of a workspace, default first.
    pub async fn list_datastores(&self, workspace_id: i64) -> DomainResult<Vec<Datastore>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DATASTORE_COLUMNS} FROM {DATASTORE_FROM} WHERE d.workspace_id = $1 ORDER BY d.is_default DESC, d.name"
            )))
            .bind(workspace_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(datastore_from).collect()
        })
    }

    /// A datastore by name.
    pub async fn datastore_by_name(
        &self,
        workspace_id: i64,
        name: &str,
    ) -> DomainResult<Datastore> {
        let found = with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DATASTORE_COLUMNS} FROM {DATASTORE_FROM} WHERE d.workspace_id = $1 AND d.name = $2"
            )))
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(datastore_from).transpose()?
        });
        found.ok_or_else(|| DomainError::NotFound(format!("datastore '{name}' does not exist")))
    }

    /// Makes a datastore its workspace's default: where new datasets, model files and the
    /// artifacts of experiments without a datastore of their own go (what is stored stays
    /// where it is). Returns it.
    pub async fn set_default_datastore(
        &self,
        workspace_id: i64,
        name: &str,
    ) -> DomainResult<Datastore> {
        let ds = self.datastore_by_name(workspace_id, name).await?;
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            sqlx::query(
                "UPDATE datastores SET is_default = CASE WHEN id = $2 THEN 1 ELSE 0 END WHERE workspace_id = $1",
            )
            .bind(workspace_id)
            .bind(ds.id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })?;
        self.datastore_by_name(workspace_id, name).await
    }

    /// Removes a datastore that is not the default, holds no artifacts and serves no experiment.
    pub async fn delete_datastore(&self, workspace_id: i64, name: &str) -> DomainResult<Datastore> {
        let ds = self.datastore_by_name(workspace_id, name).await?;
        if ds.is_default {
            return Err(DomainError::InvalidState(format!(
                "datastore '{name}' is the workspace's default"
            )));
        }
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            let used = sqlx::query(
                "SELECT (SELECT count(*) FROM artifacts WHERE datastore_id = $1) + \
                        (SELECT count(*) FROM model_files WHERE datastore_id = $1) + \
                        (SELECT count(*) FROM experiments WHERE datastore_id = $1) AS n",
            )
            .bind(ds.id)
            .fetch_one(&mut *tx)
            .await?
            .i64("n")?;
            if used > 0 {
                return Err(DomainError::InvalidState(format!(
                    "datastore '{name}' still holds artifacts or model files, or serves experiments"
                )));
            }
            sqlx::query("DELETE FROM datastores WHERE id = $1")
                .bind(ds.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await)?;
        Ok(ds)
    }

    /// Sets (or with `None` clears) the datastore an experiment's runs keep artifacts in.
    pub async fn set_experiment_datastore(
        &self,
        workspace_id: i64,
        experiment_id: i64,
        datastore: Option<i64>,
    ) -> DomainResult<()> {
        let n = with_db!(self, write, |p| sqlx::query(
            "UPDATE experiments SET datastore_id = $1 WHERE workspace_id = $2 AND number = $3"
        )
        .bind(datastore)
        .bind(workspace_id)
        .bind(experiment_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(DomainError::NotFound(format!(
                "experiment '{experiment_id}' does not exist"
            )));
        }
        Ok(())
    }

    /// The datastore new artifacts of an experiment go to: its own, or the workspace default.
    pub async fn artifact_datastore(
        &self,
        workspace_id: i64,
        experiment_id: i64,
    ) -> DomainResult<Datastore> {
        let found = with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DATASTORE_COLUMNS} FROM {DATASTORE_FROM} JOIN experiments e ON e.datastore_id = d.id \
                 WHERE e.workspace_id = $1 AND e.number = $2"
            )))
            .bind(workspace_id)
            .bind(experiment_id)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(datastore_from).transpose()?
        });
        match found {
            Some(ds) => Ok(ds),
            None => self.default_datastore(workspace_id).await,
        }
    }
}
