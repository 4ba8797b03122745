//! `atrium model predict`: load a trained model from a run's artifacts and score a CSV locally,
//! with exactly the preprocessing training learned.

use std::collections::HashMap;

use clap::Subcommand;

use super::client::{Client, encode_path, encode_query};
use super::{CliError, Output};
use crate::train::{Prediction, TrainedModel};
use crate::workspace::dataset::parse_csv;

/// `atrium model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Predict the rows of a CSV with the model a train job saved in a run.
    Predict {
        /// Run id.
        #[arg(long)]
        run: String,
        /// Artifact directory of the model.
        #[arg(long, default_value = "model")]
        path: String,
        /// CSV with the feature columns (other columns are ignored).
        #[arg(long, short = 'f')]
        file: std::path::PathBuf,
    },
}

async fn fetch(c: &Client, run: &str, path: &str) -> Result<Vec<u8>, CliError> {
    let mut out = Vec::new();
    let url = c.ws_path(&format!(
        "/runs/{}/artifacts/{}",
        encode_query(run),
        encode_path(path)
    ));
    c.download(&url, &mut out).await?;
    Ok(out)
}

/// Runs `atrium model ...`.
pub async fn model(c: &Client, cmd: ModelCmd, out: Output) -> Result<(), CliError> {
    let ModelCmd::Predict { run, path, file } = cmd;
    let dir = path.trim_end_matches('/');
    let json = fetch(c, &run, &format!("{dir}/model.json")).await?;
    let weights = fetch(c, &run, &format!("{dir}/model.safetensors")).await?;
    let model = TrainedModel::from_files(&json, &weights, &candle_core::Device::Cpu)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let bytes = tokio::fs::read(&file)
        .await
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let table =
        parse_csv(&bytes).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let rows: Vec<HashMap<String, String>> = table
        .rows
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
    let preds = model
        .predict(&rows)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if out == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&preds).unwrap_or_default()
        );
        return Ok(());
    }
    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
    let csv_err = |e: csv::Error| CliError::Io(std::io::Error::other(e));
    for (i, p) in preds.iter().enumerate() {
        match p {
            Prediction::Class {
                label,
                probabilities,
            } => {
                if i == 0 {
                    let mut h = vec!["prediction".to_string()];
                    h.extend(probabilities.keys().map(|k| format!("p_{k}")));
                    w.write_record(&h).map_err(csv_err)?;
                }
                let mut r = vec![label.clone()];
                r.extend(probabilities.values().map(|v| v.to_string()));
                w.write_record(&r).map_err(csv_err)?;
            }
            Prediction::Value { value } => {
                if i == 0 {
                    w.write_record(["prediction"]).map_err(csv_err)?;
                }
                w.write_record([value.to_string()]).map_err(csv_err)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
