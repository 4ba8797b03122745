//! Pages that manage the workspace's assets: registered models (moving aliases), endpoints
//! (traffic, live counters, a test call, key regeneration) and jobs (queue, log, cancel).

use std::collections::BTreeMap;

use atrium_portal::fmt::{self, url_enc};
use atrium_portal::views::{
    Board, DeploymentRow, EndpointLive, EndpointPage, EndpointRow, EndpointsPage, JobPage, JobRow,
    JobsPage, Kv, LiveRow, LogPart, ModelPage, ModelRow, ModelsPage, TrialRow, VersionRow,
};
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{Page, PortalError, chrome, html, page};
use crate::api::AppState;
use crate::api::extract::{QueryMap, Ws};
use crate::auth::Principal;
use crate::serving::ScoreRequest;
use crate::workspace::{DomainError, Workspace};

/// `GET /ui/ws/{ws}/models`.
pub async fn models(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "models", "Models").await?;
    let rows = st
        .svc
        .store
        .registered_models(ws.id, None)
        .await?
        .into_iter()
        .map(|m| ModelRow {
            latest: m
                .latest_version
                .map(|v| format!("v{v}"))
                .unwrap_or_default(),
            aliases: m
                .aliases
                .iter()
                .map(|(a, v)| Kv {
                    k: a.clone(),
                    v: v.to_string(),
                })
                .collect(),
            description: m.description,
            updated: fmt::time(m.updated_at),
            name: m.name,
        })
        .collect();
    page(&ModelsPage { chrome: c, rows })
}

async fn model_page(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &Workspace,
    name: &str,
    flash: Option<(bool, String)>,
) -> Page {
    let m = st.svc.store.registered_model(ws.id, name).await?;
    let c = chrome(st, who, headers, &ws.name, "models", m.name.clone()).await?;
    let endpoints = st.serving.list(ws).await?;
    let mut versions: Vec<VersionRow> = st
        .svc
        .store
        .model_versions(ws.id, Some(name), None)
        .await?
        .into_iter()
        .map(|v| VersionRow {
            deployments: endpoints
                .iter()
                .flat_map(|e| {
                    e.endpoint
                        .deployments
                        .iter()
                        .filter(|d| d.model_name == v.name && d.model_version == v.version)
                        .map(|d| format!("{}#{}", e.endpoint.name, d.name))
                        .collect::<Vec<_>>()
                })
                .collect(),
            version: v.version,
            run_id: v.run_id,
            source: v.source,
            aliases: v.aliases,
            tags: v
                .tags
                .iter()
                .map(|(k, x)| Kv {
                    k: k.clone(),
                    v: x.clone(),
                })
                .collect(),
            created: fmt::time(v.created_at),
            datasets: v.dataset.into_iter().collect(),
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let aliases = m
        .aliases
        .iter()
        .map(|(a, v)| Kv {
            k: a.clone(),
            v: v.to_string(),
        })
        .collect();
    page(&ModelPage {
        chrome: c,
        name: m.name,
        description: m.description,
        versions,
        aliases,
        flash,
    })
}

/// `GET /ui/ws/{ws}/models/{name}`.
pub async fn model(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Page {
    model_page(&st, &who, &headers, &ws, &name, None).await
}

/// The alias form.
#[derive(Deserialize)]
pub struct AliasForm {
    /// Alias name.
    alias: String,
    /// Version it points at.
    version: String,
}

/// `POST /ui/ws/{ws}/models/{name}/alias`: points an alias at a version (moving it if it
/// pointed elsewhere); answers the model page with the outcome.
pub async fn set_alias(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Form(f): Form<AliasForm>,
) -> Page {
    let flash = match f.version.trim().parse::<i64>() {
        Err(_) => (
            false,
            format!("version must be a number, got '{}'", f.version),
        ),
        Ok(v) => match st.svc.set_model_alias(&ws, &name, f.alias.trim(), v).await {
            Ok(_) => (
                true,
                format!("@{} now points at version {v}", f.alias.trim()),
            ),
            Err(e @ (DomainError::InvalidArgument(_) | DomainError::NotFound(_))) => {
                (false, e.to_string())
            }
            Err(e) => return Err(e.into()),
        },
    };
    model_page(&st, &who, &headers, &ws, &name, Some(flash)).await
}

/// `GET /ui/ws/{ws}/endpoints`.
pub async fn endpoints(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "endpoints", "Endpoints").await?;
    let rows = st
        .serving
        .list(&ws)
        .await?
        .into_iter()
        .map(|e| EndpointRow {
            deployments: e
                .endpoint
                .deployments
                .iter()
                .map(|d| {
                    format!(
                        "{}: {} ({}%)",
                        d.name,
                        served(d),
                        e.endpoint.traffic.get(&d.name).copied().unwrap_or(0)
                    )
                })
                .collect(),
            uri: e.scoring_uri,
            description: e.endpoint.description,
            name: e.endpoint.name,
        })
        .collect();
    page(&EndpointsPage { chrome: c, rows })
}

/// What a deployment serves, as a person reads it.
fn served(d: &crate::workspace::endpoint::Deployment) -> String {
    if d.model_version > 0 {
        format!("{} v{}", d.model_name, d.model_version)
    } else {
        d.model_uri.clone()
    }
}

async fn endpoint_page(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &Workspace,
    name: &str,
    flash: Option<(bool, String)>,
    new_key: Option<String>,
) -> Page {
    let e = st.serving.endpoint(ws, name).await?;
    let c = chrome(
        st,
        who,
        headers,
        &ws.name,
        "endpoints",
        e.endpoint.name.clone(),
    )
    .await?;
    let deployments = e
        .endpoint
        .deployments
        .iter()
        .map(|d| DeploymentRow {
            model: served(d),
            model_link: (d.model_version > 0).then(|| {
                format!(
                    "/ui/ws/{}/models/{}",
                    url_enc(&ws.name),
                    url_enc(&d.model_name)
                )
            }),
            scorer: format!("{}@{}", d.scorer_name, d.scorer_version),
            traffic: e.endpoint.traffic.get(&d.name).copied().unwrap_or(0),
            mirror: e.endpoint.mirror.get(&d.name).copied().unwrap_or(0),
            state: e
                .state
                .get(&d.name)
                .map(|s| format!("{} ({} instances)", s.state, s.instances))
                .unwrap_or_default(),
            name: d.name.clone(),
        })
        .collect();
    page(&EndpointPage {
        chrome: c,
        name: e.endpoint.name.clone(),
        description: e.endpoint.description.clone(),
        uri: e.scoring_uri.clone(),
        auth_mode: format!("{:?}", e.endpoint.auth_mode).to_lowercase(),
        deployments,
        flash,
        new_key,
    })
}

/// `GET /ui/ws/{ws}/endpoints/{name}`.
pub async fn endpoint(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Page {
    endpoint_page(&st, &who, &headers, &ws, &name, None, None).await
}

/// `GET /ui/ws/{ws}/endpoints/{name}/live?prev=..`: counters per deployment; `prev` carries
/// the last poll's counts and time, for requests per second.
pub async fn endpoint_live(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    uri: Uri,
) -> Page {
    let q = QueryMap::parse(uri.query().unwrap_or(""));
    let now = crate::workspace::now_millis();
    // prev = "<millis>;<deployment>=<requests>;..."
    let mut prev: BTreeMap<String, u64> = BTreeMap::new();
    let mut prev_at = None;
    if let Some(p) = q.get("prev") {
        let mut it = p.split(';');
        prev_at = it.next().and_then(|t| t.parse::<i64>().ok());
        for kv in it {
            if let Some((k, v)) = kv.split_once('=')
                && let Ok(n) = v.parse()
            {
                prev.insert(k.to_string(), n);
            }
        }
    }
    let metrics = st.serving.endpoint_metrics(&ws, &name).await?;
    let mut state = now.to_string();
    let rows = metrics
        .iter()
        .map(|(d, s)| {
            state.push_str(&format!(";{d}={}", s.requests));
            let rps = match (prev_at, prev.get(d)) {
                (Some(t), Some(n)) if now > t => {
                    format!(
                        "{:.1}",
                        (s.requests.saturating_sub(*n)) as f64 * 1000.0 / (now - t) as f64
                    )
                }
                _ => "–".to_string(),
            };
            let ms = |v: Option<f64>| {
                v.map(|x| format!("{} ms", fmt::num(x)))
                    .unwrap_or_else(|| "–".into())
            };
            LiveRow {
                name: if d.is_empty() {
                    "(none)".into()
                } else {
                    d.clone()
                },
                rps,
                requests: s.requests,
                errors: s.errors,
                p50: ms(s.p50_ms_at_most),
                p99: ms(s.p99_ms_at_most),
                in_flight: s.in_flight,
            }
        })
        .collect();
    Ok(html(&EndpointLive {
        ws: ws.name.clone(),
        name,
        rows,
        state: url_enc(&state),
    })
    .into_response())
}

/// `POST /ui/ws/{ws}/endpoints/{name}/traffic` with `traffic.<deployment>` and
/// `mirror.<deployment>` fields.
pub async fn set_traffic(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Page {
    let mut traffic = BTreeMap::new();
    let mut mirror = BTreeMap::new();
    let mut bad = None;
    for (k, v) in &f {
        let v = v.trim();
        let pct = if v.is_empty() {
            Ok(0)
        } else {
            v.parse::<u32>()
        };
        let Ok(pct) = pct else {
            bad = Some(format!("'{k}' must be a whole percent, got '{v}'"));
            break;
        };
        if let Some(d) = k.strip_prefix("traffic.") {
            traffic.insert(d.to_string(), pct);
        } else if let Some(d) = k.strip_prefix("mirror.") {
            if pct > 0 {
                mirror.insert(d.to_string(), pct);
            }
        }
    }
    traffic.retain(|_, v| *v > 0);
    let flash = match bad {
        Some(m) => (false, m),
        None => match st.serving.set_traffic(&ws, &name, traffic, mirror).await {
            Ok(_) => (true, "traffic saved".to_string()),
            Err(e @ (DomainError::InvalidArgument(_) | DomainError::InvalidState(_))) => {
                (false, e.to_string())
            }
            Err(e) => return Err(e.into()),
        },
    };
    endpoint_page(&st, &who, &headers, &ws, &name, Some(flash), None).await
}

/// The test form.
#[derive(Deserialize)]
pub struct TestForm {
    /// The request body (MLflow's scoring JSON).
    payload: String,
}

/// `POST /ui/ws/{ws}/endpoints/{name}/test`: scores a payload as a client would, and shows
/// the answer and the deployment that gave it.
pub async fn test_endpoint(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Form(f): Form<TestForm>,
) -> Page {
    st.serving.endpoint(&ws, &name).await?;
    let req = ScoreRequest {
        key: None,
        // the guard checked the caller's role on this workspace
        reader: true,
        pin: None,
        content_type: crate::api::scoring::MLFLOW_JSON.to_string(),
        body: bytes::Bytes::from(f.payload.into_bytes()),
    };
    let (ok, text) = match st.serving.score(&name, req).await {
        Ok(s) => {
            let body = String::from_utf8_lossy(&s.body).to_string();
            let pretty = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(body);
            (
                true,
                format!("200 from deployment {}\n{pretty}", s.deployment),
            )
        }
        Err(e) => (false, format!("{}: {e}", e.status())),
    };
    Ok(html(&LogPart {
        text: if ok { text } else { format!("error {text}") },
        poll: None,
    })
    .into_response())
}

/// `POST /ui/ws/{ws}/endpoints/{name}/regenerate-key` (Owners): the new key is shown once.
pub async fn regenerate_key(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Page {
    let v = st.serving.regenerate_key(&ws, &name).await?;
    endpoint_page(
        &st,
        &who,
        &headers,
        &ws,
        &name,
        Some((true, "key regenerated: the old key no longer works".into())),
        v.key,
    )
    .await
}

fn job_row(j: &crate::store::JobRow) -> JobRow {
    JobRow {
        id: j.id.clone(),
        kind: j.kind.clone(),
        state: j.state.as_str().to_string(),
        run_id: j.run_id.clone(),
        created: fmt::time(j.created_at),
    }
}

/// `GET /ui/ws/{ws}/jobs`: the newest 200 jobs.
pub async fn jobs(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "jobs", "Jobs").await?;
    let rows = st
        .svc
        .store
        .list_jobs(ws.id, None, 200)
        .await?
        .iter()
        .map(job_row)
        .collect();
    page(&JobsPage { chrome: c, rows })
}

/// The leaderboard of a sweep or AutoML job (`None` for other kinds).
async fn board(
    st: &AppState,
    ws: &Workspace,
    j: &crate::store::JobRow,
    can_write: bool,
) -> Result<Option<Board>, PortalError> {
    if !matches!(j.kind.as_str(), "sweep" | "automl") {
        return Ok(None);
    }
    let state = st.executor.sweep_state(j).await?;
    let lb = state.leaderboard();
    let rows: Vec<TrialRow> = lb["trials"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|t| TrialRow {
            id: t["id"].as_u64().unwrap_or(0),
            state: t["state"].as_str().unwrap_or("").to_string(),
            value: t["value"].as_f64().map(fmt::num).unwrap_or_default(),
            params: t["params"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| match v {
                            serde_json::Value::String(s) => format!("{k}={s}"),
                            other => format!("{k}={other}"),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            run_id: t["run_id"].as_str().map(str::to_string),
        })
        .collect();
    let runs: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.run_id.as_deref())
        .take(100)
        .collect();
    let c = &lb["counts"];
    let counts = [
        "completed",
        "early_terminated",
        "running",
        "pending",
        "failed",
        "canceled",
    ]
    .iter()
    .filter_map(|k| {
        let n = c[*k].as_u64().unwrap_or(0);
        (n > 0).then(|| format!("{n} {}", k.replace('_', " ")))
    })
    .collect::<Vec<_>>()
    .join(", ");
    Ok(Some(Board {
        ws: ws.name.clone(),
        job: j.id.clone(),
        metric: state.primary_metric.clone(),
        goal: lb["goal"].as_str().unwrap_or("maximize").to_string(),
        counts: if counts.is_empty() {
            "no trials yet".into()
        } else {
            counts
        },
        best_run: lb["best"]["run_id"].as_str().map(str::to_string),
        compare_url: (runs.len() >= 2).then(|| {
            format!(
                "/ui/ws/{}/compare?runs={}",
                url_enc(&ws.name),
                runs.join(",")
            )
        }),
        runs_csv: runs.join(","),
        live: !j.state.is_terminal(),
        can_write,
        rows,
    }))
}

/// `GET /ui/ws/{ws}/jobs/{id}/trials`: the leaderboard part (polled while the sweep runs).
pub async fn trials(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Page {
    let j = st.svc.store.job(ws.id, &id).await?;
    match board(&st, &ws, &j, false).await? {
        Some(b) => Ok(html(&b).into_response()),
        None => Err(DomainError::invalid(format!(
            "job {id} is a {} job; only sweep and automl jobs have trials",
            j.kind
        ))
        .into()),
    }
}

/// The register-best form.
#[derive(Deserialize)]
pub struct RegisterBestForm {
    /// Registered model name.
    model: String,
}

/// `POST /ui/ws/{ws}/jobs/{id}/register-best`: registers the best trial's model (its run's
/// `model` directory) as the next version of the named model.
pub async fn register_best(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    Form(f): Form<RegisterBestForm>,
) -> Page {
    let j = st.svc.store.job(ws.id, &id).await?;
    let state = st.executor.sweep_state(&j).await?;
    let flash = match state.best().and_then(|b| b.run_id.clone()) {
        None => (
            false,
            "this job has no best trial with a run yet".to_string(),
        ),
        Some(run) => {
            let req = crate::service::RegisterRequest {
                name: f.model.trim().to_string(),
                create_model: true,
                description: format!("best trial of {} job {}", j.kind, j.id),
                tags: Default::default(),
                aliases: Vec::new(),
            };
            match st
                .svc
                .register_model_from_run(&ws, req, &run, "model", None)
                .await
            {
                Ok(v) => (
                    true,
                    format!("registered {} version {} from run {run}", v.name, v.version),
                ),
                Err(
                    e @ (DomainError::InvalidArgument(_)
                    | DomainError::NotFound(_)
                    | DomainError::AlreadyExists(_)),
                ) => (false, e.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    job_page_with(&st, &who, &headers, &ws, &id, Some(flash)).await
}

async fn job_page(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &Workspace,
    id: &str,
) -> Page {
    job_page_with(st, who, headers, ws, id, None).await
}

async fn job_page_with(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &Workspace,
    id: &str,
    flash: Option<(bool, String)>,
) -> Page {
    let j = st.svc.store.job(ws.id, id).await?;
    let c = chrome(st, who, headers, &ws.name, "jobs", format!("job {}", j.id)).await?;
    let board = board(st, ws, &j, c.can_write()).await?;
    let spec = serde_json::from_str::<serde_json::Value>(&j.spec)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| j.spec.clone());
    page(&JobPage {
        chrome: c,
        live: !j.state.is_terminal(),
        spec,
        error: j.error.clone(),
        board,
        flash,
        job: job_row(&j),
    })
}

/// `GET /ui/ws/{ws}/jobs/{id}`.
pub async fn job(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Page {
    job_page(&st, &who, &headers, &ws, &id).await
}

/// `GET /ui/ws/{ws}/jobs/{id}/log`: the last 500 lines; polled while the job runs.
pub async fn job_log(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Page {
    let j = st.svc.store.job(ws.id, &id).await?;
    let text = st.executor.logs().tail(&j.id, 500)?;
    let poll =
        (!j.state.is_terminal()).then(|| format!("/ui/ws/{}/jobs/{}/log", url_enc(&ws.name), j.id));
    Ok(html(&LogPart {
        text: if text.is_empty() {
            "(no output yet)".into()
        } else {
            text
        },
        poll,
    })
    .into_response())
}

/// `POST /ui/ws/{ws}/jobs/{id}/cancel`.
pub async fn cancel_job(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Result<axum::response::Response, PortalError> {
    st.executor.cancel(&ws, &id).await?;
    job_page(&st, &who, &headers, &ws, &id).await
}
