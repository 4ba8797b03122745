//! Open Inference Protocol v2 requests: one tensor `[n, features]` (positional), or one tensor
//! per feature named by column with shape `[n]` or `[n, 1]`.

use serde_json::Value;

use crate::error::{Error, show};
use crate::invalid;
use crate::request::check_rows;
use crate::signature::Signature;
use crate::value::from_json;

/// The datatypes accepted (values are converted by the feature's kind, whatever the datatype).
pub const DATATYPES: &[&str] = &[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
    "FP32", "FP64", "BYTES",
];

/// One input tensor of the request.
struct Input<'a> {
    name: &'a str,
    shape: Vec<usize>,
    values: Vec<&'a Value>,
}

/// The raw matrix of an OIP request body.
pub fn parse(sig: &Signature, max: usize, v: &Value) -> Result<Vec<f32>, Error> {
    let Some(list) = v.get("inputs").and_then(Value::as_array) else {
        return invalid!(
            "an Open Inference Protocol request needs \"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}, ...]"
        );
    };
    let mut inputs = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        inputs.push(input(i, t)?);
    }
    let w = sig.width();
    if let [one] = inputs.as_slice() {
        let positional = match one.shape.as_slice() {
            [_, c] => *c == w,
            // a one-feature model: a 1-D tensor is its column, whatever its name
            [_] => w == 1,
            _ => false,
        };
        if positional {
            check_rows(one.shape[0], max)?;
            let mut data = Vec::with_capacity(one.values.len());
            for (k, v) in one.values.iter().enumerate() {
                data.push(from_json(&sig.features[k % w], v, k / w + 1)?);
            }
            return Ok(data);
        }
        if sig.position(one.name).is_none() {
            return invalid!(
                "input '{}' has shape {:?}; the model takes one input of shape [n, {w}] ({}) or one input per feature",
                one.name,
                one.shape,
                sig.names
            );
        }
    }
    let mut columns = Vec::with_capacity(w);
    let mut n = None;
    for f in &sig.features {
        let Some(t) = inputs.iter().find(|t| t.name == f.name) else {
            return Err(sig.missing(&f.name));
        };
        let rows = match t.shape.as_slice() {
            [n] | [n, 1] => *n,
            _ => {
                return invalid!(
                    "input '{}' has shape {:?}; a per-feature input has shape [n] or [n, 1]",
                    t.name,
                    t.shape
                );
            }
        };
        match n {
            None => n = Some((rows, t.name)),
            Some((n0, first)) if n0 != rows => {
                return invalid!("input '{}' has {rows} rows but '{first}' has {n0}", t.name);
            }
            _ => {}
        }
        columns.push(&t.values);
    }
    let n = n.map(|(n, _)| n).unwrap_or(0);
    check_rows(n, max)?;
    let mut data = Vec::with_capacity(n * w);
    for r in 0..n {
        for (f, c) in sig.features.iter().zip(&columns) {
            data.push(from_json(f, c[r], r + 1)?);
        }
    }
    Ok(data)
}

/// Checks one input tensor: name, shape, datatype and as many values as the shape says.
fn input(i: usize, t: &Value) -> Result<Input<'_>, Error> {
    let Some(name) = t.get("name").and_then(Value::as_str) else {
        return invalid!("input {} has no \"name\"", i + 1);
    };
    let shape = match t.get("shape") {
        Some(Value::Array(dims)) => {
            let mut shape = Vec::with_capacity(dims.len());
            for d in dims {
                match d.as_u64() {
                    Some(d) => shape.push(d as usize),
                    None => {
                        return invalid!(
                            "input '{name}': shape must be a list of sizes, got {}",
                            show(&t["shape"])
                        );
                    }
                }
            }
            shape
        }
        _ => return invalid!("input '{name}' has no \"shape\""),
    };
    match t.get("datatype").and_then(Value::as_str) {
        Some(dt) if DATATYPES.contains(&dt) => {}
        Some(dt) => {
            return invalid!(
                "input '{name}': unsupported datatype '{dt}' (use FP32, FP64, INT32, INT64, BYTES or BOOL)"
            );
        }
        None => return invalid!("input '{name}' has no \"datatype\""),
    }
    let mut values = Vec::new();
    match t.get("data") {
        Some(Value::Array(data)) => flatten(data, &mut values),
        Some(scalar) if !scalar.is_object() => values.push(scalar),
        _ => return invalid!("input '{name}' has no \"data\""),
    }
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(values.len()) {
        return invalid!(
            "input '{name}' has shape {shape:?} but {} values",
            values.len()
        );
    }
    Ok(Input {
        name,
        shape,
        values,
    })
}

/// Row-major values of nested lists.
fn flatten<'a>(data: &'a [Value], out: &mut Vec<&'a Value>) {
    for v in data {
        match v {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other),
        }
    }
}
