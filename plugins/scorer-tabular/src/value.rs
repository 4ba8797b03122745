//! One request value → its raw matrix entry: numbers as they are, categories as their index
//! (-1 when unknown), missing values as NaN.

use serde_json::{Number, Value};

use crate::error::{Error, show, show_text};
use crate::signature::{Feature, Kind};

/// Texts that mean a missing value (compared after trimming whitespace).
pub const NA: &[&str] = &["", "NA", "N/A", "na", "null", "NULL", "None", "NaN", "nan"];

/// Whether `s` marks a missing value.
pub fn is_na(s: &str) -> bool {
    NA.contains(&s.trim())
}

/// The entry for JSON value `v` of `feature` in 1-based `row`.
pub fn from_json(feature: &Feature, v: &Value, row: usize) -> Result<f32, Error> {
    match (&feature.kind, v) {
        (_, Value::Null) => Ok(f32::NAN),
        (_, Value::String(s)) => from_text(feature, s, row),
        (Kind::Number, Value::Number(n)) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
        (Kind::Number, Value::Bool(b)) => Ok(if *b { 1.0 } else { 0.0 }),
        (Kind::Number, other) => Err(not_a_number(feature, &show(other), row)),
        (Kind::Category { .. }, Value::Number(n)) => Ok(number_category(feature, n)),
        (Kind::Category { .. }, Value::Bool(b)) => {
            let (lower, upper) = if *b {
                ("true", "True")
            } else {
                ("false", "False")
            };
            Ok(lookup(feature, lower)
                .or_else(|| lookup(feature, upper))
                .unwrap_or(-1.0))
        }
        (Kind::Category { .. }, other) => Err(Error::Invalid(format!(
            "row {row}: '{}' must be a category (text), got {}",
            feature.name,
            show(other)
        ))),
    }
}

/// The entry for text `s` (a JSON string or a CSV field) of `feature` in 1-based `row`.
pub fn from_text(feature: &Feature, s: &str, row: usize) -> Result<f32, Error> {
    match &feature.kind {
        Kind::Number => {
            let t = s.trim();
            if is_na(t) {
                return Ok(f32::NAN);
            }
            match t.parse::<f64>() {
                Ok(x) => Ok(x as f32),
                Err(_) => Err(not_a_number(feature, &show_text(s), row)),
            }
        }
        Kind::Category { .. } => {
            // a category named like an NA marker ("NA" for North America) is that category
            if let Some(i) = lookup(feature, s) {
                return Ok(i);
            }
            let t = s.trim();
            if is_na(t) {
                return Ok(f32::NAN);
            }
            if t.len() != s.len()
                && let Some(i) = lookup(feature, t)
            {
                return Ok(i);
            }
            Ok(-1.0)
        }
    }
}

fn lookup(feature: &Feature, s: &str) -> Option<f32> {
    match &feature.kind {
        Kind::Category { index, .. } => index.get(s).map(|&i| i as f32),
        Kind::Number => None,
    }
}

/// A JSON number given for a categorical feature: its text as written, then `3` for `3.0` or
/// `3.0` for `3` (categories of numeric columns are stored either way).
fn number_category(feature: &Feature, n: &Number) -> f32 {
    let text = n.to_string();
    if let Some(i) = lookup(feature, &text) {
        return i;
    }
    let other = if n.is_f64() {
        let x = n.as_f64().unwrap_or(f64::NAN);
        (x.fract() == 0.0 && x.abs() < 1e15).then(|| format!("{}", x as i64))
    } else {
        Some(format!("{text}.0"))
    };
    other.and_then(|t| lookup(feature, &t)).unwrap_or(-1.0)
}

fn not_a_number(feature: &Feature, got: &str, row: usize) -> Error {
    Error::Invalid(format!(
        "row {row}: '{}' must be a number, got {got}",
        feature.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num() -> Feature {
        Feature {
            name: "x".into(),
            kind: Kind::Number,
        }
    }

    fn cat() -> Feature {
        let categories: Vec<String> = ["blue", "NA", "3", "4.0", "True"]
            .map(String::from)
            .to_vec();
        let index = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Feature {
            name: "c".into(),
            kind: Kind::Category { categories, index },
        }
    }

    #[test]
    fn numbers() {
        let f = num();
        assert_eq!(from_json(&f, &json!(1.5), 1).unwrap(), 1.5);
        assert_eq!(from_json(&f, &json!(" 2e1 "), 1).unwrap(), 20.0);
        assert_eq!(from_json(&f, &json!(true), 1).unwrap(), 1.0);
        for na in [
            json!(null),
            json!(""),
            json!("NA"),
            json!("N/A"),
            json!("na"),
            json!("null"),
        ] {
            assert!(from_json(&f, &na, 1).unwrap().is_nan());
        }
        for na in ["NULL", "None", "NaN", "nan", " "] {
            assert!(from_text(&f, na, 1).unwrap().is_nan());
        }
        assert_eq!(
            from_json(&f, &json!("abc"), 3).unwrap_err().message(),
            "row 3: 'x' must be a number, got \"abc\""
        );
        assert_eq!(
            from_json(&f, &json!([1]), 1).unwrap_err().message(),
            "row 1: 'x' must be a number, got [1]"
        );
    }

    #[test]
    fn categories() {
        let f = cat();
        assert_eq!(from_json(&f, &json!("blue"), 1).unwrap(), 0.0);
        assert_eq!(
            from_json(&f, &json!("NA"), 1).unwrap(),
            1.0,
            "a category named NA wins"
        );
        assert!(from_json(&f, &json!("nan"), 1).unwrap().is_nan());
        assert!(from_json(&f, &json!(null), 1).unwrap().is_nan());
        assert_eq!(from_json(&f, &json!("green"), 1).unwrap(), -1.0);
        assert_eq!(from_json(&f, &json!(" blue "), 1).unwrap(), 0.0);
        assert_eq!(from_json(&f, &json!(3), 1).unwrap(), 2.0);
        assert_eq!(from_json(&f, &json!(3.0), 1).unwrap(), 2.0);
        assert_eq!(from_json(&f, &json!(4), 1).unwrap(), 3.0);
        assert_eq!(from_json(&f, &json!(true), 1).unwrap(), 4.0);
        assert_eq!(from_json(&f, &json!(false), 1).unwrap(), -1.0);
        assert_eq!(
            from_json(&f, &json!({"a": 1}), 2).unwrap_err().message(),
            "row 2: 'c' must be a category (text), got {\"a\":1}"
        );
    }
}
