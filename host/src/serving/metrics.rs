//! Per endpoint and deployment: requests by status, a latency histogram, in-flight requests
//! and mirrored requests; rendered as Prometheus text and as JSON. Lock-free on the hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status codes counted in their own slot; others share the last one.
const STATUSES: [u16; 12] = [200, 400, 401, 404, 413, 415, 429, 500, 503, 504, 422, 0];

/// Counters of one deployment (or of an endpoint's requests that reached no deployment).
#[derive(Default)]
pub struct Series {
    by_status: [AtomicU64; STATUSES.len()],
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    in_flight: AtomicI64,
    mirrored: AtomicU64,
    mirror_dropped: AtomicU64,
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Arc<Series>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1)
}

impl Series {
    /// Counts a request as in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Records a finished request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        self.by_status[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records a mirrored copy (sent, or dropped because the mirror was busy).
    pub fn record_mirror(&self, sent: bool) {
        if sent {
            self.mirrored.fetch_add(1, Ordering::Relaxed);
        } else {
            self.mirror_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> SeriesSnapshot {
        let mut by_status = BTreeMap::new();
        for (i, c) in self.by_status.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let key = match STATUSES[i] {
                    0 => "other".to_string(),
                    s => s.to_string(),
                };
                by_status.insert(key, n);
            }
        }
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let requests: u64 = counts.iter().sum();
        let errors = by_status
            .iter()
            .filter(|(k, _)| k.as_str() != "200")
            .map(|(_, v)| *v)
            .sum();
        let quantile = |q: f64| -> Option<f64> {
            if requests == 0 {
                return None;
            }
            let rank = (q * requests as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Some(BUCKETS.get(i).map(|b| b * 1000.0).unwrap_or(f64::INFINITY));
                }
            }
            None
        };
        SeriesSnapshot {
            requests,
            errors,
            by_status,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            mirrored: self.mirrored.load(Ordering::Relaxed),
            mirror_dropped: self.mirror_dropped.load(Ordering::Relaxed),
            latency_sum_ms: self.sum_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            p50_ms_at_most: quantile(0.5),
            p99_ms_at_most: quantile(0.99),
            buckets: BUCKETS
                .iter()
                .map(|b| b * 1000.0)
                .zip(counts.iter().scan(0, |acc, n| {
                    *acc += n;
                    Some(*acc)
                }))
                .map(|(le_ms, count)| Bucket { le_ms, count })
                .collect(),
        }
    }
}

/// One cumulative histogram bucket.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Bucket {
    /// Upper bound in milliseconds.
    pub le_ms: f64,
    /// Requests at most that long.
    pub count: u64,
}

/// Counters of one series, as JSON.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SeriesSnapshot {
    /// Requests answered.
    pub requests: u64,
    /// Requests answered with a status other than 200.
    pub errors: u64,
    /// Requests by HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Requests being served now.
    pub in_flight: i64,
    /// Mirrored copies sent here.
    pub mirrored: u64,
    /// Mirrored copies dropped because this deployment was busy.
    pub mirror_dropped: u64,
    /// Total latency.
    pub latency_sum_ms: f64,
    /// Upper bound of the bucket holding the median.
    pub p50_ms_at_most: Option<f64>,
    /// Upper bound of the bucket holding the 99th percentile.
    pub p99_ms_at_most: Option<f64>,
    /// Cumulative latency histogram.
    pub buckets: Vec<Bucket>,
}

/// Key of a series: (workspace, endpoint, deployment); deployment `""` for requests that
/// reached none.
type Key = (String, String, String);

/// All series of the host.
#[derive(Default)]
pub struct Metrics {
    series: RwLock<BTreeMap<Key, Arc<Series>>>,
    /// This host's name among replicas: every series carries it as the `replica` label, so a
    /// scraper of all replicas sums them (each replica counts what it served).
    replica: String,
    /// Serializes renders (cheap; keeps output coherent under concurrent scrapes).
    render: Mutex<()>,
}

impl Metrics {
    /// No series yet, labelled with replica name `replica`.
    pub fn for_replica(replica: &str) -> Self {
        Self {
            replica: replica.to_string(),
            ..Self::default()
        }
    }

    /// The series of a deployment (created on first use).
    pub fn series(&self, workspace: &str, endpoint: &str, deployment: &str) -> Arc<Series> {
        let key = (
            workspace.to_string(),
            endpoint.to_string(),
            deployment.to_string(),
        );
        if let Some(s) = self.series.read().expect("metrics").get(&key) {
            return s.clone();
        }
        self.series
            .write()
            .expect("metrics")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Forgets an endpoint's series (it was deleted).
    pub fn forget_endpoint(&self, endpoint: &str) {
        self.series
            .write()
            .expect("metrics")
            .retain(|k, _| k.1 != endpoint);
    }

    /// Snapshots of one endpoint's series, by deployment (`""`: requests that reached none).
    pub fn endpoint(&self, endpoint: &str) -> BTreeMap<String, SeriesSnapshot> {
        self.series
            .read()
            .expect("metrics")
            .iter()
            .filter(|(k, _)| k.1 == endpoint)
            .map(|(k, s)| (k.2.clone(), s.snapshot()))
            .collect()
    }

    /// Every series in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let _one = self.render.lock().expect("metrics render");
        let all: Vec<(Key, SeriesSnapshot)> = self
            .series
            .read()
            .expect("metrics")
            .iter()
            .map(|(k, s)| (k.clone(), s.snapshot()))
            .collect();
        let mut out = String::with_capacity(4096 + all.len() * 2048);
        let replica = escape(&self.replica);
        let labels = |k: &Key| {
            format!(
                "workspace=\"{}\",endpoint=\"{}\",deployment=\"{}\",replica=\"{replica}\"",
                escape(&k.0),
                escape(&k.1),
                escape(&k.2)
            )
        };
        out.push_str(
            "# HELP atrium_endpoint_requests_total Scoring requests answered, by status.\n",
        );
        out.push_str("# TYPE atrium_endpoint_requests_total counter\n");
        for (k, s) in &all {
            for (status, n) in &s.by_status {
                let _ = writeln!(
                    out,
                    "atrium_endpoint_requests_total{{{},status=\"{status}\"}} {n}",
                    labels(k)
                );
            }
        }
        out.push_str("# HELP atrium_endpoint_request_duration_seconds Scoring latency.\n");
        out.push_str("# TYPE atrium_endpoint_request_duration_seconds histogram\n");
        for (k, s) in &all {
            let l = labels(k);
            for b in &s.buckets {
                let _ = writeln!(
                    out,
                    "atrium_endpoint_request_duration_seconds_bucket{{{l},le=\"{}\"}} {}",
                    b.le_ms / 1000.0,
                    b.count
                );
            }
            let _ = writeln!(
                out,
                "atrium_endpoint_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.requests
            );
            let _ = writeln!(
                out,
                "atrium_endpoint_request_duration_seconds_sum{{{l}}} {}",
                s.latency_sum_ms / 1000.0
            );
            let _ = writeln!(
                out,
                "atrium_endpoint_request_duration_seconds_count{{{l}}} {}",
                s.requests
            );
        }
        out.push_str("# HELP atrium_endpoint_in_flight_requests Scoring requests being served.\n");
        out.push_str("# TYPE atrium_endpoint_in_flight_requests gauge\n");
        for (k, s) in &all {
            let _ = writeln!(
                out,
                "atrium_endpoint_in_flight_requests{{{}}} {}",
                labels(k),
                s.in_flight
            );
        }
        out.push_str(
            "# HELP atrium_endpoint_mirrored_requests_total Mirrored copies sent to a deployment.\n",
        );
        out.push_str("# TYPE atrium_endpoint_mirrored_requests_total counter\n");
        for (k, s) in &all {
            if s.mirrored + s.mirror_dropped > 0 {
                let _ = writeln!(
                    out,
                    "atrium_endpoint_mirrored_requests_total{{{},outcome=\"sent\"}} {}",
                    labels(k),
                    s.mirrored
                );
                let _ = writeln!(
                    out,
                    "atrium_endpoint_mirrored_requests_total{{{},outcome=\"dropped\"}} {}",
                    labels(k),
                    s.mirror_dropped
                );
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_and_text() {
        let m = Metrics::default();
        let s = m.series("default", "iris", "blue");
        for ms in [0.3, 0.8, 2.0, 7.0] {
            s.record(200, Duration::from_micros((ms * 1000.0) as u64));
        }
        s.record(429, Duration::from_micros(50));
        {
            let _f = s.start();
            assert_eq!(s.snapshot().in_flight, 1);
        }
        let snap = s.snapshot();
        assert_eq!(snap.requests, 5);
        assert_eq!(snap.errors, 1);
        assert_eq!(snap.by_status["429"], 1);
        assert_eq!(snap.in_flight, 0);
        assert_eq!(snap.p50_ms_at_most, Some(1.0));
        let text = m.prometheus();
        assert!(text.contains(
            "atrium_endpoint_requests_total{workspace=\"default\",endpoint=\"iris\",deployment=\"blue\",replica=\"\",status=\"200\"} 4"
        ), "{text}");
        assert!(text.contains("le=\"0.001\"} 3"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 5"), "{text}");
    }
}
