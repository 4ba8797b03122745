//! A component's manifest: its kind and the capabilities and limits it asks for.
//!
//! A capability is effective only if the manifest requests it *and* the operator grants it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Kind;

/// Largest component accepted for upload.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// What an uploaded component declares about itself (`plugin.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin kind (its world).
    pub kind: Kind,
    /// Informational name (the registry name is the upload's path).
    #[serde(default)]
    pub name: Option<String>,
    /// Informational version.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Capabilities requested.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Limits requested (capped by the host's).
    #[serde(default)]
    pub limits: Limits,
}

/// Capabilities a component asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Directories to be mounted (the operator chooses the host directory).
    #[serde(default)]
    pub dirs: Vec<DirRequest>,
    /// Hosts to call over HTTP (storage and target kinds); `"*"`: whichever hosts the
    /// operator grants (a plugin for engines anywhere, such as a Slurm or Ray target).
    #[serde(default)]
    pub http: Vec<String>,
    /// Secret names to read; `"*"`: whichever secrets the operator grants.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Config keys to read.
    #[serde(default)]
    pub config: Vec<String>,
}

/// A directory the component wants mounted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirRequest {
    /// Where the guest sees it (e.g. `/data`).
    pub guest: String,
    /// Whether it needs to write.
    #[serde(default)]
    pub write: bool,
}

/// Resource limits a component asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Deadline of one call in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML/JSON of the expected shape.
    #[error("invalid manifest: {0}")]
    Parse(String),
    /// A value breaks a rule.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Parses a manifest from TOML (or JSON, when it starts with `{`).
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let m: Manifest = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?
        };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), ManifestError> {
        for d in &self.capabilities.dirs {
            if !d.guest.starts_with('/') || d.guest.split('/').any(|s| s == "..") {
                return Err(ManifestError::Invalid(format!(
                    "dir '{}' must be an absolute guest path",
                    d.guest
                )));
            }
        }
        if !self.capabilities.http.is_empty() && !self.kind.may_use_http() {
            return Err(ManifestError::Invalid(format!(
                "{} plugins cannot use outbound HTTP",
                self.kind
            )));
        }
        if !self.capabilities.secrets.is_empty() && !self.kind.atrium_imports().contains(&"secrets")
        {
            return Err(ManifestError::Invalid(format!(
                "{} plugins cannot read secrets",
                self.kind
            )));
        }
        if self.limits.memory_mb == Some(0) || self.limits.timeout_ms == Some(0) {
            return Err(ManifestError::Invalid("limits must be positive".into()));
        }
        Ok(())
    }
}

/// What the operator grants one instance (a datastore, a deployment...): the host side of each
/// capability. Only what the manifest also requests takes effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Grants {
    /// Guest path → host directory.
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
    /// Hosts (`name` or `name:port`) the plugin may call.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether granted hosts may resolve to loopback, private or link-local addresses.
    #[serde(default)]
    pub http_private: bool,
    /// Secret names the plugin may read.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Config values.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// In a manifest's `http` or `secrets`: whatever the operator grants.
pub const ANY: &str = "*";

/// The capabilities in effect: the intersection of requested and granted.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    /// (host dir, guest path, writable).
    pub dirs: Vec<(String, String, bool)>,
    /// Hosts callable over HTTP.
    pub http: Vec<String>,
    /// Whether granted hosts may be private addresses.
    pub http_private: bool,
    /// Readable secret names.
    pub secrets: Vec<String>,
    /// Readable config.
    pub config: BTreeMap<String, String>,
}

impl Effective {
    /// Intersects a manifest's requests with the operator's grants.
    pub fn of(m: &Manifest, g: &Grants) -> Self {
        let caps = &m.capabilities;
        Effective {
            dirs: caps
                .dirs
                .iter()
                .filter_map(|d| {
                    g.dirs
                        .get(&d.guest)
                        .map(|host| (host.clone(), d.guest.clone(), d.write))
                })
                .collect(),
            http: if caps.http.iter().any(|h| h == ANY) {
                g.http.clone()
            } else {
                caps.http
                    .iter()
                    .filter(|h| g.http.contains(h))
                    .cloned()
                    .collect()
            },
            http_private: g.http_private,
            secrets: if caps.secrets.iter().any(|s| s == ANY) {
                g.secrets.clone()
            } else {
                caps.secrets
                    .iter()
                    .filter(|s| g.secrets.contains(s))
                    .cloned()
                    .collect()
            },
            config: g
                .config
                .iter()
                .filter(|(k, _)| caps.config.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_intersects() {
        let m = Manifest::parse(
            "kind = \"storage\"\n[capabilities]\ndirs = [{ guest = \"/data\", write = true }]\nsecrets = [\"key\"]\nconfig = [\"root\"]\nhttp = [\"s3.local\"]\n",
        )
        .unwrap();
        let g = Grants {
            dirs: [("/data".to_string(), "/srv/x".to_string())].into(),
            secrets: vec!["other".into()],
            config: [
                ("root".to_string(), "/data".to_string()),
                ("extra".to_string(), "x".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let e = Effective::of(&m, &g);
        assert_eq!(
            e.dirs,
            vec![("/srv/x".to_string(), "/data".to_string(), true)]
        );
        assert!(
            e.secrets.is_empty(),
            "granted but not requested, or requested but not granted: nothing"
        );
        assert!(e.http.is_empty());
        assert_eq!(e.config.len(), 1);
    }

    #[test]
    fn refuses_bad_manifests() {
        assert!(Manifest::parse("kind = \"nope\"").is_err());
        assert!(Manifest::parse("kind = \"sampler\"\n[capabilities]\nhttp = [\"x\"]").is_err());
        assert!(Manifest::parse("kind = \"stopper\"\n[capabilities]\nsecrets = [\"x\"]").is_err());
        assert!(Manifest::parse("kind = \"storage\"\nbogus = 1").is_err());
        assert!(Manifest::parse("{\"kind\": \"stopper\"}").is_ok());
    }

    #[test]
    fn a_wildcard_takes_what_is_granted() {
        let m = Manifest::parse(
            "kind = \"target\"\n[capabilities]\nhttp = [\"*\"]\nsecrets = [\"*\"]\n",
        )
        .unwrap();
        let g = Grants {
            http: vec!["127.0.0.1:6820".into()],
            secrets: vec!["slurm-key".into()],
            ..Default::default()
        };
        let e = Effective::of(&m, &g);
        assert_eq!(e.http, vec!["127.0.0.1:6820".to_string()]);
        assert_eq!(e.secrets, vec!["slurm-key".to_string()]);
        assert!(Effective::of(&m, &Grants::default()).http.is_empty());
    }
}
