//! Train jobs: load the pinned dataset versions, split, fit the preprocessing, train on Candle
//! in the slot's thread pool, log every epoch to the run, save checkpoints and the model.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use candle_core::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::ctx::JobCtx;
use super::executor::Failure;
use crate::store::{JobState, LogBatch};
use crate::train::data::{self, Encoded, Preprocessor};
use crate::train::model::weights_bytes;
use crate::train::net::Net;
use crate::train::spec::{DeviceSpec, Task};
use crate::train::trainer::{self, EpochReport, Observer, TrainError};
use crate::train::{TrainSpec, TrainedModel};
use crate::workspace::dataset::Table;
use crate::workspace::{DomainError, Metric, MetricPoint, Workspace, now_millis};

/// The device a spec asks for.
pub fn device_for(spec: DeviceSpec) -> Result<Device, DomainError> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda => Device::new_cuda(0)
            .map_err(|e| DomainError::invalid(format!("no usable CUDA device: {e}"))),
        #[cfg(not(feature = "cuda"))]
        DeviceSpec::Cuda => Err(DomainError::invalid(
            "device 'cuda' needs a host built with the cuda feature",
        )),
        #[cfg(feature = "cuda")]
        DeviceSpec::Auto => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        #[cfg(not(feature = "cuda"))]
        DeviceSpec::Auto => Ok(Device::Cpu),
    }
}

/// Training and validation row indices: a validation dataset's usable rows, or a seeded
/// split of the training rows (stratified by class for classification).
pub fn split_rows(
    t: &Table,
    target: &str,
    task: Task,
    rows: Vec<usize>,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if fraction <= 0.0 {
        return (rows, Vec::new());
    }
    let tc = t.header.iter().position(|h| h == target);
    let mut groups: Vec<Vec<usize>> = match (task, tc) {
        (Task::Classification, Some(c)) => {
            let mut by: std::collections::BTreeMap<&str, Vec<usize>> =
                std::collections::BTreeMap::new();
            for r in rows {
                by.entry(t.rows[r][c].trim()).or_default().push(r);
            }
            by.into_values().collect()
        }
        _ => vec![rows],
    };
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for g in &mut groups {
        g.shuffle(&mut rng);
        // keep at least one row of each class for training
        let k = ((g.len() as f64 * fraction).round() as usize).min(g.len().saturating_sub(1));
        val.extend_from_slice(&g[..k]);
        train.extend_from_slice(&g[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Everything prepared from the datasets before the first epoch.
pub struct Prepared {
    /// Fitted preprocessing.
    pub pre: Preprocessor,
    /// Training rows.
    pub train: Encoded,
    /// Validation rows (if any).
    pub val: Option<Encoded>,
}

/// Fits the preprocessing on the training rows and encodes both sets.
pub fn prepare(
    spec: &TrainSpec,
    table: &Table,
    val_table: Option<&Table>,
) -> Result<Prepared, DomainError> {
    let used = used_columns(spec, table)?;
    let rows = data::usable_rows(table, &used, spec.missing)?;
    let (train_rows, val_rows) = match val_table {
        Some(_) => (rows, Vec::new()),
        None => split_rows(
            table,
            &spec.target,
            spec.task,
            rows,
            spec.validation_split,
            spec.seed,
        ),
    };
    let pre = data::fit(
        table,
        &spec.target,
        spec.features.as_deref(),
        spec.task,
        spec.missing,
        &train_rows,
    )?;
    let train = pre.encode(table, &train_rows)?;
    let val = match val_table {
        Some(v) => {
            let used = used_columns(spec, v)?;
            let rows = data::usable_rows(v, &used, spec.missing)?;
            Some(
                pre.encode(v, &rows)
                    .map_err(|e| DomainError::invalid(format!("validation dataset: {e}")))?,
            )
        }
        None if val_rows.is_empty() => None,
        None => Some(pre.encode(table, &val_rows)?),
    };
    Ok(Prepared { pre, train, val })
}

fn used_columns(spec: &TrainSpec, t: &Table) -> Result<Vec<usize>, DomainError> {
    let find = |n: &str| {
        t.header.iter().position(|h| h == n).ok_or_else(|| {
            DomainError::invalid(format!(
                "column '{n}' is not in the dataset; its columns are: {}",
                t.header.join(", ")
            ))
        })
    };
    let mut used = vec![find(&spec.target)?];
    match &spec.features {
        Some(f) => {
            for n in f {
                used.push(find(n)?);
            }
        }
        None => {
            let target = used[0];
            used.extend((0..t.header.len()).filter(|c| *c != target));
        }
    }
    Ok(used)
}

/// Flattens the spec into MLflow params (`model.hidden` = `[64,32]`, ...).
pub(super) fn params_of(spec: &TrainSpec) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(spec).unwrap_or_default(),
        &mut out,
    );
    out
}

/// An epoch's report as run metrics (`loss`, `lr` and the evaluation metrics, step = epoch).
pub(super) fn epoch_metrics(r: &EpochReport) -> Vec<Metric> {
    let now = now_millis();
    let point = |key: &str, value: f64| Metric {
        key: key.to_string(),
        point: MetricPoint {
            value,
            timestamp: now,
            step: r.epoch as i64,
        },
    };
    let mut metrics = vec![point("loss", r.loss), point("lr", r.lr)];
    metrics.extend(r.metrics.iter().map(|(k, v)| point(k, *v)));
    metrics
}

/// Logs epochs to the run and keeps the live progress.
struct RunObserver<C: JobCtx> {
    ctx: Arc<C>,
    rt: tokio::runtime::Handle,
}

impl<C: JobCtx> RunObserver<C> {
    fn upload(&self, path: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.rt
            .block_on(self.ctx.upload(path, bytes))
            .map_err(|e| format!("cannot store {path}: {e}"))
    }
}

impl<C: JobCtx> Observer for RunObserver<C> {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        let live = self.ctx.running();
        live.epoch.store(epoch as u64, Ordering::Relaxed);
        live.batch.store(batch as u64, Ordering::Relaxed);
        live.batches.store(batches as u64, Ordering::Relaxed);
    }

    fn epoch(&mut self, r: &EpochReport, net: &Net, checkpoint: bool) -> Result<(), String> {
        let metrics = epoch_metrics(r);
        let line = metrics
            .iter()
            .map(|m| format!("{}={:.6}", m.key, m.point.value))
            .collect::<Vec<_>>()
            .join(" ");
        self.ctx.line(&format!("epoch {} {line}", r.epoch));
        self.rt
            .block_on(self.ctx.log(LogBatch {
                metrics,
                ..Default::default()
            }))
            .map_err(|e| format!("cannot log metrics: {e}"))?;
        if checkpoint {
            let bytes = weights_bytes(net).map_err(|e| e.to_string())?;
            self.upload(
                &format!("checkpoints/epoch-{:05}.safetensors", r.epoch),
                bytes,
            )?;
        }
        Ok(())
    }

    fn canceled(&self) -> bool {
        self.ctx.running().cancel.load(Ordering::Relaxed)
    }
}

/// The model's files under the run's artifacts: `(path, bytes)` of the spec, weights, MLmodel.
pub(crate) fn model_files(
    run_id: &str,
    model: TrainedModel,
) -> Result<Vec<(&'static str, Vec<u8>)>, DomainError> {
    let (json, weights) = model.to_files()?;
    let mlmodel = format!(
        "artifact_path: model\nflavors:\n  atrium_tabular:\n    format: {}\n    spec: model.json\n    weights: model.safetensors\nrun_id: {run_id}\n",
        crate::train::model::FORMAT
    );
    Ok(vec![
        ("model/model.json", json),
        ("model/model.safetensors", weights),
        ("model/MLmodel", mlmodel.into_bytes()),
    ])
}

/// Stores a trained model as the run's `model/` artifacts (spec, weights, MLmodel).
pub(super) async fn save_model(
    t: &crate::service::Service,
    ws: &Workspace,
    run_id: &str,
    model: TrainedModel,
) -> Result<(), DomainError> {
    for (path, bytes) in model_files(run_id, model)? {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
        t.upload_artifact(ws, run_id, path, stream).await?;
    }
    Ok(())
}

/// Runs a train job's attempt wherever `ctx` runs it (the host, or a worker).
pub(crate) async fn run<C: JobCtx>(
    ctx: &Arc<C>,
    spec: &TrainSpec,
    run_id: &str,
) -> Result<(), Failure> {
    let (dataset, table) = ctx.dataset(&spec.dataset).await?;
    let val_table = match &spec.validation_dataset {
        Some(v) => Some(ctx.dataset(v).await?.1),
        None => None,
    };
    ctx.line(&format!(
        "dataset {dataset}: {} rows, {} columns",
        table.rows.len(),
        table.header.len()
    ));
    ctx.log(LogBatch {
        params: params_of(spec),
        tags: vec![("atrium.dataset".into(), dataset.clone())],
        ..Default::default()
    })
    .await?;
    ctx.running()
        .epochs
        .store(spec.epochs as u64, Ordering::Relaxed);
    let device = device_for(spec.device)?;
    let mut obs = RunObserver {
        ctx: ctx.clone(),
        rt: tokio::runtime::Handle::current(),
    };
    let threads = ctx.threads();
    let spec2 = spec.clone();
    let ctx2 = ctx.clone();
    let trained = tokio::task::spawn_blocking(move || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("atrium-train-{i}"))
            .build()
            .map_err(|e| Failure::Failed(format!("cannot start the training threads: {e}")))?;
        pool.install(|| {
            let p = prepare(&spec2, &table, val_table.as_ref())?;
            ctx2.line(&format!(
                "{} training rows, {} validation rows, {} inputs, {} outputs, {threads} threads",
                p.train.n,
                p.val.as_ref().map_or(0, |v| v.n),
                p.pre.width(),
                p.pre.outputs()
            ));
            let outcome =
                trainer::train(&spec2, &p.pre, &p.train, p.val.as_ref(), &device, &mut obs)
                    .map_err(|e| match e {
                        TrainError::Canceled => Failure::Canceled,
                        other => Failure::Failed(other.to_string()),
                    })?;
            Ok::<_, Failure>((outcome, p.pre))
        })
    })
    .await
    .map_err(|e| Failure::Failed(format!("the training task failed: {e}")))?;
    let (outcome, pre) = trained?;
    ctx.set_state(JobState::Finalizing).await?;
    let kept = match outcome.best_epoch {
        Some(e) if e != outcome.epochs => format!("; the model keeps epoch {e} (best val_loss)"),
        _ => String::new(),
    };
    ctx.line(&format!(
        "trained {} of {} epochs{}{kept}; saving the model",
        outcome.epochs,
        spec.epochs,
        if outcome.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    ));
    let model = TrainedModel::new(outcome.net, spec.task, pre, dataset, &outcome.metrics);
    for (path, bytes) in model_files(run_id, model)? {
        ctx.upload(path, bytes).await?;
    }
    ctx.log(LogBatch {
        tags: vec![
            ("atrium.train.epochs".into(), outcome.epochs.to_string()),
            (
                "atrium.train.stopped_early".into(),
                outcome.stopped_early.to_string(),
            ),
        ]
        .into_iter()
        .chain(
            outcome
                .best_epoch
                .map(|e| ("atrium.train.best_epoch".to_string(), e.to_string())),
        )
        .collect(),
        ..Default::default()
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::train::spec::TrainSpec;
    use crate::workspace::dataset::parse_csv;

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

    fn table() -> Table {
        let mut csv = String::from("x,y,color,label\n");
        for i in 0..200 {
            let (x, y) = ((i % 17) as f64 / 3.0, (i % 11) as f64 / 2.0);
            let color = ["red", "green", "blue"][i % 3];
            let label = if x + y > 4.0 || color == "blue" {
                "hi"
            } else {
                "lo"
            };
            csv.push_str(&format!("{x},{y},{color},{label}\n"));
        }
        parse_csv(csv.as_bytes()).unwrap()
    }

    #[test]
    fn a_saved_model_reloads_and_predicts_identically() {
        let t = table();
        let spec: TrainSpec = toml::from_str(
            "dataset = \"d:1\"\ntarget = \"label\"\ntask = \"classification\"\nepochs = 30\nbatch_size = 16\n[model]\nfamily = \"mlp\"\nhidden = [8]\nbatch_norm = true\ndropout = 0.2\n",
        )
        .unwrap();
        let p = prepare(&spec, &t, None).unwrap();
        assert_eq!(
            p.pre.width(),
            2 + 3,
            "two numbers and a one-hot of three colors"
        );
        let out = trainer::train(
            &spec,
            &p.pre,
            &p.train,
            p.val.as_ref(),
            &Device::Cpu,
            &mut Quiet,
        )
        .unwrap();
        let acc = out
            .metrics
            .iter()
            .find(|m| m.0 == "val_accuracy")
            .unwrap()
            .1;
        assert!(acc > 0.8, "validation accuracy {acc}");
        let model = TrainedModel::new(out.net, spec.task, p.pre, "d:1".into(), &out.metrics);
        let rows: Vec<HashMap<String, String>> = t
            .rows
            .iter()
            .map(|r| t.header.iter().cloned().zip(r.iter().cloned()).collect())
            .collect();
        let before = model.predict(&rows).unwrap();
        let (json, weights) = model.to_files().unwrap();
        let again = TrainedModel::from_files(&json, &weights, &Device::Cpu).unwrap();
        assert_eq!(before, again.predict(&rows).unwrap());
        // scoring applies the training preprocessing: an unknown color is all-zeros, a bad number is refused
        let mut odd = rows[0].clone();
        odd.insert("color".into(), "purple".into());
        assert_eq!(again.predict(&[odd]).unwrap().len(), 1);
        let mut bad = rows[0].clone();
        bad.insert("x".into(), "wide".into());
        assert!(
            again
                .predict(&[bad])
                .unwrap_err()
                .to_string()
                .contains("'x' must be a number")
        );
        assert!(TrainedModel::from_files(b"{}", &weights, &Device::Cpu).is_err());
    }

    #[test]
    fn stratified_split_keeps_every_class_in_training() {
        let t = table();
        let rows: Vec<usize> = (0..t.rows.len()).collect();
        let (train, val) = split_rows(&t, "label", Task::Classification, rows.clone(), 0.25, 3);
        assert_eq!(train.len() + val.len(), 200);
        assert!((45..=55).contains(&val.len()), "{}", val.len());
        assert_eq!(
            split_rows(&t, "label", Task::Classification, rows, 0.25, 3),
            (train, val),
            "seeded"
        );
    }
}
