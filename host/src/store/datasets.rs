//! Dataset versions.

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A stored dataset version.
#[derive(Debug, Clone)]
pub struct DatasetRow {
    /// Name.
    pub name: String,
    /// Version (1, 2, ...).
    pub version: i64,
    /// Datastore holding the bytes.
    pub datastore_id: i64,
    /// sha256 of the file.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// Data rows.
    pub rows: i64,
    /// Inferred schema (JSON).
    pub schema: String,
    /// Creation time.
    pub created_at: Millis,
}

const COLUMNS: &str = "name, version, datastore_id, digest, size, rows, schema, created_at";

fn dataset_from(r: &impl RowExt) -> DomainResult<DatasetRow> {
    Ok(DatasetRow {
        name: r.text("name")?,
        version: r.i64("version")?,
        datastore_id: r.i64("datastore_id")?,
        digest: r.text("digest")?,
        size: r.i64("size")?,
        rows: r.i64("rows")?,
        schema: r.text("schema")?,
        created_at: r.i64("created_at")?,
    })
}

impl Store {
    /// Adds the next version of a dataset; returns it.
    pub async fn add_dataset_version(
        &self,
        workspace_id: i64,
        d: &DatasetRow,
    ) -> DomainResult<DatasetRow> {
        for _ in 0..5 {
            let res = with_db!(self, write, |p| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO datasets (workspace_id, name, version, datastore_id, digest, size, rows, schema, created_at) \
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8 FROM datasets WHERE workspace_id = $1 AND name = $2 \
                 RETURNING {COLUMNS}"
            )))
            .bind(workspace_id)
            .bind(&d.name)
            .bind(d.datastore_id)
            .bind(&d.digest)
            .bind(d.size)
            .bind(d.rows)
            .bind(&d.schema)
            .bind(now_millis())
            .fetch_one(p)
            .await
            .map_err(|e| (is_unique_violation(&e), e))
            .and_then(|r| dataset_from(&r).map_err(|e| (false, sqlx::Error::Protocol(e.to_string()))))
            });
            match res {
                Ok(row) => return Ok(row),
                Err((true, _)) => continue,
                Err((false, e)) => return Err(e.into()),
            }
        }
        Err(DomainError::InvalidState(format!(
            "dataset '{}' is being versioned concurrently; retry",
            d.name
        )))
    }

    /// A dataset version; `None` version means the latest.
    pub async fn dataset(
        &self,
        workspace_id: i64,
        name: &str,
        version: Option<i64>,
    ) -> DomainResult<DatasetRow> {
        let found = with_db!(self, read, |p| {
            let q = match version {
                Some(v) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM datasets WHERE workspace_id = $1 AND name = $2 AND version = $3"
                )))
                .bind(workspace_id)
                .bind(name)
                .bind(v),
                None => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM datasets WHERE workspace_id = $1 AND name = $2 AND $3 = $3 ORDER BY version DESC LIMIT 1"
                )))
                .bind(workspace_id)
                .bind(name)
                .bind(0i64),
            };
            let row = q.fetch_optional(p).await?;
            row.as_ref().map(dataset_from).transpose()?
        });
        found.ok_or_else(|| match version {
            Some(v) => DomainError::NotFound(format!("dataset {name}:{v} does not exist")),
            None => DomainError::NotFound(format!("dataset '{name}' does not exist")),
        })
    }

    /// Dataset versions, by name then version (all versions of one name when given).
    pub async fn list_datasets(
        &self,
        workspace_id: i64,
        name: Option<&str>,
    ) -> DomainResult<Vec<DatasetRow>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM datasets WHERE workspace_id = $1 AND ($2 = '' OR name = $2) ORDER BY name, version"
            )))
            .bind(workspace_id)
            .bind(name.unwrap_or(""))
            .fetch_all(p)
            .await?;
            rows.iter().map(dataset_from).collect()
        })
    }

    /// Deletes a dataset version unless a job references it.
    pub async fn delete_dataset(
        &self,
        workspace_id: i64,
        name: &str,
        version: i64,
    ) -> DomainResult<DatasetRow> {
        let d = self.dataset(workspace_id, name, Some(version)).await?;
        if let Some(job) = self
            .jobs_using_dataset(workspace_id, name, version)
            .await?
            .first()
        {
            return Err(DomainError::InvalidState(format!(
                "dataset {name}:{version} is used by job {job}"
            )));
        }
        with_db!(self, write, |p| sqlx::query(
            "DELETE FROM datasets WHERE workspace_id = $1 AND name = $2 AND version = $3"
        )
        .bind(workspace_id)
        .bind(name)
        .bind(version)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(d)
    }

    /// The jobs (public ids, newest first) whose spec uses dataset version `name:version`.
    pub async fn jobs_using_dataset(
        &self,
        workspace_id: i64,
        name: &str,
        version: i64,
    ) -> DomainResult<Vec<String>> {
        // LIKE narrows the candidates; the exact match is checked on the parsed list
        let candidates: Vec<(String, String)> = with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT uuid, datasets FROM jobs WHERE workspace_id = $1 AND datasets LIKE $2",
            )
            .bind(workspace_id)
            .bind(format!("%{name}:{version}%"))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| Ok::<_, DomainError>((r.text("uuid")?, r.text("datasets")?)))
                .collect::<DomainResult<Vec<_>>>()?
        });
        let reference = format!("{name}:{version}");
        let mut jobs: Vec<String> = candidates
            .into_iter()
            .filter(|(_, list)| {
                serde_json::from_str::<Vec<String>>(list).is_ok_and(|l| l.contains(&reference))
            })
            .map(|(id, _)| id)
            .collect();
        // public ids are UUIDv7: their order is their creation order
        jobs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(jobs)
    }

    /// Digests of dataset files in a datastore (garbage collection keeps them).
    pub async fn dataset_digests(&self, datastore_id: i64) -> DomainResult<Vec<String>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query("SELECT DISTINCT digest FROM datasets WHERE datastore_id = $1")
                .bind(datastore_id)
                .fetch_all(p)
                .await?;
            rows.iter().map(|r| r.text("digest")).collect()
        })
    }
}
