//! Jobs: persistent records, atomic claiming by executors, state transitions.

use super::rows::RowExt;
use super::{Store, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A job's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    /// Waiting for a slot.
    Queued,
    /// Claimed; its run is being prepared.
    Starting,
    /// Its Python environment is being found or built.
    Preparing,
    /// Executing.
    Running,
    /// Saving outputs.
    Finalizing,
    /// Ended successfully.
    Completed,
    /// Ended with an error.
    Failed,
    /// Ended by a cancel request.
    Canceled,
}

impl JobState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::Starting => "Starting",
            Self::Preparing => "Preparing",
            Self::Running => "Running",
            Self::Finalizing => "Finalizing",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }

    /// Parses the stored spelling (any case).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "queued" => Self::Queued,
            "starting" => Self::Starting,
            "preparing" => Self::Preparing,
            "running" => Self::Running,
            "finalizing" => Self::Finalizing,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "canceled" | "cancelled" => Self::Canceled,
            _ => {
                return Err(DomainError::invalid(format!(
                    "unknown job state '{s}': expected Queued, Starting, Preparing, Running, Finalizing, Completed, Failed or Canceled"
                )));
            }
        })
    }
}

/// A stored job.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Internal key.
    pub key: i64,
    /// Public id.
    pub id: String,
    /// Owning workspace.
    pub workspace_id: i64,
    /// `train` or `command`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// The spec as JSON.
    pub spec: String,
    /// State.
    pub state: JobState,
    /// Compute target.
    pub target: String,
    /// The run it produced.
    pub run_id: Option<String>,
    /// Attempts started.
    pub attempts: i64,
    /// Retries allowed after an interruption.
    pub retries: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether cancel was requested.
    pub cancel_requested: bool,
    /// Submission time.
    pub created_at: Millis,
    /// Start of the current attempt.
    pub started_at: Option<Millis>,
    /// End time.
    pub ended_at: Option<Millis>,
    /// The engine's handle of the current attempt (jobs on a compute target).
    pub handle: Option<String>,
    /// The engine's last reported state of it.
    pub engine_state: Option<String>,
}

pub(super) const COLUMNS: &str = "id, uuid, workspace_id, kind, name, spec, state, target, run_id, attempts, retries, error, \
     cancel_requested, created_at, started_at, ended_at, handle, engine_state";

pub(super) fn job_from(r: &impl RowExt) -> DomainResult<JobRow> {
    Ok(JobRow {
        key: r.i64("id")?,
        id: r.text("uuid")?,
        workspace_id: r.i64("workspace_id")?,
        kind: r.text("kind")?,
        name: r.text("name")?,
        spec: r.text("spec")?,
        state: JobState::parse(&r.text("state")?)?,
        target: r.text("target")?,
        run_id: r.opt_text("run_id")?,
        attempts: r.i64("attempts")?,
        retries: r.i64("retries")?,
        error: r.opt_text("error")?,
        cancel_requested: r.i64("cancel_requested")? != 0,
        created_at: r.i64("created_at")?,
        started_at: r.opt_i64("started_at")?,
        ended_at: r.opt_i64("ended_at")?,
        handle: r.opt_text("handle")?,
        engine_state: r.opt_text("engine_state")?,
    })
}

/// A job to submit.
pub struct NewJob<'a> {
    /// `train` or `command`.
    pub kind: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Spec JSON.
    pub spec: &'a str,
    /// Referenced datasets (`name:version`).
    pub datasets: &'a [String],
    /// Retries after an interruption.
    pub retries: i64,
    /// Compute target.
    pub target: &'a str,
    /// Where it came from (`step:<pipeline job>:<step>:<attempt>`, `schedule:<id>:<tick>`):
    /// unique, so a second submission of the same origin fails with AlreadyExists.
    pub origin: Option<&'a str>,
    /// The pipeline job it is a step of.
    pub parent: Option<&'a str>,
    /// Its public id, when chosen before (the run's tags name it); else a new one.
    pub uuid: Option<&'a str>,
    /// Its run, when created before.
    pub run_id: Option<&'a str>,
}

impl Store {
    /// Queues a job.
    pub async fn submit_job(&self, workspace_id: i64, j: NewJob<'_>) -> DomainResult<JobRow> {
        let uuid = j
            .uuid
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        let now = now_millis();
        let datasets = serde_json::to_string(j.datasets).expect("strings serialize");
        let res = with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO jobs (uuid, workspace_id, kind, name, spec, state, target, datasets, retries, created_at, updated_at, origin, parent_job, run_id) \
             VALUES ($1, $2, $3, $4, $5, 'Queued', $9, $6, $7, $8, $8, $10, $11, $12)"
        )
        .bind(&uuid)
        .bind(workspace_id)
        .bind(j.kind)
        .bind(j.name)
        .bind(j.spec)
        .bind(&datasets)
        .bind(j.retries)
        .bind(now)
        .bind(j.target)
        .bind(j.origin)
        .bind(j.parent)
        .bind(j.run_id)
        .execute(p)
        .await
        .map(|_| ())
        });
        match res {
            Err(e) if super::is_unique_violation(&e) => {
                return Err(DomainError::AlreadyExists(format!(
                    "a job for {} exists already",
                    j.origin.unwrap_or("this origin")
                )));
            }
            other => other?,
        }
        self.job(workspace_id, &uuid).await
    }

    /// A job of a workspace.
    pub async fn job(&self, workspace_id: i64, id: &str) -> DomainResult<JobRow> {
        let found = with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM jobs WHERE uuid = $1 AND workspace_id = $2"
            )))
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(job_from).transpose()?
        });
        found.ok_or_else(|| DomainError::NotFound(format!("job '{id}' does not exist")))
    }

    /// Jobs of a workspace, newest first, optionally in one state.
    pub async fn list_jobs(
        &self,
        workspace_id: i64,
        state: Option<JobState>,
        limit: i64,
    ) -> DomainResult<Vec<JobRow>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM jobs WHERE workspace_id = $1 AND ($2 = '' OR state = $2) ORDER BY id DESC LIMIT $3"
            )))
            .bind(workspace_id)
            .bind(state.map(JobState::as_str).unwrap_or(""))
            .bind(limit)
            .fetch_all(p)
            .await?;
            rows.iter().map(job_from).collect()
        })
    }

    /// Claims the oldest queued job (Queued → Starting, attempt counted) of the built-in local
    /// targets, or with `remote` of a compute target not named in `skip` (those at capacity);
    /// `None` if none. The conditional update makes the claim atomic across executors.
    pub async fn claim_job(&self, remote: bool, skip: &[String]) -> DomainResult<Option<JobRow>> {
        let which = if remote {
            super::compute::REMOTE.to_string()
        } else {
            format!("NOT ({}) AND kind <> 'pipeline'", super::compute::REMOTE)
        };
        self.claim_where(which, skip).await
    }

    /// Claims the oldest queued pipeline job (they orchestrate in the host, outside the slots).
    pub async fn claim_pipeline_job(&self) -> DomainResult<Option<JobRow>> {
        self.claim_where("kind = 'pipeline'".into(), &[]).await
    }

    async fn claim_where(
        &self,
        mut which: String,
        skip: &[String],
    ) -> DomainResult<Option<JobRow>> {
        if !skip.is_empty() {
            let marks: Vec<String> = (1..=skip.len()).map(|i| format!("${i}")).collect();
            which.push_str(&format!(" AND target NOT IN ({})", marks.join(", ")));
        }
        let sql =
            format!("SELECT uuid FROM jobs WHERE state = 'Queued' AND {which} ORDER BY id LIMIT 1");
        for _ in 0..5 {
            let next = with_db!(self, read, |p| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for t in skip {
                    q = q.bind(t);
                }
                let row = q.fetch_optional(p).await?;
                row.as_ref().map(|r| r.text("uuid")).transpose()?
            });
            let Some(id) = next else { return Ok(None) };
            let now = now_millis();
            let claimed = with_db!(self, write, |p| {
                sqlx::query(
                "UPDATE jobs SET state = 'Starting', attempts = attempts + 1, started_at = $1, updated_at = $1, error = NULL, \
                 handle = NULL, worker_token = NULL, engine_state = NULL \
                 WHERE uuid = $2 AND state = 'Queued'"
            )
            .bind(now)
            .bind(&id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            })?;
            if claimed == 1 {
                let row = with_db!(self, read, |p| {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM jobs WHERE uuid = $1"
                    )))
                    .bind(&id)
                    .fetch_one(p)
                    .await?;
                    job_from(&row)?
                });
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Moves a job to `state` (ending it stamps the end time); records the run and error.
    pub async fn set_job_state(
        &self,
        key: i64,
        state: JobState,
        run_id: Option<&str>,
        error: Option<&str>,
    ) -> DomainResult<()> {
        let now = now_millis();
        let ended = state.is_terminal().then_some(now);
        with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE jobs SET state = $1, run_id = COALESCE($2, run_id), error = COALESCE($3, error), \
             ended_at = COALESCE($4, ended_at), updated_at = $5 WHERE id = $6"
        )
        .bind(state.as_str())
        .bind(run_id)
        .bind(error)
        .bind(ended)
        .bind(now)
        .bind(key)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Queues a job again after a lost attempt (its run stays open for the next attempt).
    pub async fn requeue_job(&self, key: i64, why: &str) -> DomainResult<()> {
        with_db!(self, write, |p| sqlx::query(
            "UPDATE jobs SET state = 'Queued', error = $1, updated_at = $2 WHERE id = $3"
        )
        .bind(format!("attempt lost: {why}"))
        .bind(now_millis())
        .bind(key)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Records a cancel request; a queued job is canceled at once. Returns the job.
    pub async fn request_cancel(&self, workspace_id: i64, id: &str) -> DomainResult<JobRow> {
        let job = self.job(workspace_id, id).await?;
        if job.state.is_terminal() {
            return Err(DomainError::InvalidState(format!(
                "job {id} has already ended ({})",
                job.state.as_str()
            )));
        }
        let now = now_millis();
        with_db!(self, write, |p| sqlx::query(
            "UPDATE jobs SET cancel_requested = 1, updated_at = $1, \
             state = CASE WHEN state = 'Queued' THEN 'Canceled' ELSE state END, \
             ended_at = CASE WHEN state = 'Queued' THEN $1 ELSE ended_at END WHERE id = $2"
        )
        .bind(now)
        .bind(job.key)
        .execute(p)
        .await
        .map(|_| ()))?;
        self.job(workspace_id, id).await
    }

    /// After a restart: jobs that were starting or running were interrupted. Those with
    /// retries left, and every sweep, AutoML and pipeline job (they resume from their saved state), are
    /// queued again; the others end (Canceled when cancel was requested, else
    /// Failed with the reason). Returns how many were re-queued and the jobs that ended.
    pub async fn recover_jobs(&self) -> DomainResult<(u64, Vec<JobRow>)> {
        let now = now_millis();
        // an attempt an engine runs (its handle stored) is reconciled with the engine instead
        let interrupted = format!(
            "state IN ('Starting', 'Preparing', 'Running', 'Finalizing') AND NOT (handle IS NOT NULL AND {})",
            super::compute::REMOTE
        );
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let requeued = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'Queued', updated_at = $1 \
                 WHERE {interrupted} AND (attempts <= retries OR kind IN ('sweep', 'automl', 'pipeline')) AND cancel_requested = 0"
            )))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let ended = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM jobs WHERE {interrupted}")))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(job_from)
                .collect::<DomainResult<Vec<_>>>()?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET ended_at = $1, updated_at = $1, \
                 error = CASE WHEN cancel_requested = 0 THEN 'interrupted by a host restart' ELSE NULL END, \
                 state = CASE WHEN cancel_requested = 0 THEN 'Failed' ELSE 'Canceled' END \
                 WHERE {interrupted}"
            )))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>((requeued, ended))
        }
        .await
        })
    }
}
