//! AutoML: a sweep whose search space spans model families (linear or logistic models with
//! regularization, MLPs of one to three hidden layers) and their training hyperparameters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::spec::{
    Dim, DimKind, EarlyTermination, Goal, Objective, SamplerRef, SweepLimits, SweepSpec,
};
use crate::train::spec::{
    Family, MissingPolicy, ModelSpec, OptimizerKind, OptimizerSpec, Task, TrainSpec,
};
use crate::workspace::DomainError;

/// The metric AutoML optimizes (measured on the validation rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutomlMetric {
    /// Fraction of correct labels.
    Accuracy,
    /// Macro-averaged F1.
    F1Macro,
    /// Area under the ROC curve (binary targets).
    Auc,
    /// Root mean squared error.
    Rmse,
    /// Coefficient of determination.
    R2,
}

impl AutomlMetric {
    /// The metric name the trials log.
    pub fn logged(self) -> &'static str {
        match self {
            AutomlMetric::Accuracy => "val_accuracy",
            AutomlMetric::F1Macro => "val_f1_macro",
            AutomlMetric::Auc => "val_auc",
            AutomlMetric::Rmse => "val_rmse",
            AutomlMetric::R2 => "val_r2",
        }
    }

    /// Its direction.
    pub fn goal(self) -> Goal {
        match self {
            AutomlMetric::Rmse => Goal::Minimize,
            _ => Goal::Maximize,
        }
    }

    fn task(self) -> Task {
        match self {
            AutomlMetric::Rmse | AutomlMetric::R2 => Task::Regression,
            _ => Task::Classification,
        }
    }
}

/// AutoML limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomlLimits {
    /// Trials in all.
    #[serde(default = "default_trials")]
    pub max_trials: u32,
    /// Trials at once.
    #[serde(default = "one")]
    pub max_concurrent_trials: u32,
    /// Seconds for the whole search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Seconds for one trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_timeout: Option<u64>,
    /// Stop as soon as a trial reaches this score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_score: Option<f64>,
}

fn default_trials() -> u32 {
    20
}
fn one() -> u32 {
    1
}
fn default_epochs() -> usize {
    30
}
fn default_split() -> f64 {
    0.2
}

impl Default for AutomlLimits {
    fn default() -> Self {
        Self {
            max_trials: default_trials(),
            max_concurrent_trials: 1,
            timeout: None,
            trial_timeout: None,
            exit_score: None,
        }
    }
}

/// Model families AutoML may try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowedModel {
    /// Linear regression or logistic regression (by task), with weight decay.
    Linear,
    /// MLPs of one to three hidden layers.
    Mlp,
}

/// An AutoML job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomlSpec {
    /// Classification or regression.
    pub task: Task,
    /// Training data (`name:version`).
    pub dataset: String,
    /// Target column.
    pub target: String,
    /// Feature columns (default: all others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Validation data; default: a stratified split of the training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_dataset: Option<String>,
    /// Held-out fraction when there is no validation dataset.
    #[serde(default = "default_split")]
    pub validation_split: f64,
    /// The metric to optimize (default: accuracy or rmse by task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_metric: Option<AutomlMetric>,
    /// Limits.
    #[serde(default)]
    pub limits: AutomlLimits,
    /// Families to search (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<AllowedModel>>,
    /// Sampler (default: tpe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<SamplerRef>,
    /// Early termination (default: median stopping after 5 epochs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_termination: Option<EarlyTermination>,
    /// Epochs per trial.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Seed of sampling and training.
    #[serde(default)]
    pub seed: u64,
    /// Missing values.
    #[serde(default)]
    pub missing: MissingPolicy,
}

impl AutomlSpec {
    /// The metric actually optimized.
    pub fn metric(&self) -> AutomlMetric {
        self.primary_metric.unwrap_or(match self.task {
            Task::Classification => AutomlMetric::Accuracy,
            Task::Regression => AutomlMetric::Rmse,
        })
    }

    /// Checks the spec (data-dependent checks happen at submission).
    pub fn check(&self) -> Result<(), DomainError> {
        let m = self.metric();
        if m.task() != self.task {
            return Err(DomainError::invalid(format!(
                "primary_metric {} is for {} tasks",
                m.logged().trim_start_matches("val_"),
                match m.task() {
                    Task::Classification => "classification",
                    Task::Regression => "regression",
                }
            )));
        }
        if self.validation_dataset.is_none()
            && !(self.validation_split > 0.0 && self.validation_split < 0.9)
        {
            return Err(DomainError::invalid(
                "AutoML ranks trials on validation rows: give validation_dataset or a validation_split in (0, 0.9)",
            ));
        }
        if self.allowed_models.as_ref().is_some_and(Vec::is_empty) {
            return Err(DomainError::invalid("allowed_models must not be empty"));
        }
        if !(1..=100_000).contains(&self.limits.max_trials)
            || self.limits.max_concurrent_trials == 0
        {
            return Err(DomainError::invalid(
                "limits.max_trials must be between 1 and 100000 and max_concurrent_trials at least 1",
            ));
        }
        self.base().check()?;
        self.sweep().check()
    }

    fn base(&self) -> TrainSpec {
        TrainSpec {
            dataset: self.dataset.clone(),
            target: self.target.clone(),
            features: self.features.clone(),
            task: self.task,
            model: ModelSpec::default(),
            optimizer: OptimizerSpec {
                kind: OptimizerKind::Adamw,
                ..OptimizerSpec::default()
            },
            epochs: self.epochs,
            batch_size: 64,
            validation_split: self.validation_split,
            validation_dataset: self.validation_dataset.clone(),
            seed: self.seed,
            early_stopping: None,
            missing: self.missing,
            device: Default::default(),
            checkpoint_every: 0,
        }
    }

    /// The model choices of the search space.
    fn models(&self) -> Vec<Value> {
        let allowed = self
            .allowed_models
            .clone()
            .unwrap_or(vec![AllowedModel::Linear, AllowedModel::Mlp]);
        let mut out = Vec::new();
        if allowed.contains(&AllowedModel::Linear) {
            out.push(json!(match self.task {
                Task::Classification => "logistic",
                Task::Regression => "linear",
            }));
        }
        if allowed.contains(&AllowedModel::Mlp) {
            out.extend([json!("mlp-1"), json!("mlp-2"), json!("mlp-3")]);
        }
        out
    }

    /// The equivalent sweep: its search space, objective, strategies and limits. The trial
    /// template is unused (trials are built by [`AutomlSpec::trial`]); it names the dimensions.
    pub fn sweep(&self) -> SweepSpec {
        let dim = |kind, low: Option<f64>, high: Option<f64>, values: Option<Vec<Value>>| Dim {
            kind,
            values,
            low,
            high,
            q: None,
            mu: None,
            sigma: None,
        };
        let space: BTreeMap<String, Dim> = [
            (
                "model".to_string(),
                dim(DimKind::Choice, None, None, Some(self.models())),
            ),
            (
                "width".to_string(),
                dim(
                    DimKind::Choice,
                    None,
                    None,
                    Some(vec![json!(32), json!(64), json!(128), json!(256)]),
                ),
            ),
            (
                "lr".to_string(),
                dim(DimKind::Loguniform, Some(3e-4), Some(3e-2), None),
            ),
            (
                "batch_size".to_string(),
                dim(
                    DimKind::Choice,
                    None,
                    None,
                    Some(vec![json!(16), json!(32), json!(64), json!(128)]),
                ),
            ),
            (
                "weight_decay".to_string(),
                dim(DimKind::Loguniform, Some(1e-6), Some(1e-2), None),
            ),
            (
                "dropout".to_string(),
                dim(DimKind::Uniform, Some(0.0), Some(0.3), None),
            ),
        ]
        .into();
        let template = Value::Object(
            space
                .keys()
                .map(|k| {
                    (
                        k.clone(),
                        Value::String(format!("${{{{search_space.{k}}}}}")),
                    )
                })
                .collect(),
        );
        SweepSpec {
            trial: template,
            search_space: space,
            objective: Objective {
                primary_metric: self.metric().logged().to_string(),
                goal: self.metric().goal(),
            },
            sampler: self
                .sampler
                .clone()
                .unwrap_or(SamplerRef::Name("tpe".into())),
            early_termination: Some(self.early_termination.clone().unwrap_or(EarlyTermination {
                policy: Some("median".into()),
                evaluation_interval: 1,
                delay_evaluation: 5,
                ..Default::default()
            })),
            limits: SweepLimits {
                max_total_trials: self.limits.max_trials,
                max_concurrent_trials: self.limits.max_concurrent_trials,
                timeout: self.limits.timeout,
                trial_timeout: self.limits.trial_timeout,
            },
            seed: self.seed,
        }
    }

    /// The train spec of one trial.
    pub fn trial(&self, params: &BTreeMap<String, Value>) -> Result<TrainSpec, DomainError> {
        let get = |k: &str| {
            params
                .get(k)
                .ok_or_else(|| DomainError::Internal(format!("AutoML trial without '{k}'")))
        };
        let num = |k: &str| {
            get(k)?
                .as_f64()
                .ok_or_else(|| DomainError::Internal(format!("AutoML '{k}' is not a number")))
        };
        let mut spec = self.base();
        let model = get("model")?.as_str().unwrap_or("mlp-1").to_string();
        spec.model = match model.as_str() {
            "logistic" => ModelSpec {
                family: Family::Logistic,
                ..ModelSpec::default()
            },
            "linear" => ModelSpec {
                family: Family::Linear,
                ..ModelSpec::default()
            },
            m => {
                let depth: usize = m.trim_start_matches("mlp-").parse().unwrap_or(1);
                let width = num("width")? as usize;
                ModelSpec {
                    family: Family::Mlp,
                    hidden: vec![width; depth],
                    dropout: num("dropout")? as f32,
                    ..ModelSpec::default()
                }
            }
        };
        spec.optimizer.lr = num("lr")?;
        spec.optimizer.weight_decay = num("weight_decay")?;
        spec.batch_size = num("batch_size")? as usize;
        spec.check()?;
        Ok(spec)
    }

    /// Datasets the job reads.
    pub fn datasets(&self) -> Vec<String> {
        std::iter::once(self.dataset.clone())
            .chain(self.validation_dataset.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_trials_for_each_family() {
        let a: AutomlSpec = toml::from_str(
            "task = \"classification\"\ndataset = \"d:1\"\ntarget = \"y\"\n[limits]\nmax_trials = 5\nexit_score = 0.99\n",
        )
        .unwrap();
        a.check().unwrap();
        assert_eq!(a.sweep().objective.primary_metric, "val_accuracy");
        let mut p: BTreeMap<String, Value> = [
            ("model", json!("mlp-2")),
            ("width", json!(64)),
            ("lr", json!(0.01)),
            ("batch_size", json!(32)),
            ("weight_decay", json!(1e-4)),
            ("dropout", json!(0.1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let t = a.trial(&p).unwrap();
        assert_eq!(t.model.hidden, vec![64, 64]);
        assert_eq!(t.optimizer.kind, OptimizerKind::Adamw);
        p.insert("model".into(), json!("logistic"));
        assert_eq!(a.trial(&p).unwrap().model.family, Family::Logistic);
        let bad: AutomlSpec = toml::from_str(
            "task = \"regression\"\ndataset = \"d:1\"\ntarget = \"y\"\nprimary_metric = \"auc\"\n",
        )
        .unwrap();
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("classification")
        );
    }
}
