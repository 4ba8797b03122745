//! Python environments for jobs: what one is ([`definition`]: a Python request plus pinned
//! requirements, with a content hash) and where it lives on a machine ([`cache`]: virtualenvs
//! built by uv, once per hash). Knows no HTTP and no SQL; the host stores the versioned
//! workspace assets and passes definitions here.

pub mod cache;
pub mod definition;

pub use cache::{Cache, LogFn, Ready, find_uv};
pub use definition::{Definition, MAX_REQUIREMENTS, pyproject, requirements_txt};

/// The name of the built-in environment with the pinned MLflow client.
pub const BUILTIN_MLFLOW: &str = "atrium-mlflow";
/// The MLflow client the built-in environment pins (the version the compatibility suite runs).
pub const BUILTIN_MLFLOW_REQUIREMENT: &str = "mlflow-skinny==3.17.2";

/// The built-in `atrium-mlflow` environment (version 1): `mlflow-skinny`, pinned.
pub fn builtin_mlflow() -> Definition {
    Definition {
        python: Some(">=3.10".into()),
        requirements: vec![BUILTIN_MLFLOW_REQUIREMENT.into()],
    }
}

/// Why an environment could not be defined or built.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The definition is malformed.
    #[error("{0}")]
    Invalid(String),
    /// uv is not installed where the host looks.
    #[error("{0}")]
    UvMissing(String),
    /// uv refused or failed; the message is uv's own.
    #[error("{step} failed:\n{message}")]
    Build {
        /// What was being done.
        step: &'static str,
        /// uv's last lines.
        message: String,
    },
    /// The build was canceled.
    #[error("canceled while preparing the environment")]
    Canceled,
    /// A file-system error.
    #[error("{0}")]
    Io(String),
}
