//! A sampler study: what every sampler shares (the space, the goal, the seed, the options, the
//! RNG, the trials with their ids, parameters and outcomes, snapshots), around a [`Strategy`]
//! that only picks the next point.
//!
//! Ids are 1, 2, 3, ... in suggestion order and never reused. A snapshot (a JSON header and a
//! binary block of trials, every f64 bit for bit) holds the whole study, so [`Engine::restore`]
//! alone continues it exactly: the next suggestions equal those the original would have made.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::options::{OptValue, Options};
use crate::rng::Rng;
use crate::space::{DimSpec, Space, Value};
use crate::{Error, invalid};

/// Most trials one `suggest` call returns (callers may get fewer than they ask anyway).
pub const MAX_SUGGEST: u32 = 10_000;

/// Snapshot format version.
const FORMAT: u32 = 1;

/// The first bytes of every sampler snapshot.
pub const MAGIC: &[u8; 8] = b"ATRSTDY\x01";

/// The snapshot header: everything but the trials.
#[derive(Serialize)]
struct HeaderRef<'a, S> {
    format: u32,
    sampler: &'a str,
    space: &'a Space,
    goal_maximize: bool,
    seed: u64,
    options: &'a [(String, OptValue)],
    rng: &'a Rng,
    strategy: &'a S,
}

#[derive(Deserialize)]
struct HeaderOwned<S> {
    format: u32,
    sampler: String,
    space: Space,
    goal_maximize: bool,
    seed: u64,
    options: Vec<(String, OptValue)>,
    rng: Rng,
    strategy: S,
}

/// Reads a snapshot's binary part.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(())?;
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, ()> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ()> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, ()> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f64(&mut self) -> Result<f64, ()> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// What became of a trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Suggested, not observed yet.
    Pending,
    /// Observed with this objective value (finite; infinities are clamped to ±f64::MAX).
    Complete(f64),
    /// Failed (or observed without a value, or with NaN).
    Failed,
}

/// A suggested trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub id: u64,
    /// One value per dimension, in the space's order.
    pub params: Vec<Value>,
    pub outcome: Outcome,
}

/// What a strategy sees when it picks the next point.
pub struct Ctx<'a> {
    pub space: &'a Space,
    pub goal_maximize: bool,
    pub seed: u64,
    /// All trials so far (ids 1..=len); the next trial's id is `trials.len() + 1`.
    pub trials: &'a [Trial],
    /// The study's RNG (part of the snapshot).
    pub rng: &'a mut Rng,
}

impl Ctx<'_> {
    /// The id the next point will get.
    pub fn next_id(&self) -> u64 {
        self.trials.len() as u64 + 1
    }
}

/// A search strategy. Its fields are serialized into the snapshot (mark caches
/// `#[serde(skip)]`: they must be rebuildable from the trials).
pub trait Strategy: Serialize + DeserializeOwned + Sized {
    /// The sampler's name, used in messages and checked on restore.
    const NAME: &'static str;
    /// The option names it accepts.
    const OPTIONS: &'static [&'static str];

    /// Checks the space (e.g. `Unsupported` for kinds it cannot search) and reads the options.
    fn new(space: &Space, goal_maximize: bool, seed: u64, options: &Options)
    -> Result<Self, Error>;

    /// The next point (one value per dimension), or `None` when there is nothing more to try.
    fn next(&mut self, ctx: Ctx<'_>) -> Option<Vec<Value>>;

    /// Called after trial `trials[index]` changed from `previous` to its current outcome.
    fn observed(
        &mut self,
        _space: &Space,
        _goal_maximize: bool,
        _trials: &[Trial],
        _index: usize,
        _previous: &Outcome,
    ) {
    }
}

/// A study driven by strategy `S`.
#[derive(Clone, Debug)]
pub struct Engine<S> {
    format: u32,
    sampler: String,
    space: Space,
    goal_maximize: bool,
    seed: u64,
    options: Vec<(String, OptValue)>,
    rng: Rng,
    trials: Vec<Trial>,
    strategy: S,
    /// The snapshot encoding of the leading trials that are settled (complete or failed), so a
    /// snapshot re-encodes only the trials after them (the host snapshots after every call).
    encoded: RefCell<Encoded>,
}

#[derive(Clone, Debug, Default)]
struct Encoded {
    /// Trials encoded.
    count: usize,
    bytes: Vec<u8>,
}

fn encode_trial(out: &mut Vec<u8>, t: &Trial) {
    match t.outcome {
        Outcome::Pending => out.push(0),
        Outcome::Complete(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Outcome::Failed => out.push(2),
    }
    for p in &t.params {
        match p {
            Value::Int(i) => {
                out.push(0);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(1);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Text(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

impl<S: Strategy> Engine<S> {
    /// `study.create`: validates the space and the options.
    pub fn create(
        space: &[DimSpec],
        goal_maximize: bool,
        seed: u64,
        options: Vec<(String, OptValue)>,
    ) -> Result<Self, Error> {
        let space = Space::parse(space)?;
        let options = Options::new(options, S::NAME, S::OPTIONS)?;
        let strategy = S::new(&space, goal_maximize, seed, &options)?;
        Ok(Engine {
            format: FORMAT,
            sampler: S::NAME.to_string(),
            space,
            goal_maximize,
            seed,
            options: options.entries().to_vec(),
            rng: Rng::new(seed),
            trials: Vec::new(),
            strategy,
            encoded: RefCell::default(),
        })
    }

    /// `study.suggest`: up to `n` new trials (fewer when the strategy runs out).
    pub fn suggest(&mut self, n: u32) -> Vec<(u64, Vec<(String, Value)>)> {
        let mut out = Vec::new();
        for _ in 0..n.min(MAX_SUGGEST) {
            let ctx = Ctx {
                space: &self.space,
                goal_maximize: self.goal_maximize,
                seed: self.seed,
                trials: &self.trials,
                rng: &mut self.rng,
            };
            let Some(params) = self.strategy.next(ctx) else {
                break;
            };
            debug_assert_eq!(params.len(), self.space.dims.len());
            let id = self.trials.len() as u64 + 1;
            let named = self
                .space
                .dims
                .iter()
                .zip(&params)
                .map(|(d, v)| (d.name.clone(), v.clone()))
                .collect();
            self.trials.push(Trial {
                id,
                params,
                outcome: Outcome::Pending,
            });
            out.push((id, named));
        }
        out
    }

    /// `study.observe`: unknown ids are ignored; a later observation replaces an earlier one.
    pub fn observe(&mut self, trial_id: u64, final_value: Option<f64>, failed: bool) {
        if trial_id == 0 || trial_id > self.trials.len() as u64 {
            return;
        }
        let index = (trial_id - 1) as usize;
        let outcome = match final_value {
            Some(v) if !failed && !v.is_nan() => Outcome::Complete(v.clamp(-f64::MAX, f64::MAX)),
            _ => Outcome::Failed,
        };
        let previous = std::mem::replace(&mut self.trials[index].outcome, outcome);
        if index < self.encoded.get_mut().count {
            // a settled trial observed again: encode afresh
            *self.encoded.get_mut() = Encoded::default();
        }
        if previous != self.trials[index].outcome {
            self.strategy.observed(
                &self.space,
                self.goal_maximize,
                &self.trials,
                index,
                &previous,
            );
        }
    }

    /// `study.snapshot`: the whole study. Layout: [`MAGIC`], the length (u32 LE) of a JSON
    /// header holding everything but the trials (format, sampler, space, goal, seed, options, RNG
    /// state, strategy state), the header, then the trials in a compact binary block (their count
    /// as u64 LE; per trial an outcome byte — 0 pending, 1 complete followed by the f64, 2
    /// failed — and per parameter a tag byte — 0 int (i64), 1 float (f64), 2 text (u32 length
    /// and UTF-8) —, all little-endian; ids are implicit: 1, 2, 3, ...). Binary because the host
    /// saves the study after every call: with 1000 trials this is a few tens of kilobytes
    /// written in microseconds.
    pub fn snapshot(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&HeaderRef {
            format: self.format,
            sampler: &self.sampler,
            space: &self.space,
            goal_maximize: self.goal_maximize,
            seed: self.seed,
            options: &self.options,
            rng: &self.rng,
            strategy: &self.strategy,
        })
        .expect("a study header serializes");
        let mut cache = self.encoded.borrow_mut();
        while cache.count < self.trials.len()
            && self.trials[cache.count].outcome != Outcome::Pending
        {
            let Encoded { count, bytes } = &mut *cache;
            encode_trial(bytes, &self.trials[*count]);
            *count += 1;
        }
        let rest = self.trials.len() - cache.count;
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 4
                + header.len()
                + 8
                + cache.bytes.len()
                + rest * (9 + 9 * self.space.dims.len()),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.trials.len() as u64).to_le_bytes());
        out.extend_from_slice(&cache.bytes);
        for t in &self.trials[cache.count..] {
            encode_trial(&mut out, t);
        }
        out
    }

    /// `study.restore`: rebuilds the study a snapshot holds; `InvalidArgument` for anything else
    /// (another sampler's snapshot is named as such).
    pub fn restore(state: &[u8]) -> Result<Self, Error> {
        let name = S::NAME;
        let mut r = Reader {
            bytes: state,
            at: 0,
        };
        let corrupt = |what: &str| Error::InvalidArgument(format!("not a {name} snapshot: {what}"));
        if r.take(MAGIC.len()).ok() != Some(MAGIC) {
            return Err(corrupt("it does not start like an Atrium sampler snapshot"));
        }
        let len = r.u32().map_err(|_| corrupt("truncated header"))? as usize;
        let header = r.take(len).map_err(|_| corrupt("truncated header"))?;
        let probe: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| corrupt(&format!("header: {e}")))?;
        match probe.get("sampler").and_then(|s| s.as_str()) {
            Some(other) if other != name => {
                return invalid!("the snapshot is of sampler '{other}', not '{name}'");
            }
            Some(_) => {}
            None => return Err(corrupt("the header names no sampler")),
        }
        if probe.get("format").and_then(|f| f.as_u64()) != Some(FORMAT as u64) {
            return invalid!(
                "{name} snapshot format {} is not supported (expected {FORMAT})",
                probe.get("format").unwrap_or(&serde_json::Value::Null)
            );
        }
        let h: HeaderOwned<S> =
            serde_json::from_value(probe).map_err(|e| corrupt(&format!("header: {e}")))?;
        let dims = h.space.dims.len();
        let count = r.u64().map_err(|_| corrupt("truncated trials"))?;
        // each trial takes at least 1 + dims bytes: a bound on the count before allocating
        if count > (state.len() as u64) / (1 + dims as u64) {
            return Err(corrupt("trial count beyond the data"));
        }
        let mut trials = Vec::with_capacity(count as usize);
        for i in 0..count {
            let bad = |_| corrupt(&format!("trial {} is truncated or malformed", i + 1));
            let outcome = match r.u8().map_err(bad)? {
                0 => Outcome::Pending,
                1 => Outcome::Complete(r.f64().map_err(bad)?),
                2 => Outcome::Failed,
                _ => return Err(bad(())),
            };
            let mut params = Vec::with_capacity(dims);
            for _ in 0..dims {
                params.push(match r.u8().map_err(bad)? {
                    0 => Value::Int(r.u64().map_err(bad)? as i64),
                    1 => Value::Float(r.f64().map_err(bad)?),
                    2 => {
                        let n = r.u32().map_err(bad)? as usize;
                        let b = r.take(n).map_err(bad)?;
                        Value::Text(String::from_utf8(b.to_vec()).map_err(|_| bad(()))?)
                    }
                    _ => return Err(bad(())),
                });
            }
            trials.push(Trial {
                id: i + 1,
                params,
                outcome,
            });
        }
        if r.at != state.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Engine {
            format: h.format,
            sampler: h.sampler,
            space: h.space,
            goal_maximize: h.goal_maximize,
            seed: h.seed,
            options: h.options,
            rng: h.rng,
            trials,
            strategy: h.strategy,
            encoded: RefCell::default(),
        })
    }

    pub fn space(&self) -> &Space {
        &self.space
    }

    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    pub fn goal_maximize(&self) -> bool {
        self.goal_maximize
    }
}
