//! `atrium compute ...`: create a compute target (a target plugin with the operator's grants),
//! list, show (the engine's pools, queue depth and health), delete.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_path};
use super::output::{print, text, time};
use super::{CliError, Output};

/// `atrium compute create`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name jobs give as `compute`.
    pub name: String,
    /// The target plugin: NAME or NAME@VERSION (built-ins: target-slurm, target-ray).
    #[arg(long)]
    pub plugin: String,
    /// A config value for the plugin (repeatable), e.g. --config url=http://127.0.0.1:6820.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// A workspace secret the plugin may read (repeatable).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// The one host (name or name:port) the plugin may call [default: the host of config url].
    #[arg(long)]
    pub host: Option<String>,
    /// Let that host be a loopback or private address (an engine on this machine or network).
    #[arg(long)]
    pub allow_private: bool,
    /// How workers on the engine's nodes reach this server [default: its own URL].
    #[arg(long)]
    pub server_url: Option<String>,
    /// The atrium binary on the nodes [default: this server's binary].
    #[arg(long)]
    pub worker_bin: Option<String>,
    /// The workers' cache directory on the nodes [default: worker/ in the data directory].
    #[arg(long)]
    pub worker_dir: Option<String>,
    /// PATH of the workers [default: the server's].
    #[arg(long)]
    pub worker_path: Option<String>,
    /// Most jobs running on it at once [default: 64].
    #[arg(long)]
    pub max_jobs: Option<u32>,
    /// CPUs each job asks the engine for [default: the server's threads per job].
    #[arg(long)]
    pub cpus: Option<f32>,
    /// Memory each job asks for, in MiB.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
}

/// `atrium compute ...`
#[derive(Debug, Subcommand)]
pub enum ComputeCmd {
    /// Create a compute target: jobs with `compute = "NAME"` run there.
    Create(Box<CreateArgs>),
    /// List compute targets.
    List,
    /// Show a compute target: its engine's pools, queue depth and health (asked now).
    Show {
        /// Name.
        name: String,
    },
    /// Delete a compute target no unfinished job uses.
    Delete {
        /// Name.
        name: String,
    },
}

fn pools(v: &Value) -> String {
    v["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} ({}/{} cpus free, {} queued)",
                text(&p["name"]),
                text(&p["available"]["cpus"]),
                text(&p["capacity"]["cpus"]),
                text(&p["queued_jobs"])
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `atrium compute ...`.
pub async fn compute(c: &Client, cmd: ComputeCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        ComputeCmd::Create(args) => {
            let CreateArgs {
                name,
                plugin,
                config,
                secrets,
                host,
                allow_private,
                server_url,
                worker_bin,
                worker_dir,
                worker_path,
                max_jobs,
                cpus,
                memory_mb,
                description,
            } = *args;
            let (component, version) = match plugin.split_once('@') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (plugin, None),
            };
            let mut cfg = serde_json::Map::new();
            for kv in config {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--config takes KEY=VALUE, not '{kv}'"))
                })?;
                cfg.insert(k.to_string(), json!(v));
            }
            let mut body = json!({
                "component": component, "config": cfg, "secrets": secrets,
                "allow_private": allow_private,
            });
            for (k, v) in [
                ("version", version.map(Value::from)),
                ("host", host.map(Value::from)),
                ("server_url", server_url.map(Value::from)),
                ("worker_bin", worker_bin.map(Value::from)),
                ("worker_dir", worker_dir.map(Value::from)),
                ("worker_path", worker_path.map(Value::from)),
                ("max_jobs", max_jobs.map(Value::from)),
                ("cpus", cpus.map(Value::from)),
                ("memory_mb", memory_mb.map(Value::from)),
                ("description", description.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let v = c
                .call(
                    Method::PUT,
                    &c.ws_path(&format!("/compute/{}", encode_path(&name))),
                    Some(&body),
                )
                .await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else {
                println!(
                    "created compute target {} ({}): {}",
                    text(&v["name"]),
                    text(&v["component"]),
                    pools(&v)
                );
            }
        }
        ComputeCmd::List => {
            let v = c.get(&c.ws_path("/compute")).await?;
            let rows = v["compute"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        text(&t["name"]),
                        text(&t["component"]),
                        text(&t["host"]),
                        text(&t["jobs"]),
                        text(&t["max_jobs"]),
                        time(&t["created_at"]),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &["name", "plugin", "host", "jobs", "max jobs", "created"],
                rows,
            );
        }
        ComputeCmd::Show { name } => {
            let v = c
                .get(&c.ws_path(&format!("/compute/{}", encode_path(&name))))
                .await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else {
                println!("compute target {}", text(&v["name"]));
                println!("plugin:    {}", text(&v["component"]));
                println!("host:      {}", text(&v["host"]));
                match v["error"].as_str() {
                    Some(e) => println!("health:    error: {e}"),
                    None => println!("health:    {}", text(&v["health"])),
                }
                println!(
                    "jobs:      {} unfinished (at most {} at once)",
                    text(&v["jobs"]),
                    text(&v["max_jobs"])
                );
                println!("pools:     {}", pools(&v));
                if let Some(cfg) = v["config"].as_object() {
                    for (k, val) in cfg {
                        println!("config:    {k} = {}", text(val));
                    }
                }
                for s in v["secrets"].as_array().into_iter().flatten() {
                    println!("secret:    {}", text(s));
                }
            }
        }
        ComputeCmd::Delete { name } => {
            c.call(
                Method::DELETE,
                &c.ws_path(&format!("/compute/{}", encode_path(&name))),
                None,
            )
            .await?;
            if out != Output::Json {
                println!("deleted compute target {name}");
            } else {
                print(out, &json!({"deleted": name}), &[], vec![]);
            }
        }
    }
    Ok(())
}
