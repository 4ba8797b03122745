//! Opaque page tokens for cursor pagination.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::workspace::DomainError;

/// Encodes the offset of the next page.
pub fn encode(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{{\"offset\":{offset}}}"))
}

/// Decodes a page token (empty or absent: the first page).
pub fn decode(token: Option<&str>) -> Result<usize, DomainError> {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || DomainError::invalid(format!("invalid page_token '{t}'"));
    let bytes = URL_SAFE_NO_PAD
        .decode(t.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    v.get("offset")
        .and_then(|o| o.as_u64())
        .map(|o| o as usize)
        .ok_or_else(bad)
}

/// The next token when a query for `limit + 1` rows returned `fetched` rows (more than `limit`
/// means another page exists).
pub fn next(offset: usize, fetched: usize, limit: usize) -> Option<String> {
    (fetched > limit).then(|| encode(offset + limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_garbage() {
        assert_eq!(decode(Some(&encode(1234))).unwrap(), 1234);
        assert_eq!(decode(None).unwrap(), 0);
        assert_eq!(decode(Some("")).unwrap(), 0);
        assert!(decode(Some("not a token")).is_err());
        assert_eq!(next(0, 11, 10), Some(encode(10)));
        assert_eq!(next(20, 10, 10), None);
    }
}
