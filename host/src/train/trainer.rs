//! The training loop: seeded shuffling, mini-batches gathered into one reused buffer, fused
//! optimizer steps, per-epoch evaluation and metrics, early stopping, checkpoints, and a
//! cancellation check between batches.

use std::collections::HashMap;

use candle_core::{D, Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::data::{Encoded, Preprocessor, TargetEncoding};
use super::net::{Architecture, Net};
use super::optim::Optimizer;
use super::spec::{Schedule, Task, TrainSpec};

/// Why training stopped without a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Cancel was requested.
    #[error("canceled")]
    Canceled,
    /// A numeric or shape failure in the kernels.
    #[error("training failed: {0}")]
    Kernel(#[from] candle_core::Error),
    /// The observer failed (e.g. metrics could not be stored).
    #[error("{0}")]
    Observer(String),
}

/// What an epoch produced.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Named metrics (validation loss, accuracy / F1 or RMSE / R²).
    pub metrics: Vec<(String, f64)>,
    /// Learning rate used.
    pub lr: f64,
}

/// Receives progress while training runs.
pub trait Observer {
    /// After each batch.
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize);
    /// After each epoch.
    fn epoch(&mut self, report: &EpochReport, net: &Net, checkpoint: bool) -> Result<(), String>;
    /// Checked between batches.
    fn canceled(&self) -> bool;
}

/// A trained network and how training went.
pub struct Outcome {
    /// The network (best epoch when early stopping, else the last).
    pub net: Net,
    /// Epochs run.
    pub epochs: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// The epoch whose weights the network holds when early stopping kept its best epoch
    /// (`None`: the last epoch's).
    pub best_epoch: Option<usize>,
    /// Metrics of the returned network.
    pub metrics: Vec<(String, f64)>,
}

/// The learning rate of an epoch (1-based).
pub fn lr_at(spec: &TrainSpec, epoch: usize) -> f64 {
    let base = spec.optimizer.lr;
    match &spec.optimizer.schedule {
        Schedule::Constant => base,
        Schedule::Step { step_size, gamma } => {
            base * gamma.powi(((epoch - 1) / (*step_size).max(1)) as i32)
        }
        Schedule::Cosine { min_lr } => {
            let t = (epoch - 1) as f64 / (spec.epochs.max(2) - 1) as f64;
            min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

fn loss_of(task: Task, out: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    match task {
        Task::Classification => super::ops::cross_entropy(out, y),
        Task::Regression => (out.squeeze(D::Minus1)? - y)?.sqr()?.mean_all(),
    }
}

fn targets(task: Task, e: &Encoded, rows: &[usize], dev: &Device) -> candle_core::Result<Tensor> {
    match task {
        Task::Classification => Tensor::from_vec(
            rows.iter().map(|r| e.classes[*r]).collect::<Vec<u32>>(),
            rows.len(),
            dev,
        ),
        Task::Regression => Tensor::from_vec(
            rows.iter().map(|r| e.values[*r]).collect::<Vec<f32>>(),
            rows.len(),
            dev,
        ),
    }
}

/// Loss and metrics of `net` on an encoded set (evaluated in blocks to bound memory).
pub fn evaluate(
    net: &Net,
    task: Task,
    pre: &Preprocessor,
    e: &Encoded,
) -> candle_core::Result<(f64, Vec<(String, f64)>)> {
    let width = net.arch.inputs;
    let dev = net.device().clone();
    let mut loss_sum = 0.0;
    let mut preds: Vec<f32> = Vec::with_capacity(e.n);
    let mut classes: Vec<u32> = Vec::with_capacity(e.n);
    for start in (0..e.n).step_by(4096) {
        let end = (start + 4096).min(e.n);
        let rows: Vec<usize> = (start..end).collect();
        let x = Tensor::from_slice(&e.x[start * width..end * width], (end - start, width), &dev)?;
        let out = net.forward(&x, None)?;
        let y = targets(task, e, &rows, &dev)?;
        loss_sum += loss_of(task, &out, &y)?.to_scalar::<f32>()? as f64 * rows.len() as f64;
        match task {
            Task::Classification => {
                classes.extend(out.argmax(D::Minus1)?.to_vec1::<u32>()?);
                if out.dim(D::Minus1)? == 2 {
                    // the margin of class 1 ranks rows like its probability does
                    let margin = (out.narrow(D::Minus1, 1, 1)? - out.narrow(D::Minus1, 0, 1)?)?;
                    preds.extend(margin.squeeze(D::Minus1)?.to_vec1::<f32>()?);
                }
            }
            Task::Regression => preds.extend(out.squeeze(D::Minus1)?.to_vec1::<f32>()?),
        }
    }
    let loss = loss_sum / e.n.max(1) as f64;
    let metrics = match (&pre.target, task) {
        (TargetEncoding::Classes { labels, .. }, Task::Classification) => {
            let k = labels.len();
            let (mut tp, mut fp, mut fnn) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
            let mut correct = 0;
            for (p, t) in classes.iter().zip(&e.classes) {
                if p == t {
                    correct += 1;
                    tp[*t as usize] += 1;
                } else {
                    fp[*p as usize] += 1;
                    fnn[*t as usize] += 1;
                }
            }
            let f1: f64 = (0..k)
                .map(|c| {
                    let d = 2 * tp[c] + fp[c] + fnn[c];
                    if d == 0 {
                        0.0
                    } else {
                        2.0 * tp[c] as f64 / d as f64
                    }
                })
                .sum::<f64>()
                / k as f64;
            let mut m = vec![
                ("accuracy".to_string(), correct as f64 / e.n.max(1) as f64),
                ("f1_macro".to_string(), f1),
            ];
            if k == 2 && preds.len() == e.n {
                m.push(("auc".to_string(), auc(&preds, &e.classes)));
            }
            m
        }
        (TargetEncoding::Number { std, .. }, _) => {
            let n = e.n.max(1) as f64;
            let sse: f64 = preds
                .iter()
                .zip(&e.values)
                .map(|(p, y)| ((p - y) as f64).powi(2))
                .sum();
            let mean = e.values.iter().map(|v| *v as f64).sum::<f64>() / n;
            let sst: f64 = e.values.iter().map(|v| (*v as f64 - mean).powi(2)).sum();
            let r2 = if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
            vec![
                ("rmse".to_string(), (sse / n).sqrt() * std),
                ("r2".to_string(), r2),
            ]
        }
        _ => Vec::new(),
    };
    Ok((loss, metrics))
}

/// Area under the ROC curve of scores for class 1 (ties count half), by ranks.
pub fn auc(scores: &[f32], classes: &[u32]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut pos) = (0.0f64, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for r in &idx[i..=j] {
            if classes[*r] == 1 {
                rank_sum += mid;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64
}

/// The best epoch so far: validation loss, weights, metrics.
type Best = (f64, HashMap<String, Tensor>, Vec<(String, f64)>, usize);

/// Trains a network on encoded data.
pub fn train(
    spec: &TrainSpec,
    pre: &Preprocessor,
    train: &Encoded,
    val: Option<&Encoded>,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<Outcome, TrainError> {
    let arch = Architecture::of(&spec.model, pre.width(), pre.outputs());
    let width = arch.inputs;
    let net = Net::new(arch, spec.seed, device)?;
    let mut opt = Optimizer::new(&spec.optimizer, net.vars())?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..train.n).collect();
    let batch = spec.batch_size.min(train.n.max(1));
    let batches = train.n.div_ceil(batch);
    let mut buf: Vec<f32> = Vec::with_capacity(batch * width);
    let mut best: Option<Best> = None;
    let mut since_best = 0;
    let mut stopped_early = false;
    let mut epochs = 0;
    let mut last_metrics = Vec::new();
    for epoch in 1..=spec.epochs {
        let lr = lr_at(spec, epoch);
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        for (b, rows) in order.chunks(batch).enumerate() {
            if obs.canceled() {
                return Err(TrainError::Canceled);
            }
            buf.clear();
            for r in rows {
                buf.extend_from_slice(&train.x[r * width..(r + 1) * width]);
            }
            let x = Tensor::from_slice(&buf, (rows.len(), width), device)?;
            let y = targets(spec.task, train, rows, device)?;
            let out = net.forward(&x, Some(&mut rng))?;
            let loss = loss_of(spec.task, &out, &y)?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * rows.len() as f64;
            let grads = loss.backward()?;
            opt.step(&grads, lr)?;
            obs.batch(epoch, b + 1, batches);
        }
        epochs = epoch;
        let mut metrics = Vec::new();
        let val_loss = match val {
            Some(v) if v.n > 0 => {
                let (l, m) = evaluate(&net, spec.task, pre, v)?;
                metrics.push(("val_loss".to_string(), l));
                metrics.extend(m.into_iter().map(|(k, v)| (format!("val_{k}"), v)));
                Some(l)
            }
            _ => {
                let (_, m) = evaluate(&net, spec.task, pre, train)?;
                metrics.extend(m);
                None
            }
        };
        let report = EpochReport {
            epoch,
            loss: loss_sum / train.n.max(1) as f64,
            metrics: metrics.clone(),
            lr,
        };
        let checkpoint = spec.checkpoint_every > 0 && epoch % spec.checkpoint_every == 0;
        obs.epoch(&report, &net, checkpoint)
            .map_err(TrainError::Observer)?;
        last_metrics = metrics.clone();
        if let (Some(es), Some(vl)) = (&spec.early_stopping, val_loss) {
            let improved = best
                .as_ref()
                .is_none_or(|(b, _, _, _)| vl < b - es.min_delta);
            if improved {
                best = Some((vl, net.snapshot()?, metrics, epoch));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= es.patience {
                    stopped_early = true;
                    break;
                }
            }
        }
    }
    let (metrics, best_epoch) = match best {
        Some((_, tensors, m, e)) if spec.early_stopping.is_some() => {
            net.load(&tensors)?;
            (m, Some(e))
        }
        _ => (last_metrics, None),
    };
    Ok(Outcome {
        net,
        epochs,
        stopped_early,
        best_epoch,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::auc;

    #[test]
    fn auc_by_ranks() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), 0.75);
        assert_eq!(auc(&[1.0, 2.0], &[0, 1]), 1.0);
        assert_eq!(auc(&[1.0, 1.0], &[0, 1]), 0.5);
        assert_eq!(auc(&[1.0, 2.0], &[1, 1]), 0.5);
    }
}
