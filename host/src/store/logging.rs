//! Logging params, metrics and tags to runs: one transaction per batch, all or nothing.

use std::collections::{BTreeMap, HashMap};

use super::rows::{RowExt, stored_value};
use super::sql::{Bind, bind_all, inserts};
use super::{Dialect, Store, with_db};
use crate::workspace::metric::encode_chunk;
use crate::workspace::{DomainError, DomainResult, LifecycleStage, Metric, MetricPoint, validate};

/// Params, metrics and tags to log to one run together.
#[derive(Debug, Clone, Default)]
pub struct LogBatch {
    /// Metric points (append-only).
    pub metrics: Vec<Metric>,
    /// Params (write-once).
    pub params: Vec<(String, String)>,
    /// Tags (last writer wins).
    pub tags: Vec<(String, String)>,
}

impl LogBatch {
    /// A digest of the batch's content (every metric point, param and tag, in order): two
    /// sends of the same batch have the same one.
    pub fn content_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for m in &self.metrics {
            h.update(b"m");
            h.update((m.key.len() as u64).to_le_bytes());
            h.update(m.key.as_bytes());
            h.update(m.point.value.to_bits().to_le_bytes());
            h.update(m.point.timestamp.to_le_bytes());
            h.update(m.point.step.to_le_bytes());
        }
        for (tag, kv) in [(b"p", &self.params), (b"t", &self.tags)] {
            for (k, v) in kv {
                h.update(tag);
                h.update((k.len() as u64).to_le_bytes());
                h.update(k.as_bytes());
                h.update((v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }

    /// Checks keys, values and sizes; duplicate params with different values are refused.
    pub fn validate(&self, enforce_batch_limits: bool) -> DomainResult<()> {
        if enforce_batch_limits {
            validate::batch_sizes(self.metrics.len(), self.params.len(), self.tags.len())?;
        }
        for m in &self.metrics {
            validate::key("metric", &m.key)?;
        }
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (k, v) in &self.params {
            validate::key("param", k)?;
            validate::param_value(k, v)?;
            if let Some(prev) = seen.insert(k, v)
                && prev != v
            {
                return Err(DomainError::invalid(format!(
                    "param '{k}' appears twice in the batch with different values ('{prev}' and '{v}')"
                )));
            }
        }
        for (k, v) in &self.tags {
            validate::key("tag", k)?;
            validate::tag_value(k, v)?;
        }
        Ok(())
    }

    /// The points of each metric key, in logging order, keys in order of first appearance.
    fn by_key(&self) -> Vec<(&str, Vec<MetricPoint>)> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<(&str, Vec<MetricPoint>)> = Vec::new();
        for m in &self.metrics {
            let i = *index.entry(&m.key).or_insert_with(|| {
                out.push((&m.key, Vec::new()));
                out.len() - 1
            });
            out[i].1.push(m.point);
        }
        out
    }

    /// `metric_chunks` rows of this batch for a run: one packed chunk per key.
    pub(crate) fn chunk_rows(&self, run_key: i64) -> Vec<Vec<Bind>> {
        self.by_key()
            .into_iter()
            .map(|(k, points)| {
                vec![
                    Bind::I64(run_key),
                    Bind::Text(k.into()),
                    Bind::I64(points.len() as i64),
                    Bind::Bytes(encode_chunk(points.iter())),
                ]
            })
            .collect()
    }

    /// `latest_metrics` rows of this batch for a run: the latest point per key.
    pub(crate) fn latest_rows(&self, run_key: i64) -> Vec<Vec<Bind>> {
        self.latest()
            .into_iter()
            .map(|(k, p)| {
                let (v, nan) = stored_value(p.value);
                vec![
                    Bind::I64(run_key),
                    Bind::Text(k.into()),
                    Bind::F64(v),
                    Bind::I64(nan),
                    Bind::I64(p.step),
                    Bind::I64(p.timestamp),
                ]
            })
            .collect()
    }

    /// The latest point per metric key within the batch.
    fn latest(&self) -> BTreeMap<&str, MetricPoint> {
        let mut out: BTreeMap<&str, MetricPoint> = BTreeMap::new();
        for m in &self.metrics {
            match out.get(m.key.as_str()) {
                Some(p) if !m.point.is_later_than(p) => {}
                _ => {
                    out.insert(&m.key, m.point);
                }
            }
        }
        out
    }
}

/// The head of an insert into `metric_chunks`.
pub(crate) const CHUNK_INSERT: &str =
    "INSERT INTO metric_chunks (run_id, key, points, data) VALUES ";

/// The head of an insert into `latest_metrics`.
pub(crate) const LATEST_INSERT: &str =
    "INSERT INTO latest_metrics (run_id, key, value, is_nan, step, timestamp) VALUES ";

/// Keeps the latest value on conflict, in MLflow's order: step, then timestamp, then value (NaN
/// highest). SQLite applies the rows of one statement in order, so duplicates within it are fine.
pub(crate) const LATEST_UPSERT: &str = " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, \
     is_nan = excluded.is_nan, step = excluded.step, timestamp = excluded.timestamp \
     WHERE excluded.step > latest_metrics.step \
     OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
     OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
         AND (excluded.is_nan > latest_metrics.is_nan \
              OR (excluded.is_nan = latest_metrics.is_nan AND excluded.value > latest_metrics.value)))";

/// Writes a batch inside an open transaction on connection `$conn`.
macro_rules! write_batch {
    ($dialect:expr, $conn:expr, $run_key:expr, $batch:expr, $run_id:expr) => {{
        let dialect: Dialect = $dialect;
        let run_key: i64 = $run_key;
        let batch: &LogBatch = $batch;
        if !batch.params.is_empty() {
            let existing: HashMap<String, String> =
                sqlx::query("SELECT key, value FROM params WHERE run_id = $1")
                    .bind(run_key)
                    .fetch_all(&mut *$conn)
                    .await?
                    .iter()
                    .map(|r| Ok((r.text("key")?, r.text("value")?)))
                    .collect::<DomainResult<_>>()?;
            // check every param before writing anything: a rejected batch writes nothing
            for (k, v) in &batch.params {
                if let Some(old) = existing.get(k)
                    && old != v
                {
                    return Err(DomainError::invalid(format!(
                        "param '{k}' of run '{}' was already logged with value '{old}'; params are write-once and cannot change to '{v}'",
                        $run_id
                    )));
                }
            }
            for (k, v) in batch.params.iter().filter(|(k, _)| !existing.contains_key(k)) {
                // RETURNING tells whether this insert won; a concurrent writer (PostgreSQL) may
                // have set the param first, and then its value must be ours
                let won = sqlx::query("INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) DO NOTHING RETURNING key")
                    .bind(run_key)
                    .bind(k)
                    .bind(v)
                    .fetch_optional(&mut *$conn)
                    .await?
                    .is_some();
                if !won {
                    let row = sqlx::query("SELECT value FROM params WHERE run_id = $1 AND key = $2")
                        .bind(run_key)
                        .bind(k)
                        .fetch_one(&mut *$conn)
                        .await?;
                    let old = row.text("value")?;
                    if &old != v {
                        return Err(DomainError::invalid(format!(
                            "param '{k}' of run '{}' was already logged with value '{old}'; params are write-once and cannot change to '{v}'",
                            $run_id
                        )));
                    }
                }
            }
        }
        for (k, v) in &batch.tags {
            sqlx::query(
                "INSERT INTO tags (run_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(run_key)
            .bind(k)
            .bind(v)
            .execute(&mut *$conn)
            .await?;
        }
        let metric_writes = [
            inserts(dialect, CHUNK_INSERT, "", 4, batch.chunk_rows(run_key)),
            inserts(dialect, LATEST_INSERT, LATEST_UPSERT, 6, batch.latest_rows(run_key)),
        ];
        for ins in metric_writes.into_iter().flatten() {
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(ins.sql)), &ins.binds).execute(&mut *$conn).await?;
        }
    }};
}

/// Logs a batch to a run inside an open transaction `$conn`; evaluates to `DomainResult<()>`.
/// Domain errors (unknown or deleted run, a changed param) are raised before anything is written,
/// except a param set concurrently by another PostgreSQL transaction, which is found after the
/// insert: the caller's transaction is then dropped, so nothing of the batch survives either way.
macro_rules! log_to_run {
    ($dialect:expr, $conn:expr, $workspace_id:expr, $run_id:expr, $batch:expr) => {
        async {
            let run_id: &str = $run_id;
            let Some(row) = sqlx::query(
                "SELECT id, lifecycle_stage FROM runs WHERE uuid = $1 AND workspace_id = $2",
            )
            .bind(run_id)
            .bind($workspace_id)
            .fetch_optional(&mut *$conn)
            .await?
            else {
                return Err(crate::workspace::validate::run_not_found(run_id));
            };
            if row.text("lifecycle_stage")? != LifecycleStage::Active.as_str() {
                return Err(crate::workspace::validate::run_not_active(run_id));
            }
            write_batch!($dialect, $conn, row.i64("id")?, $batch, run_id);
            Ok::<(), DomainError>(())
        }
        .await
    };
}

impl Store {
    /// Logs a batch to an active run atomically: on any error nothing of it is stored.
    pub async fn log_batch(
        &self,
        workspace_id: i64,
        run_id: &str,
        batch: LogBatch,
    ) -> DomainResult<()> {
        match &self.db {
            super::Db::Sqlite { .. } => {
                self.writer()?
                    .log_batch(workspace_id, run_id.to_string(), batch)
                    .await
            }
            super::Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                log_to_run!(Dialect::Postgres, tx, workspace_id, run_id, &batch)?;
                tx.commit().await?;
                Ok(())
            }
        }
    }
}

/// What marks a batch as logged, so that a retried batch stores nothing again.
pub enum BatchMark<'a> {
    /// A worker's batch: (job key, attempt, batch number).
    Job(i64, i64, i64),
    /// A client's `Idempotency-Key` on the run.
    Key(&'a str),
}

impl Store {
    /// Forgets the marks of batches logged before `before` (a retry comes within seconds).
    pub async fn expire_batch_keys(&self, before: crate::workspace::Millis) -> DomainResult<u64> {
        let n = with_db!(self, write, |p| {
            sqlx::query("DELETE FROM batch_keys WHERE created_at < $1")
                .bind(before)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Logs batch `batch` to its run once: the batch's mark is recorded in the same
    /// transaction, so a retried batch (a worker's, or a client's that retries on another
    /// replica after a lost answer) stores nothing again. Returns whether it was stored now
    /// (`false`: it already was).
    pub async fn log_batch_once(
        &self,
        workspace_id: i64,
        run_id: &str,
        mark: BatchMark<'_>,
        batch: &LogBatch,
    ) -> DomainResult<bool> {
        let now = crate::workspace::now_millis();
        // marks the batch, logs it only when the mark is new, commits both together
        macro_rules! once {
            ($dialect:expr, $tx:ident) => {{
                let q = match &mark {
                    BatchMark::Job(job_key, attempt, batch_id) => sqlx::query(
                        "INSERT INTO job_batches (job_id, attempt, batch, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(*job_key)
                    .bind(*attempt)
                    .bind(*batch_id)
                    .bind(now),
                    BatchMark::Key(key) => sqlx::query(
                        "INSERT INTO batch_keys (run_id, key, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(run_id)
                    .bind(*key)
                    .bind(now),
                };
                let fresh = q.execute(&mut *$tx).await?.rows_affected() == 1;
                if fresh {
                    log_to_run!($dialect, $tx, workspace_id, run_id, batch)?;
                }
                $tx.commit().await?;
                Ok(fresh)
            }};
        }
        match &self.db {
            super::Db::Sqlite {
                write, write_lock, ..
            } => {
                let _exclusive = write_lock.lock().await;
                let mut tx = write.begin().await?;
                once!(Dialect::Sqlite, tx)
            }
            super::Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                once!(Dialect::Postgres, tx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(step: i64) -> LogBatch {
        LogBatch {
            metrics: vec![Metric {
                key: "loss".into(),
                point: MetricPoint {
                    value: 0.5,
                    timestamp: 1000,
                    step,
                },
            }],
            params: vec![("lr".into(), "0.1".into())],
            tags: vec![],
        }
    }

    #[test]
    fn content_keys_match_only_identical_batches() {
        assert_eq!(batch(1).content_key(), batch(1).content_key());
        assert_ne!(batch(1).content_key(), batch(2).content_key());
        let mut moved = batch(1);
        moved.tags = moved.params.clone();
        moved.params.clear();
        assert_ne!(
            moved.content_key(),
            batch(1).content_key(),
            "a param is not a tag"
        );
    }
}
