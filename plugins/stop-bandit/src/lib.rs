//! `stop-bandit`, Atrium's built-in bandit policy (Azure ML's `BanditPolicy`).
//!
//! The host calls `decide` after every progress report, with `running` holding the trial(s)
//! that just reported; the decision uses only `history`. For each trial t in `running` with
//! latest step s:
//!
//! - t is evaluated only when s >= `delay_evaluation` and s % `evaluation_interval` == 0;
//! - best_t = the best value of t at steps <= s; best_all = the best value of ALL trials (t
//!   included, stopped and finished ones too) at steps <= s;
//! - maximizing: stop t iff best_t < best_all / (1 + `slack_factor`), or
//!   best_t < best_all − `slack_amount`;
//! - minimizing: stop t iff best_t > best_all · (1 + `slack_factor`), or
//!   best_t > best_all + `slack_amount`.
//!
//! A value exactly on the threshold survives. "Best" is the greatest when maximizing, the
//! smallest when minimizing; reports with a NaN value are ignored.
//!
//! Options (a JSON object; unknown keys are ignored):
//! - `slack_factor` (number >= 0) or `slack_amount` (number >= 0): exactly one of them;
//! - `evaluation_interval` (integer >= 1, default 1);
//! - `delay_evaluation` (integer >= 0, default 0).
//!
//! Invalid options make `decide` stop nothing and log a warning.

use strategy_core::traces::{Schedule, StopOptions, Traces, best_of, running_ids};

/// The slack of the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slack {
    Factor(f64),
    Amount(f64),
}

/// Reads the options.
pub fn parse(options: &str) -> Result<(Slack, Schedule), String> {
    let o = StopOptions::parse(options)?;
    let schedule = Schedule::parse(&o)?;
    let slack = match (o.number("slack_factor")?, o.number("slack_amount")?) {
        (Some(_), Some(_)) => {
            return Err("give exactly one of slack_factor and slack_amount, not both".into());
        }
        (None, None) => return Err("give one of slack_factor and slack_amount".into()),
        (Some(f), None) if f < 0.0 => return Err(format!("slack_factor must be >= 0, got {f}")),
        (None, Some(a)) if a < 0.0 => return Err(format!("slack_amount must be >= 0, got {a}")),
        (Some(f), None) => Slack::Factor(f),
        (None, Some(a)) => Slack::Amount(a),
    };
    Ok((slack, schedule))
}

/// The trials of `running` to stop given the `traces` of the sweep; `Err` for invalid options.
pub fn decide_traces(
    goal_maximize: bool,
    options: &str,
    traces: &Traces,
    running: &[u64],
) -> Result<Vec<u64>, String> {
    let (slack, schedule) = parse(options)?;
    let mut stop = Vec::new();
    for t in running_ids(running) {
        let Some(s) = traces.latest_step(t) else {
            continue;
        };
        if !schedule.due(s) {
            continue;
        }
        let Some(best_t) = traces.best_upto(t, s, goal_maximize) else {
            continue;
        };
        let Some(best_all) = best_of(
            traces
                .trial_ids()
                .filter_map(|u| traces.best_upto(u, s, goal_maximize)),
            goal_maximize,
        ) else {
            continue;
        };
        let out = match (goal_maximize, slack) {
            (true, Slack::Factor(f)) => best_t < best_all / (1.0 + f),
            (true, Slack::Amount(a)) => best_t < best_all - a,
            (false, Slack::Factor(f)) => best_t > best_all * (1.0 + f),
            (false, Slack::Amount(a)) => best_t > best_all + a,
        };
        if out {
            stop.push(t);
        }
    }
    Ok(stop)
}

strategy_core::export_trace_stopper!("stop-bandit", decide_traces);

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_core::traces::Report;
    use strategy_core::traces::{replay, round_robin};

    fn stops(maximize: bool, options: &str, traces: &[(u64, &[f64])]) -> Vec<(u64, u64)> {
        replay(&round_robin(traces), |h, r| {
            decide(maximize, options, h, r).unwrap()
        })
    }

    const MAX_TRACES: &[(u64, &[f64])] = &[
        (1, &[0.5, 0.625, 0.75, 0.875]),
        (2, &[0.4375, 0.46875, 0.625, 0.75]),
        (3, &[0.25, 0.5, 0.5625]),
        (4, &[0.46875, 0.484375, 0.5, 0.53125]),
    ];

    #[test]
    fn slack_factor_maximize() {
        // step 1: best 0.5, threshold 0.4: trial 3 (0.25) out; step 2: best 0.625, threshold
        // 0.5: trials 2 (0.46875) and 4 (0.484375) out
        assert_eq!(
            stops(true, r#"{"slack_factor": 0.25}"#, MAX_TRACES),
            vec![(3, 1), (2, 2), (4, 2)]
        );
    }

    #[test]
    fn delay_and_interval() {
        // evaluated at steps 2 and 4 only: trial 3 reaches step 2 with exactly the threshold
        // (0.5 = 0.625 / 1.25) and survives; nothing is judged at step 1 or 3
        assert_eq!(
            stops(
                true,
                r#"{"slack_factor": 0.25, "delay_evaluation": 2, "evaluation_interval": 2}"#,
                MAX_TRACES
            ),
            vec![(2, 2), (4, 2)]
        );
        // delay 3 with interval 1: steps 3 and 4; at step 3 the best is 0.75 (threshold 0.6):
        // trial 2 has recovered to 0.625, trials 3 (0.5625) and 4 (0.5) are out
        assert_eq!(
            stops(
                true,
                r#"{"slack_factor": 0.25, "delay_evaluation": 3}"#,
                MAX_TRACES
            ),
            vec![(3, 3), (4, 3)]
        );
    }

    #[test]
    fn slack_amount_maximize() {
        // threshold best − 0.15: 0.35 at step 1, 0.475 at step 2, 0.6 at step 3
        assert_eq!(
            stops(true, r#"{"slack_amount": 0.15}"#, MAX_TRACES),
            vec![(3, 1), (2, 2), (4, 3)]
        );
    }

    #[test]
    fn minimize() {
        let traces: &[(u64, &[f64])] = &[
            (1, &[1.0, 0.8, 0.6]),
            (2, &[1.2, 1.1, 1.0]),
            (3, &[2.0, 1.0, 0.5]),
        ];
        // factor 0.5: threshold 1.5 at step 1 (trial 3 out), 1.2 at step 2, 0.9 at step 3 (trial 2 out)
        assert_eq!(
            stops(false, r#"{"slack_factor": 0.5}"#, traces),
            vec![(3, 1), (2, 3)]
        );
        // amount 0.25: threshold 1.25, 1.05 (trial 2's best 1.1 out), ...
        assert_eq!(
            stops(false, r#"{"slack_amount": 0.25}"#, traces),
            vec![(3, 1), (2, 2)]
        );
    }

    #[test]
    fn best_so_far_counts_not_the_latest_value() {
        // trial 2 dips at step 3 but its best up to 3 (0.9) is within the slack of 1.0
        let traces: &[(u64, &[f64])] = &[(1, &[0.5, 0.75, 1.0]), (2, &[0.5, 0.9, 0.1])];
        assert_eq!(stops(true, r#"{"slack_factor": 0.25}"#, traces), vec![]);
    }

    #[test]
    fn several_running_and_unknown_ids() {
        let h: Vec<Report> = [(1, 1, 1.0), (2, 1, 0.1), (3, 1, 0.2)]
            .iter()
            .map(|&(trial, step, value)| Report { trial, step, value })
            .collect();
        assert_eq!(
            decide(true, r#"{"slack_amount": 0.5}"#, &h, &[3, 9, 2, 1, 3]).unwrap(),
            vec![2, 3]
        );
        assert_eq!(
            decide(true, r#"{"slack_amount": 0.5}"#, &h, &[]).unwrap(),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn invalid_options() {
        for bad in [
            r#"{}"#,
            r#"{"slack_factor": 0.1, "slack_amount": 0.2}"#,
            r#"{"slack_factor": -0.1}"#,
            r#"{"slack_amount": "big"}"#,
            r#"{"slack_factor": 0.1, "evaluation_interval": 0}"#,
            r#"{"slack_factor": 0.1, "delay_evaluation": 1.5}"#,
            "not json",
            "[]",
        ] {
            assert!(decide(true, bad, &[], &[1]).is_err(), "{bad}");
        }
        assert!(decide(true, r#"{"slack_factor": 0.1, "unknown": 1}"#, &[], &[1]).is_ok());
    }
}
