//! Artifact index: which content-addressed blob each run path points to.

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

fn artifact_from(r: &impl RowExt) -> DomainResult<ArtifactRow> {
    Ok(ArtifactRow {
        path: r.text("path")?,
        datastore_id: r.i64("datastore_id")?,
        digest: r.text("digest")?,
        size: r.i64("size")?,
    })
}

impl Store {
    /// Points a run path at a blob, replacing what was there.
    pub async fn put_artifact(&self, run_key: i64, a: &ArtifactRow) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO artifacts (run_id, path, datastore_id, digest, size, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run_id, path) DO UPDATE SET datastore_id = excluded.datastore_id, digest = excluded.digest, \
             size = excluded.size, created_at = excluded.created_at"
        )
        .bind(run_key)
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
    pub async fn artifact(&self, run_key: i64, path: &str) -> DomainResult<Option<ArtifactRow>> {
        with_db!(self, read, |p| {
            let row = sqlx::query("SELECT path, datastore_id, digest, size FROM artifacts WHERE run_id = $1 AND path = $2")
                .bind(run_key)
                .bind(path)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(artifact_from).transpose()
        })
    }

    /// All artifacts under a directory prefix (empty prefix: all of the run), by path.
    pub async fn artifacts_under(&self, run_key: i64, dir: &str) -> DomainResult<Vec<ArtifactRow>> {
        // Range scan on the primary key instead of LIKE, so '%' and '_' in names are literal.
        let (lo, hi) = prefix_range(dir);
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT path, datastore_id, digest, size FROM artifacts WHERE run_id = $1 AND path >= $2 AND path < $3 ORDER BY path",
            )
            .bind(run_key)
            .bind(&lo)
            .bind(&hi)
            .fetch_all(p)
            .await?;
            rows.iter().map(artifact_from).collect()
        })
    }

    /// Removes the artifact at `path`, or everything under it if it is a directory.
    /// Blobs are freed later by garbage collection.
    pub async fn delete_artifacts(&self, run_key: i64, path: &str) -> DomainResult<u64> {
        let (lo, hi) = prefix_range(path);
        let n = with_db!(self, write, |p| {
            sqlx::query(
            "DELETE FROM artifacts WHERE run_id = $1 AND (path = $2 OR (path >= $3 AND path < $4))"
        )
        .bind(run_key)
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

    /// Digests referenced by any artifact in a datastore.
    pub async fn referenced_digests(&self, datastore_id: i64) -> DomainResult<HashSet<String>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query("SELECT DISTINCT digest FROM artifacts WHERE datastore_id = $1")
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
