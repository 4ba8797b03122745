//! Pipelines: published versions, the steps of pipeline runs, and the step cache.

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A published pipeline version.
#[derive(Debug, Clone)]
pub struct PipelineRow {
    /// Name.
    pub name: String,
    /// Version (1, 2, ...).
    pub version: i64,
    /// The spec, as JSON.
    pub spec: String,
    /// The code snapshot's files (JSON list of `SnapshotFile`).
    pub snapshot: String,
    /// Hash of spec and snapshot: publishing equal content returns this version.
    pub content_hash: String,
    /// What it does.
    pub description: Option<String>,
    /// Publication time.
    pub created_at: Millis,
    /// Who published it.
    pub created_by: Option<String>,
}

const PIPELINE_COLUMNS: &str =
    "name, version, spec, snapshot, content_hash, description, created_at, created_by";

fn pipeline_from(r: &impl RowExt) -> DomainResult<PipelineRow> {
    Ok(PipelineRow {
        name: r.text("name")?,
        version: r.i64("version")?,
        spec: r.text("spec")?,
        snapshot: r.text("snapshot")?,
        content_hash: r.text("content_hash")?,
        description: r.opt_text("description")?,
        created_at: r.i64("created_at")?,
        created_by: r.opt_text("created_by")?,
    })
}

/// A step of a pipeline run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// The step's name.
    pub step: String,
    /// Pending, Queued, Running, Completed, Cached, Skipped, Failed or Canceled.
    pub state: String,
    /// Attempts started (0 before the first).
    pub attempt: i64,
    /// The current attempt's child job (uuid).
    pub child_job: Option<String>,
    /// Its cache key.
    pub cache_key: Option<String>,
    /// Where a Cached step's outputs come from (JSON: job, step, run).
    pub reused_from: Option<String>,
    /// Its outputs (JSON map).
    pub outputs: Option<String>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// When the next attempt may start (after a failure, with backoff).
    pub retry_at: Option<Millis>,
    /// First start.
    pub started_at: Option<Millis>,
    /// End.
    pub ended_at: Option<Millis>,
}

const STEP_COLUMNS: &str = "step, state, attempt, child_job, cache_key, reused_from, outputs, error, retry_at, started_at, ended_at";

fn step_from(r: &impl RowExt) -> DomainResult<StepRow> {
    Ok(StepRow {
        step: r.text("step")?,
        state: r.text("state")?,
        attempt: r.i64("attempt")?,
        child_job: r.opt_text("child_job")?,
        cache_key: r.opt_text("cache_key")?,
        reused_from: r.opt_text("reused_from")?,
        outputs: r.opt_text("outputs")?,
        error: r.opt_text("error")?,
        retry_at: r.opt_i64("retry_at")?,
        started_at: r.opt_i64("started_at")?,
        ended_at: r.opt_i64("ended_at")?,
    })
}

/// An entry of the step cache.
#[derive(Debug, Clone)]
pub struct CacheRow {
    /// The pipeline job whose step produced it.
    pub job_uuid: String,
    /// The step.
    pub step: String,
    /// The step's run.
    pub run_id: Option<String>,
    /// Its outputs (JSON map).
    pub outputs: String,
    /// When it was recorded.
    pub created_at: Millis,
}

impl Store {
    /// Publishes a version: the existing one when the content hash matches, else the next
    /// version. Returns it and whether it is new.
    pub async fn publish_pipeline(
        &self,
        workspace_id: i64,
        p: &PipelineRow,
    ) -> DomainResult<(PipelineRow, bool)> {
        for _ in 0..5 {
            if let Some(existing) = with_db!(self, read, |db| {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE workspace_id = $1 AND name = $2 AND content_hash = $3"
                )))
                .bind(workspace_id)
                .bind(&p.name)
                .bind(&p.content_hash)
                .fetch_optional(db)
                .await?;
                row.as_ref().map(pipeline_from).transpose()?
            }) {
                return Ok((existing, false));
            }
            let res = with_db!(self, write, |db| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO pipelines (workspace_id, name, version, spec, snapshot, content_hash, description, created_at, created_by) \
                     SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8 FROM pipelines WHERE workspace_id = $1 AND name = $2 \
                     RETURNING {PIPELINE_COLUMNS}"
                )))
                .bind(workspace_id)
                .bind(&p.name)
                .bind(&p.spec)
                .bind(&p.snapshot)
                .bind(&p.content_hash)
                .bind(&p.description)
                .bind(now_millis())
                .bind(&p.created_by)
                .fetch_one(db)
                .await
                .map(|r| pipeline_from(&r))
            });
            match res {
                Ok(row) => return Ok((row?, true)),
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Internal(format!(
            "publishing pipeline '{}' kept colliding with concurrent publications",
            p.name
        )))
    }

    /// A version of a pipeline (`None`: the latest).
    pub async fn pipeline(
        &self,
        workspace_id: i64,
        name: &str,
        version: Option<i64>,
    ) -> DomainResult<PipelineRow> {
        let found = with_db!(self, read, |db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE workspace_id = $1 AND name = $2 AND ($3 = 0 OR version = $3) ORDER BY version DESC LIMIT 1"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(version.unwrap_or(0))
            .fetch_optional(db)
            .await?;
            row.as_ref().map(pipeline_from).transpose()?
        });
        found.ok_or_else(|| {
            DomainError::NotFound(match version {
                Some(v) => format!("pipeline '{name}' has no version {v}"),
                None => format!("no pipeline named '{name}'"),
            })
        })
    }

    /// Versions of one pipeline (newest first), or the latest version of every pipeline.
    pub async fn list_pipelines(
        &self,
        workspace_id: i64,
        name: Option<&str>,
    ) -> DomainResult<Vec<PipelineRow>> {
        with_db!(self, read, |db| {
            let sql = match name {
                Some(_) => format!(
                    "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE workspace_id = $1 AND name = $2 ORDER BY version DESC"
                ),
                None => format!(
                    "SELECT {PIPELINE_COLUMNS} FROM pipelines p WHERE workspace_id = $1 AND $2 = '' AND version = \
                     (SELECT MAX(version) FROM pipelines q WHERE q.workspace_id = p.workspace_id AND q.name = p.name) ORDER BY name"
                ),
            };
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(workspace_id)
                .bind(name.unwrap_or(""))
                .fetch_all(db)
                .await?;
            rows.iter().map(pipeline_from).collect()
        })
    }

    /// Creates the Pending rows of a pipeline run's steps (those missing; idempotent).
    pub async fn init_steps(
        &self,
        job_key: i64,
        workspace_id: i64,
        steps: &[String],
    ) -> DomainResult<()> {
        with_db!(self, write, |db| {
            async {
                let mut tx = db.begin().await?;
                for s in steps {
                    sqlx::query(
                        "INSERT INTO pipeline_steps (job_id, workspace_id, step, state) VALUES ($1, $2, $3, 'Pending') \
                         ON CONFLICT (job_id, step) DO NOTHING",
                    )
                    .bind(job_key)
                    .bind(workspace_id)
                    .bind(s)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, DomainError>(())
            }
            .await
        })
    }

    /// The steps of a pipeline run.
    pub async fn steps(&self, job_key: i64) -> DomainResult<Vec<StepRow>> {
        with_db!(self, read, |db| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {STEP_COLUMNS} FROM pipeline_steps WHERE job_id = $1 ORDER BY id"
            )))
            .bind(job_key)
            .fetch_all(db)
            .await?;
            rows.iter().map(step_from).collect()
        })
    }

    /// Saves a step's row.
    pub async fn save_step(&self, job_key: i64, s: &StepRow) -> DomainResult<()> {
        with_db!(self, write, |db| {
            sqlx::query(
                "UPDATE pipeline_steps SET state = $1, attempt = $2, child_job = $3, cache_key = $4, reused_from = $5, outputs = $6, \
                 error = $7, retry_at = $8, started_at = $9, ended_at = $10 WHERE job_id = $11 AND step = $12",
            )
            .bind(&s.state)
            .bind(s.attempt)
            .bind(&s.child_job)
            .bind(&s.cache_key)
            .bind(&s.reused_from)
            .bind(&s.outputs)
            .bind(&s.error)
            .bind(s.retry_at)
            .bind(s.started_at)
            .bind(s.ended_at)
            .bind(job_key)
            .bind(&s.step)
            .execute(db)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// A step of another pipeline run with this cache key that is running now: (its pipeline
    /// job's uuid, the step), for single-flight.
    pub async fn step_in_flight(
        &self,
        workspace_id: i64,
        cache_key: &str,
        not_job: i64,
    ) -> DomainResult<Option<(String, String)>> {
        with_db!(self, read, |db| {
            let row = sqlx::query(
                "SELECT j.uuid AS uuid, s.step AS step FROM pipeline_steps s JOIN jobs j ON j.id = s.job_id \
                 WHERE s.workspace_id = $1 AND s.cache_key = $2 AND s.job_id <> $3 AND s.state IN ('Queued', 'Running') \
                 AND s.child_job IS NOT NULL ORDER BY s.id LIMIT 1",
            )
            .bind(workspace_id)
            .bind(cache_key)
            .bind(not_job)
            .fetch_optional(db)
            .await?;
            row.as_ref()
                .map(|r| Ok::<_, DomainError>((r.text("uuid")?, r.text("step")?)))
                .transpose()
        })
    }

    /// Records a step's outputs under its cache key.
    pub async fn record_cache(
        &self,
        workspace_id: i64,
        key: &str,
        c: &CacheRow,
    ) -> DomainResult<()> {
        with_db!(self, write, |db| {
            sqlx::query(
                "INSERT INTO step_cache (workspace_id, cache_key, job_uuid, step, run_id, outputs, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(workspace_id)
            .bind(key)
            .bind(&c.job_uuid)
            .bind(&c.step)
            .bind(&c.run_id)
            .bind(&c.outputs)
            .bind(now_millis())
            .execute(db)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Cache entries under a key, newest first.
    pub async fn cache_entries(&self, workspace_id: i64, key: &str) -> DomainResult<Vec<CacheRow>> {
        with_db!(self, read, |db| {
            let rows = sqlx::query(
                "SELECT job_uuid, step, run_id, outputs, created_at FROM step_cache WHERE workspace_id = $1 AND cache_key = $2 ORDER BY id DESC LIMIT 8",
            )
            .bind(workspace_id)
            .bind(key)
            .fetch_all(db)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(CacheRow {
                        job_uuid: r.text("job_uuid")?,
                        step: r.text("step")?,
                        run_id: r.opt_text("run_id")?,
                        outputs: r.text("outputs")?,
                        created_at: r.i64("created_at")?,
                    })
                })
                .collect()
        })
    }

    /// A job by its origin (`step:...`, `schedule:...`).
    pub async fn job_by_origin(
        &self,
        workspace_id: i64,
        origin: &str,
    ) -> DomainResult<Option<super::JobRow>> {
        with_db!(self, read, |db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM jobs WHERE workspace_id = $1 AND origin = $2",
                super::jobs::COLUMNS
            )))
            .bind(workspace_id)
            .bind(origin)
            .fetch_optional(db)
            .await?;
            row.as_ref().map(super::jobs::job_from).transpose()
        })
    }

    /// The blobs the code snapshots of published pipelines hold (kept by garbage collection).
    pub async fn pipeline_digests(&self) -> DomainResult<std::collections::HashSet<String>> {
        let rows = with_db!(self, read, |db| {
            sqlx::query("SELECT snapshot FROM pipelines")
                .fetch_all(db)
                .await?
                .iter()
                .map(|r| r.text("snapshot"))
                .collect::<DomainResult<Vec<String>>>()?
        });
        let mut out = std::collections::HashSet::new();
        for text in rows {
            if let Ok(files) = serde_json::from_str::<Vec<serde_json::Value>>(&text) {
                out.extend(
                    files
                        .iter()
                        .filter_map(|f| f.get("digest")?.as_str().map(String::from)),
                );
            }
        }
        Ok(out)
    }
}
