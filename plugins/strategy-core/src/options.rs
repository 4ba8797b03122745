//! Sampler options: the `options: params` of `study.create`, typed, with unknown names refused.

use serde::{Deserialize, Serialize};

use crate::{Error, invalid};

/// An option value (the WIT `param-value`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptValue {
    Int(i64),
    Float(f64),
    Text(String),
    Flag(bool),
}

impl OptValue {
    fn type_name(&self) -> &'static str {
        match self {
            OptValue::Int(_) => "an integer",
            OptValue::Float(_) => "a float",
            OptValue::Text(_) => "text",
            OptValue::Flag(_) => "a flag",
        }
    }
}

/// Options as given, checked against the names a sampler knows.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    entries: Vec<(String, OptValue)>,
}

impl Options {
    /// Refuses (`InvalidArgument`) an option whose name is not in `valid`, naming it and
    /// listing the valid ones, and an option given twice.
    pub fn new(
        entries: Vec<(String, OptValue)>,
        sampler: &str,
        valid: &[&str],
    ) -> Result<Options, Error> {
        for (i, (name, _)) in entries.iter().enumerate() {
            if !valid.contains(&name.as_str()) {
                return if valid.is_empty() {
                    invalid!("unknown option '{name}': {sampler} takes no options")
                } else {
                    invalid!(
                        "unknown option '{name}' for {sampler}; valid options: {}",
                        valid.join(", ")
                    )
                };
            }
            if entries[..i].iter().any(|(n, _)| n == name) {
                return invalid!("option '{name}' is given twice");
            }
        }
        Ok(Options { entries })
    }

    /// The options as given.
    pub fn entries(&self) -> &[(String, OptValue)] {
        &self.entries
    }

    fn get(&self, name: &str) -> Option<&OptValue> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A flag; also accepts the integers 0 / 1 and the texts "true" / "false".
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(OptValue::Flag(b)) => Ok(*b),
            Some(OptValue::Int(0)) => Ok(false),
            Some(OptValue::Int(1)) => Ok(true),
            Some(OptValue::Text(t)) if t == "true" => Ok(true),
            Some(OptValue::Text(t)) if t == "false" => Ok(false),
            Some(v) => invalid!(
                "option '{name}' must be a flag (true or false), got {} ({v:?})",
                v.type_name()
            ),
        }
    }

    /// An integer; a float with an integral value is accepted.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(OptValue::Int(i)) => Ok(*i),
            Some(OptValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
            Some(v) => invalid!(
                "option '{name}' must be an integer, got {} ({v:?})",
                v.type_name()
            ),
        }
    }

    /// An integer in [min, max].
    pub fn int_in(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, Error> {
        let v = self.int(name, default)?;
        if v < min || v > max {
            return if max == i64::MAX {
                invalid!("option '{name}' must be >= {min}, got {v}")
            } else {
                invalid!("option '{name}' must be in [{min}, {max}], got {v}")
            };
        }
        Ok(v)
    }

    /// A finite float; an integer is accepted.
    pub fn float(&self, name: &str, default: f64) -> Result<f64, Error> {
        let v = match self.get(name) {
            None => return Ok(default),
            Some(OptValue::Float(f)) => *f,
            Some(OptValue::Int(i)) => *i as f64,
            Some(v) => {
                return invalid!(
                    "option '{name}' must be a number, got {} ({v:?})",
                    v.type_name()
                );
            }
        };
        if !v.is_finite() {
            return invalid!("option '{name}' must be finite, got {v}");
        }
        Ok(v)
    }

    /// Text.
    pub fn text(&self, name: &str, default: &str) -> Result<String, Error> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(OptValue::Text(t)) => Ok(t.clone()),
            Some(v) => invalid!(
                "option '{name}' must be text, got {} ({v:?})",
                v.type_name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_typed() {
        let e = Options::new(
            vec![("gama".into(), OptValue::Float(0.1))],
            "sampler-tpe",
            &["gamma", "prior_weight"],
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::InvalidArgument(
                "unknown option 'gama' for sampler-tpe; valid options: gamma, prior_weight".into()
            )
        );
        let o = Options::new(
            vec![
                ("a".into(), OptValue::Int(3)),
                ("b".into(), OptValue::Flag(true)),
                ("c".into(), OptValue::Float(2.0)),
            ],
            "x",
            &["a", "b", "c", "d"],
        )
        .unwrap();
        assert_eq!(o.float("a", 0.0).unwrap(), 3.0);
        assert!(o.flag("b", false).unwrap());
        assert_eq!(o.int("c", 0).unwrap(), 2);
        assert_eq!(o.int("d", 7).unwrap(), 7);
        assert!(o.flag("a", false).is_err());
        assert!(o.text("a", "").is_err());
        assert!(o.int_in("a", 0, 5, 10).is_err());
    }
}
