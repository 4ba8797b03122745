//! Endpoints and deployments as plain data, and the rules they obey: names, settings bounds,
//! a traffic split that sums to 100, a mirror of at most 50 % to a deployment without live
//! traffic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DomainError, DomainResult, Millis};

/// Default scorer of a deployment that names none.
pub const DEFAULT_SCORER: &str = "scorer-tabular";

/// How callers authenticate to an endpoint's scoring routes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// `Authorization: Bearer <endpoint key>`.
    #[default]
    Key,
    /// No credentials (a local or otherwise protected network).
    None,
}

impl AuthMode {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Key => "key",
            AuthMode::None => "none",
        }
    }
}

/// Where a deployment runs its model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ServeDevice {
    /// The host's CPU.
    #[default]
    Cpu,
    /// A CUDA GPU (needs a host built with `--features cuda`).
    Cuda,
    /// CUDA when present, else CPU.
    Auto,
}

/// A deployment's tunables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentSettings {
    /// Scorer instances kept ready (each serves one request at a time).
    pub instances: u32,
    /// Requests running or queued at once; beyond it the endpoint answers 429.
    pub max_concurrent_requests: u32,
    /// Longest a request may take, queueing included; beyond it the endpoint answers 504.
    pub request_timeout_ms: u64,
    /// Given to the scorer's `session.open` (JSON).
    pub scorer_config: serde_json::Value,
    /// Where the model runs.
    pub device: ServeDevice,
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        Self {
            instances: 2,
            max_concurrent_requests: 64,
            request_timeout_ms: 5000,
            scorer_config: serde_json::json!({}),
            device: ServeDevice::Cpu,
        }
    }
}

impl DeploymentSettings {
    /// Refuses values out of bounds, naming the setting.
    pub fn check(&self) -> DomainResult<()> {
        if !(1..=64).contains(&self.instances) {
            return Err(DomainError::invalid(format!(
                "instances must be between 1 and 64, got {}",
                self.instances
            )));
        }
        if self.max_concurrent_requests < self.instances || self.max_concurrent_requests > 100_000 {
            return Err(DomainError::invalid(format!(
                "max_concurrent_requests must be between instances ({}) and 100000, got {}",
                self.instances, self.max_concurrent_requests
            )));
        }
        if !(10..=600_000).contains(&self.request_timeout_ms) {
            return Err(DomainError::invalid(format!(
                "request_timeout_ms must be between 10 and 600000, got {}",
                self.request_timeout_ms
            )));
        }
        if !self.scorer_config.is_object() {
            return Err(DomainError::invalid(
                "scorer_config must be a JSON object".to_string(),
            ));
        }
        Ok(())
    }
}

/// What a caller sends to create or update a deployment.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    /// `models:/name/3`, `models:/name@alias`, `name/3`, `name@alias`, or `runs:/<run>/<path>`.
    pub model: String,
    /// `name` (its latest version) or `name@version`; default [`DEFAULT_SCORER`].
    #[serde(default)]
    pub scorer: Option<String>,
    /// Tunables.
    #[serde(flatten)]
    pub settings: DeploymentSettings,
}

/// A deployment as stored: the resolved model version and scorer version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deployment {
    /// Name, unique in its endpoint.
    pub name: String,
    /// What the caller asked for (kept for display).
    pub model_uri: String,
    /// Registered model name (or the run id for a `runs:/` model).
    pub model_name: String,
    /// Registered model version (0 for a `runs:/` model).
    pub model_version: i64,
    /// Artifact path inside the run for a `runs:/` model.
    pub model_path: Option<String>,
    /// Scorer component name.
    pub scorer_name: String,
    /// Scorer component version.
    pub scorer_version: String,
    /// Tunables.
    pub settings: DeploymentSettings,
    /// Creation time.
    pub created_at: Millis,
    /// Last update.
    pub updated_at: Millis,
}

/// An endpoint as stored.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Endpoint {
    /// Workspace name.
    pub workspace: String,
    /// Name, unique on the host (it is part of the scoring URL).
    pub name: String,
    /// Free text.
    pub description: String,
    /// How scoring callers authenticate.
    pub auth_mode: AuthMode,
    /// sha256 (hex) of the endpoint key; never returned.
    #[serde(skip)]
    pub key_hash: String,
    /// Percent of live traffic per deployment.
    pub traffic: BTreeMap<String, u32>,
    /// Percent of requests copied to one deployment, responses discarded.
    pub mirror: BTreeMap<String, u32>,
    /// Its deployments.
    pub deployments: Vec<Deployment>,
    /// Creation time.
    pub created_at: Millis,
    /// Last update.
    pub updated_at: Millis,
}

/// Checks an endpoint name: 3-32 of `a-z 0-9 -`, starting with a letter.
pub fn check_endpoint_name(name: &str) -> DomainResult<()> {
    let ok = (3..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "endpoint name '{name}' must be 3-32 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
        )))
    }
}

/// Checks a deployment name: 1-32 of `a-z 0-9 -`, starting with a letter.
pub fn check_deployment_name(name: &str) -> DomainResult<()> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "deployment name '{name}' must be 1-32 characters of a-z, 0-9 and '-', starting with a letter"
        )))
    }
}

/// Checks a traffic split and mirror against the deployments that exist.
pub fn check_traffic(
    traffic: &BTreeMap<String, u32>,
    mirror: &BTreeMap<String, u32>,
    deployments: &[&str],
) -> DomainResult<()> {
    for name in traffic.keys().chain(mirror.keys()) {
        if !deployments.contains(&name.as_str()) {
            return Err(DomainError::invalid(format!(
                "traffic names deployment '{name}', which this endpoint does not have (it has: {})",
                if deployments.is_empty() {
                    "none".to_string()
                } else {
                    deployments.join(", ")
                }
            )));
        }
    }
    let sum: u64 = traffic.values().map(|v| *v as u64).sum();
    if !traffic.is_empty() && sum != 100 {
        return Err(DomainError::invalid(format!(
            "traffic percentages must sum to 100, got {sum}"
        )));
    }
    if mirror.len() > 1 {
        return Err(DomainError::invalid(
            "mirror traffic goes to at most one deployment".to_string(),
        ));
    }
    if let Some((name, pct)) = mirror.iter().next() {
        if *pct > 50 {
            return Err(DomainError::invalid(format!(
                "mirror traffic is at most 50 percent, got {pct} for '{name}'"
            )));
        }
        if traffic.get(name).copied().unwrap_or(0) > 0 {
            return Err(DomainError::invalid(format!(
                "'{name}' takes live traffic; mirror only to a deployment with 0 percent live traffic"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, u32)]) -> BTreeMap<String, u32> {
        items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn traffic_rules() {
        let deps = ["blue", "green"];
        assert!(check_traffic(&map(&[("blue", 90), ("green", 10)]), &map(&[]), &deps).is_ok());
        let e = check_traffic(&map(&[("blue", 90), ("green", 20)]), &map(&[]), &deps).unwrap_err();
        assert!(e.to_string().contains("sum to 100, got 110"), "{e}");
        let e = check_traffic(&map(&[("red", 100)]), &map(&[]), &deps).unwrap_err();
        assert!(e.to_string().contains("'red'"), "{e}");
        let e = check_traffic(&map(&[("blue", 100)]), &map(&[("green", 60)]), &deps).unwrap_err();
        assert!(e.to_string().contains("at most 50"), "{e}");
        let e = check_traffic(&map(&[("blue", 100)]), &map(&[("blue", 10)]), &deps).unwrap_err();
        assert!(e.to_string().contains("live traffic"), "{e}");
        assert!(check_traffic(&map(&[("blue", 100)]), &map(&[("green", 50)]), &deps).is_ok());
    }

    #[test]
    fn names_and_settings() {
        assert!(check_endpoint_name("iris-prod").is_ok());
        assert!(check_endpoint_name("Iris").is_err());
        assert!(check_endpoint_name("ab").is_err());
        assert!(check_deployment_name("blue").is_ok());
        assert!(check_deployment_name("9blue").is_err());
        let mut s = DeploymentSettings::default();
        assert!(s.check().is_ok());
        s.instances = 0;
        assert!(s.check().unwrap_err().to_string().contains("instances"));
        let s = DeploymentSettings {
            request_timeout_ms: 1,
            ..Default::default()
        };
        assert!(
            s.check()
                .unwrap_err()
                .to_string()
                .contains("request_timeout_ms")
        );
    }
}
