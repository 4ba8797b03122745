//! Environment versions: a definition (JSON) and its content hash per `name:version`.

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A stored environment version.
#[derive(Debug, Clone)]
pub struct EnvironmentRow {
    /// Name.
    pub name: String,
    /// Version (1, 2, ...).
    pub version: i64,
    /// The definition (JSON: python, requirements).
    pub definition: String,
    /// Its content hash.
    pub hash: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Who created it.
    pub created_by: Option<String>,
}

const COLUMNS: &str = "name, version, definition, hash, description, created_at, created_by";

fn environment_from(r: &impl RowExt) -> DomainResult<EnvironmentRow> {
    Ok(EnvironmentRow {
        name: r.text("name")?,
        version: r.i64("version")?,
        definition: r.text("definition")?,
        hash: r.text("hash")?,
        description: r.opt_text("description")?,
        created_at: r.i64("created_at")?,
        created_by: r.opt_text("created_by")?,
    })
}

impl Store {
    /// Adds the next version of an environment; returns it.
    pub async fn add_environment_version(
        &self,
        workspace_id: i64,
        e: &EnvironmentRow,
    ) -> DomainResult<EnvironmentRow> {
        for _ in 0..5 {
            let res = with_db!(self, write, |p| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO environments (workspace_id, name, version, definition, hash, description, created_at, created_by) \
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7 FROM environments WHERE workspace_id = $1 AND name = $2 \
                 RETURNING {COLUMNS}"
            )))
            .bind(workspace_id)
            .bind(&e.name)
            .bind(&e.definition)
            .bind(&e.hash)
            .bind(&e.description)
            .bind(now_millis())
            .bind(&e.created_by)
            .fetch_one(p)
            .await
            .map_err(|err| (is_unique_violation(&err), err))
            .and_then(|r| environment_from(&r).map_err(|err| (false, sqlx::Error::Protocol(err.to_string()))))
            });
            match res {
                Ok(row) => return Ok(row),
                Err((true, _)) => continue,
                Err((false, err)) => return Err(err.into()),
            }
        }
        Err(DomainError::InvalidState(format!(
            "environment '{}' is being versioned concurrently; retry",
            e.name
        )))
    }

    /// An environment version; `None` version means the latest.
    pub async fn environment(
        &self,
        workspace_id: i64,
        name: &str,
        version: Option<i64>,
    ) -> DomainResult<EnvironmentRow> {
        let found = with_db!(self, read, |p| {
            let q = match version {
                Some(v) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM environments WHERE workspace_id = $1 AND name = $2 AND version = $3"
                )))
                .bind(workspace_id)
                .bind(name)
                .bind(v),
                None => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM environments WHERE workspace_id = $1 AND name = $2 AND $3 = $3 ORDER BY version DESC LIMIT 1"
                )))
                .bind(workspace_id)
                .bind(name)
                .bind(0i64),
            };
            let row = q.fetch_optional(p).await?;
            row.as_ref().map(environment_from).transpose()?
        });
        found.ok_or_else(|| match version {
            Some(v) => DomainError::NotFound(format!("environment {name}:{v} does not exist")),
            None => DomainError::NotFound(format!("environment '{name}' does not exist")),
        })
    }

    /// Environment versions by name then version (all versions of one name when given).
    pub async fn list_environments(
        &self,
        workspace_id: i64,
        name: Option<&str>,
    ) -> DomainResult<Vec<EnvironmentRow>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM environments WHERE workspace_id = $1 AND ($2 = '' OR name = $2) ORDER BY name, version"
            )))
            .bind(workspace_id)
            .bind(name.unwrap_or(""))
            .fetch_all(p)
            .await?;
            rows.iter().map(environment_from).collect()
        })
    }
}
