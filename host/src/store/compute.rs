//! Compute targets (a target plugin instance per name) and the engine side of remote jobs:
//! each attempt's handle and worker token, kept so a restarted host can reconcile them.

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A stored compute target.
#[derive(Debug, Clone)]
pub struct ComputeRow {
    /// Name (what jobs give as `compute`).
    pub name: String,
    /// The target plugin's registry name.
    pub component: String,
    /// Its version.
    pub version: String,
    /// The definition (JSON: grants and worker settings).
    pub definition: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Who created it.
    pub created_by: Option<String>,
}

const COLUMNS: &str = "name, component, version, definition, description, created_at, created_by";

fn compute_from(r: &impl RowExt) -> DomainResult<ComputeRow> {
    Ok(ComputeRow {
        name: r.text("name")?,
        component: r.text("component")?,
        version: r.text("version")?,
        definition: r.text("definition")?,
        description: r.opt_text("description")?,
        created_at: r.i64("created_at")?,
        created_by: r.opt_text("created_by")?,
    })
}

/// A remote attempt as stored: its engine handle and its worker's token id.
#[derive(Debug, Clone)]
pub struct RemoteAttempt {
    /// The engine's handle (absent until the target accepted the job).
    pub handle: Option<String>,
    /// The id of the job token the worker holds.
    pub token_id: Option<String>,
    /// The engine's last reported state.
    pub engine_state: Option<String>,
}

impl Store {
    /// Creates a compute target; 409 when the name is taken.
    pub async fn create_compute(
        &self,
        workspace_id: i64,
        c: &ComputeRow,
    ) -> DomainResult<ComputeRow> {
        with_db!(self, write, |p| {
            let res = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO compute_targets (workspace_id, name, component, version, definition, description, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            )))
            .bind(workspace_id)
            .bind(&c.name)
            .bind(&c.component)
            .bind(&c.version)
            .bind(&c.definition)
            .bind(&c.description)
            .bind(now_millis())
            .bind(&c.created_by)
            .fetch_one(p)
            .await;
            match res {
                Ok(row) => compute_from(&row),
                Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                    "compute target '{}' already exists",
                    c.name
                ))),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// A compute target by name.
    pub async fn compute(&self, workspace_id: i64, name: &str) -> DomainResult<ComputeRow> {
        let found = with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM compute_targets WHERE workspace_id = $1 AND name = $2"
            )))
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(compute_from).transpose()?
        });
        found
            .ok_or_else(|| DomainError::NotFound(format!("compute target '{name}' does not exist")))
    }

    /// The compute targets of a workspace by name.
    pub async fn list_compute(&self, workspace_id: i64) -> DomainResult<Vec<ComputeRow>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM compute_targets WHERE workspace_id = $1 ORDER BY name"
            )))
            .bind(workspace_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(compute_from).collect()
        })
    }

    /// Deletes a compute target that no unfinished job uses.
    pub async fn delete_compute(&self, workspace_id: i64, name: &str) -> DomainResult<()> {
        self.compute(workspace_id, name).await?;
        let busy = self.unfinished_jobs_on(workspace_id, name).await?;
        if busy > 0 {
            return Err(DomainError::InvalidState(format!(
                "compute target '{name}' has {busy} unfinished job(s); cancel them or wait until they end"
            )));
        }
        with_db!(self, write, |p| sqlx::query(
            "DELETE FROM compute_targets WHERE workspace_id = $1 AND name = $2"
        )
        .bind(workspace_id)
        .bind(name)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Jobs on a target that have not ended (queued ones included).
    pub async fn unfinished_jobs_on(&self, workspace_id: i64, target: &str) -> DomainResult<i64> {
        with_db!(self, read, |p| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM jobs WHERE workspace_id = $1 AND target = $2 \
                 AND state NOT IN ('Completed', 'Failed', 'Canceled')",
            )
            .bind(workspace_id)
            .bind(target)
            .fetch_one(p)
            .await?;
            Ok(row.i64("n")?)
        })
    }

    /// Records the engine's handle of a job's attempt and its worker's token id.
    pub async fn set_job_handle(&self, key: i64, handle: &str, token_id: &str) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE jobs SET handle = $1, worker_token = $2, engine_state = NULL, updated_at = $3 WHERE id = $4"
        )
        .bind(handle)
        .bind(token_id)
        .bind(now_millis())
        .bind(key)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Records the engine's last state of a job's attempt.
    pub async fn set_engine_state(&self, key: i64, state: &str) -> DomainResult<()> {
        with_db!(self, write, |p| sqlx::query(
            "UPDATE jobs SET engine_state = $1 WHERE id = $2"
        )
        .bind(state)
        .bind(key)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The stored engine side of a job's attempt.
    pub async fn remote_attempt(&self, key: i64) -> DomainResult<RemoteAttempt> {
        with_db!(self, read, |p| {
            let row =
                sqlx::query("SELECT handle, worker_token, engine_state FROM jobs WHERE id = $1")
                    .bind(key)
                    .fetch_one(p)
                    .await?;
            Ok(RemoteAttempt {
                handle: row.opt_text("handle")?,
                token_id: row.opt_text("worker_token")?,
                engine_state: row.opt_text("engine_state")?,
            })
        })
    }
}

/// SQL condition: the job runs on a compute target (not the built-in local ones).
pub(super) const REMOTE: &str = "target NOT IN ('local', 'local-process')";
