//! Chart downsampling: a series reduced to the chart's pixel width, keeping each bucket's
//! minimum and maximum (so a spike survives at any zoom) and its last point.

/// One point of a series: x (step, or milliseconds) and y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Step, wall time or relative time.
    pub x: f64,
    /// The value (NaN and infinities are dropped before bucketing).
    pub y: f64,
}

/// Reduces `points` (sorted by x) within `[from, to]` to at most `2 * buckets + 2` points:
/// the range's first and last points and, per equal-width x bucket, its min and max in x order.
/// A range with no more points than `2 * buckets` is returned as it is.
pub fn min_max(points: &[Point], buckets: usize, from: Option<f64>, to: Option<f64>) -> Vec<Point> {
    let lo = from.unwrap_or(f64::NEG_INFINITY);
    let hi = to.unwrap_or(f64::INFINITY);
    let start = points.partition_point(|p| p.x < lo);
    let end = points.partition_point(|p| p.x <= hi);
    let range: Vec<Point> = points[start..end.max(start)]
        .iter()
        .copied()
        .filter(|p| p.y.is_finite())
        .collect();
    let buckets = buckets.max(1);
    if range.len() <= 2 * buckets {
        return range;
    }
    let (x0, x1) = (range[0].x, range[range.len() - 1].x);
    let width = (x1 - x0) / buckets as f64;
    if width <= 0.0 {
        // every point at one x: its extremes are all a chart can show
        return extremes(&range).to_vec();
    }
    let mut out = Vec::with_capacity(2 * buckets + 2);
    out.push(range[0]);
    let mut i = 0;
    while i < range.len() {
        let b = (((range[i].x - x0) / width) as usize).min(buckets - 1);
        let bucket_end = x0 + (b + 1) as f64 * width;
        let mut j = i + 1;
        while j < range.len() && (range[j].x < bucket_end || b == buckets - 1) {
            j += 1;
        }
        for p in extremes(&range[i..j]) {
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
        i = j;
    }
    let last = range[range.len() - 1];
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// The minimum and maximum of a non-empty slice, in x order (one point when they coincide).
fn extremes(s: &[Point]) -> Vec<Point> {
    let (mut mn, mut mx) = (0, 0);
    for (k, p) in s.iter().enumerate() {
        if p.y < s[mn].y {
            mn = k;
        }
        if p.y > s[mx].y {
            mx = k;
        }
    }
    match mn.cmp(&mx) {
        std::cmp::Ordering::Equal => vec![s[mn]],
        std::cmp::Ordering::Less => vec![s[mn], s[mx]],
        std::cmp::Ordering::Greater => vec![s[mx], s[mn]],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                x: i as f64,
                y: (i as f64 / 100.0).sin(),
            })
            .collect()
    }

    #[test]
    fn small_series_are_kept_whole() {
        let p = line(50);
        assert_eq!(min_max(&p, 100, None, None), p);
    }

    #[test]
    fn a_spike_survives_and_the_size_is_bounded() {
        let mut p = line(1_000_000);
        p[123_457].y = 1e6;
        p[765_432].y = -1e6;
        let out = min_max(&p, 800, None, None);
        assert!(out.len() <= 2 * 800 + 2, "{}", out.len());
        assert!(out.iter().any(|q| q.y == 1e6 && q.x == 123_457.0));
        assert!(out.iter().any(|q| q.y == -1e6 && q.x == 765_432.0));
        assert!(out.windows(2).all(|w| w[0].x <= w[1].x), "x order kept");
        assert_eq!(out.first().unwrap().x, 0.0);
        assert_eq!(out.last().unwrap().x, 999_999.0);
    }

    #[test]
    fn a_range_zooms_in_and_drops_non_finite_values() {
        let mut p = line(10_000);
        p[5_000].y = f64::NAN;
        let out = min_max(&p, 1_000, Some(4_000.0), Some(6_000.0));
        assert!(out.iter().all(|q| (4_000.0..=6_000.0).contains(&q.x)));
        assert_eq!(
            out.len(),
            2_000,
            "2,001 points in range less the NaN: all kept"
        );
        let coarse = min_max(&p, 10, Some(4_000.0), Some(6_000.0));
        assert!(coarse.len() <= 22);
        assert!(min_max(&p, 10, Some(20_000.0), None).is_empty());
    }

    #[test]
    fn points_at_one_x_keep_their_extremes() {
        let p: Vec<Point> = (0..100)
            .map(|i| Point {
                x: 1.0,
                y: i as f64,
            })
            .collect();
        let out = min_max(&p, 10, None, None);
        assert_eq!(out, vec![p[0], p[99]]);
    }
}
