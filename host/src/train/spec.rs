//! The train job spec (TOML, YAML or JSON) and its checks.

use serde::{Deserialize, Serialize};

use crate::workspace::DomainError;

/// Classification or regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Predict a class label (cross-entropy; accuracy and macro F1).
    Classification,
    /// Predict a number (MSE on the standardized target; RMSE and R²).
    Regression,
}

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Linear regression (no hidden layer).
    Linear,
    /// Logistic (softmax) regression (no hidden layer).
    Logistic,
    /// Multi-layer perceptron.
    #[default]
    Mlp,
}

/// Hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x)
    #[default]
    Relu,
    /// tanh(x)
    Tanh,
    /// logistic sigmoid
    Sigmoid,
    /// Gaussian error linear unit
    Gelu,
}

/// Architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Family.
    #[serde(default)]
    pub family: Family,
    /// Hidden layer widths (MLP).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Activation between layers.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden activation.
    #[serde(default)]
    pub dropout: f32,
    /// Batch normalization after each hidden linear layer.
    #[serde(default)]
    pub batch_norm: bool,
}

fn default_hidden() -> Vec<usize> {
    vec![128]
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            family: Family::Mlp,
            hidden: default_hidden(),
            activation: Activation::Relu,
            dropout: 0.0,
            batch_norm: false,
        }
    }
}

/// Optimizer algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with momentum.
    Sgd,
    /// Adam (L2 weight decay added to the gradient).
    #[default]
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// Fixed rate.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Cosine annealing from the rate to `min_lr` over all epochs.
    Cosine {
        /// Final rate.
        #[serde(default)]
        min_lr: f64,
    },
}

/// Optimizer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    /// Algorithm.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Momentum (SGD).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam β1.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam β2.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam ε.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: Schedule,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_momentum() -> f64 {
    0.9
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr: default_lr(),
            momentum: default_momentum(),
            weight_decay: 0.0,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            schedule: Schedule::Constant,
        }
    }
}

/// What to do with missing values in used columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// Refuse the job, naming the first missing value.
    #[default]
    Fail,
    /// Drop rows with a missing value.
    Drop,
    /// Fill with the training mean (numeric) or most frequent value (categorical).
    Impute,
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU (only in builds with the `cuda` feature).
    Cuda,
    /// CUDA when present, else the CPU.
    Auto,
}

/// Early stopping on validation loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest improvement that counts.
    #[serde(default)]
    pub min_delta: f64,
}

/// A native Candle training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Training data, `name:version` (or `name` for the latest version).
    pub dataset: String,
    /// Target column.
    pub target: String,
    /// Feature columns (default: all others).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Task.
    pub task: Task,
    /// Architecture.
    #[serde(default)]
    pub model: ModelSpec,
    /// Optimizer.
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    /// Passes over the training data.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Rows per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Fraction of rows held out for validation (when no validation dataset is given).
    #[serde(default = "default_split")]
    pub validation_split: f64,
    /// A separate validation dataset (`name:version`).
    #[serde(default)]
    pub validation_dataset: Option<String>,
    /// Seed of initialization, shuffling, splitting and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Stop when validation loss stops improving.
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Missing values in used columns.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Device.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Save a checkpoint every N epochs (0: never).
    #[serde(default)]
    pub checkpoint_every: usize,
}

fn default_epochs() -> usize {
    20
}
fn default_batch() -> usize {
    64
}
fn default_split() -> f64 {
    0.2
}

impl TrainSpec {
    /// Checks values that deserialization cannot.
    pub fn check(&self) -> Result<(), DomainError> {
        let bad = |m: String| Err(DomainError::invalid(m));
        if self.epochs == 0 || self.epochs > 100_000 {
            return bad(format!(
                "epochs must be between 1 and 100000, got {}",
                self.epochs
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if self.validation_dataset.is_none() && !(0.0..0.9).contains(&self.validation_split) {
            return bad(format!(
                "validation_split must be in [0, 0.9), got {}",
                self.validation_split
            ));
        }
        if !(self.optimizer.lr > 0.0 && self.optimizer.lr < 10.0) {
            return bad(format!(
                "optimizer.lr must be in (0, 10), got {}",
                self.optimizer.lr
            ));
        }
        if !(0.0..1.0).contains(&self.model.dropout) {
            return bad(format!(
                "model.dropout must be in [0, 1), got {}",
                self.model.dropout
            ));
        }
        match (self.model.family, self.task) {
            (Family::Linear, Task::Classification) => {
                bad("family 'linear' is for regression; use 'logistic' for classification".into())
            }
            (Family::Logistic, Task::Regression) => {
                bad("family 'logistic' is for classification; use 'linear' for regression".into())
            }
            (Family::Mlp, _)
                if self.model.hidden.is_empty()
                    || self.model.hidden.iter().any(|h| *h == 0 || *h > 65_536) =>
            {
                bad("an mlp needs hidden layer widths between 1 and 65536".into())
            }
            _ => Ok(()),
        }?;
        if self.device == DeviceSpec::Cuda && !cfg!(feature = "cuda") {
            return bad(
                "device 'cuda' needs a host built with the cuda feature; use 'cpu' or 'auto'"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Splits `name:version` (version optional).
pub fn dataset_ref(s: &str) -> Result<(&str, Option<i64>), DomainError> {
    match s.rsplit_once(':') {
        Some((name, v)) => {
            let v = v.parse::<i64>().map_err(|_| {
                DomainError::invalid(format!(
                    "dataset '{s}': the version after ':' must be a number"
                ))
            })?;
            Ok((name, Some(v)))
        }
        None => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_defaults() {
        let s: TrainSpec = toml::from_str(
            "dataset = \"iris:1\"\ntarget = \"target\"\ntask = \"classification\"\n[optimizer]\nkind = \"sgd\"\nlr = 0.1\nschedule = { kind = \"step\", step_size = 5, gamma = 0.5 }\n",
        )
        .unwrap();
        assert_eq!(s.epochs, 20);
        assert_eq!(s.model.family, Family::Mlp);
        assert_eq!(
            s.optimizer.schedule,
            Schedule::Step {
                step_size: 5,
                gamma: 0.5
            }
        );
        s.check().unwrap();
        assert_eq!(dataset_ref("iris:1").unwrap(), ("iris", Some(1)));
        assert_eq!(dataset_ref("iris").unwrap(), ("iris", None));
        assert!(dataset_ref("iris:x").is_err());
    }

    #[test]
    fn refuses_bad_specs() {
        let base = "dataset = \"d\"\ntarget = \"t\"\n";
        let check = |extra: &str| -> String {
            let s: TrainSpec = toml::from_str(&format!("{base}{extra}")).unwrap();
            s.check().unwrap_err().to_string()
        };
        assert!(check("task = \"classification\"\nepochs = 0").contains("epochs"));
        assert!(
            check("task = \"classification\"\n[model]\nfamily = \"linear\"").contains("logistic")
        );
        assert!(check("task = \"regression\"\n[model]\nfamily = \"logistic\"").contains("linear"));
        assert!(check("task = \"regression\"\n[model]\ndropout = 1.5").contains("dropout"));
        assert!(toml::from_str::<TrainSpec>(&format!("{base}task = \"clustering\"")).is_err());
        assert!(
            toml::from_str::<TrainSpec>(&format!("{base}task = \"regression\"\nbogus = 1"))
                .is_err()
        );
    }
}
