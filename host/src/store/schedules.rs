//! Schedules of pipeline runs and their ticks (one row per fired, skipped or queued tick,
//! unique per schedule and time: the guarantee of one run per tick across hosts).

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{DomainError, DomainResult, Millis, now_millis};

/// A stored schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// Internal key.
    pub id: i64,
    /// Its workspace.
    pub workspace_id: i64,
    /// Name.
    pub name: String,
    /// The definition (JSON).
    pub definition: String,
    /// Whether it fires.
    pub enabled: bool,
    /// When it was last enabled (no tick before this fires).
    pub enabled_at: Millis,
    /// The latest tick planned.
    pub cursor: Millis,
    /// Creation time.
    pub created_at: Millis,
    /// Who created it.
    pub created_by: Option<String>,
}

const COLUMNS: &str =
    "id, workspace_id, name, definition, enabled, enabled_at, cursor, created_at, created_by";

fn schedule_from(r: &impl RowExt) -> DomainResult<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.i64("id")?,
        workspace_id: r.i64("workspace_id")?,
        name: r.text("name")?,
        definition: r.text("definition")?,
        enabled: r.i64("enabled")? != 0,
        enabled_at: r.i64("enabled_at")?,
        cursor: r.i64("cursor")?,
        created_at: r.i64("created_at")?,
        created_by: r.opt_text("created_by")?,
    })
}

/// A tick of a schedule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TickRow {
    /// The scheduled time.
    pub tick: Millis,
    /// Submitted, Skipped, Queued or Failed.
    pub outcome: String,
    /// The pipeline job it started.
    pub job: Option<String>,
    /// Why it was skipped or failed.
    pub detail: Option<String>,
}

impl Store {
    /// Creates a schedule, enabled or not, its cursor at `now`.
    pub async fn create_schedule(
        &self,
        workspace_id: i64,
        name: &str,
        definition: &str,
        enabled: bool,
        now: Millis,
        by: Option<&str>,
    ) -> DomainResult<ScheduleRow> {
        let res = with_db!(self, write, |db| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO schedules (workspace_id, name, definition, enabled, enabled_at, cursor, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING {COLUMNS}"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(definition)
            .bind(enabled as i64)
            .bind(now)
            .bind(now_millis())
            .bind(by)
            .fetch_one(db)
            .await
            .map(|r| schedule_from(&r))
        });
        match res {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                "schedule '{name}' exists already"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A schedule by name.
    pub async fn schedule(&self, workspace_id: i64, name: &str) -> DomainResult<ScheduleRow> {
        let found = with_db!(self, read, |db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM schedules WHERE workspace_id = $1 AND name = $2"
            )))
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(db)
            .await?;
            row.as_ref().map(schedule_from).transpose()?
        });
        found.ok_or_else(|| DomainError::NotFound(format!("no schedule named '{name}'")))
    }

    /// The schedules of a workspace, or (`None`) the enabled schedules of every workspace.
    pub async fn list_schedules(
        &self,
        workspace_id: Option<i64>,
    ) -> DomainResult<Vec<ScheduleRow>> {
        with_db!(self, read, |db| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM schedules WHERE ($1 = 0 AND enabled = 1) OR workspace_id = $1 ORDER BY name"
            )))
            .bind(workspace_id.unwrap_or(0))
            .fetch_all(db)
            .await?;
            rows.iter().map(schedule_from).collect()
        })
    }

    /// Enables (cursor and `enabled_at` moved to `now`: ticks while it was off never fire) or
    /// disables a schedule.
    pub async fn set_schedule_enabled(
        &self,
        workspace_id: i64,
        name: &str,
        enabled: bool,
        now: Millis,
    ) -> DomainResult<ScheduleRow> {
        let s = self.schedule(workspace_id, name).await?;
        if s.enabled != enabled {
            with_db!(self, write, |db| {
                sqlx::query(
                    "UPDATE schedules SET enabled = $1, enabled_at = CASE WHEN $1 = 1 THEN $2 ELSE enabled_at END, \
                     cursor = CASE WHEN $1 = 1 THEN $2 ELSE cursor END WHERE id = $3",
                )
                .bind(enabled as i64)
                .bind(now)
                .bind(s.id)
                .execute(db)
                .await
                .map(|_| ())
            })?;
        }
        self.schedule(workspace_id, name).await
    }

    /// Deletes a schedule (its ticks go with it; the runs it started stay).
    pub async fn delete_schedule(&self, workspace_id: i64, name: &str) -> DomainResult<()> {
        let s = self.schedule(workspace_id, name).await?;
        with_db!(self, write, |db| {
            sqlx::query("DELETE FROM schedules WHERE id = $1")
                .bind(s.id)
                .execute(db)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Moves a schedule's cursor forward (never back).
    pub async fn advance_schedule(&self, id: i64, cursor: Millis) -> DomainResult<()> {
        with_db!(self, write, |db| {
            sqlx::query("UPDATE schedules SET cursor = $1 WHERE id = $2 AND cursor < $1")
                .bind(cursor)
                .bind(id)
                .execute(db)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Claims a tick: true for the one caller that records it first, false for every other
    /// (another host, or this one after a restart).
    pub async fn claim_tick(
        &self,
        schedule: i64,
        tick: Millis,
        outcome: &str,
    ) -> DomainResult<bool> {
        let res = with_db!(self, write, |db| {
            sqlx::query(
                "INSERT INTO schedule_ticks (schedule_id, tick, outcome, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (schedule_id, tick) DO NOTHING",
            )
            .bind(schedule)
            .bind(tick)
            .bind(outcome)
            .bind(now_millis())
            .execute(db)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(res == 1)
    }

    /// Records what a claimed tick became.
    pub async fn set_tick(
        &self,
        schedule: i64,
        tick: Millis,
        outcome: &str,
        job: Option<&str>,
        detail: Option<&str>,
    ) -> DomainResult<()> {
        with_db!(self, write, |db| {
            sqlx::query(
                "UPDATE schedule_ticks SET outcome = $1, job_uuid = COALESCE($2, job_uuid), detail = $3 WHERE schedule_id = $4 AND tick = $5",
            )
            .bind(outcome)
            .bind(job)
            .bind(detail)
            .bind(schedule)
            .bind(tick)
            .execute(db)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The latest ticks of a schedule (newest first), or only those with `outcome`, oldest first.
    pub async fn ticks(
        &self,
        schedule: i64,
        outcome: Option<&str>,
        limit: i64,
    ) -> DomainResult<Vec<TickRow>> {
        with_db!(self, read, |db| {
            let sql = if outcome.is_some() {
                "SELECT tick, outcome, job_uuid, detail FROM schedule_ticks WHERE schedule_id = $1 AND outcome = $2 ORDER BY tick LIMIT $3"
            } else {
                "SELECT tick, outcome, job_uuid, detail FROM schedule_ticks WHERE schedule_id = $1 AND $2 = '' ORDER BY tick DESC LIMIT $3"
            };
            let rows = sqlx::query(sql)
                .bind(schedule)
                .bind(outcome.unwrap_or(""))
                .bind(limit)
                .fetch_all(db)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(TickRow {
                        tick: r.i64("tick")?,
                        outcome: r.text("outcome")?,
                        job: r.opt_text("job_uuid")?,
                        detail: r.opt_text("detail")?,
                    })
                })
                .collect()
        })
    }

    /// Runs of a schedule that have not ended.
    pub async fn active_schedule_runs(&self, schedule: i64) -> DomainResult<i64> {
        let prefix = format!("schedule:{schedule}:");
        with_db!(self, read, |db| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM jobs WHERE origin >= $1 AND origin < $2 \
                 AND state NOT IN ('Completed', 'Failed', 'Canceled')",
            )
            .bind(&prefix)
            .bind(format!("schedule:{schedule};"))
            .fetch_one(db)
            .await?;
            row.i64("n")
        })
    }

    /// Ticks claimed (Pending) before `before` and never recorded as anything else: their host
    /// stopped between claiming and submitting them.
    pub async fn stale_ticks(&self, schedule: i64, before: Millis) -> DomainResult<Vec<Millis>> {
        with_db!(self, read, |db| {
            let rows = sqlx::query(
                "SELECT tick FROM schedule_ticks WHERE schedule_id = $1 AND outcome = 'Pending' AND created_at < $2 ORDER BY tick LIMIT 10",
            )
            .bind(schedule)
            .bind(before)
            .fetch_all(db)
            .await?;
            rows.iter().map(|r| r.i64("tick")).collect()
        })
    }
}
