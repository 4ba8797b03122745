//! `atrium endpoint ...`: create endpoints, deploy model versions behind scorers, split
//! traffic, score, and read metrics.

use std::collections::BTreeMap;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::ClientError;
use super::client::{Client, encode_path};
use super::output::{json_out, print, text, time};
use super::{CliError, Output};

/// `atrium endpoint ...`
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Create an endpoint; prints its key once.
    Create {
        /// Endpoint name (part of the scoring URL, unique on the host).
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// `key` (callers send `Authorization: Bearer <key>`) or `none`.
        #[arg(long, default_value = "key", value_parser = ["key", "none"])]
        auth: String,
    },
    /// List endpoints.
    List,
    /// Show an endpoint: deployments, traffic, live state.
    Show {
        /// Endpoint name.
        name: String,
    },
    /// Create or update a deployment (new instances are warm before traffic moves).
    Deploy {
        /// Endpoint name.
        endpoint: String,
        /// Deployment name.
        deployment: String,
        /// `models:/name/3`, `models:/name@alias`, or `runs:/<run>/<path>`.
        #[arg(long)]
        model: String,
        /// Scorer component, `name` or `name@version` (default scorer-tabular).
        #[arg(long)]
        scorer: Option<String>,
        /// Scorer instances kept ready.
        #[arg(long)]
        instances: Option<u32>,
        /// Requests running or queued at once before 429.
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Request timeout in milliseconds (504 beyond it).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Scorer config (a JSON object).
        #[arg(long)]
        scorer_config: Option<String>,
        /// cpu, cuda or auto.
        #[arg(long, value_parser = ["cpu", "cuda", "auto"])]
        device: Option<String>,
    },
    /// Set the traffic split: `blue=90 green=10` (sums to 100), optionally a mirror.
    Traffic {
        /// Endpoint name.
        endpoint: String,
        /// `deployment=percent` pairs.
        #[arg(required = true)]
        split: Vec<String>,
        /// `deployment=percent` copied to one deployment (≤ 50), responses discarded.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Score a request (JSON from --data or a file) and print the answer.
    Invoke {
        /// Endpoint name.
        endpoint: String,
        /// Request body.
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        /// File holding the request body.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// Endpoint key (or ATRIUM_ENDPOINT_KEY).
        #[arg(long, env = "ATRIUM_ENDPOINT_KEY")]
        key: Option<String>,
        /// Pin to one deployment.
        #[arg(long)]
        deployment: Option<String>,
        /// Content type of the body.
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
    /// Request counts, errors and latency by deployment.
    Metrics {
        /// Endpoint name.
        endpoint: String,
    },
    /// Replace the endpoint's key; prints the new one once.
    RegenerateKey {
        /// Endpoint name.
        endpoint: String,
    },
    /// Delete an endpoint, or one deployment with --deployment.
    Delete {
        /// Endpoint name.
        endpoint: String,
        /// Only this deployment (refused while it takes traffic).
        #[arg(long)]
        deployment: Option<String>,
    },
}

fn split_pairs(items: &[String]) -> Result<BTreeMap<String, u32>, CliError> {
    let mut out = BTreeMap::new();
    for item in items.iter().flat_map(|s| s.split(',')) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("'{item}' is not deployment=percent")))?;
        let v: u32 = v
            .trim()
            .parse()
            .map_err(|_| CliError::Usage(format!("'{v}' in '{item}' is not a whole percent")))?;
        out.insert(k.trim().to_string(), v);
    }
    Ok(out)
}

/// A deployment's model as the table shows it: the reference it was deployed with and the
/// version it serves (and, for an alias or `latest`, where that points now if it moved).
async fn served_model(c: &Client, d: &Value) -> String {
    let uri = text(&d["model_uri"]);
    let version = d["model_version"].as_i64().unwrap_or(0);
    let Ok(r) = crate::workspace::registry::ModelRef::parse(&uri) else {
        return uri; // runs:/<run>/<path>
    };
    if version <= 0 {
        return uri;
    }
    if matches!(r.selector, crate::workspace::registry::Selector::Version(_)) {
        return uri;
    }
    let now = match c.get(&super::model::version_path(c, &r)).await {
        Ok(v) => v["version"].as_i64(),
        Err(_) => None,
    };
    let what = match &r.selector {
        crate::workspace::registry::Selector::Alias(a) => format!("@{a}"),
        _ => "latest".to_string(),
    };
    match now {
        Some(n) if n == version => format!("{uri} (serves version {version})"),
        Some(n) => format!(
            "{uri} (serves version {version}; {what} is now version {n}: deploy again to follow)"
        ),
        None => format!("{uri} (serves version {version}; {what} no longer resolves)"),
    }
}

async fn show(c: &Client, out: Output, v: &Value) {
    let traffic = &v["traffic"];
    let mut models = Vec::new();
    if out == Output::Table {
        for d in v["deployments"].as_array().into_iter().flatten() {
            models.push(served_model(c, d).await);
        }
    }
    let rows = v["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(models)
        .map(|(d, model)| {
            let name = text(&d["name"]);
            let state = &v["state"][&name];
            vec![
                name.clone(),
                model,
                format!("{}@{}", text(&d["scorer_name"]), text(&d["scorer_version"])),
                traffic[&name].as_u64().unwrap_or(0).to_string(),
                v["mirror"][&name]
                    .as_u64()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                format!("{} ({})", text(&state["state"]), text(&state["instances"])),
                time(&d["updated_at"]),
            ]
        })
        .collect();
    if out == Output::Table {
        println!(
            "endpoint {} ({}), scoring at {}",
            text(&v["name"]),
            text(&v["auth_mode"]),
            text(&v["scoring_uri"])
        );
    }
    print(
        out,
        v,
        &[
            "deployment",
            "model",
            "scorer",
            "traffic %",
            "mirror %",
            "state (instances)",
            "updated",
        ],
        rows,
    );
}

/// Runs `atrium endpoint ...`.
pub async fn endpoint(c: &Client, cmd: EndpointCmd, out: Output) -> Result<(), CliError> {
    let path = |name: &str| c.ws_path(&format!("/endpoints/{}", encode_path(name)));
    match cmd {
        EndpointCmd::Create {
            name,
            description,
            auth,
        } => {
            let v = c
                .call(
                    Method::PUT,
                    &path(&name),
                    Some(&json!({ "description": description, "auth_mode": auth })),
                )
                .await?;
            if out == Output::Json {
                json_out(&v);
            } else {
                eprintln!(
                    "created endpoint {name}; scoring at {}",
                    text(&v["scoring_uri"])
                );
                if let Some(k) = v["key"].as_str() {
                    eprintln!("its key (shown once; store it now):");
                    println!("{k}");
                }
            }
        }
        EndpointCmd::List => {
            let v = c.get(&c.ws_path("/endpoints")).await?;
            let rows = v["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        text(&e["name"]),
                        e["deployments"]
                            .as_array()
                            .map(Vec::len)
                            .unwrap_or(0)
                            .to_string(),
                        e["traffic"]
                            .as_object()
                            .map(|t| {
                                t.iter()
                                    .map(|(k, v)| format!("{k}={v}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .unwrap_or_default(),
                        text(&e["auth_mode"]),
                        time(&e["created_at"]),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &["endpoint", "deployments", "traffic", "auth", "created"],
                rows,
            );
        }
        EndpointCmd::Show { name } => show(c, out, &c.get(&path(&name)).await?).await,
        EndpointCmd::Deploy {
            endpoint,
            deployment,
            model,
            scorer,
            instances,
            max_concurrent,
            timeout_ms,
            scorer_config,
            device,
        } => {
            let mut body = json!({ "model": model });
            if let Some(s) = scorer {
                body["scorer"] = json!(s);
            }
            if let Some(n) = instances {
                body["instances"] = json!(n);
            }
            if let Some(n) = max_concurrent {
                body["max_concurrent_requests"] = json!(n);
            }
            if let Some(n) = timeout_ms {
                body["request_timeout_ms"] = json!(n);
            }
            if let Some(s) = scorer_config {
                body["scorer_config"] = serde_json::from_str(&s)
                    .map_err(|e| CliError::Usage(format!("--scorer-config is not JSON: {e}")))?;
            }
            if let Some(d) = device {
                body["device"] = json!(d);
            }
            let url = format!(
                "{}/deployments/{}",
                path(&endpoint),
                encode_path(&deployment)
            );
            let v = c.call(Method::PUT, &url, Some(&body)).await?;
            show(c, out, &v).await;
        }
        EndpointCmd::Traffic {
            endpoint,
            split,
            mirror,
        } => {
            let traffic = split_pairs(&split)?;
            let mirror = match mirror {
                Some(m) => split_pairs(&[m])?,
                None => BTreeMap::new(),
            };
            let url = format!("{}/traffic", path(&endpoint));
            let v = c
                .call(
                    Method::PUT,
                    &url,
                    Some(&json!({ "traffic": traffic, "mirror": mirror })),
                )
                .await?;
            show(c, out, &v).await;
        }
        EndpointCmd::Invoke {
            endpoint,
            data,
            file,
            key,
            deployment,
            content_type,
        } => {
            let body = match (data, file) {
                (Some(d), _) => d.into_bytes(),
                (None, Some(f)) => tokio::fs::read(&f)
                    .await
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", f.display())))?,
                (None, None) => {
                    return Err(CliError::Usage(
                        "give the request with --data or --file".into(),
                    ));
                }
            };
            let (status, answer) = c
                .score(
                    &endpoint,
                    body,
                    &content_type,
                    key.as_deref(),
                    deployment.as_deref(),
                )
                .await?;
            if !status.is_success() {
                // the usual `error: CODE: message` form, nothing on stdout
                let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                return Err(ClientError::Api {
                    status,
                    code: v["error_code"].as_str().unwrap_or("HTTP_ERROR").to_string(),
                    message: v["message"]
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| String::from_utf8_lossy(&answer).trim().to_string()),
                }
                .into());
            }
            println!("{}", String::from_utf8_lossy(&answer));
        }
        EndpointCmd::Metrics { endpoint } => {
            let v = c.get(&format!("{}/metrics", path(&endpoint))).await?;
            let rows = v["deployments"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, s)| {
                    vec![
                        if name.is_empty() {
                            "(none)".to_string()
                        } else {
                            name.clone()
                        },
                        text(&s["requests"]),
                        text(&s["errors"]),
                        text(&s["in_flight"]),
                        text(&s["p50_ms_at_most"]),
                        text(&s["p99_ms_at_most"]),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &[
                    "deployment",
                    "requests",
                    "errors",
                    "in flight",
                    "p50 ≤ ms",
                    "p99 ≤ ms",
                ],
                rows,
            );
        }
        EndpointCmd::RegenerateKey { endpoint } => {
            let url = c.ws_path(&format!(
                "/endpoints/{}:regenerate-key",
                encode_path(&endpoint)
            ));
            let v = c.call(Method::POST, &url, None).await?;
            if out == Output::Json {
                json_out(&v);
            } else {
                eprintln!("the new key of {endpoint} (shown once; store it now):");
                println!("{}", text(&v["key"]));
            }
        }
        EndpointCmd::Delete {
            endpoint,
            deployment,
        } => {
            let url = match &deployment {
                Some(d) => format!("{}/deployments/{}", path(&endpoint), encode_path(d)),
                None => path(&endpoint),
            };
            let v = c.call(Method::DELETE, &url, None).await?;
            if out == Output::Json {
                json_out(&if v.is_null() {
                    json!({ "endpoint": endpoint, "deployment": deployment, "deleted": true })
                } else {
                    v
                });
            } else {
                match deployment {
                    Some(d) => println!("deleted deployment {d} of {endpoint}"),
                    None => println!("deleted endpoint {endpoint}"),
                }
            }
        }
    }
    Ok(())
}
