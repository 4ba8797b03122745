//! The sweep spec: a trial template with `${{search_space.x}}` placeholders, a search space,
//! the objective, the sampler and early-termination components, and limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plugins::strategy::{Dimension, ParamValue};
use crate::workspace::DomainError;

/// A search-space dimension kind (Azure ML's / hyperopt's distributions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DimKind {
    /// One of `values`.
    Choice,
    /// An integer in [low, high).
    Randint,
    /// A float in [low, high].
    Uniform,
    /// round(uniform(low, high) / q) · q.
    Quniform,
    /// A float whose log is uniform between ln(low) and ln(high).
    Loguniform,
    /// round(loguniform(low, high) / q) · q.
    Qloguniform,
    /// Normal(mu, sigma).
    Normal,
    /// round(normal(mu, sigma) / q) · q.
    Qnormal,
}

impl DimKind {
    /// The spelling in specs and in the plugin API.
    pub fn as_str(self) -> &'static str {
        match self {
            DimKind::Choice => "choice",
            DimKind::Randint => "randint",
            DimKind::Uniform => "uniform",
            DimKind::Quniform => "quniform",
            DimKind::Loguniform => "loguniform",
            DimKind::Qloguniform => "qloguniform",
            DimKind::Normal => "normal",
            DimKind::Qnormal => "qnormal",
        }
    }
}

/// One dimension of the search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dim {
    /// Distribution.
    pub kind: DimKind,
    /// Values of a `choice` (any JSON: numbers, strings, lists such as layer widths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// Lower bound (randint, uniform and log kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Quantization step of the q-kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f64>,
    /// Mean of the normal kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    /// Standard deviation of the normal kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
}

impl Dim {
    /// Checks that the dimension has exactly what its kind needs.
    pub fn check(&self, name: &str) -> Result<(), DomainError> {
        let bad = |m: &str| Err(DomainError::invalid(format!("search_space.{name}: {m}")));
        let k = self.kind;
        let quantized = matches!(
            k,
            DimKind::Quniform | DimKind::Qloguniform | DimKind::Qnormal
        );
        let normal = matches!(k, DimKind::Normal | DimKind::Qnormal);
        if k == DimKind::Choice {
            match &self.values {
                Some(v) if !v.is_empty() => {}
                _ => return bad("a choice needs a non-empty `values` list"),
            }
            if self.low.is_some() || self.high.is_some() || self.q.is_some() {
                return bad("a choice takes only `values`");
            }
            return Ok(());
        }
        if self.values.is_some() {
            return bad(&format!("`values` belongs to choice, not {}", k.as_str()));
        }
        if quantized != self.q.is_some() {
            return bad(if quantized {
                "a q-kind needs `q`"
            } else {
                "`q` belongs to the q-kinds (quniform, qloguniform, qnormal)"
            });
        }
        if let Some(q) = self.q
            && !(q > 0.0 && q.is_finite())
        {
            return bad("`q` must be positive");
        }
        if normal {
            if self.low.is_some() || self.high.is_some() {
                return bad("a normal takes `mu` and `sigma`, not low/high");
            }
            match (self.mu, self.sigma) {
                (Some(m), Some(s)) if m.is_finite() && s > 0.0 && s.is_finite() => Ok(()),
                _ => bad("a normal needs `mu` and a positive `sigma`"),
            }
        } else {
            if self.mu.is_some() || self.sigma.is_some() {
                return bad("`mu` and `sigma` belong to the normal kinds");
            }
            let low = if k == DimKind::Randint {
                self.low.unwrap_or(0.0)
            } else {
                match self.low {
                    Some(l) => l,
                    None => return bad("`low` is required"),
                }
            };
            let Some(high) = self.high else {
                return bad("`high` is required");
            };
            if !(low.is_finite() && high.is_finite() && low < high) {
                return bad("`low` must be less than `high`");
            }
            if k == DimKind::Randint && (low.fract() != 0.0 || high.fract() != 0.0) {
                return bad("randint bounds must be integers");
            }
            if matches!(k, DimKind::Loguniform | DimKind::Qloguniform) && low <= 0.0 {
                return bad("log kinds need `low` > 0");
            }
            Ok(())
        }
    }

    /// The dimension in the plugin API's terms (`choice` values as JSON text; normal kinds
    /// carry mu in `low` and sigma in `high`).
    pub fn to_wit(&self, name: &str) -> Dimension {
        let normal = matches!(self.kind, DimKind::Normal | DimKind::Qnormal);
        Dimension {
            name: name.to_string(),
            kind: self.kind.as_str().to_string(),
            low: if normal {
                self.mu
            } else if self.kind == DimKind::Randint {
                Some(self.low.unwrap_or(0.0))
            } else {
                self.low
            },
            high: if normal { self.sigma } else { self.high },
            choices: self
                .values
                .as_ref()
                .map(|v| v.iter().map(choice_text).collect())
                .unwrap_or_default(),
            log: matches!(self.kind, DimKind::Loguniform | DimKind::Qloguniform),
            q: self.q,
        }
    }

    /// The JSON value of a sampled parameter: a choice's original value, integers for randint
    /// and for q-kinds with an integral step, floats otherwise.
    pub fn value_of(&self, name: &str, p: &ParamValue) -> Result<Value, DomainError> {
        let wrong = |got: &str| {
            DomainError::Plugin(format!(
                "the sampler returned {got} for '{name}', a {} dimension",
                self.kind.as_str()
            ))
        };
        match (self.kind, p) {
            (DimKind::Choice, ParamValue::Text(t)) => self
                .values
                .as_ref()
                .and_then(|v| v.iter().find(|c| choice_text(c) == *t).cloned())
                .ok_or_else(|| wrong(&format!("'{t}', which is not one of its values"))),
            (DimKind::Choice, _) => Err(wrong("a non-text value")),
            (_, ParamValue::Int(i)) => Ok(Value::from(*i)),
            (_, ParamValue::Float(f)) if !f.is_finite() => Err(wrong("a non-finite number")),
            (k, ParamValue::Float(f)) => {
                let integral_q = self.q.is_some_and(|q| q.fract() == 0.0);
                if (k == DimKind::Randint || integral_q) && f.fract() == 0.0 {
                    Ok(Value::from(*f as i64))
                } else {
                    Ok(Value::from(*f))
                }
            }
            (_, ParamValue::Text(_)) => Err(wrong("text")),
            (_, ParamValue::Flag(_)) => Err(wrong("a flag")),
        }
    }
}

/// How a choice value is named to the sampler (strings as is, anything else as JSON).
pub fn choice_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Maximize or minimize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Higher is better.
    Maximize,
    /// Lower is better.
    Minimize,
}

/// What the sweep optimizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The metric the trials log (e.g. `val_accuracy`).
    pub primary_metric: String,
    /// Direction.
    pub goal: Goal,
}

/// A sampler: a built-in name (`random`, `sobol`, `grid`, `tpe`/`bayesian`) or a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SamplerRef {
    /// A built-in by name.
    Name(String),
    /// A built-in or an uploaded component, with options.
    Table(SamplerTable),
}

/// A sampler with options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerTable {
    /// Built-in name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Uploaded component name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Uploaded component version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Options passed to the sampler.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

impl Default for SamplerRef {
    fn default() -> Self {
        SamplerRef::Name("random".into())
    }
}

/// A component reference resolved from a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentRef {
    /// A built-in component, by registry name.
    Builtin(String),
    /// An uploaded component version.
    Uploaded {
        /// Registry name.
        name: String,
        /// Version.
        version: String,
    },
}

fn uploaded(
    what: &str,
    component: &Option<String>,
    version: &Option<String>,
) -> Result<Option<ComponentRef>, DomainError> {
    match (component, version) {
        (None, None) => Ok(None),
        (Some(n), Some(v)) => Ok(Some(ComponentRef::Uploaded {
            name: n.clone(),
            version: v.clone(),
        })),
        _ => Err(DomainError::invalid(format!(
            "{what}: an uploaded component needs both `component` and `version`"
        ))),
    }
}

impl SamplerRef {
    /// The component and its options.
    pub fn resolve(&self) -> Result<(ComponentRef, BTreeMap<String, Value>), DomainError> {
        let builtin = |n: &str, mut opts: BTreeMap<String, Value>| {
            let c = match n {
                "random" => "sampler-random",
                "sobol" => {
                    opts.entry("sobol".into()).or_insert(Value::Bool(true));
                    "sampler-random"
                }
                "grid" => "sampler-grid",
                "tpe" | "bayesian" => "sampler-tpe",
                other => {
                    return Err(DomainError::invalid(format!(
                        "unknown sampler '{other}': the built-ins are random, sobol, grid and tpe (bayesian); \
                         an uploaded sampler is given as {{ component = \"NAME\", version = \"V\" }}"
                    )));
                }
            };
            Ok((ComponentRef::Builtin(c.into()), opts))
        };
        match self {
            SamplerRef::Name(n) => builtin(n, BTreeMap::new()),
            SamplerRef::Table(t) => match (uploaded("sampler", &t.component, &t.version)?, &t.name)
            {
                (Some(_), Some(_)) => Err(DomainError::invalid(
                    "sampler: give either `name` (a built-in) or `component` and `version`",
                )),
                (Some(c), None) => Ok((c, t.options.clone())),
                (None, Some(n)) => builtin(n, t.options.clone()),
                (None, None) => Err(DomainError::invalid(
                    "sampler: give `name` (random, sobol, grid, tpe) or `component` and `version`",
                )),
            },
        }
    }
}

/// Early termination: a built-in policy (`bandit`, `median`, `truncation`, `asha`) or an
/// uploaded stopper, applied every `evaluation_interval` steps after `delay_evaluation`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyTermination {
    /// Built-in policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Uploaded stopper component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Steps between evaluations.
    #[serde(default = "one")]
    pub evaluation_interval: u64,
    /// Steps before the first evaluation.
    #[serde(default)]
    pub delay_evaluation: u64,
    /// Bandit: allowed ratio to the best.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_factor: Option<f64>,
    /// Bandit: allowed distance to the best.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_amount: Option<f64>,
    /// Truncation: percentage cut at each evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation_percentage: Option<f64>,
    /// ASHA: η.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduction_factor: Option<f64>,
    /// ASHA: steps of the first rung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<u64>,
    /// Further options for an uploaded stopper.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

fn one() -> u64 {
    1
}

impl EarlyTermination {
    /// The component and the options JSON passed to `decide`.
    pub fn resolve(&self) -> Result<(ComponentRef, String), DomainError> {
        let bad = |m: String| Err(DomainError::invalid(format!("early_termination: {m}")));
        if self.evaluation_interval == 0 {
            return bad("evaluation_interval must be at least 1".into());
        }
        let c = match (
            uploaded("early_termination", &self.component, &self.version)?,
            self.policy.as_deref(),
        ) {
            (Some(_), Some(_)) => {
                return bad("give either `policy` or `component` and `version`".into());
            }
            (Some(c), None) => c,
            (None, None) => {
                return bad(
                    "give `policy` (bandit, median, truncation, asha) or `component` and `version`"
                        .into(),
                );
            }
            (None, Some(p)) => {
                let only = |field: &str, set: bool, owner: &str| {
                    if set && p != owner {
                        Err(DomainError::invalid(format!(
                            "early_termination: `{field}` applies to the {owner} policy, not {p}"
                        )))
                    } else {
                        Ok(())
                    }
                };
                only("slack_factor", self.slack_factor.is_some(), "bandit")?;
                only("slack_amount", self.slack_amount.is_some(), "bandit")?;
                only(
                    "truncation_percentage",
                    self.truncation_percentage.is_some(),
                    "truncation",
                )?;
                only("reduction_factor", self.reduction_factor.is_some(), "asha")?;
                only("grace_period", self.grace_period.is_some(), "asha")?;
                if !self.options.is_empty() {
                    return bad(format!(
                        "`options` are for uploaded stoppers; the {p} policy takes its settings as fields"
                    ));
                }
                match p {
                    "bandit" => match (self.slack_factor, self.slack_amount) {
                        (Some(f), None) if f > 0.0 && f.is_finite() => {}
                        (None, Some(a)) if a >= 0.0 && a.is_finite() => {}
                        (Some(_), Some(_)) => {
                            return bad(
                                "bandit takes slack_factor or slack_amount, not both".into()
                            );
                        }
                        (None, None) => {
                            return bad("bandit needs slack_factor or slack_amount".into());
                        }
                        _ => {
                            return bad(
                                "slack_factor must be positive and slack_amount non-negative"
                                    .into(),
                            );
                        }
                    },
                    "median" => {}
                    "truncation" => match self.truncation_percentage {
                        Some(t) if (1.0..=99.0).contains(&t) => {}
                        Some(t) => {
                            return bad(format!(
                                "truncation_percentage must be between 1 and 99, got {t}"
                            ));
                        }
                        None => return bad("truncation needs truncation_percentage".into()),
                    },
                    "asha" => {
                        if let Some(r) = self.reduction_factor
                            && !(r >= 2.0 && r.is_finite())
                        {
                            return bad(format!("reduction_factor must be at least 2, got {r}"));
                        }
                        if self.grace_period == Some(0) {
                            return bad("grace_period must be at least 1".into());
                        }
                    }
                    other => {
                        return bad(format!(
                            "unknown policy '{other}': the built-ins are bandit, median, truncation and asha; \
                             an uploaded stopper is given as component and version"
                        ));
                    }
                }
                ComponentRef::Builtin(format!("stop-{p}"))
            }
        };
        let mut opts = serde_json::Map::new();
        opts.insert(
            "evaluation_interval".into(),
            self.evaluation_interval.into(),
        );
        opts.insert("delay_evaluation".into(), self.delay_evaluation.into());
        for (k, v) in [
            ("slack_factor", self.slack_factor),
            ("slack_amount", self.slack_amount),
            ("truncation_percentage", self.truncation_percentage),
            ("reduction_factor", self.reduction_factor),
        ] {
            if let Some(v) = v {
                opts.insert(k.into(), v.into());
            }
        }
        if let Some(g) = self.grace_period {
            opts.insert("grace_period".into(), g.into());
        }
        for (k, v) in &self.options {
            opts.insert(k.clone(), v.clone());
        }
        Ok((c, Value::Object(opts).to_string()))
    }
}

/// When the sweep ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepLimits {
    /// Trials in all.
    #[serde(default = "default_total")]
    pub max_total_trials: u32,
    /// Trials running at once.
    #[serde(default = "one_u32")]
    pub max_concurrent_trials: u32,
    /// Seconds for the whole sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Seconds for one trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_timeout: Option<u64>,
}

fn default_total() -> u32 {
    20
}
fn one_u32() -> u32 {
    1
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            max_total_trials: default_total(),
            max_concurrent_trials: 1,
            timeout: None,
            trial_timeout: None,
        }
    }
}

/// A hyperparameter sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The trial template: a train job spec with `${{search_space.x}}` placeholders.
    pub trial: Value,
    /// The search space by dimension name.
    pub search_space: BTreeMap<String, Dim>,
    /// What to optimize.
    pub objective: Objective,
    /// Which sampler proposes trials.
    #[serde(default)]
    pub sampler: SamplerRef,
    /// Which policy stops trials early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_termination: Option<EarlyTermination>,
    /// Limits.
    #[serde(default)]
    pub limits: SweepLimits,
    /// Seed of the sampler.
    #[serde(default)]
    pub seed: u64,
}

impl SweepSpec {
    /// Checks what needs no plugin and no data: dimensions, limits, references, placeholders.
    pub fn check(&self) -> Result<(), DomainError> {
        if self.search_space.is_empty() {
            return Err(DomainError::invalid(
                "search_space must have at least one dimension",
            ));
        }
        for (name, d) in &self.search_space {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(DomainError::invalid(format!(
                    "invalid dimension name '{name}': use letters, digits, '_', '-', '.'"
                )));
            }
            d.check(name)?;
        }
        let l = &self.limits;
        if !(1..=100_000).contains(&l.max_total_trials) {
            return Err(DomainError::invalid(
                "limits.max_total_trials must be between 1 and 100000",
            ));
        }
        if l.max_concurrent_trials == 0 {
            return Err(DomainError::invalid(
                "limits.max_concurrent_trials must be at least 1",
            ));
        }
        if l.timeout == Some(0) || l.trial_timeout == Some(0) {
            return Err(DomainError::invalid(
                "limits: timeouts must be positive seconds",
            ));
        }
        if self.objective.primary_metric.trim().is_empty() {
            return Err(DomainError::invalid(
                "objective.primary_metric must not be empty",
            ));
        }
        self.sampler.resolve()?;
        if let Some(e) = &self.early_termination {
            e.resolve()?;
        }
        let mut used = Vec::new();
        placeholders(&self.trial, &mut used);
        if let Some(unknown) = used.iter().find(|n| !self.search_space.contains_key(*n)) {
            return Err(DomainError::invalid(format!(
                "the trial template uses ${{{{search_space.{unknown}}}}}, which is not in search_space ({})",
                self.search_space
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(unused) = self.search_space.keys().find(|n| !used.contains(n)) {
            return Err(DomainError::invalid(format!(
                "search_space.{unused} is never used in the trial template (write ${{{{search_space.{unused}}}}} where it goes)"
            )));
        }
        Ok(())
    }

    /// The search space in the plugin API's terms (in name order).
    pub fn dimensions(&self) -> Vec<Dimension> {
        self.search_space.iter().map(|(n, d)| d.to_wit(n)).collect()
    }
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// Names of `${{search_space.NAME}}` placeholders in a template.
fn placeholders(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find(OPEN) {
                let after = &rest[i + OPEN.len()..];
                let Some(j) = after.find(CLOSE) else { break };
                if let Some(name) = after[..j].trim().strip_prefix("search_space.") {
                    out.push(name.trim().to_string());
                }
                rest = &after[j + CLOSE.len()..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| placeholders(x, out)),
        Value::Object(m) => m.values().for_each(|x| placeholders(x, out)),
        _ => {}
    }
}

/// Fills a template: a string that is exactly one placeholder becomes the typed value; a
/// placeholder inside a longer string is replaced by the value's text.
pub fn substitute(v: &Value, params: &BTreeMap<String, Value>) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if let Some(inner) = t.strip_prefix(OPEN).and_then(|x| x.strip_suffix(CLOSE))
                && !inner.contains(CLOSE)
                && let Some(name) = inner.trim().strip_prefix("search_space.")
                && let Some(val) = params.get(name.trim())
            {
                return val.clone();
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find(OPEN) {
                let after = &rest[i + OPEN.len()..];
                let Some(j) = after.find(CLOSE) else { break };
                out.push_str(&rest[..i]);
                match after[..j]
                    .trim()
                    .strip_prefix("search_space.")
                    .and_then(|n| params.get(n.trim()))
                {
                    Some(val) => out.push_str(&choice_text(val)),
                    None => out.push_str(&rest[i..i + OPEN.len() + j + CLOSE.len()]),
                }
                rest = &after[j + CLOSE.len()..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, params)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, params)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sampler options as plugin params (integers, floats, text, flags).
pub fn options_to_params(
    opts: &BTreeMap<String, Value>,
) -> Result<Vec<(String, ParamValue)>, DomainError> {
    opts.iter()
        .map(|(k, v)| {
            let p = match v {
                Value::Bool(b) => ParamValue::Flag(*b),
                Value::String(s) => ParamValue::Text(s.clone()),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => ParamValue::Int(i),
                    None => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => {
                    return Err(DomainError::invalid(format!(
                        "sampler option '{k}' must be a number, text or a flag"
                    )));
                }
            };
            Ok((k.clone(), p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(extra: &str) -> Result<SweepSpec, String> {
        let text = format!(
            "{extra}\n[trial]\ntype = \"train\"\n[trial.train]\ndataset = \"d:1\"\ntarget = \"y\"\ntask = \"classification\"\n\
             [trial.train.optimizer]\nlr = \"${{{{search_space.lr}}}}\"\n\
             [search_space]\nlr = {{ kind = \"loguniform\", low = 1e-4, high = 1e-1 }}\n\
             [objective]\nprimary_metric = \"val_accuracy\"\ngoal = \"maximize\"\n"
        );
        let s: SweepSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        s.check().map_err(|e| e.to_string())?;
        Ok(s)
    }

    #[test]
    fn parses_and_checks() {
        let s = spec("").unwrap();
        assert_eq!(s.limits.max_total_trials, 20);
        assert_eq!(
            s.sampler.resolve().unwrap().0,
            ComponentRef::Builtin("sampler-random".into())
        );
        let s = spec("sampler = \"sobol\"").unwrap();
        assert_eq!(s.sampler.resolve().unwrap().1["sobol"], json!(true));
        let e = spec("sampler = \"annealing\"").unwrap_err();
        assert!(e.contains("unknown sampler 'annealing'"), "{e}");
        let e = spec("[early_termination]\npolicy = \"bandit\"").unwrap_err();
        assert!(e.contains("slack_factor or slack_amount"), "{e}");
        let e = spec("[early_termination]\npolicy = \"median\"\nslack_factor = 0.1").unwrap_err();
        assert!(e.contains("applies to the bandit policy"), "{e}");
        let e = spec("[early_termination]\npolicy = \"truncation\"\ntruncation_percentage = 120")
            .unwrap_err();
        assert!(e.contains("between 1 and 99"), "{e}");
        let ok = spec(
            "[early_termination]\npolicy = \"bandit\"\nslack_factor = 0.1\ndelay_evaluation = 5",
        )
        .unwrap();
        let (c, opts) = ok.early_termination.unwrap().resolve().unwrap();
        assert_eq!(c, ComponentRef::Builtin("stop-bandit".into()));
        let opts: Value = serde_json::from_str(&opts).unwrap();
        assert_eq!(opts["slack_factor"], json!(0.1));
        assert_eq!(opts["delay_evaluation"], json!(5));
    }

    #[test]
    fn refuses_bad_dimensions_and_placeholders() {
        let bad = |dim: &str| {
            let text = format!(
                "trial = {{ x = \"${{{{search_space.a}}}}\" }}\n[search_space]\na = {dim}\n[objective]\nprimary_metric = \"m\"\ngoal = \"minimize\"\n"
            );
            let s: SweepSpec = toml::from_str(&text).unwrap();
            s.check().unwrap_err().to_string()
        };
        assert!(bad("{ kind = \"uniform\", low = 2, high = 1 }").contains("less than"));
        assert!(bad("{ kind = \"loguniform\", low = 0, high = 1 }").contains("> 0"));
        assert!(bad("{ kind = \"quniform\", low = 0, high = 1 }").contains("needs `q`"));
        assert!(bad("{ kind = \"choice\", values = [] }").contains("non-empty"));
        assert!(bad("{ kind = \"normal\", mu = 0 }").contains("sigma"));
        let text = "trial = { x = \"${{search_space.b}}\" }\n[search_space]\na = { kind = \"uniform\", low = 0, high = 1 }\n[objective]\nprimary_metric = \"m\"\ngoal = \"minimize\"\n";
        let s: SweepSpec = toml::from_str(text).unwrap();
        assert!(
            s.check()
                .unwrap_err()
                .to_string()
                .contains("search_space.b")
        );
    }

    #[test]
    fn substitutes_typed_and_textual() {
        let t = json!({"lr": "${{search_space.lr}}", "hidden": "${{ search_space.h }}", "cmd": "python t.py --lr ${{search_space.lr}} --h ${{search_space.h}}"});
        let p: BTreeMap<String, Value> = [
            ("lr".to_string(), json!(0.01)),
            ("h".to_string(), json!([64, 32])),
        ]
        .into();
        let out = substitute(&t, &p);
        assert_eq!(out["lr"], json!(0.01));
        assert_eq!(out["hidden"], json!([64, 32]));
        assert_eq!(out["cmd"], json!("python t.py --lr 0.01 --h [64,32]"));
    }

    #[test]
    fn values_map_back_from_the_plugin() {
        let d: Dim =
            serde_json::from_value(json!({"kind": "choice", "values": [[64], [64, 64], "wide"]}))
                .unwrap();
        assert_eq!(d.to_wit("h").choices, vec!["[64]", "[64,64]", "wide"]);
        assert_eq!(
            d.value_of("h", &ParamValue::Text("[64,64]".into()))
                .unwrap(),
            json!([64, 64])
        );
        assert!(d.value_of("h", &ParamValue::Text("[1]".into())).is_err());
        let q: Dim =
            serde_json::from_value(json!({"kind": "quniform", "low": 16, "high": 256, "q": 16}))
                .unwrap();
        assert_eq!(
            q.value_of("b", &ParamValue::Float(64.0)).unwrap(),
            json!(64)
        );
        let n: Dim =
            serde_json::from_value(json!({"kind": "normal", "mu": 1.0, "sigma": 0.5})).unwrap();
        let w = n.to_wit("n");
        assert_eq!((w.low, w.high), (Some(1.0), Some(0.5)));
    }
}
