//! The `atrium` command line: `serve`, and client verbs that talk to a server's native API.

mod access;
pub mod client;
mod commands;
mod compute;
mod endpoint;
mod environment;
mod jobs;
mod login;
mod model;
mod output;
mod pipeline;
pub mod profile;
mod scaffold;
mod secret;
mod sweep;

use clap::{Parser, Subcommand, ValueEnum};

pub use client::{Client, ClientError};
pub use endpoint::EndpointCmd;
pub use jobs::{DatasetCmd, JobCmd, snapshot};
pub use model::ModelCmd;
pub use secret::SecretCmd;
pub use sweep::SweepCmd;

use crate::config::ServeArgs;

/// Atrium: a self-hosted machine-learning workspace.
#[derive(Debug, Parser)]
#[command(name = "atrium", version, about)]
pub struct Cli {
    /// Server to talk to (client commands) [default: the last `atrium login`'s, else
    /// http://127.0.0.1:8080].
    #[arg(long, global = true, env = "ATRIUM_SERVER")]
    pub server: Option<String>,
    /// Workspace for client commands [default: the one saved by `atrium login -w`, else
    /// `default`].
    #[arg(long, short = 'w', global = true, env = "ATRIUM_WORKSPACE")]
    pub workspace: Option<String>,
    /// API token for client commands [default: the file ATRIUM_TOKEN_FILE names, else the
    /// profile `atrium login` saved for the server, else admin.token in ATRIUM_DATA_DIR or
    /// ./atrium-data, which `atrium serve` writes on first start].
    #[arg(long, global = true, env = "ATRIUM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format of client commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How client commands print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// The API's JSON.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Check an API token against a server and save both in the CLI profile
    /// ($XDG_CONFIG_HOME/atrium/config.toml, mode 0600); later commands use them by default.
    Login,
    /// Remove the saved token of a server (default: the last login's) from the CLI profile; the
    /// token stays valid on the server (`atrium token revoke` revokes it).
    Logout,
    /// Manage workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Manage experiments.
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Inspect runs.
    #[command(subcommand)]
    Run(RunCmd),
    /// Fetch and list run artifacts.
    #[command(subcommand)]
    Artifact(ArtifactCmd),
    /// Manage plugin components (WebAssembly).
    #[command(subcommand)]
    Component(ComponentCmd),
    /// Manage datastores (storage plugin instances).
    #[command(subcommand)]
    Datastore(DatastoreCmd),
    /// Manage datasets (versioned CSV files).
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Submit, follow and manage jobs on the local compute target.
    #[command(subcommand)]
    Job(JobCmd),
    /// Hyperparameter sweeps and AutoML: submit, follow, leaderboard.
    #[command(subcommand)]
    Sweep(SweepCmd),
    /// Use trained models.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Online endpoints: deploy models behind scorers, split traffic, score, metrics.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Server users (admins).
    #[command(subcommand)]
    User(access::UserCmd),
    /// API tokens: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(access::TokenCmd),
    /// Role assignments on a workspace (Owner, Contributor, Reader).
    #[command(subcommand)]
    Role(access::RoleCmd),
    /// The audit log of a workspace (Owner) or of the host (admin).
    #[command(subcommand)]
    Audit(access::AuditCmd),
    /// Who the token belongs to and its roles.
    Whoami,
    /// Workspace secrets (key vault): values are sealed at rest and never shown.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Python environments for command jobs: versioned, built with uv, cached per machine.
    #[command(subcommand)]
    Environment(environment::EnvironmentCmd),
    /// Compute targets: where jobs run besides this host (Slurm, Ray, ... through target plugins).
    #[command(subcommand)]
    Compute(compute::ComputeCmd),
    /// Pipelines: publish versioned workflows of steps, run, plan (cache), rerun, cancel.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCmd),
    /// Schedules of pipeline runs (cron or recurrence, in a time zone).
    #[command(subcommand)]
    Schedule(pipeline::ScheduleCmd),
    /// Plugin authoring helpers.
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Run jobs as a worker (what compute targets start on the machines that run jobs).
    #[command(subcommand)]
    Worker(WorkerCmd),
    /// Purge deleted runs for good and free artifact bytes nothing references.
    Gc {
        /// Only this workspace (default: all).
        #[arg(long = "only")]
        only_workspace: Option<String>,
        /// Only runs deleted at least this many seconds ago.
        #[arg(long)]
        older_than_secs: Option<u64>,
    },
}

/// `atrium worker ...`
#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// Run the current attempt of one job: fetch its work from --server with the job token the
    /// host minted (ATRIUM_TOKEN), stream its logs and metrics back, report its result.
    Run {
        /// The job's id.
        #[arg(long)]
        job: String,
        /// Where this machine keeps environments and working directories.
        #[arg(long, env = "ATRIUM_WORKER_DIR", default_value = "atrium-worker")]
        dir: std::path::PathBuf,
        /// The uv binary that builds environments [default: .tools/uv/bin/uv or uv on PATH].
        #[arg(long, env = "ATRIUM_UV")]
        uv: Option<std::path::PathBuf>,
    },
}

/// `atrium workspace ...`
#[derive(Debug, Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace (server admin), or update its description and settings (Owner).
    Create {
        /// Name: a-z, 0-9 and '-'.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Let callers without a token read it (true) or stop that (false).
        #[arg(long)]
        anonymous_read: Option<bool>,
    },
    /// List workspaces.
    List,
    /// Show one workspace.
    Show {
        /// Name.
        name: String,
    },
    /// Delete a workspace with everything in it.
    Delete {
        /// Name.
        name: String,
    },
}

/// `atrium experiment ...`
#[derive(Debug, Subcommand)]
pub enum ExperimentCmd {
    /// List experiments of the workspace.
    List {
        /// Filter such as "name LIKE 'iris%'".
        #[arg(long)]
        filter: Option<String>,
        /// Include deleted experiments.
        #[arg(long)]
        all: bool,
    },
    /// Create an experiment.
    Create {
        /// Name.
        name: String,
        /// Datastore for its runs' artifacts (default: the workspace's).
        #[arg(long)]
        datastore: Option<String>,
    },
}

/// `atrium run ...`
#[derive(Debug, Subcommand)]
pub enum RunCmd {
    /// Search runs.
    List {
        /// Experiment id or name (repeatable; default: all experiments).
        #[arg(long, short = 'e')]
        experiment: Vec<String>,
        /// Filter, e.g. "metrics.acc > 0.9 and (params.opt = 'adam' or params.opt = 'sgd')".
        #[arg(long)]
        filter: Option<String>,
        /// Sort clause, e.g. "metrics.acc DESC" (repeatable).
        #[arg(long)]
        order_by: Vec<String>,
        /// Most runs to print.
        #[arg(long, default_value_t = 100)]
        max_results: usize,
    },
    /// Show a run with its params, latest metrics and tags.
    Show {
        /// Run id.
        id: String,
    },
    /// Print the history of one metric.
    Metrics {
        /// Run id.
        id: String,
        /// Metric key.
        key: String,
        /// Downsample to at most this many points.
        #[arg(long)]
        max_points: Option<usize>,
    },
}

/// `atrium component ...`
#[derive(Debug, Subcommand)]
pub enum ComponentCmd {
    /// Upload a component (validated before anything is stored).
    Push {
        /// The `.wasm` component.
        file: std::path::PathBuf,
        /// Its manifest.
        #[arg(long, default_value = "plugin.toml")]
        manifest: std::path::PathBuf,
        /// Registry name (default: the manifest's `name`).
        #[arg(long)]
        name: Option<String>,
        /// Version (default: the manifest's `version`).
        #[arg(long)]
        version: Option<String>,
    },
    /// List registered components.
    List,
    /// Remove a component version.
    Delete {
        /// Name.
        name: String,
        /// Version.
        version: String,
    },
}

/// `atrium datastore ...`
#[derive(Debug, Subcommand)]
pub enum DatastoreCmd {
    /// Create a datastore served by a storage component.
    Create {
        /// Datastore name.
        name: String,
        /// Storage component name (`storage-fs`, `storage-s3`, or one you pushed).
        #[arg(long, visible_alias = "plugin")]
        component: String,
        /// Its version (default: the latest registered).
        #[arg(long)]
        version: Option<String>,
        /// Config KEY=VALUE, or several as KEY=VALUE,KEY=VALUE (repeatable; only keys the
        /// manifest lists take effect).
        #[arg(long = "config", value_parser = key_values)]
        config: Vec<Vec<(String, String)>>,
        /// Directory grant GUEST=NAME, NAME under the data directory's datastores/ (repeatable).
        #[arg(long = "dir", value_parser = key_value)]
        dirs: Vec<(String, String)>,
        /// Host the plugin may call over HTTP (repeatable; default: the host of the `endpoint`
        /// config value, when there is one).
        #[arg(long)]
        http: Vec<String>,
        /// Let those hosts resolve to private addresses (loopback, the LAN): for an object
        /// store on this machine or network.
        #[arg(long)]
        allow_private: bool,
        /// Secret name granted (repeatable).
        #[arg(long)]
        secret: Vec<String>,
        /// Make it the workspace's default datastore (new datasets, models and artifacts go
        /// there).
        #[arg(long)]
        default: bool,
    },
    /// Make a datastore the workspace's default.
    SetDefault {
        /// Name.
        name: String,
    },
    /// List datastores.
    List,
    /// Delete an empty datastore.
    Delete {
        /// Name.
        name: String,
    },
}

/// `atrium plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Write a new plugin crate that builds with `cargo build --release --target wasm32-wasip2`.
    New {
        /// Plugin kind.
        #[arg(long, value_parser = ["storage", "scorer", "sampler", "stopper", "target"])]
        kind: String,
        /// Crate name (also the directory created).
        name: String,
        /// Path to the atrium-sdk crate (default: the SDK of the sources this binary was built from).
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
}

/// `K=V` or `K=V,K=V`: a comma starts a new pair only where the next piece has a `=`.
fn key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut pieces: Vec<String> = Vec::new();
    for piece in s.split(',') {
        match pieces.last_mut() {
            Some(last) if !piece.contains('=') => {
                last.push(',');
                last.push_str(piece);
            }
            _ => pieces.push(piece.to_string()),
        }
    }
    pieces.iter().map(|p| key_value(p)).collect()
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

/// `atrium artifact ...`
#[derive(Debug, Subcommand)]
pub enum ArtifactCmd {
    /// Download one artifact file.
    Get {
        /// Run id.
        run: String,
        /// Path inside the run's artifacts.
        path: String,
        /// Where to write it (default: the file name in the current directory; '-' for stdout).
        #[arg(long, short = 'O')]
        out: Option<String>,
    },
    /// List an artifact directory.
    List {
        /// Run id.
        run: String,
        /// Directory (default: the root).
        path: Option<String>,
    },
    /// Upload a file as an artifact.
    Put {
        /// Run id.
        run: String,
        /// Path inside the run's artifacts.
        path: String,
        /// Local file.
        file: std::path::PathBuf,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad server configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The server stopped with an error.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// A client call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Local file or terminal I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server refused the call for lack of valid credentials.
    #[error("UNAUTHENTICATED: {message} (HTTP 401)\n{hint}")]
    Unauthenticated {
        /// The server's message.
        message: String,
        /// Where the CLI took the token from, or everywhere it looked.
        hint: String,
    },
    /// A followed job did not complete.
    #[error("{0}")]
    Job(String),
    /// The command line names something that does not exist or fits nothing.
    #[error("{0}")]
    Usage(String),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = crate::config::ServeConfig::resolve(args)?;
            crate::server::serve(cfg).await?;
            Ok(())
        }
        Command::Plugin(PluginCmd::New { kind, name, sdk }) => {
            let dir = scaffold::new_plugin(&kind, &name, sdk.as_deref())?;
            if cli.output == Output::Json {
                output::json_out(&serde_json::json!({ "created": dir.display().to_string() }));
            } else {
                println!(
                    "created {}: build it with `cargo build --release --target wasm32-wasip2`",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Worker(WorkerCmd::Run { job, dir, uv }) => {
            let token = cli.token.ok_or_else(|| {
                CliError::Usage("a worker needs its job token in ATRIUM_TOKEN (or --token)".into())
            })?;
            let server = cli
                .server
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
            let workspace = cli.workspace.unwrap_or_else(|| "default".to_string());
            crate::jobs::worker::run(crate::jobs::worker::WorkerArgs {
                server,
                workspace,
                job,
                token,
                dir,
                uv,
            })
            .await
            .map_err(|e| CliError::Job(format!("worker: {e}")))
        }
        Command::Login => login::login(cli).await,
        Command::Logout => login::logout(cli),
        cmd => {
            let r = profile::resolve(profile::Given {
                server: cli.server,
                workspace: cli.workspace,
                token: cli.token,
            })?;
            let client = Client::new(&r.server, &r.workspace, r.token.as_deref())?;
            commands::dispatch(&client, cmd, cli.output)
                .await
                .map_err(|e| match e {
                    CliError::Client(ClientError::Api {
                        status: reqwest::StatusCode::UNAUTHORIZED,
                        message,
                        ..
                    }) => CliError::Unauthenticated {
                        message: if r.token.is_none() {
                            "the server needs an API token".into()
                        } else {
                            message
                        },
                        hint: r.unauthenticated_hint(),
                    },
                    other => other,
                })
        }
    }
}
