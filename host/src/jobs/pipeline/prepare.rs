//! A step made concrete: its inputs' values, its condition, the job spec it runs (references
//! replaced), the files its code directory gets (the pipeline's snapshot, data inputs), and its
//! cache key (the same spec with every reference replaced by the content it names); the cache
//! lookup; the register-model step, which runs in the host.

use std::collections::BTreeMap;

use atrium_pipelines::bind::{self, Ref};
use atrium_pipelines::when::Cond;
use atrium_pipelines::{Checked, StepKind, Type};
use serde_json::{Value, json};

use super::values::{self, Outputs, Val};
use super::{PipelineJob, Reused};
use crate::jobs::spec::{JobSpec, SnapshotFile};
use crate::service::Service;
use crate::store::{ArtifactOwner, JobRow};
use crate::workspace::{DomainResult, Workspace};

/// Restart interruptions a step's job survives (its `retries` are for failures).
pub const STEP_JOB_RETRIES: u32 = 2;

/// A file of a step's code directory and the datastore holding its bytes.
#[derive(Debug, Clone)]
pub struct StepFile {
    /// The file.
    pub file: SnapshotFile,
    /// Its datastore (`None`: the workspace's default).
    pub datastore: Option<i64>,
}

/// A step ready to start.
pub struct Prepared {
    /// The condition's value (`None`: no condition).
    pub when: Option<bool>,
    /// The job it runs (`None` for register-model).
    pub spec: Option<JobSpec>,
    /// Its code directory's files.
    pub files: Vec<StepFile>,
    /// Its cache key (`None`: not cacheable: nested pipelines, register-model).
    pub key: Option<String>,
    /// Its inputs' values.
    pub inputs: Outputs,
    /// Its body with references replaced.
    pub body: Value,
}

/// RFC 3339 of a time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn value_of(
    r: &Ref,
    pj: &PipelineJob,
    job: &JobRow,
    values: &BTreeMap<String, Outputs>,
    inputs: &Outputs,
) -> Result<Val, String> {
    match r {
        Ref::Input(n) => pj
            .inputs
            .get(n)
            .cloned()
            .ok_or_else(|| format!("{r}: the run has no value for input '{n}'")),
        Ref::Output(s, n) => values
            .get(s)
            .and_then(|o| o.get(n))
            .cloned()
            .ok_or_else(|| format!("{r}: step '{s}' gave no output '{n}'")),
        Ref::StepInput(n) => inputs
            .get(n)
            .cloned()
            .ok_or_else(|| format!("{r}: the step has no input '{n}'")),
        Ref::StepOutput(n) => Ok(Val::scalar(
            Type::String,
            Value::String(format!("$ATRIUM_OUTPUTS/{n}")),
        )),
        Ref::TriggerTime => Ok(Val::scalar(
            Type::String,
            Value::String(
                pj.trigger_time
                    .clone()
                    .unwrap_or_else(|| rfc3339(job.created_at)),
            ),
        )),
    }
}

/// Where a command finds a data input in its code directory.
fn input_path(name: &str, ty: Type) -> String {
    match ty {
        Type::Dataset => format!("inputs/{name}.csv"),
        Type::Folder => format!("inputs/{name}/"),
        _ => format!("inputs/{name}"),
    }
}

/// Makes a step concrete (see the module doc).
pub async fn prepare(
    svc: &Service,
    ws: &Workspace,
    job: &JobRow,
    pj: &PipelineJob,
    checked: &Checked,
    name: &str,
    values: &BTreeMap<String, Outputs>,
) -> Result<Prepared, String> {
    let step = &pj.spec.jobs[name];
    let empty = Outputs::new();
    let mut inputs = Outputs::new();
    for (k, v) in &step.inputs {
        let val = match v
            .as_str()
            .map(bind::whole)
            .transpose()
            .map_err(|e| e.0)?
            .flatten()
        {
            Some(r) => value_of(&r, pj, job, values, &empty)?,
            None => {
                let ty = checked
                    .step_inputs
                    .get(name)
                    .and_then(|m| m.get(k))
                    .copied()
                    .unwrap_or(Type::String);
                let out = bind::substitute(v, &mut |r, _| {
                    value_of(r, pj, job, values, &empty).map(|x| x.value)
                })?;
                if ty.is_scalar() {
                    Val::scalar(ty, out)
                } else {
                    // a data literal (a dataset name): pinned like the pipeline's inputs
                    match ty {
                        Type::Dataset => values::dataset_val(svc, ws, out.as_str().unwrap_or(""))
                            .await
                            .map_err(|e| format!("input '{k}': {e}"))?,
                        Type::Model => values::model_val(svc, ws, out.as_str().unwrap_or(""))
                            .await
                            .map_err(|e| format!("input '{k}': {e}"))?,
                        t => values::artifact_val(svc, ws, t, out.as_str().unwrap_or(""))
                            .await
                            .map_err(|e| format!("input '{k}': {e}"))?,
                    }
                }
            }
        };
        inputs.insert(k.clone(), val);
    }
    let when = match &step.when {
        Some(w) => {
            let c = Cond::parse(w).map_err(|e| e.0)?;
            Some(
                c.eval(&mut |r| value_of(r, pj, job, values, &inputs).map(|v| v.value))
                    .map_err(|e| format!("its condition cannot be evaluated: {e}"))?,
            )
        }
        None => None,
    };
    let body = step.body().unwrap_or(Value::Null);
    let command = step.kind == StepKind::Command;
    let rendered = bind::substitute(&body, &mut |r, whole| {
        let v = value_of(r, pj, job, values, &inputs)?;
        if command
            && let Ref::StepInput(n) = r
            && matches!(v.ty, Type::Dataset | Type::File | Type::Folder)
        {
            return Ok(Value::String(input_path(n, v.ty)));
        }
        Ok(if whole {
            v.value
        } else {
            Value::String(bind::display(&v.value))
        })
    })?;
    let mut prepared = Prepared {
        when,
        spec: None,
        files: Vec::new(),
        key: None,
        inputs: inputs.clone(),
        body: rendered.clone(),
    };
    if when == Some(false) || matches!(step.kind, StepKind::RegisterModel) {
        return Ok(prepared);
    }
    // the job spec
    let mut section = rendered;
    let mut files = Vec::new();
    if command {
        let obj = section
            .as_object_mut()
            .ok_or("the command section must be a command line or a table")?;
        let env = obj.entry("env").or_insert_with(|| json!({}));
        let env = env.as_object_mut().ok_or("command.env must be a table")?;
        for (k, v) in &inputs {
            let text = if matches!(v.ty, Type::Dataset | Type::File | Type::Folder) {
                input_path(k, v.ty)
            } else {
                bind::display(&v.value)
            };
            env.insert(
                format!("ATRIUM_INPUT_{}", k.to_ascii_uppercase()),
                Value::String(text),
            );
        }
        if let Some(t) = step.timeout_secs {
            obj.entry("timeout_secs").or_insert(json!(t));
        }
        for f in &pj.snapshot {
            files.push(StepFile {
                file: f.clone(),
                datastore: None,
            });
        }
        for (k, v) in &inputs {
            files.extend(
                input_files(svc, ws, k, v)
                    .await
                    .map_err(|e| format!("input '{k}': {e}"))?,
            );
        }
    }
    let environment = if command {
        step.environment
            .clone()
            .or_else(|| pj.settings.default_environment.clone())
    } else {
        None
    };
    let job_name = step
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{}.{name}", pj.spec.name));
    let experiment = pj
        .spec
        .experiment
        .clone()
        .unwrap_or_else(|| pj.spec.name.clone());
    let mut spec_json = json!({
        "type": if step.kind == StepKind::Pipeline { "pipeline" } else { step.kind.as_str() },
        "name": job_name,
        "experiment": experiment,
        "retries": STEP_JOB_RETRIES,
    });
    let m = spec_json.as_object_mut().expect("an object");
    if let Some(c) = step
        .compute
        .clone()
        .or_else(|| pj.settings.default_compute.clone())
    {
        m.insert("compute".into(), Value::String(c));
    }
    if let Some(e) = &environment {
        m.insert("environment".into(), e.clone());
    }
    if step.kind == StepKind::Pipeline {
        let reference = step.pipeline.clone().unwrap_or_default();
        let nested = pj
            .nested
            .get(&reference)
            .ok_or_else(|| format!("pipeline '{reference}' was not resolved at submission"))?;
        let inner = super::checked_of(&nested.spec, &nested.nested)?;
        let mut given = serde_json::Map::new();
        for (k, v) in &inputs {
            given.insert(k.clone(), v.value.clone());
        }
        let resolved = inner.resolve_inputs(&given).map_err(|e| e.0)?;
        let mut vals = BTreeMap::new();
        for (k, v) in resolved {
            let ty = inner.inputs[&k].ty;
            let val = match inputs.get(&k) {
                Some(x) => x.clone(),
                None => pin(svc, ws, ty, v)
                    .await
                    .map_err(|e| format!("input '{k}': {e}"))?,
            };
            vals.insert(k, val);
        }
        let child = PipelineJob {
            pipeline: nested.reference.clone(),
            spec: nested.spec.clone(),
            snapshot: nested.snapshot.clone(),
            inputs: vals,
            settings: nested.spec.settings.clone(),
            nested: nested.nested.clone(),
            pinned: BTreeMap::new(),
            force: Default::default(),
            rerun_of: None,
            schedule: pj.schedule.clone(),
            trigger_time: pj.trigger_time.clone(),
        };
        m.insert(
            "pipeline".into(),
            serde_json::to_value(child).map_err(|e| e.to_string())?,
        );
    } else {
        m.insert(step.kind.section().into(), section);
    }
    let spec: JobSpec =
        serde_json::from_value(spec_json).map_err(|e| format!("its job spec is invalid: {e}"))?;
    if step.kind != StepKind::Pipeline {
        spec.check()
            .map_err(|e| format!("its job spec is invalid: {e}"))?;
    }
    // the cache key: the spec with references as content, the code, the environment
    if step.kind != StepKind::Pipeline {
        let keyed = bind::substitute(&body, &mut |r, _| {
            if let Ref::StepOutput(n) = r {
                return Ok(Value::String(format!("$ATRIUM_OUTPUTS/{n}")));
            }
            value_of(r, pj, job, values, &inputs).map(|v| Value::String(v.content))
        })?;
        let env_hash = match &spec.environment {
            Some(r) => Some(match svc.resolve_environment(ws, r, None).await {
                Ok(e) => e.hash,
                Err(_) => serde_json::to_string(&environment).unwrap_or_default(),
            }),
            None => None,
        };
        let code: Vec<String> = if command {
            pj.snapshot
                .iter()
                .map(|f| format!("{}={}", f.path, f.digest))
                .collect()
        } else {
            Vec::new()
        };
        let mut keyed_inputs = BTreeMap::new();
        for (k, v) in &inputs {
            keyed_inputs.insert(k.clone(), v.content.clone());
        }
        let parts = json!({
            "kind": step.kind.as_str(),
            "body": keyed,
            "inputs": keyed_inputs,
            "outputs": step.outputs,
            "environment": env_hash,
            "code": code,
            "cache_version": step.cache_version,
            "build": if step.kind == StepKind::Train { Some(format!("atrium {} {}", env!("CARGO_PKG_VERSION"), if cfg!(feature = "cuda") { "cuda" } else { "cpu" })) } else { None },
        });
        prepared.key = Some(atrium_pipelines::key::step_key(&parts));
    }
    prepared.spec = Some(spec);
    prepared.files = files;
    Ok(prepared)
}

/// A literal value of a declared type, pinned (datasets to a version, with content hashes).
pub async fn pin(svc: &Service, ws: &Workspace, ty: Type, v: Value) -> DomainResult<Val> {
    let s = v.as_str().unwrap_or("").to_string();
    Ok(match ty {
        Type::Dataset => values::dataset_val(svc, ws, s.trim_end_matches("@latest")).await?,
        Type::Model => values::model_val(svc, ws, &s).await?,
        Type::File | Type::Folder => values::artifact_val(svc, ws, ty, &s).await?,
        t => Val::scalar(t, v),
    })
}

/// The files a data input puts in a command's code directory.
async fn input_files(
    svc: &Service,
    ws: &Workspace,
    k: &str,
    v: &Val,
) -> DomainResult<Vec<StepFile>> {
    let s = v.value.as_str().unwrap_or_default();
    match v.ty {
        Type::Dataset => {
            let (n, ver) = crate::train::spec::dataset_ref(s)?;
            let d = svc.store.dataset(ws.id, n, ver).await?;
            Ok(vec![StepFile {
                file: SnapshotFile {
                    path: input_path(k, Type::Dataset),
                    digest: d.digest,
                    size: d.size as u64,
                    executable: false,
                },
                datastore: Some(d.datastore_id),
            }])
        }
        Type::File | Type::Folder => {
            let rest = s.strip_prefix("runs:/").unwrap_or(s);
            let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
            let r = svc.store.run_info(ws.id, run).await?;
            let owner = ArtifactOwner::Run(r.key);
            let list = if v.ty == Type::File {
                svc.store
                    .artifact(owner, path)
                    .await?
                    .into_iter()
                    .collect::<Vec<_>>()
            } else {
                svc.store
                    .artifacts_under(owner, &format!("{}/", path.trim_matches('/')))
                    .await?
            };
            Ok(list
                .into_iter()
                .map(|a| {
                    let target = if v.ty == Type::File {
                        input_path(k, Type::File)
                    } else {
                        let rel = a
                            .path
                            .strip_prefix(&format!("{}/", path.trim_matches('/')))
                            .unwrap_or(&a.path)
                            .to_string();
                        format!("{}{rel}", input_path(k, Type::Folder))
                    };
                    StepFile {
                        file: SnapshotFile {
                            path: target,
                            digest: a.digest,
                            size: a.size as u64,
                            executable: false,
                        },
                        datastore: Some(a.datastore_id),
                    }
                })
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// A cache hit under `key` whose outputs all still exist: the outputs and where they come from.
pub async fn lookup(
    svc: &Service,
    ws: &Workspace,
    key: &str,
) -> DomainResult<Option<(Outputs, Reused)>> {
    'entries: for e in svc.store.cache_entries(ws.id, key).await? {
        let Ok(outs) = serde_json::from_str::<Outputs>(&e.outputs) else {
            continue;
        };
        // the step's run holds its logs and outputs: deleted, the result is gone with it
        if let Some(run) = &e.run_id
            && !svc
                .store
                .run_info(ws.id, run)
                .await
                .is_ok_and(|r| r.lifecycle_stage == crate::workspace::LifecycleStage::Active)
        {
            continue;
        }
        for v in outs.values() {
            if !values::still_exists(svc, ws, v).await {
                continue 'entries;
            }
        }
        return Ok(Some((
            outs,
            Reused {
                job: e.job_uuid,
                step: e.step,
                run: e.run_id,
                waiting: false,
            },
        )));
    }
    Ok(None)
}

/// Runs a register-model step: the model registered as the next version of `name`.
pub async fn register(
    svc: &Service,
    ws: &Workspace,
    job: &JobRow,
    step: &str,
    p: &Prepared,
) -> Result<Outputs, String> {
    let b = p.body.as_object().ok_or("register_model must be a table")?;
    for k in b.keys() {
        if !["model", "name", "alias", "aliases", "tags", "description"].contains(&k.as_str()) {
            return Err(format!(
                "register_model has no field '{k}' (fields: model, name, alias, aliases, tags, description)"
            ));
        }
    }
    let model = b
        .get("model")
        .and_then(Value::as_str)
        .ok_or("register_model.model must name a model (runs:/<run>/<path>)")?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or("register_model.name must be the registered model's name")?;
    let (run, path) = model
        .strip_prefix("runs:/")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| format!("register_model.model '{model}' is not runs:/<run>/<path>"))?;
    let mut aliases: Vec<String> = b
        .get("aliases")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = b.get("alias").and_then(Value::as_str) {
        aliases.push(a.to_string());
    }
    let mut tags: BTreeMap<String, String> = b
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), bind::display(v)))
                .collect()
        })
        .unwrap_or_default();
    tags.insert("atrium.pipeline.job".into(), job.id.clone());
    tags.insert("atrium.pipeline.step".into(), step.to_string());
    // registered before the host stopped, before the step's row said so: that version, not another
    let earlier = svc
        .store
        .model_versions(ws.id, Some(name), None)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|v| {
            v.tags.get("atrium.pipeline.job") == Some(&job.id)
                && v.tags.get("atrium.pipeline.step").map(String::as_str) == Some(step)
        });
    let v = match earlier {
        Some(v) => v,
        None => svc
            .register_model_from_run(
                ws,
                crate::service::RegisterRequest {
                    name: name.to_string(),
                    create_model: true,
                    description: b
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    tags,
                    aliases,
                },
                run,
                path,
                None,
            )
            .await
            .map_err(|e| format!("cannot register {model} as '{name}': {e}"))?,
    };
    let uri = format!("models:/{}/{}", v.name, v.version);
    Ok(Outputs::from([
        (
            "model".to_string(),
            Val {
                ty: Type::Model,
                value: Value::String(uri),
                content: format!("model-version:{}:{}", v.name, v.version),
            },
        ),
        (
            "version".to_string(),
            Val::scalar(Type::Integer, Value::from(v.version)),
        ),
    ]))
}
