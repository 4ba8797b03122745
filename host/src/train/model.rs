//! The saved model: `model.json` (architecture, preprocessing, signature) plus
//! `model.safetensors` (weights). Loading both gives a model that predicts exactly as the one
//! that was trained.

use std::collections::{BTreeMap, HashMap};

use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::data::{Feature, Preprocessor, TargetEncoding};
use super::net::{Architecture, Net};
use super::spec::Task;
use crate::workspace::DomainError;

/// Format tag of `model.json`.
pub const FORMAT: &str = "atrium.tabular/1";

/// `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Always [`FORMAT`].
    pub format: String,
    /// The framework that runs it.
    pub framework: String,
    /// Task.
    pub task: Task,
    /// Network shape.
    pub architecture: Architecture,
    /// Preprocessing fitted on the training rows.
    pub preprocessor: Preprocessor,
    /// What the model takes and returns.
    pub signature: serde_json::Value,
    /// Training dataset `name:version`.
    pub dataset: String,
    /// Metrics of the saved weights.
    pub metrics: BTreeMap<String, f64>,
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    /// A class with the probability of each class.
    Class {
        /// Predicted label.
        label: String,
        /// Probability per label.
        probabilities: BTreeMap<String, f32>,
    },
    /// A number.
    Value {
        /// Predicted value.
        value: f64,
    },
}

/// Predictions as the API and the CLI answer them: a label or a value per row, and for a
/// classifier each row's class probabilities beside them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "ModelPredictions")]
pub struct Predictions {
    /// One per row, in order.
    pub predictions: Vec<PredictedValue>,
    /// Per row, each class label's probability (classification only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<BTreeMap<String, f32>>>,
}

/// A predicted label (classification) or value (regression).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PredictedValue {
    /// The most probable class.
    Label(String),
    /// The predicted number.
    Value(f64),
}

impl Predictions {
    /// Splits `preds` into labels or values and, when `classification`, probabilities.
    pub fn new(preds: Vec<Prediction>, classification: bool) -> Self {
        let mut predictions = Vec::with_capacity(preds.len());
        let mut probabilities = Vec::new();
        for p in preds {
            match p {
                Prediction::Class {
                    label,
                    probabilities: probs,
                } => {
                    predictions.push(PredictedValue::Label(label));
                    probabilities.push(probs);
                }
                Prediction::Value { value } => predictions.push(PredictedValue::Value(value)),
            }
        }
        Self {
            predictions,
            probabilities: classification.then_some(probabilities),
        }
    }
}

/// A model ready to predict.
pub struct TrainedModel {
    /// Its card.
    pub card: ModelCard,
    /// Its network.
    pub net: Net,
}

fn signature(pre: &Preprocessor) -> serde_json::Value {
    let inputs: Vec<serde_json::Value> = pre
        .features
        .iter()
        .map(|f| match f {
            Feature::Numeric { name, .. } => serde_json::json!({ "name": name, "type": "number" }),
            Feature::Categorical {
                name, categories, ..
            } => {
                serde_json::json!({ "name": name, "type": "category", "categories": categories })
            }
        })
        .collect();
    let output = match &pre.target {
        TargetEncoding::Classes { name, labels } => {
            serde_json::json!({ "name": name, "type": "class", "labels": labels })
        }
        TargetEncoding::Number { name, .. } => {
            serde_json::json!({ "name": name, "type": "number" })
        }
    };
    serde_json::json!({ "inputs": inputs, "output": output })
}

impl TrainedModel {
    /// Wraps a trained network.
    pub fn new(
        net: Net,
        task: Task,
        pre: Preprocessor,
        dataset: String,
        metrics: &[(String, f64)],
    ) -> Self {
        let card = ModelCard {
            format: FORMAT.into(),
            framework: "candle".into(),
            task,
            architecture: net.arch.clone(),
            signature: signature(&pre),
            preprocessor: pre,
            dataset,
            metrics: metrics.iter().cloned().collect(),
        };
        Self { card, net }
    }

    /// `model.json` and `model.safetensors` bytes.
    pub fn to_files(&self) -> Result<(Vec<u8>, Vec<u8>), DomainError> {
        let json = serde_json::to_vec_pretty(&self.card)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        Ok((json, weights_bytes(&self.net)?))
    }

    /// Loads a model from its two files.
    pub fn from_files(json: &[u8], weights: &[u8], device: &Device) -> Result<Self, DomainError> {
        let card: ModelCard = serde_json::from_slice(json)
            .map_err(|e| DomainError::invalid(format!("model.json: {e}")))?;
        if card.format != FORMAT {
            return Err(DomainError::invalid(format!(
                "model format '{}' is not {FORMAT}",
                card.format
            )));
        }
        let tensors = candle_core::safetensors::load_buffer(weights, device)
            .map_err(|e| DomainError::invalid(format!("model.safetensors: {e}")))?;
        let net = Net::new(card.architecture.clone(), 0, device)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        net.load(&tensors)
            .map_err(|e| DomainError::invalid(format!("model.safetensors: {e}")))?;
        Ok(Self { card, net })
    }

    /// Predicts `rows` of raw feature values (see [`Preprocessor::encode_raw`]): class
    /// probabilities `[rows, classes]`, or values in target units `[rows, 1]`.
    ///
    /// [`Preprocessor::encode_raw`]: super::data::Preprocessor::encode_raw
    pub fn predict_raw(
        &self,
        raw: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<(Vec<u64>, Vec<f32>), DomainError> {
        let pre = &self.card.preprocessor;
        if rows.checked_mul(cols) != Some(raw.len()) {
            return Err(DomainError::invalid(format!(
                "{} values are not {rows} rows of {cols}",
                raw.len()
            )));
        }
        let mut x = Vec::new();
        pre.encode_raw(raw, cols, &mut x)?;
        let kernel = |e: candle_core::Error| DomainError::Internal(format!("inference: {e}"));
        let input = Tensor::from_vec(x, (rows, pre.width()), self.net.device()).map_err(kernel)?;
        match &pre.target {
            TargetEncoding::Classes { labels, .. } => {
                let probs = self
                    .net
                    .probabilities(&input)
                    .map_err(kernel)?
                    .flatten_all()
                    .map_err(kernel)?
                    .to_vec1::<f32>()
                    .map_err(kernel)?;
                Ok((vec![rows as u64, labels.len() as u64], probs))
            }
            TargetEncoding::Number { mean, std, .. } => {
                let out = self
                    .net
                    .forward(&input, None)
                    .map_err(kernel)?
                    .flatten_all()
                    .map_err(kernel)?
                    .to_vec1::<f32>()
                    .map_err(kernel)?;
                let values = out
                    .into_iter()
                    .map(|v| (v as f64 * std + mean) as f32)
                    .collect();
                Ok((vec![rows as u64, 1], values))
            }
        }
    }

    /// Predicts rows given as column → value maps (values as text, like CSV cells).
    pub fn predict(
        &self,
        rows: &[HashMap<String, String>],
    ) -> Result<Vec<Prediction>, DomainError> {
        let pre = &self.card.preprocessor;
        let mut x = Vec::with_capacity(rows.len() * pre.width());
        for (i, row) in rows.iter().enumerate() {
            pre.encode_inputs(|_, name| row.get(name).map(String::as_str), &mut x, i)?;
        }
        let kernel = |e: candle_core::Error| DomainError::Internal(format!("inference: {e}"));
        let input =
            Tensor::from_vec(x, (rows.len(), pre.width()), self.net.device()).map_err(kernel)?;
        match &pre.target {
            TargetEncoding::Classes { labels, .. } => {
                let probs = self
                    .net
                    .probabilities(&input)
                    .map_err(kernel)?
                    .to_vec2::<f32>()
                    .map_err(kernel)?;
                Ok(probs
                    .into_iter()
                    .map(|p| {
                        let best = p
                            .iter()
                            .enumerate()
                            .max_by(|a, b| a.1.total_cmp(b.1))
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        Prediction::Class {
                            label: labels[best].clone(),
                            probabilities: labels.iter().cloned().zip(p).collect(),
                        }
                    })
                    .collect())
            }
            TargetEncoding::Number { mean, std, .. } => {
                let out = self
                    .net
                    .forward(&input, None)
                    .map_err(kernel)?
                    .squeeze(D::Minus1)
                    .map_err(kernel)?;
                Ok(out
                    .to_vec1::<f32>()
                    .map_err(kernel)?
                    .into_iter()
                    .map(|v| Prediction::Value {
                        value: v as f64 * std + mean,
                    })
                    .collect())
            }
        }
    }
}

/// The network's weights as safetensors bytes.
pub fn weights_bytes(net: &Net) -> Result<Vec<u8>, DomainError> {
    let mut tensors: Vec<(String, Tensor)> = net.tensors().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    safetensors::serialize(tensors, None)
        .map_err(|e| DomainError::Internal(format!("save weights: {e}")))
}
