//! The objects a workspace holds, as plain data.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// Milliseconds since the Unix epoch, the time unit of the whole API.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The workspace every host creates on first start.
pub const DEFAULT_WORKSPACE: &str = "default";
/// The experiment every workspace holds, as MLflow's experiment "0".
pub const DEFAULT_EXPERIMENT_NAME: &str = "Default";
/// Tag under which MLflow clients store a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";
/// Tag under which MLflow clients store the parent of a nested run.
pub const PARENT_RUN_TAG: &str = "mlflow.parentRunId";
/// Tag under which MLflow clients store the user.
pub const USER_TAG: &str = "mlflow.user";

/// A top-level workspace: the unit of ownership of everything else.
#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    /// Internal key.
    #[serde(skip)]
    pub id: i64,
    /// Unique name, used in URLs.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Millis,
    /// Whether callers without credentials may read it (operator opt-in).
    pub anonymous_read: bool,
}

/// Whether an experiment or run is live or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStage {
    /// Visible in default searches.
    Active,
    /// Soft-deleted: restorable until garbage-collected.
    Deleted,
}

impl LifecycleStage {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }
}

impl FromStr for LifecycleStage {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "deleted" => Ok(Self::Deleted),
            other => Err(DomainError::invalid(format!(
                "unknown lifecycle stage '{other}'"
            ))),
        }
    }
}

/// Which lifecycle stages a search includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewType {
    /// Only active objects (the default).
    #[default]
    ActiveOnly,
    /// Only soft-deleted objects.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Parses MLflow's `ACTIVE_ONLY` / `DELETED_ONLY` / `ALL` (any case).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_uppercase().as_str() {
            "ACTIVE_ONLY" | "1" => Ok(Self::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(Self::DeletedOnly),
            "ALL" | "3" => Ok(Self::All),
            _ => Err(DomainError::invalid(format!(
                "invalid view type '{s}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))),
        }
    }
}

/// The state of a run, as MLflow names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    /// Executing.
    Running,
    /// Created, not started yet.
    Scheduled,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Ended by cancellation.
    Killed,
}

impl RunStatus {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" => Ok(Self::Running),
            "SCHEDULED" => Ok(Self::Scheduled),
            "FINISHED" => Ok(Self::Finished),
            "FAILED" => Ok(Self::Failed),
            "KILLED" => Ok(Self::Killed),
            _ => Err(DomainError::invalid(format!(
                "invalid run status '{s}': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
            ))),
        }
    }
}

/// A named group of runs.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Internal key.
    pub key: i64,
    /// The id clients see: a number unique within the workspace ("0" is Default).
    pub id: i64,
    /// Unique name within the workspace.
    pub name: String,
    /// Where runs of this experiment keep artifacts, as an MLflow URI.
    pub artifact_location: String,
    /// Active or deleted.
    pub lifecycle_stage: LifecycleStage,
    /// Creation time.
    pub creation_time: Millis,
    /// Last change of name, tags or stage.
    pub last_update_time: Millis,
    /// Datastore its runs keep artifacts in, when not the workspace's default.
    pub artifact_datastore: Option<String>,
    /// Experiment tags.
    pub tags: BTreeMap<String, String>,
}

/// One measurement of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    /// The value; NaN and infinities are allowed.
    pub value: f64,
    /// When it was measured.
    pub timestamp: Millis,
    /// Training step (0 when not given).
    pub step: i64,
}

impl MetricPoint {
    /// MLflow's rule for the "latest" value of a metric: highest step, then timestamp, then value.
    pub fn is_later_than(&self, other: &MetricPoint) -> bool {
        (self.step, self.timestamp) > (other.step, other.timestamp)
            || ((self.step, self.timestamp) == (other.step, other.timestamp)
                && total(self.value) > total(other.value))
    }
}

fn total(v: f64) -> f64 {
    if v.is_nan() { f64::INFINITY } else { v }
}

/// A metric point with its key, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric name.
    pub key: String,
    /// The measurement.
    pub point: MetricPoint,
}

/// A run: one execution with its parameters, metrics and tags.
#[derive(Debug, Clone)]
pub struct Run {
    /// Internal key.
    pub key: i64,
    /// Public id: 32 hex characters.
    pub id: String,
    /// The experiment's public id.
    pub experiment_id: i64,
    /// Display name.
    pub name: String,
    /// Who created it.
    pub user_id: String,
    /// State.
    pub status: RunStatus,
    /// Start time.
    pub start_time: Millis,
    /// End time, once ended.
    pub end_time: Option<Millis>,
    /// Active or deleted.
    pub lifecycle_stage: LifecycleStage,
    /// Public id of the parent run, for nested runs.
    pub parent_run_id: Option<String>,
    /// Where the run's artifacts live, as an MLflow URI.
    pub artifact_uri: String,
    /// Parameters (write-once).
    pub params: BTreeMap<String, String>,
    /// Latest value of each metric.
    pub metrics: BTreeMap<String, MetricPoint>,
    /// Tags (last writer wins).
    pub tags: BTreeMap<String, String>,
}

/// An artifact file attached to a run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ArtifactFile {
    /// Path relative to the run's artifact root.
    pub path: String,
    /// Whether this entry is a directory (listing only).
    pub is_dir: bool,
    /// Size in bytes (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// sha256 of the content (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ArtifactFile {
    /// The immediate children of `dir` (no slashes at its ends; empty: the root) among files
    /// given as (path, size, digest): the files directly in it and one entry per subdirectory,
    /// in path order. A path naming a file, or nothing, lists as empty, as MLflow does.
    pub fn one_level(
        dir: &str,
        files: impl IntoIterator<Item = (String, u64, String)>,
    ) -> Vec<ArtifactFile> {
        let base = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: BTreeMap<String, ArtifactFile> = BTreeMap::new();
        for (path, size, digest) in files {
            let Some(rest) = path.strip_prefix(&base) else {
                continue;
            };
            match rest.split_once('/') {
                Some((child, _)) => {
                    let p = format!("{base}{child}");
                    out.entry(p.clone()).or_insert(ArtifactFile {
                        path: p,
                        is_dir: true,
                        size: None,
                        digest: None,
                    });
                }
                None => {
                    out.insert(
                        path.clone(),
                        ArtifactFile {
                            path,
                            is_dir: false,
                            size: Some(size),
                            digest: Some(digest),
                        },
                    );
                }
            }
        }
        out.into_values().collect()
    }
}

/// The MLflow artifact URI of an experiment.
pub fn experiment_artifact_location(experiment_id: i64) -> String {
    format!("mlflow-artifacts:/{experiment_id}")
}

/// The MLflow artifact URI of a run, under its experiment's own location when it has one.
pub fn run_artifact_uri(experiment_id: i64, location: Option<&str>, run_id: &str) -> String {
    match location {
        Some(loc) => format!("{}/{run_id}/artifacts", loc.trim_end_matches('/')),
        None => format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"),
    }
}

#[cfg(test)]
mod tests {
    use super::ArtifactFile;

    #[test]
    fn one_level_lists_files_and_subdirectories() {
        let f = |p: &str| (p.to_string(), 3, format!("d-{p}"));
        let files = [f("a.txt"), f("m/MLmodel"), f("m/data/x.bin"), f("mx.txt")];
        let root = ArtifactFile::one_level("", files.clone());
        let got: Vec<_> = root.iter().map(|e| (e.path.as_str(), e.is_dir)).collect();
        assert_eq!(got, [("a.txt", false), ("m", true), ("mx.txt", false)]);
        let m = ArtifactFile::one_level("m", files.clone());
        let got: Vec<_> = m.iter().map(|e| (e.path.as_str(), e.is_dir)).collect();
        assert_eq!(got, [("m/MLmodel", false), ("m/data", true)]);
        assert_eq!(m[0].size, Some(3));
        assert_eq!(m[0].digest.as_deref(), Some("d-m/MLmodel"));
        // a file's own path, or nothing, lists as empty
        assert!(ArtifactFile::one_level("a.txt", files.clone()).is_empty());
        assert!(ArtifactFile::one_level("zz", files).is_empty());
    }
}
