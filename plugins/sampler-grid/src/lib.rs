//! `sampler-grid`, Atrium's built-in grid search.
//!
//! Every dimension must be discrete and bounded:
//! - `choice`: its choices, in the order given (duplicates dropped);
//! - `randint`: every integer in [low, high);
//! - `quniform`, `qloguniform`: every multiple of q in [low, high] (both ends included where
//!   they land on a multiple), ascending, deduplicated.
//!
//! Any other kind is refused with `Unsupported("grid search needs discrete dimensions: 'lr' is
//! uniform; use choice, randint, quniform or qloguniform")`. A dimension with no grid point
//! (no multiple of q in [low, high]) and a grid of more than 1 000 000 points are
//! `InvalidArgument`.
//!
//! The points are the cartesian product in a fixed order, the first dimension slowest (the last
//! one fastest). `suggest(n)` returns the next n points (fewer at the end) and `[]` once the
//! grid is exhausted. Observations are recorded but do not change the order.
//!
//! Options:
//! - `shuffle` (flag, default `false`): visit the points in a seeded random order (a
//!   Fisher–Yates permutation of the whole grid drawn from the study seed) instead.

use serde::{Deserialize, Serialize};
use strategy_core::options::Options;
use strategy_core::rng::Rng;
use strategy_core::space::{Dim, Kind, Space, Value, tidy_step};
use strategy_core::study::{Ctx, Strategy};
use strategy_core::{Error, invalid};

/// Most points a grid may have.
pub const MAX_POINTS: u64 = 1_000_000;

/// Grid search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GridSearch {
    shuffle: bool,
    /// Points in the grid.
    total: u64,
    /// Points suggested so far.
    position: u64,
    /// Each dimension's values and, when shuffled, the visiting order: rebuilt from the space and
    /// the seed, never stored.
    #[serde(skip)]
    cache: Option<Cache>,
}

#[derive(Clone, Debug)]
struct Cache {
    values: Vec<Vec<Value>>,
    order: Option<Vec<u32>>,
}

/// The index range [kmin, kmax] of the multiples of q in [low, high], with a little tolerance for
/// bounds that are multiples of q up to rounding.
fn multiples(d: &Dim) -> (f64, f64) {
    let kmin = (d.low / d.q - 1e-9).ceil();
    let kmax = (d.high / d.q + 1e-9).floor();
    (kmin, kmax)
}

/// How many grid values dimension `d` has (as f64: may be astronomically large).
fn count(d: &Dim) -> Result<f64, Error> {
    match d.kind {
        Kind::Choice => Ok(d.choices.len() as f64),
        Kind::Randint => Ok(d.high - d.low),
        Kind::Quniform | Kind::Qloguniform => {
            let (kmin, kmax) = multiples(d);
            if kmax < kmin {
                return invalid!(
                    "dimension '{}': no multiple of q = {} lies in [{}, {}]",
                    d.name,
                    d.q,
                    d.low,
                    d.high
                );
            }
            Ok(kmax - kmin + 1.0)
        }
        other => Err(Error::Unsupported(format!(
            "grid search needs discrete dimensions: '{}' is {other}; use choice, randint, quniform or qloguniform",
            d.name
        ))),
    }
}

/// The grid values of dimension `d` (whose count was checked).
fn values(d: &Dim) -> Vec<Value> {
    match d.kind {
        Kind::Choice => d.choices.iter().map(|c| Value::Text(c.clone())).collect(),
        Kind::Randint => (d.low as i64..d.high as i64).map(Value::Int).collect(),
        _ => {
            let (kmin, kmax) = multiples(d);
            let mut out: Vec<Value> = Vec::with_capacity((kmax - kmin + 1.0) as usize);
            let mut k = kmin;
            while k <= kmax {
                let v = Value::Float(tidy_step(k * d.q, d.q));
                if out.last() != Some(&v) {
                    out.push(v);
                }
                k += 1.0;
            }
            out
        }
    }
}

impl GridSearch {
    fn cache(&mut self, space: &Space, seed: u64) -> &Cache {
        let total = self.total;
        let shuffle = self.shuffle;
        self.cache.get_or_insert_with(|| {
            let values: Vec<Vec<Value>> = space.dims.iter().map(values).collect();
            let order = shuffle.then(|| {
                let mut order: Vec<u32> = (0..total as u32).collect();
                Rng::derived(seed, 0x6121D).shuffle(&mut order);
                order
            });
            Cache { values, order }
        })
    }

    /// Points in the grid.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl Strategy for GridSearch {
    const NAME: &'static str = "sampler-grid";
    const OPTIONS: &'static [&'static str] = &["shuffle"];

    fn new(
        space: &Space,
        _goal_maximize: bool,
        _seed: u64,
        options: &Options,
    ) -> Result<Self, Error> {
        let shuffle = options.flag("shuffle", false)?;
        let mut total = 1.0f64;
        for d in &space.dims {
            total *= count(d)?;
        }
        for d in &space.dims {
            // a dimension whose duplicates collapse (tiny q against large values) shrinks the grid
            if d.kind.quantized() && total <= MAX_POINTS as f64 {
                total = total / count(d)? * values(d).len() as f64;
            }
        }
        if total > MAX_POINTS as f64 {
            return invalid!(
                "the grid has {total} points, more than {MAX_POINTS}: coarsen q or drop values"
            );
        }
        Ok(GridSearch {
            shuffle,
            total: total as u64,
            position: 0,
            cache: None,
        })
    }

    fn next(&mut self, ctx: Ctx<'_>) -> Option<Vec<Value>> {
        if self.position >= self.total {
            return None;
        }
        let position = self.position;
        let cache = self.cache(ctx.space, ctx.seed);
        let mut index = match &cache.order {
            Some(order) => order[position as usize] as u64,
            None => position,
        };
        let mut point = vec![Value::Int(0); cache.values.len()];
        for (d, vals) in cache.values.iter().enumerate().rev() {
            let n = vals.len() as u64;
            point[d] = vals[(index % n) as usize].clone();
            index /= n;
        }
        self.position += 1;
        Some(point)
    }
}

pub struct Plugin;

impl atrium_sdk::sampler::exports::atrium::plugin::sampler::Guest for Plugin {
    type Study = strategy_core::guest::SamplerStudy<GridSearch>;
}

atrium_sdk::export_sampler!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_core::options::OptValue;
    use strategy_core::space::{DimSpec, spec};
    use strategy_core::study::Engine;
    use strategy_core::testing::opts;

    type Study = Engine<GridSearch>;

    fn small() -> Vec<DimSpec> {
        vec![
            spec("c", "choice", None, None, None, &["a", "b"]),
            spec("n", "randint", Some(1.0), Some(4.0), None, &[]),
            spec("q", "quniform", Some(0.0), Some(1.0), Some(0.5), &[]),
        ]
    }

    fn points(trials: Vec<(u64, Vec<(String, Value)>)>) -> Vec<Vec<Value>> {
        trials
            .into_iter()
            .map(|(_, p)| p.into_iter().map(|(_, v)| v).collect())
            .collect()
    }

    #[test]
    fn exact_order_and_exhaustion() {
        let mut s = Study::create(&small(), false, 0, vec![]).unwrap();
        let mut expected = Vec::new();
        for c in ["a", "b"] {
            for n in 1..4 {
                for q in [0.0, 0.5, 1.0] {
                    expected.push(vec![Value::Text(c.into()), Value::Int(n), Value::Float(q)]);
                }
            }
        }
        let first = s.suggest(5);
        assert_eq!(
            first.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(
            first[0].1,
            vec![
                ("c".into(), Value::Text("a".into())),
                ("n".into(), Value::Int(1)),
                ("q".into(), Value::Float(0.0))
            ]
        );
        let mut got = points(first);
        got.extend(points(s.suggest(5)));
        got.extend(points(s.suggest(5)));
        let last = s.suggest(5);
        assert_eq!(last.len(), 3);
        assert_eq!(last[2].0, 18);
        got.extend(points(last));
        assert_eq!(got, expected);
        assert!(s.suggest(5).is_empty());
        assert!(s.suggest(1).is_empty());
        // exhaustion survives a snapshot
        let mut r = Study::restore(&s.snapshot()).unwrap();
        assert!(r.suggest(3).is_empty());
    }

    #[test]
    fn quantized_grid_points() {
        let grid = |d: DimSpec| -> Vec<Value> {
            let mut s = Study::create(&[d], false, 0, vec![]).unwrap();
            points(s.suggest(1000))
                .into_iter()
                .map(|mut p| p.remove(0))
                .collect()
        };
        let f = |xs: &[f64]| xs.iter().map(|&x| Value::Float(x)).collect::<Vec<_>>();
        assert_eq!(
            grid(spec(
                "x",
                "quniform",
                Some(0.05),
                Some(0.52),
                Some(0.1),
                &[]
            )),
            f(&[0.1, 0.2, 0.3, 0.4, 0.5])
        );
        assert_eq!(
            grid(spec("x", "quniform", Some(0.1), Some(0.5), Some(0.1), &[])),
            f(&[0.1, 0.2, 0.3, 0.4, 0.5])
        );
        assert_eq!(
            grid(spec("x", "quniform", Some(-1.0), Some(1.0), Some(1.0), &[])),
            f(&[-1.0, 0.0, 1.0])
        );
        assert_eq!(
            grid(spec(
                "x",
                "qloguniform",
                Some(1.0),
                Some(100.0),
                Some(25.0),
                &[]
            )),
            f(&[25.0, 50.0, 75.0, 100.0])
        );
        assert_eq!(
            grid(spec(
                "x",
                "qloguniform",
                Some(0.001),
                Some(0.0035),
                Some(0.001),
                &[]
            )),
            f(&[0.001, 0.002, 0.003])
        );
        assert_eq!(
            grid(spec("n", "randint", Some(-2.0), Some(1.0), None, &[])),
            vec![Value::Int(-2), Value::Int(-1), Value::Int(0)]
        );
        assert_eq!(
            grid(spec("n", "randint", None, Some(2.0), None, &[])),
            vec![Value::Int(0), Value::Int(1)]
        );
        assert_eq!(
            grid(spec("c", "choice", None, None, None, &["x", "y", "x"])),
            vec![Value::Text("x".into()), Value::Text("y".into())]
        );
    }

    #[test]
    fn refusals() {
        for (kind, low, high, q) in [
            ("uniform", 0.0, 1.0, None),
            ("loguniform", 0.1, 1.0, None),
            ("normal", 0.0, 1.0, None),
            ("qnormal", 0.0, 1.0, Some(0.1)),
        ] {
            let space = vec![
                spec("c", "choice", None, None, None, &["a"]),
                spec("lr", kind, Some(low), Some(high), q, &[]),
            ];
            let e = Study::create(&space, false, 0, vec![]).unwrap_err();
            assert_eq!(
                e,
                Error::Unsupported(format!(
                    "grid search needs discrete dimensions: 'lr' is {kind}; use choice, randint, quniform or qloguniform"
                ))
            );
        }
        let e = Study::create(
            &[spec("x", "quniform", Some(0.1), Some(0.2), Some(1.0), &[])],
            false,
            0,
            vec![],
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(m) if m.contains("no multiple of q")));
        let big = vec![
            spec("a", "randint", None, Some(1000.0), None, &[]),
            spec("b", "randint", None, Some(1001.0), None, &[]),
        ];
        let e = Study::create(&big, false, 0, vec![]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(m) if m.contains("1001000 points")));
        let ok = vec![
            spec("a", "randint", None, Some(1000.0), None, &[]),
            spec("b", "randint", None, Some(1000.0), None, &[]),
        ];
        assert!(Study::create(&ok, false, 0, vec![]).is_ok());
        let huge = vec![spec(
            "a",
            "quniform",
            Some(0.0),
            Some(1.0),
            Some(1e-12),
            &[],
        )];
        assert!(
            matches!(Study::create(&huge, false, 0, vec![]), Err(Error::InvalidArgument(m)) if m.contains("more than 1000000"))
        );
        let e = Study::create(
            &small(),
            false,
            0,
            opts(&[("random", OptValue::Flag(true))]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::InvalidArgument(
                "unknown option 'random' for sampler-grid; valid options: shuffle".into()
            )
        );
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let plain = points(
            Study::create(&small(), false, 0, vec![])
                .unwrap()
                .suggest(100),
        );
        let shuffled = |seed| {
            points(
                Study::create(
                    &small(),
                    false,
                    seed,
                    opts(&[("shuffle", OptValue::Flag(true))]),
                )
                .unwrap()
                .suggest(100),
            )
        };
        let (a, b, c) = (shuffled(7), shuffled(7), shuffled(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, plain);
        let key = |p: &Vec<Value>| format!("{p:?}");
        let mut sa: Vec<String> = a.iter().map(key).collect();
        let mut sp: Vec<String> = plain.iter().map(key).collect();
        sa.sort();
        sp.sort();
        assert_eq!(sa, sp);
    }

    #[test]
    fn snapshot_restore_mid_grid() {
        for shuffle in [false, true] {
            let mut a = Study::create(
                &small(),
                true,
                3,
                opts(&[("shuffle", OptValue::Flag(shuffle))]),
            )
            .unwrap();
            a.suggest(7);
            a.observe(1, Some(2.0), false);
            let mut b = Study::restore(&a.snapshot()).unwrap();
            assert_eq!(a.suggest(4), b.suggest(4));
            assert_eq!(a.suggest(100), b.suggest(100));
        }
    }
}
