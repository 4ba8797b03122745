//! Metric history helpers: the packed chunk format history is stored in, and downsampling.

use super::{DomainError, MetricPoint};

/// Bytes per packed point: step (i64), timestamp (i64), value (f64), little-endian.
pub const POINT_BYTES: usize = 24;

/// Packs points into a history chunk.
pub fn encode_chunk<'a>(points: impl IntoIterator<Item = &'a MetricPoint>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in points {
        out.extend_from_slice(&p.step.to_le_bytes());
        out.extend_from_slice(&p.timestamp.to_le_bytes());
        out.extend_from_slice(&p.value.to_bits().to_le_bytes());
    }
    out
}

/// Unpacks a history chunk, appending to `out`.
pub fn decode_chunk(data: &[u8], out: &mut Vec<MetricPoint>) -> Result<(), DomainError> {
    if !data.len().is_multiple_of(POINT_BYTES) {
        return Err(DomainError::Internal(format!(
            "corrupt metric chunk of {} bytes",
            data.len()
        )));
    }
    let word = |b: &[u8]| <[u8; 8]>::try_from(b).expect("8 bytes");
    for c in data.chunks_exact(POINT_BYTES) {
        out.push(MetricPoint {
            step: i64::from_le_bytes(word(&c[0..8])),
            timestamp: i64::from_le_bytes(word(&c[8..16])),
            value: f64::from_bits(u64::from_le_bytes(word(&c[16..24]))),
        });
    }
    Ok(())
}

/// Reduces a step-ordered history to at most `max_points` with largest-triangle-three-buckets,
/// which keeps the first and last points and the visually significant peaks in between.
pub fn downsample(points: &[MetricPoint], max_points: usize) -> Vec<MetricPoint> {
    let n = points.len();
    if max_points == 0 || n <= max_points {
        return points.to_vec();
    }
    if max_points == 1 {
        return vec![points[n - 1]];
    }
    if max_points == 2 {
        return vec![points[0], points[n - 1]];
    }
    let y = |p: &MetricPoint| if p.value.is_finite() { p.value } else { 0.0 };
    let x = |p: &MetricPoint| p.step as f64;
    let buckets = max_points - 2;
    let width = (n - 2) as f64 / buckets as f64;
    let mut out = Vec::with_capacity(max_points);
    out.push(points[0]);
    let mut a = 0usize;
    for b in 0..buckets {
        let start = 1 + (b as f64 * width) as usize;
        let end = (1 + ((b + 1) as f64 * width) as usize).min(n - 1);
        // average of the next bucket (or the last point) as the third corner
        let (ns, ne) = (end, (1 + ((b + 2) as f64 * width) as usize).min(n - 1));
        let (avg_x, avg_y) = if ns < ne {
            let c = (ne - ns) as f64;
            (
                points[ns..ne].iter().map(x).sum::<f64>() / c,
                points[ns..ne].iter().map(y).sum::<f64>() / c,
            )
        } else {
            (x(&points[n - 1]), y(&points[n - 1]))
        };
        let (ax, ay) = (x(&points[a]), y(&points[a]));
        let mut best = start;
        let mut best_area = -1.0;
        for (i, p) in points
            .iter()
            .enumerate()
            .take(end.max(start + 1))
            .skip(start)
        {
            let area = ((ax - avg_x) * (y(p) - ay) - (ax - x(p)) * (avg_y - ay)).abs();
            if area > best_area {
                best_area = area;
                best = i;
            }
        }
        out.push(points[best]);
        a = best;
    }
    out.push(points[n - 1]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> Vec<MetricPoint> {
        (0..n)
            .map(|i| MetricPoint {
                value: (i as f64 / 10.0).sin(),
                timestamp: i as i64,
                step: i as i64,
            })
            .collect()
    }

    #[test]
    fn chunks_round_trip_special_values() {
        let pts = vec![
            MetricPoint {
                value: f64::NAN,
                timestamp: 5,
                step: -1,
            },
            MetricPoint {
                value: f64::NEG_INFINITY,
                timestamp: i64::MAX,
                step: 7,
            },
            MetricPoint {
                value: 0.25,
                timestamp: 0,
                step: 0,
            },
        ];
        let data = encode_chunk(&pts);
        assert_eq!(data.len(), 3 * POINT_BYTES);
        let mut back = Vec::new();
        decode_chunk(&data, &mut back).unwrap();
        assert!(back[0].value.is_nan());
        assert_eq!(&back[1..], &pts[1..]);
        assert!(decode_chunk(&data[..10], &mut back).is_err());
    }

    #[test]
    fn keeps_short_series() {
        assert_eq!(downsample(&series(10), 100).len(), 10);
        assert_eq!(downsample(&series(10), 0).len(), 10);
    }

    #[test]
    fn reduces_to_budget_keeping_ends_in_order() {
        let s = series(10_000);
        let d = downsample(&s, 100);
        assert_eq!(d.len(), 100);
        assert_eq!(d[0].step, 0);
        assert_eq!(d[99].step, 9_999);
        assert!(d.windows(2).all(|w| w[0].step < w[1].step));
    }

    #[test]
    fn keeps_a_spike() {
        let mut s = series(1000);
        s[500].value = 1000.0;
        let d = downsample(&s, 20);
        assert!(d.iter().any(|p| p.value == 1000.0));
    }
}
