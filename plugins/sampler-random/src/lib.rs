//! `sampler-random`, Atrium's built-in random search.
//!
//! Every dimension kind is supported (see `strategy_core::space`). Each point is drawn
//! independently of the observations, which are recorded (and kept in the snapshot) but not used.
//!
//! Options:
//! - `sobol` (flag, default `false`): draw Sobol low-discrepancy points instead of PRNG points.
//!   The Sobol sequence (Joe–Kuo direction numbers, 64 dimensions) is randomized by a digital
//!   shift (each coordinate XOR a 32-bit key drawn from the seed), which keeps its
//!   stratification: the first 2^k points fill each of the 2^k equal bins of every one-dimensional
//!   projection exactly once. Coordinates map through each dimension's inverse CDF (choice and
//!   randint by equal buckets, log kinds in log space, normal kinds through Φ⁻¹, quantized kinds
//!   rounded). Dimensions beyond the 64th, and points beyond the 2^32nd, use the PRNG.
//!
//! Without `sobol`, points come from xoshiro256** seeded by the study seed: one uniform per
//! dimension, through the same inverse CDFs.

use serde::{Deserialize, Serialize};
use strategy_core::Error;
use strategy_core::options::Options;
use strategy_core::rng::Rng;
use strategy_core::sobol;
use strategy_core::space::{Space, Value};
use strategy_core::study::{Ctx, Strategy};

/// Random search, optionally on Sobol points.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RandomSearch {
    sobol: bool,
    /// Digital-shift key per Sobol dimension.
    shifts: Vec<u32>,
    /// Sobol points drawn so far.
    index: u64,
}

impl Strategy for RandomSearch {
    const NAME: &'static str = "sampler-random";
    const OPTIONS: &'static [&'static str] = &["sobol"];

    fn new(
        space: &Space,
        _goal_maximize: bool,
        seed: u64,
        options: &Options,
    ) -> Result<Self, Error> {
        let sobol = options.flag("sobol", false)?;
        let shifts = if sobol {
            let mut r = Rng::derived(seed, 0x0005_0B01);
            (0..space.dims.len().min(sobol::MAX_DIMS))
                .map(|_| (r.next_u64() >> 32) as u32)
                .collect()
        } else {
            Vec::new()
        };
        Ok(RandomSearch {
            sobol,
            shifts,
            index: 0,
        })
    }

    fn next(&mut self, ctx: Ctx<'_>) -> Option<Vec<Value>> {
        if !self.sobol || self.index >= 1 << 32 {
            return Some(ctx.space.sample(ctx.rng));
        }
        let point = ctx
            .space
            .dims
            .iter()
            .enumerate()
            .map(|(d, dim)| {
                let u = match self.shifts.get(d) {
                    Some(&shift) => sobol::unit(self.index, d, shift),
                    None => ctx.rng.next_f64(),
                };
                dim.from_unit(u)
            })
            .collect();
        self.index += 1;
        Some(point)
    }
}

pub struct Plugin;

impl atrium_sdk::sampler::exports::atrium::plugin::sampler::Guest for Plugin {
    type Study = strategy_core::guest::SamplerStudy<RandomSearch>;
}

atrium_sdk::export_sampler!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_core::options::OptValue;
    use strategy_core::space::{DimSpec, spec};
    use strategy_core::study::Engine;
    use strategy_core::testing::{all_kinds, all_kinds_space, opts};

    type Study = Engine<RandomSearch>;

    fn values(study: &mut Study, n: u32) -> Vec<Vec<Value>> {
        study
            .suggest(n)
            .into_iter()
            .map(|(_, p)| p.into_iter().map(|(_, v)| v).collect())
            .collect()
    }

    #[test]
    fn all_kinds_in_range() {
        for sobol in [false, true] {
            let space = all_kinds_space();
            let mut s = Study::create(
                &all_kinds(),
                false,
                11,
                opts(&[("sobol", OptValue::Flag(sobol))]),
            )
            .unwrap();
            let pts = values(&mut s, 4000);
            let mut seen_choice = std::collections::BTreeSet::new();
            let mut seen_int = std::collections::BTreeSet::new();
            let (mut log_below_mid, mut normal_sum, mut normal_sq) = (0, 0.0, 0.0);
            for p in &pts {
                for (d, v) in space.dims.iter().zip(p) {
                    assert!(d.admits(v), "sobol={sobol}: {v:?} is not a value of {d:?}");
                }
                let Value::Text(c) = &p[0] else { panic!() };
                seen_choice.insert(c.clone());
                let Value::Int(i) = p[1] else { panic!() };
                seen_int.insert(i);
                let Value::Float(lu) = p[4] else { panic!() };
                if lu < 1e-4f64.sqrt() * 1e-1f64.sqrt() {
                    log_below_mid += 1;
                }
                let Value::Float(x) = p[6] else { panic!() };
                normal_sum += x;
                normal_sq += x * x;
            }
            assert_eq!(seen_choice.len(), 3);
            assert_eq!(seen_int, (-3..5).collect());
            // log-uniform: half the mass below the geometric mean of the bounds
            assert!((1800..2200).contains(&log_below_mid), "{log_below_mid}");
            let n = pts.len() as f64;
            let mean = normal_sum / n;
            let sd = (normal_sq / n - mean * mean).sqrt();
            assert!(
                (mean - 3.0).abs() < 0.15 && (sd - 2.0).abs() < 0.15,
                "normal mean {mean} sd {sd}"
            );
            // the quantized kinds reach their ends: round(0/2.5)*2.5 and round(10/2.5)*2.5
            assert!(
                pts.iter().any(|p| p[3] == Value::Float(0.0))
                    && pts.iter().any(|p| p[3] == Value::Float(10.0))
            );
        }
    }

    #[test]
    fn ids_and_determinism() {
        let mut a = Study::create(&all_kinds(), true, 5, vec![]).unwrap();
        let mut b = Study::create(&all_kinds(), true, 5, vec![]).unwrap();
        let mut c = Study::create(&all_kinds(), true, 6, vec![]).unwrap();
        let ta = a.suggest(3);
        assert_eq!(ta.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(
            ta.iter().map(|t| t.1[0].0.as_str()).collect::<Vec<_>>(),
            vec!["c", "c", "c"]
        );
        assert_eq!(ta, b.suggest(3));
        assert_ne!(ta, c.suggest(3));
        assert_eq!(
            a.suggest(2).iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert!(a.suggest(0).is_empty());
    }

    #[test]
    fn snapshot_restore_continues_identically() {
        for sobol in [false, true] {
            let mut a = Study::create(
                &all_kinds(),
                false,
                99,
                opts(&[("sobol", OptValue::Flag(sobol))]),
            )
            .unwrap();
            a.suggest(7);
            a.observe(2, Some(0.5), false);
            a.observe(3, None, true);
            a.observe(42, Some(1.0), false); // unknown: ignored
            let mut b = Study::restore(&a.snapshot()).unwrap();
            assert_eq!(b.trials(), a.trials());
            let (na, nb) = (a.suggest(9), b.suggest(9));
            assert_eq!(na, nb);
            assert_eq!(nb[0].0, 8);
            assert_eq!(a.snapshot(), b.snapshot());
        }
    }

    #[test]
    fn snapshots_follow_every_change() {
        // the settled prefix of the trials is encoded once and reused: changes must still show
        let mut a = Study::create(&all_kinds(), false, 4, vec![]).unwrap();
        let check =
            |a: &Study| assert_eq!(Study::restore(&a.snapshot()).unwrap().trials(), a.trials());
        a.suggest(4);
        a.observe(1, Some(1.0), false);
        a.observe(2, None, true);
        check(&a); // trials 1 and 2 settled, 3 and 4 pending
        a.observe(4, Some(4.0), false);
        check(&a); // 3 still pending: 4 is not cached yet
        a.observe(3, Some(3.0), false);
        check(&a);
        a.observe(1, Some(-1.0), false); // a settled trial changes
        check(&a);
        a.observe(2, Some(2.0), false);
        a.suggest(2);
        check(&a);
    }

    #[test]
    fn sobol_points_are_stratified() {
        let dims: Vec<DimSpec> = (0..40)
            .map(|i| spec(&format!("x{i}"), "uniform", Some(0.0), Some(1.0), None, &[]))
            .collect();
        let mut s =
            Study::create(&dims, false, 3, opts(&[("sobol", OptValue::Flag(true))])).unwrap();
        let pts = values(&mut s, 1024);
        for k in [2usize, 5, 8, 10] {
            let n = 1 << k;
            for d in 0..dims.len() {
                let mut bins = vec![0; n];
                for p in &pts[..n] {
                    let Value::Float(x) = p[d] else { panic!() };
                    bins[((x * n as f64) as usize).min(n - 1)] += 1;
                }
                assert!(
                    bins.iter().all(|&b| b == 1),
                    "dim {d}, first {n} points: {bins:?}"
                );
            }
        }
        // and a choice of 4 gets each value exactly 16 times in the first 64 points
        let mut s = Study::create(
            &[spec("c", "choice", None, None, None, &["a", "b", "c", "d"])],
            false,
            1,
            opts(&[("sobol", OptValue::Flag(true))]),
        )
        .unwrap();
        let pts = values(&mut s, 64);
        for c in ["a", "b", "c", "d"] {
            assert_eq!(
                pts.iter().filter(|p| p[0] == Value::Text(c.into())).count(),
                16
            );
        }
        // the PRNG is not stratified (a sanity check of the test itself)
        let mut s = Study::create(&dims, false, 3, vec![]).unwrap();
        let pts = values(&mut s, 256);
        let mut bins = [0; 256];
        for p in &pts {
            let Value::Float(x) = p[0] else { panic!() };
            bins[(x * 256.0) as usize] += 1;
        }
        assert!(bins.iter().any(|&b| b != 1));
    }

    #[test]
    fn refusals() {
        let e = Study::create(
            &all_kinds(),
            false,
            0,
            opts(&[("sobel", OptValue::Flag(true))]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::InvalidArgument(
                "unknown option 'sobel' for sampler-random; valid options: sobol".into()
            )
        );
        let e = Study::create(
            &all_kinds(),
            false,
            0,
            opts(&[("sobol", OptValue::Text("yes".into()))]),
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(m) if m.contains("'sobol'")));
        let e = Study::create(
            &[spec("x", "uniform", Some(0.0), None, None, &[])],
            false,
            0,
            vec![],
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::InvalidArgument("dimension 'x': uniform needs high".into())
        );
        assert!(matches!(
            Study::restore(b"garbage"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Study::restore(b"{}"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
