//! Where the CLI finds its server, workspace and API token, and the profile `atrium login`
//! saves. This is the one place the resolution order is defined (the README repeats it):
//!
//! - server: `--server` or `ATRIUM_SERVER`, else the profile's `default_server` (the last
//!   `atrium login`), else `http://127.0.0.1:8080`;
//! - workspace: `--workspace` or `ATRIUM_WORKSPACE`, else the workspace saved with the server's
//!   login (`atrium login -w NAME`), else `default`;
//! - token: `--token` or `ATRIUM_TOKEN`, else the file `ATRIUM_TOKEN_FILE` names, else the
//!   profile's token for the server, else `admin.token` in `ATRIUM_DATA_DIR` or `./atrium-data`
//!   (which `atrium serve` writes on first start).
//!
//! The profile is `$XDG_CONFIG_HOME/atrium/config.toml`, by default
//! `~/.config/atrium/config.toml`, written with mode 0600 in a 0700 directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CliError;

/// The server the CLI talks to when nothing names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The saved logins.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The server of the last login, used when no `--server` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<String>,
    /// One entry per server URL.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerLogin>,
}

/// A login on one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerLogin {
    /// The API token.
    pub token: String,
    /// The workspace to use there when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// A server URL as the profile keys it (no trailing `/`).
pub fn normalize(server: &str) -> String {
    server.trim().trim_end_matches('/').to_string()
}

/// The profile file: `$XDG_CONFIG_HOME/atrium/config.toml`, else `~/.config/atrium/config.toml`;
/// `None` when neither variable gives an absolute directory.
pub fn profile_path_from(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let abs = |v: Option<String>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    abs(env("XDG_CONFIG_HOME"))
        .or_else(|| abs(env("HOME")).map(|h| h.join(".config")))
        .map(|d| d.join("atrium").join("config.toml"))
}

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// The profile file of this process's environment.
pub fn profile_path() -> Option<PathBuf> {
    profile_path_from(&process_env)
}

impl Profile {
    /// Reads the profile (an empty one when the file does not exist).
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "cannot read the CLI profile {}: {e}",
                    path.display()
                )));
            }
        };
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} holds API tokens but others may read it (mode {:o}): chmod 600 it",
                path.display(),
                m.permissions().mode() & 0o777
            );
        }
        toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("invalid CLI profile {}: {e}", path.display())))
    }

    /// Writes the profile atomically with mode 0600 (its directory 0700 when created).
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let err = |e: std::io::Error| {
            CliError::Usage(format!(
                "cannot write the CLI profile {}: {e}",
                path.display()
            ))
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let text = format!(
            "# written by `atrium login`; holds API tokens: keep it private\n{}",
            toml::to_string(self).map_err(|e| err(std::io::Error::other(e)))?
        );
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        // an existing temporary file keeps its mode: make sure
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// What the command line gives (`None`: not given, neither as a flag nor in the environment).
#[derive(Debug, Default, Clone)]
pub struct Given {
    /// `--server` / `ATRIUM_SERVER`.
    pub server: Option<String>,
    /// `--workspace` / `ATRIUM_WORKSPACE`.
    pub workspace: Option<String>,
    /// `--token` / `ATRIUM_TOKEN`.
    pub token: Option<String>,
}

/// The resolved connection settings, with where the token came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Server URL.
    pub server: String,
    /// Workspace.
    pub workspace: String,
    /// The API token, if any source had one.
    pub token: Option<String>,
    /// Where the token came from (for messages).
    pub token_source: Option<String>,
    /// Every place looked at for a token, with what was found (for a 401 without a token).
    pub looked: Vec<String>,
    /// The profile file.
    pub profile_path: Option<PathBuf>,
}

fn read_token_file(p: &Path) -> Result<Option<String>, std::io::Error> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(t.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Resolves server, workspace and token in the documented order, from `given`, the
/// environment `env` and the profile at `profile_path`.
pub fn resolve_with(
    given: Given,
    env: &dyn Fn(&str) -> Option<String>,
    profile_path: Option<PathBuf>,
) -> Result<Resolved, CliError> {
    let profile = match &profile_path {
        Some(p) => Profile::load(p)?,
        None => Profile::default(),
    };
    let server = normalize(
        &given
            .server
            .clone()
            .or_else(|| profile.default_server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string()),
    );
    let login = profile.servers.get(&server);
    let workspace = given
        .workspace
        .clone()
        .or_else(|| login.and_then(|l| l.workspace.clone()))
        .unwrap_or_else(|| "default".to_string());
    let mut looked = Vec::new();
    let found = |token: String, source: String| (Some(token), Some(source));
    let (token, token_source) = 'found: {
        if let Some(t) = given.token.clone().filter(|t| !t.trim().is_empty()) {
            let source = if env("ATRIUM_TOKEN").as_deref() == Some(t.as_str()) {
                "ATRIUM_TOKEN"
            } else {
                "--token"
            };
            break 'found found(t, source.to_string());
        }
        looked.push("--token / ATRIUM_TOKEN: not given".to_string());
        if let Some(p) = env("ATRIUM_TOKEN_FILE") {
            let p = PathBuf::from(p);
            return match read_token_file(&p) {
                Ok(Some(t)) => Ok(Resolved {
                    server,
                    workspace,
                    token: Some(t),
                    token_source: Some(format!("ATRIUM_TOKEN_FILE {}", p.display())),
                    looked,
                    profile_path,
                }),
                Ok(None) => Err(CliError::Usage(format!(
                    "ATRIUM_TOKEN_FILE {} is missing or empty",
                    p.display()
                ))),
                Err(e) => Err(CliError::Usage(format!(
                    "cannot read ATRIUM_TOKEN_FILE {}: {e}",
                    p.display()
                ))),
            };
        }
        looked.push("ATRIUM_TOKEN_FILE: not set".to_string());
        match (&profile_path, login) {
            (Some(p), Some(l)) => {
                break 'found found(
                    l.token.clone(),
                    format!("the profile {} (login on {server})", p.display()),
                );
            }
            (Some(p), None) if p.exists() => {
                looked.push(format!("the profile {}: no login on {server}", p.display()))
            }
            (Some(p), None) => looked.push(format!(
                "the profile {}: no such file (`atrium login` writes it)",
                p.display()
            )),
            (None, _) => looked.push("the profile: no XDG_CONFIG_HOME or HOME".to_string()),
        }
        let (dir, how) = match env("ATRIUM_DATA_DIR") {
            Some(d) => (PathBuf::from(d), "ATRIUM_DATA_DIR"),
            None => (PathBuf::from("atrium-data"), "./atrium-data"),
        };
        let file = dir.join(crate::auth::bootstrap::TOKEN_FILE);
        let shown = std::path::absolute(&file).unwrap_or_else(|_| file.clone());
        match read_token_file(&file) {
            Ok(Some(t)) => break 'found found(t, format!("{} ({how})", shown.display())),
            Ok(None) => looked.push(format!("{} ({how}): not found", shown.display())),
            Err(e) => looked.push(format!("{} ({how}): {e}", shown.display())),
        }
        (None, None)
    };
    Ok(Resolved {
        server,
        workspace,
        token,
        token_source,
        looked,
        profile_path,
    })
}

/// [`resolve_with`] on this process's environment and profile.
pub fn resolve(given: Given) -> Result<Resolved, CliError> {
    resolve_with(given, &process_env, profile_path())
}

impl Resolved {
    /// The advice added to a 401: where the token came from, or everywhere the CLI looked.
    pub fn unauthenticated_hint(&self) -> String {
        let login = format!("atrium login --server {} --token TOKEN", self.server);
        match &self.token_source {
            Some(src) => format!(
                "the CLI sent the token from {src}; the server refused it. Use another token: `{login}`"
            ),
            None => format!(
                "the CLI found no API token. It looked at, in order:\n  {}\nSave one with `{login}` (or set ATRIUM_TOKEN)",
                self.looked.join("\n  ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn profile_path_follows_xdg_then_home() {
        let p = profile_path_from(&env_of(&[
            ("XDG_CONFIG_HOME", "/x".into()),
            ("HOME", "/h".into()),
        ]));
        assert_eq!(p, Some(PathBuf::from("/x/atrium/config.toml")));
        let p = profile_path_from(&env_of(&[
            ("XDG_CONFIG_HOME", "relative".into()),
            ("HOME", "/h".into()),
        ]));
        assert_eq!(p, Some(PathBuf::from("/h/.config/atrium/config.toml")));
        assert_eq!(profile_path_from(&env_of(&[])), None);
    }

    #[test]
    fn resolution_order_flag_env_file_profile_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let profile_file = dir.path().join("cfg/atrium/config.toml");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("admin.token"), "from-data-dir\n").unwrap();
        let token_file = dir.path().join("tok");
        std::fs::write(&token_file, "from-file\n").unwrap();
        let mut p = Profile {
            default_server: Some("http://saved:1".into()),
            ..Default::default()
        };
        p.servers.insert(
            "http://saved:1".into(),
            ServerLogin {
                token: "from-profile".into(),
                workspace: Some("team-a".into()),
            },
        );
        p.save(&profile_file).unwrap();
        let mode = std::fs::metadata(&profile_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Profile::load(&profile_file).unwrap(), p);

        let data_env = ("ATRIUM_DATA_DIR", data.display().to_string());
        let file_env = ("ATRIUM_TOKEN_FILE", token_file.display().to_string());
        let r = |given: Given, env: &[(&str, String)]| {
            resolve_with(given, &env_of(env), Some(profile_file.clone())).unwrap()
        };
        // the flag wins over everything
        let all = [file_env.clone(), data_env.clone()];
        let got = r(
            Given {
                token: Some("from-flag".into()),
                ..Default::default()
            },
            &all,
        );
        assert_eq!(got.token.as_deref(), Some("from-flag"));
        assert_eq!(got.token_source.as_deref(), Some("--token"));
        // then the token file, then the profile (server and workspace too), then the data dir
        assert_eq!(
            r(Given::default(), &all).token.as_deref(),
            Some("from-file")
        );
        let got = r(Given::default(), std::slice::from_ref(&data_env));
        assert_eq!(got.server, "http://saved:1");
        assert_eq!(got.workspace, "team-a");
        assert_eq!(got.token.as_deref(), Some("from-profile"));
        let other = Given {
            server: Some("http://other:2/".into()),
            ..Default::default()
        };
        let got = r(other.clone(), std::slice::from_ref(&data_env));
        assert_eq!(got.server, "http://other:2");
        assert_eq!(got.workspace, "default");
        assert_eq!(got.token.as_deref(), Some("from-data-dir"));
        // nothing anywhere: the hint lists every place looked at
        let got = r(
            other,
            &[(
                "ATRIUM_DATA_DIR",
                dir.path().join("none").display().to_string(),
            )],
        );
        assert!(got.token.is_none());
        let hint = got.unauthenticated_hint();
        for needle in [
            "--token / ATRIUM_TOKEN",
            "ATRIUM_TOKEN_FILE",
            "no login on http://other:2",
            "none/admin.token",
            "atrium login --server http://other:2",
        ] {
            assert!(hint.contains(needle), "{needle}: {hint}");
        }
    }
}
