//! Tracking pages: experiments, the runs table, a run, comparing runs, the charts' series
//! (downsampled on the server to the chart's width) and the artifact browser.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use atrium_portal::fmt::{self, url_enc};
use atrium_portal::series::{Point, min_max};
use atrium_portal::views::{
    ArtRow, ArtifactsPart, Choice, Col, ComparePage, DiffRow, ExpRow, ExperimentsPage, Kv, Preview,
    RunPage, RunRef, RunRow, RunsPage, RunsTable, script_json,
};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::IntoResponse;

use super::{Page, PortalError, chrome, html, page};
use crate::api::AppState;
use crate::api::extract::{QueryMap, Ws};
use crate::api::search::{self, RunSearch};
use crate::auth::Principal;
use crate::workspace::{DomainError, Run, RunStatus, ViewType, Workspace};

/// Runs per page of the runs table.
const PAGE: i64 = 100;
/// Most runs a compare page or a chart takes.
const MAX_COMPARE: usize = 100;
/// Largest artifact preview read.
const PREVIEW_BYTES: usize = 256 * 1024;

fn query(uri: &Uri) -> QueryMap {
    QueryMap::parse(uri.query().unwrap_or(""))
}

/// Whether htmx asked for a page part (not a whole page).
fn is_part(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request") && !headers.contains_key("hx-boosted")
}

/// `GET /ui/ws/{ws}`: the experiments.
pub async fn experiments(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "runs", "Experiments").await?;
    let (list, _) = search::experiments(
        &st.svc,
        &ws,
        "",
        &["last_update_time DESC".to_string()],
        ViewType::ActiveOnly,
        Some(1000),
        None,
    )
    .await?;
    let rows = list
        .into_iter()
        .map(|e| ExpRow {
            id: e.id,
            name: e.name,
            created: fmt::time(e.creation_time),
            updated: fmt::time(e.last_update_time),
        })
        .collect();
    page(&ExperimentsPage { chrome: c, rows })
}

/// The state of a runs table view, as kept in its URL.
struct View {
    ws: String,
    exp: i64,
    filter: String,
    order: String,
    cols: Vec<String>,
    page: Option<String>,
}

impl View {
    fn url(&self, order: &str, page: Option<&str>) -> String {
        let mut u = format!(
            "/ui/ws/{}/experiments/{}?cols=1",
            url_enc(&self.ws),
            self.exp
        );
        if !self.filter.is_empty() {
            u.push_str(&format!("&filter={}", url_enc(&self.filter)));
        }
        if !order.is_empty() {
            u.push_str(&format!("&order={}", url_enc(order)));
        }
        for c in &self.cols {
            u.push_str(&format!("&col={}", url_enc(c)));
        }
        if let Some(p) = page {
            u.push_str(&format!("&page={}", url_enc(p)));
        }
        u
    }

    fn col(&self, key: &str, label: &str) -> Col {
        let (sorted, next) = match self.order.rsplit_once(' ') {
            Some((k, d)) if k == key && d.eq_ignore_ascii_case("desc") => {
                ("desc", format!("{key} ASC"))
            }
            Some((k, _)) if k == key => ("asc", format!("{key} DESC")),
            _ if self.order == key => ("asc", format!("{key} DESC")),
            _ => ("", format!("{key} DESC")),
        };
        Col {
            key: key.to_string(),
            label: label.to_string(),
            sort_url: self.url(&next, None),
            sorted,
        }
    }
}

/// The caret line under a filter for an error `... at position N: ...`.
fn caret(message: &str) -> String {
    let pos = message
        .split("at position ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    match pos {
        Some(p) => format!("{}^", " ".repeat(p)),
        None => String::new(),
    }
}

fn cell(run: &Run, key: &str) -> String {
    if let Some(k) = key.strip_prefix("params.") {
        run.params.get(k).cloned().unwrap_or_default()
    } else if let Some(k) = key.strip_prefix("metrics.") {
        run.metrics
            .get(k)
            .map(|m| fmt::num(m.value))
            .unwrap_or_default()
    } else if let Some(k) = key.strip_prefix("tags.") {
        run.tags.get(k).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

fn duration_of(run: &Run) -> String {
    match run.end_time {
        Some(e) => fmt::duration(e - run.start_time),
        None if run.status == RunStatus::Running => {
            format!(
                "{} (running)",
                fmt::duration(crate::workspace::now_millis() - run.start_time)
            )
        }
        None => String::new(),
    }
}

/// `GET /ui/ws/{ws}/experiments/{id}?filter=..&order=..&col=..&page=..`: the runs table (a
/// page part for htmx requests).
pub async fn runs(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> Page {
    let exp_id: i64 = id
        .parse()
        .map_err(|_| DomainError::NotFound(format!("experiment '{id}' does not exist")))?;
    let exp = st.svc.store.experiment(ws.id, exp_id).await?;
    let q = query(&uri);
    let keys = st.svc.store.experiment_keys(exp.key).await?;
    let explicit = q.get("cols").is_some() || !q.all("col").is_empty();
    let cols: Vec<String> = if explicit {
        q.all("col").iter().take(200).cloned().collect()
    } else {
        // a first look: a few metrics and params
        keys[1]
            .iter()
            .take(6)
            .map(|k| format!("metrics.{k}"))
            .chain(keys[0].iter().take(4).map(|k| format!("params.{k}")))
            .collect()
    };
    let view = View {
        ws: ws.name.clone(),
        exp: exp_id,
        filter: q.get("filter").unwrap_or("").to_string(),
        order: q.get("order").unwrap_or("").trim().to_string(),
        cols,
        page: q.get("page").filter(|p| !p.is_empty()).map(str::to_string),
    };
    let table = runs_table(&st, &ws, &view).await?;
    if is_part(&headers) {
        return Ok(html(&table).into_response());
    }
    let c = chrome(&st, &who, &headers, &ws.name, "runs", exp.name.clone()).await?;
    let shown: BTreeSet<&str> = view.cols.iter().map(String::as_str).collect();
    let choices = ["params", "metrics", "tags"]
        .iter()
        .zip(keys.iter())
        .map(|(group, ks)| {
            let list = ks
                .iter()
                .map(|k| {
                    let key = format!("{group}.{k}");
                    Choice {
                        on: shown.contains(key.as_str()),
                        key,
                    }
                })
                .collect();
            (group.to_string(), list)
        })
        .collect();
    page(&RunsPage {
        chrome: c,
        exp_id,
        exp_name: exp.name,
        choices,
        table,
    })
}

async fn runs_table(st: &AppState, ws: &Workspace, view: &View) -> Result<RunsTable, PortalError> {
    let order_by: Vec<String> = if view.order.is_empty() {
        Vec::new()
    } else {
        vec![view.order.clone()]
    };
    let exp_ids = [view.exp.to_string()];
    let found = search::runs(
        &st.svc,
        ws,
        RunSearch {
            experiment_ids: &exp_ids,
            filter: &view.filter,
            order_by: &order_by,
            view: ViewType::ActiveOnly,
            max_results: Some(PAGE),
            page_token: view.page.as_deref(),
        },
    )
    .await;
    let fixed = vec![
        view.col("attributes.run_name", "Run"),
        view.col("attributes.start_time", "Started"),
    ];
    let cols: Vec<Col> = view.cols.iter().map(|k| view.col(k, k)).collect();
    let (runs, next, error) = match found {
        Ok((runs, next)) => (runs, next, None),
        Err(DomainError::InvalidArgument(m)) => {
            let c = caret(&m);
            (Vec::new(), None, Some((m, c)))
        }
        Err(e) => return Err(e.into()),
    };
    let rows: Vec<RunRow> = runs
        .iter()
        .map(|r| RunRow {
            id: r.id.clone(),
            name: if r.name.is_empty() {
                r.id.clone()
            } else {
                r.name.clone()
            },
            status: r.status.as_str().to_string(),
            start: fmt::time(r.start_time),
            duration: duration_of(r),
            cells: view.cols.iter().map(|k| cell(r, k)).collect(),
        })
        .collect();
    Ok(RunsTable {
        ws: ws.name.clone(),
        exp_id: view.exp,
        filter: view.filter.clone(),
        error,
        fixed,
        cols,
        shown: rows.len(),
        rows,
        next_url: next.as_deref().map(|n| view.url(&view.order, Some(n))),
        first_url: view.page.as_ref().map(|_| view.url(&view.order, None)),
    })
}

fn run_ref(r: &Run) -> RunRef {
    RunRef {
        id: r.id.clone(),
        name: if r.name.is_empty() {
            r.id.clone()
        } else {
            r.name.clone()
        },
        status: r.status.as_str().to_string(),
    }
}

fn kvs(m: &BTreeMap<String, String>) -> Vec<Kv> {
    m.iter()
        .map(|(k, v)| Kv {
            k: k.clone(),
            v: v.clone(),
        })
        .collect()
}

/// `GET /ui/ws/{ws}/runs/{id}`.
pub async fn run(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Page {
    let run = st.svc.store.run(ws.id, &id).await?;
    let exp = st.svc.store.experiment(ws.id, run.experiment_id).await?;
    let title = run_ref(&run).name;
    let c = chrome(&st, &who, &headers, &ws.name, "runs", title).await?;
    let parent = match &run.parent_run_id {
        Some(p) => Some(match st.svc.store.run(ws.id, p).await {
            Ok(pr) => run_ref(&pr),
            Err(_) => RunRef {
                id: p.clone(),
                name: p.clone(),
                status: String::new(),
            },
        }),
        None => None,
    };
    let exp_ids = [run.experiment_id.to_string()];
    let filter = format!("tags.mlflow.parentRunId = '{}'", run.id);
    let children = search::runs(
        &st.svc,
        &ws,
        RunSearch {
            experiment_ids: &exp_ids,
            filter: &filter,
            order_by: &[],
            view: ViewType::ActiveOnly,
            max_results: Some(200),
            page_token: None,
        },
    )
    .await
    .map(|(r, _)| r.iter().map(run_ref).collect())
    .unwrap_or_default();
    let mut facts = vec![
        Kv {
            k: "User".into(),
            v: run.user_id.clone(),
        },
        Kv {
            k: "Started".into(),
            v: fmt::time(run.start_time),
        },
    ];
    if let Some(e) = run.end_time {
        facts.push(Kv {
            k: "Ended".into(),
            v: fmt::time(e),
        });
    }
    facts.push(Kv {
        k: "Duration".into(),
        v: duration_of(&run),
    });
    facts.push(Kv {
        k: "Artifacts".into(),
        v: run.artifact_uri.clone(),
    });
    let metrics = run
        .metrics
        .iter()
        .map(|(k, m)| Kv {
            k: k.clone(),
            v: format!("{} (step {})", fmt::num(m.value), m.step),
        })
        .collect();
    let live = run.status == RunStatus::Running;
    let (code_files, code_more) = code_files(&st, &ws, &run.id).await?;
    page(&RunPage {
        chrome: c,
        exp: (exp.id, exp.name),
        facts,
        params: kvs(&run.params),
        metrics,
        tags: kvs(&run.tags),
        parent,
        children,
        metric_keys: run.metrics.keys().cloned().collect(),
        live,
        job: run.tags.get("atrium.job.id").cloned(),
        code: code_source(&run),
        code_files,
        code_more,
        run: run_ref(&run),
    })
}

/// Files of a code snapshot listed on the run page at most.
const CODE_FILES: usize = 200;

/// Where a run's code came from, from the tags the mlflow client and Atrium's jobs set.
fn code_source(run: &Run) -> Vec<Kv> {
    [
        ("Source", "mlflow.source.name"),
        ("Source type", "mlflow.source.type"),
        ("Git commit", "mlflow.source.git.commit"),
        ("Git branch", "mlflow.source.git.branch"),
        ("Repository", "mlflow.source.git.repoURL"),
        ("Entry point", "mlflow.project.entryPoint"),
    ]
    .into_iter()
    .filter_map(|(label, tag)| {
        run.tags.get(tag).map(|v| Kv {
            k: label.into(),
            v: v.clone(),
        })
    })
    .collect()
}

/// The files of a run's code snapshot (its `code/` artifacts, as a command job stores them),
/// walked breadth-first up to [`CODE_FILES`]; whether there were more.
async fn code_files(
    st: &AppState,
    ws: &Workspace,
    run_id: &str,
) -> Result<(Vec<ArtRow>, bool), PortalError> {
    let mut files = Vec::new();
    let mut dirs = std::collections::VecDeque::from([String::from("code")]);
    while let Some(dir) = dirs.pop_front() {
        for f in st.svc.list_artifacts(ws, run_id, &dir).await? {
            if f.is_dir {
                dirs.push_back(f.path);
                continue;
            }
            if files.len() == CODE_FILES {
                return Ok((files, true));
            }
            files.push(ArtRow {
                name: f.path.strip_prefix("code/").unwrap_or(&f.path).to_string(),
                size: f.size.map(fmt::size).unwrap_or_default(),
                url: list_url(&ws.name, run_id, &f.path),
                is_dir: false,
                path: f.path,
            });
        }
    }
    Ok((files, false))
}

/// One series of `GET .../series`.
#[derive(serde::Serialize)]
struct SeriesJson {
    run: String,
    name: String,
    key: String,
    total: usize,
    x: Vec<f64>,
    y: Vec<f64>,
}

/// `GET /ui/ws/{ws}/series?run=R&key=K&px=800&x=step|time|rel&from=&to=`: each run's metric
/// history reduced to min/max per pixel bucket (a zoom sends `from`/`to` for a finer range).
pub async fn series(State(st): State<AppState>, Ws(ws): Ws, uri: Uri) -> Page {
    let q = query(&uri);
    let runs = q.all("run");
    let keys = q.all("key");
    if runs.is_empty() || keys.is_empty() {
        return Err(DomainError::invalid("series needs at least one run and one key").into());
    }
    if runs.len() > MAX_COMPARE || keys.len() > 20 {
        return Err(DomainError::invalid(format!(
            "series takes at most {MAX_COMPARE} runs and 20 keys"
        ))
        .into());
    }
    let px = q.int("px")?.unwrap_or(800).clamp(10, 4000) as usize;
    let axis = q.get("x").unwrap_or("step");
    if !matches!(axis, "step" | "time" | "rel") {
        return Err(
            DomainError::invalid(format!("x must be step, time or rel, got '{axis}'")).into(),
        );
    }
    let bound = |k: &str| -> Result<Option<f64>, PortalError> {
        q.get(k)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<f64>().map_err(|_| {
                    DomainError::invalid(format!("{k} must be a number, got '{s}'")).into()
                })
            })
            .transpose()
    };
    let (from, to) = (bound("from")?, bound("to")?);
    let mut out = Vec::new();
    let mut live = false;
    for id in runs {
        let run = st.svc.store.run(ws.id, id).await?;
        live |= run.status == RunStatus::Running;
        let name = run_ref(&run).name;
        for key in keys {
            let mut hist = st.svc.store.metric_history(ws.id, id, key).await?;
            let total = hist.len();
            if axis != "step" {
                hist.sort_by_key(|p| (p.timestamp, p.step));
            }
            let t0 = hist.first().map(|p| p.timestamp).unwrap_or(0);
            let pts: Vec<Point> = hist
                .iter()
                .map(|p| Point {
                    x: match axis {
                        "time" => p.timestamp as f64 / 1000.0,
                        "rel" => (p.timestamp - t0) as f64 / 1000.0,
                        _ => p.step as f64,
                    },
                    y: p.value,
                })
                .collect();
            let reduced = min_max(&pts, px, from, to);
            out.push(SeriesJson {
                run: id.clone(),
                name: name.clone(),
                key: key.clone(),
                total,
                x: reduced.iter().map(|p| p.x).collect(),
                y: reduced.iter().map(|p| p.y).collect(),
            });
        }
    }
    let body = serde_json::json!({ "series": out, "live": live });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn is_image(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp"]
        .iter()
        .any(|e| p.ends_with(e))
}

fn raw_url(ws: &str, run: &str, path: &str) -> String {
    format!(
        "/ui/ws/{}/runs/{run}/raw?path={}",
        url_enc(ws),
        url_enc(path)
    )
}

fn list_url(ws: &str, run: &str, path: &str) -> String {
    format!(
        "/ui/ws/{}/runs/{run}/artifacts?path={}",
        url_enc(ws),
        url_enc(path)
    )
}

/// `GET /ui/ws/{ws}/runs/{id}/artifacts?path=P`: a directory's entries or a file's preview.
pub async fn artifacts(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> Page {
    let q = query(&uri);
    let path = q.get("path").unwrap_or("").trim_matches('/').to_string();
    let up_url = (!path.is_empty()).then(|| {
        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        list_url(&ws.name, &id, parent)
    });
    let entries = st.svc.list_artifacts(&ws, &id, &path).await?;
    let mut part = ArtifactsPart {
        ws: ws.name.clone(),
        run_id: id.clone(),
        raw_url: raw_url(&ws.name, &id, &path),
        path: path.clone(),
        up_url,
        entries: Vec::new(),
        preview: None,
    };
    if !entries.is_empty() || path.is_empty() {
        part.entries = entries
            .into_iter()
            .map(|f| ArtRow {
                name: f.path.rsplit('/').next().unwrap_or(&f.path).to_string(),
                size: f.size.map(fmt::size).unwrap_or_default(),
                url: list_url(&ws.name, &id, &f.path),
                is_dir: f.is_dir,
                path: f.path,
            })
            .collect();
        return Ok(html(&part).into_response());
    }
    let (file, reader) = st.svc.open_artifact(&ws, &id, &path).await?;
    let size = file.size.unwrap_or(0);
    part.preview = Some(if is_image(&path) {
        Preview::Image
    } else {
        let head = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            reader
                .take(PREVIEW_BYTES as u64)
                .read_to_end(&mut buf)
                .map(|_| buf)
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?
        .map_err(|e| DomainError::Internal(format!("reading '{path}': {e}")))?;
        preview_of(&path, head, size)
    });
    Ok(html(&part).into_response())
}

/// How a file's first bytes are shown.
fn preview_of(path: &str, head: Vec<u8>, size: u64) -> Preview {
    let cut = size > head.len() as u64;
    let lower = path.to_ascii_lowercase();
    let Ok(text) = String::from_utf8(head) else {
        return Preview::Binary {
            size: fmt::size(size),
        };
    };
    if lower.ends_with(".json") && !cut {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            return Preview::Text {
                text: serde_json::to_string_pretty(&v).unwrap_or(text),
                cut,
            };
        }
    }
    if lower.ends_with(".csv") || lower.ends_with(".tsv") {
        let delim = if lower.ends_with(".tsv") { b'\t' } else { b',' };
        let mut rd = csv::ReaderBuilder::new()
            .delimiter(delim)
            .flexible(true)
            .from_reader(text.as_bytes());
        let head: Vec<String> = rd
            .headers()
            .map(|h| h.iter().map(str::to_string).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut more = false;
        for rec in rd.records() {
            let Ok(rec) = rec else { break };
            if rows.len() == 500 {
                more = true;
                break;
            }
            rows.push(rec.iter().map(str::to_string).collect());
        }
        return Preview::Table {
            head,
            rows,
            cut: cut || more,
        };
    }
    Preview::Text { text, cut }
}

/// `GET /ui/ws/{ws}/runs/{id}/raw?path=P`: the file itself (images inline, the rest as a
/// download; never run as a page of this site).
pub async fn raw(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> Page {
    let q = query(&uri);
    let path = q.require("path")?.trim_matches('/').to_string();
    let (file, reader) = st.svc.open_artifact(&ws, &id, &path).await?;
    let mut resp = crate::api::artifact_response(&file, reader);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'"),
    );
    if !is_image(&path) {
        let name = path
            .rsplit('/')
            .next()
            .unwrap_or("artifact")
            .replace(['"', '\\'], "_");
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// A value for the compare page's charts: a number when it reads as one.
fn as_json(v: &str) -> serde_json::Value {
    v.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(v.to_string()))
}

/// `GET /ui/ws/{ws}/compare?runs=a,b,c`: 2 to 100 runs side by side.
pub async fn compare(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    uri: Uri,
) -> Page {
    let q = query(&uri);
    let ids: Vec<String> = q
        .all("runs")
        .iter()
        .flat_map(|v| v.split(','))
        .chain(q.all("run").iter().map(String::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() || ids.len() > MAX_COMPARE {
        return Err(DomainError::invalid(format!(
            "compare takes 1 to {MAX_COMPARE} runs (runs=a,b,...), got {}",
            ids.len()
        ))
        .into());
    }
    let mut runs = Vec::with_capacity(ids.len());
    for id in &ids {
        runs.push(st.svc.store.run(ws.id, id).await?);
    }
    let c = chrome(
        &st,
        &who,
        &headers,
        &ws.name,
        "runs",
        format!("Compare {} runs", runs.len()),
    )
    .await?;
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut metric_keys: BTreeSet<String> = BTreeSet::new();
    for r in &runs {
        keys.extend(r.params.keys().map(|k| format!("params.{k}")));
        keys.extend(r.metrics.keys().map(|k| format!("metrics.{k}")));
        keys.extend(
            r.tags
                .keys()
                .filter(|k| !k.starts_with("mlflow.") && !k.starts_with("atrium."))
                .map(|k| format!("tags.{k}")),
        );
        metric_keys.extend(r.metrics.keys().cloned());
    }
    let rows = keys
        .iter()
        .map(|k| {
            let values: Vec<String> = runs.iter().map(|r| cell(r, k)).collect();
            let differs = values.windows(2).any(|w| w[0] != w[1]);
            DiffRow {
                key: k.clone(),
                values,
                differs,
            }
        })
        .collect();
    let data: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let mut values = serde_json::Map::new();
            for (k, v) in &r.params {
                values.insert(format!("params.{k}"), as_json(v));
            }
            for (k, m) in &r.metrics {
                if let Some(n) = serde_json::Number::from_f64(m.value) {
                    values.insert(format!("metrics.{k}"), serde_json::Value::Number(n));
                }
            }
            serde_json::json!({ "id": r.id, "name": run_ref(r).name, "values": values })
        })
        .collect();
    page(&ComparePage {
        chrome: c,
        runs: runs.iter().map(run_ref).collect(),
        rows,
        metric_keys: metric_keys.into_iter().collect(),
        data_json: script_json(&serde_json::json!({ "runs": data })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_points_at_the_error() {
        assert_eq!(caret("invalid filter at position 4: expected"), "    ^");
        assert_eq!(caret("no position"), "");
    }
}
