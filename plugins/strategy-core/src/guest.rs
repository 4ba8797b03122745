//! Exports a [`Strategy`] as the WIT `sampler` interface:
//!
//! ```text
//! pub struct Plugin;
//! impl atrium_sdk::sampler::exports::atrium::plugin::sampler::Guest for Plugin {
//!     type Study = strategy_core::guest::SamplerStudy<MyStrategy>;
//! }
//! atrium_sdk::export_sampler!(Plugin);
//! ```
//!
//! Only this module touches the bindings; the logic it forwards to ([`Engine`]) is plain Rust.

use std::cell::RefCell;

use atrium_sdk::sampler::atrium::plugin::types::{ParamValue, PluginError};
use atrium_sdk::sampler::exports::atrium::plugin::sampler::{Dimension, GuestStudy, Study, Trial};

use crate::Error;
use crate::options::OptValue;
use crate::space::{DimSpec, Value};
use crate::study::{Engine, Strategy};

/// The `study` resource of a sampler built on strategy `S`.
pub struct SamplerStudy<S> {
    engine: RefCell<Engine<S>>,
}

/// Maps a strategy error onto the WIT error.
pub fn plugin_error(e: Error) -> PluginError {
    match e {
        Error::InvalidArgument(m) => PluginError::InvalidArgument(m),
        Error::Unsupported(m) => PluginError::Unsupported(m),
    }
}

/// The WIT dimension as a [`DimSpec`].
pub fn dim_spec(d: Dimension) -> DimSpec {
    DimSpec {
        name: d.name,
        kind: d.kind,
        low: d.low,
        high: d.high,
        choices: d.choices,
        log: d.log,
        q: d.q,
    }
}

/// A WIT param value as an option value.
pub fn opt_value(v: ParamValue) -> OptValue {
    match v {
        ParamValue::Int(i) => OptValue::Int(i),
        ParamValue::Float(f) => OptValue::Float(f),
        ParamValue::Text(t) => OptValue::Text(t),
        ParamValue::Flag(b) => OptValue::Flag(b),
    }
}

/// A parameter value as a WIT param value.
pub fn param_value(v: Value) -> ParamValue {
    match v {
        Value::Int(i) => ParamValue::Int(i),
        Value::Float(f) => ParamValue::Float(f),
        Value::Text(t) => ParamValue::Text(t),
    }
}

impl<S: Strategy + 'static> GuestStudy for SamplerStudy<S> {
    fn create(
        space: Vec<Dimension>,
        goal_maximize: bool,
        seed: u64,
        options: Vec<(String, ParamValue)>,
    ) -> Result<Study, PluginError> {
        let space: Vec<DimSpec> = space.into_iter().map(dim_spec).collect();
        let options = options
            .into_iter()
            .map(|(k, v)| (k, opt_value(v)))
            .collect();
        let engine =
            Engine::<S>::create(&space, goal_maximize, seed, options).map_err(plugin_error)?;
        Ok(Study::new(SamplerStudy {
            engine: RefCell::new(engine),
        }))
    }

    fn suggest(&self, n: u32) -> Result<Vec<Trial>, PluginError> {
        let trials = self.engine.borrow_mut().suggest(n);
        Ok(trials
            .into_iter()
            .map(|(id, params)| Trial {
                id,
                params: params
                    .into_iter()
                    .map(|(k, v)| (k, param_value(v)))
                    .collect(),
            })
            .collect())
    }

    fn observe(&self, trial_id: u64, final_value: Option<f64>, failed: bool) {
        self.engine
            .borrow_mut()
            .observe(trial_id, final_value, failed);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.engine.borrow().snapshot()
    }

    fn restore(state: Vec<u8>) -> Result<Study, PluginError> {
        let engine = Engine::<S>::restore(&state).map_err(plugin_error)?;
        Ok(Study::new(SamplerStudy {
            engine: RefCell::new(engine),
        }))
    }
}

/// A stopper's rule: (goal_maximize, options, history, running) -> the trials to stop, or why
/// the options are invalid.
pub type StopRule = fn(bool, &str, &[crate::traces::Report], &[u64]) -> Result<Vec<u64>, String>;

/// The body of a stopper's `decide`: converts the history, runs the rule, and on an error
/// (invalid options) logs a warning through the host and stops nothing. The ids returned are a
/// subset of `running`, ascending.
pub fn run_stopper(
    name: &str,
    goal_maximize: bool,
    options: &str,
    history: &[atrium_sdk::stopper::exports::atrium::plugin::early_stop::Progress],
    running: &[u64],
    rule: StopRule,
) -> Vec<u64> {
    let reports: Vec<crate::traces::Report> = history
        .iter()
        .map(|p| crate::traces::Report {
            trial: p.trial_id,
            step: p.step,
            value: p.value,
        })
        .collect();
    match rule(goal_maximize, options, &reports, running) {
        Ok(stop) => only_running(stop, running),
        Err(msg) => {
            atrium_sdk::log!(atrium_sdk::stopper, Warn, "{name}: {msg}; stopping nothing");
            Vec::new()
        }
    }
}

/// A rule's answer as the contract wants it: only trials of `running`, ascending, once each.
fn only_running(mut stop: Vec<u64>, running: &[u64]) -> Vec<u64> {
    stop.retain(|id| running.contains(id));
    stop.sort_unstable();
    stop.dedup();
    stop
}

/// A stop rule over the traces a 0.2 policy instance keeps.
pub trait TraceRule: 'static {
    /// The component's name, for log lines.
    const NAME: &'static str;
    /// The trials of `running` to stop given `traces`; `Err` for invalid options.
    fn decide(
        goal_maximize: bool,
        options: &str,
        traces: &crate::traces::Traces,
        running: &[u64],
    ) -> Result<Vec<u64>, String>;
}

/// The 0.2 `policy` resource of a [`TraceRule`]: one per sweep, keeping every report it was
/// sent as per-trial traces, so each call costs what the rule does with them and no more.
///
/// ```text
/// pub struct Plugin;
/// impl atrium_sdk::v0_2::stopper::exports::atrium::plugin::early_stop::Guest for Plugin {
///     type Policy = strategy_core::guest::TracePolicy<MyRule>;
/// }
/// atrium_sdk::export_stopper_0_2!(Plugin);
/// ```
pub struct TracePolicy<R> {
    goal_maximize: bool,
    options: String,
    traces: RefCell<crate::traces::Traces>,
    rule: std::marker::PhantomData<R>,
}

impl<R: TraceRule> atrium_sdk::v0_2::stopper::exports::atrium::plugin::early_stop::GuestPolicy
    for TracePolicy<R>
{
    fn create(
        goal_maximize: bool,
        options: String,
    ) -> Result<
        atrium_sdk::v0_2::stopper::exports::atrium::plugin::early_stop::Policy,
        atrium_sdk::v0_2::stopper::atrium::plugin::types::PluginError,
    > {
        // the options are checked once, here: a rule reads them before anything else
        R::decide(goal_maximize, &options, &Default::default(), &[]).map_err(
            atrium_sdk::v0_2::stopper::atrium::plugin::types::PluginError::InvalidArgument,
        )?;
        Ok(
            atrium_sdk::v0_2::stopper::exports::atrium::plugin::early_stop::Policy::new(
                TracePolicy::<R> {
                    goal_maximize,
                    options,
                    traces: RefCell::new(Default::default()),
                    rule: std::marker::PhantomData,
                },
            ),
        )
    }

    fn decide(
        &self,
        new_reports: Vec<atrium_sdk::v0_2::stopper::exports::atrium::plugin::early_stop::Progress>,
        running: Vec<u64>,
    ) -> Vec<u64> {
        let mut traces = self.traces.borrow_mut();
        for p in new_reports {
            traces.push(crate::traces::Report {
                trial: p.trial_id,
                step: p.step,
                value: p.value,
            });
        }
        match R::decide(self.goal_maximize, &self.options, &traces, &running) {
            Ok(stop) => only_running(stop, &running),
            Err(msg) => {
                atrium_sdk::log!(
                    atrium_sdk::v0_2::stopper,
                    Warn,
                    "{}: {msg}; stopping nothing",
                    R::NAME
                );
                Vec::new()
            }
        }
    }
}

/// Exports a stop rule `fn(goal_maximize, options, &Traces, running) -> Result<Vec<u64>,
/// String>` as a 0.2 stopper component named `$name`: defines `decide` (the rule over a whole
/// history, for tests), `Rule` (its [`TraceRule`]) and `Plugin` (the exported world).
#[macro_export]
macro_rules! export_trace_stopper {
    ($name:literal, $rule:ident) => {
        /// The trials of `running` to stop given the whole `history`; `Err` for invalid options.
        pub fn decide(
            goal_maximize: bool,
            options: &str,
            history: &[$crate::traces::Report],
            running: &[u64],
        ) -> Result<Vec<u64>, String> {
            $rule(
                goal_maximize,
                options,
                &$crate::traces::Traces::new(history),
                running,
            )
        }

        /// The rule, for the 0.2 policy instance.
        pub struct Rule;

        impl $crate::guest::TraceRule for Rule {
            const NAME: &'static str = $name;
            fn decide(
                goal_maximize: bool,
                options: &str,
                traces: &$crate::traces::Traces,
                running: &[u64],
            ) -> Result<Vec<u64>, String> {
                $rule(goal_maximize, options, traces, running)
            }
        }

        /// The component: a 0.2 policy over the rule.
        pub struct Plugin;

        impl atrium_sdk::v0_2::stopper::exports::atrium::plugin::early_stop::Guest for Plugin {
            type Policy = $crate::guest::TracePolicy<Rule>;
        }

        atrium_sdk::export_stopper_0_2!(Plugin);
    };
}
