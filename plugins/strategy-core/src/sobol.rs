//! Sobol low-discrepancy points in base 2, 32 bits per coordinate, for up to [`MAX_DIMS`]
//! dimensions, with the direction numbers of Joe and Kuo (`new-joe-kuo-6.21201`, "search
//! criterion D6"). Points are optionally randomized by a digital shift (an XOR of each
//! coordinate with a per-dimension 32-bit key), which keeps every stratification property:
//! for any k, the first 2^k points put exactly one point in each of the 2^k equal bins of every
//! one-dimensional projection.

use std::sync::OnceLock;

/// Dimensions with direction numbers.
pub const MAX_DIMS: usize = 64;

/// (degree s, coefficients a, initial direction numbers m_1..m_s) for dimensions 2..=64; the
/// first dimension is the van der Corput sequence.
pub const JOE_KUO: [(u32, u32, &[u32]); MAX_DIMS - 1] = [
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
    (6, 19, &[1, 1, 1, 15, 7, 5]),
    (6, 22, &[1, 3, 1, 15, 13, 25]),
    (6, 25, &[1, 1, 5, 5, 19, 61]),
    (7, 1, &[1, 3, 7, 11, 23, 15, 103]),
    (7, 4, &[1, 3, 7, 13, 13, 15, 69]),
    (7, 7, &[1, 1, 3, 13, 7, 35, 63]),
    (7, 8, &[1, 3, 5, 9, 1, 25, 53]),
    (7, 14, &[1, 3, 1, 13, 9, 35, 107]),
    (7, 19, &[1, 3, 1, 5, 27, 61, 31]),
    (7, 21, &[1, 1, 5, 11, 19, 41, 61]),
    (7, 28, &[1, 3, 5, 3, 3, 13, 69]),
    (7, 31, &[1, 1, 7, 13, 1, 19, 1]),
    (7, 32, &[1, 3, 7, 5, 13, 19, 59]),
    (7, 37, &[1, 1, 3, 9, 25, 29, 41]),
    (7, 41, &[1, 3, 5, 13, 23, 1, 55]),
    (7, 42, &[1, 3, 7, 3, 13, 59, 17]),
    (7, 50, &[1, 3, 1, 3, 5, 53, 69]),
    (7, 55, &[1, 1, 5, 5, 23, 33, 13]),
    (7, 56, &[1, 1, 7, 7, 1, 61, 123]),
    (7, 59, &[1, 1, 7, 9, 13, 61, 49]),
    (7, 62, &[1, 3, 3, 5, 3, 55, 33]),
    (8, 14, &[1, 3, 1, 15, 31, 13, 49, 245]),
    (8, 21, &[1, 3, 5, 15, 31, 59, 63, 97]),
    (8, 22, &[1, 3, 1, 11, 11, 11, 77, 249]),
    (8, 38, &[1, 3, 1, 11, 27, 43, 71, 9]),
    (8, 47, &[1, 1, 7, 15, 21, 11, 81, 45]),
    (8, 49, &[1, 3, 7, 3, 25, 31, 65, 79]),
    (8, 50, &[1, 3, 1, 1, 19, 11, 3, 205]),
    (8, 52, &[1, 1, 5, 9, 19, 21, 29, 157]),
    (8, 56, &[1, 3, 7, 11, 1, 33, 89, 185]),
    (8, 67, &[1, 3, 3, 3, 15, 9, 79, 71]),
    (8, 70, &[1, 3, 7, 11, 15, 39, 119, 27]),
    (8, 84, &[1, 1, 3, 1, 11, 31, 97, 225]),
    (8, 97, &[1, 1, 1, 3, 23, 43, 57, 177]),
    (8, 103, &[1, 3, 7, 7, 17, 17, 37, 71]),
    (8, 115, &[1, 3, 1, 5, 27, 63, 123, 213]),
    (8, 122, &[1, 1, 3, 5, 11, 43, 53, 133]),
    (9, 8, &[1, 3, 5, 5, 29, 17, 47, 173, 479]),
    (9, 13, &[1, 3, 3, 11, 3, 1, 109, 9, 69]),
    (9, 16, &[1, 1, 1, 5, 17, 39, 23, 5, 343]),
    (9, 22, &[1, 3, 1, 5, 25, 15, 31, 103, 499]),
    (9, 25, &[1, 1, 1, 11, 11, 17, 63, 105, 183]),
    (9, 44, &[1, 1, 5, 11, 9, 29, 97, 231, 363]),
    (9, 47, &[1, 1, 5, 15, 19, 45, 41, 7, 383]),
    (9, 52, &[1, 3, 7, 7, 31, 19, 83, 137, 221]),
    (9, 55, &[1, 1, 1, 3, 23, 15, 111, 223, 83]),
    (9, 59, &[1, 1, 5, 13, 31, 15, 55, 25, 161]),
    (9, 62, &[1, 1, 3, 13, 25, 47, 39, 87, 257]),
];

/// The 32 direction numbers v_1..v_32 (left-aligned in 32 bits) of every dimension.
pub fn directions() -> &'static [[u32; 32]; MAX_DIMS] {
    static DIRS: OnceLock<[[u32; 32]; MAX_DIMS]> = OnceLock::new();
    DIRS.get_or_init(|| {
        let mut all = [[0u32; 32]; MAX_DIMS];
        for (j, v) in all[0].iter_mut().enumerate() {
            *v = 1u32 << (31 - j);
        }
        for (d, &(s, a, m)) in JOE_KUO.iter().enumerate() {
            let s = s as usize;
            let v = &mut all[d + 1];
            for j in 0..32 {
                if j < s {
                    v[j] = m[j] << (31 - j);
                } else {
                    // Bratley–Fox recurrence; the inner coefficients of the primitive polynomial
                    // are the bits of a, most significant first
                    let mut x = v[j - s] ^ (v[j - s] >> s);
                    for k in 1..s {
                        if (a >> (s - 1 - k)) & 1 == 1 {
                            x ^= v[j - k];
                        }
                    }
                    v[j] = x;
                }
            }
        }
        all
    })
}

/// Coordinate `dim` (< [`MAX_DIMS`]) of Sobol point `index` (< 2^32), as 32 bits (natural
/// order, not Gray-code order: every prefix of 2^k points is the same set either way).
pub fn coordinate(index: u64, dim: usize) -> u32 {
    let v = &directions()[dim];
    let mut x = 0u32;
    let mut i = index;
    let mut j = 0;
    while i > 0 && j < 32 {
        if i & 1 == 1 {
            x ^= v[j];
        }
        i >>= 1;
        j += 1;
    }
    x
}

/// Coordinate `dim` of point `index`, digitally shifted by `shift`, in [0, 1).
pub fn unit(index: u64, dim: usize, shift: u32) -> f64 {
    (coordinate(index, dim) ^ shift) as f64 / 4_294_967_296.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multiplies polynomials over GF(2) modulo `p` (degree `s`).
    fn mulmod(a: u32, b: u32, p: u32, s: u32) -> u32 {
        let mut r = 0u32;
        let mut a = a;
        let mut b = b;
        while b != 0 {
            if b & 1 == 1 {
                r ^= a;
            }
            b >>= 1;
            a <<= 1;
            if a >> s & 1 == 1 {
                a ^= p;
            }
        }
        r
    }

    #[test]
    fn direction_numbers_are_valid() {
        let mut seen = std::collections::HashSet::new();
        for &(s, a, m) in JOE_KUO.iter() {
            assert_eq!(m.len(), s as usize);
            for (i, &mi) in m.iter().enumerate() {
                assert!(mi % 2 == 1 && mi < (1 << (i + 1)), "m_{} = {mi}", i + 1);
            }
            // the polynomial x^s + a_1 x^(s-1) + ... + a_(s-1) x + 1 is primitive: x has order 2^s - 1
            let p = (1 << s) | (a << 1) | 1;
            let mut x = 1u32;
            let mut order = 0;
            loop {
                x = mulmod(x, 2, p, s);
                order += 1;
                if x == 1 {
                    break;
                }
                assert!(order < (1 << s), "not a unit");
            }
            assert_eq!(
                order,
                (1 << s) - 1,
                "polynomial ({s}, {a}) is not primitive"
            );
            assert!(seen.insert((s, a)), "polynomial ({s}, {a}) used twice");
        }
    }

    #[test]
    fn known_first_points() {
        // the classic unshifted sequence in natural order (Gray-code order swaps points 2 and 3)
        let pts: Vec<(f64, f64)> = (0..5).map(|i| (unit(i, 0, 0), unit(i, 1, 0))).collect();
        assert_eq!(
            pts,
            vec![
                (0.0, 0.0),
                (0.5, 0.5),
                (0.25, 0.75),
                (0.75, 0.25),
                (0.125, 0.625)
            ]
        );
        // dimension 3 (x^2 + x + 1, m = 1, 3): 0, 1/2, 3/4, 1/4
        let d2: Vec<f64> = (0..4).map(|i| unit(i, 2, 0)).collect();
        assert_eq!(d2, vec![0.0, 0.5, 0.75, 0.25]);
    }

    #[test]
    fn every_projection_is_stratified() {
        for k in [4u32, 8, 10] {
            let n = 1u64 << k;
            for d in 0..MAX_DIMS {
                let shift = (d as u32).wrapping_mul(0x9E37_79B9);
                let mut hit = vec![false; n as usize];
                for i in 0..n {
                    let bin = (unit(i, d, shift) * n as f64) as usize;
                    assert!(
                        !hit[bin],
                        "dim {d}: two of the first {n} points in bin {bin}"
                    );
                    hit[bin] = true;
                }
            }
        }
    }

    #[test]
    fn two_dimensional_projections_are_nets() {
        // dims 0 and 1 form a (0, 2)-sequence: 16 points, one per 4x4 cell
        let mut cells = [[0; 4]; 4];
        for i in 0..16 {
            cells[(unit(i, 0, 0) * 4.0) as usize][(unit(i, 1, 0) * 4.0) as usize] += 1;
        }
        assert!(cells.iter().flatten().all(|&c| c == 1), "{cells:?}");
    }
}
