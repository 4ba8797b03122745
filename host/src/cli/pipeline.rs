//! `atrium pipeline ...` (publish, submit, list, show, plan, rerun, cancel) and
//! `atrium schedule ...` (create, list, show, enable, disable, delete).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_path};
use super::output::{print, text, time};
use super::{CliError, Output};

/// `atrium pipeline ...`
#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Publish a pipeline spec (TOML, YAML or JSON) as a new version (the same content: the same version).
    Publish {
        /// The spec file.
        file: PathBuf,
        /// The directory its command steps run in (sent as an archive; .gitignore honoured).
        #[arg(long)]
        code: Option<PathBuf>,
    },
    /// Submit a run: NAME, NAME:VERSION or NAME@latest.
    Submit {
        /// The pipeline.
        pipeline: String,
        /// An input value (repeatable): KEY=VALUE, the value read as JSON when it parses.
        #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
        inputs: Vec<String>,
        /// A setting (repeatable), e.g. --set force_rerun=true, --set max_parallel=2.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Display name of the run.
        #[arg(long)]
        name: Option<String>,
        /// Wait for the run to end, showing its steps; exit 1 unless it completes.
        #[arg(long)]
        wait: bool,
    },
    /// List pipelines (the latest version of each), a pipeline's versions, or runs.
    List {
        /// A pipeline: list its versions (or, with --runs, its runs).
        name: Option<String>,
        /// List runs instead.
        #[arg(long)]
        runs: bool,
    },
    /// Show a pipeline version (NAME, NAME:VERSION) or a run (its id): steps, states, outputs.
    Show {
        /// A pipeline reference or a run id.
        what: String,
    },
    /// Plan a run: each step's cache key and whether the cache would serve it.
    Plan {
        /// The pipeline.
        pipeline: String,
        /// An input value (repeatable).
        #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
        inputs: Vec<String>,
        /// A setting (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Rerun a finished run from a step (it and what follows run again) or its failed steps.
    Rerun {
        /// The run's id.
        run: String,
        /// Rerun from this step.
        #[arg(long, conflicts_with = "failed")]
        from: Option<String>,
        /// Rerun the failed, canceled and unrun steps.
        #[arg(long)]
        failed: bool,
        /// An input value to change (repeatable).
        #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
        inputs: Vec<String>,
        /// Wait for the new run to end.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a run: running steps are canceled, pending ones never start.
    Cancel {
        /// The run's id.
        run: String,
    },
}

/// `atrium schedule create`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// Name.
    pub name: String,
    /// The pipeline: NAME:VERSION, or NAME / NAME@latest (resolved at each tick).
    #[arg(long)]
    pub pipeline: String,
    /// A cron expression (five fields), e.g. "0 2 * * *".
    #[arg(long, conflicts_with = "every")]
    pub cron: Option<String>,
    /// A recurrence: every N units (with --unit).
    #[arg(long)]
    pub every: Option<u32>,
    /// The unit of --every: minute, hour, day, week, month.
    #[arg(long, default_value = "day")]
    pub unit: String,
    /// Times of day of a day, week or month recurrence (repeatable), HH:MM.
    #[arg(long = "at", value_name = "HH:MM")]
    pub at: Vec<String>,
    /// Week days of a weekly recurrence (repeatable): monday, ..., sunday.
    #[arg(long = "on")]
    pub on: Vec<String>,
    /// IANA time zone [default: UTC].
    #[arg(long)]
    pub time_zone: Option<String>,
    /// No tick before (RFC 3339).
    #[arg(long)]
    pub start: Option<String>,
    /// No tick after (RFC 3339).
    #[arg(long)]
    pub end: Option<String>,
    /// An input value of its runs (repeatable).
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Ticks missed while no host ran: latest (one run), none, all (bounded by --max-catchup).
    #[arg(long, default_value = "latest")]
    pub catchup: String,
    /// The most missed ticks --catchup all runs [default: 5].
    #[arg(long)]
    pub max_catchup: Option<usize>,
    /// A tick while an earlier run still runs: skip, queue or allow.
    #[arg(long, default_value = "skip")]
    pub overlap: String,
    /// Runs at once with --overlap allow (1-10) [default: 3].
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// `atrium schedule ...`
#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Create a schedule of pipeline runs.
    Create(Box<ScheduleArgs>),
    /// List schedules.
    List,
    /// Show a schedule: its next ticks and what its latest ticks did.
    Show {
        /// Name.
        name: String,
    },
    /// Enable a schedule (ticks from now on fire).
    Enable {
        /// Name.
        name: String,
    },
    /// Disable a schedule.
    Disable {
        /// Name.
        name: String,
    },
    /// Delete a schedule (the runs it started stay).
    Delete {
        /// Name.
        name: String,
    },
}

fn pairs(kv: &[String], flag: &str) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut m = serde_json::Map::new();
    for s in kv {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("{flag} takes KEY=VALUE, not '{s}'")))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        m.insert(k.to_string(), v);
    }
    Ok(m)
}

fn is_run_id(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn outputs_text(o: &Value) -> String {
    o.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", value_text(&v["value"])))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn print_run(out: Output, v: &Value) {
    if out == Output::Json {
        print(out, v, &[], vec![]);
        return;
    }
    println!(
        "pipeline run {} ({}): {}",
        text(&v["id"]),
        text(&v["pipeline"]),
        text(&v["state"])
    );
    if let Some(e) = v["error"].as_str() {
        println!("error: {e}");
    }
    let rows = v["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let note = if let Some(e) = s["error"].as_str() {
                e.to_string()
            } else if s["reused_from"].is_object() {
                format!(
                    "from run {} step {}",
                    text(&s["reused_from"]["job"]),
                    text(&s["reused_from"]["step"])
                )
            } else {
                outputs_text(&s["outputs"])
            };
            vec![
                text(&s["step"]),
                text(&s["kind"]),
                text(&s["state"]),
                s["depends_on"]
                    .as_array()
                    .map(|a| a.iter().map(value_text).collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
                text(&s["job"]),
                note,
            ]
        })
        .collect();
    print(
        out,
        v,
        &["step", "kind", "state", "after", "job", "outputs / note"],
        rows,
    );
    let o = outputs_text(&v["outputs"]);
    if !o.is_empty() {
        println!("outputs: {o}");
    }
}

async fn wait(c: &Client, id: &str, out: Output) -> Result<(), CliError> {
    let mut last = String::new();
    loop {
        let v = c
            .get(&c.ws_path(&format!("/pipeline-runs/{}", encode_path(id))))
            .await?;
        let states: String = v["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{}:{}", text(&s["step"]), text(&s["state"])))
            .collect::<Vec<_>>()
            .join(" ");
        if states != last && out != Output::Json {
            eprintln!("{} {states}", text(&v["state"]));
            last = states;
        }
        match v["state"].as_str() {
            Some("Completed") => {
                print_run(out, &v);
                return Ok(());
            }
            Some("Failed") | Some("Canceled") => {
                print_run(out, &v);
                return Err(CliError::Job(format!(
                    "pipeline run {id} {}",
                    text(&v["state"]).to_lowercase()
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// After a submission: waits for the run (`wait`), or prints it and how to follow it.
async fn submitted(
    c: &Client,
    v: &Value,
    line: &str,
    w: bool,
    out: Output,
) -> Result<(), CliError> {
    let id = text(&v["id"]);
    if w {
        if out != Output::Json {
            eprintln!("{line}");
        }
        return wait(c, &id, out).await;
    }
    if out == Output::Json {
        print(out, v, &[], vec![]);
    } else {
        println!("{line}; follow it with `atrium pipeline show {id}`");
    }
    Ok(())
}

/// Runs `atrium pipeline ...`.
pub async fn pipeline(c: &Client, cmd: PipelineCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        PipelineCmd::Publish { file, code } => {
            let spec = std::fs::read_to_string(&file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let tar = code.as_deref().map(super::jobs::snapshot).transpose()?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "pipeline.toml".into());
            let v = c
                .post_spec(&c.ws_path("/pipelines"), spec, &name, tar)
                .await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else if v["created"].as_bool() == Some(true) {
                println!(
                    "published {} ({} steps)",
                    text(&v["reference"]),
                    v["steps"].as_array().map_or(0, |s| s.len())
                );
            } else {
                println!(
                    "{} has the same content: nothing new published",
                    text(&v["reference"])
                );
            }
        }
        PipelineCmd::Submit {
            pipeline,
            inputs,
            settings,
            name,
            wait: w,
        } => {
            let mut body = json!({ "inputs": pairs(&inputs, "--input")?, "settings": pairs(&settings, "--set")? });
            if let Some(n) = name {
                body["display_name"] = json!(n);
            }
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/pipelines/{}/runs", encode_path(&pipeline))),
                    Some(&body),
                )
                .await?;
            let id = text(&v["id"]);
            let line = format!("submitted pipeline run {id} of {}", text(&v["pipeline"]));
            return submitted(c, &v, &line, w, out).await;
        }
        PipelineCmd::List { name, runs } => {
            if runs {
                let mut url = c.ws_path("/pipeline-runs");
                if let Some(n) = &name {
                    url.push_str(&format!("?pipeline={}", super::client::encode_query(n)));
                }
                let v = c.get(&url).await?;
                let rows = v["runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let steps = r["steps"].as_array().map(|a| a.len()).unwrap_or(0);
                        let cached = r["steps"]
                            .as_array()
                            .map(|a| a.iter().filter(|s| s["state"] == "Cached").count())
                            .unwrap_or(0);
                        vec![
                            text(&r["id"]),
                            text(&r["pipeline"]),
                            text(&r["state"]),
                            format!("{steps} ({cached} cached)"),
                            time(&r["created_at"]),
                        ]
                    })
                    .collect();
                print(
                    out,
                    &v,
                    &["run", "pipeline", "state", "steps", "submitted"],
                    rows,
                );
                return Ok(());
            }
            let v = match &name {
                Some(n) => {
                    c.get(&c.ws_path(&format!("/pipelines/{}", encode_path(n))))
                        .await?
                }
                None => c.get(&c.ws_path("/pipelines")).await?,
            };
            let rows = v["pipelines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        text(&p["name"]),
                        text(&p["version"]),
                        p["steps"]
                            .as_array()
                            .map(|s| s.len().to_string())
                            .unwrap_or_default(),
                        p["inputs"]
                            .as_object()
                            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        time(&p["created_at"]),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &["name", "version", "steps", "inputs", "published"],
                rows,
            );
        }
        PipelineCmd::Show { what } => {
            if is_run_id(&what) {
                let v = c
                    .get(&c.ws_path(&format!("/pipeline-runs/{}", encode_path(&what))))
                    .await?;
                print_run(out, &v);
                return Ok(());
            }
            let (name, version) = match what.strip_suffix("@latest") {
                Some(n) => (n.to_string(), "latest".to_string()),
                None => match what.rsplit_once(':') {
                    Some((n, v)) => (n.to_string(), v.to_string()),
                    None => (what.clone(), "latest".to_string()),
                },
            };
            let v = c
                .get(&c.ws_path(&format!(
                    "/pipelines/{}/versions/{}",
                    encode_path(&name),
                    encode_path(&version)
                )))
                .await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
                return Ok(());
            }
            println!(
                "pipeline {} (content {})",
                text(&v["reference"]),
                text(&v["content_hash"])
            );
            if let Some(d) = v["description"].as_str() {
                println!("{d}");
            }
            for (k, i) in v["inputs"].as_object().into_iter().flatten() {
                println!("input  {k}: {}", i);
            }
            for (k, o) in v["outputs"].as_object().into_iter().flatten() {
                println!("output {k}: {}", value_text(o));
            }
            let rows = v["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        text(&s["name"]),
                        text(&s["kind"]),
                        s["depends_on"]
                            .as_array()
                            .map(|a| a.iter().map(value_text).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            print(out, &v, &["step", "kind", "after"], rows);
        }
        PipelineCmd::Plan {
            pipeline,
            inputs,
            settings,
        } => {
            let body = json!({ "inputs": pairs(&inputs, "--input")?, "settings": pairs(&settings, "--set")? });
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/pipelines/{}/plan", encode_path(&pipeline))),
                    Some(&body),
                )
                .await?;
            let rows = v["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let key = s["key"]
                        .as_str()
                        .map(|k| k.trim_start_matches("sha256:").chars().take(16).collect())
                        .unwrap_or_else(|| "-".into());
                    let note = if s["reused_from"].is_object() {
                        format!(
                            "reuses run {} step {}",
                            text(&s["reused_from"]["job"]),
                            text(&s["reused_from"]["step"])
                        )
                    } else {
                        s["note"].as_str().unwrap_or("").to_string()
                    };
                    vec![
                        text(&s["step"]),
                        text(&s["kind"]),
                        text(&s["action"]),
                        key,
                        note,
                    ]
                })
                .collect();
            print(out, &v, &["step", "kind", "action", "key", "why"], rows);
        }
        PipelineCmd::Rerun {
            run,
            from,
            failed,
            inputs,
            wait: w,
        } => {
            let mut body = json!({ "failed": failed, "inputs": pairs(&inputs, "--input")? });
            if let Some(f) = from {
                body["from"] = json!(f);
            }
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/pipeline-runs/{}/rerun", encode_path(&run))),
                    Some(&body),
                )
                .await?;
            let line = format!("submitted pipeline run {} (rerun of {run})", text(&v["id"]));
            return submitted(c, &v, &line, w, out).await;
        }
        PipelineCmd::Cancel { run } => {
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/pipeline-runs/{}/cancel", encode_path(&run))),
                    None,
                )
                .await?;
            print_run(out, &v);
        }
    }
    Ok(())
}

fn print_schedule(out: Output, v: &Value) {
    if out == Output::Json {
        print(out, v, &[], vec![]);
        return;
    }
    println!(
        "schedule {} → {}: {}",
        text(&v["name"]),
        text(&v["definition"]["pipeline"]),
        text(&v["describe"])
    );
    println!("enabled:  {}", text(&v["enabled"]));
    println!(
        "catchup:  {}, overlap: {}",
        text(&v["definition"]["catchup"]),
        text(&v["definition"]["overlap"])
    );
    let next: Vec<String> = v["next"]
        .as_array()
        .into_iter()
        .flatten()
        .map(value_text)
        .collect();
    println!(
        "next:     {}",
        if next.is_empty() {
            "-".into()
        } else {
            next.join(", ")
        }
    );
    let rows = v["ticks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                text(&t["tick"]),
                text(&t["outcome"]),
                text(&t["job"]),
                t["detail"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    print(out, v, &["tick", "outcome", "run", "detail"], rows);
}

/// Runs `atrium schedule ...`.
pub async fn schedule(c: &Client, cmd: ScheduleCmd, out: Output) -> Result<(), CliError> {
    let action = if matches!(cmd, ScheduleCmd::Enable { .. }) {
        "enable"
    } else {
        "disable"
    };
    match cmd {
        ScheduleCmd::Create(a) => {
            let a = *a;
            let trigger = match (&a.cron, a.every) {
                (Some(e), None) => json!({"type": "cron", "expression": e}),
                (None, Some(n)) => {
                    let mut t = json!({"type": "recurrence", "frequency": a.unit, "interval": n});
                    if !a.at.is_empty() || !a.on.is_empty() {
                        let mut hours = Vec::new();
                        let mut minutes = Vec::new();
                        for hm in &a.at {
                            let (h, m) = hm
                                .split_once(':')
                                .and_then(|(h, m)| {
                                    Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?))
                                })
                                .ok_or_else(|| {
                                    CliError::Usage(format!("--at takes HH:MM, not '{hm}'"))
                                })?;
                            hours.push(h);
                            minutes.push(m);
                        }
                        hours.sort();
                        hours.dedup();
                        minutes.sort();
                        minutes.dedup();
                        t["schedule"] =
                            json!({"hours": hours, "minutes": minutes, "week_days": a.on});
                    }
                    t
                }
                _ => {
                    return Err(CliError::Usage(
                        "give --cron EXPR or --every N [--unit ...]".into(),
                    ));
                }
            };
            let mut body = json!({
                "pipeline": a.pipeline, "trigger": trigger, "inputs": pairs(&a.inputs, "--input")?,
                "catchup": a.catchup, "overlap": a.overlap, "enabled": !a.disabled,
            });
            for (k, v) in [
                ("time_zone", a.time_zone.map(Value::from)),
                ("start_time", a.start.map(Value::from)),
                ("end_time", a.end.map(Value::from)),
                ("max_catchup_runs", a.max_catchup.map(Value::from)),
                ("max_concurrency", a.max_concurrency.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let v = c
                .call(
                    Method::PUT,
                    &c.ws_path(&format!("/schedules/{}", encode_path(&a.name))),
                    Some(&body),
                )
                .await?;
            print_schedule(out, &v);
        }
        ScheduleCmd::List => {
            let v = c.get(&c.ws_path("/schedules")).await?;
            let rows = v["schedules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        text(&s["name"]),
                        text(&s["definition"]["pipeline"]),
                        text(&s["describe"]),
                        text(&s["enabled"]),
                        s["next"]
                            .get(0)
                            .map(value_text)
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &["name", "pipeline", "trigger", "enabled", "next"],
                rows,
            );
        }
        ScheduleCmd::Show { name } => {
            let v = c
                .get(&c.ws_path(&format!("/schedules/{}", encode_path(&name))))
                .await?;
            print_schedule(out, &v);
        }
        ScheduleCmd::Enable { name } | ScheduleCmd::Disable { name } => {
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/schedules/{}/{action}", encode_path(&name))),
                    None,
                )
                .await?;
            print_schedule(out, &v);
        }
        ScheduleCmd::Delete { name } => {
            c.call(
                Method::DELETE,
                &c.ws_path(&format!("/schedules/{}", encode_path(&name))),
                None,
            )
            .await?;
            if out != Output::Json {
                println!("deleted schedule {name}");
            }
        }
    }
    Ok(())
}
