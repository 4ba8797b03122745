//! Batch scoring jobs: a dataset version in, a scored dataset version out (the input columns
//! plus `prediction` and, for a classifier, `p_<label>` per class), predicted natively with the
//! model's own preprocessing, in batches, with progress in the job log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::Running;
use super::executor::{Executor, Failure};
use crate::serving::model as served;
use crate::store::{JobRow, LogBatch};
use crate::train::spec::dataset_ref;
use crate::train::{Prediction, TrainedModel};
use crate::workspace::{DomainError, Metric, MetricPoint, Workspace, now_millis};

/// Rows scored per batch unless the spec says otherwise.
pub const DEFAULT_BATCH: usize = 4096;

/// The batch scoring part of a job spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchScoreSpec {
    /// `models:/name/3`, `models:/name@alias`, or `runs:/<run>/<path>`.
    pub model: String,
    /// Input dataset, `name:version` (or `name` for the latest).
    pub dataset: String,
    /// Name of the output dataset (default `<input name>-scored`); each job adds a version.
    #[serde(default)]
    pub output: Option<String>,
    /// Rows per batch.
    #[serde(default)]
    pub batch_size: Option<usize>,
}

impl BatchScoreSpec {
    /// Checks the fields that need no lookup.
    pub fn check(&self) -> Result<(), DomainError> {
        if self.model.trim().is_empty() {
            return Err(DomainError::invalid("batch_score.model must name a model"));
        }
        dataset_ref(&self.dataset)?;
        if let Some(o) = &self.output {
            crate::service::check_dataset_name(o)?;
        }
        if self.batch_size == Some(0) {
            return Err(DomainError::invalid(
                "batch_score.batch_size must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Runs a batch scoring job.
pub(super) async fn run(
    ex: &Arc<Executor>,
    ws: &Workspace,
    job: &JobRow,
    spec: &BatchScoreSpec,
    run_id: &str,
    running: &Arc<Running>,
) -> Result<(), Failure> {
    let t = &ex.svc;
    let (name, version) = dataset_ref(&spec.dataset)?;
    let d = t.store.dataset(ws.id, name, version).await?;
    let input = format!("{}:{}", d.name, d.version);
    let table = t.dataset_table(ws, &d).await?;
    let resolved = served::resolve(t, ws, &spec.model).await?;
    let (json, weights) = served::files(t, ws, &resolved).await?;
    let model = TrainedModel::from_files(&json, &weights, &candle_core::Device::Cpu)?;
    let output = spec
        .output
        .clone()
        .unwrap_or_else(|| format!("{}-scored", d.name));
    t.store
        .log_batch(
            ws.id,
            run_id,
            LogBatch {
                params: vec![
                    ("model".into(), spec.model.clone()),
                    ("dataset".into(), input.clone()),
                    ("output".into(), output.clone()),
                ],
                tags: vec![("atrium.dataset".into(), input.clone())],
                ..Default::default()
            },
        )
        .await?;
    let batch = spec.batch_size.unwrap_or(DEFAULT_BATCH);
    let n = table.rows.len();
    let batches = n.div_ceil(batch).max(1);
    running.batches.store(batches as u64, Ordering::Relaxed);
    ex.logs.line(
        &job.id,
        &format!(
            "scoring {input} ({n} rows) with {} in {batches} batches",
            spec.model
        ),
    );
    let (logs, job_id, running2) = (ex.logs.clone(), job.id.clone(), running.clone());
    let csv = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Failure> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| Failure::Failed(format!("writing the scored CSV: {e}"));
        let mut header_done = false;
        for (i, chunk) in table.rows.chunks(batch).enumerate() {
            if running2.cancel.load(Ordering::Relaxed) {
                return Err(Failure::Canceled);
            }
            let rows: Vec<HashMap<String, String>> = chunk
                .iter()
                .map(|r| {
                    table
                        .header
                        .iter()
                        .cloned()
                        .zip(r.iter().cloned())
                        .collect()
                })
                .collect();
            let preds = model.predict(&rows).map_err(|e| {
                Failure::Failed(format!(
                    "batch {} (rows from {}): {e}",
                    i + 1,
                    i * batch + 1
                ))
            })?;
            for (row, p) in chunk.iter().zip(preds) {
                if !header_done {
                    let mut h = table.header.clone();
                    h.push("prediction".into());
                    if let Prediction::Class { probabilities, .. } = &p {
                        h.extend(probabilities.keys().map(|k| format!("p_{k}")));
                    }
                    w.write_record(&h).map_err(csv_err)?;
                    header_done = true;
                }
                let mut r = row.clone();
                match p {
                    Prediction::Class {
                        label,
                        probabilities,
                    } => {
                        r.push(label);
                        r.extend(probabilities.values().map(|v| v.to_string()));
                    }
                    Prediction::Value { value } => r.push(value.to_string()),
                }
                w.write_record(&r).map_err(csv_err)?;
            }
            running2.batch.store(i as u64 + 1, Ordering::Relaxed);
            logs.line(
                &job_id,
                &format!("batch {}/{batches}: {} rows scored", i + 1, chunk.len()),
            );
        }
        w.into_inner()
            .map_err(|e| Failure::Failed(format!("writing the scored CSV: {e}")))
    })
    .await
    .map_err(|e| Failure::Failed(format!("scoring stopped: {e}")))??;
    ex.finalizing(job).await?;
    let scored = t.create_dataset(ws, &output, csv).await?;
    let out_ref = format!("{}:{}", scored.name, scored.version);
    ex.logs.line(&job.id, &format!("wrote {out_ref}"));
    t.store
        .log_batch(
            ws.id,
            run_id,
            LogBatch {
                metrics: vec![Metric {
                    key: "rows_scored".into(),
                    point: MetricPoint {
                        value: n as f64,
                        timestamp: now_millis(),
                        step: 0,
                    },
                }],
                tags: vec![("atrium.output_dataset".into(), out_ref)],
                ..Default::default()
            },
        )
        .await?;
    Ok(())
}
