//! `atrium model ...`: the model registry (register from a run or a directory, list, show,
//! aliases, delete) and `predict`: load a trained model from a run's artifacts or from the
//! registry and score a CSV locally, with exactly the preprocessing training learned.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_path, encode_query};
use super::output::{print, text, time};
use super::{CliError, Output, key_value};
use crate::train::{Prediction, Predictions, TrainedModel};
use crate::workspace::dataset::parse_upload;
use crate::workspace::registry::{ModelRef, Selector};

/// `atrium model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Register a model version from a run's artifact directory (--run), an MLflow logged model
    /// (--logged-model) or a local directory (--dir); the registered model is created if absent.
    Register {
        /// Registered model name.
        #[arg(long)]
        name: String,
        /// Run whose artifacts hold the model.
        #[arg(long, required_unless_present_any = ["dir", "logged_model"], conflicts_with_all = ["dir", "logged_model"])]
        run: Option<String>,
        /// MLflow logged model to register (`m-...` or `models:/m-...`), e.g. what
        /// `mlflow.sklearn.log_model` created.
        #[arg(long, conflicts_with = "dir")]
        logged_model: Option<String>,
        /// Artifact directory of the model in the run.
        #[arg(long, default_value = "model")]
        path: String,
        /// Local directory to upload as the version's files.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Description of the version.
        #[arg(long)]
        description: Option<String>,
        /// Alias to point at the new version (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        /// Tag KEY=VALUE of the version (repeatable).
        #[arg(long = "tag", value_parser = key_value)]
        tags: Vec<(String, String)>,
    },
    /// List registered models.
    List,
    /// Show a model's versions (NAME) or one version with its lineage and files
    /// (NAME/VERSION, NAME@ALIAS, NAME/latest; a models:/ prefix is accepted).
    Show {
        /// NAME, NAME/VERSION or NAME@ALIAS.
        model: String,
    },
    /// Point an alias at a version, or remove it with --delete.
    Alias {
        /// Registered model name.
        name: String,
        /// Alias (e.g. champion).
        alias: String,
        /// Version number (not with --delete).
        #[arg(required_unless_present = "delete", conflicts_with = "delete")]
        version: Option<i64>,
        /// Remove the alias.
        #[arg(long)]
        delete: bool,
    },
    /// Delete a registered model with all its versions, or one version.
    Delete {
        /// Registered model name.
        name: String,
        /// Only this version (number or @alias).
        #[arg(long)]
        version: Option<String>,
    },
    /// Predict the rows of a CSV with a trained model from a run or from the registry.
    Predict {
        /// Run id.
        #[arg(long, required_unless_present = "model", conflicts_with = "model")]
        run: Option<String>,
        /// Registered model version: models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME;
        /// or an MLflow logged model holding an Atrium model, models:/m-....
        #[arg(long)]
        model: Option<String>,
        /// Artifact directory of the model in the run.
        #[arg(long, default_value = "model")]
        path: String,
        /// CSV with the feature columns (other columns are ignored).
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

async fn fetch(c: &Client, run: &str, path: &str) -> Result<Vec<u8>, CliError> {
    let mut out = Vec::new();
    let url = c.ws_path(&format!(
        "/runs/{}/artifacts/{}",
        encode_query(run),
        encode_path(path)
    ));
    c.download(&url, &mut out).await?;
    Ok(out)
}

/// `/models/{name}/versions/{selector}` for a reference.
pub(super) fn version_path(c: &Client, r: &ModelRef) -> String {
    let sel = match &r.selector {
        Selector::Version(v) => v.to_string(),
        Selector::Alias(a) => format!("@{}", encode_query(a)),
        Selector::Latest => "latest".into(),
    };
    c.ws_path(&format!("/models/{}/versions/{sel}", encode_query(&r.name)))
}

/// Every file under `dir`, as (path relative to `dir` with `/` separators, bytes).
fn read_dir_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", d.display())))?;
        for entry in entries {
            let entry = entry?;
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("below the walked directory")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, std::fs::read(&p)?));
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(format!("{} holds no files", dir.display())));
    }
    out.sort();
    Ok(out)
}

fn version_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|v| {
            let aliases: Vec<String> = v["aliases"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|a| format!("@{}", text(a)))
                .collect();
            vec![
                text(&v["version"]),
                aliases.join(" "),
                text(&v["status"]),
                text(&v["run_id"]),
                text(&v["dataset"]),
                time(&v["created_at"]),
            ]
        })
        .collect()
}

fn print_json(v: &Value) {
    super::output::json_out(v);
}

/// Runs `atrium model ...`.
pub async fn model(c: &Client, cmd: ModelCmd, out: Output) -> Result<(), CliError> {
    let version_header = ["version", "aliases", "status", "run", "dataset", "created"];
    match cmd {
        ModelCmd::Predict {
            run,
            model,
            path,
            file,
        } => predict(c, run, model, &path, &file, out).await,
        ModelCmd::Register {
            name,
            run,
            logged_model,
            path,
            dir,
            description,
            alias,
            tags,
        } => {
            let url = c.ws_path(&format!("/models/{}/versions", encode_query(&name)));
            let tags: serde_json::Map<String, Value> =
                tags.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let v = match (run, dir) {
                _ if logged_model.is_some() => {
                    let body = json!({
                        "model_id": logged_model, "description": description,
                        "tags": tags, "aliases": alias,
                    });
                    c.call(Method::POST, &url, Some(&body)).await?
                }
                (Some(run), _) => {
                    let body = json!({
                        "run_id": run, "path": path, "description": description,
                        "tags": tags, "aliases": alias,
                    });
                    c.call(Method::POST, &url, Some(&body)).await?
                }
                (None, Some(dir)) => {
                    let files = read_dir_files(&dir)?;
                    let meta =
                        json!({ "description": description, "tags": tags, "aliases": alias });
                    c.upload_model(&url, &meta, files).await?
                }
                (None, None) => unreachable!("clap requires --run or --dir"),
            };
            print(
                out,
                &v,
                &version_header,
                version_rows(std::slice::from_ref(&v)),
            );
            if out == Output::Table {
                println!("registered {}", text(&v["ref"]));
            }
            Ok(())
        }
        ModelCmd::List => {
            let v = c.get(&c.ws_path("/models?max_results=1000")).await?;
            let rows = v["models"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|m| {
                    let aliases: Vec<String> = m["aliases"]
                        .as_object()
                        .map(|o| o.iter().map(|(a, v)| format!("@{a}={v}")).collect())
                        .unwrap_or_default();
                    vec![
                        text(&m["name"]),
                        text(&m["latest_version"]),
                        text(&m["version_count"]),
                        aliases.join(" "),
                        text(&m["description"]),
                        time(&m["updated_at"]),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &[
                    "name",
                    "latest",
                    "versions",
                    "aliases",
                    "description",
                    "updated",
                ],
                rows,
            );
            Ok(())
        }
        ModelCmd::Show { model } => {
            let bare = model.strip_prefix("models:/").unwrap_or(&model);
            if !bare.contains('/') && !bare.contains('@') {
                let v = c
                    .get(&c.ws_path(&format!("/models/{}", encode_query(bare))))
                    .await?;
                if out == Output::Json {
                    print_json(&v);
                    return Ok(());
                }
                println!("{}  {}", text(&v["name"]), text(&v["description"]));
                let rows = version_rows(v["versions"].as_array().map(Vec::as_slice).unwrap_or(&[]));
                print(out, &v, &version_header, rows);
                return Ok(());
            }
            let r = ModelRef::parse(&model).map_err(|e| CliError::Usage(e.to_string()))?;
            let v = c.get(&version_path(c, &r)).await?;
            if out == Output::Json {
                print_json(&v);
                return Ok(());
            }
            let mut rows = vec![
                vec!["ref".to_string(), text(&v["ref"])],
                vec!["status".to_string(), text(&v["status"])],
                vec!["stage".to_string(), text(&v["stage"])],
                vec![
                    "aliases".to_string(),
                    v["aliases"]
                        .as_array()
                        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                ],
                vec!["source".to_string(), text(&v["source"])],
                vec!["run".to_string(), text(&v["run_id"])],
                vec!["dataset".to_string(), text(&v["dataset"])],
                vec!["job".to_string(), text(&v["job_id"])],
                vec!["description".to_string(), text(&v["description"])],
                vec!["created".to_string(), time(&v["created_at"])],
            ];
            if let Some(tags) = v["tags"].as_object() {
                rows.extend(tags.iter().map(|(k, t)| vec![format!("tag {k}"), text(t)]));
            }
            if let Some(files) = v["files"].as_array() {
                rows.extend(files.iter().map(|f| {
                    vec![
                        format!("file {}", text(&f["path"])),
                        format!("{} bytes", text(&f["size"])),
                    ]
                }));
            }
            print(out, &v, &["field", "value"], rows);
            Ok(())
        }
        ModelCmd::Alias {
            name,
            alias,
            version,
            delete,
        } => {
            let url = c.ws_path(&format!(
                "/models/{}/aliases/{}",
                encode_query(&name),
                encode_query(&alias)
            ));
            let v = if delete {
                c.call(Method::DELETE, &url, None).await?
            } else {
                c.call(Method::PUT, &url, Some(&json!({ "version": version })))
                    .await?
            };
            if out == Output::Json {
                print_json(&v);
            } else if delete {
                println!("removed alias {name}@{alias}");
            } else {
                println!("{name}@{alias} -> version {}", text(&v["version"]));
            }
            Ok(())
        }
        ModelCmd::Delete { name, version } => {
            let url = match &version {
                Some(v) => c.ws_path(&format!(
                    "/models/{}/versions/{}",
                    encode_query(&name),
                    encode_query(v)
                )),
                None => c.ws_path(&format!("/models/{}", encode_query(&name))),
            };
            let v = c.call(Method::DELETE, &url, None).await?;
            if out == Output::Json {
                print_json(&v);
            } else {
                println!("deleted {}", text(&v["deleted"]));
            }
            Ok(())
        }
    }
}

/// Scores a CSV locally with a model from a run or from the registry.
async fn predict(
    c: &Client,
    run: Option<String>,
    model: Option<String>,
    path: &str,
    file: &Path,
    out: Output,
) -> Result<(), CliError> {
    let logged = model
        .as_deref()
        .and_then(|m| m.strip_prefix("models:/"))
        .filter(|id| crate::workspace::logged_model::is_model_id(id))
        .map(String::from);
    let (json, weights) = match (run, model) {
        (_, Some(_)) if logged.is_some() => {
            // an MLflow logged model that holds an Atrium model
            let base = c.ws_path(&format!(
                "/logged-models/{}/artifacts",
                logged.as_deref().unwrap_or_default()
            ));
            let mut json = Vec::new();
            c.download(&format!("{base}/model.json"), &mut json).await?;
            let mut weights = Vec::new();
            c.download(&format!("{base}/model.safetensors"), &mut weights)
                .await?;
            (json, weights)
        }
        (_, Some(m)) => {
            let r = ModelRef::parse(&m).map_err(|e| CliError::Usage(e.to_string()))?;
            let base = version_path(c, &r);
            let mut json = Vec::new();
            c.download(&format!("{base}/files/model.json"), &mut json)
                .await?;
            let mut weights = Vec::new();
            c.download(&format!("{base}/files/model.safetensors"), &mut weights)
                .await?;
            (json, weights)
        }
        (Some(run), None) => {
            let dir = path.trim_end_matches('/');
            (
                fetch(c, &run, &format!("{dir}/model.json")).await?,
                fetch(c, &run, &format!("{dir}/model.safetensors")).await?,
            )
        }
        (None, None) => unreachable!("clap requires --run or --model"),
    };
    let model = TrainedModel::from_files(&json, &weights, &candle_core::Device::Cpu)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let (table, _) = parse_upload(&bytes, None)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let rows: Vec<HashMap<String, String>> = table
        .rows
        .iter()
        .map(|r| {
            table
                .header
                .iter()
                .cloned()
                .zip(r.iter().cloned())
                .collect()
        })
        .collect();
    let preds = model
        .predict(&rows)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if out == Output::Json {
        // the shape an endpoint and the predict route answer
        let classification = preds.iter().any(|p| matches!(p, Prediction::Class { .. }));
        print_json(&json!(Predictions::new(preds, classification)));
        return Ok(());
    }
    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
    let csv_err = |e: csv::Error| CliError::Io(std::io::Error::other(e));
    for (i, p) in preds.iter().enumerate() {
        match p {
            Prediction::Class {
                label,
                probabilities,
            } => {
                if i == 0 {
                    let mut h = vec!["prediction".to_string()];
                    h.extend(probabilities.keys().map(|k| format!("p_{k}")));
                    w.write_record(&h).map_err(csv_err)?;
                }
                let mut r = vec![label.clone()];
                r.extend(probabilities.values().map(|v| v.to_string()));
                w.write_record(&r).map_err(csv_err)?;
            }
            Prediction::Value { value } => {
                if i == 0 {
                    w.write_record(["prediction"]).map_err(csv_err)?;
                }
                w.write_record([value.to_string()]).map_err(csv_err)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
