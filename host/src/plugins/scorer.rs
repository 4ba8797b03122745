//! Scoring components: the host side of the `tensors` and `models` imports, and a live
//! [`ScorerInstance`] (one store holding one open `session`) that deployments pool and reuse.
//!
//! A scorer's heavy math runs natively: the guest moves bounded chunks of `f32` into host
//! tensors and calls `models.predict`, which runs the deployment's model through a
//! [`Predictor`] (Candle, on the host). Instances are blocking: call them off async threads.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::{Resource, ResourceAny};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::engine::PluginEngine;
use super::loader::{KindPre, Loader};
use super::state::{PluginState, StoreSpec};
use super::v0_1::GuestError;
use super::v0_1::scorer::ScorerPlugin;
use super::v0_1::scorer::atrium::plugin::{models, tensors};
use super::{Kind, RuntimeError, call_error};

/// Most elements one tensor crossing the boundary may hold (the WIT's 1 Mi per call).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 20;

/// Most tensors a store may hold at once.
const MAX_LIVE_TENSORS: usize = 64;

/// How many trailing bytes of a scorer's stderr are kept to explain a crash.
const STDERR_TAIL: usize = 4096;

/// A model a scorer may run: raw rows in, predictions out.
pub trait Predictor: Send + Sync {
    /// The registered model name (what `models.load` also accepts besides `default`).
    fn name(&self) -> &str;
    /// Runs the model on `rows × cols` raw feature values; returns the output shape and data.
    fn predict(
        &self,
        rows: usize,
        cols: usize,
        data: &[f32],
    ) -> Result<(Vec<u64>, Vec<f32>), String>;
}

/// Host data behind a guest's `tensor` handle.
pub struct TensorData {
    shape: Vec<u64>,
    data: Vec<f32>,
}

/// Host data behind a guest's `model` handle.
pub struct ModelHandle(Arc<dyn Predictor>);

/// What a scorer store needs beyond the common plugin state.
#[derive(Clone)]
pub struct ScoringCtx {
    /// The deployment's model.
    pub model: Arc<dyn Predictor>,
    /// Live tensors (bounded so a guest cannot pile them up).
    pub(crate) live: usize,
}

/// The trailing bytes of a guest's stdout/stderr: a crashing Rust guest prints its panic
/// message there just before it traps.
#[derive(Clone, Default)]
pub struct TailPipe(Arc<Mutex<VecDeque<u8>>>);

impl TailPipe {
    fn push(&self, bytes: &[u8]) {
        let mut q = self.0.lock().expect("tail pipe");
        q.extend(bytes);
        let excess = q.len().saturating_sub(STDERR_TAIL);
        q.drain(..excess);
    }

    /// The last non-empty line written, emptying the buffer.
    pub fn take_last_line(&self) -> Option<String> {
        let bytes: Vec<u8> = self.0.lock().expect("tail pipe").drain(..).collect();
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("note:"))
            .map(str::to_string)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TailPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for TailPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for TailPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

fn invalid(m: impl Into<String>) -> GuestError {
    GuestError::InvalidArgument(m.into())
}

impl tensors::Host for PluginState {
    fn from_data(
        &mut self,
        shape: Vec<u64>,
        data: Vec<f32>,
    ) -> wasmtime::Result<Result<Resource<TensorData>, GuestError>> {
        self.charge()?;
        let n = shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
        if n != Some(data.len() as u64) {
            return Ok(Err(invalid(format!(
                "shape {shape:?} does not hold {} elements",
                data.len()
            ))));
        }
        if data.len() > MAX_TENSOR_ELEMENTS {
            return Ok(Err(GuestError::ResourceExhausted(format!(
                "a tensor holds at most {MAX_TENSOR_ELEMENTS} elements"
            ))));
        }
        self.new_tensor(TensorData { shape, data })
    }
}

impl tensors::HostTensor for PluginState {
    fn shape(&mut self, t: Resource<TensorData>) -> wasmtime::Result<Vec<u64>> {
        self.charge()?;
        Ok(self.table().get(&t)?.shape.clone())
    }

    fn read(
        &mut self,
        t: Resource<TensorData>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<f32>, GuestError>> {
        self.charge()?;
        let t = self.table().get(&t)?;
        let len = (len as usize).min(MAX_TENSOR_ELEMENTS);
        let start = (offset as usize).min(t.data.len());
        let end = start.saturating_add(len).min(t.data.len());
        Ok(Ok(t.data[start..end].to_vec()))
    }

    fn drop(&mut self, t: Resource<TensorData>) -> wasmtime::Result<()> {
        self.table().delete(t)?;
        if let Some(s) = self.scoring_mut() {
            s.live = s.live.saturating_sub(1);
        }
        Ok(())
    }
}

impl models::Host for PluginState {
    fn load(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<ModelHandle>, GuestError>> {
        self.charge()?;
        let Some(s) = self.scoring_mut() else {
            return Ok(Err(GuestError::Unsupported(
                "no model is served outside a deployment".into(),
            )));
        };
        if !(name.is_empty() || name == "default" || name == s.model.name()) {
            let served = s.model.name().to_string();
            return Ok(Err(GuestError::NotFound(format!(
                "model '{name}' is not granted to this deployment (it serves '{served}'; load \"default\")"
            ))));
        }
        let model = s.model.clone();
        Ok(Ok(self.table().push(ModelHandle(model))?))
    }
}

impl models::HostModel for PluginState {
    fn predict(
        &mut self,
        m: Resource<ModelHandle>,
        input: Resource<TensorData>,
    ) -> wasmtime::Result<Result<Resource<TensorData>, GuestError>> {
        self.charge()?;
        let model = self.table().get(&m)?.0.clone();
        let t = self.table().get(&input)?;
        let (rows, cols) = match t.shape.as_slice() {
            [r, c] => (*r as usize, *c as usize),
            [c] => (1, *c as usize),
            other => {
                return Ok(Err(invalid(format!(
                    "predict takes a [rows, features] tensor, got shape {other:?}"
                ))));
            }
        };
        match model.predict(rows, cols, &t.data) {
            Ok((shape, data)) => self.new_tensor(TensorData { shape, data }),
            Err(m) => Ok(Err(invalid(m))),
        }
    }

    fn drop(&mut self, m: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.table().delete(m)?;
        Ok(())
    }
}

impl PluginState {
    fn new_tensor(
        &mut self,
        t: TensorData,
    ) -> wasmtime::Result<Result<Resource<TensorData>, GuestError>> {
        if let Some(s) = self.scoring_mut() {
            if s.live >= MAX_LIVE_TENSORS {
                return Ok(Err(GuestError::ResourceExhausted(format!(
                    "at most {MAX_LIVE_TENSORS} tensors may be alive at once; drop the ones you no longer need"
                ))));
            }
            s.live += 1;
        }
        Ok(Ok(self.table().push(t)?))
    }
}

/// How a scorer component's stores are built for one deployment.
#[derive(Clone)]
pub struct ScorerComponent {
    /// The loader holding the component.
    pub loader: Arc<Loader>,
    /// sha256 of the component.
    pub digest: String,
    /// Store settings (memory cap, log tags, operator config).
    pub spec: StoreSpec,
    /// Config keys the host adds for the deployment (`model.name`, `model.signature`, ...).
    pub config: Arc<BTreeMap<String, String>>,
    /// The model `models.load` serves.
    pub model: Arc<dyn Predictor>,
    /// The deployment's scorer config, given to `session.open`.
    pub session_config: String,
    /// Deadline of `open`.
    pub open_deadline: Duration,
    /// `name@version`, for messages.
    pub label: String,
}

/// Why a scoring call failed.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The scorer answered with its own error (the instance stays usable).
    #[error("{0}")]
    Guest(GuestFailure),
    /// The call ran past its deadline (the instance is gone).
    #[error("the scorer exceeded the request timeout of {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The scorer trapped, ran out of memory or broke the contract (the instance is gone).
    #[error("{0}")]
    Crashed(String),
}

/// A scorer's own error, by kind.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestFailure {
    /// `invalid-argument`, `not-found`, `access-denied`, `resource-exhausted`, `unsupported`
    /// or `internal`.
    pub kind: &'static str,
    /// The scorer's message.
    pub message: String,
}

impl std::fmt::Display for GuestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn failure(e: GuestError) -> GuestFailure {
    let (kind, message) = match e {
        GuestError::InvalidArgument(m) => ("invalid-argument", m),
        GuestError::NotFound(m) => ("not-found", m),
        GuestError::AccessDenied(m) => ("access-denied", m),
        GuestError::ResourceExhausted(m) => ("resource-exhausted", m),
        GuestError::Unsupported(m) => ("unsupported", m),
        GuestError::Internal(m) => ("internal", m),
    };
    GuestFailure { kind, message }
}

/// One live scorer: a store with an open session.
pub struct ScorerInstance {
    store: Store<PluginState>,
    bindings: ScorerPlugin,
    session: ResourceAny,
    stderr: TailPipe,
    memory: u64,
    label: Arc<str>,
}

impl ScorerComponent {
    /// Instantiates the component and opens a session with the deployment's scorer config.
    pub fn open(&self) -> Result<ScorerInstance, RuntimeError> {
        let stderr = TailPipe::default();
        let mut state = PluginState::new_with_output(&self.spec, stderr.clone())?;
        state.set_scoring(
            ScoringCtx {
                model: self.model.clone(),
                live: 0,
            },
            self.config.clone(),
        );
        let mut store = state.into_store(self.loader.engine().engine());
        store.set_epoch_deadline(PluginEngine::ticks(self.open_deadline));
        let named = |e: RuntimeError| match e {
            RuntimeError::Internal(m) => RuntimeError::Internal(m),
            other => RuntimeError::Guest(format!("{}: {other}", self.label)),
        };
        let pre = self.loader.pre(&self.digest, Kind::Scorer)?;
        let KindPre::Scorer(pre) = pre.as_ref() else {
            return Err(RuntimeError::Internal(format!(
                "{} is not a scorer component",
                self.label
            )));
        };
        let crash = |store: &Store<PluginState>, e: wasmtime::Error| {
            let mut err = call_error(store.data(), e, self.open_deadline, self.spec.memory);
            if let (RuntimeError::Trap(m), Some(line)) = (&err, stderr.take_last_line()) {
                err = RuntimeError::Trap(format!("{line} ({m})"));
            }
            named(err)
        };
        let bindings = pre.instantiate(&mut store).map_err(|e| crash(&store, e))?;
        let session = bindings
            .atrium_plugin_scorer()
            .session()
            .call_open(&mut store, &self.session_config)
            .map_err(|e| crash(&store, e))?
            .map_err(|e| {
                RuntimeError::Guest(format!("{} refused to open: {}", self.label, failure(e)))
            })?;
        Ok(ScorerInstance {
            store,
            bindings,
            session,
            stderr,
            memory: self.spec.memory,
            label: self.label.clone().into(),
        })
    }
}

impl ScorerInstance {
    /// Scores one request within `deadline`; returns the response content type and body.
    pub fn score(
        &mut self,
        content_type: &str,
        body: &[u8],
        deadline: Duration,
    ) -> Result<(String, Vec<u8>), ScoreError> {
        self.store.set_epoch_deadline(PluginEngine::ticks(deadline));
        self.store.data_mut().refill_hostcalls();
        let out = self.bindings.atrium_plugin_scorer().session().call_score(
            &mut self.store,
            self.session,
            content_type,
            body,
        );
        match out {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(ScoreError::Guest(failure(e))),
            Err(e) => match call_error(self.store.data(), e, deadline, self.memory) {
                RuntimeError::Deadline(d) => Err(ScoreError::Timeout(d)),
                RuntimeError::Trap(m) => {
                    Err(ScoreError::Crashed(match self.stderr.take_last_line() {
                        Some(line) => format!("{} crashed: {line} ({m})", self.label),
                        None => format!("{} crashed: {m}", self.label),
                    }))
                }
                other => Err(ScoreError::Crashed(format!("{}: {other}", self.label))),
            },
        }
    }
}
