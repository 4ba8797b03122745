//! `atrium dataset ...` and `atrium job ...`: upload datasets, submit jobs (with a code
//! snapshot that respects `.gitignore`), follow them with a progress bar, read logs, cancel.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_query};
use super::commands::save;
use super::output::{json_out, print, text, time};
use super::{CliError, Output, key_value};

/// Largest code snapshot the CLI sends.
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

/// `atrium dataset ...`
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
    /// Upload a CSV as the next version of a dataset (NAME:1, NAME:2, ...); stored
    /// comma-separated.
    Create {
        /// Dataset name.
        name: String,
        /// The CSV file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Field delimiter: ',', ';', 'tab' or '|' [default: detected from the header line].
        #[arg(long)]
        delimiter: Option<String>,
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
        /// Python environment of a command job: NAME, NAME:VERSION or the built-in
        /// atrium-mlflow (overrides the spec's).
        #[arg(long)]
        environment: Option<String>,
        /// Compute target: local (in the host process, the default) or local-process (a
        /// worker process of its own); overrides the spec's.
        #[arg(long)]
        compute: Option<String>,
        /// Wait for the job, showing progress; exit non-zero unless it completes.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// List jobs (newest first).
    List {
        /// Only jobs in this state (Queued, Starting, Preparing, Running, Finalizing, Completed, Failed, Canceled).
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
        DatasetCmd::Create {
            name,
            file,
            delimiter,
        } => {
            let bytes = tokio::fs::read(&file)
                .await
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let mut url = c.ws_path(&format!("/datasets/{}/versions", encode_query(&name)));
            if let Some(d) = &delimiter {
                let d = crate::workspace::dataset::parse_delimiter(d)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                let name = crate::workspace::dataset::delimiter_name(d);
                url.push_str(&format!("?delimiter={}", encode_query(&name)));
            }
            let v = c.post_bytes(&url, bytes, "text/csv").await?;
            if let Some(d) = v["delimiter"].as_str().filter(|d| *d != ",") {
                eprintln!(
                    "read {} as '{d}'-separated; stored as comma-separated CSV",
                    file.display()
                );
            }
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
                json_out(&v);
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
                out,
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
                json_out(&v);
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
            environment,
            compute,
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
                        "environment": environment,
                        "compute": compute,
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
                if let Some(e) = environment {
                    parsed.environment = Some(crate::jobs::spec::EnvironmentRef::Named(e));
                }
                parsed.compute = compute.or(parsed.compute);
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
                json_out(&v);
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
                if let Some(h) = v["handle"].as_str() {
                    println!(
                        "engine:   {h} ({})",
                        v["engine_state"].as_str().unwrap_or("not seen yet")
                    );
                }
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

/// `k=v` text of metrics (the learning rate left out).
fn metrics_text(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .filter(|(k, _)| k.as_str() != "lr")
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The run's latest metrics with their step (the last finished epoch of a train job).
fn latest_metrics(run: &Value) -> (u64, BTreeMap<String, f64>) {
    let mut step = 0;
    let mut out = BTreeMap::new();
    for (k, v) in run["metrics"].as_object().into_iter().flatten() {
        if let Some(val) = v
            .get("value")
            .and_then(Value::as_f64)
            .or_else(|| v.as_f64())
        {
            out.insert(k.clone(), val);
            step = step.max(v["step"].as_u64().unwrap_or(0));
        }
    }
    (step, out)
}

/// Metrics of every epoch in `from..=to`, from the metric histories of the run.
async fn epochs_between(
    c: &Client,
    run: &str,
    keys: &[String],
    from: u64,
    to: u64,
) -> Result<BTreeMap<u64, BTreeMap<String, f64>>, CliError> {
    let mut by_epoch: BTreeMap<u64, BTreeMap<String, f64>> = BTreeMap::new();
    for key in keys {
        let h = c
            .get(&c.ws_path(&format!(
                "/runs/{}/metrics/{}",
                encode_query(run),
                super::client::encode_path(key)
            )))
            .await?;
        for p in h["points"].as_array().into_iter().flatten() {
            if let (Some(step), Some(v)) = (p["step"].as_u64(), p["value"].as_f64())
                && (from..=to).contains(&step)
            {
                by_epoch.entry(step).or_default().insert(key.clone(), v);
            }
        }
    }
    Ok(by_epoch)
}

/// How often a follower that draws no progress bar (not a terminal) prints a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Where a follower's lines go: through the progress bar on a terminal, to stdout when the
/// output is a table, to stderr when stdout carries the final JSON.
struct Lines<'a> {
    bar: &'a ProgressBar,
    json: bool,
}

impl Lines<'_> {
    fn epoch(&self, line: String) {
        if self.json {
            eprintln!("{line}");
        } else if self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn note(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

/// Follows a job until it ends: for train jobs a line per epoch (and a progress bar on a
/// terminal, periodic progress lines otherwise), how training ended (early stopping, the epoch
/// the model keeps); for command jobs their log.
async fn wait(c: &Client, id: &str, out: Output) -> Result<(), CliError> {
    let url = c.ws_path(&format!("/jobs/{}", encode_query(id)));
    let mut job = c.get(&url).await?;
    // draws on stderr, and only when it is a terminal
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} batches  {msg}  (ETA {eta})",
        )
        .expect("valid template"),
    );
    let lines = Lines {
        bar: &bar,
        json: out == Output::Json,
    };
    let run = text(&job["run_id"]);
    let run_url = c.ws_path(&format!("/runs/{}", encode_query(&run)));
    let epochs = job["spec"]["train"]["epochs"].as_u64();
    if job["type"] == "command" {
        // a command job's output is its progress (on stderr when stdout carries JSON)
        let logs = c.ws_path(&format!("/jobs/{}/logs?follow=true", encode_query(id)));
        if out == Output::Json {
            c.download(&logs, &mut tokio::io::stderr()).await?;
        } else {
            c.download(&logs, &mut tokio::io::stdout()).await?;
        }
        job = c.get(&url).await?;
    } else {
        let mut printed = 0u64;
        let mut last_line = std::time::Instant::now();
        let of = |es: Option<u64>| es.map(|n| format!("/{n}")).unwrap_or_default();
        loop {
            let state = text(&job["state"]);
            let ended = matches!(state.as_str(), "Completed" | "Failed" | "Canceled");
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
                if bar.is_hidden()
                    && out == Output::Table
                    && e > 0
                    && last_line.elapsed() >= PROGRESS_EVERY
                {
                    lines.note(progress_line(p));
                    last_line = std::time::Instant::now();
                }
            } else {
                bar.set_message(state.clone());
            }
            // one line per finished epoch, none skipped however fast epochs go
            if let Ok(r) = c.get(&run_url).await {
                let (step, latest) = latest_metrics(&r);
                if latest.contains_key("loss") && step > printed {
                    let all = if step == printed + 1 {
                        BTreeMap::from([(step, latest.clone())])
                    } else {
                        let keys: Vec<String> = latest.keys().cloned().collect();
                        epochs_between(c, &run, &keys, printed + 1, step).await?
                    };
                    for (n, m) in all {
                        lines.epoch(format!("epoch {n}{}: {}", of(epochs), metrics_text(&m)));
                    }
                    printed = step;
                    last_line = std::time::Instant::now();
                    bar.set_message(metrics_text(&latest));
                }
            }
            if ended {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            job = c.get(&url).await?;
        }
        bar.finish_and_clear();
        // the end of the training report: stdout, or stderr when stdout carries the JSON
        let report = |line: String| {
            if out == Output::Json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        };
        if let Ok(r) = c.get(&run_url).await {
            let tag = |k: &str| r["tags"][k].as_str().map(str::to_string);
            let (_, latest) = latest_metrics(&r);
            let trained = tag("atrium.train.epochs").and_then(|t| t.parse::<u64>().ok());
            let best = tag("atrium.train.best_epoch").and_then(|t| t.parse::<u64>().ok());
            if let Some(n) = trained
                && tag("atrium.train.stopped_early").as_deref() == Some("true")
            {
                let patience = job["spec"]["train"]["early_stopping"]["patience"]
                    .as_u64()
                    .map(|p| format!(": no val_loss improvement in {p} epochs"))
                    .unwrap_or_default();
                report(format!(
                    "stopped early after epoch {n}{}{patience}",
                    of(epochs)
                ));
            }
            match best.filter(|b| Some(*b) != trained) {
                Some(b) => {
                    let keys: Vec<String> = latest.keys().cloned().collect();
                    let at = epochs_between(c, &run, &keys, b, b).await?;
                    if let Some(m) = at.get(&b) {
                        report(format!(
                            "final metrics (epoch {b}, the best val_loss, whose weights the model keeps): {}",
                            metrics_text(m)
                        ));
                    }
                }
                None if !latest.is_empty() => {
                    report(format!("final metrics: {}", metrics_text(&latest)));
                }
                None => {}
            }
        }
    }
    let state = text(&job["state"]);
    if out == Output::Json {
        json_out(&job);
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
