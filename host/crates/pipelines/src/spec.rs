//! The pipeline document (TOML, YAML or JSON; Azure ML's key names): typed inputs, outputs
//! bound to step outputs, settings, and the steps (`jobs`), each a job kind with its section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Result, SpecError};

/// The type of an input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    /// A dataset version, passed as `name:version`.
    Dataset,
    /// A model: `runs:/<run>/model` or `models:/<name>/<version>`.
    Model,
    /// A file of a step's outputs (content-addressed).
    File,
    /// A folder of a step's outputs (content-addressed).
    Folder,
    /// Text.
    String,
    /// A floating-point number.
    Number,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

impl Type {
    /// Its spelling in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Dataset => "dataset",
            Type::Model => "model",
            Type::File => "file",
            Type::Folder => "folder",
            Type::String => "string",
            Type::Number => "number",
            Type::Integer => "integer",
            Type::Boolean => "boolean",
        }
    }

    /// Parses a spelling (Azure's `uri_file`, `uri_folder`, `mltable`, `mlflow_model` too).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "dataset" | "mltable" => Type::Dataset,
            "model" | "mlflow_model" | "custom_model" => Type::Model,
            "file" | "uri_file" => Type::File,
            "folder" | "uri_folder" => Type::Folder,
            "string" => Type::String,
            "number" => Type::Number,
            "integer" => Type::Integer,
            "boolean" => Type::Boolean,
            other => {
                return Err(SpecError::new(format!(
                    "unknown type '{other}': expected dataset, model, file, folder, string, number, integer or boolean"
                )));
            }
        })
    }

    /// Whether a value of type `self` may be used where `want` is expected (an integer is a
    /// number; everything else must match).
    pub fn fits(self, want: Type) -> bool {
        self == want || (self == Type::Integer && want == Type::Number)
    }

    /// Whether it is a scalar (string, number, integer, boolean).
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            Type::String | Type::Number | Type::Integer | Type::Boolean
        )
    }

    /// Checks a literal value against the type; returns it normalised (an integer-valued
    /// number stays a number, a number is refused where an integer is wanted).
    pub fn literal(self, v: &Value) -> std::result::Result<Value, String> {
        let bad = || {
            format!(
                "{} is not a {}",
                serde_json::to_string(v).unwrap_or_default(),
                self.as_str()
            )
        };
        match self {
            Type::String => v.as_str().map(|_| v.clone()).ok_or_else(bad),
            Type::Number => v.as_f64().map(|_| v.clone()).ok_or_else(bad),
            Type::Integer => v
                .as_i64()
                .map(Value::from)
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                        .map(|f| Value::from(f as i64))
                })
                .ok_or_else(bad),
            Type::Boolean => v.as_bool().map(Value::from).ok_or_else(bad),
            Type::Dataset | Type::Model | Type::File | Type::Folder => match v.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(v.clone()),
                _ => Err(format!(
                    "a {} input takes a reference as a string, got {}",
                    self.as_str(),
                    serde_json::to_string(v).unwrap_or_default()
                )),
            },
        }
    }
}

/// A step's job kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A native Candle train job (`[train]`).
    Train,
    /// A command job (`command`: a command line or a table).
    Command,
    /// A hyperparameter sweep (`[sweep]`).
    Sweep,
    /// An AutoML search (`[automl]`).
    Automl,
    /// Batch scoring (`[batch_score]`).
    #[serde(rename = "batch-score")]
    BatchScore,
    /// Registers a model version (`[register_model]`).
    #[serde(rename = "register-model")]
    RegisterModel,
    /// A published pipeline run as one step (`pipeline = "name:version"` or `"name@latest"`).
    Pipeline,
}

impl StepKind {
    /// Its spelling in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Train => "train",
            StepKind::Command => "command",
            StepKind::Sweep => "sweep",
            StepKind::Automl => "automl",
            StepKind::BatchScore => "batch-score",
            StepKind::RegisterModel => "register-model",
            StepKind::Pipeline => "pipeline",
        }
    }

    /// The key of the section holding its body.
    pub fn section(self) -> &'static str {
        match self {
            StepKind::Train => "train",
            StepKind::Command => "command",
            StepKind::Sweep => "sweep",
            StepKind::Automl => "automl",
            StepKind::BatchScore => "batch_score",
            StepKind::RegisterModel => "register_model",
            StepKind::Pipeline => "pipeline",
        }
    }
}

/// Run settings of a pipeline (overridable at submission).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Let independent branches finish after a step fails (default false: the first failure
    /// cancels running steps and skips pending ones).
    #[serde(default)]
    pub continue_on_step_failure: bool,
    /// Run every step even when the cache holds its result.
    #[serde(default)]
    pub force_rerun: bool,
    /// Steps running at once (default: unbounded; each compute target's capacity still holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The compute target of steps that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_compute: Option<String>,
    /// The environment of command steps that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_environment: Option<Value>,
}

/// A declared output of a command step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputDecl {
    /// Its type.
    #[serde(
        rename = "type",
        deserialize_with = "de_type",
        serialize_with = "ser_type"
    )]
    pub ty: Type,
    /// For a dataset output: the dataset it adds a version to (default `<pipeline>-<step>-<output>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn de_type<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Type, D::Error> {
    let s = String::deserialize(d)?;
    Type::parse(&s).map_err(serde::de::Error::custom)
}

fn ser_type<S: serde::Serializer>(t: &Type, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The job kind.
    #[serde(rename = "type")]
    pub kind: StepKind,
    /// Display name of its run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Its inputs: literals or `${{parent...}}` bindings, used in its body as `${{inputs.x}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    /// Declared outputs (command steps; other kinds have fixed ones).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputDecl>,
    /// Compute target (default: the pipeline's `default_compute`, else `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<String>,
    /// Environment of a command step (default: the pipeline's `default_environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// Times a failed step is started again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Seconds before the first retry (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_secs: Option<f64>,
    /// Factor applied to the backoff after each retry (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<f64>,
    /// Cancel an attempt after this many seconds (it then fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// A condition on inputs or upstream outputs; false → the step is Skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Whether the same inputs give the same outputs, so the cache may serve it (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub is_deterministic: bool,
    /// Part of the cache key: change it to invalidate earlier results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_version: Option<String>,
    /// `[train]` body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<Value>,
    /// `command` body: a command line or a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// `[sweep]` body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Value>,
    /// `[automl]` body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automl: Option<Value>,
    /// `[batch_score]` body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_score: Option<Value>,
    /// `[register_model]` body: `model`, `name`, optional `alias`, `tags`, `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_model: Option<Value>,
    /// The published pipeline a `pipeline` step runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Step {
    /// The body of its kind's section (the command line as `{command = ...}`).
    pub fn body(&self) -> Option<Value> {
        match self.kind {
            StepKind::Train => self.train.clone(),
            StepKind::Command => self.command.clone().map(|c| match c {
                Value::String(s) => serde_json::json!({ "command": s }),
                other => other,
            }),
            StepKind::Sweep => self.sweep.clone(),
            StepKind::Automl => self.automl.clone(),
            StepKind::BatchScore => self.batch_score.clone(),
            StepKind::RegisterModel => self.register_model.clone(),
            StepKind::Pipeline => self.pipeline.clone().map(Value::String),
        }
    }

    /// Seconds to wait before retry `n` (1-based).
    pub fn backoff_secs(&self, n: u32) -> f64 {
        let base = self.retry_backoff_secs.unwrap_or(1.0).max(0.0);
        let factor = self.backoff_factor.unwrap_or(2.0).max(1.0);
        (base * factor.powi(n.saturating_sub(1) as i32)).min(3600.0)
    }
}

/// A pipeline definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// `pipeline` (optional).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its name in the workspace.
    pub name: String,
    /// Display name of its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags of its runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Experiment of its runs (default: the pipeline's name).
    #[serde(
        default,
        alias = "experiment_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub experiment: Option<String>,
    /// Inputs: a literal (its type inferred) or `{type, default, optional, min, max, enum, description}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    /// Outputs, each bound to a step output (`${{parent.jobs.STEP.outputs.NAME}}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Run settings.
    #[serde(default)]
    pub settings: Settings,
    /// The steps, by name.
    pub jobs: BTreeMap<String, Step>,
}

/// The language a spec is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

impl PipelineSpec {
    /// Parses a spec in one format (the check of references and types is [`crate::check`]).
    pub fn parse_as(text: &str, format: Format) -> Result<Self> {
        let bad =
            |e: String| SpecError::new(format!("invalid pipeline spec ({}): {e}", format.as_str()));
        let spec: PipelineSpec = match format {
            Format::Json => serde_json::from_str(text).map_err(|e| bad(e.to_string()))?,
            Format::Toml => toml::from_str(text).map_err(|e| bad(e.to_string()))?,
            Format::Yaml => serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?,
        };
        if let Some(k) = &spec.kind
            && k != "pipeline"
        {
            return Err(SpecError::new(format!(
                "a pipeline spec has type = \"pipeline\", not '{k}' (jobs are submitted with `atrium job submit`)"
            )));
        }
        Ok(spec)
    }
}

/// A declared pipeline input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputDecl {
    /// Its type.
    #[serde(
        rename = "type",
        deserialize_with = "de_type",
        serialize_with = "ser_type"
    )]
    pub ty: Type,
    /// The value when the submission gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether it may be left without a value.
    #[serde(default)]
    pub optional: bool,
    /// Smallest allowed value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Allowed values (strings).
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl InputDecl {
    /// Reads an input as written: a table with `type`, or a literal whose type is inferred.
    pub fn from_value(name: &str, v: &Value) -> Result<Self> {
        let at = |m: String| SpecError::new(format!("input '{name}': {m}"));
        if let Value::Object(m) = v {
            for k in m.keys() {
                if ![
                    "type",
                    "default",
                    "optional",
                    "min",
                    "max",
                    "enum",
                    "description",
                ]
                .contains(&k.as_str())
                {
                    return Err(at(format!(
                        "unknown field '{k}' (expected type, default, optional, min, max, enum, description)"
                    )));
                }
            }
            let ty = m
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| at("needs a type".into()))?;
            let mut d: InputDecl =
                serde_json::from_value(v.clone()).map_err(|e| at(e.to_string()))?;
            d.ty = Type::parse(ty).map_err(|e| at(e.0))?;
            if let Some(def) = &d.default {
                d.default = Some(d.accept(def).map_err(|e| at(format!("default: {e}")))?);
            }
            if (d.min.is_some() || d.max.is_some()) && !matches!(d.ty, Type::Number | Type::Integer)
            {
                return Err(at("min and max are for number and integer inputs".into()));
            }
            return Ok(d);
        }
        let ty = match v {
            Value::Bool(_) => Type::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Type::Integer,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            _ => {
                return Err(at(
                    "give a literal (string, number, boolean) or a table with a type".into(),
                ));
            }
        };
        Ok(InputDecl {
            ty,
            default: Some(v.clone()),
            optional: false,
            min: None,
            max: None,
            allowed: Vec::new(),
            description: None,
        })
    }

    /// Checks a value for this input (type, bounds, allowed values); returns it normalised.
    pub fn accept(&self, v: &Value) -> std::result::Result<Value, String> {
        let v = self.ty.literal(v)?;
        if let Some(x) = v.as_f64().filter(|_| !v.is_string()) {
            if let Some(min) = self.min
                && x < min
            {
                return Err(format!("{x} is below the minimum {min}"));
            }
            if let Some(max) = self.max
                && x > max
            {
                return Err(format!("{x} is above the maximum {max}"));
            }
        }
        if !self.allowed.is_empty() && !self.allowed.contains(&v) {
            return Err(format!(
                "{} is not one of {}",
                serde_json::to_string(&v).unwrap_or_default(),
                serde_json::to_string(&self.allowed).unwrap_or_default()
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_toml_alike() {
        let yaml = r#"
type: pipeline
name: p
inputs:
  lr: 0.1
  data: {type: dataset, default: iris}
jobs:
  a:
    type: command
    command: "echo ${{inputs.x}}"
    inputs: {x: "${{parent.inputs.lr}}"}
"#;
        let toml = r#"
type = "pipeline"
name = "p"
[inputs]
lr = 0.1
data = { type = "dataset", default = "iris" }
[jobs.a]
type = "command"
command = "echo ${{inputs.x}}"
inputs = { x = "${{parent.inputs.lr}}" }
"#;
        let a = PipelineSpec::parse_as(yaml, Format::Yaml).unwrap();
        let b = PipelineSpec::parse_as(toml, Format::Toml).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.jobs["a"].body().unwrap(),
            serde_json::json!({"command": "echo ${{inputs.x}}"})
        );
        let e = PipelineSpec::parse_as("name = \"p\"\n[jobs.a]\ntype = \"fly\"\n", Format::Toml)
            .unwrap_err();
        assert!(e.0.contains("unknown variant `fly`"), "{e}");
        let e = PipelineSpec::parse_as(
            "name = \"p\"\n[jobs.a]\ntype = \"train\"\nretry = 1\n",
            Format::Toml,
        )
        .unwrap_err();
        assert!(e.0.contains("unknown field `retry`"), "{e}");
    }

    #[test]
    fn inputs_are_typed() {
        let d = InputDecl::from_value(
            "lr",
            &serde_json::json!({"type": "number", "default": 0.1, "min": 0}),
        )
        .unwrap();
        assert_eq!(
            d.accept(&serde_json::json!(2)).unwrap(),
            serde_json::json!(2)
        );
        assert!(
            d.accept(&serde_json::json!(-1))
                .unwrap_err()
                .contains("below")
        );
        assert!(
            d.accept(&serde_json::json!("x"))
                .unwrap_err()
                .contains("not a number")
        );
        let e = InputDecl::from_value("n", &serde_json::json!({"type": "integer", "default": 0.5}))
            .unwrap_err();
        assert!(
            e.0.contains("input 'n': default: 0.5 is not a integer"),
            "{e}"
        );
        let e = InputDecl::from_value("n", &serde_json::json!({"type": "vector"})).unwrap_err();
        assert!(e.0.contains("unknown type 'vector'"), "{e}");
        assert_eq!(
            InputDecl::from_value("b", &serde_json::json!(true))
                .unwrap()
                .ty,
            Type::Boolean
        );
        assert_eq!(
            InputDecl::from_value("i", &serde_json::json!(3))
                .unwrap()
                .ty,
            Type::Integer
        );
        let s = InputDecl::from_value(
            "s",
            &serde_json::json!({"type": "string", "enum": ["a", "b"]}),
        )
        .unwrap();
        assert!(s.accept(&serde_json::json!("c")).is_err());
    }
}
