//! `sampler-tpe`, Atrium's built-in tree-structured Parzen estimator (Bergstra et al., "Algorithms
//! for Hyper-Parameter Optimization", NeurIPS 2011), shaped like hyperopt's and Optuna's
//! univariate TPE. Every dimension kind is supported.
//!
//! How a point is chosen:
//! 1. While fewer than `n_startup_trials` trials have been suggested, or no trial has completed,
//!    the point is random (the same draws as `sampler-random` without Sobol).
//! 2. Otherwise the completed observations (failed trials are excluded, pending ones ignored)
//!    are ordered best first (smallest value when minimizing, largest when maximizing; ties by
//!    trial id) and split: the first ceil(`gamma` · n) (at least 1) are "good", the rest "bad".
//! 3. Each observation gets a weight by its age within its group (Optuna's default: all 1 below
//!    25 observations, otherwise the oldest n − 25 ramp linearly from 1/n to 1).
//! 4. Per dimension, two densities are built, l(x) from the good observations and g(x) from the
//!    bad ones:
//!    - numeric kinds: a mixture of Gaussians truncated to the dimension's bounds (in log space
//!      for the log kinds; randint and the quantized kinds on bins of width 1 or q), one per
//!      observation plus a prior component (mean: the middle of the bounds, or mu for the normal
//!      kinds; sd: the width of the bounds, or sigma) of weight `prior_weight`. Bandwidths are
//!      the larger distance to the neighbouring means (the prior's mean included), clipped to
//!      [prior sd / min(100, 1 + components), prior sd]. Runs of components with equal
//!      bandwidth whose means lie within 0.2 bandwidths of each other (dense regions, where
//!      bandwidths sit at their floor) are merged into one by moment matching (same weight, mean
//!      and variance; the log density moves by about 1e-3 at most, in far tails), which bounds
//!      the number of components whatever the number of observations.
//!    - `choice`: smoothed counts, p(c) = (Σ weights of observations with c + prior_weight / K)
//!      / (Σ weights + prior_weight).
//! 5. Per dimension, `n_ei_candidates` candidates are drawn from l (quantized kinds rounded after
//!    sampling) and the one maximizing log l(x) − log g(x) is taken (probability masses of the
//!    value's bin for randint and the quantized kinds, densities otherwise); dimensions are
//!    independent, like Optuna's default.
//!
//! Options (an integer is accepted where a float is expected):
//! - `n_startup_trials` (int >= 0, default 10)
//! - `gamma` (float in (0, 1], default 0.25)
//! - `n_ei_candidates` (int >= 1, default 24)
//! - `prior_weight` (float > 0, default 1.0)
//!
//! All randomness comes from the study's seeded RNG, so the same seed and the same calls give
//! the same suggestions, also across snapshot / restore. The sorted views of the observations
//! are kept up to date incrementally (an observation is a sorted insert) and the densities are
//! rebuilt once per new observation in O(n) per dimension; scoring costs O(candidates ·
//! components), with components bounded by the merging above.

use serde::{Deserialize, Serialize};
use strategy_core::dist::{SQRT_2PI, erfc_fast, exp_neg, norm_mass_inside, norm_pdf, trunc_norm};
use strategy_core::options::Options;
use strategy_core::rng::Rng;
use strategy_core::space::{Dim, Kind, Space, Value};
use strategy_core::study::{Ctx, Outcome, Strategy, Trial};
use strategy_core::{Error, invalid};

/// TPE.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tpe {
    pub n_startup_trials: u64,
    pub gamma: f64,
    pub n_ei_candidates: u64,
    pub prior_weight: f64,
    /// Sorted views of the completed observations and the current densities: rebuilt from the
    /// trials when missing (after a restore), never stored.
    #[serde(skip)]
    cache: Option<Cache>,
}

#[derive(Clone, Debug)]
struct Cache {
    models: Vec<Model>,
    /// Completed trials as (value oriented so that smaller is better, trial index), sorted.
    done: Vec<(f64, u32)>,
    /// Per dimension, the completed trials as (coordinate, trial index), sorted.
    coords: Vec<Vec<(f64, u32)>>,
    /// The per-dimension densities for the current observations.
    densities: Option<Vec<Densities>>,
}

/// How TPE sees one dimension.
#[derive(Clone, Debug)]
enum Model {
    Cat { choices: Vec<String> },
    Num(Num),
}

/// A numeric dimension: coordinates live in [a, b] (log of the value for the log kinds).
#[derive(Clone, Debug)]
struct Num {
    kind: Kind,
    a: f64,
    b: f64,
    prior_mu: f64,
    prior_sigma: f64,
    /// Width of a value's bin (1 for randint, q for the quantized kinds; 0: continuous).
    step: f64,
    low: f64,
    high: f64,
}

impl Num {
    fn new(d: &Dim) -> Num {
        let (a, b, step) = match d.kind {
            Kind::Randint => (d.low - 0.5, d.high - 0.5, 1.0),
            Kind::Uniform => (d.low, d.high, 0.0),
            Kind::Quniform => (d.low, d.high, d.q),
            Kind::Loguniform => (d.low.ln(), d.high.ln(), 0.0),
            Kind::Qloguniform => (d.low.ln(), d.high.ln(), d.q),
            Kind::Normal => (f64::NEG_INFINITY, f64::INFINITY, 0.0),
            Kind::Qnormal => (f64::NEG_INFINITY, f64::INFINITY, d.q),
            Kind::Choice => unreachable!("choice is categorical"),
        };
        let (prior_mu, prior_sigma) = if d.kind.normal() {
            (d.low, d.high)
        } else {
            (0.5 * (a + b), b - a)
        };
        Num {
            kind: d.kind,
            a,
            b,
            prior_mu,
            prior_sigma,
            step,
            low: d.low,
            high: d.high,
        }
    }

    fn transform(&self, v: f64) -> f64 {
        if self.kind.log() {
            v.max(self.low).ln()
        } else {
            v
        }
    }

    /// The coordinate of an observed value.
    fn coord(&self, v: &Value) -> f64 {
        match v.as_f64() {
            Some(x) if x.is_finite() => self.transform(x).clamp(self.a, self.b),
            _ => self.prior_mu,
        }
    }

    /// The value at coordinate `x`, and its numeric form.
    fn value(&self, d: &Dim, x: f64) -> (Value, f64) {
        match self.kind {
            Kind::Randint => {
                let i = x.round().clamp(self.low, self.high - 1.0);
                (Value::Int(i as i64), i)
            }
            Kind::Uniform => {
                let v = x.clamp(self.low, self.high);
                (Value::Float(v), v)
            }
            Kind::Loguniform => {
                let v = x.exp().clamp(self.low, self.high);
                (Value::Float(v), v)
            }
            Kind::Normal => (Value::Float(x), x),
            Kind::Quniform | Kind::Qnormal => {
                let v = d.quantize(x);
                (Value::Float(v), v)
            }
            Kind::Qloguniform => {
                let v = d.quantize(x.exp());
                (Value::Float(v), v)
            }
            Kind::Choice => unreachable!(),
        }
    }

    /// The coordinates [lo, hi] of the bin of value `v` (quantized kinds and randint).
    fn bin(&self, v: f64) -> (f64, f64) {
        let (lo, hi) = (v - 0.5 * self.step, v + 0.5 * self.step);
        let (lo, hi) = if self.kind.log() {
            (
                if lo > 0.0 { lo.ln() } else { f64::NEG_INFINITY },
                if hi > 0.0 { hi.ln() } else { f64::NEG_INFINITY },
            )
        } else {
            (lo, hi)
        };
        (lo.clamp(self.a, self.b), hi.clamp(self.a, self.b))
    }
}

/// Truncated Gaussian mixture. Observation components are sorted by mean; the prior component is
/// kept apart (it covers the whole range).
#[derive(Clone, Debug, Default)]
struct Mixture {
    a: f64,
    b: f64,
    mu: Vec<f64>,
    inv_sigma: Vec<f64>,
    sigma: Vec<f64>,
    /// weight / (Z sigma sqrt(2 pi)): the density factor.
    coef: Vec<f64>,
    /// weight / Z: the mass factor.
    wz: Vec<f64>,
    /// Cumulative weights of the observation components; the prior takes the rest up to 1.
    cum: Vec<f64>,
    /// mu[j] + WINDOW · (largest sigma at index <= j) and mu[j] − WINDOW · (largest sigma at
    /// index >= j): both non-decreasing, so binary searches find the contiguous run of
    /// components that may reach a point.
    left_key: Vec<f64>,
    right_key: Vec<f64>,
    /// Sum of all density factors (the prior's included).
    coef_sum: f64,
    p_mu: f64,
    p_sigma: f64,
    p_inv_sigma: f64,
    p_coef: f64,
    p_wz: f64,
}

/// Components farther than this many sds from a point are left out of sums (a factor e^-32).
const WINDOW: f64 = 8.0;

/// Components of equal bandwidth whose means lie within this many bandwidths are merged.
const MERGE: f64 = 0.2;

/// Mass of the standard normal on [alpha, beta], fast where the interval is narrow.
#[inline]
fn mass(alpha: f64, beta: f64) -> f64 {
    let w = beta - alpha;
    if w < 0.02 {
        w * norm_pdf(0.5 * (alpha + beta))
    } else if w < 1.0 {
        // Simpson's rule: relative error below 1e-3 for widths under 1 sd
        w / 6.0 * (norm_pdf(alpha) + 4.0 * norm_pdf(0.5 * (alpha + beta)) + norm_pdf(beta))
    } else {
        let q = |z: f64| 0.5 * erfc_fast(z * std::f64::consts::FRAC_1_SQRT_2);
        if alpha > 0.0 {
            q(alpha) - q(beta)
        } else if beta < 0.0 {
            q(-beta) - q(-alpha)
        } else {
            1.0 - q(-alpha) - q(beta)
        }
        .max(0.0)
    }
}

impl Mixture {
    /// `points`: (mean, weight) of the observations, sorted by mean.
    fn build(points: &[(f64, f64)], num: &Num, prior_weight: f64) -> Mixture {
        Mixture::build_merging(points, num, prior_weight, MERGE)
    }

    /// [`Mixture::build`], merging runs of components of equal bandwidth whose means lie within
    /// `merge` bandwidths (0: only identical components).
    fn build_merging(points: &[(f64, f64)], num: &Num, prior_weight: f64, merge: f64) -> Mixture {
        let n = points.len();
        let k = n + 1;
        let prior_at = points.partition_point(|p| p.0 < num.prior_mu);
        let mean = |i: usize| -> f64 {
            if i < prior_at {
                points[i].0
            } else if i == prior_at {
                num.prior_mu
            } else {
                points[i - 1].0
            }
        };
        let min_sigma = num.prior_sigma / (100.0f64).min(1.0 + k as f64);
        let total_w: f64 = points.iter().map(|p| p.1).sum::<f64>() + prior_weight;
        let mut m = Mixture {
            a: num.a,
            b: num.b,
            p_mu: num.prior_mu,
            p_sigma: num.prior_sigma,
            p_inv_sigma: 1.0 / num.prior_sigma,
            ..Mixture::default()
        };
        let pw = prior_weight / total_w;
        let pz = norm_mass_inside(num.prior_mu, num.prior_sigma, num.a, num.b);
        m.p_coef = pw / (pz * num.prior_sigma * SQRT_2PI);
        m.p_wz = pw / pz;
        // the observation components: bandwidth from the neighbours (the prior's mean included)
        let mut comps: Vec<(f64, f64, f64)> = Vec::with_capacity(n); // (mu, sigma, weight)
        for i in 0..k {
            if i == prior_at {
                continue;
            }
            let mu = mean(i);
            let left = if i > 0 { Some(mu - mean(i - 1)) } else { None };
            let right = if i + 1 < k {
                Some(mean(i + 1) - mu)
            } else {
                None
            };
            let gap = match (left, right) {
                (Some(l), Some(r)) => l.max(r),
                (Some(g), None) | (None, Some(g)) => g,
                (None, None) => num.prior_sigma,
            };
            let sigma = gap.clamp(min_sigma, num.prior_sigma);
            let w = points[if i < prior_at { i } else { i - 1 }].1 / total_w;
            comps.push((mu, sigma, w));
        }
        // merge runs of equal bandwidth within `merge` bandwidths by moment matching (weight,
        // mean and variance kept): dense regions, where bandwidths sit at their floor, shrink
        // to at most ~1/merge components per bandwidth, so scoring stays cheap at any n
        let cap = comps.len();
        m.mu.reserve(cap);
        m.sigma.reserve(cap);
        m.inv_sigma.reserve(cap);
        m.coef.reserve(cap);
        m.wz.reserve(cap);
        m.cum.reserve(cap);
        let mut acc = 0.0;
        let mut i = 0;
        while i < comps.len() {
            let (mu0, sigma, _) = comps[i];
            let mut j = i + 1;
            while j < comps.len() && comps[j].1 == sigma && comps[j].0 - mu0 <= merge * sigma {
                j += 1;
            }
            let (mu, sigma, w) = if j == i + 1 {
                comps[i]
            } else {
                let run = &comps[i..j];
                let w: f64 = run.iter().map(|c| c.2).sum();
                let mu = (run.iter().map(|c| c.2 * c.0).sum::<f64>() / w)
                    .clamp(run[0].0, run[run.len() - 1].0);
                let spread = run
                    .iter()
                    .map(|c| c.2 * (c.0 - mu) * (c.0 - mu))
                    .sum::<f64>()
                    / w;
                (mu, (sigma * sigma + spread).sqrt(), w)
            };
            i = j;
            acc += w;
            let zin = norm_mass_inside(mu, sigma, num.a, num.b).max(f64::MIN_POSITIVE);
            m.mu.push(mu);
            m.sigma.push(sigma);
            m.inv_sigma.push(1.0 / sigma);
            m.coef.push(w / (zin * sigma * SQRT_2PI));
            m.wz.push(w / zin);
            m.cum.push(acc);
        }
        m.coef_sum = m.p_coef + m.coef.iter().sum::<f64>();
        let len = m.mu.len();
        m.right_key = vec![0.0; len];
        m.left_key = vec![0.0; len];
        let mut r = 0.0f64;
        for j in (0..len).rev() {
            r = r.max(WINDOW * m.sigma[j]);
            m.right_key[j] = m.mu[j] - r;
        }
        let mut l = 0.0f64;
        for j in 0..len {
            l = l.max(WINDOW * m.sigma[j]);
            m.left_key[j] = m.mu[j] + l;
        }
        m
    }

    /// A draw: a component by weight, then its truncated Gaussian.
    fn sample(&self, rng: &mut Rng) -> f64 {
        let u = rng.next_f64();
        let v = rng.next_f64();
        let j = self.cum.partition_point(|&c| c <= u);
        if j < self.mu.len() {
            trunc_norm(self.mu[j], self.sigma[j], self.a, self.b, v)
        } else {
            trunc_norm(self.p_mu, self.p_sigma, self.a, self.b, v)
        }
    }

    /// The observation components that may come within WINDOW sds of [lo, hi] (a superset
    /// of those that do).
    #[inline]
    fn near(&self, lo: f64, hi: f64) -> std::ops::Range<usize> {
        let start = self.left_key.partition_point(|&k| k < lo);
        let end = self.right_key.partition_point(|&k| k <= hi);
        start..end.max(start)
    }

    /// log of the density at coordinate x.
    fn log_density(&self, x: f64) -> f64 {
        let zp = (x - self.p_mu) * self.p_inv_sigma;
        let mut s = self.p_coef * exp_neg(0.5 * zp * zp);
        let r = self.near(x, x);
        let (mu, inv, coef) = (
            &self.mu[r.clone()],
            &self.inv_sigma[r.clone()],
            &self.coef[r],
        );
        // four independent sums: the additions need not wait on each other
        let mut acc = [0.0f64; 4];
        let (mc, ic, cc) = (
            mu.chunks_exact(4),
            inv.chunks_exact(4),
            coef.chunks_exact(4),
        );
        let (mr, ir, cr) = (mc.remainder(), ic.remainder(), cc.remainder());
        for ((m4, i4), c4) in mc.zip(ic).zip(cc) {
            for l in 0..4 {
                let z = (x - m4[l]) * i4[l];
                acc[l] += c4[l] * exp_neg(0.5 * z * z);
            }
        }
        for ((&m, &i), &c) in mr.iter().zip(ir).zip(cr) {
            let z = (x - m) * i;
            acc[0] += c * exp_neg(0.5 * z * z);
        }
        s += (acc[0] + acc[1]) + (acc[2] + acc[3]);
        // the components left out weigh at most coef_sum · e^-32: 1e-8 of s at worst here
        if s > self.coef_sum * 1e-6 {
            return s.ln();
        }
        // far from every component (possible only for the unbounded normal kinds): exact
        let terms =
            std::iter::once(self.p_coef.ln() - 0.5 * zp * zp).chain((0..self.mu.len()).map(|j| {
                let z = (x - self.mu[j]) * self.inv_sigma[j];
                self.coef[j].ln() - 0.5 * z * z
            }));
        log_sum_exp(terms)
    }

    /// log of the probability of the coordinate interval [lo, hi].
    fn log_mass(&self, lo: f64, hi: f64) -> f64 {
        if hi <= lo {
            return self.log_density(lo);
        }
        let term = |mu: f64, inv: f64| -> f64 {
            let (alpha, beta) = ((lo - mu) * inv, (hi - mu) * inv);
            if alpha > WINDOW || beta < -WINDOW {
                0.0
            } else {
                mass(alpha, beta)
            }
        };
        let mut s = self.p_wz * term(self.p_mu, self.p_inv_sigma);
        for j in self.near(lo, hi) {
            s += self.wz[j] * term(self.mu[j], self.inv_sigma[j]);
        }
        if s > 0.0 {
            s.ln()
        } else {
            self.log_density(0.5 * (lo + hi)) + (hi - lo).ln()
        }
    }
}

fn log_sum_exp(terms: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = terms.clone().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + terms.map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// The good and bad densities of one dimension.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Densities {
    Cat {
        log_good: Vec<f64>,
        log_bad: Vec<f64>,
        cum_good: Vec<f64>,
    },
    Num {
        l: Mixture,
        g: Mixture,
    },
}

/// Optuna's default weights: 1 for each of n < 25 observations; otherwise the oldest n − 25
/// ramp linearly from 1/n to 1 and the newest 25 weigh 1. `rank` 0 is the oldest.
pub fn age_weight(n: usize, rank: usize) -> f64 {
    if n < 25 {
        return 1.0;
    }
    let ramp = n - 25;
    if rank >= ramp {
        1.0
    } else if ramp == 1 {
        1.0 / n as f64
    } else {
        let first = 1.0 / n as f64;
        first + rank as f64 * (1.0 - first) / (ramp - 1) as f64
    }
}

impl Cache {
    fn build(space: &Space, goal_maximize: bool, trials: &[Trial]) -> Cache {
        let models: Vec<Model> = space
            .dims
            .iter()
            .map(|d| match d.kind {
                Kind::Choice => Model::Cat {
                    choices: d.choices.clone(),
                },
                _ => Model::Num(Num::new(d)),
            })
            .collect();
        let mut cache = Cache {
            coords: vec![Vec::new(); models.len()],
            models,
            done: Vec::new(),
            densities: None,
        };
        for (i, t) in trials.iter().enumerate() {
            if let Outcome::Complete(v) = t.outcome {
                cache
                    .done
                    .push((if goal_maximize { -v } else { v }, i as u32));
                for (d, m) in cache.models.iter().enumerate() {
                    cache.coords[d].push((coord(m, &t.params[d]), i as u32));
                }
            }
        }
        let by = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        cache.done.sort_by(by);
        for c in &mut cache.coords {
            c.sort_by(by);
        }
        cache
    }

    fn insert(&mut self, goal_maximize: bool, trial: &Trial, index: u32, value: f64) {
        let by =
            |e: &(f64, u32), key: &(f64, u32)| e.0.total_cmp(&key.0).then(e.1.cmp(&key.1)).is_lt();
        let key = (if goal_maximize { -value } else { value }, index);
        let at = self.done.partition_point(|e| by(e, &key));
        self.done.insert(at, key);
        for (d, m) in self.models.iter().enumerate() {
            let key = (coord(m, &trial.params[d]), index);
            let at = self.coords[d].partition_point(|e| by(e, &key));
            self.coords[d].insert(at, key);
        }
        self.densities = None;
    }

    fn build_densities(&self, trials: &[Trial], gamma: f64, prior_weight: f64) -> Vec<Densities> {
        let n = self.done.len();
        let n_good = ((gamma * n as f64).ceil() as usize).clamp(1, n);
        let mut good = vec![false; trials.len()];
        for &(_, i) in &self.done[..n_good] {
            good[i as usize] = true;
        }
        // weights by age within each group
        let mut weight = vec![0.0; trials.len()];
        let (mut rank_good, mut rank_bad) = (0, 0);
        for (i, t) in trials.iter().enumerate() {
            if !matches!(t.outcome, Outcome::Complete(_)) {
                continue;
            }
            if good[i] {
                weight[i] = age_weight(n_good, rank_good);
                rank_good += 1;
            } else {
                weight[i] = age_weight(n - n_good, rank_bad);
                rank_bad += 1;
            }
        }
        self.models
            .iter()
            .zip(&self.coords)
            .map(|(model, coords)| match model {
                Model::Cat { choices } => {
                    let k = choices.len();
                    let (mut cg, mut cb) = (vec![0.0; k], vec![0.0; k]);
                    for &(c, i) in coords {
                        let i = i as usize;
                        let counts = if good[i] { &mut cg } else { &mut cb };
                        counts[c as usize] += weight[i];
                    }
                    let smooth = |counts: Vec<f64>| -> Vec<f64> {
                        let total: f64 = counts.iter().sum::<f64>() + prior_weight;
                        counts
                            .iter()
                            .map(|&c| (c + prior_weight / k as f64) / total)
                            .collect()
                    };
                    let (pg, pb) = (smooth(cg), smooth(cb));
                    let mut acc = 0.0;
                    let cum_good = pg
                        .iter()
                        .map(|p| {
                            acc += p;
                            acc
                        })
                        .collect();
                    Densities::Cat {
                        log_good: pg.iter().map(|p| p.ln()).collect(),
                        log_bad: pb.iter().map(|p| p.ln()).collect(),
                        cum_good,
                    }
                }
                Model::Num(num) => {
                    let (mut pg, mut pb) =
                        (Vec::with_capacity(n_good), Vec::with_capacity(n - n_good));
                    for &(x, i) in coords {
                        let i = i as usize;
                        let points = if good[i] { &mut pg } else { &mut pb };
                        points.push((x, weight[i]));
                    }
                    Densities::Num {
                        l: Mixture::build(&pg, num, prior_weight),
                        g: Mixture::build(&pb, num, prior_weight),
                    }
                }
            })
            .collect()
    }
}

fn coord(model: &Model, v: &Value) -> f64 {
    match model {
        Model::Cat { choices } => match v {
            Value::Text(t) => choices.iter().position(|c| c == t).unwrap_or(0) as f64,
            _ => 0.0,
        },
        Model::Num(num) => num.coord(v),
    }
}

impl Tpe {
    /// The TPE choice for every dimension.
    fn propose(&mut self, ctx: Ctx<'_>) -> Vec<Value> {
        let n_cand = self.n_ei_candidates;
        let cache = self.cache.as_mut().unwrap();
        if cache.densities.is_none() {
            cache.densities =
                Some(cache.build_densities(ctx.trials, self.gamma, self.prior_weight));
        }
        let models = &cache.models;
        let dens = cache.densities.as_ref().unwrap();
        let rng = ctx.rng;
        let mut point = Vec::with_capacity(models.len());
        for ((dim, model), dens) in ctx.space.dims.iter().zip(models).zip(dens) {
            match (model, dens) {
                (
                    Model::Cat { choices },
                    Densities::Cat {
                        log_good,
                        log_bad,
                        cum_good,
                    },
                ) => {
                    let mut best: Option<(f64, usize)> = None;
                    for _ in 0..n_cand {
                        let u = rng.next_f64() * cum_good[cum_good.len() - 1];
                        let c = cum_good.partition_point(|&p| p <= u).min(choices.len() - 1);
                        let score = log_good[c] - log_bad[c];
                        if best.is_none_or(|(s, _)| score > s) {
                            best = Some((score, c));
                        }
                    }
                    point.push(Value::Text(choices[best.unwrap().1].clone()));
                }
                (Model::Num(num), Densities::Num { l, g }) => {
                    let mut best: Option<(f64, Value)> = None;
                    // scores of the quantized values met so far (candidates often repeat)
                    let mut scored: Vec<(f64, f64)> = Vec::new();
                    for _ in 0..n_cand {
                        let x = l.sample(rng);
                        let (value, v) = num.value(dim, x);
                        let score = if num.step > 0.0 {
                            match scored.iter().find(|(w, _)| *w == v) {
                                Some(&(_, s)) => s,
                                None => {
                                    let (lo, hi) = num.bin(v);
                                    let s = l.log_mass(lo, hi) - g.log_mass(lo, hi);
                                    scored.push((v, s));
                                    s
                                }
                            }
                        } else {
                            l.log_density(x) - g.log_density(x)
                        };
                        let score = if score.is_nan() {
                            f64::NEG_INFINITY
                        } else {
                            score
                        };
                        if best.as_ref().is_none_or(|(s, _)| score > *s) {
                            best = Some((score, value));
                        }
                    }
                    point.push(best.unwrap().1);
                }
                _ => unreachable!("densities follow the models"),
            }
        }
        point
    }
}

impl Strategy for Tpe {
    const NAME: &'static str = "sampler-tpe";
    const OPTIONS: &'static [&'static str] = &[
        "n_startup_trials",
        "gamma",
        "n_ei_candidates",
        "prior_weight",
    ];

    fn new(
        _space: &Space,
        _goal_maximize: bool,
        _seed: u64,
        options: &Options,
    ) -> Result<Self, Error> {
        let n_startup_trials = options.int_in("n_startup_trials", 10, 0, i64::MAX)? as u64;
        let n_ei_candidates = options.int_in("n_ei_candidates", 24, 1, 1_000_000)? as u64;
        let gamma = options.float("gamma", 0.25)?;
        if !(gamma > 0.0 && gamma <= 1.0) {
            return invalid!("option 'gamma' must be in (0, 1], got {gamma}");
        }
        let prior_weight = options.float("prior_weight", 1.0)?;
        if prior_weight <= 0.0 {
            return invalid!("option 'prior_weight' must be > 0, got {prior_weight}");
        }
        Ok(Tpe {
            n_startup_trials,
            gamma,
            n_ei_candidates,
            prior_weight,
            cache: None,
        })
    }

    fn next(&mut self, ctx: Ctx<'_>) -> Option<Vec<Value>> {
        if self.cache.is_none() {
            self.cache = Some(Cache::build(ctx.space, ctx.goal_maximize, ctx.trials));
        }
        let completed = self.cache.as_ref().unwrap().done.len();
        if (ctx.trials.len() as u64) < self.n_startup_trials || completed == 0 {
            return Some(ctx.space.sample(ctx.rng));
        }
        Some(self.propose(ctx))
    }

    fn observed(
        &mut self,
        _space: &Space,
        goal_maximize: bool,
        trials: &[Trial],
        index: usize,
        previous: &Outcome,
    ) {
        let Some(cache) = &mut self.cache else { return };
        if matches!(previous, Outcome::Complete(_)) {
            // a changed observation: rebuild from the trials on the next suggestion
            self.cache = None;
            return;
        }
        if let Outcome::Complete(v) = trials[index].outcome {
            cache.insert(goal_maximize, &trials[index], index as u32, v);
        }
    }
}

pub struct Plugin;

impl atrium_sdk::sampler::exports::atrium::plugin::sampler::Guest for Plugin {
    type Study = strategy_core::guest::SamplerStudy<Tpe>;
}

atrium_sdk::export_sampler!(Plugin);

#[cfg(test)]
mod tests;
