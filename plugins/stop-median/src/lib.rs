//! `stop-median`, Atrium's built-in median stopping policy (Azure ML's `MedianStoppingPolicy`).
//!
//! The host calls `decide` after every progress report, with `running` holding the trial(s)
//! that just reported; the decision uses only `history`. For each trial t in `running` with
//! latest step s:
//!
//! - t is evaluated only when s >= `delay_evaluation` and s % `evaluation_interval` == 0;
//! - for every OTHER trial u with at least one value at steps <= s (stopped and finished trials
//!   too), its running average = the mean of its values at steps <= s;
//! - median = the median of those averages (an even count: the mean of the two middle ones);
//! - stop t iff best_t (the best value of t at steps <= s) is strictly worse than the median
//!   (smaller when maximizing, greater when minimizing). With no other trial, nothing stops.
//!
//! Reports with a NaN value are ignored.
//!
//! Options (a JSON object; unknown keys are ignored):
//! - `evaluation_interval` (integer >= 1, default 1);
//! - `delay_evaluation` (integer >= 0, default 0).
//!
//! Invalid options make `decide` stop nothing and log a warning.

use strategy_core::traces::{Schedule, StopOptions, Traces, better, running_ids};

/// The median of `values` (non-empty): the mean of the two middle ones for an even count.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// The trials of `running` to stop given the `traces` of the sweep; `Err` for invalid options.
pub fn decide_traces(
    goal_maximize: bool,
    options: &str,
    traces: &Traces,
    running: &[u64],
) -> Result<Vec<u64>, String> {
    let schedule = Schedule::parse(&StopOptions::parse(options)?)?;
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
        let mut averages: Vec<f64> = traces
            .trial_ids()
            .filter(|&u| u != t)
            .filter_map(|u| traces.mean_upto(u, s))
            .collect();
        if averages.is_empty() {
            continue;
        }
        if better(median(&mut averages), best_t, goal_maximize) {
            stop.push(t);
        }
    }
    Ok(stop)
}

strategy_core::export_trace_stopper!("stop-median", decide_traces);

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
        (1, &[5.0, 6.0, 7.0, 8.0]),
        (2, &[4.0, 5.0, 6.0, 7.0]),
        (3, &[3.0, 3.0, 9.0]),
        (4, &[2.0, 2.0, 2.0]),
    ];

    #[test]
    fn maximize_without_delay() {
        // step 1: trial 2 (4) against trial 1's average 5: out; trial 3 (3) against median(5, 4)
        // = 4.5: out; trial 4 (2) against median(5, 4, 3) = 4: out
        assert_eq!(stops(true, "", MAX_TRACES), vec![(2, 1), (3, 1), (4, 1)]);
    }

    #[test]
    fn maximize_with_delay() {
        // step 2: trial 1 (best 6) vs median(4.5, 3, 2) = 3; trial 2 (5) vs median(5.5, 3, 2) = 3;
        // trial 3 (3) vs median(5.5, 4.5, 2) = 4.5: out; trial 4 (2) vs median(5.5, 4.5, 3) = 4.5: out
        assert_eq!(
            stops(true, r#"{"delay_evaluation": 2}"#, MAX_TRACES),
            vec![(3, 2), (4, 2)]
        );
    }

    #[test]
    fn minimize_even_counts_ties_and_interval() {
        let traces: &[(u64, &[f64])] = &[
            (1, &[10.0, 8.0, 6.0, 4.0]),
            (2, &[12.0, 10.0, 9.0, 8.0]),
            (3, &[9.0, 9.0, 9.0, 9.0]),
            (4, &[20.0, 18.0, 16.0, 15.0]),
            (5, &[11.0, 10.0, 7.0, 7.0]),
        ];
        // evaluated at steps 2 and 4. Step 2: trial 2 (best 10) vs median(9, 9, 20, 11) = 10:
        // a tie survives; trial 4 (18) vs median(9, 11, 9, 11) = 10: out; trial 5 (10) vs
        // median(9, 11, 9, 19) = 10: a tie survives. Step 4: trial 3 (9) vs median(7, 9.75,
        // 19, 9.33) = 9.54 survives; the others are better still
        assert_eq!(
            stops(false, r#"{"evaluation_interval": 2}"#, traces),
            vec![(4, 2)]
        );
    }

    #[test]
    fn best_against_running_averages() {
        // trial 2's latest value (1) is below trial 1's average, its best (9) is not
        let traces: &[(u64, &[f64])] = &[(1, &[4.0, 10.0, 11.0]), (2, &[9.0, 1.0, 1.0])];
        assert_eq!(stops(true, "", traces), vec![]);
        // the stopped trial's history still counts for the others
        let traces: &[(u64, &[f64])] = &[
            (1, &[4.0, 8.0, 8.0]),
            (2, &[1.0, 9.0]),
            (3, &[3.0, 2.0, 20.0]),
        ];
        // step 1: trial 2 (1) < 4: out; trial 3 (3) vs median(4, 1) = 2.5 survives
        // step 2: trial 1 (8) vs median(1, 3) = 2; trial 3 (best 3) vs median(6, 1) = 3.5: out
        assert_eq!(stops(true, "", traces), vec![(2, 1), (3, 2)]);
    }

    #[test]
    fn no_others_no_stop_and_invalid_options() {
        let h = [Report {
            trial: 1,
            step: 1,
            value: -100.0,
        }];
        assert_eq!(decide(true, "{}", &h, &[1]).unwrap(), Vec::<u64>::new());
        assert!(decide(true, r#"{"evaluation_interval": -2}"#, &h, &[1]).is_err());
        assert!(decide(true, "{", &h, &[1]).is_err());
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
