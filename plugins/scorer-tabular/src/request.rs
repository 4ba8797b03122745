//! A request body → the raw matrix the host's model takes (`rows × features`, row-major, in
//! the signature's feature order), for every accepted shape of JSON, OIP and CSV.

use serde_json::{Map, Value};

use crate::error::{Error, show};
use crate::signature::Signature;
use crate::value::from_json;
use crate::{csv, invalid, oip};

/// The message for a JSON body of no known shape.
pub const SHAPES: &str =
    "expected one of dataframe_split, dataframe_records, instances, inputs, or a list of records";

/// How the response is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"predictions": [...], "probabilities": [...]}` (raw route and MLflow).
    Default,
    /// Open Inference Protocol v2 (`{"model_name", "outputs": [...]}`).
    Oip,
}

/// How the body is read, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// JSON in the MLflow shapes (or a plain list of records).
    Json,
    /// JSON in the Open Inference Protocol shape.
    Oip,
    /// CSV with a header row.
    Csv,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// How to answer.
    pub format: Format,
    /// The number of rows.
    pub rows: usize,
    /// `rows × width` raw values, row-major.
    pub data: Vec<f32>,
    /// The OIP request id, if any.
    pub id: Option<Value>,
}

/// Parses the content type: `application/json` (with `format=oip` for OIP), `text/csv`.
pub fn body_kind(content_type: &str) -> Result<BodyKind, Error> {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let oip = parts.any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("format")
                && v.trim().trim_matches('"').eq_ignore_ascii_case("oip")
        })
    });
    match essence.as_str() {
        "" | "application/json" | "text/json" => {
            Ok(if oip { BodyKind::Oip } else { BodyKind::Json })
        }
        e if e.starts_with("application/") && e.ends_with("+json") => {
            Ok(if oip { BodyKind::Oip } else { BodyKind::Json })
        }
        "text/csv" | "application/csv" => Ok(BodyKind::Csv),
        _ => Err(Error::Unsupported(format!(
            "unsupported content type '{content_type}'; send application/json or text/csv"
        ))),
    }
}

/// Parses `body` sent as `content_type` into the raw matrix; at most `max_rows` rows.
pub fn parse(
    sig: &Signature,
    max_rows: usize,
    content_type: &str,
    body: &[u8],
) -> Result<Request, Error> {
    let kind = body_kind(content_type)?;
    let (format, data, id) = match kind {
        BodyKind::Csv => (Format::Default, csv::parse(sig, max_rows, body)?, None),
        BodyKind::Json | BodyKind::Oip => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| Error::Invalid(format!("request body is not valid JSON: {e}")))?;
            if kind == BodyKind::Oip {
                let data = oip::parse(sig, max_rows, &v)?;
                (Format::Oip, data, v.get("id").cloned())
            } else {
                (Format::Default, json(sig, max_rows, &v)?, None)
            }
        }
    };
    let rows = data.len() / sig.width();
    Ok(Request {
        format,
        rows,
        data,
        id,
    })
}

/// The raw matrix of a JSON body in one of the MLflow shapes.
pub fn json(sig: &Signature, max: usize, v: &Value) -> Result<Vec<f32>, Error> {
    match v {
        Value::Object(m) => {
            if let Some(s) = m.get("dataframe_split") {
                match s {
                    Value::Object(o) => split(sig, max, o, "dataframe_split"),
                    _ => invalid!(
                        "'dataframe_split' must be an object with \"columns\" and \"data\""
                    ),
                }
            } else if let Some(r) = m.get("dataframe_records") {
                match r {
                    Value::Array(rows) => records(sig, max, rows),
                    _ => invalid!(
                        "'dataframe_records' must be a list of records, got {}",
                        show(r)
                    ),
                }
            } else if let Some(x) = m.get("instances") {
                tensor(sig, max, "instances", x)
            } else if let Some(x) = m.get("inputs") {
                tensor(sig, max, "inputs", x)
            } else if m.contains_key("columns") && m.contains_key("data") {
                split(sig, max, m, "request")
            } else {
                Err(Error::Invalid(SHAPES.into()))
            }
        }
        Value::Array(_) => tensor(sig, max, "the request body", v),
        _ => Err(Error::Invalid(SHAPES.into())),
    }
}

/// `n` rows are allowed: at least one, at most `max`.
pub fn check_rows(n: usize, max: usize) -> Result<(), Error> {
    if n == 0 {
        invalid!("no rows to score")
    } else if n > max {
        invalid!("at most {max} rows per request")
    } else {
        Ok(())
    }
}

/// `instances` / `inputs` / a top-level list: records, rows, columns or one record.
fn tensor(sig: &Signature, max: usize, key: &str, x: &Value) -> Result<Vec<f32>, Error> {
    match x {
        Value::Array(a) => match a.first() {
            None => invalid!("no rows to score"),
            Some(Value::Object(_)) => records(sig, max, a),
            Some(Value::Array(_)) => lists(sig, max, a),
            // a flat list of values: one positional row
            Some(_) => lists(sig, max, std::slice::from_ref(x)),
        },
        Value::Object(m) => {
            let columnar = sig
                .features
                .iter()
                .any(|f| matches!(m.get(&f.name), Some(Value::Array(_))));
            if columnar {
                columns(sig, max, m)
            } else {
                records(sig, max, std::slice::from_ref(x))
            }
        }
        other => invalid!(
            "'{key}' must be a list of records, a list of rows, or an object of columns, got {}",
            show(other)
        ),
    }
}

/// A list of records `{feature: value}`; unknown keys are ignored.
fn records(sig: &Signature, max: usize, rows: &[Value]) -> Result<Vec<f32>, Error> {
    check_rows(rows.len(), max)?;
    let mut data = Vec::with_capacity(rows.len() * sig.width());
    for (i, r) in rows.iter().enumerate() {
        let row = i + 1;
        let Value::Object(m) = r else {
            return invalid!(
                "row {row}: expected a record (an object of feature values), got {}",
                show(r)
            );
        };
        for f in &sig.features {
            let Some(v) = m.get(&f.name) else {
                return invalid!("row {row}: {}", sig.missing(&f.name));
            };
            data.push(from_json(f, v, row)?);
        }
    }
    Ok(data)
}

/// A list of positional rows, each with exactly one value per feature in signature order.
fn lists(sig: &Signature, max: usize, rows: &[Value]) -> Result<Vec<f32>, Error> {
    check_rows(rows.len(), max)?;
    let w = sig.width();
    let mut data = Vec::with_capacity(rows.len() * w);
    for (i, r) in rows.iter().enumerate() {
        let row = i + 1;
        let Value::Array(values) = r else {
            return invalid!(
                "row {row}: expected a list of {w} values (the model takes {}), got {}",
                sig.names,
                show(r)
            );
        };
        if values.len() != w {
            return invalid!(
                "row {row} has {} values; the model takes {w} features: {}",
                values.len(),
                sig.names
            );
        }
        for (f, v) in sig.features.iter().zip(values) {
            data.push(from_json(f, v, row)?);
        }
    }
    Ok(data)
}

/// `{"columns": [...], "data": [[...]]}` (pandas split orient); no columns: positional rows.
fn split(
    sig: &Signature,
    max: usize,
    m: &Map<String, Value>,
    key: &str,
) -> Result<Vec<f32>, Error> {
    let rows = match m.get("data") {
        Some(Value::Array(rows)) => rows,
        Some(other) => return invalid!("'{key}' data must be a list of rows, got {}", show(other)),
        None => return invalid!("'{key}' has no \"data\""),
    };
    let columns = match m.get("columns") {
        None | Some(Value::Null) => return lists(sig, max, rows),
        Some(Value::Array(c)) => c,
        Some(other) => {
            return invalid!(
                "'{key}' columns must be a list of names, got {}",
                show(other)
            );
        }
    };
    let mut positions = Vec::with_capacity(sig.width());
    for f in &sig.features {
        match columns
            .iter()
            .position(|c| c.as_str() == Some(f.name.as_str()))
        {
            Some(p) => positions.push(p),
            None => return Err(sig.missing(&f.name)),
        }
    }
    check_rows(rows.len(), max)?;
    let mut data = Vec::with_capacity(rows.len() * sig.width());
    for (i, r) in rows.iter().enumerate() {
        let row = i + 1;
        let Value::Array(values) = r else {
            return invalid!(
                "row {row}: expected a list of {} values (one per column), got {}",
                columns.len(),
                show(r)
            );
        };
        if values.len() != columns.len() {
            return invalid!(
                "row {row} has {} values but there are {} columns",
                values.len(),
                columns.len()
            );
        }
        for (f, &p) in sig.features.iter().zip(&positions) {
            data.push(from_json(f, &values[p], row)?);
        }
    }
    Ok(data)
}

/// An object of columns `{feature: [values]}`, all of the same length.
fn columns(sig: &Signature, max: usize, m: &Map<String, Value>) -> Result<Vec<f32>, Error> {
    let mut cols = Vec::with_capacity(sig.width());
    for f in &sig.features {
        match m.get(&f.name) {
            Some(Value::Array(c)) => cols.push(c),
            Some(other) => {
                return invalid!(
                    "'{}' must be a list of values (one per row), got {}",
                    f.name,
                    show(other)
                );
            }
            None => return Err(sig.missing(&f.name)),
        }
    }
    let n = cols[0].len();
    for (f, c) in sig.features.iter().zip(&cols) {
        if c.len() != n {
            return invalid!(
                "column '{}' has {} values but '{}' has {n}",
                f.name,
                c.len(),
                sig.features[0].name
            );
        }
    }
    check_rows(n, max)?;
    let mut data = Vec::with_capacity(n * sig.width());
    for r in 0..n {
        for (f, c) in sig.features.iter().zip(&cols) {
            data.push(from_json(f, &c[r], r + 1)?);
        }
    }
    Ok(data)
}
