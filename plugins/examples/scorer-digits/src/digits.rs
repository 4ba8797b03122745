//! The scorer's own pre- and post-processing: 0-255 grayscale images → the model's 0-16
//! pixel features, and class probabilities → digits with confidence and top 3.

use serde::Serialize;
use serde_json::Value;

/// Pixels per image (8×8).
pub const PIXELS: usize = 64;

/// The most images one request may hold.
pub const MAX_IMAGES: usize = 10_000;

/// Where each pixel goes in the model's input row, and the model's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// `positions[i]`: the input column of `pixel_i`.
    pub positions: Vec<usize>,
    /// The class labels, in the model's output order.
    pub labels: Vec<String>,
}

impl Layout {
    /// The layout from config `model.signature`; without one, pixels in order and labels 0-9.
    pub fn from_signature(signature: Option<&str>) -> Result<Layout, String> {
        let Some(text) = signature else {
            return Ok(Layout {
                positions: (0..PIXELS).collect(),
                labels: (0..10).map(|d| d.to_string()).collect(),
            });
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("model.signature is not valid JSON: {e}"))?;
        let inputs = v["inputs"].as_array().cloned().unwrap_or_default();
        if inputs.len() != PIXELS {
            return Err(format!(
                "scorer-digits needs a model whose inputs are pixel_0..pixel_63 (or px0..px63); this one takes {} inputs",
                inputs.len()
            ));
        }
        let mut positions = vec![usize::MAX; PIXELS];
        for (col, input) in inputs.iter().enumerate() {
            let name = input["name"].as_str().unwrap_or("");
            // `pixel_7` or `px7` (the digits CSV's spelling)
            match name
                .strip_prefix("pixel_")
                .or_else(|| name.strip_prefix("px"))
                .and_then(|i| i.parse::<usize>().ok())
            {
                Some(i) if i < PIXELS && positions[i] == usize::MAX => positions[i] = col,
                _ => {
                    return Err(format!(
                        "scorer-digits needs a model whose inputs are pixel_0..pixel_63 (or px0..px63); this one takes '{name}'"
                    ));
                }
            }
        }
        let Some(labels) = v["output"]["labels"].as_array() else {
            return Err("scorer-digits needs a classifier; this model has no class labels".into());
        };
        let labels = labels
            .iter()
            .map(|l| l.as_str().map_or_else(|| l.to_string(), String::from))
            .collect();
        Ok(Layout { positions, labels })
    }
}

/// Parses the config text: `min_confidence` (a number in 0..=1, default 0).
pub fn min_confidence(config: &str) -> Result<f32, String> {
    if config.trim().is_empty() {
        return Ok(0.0);
    }
    let v: Value = serde_json::from_str(config)
        .map_err(|e| format!("scorer config is not valid JSON: {e}"))?;
    match v.get("min_confidence") {
        None | Some(Value::Null) => Ok(0.0),
        Some(x) => match x.as_f64() {
            Some(c) if (0.0..=1.0).contains(&c) => Ok(c as f32),
            _ => Err(format!(
                "scorer option 'min_confidence' must be a number in 0..=1, got {x}"
            )),
        },
    }
}

/// `{"images": [[64 pixels], ...]}` or `{"image": [64 pixels]}` (an image may also be 8 rows
/// of 8) → `[n, 64]` model input in the layout's column order, pixels scaled to 0-16.
pub fn preprocess(body: &[u8], layout: &Layout) -> Result<(usize, Vec<f32>), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let images: Vec<&Value> = match (v.get("images"), v.get("image")) {
        (Some(Value::Array(list)), _) => list.iter().collect(),
        (None, Some(one @ Value::Array(_))) => vec![one],
        _ => {
            return Err(
                "expected {\"images\": [[64 pixels 0-255], ...]} or {\"image\": [64 pixels]}"
                    .into(),
            );
        }
    };
    if images.is_empty() {
        return Err("no images to score".into());
    }
    if images.len() > MAX_IMAGES {
        return Err(format!("at most {MAX_IMAGES} images per request"));
    }
    let mut data = vec![0.0f32; images.len() * PIXELS];
    for (n, image) in images.iter().enumerate() {
        let pixels = flatten(image);
        if pixels.len() != PIXELS {
            return Err(format!(
                "image {} has {} pixels; expected 64 (8×8)",
                n + 1,
                pixels.len()
            ));
        }
        let row = &mut data[n * PIXELS..(n + 1) * PIXELS];
        for (i, p) in pixels.iter().enumerate() {
            let Some(x) = p.as_f64() else {
                return Err(format!(
                    "image {}, pixel {i}: expected a number 0..=255, got {p}",
                    n + 1
                ));
            };
            if !(0.0..=255.0).contains(&x) {
                return Err(format!(
                    "image {}, pixel {i} is {x}; pixels must be 0..=255",
                    n + 1
                ));
            }
            row[layout.positions[i]] = scale(x);
        }
    }
    Ok((images.len(), data))
}

/// A 0-255 pixel on the dataset's 0-16 scale.
pub fn scale(p: f64) -> f32 {
    (p * 16.0 / 255.0).round() as f32
}

fn flatten(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) if items.iter().all(Value::is_array) => {
            items.iter().flat_map(flatten).collect()
        }
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// One answer.
#[derive(Debug, Serialize, PartialEq)]
pub struct Digit<'a> {
    /// The most likely digit; `null` below `min_confidence`.
    pub digit: Option<&'a str>,
    /// Its probability.
    pub confidence: f32,
    /// The three most likely digits with their probabilities.
    pub top3: Vec<(&'a str, f32)>,
}

/// The response body for probabilities `probs` (`n × labels`, row-major).
pub fn postprocess(probs: &[f32], layout: &Layout, min_confidence: f32) -> Vec<u8> {
    let k = layout.labels.len().max(1);
    let digits: Vec<Digit<'_>> = probs
        .chunks(k)
        .map(|p| {
            let mut order: Vec<usize> = (0..p.len()).collect();
            // most likely first; on ties the later class first (like the host's argmax)
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(b.cmp(&a)));
            let label = |i: usize| layout.labels.get(i).map_or("?", String::as_str);
            let best = order[0];
            Digit {
                digit: (p[best] >= min_confidence).then(|| label(best)),
                confidence: p[best],
                top3: order.iter().take(3).map(|&i| (label(i), p[i])).collect(),
            }
        })
        .collect();
    // serialized from the struct (not a `Value`), so f32s print in their shortest text
    #[derive(Serialize)]
    struct Response<'a> {
        digits: Vec<Digit<'a>>,
    }
    serde_json::to_vec(&Response { digits }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(reversed: bool) -> String {
        let mut names: Vec<String> = (0..64)
            .map(|i| format!("{{\"name\":\"pixel_{i}\",\"type\":\"number\"}}"))
            .collect();
        if reversed {
            names.reverse();
        }
        let labels: Vec<String> = (0..10).map(|d| format!("\"{d}\"")).collect();
        format!(
            "{{\"inputs\":[{}],\"output\":{{\"name\":\"digit\",\"type\":\"class\",\"labels\":[{}]}}}}",
            names.join(","),
            labels.join(",")
        )
    }

    #[test]
    fn scales_and_maps_pixels_by_name() {
        let layout = Layout::from_signature(Some(&signature(true))).unwrap();
        assert_eq!(layout.positions[0], 63);
        let mut image = vec![0u32; 64];
        image[0] = 255;
        image[1] = 128;
        let body = serde_json::to_vec(&serde_json::json!({ "images": [image] })).unwrap();
        let (n, data) = preprocess(&body, &layout).unwrap();
        assert_eq!(n, 1);
        assert_eq!(data[63], 16.0);
        assert_eq!(data[62], 8.0);
        assert_eq!(scale(8.0), 1.0);
        // one image, as 8 rows of 8
        let rows: Vec<Vec<u32>> = image.chunks(8).map(<[u32]>::to_vec).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "image": rows })).unwrap();
        assert_eq!(preprocess(&body, &layout).unwrap(), (1, data));
    }

    #[test]
    fn rejects_bad_images() {
        let layout = Layout::from_signature(None).unwrap();
        let err = |b: &str| preprocess(b.as_bytes(), &layout).unwrap_err();
        assert_eq!(
            err(r#"{"images": [[1, 2]]}"#),
            "image 1 has 2 pixels; expected 64 (8×8)"
        );
        let mut image = vec![serde_json::json!(0); 64];
        image[5] = serde_json::json!(300);
        let body =
            serde_json::json!({ "images": [vec![serde_json::json!(0); 64], image] }).to_string();
        assert_eq!(
            err(&body),
            "image 2, pixel 5 is 300; pixels must be 0..=255"
        );
        assert_eq!(err(r#"{"images": []}"#), "no images to score");
        assert!(err(r#"{"pixels": []}"#).starts_with("expected {\"images\""));
        assert!(Layout::from_signature(Some(r#"{"inputs":[{"name":"a"}],"output":{}}"#)).is_err());
    }

    #[test]
    fn top3_and_min_confidence() {
        let layout = Layout::from_signature(Some(&signature(false))).unwrap();
        let mut p = vec![0.0f32; 20];
        p[3] = 0.98;
        p[8] = 0.01;
        p[5] = 0.005;
        p[10 + 1] = 0.5;
        p[10 + 7] = 0.5;
        let body = String::from_utf8(postprocess(&p, &layout, 0.6)).unwrap();
        assert_eq!(
            body,
            r#"{"digits":[{"digit":"3","confidence":0.98,"top3":[["3",0.98],["8",0.01],["5",0.005]]},{"digit":null,"confidence":0.5,"top3":[["7",0.5],["1",0.5],["9",0.0]]}]}"#
        );
        assert_eq!(min_confidence("").unwrap(), 0.0);
        assert_eq!(min_confidence(r#"{"min_confidence": 0.5}"#).unwrap(), 0.5);
        assert!(min_confidence(r#"{"min_confidence": 2}"#).is_err());
    }
}
