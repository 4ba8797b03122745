//! The deployment's scorer config (a JSON object; unknown keys are ignored).

use serde_json::Value;

use crate::error::{Error, show};
use crate::invalid;

/// Parsed scorer options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Whether a classifier's answer carries the class probabilities (default true).
    pub probabilities: bool,
    /// The most rows one request may hold (default 10000).
    pub max_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            probabilities: true,
            max_rows: 10_000,
        }
    }
}

impl Options {
    /// Parses the config text; `""` means the defaults.
    pub fn parse(config: &str) -> Result<Options, Error> {
        let mut o = Options::default();
        if config.trim().is_empty() {
            return Ok(o);
        }
        let v: Value = serde_json::from_str(config)
            .map_err(|e| Error::Invalid(format!("scorer config is not valid JSON: {e}")))?;
        let Value::Object(m) = v else {
            return invalid!("scorer config must be a JSON object, got {}", show(&v));
        };
        match m.get("probabilities") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => o.probabilities = *b,
            Some(other) => {
                return invalid!(
                    "scorer option 'probabilities' must be true or false, got {}",
                    show(other)
                );
            }
        }
        match m.get("max_rows") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => o.max_rows = n.min(usize::MAX as u64) as usize,
                _ => {
                    return invalid!(
                        "scorer option 'max_rows' must be an integer >= 1, got {}",
                        show(v)
                    );
                }
            },
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        assert_eq!(Options::parse("").unwrap(), Options::default());
        assert_eq!(
            Options::parse("{}").unwrap(),
            Options {
                probabilities: true,
                max_rows: 10_000
            }
        );
        assert_eq!(
            Options::parse(r#"{"probabilities": false, "max_rows": 5, "other": 1}"#).unwrap(),
            Options {
                probabilities: false,
                max_rows: 5
            }
        );
        let err = |t: &str| Options::parse(t).unwrap_err().message().to_string();
        assert_eq!(err("[1]"), "scorer config must be a JSON object, got [1]");
        assert_eq!(
            err(r#"{"max_rows": 0}"#),
            "scorer option 'max_rows' must be an integer >= 1, got 0"
        );
        assert_eq!(
            err(r#"{"probabilities": "yes"}"#),
            "scorer option 'probabilities' must be true or false, got \"yes\""
        );
        assert!(err("{").starts_with("scorer config is not valid JSON: "));
    }
}
