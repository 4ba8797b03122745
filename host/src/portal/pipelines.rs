//! Pages of pipelines and schedules: the published pipelines with their latest runs, a run's
//! steps (the DAG in dependency order, polled while it runs, canceled by Contributors) and the
//! schedules with their next and latest ticks.

use std::collections::BTreeMap;

use atrium_portal::fmt;
use atrium_portal::views::{
    Kv, PipelineRow, PipelineRunPage, PipelineRunRow, PipelinesPage, ReusedRef, ScheduleRow,
    SchedulesPage, StepRow, TickRow,
};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use serde_json::Value;

use super::{Page, chrome, flash, page};
use crate::api::AppState;
use crate::api::extract::{QueryMap, Ws};
use crate::auth::Principal;
use crate::jobs::pipeline::Val;
use crate::pipelines::{self, RunView};
use crate::workspace::Workspace;

/// How many runs the pipelines page lists.
const RUNS_SHOWN: i64 = 50;

/// A value as a person reads it: strings without quotes, anything else as compact JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn vals(m: &BTreeMap<String, Val>) -> Vec<Kv> {
    m.iter()
        .map(|(k, v)| Kv {
            k: k.clone(),
            v: show(&v.value),
        })
        .collect()
}

/// The pipeline's name in `name:version`, `name@latest` or `name`.
fn name_of(reference: &str) -> String {
    reference
        .split([':', '@'])
        .next()
        .unwrap_or(reference)
        .to_string()
}

fn run_row(r: &RunView) -> PipelineRunRow {
    PipelineRunRow {
        id: r.id.clone(),
        name: r.name.clone(),
        pipeline: r.pipeline.clone(),
        pipeline_name: name_of(&r.pipeline),
        state: r.state.clone(),
        steps: r.steps.len(),
        cached: r.steps.iter().filter(|s| s.state == "Cached").count(),
        created: fmt::time(r.created_at),
    }
}

/// An input's declaration (`{type, default, ...}`) as `type = default`.
fn declared(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let ty = o.get("type").map(show).unwrap_or_default();
            match o.get("default") {
                Some(d) if !d.is_null() => format!("{ty} = {}", show(d)),
                _ => ty,
            }
        }
        other => show(other),
    }
}

/// `GET /ui/ws/{ws}/pipelines?pipeline=NAME`: the latest version of each pipeline and the
/// newest runs (of one pipeline when named).
pub async fn list(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    uri: Uri,
) -> Page {
    let q = QueryMap::parse(uri.query().unwrap_or(""));
    let filter = q
        .get("pipeline")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let c = chrome(&st, &who, &headers, &ws.name, "pipelines", "Pipelines").await?;
    let rows = pipelines::list(&st.svc, &ws, None)
        .await?
        .into_iter()
        .map(|p| PipelineRow {
            version: p.version,
            description: p.description.unwrap_or_default(),
            steps: p.steps.len(),
            inputs: p
                .inputs
                .iter()
                .map(|(k, v)| Kv {
                    k: k.clone(),
                    v: declared(v),
                })
                .collect(),
            created: fmt::time(p.created_at),
            created_by: p.created_by.unwrap_or_default(),
            name: p.name,
        })
        .collect();
    let runs = pipelines::list_runs(&st.svc, &ws, filter.as_deref(), RUNS_SHOWN)
        .await?
        .iter()
        .map(run_row)
        .collect();
    page(&PipelinesPage {
        chrome: c,
        rows,
        runs,
        filter,
    })
}

async fn run_page(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &Workspace,
    id: &str,
    flash: Option<(bool, String)>,
) -> Page {
    let r = pipelines::run_view(&st.svc, ws, id).await?;
    let c = chrome(
        st,
        who,
        headers,
        &ws.name,
        "pipelines",
        format!("pipeline run {}", r.id),
    )
    .await?;
    let steps = r
        .steps
        .iter()
        .map(|s| StepRow {
            step: s.step.clone(),
            kind: s.kind.clone(),
            state: s.state.clone(),
            after: s.depends_on.clone(),
            attempt: s.attempt,
            job: s.job.clone(),
            run_id: s.run_id.clone(),
            outputs: vals(&s.outputs),
            reused: s.reused_from.as_ref().map(|u| ReusedRef {
                job: u.job.clone(),
                step: u.step.clone(),
                run: u.run.clone(),
                waiting: u.waiting,
            }),
            error: s.error.clone(),
            duration: match (s.started_at, s.ended_at) {
                (Some(a), Some(b)) => fmt::duration(b - a),
                _ => String::new(),
            },
        })
        .collect();
    page(&PipelineRunPage {
        chrome: c,
        live: !matches!(r.state.as_str(), "Completed" | "Failed" | "Canceled"),
        run: run_row(&r),
        error: r.error.clone(),
        run_id: r.run_id.clone(),
        rerun_of: r.rerun_of.clone(),
        schedule: r.schedule.clone(),
        trigger_time: r.trigger_time.clone(),
        ended: r.ended_at.map(fmt::time).unwrap_or_default(),
        inputs: vals(&r.inputs),
        steps,
        outputs: vals(&r.outputs),
        flash,
    })
}

/// `GET /ui/ws/{ws}/pipelines/runs/{id}`: a run and its steps; the page polls itself while
/// the run is not over.
pub async fn run(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Page {
    run_page(&st, &who, &headers, &ws, &id, None).await
}

/// `POST /ui/ws/{ws}/pipelines/runs/{id}/cancel`: running steps are canceled, pending ones
/// never start.
pub async fn cancel(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Page {
    let f = flash(
        pipelines::cancel(&st.executor, &ws, &id)
            .await
            .map(|_| "cancel requested".to_string()),
    )?;
    run_page(&st, &who, &headers, &ws, &id, Some(f)).await
}

/// `GET /ui/ws/{ws}/schedules`: schedules, their next ticks and latest ticks.
pub async fn schedules(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "schedules", "Schedules").await?;
    let word = |v: serde_json::Result<Value>| v.map(|v| show(&v)).unwrap_or_default();
    let rows = pipelines::schedules::list(&st.svc, &ws, crate::workspace::now_millis())
        .await?
        .into_iter()
        .map(|s| {
            let d = &s.definition;
            ScheduleRow {
                description: d.description.clone().unwrap_or_default(),
                pipeline: d.pipeline.clone(),
                pipeline_name: name_of(&d.pipeline),
                catchup: word(serde_json::to_value(d.catchup)),
                overlap: word(serde_json::to_value(d.overlap)),
                describe: s.describe,
                enabled: s.enabled,
                next: s.next,
                ticks: s
                    .ticks
                    .into_iter()
                    .map(|t| TickRow {
                        tick: t.tick,
                        outcome: t.outcome,
                        job: t.job,
                        detail: t.detail.unwrap_or_default(),
                    })
                    .collect(),
                name: s.name,
            }
        })
        .collect();
    page(&SchedulesPage { chrome: c, rows })
}
