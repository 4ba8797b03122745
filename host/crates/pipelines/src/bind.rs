//! `${{...}}` references: what they may name, finding them in a step, and substituting values.

use serde_json::Value;

use crate::{Result, SpecError};

/// What a `${{...}}` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ref {
    /// `parent.inputs.NAME`: an input of the pipeline.
    Input(String),
    /// `parent.jobs.STEP.outputs.NAME`: an output of another step.
    Output(String, String),
    /// `inputs.NAME`: an input of the step itself (inside its body and `when`).
    StepInput(String),
    /// `outputs.NAME`: where a command step writes an output (`$ATRIUM_OUTPUTS/NAME`).
    StepOutput(String),
    /// `creation_context.trigger_time`: the tick of a scheduled run (else the submission time).
    TriggerTime,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Input(n) => write!(f, "${{{{parent.inputs.{n}}}}}"),
            Ref::Output(s, n) => write!(f, "${{{{parent.jobs.{s}.outputs.{n}}}}}"),
            Ref::StepInput(n) => write!(f, "${{{{inputs.{n}}}}}"),
            Ref::StepOutput(n) => write!(f, "${{{{outputs.{n}}}}}"),
            Ref::TriggerTime => write!(f, "${{{{creation_context.trigger_time}}}}"),
        }
    }
}

impl Ref {
    /// Parses the inside of `${{ }}`.
    pub fn parse(inner: &str) -> Result<Self> {
        let parts: Vec<&str> = inner.trim().split('.').collect();
        let ok = |s: &&str| !s.is_empty();
        Ok(match parts.as_slice() {
            ["parent", "inputs", n] if ok(n) => Ref::Input(n.to_string()),
            ["parent", "jobs", s, "outputs", n] if ok(s) && ok(n) => {
                Ref::Output(s.to_string(), n.to_string())
            }
            ["inputs", n] if ok(n) => Ref::StepInput(n.to_string()),
            ["outputs", n] if ok(n) => Ref::StepOutput(n.to_string()),
            ["creation_context", "trigger_time"] => Ref::TriggerTime,
            _ => {
                return Err(SpecError::new(format!(
                    "'${{{{{inner}}}}}' is not a reference: use ${{{{parent.inputs.NAME}}}}, ${{{{parent.jobs.STEP.outputs.NAME}}}}, ${{{{inputs.NAME}}}}, ${{{{outputs.NAME}}}} or ${{{{creation_context.trigger_time}}}}"
                )));
            }
        })
    }
}

/// A piece of a string: text, or a reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A reference.
    Ref(Ref),
}

/// Splits a string into text and references (`$[[...]]` optional parts are not supported).
pub fn pieces(s: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 3..];
        let j = after
            .find("}}")
            .ok_or_else(|| SpecError::new(format!("unclosed '${{{{' in '{s}'")))?;
        out.push(Piece::Ref(Ref::parse(&after[..j])?));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// The reference a whole string is, if it is exactly one (`"${{parent.inputs.x}}"`).
pub fn whole(s: &str) -> Result<Option<Ref>> {
    let p = pieces(s.trim())?;
    Ok(match p.as_slice() {
        [Piece::Ref(r)] => Some(r.clone()),
        _ => None,
    })
}

/// Every reference in a JSON value, with the path of the string holding it (`train.dataset`)
/// and whether the string is exactly that reference.
pub fn find(v: &Value, path: &str, out: &mut Vec<(String, Ref, bool)>) -> Result<()> {
    match v {
        Value::String(s) => {
            let p = pieces(s).map_err(|e| SpecError::new(format!("{path}: {}", e.0)))?;
            let alone = p.len() == 1 && s.trim() == s;
            for piece in p {
                if let Piece::Ref(r) = piece {
                    out.push((path.to_string(), r, alone));
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                find(x, &format!("{path}[{i}]"), out)?;
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                find(x, &p, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// How a value reads inside a longer string (a string without quotes, others as JSON).
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every reference in `v`: a string that is exactly one reference becomes the value
/// (typed), a reference inside a longer string is spliced in as text.
pub fn substitute(
    v: &Value,
    lookup: &mut dyn FnMut(&Ref, bool) -> std::result::Result<Value, String>,
) -> std::result::Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            let p = pieces(s).map_err(|e| e.0)?;
            if p.iter().all(|x| matches!(x, Piece::Text(_))) {
                return Ok(v.clone());
            }
            if let [Piece::Ref(r)] = p.as_slice()
                && s.trim() == s
            {
                return lookup(r, true);
            }
            let mut out = String::new();
            for piece in p {
                match piece {
                    Piece::Text(t) => out.push_str(&t),
                    Piece::Ref(r) => out.push_str(&display(&lookup(&r, false)?)),
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, lookup))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, lookup)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_substitutes() {
        assert_eq!(
            Ref::parse(" parent.jobs.a.outputs.m ").unwrap(),
            Ref::Output("a".into(), "m".into())
        );
        let e = Ref::parse("parent.job.a").unwrap_err();
        assert!(e.0.contains("is not a reference"), "{e}");
        assert!(pieces("x ${{inputs.a").is_err());
        let v = serde_json::json!({"lr": "${{parent.inputs.lr}}", "cmd": "run --lr ${{parent.inputs.lr}} ${{inputs.s}}"});
        let mut found = Vec::new();
        find(&v, "", &mut found).unwrap();
        assert_eq!(found.len(), 3);
        assert!(found.iter().any(|(p, _, alone)| p == "lr" && *alone));
        let out = substitute(&v, &mut |r, _| match r {
            Ref::Input(_) => Ok(serde_json::json!(0.5)),
            _ => Ok(serde_json::json!("s")),
        })
        .unwrap();
        assert_eq!(out, serde_json::json!({"lr": 0.5, "cmd": "run --lr 0.5 s"}));
        assert_eq!(
            Ref::Output("a".into(), "b".into()).to_string(),
            "${{parent.jobs.a.outputs.b}}"
        );
    }
}
