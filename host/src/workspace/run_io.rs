//! What a run read and produced, as MLflow 3 records it: dataset inputs (with digest, source,
//! schema, profile), logged models it used, and logged models it output. No I/O.

use super::{DomainError, DomainResult};

/// Longest dataset name (MLflow's limit).
pub const MAX_DATASET_NAME: usize = 500;
/// Longest dataset digest (MLflow's limit).
pub const MAX_DATASET_DIGEST: usize = 36;
/// Longest dataset source type / input tag key (MLflow's limits).
pub const MAX_SHORT_FIELD: usize = 255;
/// Longest dataset source (MLflow's limit).
pub const MAX_DATASET_SOURCE: usize = 65_535;
/// Longest dataset schema (MLflow's limit).
pub const MAX_DATASET_SCHEMA: usize = 1_048_575;
/// Longest dataset profile (MLflow's limit).
pub const MAX_DATASET_PROFILE: usize = 16_777_215;
/// Longest input tag value (MLflow's limit).
pub const MAX_INPUT_TAG_VALUE: usize = 500;

/// A dataset as MLflow describes it: identified by name and digest within an experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlflowDataset {
    /// Name.
    pub name: String,
    /// Content digest as the client computed it.
    pub digest: String,
    /// Kind of source (`local`, `http`, `s3`, `code`, ...).
    pub source_type: String,
    /// The source, as JSON text.
    pub source: String,
    /// Schema as JSON text.
    pub schema: Option<String>,
    /// Profile (row counts etc.) as JSON text.
    pub profile: Option<String>,
    /// The Atrium dataset version with the same content, when the digests match.
    pub atrium_version: Option<String>,
}

/// One dataset input of a run, with its input tags (e.g. `mlflow.data.context=training`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInput {
    /// The dataset.
    pub dataset: MlflowDataset,
    /// Input tags, in the order they were given.
    pub tags: Vec<(String, String)>,
}

impl DatasetInput {
    /// The value of an input tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A logged model a run produced, at a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOutput {
    /// The logged model's id.
    pub model_id: String,
    /// The step it was produced at.
    pub step: i64,
}

/// Everything a run read and produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunIo {
    /// Dataset inputs, in logging order.
    pub datasets: Vec<DatasetInput>,
    /// Logged models used as inputs.
    pub model_inputs: Vec<String>,
    /// Logged models produced.
    pub model_outputs: Vec<ModelOutput>,
}

fn too_long(what: &str, max: usize, len: usize) -> DomainError {
    DomainError::invalid(format!(
        "{what} exceeds the maximum length of {max} characters (it has {len})"
    ))
}

fn check_len(what: &str, s: &str, max: usize) -> DomainResult<()> {
    let n = s.chars().count();
    if n > max {
        Err(too_long(what, max, n))
    } else {
        Ok(())
    }
}

impl DatasetInput {
    /// Checks the fields against MLflow's rules (required fields, lengths).
    pub fn check(&self) -> DomainResult<()> {
        let d = &self.dataset;
        for (what, v) in [
            ("name", &d.name),
            ("digest", &d.digest),
            ("source_type", &d.source_type),
            ("source", &d.source),
        ] {
            if v.is_empty() {
                return Err(DomainError::invalid(format!(
                    "Dataset {what} must be specified for every dataset input"
                )));
            }
        }
        check_len("Dataset name", &d.name, MAX_DATASET_NAME)?;
        check_len("Dataset digest", &d.digest, MAX_DATASET_DIGEST)?;
        check_len("Dataset source type", &d.source_type, MAX_SHORT_FIELD)?;
        check_len("Dataset source", &d.source, MAX_DATASET_SOURCE)?;
        if let Some(s) = &d.schema {
            check_len("Dataset schema", s, MAX_DATASET_SCHEMA)?;
        }
        if let Some(p) = &d.profile {
            check_len("Dataset profile", p, MAX_DATASET_PROFILE)?;
        }
        for (k, v) in &self.tags {
            if k.is_empty() {
                return Err(DomainError::invalid("Input tag key must not be empty"));
            }
            check_len("Input tag key", k, MAX_SHORT_FIELD)?;
            check_len("Input tag value", v, MAX_INPUT_TAG_VALUE)?;
        }
        Ok(())
    }
}

/// The input tag naming what a dataset was used for (`training`, `eval`, ...).
pub const CONTEXT_TAG: &str = "mlflow.data.context";
