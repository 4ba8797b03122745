//! MLflow 3 logged models: a model an experiment produced (`m-<32 hex>`), with its own params,
//! tags, metrics and artifacts, before (or without) registration. No I/O.

use std::collections::BTreeMap;

use super::filter::{Comparison, Entity, Expr};
use super::registry::{Field, field_matches};
use super::{DomainError, DomainResult, LifecycleStage, Millis};

/// Most logged models one search page answers (MLflow's default and limit).
pub const MAX_SEARCH_RESULTS: i64 = 100;

/// Where a logged model is in its life: files being written, ready, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedModelStatus {
    /// Created; artifacts are being uploaded.
    Pending,
    /// Finalized: its files are complete.
    Ready,
    /// The upload failed.
    UploadFailed,
}

impl LoggedModelStatus {
    /// MLflow's wire spelling (`LOGGED_MODEL_READY`, ...), also stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "LOGGED_MODEL_PENDING",
            Self::Ready => "LOGGED_MODEL_READY",
            Self::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }

    /// Parses the wire spelling, the short one (`READY`) or the protobuf enum number.
    pub fn parse(s: &str) -> DomainResult<Self> {
        let u = s.trim().to_ascii_uppercase();
        let short = u.strip_prefix("LOGGED_MODEL_").unwrap_or(&u);
        Ok(match short {
            "PENDING" | "1" => Self::Pending,
            "READY" | "2" => Self::Ready,
            "UPLOAD_FAILED" | "3" => Self::UploadFailed,
            _ => {
                return Err(DomainError::invalid(format!(
                    "invalid logged model status '{s}': expected LOGGED_MODEL_PENDING, LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"
                )));
            }
        })
    }
}

/// A metric value logged against a logged model (with the run and dataset it came from).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetric {
    /// Metric name.
    pub key: String,
    /// The value.
    pub value: f64,
    /// When it was measured.
    pub timestamp: Millis,
    /// Training step.
    pub step: i64,
    /// The run that logged it.
    pub run_id: Option<String>,
    /// The dataset it was measured on.
    pub dataset_name: Option<String>,
    /// That dataset's digest.
    pub dataset_digest: Option<String>,
}

/// A logged model with its data.
#[derive(Debug, Clone)]
pub struct LoggedModel {
    /// Internal key.
    pub key: i64,
    /// Public id: `m-` and 32 hex digits.
    pub id: String,
    /// The experiment's public id.
    pub experiment_id: i64,
    /// Display name (not unique).
    pub name: String,
    /// Free-form type (`agent`, `sklearn`, ...).
    pub model_type: Option<String>,
    /// The run that produced it.
    pub source_run_id: Option<String>,
    /// Pending, ready or failed.
    pub status: LoggedModelStatus,
    /// Why it failed, if it did.
    pub status_message: Option<String>,
    /// Active or deleted.
    pub lifecycle_stage: LifecycleStage,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Where its files live, as an MLflow URI.
    pub artifact_uri: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Metrics logged with this model's id, in logging order.
    pub metrics: Vec<ModelMetric>,
}

/// A fresh logged model id, `m-` + 32 hex digits (a v7 UUID: ids sort by creation).
pub fn new_model_id() -> String {
    format!("m-{}", uuid::Uuid::now_v7().simple())
}

/// Whether `s` has the shape of a logged model id.
pub fn is_model_id(s: &str) -> bool {
    s.strip_prefix("m-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a logged model id, answering MLflow's not-found wording for a malformed one.
pub fn check_model_id(s: &str) -> DomainResult<()> {
    if is_model_id(s) {
        Ok(())
    } else {
        Err(not_found(s))
    }
}

/// MLflow's error for a logged model that does not exist.
pub fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Logged model with ID '{id}' not found."))
}

/// MLflow's rule for logged model names: no `/`, `:`, `.`, `%`, `"` or `'`, at most 256 characters.
pub fn check_name(name: &str) -> DomainResult<()> {
    if name.chars().count() > 256 {
        return Err(DomainError::invalid(format!(
            "Invalid model name '{name}': it may hold at most 256 characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '.' | '%' | '"' | '\''))
    {
        return Err(DomainError::invalid(format!(
            "Invalid model name ('{name}') provided. Model name must not contain any of the following characters: '/', ':', '.', '%', '\"', \"'\" (found '{c}')"
        )));
    }
    Ok(())
}

/// The artifact URI of a logged model under its experiment's artifact location.
pub fn artifact_uri(experiment_location: &str, model_id: &str) -> String {
    format!(
        "{}/models/{model_id}/artifacts",
        experiment_location.trim_end_matches('/')
    )
}

/// Attributes of a logged model usable in search filters and `order_by`.
pub fn attribute(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "name" => "name",
        "model_id" | "id" => "model_id",
        "model_type" => "model_type",
        "status" => "status",
        "source_run_id" => "source_run_id",
        "creation_timestamp" | "creation_time" | "creation_timestamp_ms" | "created" => {
            "creation_timestamp"
        }
        "last_updated_timestamp" | "last_updated_timestamp_ms" | "last_update_time" => {
            "last_updated_timestamp"
        }
        "experiment_id" => "experiment_id",
        _ => return None,
    })
}

/// Parses a logged model search filter (attributes, metrics, params, tags).
pub fn parse_filter(input: &str) -> DomainResult<Option<Expr>> {
    super::filter::parse(
        input,
        attribute,
        &[
            Entity::Metric,
            Entity::Param,
            Entity::Tag,
            Entity::Attribute,
        ],
    )
}

/// A dataset a search restricts metrics to (`dataset_digest` optional).
#[derive(Debug, Clone, Default)]
pub struct DatasetScope {
    /// Dataset name.
    pub name: String,
    /// Dataset digest.
    pub digest: Option<String>,
}

impl DatasetScope {
    fn admits(&self, m: &ModelMetric) -> bool {
        m.dataset_name.as_deref() == Some(self.name.as_str())
            && self
                .digest
                .as_ref()
                .is_none_or(|d| m.dataset_digest.as_deref() == Some(d.as_str()))
    }
}

/// Whether a metric counts under the dataset scopes of a search (no scope: every metric).
pub fn in_scope(m: &ModelMetric, scopes: &[DatasetScope]) -> bool {
    scopes.is_empty() || scopes.iter().any(|s| s.admits(m))
}

impl LoggedModel {
    /// The value of an attribute for filters and ordering.
    pub fn attribute(&self, name: &str) -> Field {
        let text = |s: &str| Field::Text(s.to_string());
        match name {
            "name" => text(&self.name),
            "model_id" => text(&self.id),
            "model_type" => self.model_type.as_deref().map(text).unwrap_or(Field::Null),
            "status" => text(self.status.as_str()),
            "source_run_id" => self
                .source_run_id
                .as_deref()
                .map(text)
                .unwrap_or(Field::Null),
            "creation_timestamp" => Field::Number(self.created_at as f64),
            "last_updated_timestamp" => Field::Number(self.updated_at as f64),
            "experiment_id" => text(&self.experiment_id.to_string()),
            _ => Field::Null,
        }
    }

    /// The latest value of a metric under the dataset scopes (latest by timestamp, then step).
    pub fn latest_metric(&self, key: &str, scopes: &[DatasetScope]) -> Option<f64> {
        self.metrics
            .iter()
            .filter(|m| m.key == key && in_scope(m, scopes))
            .max_by_key(|m| (m.timestamp, m.step))
            .map(|m| m.value)
    }

    /// Whether the model matches a parsed filter; metric comparisons pass when any metric value
    /// in scope matches (MLflow's semantics).
    pub fn matches(&self, e: &Expr, scopes: &[DatasetScope]) -> bool {
        match e {
            Expr::And(all) => all.iter().all(|x| self.matches(x, scopes)),
            Expr::Or(any) => any.iter().any(|x| self.matches(x, scopes)),
            Expr::Cmp(c) => self.matches_cmp(c, scopes),
        }
    }

    fn matches_cmp(&self, c: &Comparison, scopes: &[DatasetScope]) -> bool {
        let field = |map: &BTreeMap<String, String>| {
            map.get(&c.key)
                .map(|v| Field::Text(v.clone()))
                .unwrap_or(Field::Null)
        };
        match c.entity {
            Entity::Metric => self
                .metrics
                .iter()
                .filter(|m| m.key == c.key && in_scope(m, scopes))
                .any(|m| field_matches(c, &Field::Number(m.value))),
            Entity::Param => field_matches(c, &field(&self.params)),
            Entity::Tag => field_matches(c, &field(&self.tags)),
            Entity::Attribute => field_matches(c, &self.attribute(&c.key)),
            Entity::Dataset => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_statuses() {
        let id = new_model_id();
        assert!(is_model_id(&id), "{id}");
        assert!(!is_model_id("m-123"));
        assert!(!is_model_id("0123456789abcdef0123456789abcdef"));
        assert_eq!(
            LoggedModelStatus::parse("READY").unwrap(),
            LoggedModelStatus::Ready
        );
        assert_eq!(
            LoggedModelStatus::parse("LOGGED_MODEL_UPLOAD_FAILED").unwrap(),
            LoggedModelStatus::UploadFailed
        );
        assert!(LoggedModelStatus::parse("DONE").is_err());
        assert!(check_name("my-model_1").is_ok());
        assert!(check_name("a/b").is_err());
    }
}
