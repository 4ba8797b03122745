//! Sealing values with XChaCha20-Poly1305: a fresh random 24-byte nonce per value, and
//! associated data that binds the ciphertext to where it is stored, so a row copied over
//! another one does not decrypt.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::VaultError;
use super::key::MasterKey;

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;

/// A sealed value: its nonce and the ciphertext with the 16-byte tag appended.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Random per value.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// The associated data of a workspace secret: `workspace/name` under a version prefix.
/// Neither workspace nor secret names may contain `/`, so the binding is unambiguous.
pub fn secret_aad(workspace: &str, name: &str) -> Vec<u8> {
    format!("atrium-secret-v1:{workspace}/{name}").into_bytes()
}

/// The associated data of the key check row.
pub const KEY_CHECK_AAD: &[u8] = b"atrium-vault-key-check-v1";
/// The constant the key check row seals.
pub const KEY_CHECK_PLAINTEXT: &[u8] = b"atrium vault: this master key opens these secrets";

/// The AEAD under the master key.
pub struct Cipher {
    aead: XChaCha20Poly1305,
    fingerprint: String,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher(key fingerprint {})", self.fingerprint)
    }
}

impl Cipher {
    /// The cipher of a master key.
    pub fn new(key: &MasterKey) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(key.bytes().into()),
            fingerprint: fingerprint(key),
        }
    }

    /// A short, non-secret name of the key (to tell keys apart in errors and logs).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seals `plaintext` bound to `aad`, under a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| VaultError::Seal(format!("a value of {} bytes", plaintext.len())))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a sealed value bound to `aad`; `what` names it in the error.
    pub fn open(
        &self,
        aad: &[u8],
        sealed: &Sealed,
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Tampered(what.to_string()))?;
        self.aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered(what.to_string()))
    }
}

/// The first 16 hex digits of a domain-separated SHA-256 of the key.
pub fn fingerprint(key: &MasterKey) -> String {
    let mut h = Sha256::new();
    h.update(b"atrium-master-key-fingerprint-v1\0");
    h.update(key.bytes());
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let c = Cipher::new(&key(1));
        let aad = secret_aad("default", "db-password");
        let a = c.seal(&aad, b"s3cret").unwrap();
        let b = c.seal(&aad, b"s3cret").unwrap();
        assert_eq!(a.nonce.len(), NONCE_LEN);
        assert_ne!(a.nonce, b.nonce, "nonces repeat");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.ciphertext.len(), 6 + 16);
        assert!(!a.ciphertext.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(&c.open(&aad, &a, "x").unwrap()[..], b"s3cret");
        assert_eq!(&c.open(&aad, &b, "x").unwrap()[..], b"s3cret");
    }

    #[test]
    fn wrong_key_fails() {
        let aad = secret_aad("default", "k");
        let sealed = Cipher::new(&key(1)).seal(&aad, b"value").unwrap();
        let e = Cipher::new(&key(2))
            .open(&aad, &sealed, "secret 'k'")
            .unwrap_err();
        assert!(matches!(e, VaultError::Tampered(_)));
        assert!(
            e.to_string().contains("secret 'k' cannot be decrypted"),
            "{e}"
        );
        assert_ne!(fingerprint(&key(1)), fingerprint(&key(2)));
        assert_eq!(fingerprint(&key(1)).len(), 16);
    }

    #[test]
    fn tampered_ciphertext_or_nonce_fails() {
        let c = Cipher::new(&key(3));
        let aad = secret_aad("ws", "k");
        let sealed = c.seal(&aad, b"value").unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(
                c.open(&aad, &bad, "k").is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        let mut bad = sealed.clone();
        bad.nonce[0] ^= 0x80;
        assert!(c.open(&aad, &bad, "k").is_err());
        let mut bad = sealed.clone();
        bad.nonce.pop();
        assert!(c.open(&aad, &bad, "k").is_err());
        let mut bad = sealed;
        bad.ciphertext.truncate(10);
        assert!(c.open(&aad, &bad, "k").is_err());
    }

    #[test]
    fn swapped_rows_fail() {
        let c = Cipher::new(&key(4));
        let a = c.seal(&secret_aad("team-a", "token"), b"aaa").unwrap();
        // the same ciphertext moved to another name or another workspace does not open
        assert!(c.open(&secret_aad("team-a", "other"), &a, "x").is_err());
        assert!(c.open(&secret_aad("team-b", "token"), &a, "x").is_err());
        assert!(c.open(KEY_CHECK_AAD, &a, "x").is_err());
        assert!(c.open(&secret_aad("team-a", "token"), &a, "x").is_ok());
    }

    #[test]
    fn debug_shows_no_material() {
        let c = Cipher::new(&key(5));
        let s = c.seal(b"", b"plain").unwrap();
        assert!(!format!("{s:?}").contains("plain"));
        assert!(format!("{c:?}").contains(c.fingerprint()));
    }
}
