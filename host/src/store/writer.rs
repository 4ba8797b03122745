//! Group commit for SQLite: concurrent writes of the hot paths (log-batch, create-run) queue up
//! and are applied by one task in one transaction, so one WAL fsync acknowledges many requests.
//!
//! Every job raises its domain errors (unknown run, changed param, deleted experiment) before it
//! writes anything, so a rejected job leaves the shared transaction clean. A database error aborts
//! the group; each job is then retried in a transaction of its own, so the error is charged only
//! to the job that caused it. A reply is sent only after the commit that made the job durable.

use sqlx::sqlite::SqlitePool;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use std::collections::HashMap;

use super::logging::{LATEST_INSERT, LATEST_UPSERT};
use super::rows::{RowExt, stored_value};
use super::runs::PreparedRun;
use super::sql::{Bind, bind_all, inserts, push_values};
use super::{Dialect, LogBatch};
use crate::workspace::metric::encode_chunk;
use crate::workspace::{DomainError, DomainResult, LifecycleStage};

/// Most jobs committed together.
const MAX_GROUP: usize = 64;

enum Job {
    Log {
        ws: i64,
        run_id: String,
        batch: LogBatch,
        reply: oneshot::Sender<DomainResult<()>>,
    },
    CreateRun {
        ws: i64,
        run: PreparedRun,
        reply: oneshot::Sender<DomainResult<i64>>,
    },
}

enum Outcome {
    Log(DomainResult<()>),
    CreateRun(DomainResult<i64>),
}

async fn apply(conn: &mut SqliteConnection, job: &Job) -> Outcome {
    match job {
        Job::Log {
            ws, run_id, batch, ..
        } => Outcome::Log(super::logging::log_sqlite(conn, *ws, run_id, batch).await),
        Job::CreateRun { ws, run, .. } => {
            Outcome::CreateRun(super::runs::insert_run_sqlite(conn, *ws, run).await)
        }
    }
}

fn reply(job: Job, outcome: Outcome) {
    match (job, outcome) {
        (Job::Log { reply, .. }, Outcome::Log(r)) => {
            let _ = reply.send(r);
        }
        (Job::CreateRun { reply, .. }, Outcome::CreateRun(r)) => {
            let _ = reply.send(r);
        }
        _ => unreachable!("outcome kind follows job kind"),
    }
}

/// The queue in front of the single SQLite writer connection.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

fn stopped() -> DomainError {
    DomainError::Internal("the database writer has stopped".into())
}

impl Writer {
    /// Starts the writer task on the given single-connection pool.
    pub fn start(pool: SqlitePool) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Queues a batch and waits until it is committed (or rejected).
    pub async fn log_batch(&self, ws: i64, run_id: String, batch: LogBatch) -> DomainResult<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Log {
                ws,
                run_id,
                batch,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues a new run and waits until it is committed; returns its key.
    pub async fn create_run(&self, ws: i64, run: PreparedRun) -> DomainResult<i64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::CreateRun { ws, run, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot acquire the writer connection");
                for j in jobs {
                    let outcome = failed(&j, DomainError::Internal(format!("database: {e}")));
                    reply(j, outcome);
                }
                continue;
            }
        };
        match commit_group(&mut conn, &jobs).await {
            Ok(outcomes) => {
                for (j, o) in jobs.into_iter().zip(outcomes) {
                    reply(j, o);
                }
            }
            Err(e) => {
                if jobs.len() > 1 {
                    tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying jobs one by one");
                }
                for j in jobs {
                    let outcome = commit_one(&mut conn, &j).await;
                    reply(j, outcome);
                }
            }
        }
    }
}

/// Applies all jobs in one transaction with a fixed number of statements whatever the group size:
/// one read per kind of lookup, then the domain checks in memory, job by job in arrival order,
/// then one multi-row write per table. A database error anywhere aborts the transaction.
async fn commit_group(
    conn: &mut SqliteConnection,
    jobs: &[Job],
) -> Result<Vec<Outcome>, DomainError> {
    let mut tx = conn.begin().await?;
    let looked_up = Lookups::read(&mut tx, jobs).await?;
    let mut plan = GroupPlan::default();
    let decided: Vec<Decision> = jobs.iter().map(|j| plan.decide(j, &looked_up)).collect();
    let new_keys = plan.write(&mut tx).await?;
    tx.commit().await?;
    Ok(decided
        .into_iter()
        .map(|d| match d {
            Decision::Log(r) => Outcome::Log(r),
            Decision::Created(uuid) => Outcome::CreateRun(
                new_keys
                    .get(&uuid)
                    .copied()
                    .ok_or_else(|| DomainError::Internal(format!("run {uuid} was not inserted"))),
            ),
            Decision::CreateRejected(e) => Outcome::CreateRun(Err(e)),
        })
        .collect())
}

/// What the group's checks need from the database, read with one query per kind.
#[derive(Default)]
struct Lookups {
    /// (workspace, experiment number) → (experiment key, active).
    experiments: HashMap<(i64, i64), (i64, bool)>,
    /// run uuid → (run key, workspace, active): runs logged to, and parents of new runs.
    runs: HashMap<String, (i64, i64, bool)>,
    /// (run key, param key) → value, for runs that get params.
    params: HashMap<(i64, String), String>,
}

async fn fetch(
    tx: &mut SqliteConnection,
    sql: String,
    binds: Vec<Bind>,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, DomainError> {
    Ok(bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
        .fetch_all(&mut *tx)
        .await?)
}

impl Lookups {
    async fn read(tx: &mut SqliteConnection, jobs: &[Job]) -> Result<Self, DomainError> {
        let mut out = Self::default();
        let mut exps = Vec::new();
        let mut uuids = Vec::new();
        for j in jobs {
            match j {
                Job::CreateRun { ws, run, .. } => {
                    exps.push((*ws, run.experiment_id));
                    uuids.extend(run.parent.clone());
                }
                Job::Log { run_id, .. } => uuids.push(run_id.clone()),
            }
        }
        if !exps.is_empty() {
            let mut sql = String::from(
                "SELECT workspace_id, number, id, lifecycle_stage FROM experiments WHERE (workspace_id, number) IN (VALUES ",
            );
            push_values(Dialect::Sqlite, &mut sql, exps.len(), 2);
            sql.push(')');
            let binds = exps
                .iter()
                .flat_map(|(w, n)| [Bind::I64(*w), Bind::I64(*n)])
                .collect();
            for r in fetch(tx, sql, binds).await? {
                let active = r.text("lifecycle_stage")? == LifecycleStage::Active.as_str();
                out.experiments.insert(
                    (r.i64("workspace_id")?, r.i64("number")?),
                    (r.i64("id")?, active),
                );
            }
        }
        if !uuids.is_empty() {
            let mut sql = String::from(
                "SELECT uuid, id, workspace_id, lifecycle_stage FROM runs WHERE uuid IN ",
            );
            push_values(Dialect::Sqlite, &mut sql, 1, uuids.len());
            let binds = uuids.into_iter().map(Bind::Text).collect();
            for r in fetch(tx, sql, binds).await? {
                let active = r.text("lifecycle_stage")? == LifecycleStage::Active.as_str();
                out.runs.insert(
                    r.text("uuid")?,
                    (r.i64("id")?, r.i64("workspace_id")?, active),
                );
            }
        }
        let with_params: Vec<i64> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Log { run_id, batch, .. } if !batch.params.is_empty() => {
                    out.runs.get(run_id).map(|r| r.0)
                }
                _ => None,
            })
            .collect();
        if !with_params.is_empty() {
            let mut sql = String::from("SELECT run_id, key, value FROM params WHERE run_id IN ");
            push_values(Dialect::Sqlite, &mut sql, 1, with_params.len());
            let binds = with_params.into_iter().map(Bind::I64).collect();
            for r in fetch(tx, sql, binds).await? {
                out.params
                    .insert((r.i64("run_id")?, r.text("key")?), r.text("value")?);
            }
        }
        Ok(out)
    }
}

enum Decision {
    Log(DomainResult<()>),
    Created(String),
    CreateRejected(DomainError),
}

/// Rows the accepted jobs will write.
#[derive(Default)]
struct GroupPlan {
    runs: Vec<Vec<Bind>>,
    new_run_tags: Vec<(String, Vec<(String, String)>)>,
    tags: Vec<Vec<Bind>>,
    params: Vec<Vec<Bind>>,
    chunks: Vec<Vec<Bind>>,
    latest: Vec<Vec<Bind>>,
    /// params accepted earlier in this group, so two jobs cannot set one param differently
    pending_params: HashMap<(i64, String), String>,
    /// runs created earlier in this group (uuid → workspace), valid as parents
    created: HashMap<String, i64>,
}

impl GroupPlan {
    fn decide(&mut self, job: &Job, l: &Lookups) -> Decision {
        match job {
            Job::CreateRun { ws, run, .. } => match self.create(*ws, run, l) {
                Ok(()) => Decision::Created(run.uuid.clone()),
                Err(e) => Decision::CreateRejected(e),
            },
            Job::Log {
                ws, run_id, batch, ..
            } => Decision::Log(self.log(*ws, run_id, batch, l)),
        }
    }

    fn create(&mut self, ws: i64, run: &PreparedRun, l: &Lookups) -> DomainResult<()> {
        let Some(&(exp_key, active)) = l.experiments.get(&(ws, run.experiment_id)) else {
            return Err(DomainError::NotFound(format!(
                "experiment '{}' does not exist",
                run.experiment_id
            )));
        };
        if !active {
            return Err(DomainError::InvalidState(format!(
                "experiment '{}' is deleted: restore it before creating runs",
                run.experiment_id
            )));
        }
        if let Some(parent) = &run.parent {
            let known = l.runs.get(parent).is_some_and(|r| r.1 == ws)
                || self.created.get(parent) == Some(&ws);
            if !known {
                return Err(DomainError::NotFound(format!(
                    "parent run '{parent}' does not exist"
                )));
            }
        }
        self.runs.push(vec![
            Bind::Text(run.uuid.clone()),
            Bind::I64(ws),
            Bind::I64(exp_key),
            Bind::Text(run.name.clone()),
            Bind::Text(run.user_id.clone()),
            Bind::Text(run.status.as_str().into()),
            Bind::I64(run.start_time),
            run.parent.clone().map_or(Bind::NullText, Bind::Text),
            Bind::Text(LifecycleStage::Active.as_str().into()),
        ]);
        self.new_run_tags.push((
            run.uuid.clone(),
            run.tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ));
        self.created.insert(run.uuid.clone(), ws);
        Ok(())
    }

    fn log(&mut self, ws: i64, run_id: &str, batch: &LogBatch, l: &Lookups) -> DomainResult<()> {
        let Some(&(key, run_ws, active)) = l.runs.get(run_id).filter(|r| r.1 == ws) else {
            return Err(DomainError::NotFound(format!(
                "run '{run_id}' does not exist"
            )));
        };
        debug_assert_eq!(run_ws, ws);
        if !active {
            return Err(DomainError::InvalidState(format!(
                "run '{run_id}' must be active to log to it; it is deleted"
            )));
        }
        // every param is checked before anything of this job is planned: all or nothing
        let mut new_params = Vec::new();
        for (k, v) in &batch.params {
            let id = (key, k.clone());
            match self.pending_params.get(&id).or(l.params.get(&id)) {
                Some(old) if old != v => {
                    return Err(DomainError::invalid(format!(
                        "param '{k}' of run '{run_id}' was already logged with value '{old}'; params are write-once and cannot change to '{v}'"
                    )));
                }
                Some(_) => {}
                None => new_params.push((id, v.clone())),
            }
        }
        for ((run_key, k), v) in new_params {
            self.params.push(vec![
                Bind::I64(run_key),
                Bind::Text(k.clone()),
                Bind::Text(v.clone()),
            ]);
            self.pending_params.insert((run_key, k), v);
        }
        for (k, v) in &batch.tags {
            self.tags.push(vec![
                Bind::I64(key),
                Bind::Text(k.clone()),
                Bind::Text(v.clone()),
            ]);
        }
        for (k, points) in batch.by_key() {
            self.chunks.push(vec![
                Bind::I64(key),
                Bind::Text(k.into()),
                Bind::I64(points.len() as i64),
                Bind::Bytes(encode_chunk(points.iter())),
            ]);
        }
        for (k, p) in batch.latest() {
            let (v, nan) = stored_value(p.value);
            self.latest.push(vec![
                Bind::I64(key),
                Bind::Text(k.into()),
                Bind::F64(v),
                Bind::I64(nan),
                Bind::I64(p.step),
                Bind::I64(p.timestamp),
            ]);
        }
        Ok(())
    }

    /// Writes every planned row; returns the keys of the new runs by uuid.
    async fn write(
        mut self,
        tx: &mut SqliteConnection,
    ) -> Result<HashMap<String, i64>, DomainError> {
        let d = Dialect::Sqlite;
        let mut keys = HashMap::new();
        let head = "INSERT INTO runs (uuid, workspace_id, experiment_id, name, user_id, status, start_time, \
                    parent_run_id, lifecycle_stage) VALUES ";
        for ins in inserts(
            d,
            head,
            " RETURNING id, uuid",
            9,
            std::mem::take(&mut self.runs),
        ) {
            for r in fetch(tx, ins.sql, ins.binds).await? {
                keys.insert(r.text("uuid")?, r.i64("id")?);
            }
        }
        for (uuid, tags) in std::mem::take(&mut self.new_run_tags) {
            let key = keys[&uuid];
            for (k, v) in tags {
                self.tags
                    .push(vec![Bind::I64(key), Bind::Text(k), Bind::Text(v)]);
            }
        }
        let statements = [
            inserts(
                d,
                "INSERT INTO tags (run_id, key, value) VALUES ",
                " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                3,
                self.tags,
            ),
            inserts(
                d,
                "INSERT INTO params (run_id, key, value) VALUES ",
                " ON CONFLICT (run_id, key) DO NOTHING",
                3,
                self.params,
            ),
            inserts(
                d,
                "INSERT INTO metric_chunks (run_id, key, points, data) VALUES ",
                "",
                4,
                self.chunks,
            ),
            inserts(d, LATEST_INSERT, LATEST_UPSERT, 6, self.latest),
        ];
        for ins in statements.into_iter().flatten() {
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(ins.sql)), &ins.binds)
                .execute(&mut *tx)
                .await?;
        }
        Ok(keys)
    }
}

/// Applies one job in its own transaction.
async fn commit_one(conn: &mut SqliteConnection, job: &Job) -> Outcome {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return failed(job, e.into()),
    };
    let o = apply(&mut tx, job).await;
    let ok = matches!(o, Outcome::Log(Ok(_)) | Outcome::CreateRun(Ok(_)));
    let end = if ok {
        tx.commit().await
    } else {
        tx.rollback().await
    };
    match end {
        Ok(()) => o,
        Err(e) => failed(job, e.into()),
    }
}

fn failed(job: &Job, e: DomainError) -> Outcome {
    match job {
        Job::Log { .. } => Outcome::Log(Err(e)),
        Job::CreateRun { .. } => Outcome::CreateRun(Err(e)),
    }
}
