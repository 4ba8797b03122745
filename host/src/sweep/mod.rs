//! Hyperparameter sweeps and AutoML: the specs, the persisted study state and the
//! leaderboard. Strategies are plugins (`plugins::strategy`); the jobs executor runs trials
//! in-process on Candle (`jobs::sweep`).

pub mod automl;
pub mod spec;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use automl::AutomlSpec;
pub use spec::{Goal, SweepSpec};

use crate::workspace::Millis;

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Suggested, not started (or interrupted by a restart and to be run again).
    Pending,
    /// Training.
    Running,
    /// Finished with a value.
    Completed,
    /// Stopped by the early-termination policy.
    EarlyTerminated,
    /// Stopped by its trial timeout.
    TimedOut,
    /// Failed (bad parameters, a kernel error).
    Failed,
    /// Canceled with the sweep.
    Canceled,
}

impl TrialState {
    /// Whether the trial has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TrialState::Pending | TrialState::Running)
    }

    /// Display spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Pending => "pending",
            TrialState::Running => "running",
            TrialState::Completed => "completed",
            TrialState::EarlyTerminated => "early-terminated",
            TrialState::TimedOut => "timed-out",
            TrialState::Failed => "failed",
            TrialState::Canceled => "canceled",
        }
    }
}

/// One trial of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRecord {
    /// The sampler's trial id.
    pub id: u64,
    /// Sampled parameters by dimension name.
    pub params: BTreeMap<String, Value>,
    /// State.
    pub state: TrialState,
    /// Its child run.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The objective: the final value, or the best reached when stopped early.
    #[serde(default)]
    pub value: Option<f64>,
    /// (step, primary metric) as reported.
    #[serde(default)]
    pub steps: Vec<(u64, f64)>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Start of its (latest) attempt.
    #[serde(default)]
    pub started_at: Option<Millis>,
    /// End time.
    #[serde(default)]
    pub ended_at: Option<Millis>,
}

impl TrialRecord {
    /// The latest reported value.
    pub fn latest(&self) -> Option<f64> {
        self.steps.last().map(|s| s.1)
    }

    /// The best reported value.
    pub fn best_step(&self, goal: Goal) -> Option<f64> {
        self.steps
            .iter()
            .map(|s| s.1)
            .reduce(|a, b| if better(goal, b, a) { b } else { a })
    }
}

/// Whether `a` beats `b` under `goal`.
pub fn better(goal: Goal, a: f64, b: f64) -> bool {
    match goal {
        Goal::Maximize => a > b,
        Goal::Minimize => a < b,
    }
}

/// Everything a sweep persists: the sampler's snapshot and the trials.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepState {
    /// The sampler's snapshot (base64).
    #[serde(default)]
    pub sampler: Option<String>,
    /// Highest trial id issued.
    #[serde(default)]
    pub last_id: u64,
    /// The sampler had nothing more to try.
    #[serde(default)]
    pub exhausted: bool,
    /// When the first attempt started (the sweep timeout counts from here).
    #[serde(default)]
    pub started_at: Millis,
    /// Direction of the objective.
    pub goal: Option<Goal>,
    /// Name of the objective.
    #[serde(default)]
    pub primary_metric: String,
    /// Trials in id order.
    #[serde(default)]
    pub trials: Vec<TrialRecord>,
    /// Why the sweep ended early, if it did (exit score reached, timeout, sampler failure).
    #[serde(default)]
    pub note: Option<String>,
}

impl SweepState {
    /// The best finished trial (completed or stopped early with a value).
    pub fn best(&self) -> Option<&TrialRecord> {
        let goal = self.goal?;
        self.trials
            .iter()
            .filter(|t| {
                matches!(
                    t.state,
                    TrialState::Completed | TrialState::EarlyTerminated | TrialState::TimedOut
                ) && t.value.is_some_and(f64::is_finite)
            })
            .reduce(|a, b| {
                if better(
                    goal,
                    b.value.unwrap_or(f64::NAN),
                    a.value.unwrap_or(f64::NAN),
                ) {
                    b
                } else {
                    a
                }
            })
    }

    /// The leaderboard as JSON: trials ordered best first (completed before stopped, then
    /// running, pending and failed), with the best trial named.
    pub fn leaderboard(&self) -> Value {
        let goal = self.goal.unwrap_or(Goal::Maximize);
        let mut rows: Vec<&TrialRecord> = self.trials.iter().collect();
        let rank = |t: &TrialRecord| match t.state {
            TrialState::Completed => 0,
            TrialState::EarlyTerminated | TrialState::TimedOut => 1,
            TrialState::Running => 2,
            TrialState::Pending => 3,
            TrialState::Failed | TrialState::Canceled => 4,
        };
        rows.sort_by(|a, b| {
            rank(a).cmp(&rank(b)).then_with(|| {
                let (x, y) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => a.id.cmp(&b.id),
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if better(goal, x, y) => std::cmp::Ordering::Less,
                    _ if better(goal, y, x) => std::cmp::Ordering::Greater,
                    _ => a.id.cmp(&b.id),
                }
            })
        });
        let trials: Vec<Value> = rows
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id,
                    "state": t.state.as_str(),
                    "params": t.params,
                    "value": t.value,
                    "latest": t.latest(),
                    "step": t.steps.last().map(|s| s.0),
                    "run_id": t.run_id,
                    "error": t.error,
                    "started_at": t.started_at,
                    "ended_at": t.ended_at,
                })
            })
            .collect();
        let count = |s: TrialState| self.trials.iter().filter(|t| t.state == s).count();
        serde_json::json!({
            "primary_metric": self.primary_metric,
            "goal": goal,
            "best": self.best().map(|b| serde_json::json!({
                "trial": b.id, "value": b.value, "params": b.params, "run_id": b.run_id,
            })),
            "counts": {
                "completed": count(TrialState::Completed),
                "early_terminated": count(TrialState::EarlyTerminated),
                "timed_out": count(TrialState::TimedOut),
                "failed": count(TrialState::Failed),
                "canceled": count(TrialState::Canceled),
                "running": count(TrialState::Running),
                "pending": count(TrialState::Pending),
            },
            "exhausted": self.exhausted,
            "note": self.note,
            "trials": trials,
        })
    }
}
