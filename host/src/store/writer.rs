//! Group commit for SQLite: concurrent writes of the hot paths (log-batch, create-run, audit
//! records) queue up and one dedicated thread applies each queued group in one transaction, so
//! one commit (and one WAL fsync) acknowledges many requests.
//!
//! The thread owns its own connection (rusqlite): statements run in-thread with cached prepared
//! statements instead of one thread hand-off per statement, which is what dominated the cost of
//! small writes. It shares a write lock with the sqlx writer connection that serves the other,
//! rarer writes, so SQLite never sees two writers at once.
//!
//! Every job's domain errors (unknown run, changed param, deleted experiment) are decided in
//! memory from one read per lookup kind before anything is written, so a rejected job leaves the
//! shared transaction clean. A database error aborts the group; each job is then retried in a
//! transaction of its own, so the error is charged only to the job that caused it. A reply is sent
//! only after the commit that made the job durable. Audit records get no reply: they ride along
//! in the next group (the call they record has already been answered), and a flush, answered
//! after the commit of everything queued before it, is how a reader of the audit log sees them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{Connection, ToSql, TransactionBehavior};
use tokio::sync::oneshot;

use super::logging::{CHUNK_INSERT, LATEST_INSERT, LATEST_UPSERT};
use super::runs::PreparedRun;
use super::sql::{Bind, inserts, push_values};
use super::{Dialect, LogBatch, SqliteSync};
use crate::auth::NewAuditEntry;
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
    Audit(Box<NewAuditEntry>),
    /// Answered once everything queued before it is committed (or failed).
    Flush(oneshot::Sender<()>),
}

enum Decision {
    Log(DomainResult<()>),
    Created(String),
    CreateRejected(DomainError),
    Written,
}

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Bind::I64(v) => ToSqlOutput::Owned(SqlValue::Integer(*v)),
            Bind::F64(v) => ToSqlOutput::Owned(SqlValue::Real(*v)),
            Bind::Text(v) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(v.as_bytes())),
            Bind::Bytes(v) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(v)),
            Bind::NullInt | Bind::NullText => ToSqlOutput::Owned(SqlValue::Null),
        })
    }
}

fn db_err(e: rusqlite::Error) -> DomainError {
    tracing::error!(error = %e, "database error in the group-commit writer");
    DomainError::Internal(format!("database: {e}"))
}

/// The queue in front of the writer thread.
pub(crate) struct Writer {
    tx: std_mpsc::Sender<Job>,
}

fn stopped() -> DomainError {
    DomainError::Internal("the database writer has stopped".into())
}

impl Writer {
    /// Opens the writer's connection and starts its thread. `lock` is held while a group is
    /// applied; every other SQLite write takes it too.
    pub fn start(
        path: &Path,
        sync: SqliteSync,
        lock: Arc<tokio::sync::Mutex<()>>,
    ) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(
            None,
            "synchronous",
            if sync == SqliteSync::Full {
                "full"
            } else {
                "normal"
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        conn.pragma_update(None, "cache_size", -8192)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (tx, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, lock))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self { tx })
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
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues a new run and waits until it is committed; returns its key.
    pub async fn create_run(&self, ws: i64, run: PreparedRun) -> DomainResult<i64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::CreateRun { ws, run, reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues an audit record for the next group commit; returns at once.
    pub fn audit(&self, entry: NewAuditEntry) -> DomainResult<()> {
        self.tx
            .send(Job::Audit(Box::new(entry)))
            .map_err(|_| stopped())
    }

    /// Waits until everything queued before this call is committed (or has failed).
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(reply)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn run(mut conn: Connection, rx: std_mpsc::Receiver<Job>, lock: Arc<tokio::sync::Mutex<()>>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let _exclusive = lock.blocking_lock();
        match commit(&mut conn, &jobs) {
            Ok((decisions, keys)) => {
                for (j, d) in jobs.into_iter().zip(decisions) {
                    reply(j, d, &keys);
                }
            }
            Err(e) => {
                if jobs.len() > 1 {
                    tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying jobs one by one");
                }
                for j in jobs {
                    match commit(&mut conn, std::slice::from_ref(&j)) {
                        Ok((mut d, keys)) => reply(j, d.pop().expect("one decision"), &keys),
                        Err(e) => fail(j, e),
                    }
                }
            }
        }
    }
}

fn reply(job: Job, decision: Decision, keys: &HashMap<String, i64>) {
    match (job, decision) {
        (Job::Log { reply, .. }, Decision::Log(r)) => {
            let _ = reply.send(r);
        }
        (Job::CreateRun { reply, .. }, Decision::Created(uuid)) => {
            let key = keys
                .get(&uuid)
                .copied()
                .ok_or_else(|| DomainError::Internal(format!("run {uuid} was not inserted")));
            let _ = reply.send(key);
        }
        (Job::CreateRun { reply, .. }, Decision::CreateRejected(e)) => {
            let _ = reply.send(Err(e));
        }
        (Job::Audit(_), Decision::Written) => {}
        (Job::Flush(reply), Decision::Written) => {
            let _ = reply.send(());
        }
        _ => unreachable!("decision kind follows job kind"),
    }
}

fn fail(job: Job, e: DomainError) {
    match job {
        Job::Log { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Job::CreateRun { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Job::Audit(entry) => {
            tracing::error!(error = %e, action = entry.action.as_str(), "cannot write the audit record");
        }
        Job::Flush(reply) => {
            let _ = reply.send(());
        }
    }
}

/// Applies jobs in one transaction with one statement per lookup kind and per written table:
/// reads, then the domain checks in memory (job by job, in arrival order), then multi-row writes.
fn commit(
    conn: &mut Connection,
    jobs: &[Job],
) -> Result<(Vec<Decision>, HashMap<String, i64>), DomainError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let looked_up = Lookups::read(&tx, jobs)?;
    let mut plan = GroupPlan::default();
    let decisions: Vec<Decision> = jobs.iter().map(|j| plan.decide(j, &looked_up)).collect();
    let keys = plan.write(&tx)?;
    tx.commit().map_err(db_err)?;
    Ok((decisions, keys))
}

/// Runs a query and maps each row.
fn query<T>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    binds: &[Bind],
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, DomainError> {
    let mut stmt = tx.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(binds.iter()), f)
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db_err)
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

impl Lookups {
    fn read(tx: &rusqlite::Transaction<'_>, jobs: &[Job]) -> Result<Self, DomainError> {
        let active = LifecycleStage::Active.as_str();
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
                Job::Audit(_) | Job::Flush(_) => {}
            }
        }
        if !exps.is_empty() {
            let mut sql = String::from(
                "SELECT workspace_id, number, id, lifecycle_stage FROM experiments WHERE (workspace_id, number) IN (VALUES ",
            );
            push_values(Dialect::Sqlite, &mut sql, exps.len(), 2);
            sql.push(')');
            let binds: Vec<Bind> = exps
                .iter()
                .flat_map(|(w, n)| [Bind::I64(*w), Bind::I64(*n)])
                .collect();
            for (w, n, id, stage) in query(tx, &sql, &binds, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
            })? {
                out.experiments.insert((w, n), (id, stage == active));
            }
        }
        if !uuids.is_empty() {
            let mut sql = String::from(
                "SELECT uuid, id, workspace_id, lifecycle_stage FROM runs WHERE uuid IN ",
            );
            push_values(Dialect::Sqlite, &mut sql, 1, uuids.len());
            let binds: Vec<Bind> = uuids.into_iter().map(Bind::Text).collect();
            for (uuid, id, w, stage) in query(tx, &sql, &binds, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
            })? {
                out.runs.insert(uuid, (id, w, stage == active));
            }
        }
        let with_params: Vec<Bind> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Log { run_id, batch, .. } if !batch.params.is_empty() => {
                    out.runs.get(run_id).map(|r| Bind::I64(r.0))
                }
                _ => None,
            })
            .collect();
        if !with_params.is_empty() {
            let mut sql = String::from("SELECT run_id, key, value FROM params WHERE run_id IN ");
            push_values(Dialect::Sqlite, &mut sql, 1, with_params.len());
            for (run, k, v) in query(tx, &sql, &with_params, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })? {
                out.params.insert((run, k), v);
            }
        }
        Ok(out)
    }
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
    audit: Vec<Vec<Bind>>,
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
            Job::Audit(e) => {
                self.audit.push(vec![
                    Bind::I64(e.at),
                    e.workspace.clone().map_or(Bind::NullText, Bind::Text),
                    Bind::Text(e.actor.clone()),
                    e.token_id.clone().map_or(Bind::NullText, Bind::Text),
                    Bind::Text(e.action.clone()),
                    Bind::Text(e.object.clone()),
                    Bind::I64(e.status as i64),
                    Bind::Text(e.result.to_string()),
                ]);
                Decision::Written
            }
            Job::Flush(_) => Decision::Written,
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
        if let Some(parent) = run.parent.as_ref().filter(|_| run.check_parent) {
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
        let Some(&(key, _, active)) = l.runs.get(run_id).filter(|r| r.1 == ws) else {
            return Err(crate::workspace::validate::run_not_found(run_id));
        };
        if !active {
            return Err(crate::workspace::validate::run_not_active(run_id));
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
        self.chunks.extend(batch.chunk_rows(key));
        self.latest.extend(batch.latest_rows(key));
        Ok(())
    }

    /// Writes every planned row; returns the keys of the new runs by uuid.
    fn write(
        mut self,
        tx: &rusqlite::Transaction<'_>,
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
            for (id, uuid) in query(tx, &ins.sql, &ins.binds, |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })? {
                keys.insert(uuid, id);
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
            inserts(d, CHUNK_INSERT, "", 4, self.chunks),
            inserts(d, LATEST_INSERT, LATEST_UPSERT, 6, self.latest),
            inserts(
                d,
                "INSERT INTO audit_log (at, workspace, actor, token_id, action, object, status, result) VALUES ",
                "",
                8,
                self.audit,
            ),
        ];
        for ins in statements.into_iter().flatten() {
            let mut stmt = tx.prepare_cached(&ins.sql).map_err(db_err)?;
            stmt.execute(rusqlite::params_from_iter(ins.binds.iter()))
                .map_err(db_err)?;
        }
        Ok(keys)
    }
}
