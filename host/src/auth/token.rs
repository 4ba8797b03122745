//! API tokens: generation, hashing, and the credentials a request carries.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of every user API token (tells them apart from endpoint keys).
pub const TOKEN_PREFIX: &str = "atr_";

/// A fresh token: the prefix and 32 random bytes (256 bits) in URL-safe base64.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A token's short public id (shown in lists, used to revoke): 8 random bytes in hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("tok_{}", hex::encode(bytes))
}

/// What is stored of a token: its SHA-256 in hex (the token carries 256 bits of entropy, so
/// a slow password hash would add nothing).
pub fn hash(token: &str) -> String {
    hex::encode(digest(token))
}

/// A token's SHA-256 (the key of the verified-token cache, so no token is kept in memory).
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Credentials found in a request's `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic base64(user:token)`: what the mlflow client sends for
    /// `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.
    Basic {
        /// The user name.
        user: String,
        /// The password: an API token of that user.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(..)"),
            Self::Basic { user, .. } => write!(f, "Basic({user}, ..)"),
        }
    }
}

impl Credentials {
    /// Parses an `Authorization` header value; `Err` says why it is unusable.
    pub fn parse(header: &str) -> Result<Self, &'static str> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Err("the Authorization header has no bearer token");
            }
            Ok(Self::Bearer(rest.to_string()))
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "the Basic credentials are not valid base64")?;
            let text = String::from_utf8(decoded)
                .map_err(|_| "the Basic credentials are not valid UTF-8")?;
            let (user, password) = text
                .split_once(':')
                .ok_or("the Basic credentials have no ':' between user and password")?;
            Ok(Self::Basic {
                user: user.to_string(),
                password: password.to_string(),
            })
        } else {
            Err("unsupported Authorization scheme: use Bearer <token> or Basic")
        }
    }

    /// The token the credentials carry.
    pub fn token(&self) -> &str {
        match self {
            Self::Bearer(t) => t,
            Self::Basic { password, .. } => password,
        }
    }

    /// Whether these look like a user API token (endpoint keys do not).
    pub fn is_user_token(&self) -> bool {
        match self {
            Self::Bearer(t) => t.starts_with(TOKEN_PREFIX),
            Self::Basic { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_long_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn parses_bearer_and_basic() {
        assert_eq!(
            Credentials::parse("Bearer atr_x").unwrap(),
            Credentials::Bearer("atr_x".into())
        );
        assert_eq!(
            Credentials::parse("bearer  atr_y ").unwrap().token(),
            "atr_y"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("ann:atr_z");
        let c = Credentials::parse(&format!("Basic {basic}")).unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                user: "ann".into(),
                password: "atr_z".into()
            }
        );
        assert!(Credentials::parse("Bearer").is_err());
        assert!(Credentials::parse("Basic !!!").is_err());
        assert!(Credentials::parse("Digest x").is_err());
        assert!(!format!("{c:?}").contains("atr_z"));
    }
}
