//! `stop-asha`, Atrium's built-in asynchronous successive halving (ASHA, Li et al. 2018), as a
//! stateless early-termination rule.
//!
//! The host calls `decide` after every progress report, with `running` holding the trial(s)
//! that just reported; the decision uses only `history`. Rungs are at steps
//! r_k = `grace_period` · `reduction_factor`^k (k = 0, 1, 2, ...). For each trial t in `running`
//! with latest step s (for a fractional η the rungs are floor(`grace_period` · η^k)):
//!
//! - t is evaluated only when s is a rung and s >= `delay_evaluation` (`evaluation_interval` is
//!   not used: the rungs are the schedule);
//! - V = the best value at steps <= s of every trial that has reported a step >= s (t included;
//!   stopped and finished trials too);
//! - keep = max(1, floor(|V| / `reduction_factor`));
//! - stop t iff at least `keep` trials of V are strictly better than t (t is not in the top
//!   1/η of the rung; ties favour t).
//!
//! "Better" is greater when maximizing, smaller when minimizing. Reports with a NaN value are
//! ignored.
//!
//! Options (a JSON object; unknown keys are ignored):
//! - `reduction_factor` (η, number >= 2, default 3);
//! - `grace_period` (integer >= 1, default 1);
//! - `delay_evaluation` (integer >= 0, default 0);
//! - `evaluation_interval` (integer >= 1, default 1; validated, otherwise unused).
//!
//! Invalid options make `decide` stop nothing and log a warning.

use strategy_core::traces::{Schedule, StopOptions, Traces, better, running_ids};

/// The policy's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Asha {
    pub reduction_factor: f64,
    pub grace_period: u64,
    pub delay_evaluation: u64,
}

impl Asha {
    pub fn parse(options: &str) -> Result<Asha, String> {
        let o = StopOptions::parse(options)?;
        let schedule = Schedule::parse(&o)?;
        let reduction_factor = o.number("reduction_factor")?.unwrap_or(3.0);
        if reduction_factor < 2.0 {
            return Err(format!(
                "reduction_factor must be >= 2, got {reduction_factor}"
            ));
        }
        Ok(Asha {
            reduction_factor,
            grace_period: o.integer("grace_period", Some(1), 1)?.unwrap_or(1),
            delay_evaluation: schedule.delay_evaluation,
        })
    }

    /// Whether `step` is a rung: grace_period · η^k for some k >= 0 (its floor for a
    /// fractional η; exact integer arithmetic for an integral one).
    pub fn is_rung(&self, step: u64) -> bool {
        if self.reduction_factor.fract() == 0.0 && self.reduction_factor < 9.0e15 {
            let eta = self.reduction_factor as u64;
            let mut r = self.grace_period;
            while r < step {
                match r.checked_mul(eta) {
                    Some(next) => r = next,
                    None => return false,
                }
            }
            return r == step;
        }
        let mut r = self.grace_period as f64;
        while (r.floor() as u64) < step && r < 1.0e19 {
            r *= self.reduction_factor;
        }
        r.floor() as u64 == step
    }

    /// How many trials of a rung of `n` may go on: max(1, floor(n / η)).
    pub fn keep(&self, n: usize) -> u64 {
        ((n as f64 / self.reduction_factor).floor() as u64).max(1)
    }
}

/// The trials of `running` to stop given the `traces` of the sweep; `Err` for invalid options.
pub fn decide_traces(
    goal_maximize: bool,
    options: &str,
    traces: &Traces,
    running: &[u64],
) -> Result<Vec<u64>, String> {
    let asha = Asha::parse(options)?;
    let mut stop = Vec::new();
    for t in running_ids(running) {
        let Some(s) = traces.latest_step(t) else {
            continue;
        };
        if s < asha.delay_evaluation || !asha.is_rung(s) {
            continue;
        }
        let Some(score_t) = traces.best_upto(t, s, goal_maximize) else {
            continue;
        };
        let rung: Vec<f64> = traces
            .trial_ids()
            .filter(|&u| traces.reached(u, s))
            .filter_map(|u| traces.best_upto(u, s, goal_maximize))
            .collect();
        let keep = asha.keep(rung.len());
        let ahead = rung
            .iter()
            .filter(|&&v| better(v, score_t, goal_maximize))
            .count() as u64;
        if ahead >= keep {
            stop.push(t);
        }
    }
    Ok(stop)
}

strategy_core::export_trace_stopper!("stop-asha", decide_traces);

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_core::traces::{replay, round_robin};

    fn stops(maximize: bool, options: &str, traces: &[(u64, &[f64])]) -> Vec<(u64, u64)> {
        replay(&round_robin(traces), |h, r| {
            decide(maximize, options, h, r).unwrap()
        })
    }

    #[test]
    fn rungs() {
        let a = Asha::parse(r#"{"reduction_factor": 3, "grace_period": 2}"#).unwrap();
        let rungs: Vec<u64> = (0..60).filter(|&s| a.is_rung(s)).collect();
        assert_eq!(rungs, vec![2, 6, 18, 54]);
        let d = Asha::parse("").unwrap();
        assert_eq!(
            d,
            Asha {
                reduction_factor: 3.0,
                grace_period: 1,
                delay_evaluation: 0
            }
        );
        assert_eq!(
            (0..30).filter(|&s| d.is_rung(s)).collect::<Vec<_>>(),
            vec![1, 3, 9, 27]
        );
        assert!(!d.is_rung(u64::MAX));
        assert_eq!((d.keep(1), d.keep(5), d.keep(6), d.keep(9)), (1, 1, 2, 3));
        // a fractional η: rungs floor(4 · 2.5^k) = 4, 10, 25, 62
        let f = Asha::parse(r#"{"reduction_factor": 2.5, "grace_period": 4}"#).unwrap();
        assert_eq!(
            (0..70).filter(|&s| f.is_rung(s)).collect::<Vec<_>>(),
            vec![4, 10, 25, 62]
        );
        assert_eq!((f.keep(4), f.keep(5)), (1, 2));
    }

    #[test]
    fn maximize_halving() {
        let traces: &[(u64, &[f64])] = &[
            (1, &[1.0, 2.0, 3.0, 4.0, 5.0]),
            (2, &[2.0, 1.0, 1.0, 1.0, 1.0]),
            (3, &[0.0, 3.0, 4.0, 5.0]),
            (4, &[3.0, 2.0, 2.0, 2.0, 6.0]),
        ];
        // η = 2, rungs 1, 2, 4. Rung 1: trial 3 (0) has two better among 3 (keep 1): out.
        // Rung 2: trial 2 (best 2) ties trial 1 (2): survives. Rung 4: trial 2 (2) behind trial
        // 1 (4) with keep 1: out; trial 4 (3) behind trial 1 among {4, 2, 3}: out. Step 3 and 5
        // are no rungs
        assert_eq!(
            stops(true, r#"{"reduction_factor": 2}"#, traces),
            vec![(3, 1), (2, 4), (4, 4)]
        );
    }

    #[test]
    fn minimize_grace_and_delay() {
        let traces: &[(u64, &[f64])] = &[
            (1, &[5.0, 4.0, 3.0, 2.0, 1.0, 0.5]),
            (2, &[6.0, 5.0, 5.0, 5.0, 5.0, 5.0]),
            (3, &[4.0, 6.0, 6.0, 6.0, 6.0, 6.0]),
            (4, &[7.0, 7.0, 1.0]),
        ];
        // η = 3, grace 2: rungs 2 and 6. Rung 2: trial 2 (5) behind trial 1 (4): out; trial 3
        // (best 4) ties trial 1: survives; trial 4 (7) of 4 (keep 1): out. Rung 6: trial 3 (4)
        // behind trial 1 (0.5): out
        let opts = r#"{"reduction_factor": 3, "grace_period": 2}"#;
        assert_eq!(stops(false, opts, traces), vec![(2, 2), (4, 2), (3, 6)]);
        // delay 3 skips rung 2; at rung 6 trials 2 and 3 trail trial 1; trial 4 never gets there
        let opts = r#"{"reduction_factor": 3, "grace_period": 2, "delay_evaluation": 3}"#;
        assert_eq!(stops(false, opts, traces), vec![(2, 6), (3, 6)]);
    }

    #[test]
    fn arrival_order_matters() {
        // η = 3 (default), rung 1. Nine trials report one value each.
        let ascending: Vec<(u64, Vec<f64>)> = (1..=9).map(|t| (t, vec![t as f64])).collect();
        let descending: Vec<(u64, Vec<f64>)> =
            (1..=9).map(|t| (t, vec![10.0 - t as f64])).collect();
        let run = |v: &[(u64, Vec<f64>)]| {
            let t: Vec<(u64, &[f64])> = v.iter().map(|(id, x)| (*id, x.as_slice())).collect();
            stops(true, "", &t)
        };
        // each newcomer is the best so far: nobody is ahead of it
        assert_eq!(run(&ascending), vec![]);
        // each newcomer is the worst so far: trial n has n − 1 ahead, keep = max(1, n / 3)
        assert_eq!(
            run(&descending),
            (2..=9).map(|t| (t, 1)).collect::<Vec<_>>()
        );
        // a mixed order at rung 3 (η = 3): values at steps 1..3, judged at steps 1 and 3
        let traces: &[(u64, &[f64])] = &[
            (1, &[5.0, 5.0, 5.0]),
            (2, &[9.0, 9.0, 9.0]),
            (3, &[1.0, 8.0, 8.0]),
            (4, &[6.0, 6.0, 7.0]),
            (5, &[4.0, 4.0, 4.0]),
            (6, &[7.0, 7.0, 7.5]),
        ];
        // rung 1: trial 1 reports first, alone: survives; trial 3 (1) out; trial 4 (6): only
        // trial 2 ahead, keep = 4 / 3 = 1: out; trial 5 (4): out; trial 6 (7), keep 6 / 3 = 2, one
        // ahead: survives. Rung 3: trial 1 reports first, alone again; V = {1: 5, 2: 9, 6: 7.5}
        // for trial 6 (the stopped trials never got there), keep 1, trial 2 ahead: out
        assert_eq!(
            stops(true, "", traces),
            vec![(3, 1), (4, 1), (5, 1), (6, 3)]
        );
    }

    #[test]
    fn invalid_options() {
        for bad in [
            r#"{"reduction_factor": 1}"#,
            r#"{"reduction_factor": 1.99}"#,
            r#"{"grace_period": 0}"#,
            r#"{"delay_evaluation": -1}"#,
            r#"{"evaluation_interval": 0}"#,
            "7",
        ] {
            assert!(decide(true, bad, &[], &[1]).is_err(), "{bad}");
        }
    }
}
