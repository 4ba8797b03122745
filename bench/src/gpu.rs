//! GPU benchmark: Atrium's training engine (the network, fused-or-tensor-op AdamW and the loss
//! that train jobs use) on MLPs of the anchor sizes, next to PyTorch on the same device
//! (`bench/python/gpu_peer.py`, driven by `bench/gpu.sh`).
//!
//! For each size it writes `<out>/<size>.safetensors` (the initial weights in Atrium's layout,
//! `w{i}` `(in, out)` and `b{i}`, and the distinct data batches `x{k}` / `y{k}` that steps cycle
//! through) so the peer trains the identical model from the identical start on the identical
//! batch sequence, then trains and records the loss of every step and every step's time
//! (device synchronized before and after; the first `warmup` steps are not timed).
//! Results: `<out>/atrium.json`.
//!
//! ```text
//! gpu-bench [--device cuda|cpu] [--out DIR] [--only small,medium,large,large-tf32] [--steps N]
//!           [--fused-only]
//! ```
//!
//! Each size runs twice: with the fused AdamW kernels a train job uses (`small`, ...) and with
//! the tensor-op form of the same update (`small/tensor-op-adamw`, ...), unless `--fused-only`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atrium::train::net::{Architecture, Net};
use atrium::train::ops::cross_entropy;
use atrium::train::optim::Optimizer;
use atrium::train::spec::{Activation, OptimizerKind, OptimizerSpec};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};

/// One benchmark configuration.
struct Config {
    name: &'static str,
    dims: &'static [usize],
    batch: usize,
    steps: usize,
    warmup: usize,
    /// Distinct batches the steps cycle through.
    distinct: usize,
    /// TF32 matmuls (reduced precision) instead of plain fp32.
    tf32: bool,
}

const CONFIGS: &[Config] = &[
    Config {
        name: "small",
        dims: &[64, 128, 10],
        batch: 64,
        steps: 300,
        warmup: 30,
        distinct: 64,
        tf32: false,
    },
    Config {
        name: "medium",
        dims: &[784, 1024, 1024, 10],
        batch: 1024,
        steps: 200,
        warmup: 20,
        distinct: 32,
        tf32: false,
    },
    Config {
        name: "large",
        dims: &[784, 4096, 4096, 4096, 10],
        batch: 8192,
        steps: 60,
        warmup: 10,
        distinct: 4,
        tf32: false,
    },
    Config {
        name: "large-tf32",
        dims: &[784, 4096, 4096, 4096, 10],
        batch: 8192,
        steps: 60,
        warmup: 10,
        distinct: 4,
        tf32: true,
    },
];

const LR: f64 = 1e-3;
const WEIGHT_DECAY: f64 = 0.01;
const SEED: u64 = 7;

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Synthetic classification data: Gaussian inputs, labels from a fixed random linear teacher
/// with Gaussian noise on its logits (learnable, so the loss curve moves, but noisy enough that
/// it does not collapse to zero within the run).
fn batches(c: &Config) -> Vec<(Vec<f32>, Vec<i64>)> {
    let (inputs, classes) = (c.dims[0], *c.dims.last().unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0x5eed);
    let scale = 1.0 / (inputs as f32).sqrt();
    let teacher: Vec<f32> = (0..inputs * classes)
        .map(|_| normal(&mut rng) * scale)
        .collect();
    (0..c.distinct)
        .map(|_| {
            let x: Vec<f32> = (0..c.batch * inputs).map(|_| normal(&mut rng)).collect();
            let y = x
                .chunks_exact(inputs)
                .map(|row| {
                    let mut best = (f32::NEG_INFINITY, 0);
                    for k in 0..classes {
                        let s: f32 = row
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v * teacher[i * classes + k])
                            .sum::<f32>()
                            + normal(&mut rng);
                        if s > best.0 {
                            best = (s, k);
                        }
                    }
                    best.1 as i64
                })
                .collect();
            (x, y)
        })
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The initial weights and the batches, for the peer.
fn write_inputs(
    path: &Path,
    c: &Config,
    net: &Net,
    data: &[(Vec<f32>, Vec<i64>)],
) -> anyhow::Result<()> {
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let tensors = net.tensors();
    for i in 0..c.dims.len() - 1 {
        for (ours, theirs) in [("weight", "w"), ("bias", "b")] {
            let t = tensors[&format!("layers.{i}.{ours}")].to_device(&Device::Cpu)?;
            let shape = t.dims().to_vec();
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            blobs.push((format!("{theirs}{i}"), Dtype::F32, shape, f32_bytes(&v)));
        }
    }
    for (k, (x, y)) in data.iter().enumerate() {
        blobs.push((
            format!("x{k}"),
            Dtype::F32,
            vec![c.batch, c.dims[0]],
            f32_bytes(x),
        ));
        let yb: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
        blobs.push((format!("y{k}"), Dtype::I64, vec![c.batch], yb));
    }
    let views: Vec<(String, TensorView)> = blobs
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<anyhow::Result<_>>()?;
    let meta: HashMap<String, String> = [
        ("dims", json!(c.dims).to_string()),
        ("batch", c.batch.to_string()),
        ("steps", c.steps.to_string()),
        ("warmup", c.warmup.to_string()),
        ("distinct", c.distinct.to_string()),
        ("lr", LR.to_string()),
        ("weight_decay", WEIGHT_DECAY.to_string()),
        ("tf32", c.tf32.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    safetensors::tensor::serialize_to_file(views, Some(meta), path)?;
    Ok(())
}

fn sync(dev: &Device) -> candle_core::Result<()> {
    dev.synchronize()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        f64::NAN
    } else {
        s[s.len() / 2]
    }
}

/// Trains one configuration (with the fused optimizer kernels, or with the tensor-op form of the
/// same update when `fused` is false); returns its JSON record.
fn run(
    c: &Config,
    dev: &Device,
    out: &Path,
    steps: Option<usize>,
    fused: bool,
) -> anyhow::Result<Value> {
    let steps = steps.unwrap_or(c.steps);
    let warmup = c.warmup.min(steps / 4);
    let arch = Architecture {
        inputs: c.dims[0],
        hidden: c.dims[1..c.dims.len() - 1].to_vec(),
        outputs: *c.dims.last().unwrap(),
        activation: Activation::Relu,
        dropout: 0.0,
        batch_norm: false,
    };
    let t0 = Instant::now();
    let data = batches(c);
    let net = Net::new(arch, SEED, dev)?;
    let cfg = Config {
        steps,
        warmup,
        ..*c
    };
    let inputs = out.join(format!("{}.safetensors", c.name));
    if !inputs.exists() {
        write_inputs(&inputs, &cfg, &net, &data)?;
    }
    let prep_s = t0.elapsed().as_secs_f64();
    // the batches live on the device before timing starts, as the peer's do
    let on_dev: Vec<(Tensor, Tensor)> = data
        .iter()
        .map(|(x, y)| {
            let y: Vec<u32> = y.iter().map(|v| *v as u32).collect();
            Ok((
                Tensor::from_slice(x, (c.batch, c.dims[0]), dev)?,
                Tensor::from_vec(y, c.batch, dev)?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    candle_core::cuda::set_gemm_reduced_precision_f32(c.tf32);
    let spec = OptimizerSpec {
        kind: OptimizerKind::Adamw,
        lr: LR,
        weight_decay: WEIGHT_DECAY,
        ..Default::default()
    };
    let mut opt = Optimizer::new(&spec, net.vars())?;
    opt.set_fused(fused);
    let label = if fused {
        c.name.to_string()
    } else {
        format!("{}/tensor-op-adamw", c.name)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let mut losses = Vec::with_capacity(steps);
    let mut times = Vec::with_capacity(steps);
    sync(dev)?;
    let wall = Instant::now();
    for s in 0..steps {
        let (x, y) = &on_dev[s % on_dev.len()];
        let t = Instant::now();
        // what a train job does per batch (trainer.rs): forward in training mode, the loss,
        // its value read back, backward, the optimizer step
        let logits = net.forward(x, Some(&mut rng))?;
        let loss = cross_entropy(&logits, y)?;
        losses.push(loss.to_scalar::<f32>()? as f64);
        let grads = loss.backward()?;
        opt.step(&grads, LR)?;
        drop(grads);
        sync(dev)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let wall_s = wall.elapsed().as_secs_f64();
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    let timed = &times[warmup..];
    let med = median(timed);
    eprintln!(
        "atrium {:<27} batch {:>5}: median {:8.3} ms/step, first loss {:.5}, last {:.5} ({steps} steps, {wall_s:.1} s)",
        label,
        c.batch,
        med,
        losses[0],
        losses[steps - 1]
    );
    Ok(json!({
        "name": label, "peer": c.name, "fused_optimizer": fused, "dims": c.dims, "batch": c.batch, "steps": steps, "warmup": warmup,
        "tf32": c.tf32, "median_ms": med, "mean_ms": timed.iter().sum::<f64>() / timed.len().max(1) as f64,
        "step_ms": times, "losses": losses, "prep_s": prep_s, "wall_s": wall_s,
    }))
}

fn main() -> anyhow::Result<()> {
    let mut device = "cuda".to_string();
    let mut out = PathBuf::from("gpu-bench-out");
    let mut only: Option<Vec<String>> = None;
    let mut steps: Option<usize> = None;
    let mut no_tensor_ops = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--device" => device = val()?,
            "--out" => out = PathBuf::from(val()?),
            "--only" => only = Some(val()?.split(',').map(str::to_string).collect()),
            "--steps" => steps = Some(val()?.parse()?),
            "--fused-only" => no_tensor_ops = true,
            "-h" | "--help" => {
                println!(
                    "gpu-bench [--device cuda|cpu] [--out DIR] [--only small,medium,large,large-tf32] [--steps N] [--fused-only]"
                );
                return Ok(());
            }
            _ => anyhow::bail!("unknown argument {a}"),
        }
    }
    let dev = match device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)?,
        d => anyhow::bail!("unknown device {d}"),
    };
    std::fs::create_dir_all(&out)?;
    let mut results = Vec::new();
    for c in CONFIGS {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == c.name))
        {
            continue;
        }
        for fused in [true, false] {
            if !fused && no_tensor_ops {
                continue;
            }
            // a failing variant is recorded and the others still run
            match run(c, &dev, &out, steps, fused) {
                Ok(r) => results.push(r),
                Err(e) => {
                    let name = if fused {
                        c.name.to_string()
                    } else {
                        format!("{}/tensor-op-adamw", c.name)
                    };
                    eprintln!("atrium {name}: FAILED: {e:#}");
                    results
                        .push(json!({ "name": name, "peer": c.name, "error": format!("{e:#}") }));
                }
            }
        }
    }
    let doc = json!({ "engine": "atrium", "device": device, "results": results });
    std::fs::write(out.join("atrium.json"), serde_json::to_vec(&doc)?)?;
    Ok(())
}
