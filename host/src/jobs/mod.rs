//! Jobs and the local compute targets: persistent jobs, an executor with a fixed number of
//! slots and threads per slot, train jobs on Candle, command jobs as subprocesses, logs,
//! cancellation and recovery after a restart; jobs in worker processes (`remote`), and the
//! context a job kind runs with wherever it runs (`ctx`); jobs on compute targets (`dispatch`);
//! pipeline runs, whose steps are child jobs (`pipeline`).

mod batch;
mod command;
pub mod ctx;
mod dispatch;
mod executor;
mod logs;
pub mod pipeline;
pub mod remote;
pub mod spec;
pub mod sweep;
mod train;
pub mod worker;
pub use train::device_for;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub(crate) use executor::unpack_snapshot;
pub use executor::{Code, Executor, ExecutorConfig, Link};
pub use logs::JobLogs;
pub use spec::{CommandSpec, JobKind, JobSpec, SnapshotFile, SpecFormat};
pub use train::{Prepared, prepare, split_rows};

use crate::sweep::SweepState;

/// Live state of a running job, shared with the API.
pub struct Running {
    /// Set by a cancel request; checked between batches / while a command runs.
    pub cancel: AtomicBool,
    /// Current epoch (train jobs).
    pub epoch: AtomicU64,
    /// Total epochs.
    pub epochs: AtomicU64,
    /// Current batch within the epoch.
    pub batch: AtomicU64,
    /// Batches per epoch.
    pub batches: AtomicU64,
    /// When the attempt started.
    pub started: Instant,
    /// The live trials of a sweep or AutoML job.
    pub sweep: OnceLock<Arc<Mutex<SweepState>>>,
    /// Set when this replica lost the job's lease (another took it over): the attempt stops
    /// without recording anything.
    pub lost: AtomicBool,
}

impl Running {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            cancel: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            epochs: AtomicU64::new(0),
            batch: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            started: Instant::now(),
            sweep: OnceLock::new(),
            lost: AtomicBool::new(false),
        })
    }

    /// Progress as JSON: epoch, batch, fraction done, elapsed and estimated remaining seconds.
    pub fn progress(&self) -> serde_json::Value {
        let (e, es, b, bs) = (
            self.epoch.load(Ordering::Relaxed),
            self.epochs.load(Ordering::Relaxed),
            self.batch.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
        );
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = if es > 0 && bs > 0 {
            ((e.saturating_sub(1)) as f64 + b as f64 / bs as f64) / es as f64
        } else {
            0.0
        };
        let eta = (done > 0.0).then(|| elapsed * (1.0 - done) / done);
        serde_json::json!({
            "epoch": e, "epochs": es, "batch": b, "batches": bs,
            "fraction": done, "elapsed_seconds": elapsed, "eta_seconds": eta,
        })
    }
}
