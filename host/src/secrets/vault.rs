//! The vault: the master key, checked at startup against the key check row in the database so
//! that a wrong key stops the host with a precise error instead of failing at first use.

use super::VaultError;
use super::cipher::{Cipher, KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT};
use super::key::{KeySource, MasterKey, create_key_file, read_key_file};
use crate::store::{Store, VaultMetaRow};
use crate::workspace::now_millis;

/// The opened vault: the cipher under the checked master key.
#[derive(Debug)]
pub struct Vault {
    cipher: Cipher,
}

impl Vault {
    /// A vault over an already checked key (tests, tools).
    pub fn from_key(key: &MasterKey) -> Self {
        Self {
            cipher: Cipher::new(key),
        }
    }

    /// The cipher.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// Loads the master key from `source` and checks it against the database: the first start
    /// writes the key check (generating a missing key file); later starts refuse a key that is
    /// not the one the secrets were sealed with. A database without any secret adopts a new
    /// key (nothing would become unreadable).
    pub async fn open(store: &Store, source: &KeySource) -> Result<Self, VaultError> {
        let meta = store.vault_meta().await?;
        let key = match source {
            KeySource::Env(text) => MasterKey::from_base64(text).map_err(VaultError::EnvKey)?,
            KeySource::File(path) => match read_key_file(path)? {
                Some(k) => k,
                None => {
                    if let Some(m) = &meta
                        && store.any_secret().await?
                    {
                        return Err(VaultError::KeyMissing {
                            path: path.clone(),
                            expected: m.key_fingerprint.clone(),
                        });
                    }
                    let k = create_key_file(path)?;
                    tracing::warn!(
                        path = %path.display(),
                        "generated master key at {}; back it up: moving the database without it makes its secrets unreadable",
                        path.display()
                    );
                    k
                }
            },
        };
        let vault = Self::from_key(&key);
        let c = &vault.cipher;
        let fresh = || -> Result<VaultMetaRow, VaultError> {
            Ok(VaultMetaRow {
                key_fingerprint: c.fingerprint().to_string(),
                check: c.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)?,
            })
        };
        let stored = match meta {
            Some(m) => m,
            None => {
                store.init_vault_meta(&fresh()?, now_millis()).await?;
                // another replica may have written its own first: check against what is stored
                store.vault_meta().await?.ok_or_else(|| {
                    VaultError::Store(crate::workspace::DomainError::Internal(
                        "the vault key check row was not written".into(),
                    ))
                })?
            }
        };
        if let Err(e) = vault.check(&stored, source) {
            if matches!(e, VaultError::WrongKey { .. })
                && store
                    .replace_vault_meta_if_empty(&fresh()?, now_millis())
                    .await?
            {
                tracing::warn!(
                    previous = stored.key_fingerprint.as_str(),
                    key = c.fingerprint(),
                    "the master key changed; the database holds no secrets, so the new key is adopted"
                );
            } else {
                return Err(e);
            }
        }
        tracing::info!(key = c.fingerprint(), "secret store ready");
        Ok(vault)
    }

    /// Checks the key against the stored key check.
    fn check(&self, stored: &VaultMetaRow, source: &KeySource) -> Result<(), VaultError> {
        if stored.key_fingerprint != self.cipher.fingerprint() {
            return Err(VaultError::WrongKey {
                source_desc: source.describe(),
                actual: self.cipher.fingerprint().to_string(),
                expected: stored.key_fingerprint.clone(),
            });
        }
        let plain = self
            .cipher
            .open(KEY_CHECK_AAD, &stored.check, "the vault key check")
            .map_err(|_| VaultError::KeyCheckAltered(source.describe()))?;
        if &plain[..] != KEY_CHECK_PLAINTEXT {
            return Err(VaultError::KeyCheckAltered(source.describe()));
        }
        Ok(())
    }
}
