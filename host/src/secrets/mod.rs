//! The workspace secret store (key vault): named values sealed at rest with XChaCha20-Poly1305
//! under the host's master key, never returned by the API, and decrypted for use only through
//! [`Service::resolve_secrets`](crate::service::Service::resolve_secrets).
//!
//! - [`value`]: a secret value in memory (wiped on drop, redacted in `Debug`).
//! - [`cipher`]: the AEAD, its nonces and the associated data that binds a row to its name.
//! - [`key`]: the master key: where it comes from, generating it on first start.
//! - [`vault`]: the master key checked against the database at startup.
//! - [`names`]: rules for secret names and values.
//! - [`service`]: set, list, show, delete and resolve, on the workspace service.

pub mod cipher;
mod error;
pub mod key;
pub mod names;
mod service;
pub mod value;
pub mod vault;

pub use cipher::{Cipher, Sealed};
pub use error::VaultError;
pub use key::{KeySource, MasterKey};
pub use service::{SecretMeta, SecretWrite};
pub use value::SecretString;
pub use vault::Vault;
