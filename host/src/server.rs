//! `atrium serve`: open the store, make sure the default workspace exists, serve HTTP.

use std::io::Write;
use std::sync::Arc;

use crate::api::{AppState, router};
use crate::auth::Access;
use crate::auth::bootstrap::ensure_admin;
use crate::config::ServeConfig;
use crate::datastore::Datastores;
use crate::jobs::{Executor, ExecutorConfig};
use crate::plugins::SharedCache;
use crate::plugins::{Loader, PluginEngine};
use crate::service::{Service, builtins_to_compile, prepare_builtins};
use crate::store::{Store, StoreError};
use crate::workspace::DomainError;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory is unusable.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another server uses the (SQLite) data directory, or it cannot be locked.
    #[error(transparent)]
    Lock(#[from] crate::datadir_lock::LockError),
    /// The store failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Creating the default workspace failed.
    #[error("cannot prepare the default workspace: {0}")]
    Init(#[from] DomainError),
    /// The master key is missing, malformed, or not the one the secrets were sealed with.
    #[error("secret store: {0}")]
    Vault(#[from] crate::secrets::VaultError),
    /// The plugin runtime could not start (engine, built-in components).
    #[error("plugin runtime: {0}")]
    Plugins(String),
    /// The local compute target could not start (bad slot settings, job recovery).
    #[error("jobs: {0}")]
    Jobs(String),
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens everything the config names and returns the ready service.
pub async fn open(cfg: &ServeConfig) -> Result<Arc<Service>, ServeError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let store = match &cfg.database_url {
        Some(url) => Store::open_url(url, cfg.sqlite_sync).await?,
        None => Store::open_sqlite(&cfg.data_dir.join("atrium.db"), cfg.sqlite_sync).await?,
    }
    .with_replica(cfg.replica.clone());
    let vault = crate::secrets::Vault::open(&store, &cfg.master_key).await?;
    let engine = Arc::new(PluginEngine::new().map_err(|e| ServeError::Plugins(e.to_string()))?);
    tracing::info!(pooled = engine.pooled(), "plugin engine ready");
    let shared = cfg
        .cache_dir
        .as_deref()
        .and_then(|d| match SharedCache::open(d) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no shared plugin cache");
                None
            }
        });
    let loader = Arc::new(
        Loader::new(engine, &cfg.data_dir.join("plugins"))
            .map_err(|e| ServeError::Plugins(e.to_string()))?
            .with_shared_cache(shared.clone()),
    );
    let to_compile = builtins_to_compile(&loader);
    if to_compile > 0 {
        tracing::info!(
            components = to_compile,
            cache = %shared.as_ref().map_or("off".to_string(), |c| c.dir().display().to_string()),
            "preparing built-in plugins: compiling them (first start only, a few seconds)"
        );
    }
    let started = std::time::Instant::now();
    let builtins = {
        let loader = loader.clone();
        tokio::task::spawn_blocking(move || prepare_builtins(&loader))
            .await
            .map_err(|e| ServeError::Plugins(e.to_string()))?
            .map_err(|e| ServeError::Plugins(e.to_string()))?
    };
    tracing::info!(
        compiled = to_compile,
        ms = started.elapsed().as_millis() as u64,
        "built-in plugins ready"
    );
    let svc = Service::new(
        store,
        Datastores::new(cfg.data_dir.clone(), loader),
        builtins,
        vault,
    );
    svc.ensure_default_workspace().await?;
    svc.register_new_builtins().await?;
    let cleaned = svc.clean_interrupted_uploads().await?;
    if cleaned > 0 {
        tracing::info!(cleaned, "removed leftovers of interrupted uploads");
    }
    let fetched = svc.sync_components(None).await?;
    if fetched > 0 {
        tracing::info!(fetched, "fetched components other replicas took");
    }
    let svc = Arc::new(svc);
    svc.follow_changes();
    Ok(svc)
}

/// Whether the metadata store is SQLite (embedded in the data directory, or a `sqlite://` URL):
/// then one server at a time may use the data directory.
pub fn uses_sqlite(cfg: &ServeConfig) -> bool {
    cfg.database_url
        .as_deref()
        .is_none_or(|u| u.starts_with("sqlite://"))
}

/// Locks the data directory when the metadata store is SQLite (`None` on PostgreSQL, where
/// hosts share the database by design).
pub fn lock_data_dir(
    cfg: &ServeConfig,
) -> Result<Option<crate::datadir_lock::DataDirLock>, ServeError> {
    if !uses_sqlite(cfg) {
        return Ok(None);
    }
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    Ok(Some(crate::datadir_lock::DataDirLock::acquire(
        &cfg.data_dir,
    )?))
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    // held until this function returns (or the process dies)
    let _lock = lock_data_dir(&cfg)?;
    let svc = open(&cfg).await?;
    let access = Arc::new(Access::new(svc.clone()));
    if cfg.reset_admin_token {
        let path = crate::auth::bootstrap::reset_admin_token(&access, &cfg.data_dir).await?;
        tracing::warn!(token_file = %path.display(), "wrote a new admin token (--reset-admin-token)");
        println!(
            "wrote a new admin token to {} (readable by you only)",
            path.display()
        );
    } else if let Some(path) = ensure_admin(&access, &cfg.data_dir).await? {
        tracing::info!(token_file = %path.display(), "created the admin user");
        println!(
            "created the admin user; its API token is in {} (readable by you only; the CLI on this machine finds it there)",
            path.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), postgres = cfg.database_url.is_some(), "atrium ready");
    // A line on stdout that scripts and tests wait for.
    println!("atrium listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let executor = Executor::new(
        svc.clone(),
        ExecutorConfig {
            slots: cfg.job_slots,
            threads_per_slot: cfg.threads_per_slot,
            base_url: format!("http://{addr}"),
            data_dir: cfg.data_dir.clone(),
            uv: cfg.uv.clone(),
        },
    )
    .await
    .map_err(|e| ServeError::Jobs(e.to_string()))?;
    executor.start();
    if cfg.scheduler {
        crate::pipelines::schedules::Scheduler::new(executor.clone()).start();
    } else {
        tracing::info!("schedules do not fire from this host (--no-scheduler)");
    }
    let serving = crate::serving::Serving::start(svc.clone())
        .await
        .map_err(ServeError::Init)?;
    let app = router(AppState {
        svc: svc.clone(),
        executor,
        serving,
        access,
        sessions: Default::default(),
        routes: Default::default(),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    svc.store.close().await;
    tracing::info!("atrium stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
