//! Pipelines as workspace objects. Map: `mod.rs` (publish immutable versions, resolve
//! `name:version` / `name@latest`, submit a run with its inputs pinned, plan (each step's cache
//! key and whether it would hit), rerun from a step or of the failed steps, the run's view),
//! `schedules` (cron and recurrence schedules and the scheduler that fires their ticks).
//! The run itself is the `pipeline` job kind (`crate::jobs::pipeline`).

pub mod schedules;

use std::collections::BTreeMap;
use std::sync::Arc;

use atrium_pipelines::spec::Format;
use atrium_pipelines::{PipelineSpec, Settings, StepKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs::pipeline::{
    self, Nested, OUTPUTS_ROW, Outputs, PipelineJob, Reused, StepHost, Val, prepare, state,
};
use crate::jobs::spec::{JobKind, JobSpec, SnapshotFile, SpecFormat};
use crate::jobs::{Code, Executor, Link};
use crate::service::Service;
use crate::store::{JobRow, PipelineRow};
use crate::workspace::{DomainError, DomainResult, Workspace};

/// How deep pipelines may nest.
const MAX_NESTING: usize = 8;

/// A published version, as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PipelineView {
    /// Name.
    pub name: String,
    /// Version.
    pub version: i64,
    /// `name:version`.
    pub reference: String,
    /// What it does.
    pub description: Option<String>,
    /// Hash of its spec and code: publishing the same content returns this version.
    pub content_hash: String,
    /// Whether this publication created it (false: the same content was published before).
    pub created: bool,
    /// Its inputs (type, default, ...).
    #[schemars(with = "serde_json::Value")]
    pub inputs: BTreeMap<String, Value>,
    /// Its outputs (bound to steps).
    pub outputs: BTreeMap<String, String>,
    /// Its steps: name → kind and the steps it depends on.
    pub steps: Vec<StepInfo>,
    /// Files of its code snapshot.
    pub files: usize,
    /// The spec, as JSON.
    #[schemars(with = "serde_json::Value")]
    pub spec: Value,
    /// Publication time (ms).
    pub created_at: i64,
    /// Who published it.
    pub created_by: Option<String>,
}

/// A step of a published pipeline.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepInfo {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// The steps whose outputs it reads.
    pub depends_on: Vec<String>,
}

fn view(row: &PipelineRow, created: bool) -> DomainResult<PipelineView> {
    let spec: PipelineSpec = serde_json::from_str(&row.spec)
        .map_err(|e| DomainError::Internal(format!("stored pipeline: {e}")))?;
    let files: Vec<SnapshotFile> = serde_json::from_str(&row.snapshot).unwrap_or_default();
    // the dependencies as written (nested interfaces are not needed for them)
    let mut steps = Vec::new();
    for (name, s) in &spec.jobs {
        let mut refs = Vec::new();
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("type");
        }
        let _ = atrium_pipelines::bind::find(&v, "", &mut refs);
        let mut deps: Vec<String> = refs
            .into_iter()
            .filter_map(|(_, r, _)| match r {
                atrium_pipelines::Ref::Output(s, _) => Some(s),
                _ => None,
            })
            .collect();
        deps.sort();
        deps.dedup();
        steps.push(StepInfo {
            name: name.clone(),
            kind: s.kind.as_str().to_string(),
            depends_on: deps,
        });
    }
    Ok(PipelineView {
        name: row.name.clone(),
        version: row.version,
        reference: format!("{}:{}", row.name, row.version),
        description: row.description.clone(),
        content_hash: row.content_hash.clone(),
        created,
        inputs: spec.inputs.clone().into_iter().collect(),
        outputs: spec.outputs.clone(),
        steps,
        files: files.len(),
        spec: serde_json::to_value(&spec).unwrap_or_default(),
        created_at: row.created_at,
        created_by: row.created_by.clone(),
    })
}

/// Parses a pipeline spec in the format named, or the one its text shows.
pub fn parse(text: &str, format: Option<SpecFormat>) -> DomainResult<PipelineSpec> {
    let f = match format.unwrap_or_else(|| SpecFormat::sniff(text)) {
        SpecFormat::Json => Format::Json,
        SpecFormat::Toml => Format::Toml,
        SpecFormat::Yaml => Format::Yaml,
    };
    PipelineSpec::parse_as(text, f).map_err(|e| DomainError::invalid(e.0))
}

/// `name:version`, `name@latest` or `name` → (name, version or latest).
pub fn parse_ref(r: &str) -> DomainResult<(&str, Option<i64>)> {
    let r = r.trim();
    if let Some(name) = r.strip_suffix("@latest") {
        return Ok((name, None));
    }
    match r.rsplit_once(':') {
        Some((name, v)) => {
            let v: i64 = v.parse().map_err(|_| {
                DomainError::invalid(format!(
                    "'{r}' is not a pipeline reference: use name, name:version or name@latest"
                ))
            })?;
            Ok((name, Some(v)))
        }
        None => Ok((r, None)),
    }
}

/// The pinned nested pipelines of a spec, by the reference written.
type NestedFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = DomainResult<BTreeMap<String, Nested>>> + Send + 'a>,
>;

/// Pins the published pipelines a spec's steps run (recursively).
fn resolve_nested<'a>(
    svc: &'a Service,
    ws: &'a Workspace,
    spec: &'a PipelineSpec,
    depth: usize,
) -> NestedFuture<'a> {
    Box::pin(async move {
        let mut out = BTreeMap::new();
        for (name, step) in &spec.jobs {
            let Some(r) = &step.pipeline else { continue };
            if depth >= MAX_NESTING {
                return Err(DomainError::invalid(format!(
                    "step '{name}': pipelines nest at most {MAX_NESTING} deep (is '{r}' running itself?)"
                )));
            }
            let (n, v) = parse_ref(r)?;
            let row =
                svc.store.pipeline(ws.id, n, v).await.map_err(|e| {
                    DomainError::invalid(format!("step '{name}': pipeline '{r}': {e}"))
                })?;
            let inner: PipelineSpec = serde_json::from_str(&row.spec)
                .map_err(|e| DomainError::Internal(format!("stored pipeline: {e}")))?;
            let nested = resolve_nested(svc, ws, &inner, depth + 1).await?;
            out.insert(
                r.clone(),
                Nested {
                    reference: format!("{}:{}", row.name, row.version),
                    spec: inner,
                    snapshot: serde_json::from_str(&row.snapshot).unwrap_or_default(),
                    nested,
                },
            );
        }
        Ok(out)
    })
}

/// Publishes a spec (with the code directory its command steps run in, a tar archive) as an
/// immutable version: the existing one when spec and code are the same.
pub async fn publish(
    svc: &Service,
    ws: &Workspace,
    spec: PipelineSpec,
    code: Option<Vec<u8>>,
    by: Option<&str>,
) -> DomainResult<PipelineView> {
    let nested = resolve_nested(svc, ws, &spec, 0).await?;
    pipeline::checked_of(&spec, &nested).map_err(DomainError::invalid)?;
    if code.is_some() && !spec.jobs.values().any(|s| s.kind == StepKind::Command) {
        return Err(DomainError::invalid(
            "only a pipeline with command steps takes a code directory",
        ));
    }
    let files = match code {
        Some(tar) => store_code(svc, ws, tar).await?,
        None => Vec::new(),
    };
    let spec_json =
        serde_json::to_value(&spec).map_err(|e| DomainError::Internal(e.to_string()))?;
    let files_json: Vec<Value> = files
        .iter()
        .map(|f| {
            Value::String(format!(
                "{}={}{}",
                f.path,
                f.digest,
                if f.executable { "+x" } else { "" }
            ))
        })
        .collect();
    let hash = atrium_pipelines::key::digest(
        "atrium-pipeline/1",
        &serde_json::json!({ "spec": spec_json, "code": files_json }),
    );
    let (row, created) = svc
        .store
        .publish_pipeline(
            ws.id,
            &PipelineRow {
                name: spec.name.clone(),
                version: 0,
                spec: atrium_pipelines::key::canonical(&spec_json),
                snapshot: serde_json::to_string(&files)
                    .map_err(|e| DomainError::Internal(e.to_string()))?,
                content_hash: hash,
                description: spec.description.clone(),
                created_at: 0,
                created_by: by.map(str::to_string),
            },
        )
        .await?;
    view(&row, created)
}

/// Stores each regular file of a tar archive in the default datastore.
async fn store_code(
    svc: &Service,
    ws: &Workspace,
    tar: Vec<u8>,
) -> DomainResult<Vec<SnapshotFile>> {
    let files = crate::jobs::unpack_snapshot(tar).await?;
    let ds = svc.store.default_datastore(ws.id).await?;
    let mut out = Vec::new();
    for (path, executable, bytes) in files {
        let size = bytes.len() as u64;
        let (meta, _guard) = svc.store_bytes(&ds, bytes).await?;
        out.push(SnapshotFile {
            path,
            digest: meta.digest,
            size,
            executable,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// One version, or the latest.
pub async fn get(svc: &Service, ws: &Workspace, reference: &str) -> DomainResult<PipelineView> {
    let (n, v) = parse_ref(reference)?;
    view(&svc.store.pipeline(ws.id, n, v).await?, false)
}

/// The latest version of every pipeline, or every version of one.
pub async fn list(
    svc: &Service,
    ws: &Workspace,
    name: Option<&str>,
) -> DomainResult<Vec<PipelineView>> {
    let rows = svc.store.list_pipelines(ws.id, name).await?;
    if let Some(n) = name
        && rows.is_empty()
    {
        return Err(DomainError::NotFound(format!("no pipeline named '{n}'")));
    }
    rows.iter().map(|r| view(r, false)).collect()
}

/// A run to submit.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Input values (the defaults fill the others).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub inputs: serde_json::Map<String, Value>,
    /// Settings to override (`continue_on_step_failure`, `force_rerun`, `max_parallel`, ...).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub settings: serde_json::Map<String, Value>,
    /// Display name of the run.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Experiment of the run (default: the pipeline's).
    #[serde(default)]
    pub experiment: Option<String>,
}

fn merge_settings(
    base: &Settings,
    over: &serde_json::Map<String, Value>,
) -> DomainResult<Settings> {
    let mut v = serde_json::to_value(base).map_err(|e| DomainError::Internal(e.to_string()))?;
    let m = v.as_object_mut().expect("settings are an object");
    for (k, x) in over {
        m.insert(k.clone(), x.clone());
    }
    let s: Settings =
        serde_json::from_value(v).map_err(|e| DomainError::invalid(format!("settings: {e}")))?;
    if s.max_parallel == Some(0) {
        return Err(DomainError::invalid(
            "settings.max_parallel must be at least 1",
        ));
    }
    Ok(s)
}

/// Everything a run of `reference` needs, pinned now.
async fn pipeline_job(
    svc: &Service,
    ws: &Workspace,
    reference: &str,
    req: &RunRequest,
) -> DomainResult<(PipelineRow, PipelineJob)> {
    let (n, v) = parse_ref(reference)?;
    let row = svc.store.pipeline(ws.id, n, v).await?;
    let spec: PipelineSpec = serde_json::from_str(&row.spec)
        .map_err(|e| DomainError::Internal(format!("stored pipeline: {e}")))?;
    let nested = resolve_nested(svc, ws, &spec, 0).await?;
    let checked = pipeline::checked_of(&spec, &nested).map_err(DomainError::invalid)?;
    let given = checked
        .resolve_inputs(&req.inputs)
        .map_err(|e| DomainError::invalid(e.0))?;
    let mut inputs = BTreeMap::new();
    for (k, v) in given {
        let ty = checked.inputs[&k].ty;
        if v.is_null() {
            inputs.insert(k, Val::scalar(ty, v));
            continue;
        }
        let val = prepare::pin(svc, ws, ty, v)
            .await
            .map_err(|e| DomainError::invalid(format!("input '{k}': {e}")))?;
        inputs.insert(k, val);
    }
    let settings = merge_settings(&spec.settings, &req.settings)?;
    Ok((
        row.clone(),
        PipelineJob {
            pipeline: format!("{}:{}", row.name, row.version),
            snapshot: serde_json::from_str(&row.snapshot).unwrap_or_default(),
            spec,
            inputs,
            settings,
            nested,
            pinned: BTreeMap::new(),
            force: Default::default(),
            rerun_of: None,
            schedule: None,
            trigger_time: None,
        },
    ))
}

/// Submits a pipeline job (with `link`, once per origin).
async fn submit_job(
    ex: &Executor,
    ws: &Workspace,
    pj: PipelineJob,
    req: &RunRequest,
    link: Option<Link>,
) -> DomainResult<JobRow> {
    let name = req
        .display_name
        .clone()
        .or_else(|| pj.spec.display_name.clone())
        .unwrap_or_else(|| pj.spec.name.clone());
    let experiment = req
        .experiment
        .clone()
        .or_else(|| pj.spec.experiment.clone())
        .unwrap_or_else(|| pj.spec.name.clone());
    let spec = JobSpec {
        kind: JobKind::Pipeline,
        name: Some(name),
        experiment: Some(experiment),
        retries: 0,
        compute: None,
        environment: None,
        train: None,
        command: None,
        sweep: None,
        automl: None,
        batch_score: None,
        pipeline: Some(
            serde_json::to_value(&pj).map_err(|e| DomainError::Internal(e.to_string()))?,
        ),
    };
    ex.submit_with(ws, spec, Code::None, link).await
}

/// Submits a run of a pipeline (`name`, `name:version`, `name@latest`).
pub async fn submit(
    ex: &Executor,
    ws: &Workspace,
    reference: &str,
    req: &RunRequest,
) -> DomainResult<JobRow> {
    let (_, pj) = pipeline_job(ex.service(), ws, reference, req).await?;
    submit_job(ex, ws, pj, req, None).await
}

/// Submits the run of a schedule's tick (once per tick: its origin is unique).
pub async fn submit_tick(
    ex: &Executor,
    ws: &Workspace,
    reference: &str,
    req: &RunRequest,
    schedule: &str,
    origin: String,
    trigger_time: String,
) -> DomainResult<JobRow> {
    let (_, mut pj) = pipeline_job(ex.service(), ws, reference, req).await?;
    pj.schedule = Some(schedule.to_string());
    pj.trigger_time = Some(trigger_time);
    submit_job(
        ex,
        ws,
        pj,
        req,
        Some(Link {
            origin,
            parent_job: None,
            parent_run: None,
            step: None,
        }),
    )
    .await
}

/// What a run of a step would do.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanStep {
    /// The step.
    pub step: String,
    /// Its kind.
    pub kind: String,
    /// `cached` (the cache has it), `run`, `skip` (its condition is false now), or `unknown`
    /// (it reads outputs of a step that runs, so its key is known only then).
    pub action: String,
    /// Its cache key, when it can be known now.
    pub key: Option<String>,
    /// The earlier step a hit reuses.
    #[schemars(with = "Option<serde_json::Value>")]
    pub reused_from: Option<Reused>,
    /// Why.
    pub note: Option<String>,
}

/// Each step's cache key and whether it would hit, without running anything.
pub async fn plan(
    svc: &Service,
    ws: &Workspace,
    reference: &str,
    req: &RunRequest,
) -> DomainResult<Vec<PlanStep>> {
    let (_, pj) = pipeline_job(svc, ws, reference, req).await?;
    let checked = pipeline::checked_of(&pj.spec, &pj.nested).map_err(DomainError::invalid)?;
    let job = fake_job(ws);
    let mut values: BTreeMap<String, Outputs> = BTreeMap::new();
    let mut out = Vec::new();
    for name in &checked.order {
        let step = &pj.spec.jobs[name];
        let mut p = PlanStep {
            step: name.clone(),
            kind: step.kind.as_str().into(),
            action: "run".into(),
            key: None,
            reused_from: None,
            note: None,
        };
        if let Some(d) = checked.deps[name].iter().find(|d| !values.contains_key(*d)) {
            p.action = "unknown".into();
            p.note = Some(format!("reads outputs of step {d}, which runs first"));
            out.push(p);
            continue;
        }
        match prepare::prepare(svc, ws, &job, &pj, &checked, name, &values).await {
            Err(e) => {
                p.note = Some(format!("would fail: {e}"));
            }
            Ok(prep) => {
                if prep.when == Some(false) {
                    p.action = "skip".into();
                    p.note = Some("its condition is false".into());
                } else if step.kind == StepKind::RegisterModel {
                    p.note = Some("runs in the host; never cached".into());
                } else if step.kind == StepKind::Pipeline {
                    p.note = Some("a nested pipeline: its own steps are cached".into());
                } else {
                    p.key = prep.key.clone();
                    if pj.settings.force_rerun {
                        p.note = Some("force_rerun is set".into());
                    } else if !step.is_deterministic {
                        p.note = Some("is_deterministic is false".into());
                    } else if let Some(key) = &prep.key
                        && let Some((outs, from)) = prepare::lookup(svc, ws, key).await?
                    {
                        p.action = "cached".into();
                        p.reused_from = Some(from);
                        values.insert(name.clone(), outs);
                    } else {
                        p.note = Some("no cached result with this key".into());
                    }
                }
            }
        }
        out.push(p);
    }
    Ok(out)
}

fn fake_job(ws: &Workspace) -> JobRow {
    JobRow {
        key: 0,
        id: "plan".into(),
        workspace_id: ws.id,
        kind: "pipeline".into(),
        name: String::new(),
        spec: String::new(),
        state: crate::store::JobState::Queued,
        target: "local".into(),
        run_id: None,
        attempts: 0,
        retries: 0,
        error: None,
        cancel_requested: false,
        created_at: crate::workspace::now_millis(),
        started_at: None,
        ended_at: None,
        handle: None,
        engine_state: None,
        owner: None,
    }
}

/// A pipeline run's job, checked to be one.
async fn pipeline_run(
    svc: &Service,
    ws: &Workspace,
    id: &str,
) -> DomainResult<(JobRow, PipelineJob)> {
    let job = svc.store.job(ws.id, id).await?;
    if job.kind != "pipeline" {
        return Err(DomainError::invalid(format!(
            "job {id} is a {} job, not a pipeline run",
            job.kind
        )));
    }
    let spec: JobSpec = serde_json::from_str(&job.spec)
        .map_err(|e| DomainError::Internal(format!("stored spec: {e}")))?;
    let pj = pipeline::parse_job(
        spec.pipeline
            .as_ref()
            .ok_or_else(|| DomainError::Internal("a pipeline job without its pipeline".into()))?,
    )?;
    Ok((job, pj))
}

/// What to rerun.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Rerun this step and every step after it; the others keep their outputs.
    #[serde(default)]
    pub from: Option<String>,
    /// Rerun the steps that failed, were canceled or did not run; the others keep their outputs.
    #[serde(default)]
    pub failed: bool,
    /// Input values to change (steps kept from the original keep their outputs).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub inputs: serde_json::Map<String, Value>,
}

/// Reruns a finished pipeline run from a step, or its failed steps: a new run of the same
/// version whose kept steps are pinned to the original outputs.
pub async fn rerun(
    ex: &Executor,
    ws: &Workspace,
    id: &str,
    req: &RerunRequest,
) -> DomainResult<JobRow> {
    let svc = ex.service();
    let (job, pj) = pipeline_run(svc, ws, id).await?;
    if !job.state.is_terminal() {
        return Err(DomainError::InvalidState(format!(
            "pipeline run {id} is {}: rerun it once it has ended (or cancel it)",
            job.state.as_str()
        )));
    }
    let checked = pipeline::checked_of(&pj.spec, &pj.nested).map_err(DomainError::invalid)?;
    let again: std::collections::BTreeSet<String> = match (&req.from, req.failed) {
        (Some(_), true) => return Err(DomainError::invalid("choose one: --from STEP or --failed")),
        (None, false) => {
            return Err(DomainError::invalid(
                "say what to rerun: --from STEP or --failed",
            ));
        }
        (Some(s), false) => {
            if !pj.spec.jobs.contains_key(s) {
                return Err(DomainError::invalid(format!(
                    "the pipeline has no step '{s}' (steps: {})",
                    checked.order.join(", ")
                )));
            }
            checked.downstream(s)
        }
        (None, true) => Default::default(),
    };
    let rows = svc.store.steps(job.key).await?;
    let mut pinned = BTreeMap::new();
    for r in rows.iter().filter(|r| r.step != OUTPUTS_ROW) {
        if again.contains(&r.step) || !state::succeeded(&r.state) {
            continue;
        }
        let outs: Outputs =
            serde_json::from_str(r.outputs.as_deref().unwrap_or("{}")).unwrap_or_default();
        let run = match &r.child_job {
            Some(c) => svc.store.job(ws.id, c).await.ok().and_then(|j| j.run_id),
            None => None,
        };
        let from = match (&r.reused_from, pj.pinned.get(&r.step)) {
            (_, Some((_, f))) => f.clone(),
            _ => Reused {
                job: job.id.clone(),
                step: r.step.clone(),
                run,
                waiting: false,
            },
        };
        pinned.insert(r.step.clone(), (outs, from));
    }
    if req.failed && pinned.len() == checked.order.len() {
        return Err(DomainError::InvalidState(format!(
            "pipeline run {id} has no failed or unrun step to rerun"
        )));
    }
    let mut new = pj.clone();
    new.force = checked
        .order
        .iter()
        .filter(|s| !pinned.contains_key(*s))
        .cloned()
        .collect();
    new.pinned = pinned;
    new.rerun_of = Some(job.id.clone());
    if !req.inputs.is_empty() {
        let mut given = serde_json::Map::new();
        for (k, v) in &pj.inputs {
            given.insert(k.clone(), v.value.clone());
        }
        for (k, v) in &req.inputs {
            given.insert(k.clone(), v.clone());
        }
        let resolved = checked
            .resolve_inputs(&given)
            .map_err(|e| DomainError::invalid(e.0))?;
        for (k, v) in resolved {
            if req.inputs.contains_key(&k) {
                let ty = checked.inputs[&k].ty;
                new.inputs.insert(
                    k.clone(),
                    prepare::pin(svc, ws, ty, v)
                        .await
                        .map_err(|e| DomainError::invalid(format!("input '{k}': {e}")))?,
                );
            }
        }
    }
    let req = RunRequest {
        display_name: Some(format!("{} (rerun)", job.name)),
        ..Default::default()
    };
    submit_job(ex, ws, new, &req, None).await
}

/// A step of a run, as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepView {
    /// Name.
    pub step: String,
    /// Kind.
    pub kind: String,
    /// Pending, Queued, Running, Completed, Cached, Skipped, Failed or Canceled.
    pub state: String,
    /// The steps whose outputs it reads.
    pub depends_on: Vec<String>,
    /// Attempts started.
    pub attempt: i64,
    /// Its job (current attempt).
    pub job: Option<String>,
    /// Its run (tracking).
    pub run_id: Option<String>,
    /// Its cache key.
    pub cache_key: Option<String>,
    /// Where a Cached step's outputs come from.
    #[schemars(with = "Option<serde_json::Value>")]
    pub reused_from: Option<Reused>,
    /// Its outputs.
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub outputs: Outputs,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// First start (ms).
    pub started_at: Option<i64>,
    /// End (ms).
    pub ended_at: Option<i64>,
}

/// A pipeline run: its job, inputs, steps (the DAG with states) and outputs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunView {
    /// The pipeline job's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `name:version`.
    pub pipeline: String,
    /// Queued, Running, Completed, Failed or Canceled.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Its run (tracking; the steps' runs nest under it).
    pub run_id: Option<String>,
    /// The inputs it ran with.
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub inputs: BTreeMap<String, Val>,
    /// Its settings.
    #[schemars(with = "serde_json::Value")]
    pub settings: Settings,
    /// Steps in dependency order.
    pub steps: Vec<StepView>,
    /// Its outputs (once completed).
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub outputs: Outputs,
    /// The run it reruns.
    pub rerun_of: Option<String>,
    /// The schedule that started it, and the tick.
    pub schedule: Option<String>,
    /// The tick (RFC 3339).
    pub trigger_time: Option<String>,
    /// Submission time (ms).
    pub created_at: i64,
    /// End (ms).
    pub ended_at: Option<i64>,
}

/// The view of a pipeline run.
pub async fn run_view(svc: &Service, ws: &Workspace, id: &str) -> DomainResult<RunView> {
    let (job, pj) = pipeline_run(svc, ws, id).await?;
    let checked = pipeline::checked_of(&pj.spec, &pj.nested).map_err(DomainError::invalid)?;
    let rows = svc.store.steps(job.key).await?;
    let by: BTreeMap<&str, &crate::store::StepRow> =
        rows.iter().map(|r| (r.step.as_str(), r)).collect();
    let mut steps = Vec::new();
    for name in &checked.order {
        let r = by.get(name.as_str());
        let child = match r.and_then(|r| r.child_job.clone()) {
            Some(c) => svc.store.job(ws.id, &c).await.ok(),
            None => None,
        };
        steps.push(StepView {
            step: name.clone(),
            kind: pj.spec.jobs[name].kind.as_str().into(),
            state: r
                .map(|r| r.state.clone())
                .unwrap_or_else(|| state::PENDING.into()),
            depends_on: checked.deps[name].iter().cloned().collect(),
            attempt: r.map(|r| r.attempt).unwrap_or(0),
            job: child.as_ref().map(|j| j.id.clone()),
            run_id: child.and_then(|j| j.run_id),
            cache_key: r.and_then(|r| r.cache_key.clone()),
            reused_from: r
                .and_then(|r| r.reused_from.as_deref())
                .and_then(|t| serde_json::from_str(t).ok()),
            outputs: r
                .and_then(|r| r.outputs.as_deref())
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default(),
            error: r.and_then(|r| r.error.clone()),
            started_at: r.and_then(|r| r.started_at),
            ended_at: r.and_then(|r| r.ended_at),
        });
    }
    let outputs = by
        .get(OUTPUTS_ROW)
        .and_then(|r| r.outputs.as_deref())
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    Ok(RunView {
        id: job.id.clone(),
        name: job.name.clone(),
        pipeline: pj.pipeline.clone(),
        state: job.state.as_str().into(),
        error: job.error.clone(),
        run_id: job.run_id.clone(),
        inputs: pj.inputs.clone(),
        settings: pj.settings.clone(),
        steps,
        outputs,
        rerun_of: pj.rerun_of.clone(),
        schedule: pj.schedule.clone(),
        trigger_time: pj.trigger_time.clone(),
        created_at: job.created_at,
        ended_at: job.ended_at,
    })
}

/// Pipeline runs of the workspace, newest first (of one pipeline when named).
pub async fn list_runs(
    svc: &Service,
    ws: &Workspace,
    pipeline: Option<&str>,
    limit: i64,
) -> DomainResult<Vec<RunView>> {
    let jobs = svc.store.list_jobs(ws.id, None, 1000).await?;
    let mut out = Vec::new();
    for j in jobs.into_iter().filter(|j| j.kind == "pipeline") {
        let v = run_view(svc, ws, &j.id).await?;
        if pipeline.is_some_and(|p| v.pipeline.split(':').next() != Some(p) && v.pipeline != p) {
            continue;
        }
        out.push(v);
        if out.len() as i64 >= limit {
            break;
        }
    }
    Ok(out)
}

/// Cancels a pipeline run: running steps are canceled, pending ones never start.
pub async fn cancel(ex: &Arc<Executor>, ws: &Workspace, id: &str) -> DomainResult<RunView> {
    pipeline_run(ex.service(), ws, id).await?;
    ex.cancel(ws, id).await?;
    run_view(ex.service(), ws, id).await
}
