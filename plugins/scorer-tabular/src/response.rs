//! The response body: `{"predictions", "probabilities"}` (raw route, MLflow) or an Open
//! Inference Protocol v2 response, with f32 values in their shortest round-trip text.

use std::io::Write;

use crate::error::Error;
use crate::request::{Format, Request};
use crate::signature::{Output, Signature};

/// The index of the largest probability; on exact ties the last one (like the host's
/// in-process inference, `Iterator::max_by` with `f32::total_cmp`).
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Writes responses; the JSON of labels and model identity is prepared once at `open`.
#[derive(Debug, Clone)]
pub struct Responder {
    /// A classifier's labels as JSON strings; `None` for a regressor.
    labels: Option<Vec<String>>,
    probabilities: bool,
    /// `{"model_name":...,"model_version":...` of OIP responses.
    oip_head: String,
}

impl Responder {
    /// A responder for `sig`; `probabilities`: whether a classifier's answer has them.
    pub fn new(
        sig: &Signature,
        probabilities: bool,
        model_name: &str,
        model_version: Option<&str>,
    ) -> Responder {
        let labels = match &sig.output {
            Output::Classes(labels) => Some(labels.iter().map(|l| json_string(l)).collect()),
            Output::Number => None,
        };
        let mut oip_head = format!("{{\"model_name\":{}", json_string(model_name));
        if let Some(v) = model_version {
            oip_head.push_str(&format!(",\"model_version\":{}", json_string(v)));
        }
        Responder {
            labels,
            probabilities,
            oip_head,
        }
    }

    /// The number of values per row the model must return.
    pub fn width(&self) -> usize {
        self.labels.as_ref().map_or(1, Vec::len)
    }

    /// The response body for `req`, given the model's `output` (row-major) of shape `shape`.
    pub fn respond(&self, req: &Request, output: &[f32], shape: &[u64]) -> Result<Vec<u8>, Error> {
        let n = req.rows;
        let k = self.width();
        let shape_ok = match shape {
            [r, c] => *r as usize == n && *c as usize == k,
            [r] => self.labels.is_none() && *r as usize == n,
            _ => false,
        };
        if !shape_ok || output.len() != n * k {
            return Err(Error::Internal(format!(
                "the model returned shape {shape:?} ({} values); expected [{n}, {k}]",
                output.len()
            )));
        }
        let mut out = Vec::with_capacity(64 + n * k * 16);
        match req.format {
            Format::Default => self.default(&mut out, n, output),
            Format::Oip => self.oip(&mut out, req, n, output),
        }
        Ok(out)
    }

    fn default(&self, out: &mut Vec<u8>, n: usize, output: &[f32]) {
        out.extend_from_slice(b"{\"predictions\":[");
        match &self.labels {
            None => push_floats(out, output),
            Some(labels) => {
                let k = labels.len();
                for r in 0..n {
                    if r > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(labels[argmax(&output[r * k..(r + 1) * k])].as_bytes());
                }
                if self.probabilities {
                    out.extend_from_slice(b"],\"probabilities\":[");
                    for r in 0..n {
                        if r > 0 {
                            out.push(b',');
                        }
                        out.push(b'{');
                        for (j, (label, p)) in
                            labels.iter().zip(&output[r * k..(r + 1) * k]).enumerate()
                        {
                            if j > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(label.as_bytes());
                            out.push(b':');
                            push_float(out, *p);
                        }
                        out.push(b'}');
                    }
                }
            }
        }
        out.extend_from_slice(b"]}");
    }

    fn oip(&self, out: &mut Vec<u8>, req: &Request, n: usize, output: &[f32]) {
        out.extend_from_slice(self.oip_head.as_bytes());
        if let Some(id) = &req.id {
            out.extend_from_slice(b",\"id\":");
            let _ = serde_json::to_writer(&mut *out, id);
        }
        let _ = write!(
            out,
            ",\"outputs\":[{{\"name\":\"predictions\",\"shape\":[{n}],"
        );
        match &self.labels {
            None => {
                out.extend_from_slice(b"\"datatype\":\"FP32\",\"data\":[");
                push_floats(out, output);
                out.extend_from_slice(b"]}");
            }
            Some(labels) => {
                let k = labels.len();
                out.extend_from_slice(b"\"datatype\":\"BYTES\",\"data\":[");
                for r in 0..n {
                    if r > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(labels[argmax(&output[r * k..(r + 1) * k])].as_bytes());
                }
                out.extend_from_slice(b"]}");
                if self.probabilities {
                    let _ = write!(
                        out,
                        ",{{\"name\":\"probabilities\",\"shape\":[{n},{k}],\"datatype\":\"FP32\",\"data\":["
                    );
                    push_floats(out, output);
                    out.extend_from_slice(b"]}");
                }
            }
        }
        out.extend_from_slice(b"]}");
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// An f32 in its shortest round-trip text; `null` for NaN and infinities (not JSON numbers).
pub fn push_float(out: &mut Vec<u8>, x: f32) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn push_floats(out: &mut Vec<u8>, xs: &[f32]) {
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_float(out, *x);
    }
}
