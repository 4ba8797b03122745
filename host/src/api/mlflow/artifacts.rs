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
use crate::service::ArtifactScope;
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
    st.svc.store.model_version(ws.id, name, version).await?;
    let files = st.svc.store.model_files(ws.id, name, version).await?;
    Ok(ArtifactFile::one_level(
        dir.trim_matches('/'),
        files.into_iter().map(|f| (f.path, f.size as u64, f.digest)),
    ))
}

fn read_only(path: &str) -> DomainError {
    DomainError::InvalidState(format!(
        "'{path}' belongs to a registered model version, whose files are read-only"
    ))
}

/// Splits `<exp>/<run>/artifacts[/<rest>]` (a run's files) or
/// `<exp>/models/<model>/artifacts[/<rest>]` (a logged model's) into the experiment, the owner
/// and the path inside it.
fn split_proxy_path(path: &str) -> Result<(&str, ArtifactScope<'_>, &str), DomainError> {
    let path = path.trim_matches('/');
    let bad = || {
        DomainError::NotFound(format!(
            "artifact path '{path}' is not of the form <experiment>/<run>/artifacts/<path> \
             or <experiment>/models/<model>/artifacts/<path>"
        ))
    };
    let mut parts = path.splitn(5, '/');
    // (for a run, the fourth and fifth pieces are re-joined below)
    let (exp, second) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    if second == "models" {
        let (model, marker) = (parts.next().ok_or_else(bad)?, parts.next());
        if marker != Some("artifacts") {
            return Err(bad());
        }
        crate::workspace::logged_model::check_model_id(model)?;
        return Ok((exp, ArtifactScope::Model(model), parts.next().unwrap_or("")));
    }
    if parts.next() != Some("artifacts") {
        return Err(bad());
    }
    validate::run_id(second)?;
    // everything after `<exp>/<run>/artifacts/`
    let head = exp.len() + second.len() + "artifacts".len() + 2;
    let rest = path.get(head..).unwrap_or("").trim_start_matches('/');
    Ok((exp, ArtifactScope::Run(second), rest))
}

async fn check_experiment(
    st: &AppState,
    ws: &Workspace,
    exp: &str,
    scope: ArtifactScope<'_>,
) -> Result<(), DomainError> {
    let experiment_id = match scope {
        ArtifactScope::Run(run) => st.svc.store.run_info(ws.id, run).await?.experiment_id,
        ArtifactScope::Model(m) => {
            st.svc
                .store
                .logged_model(ws.id, m, true)
                .await?
                .experiment_id
        }
    };
    if experiment_id.to_string() != exp {
        return Err(DomainError::NotFound(format!(
            "'{}' is not in experiment '{exp}'",
            match scope {
                ArtifactScope::Run(r) => r,
                ArtifactScope::Model(m) => m,
            }
        )));
    }
    Ok(())
}

pub(crate) fn file_json(f: &ArtifactFile, strip: usize) -> Value {
    let mut v = json!({ "path": &f.path[strip..], "is_dir": f.is_dir });
    if let Some(size) = f.size {
        v["file_size"] = json!(size);
    }
    v
}

pub async fn list(State(st): State<AppState>, MlflowWs(ws): MlflowWs, q: QueryMap) -> Reply {
    let path = client_path(q.get("path").unwrap_or(""))?;
    let path = path.as_str();
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
    let (exp, owner, dir) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, owner).await?;
    let files = st.svc.list_artifacts(&ws, owner, dir).await?;
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
    headers: axum::http::HeaderMap,
) -> Result<Response, MlflowError> {
    let range = headers
        .get(axum::http::header::RANGE)
        .map(|v| crate::service::ByteRange::parse(v.to_str().unwrap_or("")))
        .transpose()?;
    let path = client_path(wildcard(&p))?;
    let path = path.as_str();
    if let Some(reg) = split_registry_path(path) {
        let (name, version, rel) = reg?;
        let (file, reader) = st
            .svc
            .open_model_version_file(&ws, name, version, rel)
            .await?;
        return Ok(artifact_response(&file, reader));
    }
    let (exp, owner, rel) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, owner).await?;
    let (file, reader, span) = st.svc.open_artifact_range(&ws, owner, rel, range).await?;
    Ok(crate::api::ranged_artifact_response(&file, reader, span))
}

pub async fn upload(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
    body: Body,
) -> Reply {
    let path = client_path(wildcard(&p))?;
    let path = path.as_str();
    if split_registry_path(path).is_some() {
        return Err(read_only(path).into());
    }
    let (exp, owner, rel) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, owner).await?;
    st.svc
        .upload_artifact(&ws, owner, rel, body.into_data_stream())
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    Path(p): Path<Vec<(String, String)>>,
) -> Reply {
    let path = client_path(wildcard(&p))?;
    let path = path.as_str();
    if split_registry_path(path).is_some() {
        return Err(read_only(path).into());
    }
    let (exp, owner, rel) = split_proxy_path(path)?;
    check_experiment(&st, &ws, exp, owner).await?;
    st.svc.delete_artifact(&ws, owner, rel).await?;
    Ok(Json(json!({})))
}

fn wildcard(params: &[(String, String)]) -> &str {
    params
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// An artifact path from an MLflow client, normalized: `.` and empty segments dropped (`"."` is
/// the root, as `download_artifacts(run_id, ".")` sends it); `..` refused with MLflow's error.
pub(crate) fn client_path(path: &str) -> Result<String, DomainError> {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(DomainError::invalid("Invalid path")),
            s if s.contains('\\') || s.contains('\0') => {
                return Err(DomainError::invalid("Invalid path"));
            }
            s => out.push(s),
        }
    }
    Ok(out.join("/"))
}

fn run_of(q: &QueryMap) -> Result<&str, DomainError> {
    let run_id = q
        .get("run_id")
        .or(q.get("run_uuid"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::api::wire::missing("run_id"))?;
    validate::run_id(run_id)?;
    Ok(run_id)
}

/// `GET /get-artifact?run_id=..&path=..` (MLflow's UI route): one file of a run.
pub async fn get_artifact(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
) -> Result<Response, MlflowError> {
    let run_id = run_of(&q)?;
    let path = client_path(q.require("path")?)?;
    let (file, reader) = st.svc.open_artifact(&ws, run_id, &path).await?;
    Ok(artifact_response(&file, reader))
}

/// `GET /model-versions/get-artifact?name=..&version=..&path=..` (MLflow's UI route): one file
/// of a registered model version.
pub async fn get_model_version_artifact(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
) -> Result<Response, MlflowError> {
    let name = q.require("name")?;
    let version = crate::workspace::registry::parse_version(q.require("version")?)?;
    let path = client_path(q.require("path")?)?;
    let (file, reader) = st
        .svc
        .open_model_version_file(&ws, name, version, &path)
        .await?;
    Ok(artifact_response(&file, reader))
}

/// `POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=..&path=..` (MLflow's UI route): the body
/// becomes the run's artifact at `path`.
pub async fn upload_artifact(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
    body: Body,
) -> Reply {
    let run_id = q
        .get("run_uuid")
        .or(q.get("run_id"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DomainError::invalid("Request must specify run_uuid."))?;
    let path = q
        .get("path")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DomainError::invalid("Request must specify path."))?;
    let path = client_path(path)?;
    validate::run_id(run_id)?;
    let bytes = axum::body::to_bytes(body, crate::api::MAX_JSON_BODY)
        .await
        .map_err(|e| DomainError::Malformed(format!("cannot read request body: {e}")))?;
    if bytes.is_empty() {
        return Err(DomainError::invalid("Request must specify data.").into());
    }
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
    st.svc.upload_artifact(&ws, run_id, &path, stream).await?;
    Ok(Json(json!({})))
}

/// `GET /api/2.0/mlflow/artifacts/list?run_id=..&path=..`: paths relative to the run's root.
pub async fn list_for_run(
    State(st): State<AppState>,
    MlflowWs(ws): MlflowWs,
    q: QueryMap,
) -> Reply {
    let run_id = run_of(&q)?;
    let dir = client_path(q.get("path").unwrap_or(""))?;
    let run = st.svc.store.run_info(ws.id, run_id).await?;
    let files = st.svc.list_artifacts(&ws, run_id, &dir).await?;
    Ok(Json(json!({
        "root_uri": run.artifact_uri,
        "files": files.iter().map(|f| file_json(f, 0)).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths() {
        let run = "0123456789abcdef0123456789abcdef";
        let p = format!("1/{run}/artifacts/dir/a.txt");
        assert_eq!(
            split_proxy_path(&p).unwrap(),
            ("1", ArtifactScope::Run(run), "dir/a.txt")
        );
        let p = format!("1/{run}/artifacts");
        assert_eq!(
            split_proxy_path(&p).unwrap(),
            ("1", ArtifactScope::Run(run), "")
        );
        let m = "m-0123456789abcdef0123456789abcdef";
        let p = format!("1/models/{m}/artifacts/MLmodel");
        assert_eq!(
            split_proxy_path(&p).unwrap(),
            ("1", ArtifactScope::Model(m), "MLmodel")
        );
        assert!(split_proxy_path("1/models/m-1/artifacts/a").is_err());
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
