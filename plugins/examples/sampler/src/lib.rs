//! A sampler plugin: random search. Its whole state (seed position and trial counter) is in the
//! snapshot, so the host can restore it in a fresh instance.

use std::cell::RefCell;

use atrium_sdk::sampler::atrium::plugin::types::{ParamValue, PluginError};
use atrium_sdk::sampler::exports::atrium::plugin::sampler::{Dimension, Guest, GuestStudy, Study, Trial};

pub struct Random {
    space: Vec<Dimension>,
    state: RefCell<(u64, u64)>, // (rng state, next trial id)
}

fn next(state: &mut u64) -> f64 {
    // xorshift64*
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl GuestStudy for Random {
    fn create(space: Vec<Dimension>, _goal_maximize: bool, seed: u64, _options: Vec<(String, ParamValue)>) -> Result<Study, PluginError> {
        for d in &space {
            if !matches!(d.kind.as_str(), "choice" | "randint" | "uniform" | "loguniform") {
                return Err(PluginError::Unsupported(format!("dimension '{}' of kind {}", d.name, d.kind)));
            }
        }
        Ok(Study::new(Random { space, state: RefCell::new((seed | 1, 0)) }))
    }

    fn suggest(&self, n: u32) -> Result<Vec<Trial>, PluginError> {
        let mut st = self.state.borrow_mut();
        let mut out = Vec::new();
        for _ in 0..n {
            let mut params = Vec::new();
            for d in &self.space {
                let u = next(&mut st.0);
                let (lo, hi) = (d.low.unwrap_or(0.0), d.high.unwrap_or(1.0));
                let v = match d.kind.as_str() {
                    "choice" => ParamValue::Text(d.choices[(u * d.choices.len() as f64) as usize % d.choices.len().max(1)].clone()),
                    "randint" => ParamValue::Int(lo as i64 + (u * (hi - lo)) as i64),
                    "loguniform" => ParamValue::Float((lo.ln() + u * (hi.ln() - lo.ln())).exp()),
                    _ => ParamValue::Float(lo + u * (hi - lo)),
                };
                params.push((d.name.clone(), v));
            }
            st.1 += 1;
            out.push(Trial { id: st.1, params });
        }
        Ok(out)
    }

    fn observe(&self, _trial_id: u64, _final_value: Option<f64>, _failed: bool) {}

    fn snapshot(&self) -> Vec<u8> {
        let st = self.state.borrow();
        let mut out = st.0.to_le_bytes().to_vec();
        out.extend_from_slice(&st.1.to_le_bytes());
        out
    }

    fn restore(_state: Vec<u8>) -> Result<Study, PluginError> {
        Err(PluginError::Unsupported("restore needs the search space: create the study again and replay".into()))
    }
}

pub struct Plugin;

impl Guest for Plugin {
    type Study = Random;
}

atrium_sdk::export_sampler!(Plugin);
