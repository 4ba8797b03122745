//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/<path>`)
//! and the run-scoped artifact listing.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::error::MlflowError;
use crate::api::extract::{MlflowWs, QueryMap};
use crate::api::{AppState, artifact_response};
use crate::workspace::{ArtifactFile, DomainError, Workspace, validate};

type Reply = Result<Json<Value>, MlflowError>;

/// First segment of proxy paths that address a registered model version's own files:
/// `_registry/<name>/<version>/<path>`.
pub(crate) const REGISTRY_PREFIX: &str = "_registry";

/// Splits `_registry/<name>/<version>[/<path>]` into its parts; `None` for other paths.
fn split_registry_path(path: &str) -> Option<Result<(&str, i64, &str), DomainError>> {
    let rest = path
        .trim_matches('/')
        .strip_prefix(REGISTRY_PREFIX)?
        .strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let (name, version) = (parts.next()?, parts.next()?);
    Some(
        crate::workspace::registry::parse_version(version)
            .map(|v| (name, v, parts.next().unwrap_or(""))),
    )
}

/// The immediate children of a directory of a model version's files.
async fn list_registry(
    st: &AppState,
    ws: &Workspace,
    name: &str,
    version: i64,
    dir: &str,
) -> Result<Vec<ArtifactFile>, DomainError> {
    st.tracking
        .store
        .model_version(ws.id, name, version)
        .await?;
    let dir = dir.trim_matches('/');
    let base = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut out: std::collections::BTreeMap<String, ArtifactFile> = Default::default();
    for f in st.tracking.store.model_files(ws.id, name, version).await? {
        let Some(rest) = f.path.strip_prefix(&base) else {
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
                    f.path.clone(),
                    ArtifactFile {
                        path: f.path,
                        is_dir: false,
                        size: Some(f.size as u64),
                        digest: Some(f.digest),
                    },
                );
            }
        }
    }
    Ok(out.into_values().collect())
}

fn read_only(path: &str) -> DomainError {
    DomainError::InvalidState(format!(
        "'{path}' belongs to a registered model version, whose files are read-only"
    ))
}

/// Splits `<exp>/<run>/artifacts[/<rest>]` into the run id and the path inside the run.
fn split_proxy_path(path: &str) -> Result<(&str, &str, &str), DomainError> {
    let path = path.trim_matches('/');
    let mut parts = path.splitn(4, '/');
    let (exp, run, marker) = (parts.next(), parts.next(), parts.next());
    match (exp, run, marker) {
        (Some(exp), Some(run), Some("artifacts")) => {
            validate::run_id(run)?;
            Ok((exp, run, parts.next().unwrap_or("")))
        }
        _ => Err(DomainError::NotFound(format!(
            "artifact path '{path}' is not of the form <experiment>/<run>/artifacts/<path>"
        ))),
    }
}

async fn check_experiment(
    st: &AppState,
    ws: &Workspace,
    exp: &str,
    run: &str,
) -> Result<(), DomainError> {
    let info = st.tracking.store.run_info(ws.id, run).await?;
    if info.experiment_id.to_string() != exp {
        return Err(DomainError::NotFound(format!(
            "run '{run}' is not in experiment '{exp}'"
        )));
    }
    Ok(())
}

fn file_json(f: &ArtifactFile, strip: usize) -> Value {
    let mut v = json!({ "path": &f.path[strip..], "is_dir": f.is_dir });
    if let Some(size) = f.size {
        v["file_size"] = json!(size);
    }
    v
}

pub async fn list(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let path = q.get("path").unwrap_or("");
    if path.trim_matches('/').is_empty() {
        return Ok(Json(json!({})));
    }
    if let Some(reg) = split_registry_path(path) {
        let (name, version, dir) = reg?;
        let files = list_registry(&st, &ws, name, version, dir).await?;
        let strip = if dir.trim_matches('/').is_empty() {
            0
        } else {
            dir.trim_matches('/').len() + 1
        };
        return Ok(Json(
            json!({ "files": files.iter().map(|f| file_json(f, strip)).collect::<Vec<_>>() }),
        ));
    }
    let (exp, run, dir) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, run).await?;
    let files = st.tracking.list_artifacts(&ws, run, dir).await?;
    let strip = if dir.trim_matches('/').is_empty() {
        0
    } else {
        dir.trim_matches('/').len() + 1
    };
    Ok(Json(
        json!({ "files": files.iter().map(|f| file_json(f, strip)).collect::<Vec<_>>() }),
    ))
}

pub async fn download(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
) -> Result<Response, MlflowError> {
    let path = wildcard(&p);
    if let Some(reg) = split_registry_path(path) {
        let (name, version, rel) = reg?;
        let (file, reader) = st
            .tracking
            .open_model_version_file(&ws, name, version, rel)
            .await?;
        return Ok(artifact_response(&file, reader));
    }
    let (exp, run, rel) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, run).await?;
    let (file, reader) = st.tracking.open_artifact(&ws, run, rel).await?;
    Ok(artifact_response(&file, reader))
}

pub async fn upload(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    body: Body,
) -> Reply {
    let path = wildcard(&p);
    if split_registry_path(path).is_some() {
        return Err(read_only(path).into());
    }
    let (exp, run, rel) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, run).await?;
    st.tracking
        .upload_artifact(&ws, run, rel, body.into_data_stream())
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
) -> Reply {
    let path = wildcard(&p);
    if split_registry_path(path).is_some() {
        return Err(read_only(path).into());
    }
    let (exp, run, rel) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, run).await?;
    st.tracking.delete_artifact(&ws, run, rel).await?;
    Ok(Json(json!({})))
}

fn wildcard(params: &[(String, String)]) -> &str {
    params
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// `GET /api/2.0/mlflow/artifacts/list?run_id=..&path=..`: paths relative to the run's root.
pub async fn list_for_run(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
) -> Reply {
    let run_id = q
        .get("run_id")
        .or(q.get("run_uuid"))
        .ok_or_else(|| DomainError::invalid("missing value for required parameter 'run_id'"))?;
    validate::run_id(run_id)?;
    let run = st.tracking.store.run_info(ws.id, run_id).await?;
    let files = st
        .tracking
        .list_artifacts(&ws, run_id, q.get("path").unwrap_or(""))
        .await?;
    Ok(Json(json!({
        "root_uri": run.artifact_uri,
        "files": files.iter().map(|f| file_json(f, 0)).collect::<Vec<_>>(),
    })))
}

/// MLflow 3's logged-model search, which the client calls while listing artifacts. Atrium keeps
/// models in its own registry, so no MLflow logged models ever exist here.
pub async fn search_logged_models(MlflowWs(_ws): MlflowWs) -> Reply {
    Ok(Json(json!({ "models": [] })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths() {
        let run = "0123456789abcdef0123456789abcdef";
        let p = format!("1/{run}/artifacts/dir/a.txt");
        assert_eq!(split_proxy_path(&p).unwrap(), ("1", run, "dir/a.txt"));
        let p = format!("1/{run}/artifacts");
        assert_eq!(split_proxy_path(&p).unwrap(), ("1", run, ""));
        assert!(split_proxy_path("1/x/artifacts/a").is_err());
        assert!(split_proxy_path(&format!("1/{run}/other/a")).is_err());
    }

    #[test]
    fn registry_paths() {
        assert_eq!(
            split_registry_path("_registry/iris/3/model.json").map(Result::unwrap),
            Some(("iris", 3, "model.json"))
        );
        assert_eq!(
            split_registry_path("_registry/iris/3").map(Result::unwrap),
            Some(("iris", 3, ""))
        );
        assert!(split_registry_path("_registry/iris/x/a").unwrap().is_err());
        assert!(split_registry_path("1/abc/artifacts/a").is_none());
    }
}
