//! Training benchmark: Atrium's Candle trainer next to scikit-learn / numpy, same data, same
//! split, same architecture, both on the same number of threads (one by default).
//!
//! Measures: MLP (128,) on digits, logistic regression on digits, MLP 784-100-10 for one epoch
//! on a synthetic 60000×784 set at batch 64 and 1000, and a 1024² f32 matmul.
//! Training is timed on prepared data on both sides (ours: the training loop with the per-epoch
//! validation a job logs; theirs: `fit` on standardized arrays); the preparation (CSV text to
//! standardized inputs) is its own measure, `data_prep_digits`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atrium::jobs::{Prepared, prepare, split_rows};
use atrium::train::TrainSpec;
use atrium::train::data::{Encoded, Feature, Preprocessor, TargetEncoding};
use atrium::train::net::Net;
use atrium::train::trainer::{self, EpochReport, Observer};
use atrium::workspace::dataset::{Table, parse_csv};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const SYN_WIDTH: usize = 784;
const SYN_TRAIN: usize = 60_000;
const SYN_TEST: usize = 10_000;
const MATMUL_REPS: usize = 20;

struct Quiet;

impl Observer for Quiet {
    fn batch(&mut self, _: usize, _: usize, _: usize) {}
    fn epoch(&mut self, _: &EpochReport, _: &Net, _: bool) -> Result<(), String> {
        Ok(())
    }
    fn canceled(&self) -> bool {
        false
    }
}

/// One measure: median seconds and the accuracy reached.
struct Measure {
    seconds: Vec<f64>,
    accuracy: Option<f64>,
}

impl Measure {
    fn median(&self) -> f64 {
        let mut v = self.seconds.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }
}

fn spec(v: Value) -> TrainSpec {
    let s: TrainSpec = serde_json::from_value(v).expect("bench spec");
    s.check().expect("bench spec");
    s
}

fn val_accuracy(metrics: &[(String, f64)]) -> f64 {
    metrics
        .iter()
        .find(|(k, _)| k == "val_accuracy")
        .map(|(_, v)| *v)
        .expect("val_accuracy")
}

/// Trains `rounds` times on prepared data; times the training (the preparation is its own
/// measure, `data_prep_digits`).
fn train_prepared(spec: &TrainSpec, p: &Prepared, rounds: usize) -> Measure {
    let mut seconds = Vec::new();
    let mut accuracy = None;
    for _ in 0..rounds {
        let start = Instant::now();
        let out = trainer::train(
            spec,
            &p.pre,
            &p.train,
            p.val.as_ref(),
            &Device::Cpu,
            &mut Quiet,
        )
        .expect("train");
        seconds.push(start.elapsed().as_secs_f64());
        accuracy = Some(val_accuracy(&out.metrics));
    }
    Measure { seconds, accuracy }
}

/// CSV bytes to encoded tensors' inputs, as a job does before its first epoch.
fn data_prep(spec: &TrainSpec, train_csv: &[u8], val_csv: &[u8], rounds: usize) -> Measure {
    let seconds = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let (t, v) = (parse_csv(train_csv).unwrap(), parse_csv(val_csv).unwrap());
            std::hint::black_box(prepare(spec, &t, Some(&v)).expect("prepare"));
            start.elapsed().as_secs_f64()
        })
        .collect();
    Measure {
        seconds,
        accuracy: None,
    }
}

fn subset(t: &Table, rows: &[usize]) -> Table {
    Table {
        header: t.header.clone(),
        rows: rows.iter().map(|r| t.rows[*r].clone()).collect(),
    }
}

fn write_csv(path: &Path, t: &Table) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "{}", t.header.join(",")).unwrap();
    for r in &t.rows {
        writeln!(f, "{}", r.join(",")).unwrap();
    }
}

/// Ten Gaussian clusters in 784 dimensions, overlapping enough that one epoch does not hit 100%.
fn synthetic(n: usize) -> (Vec<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let centers: Vec<f32> = (0..10 * SYN_WIDTH)
        .map(|_| rng.random_range(-1.0f32..1.0) * 0.12)
        .collect();
    let mut x = Vec::with_capacity(n * SYN_WIDTH);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let c = rng.random_range(0..10u8);
        y.push(c);
        let base = &centers[c as usize * SYN_WIDTH..(c as usize + 1) * SYN_WIDTH];
        for b in base {
            // sum of uniforms: cheap, roughly normal with unit variance
            let noise: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 0.866;
            x.push(b + noise);
        }
    }
    (x, y)
}

fn synthetic_pre() -> Preprocessor {
    Preprocessor {
        features: (0..SYN_WIDTH)
            .map(|i| Feature::Numeric {
                name: format!("x{i}"),
                mean: 0.0,
                std: 1.0,
            })
            .collect(),
        target: TargetEncoding::Classes {
            name: "y".into(),
            labels: (0..10).map(|c| c.to_string()).collect(),
        },
        missing: Default::default(),
    }
}

fn encoded(x: &[f32], y: &[u8]) -> Encoded {
    Encoded {
        x: x.to_vec(),
        classes: y.iter().map(|c| *c as u32).collect(),
        values: Vec::new(),
        n: y.len(),
    }
}

fn matmul(reps: usize) -> Measure {
    let a = Tensor::randn(0f32, 1.0, (1024, 1024), &Device::Cpu).unwrap();
    let b = Tensor::randn(0f32, 1.0, (1024, 1024), &Device::Cpu).unwrap();
    a.matmul(&b).unwrap();
    let seconds = (0..reps)
        .map(|_| {
            let start = Instant::now();
            let c = a.matmul(&b).unwrap();
            std::hint::black_box(c);
            start.elapsed().as_secs_f64()
        })
        .collect();
    Measure {
        seconds,
        accuracy: None,
    }
}

fn peer(python: &Path, args: &Value) -> Vec<(String, Measure)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/train_peer.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(args.to_string())
        .output()
        .expect("run the scikit-learn peer");
    assert!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("peer output");
            (
                v["measure"].as_str().unwrap().to_string(),
                Measure {
                    seconds: v["seconds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_f64().unwrap())
                        .collect(),
                    accuracy: v["accuracy"].as_f64(),
                },
            )
        })
        .collect()
}

fn main() {
    let mut python = PathBuf::from("bench/.venv/bin/python");
    let mut rounds = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--python" => python = args.next().expect("--python PATH").into(),
            "--rounds" => rounds = args.next().expect("--rounds N").parse().expect("N"),
            other => panic!("unknown argument {other}; use --python PATH --rounds N"),
        }
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // digits: one seeded stratified 75/25 split (1347/450), written for the peer
    let digits = parse_csv(&std::fs::read(root.join("tests/data/digits.csv")).unwrap()).unwrap();
    let (tr, va) = split_rows(
        &digits,
        "target",
        atrium::train::spec::Task::Classification,
        (0..digits.rows.len()).collect(),
        0.25,
        0,
    );
    let (train_t, val_t) = (subset(&digits, &tr), subset(&digits, &va));
    write_csv(&tmp.path().join("train.csv"), &train_t);
    write_csv(&tmp.path().join("val.csv"), &val_t);
    let mlp = spec(json!({
        "dataset": "digits", "target": "target", "task": "classification",
        "model": {"family": "mlp", "hidden": [128]},
        "optimizer": {"kind": "adam", "lr": 1e-3},
        "epochs": 20, "batch_size": 64, "seed": 0
    }));
    let logistic = spec(json!({
        "dataset": "digits", "target": "target", "task": "classification",
        "model": {"family": "logistic"},
        "optimizer": {"kind": "adam", "lr": 1e-2},
        "epochs": 10, "batch_size": 64, "seed": 0
    }));

    // synthetic: 60000 train + 10000 test rows, raw f32 / u8 files for the peer
    let (sx, sy) = synthetic(SYN_TRAIN + SYN_TEST);
    let bytes: Vec<u8> = sx.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(tmp.path().join("syn_x.f32"), bytes).unwrap();
    std::fs::write(tmp.path().join("syn_y.u8"), &sy).unwrap();
    let syn_pre = synthetic_pre();
    let syn_train = encoded(&sx[..SYN_TRAIN * SYN_WIDTH], &sy[..SYN_TRAIN]);
    let syn_test = encoded(&sx[SYN_TRAIN * SYN_WIDTH..], &sy[SYN_TRAIN..]);

    let prepared = prepare(&mlp, &train_t, Some(&val_t)).expect("prepare");
    let mut ours: Vec<(String, Measure)> = vec![
        (
            "data_prep_digits".into(),
            data_prep(
                &mlp,
                &std::fs::read(tmp.path().join("train.csv")).unwrap(),
                &std::fs::read(tmp.path().join("val.csv")).unwrap(),
                rounds,
            ),
        ),
        ("mlp_digits".into(), train_prepared(&mlp, &prepared, rounds)),
        (
            "logistic_digits".into(),
            train_prepared(&logistic, &prepared, rounds),
        ),
    ];
    let batches = [64usize, 1000];
    for batch in batches {
        let s = spec(json!({
            "dataset": "syn", "target": "y", "task": "classification",
            "model": {"family": "mlp", "hidden": [100]},
            "optimizer": {"kind": "adam", "lr": 1e-3},
            "epochs": 1, "batch_size": batch, "seed": 0
        }));
        let mut seconds = Vec::new();
        let mut accuracy = None;
        for _ in 0..(rounds / 2).max(1) {
            let start = Instant::now();
            let out = trainer::train(
                &s,
                &syn_pre,
                &syn_train,
                Some(&syn_test),
                &Device::Cpu,
                &mut Quiet,
            )
            .unwrap();
            seconds.push(start.elapsed().as_secs_f64());
            accuracy = Some(val_accuracy(&out.metrics));
        }
        ours.push((
            format!("mlp_synthetic_b{batch}"),
            Measure { seconds, accuracy },
        ));
    }
    ours.push(("matmul_1024".into(), matmul(MATMUL_REPS)));

    let peer_args = json!({
        "rounds": rounds,
        "train_csv": tmp.path().join("train.csv"),
        "val_csv": tmp.path().join("val.csv"),
        "target": "target",
        "synthetic_x": tmp.path().join("syn_x.f32"),
        "synthetic_y": tmp.path().join("syn_y.u8"),
        "synthetic_rows": SYN_TRAIN + SYN_TEST,
        "synthetic_width": SYN_WIDTH,
        "synthetic_train": SYN_TRAIN,
        "synthetic_batches": batches,
        "matmul_reps": MATMUL_REPS,
    });
    let theirs = peer(&python, &peer_args);

    println!("threads: {threads}; rounds: {rounds} (median shown)\n");
    println!(
        "| measure | atrium (Candle) | scikit-learn / numpy | time ratio | accuracy atrium / peer |"
    );
    println!("|---|---|---|---|---|");
    for (name, m) in &ours {
        let Some((_, p)) = theirs.iter().find(|(n, _)| n == name) else {
            panic!("the peer did not report {name}");
        };
        let (a, b) = (m.median(), p.median());
        let acc = match (m.accuracy, p.accuracy) {
            (Some(x), Some(y)) => format!("{x:.3} / {y:.3}"),
            _ => "—".into(),
        };
        if name.starts_with("matmul") {
            let gflops = |s: f64| 2.0 * 1024f64.powi(3) / s / 1e9;
            println!(
                "| {name} | {:.2} ms ({:.0} GFLOP/s) | {:.2} ms ({:.0} GFLOP/s) | {:.2}× time, {:.2}× throughput | {acc} |",
                a * 1e3,
                gflops(a),
                b * 1e3,
                gflops(b),
                a / b,
                b / a
            );
        } else {
            println!(
                "| {name} | {:.1} ms | {:.1} ms | {:.2}× | {acc} |",
                a * 1e3,
                b * 1e3,
                a / b
            );
        }
    }
}
