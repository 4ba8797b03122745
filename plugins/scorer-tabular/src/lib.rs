//! `scorer-tabular`, Atrium's built-in scorer for tabular models.
//!
//! At `open` it reads the model signature (config key `model.signature`), loads the
//! deployment's model once and parses the scorer config. `score` turns a request into the raw
//! matrix the host's model takes (`[rows, features]` in signature order: numbers as they are,
//! categories as their index, -1 for an unknown category, NaN for a missing value), runs
//! `model.predict` (the host applies the model's preprocessing) and answers JSON.
//!
//! Requests (see `request`): MLflow `dataframe_split`, `dataframe_records`, `instances`,
//! `inputs`, `{"columns", "data"}`, a top-level list of records or rows; Open Inference Protocol
//! v2 with `application/json; format=oip`; `text/csv` with a header row.
//!
//! Responses (see `response`): `{"predictions": [...], "probabilities": [{label: p}, ...]}`, or
//! an OIP response with outputs `predictions` and `probabilities`.
//!
//! Options (a JSON object; unknown keys are ignored):
//! - `probabilities` (bool, default true): whether a classifier's answer has the probabilities;
//! - `max_rows` (integer >= 1, default 10000): the most rows one request may hold.

pub mod csv;
pub mod error;
pub mod oip;
pub mod options;
pub mod request;
pub mod response;
pub mod signature;
pub mod value;

use error::Error;
use options::Options;
use request::Request;
use response::Responder;
use signature::Signature;

/// The most elements one `tensors.from-data` or `tensor.read` call moves.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// The session state prepared at `open`: everything `score` needs but the model.
#[derive(Debug, Clone)]
pub struct Core {
    /// The model signature.
    pub sig: Signature,
    /// The scorer options.
    pub options: Options,
    /// The response writer.
    pub responder: Responder,
}

impl Core {
    /// Prepares a session from the signature JSON, the scorer config and the model's identity.
    pub fn new(
        signature: Option<&str>,
        config: &str,
        model_name: &str,
        model_version: Option<&str>,
    ) -> Result<Core, Error> {
        let Some(signature) = signature else {
            return invalid!(
                "the deployment's model has no signature (config key model.signature)"
            );
        };
        let sig = Signature::parse(signature)?;
        let options = Options::parse(config)?;
        let responder = Responder::new(&sig, options.probabilities, model_name, model_version);
        Ok(Core {
            sig,
            options,
            responder,
        })
    }

    /// Parses a request body into the raw matrix.
    pub fn parse(&self, content_type: &str, body: &[u8]) -> Result<Request, Error> {
        request::parse(&self.sig, self.options.max_rows, content_type, body)
    }
}

#[cfg(test)]
mod tests;

mod guest {
    use atrium_sdk::scorer::atrium::plugin::types::PluginError;
    use atrium_sdk::scorer::atrium::plugin::{config, models, tensors};
    use atrium_sdk::scorer::exports::atrium::plugin::scorer::{Guest, GuestSession, Session};

    use crate::error::Error;
    use crate::{Core, MAX_ELEMENTS};

    fn plugin_error(e: Error) -> PluginError {
        match e {
            Error::Invalid(m) => PluginError::InvalidArgument(m),
            Error::Unsupported(m) => PluginError::Unsupported(m),
            Error::Internal(m) => PluginError::Internal(m),
        }
    }

    /// A session: the prepared state and the deployment's model.
    pub struct Scorer {
        core: Core,
        model: models::Model,
    }

    impl Scorer {
        /// Runs the model on `data` (`rows × width`) in batches of at most `MAX_ELEMENTS`
        /// values; returns the outputs row-major and their shape.
        fn predict(&self, rows: usize, data: &[f32]) -> Result<(Vec<f32>, Vec<u64>), PluginError> {
            let w = self.core.sig.width();
            let batch = (MAX_ELEMENTS / w).max(1);
            let mut out = Vec::with_capacity(rows * self.core.responder.width());
            let mut shape: Vec<u64> = Vec::new();
            let mut start = 0;
            while start < rows {
                let b = batch.min(rows - start);
                let input =
                    tensors::from_data(&[b as u64, w as u64], &data[start * w..(start + b) * w])?;
                let output = self.model.predict(&input)?;
                let s = output.shape();
                let total: u64 = s.iter().product();
                let mut offset = 0u64;
                while offset < total {
                    let len = (total - offset).min(MAX_ELEMENTS as u64) as u32;
                    let chunk = output.read(offset, len)?;
                    if chunk.is_empty() {
                        break;
                    }
                    offset += chunk.len() as u64;
                    out.extend_from_slice(&chunk);
                }
                if shape.is_empty() {
                    shape = s;
                } else if s.len() != shape.len() || s[1..] != shape[1..] {
                    return Err(PluginError::Internal(format!(
                        "the model returned shape {s:?} for a batch; the first batch had {shape:?}"
                    )));
                } else {
                    shape[0] += s.first().copied().unwrap_or(0);
                }
                start += b;
            }
            Ok((out, shape))
        }
    }

    impl GuestSession for Scorer {
        fn open(config_text: String) -> Result<Session, PluginError> {
            let signature = config::get("model.signature");
            let name = config::get("endpoint.name")
                .or_else(|| config::get("model.name"))
                .unwrap_or_else(|| "model".into());
            let version = config::get("model.version");
            let core = Core::new(
                signature.as_deref(),
                &config_text,
                &name,
                version.as_deref(),
            )
            .map_err(plugin_error)?;
            let model = models::load("default")?;
            Ok(Session::new(Scorer { core, model }))
        }

        fn score(
            &self,
            content_type: String,
            body: Vec<u8>,
        ) -> Result<(String, Vec<u8>), PluginError> {
            let req = self
                .core
                .parse(&content_type, &body)
                .map_err(plugin_error)?;
            let (output, shape) = self.predict(req.rows, &req.data)?;
            let body = self
                .core
                .responder
                .respond(&req, &output, &shape)
                .map_err(plugin_error)?;
            Ok(("application/json".into(), body))
        }
    }

    /// The component.
    pub struct Plugin;

    impl Guest for Plugin {
        type Session = Scorer;
    }

    atrium_sdk::export_scorer!(Plugin);
}
