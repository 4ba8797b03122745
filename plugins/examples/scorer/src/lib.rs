//! A scorer plugin: parses `{"inputs": [[f32, ...], ...]}`, runs the deployment's model on the
//! host (`models.predict`, native Candle), and answers `{"outputs": [...]}`.

use atrium_sdk::scorer::atrium::plugin::{models, tensors};
use atrium_sdk::scorer::atrium::plugin::types::PluginError;
use atrium_sdk::scorer::exports::atrium::plugin::scorer::{Guest, GuestSession, Session};

pub struct Scorer {
    model: models::Model,
}

fn parse_rows(body: &[u8]) -> Result<(Vec<f32>, u64, u64), PluginError> {
    let text = std::str::from_utf8(body).map_err(|_| PluginError::InvalidArgument("body is not UTF-8".into()))?;
    let start = text.find("[[").ok_or_else(|| PluginError::InvalidArgument("expected {\"inputs\": [[...]]}".into()))?;
    let end = text.rfind("]]").ok_or_else(|| PluginError::InvalidArgument("unterminated inputs".into()))?;
    let mut data = Vec::new();
    let mut rows = 0u64;
    for row in text[start + 2..end].split("],") {
        rows += 1;
        for v in row.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()).split(',') {
            data.push(v.trim().parse::<f32>().map_err(|_| PluginError::InvalidArgument(format!("'{v}' is not a number")))?);
        }
    }
    let cols = data.len() as u64 / rows.max(1);
    Ok((data, rows, cols))
}

impl GuestSession for Scorer {
    fn open(_config: String) -> Result<Session, PluginError> {
        Ok(Session::new(Scorer { model: models::load("default")? }))
    }

    fn score(&self, _content_type: String, body: Vec<u8>) -> Result<(String, Vec<u8>), PluginError> {
        let (data, rows, cols) = parse_rows(&body)?;
        let input = tensors::from_data(&[rows, cols], &data)?;
        let output = self.model.predict(&input)?;
        let n: u64 = output.shape().iter().product();
        let values = output.read(0, n as u32)?;
        let json = format!("{{\"outputs\": {values:?}}}");
        Ok(("application/json".into(), json.into_bytes()))
    }
}

pub struct Plugin;

impl Guest for Plugin {
    type Session = Scorer;
}

atrium_sdk::export_scorer!(Plugin);
