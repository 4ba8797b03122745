//! The component registry and datastores: uploads are validated off the request thread before
//! anything is stored; datastores are storage-plugin instances with operator grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Service;
use crate::datastore::{Datastores, PluginDatastore};
use crate::plugins::builtin::BUILTINS;
use crate::plugins::engine::MAX_MEMORY;
use crate::plugins::loader::digest_of;
use crate::plugins::scorer::{Predictor, ScorerComponent};
use crate::plugins::strategy::StrategyPlugin;
use crate::plugins::{Effective, Grants, Kind, Loader, LogTags, Manifest, RuntimeError, StoreSpec};
use crate::store::{ComponentRow, Datastore};
use crate::sweep::spec::ComponentRef;
use crate::workspace::{DomainError, DomainResult, Workspace, now_millis};

/// The store settings of a component for `kind`: no capabilities beyond its manifest's, its
/// manifest's limits (memory cap, call deadline) within the host's bounds.
pub fn plugin_store_spec(
    ws: &Workspace,
    row: &ComponentRow,
    kind: Kind,
) -> DomainResult<(StoreSpec, std::time::Duration)> {
    let manifest: Manifest =
        serde_json::from_str(&row.manifest).map_err(|e| DomainError::Internal(e.to_string()))?;
    if manifest.kind != kind {
        return Err(DomainError::invalid(format!(
            "{}@{} is a {} plugin, not a {kind} plugin",
            row.name, row.version, manifest.kind
        )));
    }
    let memory = manifest
        .limits
        .memory_mb
        .map(|m| m << 20)
        .unwrap_or(kind.default_memory())
        .min(MAX_MEMORY);
    let deadline = manifest
        .limits
        .timeout_ms
        .map(std::time::Duration::from_millis)
        .unwrap_or(kind.default_deadline())
        .min(std::time::Duration::from_secs(120));
    let spec = StoreSpec {
        kind,
        effective: Arc::new(Effective::of(&manifest, &Grants::default())),
        secrets: Arc::new(Default::default()),
        memory,
        tags: Arc::new(LogTags {
            workspace: ws.name.clone(),
            component: row.name.clone(),
            version: row.version.clone(),
        }),
    };
    Ok((spec, deadline))
}

/// A component version to register.
pub struct ComponentUpload {
    /// Registry name.
    pub name: String,
    /// Version label.
    pub version: String,
    /// The manifest (TOML or JSON).
    pub manifest: String,
    /// The component bytes.
    pub wasm: Vec<u8>,
}

/// A datastore to create.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatastoreRequest {
    /// Storage component name.
    pub component: String,
    /// Its version (default: the latest registered).
    #[serde(default)]
    pub version: Option<String>,
    /// Make it the workspace's default datastore once it answers.
    #[serde(default)]
    pub default: bool,
    /// Config values (granted only where the manifest lists the key).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Directories: guest path → directory under the data directory's `datastores/` (created
    /// if missing). Directories the manifest asks for and that are not given get a fresh one.
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
    /// Hosts the plugin may call.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether those hosts may resolve to private addresses.
    #[serde(default)]
    pub http_private: bool,
    /// Secret names granted.
    #[serde(default)]
    pub secrets: Vec<String>,
}

fn check_label(what: &str, s: &str) -> DomainResult<()> {
    if crate::workspace::validate::is_label(s, 64, b"-_.+") {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid {what} '{s}': use 1-64 characters of letters, digits, '-', '_', '.', '+', starting with a letter or digit"
        )))
    }
}

fn row(
    name: &str,
    version: &str,
    manifest: &Manifest,
    digest: String,
    size: usize,
    api_version: Option<String>,
    builtin: bool,
) -> ComponentRow {
    ComponentRow {
        name: name.to_string(),
        version: version.to_string(),
        kind: manifest.kind.as_str().to_string(),
        digest,
        size: size as i64,
        api_version,
        manifest: serde_json::to_string(manifest).expect("manifest serializes"),
        builtin,
        created_at: now_millis(),
    }
}

/// How many built-in components preparing them would compile (none in either cache).
pub fn builtins_to_compile(loader: &Loader) -> usize {
    BUILTINS
        .iter()
        .filter(|b| !loader.builtin_is_compiled(&digest_of(b.wasm)))
        .count()
}

/// Validates and keeps the built-in components (compiling them on first start, unless the
/// shared cache has them); returns their registry rows. Blocking: run it off the async threads.
pub fn prepare_builtins(loader: &Loader) -> Result<Vec<ComponentRow>, RuntimeError> {
    let mut rows = Vec::new();
    for b in BUILTINS {
        let manifest = Manifest::parse(b.manifest)
            .map_err(|e| RuntimeError::Internal(format!("built-in {}: {e}", b.name)))?;
        let digest = digest_of(b.wasm);
        let api_version = crate::plugins::loader::api_version(b.wasm);
        if !loader.has(&digest) {
            let v = loader.validate_builtin(b.wasm, manifest.kind)?;
            loader.keep(b.wasm, &v)?;
        }
        let version = manifest.version.clone().unwrap_or_else(|| "builtin".into());
        rows.push(row(
            b.name,
            &version,
            &manifest,
            digest,
            b.wasm.len(),
            api_version,
            true,
        ));
    }
    Ok(rows)
}

impl Service {
    /// The plugin loader.
    pub(crate) fn loader(&self) -> Arc<Loader> {
        self.datastores.loader().clone()
    }

    /// Registers built-ins this host added since a workspace was created (a host upgrade), so
    /// every workspace lists every built-in; versions it already has are left as they are.
    pub async fn register_new_builtins(&self) -> DomainResult<()> {
        for ws in self.store.list_workspaces().await? {
            for b in &self.builtins {
                if self
                    .store
                    .component(ws.id, &b.name, &b.version)
                    .await?
                    .is_none()
                {
                    match self.store.register_component(ws.id, b).await {
                        Ok(_) | Err(DomainError::AlreadyExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// A built-in component by registry name.
    pub fn builtin(&self, name: &str) -> Option<&ComponentRow> {
        self.builtins.iter().find(|c| c.name == name)
    }

    /// The sampler or stopper component a sweep names (a built-in, or a version uploaded to the
    /// workspace), with its store settings: no capabilities, its manifest's limits.
    pub async fn strategy_plugin(
        &self,
        ws: &Workspace,
        c: &ComponentRef,
        kind: Kind,
    ) -> DomainResult<StrategyPlugin> {
        let row = match c {
            ComponentRef::Builtin(name) => self.builtin(name).cloned().ok_or_else(|| {
                DomainError::Internal(format!("the built-in component {name} is missing"))
            })?,
            ComponentRef::Uploaded { name, version } => self.component(ws, name, version).await?,
        };
        let (spec, deadline) = plugin_store_spec(ws, &row, kind)?;
        Ok(StrategyPlugin {
            loader: self.loader(),
            digest: row.digest.clone(),
            spec,
            deadline,
            label: format!("{}@{}", row.name, row.version),
        })
    }

    /// Validates and registers a component version; returns it and whether it is new.
    pub async fn push_component(
        &self,
        ws: &Workspace,
        up: ComponentUpload,
    ) -> DomainResult<(ComponentRow, bool)> {
        check_label("component name", &up.name)?;
        check_label("component version", &up.version)?;
        let manifest =
            Manifest::parse(&up.manifest).map_err(|e| DomainError::invalid(e.to_string()))?;
        let loader = self.loader();
        let kind = manifest.kind;
        let (validated, wasm) = tokio::task::spawn_blocking(move || {
            let v = loader.validate(&up.wasm, kind)?;
            loader.keep(&up.wasm, &v)?;
            Ok::<_, RuntimeError>((v, up.wasm))
        })
        .await
        .map_err(|e| DomainError::Internal(format!("validation task: {e}")))??;
        let c = row(
            &up.name,
            &up.version,
            &manifest,
            validated.digest,
            wasm.len(),
            validated.api_version,
            false,
        );
        // every replica can fetch the bytes (before the row that names them is visible)
        self.store.put_component_file(&c.digest, &wasm).await?;
        let created = self.store.register_component(ws.id, &c).await?;
        if created {
            tracing::info!(
                workspace = ws.name.as_str(),
                component = c.name.as_str(),
                version = c.version.as_str(),
                kind = c.kind.as_str(),
                digest = c.digest.as_str(),
                "component registered"
            );
        }
        Ok((c, created))
    }

    /// A registered component version.
    pub async fn component(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> DomainResult<ComponentRow> {
        self.store
            .component(ws.id, name, version)
            .await?
            .ok_or_else(|| {
                DomainError::NotFound(format!("component {name}@{version} does not exist"))
            })
    }

    /// Removes a component version (refused while a datastore or a deployment uses it).
    pub async fn delete_component(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> DomainResult<()> {
        let used = self
            .store
            .deployments_using_component(ws.id, name, version)
            .await?;
        if let Some(u) = used.first() {
            return Err(DomainError::InvalidState(format!(
                "component {name}@{version} is the scorer of deployment '{}' of endpoint '{}'; update or delete that deployment first",
                u.deployment, u.endpoint
            )));
        }
        self.store.delete_component(ws.id, name, version).await
    }

    /// A registered scorer component, ready to open sessions for one deployment: `model` is
    /// what `models.load` serves, `config` the keys the host adds, `session_config` what
    /// `session.open` receives.
    pub fn scorer_component(
        &self,
        ws: &Workspace,
        row: &ComponentRow,
        model: Arc<dyn Predictor>,
        config: BTreeMap<String, String>,
        session_config: String,
    ) -> DomainResult<ScorerComponent> {
        let (spec, deadline) = plugin_store_spec(ws, row, Kind::Scorer)?;
        Ok(ScorerComponent {
            loader: self.loader(),
            digest: row.digest.clone(),
            spec,
            config: Arc::new(config),
            model,
            session_config,
            open_deadline: deadline,
            label: format!("{}@{}", row.name, row.version),
        })
    }

    /// Fetches the files of uploaded components this host lacks (another replica took the
    /// upload), or only of `digest`; returns how many it fetched.
    pub async fn sync_components(&self, digest: Option<&str>) -> DomainResult<usize> {
        let loader = self.loader();
        let wanted = match digest {
            Some(d) => vec![d.to_string()],
            None => self.store.uploaded_component_digests().await?,
        };
        let mut n = 0;
        for d in wanted.into_iter().filter(|d| !loader.has(d)) {
            let Some(bytes) = self.store.component_file(&d).await? else {
                continue;
            };
            let l = loader.clone();
            tokio::task::spawn_blocking(move || l.keep_bytes(&d, &bytes))
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))?
                .map_err(|e| DomainError::Internal(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    }

    /// The most recently registered version of a component in a workspace.
    pub async fn latest_component(&self, ws: &Workspace, name: &str) -> DomainResult<ComponentRow> {
        self.store
            .list_components(ws.id)
            .await?
            .into_iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.created_at)
            .ok_or_else(|| {
                DomainError::NotFound(format!(
                    "component '{name}' does not exist in workspace '{}'",
                    ws.name
                ))
            })
    }

    /// Creates a datastore served by a registered storage component, checks that it answers,
    /// and returns it.
    pub async fn create_datastore(
        &self,
        ws: &Workspace,
        name: &str,
        req: DatastoreRequest,
    ) -> DomainResult<Datastore> {
        check_label("datastore name", name)?;
        let c = match &req.version {
            Some(v) => self.component(ws, &req.component, v).await?,
            None => self.latest_component(ws, &req.component).await?,
        };
        let manifest: Manifest =
            serde_json::from_str(&c.manifest).map_err(|e| DomainError::Internal(e.to_string()))?;
        if manifest.kind != Kind::Storage {
            return Err(DomainError::invalid(format!(
                "{}@{} is a {} plugin, not a storage plugin",
                c.name, c.version, manifest.kind
            )));
        }
        let mut dirs = BTreeMap::new();
        for d in &manifest.capabilities.dirs {
            let host = match req.dirs.get(&d.guest) {
                Some(h) => format!("datastores/{}", h.trim_start_matches("datastores/")),
                None => Datastores::new_dir_name(),
            };
            dirs.insert(d.guest.clone(), host);
        }
        if let Some(extra) = req.dirs.keys().find(|g| !dirs.contains_key(*g)) {
            return Err(DomainError::invalid(format!(
                "{}@{} does not ask for a directory at {extra}",
                c.name, c.version
            )));
        }
        // a grant names secrets of this workspace: each must exist (404 otherwise)
        self.check_secrets_exist(ws, &req.secrets).await?;
        let grants = Grants {
            dirs,
            http: req.http,
            http_private: req.http_private,
            secrets: req.secrets,
            config: req.config,
        };
        let cfg = PluginDatastore {
            component: c.name.clone(),
            version: c.version.clone(),
            digest: c.digest.clone(),
            manifest,
            grants,
        };
        let config = serde_json::to_value(cfg).map_err(|e| DomainError::Internal(e.to_string()))?;
        let ds = self
            .store
            .create_datastore(ws.id, name, "plugin", &config)
            .await?;
        // a first call proves the grants work (mounts exist, the component instantiates)
        let probe = self.backend(&ds).await;
        let answer = match probe {
            Ok(backend) => tokio::task::spawn_blocking(move || backend.clean_temporary())
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))
                .and_then(|r| r.map(|_| ()).map_err(DomainError::from)),
            Err(e) => Err(e),
        };
        if let Err(e) = answer {
            let _ = self.store.delete_datastore(ws.id, name).await;
            let _ = self.datastores.destroy(&ds);
            return Err(DomainError::invalid(format!(
                "datastore '{name}' does not work: {e}"
            )));
        }
        if req.default {
            return self.store.set_default_datastore(ws.id, name).await;
        }
        Ok(ds)
    }

    /// Deletes a datastore that holds no artifacts and serves no experiment.
    pub async fn delete_datastore(&self, ws: &Workspace, name: &str) -> DomainResult<()> {
        let ds = self.store.delete_datastore(ws.id, name).await?;
        self.datastores.destroy(&ds)?;
        Ok(())
    }

    /// Chooses (or with `None` resets to the default) the datastore of an experiment's artifacts.
    pub async fn set_experiment_datastore(
        &self,
        ws: &Workspace,
        experiment_id: i64,
        datastore: Option<&str>,
    ) -> DomainResult<()> {
        let id = match datastore {
            Some(name) => Some(self.store.datastore_by_name(ws.id, name).await?.id),
            None => None,
        };
        self.store
            .set_experiment_datastore(ws.id, experiment_id, id)
            .await
    }
}
