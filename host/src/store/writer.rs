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

use super::LogBatch;
use super::runs::PreparedRun;
use crate::workspace::{DomainError, DomainResult};

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

impl Outcome {
    fn is_database_error(&self) -> bool {
        matches!(
            self,
            Outcome::Log(Err(DomainError::Internal(_)))
                | Outcome::CreateRun(Err(DomainError::Internal(_)))
        )
    }
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

/// Applies all jobs in one transaction; a database error anywhere aborts it.
async fn commit_group(
    conn: &mut SqliteConnection,
    jobs: &[Job],
) -> Result<Vec<Outcome>, DomainError> {
    let mut tx = conn.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for j in jobs {
        let o = apply(&mut tx, j).await;
        if o.is_database_error() {
            return Err(match o {
                Outcome::Log(Err(e)) | Outcome::CreateRun(Err(e)) => e,
                _ => unreachable!(),
            });
        }
        outcomes.push(o);
    }
    tx.commit().await?;
    Ok(outcomes)
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
