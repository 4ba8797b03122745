//! Values passed between steps: what each is, its content hash (the cache key's view of it),
//! how a finished step's outputs are read from its run, and whether a cached value still exists.

use std::collections::BTreeMap;

use atrium_pipelines::Type;
use atrium_pipelines::spec::OutputDecl;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::service::Service;
use crate::store::{ArtifactOwner, JobRow};
use crate::train::spec::dataset_ref;
use crate::workspace::{DomainError, DomainResult, Workspace};

/// A value with its type and content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Val {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: Type,
    /// What a step is given: `name:version`, `runs:/<run>/model`, a scalar.
    pub value: Value,
    /// What the cache key sees: the bytes' digest for data, the value itself for scalars.
    pub content: String,
}

impl Val {
    /// A scalar (its content is its canonical JSON).
    pub fn scalar(ty: Type, value: Value) -> Self {
        let content = atrium_pipelines::key::canonical(&value);
        Val { ty, value, content }
    }
}

/// Outputs by name.
pub type Outputs = BTreeMap<String, Val>;

/// `name:version` (or `name` for the latest) → the pinned reference and its content.
pub async fn dataset_val(svc: &Service, ws: &Workspace, r: &str) -> DomainResult<Val> {
    let (name, version) = dataset_ref(r)?;
    let d = svc.store.dataset(ws.id, name, version).await?;
    Ok(Val {
        ty: Type::Dataset,
        value: Value::String(format!("{}:{}", d.name, d.version)),
        content: format!("dataset:{}", d.digest),
    })
}

/// The digest of a run's artifacts under `dir` (path and blob of each), `None` when there are none.
async fn tree_digest(svc: &Service, run_key: i64, dir: &str) -> DomainResult<Option<String>> {
    let files = svc
        .store
        .artifacts_under(ArtifactOwner::Run(run_key), dir)
        .await?;
    if files.is_empty() {
        return Ok(None);
    }
    let list: Vec<Value> = files
        .iter()
        .map(|f| {
            Value::String(format!(
                "{}={}",
                f.path.strip_prefix(dir).unwrap_or(&f.path),
                f.digest
            ))
        })
        .collect();
    Ok(Some(atrium_pipelines::key::digest(
        "atrium-tree/1",
        &Value::Array(list),
    )))
}

/// The content of a model reference: the digest of its files.
pub async fn model_val(svc: &Service, ws: &Workspace, uri: &str) -> DomainResult<Val> {
    let content = if let Some(rest) = uri.strip_prefix("runs:/") {
        let (run, path) = rest
            .split_once('/')
            .ok_or_else(|| DomainError::invalid(format!("'{uri}' is not runs:/<run>/<path>")))?;
        let r = svc.store.run_info(ws.id, run).await?;
        if r.lifecycle_stage != crate::workspace::LifecycleStage::Active {
            return Err(DomainError::NotFound(format!("run {run} is deleted")));
        }
        tree_digest(svc, r.key, &format!("{}/", path.trim_matches('/')))
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("{uri} holds no files")))?
    } else if uri.starts_with("models:/") {
        let v = crate::serving::model::resolve(svc, ws, uri).await?;
        format!("model-version:{}:{}", v.name, v.version)
    } else {
        return Err(DomainError::invalid(format!(
            "'{uri}' is not a model reference (runs:/<run>/<path> or models:/<name>/<version>)"
        )));
    };
    Ok(Val {
        ty: Type::Model,
        value: Value::String(uri.to_string()),
        content,
    })
}

/// Checks a value still exists as it was (a cache hit needs its outputs).
pub async fn still_exists(svc: &Service, ws: &Workspace, v: &Val) -> bool {
    let Some(s) = v.value.as_str() else {
        return v.ty.is_scalar();
    };
    match v.ty {
        Type::Dataset => dataset_val(svc, ws, s)
            .await
            .is_ok_and(|now| now.content == v.content),
        Type::Model => model_val(svc, ws, s)
            .await
            .is_ok_and(|now| now.content == v.content),
        Type::File | Type::Folder => artifact_val(svc, ws, v.ty, s)
            .await
            .is_ok_and(|now| now.content == v.content),
        _ => true,
    }
}

/// A file or folder of a run (`runs:/<run>/<path>`) and its content.
pub async fn artifact_val(svc: &Service, ws: &Workspace, ty: Type, uri: &str) -> DomainResult<Val> {
    let rest = uri
        .strip_prefix("runs:/")
        .ok_or_else(|| DomainError::invalid(format!("'{uri}' is not runs:/<run>/<path>")))?;
    let (run, path) = rest
        .split_once('/')
        .ok_or_else(|| DomainError::invalid(format!("'{uri}' is not runs:/<run>/<path>")))?;
    let r = svc.store.run_info(ws.id, run).await?;
    if r.lifecycle_stage != crate::workspace::LifecycleStage::Active {
        return Err(DomainError::NotFound(format!("run {run} is deleted")));
    }
    let content = if ty == Type::File {
        let a = svc
            .store
            .artifact(ArtifactOwner::Run(r.key), path)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("{uri} does not exist")))?;
        format!("file:{}", a.digest)
    } else {
        tree_digest(svc, r.key, &format!("{}/", path.trim_matches('/')))
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("{uri} holds no files")))?
    };
    Ok(Val {
        ty,
        value: Value::String(uri.to_string()),
        content,
    })
}

/// Parses a scalar output's text.
fn parse_scalar(ty: Type, text: &str) -> Result<Value, String> {
    let t = text.trim();
    match ty {
        Type::String => Ok(Value::String(text.trim_end_matches('\n').to_string())),
        Type::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err(format!("'{t}' is not a boolean")),
        },
        Type::Integer => t
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{t}' is not an integer")),
        _ => t
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(|| format!("'{t}' is not a number")),
    }
}

/// The outputs of a finished step's job that the pipeline uses.
pub struct Collect<'a> {
    /// The pipeline's name (default dataset names).
    pub pipeline: &'a str,
    /// The step.
    pub step: &'a str,
    /// Its kind.
    pub kind: atrium_pipelines::StepKind,
    /// A command step's declared outputs.
    pub declared: &'a BTreeMap<String, OutputDecl>,
    /// The outputs other steps or the pipeline read (a train step's metrics among them).
    pub used: Option<&'a BTreeMap<String, Type>>,
}

/// Reads a finished child job's outputs from its run.
pub async fn collect(
    svc: &Service,
    ws: &Workspace,
    c: &Collect<'_>,
    job: &JobRow,
) -> Result<Outputs, String> {
    use atrium_pipelines::StepKind;
    let run_id = job.run_id.clone().ok_or("the step's job has no run")?;
    let run = svc
        .store
        .run(ws.id, &run_id)
        .await
        .map_err(|e| e.to_string())?;
    let metric = |name: &str| {
        run.metrics.get(name).map(|p| p.value).ok_or_else(|| {
            format!(
                "step '{}' logged no metric '{name}' (it logged: {})",
                c.step,
                if run.metrics.is_empty() {
                    "none".to_string()
                } else {
                    run.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            )
        })
    };
    let num = |f: f64| {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    };
    let mut out = Outputs::new();
    match c.kind {
        StepKind::Train => {
            let uri = format!("runs:/{run_id}/model");
            out.insert(
                "model".into(),
                model_val(svc, ws, &uri).await.map_err(|e| e.to_string())?,
            );
            for (name, _) in c
                .used
                .into_iter()
                .flatten()
                .filter(|(n, _)| n.as_str() != "model")
            {
                out.insert(name.clone(), Val::scalar(Type::Number, num(metric(name)?)));
            }
        }
        StepKind::Command => {
            for (name, d) in c.declared {
                let path = format!("outputs/{name}");
                let art = svc
                    .store
                    .artifact(ArtifactOwner::Run(run.key), &path)
                    .await
                    .map_err(|e| e.to_string())?;
                let v = match d.ty {
                    t if t.is_scalar() => match art {
                        Some(a) => {
                            let ds = svc.store.datastore(a.datastore_id).await.map_err(|e| e.to_string())?;
                            let bytes = svc.read_bytes(&ds, &a.digest).await.map_err(|e| e.to_string())?;
                            let text = String::from_utf8_lossy(&bytes);
                            Val::scalar(t, parse_scalar(t, &text).map_err(|e| format!("output '{name}' ($ATRIUM_OUTPUTS/{name}): {e}"))?)
                        }
                        None => match run.metrics.get(name) {
                            Some(p) if matches!(t, Type::Number | Type::Integer) => Val::scalar(
                                t,
                                if t == Type::Integer { Value::from(p.value as i64) } else { num(p.value) },
                            ),
                            _ => {
                                return Err(format!(
                                    "step '{}' declared the output '{name}' but wrote no $ATRIUM_OUTPUTS/{name}{}",
                                    c.step,
                                    if matches!(t, Type::Number | Type::Integer) { " and logged no metric of that name" } else { "" }
                                ));
                            }
                        },
                    },
                    Type::File => {
                        if art.is_none() {
                            return Err(format!("step '{}' declared the file output '{name}' but wrote no $ATRIUM_OUTPUTS/{name}", c.step));
                        }
                        artifact_val(svc, ws, Type::File, &format!("runs:/{run_id}/{path}")).await.map_err(|e| e.to_string())?
                    }
                    Type::Folder | Type::Model => artifact_val(svc, ws, Type::Folder, &format!("runs:/{run_id}/{path}"))
                        .await
                        .map(|mut v| {
                            v.ty = d.ty;
                            v
                        })
                        .map_err(|_| format!("step '{}' declared the {} output '{name}' but wrote no directory $ATRIUM_OUTPUTS/{name}", c.step, d.ty.as_str()))?,
                    Type::Dataset => {
                        let a = art.ok_or_else(|| format!("step '{}' declared the dataset output '{name}' but wrote no CSV file $ATRIUM_OUTPUTS/{name}", c.step))?;
                        let ds_name = d.name.clone().unwrap_or_else(|| format!("{}-{}-{name}", c.pipeline, c.step));
                        // the same bytes as the latest version: that version, not a new one
                        if let Ok(latest) = svc.store.dataset(ws.id, &ds_name, None).await
                            && latest.digest == a.digest
                        {
                            dataset_val(svc, ws, &format!("{}:{}", latest.name, latest.version)).await.map_err(|e| e.to_string())?
                        } else {
                            let ds = svc.store.datastore(a.datastore_id).await.map_err(|e| e.to_string())?;
                            let bytes = svc.read_bytes(&ds, &a.digest).await.map_err(|e| e.to_string())?;
                            let row = svc
                                .create_dataset(ws, &ds_name, bytes)
                                .await
                                .map_err(|e| format!("output '{name}' is not a dataset: {e}"))?;
                            dataset_val(svc, ws, &format!("{}:{}", row.name, row.version)).await.map_err(|e| e.to_string())?
                        }
                    }
                    _ => unreachable!("every type is handled"),
                };
                out.insert(name.clone(), v);
            }
        }
        StepKind::Sweep | StepKind::Automl => {
            let text = svc
                .store
                .sweep_state(job.key)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the sweep left no state")?;
            let state: crate::sweep::SweepState =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let best = state.best().ok_or("the sweep has no finished trial")?;
            let best_run = best.run_id.clone().ok_or("the best trial has no run")?;
            out.insert(
                "best_run".into(),
                Val::scalar(Type::String, Value::String(best_run.clone())),
            );
            out.insert(
                "best_score".into(),
                Val::scalar(Type::Number, best.value.map(num).unwrap_or(Value::Null)),
            );
            if c.used.is_some_and(|u| u.contains_key("best_model")) {
                out.insert(
                    "best_model".into(),
                    model_val(svc, ws, &format!("runs:/{best_run}/model"))
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        StepKind::BatchScore => {
            let r = run
                .tags
                .get("atrium.output_dataset")
                .ok_or("the batch scoring job recorded no output dataset")?;
            out.insert(
                "scored".into(),
                dataset_val(svc, ws, r).await.map_err(|e| e.to_string())?,
            );
        }
        StepKind::RegisterModel | StepKind::Pipeline => {}
    }
    Ok(out)
}
