//! The metadata store: sqlx repositories over SQLite (embedded default) or PostgreSQL.
//!
//! Both engines run the same SQL (`$N` placeholders work in both); the few dialect
//! differences live in [`Dialect`]. Each repository function is written once and expanded
//! for both pool types by [`with_db!`], so there is no `Any` driver conversion on hot paths.

mod access_epoch;
pub use access_epoch::Change;
mod artifacts;
mod auth;
mod bulk;
mod components;
mod compute;
mod datasets;
mod endpoints;
mod environments;
mod experiments;
mod jobs;
mod logged_models;
mod logging;
mod migrations;
mod pipelines;
mod registry;
mod rows;
mod run_io;
mod runs;
mod schedules;
mod search;
mod secrets;
mod sql;
mod sweeps;
mod workspaces;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use artifacts::{ArtifactOwner, ArtifactRow};
pub use auth::{TokenRecord, TokenRow};
pub use components::ComponentRow;
pub use compute::{ComputeRow, RemoteAttempt};
pub use datasets::DatasetRow;
pub use endpoints::DeploymentUse;
pub use environments::EnvironmentRow;
pub use jobs::{JobRow, JobState, LEASE_MS, LEASE_RENEW_MS, NewJob};
pub use logged_models::NewLoggedModel;
pub use logging::{BatchMark, LogBatch};
pub use pipelines::{CacheRow, PipelineRow, StepRow};
pub use registry::{ModelUpdate, NewModelVersion, VersionUpdate};
pub use run_io::DatasetSummary;
pub use runs::{NewRun, RunUpdate, generate_run_name};
pub use schedules::{ScheduleRow, TickRow};
pub use search::{ExperimentQuery, RunQuery};
pub use secrets::VaultMetaRow;
pub use workspaces::Datastore;

use crate::workspace::DomainError;

/// Errors while opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one we support.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot open database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The group-commit writer's connection could not be opened.
    #[error("cannot open the database writer: {0}")]
    Writer(#[source] rusqlite::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DomainError {
    fn from(e: sqlx::Error) -> Self {
        // PostgreSQL refuses a NUL character in text (22021): the caller's input, not a fault
        if let Some(d) = e.as_database_error()
            && d.code().as_deref() == Some("22021")
        {
            return DomainError::invalid(
                "a name or value contains a NUL character (\\u0000), which cannot be stored",
            );
        }
        if is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return DomainError::Unavailable(format!(
                "the database is unavailable ({e}); nothing was written, retry shortly"
            ));
        }
        tracing::error!(error = %e, "database error");
        DomainError::Internal(format!("database: {e}"))
    }
}

/// Whether a database error means the server cannot be reached or is going away (connection
/// lost or refused, pool exhausted while reconnecting, PostgreSQL shutting down or starting up)
/// rather than a fault of the statement: the request fails whole, and may be retried.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // 08: connection exceptions; 57P01-03: admin shutdown, crash shutdown, cannot
            // connect now
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// How SQLite commits: FULL fsyncs the WAL on every commit so an acknowledged write survives
/// even a power loss; NORMAL survives process crashes (kill -9) but not an OS crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync on every commit (default).
    #[default]
    Full,
    /// fsync only at checkpoints.
    Normal,
}

/// SQL differences between the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

pub(crate) enum Db {
    Sqlite {
        /// The connection for writes other than the group-committed hot paths.
        write: SqlitePool,
        read: SqlitePool,
        writer: writer::Writer,
        /// Held by every SQLite write (both connections), so SQLite never sees two writers.
        write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    },
    Postgres(PgPool),
}

/// Expands a block once per engine with `$p` bound to the right pool.
/// `write` uses SQLite's writer connection under the write lock; `read` its reader pool.
macro_rules! with_db {
    ($store:expr, write, |$p:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite {
                write: $p,
                write_lock,
                ..
            } => {
                let _exclusive = write_lock.lock().await;
                $body
            }
            $crate::store::Db::Postgres($p) => $body,
        }
    };
    ($store:expr, read, |$p:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { read: $p, .. } => $body,
            $crate::store::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_db;

/// A replica name unique to this process, until [`Store::with_replica`] names it.
fn default_replica() -> String {
    format!("host-{}", uuid::Uuid::new_v4().simple())
}

/// The metadata store.
pub struct Store {
    pub(crate) db: Db,
    /// (workspace, experiment number) → the experiment's own artifact location, if it has one.
    /// Locations never change once an experiment exists, so entries never go stale.
    locations: std::sync::Mutex<std::collections::HashMap<(i64, i64), Option<String>>>,
    /// Moves on every change of users, tokens, roles and workspaces (see [`access_epoch`]).
    access: std::sync::Arc<access_epoch::AccessEpoch>,
    /// This host's name among replicas: the owner recorded on the jobs it claims.
    replica: String,
    /// Changes other replicas announced (PostgreSQL; nothing is sent on SQLite).
    changes: tokio::sync::broadcast::Sender<access_epoch::Change>,
}

impl Store {
    /// Names this host among replicas sharing the database (the owner of its job leases).
    pub fn with_replica(mut self, name: impl Into<String>) -> Self {
        self.replica = name.into();
        self
    }

    /// This host's name among replicas.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Opens (creating if needed) the embedded SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path, sync: SqliteSync) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("cache_size", "-8192")
            .pragma("temp_store", "memory");
        // One writer connection serializes writes inside the process (no SQLITE_BUSY between
        // our own transactions); readers run in parallel thanks to WAL.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(base.clone())
            .await
            .map_err(StoreError::Connect)?;
        migrations::sqlite().run(&write).await?;
        let readers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8) as u32;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(base.read_only(true))
            .await
            .map_err(StoreError::Connect)?;
        let write_lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let writer =
            writer::Writer::start(path, sync, write_lock.clone()).map_err(StoreError::Writer)?;
        Ok(Self {
            db: Db::Sqlite {
                write,
                read,
                writer,
                write_lock,
            },
            locations: Default::default(),
            // one process owns an embedded database: every change goes through this store
            access: access_epoch::AccessEpoch::new(true),
            replica: default_replica(),
            changes: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Connects to PostgreSQL and migrates the database.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(StoreError::Connect)?;
        migrations::postgres().run(&pool).await?;
        // replicas sharing the database announce their access changes; until this host listens
        // (a moment after startup, or after a lost connection) nothing is served from a cache
        let access = access_epoch::AccessEpoch::new(false);
        let changes = tokio::sync::broadcast::channel(256).0;
        tokio::spawn(access_epoch::listen(
            pool.clone(),
            access.clone(),
            changes.clone(),
        ));
        Ok(Self {
            db: Db::Postgres(pool),
            locations: Default::default(),
            access,
            replica: default_replica(),
            changes,
        })
    }

    /// Opens the store named by a database URL (`sqlite://path` or `postgres://...`).
    pub async fn open_url(url: &str, sync: SqliteSync) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url).await
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::open_sqlite(Path::new(path), sync).await
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    /// The group-commit writer (SQLite only).
    pub(crate) fn writer(&self) -> Result<&writer::Writer, DomainError> {
        match &self.db {
            Db::Sqlite { writer, .. } => Ok(writer),
            Db::Postgres(_) => Err(DomainError::Internal(
                "no group-commit writer on PostgreSQL".into(),
            )),
        }
    }

    /// Which SQL dialect the store speaks.
    pub fn dialect(&self) -> Dialect {
        match self.db {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The access epoch: it moves on every change of users, tokens, role assignments and
    /// workspaces, on this host or (PostgreSQL) another replica. `None` while changes made
    /// elsewhere could go unheard: then nothing derived from them may be reused.
    pub fn access_epoch(&self) -> Option<u64> {
        self.access.current()
    }

    /// Records a committed change of users, tokens, roles or workspaces: moves this host's
    /// access epoch and, on PostgreSQL, announces the change to the other replicas.
    pub(crate) async fn access_changed(&self) {
        self.access.bump();
        if let Db::Postgres(p) = &self.db
            && let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(access_epoch::CHANNEL)
                .execute(p)
                .await
        {
            tracing::warn!(error = %e, "cannot announce an access change to other replicas; their caches expire it");
        }
    }

    /// Changes announced by any replica (this one included) from now on; a lagging receiver
    /// should treat a lag as [`Change::All`].
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Announces a committed change to every replica (PostgreSQL); on SQLite this host is the
    /// only one and follows its own changes directly.
    pub(crate) async fn announce(&self, change: Change) {
        if let Db::Postgres(p) = &self.db
            && let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(access_epoch::CHANGES)
                .bind(change.payload())
                .execute(p)
                .await
        {
            tracing::warn!(error = %e, "cannot announce a change to other replicas");
        }
    }

    /// Closes all connections (checkpointing SQLite's WAL), after the group-commit writer has
    /// written everything queued (audit records included).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite {
                write,
                read,
                writer,
                ..
            } => {
                writer.flush().await;
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
