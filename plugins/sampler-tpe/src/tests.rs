use super::*;
use strategy_core::options::OptValue;
use strategy_core::space::{DimSpec, spec};
use strategy_core::study::Engine;
use strategy_core::testing::{all_kinds, all_kinds_space, opts};

type Study = Engine<Tpe>;
type Suggestions = Vec<(u64, Vec<(String, Value)>)>;

/// A 4-D problem with a known optimum (0 at lr = 10^-2.5, x = 1.3, n = 7, c = "c"), minimized.
fn problem() -> Vec<DimSpec> {
    vec![
        spec("lr", "loguniform", Some(1e-5), Some(1.0), None, &[]),
        spec("x", "uniform", Some(-5.0), Some(5.0), None, &[]),
        spec("n", "randint", Some(0.0), Some(10.0), None, &[]),
        spec("c", "choice", None, None, None, &["a", "b", "c", "d", "e"]),
    ]
}

fn objective(p: &[(String, Value)]) -> f64 {
    let get = |name: &str| &p.iter().find(|(k, _)| k == name).unwrap().1;
    let Value::Float(lr) = get("lr") else {
        panic!()
    };
    let Value::Float(x) = get("x") else { panic!() };
    let Value::Int(n) = get("n") else { panic!() };
    let Value::Text(c) = get("c") else { panic!() };
    (lr.log10() + 2.5).powi(2)
        + ((x - 1.3) / 2.0).powi(2)
        + (*n - 7).abs() as f64 / 3.0
        + if c == "c" { 0.0 } else { 1.0 }
}

/// Runs `trials` sequential trials on `problem()`; returns every suggestion and the best value.
fn run(
    seed: u64,
    trials: usize,
    options: Vec<(String, OptValue)>,
    maximize: bool,
) -> (Suggestions, f64) {
    let mut s = Study::create(&problem(), maximize, seed, options).unwrap();
    let mut all = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let t = s.suggest(1).remove(0);
        let f = objective(&t.1);
        best = best.min(f);
        s.observe(t.0, Some(if maximize { -f } else { f }), false);
        all.push(t);
    }
    (all, best)
}

#[test]
fn deterministic() {
    let (a, _) = run(3, 30, vec![], false);
    let (b, _) = run(3, 30, vec![], false);
    let (c, _) = run(4, 30, vec![], false);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        a.iter().map(|t| t.0).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
}

#[test]
fn maximize_flips_the_ordering() {
    // minimizing f and maximizing -f see the same good/bad split, hence the same suggestions
    let (a, _) = run(9, 30, vec![], false);
    let (b, _) = run(9, 30, vec![], true);
    assert_eq!(a, b);
    // while maximizing f itself goes elsewhere
    let mut s = Study::create(&problem(), true, 9, vec![]).unwrap();
    let mut other = Vec::new();
    for _ in 0..30 {
        let t = s.suggest(1).remove(0);
        s.observe(t.0, Some(objective(&t.1)), false);
        other.push(t);
    }
    assert_eq!(a[..10], other[..10]); // the random start-up is the same
    assert_ne!(a[10..], other[10..]);
}

#[test]
fn snapshot_restore_mid_study_continues_identically() {
    let mut a = Study::create(&problem(), false, 21, vec![]).unwrap();
    for _ in 0..25 {
        let t = a.suggest(1).remove(0);
        a.observe(t.0, Some(objective(&t.1)), false);
    }
    // a pending trial and a failed one at the moment of the snapshot
    let pending = a.suggest(2);
    a.observe(pending[1].0, None, true);
    let mut b = Study::restore(&a.snapshot()).unwrap();
    assert_eq!(a.snapshot(), b.snapshot());
    for _ in 0..15 {
        let (ta, tb) = (a.suggest(2), b.suggest(2));
        assert_eq!(ta, tb);
        for t in &ta {
            a.observe(t.0, Some(objective(&t.1)), false);
            b.observe(t.0, Some(objective(&t.1)), false);
        }
    }
    // a late observation of the old pending trial, then a restore of a restore
    a.observe(pending[0].0, Some(0.25), false);
    b.observe(pending[0].0, Some(0.25), false);
    let mut c = Study::restore(&b.snapshot()).unwrap();
    let ta = a.suggest(3);
    assert_eq!(ta, b.suggest(3));
    assert_eq!(ta, c.suggest(3));
}

#[test]
fn failed_and_pending_trials_are_ignored() {
    let make = || {
        let mut s = Study::create(&problem(), false, 5, vec![]).unwrap();
        let ts = s.suggest(15);
        for t in &ts[..14] {
            s.observe(t.0, Some(objective(&t.1)), false);
        }
        (s, ts[14].clone())
    };
    let (mut pending, _) = make();
    let (mut failed, last) = make();
    failed.observe(last.0, None, true);
    let (mut nan, last) = make();
    nan.observe(last.0, Some(f64::NAN), false);
    let (mut done, last) = make();
    done.observe(last.0, Some(-100.0), false);
    let p = pending.suggest(3);
    assert_eq!(p, failed.suggest(3));
    assert_eq!(p, nan.suggest(3));
    assert_ne!(p, done.suggest(3));
    // re-observing a completed trial (rebuild path) equals observing it that way from the start
    let (mut x, last) = make();
    x.observe(last.0, Some(5.0), false);
    x.observe(last.0, Some(-100.0), false);
    let (mut y, last) = make();
    y.observe(last.0, Some(-100.0), false);
    assert_eq!(x.suggest(3), y.suggest(3));
}

#[test]
fn every_kind_stays_in_range() {
    let space = all_kinds_space();
    for maximize in [false, true] {
        let mut s = Study::create(
            &all_kinds(),
            maximize,
            8,
            opts(&[("n_startup_trials", OptValue::Int(5))]),
        )
        .unwrap();
        for round in 0..60 {
            let batch = s.suggest(if round % 3 == 0 { 3 } else { 1 });
            for (id, params) in batch {
                for (d, (name, v)) in space.dims.iter().zip(&params) {
                    assert_eq!(&d.name, name);
                    assert!(d.admits(v), "trial {id}: {v:?} is not a value of {d:?}");
                }
                // a value that prefers small randint, loguniform and normal values
                let f = params.iter().filter_map(|(_, v)| v.as_f64()).sum::<f64>();
                if id % 7 == 0 {
                    s.observe(id, None, true);
                } else {
                    s.observe(id, Some(f), false);
                }
            }
        }
    }
}

#[test]
fn concentrates_near_the_optimum() {
    // 1-D: after the start-up, suggestions cluster around x = 0.3
    let mut s = Study::create(
        &[spec("x", "uniform", Some(0.0), Some(1.0), None, &[])],
        false,
        1,
        vec![],
    )
    .unwrap();
    let mut late = Vec::new();
    for i in 0..80 {
        let (id, p) = s.suggest(1).remove(0);
        let Value::Float(x) = p[0].1 else { panic!() };
        if i >= 40 {
            late.push(x);
        }
        s.observe(id, Some((x - 0.3).powi(2)), false);
    }
    let near = late.iter().filter(|x| (*x - 0.3).abs() < 0.1).count();
    assert!(
        near >= 30,
        "{near} of 40 late suggestions within 0.1 of the optimum: {late:?}"
    );
}

#[test]
fn tpe_beats_random() {
    let seeds: Vec<u64> = (1..=10).collect();
    let mean = |options: &dyn Fn() -> Vec<(String, OptValue)>| -> f64 {
        seeds
            .iter()
            .map(|&s| run(s, 40, options(), false).1)
            .sum::<f64>()
            / seeds.len() as f64
    };
    let tpe = mean(&|| vec![]);
    // random search: TPE that never leaves its start-up, i.e. exactly sampler-random's PRNG draws
    let random = mean(&|| opts(&[("n_startup_trials", OptValue::Int(1000))]));
    println!("best after 40 trials, mean over 10 seeds: TPE {tpe:.4}, random {random:.4}");
    assert!(tpe < random, "TPE {tpe} is not better than random {random}");
}

#[test]
fn options() {
    let e = Study::create(
        &problem(),
        false,
        0,
        opts(&[("n_startup", OptValue::Int(3))]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::InvalidArgument(
            "unknown option 'n_startup' for sampler-tpe; valid options: n_startup_trials, gamma, n_ei_candidates, prior_weight".into()
        )
    );
    assert!(
        matches!(Study::create(&problem(), false, 0, opts(&[("gamma", OptValue::Float(0.0))])), Err(Error::InvalidArgument(m)) if m.contains("gamma"))
    );
    assert!(matches!(
        Study::create(
            &problem(),
            false,
            0,
            opts(&[("gamma", OptValue::Float(1.5))])
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Study::create(
            &problem(),
            false,
            0,
            opts(&[("prior_weight", OptValue::Int(0))])
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Study::create(
            &problem(),
            false,
            0,
            opts(&[("n_ei_candidates", OptValue::Int(0))])
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Study::create(
            &problem(),
            false,
            0,
            opts(&[("n_startup_trials", OptValue::Float(2.5))])
        ),
        Err(Error::InvalidArgument(_))
    ));
    let s = Study::create(
        &problem(),
        false,
        0,
        opts(&[
            ("gamma", OptValue::Int(1)),
            ("prior_weight", OptValue::Int(2)),
            ("n_startup_trials", OptValue::Int(0)),
            ("n_ei_candidates", OptValue::Float(8.0)),
        ]),
    )
    .unwrap();
    let t = s.strategy();
    assert_eq!(
        (
            t.gamma,
            t.prior_weight,
            t.n_startup_trials,
            t.n_ei_candidates
        ),
        (1.0, 2.0, 0, 8)
    );
    let d = Study::create(&problem(), false, 0, vec![]).unwrap();
    let t = d.strategy();
    assert_eq!(
        (
            t.gamma,
            t.prior_weight,
            t.n_startup_trials,
            t.n_ei_candidates
        ),
        (0.25, 1.0, 10, 24)
    );
    assert!(matches!(
        Study::restore(b"\x00\x01"),
        Err(Error::InvalidArgument(_))
    ));
    // another sampler's snapshot is refused by name
    let snap = d.snapshot();
    let at = snap.windows(11).position(|w| w == b"sampler-tpe").unwrap();
    let mut other = snap.clone();
    other[at..at + 11].copy_from_slice(b"sampler-abc");
    assert!(
        matches!(Study::restore(&other), Err(Error::InvalidArgument(m)) if m.contains("'sampler-abc'"))
    );
    // truncated and padded snapshots are refused
    let mut s2 = Study::create(&problem(), false, 0, vec![]).unwrap();
    for t in s2.suggest(3) {
        s2.observe(t.0, Some(1.0), false);
    }
    let snap = s2.snapshot();
    for cut in [snap.len() - 1, snap.len() - 9, 20, 8, 0] {
        assert!(
            matches!(Study::restore(&snap[..cut]), Err(Error::InvalidArgument(_))),
            "cut at {cut}"
        );
    }
    let mut padded = snap.clone();
    padded.push(0);
    assert!(Study::restore(&padded).is_err());
    assert!(Study::restore(&snap).is_ok());
}

#[test]
fn age_weights() {
    assert_eq!(age_weight(10, 0), 1.0);
    assert_eq!(age_weight(26, 0), 1.0 / 26.0);
    assert_eq!(age_weight(26, 1), 1.0);
    assert_eq!(age_weight(35, 0), 1.0 / 35.0);
    assert!((age_weight(35, 9) - 1.0).abs() < 1e-12);
    assert_eq!(age_weight(35, 10), 1.0);
    assert!(age_weight(35, 4) > age_weight(35, 3));
}

#[test]
fn merging_components_barely_changes_the_densities() {
    // 2000 observations crowded around 0.3 and spread elsewhere, on a uniform [0, 1] dimension
    let d = Dim::parse(&spec("x", "uniform", Some(0.0), Some(1.0), None, &[])).unwrap();
    let num = Num::new(&d);
    let mut rng = Rng::new(4);
    let mut pts: Vec<(f64, f64)> = (0..2000)
        .map(|i| {
            let x = if i % 4 == 0 {
                rng.next_f64()
            } else {
                (0.3 + 0.02 * rng.normal()).clamp(0.0, 1.0)
            };
            (x, age_weight(2000, i))
        })
        .collect();
    pts.sort_by(|p, q| p.0.total_cmp(&q.0));
    let exact = Mixture::build_merging(&pts, &num, 1.0, 0.0);
    let merged = Mixture::build(&pts, &num, 1.0);
    assert!(
        merged.mu.len() * 5 < exact.mu.len(),
        "{} of {} components left",
        merged.mu.len(),
        exact.mu.len()
    );
    let mut worst = 0.0f64;
    for i in 0..=1000 {
        let x = i as f64 / 1000.0;
        worst = worst.max((merged.log_density(x) - exact.log_density(x)).abs());
    }
    assert!(worst < 5e-3, "log density differs by {worst}");
}

#[test]
fn beats_random_on_the_hosts_objective() {
    // the objective of the host's own check (host/src/plugins/strategy.rs), seeds 0..10
    let space = vec![
        spec("lr", "loguniform", Some(1e-5), Some(1.0), None, &[]),
        spec("x", "uniform", Some(0.0), Some(1.0), None, &[]),
        spec("n", "randint", Some(0.0), Some(20.0), None, &[]),
        spec("act", "choice", None, None, None, &["a", "b", "c", "d"]),
    ];
    let objective = |p: &[(String, Value)]| -> f64 {
        p.iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("lr", Value::Float(f)) => (f.log10() + 2.0).powi(2),
                ("x", Value::Float(f)) => 4.0 * (f - 0.3).powi(2),
                ("n", Value::Int(i)) => ((*i - 7) as f64 / 5.0).powi(2),
                ("act", Value::Text(t)) => {
                    if t == "b" {
                        0.0
                    } else {
                        0.5
                    }
                }
                other => panic!("{other:?}"),
            })
            .sum()
    };
    let mean = |options: Vec<(String, OptValue)>| -> f64 {
        (0..10u64)
            .map(|seed| {
                let mut s = Study::create(&space, false, seed, options.clone()).unwrap();
                let mut best = f64::INFINITY;
                for _ in 0..40 {
                    let (id, p) = s.suggest(1).remove(0);
                    let v = objective(&p);
                    best = best.min(v);
                    s.observe(id, Some(v), false);
                }
                best
            })
            .sum::<f64>()
            / 10.0
    };
    let (tpe, random) = (
        mean(vec![]),
        mean(opts(&[("n_startup_trials", OptValue::Int(1000))])),
    );
    println!(
        "host objective, best after 40 trials, mean over seeds 0..10: TPE {tpe:.4}, random {random:.4}"
    );
    assert!(tpe < random, "TPE {tpe} is not better than random {random}");
}

#[test]
fn mixture_densities_integrate_to_one() {
    for kind in ["uniform", "loguniform", "normal"] {
        let d = Dim::parse(&spec(
            "x",
            kind,
            Some(if kind == "normal" { 0.0 } else { 0.01 }),
            Some(1.0),
            None,
            &[],
        ))
        .unwrap();
        let num = Num::new(&d);
        let (a, b) = if kind == "normal" {
            (-12.0, 12.0)
        } else {
            (num.a, num.b)
        };
        let pts: Vec<(f64, f64)> = [0.2, 0.25, 0.25, 0.9]
            .iter()
            .map(|&x| (num.transform(x).clamp(num.a, num.b), 1.0))
            .collect();
        let mut sorted = pts.clone();
        sorted.sort_by(|p, q| p.0.total_cmp(&q.0));
        let m = Mixture::build(&sorted, &num, 1.0);
        let n = 200_000;
        let h = (b - a) / n as f64;
        let total: f64 = (0..n)
            .map(|i| m.log_density(a + (i as f64 + 0.5) * h).exp() * h)
            .sum();
        assert!((total - 1.0).abs() < 1e-3, "{kind}: {total}");
        let mass = m.log_mass(a, b).exp();
        assert!((mass - 1.0).abs() < 1e-3, "{kind}: mass {mass}");
    }
}
