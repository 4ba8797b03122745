//! The client verbs.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_path, encode_query};
use super::output::{json_out, print, text, time};
use super::{
    ArtifactCmd, CliError, Command, ComponentCmd, DatastoreCmd, ExperimentCmd, Output, RunCmd,
    WorkspaceCmd,
};

/// Runs a client command.
pub async fn dispatch(c: &Client, cmd: Command, out: Output) -> Result<(), CliError> {
    match cmd {
        Command::Serve(_)
        | Command::Plugin(_)
        | Command::Worker(_)
        | Command::Login
        | Command::Logout => {
            unreachable!("handled by the caller")
        }
        Command::Component(cmd) => component(c, cmd, out).await,
        Command::Dataset(cmd) => super::jobs::dataset(c, cmd, out).await,
        Command::Job(cmd) => super::jobs::job(c, cmd, out).await,
        Command::Model(cmd) => super::model::model(c, cmd, out).await,
        Command::Endpoint(cmd) => super::endpoint::endpoint(c, cmd, out).await,
        Command::Sweep(cmd) => super::sweep::sweep(c, cmd, out).await,
        Command::Secret(cmd) => super::secret::secret(c, cmd, out).await,
        Command::Environment(cmd) => super::environment::environment(c, cmd, out).await,
        Command::Compute(cmd) => super::compute::compute(c, cmd, out).await,
        Command::Pipeline(cmd) => super::pipeline::pipeline(c, cmd, out).await,
        Command::Schedule(cmd) => super::pipeline::schedule(c, cmd, out).await,
        Command::Datastore(cmd) => datastore(c, cmd, out).await,
        Command::User(cmd) => super::access::user(c, cmd, out).await,
        Command::Token(cmd) => super::access::token(c, cmd, out).await,
        Command::Role(cmd) => super::access::role(c, cmd, out).await,
        Command::Audit(cmd) => super::access::audit(c, cmd, out).await,
        Command::Whoami => super::access::whoami(c, out).await,
        Command::Workspace(w) => workspace(c, w, out).await,
        Command::Experiment(e) => experiment(c, e, out).await,
        Command::Run(r) => run(c, r, out).await,
        Command::Artifact(a) => artifact(c, a, out).await,
        Command::Gc {
            only_workspace,
            older_than_secs,
        } => {
            let before =
                older_than_secs.map(|s| crate::workspace::now_millis() - (s as i64) * 1000);
            let v = c
                .call(
                    Method::POST,
                    "/api/v1/gc",
                    Some(&json!({ "workspace": only_workspace, "deleted_before": before })),
                )
                .await?;
            let row = vec![
                text(&v["runs_purged"]),
                text(&v["blobs_deleted"]),
                text(&v["bytes_freed"]),
            ];
            print(
                out,
                &v,
                &["runs purged", "blobs deleted", "bytes freed"],
                vec![row],
            );
            Ok(())
        }
    }
}

fn ws_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|w| {
            vec![
                text(&w["name"]),
                text(&w["description"]),
                time(&w["created_at"]),
            ]
        })
        .collect()
}

async fn workspace(c: &Client, cmd: WorkspaceCmd, out: Output) -> Result<(), CliError> {
    let header = ["name", "description", "created"];
    match cmd {
        WorkspaceCmd::Create {
            name,
            description,
            anonymous_read,
        } => {
            let v = c
                .call(
                    Method::PUT,
                    &format!("/api/v1/workspaces/{}", encode_query(&name)),
                    Some(&json!({ "description": description, "anonymous_read": anonymous_read })),
                )
                .await?;
            print(out, &v, &header, ws_rows(std::slice::from_ref(&v)));
        }
        WorkspaceCmd::List => {
            let v = c.get("/api/v1/workspaces").await?;
            let rows = ws_rows(v["workspaces"].as_array().map(Vec::as_slice).unwrap_or(&[]));
            print(out, &v, &header, rows);
        }
        WorkspaceCmd::Show { name } => {
            let v = c
                .get(&format!("/api/v1/workspaces/{}", encode_query(&name)))
                .await?;
            print(out, &v, &header, ws_rows(std::slice::from_ref(&v)));
        }
        WorkspaceCmd::Delete { name } => {
            let v = c
                .call(
                    Method::DELETE,
                    &format!("/api/v1/workspaces/{}", encode_query(&name)),
                    None,
                )
                .await?;
            if out == Output::Json {
                json_out(&v);
            } else {
                println!("deleted workspace {name}");
            }
        }
    }
    Ok(())
}

async fn experiment(c: &Client, cmd: ExperimentCmd, out: Output) -> Result<(), CliError> {
    let header = ["id", "name", "stage", "created"];
    let rows = |list: &[Value]| -> Vec<Vec<String>> {
        list.iter()
            .map(|e| {
                vec![
                    text(&e["id"]),
                    text(&e["name"]),
                    text(&e["lifecycle_stage"]),
                    time(&e["creation_time"]),
                ]
            })
            .collect()
    };
    match cmd {
        ExperimentCmd::List { filter, all } => {
            let mut path = c.ws_path("/experiments?max_results=50000");
            if let Some(f) = filter {
                path.push_str(&format!("&filter={}", encode_query(&f)));
            }
            if all {
                path.push_str("&view=ALL");
            }
            let v = c.get(&path).await?;
            let r = rows(
                v["experiments"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            );
            print(out, &v, &header, r);
        }
        ExperimentCmd::Create { name, datastore } => {
            let body = json!({ "name": name, "artifact_datastore": datastore });
            let v = c
                .call(Method::POST, &c.ws_path("/experiments"), Some(&body))
                .await?;
            print(out, &v, &header, rows(std::slice::from_ref(&v)));
        }
    }
    Ok(())
}

/// Resolves an experiment given as id or name.
async fn experiment_id(c: &Client, e: &str) -> Result<String, CliError> {
    if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(e.to_string());
    }
    let filter = format!("name = '{}'", e.replace('\'', "''"));
    let v = c
        .get(&c.ws_path(&format!(
            "/experiments?view=ALL&filter={}",
            encode_query(&filter)
        )))
        .await?;
    match v["experiments"].as_array().and_then(|a| a.first()) {
        Some(exp) => Ok(text(&exp["id"])),
        None => Err(CliError::Usage(format!(
            "no experiment named '{e}' in this workspace"
        ))),
    }
}

fn summarize(m: &serde_json::Map<String, Value>, limit: usize) -> String {
    let mut parts: Vec<String> = m
        .iter()
        .take(limit)
        .map(|(k, v)| match v {
            Value::Object(p) => format!("{k}={}", text(&p["value"])),
            other => format!("{k}={}", text(other)),
        })
        .collect();
    if m.len() > limit {
        parts.push(format!("… +{}", m.len() - limit));
    }
    parts.join(" ")
}

async fn run(c: &Client, cmd: RunCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        RunCmd::List {
            experiment,
            filter,
            order_by,
            max_results,
        } => {
            let mut ids = Vec::new();
            for e in &experiment {
                ids.push(experiment_id(c, e).await?);
            }
            let body = json!({
                "experiment_ids": ids,
                "filter": filter.unwrap_or_default(),
                "order_by": order_by,
                "max_results": max_results.max(1),
            });
            let v = c
                .call(Method::POST, &c.ws_path("/runs:search"), Some(&body))
                .await?;
            let empty = serde_json::Map::new();
            let rows = v["runs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|r| {
                    vec![
                        text(&r["id"]),
                        text(&r["name"]),
                        text(&r["experiment_id"]),
                        text(&r["status"]),
                        time(&r["start_time"]),
                        summarize(r["params"].as_object().unwrap_or(&empty), 4),
                        summarize(r["metrics"].as_object().unwrap_or(&empty), 4),
                    ]
                })
                .collect();
            print(
                out,
                &v,
                &[
                    "id", "name", "exp", "status", "started", "params", "metrics",
                ],
                rows,
            );
        }
        RunCmd::Show { id } => {
            let v = c
                .get(&c.ws_path(&format!("/runs/{}", encode_query(&id))))
                .await?;
            let mut rows = vec![
                vec!["id".into(), text(&v["id"])],
                vec!["name".into(), text(&v["name"])],
                vec!["experiment".into(), text(&v["experiment_id"])],
                vec!["status".into(), text(&v["status"])],
                vec!["started".into(), time(&v["start_time"])],
                vec!["ended".into(), time(&v["end_time"])],
                vec!["stage".into(), text(&v["lifecycle_stage"])],
                vec!["artifacts".into(), text(&v["artifact_uri"])],
            ];
            for (section, key) in [("param", "params"), ("metric", "metrics"), ("tag", "tags")] {
                if let Some(m) = v[key].as_object() {
                    for (k, val) in m {
                        let shown = match val {
                            Value::Object(p) => {
                                format!("{} (step {})", text(&p["value"]), text(&p["step"]))
                            }
                            other => text(other),
                        };
                        rows.push(vec![format!("{section} {k}"), shown]);
                    }
                }
            }
            print(out, &v, &["field", "value"], rows);
        }
        RunCmd::Metrics {
            id,
            key,
            max_points,
        } => {
            let mut path = c.ws_path(&format!(
                "/runs/{}/metrics/{}",
                encode_query(&id),
                encode_path(&key)
            ));
            if let Some(n) = max_points {
                path.push_str(&format!("?max_points={n}"));
            }
            let v = c.get(&path).await?;
            let rows = v["points"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|p| vec![text(&p["step"]), text(&p["value"]), time(&p["timestamp"])])
                .collect();
            print(out, &v, &["step", "value", "time"], rows);
        }
    }
    Ok(())
}

/// Downloads `url` to `dest` ('-' for stdout), atomically: a failed download leaves nothing.
/// With `--output json` (and a file), prints `{"file": ..., "bytes": ...}`.
pub(super) async fn save(c: &Client, url: &str, dest: &str, out: Output) -> Result<(), CliError> {
    if dest == "-" {
        c.download(url, &mut tokio::io::stdout()).await?;
        return Ok(());
    }
    let tmp = format!("{dest}.part");
    let mut f = tokio::fs::File::create(&tmp).await?;
    match c.download(url, &mut f).await {
        Ok(n) => {
            f.sync_all().await?;
            tokio::fs::rename(&tmp, dest).await?;
            if out == Output::Json {
                json_out(&json!({ "file": dest, "bytes": n }));
            } else {
                eprintln!("wrote {n} bytes to {dest}");
            }
            Ok(())
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e.into())
        }
    }
}

async fn artifact(c: &Client, cmd: ArtifactCmd, out: Output) -> Result<(), CliError> {
    match cmd {
        ArtifactCmd::Get {
            run,
            path,
            out: dest,
        } => {
            let url = c.ws_path(&format!(
                "/runs/{}/artifacts/{}",
                encode_query(&run),
                encode_path(&path)
            ));
            let dest =
                dest.unwrap_or_else(|| path.rsplit('/').next().unwrap_or("artifact").to_string());
            save(c, &url, &dest, out).await?;
        }
        ArtifactCmd::List { run, path } => {
            let mut url = c.ws_path(&format!("/runs/{}/artifacts", encode_query(&run)));
            if let Some(p) = path {
                url.push_str(&format!("?path={}", encode_query(&p)));
            }
            let v = c.get(&url).await?;
            let rows = v["files"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|f| {
                    let kind = if f["is_dir"].as_bool() == Some(true) {
                        "dir"
                    } else {
                        "file"
                    };
                    vec![
                        text(&f["path"]),
                        kind.to_string(),
                        text(&f["size"]),
                        text(&f["digest"]),
                    ]
                })
                .collect();
            print(out, &v, &["path", "kind", "size", "sha256"], rows);
        }
        ArtifactCmd::Put { run, path, file } => {
            let url = c.ws_path(&format!(
                "/runs/{}/artifacts/{}",
                encode_query(&run),
                encode_path(&path)
            ));
            let v = c.upload(&url, &file).await?;
            print(
                out,
                &v,
                &["path", "size", "sha256"],
                vec![vec![text(&v["path"]), text(&v["size"]), text(&v["digest"])]],
            );
        }
    }
    Ok(())
}

fn component_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|c| {
            let digest = text(&c["digest"]);
            vec![
                text(&c["name"]),
                text(&c["version"]),
                text(&c["kind"]),
                digest.chars().take(12).collect(),
                text(&c["size"]),
                if c["builtin"].as_bool() == Some(true) {
                    "built-in".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect()
}

async fn component(c: &Client, cmd: ComponentCmd, out: Output) -> Result<(), CliError> {
    let header = ["name", "version", "kind", "sha256", "size", ""];
    match cmd {
        ComponentCmd::Push {
            file,
            manifest,
            name,
            version,
        } => {
            let text_manifest = tokio::fs::read_to_string(&manifest).await.map_err(|e| {
                CliError::Usage(format!("cannot read manifest {}: {e}", manifest.display()))
            })?;
            let parsed = crate::plugins::Manifest::parse(&text_manifest)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let name = name.or(parsed.name.clone()).ok_or_else(|| {
                CliError::Usage("give --name or set `name` in the manifest".into())
            })?;
            let version = version.or(parsed.version.clone()).ok_or_else(|| {
                CliError::Usage("give --version or set `version` in the manifest".into())
            })?;
            let wasm = tokio::fs::read(&file)
                .await
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let path = c.ws_path(&format!(
                "/components/{}/versions/{}",
                encode_query(&name),
                encode_query(&version)
            ));
            let v = c.push_component(&path, wasm, text_manifest).await?;
            print(out, &v, &header, component_rows(std::slice::from_ref(&v)));
        }
        ComponentCmd::List => {
            let v = c.get(&c.ws_path("/components")).await?;
            let rows = component_rows(v["components"].as_array().map(Vec::as_slice).unwrap_or(&[]));
            print(out, &v, &header, rows);
        }
        ComponentCmd::Delete { name, version } => {
            let path = c.ws_path(&format!(
                "/components/{}/versions/{}",
                encode_query(&name),
                encode_query(&version)
            ));
            let v = c.call(Method::DELETE, &path, None).await?;
            if out == Output::Json {
                json_out(&v);
            } else {
                println!("deleted component {name}@{version}");
            }
        }
    }
    Ok(())
}

async fn datastore(c: &Client, cmd: DatastoreCmd, out: Output) -> Result<(), CliError> {
    let header = ["name", "default", "component", "version"];
    let rows = |list: &[Value]| -> Vec<Vec<String>> {
        list.iter()
            .map(|d| {
                let default = if d["default"].as_bool() == Some(true) {
                    "yes"
                } else {
                    ""
                };
                vec![
                    text(&d["name"]),
                    default.into(),
                    text(&d["component"]),
                    text(&d["version"]),
                ]
            })
            .collect()
    };
    match cmd {
        DatastoreCmd::Create {
            name,
            component,
            version,
            config,
            dirs,
            http,
            allow_private,
            secret,
            default,
        } => {
            let config: std::collections::BTreeMap<String, String> =
                config.into_iter().flatten().collect();
            // an object store's endpoint is the host the plugin needs to reach
            let http = if http.is_empty() {
                config
                    .get("endpoint")
                    .and_then(|e| e.parse::<reqwest::Url>().ok())
                    .and_then(|u| {
                        u.host_str()
                            .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(80)))
                    })
                    .into_iter()
                    .collect()
            } else {
                http
            };
            let body = json!({
                "component": component,
                "version": version,
                "config": config,
                "dirs": dirs.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "http": http,
                "http_private": allow_private,
                "secrets": secret,
                "default": default,
            });
            let v = c
                .call(
                    Method::PUT,
                    &c.ws_path(&format!("/datastores/{}", encode_query(&name))),
                    Some(&body),
                )
                .await?;
            print(out, &v, &header, rows(std::slice::from_ref(&v)));
        }
        DatastoreCmd::SetDefault { name } => {
            let v = c
                .call(
                    Method::POST,
                    &c.ws_path(&format!("/datastores/{}/default", encode_query(&name))),
                    None,
                )
                .await?;
            print(out, &v, &header, rows(std::slice::from_ref(&v)));
        }
        DatastoreCmd::List => {
            let v = c.get(&c.ws_path("/datastores")).await?;
            let r = rows(v["datastores"].as_array().map(Vec::as_slice).unwrap_or(&[]));
            print(out, &v, &header, r);
        }
        DatastoreCmd::Delete { name } => {
            let v = c
                .call(
                    Method::DELETE,
                    &c.ws_path(&format!("/datastores/{}", encode_query(&name))),
                    None,
                )
                .await?;
            if out == Output::Json {
                json_out(&v);
            } else {
                println!("deleted datastore {name}");
            }
        }
    }
    Ok(())
}
