//! `scorer-digits`: an example of a scorer a team uploads to do its own pre- and
//! post-processing around the deployment's model (an 8×8 digits classifier whose features are
//! `pixel_0..pixel_63` or `px0..px63`, 0-16).
//!
//! Request: `{"images": [[64 grayscale pixels 0-255], ...]}` or `{"image": [...]}` (an image
//! may also be 8 rows of 8). Pixels are scaled to 0-16 (`round(p * 16 / 255)`) and placed by
//! name in the model's feature order.
//!
//! Response: `{"digits": [{"digit": "3", "confidence": 0.98, "top3": [["3", 0.98], ...]}, ...]}`.
//!
//! Options: `min_confidence` (0..=1, default 0): below it `"digit"` is `null`.

pub mod digits;

use atrium_sdk::scorer::atrium::plugin::types::PluginError;
use atrium_sdk::scorer::atrium::plugin::{config, models, tensors};
use atrium_sdk::scorer::exports::atrium::plugin::scorer::{Guest, GuestSession, Session};

use digits::{Layout, PIXELS};

/// A session: the layout, the option and the model.
pub struct DigitsScorer {
    layout: Layout,
    min_confidence: f32,
    model: models::Model,
}

impl GuestSession for DigitsScorer {
    fn open(config_text: String) -> Result<Session, PluginError> {
        let layout = Layout::from_signature(config::get("model.signature").as_deref())
            .map_err(PluginError::InvalidArgument)?;
        let min_confidence =
            digits::min_confidence(&config_text).map_err(PluginError::InvalidArgument)?;
        let model = models::load("default")?;
        Ok(Session::new(DigitsScorer {
            layout,
            min_confidence,
            model,
        }))
    }

    fn score(&self, content_type: String, body: Vec<u8>) -> Result<(String, Vec<u8>), PluginError> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !(essence.is_empty() || essence.eq_ignore_ascii_case("application/json")) {
            return Err(PluginError::Unsupported(format!(
                "unsupported content type '{content_type}'; send application/json"
            )));
        }
        let (n, data) =
            digits::preprocess(&body, &self.layout).map_err(PluginError::InvalidArgument)?;
        let input = tensors::from_data(&[n as u64, PIXELS as u64], &data)?;
        let output = self.model.predict(&input)?;
        let k = self.layout.labels.len();
        if output.shape() != [n as u64, k as u64] {
            return Err(PluginError::Internal(format!(
                "the model returned shape {:?}; expected [{n}, {k}]",
                output.shape()
            )));
        }
        let mut probs = Vec::with_capacity(n * k);
        while probs.len() < n * k {
            let len = (n * k - probs.len()).min(1 << 20) as u32;
            let chunk = output.read(probs.len() as u64, len)?;
            if chunk.is_empty() {
                break;
            }
            probs.extend_from_slice(&chunk);
        }
        Ok((
            "application/json".into(),
            digits::postprocess(&probs, &self.layout, self.min_confidence),
        ))
    }
}

/// The component.
pub struct Plugin;

impl Guest for Plugin {
    type Session = DigitsScorer;
}

atrium_sdk::export_scorer!(Plugin);
