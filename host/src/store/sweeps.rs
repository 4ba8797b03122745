//! The persisted state of sweep jobs (one JSON document per job, replaced after each change).

use super::rows::RowExt;
use super::{Store, with_db};
use crate::workspace::{DomainResult, now_millis};

impl Store {
    /// Replaces the saved state of the sweep run by job `job_key`.
    pub async fn save_sweep_state(&self, job_key: i64, state: &str) -> DomainResult<()> {
        let now = now_millis();
        with_db!(self, write, |p| {
            sqlx::query(
            "INSERT INTO sweep_states (job_id, state, updated_at) SELECT $1, $2, $3 \
             WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND (owner IS NULL OR owner = $4)) \
             ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
        )
        .bind(job_key)
        .bind(state)
        .bind(now)
        .bind(&self.replica)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// The saved state of a sweep job, if it has one.
    pub async fn sweep_state(&self, job_key: i64) -> DomainResult<Option<String>> {
        Ok(with_db!(self, read, |p| {
            let row = sqlx::query("SELECT state FROM sweep_states WHERE job_id = $1")
                .bind(job_key)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(|r| r.text("state")).transpose()?
        }))
    }
}
