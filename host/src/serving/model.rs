//! The model a deployment serves: an Atrium tabular model loaded on the deployment's device,
//! answering `models.predict` with the model's own preprocessing, run natively.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::jobs::device_for;
use crate::plugins::scorer::Predictor;
use crate::service::{ArtifactScope, Service};
use crate::train::TrainedModel;
use crate::train::spec::DeviceSpec;
use crate::workspace::Workspace;
use crate::workspace::endpoint::ServeDevice;
use crate::workspace::registry::ModelRef;
use crate::workspace::{DomainError, DomainResult};

/// A loaded model, shared by every instance of a deployment.
pub struct ServedModel {
    name: String,
    model: TrainedModel,
}

impl ServedModel {
    /// Loads `model.json` + `model.safetensors` on `device`.
    pub fn load(
        name: &str,
        json: &[u8],
        weights: &[u8],
        device: ServeDevice,
    ) -> DomainResult<Arc<Self>> {
        let device = device_for(match device {
            ServeDevice::Cpu => DeviceSpec::Cpu,
            ServeDevice::Cuda => DeviceSpec::Cuda,
            ServeDevice::Auto => DeviceSpec::Auto,
        })?;
        let model = TrainedModel::from_files(json, weights, &device).map_err(|e| {
            DomainError::invalid(format!(
                "model '{name}' is not an Atrium tabular model that scorers can serve: {e}"
            ))
        })?;
        Ok(Arc::new(Self {
            name: name.to_string(),
            model,
        }))
    }

    /// Where the model runs (`cpu` or `cuda`).
    pub fn device_name(&self) -> &'static str {
        if self.model.net.device().is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }

    /// Config keys a scorer instance reads: `model.name`, `model.version`, `model.signature`.
    pub fn config(&self, version: i64) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        c.insert("model.name".to_string(), self.name.clone());
        c.insert("model.version".to_string(), version.to_string());
        c.insert(
            "model.signature".to_string(),
            self.model.card.signature.to_string(),
        );
        c.insert("model.task".to_string(), {
            let t = serde_json::to_value(self.model.card.task).unwrap_or_default();
            t.as_str().unwrap_or_default().to_string()
        });
        c
    }
}

impl Predictor for ServedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(
        &self,
        rows: usize,
        cols: usize,
        data: &[f32],
    ) -> Result<(Vec<u64>, Vec<f32>), String> {
        self.model
            .predict_raw(data, rows, cols)
            .map_err(|e| e.to_string())
    }
}

/// A model reference resolved to what it names now.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// Registered model name, or the run id of a `runs:/` model.
    pub name: String,
    /// Registered version (0 for a `runs:/` model).
    pub version: i64,
    /// Artifact directory in the run, for a `runs:/` model.
    pub path: Option<String>,
}

/// Resolves `runs:/<run>/<path>` or a registry reference (`models:/name/3`,
/// `models:/name@alias`, `name/3`, ...).
pub async fn resolve(svc: &Service, ws: &Workspace, uri: &str) -> DomainResult<ResolvedModel> {
    if let Some(rest) = uri.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.trim_matches('/');
        if run.is_empty() || path.is_empty() {
            return Err(DomainError::invalid(format!(
                "model '{uri}': a run model is runs:/<run id>/<artifact path>"
            )));
        }
        // the run must exist and hold the model
        svc.open_artifact(ws, run, &format!("{path}/model.json"))
            .await?;
        return Ok(ResolvedModel {
            name: run.to_string(),
            version: 0,
            path: Some(path.to_string()),
        });
    }
    if let Some(id) = uri
        .strip_prefix("models:/")
        .filter(|id| crate::workspace::logged_model::is_model_id(id))
    {
        // an MLflow logged model Atrium can run: one holding an Atrium model.json
        svc.open_artifact(ws, ArtifactScope::Model(id), "model.json")
            .await?;
        return Ok(ResolvedModel {
            name: id.to_string(),
            version: 0,
            path: Some(String::new()),
        });
    }
    let v = svc
        .resolve_model_version(&ws.name, &ModelRef::parse(uri)?)
        .await?;
    Ok(ResolvedModel {
        name: v.name,
        version: v.version,
        path: None,
    })
}

/// `model.json` and `model.safetensors` of a resolved model.
pub async fn files(
    svc: &Service,
    ws: &Workspace,
    m: &ResolvedModel,
) -> DomainResult<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for file in ["model.json", "model.safetensors"] {
        out.push(match &m.path {
            Some(dir) if dir.is_empty() => run_file(svc, ws, &m.name, file).await?,
            Some(dir) => run_file(svc, ws, &m.name, &format!("{dir}/{file}")).await?,
            None => {
                svc.read_model_version_file(&ws.name, &m.name, m.version, file)
                    .await?
            }
        });
    }
    let weights = out.pop().unwrap_or_default();
    let json = out.pop().unwrap_or_default();
    Ok((json, weights))
}

async fn run_file(
    svc: &Service,
    ws: &Workspace,
    run_id: &str,
    path: &str,
) -> DomainResult<Vec<u8>> {
    // `run_id` names a run, or a logged model (`m-...`)
    let scope = if crate::workspace::logged_model::is_model_id(run_id) {
        ArtifactScope::Model(run_id)
    } else {
        ArtifactScope::Run(run_id)
    };
    let (_, mut reader) = svc.open_artifact(ws, scope, path).await?;
    let what = path.to_string();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut out).map(|_| out)
    })
    .await
    .map_err(|e| DomainError::Internal(e.to_string()))?
    .map_err(|e| DomainError::Internal(format!("reading {what}: {e}")))
}
