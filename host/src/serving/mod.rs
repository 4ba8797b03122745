//! Online endpoints: deployments (model version + scorer component + settings) served from
//! pools of scorer instances, a traffic split with an optional mirror, zero-downtime updates
//! (the new pool is warm before traffic moves), and per-deployment metrics.
//!
//! The live state is a map of immutable [`LiveEndpoint`] snapshots: a change builds a new
//! snapshot and swaps it in, so a request sees one consistent split; pools are shared between
//! snapshots, and an old pool lives until its last in-flight request ends.

pub mod metrics;
pub mod model;
pub mod pool;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use self::metrics::{Metrics, Series, SeriesSnapshot};
use self::model::ServedModel;
use self::pool::{Pool, PoolError};
use crate::plugins::scorer::GuestFailure;
use crate::service::Service;
use crate::workspace::endpoint::{
    AuthMode, DEFAULT_SCORER, Deployment, DeploymentRequest, Endpoint, check_deployment_name,
    check_endpoint_name, check_traffic,
};
use crate::workspace::{DomainError, DomainResult, Workspace, now_millis};

/// Request header that pins a request to one deployment (Azure ML's name is accepted too).
pub const PIN_HEADER: &str = "x-atrium-deployment";
/// Azure ML's pin header.
pub const AZURE_PIN_HEADER: &str = "azureml-model-deployment";

/// Why a scoring request failed, with the HTTP status it answers.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No endpoint of that name.
    #[error("endpoint '{0}' does not exist")]
    UnknownEndpoint(String),
    /// Missing or wrong endpoint key.
    #[error("endpoint '{0}' needs its key: send 'Authorization: Bearer <key>'")]
    Unauthorized(String),
    /// The pin header names no deployment of the endpoint.
    #[error("endpoint '{endpoint}' has no deployment '{deployment}'")]
    UnknownDeployment {
        /// Endpoint.
        endpoint: String,
        /// Deployment asked for.
        deployment: String,
    },
    /// Nothing takes live traffic.
    #[error("endpoint '{0}' has no deployment taking traffic")]
    NoTraffic(String),
    /// The request's content type is not one the route takes.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// From the pool.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl ServeError {
    /// The HTTP status this error answers.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::UnknownEndpoint(_) | ServeError::UnknownDeployment { .. } => 404,
            ServeError::Unauthorized(_) => 401,
            ServeError::NoTraffic(_) => 503,
            ServeError::UnsupportedMedia(_) => 415,
            ServeError::Pool(p) => match p {
                PoolError::Busy(_) => 429,
                PoolError::Timeout(_) => 504,
                PoolError::Crashed(_) => 500,
                PoolError::Unavailable(_) => 503,
                PoolError::Guest(GuestFailure { kind, .. }) => match *kind {
                    "invalid-argument" => 400,
                    "not-found" => 404,
                    "access-denied" => 403,
                    "resource-exhausted" => 413,
                    "unsupported" => 415,
                    _ => 500,
                },
            },
        }
    }

    /// The error code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self.status() {
            400 => "INVALID_PARAMETER_VALUE",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "RESOURCE_DOES_NOT_EXIST",
            413 => "RESOURCE_EXHAUSTED",
            415 => "UNSUPPORTED_MEDIA_TYPE",
            429 => "TOO_MANY_REQUESTS",
            503 => "TEMPORARILY_UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "SCORER_ERROR",
        }
    }
}

/// One scoring request as the routes hand it over.
pub struct ScoreRequest {
    /// The bearer token sent, if any.
    pub key: Option<String>,
    /// Whether the caller's API token has Reader on the endpoint's workspace (no key needed).
    pub reader: bool,
    /// A deployment the caller pinned, if any.
    pub pin: Option<String>,
    /// Content type passed to the scorer.
    pub content_type: String,
    /// Body passed to the scorer.
    pub body: Bytes,
}

/// A scored request.
pub struct Scored {
    /// The deployment that answered.
    pub deployment: String,
    /// Response content type.
    pub content_type: String,
    /// Response body.
    pub body: Vec<u8>,
}

/// A deployment's pool, built on first use after a host start (cold) or before traffic
/// moves to it (warm).
struct PoolCell {
    deployment: Deployment,
    endpoint: String,
    cell: OnceCell<Arc<Pool>>,
}

#[derive(Clone)]
struct LiveDeployment {
    pool: Arc<PoolCell>,
    series: Arc<Series>,
}

/// The serving view of one endpoint.
struct LiveEndpoint {
    workspace: String,
    auth_mode: AuthMode,
    key_hash: String,
    /// (cumulative percent, deployment)
    routes: Vec<(u32, String)>,
    mirror: Option<(String, u32)>,
    deployments: HashMap<String, LiveDeployment>,
    unrouted: Arc<Series>,
}

/// An endpoint with the live state of its deployments.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EndpointView {
    /// The stored endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Scoring URL path.
    pub scoring_uri: String,
    /// Live state by deployment.
    pub state: BTreeMap<String, DeploymentState>,
    /// The key, only when just created or regenerated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A deployment's live state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeploymentState {
    /// `warm` (instances started) or `cold` (starts on the first request).
    pub state: &'static str,
    /// Instances alive.
    pub instances: usize,
}

/// The serving service.
pub struct Serving {
    svc: Arc<Service>,
    live: RwLock<HashMap<String, Arc<LiveEndpoint>>>,
    metrics: Arc<Metrics>,
    /// One change at a time (deploy, traffic, delete), so snapshots never race.
    changes: tokio::sync::Mutex<()>,
}

fn hash_key(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_key() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("atk_{a}{b}")
}

/// Constant-time comparison of two hex digests.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Serving {
    /// The service, with every stored endpoint loaded cold (pools start on first use).
    pub async fn start(svc: Arc<Service>) -> DomainResult<Arc<Self>> {
        let metrics = Arc::new(Metrics::for_replica(svc.store.replica()));
        let s = Arc::new(Self {
            svc,
            live: RwLock::new(HashMap::new()),
            metrics,
            changes: tokio::sync::Mutex::new(()),
        });
        let all = s.svc.store.list_endpoints(None).await?;
        let n = all.len();
        for ep in all {
            let live = s.live_endpoint(&ep, &HashMap::new());
            s.live.write().expect("live").insert(ep.name.clone(), live);
        }
        if n > 0 {
            tracing::info!(
                endpoints = n,
                "endpoints loaded (cold until their first request)"
            );
        }
        s.follow_changes();
        Ok(s)
    }

    /// Follows endpoint changes replicas announce: a deployment, traffic or key change made
    /// through any replica is installed here too, and deployments that take traffic start
    /// their instances at once (warm on every replica, not on their first request here).
    fn follow_changes(self: &Arc<Self>) {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = self.svc.store.changes();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(s) = me.upgrade() else { return };
                let result = match change {
                    Ok(crate::store::Change::Endpoint { workspace_id, name }) => {
                        s.reload(workspace_id, &name).await
                    }
                    Ok(crate::store::Change::All) | Err(RecvError::Lagged(_)) => {
                        s.reload_all().await
                    }
                    Ok(_) => Ok(()),
                    Err(RecvError::Closed) => return,
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "cannot follow an endpoint change");
                }
            }
        });
    }

    /// Installs the stored state of one endpoint (removing it when it is gone), keeping the
    /// pools of deployments that did not change, and warms those that take traffic.
    async fn reload(self: &Arc<Self>, workspace_id: i64, name: &str) -> DomainResult<()> {
        let _one = self.changes.lock().await;
        match self.svc.store.endpoint(workspace_id, name).await? {
            Some(ep) => {
                self.install(&ep, &HashMap::new());
                self.warm_routed(&ep.name);
            }
            // names are unique on the host: the endpoint is gone
            None => {
                self.live.write().expect("live").remove(name);
            }
        }
        Ok(())
    }

    /// Installs the stored state of every endpoint (after notifications may have been lost).
    async fn reload_all(self: &Arc<Self>) -> DomainResult<()> {
        let _one = self.changes.lock().await;
        let all = self.svc.store.list_endpoints(None).await?;
        let names: std::collections::HashSet<String> = all.iter().map(|e| e.name.clone()).collect();
        self.live
            .write()
            .expect("live")
            .retain(|n, _| names.contains(n));
        for ep in all {
            self.install(&ep, &HashMap::new());
            self.warm_routed(&ep.name);
        }
        Ok(())
    }

    /// Starts, in the background, the instances of an endpoint's deployments that take live
    /// or mirrored traffic and are not started yet.
    fn warm_routed(self: &Arc<Self>, endpoint: &str) {
        let Some(live) = self.live.read().expect("live").get(endpoint).cloned() else {
            return;
        };
        let routed: Vec<String> = live
            .routes
            .iter()
            .map(|(_, n)| n.clone())
            .chain(live.mirror.iter().map(|(n, _)| n.clone()))
            .collect();
        for name in routed {
            let Some(dep) = live.deployments.get(&name).cloned() else {
                continue;
            };
            if dep.pool.cell.get().is_some() {
                continue;
            }
            let (me, live) = (self.clone(), live.clone());
            tokio::spawn(async move {
                if let Err(e) = me.pool(&live, &dep).await {
                    tracing::warn!(error = %e, "cannot warm a deployment another replica changed");
                }
            });
        }
    }

    /// The metrics of every endpoint.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn live_endpoint(
        &self,
        ep: &Endpoint,
        pools: &HashMap<String, Arc<PoolCell>>,
    ) -> Arc<LiveEndpoint> {
        let mut routes = Vec::new();
        let mut acc = 0;
        for (name, pct) in &ep.traffic {
            if *pct > 0 {
                acc += pct;
                routes.push((acc, name.clone()));
            }
        }
        let deployments = ep
            .deployments
            .iter()
            .map(|d| {
                let pool = match pools.get(&d.name) {
                    Some(p) => p.clone(),
                    None => self.current_cell(&ep.name, &d.name, d).unwrap_or_else(|| {
                        Arc::new(PoolCell {
                            deployment: d.clone(),
                            endpoint: ep.name.clone(),
                            cell: OnceCell::new(),
                        })
                    }),
                };
                let series = self.metrics.series(&ep.workspace, &ep.name, &d.name);
                (d.name.clone(), LiveDeployment { pool, series })
            })
            .collect();
        Arc::new(LiveEndpoint {
            workspace: ep.workspace.clone(),
            auth_mode: ep.auth_mode,
            key_hash: ep.key_hash.clone(),
            routes,
            mirror: ep.mirror.iter().next().map(|(k, v)| (k.clone(), *v)),
            deployments,
            unrouted: self.metrics.series(&ep.workspace, &ep.name, ""),
        })
    }

    /// The live pool cell of a deployment, if it serves exactly `d` now.
    fn current_cell(&self, endpoint: &str, name: &str, d: &Deployment) -> Option<Arc<PoolCell>> {
        let live = self.live.read().expect("live");
        let cell = &live.get(endpoint)?.deployments.get(name)?.pool;
        (cell.deployment == *d).then(|| cell.clone())
    }

    fn install(&self, ep: &Endpoint, pools: &HashMap<String, Arc<PoolCell>>) {
        let live = self.live_endpoint(ep, pools);
        self.live
            .write()
            .expect("live")
            .insert(ep.name.clone(), live);
    }

    async fn stored(&self, ws: &Workspace, name: &str) -> DomainResult<Endpoint> {
        self.svc
            .store
            .endpoint(ws.id, name)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("endpoint '{name}' does not exist")))
    }

    fn view(&self, endpoint: Endpoint, key: Option<String>) -> EndpointView {
        let live = self.live.read().expect("live").get(&endpoint.name).cloned();
        let state = endpoint
            .deployments
            .iter()
            .map(|d| {
                let pool = live
                    .as_ref()
                    .and_then(|l| l.deployments.get(&d.name))
                    .and_then(|l| l.pool.cell.get().cloned());
                let s = match pool {
                    Some(p) => DeploymentState {
                        state: "warm",
                        instances: p.instances(),
                    },
                    None => DeploymentState {
                        state: "cold",
                        instances: 0,
                    },
                };
                (d.name.clone(), s)
            })
            .collect();
        EndpointView {
            scoring_uri: format!("/endpoints/{}/score", endpoint.name),
            endpoint,
            state,
            key,
        }
    }

    /// Creates an endpoint (no deployments yet); the answer holds its key, shown only now.
    pub async fn create_endpoint(
        &self,
        ws: &Workspace,
        name: &str,
        description: &str,
        auth_mode: AuthMode,
    ) -> DomainResult<EndpointView> {
        check_endpoint_name(name)?;
        let _one = self.changes.lock().await;
        let key = new_key();
        let now = now_millis();
        let ep = Endpoint {
            workspace: ws.name.clone(),
            name: name.to_string(),
            description: description.to_string(),
            auth_mode,
            key_hash: hash_key(&key),
            traffic: BTreeMap::new(),
            mirror: BTreeMap::new(),
            deployments: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        self.svc.store.create_endpoint(ws.id, &ep).await?;
        self.install(&ep, &HashMap::new());
        Ok(self.view(ep, Some(key)))
    }

    /// Changes an endpoint's description or auth mode.
    pub async fn update_endpoint(
        &self,
        ws: &Workspace,
        name: &str,
        description: Option<String>,
        auth_mode: Option<AuthMode>,
    ) -> DomainResult<EndpointView> {
        let _one = self.changes.lock().await;
        let mut ep = self.stored(ws, name).await?;
        if let Some(d) = description {
            ep.description = d;
        }
        if let Some(a) = auth_mode {
            ep.auth_mode = a;
        }
        ep.updated_at = now_millis();
        self.svc.store.save_endpoint(ws.id, &ep).await?;
        self.install(&ep, &HashMap::new());
        Ok(self.view(ep, None))
    }

    /// Replaces an endpoint's key; the answer holds the new one, shown only now.
    pub async fn regenerate_key(&self, ws: &Workspace, name: &str) -> DomainResult<EndpointView> {
        let _one = self.changes.lock().await;
        let mut ep = self.stored(ws, name).await?;
        let key = new_key();
        ep.key_hash = hash_key(&key);
        ep.updated_at = now_millis();
        self.svc.store.save_endpoint(ws.id, &ep).await?;
        self.install(&ep, &HashMap::new());
        Ok(self.view(ep, Some(key)))
    }

    /// An endpoint with its live state.
    pub async fn endpoint(&self, ws: &Workspace, name: &str) -> DomainResult<EndpointView> {
        let ep = self.stored(ws, name).await?;
        Ok(self.view(ep, None))
    }

    /// The endpoints of a workspace.
    pub async fn list(&self, ws: &Workspace) -> DomainResult<Vec<EndpointView>> {
        let all = self.svc.store.list_endpoints(Some(ws.id)).await?;
        Ok(all.into_iter().map(|e| self.view(e, None)).collect())
    }

    /// Deletes an endpoint; in-flight requests finish on their pools.
    pub async fn delete_endpoint(&self, ws: &Workspace, name: &str) -> DomainResult<()> {
        let _one = self.changes.lock().await;
        self.svc.store.delete_endpoint(ws.id, name).await?;
        self.live.write().expect("live").remove(name);
        self.metrics.forget_endpoint(name);
        Ok(())
    }

    /// Creates or updates a deployment. The new pool is built and warmed first; only then is
    /// the deployment stored and traffic moved to it, so a failing model or scorer leaves the
    /// endpoint as it was. The first deployment of an endpoint without traffic gets 100 %.
    pub async fn put_deployment(
        &self,
        ws: &Workspace,
        endpoint: &str,
        name: &str,
        req: DeploymentRequest,
    ) -> DomainResult<EndpointView> {
        check_deployment_name(name)?;
        req.settings.check()?;
        let _one = self.changes.lock().await;
        let mut ep = self.stored(ws, endpoint).await?;
        let now = now_millis();
        let (deployment, pool) = self.build(ws, endpoint, name, &req, now).await?;
        let created_at = ep
            .deployments
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.created_at)
            .unwrap_or(now);
        let deployment = Deployment {
            created_at,
            ..deployment
        };
        ep.deployments.retain(|d| d.name != name);
        ep.deployments.push(deployment.clone());
        ep.deployments.sort_by(|a, b| a.name.cmp(&b.name));
        if ep.traffic.is_empty() && ep.deployments.len() == 1 {
            ep.traffic.insert(name.to_string(), 100);
        }
        ep.updated_at = now;
        self.svc.store.save_endpoint(ws.id, &ep).await?;
        let cell = Arc::new(PoolCell {
            deployment,
            endpoint: endpoint.to_string(),
            cell: OnceCell::new_with(Some(pool)),
        });
        self.install(&ep, &HashMap::from([(name.to_string(), cell)]));
        Ok(self.view(ep, None))
    }

    /// Resolves and loads what a deployment serves and starts its instances.
    async fn build(
        &self,
        ws: &Workspace,
        endpoint: &str,
        name: &str,
        req: &DeploymentRequest,
        now: i64,
    ) -> DomainResult<(Deployment, Arc<Pool>)> {
        let scorer = match req
            .scorer
            .as_deref()
            .unwrap_or(DEFAULT_SCORER)
            .split_once('@')
        {
            Some((n, v)) => self.svc.component(ws, n, v).await?,
            None => {
                self.svc
                    .latest_component(ws, req.scorer.as_deref().unwrap_or(DEFAULT_SCORER))
                    .await?
            }
        };
        let m = model::resolve(&self.svc, ws, &req.model).await?;
        let (model_name, model_version, model_path) = (m.name, m.version, m.path);
        let deployment = Deployment {
            name: name.to_string(),
            model_uri: req.model.clone(),
            model_name,
            model_version,
            model_path,
            scorer_name: scorer.name.clone(),
            scorer_version: scorer.version.clone(),
            settings: req.settings.clone(),
            created_at: now,
            updated_at: now,
        };
        let pool = self.open_pool(ws, endpoint, &deployment).await?;
        pool.warm()
            .await
            .map_err(|e| DomainError::invalid(format!("deployment '{name}' did not start: {e}")))?;
        Ok((deployment, pool))
    }

    /// A pool (no instance started) for a stored deployment.
    async fn open_pool(
        &self,
        ws: &Workspace,
        endpoint: &str,
        d: &Deployment,
    ) -> DomainResult<Arc<Pool>> {
        let scorer = self
            .svc
            .component(ws, &d.scorer_name, &d.scorer_version)
            .await?;
        let resolved = model::ResolvedModel {
            name: d.model_name.clone(),
            version: d.model_version,
            path: d.model_path.clone(),
        };
        let (json, weights) = model::files(&self.svc, ws, &resolved).await?;
        let (name, device) = (d.model_name.clone(), d.settings.device);
        let model =
            tokio::task::spawn_blocking(move || ServedModel::load(&name, &json, &weights, device))
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))??;
        let mut config = model.config(d.model_version);
        config.insert("endpoint.name".into(), endpoint.to_string());
        config.insert("deployment.name".into(), d.name.clone());
        config.insert("model.device".into(), model.device_name().to_string());
        let component = self.svc.scorer_component(
            ws,
            &scorer,
            model,
            config,
            d.settings.scorer_config.to_string(),
        )?;
        Ok(Pool::new(
            format!("{endpoint}/{}", d.name),
            Arc::new(component),
            d.settings.clone(),
        ))
    }

    /// Deletes a deployment (refused while it takes live or mirrored traffic).
    pub async fn delete_deployment(
        &self,
        ws: &Workspace,
        endpoint: &str,
        name: &str,
    ) -> DomainResult<EndpointView> {
        let _one = self.changes.lock().await;
        let mut ep = self.stored(ws, endpoint).await?;
        if !ep.deployments.iter().any(|d| d.name == name) {
            return Err(DomainError::NotFound(format!(
                "endpoint '{endpoint}' has no deployment '{name}'"
            )));
        }
        let live = ep.traffic.get(name).copied().unwrap_or(0);
        if live > 0 || ep.mirror.contains_key(name) {
            return Err(DomainError::InvalidState(format!(
                "deployment '{name}' takes {live} percent of live traffic{}; move its traffic first",
                if ep.mirror.contains_key(name) {
                    " and is the mirror"
                } else {
                    ""
                }
            )));
        }
        ep.traffic.remove(name);
        ep.deployments.retain(|d| d.name != name);
        ep.updated_at = now_millis();
        self.svc.store.save_endpoint(ws.id, &ep).await?;
        self.install(&ep, &HashMap::new());
        Ok(self.view(ep, None))
    }

    /// Sets the traffic split and mirror (both replaced).
    pub async fn set_traffic(
        &self,
        ws: &Workspace,
        endpoint: &str,
        traffic: BTreeMap<String, u32>,
        mirror: BTreeMap<String, u32>,
    ) -> DomainResult<EndpointView> {
        let _one = self.changes.lock().await;
        let mut ep = self.stored(ws, endpoint).await?;
        let names: Vec<&str> = ep.deployments.iter().map(|d| d.name.as_str()).collect();
        check_traffic(&traffic, &mirror, &names)?;
        ep.traffic = traffic.into_iter().filter(|(_, v)| *v > 0).collect();
        ep.mirror = mirror.into_iter().filter(|(_, v)| *v > 0).collect();
        ep.updated_at = now_millis();
        self.svc.store.save_endpoint(ws.id, &ep).await?;
        self.install(&ep, &HashMap::new());
        Ok(self.view(ep, None))
    }

    /// Metrics of one endpoint by deployment (`""`: requests that reached none).
    pub async fn endpoint_metrics(
        &self,
        ws: &Workspace,
        name: &str,
    ) -> DomainResult<BTreeMap<String, SeriesSnapshot>> {
        self.stored(ws, name).await?;
        Ok(self.metrics.endpoint(name))
    }

    /// Whether an endpoint exists and, with a `deployment`, whether it has it.
    pub fn exists(&self, endpoint: &str) -> bool {
        self.live.read().expect("live").contains_key(endpoint)
    }

    /// The model versions an endpoint's deployments serve, or `None` without such endpoint.
    pub fn versions(&self, endpoint: &str) -> Option<Vec<String>> {
        let live = self.live.read().expect("live").get(endpoint).cloned()?;
        let mut v: Vec<String> = live
            .deployments
            .values()
            .map(|d| d.pool.deployment.model_version.to_string())
            .collect();
        v.sort();
        v.dedup();
        Some(v)
    }

    /// The workspace an endpoint belongs to.
    pub fn workspace_of(&self, endpoint: &str) -> Option<String> {
        self.live
            .read()
            .expect("live")
            .get(endpoint)
            .map(|l| l.workspace.clone())
    }

    fn key_admits(live: &LiveEndpoint, key: Option<&str>) -> bool {
        live.auth_mode == AuthMode::None
            || key.is_some_and(|k| same_digest(&hash_key(k), &live.key_hash))
    }

    /// Checks a caller may use an endpoint: its key (or a key-less endpoint), or `reader`
    /// (a token with Reader on the endpoint's workspace).
    pub fn admits(
        &self,
        endpoint: &str,
        key: Option<&str>,
        reader: bool,
    ) -> Result<(), ServeError> {
        let live = self
            .live
            .read()
            .expect("live")
            .get(endpoint)
            .cloned()
            .ok_or_else(|| ServeError::UnknownEndpoint(endpoint.to_string()))?;
        if reader || Self::key_admits(&live, key) {
            Ok(())
        } else {
            Err(ServeError::Unauthorized(endpoint.to_string()))
        }
    }

    /// Whether an endpoint has a deployment taking live traffic.
    pub fn takes_traffic(&self, endpoint: &str) -> bool {
        self.live
            .read()
            .expect("live")
            .get(endpoint)
            .is_some_and(|l| !l.routes.is_empty())
    }

    /// Scores a request on the endpoint: authenticates, picks a deployment (pinned or by the
    /// traffic split), mirrors a copy when configured, and records metrics.
    pub async fn score(&self, endpoint: &str, req: ScoreRequest) -> Result<Scored, ServeError> {
        let started = Instant::now();
        let live = self
            .live
            .read()
            .expect("live")
            .get(endpoint)
            .cloned()
            .ok_or_else(|| ServeError::UnknownEndpoint(endpoint.to_string()))?;
        let unrouted = |e: ServeError| {
            live.unrouted.record(e.status(), started.elapsed());
            e
        };
        if !req.reader && !Self::key_admits(&live, req.key.as_deref()) {
            return Err(unrouted(ServeError::Unauthorized(endpoint.to_string())));
        }
        let name = match &req.pin {
            Some(p) => p.clone(),
            None => {
                let r = rand::random_range(0..100u32);
                match live.routes.iter().find(|(acc, _)| r < *acc) {
                    Some((_, n)) => n.clone(),
                    None => return Err(unrouted(ServeError::NoTraffic(endpoint.to_string()))),
                }
            }
        };
        let Some(dep) = live.deployments.get(&name).cloned() else {
            return Err(unrouted(ServeError::UnknownDeployment {
                endpoint: endpoint.to_string(),
                deployment: name,
            }));
        };
        let _in_flight = dep.series.start();
        let result = self.score_on(&live, &dep, &req).await;
        let status = match &result {
            Ok(_) => 200,
            Err(e) => e.status(),
        };
        dep.series.record(status, started.elapsed());
        if req.pin.is_none()
            && let Some((m, pct)) = &live.mirror
            && *m != name
            && rand::random_range(0..100u32) < *pct
            && let Some(mdep) = live.deployments.get(m).cloned()
        {
            self.mirror(live.clone(), mdep, &req);
        }
        result.map(|(content_type, body)| Scored {
            deployment: name,
            content_type,
            body,
        })
    }

    async fn score_on(
        &self,
        live: &LiveEndpoint,
        dep: &LiveDeployment,
        req: &ScoreRequest,
    ) -> Result<(String, Vec<u8>), ServeError> {
        let pool = self.pool(live, dep).await?;
        Ok(pool
            .score(req.content_type.clone(), req.body.clone())
            .await?)
    }

    async fn pool(
        &self,
        live: &LiveEndpoint,
        dep: &LiveDeployment,
    ) -> Result<Arc<Pool>, ServeError> {
        let cell = &dep.pool;
        let pool = cell
            .cell
            .get_or_try_init(|| async {
                let ws = self.svc.workspace(&live.workspace).await?;
                self.open_pool(&ws, &cell.endpoint, &cell.deployment).await
            })
            .await
            .map_err(|e: DomainError| {
                PoolError::Unavailable(format!(
                    "deployment '{}' cannot start: {e}",
                    cell.deployment.name
                ))
            })?;
        Ok(pool.clone())
    }

    fn mirror(&self, live: Arc<LiveEndpoint>, dep: LiveDeployment, req: &ScoreRequest) {
        let Some(pool) = dep.pool.cell.get().cloned() else {
            // a cold mirror is started by the next deploy or a pinned request; count the drop
            dep.series.record_mirror(false);
            return;
        };
        let (ct, body) = (req.content_type.clone(), req.body.clone());
        dep.series.record_mirror(true);
        tokio::spawn(async move {
            let _live = live;
            let started = Instant::now();
            let _in_flight = dep.series.start();
            let status = match pool.score(ct, body).await {
                Ok(_) => 200,
                Err(e) => ServeError::Pool(e).status(),
            };
            dep.series.record(status, started.elapsed());
        });
    }
}
