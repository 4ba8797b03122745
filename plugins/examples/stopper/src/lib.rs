//! A stopper plugin: the median stopping rule. A running trial is stopped when its best value so
//! far is worse than the median of the other trials' running averages at the same step.

use std::collections::BTreeMap;

use atrium_sdk::stopper::exports::atrium::plugin::early_stop::{Guest, Progress};

pub struct Plugin;

impl Guest for Plugin {
    fn decide(goal_maximize: bool, _options: String, history: Vec<Progress>, running: Vec<u64>) -> Vec<u64> {
        let mut by_trial: BTreeMap<u64, Vec<&Progress>> = BTreeMap::new();
        for p in &history {
            by_trial.entry(p.trial_id).or_default().push(p);
        }
        let better = |a: f64, b: f64| if goal_maximize { a > b } else { a < b };
        let mut stop = Vec::new();
        for id in running {
            let Some(mine) = by_trial.get(&id) else { continue };
            let step = mine.iter().map(|p| p.step).max().unwrap_or(0);
            let best = mine.iter().map(|p| p.value).fold(None, |acc: Option<f64>, v| match acc {
                Some(a) if !better(v, a) => Some(a),
                _ => Some(v),
            });
            let mut averages: Vec<f64> = by_trial
                .iter()
                .filter(|(other, _)| **other != id)
                .filter_map(|(_, ps)| {
                    let upto: Vec<f64> = ps.iter().filter(|p| p.step <= step).map(|p| p.value).collect();
                    (!upto.is_empty()).then(|| upto.iter().sum::<f64>() / upto.len() as f64)
                })
                .collect();
            if averages.is_empty() {
                continue;
            }
            averages.sort_by(|a, b| a.total_cmp(b));
            let median = averages[averages.len() / 2];
            if let Some(best) = best
                && better(median, best)
            {
                stop.push(id);
            }
        }
        stop
    }
}

atrium_sdk::export_stopper!(Plugin);
