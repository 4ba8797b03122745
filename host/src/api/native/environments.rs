//! Environment endpoints: create the next version (or answer the identical latest one), list,
//! a name's versions, one version.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::api::reply::Upserted;
use crate::auth::Principal;
use crate::service::EnvironmentVersion;
use crate::workspace::DomainError;

/// An environment version.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "EnvironmentVersion")]
pub struct EnvironmentJson {
    /// Name.
    name: String,
    /// 1, 2, …
    version: i64,
    /// `name:version`, how jobs name it.
    #[serde(rename = "ref")]
    reference: String,
    /// The Python version request (absent: the first Python found).
    #[serde(skip_serializing_if = "Option::is_none")]
    python: Option<String>,
    /// The requirements.
    requirements: Vec<String>,
    /// Content hash of the definition: equal hashes share one virtualenv per machine.
    hash: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Milliseconds since the epoch (0 for a built-in).
    created_at: i64,
    /// Who created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    /// Built into the host (not stored in the workspace).
    builtin: bool,
}

fn environment_json(v: EnvironmentVersion) -> EnvironmentJson {
    EnvironmentJson {
        reference: v.reference(),
        name: v.name,
        version: v.version,
        python: v.definition.python,
        requirements: v.definition.requirements,
        hash: v.hash,
        description: v.description,
        created_at: v.created_at,
        created_by: v.created_by,
        builtin: v.builtin,
    }
}

/// The body of `POST .../environments`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnvironmentReq {
    /// Name: letters, digits, '-', '_', '.'.
    name: String,
    /// A Python version or constraint (`>=3.11`).
    #[serde(default)]
    python: Option<String>,
    /// PEP 508 requirements.
    #[serde(default)]
    requirements: Vec<String>,
    /// The text of a `requirements.txt`, added to `requirements`.
    #[serde(default)]
    requirements_txt: Option<String>,
    /// The text of a `pyproject.toml`: its `dependencies`, and `requires-python` unless
    /// `python` is given.
    #[serde(default)]
    pyproject_toml: Option<String>,
    /// Description.
    #[serde(default)]
    description: Option<String>,
}

/// `POST .../environments`: 201 with a new version, 200 with the latest one when its content
/// is the same.
pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<NewEnvironmentReq>,
) -> Result<Upserted<EnvironmentJson>, ApiError> {
    if req.requirements_txt.is_some() && req.pyproject_toml.is_some() {
        return Err(
            DomainError::invalid("give requirements_txt or pyproject_toml, not both").into(),
        );
    }
    let inline = crate::jobs::spec::InlineEnvironment {
        python: req.python,
        requirements: req.requirements,
        requirements_file: match (&req.requirements_txt, &req.pyproject_toml) {
            (Some(_), _) => Some("requirements.txt".into()),
            (_, Some(_)) => Some("pyproject.toml".into()),
            _ => None,
        },
    };
    let file = req.requirements_txt.or(req.pyproject_toml);
    let def = crate::service::inline_definition(&inline, file.as_deref())?;
    let (v, created) = st
        .svc
        .create_environment(&ws, &req.name, def, req.description, Some(p.actor()))
        .await?;
    Ok(Upserted {
        created,
        body: environment_json(v),
    })
}

/// A list of environment versions.
#[derive(Serialize, JsonSchema)]
pub struct EnvironmentList {
    /// By name, then version; the built-in first.
    environments: Vec<EnvironmentJson>,
}

/// `GET .../environments`: every version of every environment.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
) -> Result<Json<EnvironmentList>, ApiError> {
    let all = st.svc.list_environments(&ws, None).await?;
    Ok(Json(EnvironmentList {
        environments: all.into_iter().map(environment_json).collect(),
    }))
}

/// `GET .../environments/{name}`: a name's versions.
pub async fn versions(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<EnvironmentList>, ApiError> {
    let all = st.svc.list_environments(&ws, Some(&name)).await?;
    Ok(Json(EnvironmentList {
        environments: all.into_iter().map(environment_json).collect(),
    }))
}

/// `GET .../environments/{name}/versions/{version}` (a number or `latest`).
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Result<Json<EnvironmentJson>, ApiError> {
    let v = if version == "latest" {
        None
    } else {
        Some(
            version
                .parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| {
                    DomainError::invalid(format!(
                        "invalid environment version '{version}': a number from 1, or 'latest'"
                    ))
                })?,
        )
    };
    Ok(Json(environment_json(
        st.svc.environment_version(&ws, &name, v).await?,
    )))
}
