//! Helpers for the plugins' native tests.

use crate::options::OptValue;
use crate::space::{DimSpec, Space, spec};

/// One dimension of every kind: `c` choice (a, b, c), `n` randint [-3, 5), `u` uniform
/// [-1, 2], `qu` quniform [0, 10] q 2.5, `lu` loguniform [1e-4, 1e-1], `qlu` qloguniform
/// [1, 1000] q 5, `nm` normal (mu 3, sigma 2), `qn` qnormal (mu -1, sigma 4) q 0.5.
pub fn all_kinds() -> Vec<DimSpec> {
    vec![
        spec("c", "choice", None, None, None, &["a", "b", "c"]),
        spec("n", "randint", Some(-3.0), Some(5.0), None, &[]),
        spec("u", "uniform", Some(-1.0), Some(2.0), None, &[]),
        spec("qu", "quniform", Some(0.0), Some(10.0), Some(2.5), &[]),
        spec("lu", "loguniform", Some(1e-4), Some(1e-1), None, &[]),
        spec(
            "qlu",
            "qloguniform",
            Some(1.0),
            Some(1000.0),
            Some(5.0),
            &[],
        ),
        spec("nm", "normal", Some(3.0), Some(2.0), None, &[]),
        spec("qn", "qnormal", Some(-1.0), Some(4.0), Some(0.5), &[]),
    ]
}

/// [`all_kinds`], validated.
pub fn all_kinds_space() -> Space {
    Space::parse(&all_kinds()).unwrap()
}

/// Options from (name, value) pairs.
pub fn opts(pairs: &[(&str, OptValue)]) -> Vec<(String, OptValue)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
