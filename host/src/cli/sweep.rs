//! `atrium sweep ...`: submit sweep and AutoML jobs, follow them with a live table of trials,
//! and print the leaderboard.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, encode_query};
use super::output::{print, text};
use super::{CliError, Output};

/// `atrium sweep ...`
#[derive(Debug, Subcommand)]
pub enum SweepCmd {
    /// Submit a sweep or AutoML spec (TOML, YAML or JSON; `type = "sweep"` or `"automl"`).
    Submit {
        /// The spec file.
        spec: std::path::PathBuf,
        /// Job (and parent run) name.
        #[arg(long)]
        name: Option<String>,
        /// Experiment of the runs (created if missing).
        #[arg(long, short = 'e')]
        experiment: Option<String>,
        /// Code directory to snapshot for a sweep over a command template (respects .gitignore).
        #[arg(long)]
        code: Option<std::path::PathBuf>,
        /// Wait with a live table of trials; exit non-zero unless the sweep completes.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Print a sweep's leaderboard (best first).
    Show {
        /// Job id of the sweep.
        id: String,
        /// Most trials to print.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

const HEADER: [&str; 6] = ["trial", "state", "value", "latest (step)", "params", "run"];

fn fmt_num(v: &Value) -> String {
    v.as_f64().map(|f| format!("{f:.4}")).unwrap_or_default()
}

fn rows(board: &Value, top: usize) -> Vec<Vec<String>> {
    board["trials"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .take(top)
        .map(|t| {
            let params = t["params"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let v = match v.as_f64() {
                                Some(f) if f.fract() != 0.0 => format!("{f:.4e}"),
                                _ => text(v),
                            };
                            format!("{k}={v}")
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let latest = match (t["latest"].as_f64(), t["step"].as_u64()) {
                (Some(v), Some(s)) => format!("{v:.4} ({s})"),
                _ => String::new(),
            };
            let mut state = text(&t["state"]);
            if let Some(e) = t["error"].as_str() {
                state = format!("{state}: {e}");
            }
            vec![
                text(&t["id"]),
                state,
                fmt_num(&t["value"]),
                latest,
                params,
                text(&t["run_id"]),
            ]
        })
        .collect()
}

fn summary(board: &Value) -> String {
    let c = &board["counts"];
    let mut s = format!(
        "{}: {} completed, {} early-terminated, {} failed, {} running",
        text(&board["job"]["state"]),
        text(&c["completed"]),
        text(&c["early_terminated"]),
        text(&c["failed"]),
        text(&c["running"]),
    );
    if let Some(b) = board["best"].as_object() {
        s.push_str(&format!(
            "; best trial {} with {} = {}",
            text(&b["trial"]),
            text(&board["primary_metric"]),
            fmt_num(&b["value"])
        ));
    }
    if let Some(n) = board["note"].as_str() {
        s.push_str(&format!(" ({n})"));
    }
    s
}

fn table(board: &Value, top: usize) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    t.set_header(HEADER.to_vec());
    for r in rows(board, top) {
        t.add_row(r);
    }
    format!("{t}\n{}", summary(board))
}

/// Runs `atrium sweep ...`.
pub async fn sweep(c: &Client, cmd: SweepCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        SweepCmd::Submit {
            spec,
            name,
            experiment,
            code,
            follow,
        } => {
            let text_in = tokio::fs::read_to_string(&spec)
                .await
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", spec.display())))?;
            let mut parsed = crate::jobs::JobSpec::parse_file(&spec.to_string_lossy(), &text_in)
                .map_err(|e| CliError::Usage(format!("{}: {e}", spec.display())))?;
            if !matches!(
                parsed.kind,
                crate::jobs::JobKind::Sweep | crate::jobs::JobKind::Automl
            ) {
                return Err(CliError::Usage(format!(
                    "{} is a {} job; `atrium sweep submit` takes type = \"sweep\" or \"automl\" (use `atrium job submit`)",
                    spec.display(),
                    parsed.kind.as_str()
                )));
            }
            parsed.name = name.or(parsed.name);
            parsed.experiment = experiment.or(parsed.experiment);
            let body = serde_json::to_string(&parsed).expect("json");
            let tar = match &code {
                Some(dir) => Some(super::snapshot(dir)?),
                None => None,
            };
            let v = c.submit_job(&c.ws_path("/jobs"), body, tar).await?;
            let id = text(&v["id"]);
            if out == Output::Json && !follow {
                super::output::json_out(&v);
                return Ok(());
            }
            eprintln!(
                "submitted {} job {id} (run {})",
                text(&v["type"]),
                text(&v["run_id"])
            );
            if !follow {
                println!("{id}");
                return Ok(());
            }
            follow_sweep(c, &id, out).await
        }
        SweepCmd::Show { id, top } => {
            let board = c
                .get(&c.ws_path(&format!("/jobs/{}/trials", encode_query(&id))))
                .await?;
            print(out, &board, &HEADER, rows(&board, top));
            if out == Output::Table {
                println!("{}", summary(&board));
            }
            Ok(())
        }
    }
}

/// Redraws the trial table until the sweep ends (one line per change when not a terminal).
async fn follow_sweep(c: &Client, id: &str, out: Output) -> Result<(), CliError> {
    let url = c.ws_path(&format!("/jobs/{}/trials", encode_query(id)));
    let tty = std::io::stdout().is_terminal() && out == Output::Table;
    let mut drawn = 0usize;
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    let board = loop {
        let board = c.get(&url).await?;
        let state = text(&board["job"]["state"]);
        let ended = matches!(state.as_str(), "Completed" | "Failed" | "Canceled");
        if tty {
            let t = table(&board, 15);
            let mut o = std::io::stdout().lock();
            if drawn > 0 {
                let _ = write!(o, "\x1b[{drawn}F\x1b[J");
            }
            let _ = writeln!(o, "{t}");
            let _ = o.flush();
            drawn = t.lines().count();
        } else if out == Output::Table {
            for t in board["trials"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                let key = text(&t["id"]);
                let st = text(&t["state"]);
                if seen.get(&key) != Some(&st) && st != "pending" {
                    println!(
                        "trial {key} {st}{}",
                        t["value"]
                            .as_f64()
                            .map(|v| format!(": {} = {v:.4}", text(&board["primary_metric"])))
                            .unwrap_or_default()
                    );
                    seen.insert(key, st);
                }
            }
        }
        if ended {
            break board;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let job = &board["job"];
    let state = text(&job["state"]);
    if out == Output::Json {
        super::output::json_out(&board);
    } else if !tty {
        println!("{}", table(&board, 20));
    }
    match state.as_str() {
        "Completed" => Ok(()),
        _ => Err(CliError::Job(format!(
            "sweep {id} {}{}",
            state.to_lowercase(),
            job["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))),
    }
}
