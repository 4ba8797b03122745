//! Sweep strategies served by plugins: a [`Study`] is one live `sampler-plugin` instance
//! holding a study resource; a [`Stopper`] is one live `stopper-plugin` instance.
//!
//! Both are blocking (call them off the async threads). Every call re-arms the epoch deadline;
//! a trap, a deadline or a broken contract becomes a [`RuntimeError`] naming the component.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::engine::PluginEngine;
use super::loader::{KindPre, Loader};
use super::state::{PluginState, StoreSpec};
use super::v0_1::sampler::SamplerPlugin;
use super::v0_1::stopper::StopperPlugin;
use super::v0_2::stopper::EarlyStopPlugin as StopperPlugin2;
use super::{Kind, RuntimeError, call_error, guest_error};

pub use super::v0_1::sampler::exports::atrium::plugin::sampler::{Dimension, Trial};
pub use super::v0_1::stopper::exports::atrium::plugin::early_stop::Progress;
pub use super::v0_1::storage::atrium::plugin::types::ParamValue;

/// Which component serves a strategy, and how its stores are built.
#[derive(Clone)]
pub struct StrategyPlugin {
    /// The loader holding the component.
    pub loader: Arc<Loader>,
    /// sha256 of the component.
    pub digest: String,
    /// Store settings (kind, memory cap, log tags).
    pub spec: StoreSpec,
    /// Deadline of one call.
    pub deadline: Duration,
    /// `name@version`, for messages.
    pub label: String,
}

impl StrategyPlugin {
    /// A strategy from component bytes (validated and kept by `loader`), with the kind's
    /// default memory cap and deadline and no capabilities: for tests and benchmarks.
    pub fn from_wasm(
        loader: Arc<Loader>,
        wasm: &[u8],
        kind: Kind,
        label: &str,
    ) -> Result<Self, RuntimeError> {
        let v = loader.validate(wasm, kind)?;
        loader.keep(wasm, &v)?;
        Ok(Self {
            loader,
            digest: v.digest,
            spec: StoreSpec {
                kind,
                effective: Arc::new(Default::default()),
                secrets: Arc::new(Default::default()),
                memory: kind.default_memory(),
                tags: Arc::new(super::LogTags {
                    workspace: "-".into(),
                    component: label.into(),
                    version: "-".into(),
                }),
            },
            deadline: kind.default_deadline(),
            label: label.to_string(),
        })
    }

    fn store(&self) -> Result<Store<PluginState>, RuntimeError> {
        let mut store = PluginState::new(&self.spec)?.into_store(self.loader.engine().engine());
        store.set_epoch_deadline(PluginEngine::ticks(self.deadline));
        Ok(store)
    }

    fn named(&self, e: RuntimeError) -> RuntimeError {
        match e {
            RuntimeError::Internal(m) => RuntimeError::Internal(m),
            RuntimeError::Guest(m) => RuntimeError::Guest(format!("{}: {m}", self.label)),
            other => RuntimeError::Guest(format!("{} failed: {other}", self.label)),
        }
    }
}

/// A live study of a sampler component.
pub struct Study {
    plugin: StrategyPlugin,
    store: Store<PluginState>,
    bindings: SamplerPlugin,
    study: ResourceAny,
    /// Highest trial id seen, to hold the sampler to fresh ids.
    last_id: u64,
}

fn sampler_bindings(
    p: &StrategyPlugin,
    store: &mut Store<PluginState>,
) -> Result<SamplerPlugin, RuntimeError> {
    let pre = p.loader.pre(&p.digest, Kind::Sampler)?;
    let KindPre::Sampler(pre) = pre.as_ref() else {
        return Err(RuntimeError::Internal(format!(
            "{} is not a sampler component",
            p.label
        )));
    };
    pre.instantiate(&mut *store)
        .map_err(|e| call_error(store.data(), e, p.deadline, p.spec.memory))
}

impl Study {
    /// Creates a study over `space`.
    pub fn create(
        plugin: StrategyPlugin,
        space: &[Dimension],
        maximize: bool,
        seed: u64,
        options: &[(String, ParamValue)],
    ) -> Result<Self, RuntimeError> {
        let mut store = plugin.store()?;
        let bindings = sampler_bindings(&plugin, &mut store).map_err(|e| plugin.named(e))?;
        let study = bindings
            .atrium_plugin_sampler()
            .study()
            .call_create(&mut store, space, maximize, seed, &options.to_vec())
            .map_err(|e| call_error(store.data(), e, plugin.deadline, plugin.spec.memory))
            .map_err(|e| plugin.named(e))?
            .map_err(|e| plugin.named(guest_error(e)))?;
        Ok(Self {
            plugin,
            store,
            bindings,
            study,
            last_id: 0,
        })
    }

    /// Rebuilds a study from a [`Study::snapshot`]; `last_id` is the highest trial id issued.
    pub fn restore(
        plugin: StrategyPlugin,
        state: &[u8],
        last_id: u64,
    ) -> Result<Self, RuntimeError> {
        let mut store = plugin.store()?;
        let bindings = sampler_bindings(&plugin, &mut store).map_err(|e| plugin.named(e))?;
        let study = bindings
            .atrium_plugin_sampler()
            .study()
            .call_restore(&mut store, state)
            .map_err(|e| call_error(store.data(), e, plugin.deadline, plugin.spec.memory))
            .map_err(|e| plugin.named(e))?
            .map_err(|e| plugin.named(guest_error(e)))?;
        Ok(Self {
            plugin,
            store,
            bindings,
            study,
            last_id,
        })
    }

    fn arm(&mut self) {
        self.store
            .set_epoch_deadline(PluginEngine::ticks(self.plugin.deadline));
    }

    fn trap(&self, e: wasmtime::Error) -> RuntimeError {
        self.plugin.named(call_error(
            self.store.data(),
            e,
            self.plugin.deadline,
            self.plugin.spec.memory,
        ))
    }

    /// Up to `n` new trials (fewer, or none, when the sampler has nothing more to try).
    pub fn suggest(&mut self, n: u32) -> Result<Vec<Trial>, RuntimeError> {
        self.arm();
        let trials = self
            .bindings
            .atrium_plugin_sampler()
            .study()
            .call_suggest(&mut self.store, self.study, n)
            .map_err(|e| self.trap(e))?
            .map_err(|e| self.plugin.named(guest_error(e)))?;
        if trials.len() > n as usize {
            return Err(self.plugin.named(RuntimeError::Contract(format!(
                "asked for {n} trials, got {}",
                trials.len()
            ))));
        }
        for t in &trials {
            if t.id <= self.last_id {
                return Err(self.plugin.named(RuntimeError::Contract(format!(
                    "trial id {} was already used (ids must increase)",
                    t.id
                ))));
            }
            self.last_id = t.id;
        }
        Ok(trials)
    }

    /// Reports a trial's outcome.
    pub fn observe(
        &mut self,
        trial: u64,
        value: Option<f64>,
        failed: bool,
    ) -> Result<(), RuntimeError> {
        self.arm();
        self.bindings
            .atrium_plugin_sampler()
            .study()
            .call_observe(&mut self.store, self.study, trial, value, failed)
            .map_err(|e| self.trap(e))
    }

    /// The study's state, from which [`Study::restore`] rebuilds it.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, RuntimeError> {
        self.arm();
        self.bindings
            .atrium_plugin_sampler()
            .study()
            .call_snapshot(&mut self.store, self.study)
            .map_err(|e| self.trap(e))
    }

    /// The highest trial id issued so far.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }
}

/// A live early-stop policy: the instance of a 0.2 component keeps what it was told and gets
/// each report once; a 0.1 component gets every report up to the judged step in every call.
enum LivePolicy {
    V1(Store<PluginState>, StopperPlugin),
    V2(Store<PluginState>, StopperPlugin2, ResourceAny),
}

/// A sweep's early-stop policy, served by a component (instantiated on first use, and again
/// after a failure, when a 0.2 instance is told every report again).
pub struct Stopper {
    plugin: StrategyPlugin,
    live: Option<LivePolicy>,
    /// Every report, in arrival order.
    seen: Vec<Progress>,
    /// How many of `seen` the live 0.2 instance has been sent.
    fed: usize,
}

impl Stopper {
    /// A policy served by `plugin`.
    pub fn new(plugin: StrategyPlugin) -> Self {
        Self {
            plugin,
            live: None,
            seen: Vec::new(),
            fed: 0,
        }
    }

    /// Records a progress report (call it once per report, as it arrives).
    pub fn observe(&mut self, report: Progress) {
        self.seen.push(report);
    }

    /// Whether the component is a 0.2 (incremental) policy; instantiates it if needed.
    pub fn is_incremental(&mut self, maximize: bool, options: &str) -> Result<bool, RuntimeError> {
        self.ensure(maximize, options)?;
        Ok(matches!(self.live, Some(LivePolicy::V2(..))))
    }

    fn fail(&self, store: &Store<PluginState>, e: wasmtime::Error) -> RuntimeError {
        self.plugin.named(call_error(
            store.data(),
            e,
            self.plugin.deadline,
            self.plugin.spec.memory,
        ))
    }

    fn ensure(&mut self, maximize: bool, options: &str) -> Result<(), RuntimeError> {
        if self.live.is_some() {
            return Ok(());
        }
        let mut store = self.plugin.store()?;
        let pre = self.plugin.loader.pre(&self.plugin.digest, Kind::Stopper)?;
        store.set_epoch_deadline(PluginEngine::ticks(self.plugin.deadline));
        self.live = Some(match pre.as_ref() {
            KindPre::Stopper(pre) => {
                let b = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.fail(&store, e))?;
                LivePolicy::V1(store, b)
            }
            KindPre::Stopper2(pre) => {
                let b = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.fail(&store, e))?;
                let policy = b
                    .atrium_plugin_early_stop()
                    .policy()
                    .call_create(&mut store, maximize, options)
                    .map_err(|e| self.fail(&store, e))?
                    .map_err(|e| self.plugin.named(super::guest_error_0_2(e)))?;
                self.fed = 0;
                LivePolicy::V2(store, b, policy)
            }
            _ => {
                return Err(RuntimeError::Internal(format!(
                    "{} is not a stopper component",
                    self.plugin.label
                )));
            }
        });
        Ok(())
    }

    /// The trials of `running` to stop now, each judged at its latest step `step`: a 0.2
    /// instance is sent the reports new since its last call, a 0.1 component every report up
    /// to `step`.
    pub fn decide(
        &mut self,
        maximize: bool,
        options: &str,
        step: u64,
        running: &[u64],
    ) -> Result<Vec<u64>, RuntimeError> {
        self.ensure(maximize, options)?;
        let deadline = PluginEngine::ticks(self.plugin.deadline);
        let out = match self.live.as_mut().expect("instantiated above") {
            LivePolicy::V1(store, b) => {
                let history: Vec<Progress> = self
                    .seen
                    .iter()
                    .filter(|p| p.step <= step)
                    .copied()
                    .collect();
                store.set_epoch_deadline(deadline);
                b.atrium_plugin_early_stop()
                    .call_decide(&mut *store, maximize, options, &history, running)
                    .map_err(|e| (e, &*store))
            }
            LivePolicy::V2(store, b, policy) => {
                use super::v0_2::stopper::exports::atrium::plugin::early_stop::Progress as P2;
                let new: Vec<P2> = self.seen[self.fed..]
                    .iter()
                    .map(|p| P2 {
                        trial_id: p.trial_id,
                        step: p.step,
                        value: p.value,
                    })
                    .collect();
                store.set_epoch_deadline(deadline);
                let r = b
                    .atrium_plugin_early_stop()
                    .policy()
                    .call_decide(&mut *store, *policy, &new, running)
                    .map_err(|e| (e, &*store));
                if r.is_ok() {
                    self.fed = self.seen.len();
                }
                r
            }
        };
        match out {
            Ok(ids) => {
                if let Some(bad) = ids.iter().find(|id| !running.contains(id)) {
                    return Err(self.plugin.named(RuntimeError::Contract(format!(
                        "asked to stop trial {bad}, which is not among the running trials"
                    ))));
                }
                Ok(ids)
            }
            Err((e, store)) => {
                let err = call_error(
                    store.data(),
                    e,
                    self.plugin.deadline,
                    self.plugin.spec.memory,
                );
                self.live = None;
                Err(self.plugin.named(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::builtin;

    fn plugin(loader: &Arc<Loader>, name: &str, kind: Kind) -> StrategyPlugin {
        let b = builtin::find(name).unwrap_or_else(|| panic!("built-in {name}"));
        StrategyPlugin::from_wasm(loader.clone(), b.wasm, kind, name).unwrap()
    }

    fn loader() -> (tempfile::TempDir, Arc<Loader>) {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Arc::new(PluginEngine::new().unwrap());
        let l = Arc::new(Loader::new(engine, tmp.path()).unwrap());
        (tmp, l)
    }

    fn dim(name: &str, kind: &str, low: f64, high: f64, choices: &[&str]) -> Dimension {
        Dimension {
            name: name.into(),
            kind: kind.into(),
            low: Some(low),
            high: Some(high),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            log: kind.contains("log"),
            q: None,
        }
    }

    /// A synthetic objective (to minimize) with its optimum at lr = 1e-2, x = 0.3, n = 7,
    /// act = "b": a loguniform, a uniform, a randint and a choice dimension.
    fn objective(params: &[(String, ParamValue)]) -> f64 {
        let mut v = 0.0;
        for (k, p) in params {
            v += match (k.as_str(), p) {
                ("lr", ParamValue::Float(f)) => (f.log10() + 2.0).powi(2),
                ("x", ParamValue::Float(f)) => 4.0 * (f - 0.3).powi(2),
                ("n", ParamValue::Int(i)) => ((*i - 7) as f64 / 5.0).powi(2),
                ("act", ParamValue::Text(t)) => {
                    if t == "b" {
                        0.0
                    } else {
                        0.5
                    }
                }
                other => panic!("unexpected {other:?}"),
            };
        }
        v
    }

    fn best_after(p: &StrategyPlugin, seed: u64, trials: u32) -> f64 {
        let space = [
            dim("lr", "loguniform", 1e-5, 1.0, &[]),
            dim("x", "uniform", 0.0, 1.0, &[]),
            dim("n", "randint", 0.0, 20.0, &[]),
            dim("act", "choice", 0.0, 0.0, &["a", "b", "c", "d"]),
        ];
        let mut s = Study::create(p.clone(), &space, false, seed, &[]).unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..trials {
            let t = s.suggest(1).unwrap().remove(0);
            let v = objective(&t.params);
            best = best.min(v);
            s.observe(t.id, Some(v), false).unwrap();
        }
        best
    }

    /// TPE's mean best-after-40 over 10 seeds beats random search's on a known objective.
    #[test]
    fn tpe_beats_random_over_ten_seeds() {
        let (_tmp, l) = loader();
        let tpe = plugin(&l, "sampler-tpe", Kind::Sampler);
        let random = plugin(&l, "sampler-random", Kind::Sampler);
        let mean =
            |p: &StrategyPlugin| (0..10).map(|seed| best_after(p, seed, 40)).sum::<f64>() / 10.0;
        let (t, r) = (mean(&tpe), mean(&random));
        eprintln!("mean best after 40 trials: tpe {t:.4}, random {r:.4}");
        assert!(t < r, "TPE {t} should beat random {r}");
    }

    /// A restored snapshot continues the study exactly where it was.
    #[test]
    fn snapshots_restore_in_a_fresh_instance() {
        let (_tmp, l) = loader();
        for name in ["sampler-tpe", "sampler-random", "sampler-grid"] {
            let p = plugin(&l, name, Kind::Sampler);
            let space = [
                dim("n", "randint", 0.0, 6.0, &[]),
                dim("act", "choice", 0.0, 0.0, &["a", "b", "c"]),
            ];
            let mut a = Study::create(p.clone(), &space, true, 3, &[]).unwrap();
            for _ in 0..12 {
                let t = a.suggest(1).unwrap().remove(0);
                a.observe(t.id, Some(objective(&t.params[..1])), false)
                    .unwrap();
            }
            let snap = a.snapshot().unwrap();
            let mut b = Study::restore(p.clone(), &snap, a.last_id()).unwrap();
            let (x, y) = (a.suggest(3).unwrap(), b.suggest(3).unwrap());
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "{name}");
            assert!(Study::restore(p, b"not a snapshot", 0).is_err(), "{name}");
        }
    }

    /// Grid refuses continuous dimensions with a message naming the dimension.
    #[test]
    fn grid_refuses_continuous_dimensions() {
        let (_tmp, l) = loader();
        let p = plugin(&l, "sampler-grid", Kind::Sampler);
        let Err(e) = Study::create(p, &[dim("lr", "uniform", 0.0, 1.0, &[])], true, 0, &[]) else {
            panic!("grid accepted a uniform dimension");
        };
        let e = e.to_string();
        assert!(e.contains("'lr'") && e.contains("uniform"), "{e}");
    }

    /// Replays per-step reports in order, asking the stopper after each; returns
    /// (trial, step) of each stop.
    fn replay(
        p: &StrategyPlugin,
        maximize: bool,
        opts: &str,
        traces: &[(u64, &[f64])],
    ) -> Vec<(u64, u64)> {
        let steps = traces.iter().map(|t| t.1.len()).max().unwrap_or(0);
        // one policy per sweep: a fresh instance for each replay
        let s = &mut Stopper::new(p.clone());
        let mut stopped = Vec::new();
        for step in 1..=steps as u64 {
            for (id, vals) in traces {
                if stopped.iter().any(|(t, _)| t == id) || vals.len() < step as usize {
                    continue;
                }
                s.observe(Progress {
                    trial_id: *id,
                    step,
                    value: vals[step as usize - 1],
                });
                if s.decide(maximize, opts, step, &[*id]).unwrap().contains(id) {
                    stopped.push((*id, step));
                }
            }
        }
        stopped
    }

    /// A stopper built against plugin API 0.1 (`plugins/examples/stopper`, the median rule of
    /// the upper middle value) still decides: it is sent every report up to the judged step.
    #[test]
    fn a_0_1_stopper_still_decides() {
        let (_tmp, l) = loader();
        let wasm =
            std::fs::read(std::path::Path::new(builtin::PLUGINS_OUT).join("example_stopper.wasm"))
                .unwrap();
        let p = StrategyPlugin::from_wasm(l, &wasm, Kind::Stopper, "example-stopper").unwrap();
        assert!(!Stopper::new(p.clone()).is_incremental(true, "").unwrap());
        let traces: &[(u64, &[f64])] = &[
            (1, &[0.50, 0.60, 0.70, 0.80]),
            (2, &[0.40, 0.45, 0.50, 0.55]),
            (3, &[0.10, 0.20, 0.25, 0.30]),
            (4, &[0.55, 0.65, 0.75, 0.85]),
        ];
        // step 1: trial 2 (0.4) under trial 1's 0.5; trial 3 (0.1) under the upper middle of
        // (0.4, 0.5); trial 4 and, later, trials 1 and 4 stay above the others' averages
        assert_eq!(replay(&p, true, "", traces), vec![(2, 1), (3, 1)]);
    }

    /// Each built-in stopper, through the sandbox, stops exactly what its rule says.
    #[test]
    fn stoppers_follow_their_rules_through_the_sandbox() {
        let (_tmp, l) = loader();
        let traces: &[(u64, &[f64])] = &[
            (1, &[0.50, 0.60, 0.70, 0.80]),
            (2, &[0.40, 0.45, 0.50, 0.55]),
            (3, &[0.10, 0.20, 0.25, 0.30]),
            (4, &[0.55, 0.65, 0.75, 0.85]),
        ];
        let bandit = plugin(&l, "stop-bandit", Kind::Stopper);
        assert!(
            Stopper::new(bandit.clone())
                .is_incremental(true, r#"{"slack_factor":0.2}"#)
                .unwrap()
        );
        // a 0.2 policy refuses bad options when it is created, before any trial runs
        let e = Stopper::new(bandit.clone())
            .decide(true, "{}", 0, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("give one of slack_factor and slack_amount"),
            "{e}"
        );
        // step 1: after trial 1 (0.5) the bar is 0.5 / 1.2 = 0.417: trial 2 (0.4) and
        // trial 3 (0.1) fall below it; trial 4 sets the best but is never below
        assert_eq!(
            replay(&bandit, true, r#"{"slack_factor":0.2}"#, traces),
            vec![(2, 1), (3, 1)]
        );
        // minimizing flips the roles: trial 3's 0.1 is best; 0.55 > 0.1 + 0.1 at step 1,
        // then trials 1 and 2 (best 0.5 and 0.4) at step 2
        assert_eq!(
            replay(&bandit, false, r#"{"slack_amount":0.1}"#, traces),
            vec![(4, 1), (1, 2), (2, 2)]
        );
        let median = plugin(&l, "stop-median", Kind::Stopper);
        // nothing before step 2; at step 2 trial 2's best (0.45) is below the median (0.55) of
        // the others' running averages (0.55, 0.10, 0.55), and trial 3's 0.2 below 0.55
        assert_eq!(
            replay(&median, true, r#"{"delay_evaluation":2}"#, traces),
            vec![(2, 2), (3, 2)]
        );
        let trunc = plugin(&l, "stop-truncation", Kind::Stopper);
        // 25% of four trials is one: the worst, judged when the fourth reports step 1
        let worst_last: &[(u64, &[f64])] = &[traces[0], traces[1], traces[3], traces[2]];
        assert_eq!(
            replay(&trunc, true, r#"{"truncation_percentage":25}"#, worst_last),
            vec![(3, 1)]
        );
        // with the best reporting last there is never a trial to cut when one is judged
        assert_eq!(
            replay(&trunc, true, r#"{"truncation_percentage":25}"#, traces),
            vec![]
        );
        let asha = plugin(&l, "stop-asha", Kind::Stopper);
        // rungs at steps 1, 2, 4 (eta 2): at rung 1 trial 2 meets trial 1 (keep 1 of 2) and
        // trial 3 meets 1 and 2 (keep 1 of 3); trial 4 is best of four (keep 2)
        assert_eq!(
            replay(
                &asha,
                true,
                r#"{"reduction_factor":2,"grace_period":1}"#,
                traces
            ),
            vec![(2, 1), (3, 1)]
        );
    }
}
