//! Compute targets as workspace objects: a name bound to a 0.2 target plugin with the
//! operator's grants (one allow-listed host, named secrets, config) and the settings its
//! workers need to reach this host. Jobs name one as `compute = "NAME"`; `jobs::dispatch`
//! runs them there.
//!
//! Map: [`ComputeRequest`] (what `atrium compute create` sends) → [`ComputeDefinition`] (what
//! is stored) → [`ComputeTarget`] (a ready plugin instance for dispatch).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::jobs::remote::{LOCAL, LOCAL_PROCESS};
use crate::plugins::target::{Pool, TargetPlugin};
use crate::plugins::{Effective, Grants, Kind, Manifest};
use crate::service::Service;
use crate::store::ComputeRow;
use crate::workspace::{DomainError, DomainResult, Workspace, validate};

/// The plugin API a compute target's component must be built for.
pub const TARGET_API: &str = "0.2.0";

/// Most jobs a target runs at once unless its definition says otherwise.
pub const DEFAULT_MAX_JOBS: u32 = 64;

/// A compute target to create.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputeRequest {
    /// The target plugin's registry name (a built-in such as `target-slurm`, or an upload).
    pub component: String,
    /// Its version (absent: the latest registered).
    #[serde(default)]
    pub version: Option<String>,
    /// Config values for the plugin (only keys its manifest lists reach it).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Workspace secrets the plugin may read, by name.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The one host (`name` or `name:port`) the plugin may call; absent: the host of config
    /// `url`.
    #[serde(default)]
    pub host: Option<String>,
    /// Whether that host may resolve to a loopback or private address (an engine on this
    /// machine or the local network).
    #[serde(default)]
    pub allow_private: bool,
    /// How workers reach this host (absent: the host's own base URL).
    #[serde(default)]
    pub server_url: Option<String>,
    /// The `atrium` binary on the engine's nodes (absent: this host's own binary path).
    #[serde(default)]
    pub worker_bin: Option<String>,
    /// The workers' cache directory on the nodes (absent: `worker/` under this host's data
    /// directory).
    #[serde(default)]
    pub worker_dir: Option<String>,
    /// `PATH` of the workers (absent: this host's).
    #[serde(default)]
    pub worker_path: Option<String>,
    /// Most jobs running on it at once (default 64).
    #[serde(default)]
    pub max_jobs: Option<u32>,
    /// CPUs each job asks the engine for (default: the host's threads per job slot).
    #[serde(default)]
    pub cpus: Option<f32>,
    /// Memory each job asks for, in MiB (default: none asked).
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// What is stored of a compute target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComputeDefinition {
    /// The component's sha256 (pinned at creation).
    pub digest: String,
    /// Config values.
    pub config: BTreeMap<String, String>,
    /// Granted secret names.
    pub secrets: Vec<String>,
    /// The granted host.
    pub host: String,
    /// Whether it may be a private address.
    pub allow_private: bool,
    /// How workers reach this host (`None`: the host's base URL).
    #[serde(default)]
    pub server_url: Option<String>,
    /// The worker binary (`None`: this host's).
    #[serde(default)]
    pub worker_bin: Option<String>,
    /// The workers' cache directory (`None`: under this host's data directory).
    #[serde(default)]
    pub worker_dir: Option<String>,
    /// The workers' `PATH` (`None`: this host's).
    #[serde(default)]
    pub worker_path: Option<String>,
    /// Most jobs at once.
    pub max_jobs: u32,
    /// CPUs per job (`None`: the host's threads per slot).
    #[serde(default)]
    pub cpus: Option<f32>,
    /// Memory per job in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

/// A compute target ready for dispatch.
#[derive(Clone)]
pub struct ComputeTarget {
    /// Its name.
    pub name: String,
    /// What is stored.
    pub definition: ComputeDefinition,
    /// The plugin, with its grants and secrets resolved.
    pub plugin: TargetPlugin,
}

/// A compute target with the engine's answer to `describe`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ComputeView {
    /// Name.
    pub name: String,
    /// `component@version`.
    pub component: String,
    /// Config values.
    pub config: BTreeMap<String, String>,
    /// Granted secrets (names only).
    pub secrets: Vec<String>,
    /// The granted host.
    pub host: String,
    /// Most jobs at once.
    pub max_jobs: u32,
    /// Unfinished jobs on it (queued ones included).
    pub jobs: i64,
    /// `ok`, or `error` when the engine did not answer.
    pub health: String,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The engine's pools (empty when it did not answer).
    pub pools: Vec<Pool>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Who created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// The host part (`name` or `name:port`) of an http(s) URL.
fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| authority.to_string())
}

fn check_name(name: &str) -> DomainResult<()> {
    if name == LOCAL || name == LOCAL_PROCESS {
        return Err(DomainError::invalid(format!(
            "'{name}' is a built-in compute target; choose another name"
        )));
    }
    if validate::is_label(name, 64, b"-_.") {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid compute target name '{name}': use 1-64 letters, digits, '-', '_', '.', starting with a letter or digit"
        )))
    }
}

impl Service {
    /// Creates a compute target: the component must be a 0.2 target plugin, the secrets must
    /// exist, and the engine must answer `describe` with the grants given (else nothing is
    /// stored and the error says why).
    pub async fn create_compute(
        &self,
        ws: &Workspace,
        name: &str,
        req: ComputeRequest,
        actor: Option<String>,
    ) -> DomainResult<ComputeView> {
        check_name(name)?;
        let row = match &req.version {
            Some(v) => self.component(ws, &req.component, v).await?,
            None => self.latest_component(ws, &req.component).await?,
        };
        if row.kind != Kind::Target.as_str() {
            return Err(DomainError::invalid(format!(
                "{}@{} is a {} plugin, not a target plugin",
                row.name, row.version, row.kind
            )));
        }
        if row.api_version.as_deref() != Some(TARGET_API) {
            return Err(DomainError::invalid(format!(
                "{}@{} was built for plugin API {}; a compute target needs a target built against atrium:plugin@{TARGET_API} (its world runs jobs through the worker)",
                row.name,
                row.version,
                row.api_version.as_deref().unwrap_or("0.1.0")
            )));
        }
        let host = match (&req.host, req.config.get("url")) {
            (Some(h), _) => h.clone(),
            (None, Some(url)) => host_of(url).ok_or_else(|| {
                DomainError::invalid(format!(
                    "config url '{url}' is not an http:// or https:// URL"
                ))
            })?,
            (None, None) => {
                return Err(DomainError::invalid(
                    "give the host the plugin may reach (host) or its config url",
                ));
            }
        };
        if host.is_empty() || host.contains(['/', ' ', '*']) {
            return Err(DomainError::invalid(format!(
                "invalid host '{host}': give one name or name:port"
            )));
        }
        if let Some(url) = &req.server_url
            && host_of(url).is_none()
        {
            return Err(DomainError::invalid(format!(
                "server_url '{url}' is not an http:// or https:// URL"
            )));
        }
        if req.max_jobs == Some(0) {
            return Err(DomainError::invalid("max_jobs must be at least 1"));
        }
        if req.cpus.is_some_and(|c| !c.is_finite() || c < 0.0) {
            return Err(DomainError::invalid("cpus must be a number ≥ 0"));
        }
        self.check_secrets_exist(ws, &req.secrets).await?;
        let definition = ComputeDefinition {
            digest: row.digest.clone(),
            config: req.config,
            secrets: req.secrets,
            host,
            allow_private: req.allow_private,
            server_url: req.server_url,
            worker_bin: req.worker_bin,
            worker_dir: req.worker_dir,
            worker_path: req.worker_path,
            max_jobs: req.max_jobs.unwrap_or(DEFAULT_MAX_JOBS),
            cpus: req.cpus,
            memory_mb: req.memory_mb,
        };
        let stored = ComputeRow {
            name: name.to_string(),
            component: row.name.clone(),
            version: row.version.clone(),
            definition: serde_json::to_string(&definition).expect("definition serializes"),
            description: req.description,
            created_at: 0,
            created_by: actor,
        };
        // the engine must answer with these grants before anything is stored
        let target = self.target_of(ws, &stored).await?;
        let plugin = target.plugin.clone();
        let pools = tokio::task::spawn_blocking(move || plugin.describe())
            .await
            .map_err(|e| DomainError::Internal(format!("describe task: {e}")))?
            .map_err(|e| {
                DomainError::invalid(format!("compute target '{name}' does not work: {e}"))
            })?;
        let created = self.store.create_compute(ws.id, &stored).await?;
        tracing::info!(
            workspace = ws.name.as_str(),
            compute = name,
            component = created.component.as_str(),
            "compute target created"
        );
        Ok(view(created, definition, 0, Ok(pools)))
    }

    /// A compute target with its engine's pools and health (the engine is asked now).
    pub async fn compute_view(&self, ws: &Workspace, name: &str) -> DomainResult<ComputeView> {
        let row = self.store.compute(ws.id, name).await?;
        let jobs = self.store.unfinished_jobs_on(ws.id, name).await?;
        let target = self.target_of(ws, &row).await?;
        let plugin = target.plugin.clone();
        let pools = tokio::task::spawn_blocking(move || plugin.describe())
            .await
            .map_err(|e| DomainError::Internal(format!("describe task: {e}")))?
            .map_err(|e| e.to_string());
        Ok(view(row, target.definition, jobs, pools))
    }

    /// The compute targets of a workspace (without asking their engines).
    pub async fn list_compute(&self, ws: &Workspace) -> DomainResult<Vec<ComputeView>> {
        let mut out = Vec::new();
        for row in self.store.list_compute(ws.id).await? {
            let def = definition_of(&row)?;
            let jobs = self.store.unfinished_jobs_on(ws.id, &row.name).await?;
            let mut v = view(row, def, jobs, Ok(Vec::new()));
            v.health = "unchecked".into();
            out.push(v);
        }
        Ok(out)
    }

    /// Deletes a compute target no unfinished job uses.
    pub async fn delete_compute(&self, ws: &Workspace, name: &str) -> DomainResult<()> {
        self.store.delete_compute(ws.id, name).await
    }

    /// The compute target a job names, ready for dispatch (its secrets resolved now).
    pub async fn compute_target(&self, ws: &Workspace, name: &str) -> DomainResult<ComputeTarget> {
        let row = self.store.compute(ws.id, name).await?;
        self.target_of(ws, &row).await
    }

    async fn target_of(&self, ws: &Workspace, row: &ComputeRow) -> DomainResult<ComputeTarget> {
        let def = definition_of(row)?;
        let component = self
            .store
            .component(ws.id, &row.component, &row.version)
            .await?
            .filter(|c| c.digest == def.digest)
            .ok_or_else(|| {
                DomainError::InvalidState(format!(
                    "the component {}@{} of compute target '{}' is gone or changed",
                    row.component, row.version, row.name
                ))
            })?;
        let (mut spec, deadline) = crate::service::plugin_store_spec(ws, &component, Kind::Target)?;
        let manifest: Manifest = serde_json::from_str(&component.manifest)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let grants = Grants {
            dirs: BTreeMap::new(),
            http: vec![def.host.clone()],
            http_private: def.allow_private,
            secrets: def.secrets.clone(),
            config: def.config.clone(),
        };
        let effective = Effective::of(&manifest, &grants);
        let mut secrets = self
            .resolve_secrets(ws, &def.secrets, &format!("compute:{}", row.name))
            .await?;
        secrets.retain(|n, _| effective.secrets.contains(n));
        spec.effective = Arc::new(effective);
        spec.secrets = Arc::new(secrets);
        Ok(ComputeTarget {
            name: row.name.clone(),
            plugin: TargetPlugin {
                loader: self.loader(),
                digest: component.digest.clone(),
                spec,
                deadline,
                label: format!("{}@{}", component.name, component.version),
            },
            definition: def,
        })
    }
}

fn definition_of(row: &ComputeRow) -> DomainResult<ComputeDefinition> {
    serde_json::from_str(&row.definition)
        .map_err(|e| DomainError::Internal(format!("compute target '{}': {e}", row.name)))
}

fn view(
    row: ComputeRow,
    def: ComputeDefinition,
    jobs: i64,
    pools: Result<Vec<Pool>, String>,
) -> ComputeView {
    let (health, error, pools) = match pools {
        Ok(p) => ("ok".to_string(), None, p),
        Err(e) => ("error".to_string(), Some(e), Vec::new()),
    };
    ComputeView {
        component: format!("{}@{}", row.component, row.version),
        name: row.name,
        config: def.config,
        secrets: def.secrets,
        host: def.host,
        max_jobs: def.max_jobs,
        jobs,
        health,
        error,
        pools,
        description: row.description,
        created_at: row.created_at,
        created_by: row.created_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("http://127.0.0.1:6820").as_deref(),
            Some("127.0.0.1:6820")
        );
        assert_eq!(
            host_of("https://ray.example.com/x?y").as_deref(),
            Some("ray.example.com")
        );
        assert_eq!(host_of("ftp://x"), None);
        assert_eq!(host_of("http://"), None);
    }

    #[test]
    fn built_in_names_are_reserved() {
        assert!(check_name("local").is_err());
        assert!(check_name("local-process").is_err());
        assert!(check_name("slurm").is_ok());
        assert!(check_name("bad/name").is_err());
    }
}
