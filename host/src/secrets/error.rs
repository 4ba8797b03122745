//! Errors of the secret store. No message ever carries a secret value or key material.

use std::path::PathBuf;

use crate::workspace::DomainError;

/// What went wrong with the master key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// `ATRIUM_MASTER_KEY` is set but is not base64 of 32 bytes.
    #[error("ATRIUM_MASTER_KEY is not a usable master key: {0}")]
    EnvKey(String),
    /// The key file exists but does not hold a key.
    #[error("master key file {path} is not usable: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why (never its content).
        reason: String,
    },
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is gone but the database holds secrets sealed with a key.
    #[error(
        "master key file {path} does not exist, but this database holds secrets sealed with the master key of fingerprint {expected}: restore that key file from your backup (or pass the key in ATRIUM_MASTER_KEY)"
    )]
    KeyMissing {
        /// Where the key was looked for.
        path: PathBuf,
        /// Fingerprint of the key the database expects.
        expected: String,
    },
    /// The master key is not the one the database's secrets were sealed with.
    #[error(
        "the master key from {source_desc} (fingerprint {actual}) is not the key this database's secrets were sealed with (fingerprint {expected}); start with the original key, or the secrets cannot be decrypted"
    )]
    WrongKey {
        /// Where the key came from.
        source_desc: String,
        /// Fingerprint of the key given.
        actual: String,
        /// Fingerprint the database expects.
        expected: String,
    },
    /// The stored key check matches the key's fingerprint but does not decrypt.
    #[error(
        "the vault key check in the database does not decrypt with the master key from {0}: the vault_meta row was altered"
    )]
    KeyCheckAltered(String),
    /// A sealed value does not decrypt: the ciphertext, its nonce or its binding was altered.
    #[error("{0} cannot be decrypted: its ciphertext was altered or belongs to another secret")]
    Tampered(String),
    /// Encryption failed (only on absurd sizes).
    #[error("cannot encrypt {0}")]
    Seal(String),
    /// The metadata store failed while checking the key.
    #[error("secret store: {0}")]
    Store(#[from] DomainError),
}

impl From<VaultError> for DomainError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(d) => d,
            other => {
                tracing::error!(error = %other, "secret store error");
                DomainError::Internal(other.to_string())
            }
        }
    }
}
