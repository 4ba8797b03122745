//! `atrium dataset ...` and `atrium job ...`: upload datasets, submit jobs (with a code
//! snapshot that respects `.gitignore`), follow them with a progress bar, read logs, cancel.

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_query};
use super::commands::save;
use super::output::{print, text, time};
use super::{CliError, Output, key_value};

/// Largest code snapshot the CLI sends.
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

/// `atrium dataset ...`
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
    /// Upload a CSV as the next version of a dataset (NAME:1, NAME:2, ...).
    Create {
        /// Dataset name.
        name: String,
        /// The CSV file.
        #[arg(long, short = 'f')]
        file: std::path::PathBuf,
    },
    /// List dataset versions.
    List {
        /// Only this dataset.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a version's schema and first rows (NAME or NAME:VERSION).
    Show {
        /// NAME or NAME:VERSION (default: the latest version).
        dataset: String,
        /// Rows to preview.
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
    /// Download a version's CSV.
    Get {
        /// NAME or NAME:VERSION.
        dataset: String,
        /// Where to write it ('-' for stdout; default NAME-VERSION.csv).
        #[arg(long, short = 'O')]
        out: Option<String>,
    },
    /// Delete a version (refused while a job references it).
    Delete {
        /// NAME:VERSION.
        dataset: String,
    },
}

/// `atrium job ...`
#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Submit a job from a spec file (TOML, YAML or JSON) or a command line.
    Submit {
        /// The job spec file.
        #[arg(required_unless_present = "command", conflicts_with = "command")]
        spec: Option<std::path::PathBuf>,
        /// Run this shell command as a command job.
        #[arg(long)]
        command: Option<String>,
        /// Code directory to snapshot for a command job (respects .gitignore).
        #[arg(long)]
        code: Option<std::path::PathBuf>,
        /// Job (and run) name.
        #[arg(long)]
        name: Option<String>,
        /// Experiment of the job's run (created if missing).
        #[arg(long, short = 'e')]
        experiment: Option<String>,
        /// Environment variable KEY=VALUE for a command job (repeatable).
        #[arg(long = "env", value_parser = key_value)]
        env: Vec<(String, String)>,
        /// Workspace secret passed to a command job as the environment variable of the same
        /// name (repeatable).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// Kill a command job after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Wait for the job, showing progress; exit non-zero unless it completes.
        #[arg(long)]
        follow: bool,
    },
    /// List jobs (newest first).
    List {
        /// Only jobs in this state (Queued, Starting, Running, Finalizing, Completed, Failed, Canceled).
        #[arg(long)]
        state: Option<String>,
        /// Most jobs to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a job with its progress.
    Show {
        /// Job id.
        id: String,
    },
    /// Print a job's log.
    Logs {
        /// Job id.
        id: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Keep printing new output until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Wait for a job, showing progress; exit non-zero unless it completes.
    Wait {
        /// Job id.
        id: String,
    },
}

/// Splits `NAME[:VERSION]` into URL parts (`latest` when no version).
fn dataset_parts(s: &str) -> (String, String) {
    match s.rsplit_once(':') {
        Some((n, v)) => (encode_query(n), encode_query(v)),
        None => (encode_query(s), "latest".into()),
    }
}

fn dataset_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|d| {
            let cols = d["schema"].as_array().map_or(0, Vec::len);
            vec![
                text(&d["ref"]),
                text(&d["rows"]),
                cols.to_string(),
                text(&d["size"]),
                time(&d["created_at"]),
            ]
        })
        .collect()
}

/// Runs `atrium dataset ...`.
pub async fn dataset(c: &Client, cmd: DatasetCmd, out: Output) -> Result<(), CliError> {
    let header = ["dataset", "rows", "columns", "bytes", "created"];
    match cmd {
        DatasetCmd::Create { name, file } => {
            let bytes = tokio::fs::read(&file)
                .await
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let v = c
                .post_bytes(
                    &c.ws_path(&format!("/datasets/{}/versions", encode_query(&name))),
                    bytes,
                    "text/csv",
                )
                .await?;
            print(out, &v, &header, dataset_rows(std::slice::from_ref(&v)));
        }
        DatasetCmd::List { name } => {
            let mut url = c.ws_path("/datasets");
            if let Some(n) = name {
                url.push_str(&format!("?name={}", encode_query(&n)));
            }
            let v = c.get(&url).await?;
            print(
                out,
                &v,
                &header,
                dataset_rows(v["datasets"].as_array().map(Vec::as_slice).unwrap_or(&[])),
            );
        }
        DatasetCmd::Show { dataset, rows } => {
            let (n, ver) = dataset_parts(&dataset);
            let v = c
                .get(&c.ws_path(&format!("/datasets/{n}/versions/{ver}?preview={rows}")))
                .await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            println!(
                "{}  {} rows  sha256 {}",
                text(&v["ref"]),
                text(&v["rows"]),
                text(&v["digest"])
            );
            let schema: Vec<Vec<String>> = v["schema"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|c| {
                    vec![
                        text(&c["name"]),
                        text(&c["kind"]),
                        text(&c["nullable"]),
                        text(&c["distinct"]),
                    ]
                })
                .collect();
            print(out, &v, &["column", "kind", "nullable", "distinct"], schema);
            let cols: Vec<String> = v["columns"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            if !cols.is_empty() {
                let rows: Vec<Vec<String>> = v["preview"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|r| {
                        r.as_array()
                            .map(|a| a.iter().map(text).collect())
                            .unwrap_or_default()
                    })
                    .collect();
                let header: Vec<&str> = cols.iter().map(String::as_str).collect();
                print(out, &v, &header, rows);
            }
        }
        DatasetCmd::Get { dataset, out: dest } => {
            let (n, ver) = dataset_parts(&dataset);
            let dest = dest.unwrap_or_else(|| format!("{}.csv", dataset.replace(':', "-")));
            save(
                c,
                &c.ws_path(&format!("/datasets/{n}/versions/{ver}/data")),
                &dest,
            )
            .await?;
        }
        DatasetCmd::Delete { dataset } => {
            if !dataset.contains(':') {
                return Err(CliError::Usage(format!(
                    "name the version to delete: {dataset}:VERSION"
                )));
            }
            let (n, ver) = dataset_parts(&dataset);
            let v = c
                .call(
                    Method::DELETE,
                    &c.ws_path(&format!("/datasets/{n}/versions/{ver}")),
                    None,
                )
                .await?;
            if out == Output::Json {
                println!("{v}");
            } else {
                println!("deleted dataset {}", text(&v["ref"]));
            }
        }
    }
    Ok(())
}

/// A tar archive of `dir`'s files, skipping what `.gitignore` / `.ignore` exclude, hidden
/// files and `.git`.
pub fn snapshot(dir: &Path) -> Result<Vec<u8>, CliError> {
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "--code {}: not a directory",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    for entry in ignore::WalkBuilder::new(dir)
        .require_git(false)
        .follow_links(false)
        .build()
    {
        let entry =
            entry.map_err(|e| CliError::Usage(format!("cannot read the code directory: {e}")))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            files.push(entry.into_path());
        }
    }
    files.sort();
    let total: u64 = files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    if total > MAX_SNAPSHOT_BYTES {
        return Err(CliError::Usage(format!(
            "the code directory holds {total} bytes (limit {MAX_SNAPSHOT_BYTES}); add large files to .gitignore"
        )));
    }
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for f in &files {
        let rel = f.strip_prefix(dir).unwrap_or(f);
        tar.append_path_with_name(f, rel)?;
    }
    Ok(tar.into_inner()?)
}

fn job_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["name"]),
                text(&j["type"]),
                text(&j["state"]),
                text(&j["run_id"]),
                time(&j["created_at"]),
                text(&j["error"]),
            ]
        })
        .collect()
}

const JOB_HEADER: [&str; 7] = ["id", "name", "type", "state", "run", "created", "error"];

/// Runs `atrium job ...`.
pub async fn job(c: &Client, cmd: JobCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        JobCmd::Submit {
            spec,
            command,
            code,
            name,
            experiment,
            env,
            secrets,
            timeout,
            follow,
        } => {
            let mut spec_text = match (&spec, &command) {
                (Some(f), _) => tokio::fs::read_to_string(f)
                    .await
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", f.display())))?,
                (None, Some(cmd)) => {
                    let v = json!({
                        "type": "command",
                        "name": name,
                        "experiment": experiment,
                        "command": {
                            "command": cmd,
                            "env": env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                            "secrets": secrets,
                            "timeout_secs": timeout,
                        },
                    });
                    serde_json::to_string(&v).expect("json")
                }
                (None, None) => {
                    return Err(CliError::Usage("give a spec file or --command".into()));
                }
            };
            if let Some(file) = &spec {
                // parsed here, in the format the file's extension names (one precise error,
                // before anything is uploaded), then sent as JSON with the flags merged in
                let mut parsed =
                    crate::jobs::JobSpec::parse_file(&file.to_string_lossy(), &spec_text)
                        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
                parsed.name = name.or(parsed.name);
                parsed.experiment = experiment.or(parsed.experiment);
                if let Some(cmd) = parsed.command.as_mut() {
                    cmd.env.extend(env);
                    for name in secrets {
                        if !cmd.secrets.contains(&name) {
                            cmd.secrets.push(name);
                        }
                    }
                    cmd.timeout_secs = timeout.or(cmd.timeout_secs);
                }
                spec_text = serde_json::to_string(&parsed).expect("json");
            }
            let tar = match &code {
                Some(dir) => Some(snapshot(dir)?),
                None if command.is_some() => Some(snapshot(Path::new("."))?),
                None => None,
            };
            let v = c.submit_job(&c.ws_path("/jobs"), spec_text, tar).await?;
            if out == Output::Json && !follow {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            eprintln!(
                "submitted job {} (run {})",
                text(&v["id"]),
                text(&v["run_id"])
            );
            if follow {
                return wait(c, &text(&v["id"]), out).await;
            }
            println!("{}", text(&v["id"]));
        }
        JobCmd::List { state, limit } => {
            let mut url = c.ws_path(&format!("/jobs?limit={limit}"));
            if let Some(s) = state {
                url.push_str(&format!("&state={}", encode_query(&s)));
            }
            let v = c.get(&url).await?;
            print(
                out,
                &v,
                &JOB_HEADER,
                job_rows(v["jobs"].as_array().map(Vec::as_slice).unwrap_or(&[])),
            );
        }
        JobCmd::Show { id } => {
            let v = c
                .get(&c.ws_path(&format!("/jobs/{}", encode_query(&id))))
                .await?;
            print(out, &v, &JOB_HEADER, job_rows(std::slice::from_ref(&v)));
            if out == Output::Table {
                if let Some(p) = v.get("progress") {
                    println!("{}", progress_line(p));
                }
                println!(
                    "attempts: {}   target: {}",
                    text(&v["attempts"]),
                    text(&v["target"])
                );
            }
        }
        JobCmd::Logs { id, tail, follow } => {
            let mut url = c.ws_path(&format!("/jobs/{}/logs?follow={follow}", encode_query(&id)));
            if let Some(n) = tail {
                url.push_str(&format!("&tail={n}"));
            }
            c.download(&url, &mut tokio::io::stdout()).await?;
        }
        JobCmd::Cancel { id } => {
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/jobs/{}:cancel", encode_query(&id))),
                    None,
                )
                .await?;
            print(out, &v, &JOB_HEADER, job_rows(std::slice::from_ref(&v)));
        }
        JobCmd::Wait { id } => return wait(c, &id, out).await,
    }
    Ok(())
}

fn progress_line(p: &Value) -> String {
    let eta = p["eta_seconds"]
        .as_f64()
        .map(|s| format!(", about {s:.0} s left"))
        .unwrap_or_default();
    format!(
        "epoch {}/{}, batch {}/{}{eta}",
        text(&p["epoch"]),
        text(&p["epochs"]),
        text(&p["batch"]),
        text(&p["batches"])
    )
}

/// The run's latest metrics as `k=v` text.
async fn metrics_line(c: &Client, run: &str) -> Option<String> {
    let r = c
        .get(&c.ws_path(&format!("/runs/{}", encode_query(run))))
        .await
        .ok()?;
    let m = r["metrics"].as_object()?;
    let parts: Vec<String> = m
        .iter()
        .filter(|(k, _)| k.as_str() != "lr")
        .filter_map(|(k, v)| {
            let val = v
                .get("value")
                .and_then(Value::as_f64)
                .or_else(|| v.as_f64())?;
            Some(format!("{k}={val:.4}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Follows a job until it ends: a progress bar for train jobs, the log for command jobs.
async fn wait(c: &Client, id: &str, out: Output) -> Result<(), CliError> {
    let url = c.ws_path(&format!("/jobs/{}", encode_query(id)));
    let mut job = c.get(&url).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} batches  {msg}  (ETA {eta})",
        )
        .expect("valid template"),
    );
    let run = text(&job["run_id"]);
    if job["type"] == "command" {
        // a command job's output is its progress
        let logs = c.ws_path(&format!("/jobs/{}/logs?follow=true", encode_query(id)));
        c.download(&logs, &mut tokio::io::stdout()).await?;
        job = c.get(&url).await?;
    } else {
        let mut last_epoch = 0u64;
        loop {
            let state = text(&job["state"]);
            if let Some(p) = job.get("progress") {
                let (e, es) = (
                    p["epoch"].as_u64().unwrap_or(0),
                    p["epochs"].as_u64().unwrap_or(0),
                );
                let (b, bs) = (
                    p["batch"].as_u64().unwrap_or(0),
                    p["batches"].as_u64().unwrap_or(0),
                );
                bar.set_length(es * bs);
                bar.set_position(e.saturating_sub(1) * bs + b);
                if e > last_epoch {
                    if let Some(m) = metrics_line(c, &run).await {
                        if last_epoch > 0 {
                            let line = format!("epoch {}/{es}: {m}", e - 1);
                            if bar.is_hidden() {
                                println!("{line}")
                            } else {
                                bar.println(line)
                            }
                        }
                        bar.set_message(m);
                    }
                    last_epoch = e;
                }
            } else {
                bar.set_message(state.clone());
            }
            if matches!(state.as_str(), "Completed" | "Failed" | "Canceled") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            job = c.get(&url).await?;
        }
        bar.finish_and_clear();
        if let Some(m) = metrics_line(c, &run).await {
            println!("final metrics: {m}");
        }
    }
    let state = text(&job["state"]);
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(&job).unwrap_or_default());
    } else {
        println!("job {id} {}: run {run}", state.to_lowercase());
    }
    match state.as_str() {
        "Completed" => Ok(()),
        _ => Err(CliError::Job(format!(
            "job {id} {}{}",
            state.to_lowercase(),
            job["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))),
    }
}
