//! The job spec: a train job (native Candle), a command job (any script under tracking), a
//! hyperparameter sweep over train trials, or an AutoML search.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sweep::{AutomlSpec, SweepSpec};
use crate::train::TrainSpec;
use crate::workspace::DomainError;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Train a model on a dataset with Candle.
    Train,
    /// Run a command on a code snapshot.
    Command,
    /// A hyperparameter sweep: trials of a train template proposed by a sampler plugin.
    Sweep,
    /// AutoML: a sweep over model families and their hyperparameters.
    Automl,
    /// Batch scoring: a dataset version in, a scored dataset version out.
    #[serde(rename = "batch-score")]
    BatchScore,
    /// A pipeline run: its steps run as child jobs (submitted with `atrium pipeline submit`).
    Pipeline,
}

impl JobKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Train => "train",
            JobKind::Command => "command",
            JobKind::Sweep => "sweep",
            JobKind::Automl => "automl",
            JobKind::BatchScore => "batch-score",
            JobKind::Pipeline => "pipeline",
        }
    }
}

/// A file of a command job's code snapshot (stored content-addressed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Path relative to the code directory.
    pub path: String,
    /// sha256.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the file is executable.
    #[serde(default)]
    pub executable: bool,
}

/// A command job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Shell command line, run with `sh -c` in the code snapshot.
    pub command: String,
    /// Environment variables passed to it (nothing else of the host's environment is, but PATH).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets of the workspace to pass as environment variables of the same names (resolved
    /// when the command starts; they must exist at submission).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Kill the command after this many seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// The code snapshot (filled in by the host at submission).
    #[serde(default)]
    pub snapshot: Vec<SnapshotFile>,
    /// The environment it runs in, pinned (filled in by the host at submission from the job's
    /// `environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_environment: Option<ResolvedEnvironment>,
}

/// Which Python environment a command runs in: a workspace environment (`"name"` for its
/// latest version, `"name:3"`) or one defined inline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EnvironmentRef {
    /// A workspace environment by reference.
    Named(String),
    /// An inline definition.
    Inline(InlineEnvironment),
}

/// An environment defined inside a job spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineEnvironment {
    /// A Python version or constraint (`">=3.11"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// PEP 508 requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// A `requirements.txt` or `pyproject.toml` of the code snapshot, by its path there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_file: Option<String>,
}

impl<'de> Deserialize<'de> for EnvironmentRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EnvironmentRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an environment reference (\"name\" or \"name:version\") or a table { python, requirements, requirements_file }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EnvironmentRef::Named(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Self::Value, A::Error> {
                InlineEnvironment::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(EnvironmentRef::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

/// An environment as a job runs it: the definition, pinned at submission, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedEnvironment {
    /// `name:version` of a workspace (or built-in) environment; `None` for an inline one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The definition.
    pub definition: atrium_environments::Definition,
    /// Its content hash.
    pub hash: String,
}

impl ResolvedEnvironment {
    /// How logs and errors name it.
    pub fn label(&self) -> String {
        match &self.reference {
            Some(r) => format!("environment {r}"),
            None => format!("inline environment {}", &self.hash[..12]),
        }
    }
}

/// A job to submit (TOML, YAML or JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// What the job does.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// Display name (also the run's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Experiment of the job's run, by name (created if missing; default `Default`).
    #[serde(default)]
    pub experiment: Option<String>,
    /// How many times an attempt interrupted by a host restart is started again.
    #[serde(default)]
    pub retries: u32,
    /// The compute target: `local` (default: in the host process) or `local-process` (a
    /// worker process per job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<String>,
    /// The Python environment of a command job or of a command sweep's trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub environment: Option<EnvironmentRef>,
    /// The train part (for `type = "train"`).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub train: Option<TrainSpec>,
    /// The command part (for `type = "command"`).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub command: Option<CommandSpec>,
    /// The sweep part (for `type = "sweep"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub sweep: Option<SweepSpec>,
    /// The AutoML part (for `type = "automl"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub automl: Option<AutomlSpec>,
    /// The batch scoring part (for `type = "batch-score"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub batch_score: Option<super::batch::BatchScoreSpec>,
    /// The pipeline run (for `type = "pipeline"`; made by the pipeline service, pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub pipeline: Option<serde_json::Value>,
}

/// The language a spec is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

impl SpecFormat {
    /// The format a file name's extension names (`.toml`, `.yaml` / `.yml`, `.json`).
    pub fn from_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The format a media type names (`application/json`, `application/toml`,
    /// `application/yaml`, ...).
    pub fn from_media_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next()?.trim().to_ascii_lowercase();
        if ct.ends_with("json") {
            Some(Self::Json)
        } else if ct.ends_with("toml") {
            Some(Self::Toml)
        } else if ct.ends_with("yaml") || ct.ends_with("yml") {
            Some(Self::Yaml)
        } else {
            None
        }
    }

    /// Guesses from the text: JSON starts with `{`; otherwise the first line that is not blank,
    /// a comment or a YAML document marker decides: `[table]` or `key = value` is TOML, `key:`
    /// or `- item` YAML (TOML when nothing decides).
    pub fn sniff(text: &str) -> Self {
        if text.trim_start().starts_with('{') {
            return Self::Json;
        }
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line == "---" {
                continue;
            }
            if line.starts_with('[') || line.starts_with('"') && line.contains('=') {
                return Self::Toml;
            }
            if line.starts_with("- ") {
                return Self::Yaml;
            }
            let eq = line.find('=');
            let colon = line.find(':');
            return match (eq, colon) {
                (Some(e), Some(c)) if c < e => Self::Yaml,
                (Some(_), _) => Self::Toml,
                (None, Some(_)) => Self::Yaml,
                (None, None) => Self::Toml,
            };
        }
        Self::Toml
    }

    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Toml => "TOML",
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        }
    }
}

impl JobSpec {
    /// Parses TOML, YAML or JSON, the format guessed from the text ([`SpecFormat::sniff`]).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        Self::parse_as(text, SpecFormat::sniff(text))
    }

    /// Parses a spec in one format; one error, in that format's terms.
    pub fn parse_as(text: &str, format: SpecFormat) -> Result<Self, DomainError> {
        let bad = |e: String| {
            DomainError::invalid(format!("invalid job spec ({}): {e}", format.as_str()))
        };
        let spec: JobSpec = match format {
            SpecFormat::Json => serde_json::from_str(text).map_err(|e| bad(e.to_string()))?,
            SpecFormat::Toml => toml::from_str(text).map_err(|e| bad(e.to_string()))?,
            SpecFormat::Yaml => serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?,
        };
        spec.check()?;
        Ok(spec)
    }

    /// Parses a spec file's text: the format its extension names, else the guessed one.
    pub fn parse_file(name: &str, text: &str) -> Result<Self, DomainError> {
        Self::parse_as(
            text,
            SpecFormat::from_name(name).unwrap_or_else(|| SpecFormat::sniff(text)),
        )
    }

    /// Checks the parts match the type.
    pub fn check(&self) -> Result<(), DomainError> {
        let parts = [
            ("train", self.train.is_some(), JobKind::Train),
            ("command", self.command.is_some(), JobKind::Command),
            ("sweep", self.sweep.is_some(), JobKind::Sweep),
            ("automl", self.automl.is_some(), JobKind::Automl),
            (
                "batch_score",
                self.batch_score.is_some(),
                JobKind::BatchScore,
            ),
            ("pipeline", self.pipeline.is_some(), JobKind::Pipeline),
        ];
        let kind = self.kind.as_str();
        for (name, present, owner) in parts {
            if present && owner != self.kind {
                return Err(DomainError::invalid(format!(
                    "a {kind} job takes no [{name}] section"
                )));
            }
            if !present && owner == self.kind {
                return Err(DomainError::invalid(format!(
                    "a {kind} job needs a [{name}] section"
                )));
            }
        }
        if self.environment.is_some() && !self.runs_commands() {
            return Err(DomainError::invalid(format!(
                "a {kind} job takes no environment: environments are for command jobs and sweeps over a command template"
            )));
        }
        if let Some(s) = &self.sweep {
            s.check()?;
            if s.trial.get("environment").is_some() {
                return Err(DomainError::invalid(
                    "set the environment at the sweep's top level, not in its trial template",
                ));
            }
            let kind = s.trial.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if kind != "train" && kind != "command" {
                return Err(DomainError::invalid(format!(
                    "the trial template must be a train or a command job (type = \"train\" or \"command\"), got '{kind}'"
                )));
            }
            // the filled-in template is checked at submission, with a sampled trial
            return Ok(());
        }
        if let Some(a) = &self.automl {
            return a.check();
        }
        if let Some(b) = &self.batch_score {
            return b.check();
        }
        match (self.kind, &self.train, &self.command) {
            (JobKind::Train, Some(t), None) => t.check(),
            (JobKind::Command, None, Some(c)) => {
                if c.command.trim().is_empty() {
                    return Err(DomainError::invalid("command must not be empty"));
                }
                for name in &c.secrets {
                    crate::secrets::names::check_name(name)?;
                    crate::secrets::names::check_env_name(name)?;
                    if c.env.contains_key(name) {
                        return Err(DomainError::invalid(format!(
                            "'{name}' is both in env and in secrets; pass it once"
                        )));
                    }
                }
                if let Some(bad) = c
                    .env
                    .keys()
                    .find(|k| k.is_empty() || k.contains('=') || k.starts_with("MLFLOW_"))
                {
                    return Err(DomainError::invalid(format!(
                        "invalid environment variable name '{bad}'"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether it runs commands: a command job or a sweep over a command template.
    pub fn runs_commands(&self) -> bool {
        self.kind == JobKind::Command
            || self
                .sweep
                .as_ref()
                .is_some_and(|s| s.trial.get("type").and_then(|t| t.as_str()) == Some("command"))
    }

    /// Datasets the job reads (`name:version` as written).
    pub fn datasets(&self) -> Vec<String> {
        if let Some(b) = &self.batch_score {
            return vec![b.dataset.clone()];
        }
        if let Some(a) = &self.automl {
            return a.datasets();
        }
        if let Some(s) = &self.sweep {
            let train = s.trial.get("train");
            return ["dataset", "validation_dataset"]
                .iter()
                .filter_map(|k| train.and_then(|t| t.get(*k)).and_then(|v| v.as_str()))
                .filter(|v| !v.contains("${{"))
                .map(str::to_string)
                .collect();
        }
        match &self.train {
            Some(t) => std::iter::once(t.dataset.clone())
                .chain(t.validation_dataset.clone())
                .collect(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_yaml_json() {
        let toml = "type = \"train\"\nexperiment = \"iris\"\n[train]\ndataset = \"iris:1\"\ntarget = \"target\"\ntask = \"classification\"\n";
        let yaml = "type: train\nexperiment: iris\ntrain:\n  dataset: iris:1\n  target: target\n  task: classification\n";
        let json = r#"{"type": "train", "experiment": "iris", "train": {"dataset": "iris:1", "target": "target", "task": "classification"}}"#;
        let a = JobSpec::parse(toml).unwrap();
        assert_eq!(a, JobSpec::parse(yaml).unwrap());
        assert_eq!(a, JobSpec::parse(json).unwrap());
        assert_eq!(a.datasets(), vec!["iris:1".to_string()]);
    }

    #[test]
    fn one_error_in_the_format_of_the_file() {
        assert_eq!(SpecFormat::from_name("job.yml"), Some(SpecFormat::Yaml));
        assert_eq!(SpecFormat::from_name("a/b.TOML"), Some(SpecFormat::Toml));
        assert_eq!(SpecFormat::from_name("spec"), None);
        assert_eq!(
            SpecFormat::from_media_type("application/json; charset=utf-8"),
            Some(SpecFormat::Json)
        );
        assert_eq!(
            SpecFormat::sniff("# c\ntype = \"train\"\n"),
            SpecFormat::Toml
        );
        assert_eq!(SpecFormat::sniff("---\ntype: train\n"), SpecFormat::Yaml);
        assert_eq!(SpecFormat::sniff("[train]\n"), SpecFormat::Toml);
        assert_eq!(SpecFormat::sniff("name: a=b\n"), SpecFormat::Yaml);
        // a TOML typo: the TOML error alone, not a YAML one about the whole file
        let toml = "type = \"train\"\n[train]\ndataset = \"iris:1\ntarget = \"target\"\n";
        for e in [
            JobSpec::parse(toml).unwrap_err().to_string(),
            JobSpec::parse_file("job.toml", toml)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(e.starts_with("invalid job spec (TOML):"), "{e}");
            assert!(!e.contains("YAML"), "{e}");
        }
        // a YAML typo in a .yaml file: the YAML error
        let yaml = "type: train\ntrain:\n  dataset: iris:1\n   target: target\n";
        let e = JobSpec::parse_file("job.yaml", yaml)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid job spec (YAML):") && !e.contains("TOML"),
            "{e}"
        );
        // the extension wins over the guess
        let e = JobSpec::parse_file("job.json", "type = \"train\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid job spec (JSON):"), "{e}");
    }

    #[test]
    fn refuses_mismatched_parts() {
        assert!(
            JobSpec::parse("type = \"train\"\n")
                .unwrap_err()
                .to_string()
                .contains("[train]")
        );
        assert!(JobSpec::parse("type = \"command\"\n[command]\ncommand = \" \"\n").is_err());
        assert!(
            JobSpec::parse(
                "type = \"command\"\n[command]\ncommand = \"x\"\nenv = { MLFLOW_RUN_ID = \"1\" }\n"
            )
            .is_err()
        );
        assert!(JobSpec::parse("type = \"jump\"\n").is_err());
    }

    #[test]
    fn environments_by_name_or_inline_and_for_commands_only() {
        let cmd = |env: &str| {
            JobSpec::parse(&format!(
                "type = \"command\"\nenvironment = {env}\n[command]\ncommand = \"x\"\n"
            ))
        };
        assert_eq!(
            cmd("\"sk:2\"").unwrap().environment,
            Some(EnvironmentRef::Named("sk:2".into()))
        );
        let inline = cmd("{ python = \">=3.11\", requirements = [\"numpy\"] }").unwrap();
        assert_eq!(
            inline.environment,
            Some(EnvironmentRef::Inline(InlineEnvironment {
                python: Some(">=3.11".into()),
                requirements: vec!["numpy".into()],
                requirements_file: None,
            }))
        );
        let e = cmd("{ pyhton = \"3\" }").unwrap_err().to_string();
        assert!(e.contains("unknown field `pyhton`"), "{e}");
        let e = cmd("3").unwrap_err().to_string();
        assert!(e.contains("an environment reference"), "{e}");
        let e = JobSpec::parse(
            "type = \"train\"\nenvironment = \"sk\"\n[train]\ndataset = \"iris:1\"\ntarget = \"t\"\ntask = \"classification\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a train job takes no environment"), "{e}");
    }

    #[test]
    fn command_secrets_must_be_environment_names() {
        let spec = |secrets: &str, env: &str| {
            JobSpec::parse(&format!(
                "type = \"command\"\n[command]\ncommand = \"x\"\nsecrets = {secrets}\nenv = {env}\n"
            ))
        };
        spec("[\"API_TOKEN\"]", "{}").unwrap();
        for (secrets, env, needle) in [
            ("[\"db-password\"]", "{}", "environment variable"),
            ("[\"MLFLOW_RUN_ID\"]", "{}", "host sets"),
            ("[\"a/b\"]", "{}", "invalid secret name"),
            (
                "[\"TOKEN\"]",
                "{ TOKEN = \"x\" }",
                "both in env and in secrets",
            ),
        ] {
            let e = spec(secrets, env).unwrap_err().to_string();
            assert!(e.contains(needle), "{secrets}: {e}");
        }
    }
}
