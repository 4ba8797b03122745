//! `stop-truncation`, Atrium's built-in truncation selection policy (Azure ML's
//! `TruncationSelectionPolicy`).
//!
//! The host calls `decide` after every progress report, with `running` holding the trial(s)
//! that just reported; the decision uses only `history`. For each trial t in `running` with
//! latest step s:
//!
//! - t is evaluated only when s >= `delay_evaluation` and s % `evaluation_interval` == 0;
//! - P = the trials with a value at exactly step s (t included; stopped and finished trials
//!   too), each scored by its best value at steps <= s;
//! - k = floor(|P| · `truncation_percentage` / 100) (computed exactly for integral percentages);
//! - stop t iff fewer than k trials of P other than t score worse than or equal to t, i.e. t is
//!   among the k worst of P even when ranked better than every trial it ties with (ties are
//!   broken in t's favour). Equivalently: t stops iff #{p ∈ P, p ≠ t, p strictly worse than t}
//!   < k AND #{p ∈ P, p ≠ t, p strictly better than t} >= |P| − k.
//!
//! "Worse" is smaller when maximizing, greater when minimizing. Reports with a NaN value are
//! ignored.
//!
//! Options (a JSON object; unknown keys are ignored):
//! - `truncation_percentage` (number in [1, 99], required; Azure uses integers, a fraction is
//!   accepted);
//! - `evaluation_interval` (integer >= 1, default 1);
//! - `delay_evaluation` (integer >= 0, default 0).
//!
//! Invalid options make `decide` stop nothing and log a warning.

use strategy_core::traces::{Schedule, StopOptions, Traces, better, running_ids};

/// Reads the options: (truncation percentage, schedule).
pub fn parse(options: &str) -> Result<(f64, Schedule), String> {
    let o = StopOptions::parse(options)?;
    let schedule = Schedule::parse(&o)?;
    let Some(pct) = o.number("truncation_percentage")? else {
        return Err("truncation_percentage (1 to 99) is required".into());
    };
    if !(1.0..=99.0).contains(&pct) {
        return Err(format!(
            "truncation_percentage must be in [1, 99], got {pct}"
        ));
    }
    Ok((pct, schedule))
}

/// floor(n · pct / 100), exact for integral percentages.
pub fn truncated(n: usize, pct: f64) -> u64 {
    if pct.fract() == 0.0 {
        n as u64 * pct as u64 / 100
    } else {
        (n as f64 * pct / 100.0).floor() as u64
    }
}

/// The trials of `running` to stop given the `traces` of the sweep; `Err` for invalid options.
pub fn decide_traces(
    goal_maximize: bool,
    options: &str,
    traces: &Traces,
    running: &[u64],
) -> Result<Vec<u64>, String> {
    let (pct, schedule) = parse(options)?;
    let mut stop = Vec::new();
    for t in running_ids(running) {
        let Some(s) = traces.latest_step(t) else {
            continue;
        };
        if !schedule.due(s) {
            continue;
        }
        let Some(score_t) = traces.best_upto(t, s, goal_maximize) else {
            continue;
        };
        let pool: Vec<(u64, f64)> = traces
            .trial_ids()
            .filter(|&p| traces.has_step(p, s))
            .filter_map(|p| traces.best_upto(p, s, goal_maximize).map(|v| (p, v)))
            .collect();
        let k = truncated(pool.len(), pct);
        let worse_or_tied = pool
            .iter()
            .filter(|&&(p, v)| p != t && !better(v, score_t, goal_maximize))
            .count() as u64;
        if worse_or_tied < k {
            stop.push(t);
        }
    }
    Ok(stop)
}

strategy_core::export_trace_stopper!("stop-truncation", decide_traces);

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_core::traces::{replay, round_robin};

    fn stops(maximize: bool, options: &str, traces: &[(u64, &[f64])]) -> Vec<(u64, u64)> {
        replay(&round_robin(traces), |h, r| {
            decide(maximize, options, h, r).unwrap()
        })
    }

    const MAX_TRACES: &[(u64, &[f64])] = &[
        (1, &[1.0, 2.0, 3.0, 4.0]),
        (2, &[2.0, 3.0, 4.0, 5.0]),
        (3, &[3.0, 1.0, 1.0, 1.0]),
        (4, &[0.0, 5.0, 6.0, 7.0]),
    ];

    #[test]
    fn maximize_fifty_percent_with_ties() {
        // step 1: trial 4 (0) is the worst of 4, k = 2: out. Step 3: P = {1: 3, 2: 4, 3: 3}, k = 1:
        // trial 3 ties with trial 1 and survives (ties favour the trial judged). Step 4: P = {1: 4,
        // 2: 5, 3: 3}: trial 3 (best 3) is the worst: out
        assert_eq!(
            stops(true, r#"{"truncation_percentage": 50}"#, MAX_TRACES),
            vec![(4, 1), (3, 4)]
        );
    }

    #[test]
    fn delay_and_interval() {
        // only steps 2 and 4: trial 4 recovers (5 at step 2) before it is judged
        assert_eq!(
            stops(
                true,
                r#"{"truncation_percentage": 50, "delay_evaluation": 2, "evaluation_interval": 2}"#,
                MAX_TRACES
            ),
            vec![(3, 4)]
        );
        // delay 3: steps 3 and 4
        assert_eq!(
            stops(
                true,
                r#"{"truncation_percentage": 50, "delay_evaluation": 3}"#,
                MAX_TRACES
            ),
            vec![(3, 4)]
        );
    }

    #[test]
    fn minimize() {
        let traces: &[(u64, &[f64])] = &[
            (1, &[5.0, 4.0, 3.0]),
            (2, &[6.0, 6.0, 6.0]),
            (3, &[4.0, 4.0, 2.0]),
            (4, &[7.0, 1.0, 1.0]),
            (5, &[9.0, 9.0, 9.0]),
        ];
        // 25 %: k = floor(|P| / 4). Step 1: k = 0 until the 4th report; trial 4 (7) is the worst
        // of {5, 6, 4, 7} (k = 1): out; trial 5 (9) the worst of five (k = 1): out. Steps 2 and
        // 3: three trials left, k = 0
        assert_eq!(
            stops(false, r#"{"truncation_percentage": 25}"#, traces),
            vec![(4, 1), (5, 1)]
        );
        // 67 %: k = 1 for 2 trials, 2 for 3 or 4, 3 for 5. Step 1: trial 2 (6) worse than trial 1
        // (5): out; trial 3 (4) has two trials worse: survives; trials 4 and 5 have none: out.
        // Step 2: P = {1: 4, 3: 4}, k = 1: trial 3 ties with trial 1 and survives
        assert_eq!(
            stops(false, r#"{"truncation_percentage": 67}"#, traces),
            vec![(2, 1), (4, 1), (5, 1)]
        );
    }

    #[test]
    fn only_trials_at_the_same_step_count() {
        // trial 1 runs ahead; at its step 3 it is alone in P (k = 0) however bad it is
        let reports = [
            (2, 1, 5.0),
            (1, 1, 1.0),
            (1, 2, 1.0),
            (1, 3, 1.0),
            (2, 2, 5.0),
            (2, 3, 5.0),
        ];
        let got = replay(&reports, |h, r| {
            decide(true, r#"{"truncation_percentage": 50}"#, h, r).unwrap()
        });
        // step 1: P = {2: 5, 1: 1}, k = 1: trial 1 out at once
        assert_eq!(got, vec![(1, 1)]);
        let reports = [
            (1, 1, 1.0),
            (1, 2, 1.0),
            (1, 3, 1.0),
            (2, 1, 5.0),
            (2, 2, 5.0),
            (2, 3, 5.0),
        ];
        let got = replay(&reports, |h, r| {
            decide(true, r#"{"truncation_percentage": 50}"#, h, r).unwrap()
        });
        // trial 1 is alone at each of its steps; trial 2 is the better one
        assert_eq!(got, vec![]);
    }

    #[test]
    fn invalid_options() {
        for bad in [
            r#"{}"#,
            r#"{"truncation_percentage": 0}"#,
            r#"{"truncation_percentage": 0.5}"#,
            r#"{"truncation_percentage": 100}"#,
            r#"{"truncation_percentage": "20"}"#,
        ] {
            assert!(decide(true, bad, &[], &[1]).is_err(), "{bad}");
        }
        assert!(decide(true, r#"{"truncation_percentage": 20.0}"#, &[], &[1]).is_ok());
        assert!(decide(true, r#"{"truncation_percentage": 12.5}"#, &[], &[1]).is_ok());
        assert_eq!(
            (
                truncated(8, 12.5),
                truncated(7, 12.5),
                truncated(3, 67.0),
                truncated(100, 29.0)
            ),
            (1, 0, 2, 29)
        );
    }
}
