//! The model signature the host passes in config key `model.signature`: the input features in
//! the model's order and the output (classes or a number).

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, show};
use crate::invalid;

/// How one feature is encoded in the raw matrix the host takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A number, as is.
    Number,
    /// A category: the 0-based index of the value in `categories`, -1 for a value not in it.
    Category {
        /// The known values, in the model's order.
        categories: Vec<String>,
        /// Value → index in `categories`.
        index: HashMap<String, usize>,
    },
}

/// One input feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The column name.
    pub name: String,
    /// Its encoding.
    pub kind: Kind,
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A classifier: one probability per label, in this order.
    Classes(Vec<String>),
    /// A regressor: one value per row.
    Number,
}

/// A parsed signature, with lookups prepared once for `score`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// The features, in the model's order.
    pub features: Vec<Feature>,
    /// The output.
    pub output: Output,
    /// The feature names joined by ", " (for error messages).
    pub names: String,
    by_name: HashMap<String, usize>,
}

impl Signature {
    /// Parses the JSON of `model.signature`.
    pub fn parse(text: &str) -> Result<Signature, Error> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("model.signature is not valid JSON: {e}")))?;
        let Some(inputs) = v.get("inputs").and_then(Value::as_array) else {
            return invalid!("model.signature has no \"inputs\" list");
        };
        if inputs.is_empty() {
            return invalid!("model.signature has no inputs");
        }
        let mut features = Vec::with_capacity(inputs.len());
        let mut by_name = HashMap::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let Some(name) = input.get("name").and_then(Value::as_str) else {
                return invalid!("model.signature input {} has no \"name\"", i + 1);
            };
            let ty = input
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("number");
            let kind = match ty {
                "number" | "double" | "float" | "integer" | "long" => Kind::Number,
                "category" | "categorical" | "string" => {
                    let Some(list) = input.get("categories").and_then(Value::as_array) else {
                        return invalid!("model.signature input '{name}' has no \"categories\"");
                    };
                    let categories: Vec<String> = list.iter().map(text_of).collect();
                    let index = categories
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, c)| (c.clone(), i))
                        .collect();
                    Kind::Category { categories, index }
                }
                other => {
                    return invalid!("model.signature input '{name}' has unknown type {other:?}");
                }
            };
            if by_name.insert(name.to_string(), i).is_some() {
                return invalid!("model.signature names input '{name}' twice");
            }
            features.push(Feature {
                name: name.to_string(),
                kind,
            });
        }
        let output = match v.get("output") {
            None => return invalid!("model.signature has no \"output\""),
            Some(out) => match out.get("type").and_then(Value::as_str) {
                Some("class") | Some("classes") => {
                    let Some(labels) = out.get("labels").and_then(Value::as_array) else {
                        return invalid!("model.signature output has no \"labels\"");
                    };
                    if labels.is_empty() {
                        return invalid!("model.signature output has no labels");
                    }
                    Output::Classes(labels.iter().map(text_of).collect())
                }
                Some("number") => Output::Number,
                _ => {
                    return invalid!(
                        "model.signature output type must be \"class\" or \"number\", got {}",
                        show(out.get("type").unwrap_or(&Value::Null))
                    );
                }
            },
        };
        let names = features
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Signature {
            features,
            output,
            names,
            by_name,
        })
    }

    /// The position of the feature called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The number of features.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// The error for a feature the request lacks.
    pub fn missing(&self, name: &str) -> Error {
        Error::Invalid(format!(
            "missing feature '{name}' (the model takes {})",
            self.names
        ))
    }
}

/// A label or category as text: strings as they are, other values as their JSON text.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_classifier_and_regressor() {
        let s = Signature::parse(
            r#"{"inputs":[{"name":"a","type":"number"},{"name":"c","type":"category","categories":["blue","red",1]}],
                "output":{"name":"y","type":"class","labels":["x",2]}}"#,
        )
        .unwrap();
        assert_eq!(s.width(), 2);
        assert_eq!(s.position("c"), Some(1));
        assert_eq!(s.names, "a, c");
        match &s.features[1].kind {
            Kind::Category { categories, index } => {
                assert_eq!(categories, &["blue", "red", "1"]);
                assert_eq!(index["1"], 2);
            }
            _ => panic!(),
        }
        assert_eq!(s.output, Output::Classes(vec!["x".into(), "2".into()]));
        let r = Signature::parse(r#"{"inputs":[{"name":"a","type":"number"}],"output":{"name":"target","type":"number"}}"#)
            .unwrap();
        assert_eq!(r.output, Output::Number);
    }

    #[test]
    fn rejects_bad_signatures() {
        let err = |t: &str| Signature::parse(t).unwrap_err().message().to_string();
        assert!(err("nope").starts_with("model.signature is not valid JSON"));
        assert_eq!(err("{}"), "model.signature has no \"inputs\" list");
        assert_eq!(
            err(r#"{"inputs":[{"name":"a"},{"name":"a"}],"output":{"type":"number"}}"#),
            "model.signature names input 'a' twice"
        );
        assert_eq!(
            err(r#"{"inputs":[{"name":"c","type":"category"}],"output":{"type":"number"}}"#),
            "model.signature input 'c' has no \"categories\""
        );
        assert_eq!(
            err(r#"{"inputs":[{"name":"a"}]}"#),
            "model.signature has no \"output\""
        );
    }
}
