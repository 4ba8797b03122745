//! Checks a pipeline before it is published or run: names, sections, references (to inputs,
//! steps and their outputs), types where a reference is used, conditions, and cycles. Every
//! error names the step and the field. The result is the plan the orchestrator follows.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::bind::{self, Ref};
use crate::spec::{InputDecl, PipelineSpec, Step, StepKind, Type};
use crate::when::Cond;
use crate::{Result, SpecError};

/// Names an input may not have (they would shadow a command's environment).
pub const RESERVED_INPUTS: [&str; 7] = [
    "path",
    "ld_library_path",
    "user",
    "logname",
    "home",
    "pwd",
    "shell",
];
/// Names a step may not have (they are words of the reference syntax).
pub const RESERVED_STEPS: [&str; 6] = [
    "parent",
    "inputs",
    "outputs",
    "jobs",
    "settings",
    "creation_context",
];

/// What a published pipeline takes and gives, for a step that runs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interface {
    /// Its inputs.
    pub inputs: BTreeMap<String, InputDecl>,
    /// Its outputs' types.
    pub outputs: BTreeMap<String, Type>,
}

/// A checked pipeline: its inputs, steps in an order that respects dependencies, and types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checked {
    /// The declared inputs.
    pub inputs: BTreeMap<String, InputDecl>,
    /// Steps, each after the steps it depends on.
    pub order: Vec<String>,
    /// Per step, the steps whose outputs it reads.
    pub deps: BTreeMap<String, BTreeSet<String>>,
    /// Per step, the types of its inputs.
    pub step_inputs: BTreeMap<String, BTreeMap<String, Type>>,
    /// Per step, the outputs others read (with their types); a train step's metrics included.
    pub used_outputs: BTreeMap<String, BTreeMap<String, Type>>,
    /// The pipeline's outputs: type and the step output each is bound to.
    pub outputs: BTreeMap<String, (Type, String, String)>,
}

impl Checked {
    /// What the pipeline takes and gives.
    pub fn interface(&self) -> Interface {
        Interface {
            inputs: self.inputs.clone(),
            outputs: self
                .outputs
                .iter()
                .map(|(k, (t, _, _))| (k.clone(), *t))
                .collect(),
        }
    }

    /// `step` and every step that depends on it, directly or not.
    pub fn downstream(&self, step: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::from([step.to_string()]);
        for s in &self.order {
            if self.deps[s].iter().any(|d| out.contains(d)) {
                out.insert(s.clone());
            }
        }
        out
    }

    /// Values for the inputs: `given` checked against the declarations, defaults filled in
    /// (a missing optional input is null).
    pub fn resolve_inputs(
        &self,
        given: &serde_json::Map<String, Value>,
    ) -> Result<BTreeMap<String, Value>> {
        for k in given.keys() {
            if !self.inputs.contains_key(k) {
                return Err(SpecError::new(format!(
                    "the pipeline has no input '{k}' (its inputs: {})",
                    list(self.inputs.keys())
                )));
            }
        }
        let mut out = BTreeMap::new();
        for (name, d) in &self.inputs {
            let v = match given.get(name).or(d.default.as_ref()) {
                Some(v) => d
                    .accept(v)
                    .map_err(|e| SpecError::new(format!("input '{name}': {e}")))?,
                None if d.optional => Value::Null,
                None => {
                    return Err(SpecError::new(format!(
                        "input '{name}' ({}) needs a value: it has no default",
                        d.ty.as_str()
                    )));
                }
            };
            out.insert(name.clone(), v);
        }
        Ok(out)
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Checks a name of a pipeline, step, input or output.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(SpecError::new(format!(
            "{what} name '{name}' is invalid: use up to 64 letters, digits, '_' and '-', starting with a letter"
        )));
    }
    Ok(())
}

fn check_io_name(what: &str, name: &str) -> Result<()> {
    check_name(what, name)?;
    if name.contains('-') {
        return Err(SpecError::new(format!(
            "{what} name '{name}' is invalid: use letters, digits and '_' (it becomes an environment variable)"
        )));
    }
    if RESERVED_INPUTS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(SpecError::new(format!(
            "{what} name '{name}' is reserved (the names {} are taken by the environment)",
            RESERVED_INPUTS.join(", ")
        )));
    }
    Ok(())
}

/// The outputs a step gives: fixed ones by name, and whether other names are metrics
/// (numbers; train steps).
fn outputs_of(step: &Step, nested: Option<&Interface>) -> (BTreeMap<String, Type>, bool) {
    let fixed = |v: &[(&str, Type)]| v.iter().map(|(k, t)| (k.to_string(), *t)).collect();
    match step.kind {
        StepKind::Train => (fixed(&[("model", Type::Model)]), true),
        StepKind::Command => (
            step.outputs
                .iter()
                .map(|(k, d)| (k.clone(), d.ty))
                .collect(),
            false,
        ),
        StepKind::Sweep | StepKind::Automl => (
            fixed(&[
                ("best_model", Type::Model),
                ("best_score", Type::Number),
                ("best_run", Type::String),
            ]),
            false,
        ),
        StepKind::BatchScore => (fixed(&[("scored", Type::Dataset)]), false),
        StepKind::RegisterModel => (
            fixed(&[("model", Type::Model), ("version", Type::Integer)]),
            false,
        ),
        StepKind::Pipeline => (nested.map(|i| i.outputs.clone()).unwrap_or_default(), false),
    }
}

/// Fields of a step body whose value has a type.
fn typed_field(kind: StepKind, path: &str) -> Option<Type> {
    match (kind, path) {
        (StepKind::Train, "train.dataset" | "train.validation_dataset") => Some(Type::Dataset),
        (StepKind::BatchScore, "batch_score.dataset") => Some(Type::Dataset),
        (StepKind::BatchScore, "batch_score.model") => Some(Type::Model),
        (StepKind::RegisterModel, "register_model.model") => Some(Type::Model),
        (StepKind::RegisterModel, "register_model.name") => Some(Type::String),
        _ => None,
    }
}

/// Checks a pipeline; `nested` gives the interface of a published pipeline a step runs.
pub fn check(
    spec: &PipelineSpec,
    nested: &dyn Fn(&str) -> std::result::Result<Interface, String>,
) -> Result<Checked> {
    check_name("pipeline", &spec.name)?;
    if spec.jobs.is_empty() {
        return Err(SpecError::new(
            "a pipeline needs at least one step under [jobs]",
        ));
    }
    if spec.settings.max_parallel == Some(0) {
        return Err(SpecError::new("settings.max_parallel must be at least 1"));
    }
    let mut c = Checked::default();
    for (name, v) in &spec.inputs {
        check_io_name("input", name)?;
        c.inputs
            .insert(name.clone(), InputDecl::from_value(name, v)?);
    }
    // pass 1: names, sections, outputs of each step
    let mut outs: BTreeMap<&str, (BTreeMap<String, Type>, bool)> = BTreeMap::new();
    let mut interfaces: BTreeMap<&str, Interface> = BTreeMap::new();
    for (name, step) in &spec.jobs {
        check_name("step", name)?;
        if RESERVED_STEPS.contains(&name.as_str()) {
            return Err(SpecError::new(format!(
                "step name '{name}' is reserved (taken: {})",
                RESERVED_STEPS.join(", ")
            )));
        }
        let at = |m: String| SpecError::new(format!("step '{name}': {m}"));
        let sections = [
            ("train", step.train.is_some(), StepKind::Train),
            ("command", step.command.is_some(), StepKind::Command),
            ("sweep", step.sweep.is_some(), StepKind::Sweep),
            ("automl", step.automl.is_some(), StepKind::Automl),
            (
                "batch_score",
                step.batch_score.is_some(),
                StepKind::BatchScore,
            ),
            (
                "register_model",
                step.register_model.is_some(),
                StepKind::RegisterModel,
            ),
            ("pipeline", step.pipeline.is_some(), StepKind::Pipeline),
        ];
        for (section, present, owner) in sections {
            if present && owner != step.kind {
                return Err(at(format!(
                    "a {} step takes no '{section}' section",
                    step.kind.as_str()
                )));
            }
        }
        for (section, present, owner) in sections {
            if !present && owner == step.kind {
                return Err(at(format!(
                    "a {} step needs a '{section}' section",
                    step.kind.as_str()
                )));
            }
        }
        if !step.outputs.is_empty() && step.kind != StepKind::Command {
            return Err(at(format!(
                "only command steps declare outputs; a {} step gives {}",
                step.kind.as_str(),
                list(outputs_of(step, None).0.keys())
            )));
        }
        for (o, d) in &step.outputs {
            check_io_name("output", o).map_err(|e| at(e.0))?;
            if d.name.is_some() && d.ty != Type::Dataset {
                return Err(at(format!(
                    "output '{o}': only dataset outputs take a name"
                )));
            }
        }
        for i in step.inputs.keys() {
            check_io_name("input", i).map_err(|e| at(e.0))?;
        }
        if step.environment.is_some() && step.kind != StepKind::Command {
            return Err(at("only command steps take an environment".into()));
        }
        if let Some(p) = &step.pipeline {
            let i = nested(p).map_err(|e| at(format!("pipeline '{p}': {e}")))?;
            interfaces.insert(name, i);
        }
        if matches!(step.retry_backoff_secs, Some(b) if !(0.0..=3600.0).contains(&b)) {
            return Err(at("retry_backoff_secs must be between 0 and 3600".into()));
        }
        outs.insert(name, outputs_of(step, interfaces.get(name.as_str())));
    }
    let decls = c.inputs.clone();
    // the type of a reference, seen from `step`
    let ref_type = |step: &str,
                    r: &Ref,
                    step_inputs: &BTreeMap<String, Type>|
     -> std::result::Result<Type, String> {
        match r {
            Ref::Input(n) => decls.get(n).map(|d| d.ty).ok_or_else(|| {
                format!(
                    "{r}: the pipeline has no input '{n}' (its inputs: {})",
                    list(decls.keys())
                )
            }),
            Ref::Output(s, n) => {
                if s == step {
                    return Err(format!("{r}: a step cannot read its own outputs"));
                }
                let (fixed, metrics) = outs.get(s.as_str()).ok_or_else(|| {
                    format!(
                        "{r}: there is no step '{s}' (steps: {})",
                        list(spec.jobs.keys())
                    )
                })?;
                match fixed.get(n) {
                    Some(t) => Ok(*t),
                    None if *metrics => Ok(Type::Number),
                    None => Err(format!(
                        "{r}: step '{s}' has no output '{n}' (its outputs: {})",
                        list(fixed.keys())
                    )),
                }
            }
            Ref::StepInput(n) => step_inputs.get(n).copied().ok_or_else(|| {
                format!("{r}: the step has no input '{n}' (declare it under inputs)")
            }),
            Ref::StepOutput(n) => Err(format!(
                "{r}: only a command's command line may name its outputs ('{n}')"
            )),
            Ref::TriggerTime => Ok(Type::String),
        }
    };
    // pass 2: references, types, dependencies
    for (name, step) in &spec.jobs {
        let at = |m: String| SpecError::new(format!("step '{name}': {m}"));
        let mut deps = BTreeSet::new();
        let mut used = |r: &Ref, t: Type, c: &mut Checked| {
            if let Ref::Output(s, n) = r {
                deps.insert(s.clone());
                c.used_outputs
                    .entry(s.clone())
                    .or_default()
                    .insert(n.clone(), t);
            }
        };
        // the step's inputs: literals or references to the pipeline's inputs and other steps
        let mut types = BTreeMap::new();
        for (i, v) in &step.inputs {
            let field = format!("inputs.{i}");
            let mut refs = Vec::new();
            bind::find(v, &field, &mut refs).map_err(|e| at(e.0))?;
            let t = match (
                bind::whole(v.as_str().unwrap_or_default()).map_err(|e| at(e.0))?,
                refs.is_empty(),
            ) {
                (Some(r), _) => {
                    if matches!(r, Ref::StepInput(_) | Ref::StepOutput(_)) {
                        return Err(at(format!(
                            "field {field}: {r} names the step itself; use ${{{{parent.inputs.NAME}}}} or ${{{{parent.jobs.STEP.outputs.NAME}}}}"
                        )));
                    }
                    let t = ref_type(name, &r, &BTreeMap::new())
                        .map_err(|e| at(format!("field {field}: {e}")))?;
                    used(&r, t, &mut c);
                    t
                }
                (None, true) => {
                    InputDecl::from_value(i, v)
                        .map_err(|e| at(format!("field {field}: {}", e.0)))?
                        .ty
                }
                (None, false) => {
                    for (_, r, _) in &refs {
                        let t = ref_type(name, r, &BTreeMap::new())
                            .map_err(|e| at(format!("field {field}: {e}")))?;
                        used(r, t, &mut c);
                    }
                    Type::String
                }
            };
            types.insert(i.clone(), t);
        }
        // the body
        let body = step.body().unwrap_or(Value::Null);
        let mut refs = Vec::new();
        bind::find(&body, step.kind.section(), &mut refs).map_err(|e| at(e.0))?;
        if let Some(Value::String(s)) = &step.environment {
            bind::find(&Value::String(s.clone()), "environment", &mut refs).map_err(|e| at(e.0))?;
        }
        for (field, r, alone) in &refs {
            if let Ref::StepOutput(n) = r {
                if step.kind != StepKind::Command || !step.outputs.contains_key(n) {
                    return Err(at(format!(
                        "field {field}: {r} names no declared output of this step (declare it under outputs)"
                    )));
                }
                continue;
            }
            let t = ref_type(name, r, &types).map_err(|e| at(format!("field {field}: {e}")))?;
            used(r, t, &mut c);
            if let Some(want) = typed_field(step.kind, field) {
                if !*alone {
                    return Err(at(format!(
                        "field {field} expects a {}: give the reference alone, not inside text",
                        want.as_str()
                    )));
                }
                if !t.fits(want) {
                    return Err(at(format!(
                        "field {field} expects a {}, and {r} is a {}",
                        want.as_str(),
                        t.as_str()
                    )));
                }
            }
            if step.kind == StepKind::Command
                && matches!(t, Type::Dataset | Type::File | Type::Folder)
                && !matches!(r, Ref::StepInput(_))
            {
                return Err(at(format!(
                    "field {field}: a command reads a {} through its inputs: add inputs = {{ x = \"{r}\" }} and write ${{{{inputs.x}}}}",
                    t.as_str()
                )));
            }
        }
        if let Some(i) = interfaces.get(name.as_str()) {
            for (k, t) in &types {
                let d = i.inputs.get(k).ok_or_else(|| {
                    at(format!(
                        "field inputs.{k}: pipeline '{}' has no input '{k}' (its inputs: {})",
                        step.pipeline.as_deref().unwrap_or(""),
                        list(i.inputs.keys())
                    ))
                })?;
                if !(t.fits(d.ty) || d.ty == Type::String && t.is_scalar()) {
                    return Err(at(format!(
                        "field inputs.{k} expects a {}, got a {}",
                        d.ty.as_str(),
                        t.as_str()
                    )));
                }
            }
            for (k, d) in &i.inputs {
                if !types.contains_key(k) && d.default.is_none() && !d.optional {
                    return Err(at(format!(
                        "input '{k}' of pipeline '{}' needs a value (it has no default)",
                        step.pipeline.as_deref().unwrap_or("")
                    )));
                }
            }
        }
        if let Some(w) = &step.when {
            let cond = Cond::parse(w).map_err(|e| at(format!("field when: {}", e.0)))?;
            for r in cond.refs() {
                let t = ref_type(name, &r, &types).map_err(|e| at(format!("field when: {e}")))?;
                used(&r, t, &mut c);
            }
            cond.check(&|r| ref_type(name, r, &types).ok())
                .map_err(|e| at(format!("field when: {}", e.0)))?;
        }
        c.step_inputs.insert(name.clone(), types);
        c.deps.insert(name.clone(), deps);
    }
    // the pipeline's outputs
    for (o, binding) in &spec.outputs {
        check_io_name("output", o)?;
        let at = |m: String| SpecError::new(format!("output '{o}': {m}"));
        match bind::whole(binding).map_err(|e| at(e.0))? {
            Some(r @ Ref::Output(_, _)) => {
                let t = ref_type("", &r, &BTreeMap::new()).map_err(at)?;
                let Ref::Output(s, n) = &r else {
                    unreachable!()
                };
                c.used_outputs
                    .entry(s.clone())
                    .or_default()
                    .insert(n.clone(), t);
                c.outputs.insert(o.clone(), (t, s.clone(), n.clone()));
            }
            _ => {
                return Err(at(format!(
                    "bind it to a step output: ${{{{parent.jobs.STEP.outputs.NAME}}}}, not '{binding}'"
                )));
            }
        }
    }
    c.order = order(&c.deps)?;
    Ok(c)
}

/// A topological order (by name among ready steps), or the cycle.
fn order(deps: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < deps.len() {
        let ready: Vec<&String> = deps
            .iter()
            .filter(|(s, d)| {
                !done.contains(s.as_str()) && d.iter().all(|x| done.contains(x.as_str()))
            })
            .map(|(s, _)| s)
            .collect();
        if ready.is_empty() {
            return Err(SpecError::new(format!(
                "the steps form a cycle: {}",
                cycle(deps, &done)
            )));
        }
        for s in ready {
            done.insert(s);
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// A cycle among the steps not `done`, as `a → b → a`.
fn cycle(deps: &BTreeMap<String, BTreeSet<String>>, done: &BTreeSet<&str>) -> String {
    let start = deps
        .keys()
        .find(|s| !done.contains(s.as_str()))
        .expect("a step is left");
    let mut path = vec![start.clone()];
    let mut at = start.clone();
    loop {
        let next = deps[&at]
            .iter()
            .find(|d| !done.contains(d.as_str()))
            .expect("a step in a cycle depends on another")
            .clone();
        if let Some(i) = path.iter().position(|p| *p == next) {
            let mut c: Vec<String> = path[i..].to_vec();
            c.push(next);
            // read as "runs after": a depends on b shown as b → a
            c.reverse();
            return c.join(" → ");
        }
        path.push(next.clone());
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Format;

    fn spec(yaml: &str) -> PipelineSpec {
        PipelineSpec::parse_as(yaml, Format::Yaml).unwrap()
    }
    fn none(_: &str) -> std::result::Result<Interface, String> {
        Err("not found".into())
    }
    fn err(yaml: &str) -> String {
        check(&spec(yaml), &none).unwrap_err().0
    }

    const DIAMOND: &str = r#"
name: diamond
inputs: {n: 3, data: {type: dataset, default: iris}}
outputs: {total: "${{parent.jobs.d.outputs.sum}}"}
jobs:
  a: {type: command, command: "echo", outputs: {x: {type: integer}}}
  b: {type: command, command: "echo ${{inputs.v}}", inputs: {v: "${{parent.jobs.a.outputs.x}}"}, outputs: {y: {type: integer}}}
  c: {type: command, command: "echo ${{parent.jobs.a.outputs.x}} ${{parent.inputs.n}}", outputs: {z: {type: integer}}}
  d:
    type: command
    command: "echo ${{parent.jobs.b.outputs.y}} ${{parent.jobs.c.outputs.z}}"
    outputs: {sum: {type: number}}
    when: "${{parent.jobs.c.outputs.z}} > 0"
"#;

    #[test]
    fn a_diamond_in_order() {
        let c = check(&spec(DIAMOND), &none).unwrap();
        assert_eq!(c.order, vec!["a", "b", "c", "d"]);
        assert_eq!(
            c.deps["d"],
            BTreeSet::from(["b".to_string(), "c".to_string()])
        );
        assert_eq!(
            c.downstream("b"),
            BTreeSet::from(["b".to_string(), "d".to_string()])
        );
        assert_eq!(c.outputs["total"], (Type::Number, "d".into(), "sum".into()));
        assert_eq!(c.step_inputs["b"]["v"], Type::Integer);
        let given = serde_json::json!({"n": 5}).as_object().unwrap().clone();
        let v = c.resolve_inputs(&given).unwrap();
        assert_eq!(v["n"], serde_json::json!(5));
        assert_eq!(v["data"], serde_json::json!("iris"));
        let bad = serde_json::json!({"m": 5}).as_object().unwrap().clone();
        assert!(
            c.resolve_inputs(&bad)
                .unwrap_err()
                .0
                .contains("no input 'm'")
        );
        let bad = serde_json::json!({"n": "x"}).as_object().unwrap().clone();
        assert!(
            c.resolve_inputs(&bad)
                .unwrap_err()
                .0
                .contains("input 'n': \"x\" is not a integer")
        );
    }

    #[test]
    fn refuses_cycles_references_types_and_names() {
        let e = err(
            "name: p\njobs:\n  a: {type: command, command: \"${{parent.jobs.b.outputs.o}}\", outputs: {o: {type: string}}}\n  b: {type: command, command: \"${{parent.jobs.a.outputs.o}}\", outputs: {o: {type: string}}}\n",
        );
        assert!(
            e.contains("cycle: a → b → a") || e.contains("cycle: b → a → b"),
            "{e}"
        );
        let e = err(
            "name: p\njobs:\n  a: {type: command, command: \"echo ${{parent.jobs.zz.outputs.o}}\"}\n",
        );
        assert!(e.contains("step 'a': field command.command: ${{parent.jobs.zz.outputs.o}}: there is no step 'zz'"), "{e}");
        let e =
            err("name: p\njobs:\n  a: {type: command, command: \"echo ${{parent.inputs.lr}}\"}\n");
        assert!(e.contains("the pipeline has no input 'lr'"), "{e}");
        let e = err(
            "name: p\njobs:\n  a: {type: command, command: x, outputs: {auc: {type: number}}}\n  t: {type: train, train: {dataset: \"${{parent.jobs.a.outputs.auc}}\", target: y}}\n",
        );
        assert!(e.contains("step 't': field train.dataset expects a dataset, and ${{parent.jobs.a.outputs.auc}} is a number"), "{e}");
        let e = err(
            "name: p\njobs:\n  a: {type: command, command: x}\n  b: {type: command, command: \"${{parent.jobs.a.outputs.nope}}\"}\n",
        );
        assert!(
            e.contains("step 'a' has no output 'nope' (its outputs: none)"),
            "{e}"
        );
        let e = err("name: p\njobs:\n  parent: {type: command, command: x}\n");
        assert!(e.contains("step name 'parent' is reserved"), "{e}");
        let e = err("name: p\ninputs: {HOME: 1}\njobs:\n  a: {type: command, command: x}\n");
        assert!(e.contains("input name 'HOME' is reserved"), "{e}");
        let e = err("name: p\njobs:\n  a: {type: train, command: x}\n");
        assert!(e.contains("a train step takes no 'command' section"), "{e}");
        let e = err(
            "name: p\ninputs: {d: {type: dataset}}\njobs:\n  a: {type: command, command: \"cat ${{parent.inputs.d}}\"}\n",
        );
        assert!(
            e.contains("a command reads a dataset through its inputs"),
            "{e}"
        );
        let e = err(
            "name: p\njobs:\n  a: {type: command, command: x, outputs: {ok: {type: boolean}}}\n  b: {type: command, command: x, when: \"${{parent.jobs.a.outputs.ok}} > 1\"}\n",
        );
        assert!(
            e.contains("step 'b': field when: a condition compares a boolean with a number"),
            "{e}"
        );
        let e = err("name: p\noutputs: {m: \"x\"}\njobs:\n  a: {type: command, command: x}\n");
        assert!(e.contains("output 'm': bind it to a step output"), "{e}");
        let e = err("name: p\njobs:\n  a: {type: command, command: \"echo ${{outputs.o}}\"}\n");
        assert!(e.contains("names no declared output"), "{e}");
        let e = err("name: p\njobs:\n  a: {type: pipeline, pipeline: \"sub@latest\"}\n");
        assert!(
            e.contains("step 'a': pipeline 'sub@latest': not found"),
            "{e}"
        );
    }

    #[test]
    fn nested_pipelines_by_interface() {
        let sub = |_: &str| {
            Ok(Interface {
                inputs: BTreeMap::from([(
                    "k".to_string(),
                    InputDecl::from_value("k", &serde_json::json!({"type": "integer"})).unwrap(),
                )]),
                outputs: BTreeMap::from([("score".to_string(), Type::Number)]),
            })
        };
        let ok = spec(
            "name: p\njobs:\n  s: {type: pipeline, pipeline: \"sub:1\", inputs: {k: 3}}\n  t: {type: command, command: \"echo ${{parent.jobs.s.outputs.score}}\"}\n",
        );
        check(&ok, &sub).unwrap();
        let missing = spec("name: p\njobs:\n  s: {type: pipeline, pipeline: \"sub:1\"}\n");
        assert!(
            check(&missing, &sub)
                .unwrap_err()
                .0
                .contains("input 'k' of pipeline 'sub:1' needs a value")
        );
        let wrong = spec(
            "name: p\njobs:\n  s: {type: pipeline, pipeline: \"sub:1\", inputs: {k: \"x\"}}\n",
        );
        assert!(
            check(&wrong, &sub)
                .unwrap_err()
                .0
                .contains("expects a integer, got a string")
        );
    }
}
