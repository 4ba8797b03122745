//! A deployment's pool of scorer instances: pre-instantiated and reused across requests, at
//! most one request per instance at a time, a bounded queue in front (429 beyond it), a
//! per-request deadline enforced by the epoch interrupt (504), and a crashed or interrupted
//! instance replaced in the background.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::plugins::scorer::{GuestFailure, ScoreError, ScorerComponent, ScorerInstance};
use crate::workspace::endpoint::DeploymentSettings;

/// Why a pooled request was not scored.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every instance is busy and the queue is full.
    #[error("deployment '{0}' is at its limit of concurrent requests; retry later")]
    Busy(String),
    /// The request ran past its timeout (queued or scoring).
    #[error("the request exceeded the timeout of {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The scorer answered with its own error.
    #[error("{0}")]
    Guest(GuestFailure),
    /// The scorer crashed (its instance is replaced).
    #[error("{0}")]
    Crashed(String),
    /// No instance could be started.
    #[error("{0}")]
    Unavailable(String),
}

/// The pool of one deployment version (a new model or scorer gets a new pool).
pub struct Pool {
    label: String,
    component: Arc<ScorerComponent>,
    settings: DeploymentSettings,
    idle: Mutex<Vec<ScorerInstance>>,
    /// One permit per instance: the right to run a request.
    slots: Arc<Semaphore>,
    /// One permit per request running or queued.
    admission: Arc<Semaphore>,
    /// Instances alive (idle or busy).
    alive: AtomicUsize,
}

impl Pool {
    /// A pool for `component` with no instance yet.
    pub fn new(
        label: String,
        component: Arc<ScorerComponent>,
        settings: DeploymentSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            label,
            slots: Arc::new(Semaphore::new(settings.instances as usize)),
            admission: Arc::new(Semaphore::new(settings.max_concurrent_requests as usize)),
            component,
            settings,
            idle: Mutex::new(Vec::new()),
            alive: AtomicUsize::new(0),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &DeploymentSettings {
        &self.settings
    }

    /// Instances alive now.
    pub fn instances(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    /// Starts every instance now (before traffic moves to the pool).
    pub async fn warm(self: &Arc<Self>) -> Result<(), PoolError> {
        let missing = (self.settings.instances as usize).saturating_sub(self.instances());
        let mut tasks = Vec::new();
        for _ in 0..missing {
            let c = self.component.clone();
            tasks.push(tokio::task::spawn_blocking(move || c.open()));
        }
        for t in tasks {
            let inst = t
                .await
                .map_err(|e| PoolError::Unavailable(format!("{}: {e}", self.label)))?
                .map_err(|e| PoolError::Unavailable(e.to_string()))?;
            self.alive.fetch_add(1, Ordering::Relaxed);
            self.idle.lock().expect("pool").push(inst);
        }
        Ok(())
    }

    /// Scores one request: waits for an instance (within the timeout), runs the scorer on a
    /// blocking thread under the epoch deadline, and puts the instance back.
    pub async fn score(
        self: &Arc<Self>,
        content_type: String,
        body: bytes::Bytes,
    ) -> Result<(String, Vec<u8>), PoolError> {
        let timeout = Duration::from_millis(self.settings.request_timeout_ms);
        let start = Instant::now();
        let Ok(_admitted) = self.admission.clone().try_acquire_owned() else {
            return Err(PoolError::Busy(self.label.clone()));
        };
        let slot = match tokio::time::timeout(timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => {
                return Err(PoolError::Unavailable(format!(
                    "{} is shutting down",
                    self.label
                )));
            }
            Err(_) => return Err(PoolError::Timeout(timeout)),
        };
        let left = timeout.saturating_sub(start.elapsed());
        let pooled = self.idle.lock().expect("pool").pop();
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut inst = match pooled {
                Some(i) => i,
                None => {
                    let i = pool
                        .component
                        .open()
                        .map_err(|e| PoolError::Unavailable(e.to_string()))?;
                    pool.alive.fetch_add(1, Ordering::Relaxed);
                    i
                }
            };
            match inst.score(&content_type, &body, left) {
                Ok(r) => {
                    pool.idle.lock().expect("pool").push(inst);
                    Ok(r)
                }
                Err(ScoreError::Guest(g)) => {
                    pool.idle.lock().expect("pool").push(inst);
                    Err(PoolError::Guest(g))
                }
                Err(e) => {
                    drop(inst);
                    pool.alive.fetch_sub(1, Ordering::Relaxed);
                    pool.replace();
                    Err(match e {
                        ScoreError::Timeout(_) => PoolError::Timeout(timeout),
                        other => PoolError::Crashed(other.to_string()),
                    })
                }
            }
        })
        .await
        .map_err(|e| PoolError::Crashed(format!("{}: {e}", self.label)))?
    }

    /// Starts a replacement instance in the background (after one crashed or was cut).
    fn replace(self: &Arc<Self>) {
        let pool = self.clone();
        std::thread::spawn(move || match pool.component.open() {
            Ok(inst) => {
                if pool.instances() < pool.settings.instances as usize {
                    pool.alive.fetch_add(1, Ordering::Relaxed);
                    pool.idle.lock().expect("pool").push(inst);
                }
            }
            Err(e) => {
                tracing::warn!(deployment = %pool.label, error = %e, "cannot replace a scorer instance; the next request retries");
            }
        });
    }
}
