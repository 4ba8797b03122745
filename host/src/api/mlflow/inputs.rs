//! MLflow run inputs and outputs: `runs/log-inputs` (datasets, models), `runs/outputs`
//! (models), and `experiments/search-datasets`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::experiments::Tag;
use super::registry::Params;
use crate::api::AppState;
use crate::api::error::MlflowError;
use crate::api::extract::MlflowWs;
use crate::api::wire::{de_opt_i64, experiment_id};
use crate::workspace::run_io::{DatasetInput, MlflowDataset, ModelOutput, RunIo};
use crate::workspace::{DomainError, validate};

type Reply = Result<Json<Value>, MlflowError>;

/// Input tag naming the Atrium dataset version (`name:version`) an MLflow dataset input matched.
const ATRIUM_DATASET_TAG: &str = "atrium.dataset";

#[derive(Deserialize, Default)]
pub struct DatasetReq {
    #[serde(default)]
    name: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    source_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Deserialize)]
pub struct DatasetInputReq {
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    dataset: Option<DatasetReq>,
}

#[derive(Deserialize)]
pub struct ModelInputReq {
    #[serde(default)]
    model_id: String,
}

#[derive(Deserialize)]
pub struct LogInputsReq {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputReq>,
    #[serde(default)]
    models: Vec<ModelInputReq>,
}

fn run_id(id: &Option<String>) -> Result<&str, DomainError> {
    let id = id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::api::wire::missing("run_id"))?;
    validate::run_id(id)?;
    Ok(id)
}

/// `POST runs/log-inputs`.
pub async fn log_inputs(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<LogInputsReq>,
) -> Reply {
    let run = run_id(&req.run_id)?;
    let mut datasets: Vec<DatasetInput> = Vec::new();
    for d in req.datasets {
        let Some(ds) = d.dataset else {
            return Err(DomainError::invalid(
                "Dataset input must have a dataset associated with it.",
            )
            .into());
        };
        let input = DatasetInput {
            dataset: MlflowDataset {
                name: ds.name,
                digest: ds.digest,
                source_type: ds.source_type,
                source: ds.source,
                schema: ds.schema.filter(|s| !s.is_empty()),
                profile: ds.profile.filter(|s| !s.is_empty()),
                atrium_version: None,
            },
            tags: d.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        };
        input.check()?;
        // a repeated (name, digest) keeps its first occurrence, as MLflow does
        if !datasets.iter().any(|x| {
            x.dataset.name == input.dataset.name && x.dataset.digest == input.dataset.digest
        }) {
            datasets.push(input);
        }
    }
    let models: Vec<String> = req.models.into_iter().map(|m| m.model_id).collect();
    let link = st.svc.dataset_links(&ws, &datasets).await?;
    st.svc
        .store
        .log_run_inputs(ws.id, run, &datasets, &models, &link)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ModelOutputReq {
    #[serde(default)]
    model_id: String,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
}

#[derive(Deserialize)]
pub struct LogOutputsReq {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<ModelOutputReq>,
}

/// `POST runs/outputs`.
pub async fn log_outputs(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<LogOutputsReq>,
) -> Reply {
    let run = run_id(&req.run_id)?;
    let models: Vec<ModelOutput> = req
        .models
        .into_iter()
        .map(|m| ModelOutput {
            model_id: m.model_id,
            step: m.step.unwrap_or(0),
        })
        .collect();
    st.svc.store.log_run_outputs(ws.id, run, &models).await?;
    Ok(Json(json!({})))
}

/// The `inputs` and `outputs` members of a run in MLflow's JSON shape.
pub(crate) fn io_json(io: Option<&RunIo>) -> (Value, Value) {
    let Some(io) = io else {
        return (json!({}), json!({}));
    };
    let datasets: Vec<Value> = io
        .datasets
        .iter()
        .map(|d| {
            let mut ds = json!({
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source_type": d.dataset.source_type,
                "source": d.dataset.source,
            });
            if let Some(s) = &d.dataset.schema {
                ds["schema"] = json!(s);
            }
            if let Some(p) = &d.dataset.profile {
                ds["profile"] = json!(p);
            }
            let mut tags: Vec<Value> = d
                .tags
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v }))
                .collect();
            // the Atrium dataset version with this content, when the digests matched
            if let Some(v) = &d.dataset.atrium_version {
                tags.push(json!({ "key": ATRIUM_DATASET_TAG, "value": v }));
            }
            json!({ "tags": tags, "dataset": ds })
        })
        .collect();
    let mut inputs = json!({});
    if !datasets.is_empty() {
        inputs["dataset_inputs"] = json!(datasets);
    }
    if !io.model_inputs.is_empty() {
        inputs["model_inputs"] = json!(
            io.model_inputs
                .iter()
                .map(|m| json!({ "model_id": m }))
                .collect::<Vec<_>>()
        );
    }
    let mut outputs = json!({});
    if !io.model_outputs.is_empty() {
        outputs["model_outputs"] = json!(
            io.model_outputs
                .iter()
                .map(|m| json!({ "model_id": m.model_id, "step": m.step }))
                .collect::<Vec<_>>()
        );
    }
    (inputs, outputs)
}

#[derive(Deserialize)]
pub struct SearchDatasetsReq {
    #[serde(default)]
    experiment_ids: Vec<Value>,
}

/// Most experiments one dataset search may name (MLflow's limit).
const MAX_DATASET_EXPERIMENTS: usize = 20;
/// Most dataset summaries one search answers (MLflow's limit).
const MAX_DATASET_SUMMARIES: i64 = 1000;

/// `POST experiments/search-datasets`: the datasets runs of some experiments used.
pub async fn search_datasets(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Params(req): Params<SearchDatasetsReq>,
) -> Reply {
    let ids = crate::api::search::id_strings(&req.experiment_ids);
    if ids.is_empty() {
        return Err(DomainError::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        )
        .into());
    }
    if ids.len() > MAX_DATASET_EXPERIMENTS {
        return Err(DomainError::invalid(format!(
            "SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} experiment_ids. Received {} experiment_ids.",
            ids.len()
        ))
        .into());
    }
    let ids = ids
        .iter()
        .map(|s| experiment_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    let found = st
        .svc
        .store
        .search_datasets(ws.id, &ids, MAX_DATASET_SUMMARIES)
        .await?;
    let summaries: Vec<Value> = found
        .iter()
        .map(|d| {
            let mut v = json!({
                "experiment_id": d.experiment_id.to_string(),
                "name": d.name,
                "digest": d.digest,
            });
            if !d.context.is_empty() {
                v["context"] = json!(d.context);
            }
            v
        })
        .collect();
    Ok(Json(json!({ "dataset_summaries": summaries })))
}
