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
    /// The replica that claimed the current attempt.
    pub owner: Option<String>,
}

/// How long a claim holds without renewal: a replica renews the leases of its jobs every
/// [`LEASE_RENEW_MS`]; another takes a job over once its lease lapsed.
pub const LEASE_MS: Millis = 15_000;

/// How often a replica renews its leases (and looks for lapsed ones).
pub const LEASE_RENEW_MS: Millis = 3_000;

/// SQL condition: the job is claimed and not ended.
const ACTIVE: &str = "state IN ('Starting', 'Preparing', 'Running', 'Finalizing')";

pub(super) const COLUMNS: &str = "id, uuid, workspace_id, kind, name, spec, state, target, run_id, attempts, retries, error, \
     cancel_requested, created_at, started_at, ended_at, handle, engine_state, owner";

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
        owner: r.opt_text("owner")?,
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
        // $1 now, $2 this replica, $3 the lease's end; then the skipped targets
        if !skip.is_empty() {
            let marks: Vec<String> = (4..4 + skip.len()).map(|i| format!("${i}")).collect();
            which.push_str(&format!(" AND target NOT IN ({})", marks.join(", ")));
        }
        // one statement: the oldest queued job, row-locked and skipped by concurrent claims
        // on PostgreSQL (SQLite has one writer)
        let lock = match self.dialect() {
            super::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'Starting', attempts = attempts + 1, started_at = $1, updated_at = $1, error = NULL, \
             handle = NULL, worker_token = NULL, engine_state = NULL, owner = $2, lease_until = $3 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'Queued' AND {which} ORDER BY id LIMIT 1{lock}) \
             AND state = 'Queued' RETURNING {COLUMNS}"
        );
        let now = now_millis();
        let row = with_db!(self, write, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now)
                .bind(&self.replica)
                .bind(now + LEASE_MS);
            for t in skip {
                q = q.bind(t);
            }
            let row = q.fetch_optional(p).await?;
            row.as_ref().map(job_from).transpose()?
        });
        Ok(row)
    }

    /// Renews the leases of the jobs this replica runs; returns the ids still held, each with
    /// whether a cancel was requested (through any replica). A job missing from them was taken
    /// over after its lease lapsed: this replica must let it go.
    pub async fn renew_leases(&self) -> DomainResult<Vec<(String, bool)>> {
        let now = now_millis();
        with_db!(self, write, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET lease_until = $1 WHERE owner = $2 AND {ACTIVE} RETURNING uuid, cancel_requested"
            )))
            .bind(now + LEASE_MS)
            .bind(&self.replica)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| Ok((r.text("uuid")?, r.i64("cancel_requested")? != 0)))
                .collect::<DomainResult<Vec<_>>>()
        })
    }

    /// Takes over the attempts an engine runs whose owner's lease lapsed (or, at `startup`,
    /// that this replica owned before it restarted): they are reconciled with the engine.
    pub async fn adopt_remote_jobs(&self, startup: bool) -> DomainResult<Vec<JobRow>> {
        let now = now_millis();
        let lapsed = self.lapsed(startup, "$1", "$3");
        let mut jobs = with_db!(self, write, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET owner = $1, lease_until = $2 WHERE handle IS NOT NULL AND {} \
                 AND {ACTIVE} AND {lapsed} RETURNING {COLUMNS}",
                super::compute::REMOTE
            )))
            .bind(&self.replica)
            .bind(now + LEASE_MS)
            .bind(now)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(job_from)
                .collect::<DomainResult<Vec<_>>>()?
        });
        jobs.sort_by_key(|j| j.key);
        Ok(jobs)
    }

    /// SQL condition on an active job: nobody holds it any more (`owner` and `now` are the
    /// placeholders of this replica's name and the time). At startup on SQLite every active
    /// job qualifies (one host owns an embedded database); on PostgreSQL those this replica
    /// owned before it restarted, those of no owner, and those whose lease lapsed; later, only
    /// those whose lease lapsed.
    fn lapsed(&self, startup: bool, owner: &str, now: &str) -> String {
        match (startup, self.dialect()) {
            (true, super::Dialect::Sqlite) => {
                format!("(1 = 1 OR owner = {owner} OR lease_until < {now})")
            }
            (true, super::Dialect::Postgres) => {
                format!("(owner IS NULL OR owner = {owner} OR lease_until < {now})")
            }
            (false, _) => format!("(lease_until < {now} OR (owner IS NULL AND {owner} <> ''))"),
        }
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
             ended_at = COALESCE($4, ended_at), updated_at = $5 WHERE id = $6 AND (owner IS NULL OR owner = $7)"
        )
        .bind(state.as_str())
        .bind(run_id)
        .bind(error)
        .bind(ended)
        .bind(now)
        .bind(key)
        .bind(&self.replica)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Queues a job again after a lost attempt (its run stays open for the next attempt).
    pub async fn requeue_job(&self, key: i64, why: &str) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE jobs SET state = 'Queued', error = $1, updated_at = $2 WHERE id = $3 AND (owner IS NULL OR owner = $4)"
        )
        .bind(format!("attempt lost: {why}"))
        .bind(now_millis())
        .bind(key)
        .bind(&self.replica)
        .execute(p)
        .await
        .map(|_| ())
        })?;
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

    /// Jobs nobody holds any more were interrupted: at `startup`, those a restart interrupted
    /// (see [`Self::lapsed`]); later, those whose owner's lease lapsed (a replica died). Those
    /// with retries left, and every sweep, AutoML and pipeline job (they resume from their saved
    /// state), are queued again; the others end (Canceled when cancel was requested, else
    /// Failed with the reason). Returns how many were re-queued and the jobs that ended.
    pub async fn recover_jobs(&self, startup: bool) -> DomainResult<(u64, Vec<JobRow>)> {
        let now = now_millis();
        // an attempt an engine runs (its handle stored) is reconciled with the engine instead
        let interrupted = format!(
            "{ACTIVE} AND NOT (handle IS NOT NULL AND {}) AND {}",
            super::compute::REMOTE,
            self.lapsed(startup, "$1", "$2")
        );
        let why = if startup {
            "interrupted by a host restart"
        } else {
            "interrupted: the replica running it stopped renewing its lease"
        };
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let requeued = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'Queued', updated_at = $2, owner = NULL, lease_until = NULL \
                 WHERE {interrupted} AND (attempts <= retries OR kind IN ('sweep', 'automl', 'pipeline')) AND cancel_requested = 0"
            )))
            .bind(&self.replica)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let ended = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM jobs WHERE {interrupted}")))
                .bind(&self.replica)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(job_from)
                .collect::<DomainResult<Vec<_>>>()?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET ended_at = $2, updated_at = $2, \
                 error = CASE WHEN cancel_requested = 0 THEN $3 ELSE NULL END, \
                 state = CASE WHEN cancel_requested = 0 THEN 'Failed' ELSE 'Canceled' END \
                 WHERE {interrupted}"
            )))
            .bind(&self.replica)
            .bind(now)
            .bind(why)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>((requeued, ended))
        }
        .await
        })
    }
}
