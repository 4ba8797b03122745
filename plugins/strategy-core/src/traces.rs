//! Stopper helpers: the metric history of a sweep as per-trial traces, option JSON, the
//! evaluation schedule, and a replay harness that drives a `decide` function the way the host
//! does (after every progress report, with the reporting trial as `running`).
//!
//! Conventions every built-in stopper shares:
//! - "better" is greater when maximizing, smaller when minimizing; "worse" is the opposite;
//!   comparisons are strict.
//! - A trial's "best up to s" is the best of its values at steps <= s.
//! - A trial's latest step is the largest step it reported.
//! - Reports with a NaN value are ignored.

use std::collections::BTreeMap;

/// One progress report (the WIT `progress` record).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    pub trial: u64,
    pub step: u64,
    pub value: f64,
}

/// `a` strictly better than `b`.
pub fn better(a: f64, b: f64, maximize: bool) -> bool {
    if maximize { a > b } else { a < b }
}

/// The best of `values`, if any.
pub fn best_of(values: impl IntoIterator<Item = f64>, maximize: bool) -> Option<f64> {
    values.into_iter().fold(None, |acc, v| match acc {
        Some(a) if !better(v, a, maximize) => Some(a),
        _ => Some(v),
    })
}

/// The history grouped by trial, each trace in step order.
#[derive(Clone, Debug, Default)]
pub struct Traces {
    trials: BTreeMap<u64, Vec<(u64, f64)>>,
}

impl Traces {
    pub fn new(history: &[Report]) -> Traces {
        let mut trials: BTreeMap<u64, Vec<(u64, f64)>> = BTreeMap::new();
        for r in history {
            if !r.value.is_nan() {
                trials.entry(r.trial).or_default().push((r.step, r.value));
            }
        }
        for trace in trials.values_mut() {
            trace.sort_by_key(|&(step, _)| step);
        }
        Traces { trials }
    }

    /// Adds one report (a NaN value is ignored), keeping each trace in step order; reports
    /// of one step keep their arrival order, as in [`Traces::new`].
    pub fn push(&mut self, r: Report) {
        if r.value.is_nan() {
            return;
        }
        let trace = self.trials.entry(r.trial).or_default();
        let at = trace.partition_point(|&(s, _)| s <= r.step);
        trace.insert(at, (r.step, r.value));
    }

    /// Ids of the trials with at least one report, ascending.
    pub fn trial_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.trials.keys().copied()
    }

    /// The (step, value) reports of `trial`, in step order.
    pub fn trace(&self, trial: u64) -> &[(u64, f64)] {
        self.trials.get(&trial).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// The largest step `trial` reported.
    pub fn latest_step(&self, trial: u64) -> Option<u64> {
        self.trace(trial).last().map(|&(s, _)| s)
    }

    /// The reports of `trial` at steps <= `step`.
    pub fn upto(&self, trial: u64, step: u64) -> &[(u64, f64)] {
        let t = self.trace(trial);
        &t[..t.partition_point(|&(s, _)| s <= step)]
    }

    /// Best value of `trial` at steps <= `step`.
    pub fn best_upto(&self, trial: u64, step: u64, maximize: bool) -> Option<f64> {
        best_of(self.upto(trial, step).iter().map(|&(_, v)| v), maximize)
    }

    /// Mean of the values of `trial` at steps <= `step`.
    pub fn mean_upto(&self, trial: u64, step: u64) -> Option<f64> {
        let u = self.upto(trial, step);
        (!u.is_empty()).then(|| u.iter().map(|&(_, v)| v).sum::<f64>() / u.len() as f64)
    }

    /// Whether `trial` reported exactly `step`.
    pub fn has_step(&self, trial: u64, step: u64) -> bool {
        self.trace(trial)
            .binary_search_by_key(&step, |&(s, _)| s)
            .is_ok()
    }

    /// Whether `trial` reported a step >= `step`.
    pub fn reached(&self, trial: u64, step: u64) -> bool {
        self.latest_step(trial).is_some_and(|s| s >= step)
    }
}

/// The `running` list as the stoppers use it: ascending, without duplicates.
pub fn running_ids(running: &[u64]) -> Vec<u64> {
    let mut ids = running.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The JSON object of a stopper's options. An empty string or `null` means all defaults;
/// unknown keys are ignored.
#[derive(Clone, Debug, Default)]
pub struct StopOptions {
    map: serde_json::Map<String, serde_json::Value>,
}

impl StopOptions {
    pub fn parse(options: &str) -> Result<StopOptions, String> {
        let trimmed = options.trim();
        if trimmed.is_empty() {
            return Ok(StopOptions::default());
        }
        match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(serde_json::Value::Object(map)) => Ok(StopOptions { map }),
            Ok(serde_json::Value::Null) => Ok(StopOptions::default()),
            Ok(other) => Err(format!("options must be a JSON object, got {other}")),
            Err(e) => Err(format!("options are not valid JSON: {e}")),
        }
    }

    /// Whether `key` is present (and not null).
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// A finite number (`None` when absent or null).
    pub fn number(&self, key: &str) -> Result<Option<f64>, String> {
        match self.map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(format!("option '{key}' must be a number, got {v}")),
            },
        }
    }

    /// An integer >= `min` (a number with an integral value), or `default` when absent.
    pub fn integer(
        &self,
        key: &str,
        default: Option<u64>,
        min: u64,
    ) -> Result<Option<u64>, String> {
        let Some(x) = self.number(key)? else {
            return Ok(default);
        };
        if x.fract() != 0.0 || x < min as f64 || x > 9.0e15 {
            return Err(format!(
                "option '{key}' must be an integer >= {min}, got {x}"
            ));
        }
        Ok(Some(x as u64))
    }
}

/// When a trial is evaluated: at its latest step s, iff s >= `delay_evaluation` and
/// s % `evaluation_interval` == 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Default 1; must be >= 1.
    pub evaluation_interval: u64,
    /// Default 0.
    pub delay_evaluation: u64,
}

impl Schedule {
    pub fn parse(o: &StopOptions) -> Result<Schedule, String> {
        Ok(Schedule {
            evaluation_interval: o.integer("evaluation_interval", Some(1), 1)?.unwrap_or(1),
            delay_evaluation: o.integer("delay_evaluation", Some(0), 0)?.unwrap_or(0),
        })
    }

    pub fn due(&self, step: u64) -> bool {
        step >= self.delay_evaluation && step.is_multiple_of(self.evaluation_interval)
    }
}

/// Interleaves per-trial traces in report order: every trial's step 1 (in the order given),
/// then every trial's step 2, and so on; a trial's i-th value is its step i.
pub fn round_robin(traces: &[(u64, &[f64])]) -> Vec<(u64, u64, f64)> {
    let longest = traces.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for (trial, values) in traces {
            if let Some(&v) = values.get(i) {
                out.push((*trial, i as u64 + 1, v));
            }
        }
    }
    out
}

/// Replays `reports` (trial, step, value) one at a time as the host does: each is appended to
/// the history, then `decide(history, running = [that trial])` runs. A trial it returns is
/// stopped at that step and its later reports are dropped. Returns the stops as
/// (trial, step), in the order they happened. Panics if `decide` returns an id that is not
/// running.
pub fn replay(
    reports: &[(u64, u64, f64)],
    mut decide: impl FnMut(&[Report], &[u64]) -> Vec<u64>,
) -> Vec<(u64, u64)> {
    let mut history = Vec::new();
    let mut stopped: Vec<(u64, u64)> = Vec::new();
    for &(trial, step, value) in reports {
        if stopped.iter().any(|&(t, _)| t == trial) {
            continue;
        }
        history.push(Report { trial, step, value });
        let stop = decide(&history, &[trial]);
        for id in stop {
            assert_eq!(id, trial, "decide stopped trial {id}, which is not running");
            stopped.push((trial, step));
        }
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 0.2 policy builds its traces report by report; they must equal the ones built from the
    /// whole history at once (out-of-order steps, repeated steps and NaN included).
    #[test]
    fn pushed_reports_make_the_same_traces() {
        let h: Vec<Report> = [
            (3, 2, 1.0),
            (1, 2, 5.0),
            (1, 1, 3.0),
            (2, 1, 4.0),
            (1, 3, f64::NAN),
            (1, 2, 6.0),
            (3, 1, 0.5),
        ]
        .into_iter()
        .map(|(trial, step, value)| Report { trial, step, value })
        .collect();
        let mut pushed = Traces::default();
        for r in &h {
            pushed.push(*r);
        }
        let whole = Traces::new(&h);
        for t in 1..=3 {
            assert_eq!(pushed.trace(t), whole.trace(t), "trial {t}");
        }
        assert_eq!(
            pushed.trial_ids().collect::<Vec<_>>(),
            whole.trial_ids().collect::<Vec<_>>()
        );
    }

    #[test]
    fn traces_and_options() {
        let h: Vec<Report> = [(1, 2, 5.0), (1, 1, 3.0), (2, 1, 4.0), (1, 3, f64::NAN)]
            .iter()
            .map(|&(trial, step, value)| Report { trial, step, value })
            .collect();
        let t = Traces::new(&h);
        assert_eq!(t.latest_step(1), Some(2));
        assert_eq!(t.best_upto(1, 1, true), Some(3.0));
        assert_eq!(t.best_upto(1, 2, true), Some(5.0));
        assert_eq!(t.best_upto(1, 2, false), Some(3.0));
        assert_eq!(t.mean_upto(1, 5), Some(4.0));
        assert!(t.has_step(2, 1) && !t.has_step(2, 2));
        assert_eq!(t.trial_ids().collect::<Vec<_>>(), vec![1, 2]);

        let o =
            StopOptions::parse(r#"{"evaluation_interval": 2, "delay_evaluation": 4.0, "x": "y"}"#)
                .unwrap();
        let s = Schedule::parse(&o).unwrap();
        assert_eq!(
            s,
            Schedule {
                evaluation_interval: 2,
                delay_evaluation: 4
            }
        );
        assert!(!s.due(2) && !s.due(5) && s.due(4) && s.due(6));
        assert_eq!(
            Schedule::parse(&StopOptions::parse("").unwrap()).unwrap(),
            Schedule {
                evaluation_interval: 1,
                delay_evaluation: 0
            }
        );
        assert!(
            Schedule::parse(&StopOptions::parse(r#"{"evaluation_interval": 0}"#).unwrap()).is_err()
        );
        assert!(
            Schedule::parse(&StopOptions::parse(r#"{"delay_evaluation": -1}"#).unwrap()).is_err()
        );
        assert!(StopOptions::parse("[1]").is_err());
        assert!(StopOptions::parse("{").is_err());
    }

    #[test]
    fn round_robin_order() {
        let r = round_robin(&[(1, &[1.0, 2.0]), (2, &[3.0]), (3, &[4.0, 5.0, 6.0])]);
        assert_eq!(
            r,
            vec![
                (1, 1, 1.0),
                (2, 1, 3.0),
                (3, 1, 4.0),
                (1, 2, 2.0),
                (3, 2, 5.0),
                (3, 3, 6.0)
            ]
        );
    }
}
