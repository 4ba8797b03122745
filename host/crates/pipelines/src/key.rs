//! Content hashes: a step's cache key and a published version's identity, both SHA-256 over
//! canonical JSON (object keys sorted, no whitespace), so equal content gives equal keys.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The version of the key layout; part of every key, so a change of layout never hits old keys.
pub const STEP_KEY_VERSION: &str = "atrium-step/1";

/// Canonical JSON: keys sorted at every level (serde_json's map is ordered), compact.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// `sha256:<hex>` of a domain tag and a value's canonical JSON.
pub fn digest(tag: &str, v: &Value) -> String {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update(b"\n");
    h.update(canonical(v).as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A step's cache key from its parts (kind, spec with references replaced by the content they
/// name, outputs, code and environment digests, `cache_version`).
pub fn step_key(parts: &Value) -> String {
    digest(STEP_KEY_VERSION, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_content_does() {
        let a = serde_json::json!({"b": 1, "a": [1, {"y": 2, "x": 1}]});
        let b: Value = serde_json::from_str(r#"{"a": [1, {"x": 1, "y": 2}], "b": 1}"#).unwrap();
        assert_eq!(canonical(&a), r#"{"a":[1,{"x":1,"y":2}],"b":1}"#);
        assert_eq!(step_key(&a), step_key(&b));
        assert_ne!(step_key(&a), step_key(&serde_json::json!({"b": 2})));
        assert!(step_key(&a).starts_with("sha256:"));
    }
}
