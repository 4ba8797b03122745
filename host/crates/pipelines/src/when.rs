//! Step conditions: `when = "${{parent.jobs.eval.outputs.auc}} >= 0.8"`, one comparison
//! (`== != < <= > >=`) of references and literals, or one boolean reference or literal;
//! several joined by `&&` or `||` (no mixing without parentheses, which are not supported).

use serde_json::Value;

use crate::bind::Ref;
use crate::spec::Type;
use crate::{Result, SpecError};

/// A side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A reference.
    Ref(Ref),
    /// A literal number, string (quoted) or boolean.
    Lit(Value),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One clause: an operand alone (boolean) or a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// A boolean operand.
    Is(Operand),
    /// A comparison.
    Cmp(Operand, Op, Operand),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// Its clauses.
    pub clauses: Vec<Clause>,
    /// Whether they are joined by `||` (else `&&`).
    pub any: bool,
}

fn operand(s: &str, whole: &str) -> Result<Operand> {
    let s = s.trim();
    if s.is_empty() {
        return Err(SpecError::new(format!(
            "condition '{whole}' is missing an operand"
        )));
    }
    if let Some(inner) = s.strip_prefix("${{").and_then(|x| x.strip_suffix("}}")) {
        return Ok(Operand::Ref(Ref::parse(inner)?));
    }
    if s == "true" || s == "false" {
        return Ok(Operand::Lit(Value::Bool(s == "true")));
    }
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return Ok(Operand::Lit(Value::String(s[1..s.len() - 1].to_string())));
        }
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Operand::Lit(Value::from(i)));
    }
    if let Ok(f) = s.parse::<f64>() {
        return Ok(Operand::Lit(Value::from(f)));
    }
    Err(SpecError::new(format!(
        "condition '{whole}': '{s}' is neither a reference, a number, a quoted string nor true/false"
    )))
}

impl Cond {
    /// Parses a condition.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let (parts, any): (Vec<&str>, bool) = if t.contains("&&") && t.contains("||") {
            return Err(SpecError::new(format!(
                "condition '{t}' mixes && and ||; split it into steps or use one of them"
            )));
        } else if t.contains("||") {
            (t.split("||").collect(), true)
        } else {
            (t.split("&&").collect(), false)
        };
        let mut clauses = Vec::new();
        for part in parts {
            let mut found = None;
            for (sym, op) in [
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("<", Op::Lt),
                (">", Op::Gt),
            ] {
                if let Some(i) = part.find(sym) {
                    found = Some((i, sym.len(), op));
                    break;
                }
            }
            clauses.push(match found {
                Some((i, n, op)) => {
                    Clause::Cmp(operand(&part[..i], t)?, op, operand(&part[i + n..], t)?)
                }
                None => Clause::Is(operand(part, t)?),
            });
        }
        Ok(Cond { clauses, any })
    }

    /// The references it reads.
    pub fn refs(&self) -> Vec<Ref> {
        let mut out = Vec::new();
        for c in &self.clauses {
            let ops: Vec<&Operand> = match c {
                Clause::Is(a) => vec![a],
                Clause::Cmp(a, _, b) => vec![a, b],
            };
            for o in ops {
                if let Operand::Ref(r) = o {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// Checks the operand types (given a reference's type).
    pub fn check(&self, ty: &dyn Fn(&Ref) -> Option<Type>) -> Result<()> {
        let of = |o: &Operand| match o {
            Operand::Ref(r) => ty(r),
            Operand::Lit(Value::Bool(_)) => Some(Type::Boolean),
            Operand::Lit(Value::String(_)) => Some(Type::String),
            Operand::Lit(_) => Some(Type::Number),
        };
        for c in &self.clauses {
            match c {
                Clause::Is(a) => {
                    if let Some(t) = of(a)
                        && t != Type::Boolean
                    {
                        return Err(SpecError::new(format!(
                            "a condition without a comparison needs a boolean, got a {}",
                            t.as_str()
                        )));
                    }
                }
                Clause::Cmp(a, op, b) => {
                    let (Some(x), Some(y)) = (of(a), of(b)) else {
                        continue;
                    };
                    let num = |t: Type| matches!(t, Type::Number | Type::Integer);
                    let comparable = (num(x) && num(y)) || x == y;
                    if !comparable {
                        return Err(SpecError::new(format!(
                            "a condition compares a {} with a {}",
                            x.as_str(),
                            y.as_str()
                        )));
                    }
                    if !matches!(op, Op::Eq | Op::Ne) && !num(x) {
                        return Err(SpecError::new(format!(
                            "<, <=, > and >= compare numbers, not {}s",
                            x.as_str()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates it with the values of its references.
    pub fn eval(
        &self,
        value: &mut dyn FnMut(&Ref) -> std::result::Result<Value, String>,
    ) -> std::result::Result<bool, String> {
        let mut get = |o: &Operand| match o {
            Operand::Ref(r) => value(r),
            Operand::Lit(v) => Ok(v.clone()),
        };
        let mut results = Vec::new();
        for c in &self.clauses {
            results.push(match c {
                Clause::Is(a) => {
                    let v = get(a)?;
                    v.as_bool()
                        .ok_or_else(|| format!("the condition needs a boolean, got {v}"))?
                }
                Clause::Cmp(a, op, b) => {
                    let (x, y) = (get(a)?, get(b)?);
                    match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) => match op {
                            Op::Eq => x == y,
                            Op::Ne => x != y,
                            Op::Lt => x < y,
                            Op::Le => x <= y,
                            Op::Gt => x > y,
                            Op::Ge => x >= y,
                        },
                        _ => match op {
                            Op::Eq => x == y,
                            Op::Ne => x != y,
                            _ => return Err(format!("cannot order {x} and {y}")),
                        },
                    }
                }
            });
        }
        Ok(if self.any {
            results.iter().any(|b| *b)
        } else {
            results.iter().all(|b| *b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_evaluates() {
        let c = Cond::parse("${{parent.jobs.eval.outputs.auc}} >= 0.8").unwrap();
        assert_eq!(c.refs(), vec![Ref::Output("eval".into(), "auc".into())]);
        let num = |_: &Ref| Some(Type::Number);
        c.check(&num).unwrap();
        assert!(c.eval(&mut |_| Ok(Value::from(0.9))).unwrap());
        assert!(!c.eval(&mut |_| Ok(Value::from(0.5))).unwrap());
        let s = Cond::parse("${{parent.inputs.mode}} == 'full' && ${{parent.inputs.on}}").unwrap();
        assert!(
            s.check(&|r: &Ref| Some(match r {
                Ref::Input(n) if n == "on" => Type::Boolean,
                _ => Type::String,
            }))
            .is_ok()
        );
        assert!(
            s.check(&num)
                .unwrap_err()
                .0
                .contains("compares a number with a string")
        );
        assert!(
            Cond::parse("a >= 1")
                .unwrap_err()
                .0
                .contains("neither a reference")
        );
        assert!(Cond::parse("true && false || true").is_err());
        assert!(
            Cond::parse("${{parent.inputs.x}} > 'a'")
                .unwrap()
                .check(&|_| Some(Type::String))
                .is_err()
        );
    }
}
