//! Environments as workspace assets: immutable `name:version` definitions (creating one whose
//! content equals the latest version answers that version), the built-in `atrium-mlflow`, and
//! the resolution of a job's environment reference into a pinned definition.

use atrium_environments::{BUILTIN_MLFLOW, Definition, EnvError};

use super::Service;
use crate::jobs::spec::{EnvironmentRef, InlineEnvironment, ResolvedEnvironment};
use crate::store::EnvironmentRow;
use crate::workspace::{DomainError, DomainResult, Millis, Workspace};

/// An environment version as the API and CLI show it.
#[derive(Debug, Clone)]
pub struct EnvironmentVersion {
    /// Name.
    pub name: String,
    /// Version.
    pub version: i64,
    /// What it holds.
    pub definition: Definition,
    /// Content hash (names its virtualenv on every machine).
    pub hash: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time (0 for the built-in).
    pub created_at: Millis,
    /// Who created it.
    pub created_by: Option<String>,
    /// Whether it is built into the host.
    pub builtin: bool,
}

impl EnvironmentVersion {
    /// `name:version`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }
}

fn builtin() -> EnvironmentVersion {
    let definition = atrium_environments::builtin_mlflow();
    EnvironmentVersion {
        name: BUILTIN_MLFLOW.into(),
        version: 1,
        hash: definition.hash(),
        definition,
        description: Some(format!(
            "built in: the MLflow client ({}) for command jobs that log with mlflow",
            atrium_environments::BUILTIN_MLFLOW_REQUIREMENT
        )),
        created_at: 0,
        created_by: None,
        builtin: true,
    }
}

fn from_row(r: EnvironmentRow) -> DomainResult<EnvironmentVersion> {
    let definition: Definition = serde_json::from_str(&r.definition)
        .map_err(|e| DomainError::Internal(format!("stored environment definition: {e}")))?;
    Ok(EnvironmentVersion {
        name: r.name,
        version: r.version,
        definition,
        hash: r.hash,
        description: r.description,
        created_at: r.created_at,
        created_by: r.created_by,
        builtin: false,
    })
}

/// A definition error as a domain error (a bad definition is the caller's).
pub fn env_error(e: EnvError) -> DomainError {
    match e {
        EnvError::Invalid(m) => DomainError::invalid(m),
        other => DomainError::Internal(other.to_string()),
    }
}

/// Checks an environment name: letters, digits, '-', '_', '.', starting with a letter or digit;
/// `atrium-` is reserved for built-ins.
pub fn check_environment_name(name: &str) -> DomainResult<()> {
    if !crate::workspace::validate::is_label(name, 128, b"-_.") {
        return Err(DomainError::invalid(format!(
            "invalid environment name '{name}': use letters, digits, '-', '_' and '.', starting with a letter or digit"
        )));
    }
    if name.starts_with("atrium-") {
        return Err(DomainError::invalid(format!(
            "environment names starting with 'atrium-' are reserved for built-in environments: '{name}'"
        )));
    }
    Ok(())
}

/// `name`, `name:N` or `name@latest` → (name, version; `None` for the latest).
pub fn parse_environment_ref(r: &str) -> DomainResult<(&str, Option<i64>)> {
    let r = r.trim();
    if let Some(name) = r.strip_suffix("@latest") {
        return Ok((name, None));
    }
    match r.rsplit_once(':') {
        Some((name, v)) => {
            let v: i64 = v.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                DomainError::invalid(format!(
                    "invalid environment reference '{r}': the version after ':' is a number from 1 (or use 'name' / 'name@latest' for the latest)"
                ))
            })?;
            Ok((name, Some(v)))
        }
        None => Ok((r, None)),
    }
}

impl Service {
    /// Creates the next version of an environment, unless its content equals the latest
    /// version's: then that version is answered. Returns the version and whether it is new.
    pub async fn create_environment(
        &self,
        ws: &Workspace,
        name: &str,
        definition: Definition,
        description: Option<String>,
        actor: Option<&str>,
    ) -> DomainResult<(EnvironmentVersion, bool)> {
        check_environment_name(name)?;
        if description.as_ref().is_some_and(|d| d.len() > 4096) {
            return Err(DomainError::invalid(
                "an environment's description has at most 4096 bytes",
            ));
        }
        let hash = definition.hash();
        match self.store.environment(ws.id, name, None).await {
            Ok(latest) if latest.hash == hash => return Ok((from_row(latest)?, false)),
            Ok(_) | Err(DomainError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let row = EnvironmentRow {
            name: name.to_string(),
            version: 0,
            definition: serde_json::to_string(&definition)
                .map_err(|e| DomainError::Internal(e.to_string()))?,
            hash,
            description,
            created_at: 0,
            created_by: actor.map(str::to_string),
        };
        let stored = self.store.add_environment_version(ws.id, &row).await?;
        Ok((from_row(stored)?, true))
    }

    /// An environment version (`None`: the latest), the built-in ones included.
    pub async fn environment_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: Option<i64>,
    ) -> DomainResult<EnvironmentVersion> {
        if name == BUILTIN_MLFLOW {
            return match version {
                None | Some(1) => Ok(builtin()),
                Some(v) => Err(DomainError::NotFound(format!(
                    "environment {name}:{v} does not exist (the built-in has version 1)"
                ))),
            };
        }
        from_row(self.store.environment(ws.id, name, version).await?)
    }

    /// Every environment version of the workspace (one name's when given), the built-in first.
    pub async fn list_environments(
        &self,
        ws: &Workspace,
        name: Option<&str>,
    ) -> DomainResult<Vec<EnvironmentVersion>> {
        let mut out = Vec::new();
        if name.is_none_or(|n| n == BUILTIN_MLFLOW) {
            out.push(builtin());
        }
        for r in self.store.list_environments(ws.id, name).await? {
            out.push(from_row(r)?);
        }
        if let Some(n) = name
            && out.is_empty()
        {
            return Err(DomainError::NotFound(format!(
                "environment '{n}' does not exist"
            )));
        }
        Ok(out)
    }

    /// Pins a job's environment: a reference to its `name:version` and definition, an inline
    /// one to its checked definition. `file` is the text of the inline `requirements_file`
    /// (read from the code snapshot by the caller).
    pub async fn resolve_environment(
        &self,
        ws: &Workspace,
        r: &EnvironmentRef,
        file: Option<&str>,
    ) -> DomainResult<ResolvedEnvironment> {
        match r {
            EnvironmentRef::Named(text) => {
                let (name, version) = parse_environment_ref(text)?;
                let v = self.environment_version(ws, name, version).await?;
                Ok(ResolvedEnvironment {
                    reference: Some(v.reference()),
                    hash: v.hash,
                    definition: v.definition,
                })
            }
            EnvironmentRef::Inline(inline) => {
                let definition = inline_definition(inline, file)?;
                Ok(ResolvedEnvironment {
                    reference: None,
                    hash: definition.hash(),
                    definition,
                })
            }
        }
    }
}

/// The definition of an inline environment: its `python` and `requirements`, plus those of
/// its requirements file (`pyproject.toml`: `requires-python` and `dependencies`; any other
/// name is read as a `requirements.txt`).
pub fn inline_definition(
    inline: &InlineEnvironment,
    file: Option<&str>,
) -> DomainResult<Definition> {
    let mut python = inline.python.clone();
    let mut reqs = inline.requirements.clone();
    if let (Some(path), Some(text)) = (&inline.requirements_file, file) {
        let from_file = if path.ends_with("pyproject.toml") {
            let (py, deps) = atrium_environments::pyproject(text).map_err(env_error)?;
            if python.is_none() {
                python = py;
            }
            deps
        } else {
            atrium_environments::requirements_txt(text).map_err(env_error)?
        };
        reqs.extend(from_file);
    }
    Definition::new(python, reqs).map_err(env_error)
}
