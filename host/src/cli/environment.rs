//! `atrium environment ...`: create a version (from flags, a `requirements.txt` or a
//! `pyproject.toml`), list, show.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_path};
use super::output::{print, text, time};
use super::{CliError, Output};

/// `atrium environment ...`
#[derive(Debug, Subcommand)]
pub enum EnvironmentCmd {
    /// Create the next version of an environment (answers the latest one when its content is
    /// the same).
    Create {
        /// Name: letters, digits, '-', '_', '.'.
        name: String,
        /// Python version or constraint, e.g. ">=3.11".
        #[arg(long)]
        python: Option<String>,
        /// A requirement (repeatable), e.g. --requirement "scikit-learn==1.9.1".
        #[arg(long = "requirement", short = 'r')]
        requirements: Vec<String>,
        /// A requirements.txt or pyproject.toml (its [project] dependencies and requires-python).
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List environments: every version, the built-in first.
    List,
    /// Show an environment version: NAME (latest), NAME@latest or NAME:VERSION.
    Show {
        /// NAME, NAME@latest or NAME:VERSION.
        reference: String,
    },
}

fn row(v: &Value) -> Vec<String> {
    let reqs = v["requirements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        text(&v["ref"]),
        text(&v["python"]),
        reqs,
        text(&v["hash"]).chars().take(12).collect(),
        if v["builtin"].as_bool() == Some(true) {
            "built-in".into()
        } else {
            time(&v["created_at"])
        },
    ]
}

const HEADER: [&str; 5] = ["environment", "python", "requirements", "hash", "created"];

/// Runs `atrium environment ...`.
pub async fn environment(c: &Client, cmd: EnvironmentCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        EnvironmentCmd::Create {
            name,
            python,
            requirements,
            file,
            description,
        } => {
            let mut body = json!({ "name": name, "requirements": requirements });
            if let Some(p) = python {
                body["python"] = json!(p);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(path) = file {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
                let key = if path.file_name().is_some_and(|n| n == "pyproject.toml") {
                    "pyproject_toml"
                } else {
                    "requirements_txt"
                };
                body[key] = json!(text);
            }
            let (status, v) = c
                .call_status(Method::POST, &c.ws_path("/environments"), Some(&body))
                .await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else if status == reqwest::StatusCode::CREATED {
                println!("created environment {}", text(&v["ref"]));
            } else {
                println!(
                    "environment {} already has this content; nothing created",
                    text(&v["ref"])
                );
            }
        }
        EnvironmentCmd::List => {
            let v = c.get(&c.ws_path("/environments")).await?;
            let rows = v["environments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(row)
                .collect();
            print(out, &v, &HEADER, rows);
        }
        EnvironmentCmd::Show { reference } => {
            let (name, version) = crate::service::parse_environment_ref(&reference)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let version = version.map_or_else(|| "latest".to_string(), |v| v.to_string());
            let v = c
                .get(&c.ws_path(&format!(
                    "/environments/{}/versions/{}",
                    encode_path(name),
                    encode_path(&version)
                )))
                .await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else {
                println!("environment {}", text(&v["ref"]));
                println!("python:       {}", text(&v["python"]));
                println!("hash:         {}", text(&v["hash"]));
                if let Some(d) = v["description"].as_str() {
                    println!("description:  {d}");
                }
                println!("requirements:");
                for r in v["requirements"].as_array().into_iter().flatten() {
                    println!("  {}", text(r));
                }
            }
        }
    }
    Ok(())
}
