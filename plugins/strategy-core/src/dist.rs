//! The standard normal distribution: CDF, inverse CDF, truncated sampling.

/// sqrt(2 pi).
pub const SQRT_2PI: f64 = 2.506_628_274_631_000_5;
/// ln(sqrt(2 pi)).
pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// e^x for finite x (0 below -708, +inf above 709), relative error below 1e-14: a range
/// reduction to |r| <= ln 2 / 2 and a degree-11 Taylor polynomial, inlined and call-free (the
/// hot loops of TPE run it millions of times; `f64::exp` is a libm call, and a slow one in wasm).
#[inline]
pub fn fast_exp(x: f64) -> f64 {
    if x < -708.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    exp_core(x)
}

/// e^(-h) for h >= 0 (h above 700 gives e^-700), relative error below 1e-14, branch-free and
/// short: a 32-entry table of 2^(j/32) and a degree-5 polynomial on |r| <= ln 2 / 64.
#[inline]
pub fn exp_neg(h: f64) -> f64 {
    const INV_STEP: f64 = 32.0 * std::f64::consts::LOG2_E;
    const STEP_HI: f64 = LN2_HI / 32.0;
    const STEP_LO: f64 = LN2_LO / 32.0;
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let x = -(h.min(700.0));
    let k = (x * INV_STEP + SHIFTER) - SHIFTER;
    let r = (x - k * STEP_HI) - k * STEP_LO;
    let ki = k as i64;
    let scale = f64::from_bits(EXP2_32[(ki & 31) as usize])
        * f64::from_bits((((ki >> 5) + 1023) as u64) << 52);
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0)))));
    scale * p
}

/// ln 2 split in two (fdlibm): LN2_HI has its low bits zero, so k · LN2_HI is exact.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// 2^(j/32), j = 0..32, as f64 bits (correctly rounded).
const EXP2_32: [u64; 32] = [
    0x3ff0000000000000, // 2^(0/32)
    0x3ff059b0d3158574, // 2^(1/32)
    0x3ff0b5586cf9890f, // 2^(2/32)
    0x3ff11301d0125b51, // 2^(3/32)
    0x3ff172b83c7d517b, // 2^(4/32)
    0x3ff1d4873168b9aa, // 2^(5/32)
    0x3ff2387a6e756238, // 2^(6/32)
    0x3ff29e9df51fdee1, // 2^(7/32)
    0x3ff306fe0a31b715, // 2^(8/32)
    0x3ff371a7373aa9cb, // 2^(9/32)
    0x3ff3dea64c123422, // 2^(10/32)
    0x3ff44e086061892d, // 2^(11/32)
    0x3ff4bfdad5362a27, // 2^(12/32)
    0x3ff5342b569d4f82, // 2^(13/32)
    0x3ff5ab07dd485429, // 2^(14/32)
    0x3ff6247eb03a5585, // 2^(15/32)
    0x3ff6a09e667f3bcd, // 2^(16/32)
    0x3ff71f75e8ec5f74, // 2^(17/32)
    0x3ff7a11473eb0187, // 2^(18/32)
    0x3ff82589994cce13, // 2^(19/32)
    0x3ff8ace5422aa0db, // 2^(20/32)
    0x3ff93737b0cdc5e5, // 2^(21/32)
    0x3ff9c49182a3f090, // 2^(22/32)
    0x3ffa5503b23e255d, // 2^(23/32)
    0x3ffae89f995ad3ad, // 2^(24/32)
    0x3ffb7f76f2fb5e47, // 2^(25/32)
    0x3ffc199bdd85529c, // 2^(26/32)
    0x3ffcb720dcef9069, // 2^(27/32)
    0x3ffd5818dcfba487, // 2^(28/32)
    0x3ffdfc97337b9b5f, // 2^(29/32)
    0x3ffea4afa2a490da, // 2^(30/32)
    0x3fff50765b6e4540, // 2^(31/32)
];

#[inline(always)]
fn exp_core(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // round to nearest without a call: adding 1.5 · 2^52 pushes the fraction out
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let k = (x * LOG2E + SHIFTER) - SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Horner from the degree-11 coefficient 1/11! down to 1
    const C: [f64; 12] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
    ];
    let mut p = C[11];
    let mut i = 11;
    while i > 0 {
        i -= 1;
        p = p * r + C[i];
    }
    p * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// erfc(x) with relative error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit
/// `erfcc`): one exponential and one division, for the many truncation masses of TPE.
#[inline]
pub fn erfc_fast(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * fast_exp(poly);
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Standard normal CDF Φ(z), accurate in the lower tail (through erfc).
pub fn norm_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * std::f64::consts::FRAC_1_SQRT_2)
}

/// Standard normal density φ(z).
#[inline]
pub fn norm_pdf(z: f64) -> f64 {
    fast_exp(-0.5 * z * z) * (1.0 / SQRT_2PI)
}

/// Mass of N(mu, sigma²) outside [a, b] neglected below this many sds from a bound (< 1e-16).
const NEGLIGIBLE_Z: f64 = 8.3;

/// Mass of N(mu, sigma²) inside [a, b] (either may be infinite), computing only the tails that
/// matter; for mu inside [a, b] through [`erfc_fast`] (absolute error below 1e-7).
pub fn norm_mass_inside(mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    let (alpha, beta) = ((a - mu) / sigma, (b - mu) / sigma);
    if alpha > 0.0 || beta < 0.0 {
        return std_norm_mass(alpha, beta);
    }
    let tail = |z: f64| 0.5 * erfc_fast(z * std::f64::consts::FRAC_1_SQRT_2);
    let lower = if alpha < -NEGLIGIBLE_Z {
        0.0
    } else {
        tail(-alpha)
    };
    let upper = if beta > NEGLIGIBLE_Z { 0.0 } else { tail(beta) };
    1.0 - lower - upper
}

/// Inverse standard normal CDF Φ⁻¹(p): Acklam's rational approximation refined by one Halley
/// step (close to full double precision). `p <= 0` gives -inf, `p >= 1` gives +inf.
pub fn norm_ppf(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    // one Halley step on Φ(x) - p; in the upper tail work on the mirrored lower tail
    if x > 0.0 {
        let pm = 1.0 - p;
        let e = norm_cdf(-x) - pm;
        let u = e * SQRT_2PI * (0.5 * x * x).exp();
        let y = -x - u / (1.0 + (-x) * u / 2.0);
        if y.is_finite() { -y } else { x }
    } else {
        let e = norm_cdf(x) - p;
        let u = e * SQRT_2PI * (0.5 * x * x).exp();
        let y = x - u / (1.0 + x * u / 2.0);
        if y.is_finite() { y } else { x }
    }
}

/// A draw of the standard normal truncated to [lo, hi] (lo < hi, either may be infinite) by
/// inverting the CDF at `u` in [0, 1).
pub fn std_trunc_norm(lo: f64, hi: f64, u: f64) -> f64 {
    if lo > 0.0 {
        // both bounds in the upper tail: mirror into the lower tail, where Φ is accurate
        return -std_trunc_norm(-hi, -lo, 1.0 - u);
    }
    let pl = norm_cdf(lo);
    let ph = norm_cdf(hi);
    if ph - pl <= 0.0 {
        // the interval is beyond double precision's reach of the tail: its end nearest the mean
        return if hi <= 0.0 { hi } else { lo };
    }
    // kept inside (0, 1) so an infinite bound never yields an infinite draw
    let p = (pl + u * (ph - pl)).clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0);
    norm_ppf(p).clamp(lo, hi)
}

/// A draw of N(mu, sigma²) truncated to [a, b] (a < b, either may be infinite), using `u` in
/// [0, 1).
pub fn trunc_norm(mu: f64, sigma: f64, a: f64, b: f64, u: f64) -> f64 {
    let z = std_trunc_norm((a - mu) / sigma, (b - mu) / sigma, u);
    (mu + sigma * z).clamp(a, b)
}

/// Probability mass of the standard normal on [lo, hi] (lo <= hi), accurate in both tails.
pub fn std_norm_mass(lo: f64, hi: f64) -> f64 {
    if lo > 0.0 {
        (norm_cdf(-lo) - norm_cdf(-hi)).max(0.0)
    } else {
        (norm_cdf(hi) - norm_cdf(lo)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_ppf_roundtrip() {
        for &p in &[
            1e-300,
            1e-12,
            1e-6,
            0.001,
            0.02,
            0.025,
            0.1,
            0.3,
            0.5,
            0.7,
            0.9,
            0.975,
            0.999,
            1.0 - 1e-9,
        ] {
            let x = norm_ppf(p);
            let back = norm_cdf(x);
            assert!(((back - p) / p).abs() < 1e-12, "p={p} x={x} back={back}");
        }
        assert!((norm_ppf(0.975) - 1.959_963_984_540_054).abs() < 1e-13);
        assert_eq!(norm_ppf(0.5), 0.0);
    }

    #[test]
    fn truncated_draws_stay_inside() {
        let mut r = crate::rng::Rng::new(3);
        for &(mu, s, a, b) in &[
            (0.0, 1.0, -1.0, 2.0),
            (5.0, 0.1, 0.0, 1.0),
            (-5.0, 0.1, 0.0, 1.0),
            (0.5, 10.0, 0.0, 1.0),
            (0.0, 1.0, f64::NEG_INFINITY, f64::INFINITY),
        ] {
            for _ in 0..1000 {
                let x = trunc_norm(mu, s, a, b, r.next_f64());
                assert!(x >= a && x <= b && x.is_finite(), "{x} outside [{a}, {b}]");
            }
        }
        // u = 0 with an unbounded side stays finite
        assert!(trunc_norm(0.0, 1.0, f64::NEG_INFINITY, f64::INFINITY, 0.0).is_finite());
        assert!(trunc_norm(0.0, 1.0, 2.0, f64::INFINITY, 0.999_999_999_999_999_9).is_finite());
        // the mean of N(0,1) truncated to [0, inf) is sqrt(2/pi)
        let n = 20_000;
        let mean: f64 = (0..n)
            .map(|_| trunc_norm(0.0, 1.0, 0.0, f64::INFINITY, r.next_f64()))
            .sum::<f64>()
            / n as f64;
        assert!(
            (mean - (2.0 / std::f64::consts::PI).sqrt()).abs() < 0.02,
            "{mean}"
        );
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut x = -708.0;
        while x < 709.0 {
            let (f, e) = (fast_exp(x), x.exp());
            assert!(((f - e) / e).abs() < 1e-14, "exp({x}): {f} vs {e}");
            x += 0.0137;
        }
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(-1000.0), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
        assert!((exp_neg(32.5) / (-32.5f64).exp() - 1.0).abs() < 1e-14);
        assert!(exp_neg(1e300) > 0.0 && exp_neg(1e300) < 1e-300);
        let mut h = 0.0;
        while h < 700.0 {
            assert!(
                (exp_neg(h) / (-h).exp() - 1.0).abs() < 1e-14,
                "exp_neg({h})"
            );
            h += 0.00731;
        }
        let mut x = -6.0;
        while x < 26.0 {
            let (f, e) = (erfc_fast(x), libm::erfc(x));
            assert!(((f - e) / e).abs() < 1.3e-7, "erfc({x}): {f} vs {e}");
            x += 0.01;
        }
        assert!((norm_mass_inside(0.0, 1.0, -1.0, 1.0) - std_norm_mass(-1.0, 1.0)).abs() < 1e-7);
        assert!((norm_mass_inside(0.3, 0.1, 0.0, 1.0) - std_norm_mass(-3.0, 7.0)).abs() < 1e-7);
        assert_eq!(norm_mass_inside(0.5, 0.01, 0.0, 1.0), 1.0);
    }

    #[test]
    fn masses() {
        assert!(
            (std_norm_mass(-1.959_963_984_540_054, 1.959_963_984_540_054) - 0.95).abs() < 1e-12
        );
        assert!(std_norm_mass(30.0, 31.0) > 0.0);
        assert!((std_norm_mass(f64::NEG_INFINITY, f64::INFINITY) - 1.0).abs() < 1e-15);
    }
}
