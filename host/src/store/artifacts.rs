//! Artifact index: which content-addressed blob each path of a run (or of an MLflow 3 logged
//! model) points to.

use std::collections::HashSet;

use super::rows::RowExt;
use super::{Store, with_db};
use crate::workspace::{DomainError, DomainResult, now_millis};

/// One artifact file of a run.
#[derive(Debug, Clone)]
pub struct ArtifactRow {
    /// Path relative to the run's artifact root.
    pub path: String,
    /// Datastore holding the blob.
    pub datastore_id: i64,
    /// sha256 hex of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
}

/// Who owns an artifact path: a run or a logged model (internal keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactOwner {
    /// A run.
    Run(i64),
    /// An MLflow 3 logged model.
    Model(i64),
}

impl ArtifactOwner {
    /// The index table, its owner column, and the owner's key.
    fn table(self) -> (&'static str, &'static str, i64) {
        match self {
            Self::Run(k) => ("artifacts", "run_id", k),
            Self::Model(k) => ("logged_model_artifacts", "model_id", k),
        }
    }
}

fn artifact_from(r: &impl RowExt) -> DomainResult<ArtifactRow> {
    Ok(ArtifactRow {
        path: r.text("path")?,
        datastore_id: r.i64("datastore_id")?,
        digest: r.text("digest")?,
        size: r.i64("size")?,
    })
}

impl Store {
    /// Points a path at a blob, replacing what was there.
    pub async fn put_artifact(&self, owner: ArtifactOwner, a: &ArtifactRow) -> DomainResult<()> {
        let (table, col, key) = owner.table();
        let sql = format!(
            "INSERT INTO {table} ({col}, path, datastore_id, digest, size, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT ({col}, path) DO UPDATE SET datastore_id = excluded.datastore_id, digest = excluded.digest, \
             size = excluded.size, created_at = excluded.created_at"
        );
        with_db!(self, write, |p| {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(&a.path)
                .bind(a.datastore_id)
                .bind(&a.digest)
                .bind(a.size)
                .bind(now_millis())
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The artifact at exactly `path`, if any.
    pub async fn artifact(
        &self,
        owner: ArtifactOwner,
        path: &str,
    ) -> DomainResult<Option<ArtifactRow>> {
        let (table, col, key) = owner.table();
        let sql = format!(
            "SELECT path, datastore_id, digest, size FROM {table} WHERE {col} = $1 AND path = $2"
        );
        with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(path)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(artifact_from).transpose()
        })
    }

    /// All artifacts under a directory prefix (empty prefix: all of the owner's), by path.
    pub async fn artifacts_under(
        &self,
        owner: ArtifactOwner,
        dir: &str,
    ) -> DomainResult<Vec<ArtifactRow>> {
        // Range scan on the primary key instead of LIKE, so '%' and '_' in names are literal.
        let (lo, hi) = prefix_range(dir);
        let (table, col, key) = owner.table();
        let sql = format!(
            "SELECT path, datastore_id, digest, size FROM {table} WHERE {col} = $1 AND path >= $2 AND path < $3 ORDER BY path"
        );
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(&lo)
                .bind(&hi)
                .fetch_all(p)
                .await?;
            rows.iter().map(artifact_from).collect()
        })
    }

    /// Removes the artifact at `path`, or everything under it if it is a directory.
    /// Blobs are freed later by garbage collection.
    pub async fn delete_artifacts(&self, owner: ArtifactOwner, path: &str) -> DomainResult<u64> {
        let (lo, hi) = prefix_range(path);
        let (table, col, key) = owner.table();
        let sql = format!(
            "DELETE FROM {table} WHERE {col} = $1 AND (path = $2 OR (path >= $3 AND path < $4))"
        );
        let n = with_db!(self, write, |p| {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(path)
                .bind(&lo)
                .bind(&hi)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(DomainError::NotFound(format!("no artifact at '{path}'")));
        }
        Ok(n)
    }

    /// Digests referenced by any artifact of a run or a logged model in a datastore.
    pub async fn referenced_digests(&self, datastore_id: i64) -> DomainResult<HashSet<String>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT digest FROM artifacts WHERE datastore_id = $1 \
                 UNION SELECT digest FROM logged_model_artifacts WHERE datastore_id = $1",
            )
            .bind(datastore_id)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| r.text("digest")).collect()
        })
    }
}

/// `[dir/, dir0)`: every path strictly below `dir` ('0' follows '/' in byte order).
fn prefix_range(dir: &str) -> (String, String) {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        (String::new(), "\u{10FFFF}".to_string())
    } else {
        (format!("{dir}/"), format!("{dir}0"))
    }
}
