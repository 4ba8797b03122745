//! Server configuration: CLI flags, then environment variables, then an optional TOML file,
//! then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::secrets::KeySource;
use crate::store::SqliteSync;

/// Errors in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for our keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The listen address does not parse.
    #[error("invalid listen address '{0}': expected HOST:PORT such as 127.0.0.1:8080")]
    Listen(String),
}

/// Server settings as flags and env vars give them (unset: not given).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of: data_dir, listen, database_url, sqlite_sync, job_slots,
    /// threads_per_slot, master_key_file, cache_dir, uv.
    #[arg(long, env = "ATRIUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and the local datastores [default: ./atrium-data].
    #[arg(long, env = "ATRIUM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "ATRIUM_LISTEN")]
    pub listen: Option<String>,
    /// Metadata database: postgres://... for PostgreSQL [default: SQLite in the data dir].
    #[arg(long, env = "ATRIUM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// SQLite commit durability [default: full].
    #[arg(long, env = "ATRIUM_SQLITE_SYNC", value_enum)]
    pub sqlite_sync: Option<SqliteSync>,
    /// Jobs the local compute target runs at once [default: 1].
    #[arg(long, env = "ATRIUM_JOB_SLOTS")]
    pub job_slots: Option<usize>,
    /// Threads each running job may use [default: cores / job slots].
    #[arg(long, env = "ATRIUM_THREADS_PER_SLOT")]
    pub threads_per_slot: Option<usize>,
    /// File holding the master key that seals secrets (base64) [default: DATA_DIR/master.key,
    /// generated on first start]. ATRIUM_MASTER_KEY (base64 of the key itself) takes precedence.
    #[arg(long, env = "ATRIUM_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Per-user cache of the built-in plugins' compiled forms, shared by data directories
    /// ('off' disables it) [default: $XDG_CACHE_HOME/atrium, else ~/.cache/atrium].
    #[arg(long, env = "ATRIUM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The uv binary that builds job environments [default: `uv` on PATH, else the one
    /// scripts/setup.sh installs in .tools/uv].
    #[arg(long, env = "ATRIUM_UV")]
    pub uv: Option<PathBuf>,
    /// Recovery: give the `admin` user (created if missing) a new token in DATA_DIR/admin.token
    /// before serving; for an operator locked out (the token file lost, every admin token
    /// revoked). Needs access to the data directory and the database, not to the API.
    #[arg(long)]
    pub reset_admin_token: bool,
    /// Do not fire schedules from this host (other hosts on the same PostgreSQL still do;
    /// an admin can run a pass with POST /api/v1/scheduler/tick).
    #[arg(long, env = "ATRIUM_NO_SCHEDULER")]
    pub no_scheduler: bool,
    /// This host's name among replicas sharing one PostgreSQL (it owns the leases of the jobs it
    /// runs; a host restarted under the same name takes its own jobs back at once). Default:
    /// `HOSTNAME:PORT` (`HOSTNAME-PID` on a port picked at start).
    #[arg(long, env = "ATRIUM_REPLICA")]
    pub replica: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    database_url: Option<String>,
    sqlite_sync: Option<SqliteSync>,
    job_slots: Option<usize>,
    threads_per_slot: Option<usize>,
    master_key_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    uv: Option<PathBuf>,
    replica: Option<String>,
}

/// Resolved server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Database URL; `None` means SQLite at `data_dir/atrium.db`.
    pub database_url: Option<String>,
    /// SQLite commit durability.
    pub sqlite_sync: SqliteSync,
    /// Jobs run at once on the local target.
    pub job_slots: usize,
    /// Threads per running job.
    pub threads_per_slot: usize,
    /// Where the master key of the secret store comes from.
    pub master_key: KeySource,
    /// The shared cache of compiled built-in plugins (`None`: off).
    pub cache_dir: Option<PathBuf>,
    /// The uv binary for job environments (`None`: looked up).
    pub uv: Option<PathBuf>,
    /// Write a fresh admin token before serving.
    pub reset_admin_token: bool,
    /// Fire schedules from this host.
    pub scheduler: bool,
    /// This host's name among replicas (the owner of its job leases).
    pub replica: String,
}

/// The default shared cache directory: `$XDG_CACHE_HOME/atrium`, else `~/.cache/atrium`
/// (`None` when neither is an absolute directory).
pub fn default_cache_dir() -> Option<PathBuf> {
    let abs = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    abs("XDG_CACHE_HOME")
        .map(|d| d.join("atrium"))
        .or_else(|| abs("HOME").map(|h| h.join(".cache").join("atrium")))
}

/// The environment variable that passes the master key itself (base64).
pub const MASTER_KEY_ENV: &str = "ATRIUM_MASTER_KEY";

impl ServeConfig {
    /// Merges flags/env over the file over defaults; the master key comes from
    /// `ATRIUM_MASTER_KEY` when set, else from the key file.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let env_key = std::env::var(MASTER_KEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(Zeroizing::new);
        Self::resolve_with_key(args, env_key)
    }

    /// [`Self::resolve`] with the value of `ATRIUM_MASTER_KEY` given.
    pub fn resolve_with_key(
        args: ServeArgs,
        env_key: Option<Zeroizing<String>>,
    ) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load(path)?,
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let job_slots = args.job_slots.or(file.job_slots).unwrap_or(1);
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("atrium-data"));
        let master_key = match (env_key, args.master_key_file.or(file.master_key_file)) {
            (Some(k), _) => KeySource::Env(k),
            (None, Some(path)) => KeySource::File(path),
            (None, None) => KeySource::default_in(&data_dir),
        };
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| ConfigError::Listen(listen.clone()))?;
        let replica = args
            .replica
            .or(file.replica)
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| match listen.port() {
                // a port picked at start: not a name a restart would find again
                0 => format!("{}-{}", hostname(), std::process::id()),
                port => format!("{}:{port}", hostname()),
            });
        Ok(Self {
            data_dir,
            listen,
            database_url: args
                .database_url
                .or(file.database_url)
                .filter(|u| !u.is_empty()),
            sqlite_sync: args.sqlite_sync.or(file.sqlite_sync).unwrap_or_default(),
            job_slots,
            threads_per_slot: args
                .threads_per_slot
                .or(file.threads_per_slot)
                .unwrap_or_else(|| (cores() / job_slots.max(1)).max(1)),
            master_key,
            cache_dir: match args.cache_dir.or(file.cache_dir) {
                Some(p) if p.as_os_str() == "off" => None,
                Some(p) => Some(p),
                None => default_cache_dir(),
            },
            uv: args.uv.or(file.uv),
            reset_admin_token: args.reset_admin_token,
            scheduler: !args.no_scheduler,
            replica,
        })
    }
}

/// This machine's host name (`localhost` when the kernel does not say).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("atrium.toml");
        std::fs::write(
            &f,
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/atrium\"\nsqlite_sync = \"normal\"\n",
        )
        .unwrap();
        let c = ServeConfig::resolve(ServeArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.data_dir, PathBuf::from("/srv/atrium"));
        assert_eq!(c.sqlite_sync, SqliteSync::Normal);
        let c = ServeConfig::resolve(ServeArgs {
            config: Some(f),
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        let c = ServeConfig::resolve_with_key(ServeArgs::default(), None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("atrium-data"));
        assert_eq!(c.sqlite_sync, SqliteSync::Full);
    }

    #[test]
    fn master_key_sources() {
        let key_file = |c: &ServeConfig| match &c.master_key {
            KeySource::File(p) => p.clone(),
            KeySource::Env(_) => panic!("expected a key file"),
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("atrium.toml");
        std::fs::write(&f, "master_key_file = \"/etc/atrium/key\"\n").unwrap();
        // default: in the data directory
        let c = ServeConfig::resolve_with_key(
            ServeArgs {
                data_dir: Some("/srv/a".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(key_file(&c), PathBuf::from("/srv/a/master.key"));
        // the file's setting, then the flag's
        let args = ServeArgs {
            config: Some(f),
            ..Default::default()
        };
        let c = ServeConfig::resolve_with_key(args.clone(), None).unwrap();
        assert_eq!(key_file(&c), PathBuf::from("/etc/atrium/key"));
        let c = ServeConfig::resolve_with_key(
            ServeArgs {
                master_key_file: Some("/k".into()),
                ..args.clone()
            },
            None,
        )
        .unwrap();
        assert_eq!(key_file(&c), PathBuf::from("/k"));
        // the key in the environment wins, and is not shown by Debug
        let c =
            ServeConfig::resolve_with_key(args, Some(Zeroizing::new("c2VjcmV0".into()))).unwrap();
        assert!(matches!(c.master_key, KeySource::Env(_)));
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn bad_files_are_precise() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "lisen = 1").unwrap();
        let e = ServeConfig::resolve(ServeArgs {
            config: Some(f),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = ServeConfig::resolve(ServeArgs {
            listen: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, ConfigError::Listen(_)));
    }
}
