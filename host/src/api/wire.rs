//! JSON encodings shared by both APIs: protobuf-JSON style numbers (int64 as number or string,
//! doubles with "NaN"/"Infinity" strings) and metric points.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The schema of a double on the wire: a JSON number, or "NaN" / "Infinity" / "-Infinity".
pub struct WireF64;

impl schemars::JsonSchema for WireF64 {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Double".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "number" },
                { "type": "string", "enum": ["NaN", "Infinity", "-Infinity"] }
            ]
        })
    }
}

/// Serializes a double as a JSON number, or as "NaN" / "Infinity" / "-Infinity".
pub fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
}

struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = f64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or one of \"NaN\", \"Infinity\", \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.trim() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| E::custom(format!("'{v}' is not a number"))),
        }
    }
}

/// Deserializes a double from a number or a numeric / special string.
pub fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

struct I64Visitor;

impl Visitor<'_> for I64Visitor {
    type Value = i64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an integer (as a number or a string)")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("'{v}' is not an integer")))
    }
}

/// Deserializes an integer from a number or a string.
pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64Visitor)
}

/// Deserializes an optional integer from a number, a string or null.
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_i64")] i64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

/// A string that clients may also send as a number (MLflow ids).
pub fn de_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        Str(String),
        Int(i64),
    }
    Ok(match S::deserialize(d)? {
        S::Str(s) => s,
        S::Int(i) => i.to_string(),
    })
}

/// A string that clients may send as a number or boolean (param values).
pub fn de_stringish<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Null => Ok(String::new()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Ok(v.to_string()),
        other => Err(de::Error::custom(format!("expected a string, got {other}"))),
    }
}

/// A metric point as sent by clients.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricIn {
    /// Metric name.
    pub key: String,
    /// The value.
    #[serde(deserialize_with = "de_f64")]
    pub value: f64,
    /// Milliseconds since the epoch (now when absent).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub timestamp: Option<i64>,
    /// Step (0 when absent).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub step: Option<i64>,
}

/// A metric point as answered.
#[derive(Debug, Clone, Serialize)]
pub struct MetricOut {
    /// Metric name.
    pub key: String,
    /// The value.
    #[serde(serialize_with = "ser_f64")]
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Step.
    pub step: i64,
}

/// MLflow's error for a required parameter that is absent or empty.
pub fn missing(name: &str) -> crate::workspace::DomainError {
    crate::workspace::DomainError::invalid(format!(
        "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
    ))
}

/// Parses an experiment id given as text.
pub fn experiment_id(s: &str) -> Result<i64, crate::workspace::DomainError> {
    s.trim().parse().map_err(|_| {
        crate::workspace::DomainError::NotFound(format!("experiment '{s}' does not exist"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_accept_protobuf_json() {
        let m: MetricIn = serde_json::from_str(
            r#"{"key":"a","value":"NaN","timestamp":"1700000000000","step":2.0}"#,
        )
        .unwrap();
        assert!(m.value.is_nan());
        assert_eq!(m.timestamp, Some(1_700_000_000_000));
        assert_eq!(m.step, Some(2));
        let m: MetricIn = serde_json::from_str(r#"{"key":"a","value":"-Infinity"}"#).unwrap();
        assert_eq!(m.value, f64::NEG_INFINITY);
        assert!(serde_json::from_str::<MetricIn>(r#"{"key":"a","value":"abc"}"#).is_err());
        assert!(serde_json::from_str::<MetricIn>(r#"{"key":"a","value":1,"step":1.5}"#).is_err());
    }

    #[test]
    fn special_values_serialize_as_strings() {
        let out = MetricOut {
            key: "k".into(),
            value: f64::INFINITY,
            timestamp: 1,
            step: 0,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"key":"k","value":"Infinity","timestamp":1,"step":0}"#
        );
    }
}
