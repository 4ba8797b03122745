//! The master key: 32 random bytes, from `ATRIUM_MASTER_KEY` (base64) or a key file (base64
//! text, or the 32 raw bytes). The default file `<data_dir>/master.key` is generated on first
//! start with mode 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{KeyInit, OsRng};
use zeroize::Zeroizing;

use super::VaultError;

/// Length of the master key in bytes.
pub const KEY_LEN: usize = 32;

/// Name of the default key file in the data directory.
pub const DEFAULT_KEY_FILE: &str = "master.key";

/// The master key. Wiped on drop; `Debug` shows nothing of it.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let k = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&k);
        Self::from_bytes(bytes)
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses base64 (standard or URL-safe alphabet, surrounding whitespace ignored); the
    /// error says why without repeating the input.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let decoded = Zeroizing::new(
            STANDARD
                .decode(t)
                .or_else(|_| URL_SAFE.decode(t))
                .map_err(|_| "it is not valid base64".to_string())?,
        );
        Self::from_slice(&decoded).ok_or_else(|| {
            format!(
                "it decodes to {} bytes, a master key is {KEY_LEN} bytes",
                decoded.len()
            )
        })
    }

    fn from_slice(s: &[u8]) -> Option<Self> {
        let bytes: [u8; KEY_LEN] = s.try_into().ok()?;
        Some(Self::from_bytes(bytes))
    }

    /// The key as base64 text (what key files hold).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// `ATRIUM_MASTER_KEY`: base64 of the key.
    Env(Zeroizing<String>),
    /// A key file; generated when missing and the database holds no secrets yet.
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env(_) => f.write_str("Env(<redacted>)"),
            KeySource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

impl KeySource {
    /// The default: `master.key` in the data directory.
    pub fn default_in(data_dir: &Path) -> Self {
        KeySource::File(data_dir.join(DEFAULT_KEY_FILE))
    }

    /// Where the key came from, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env(_) => "ATRIUM_MASTER_KEY".into(),
            KeySource::File(p) => format!("key file {}", p.display()),
        }
    }
}

/// Reads a key file; `Ok(None)` when it does not exist.
pub fn read_key_file(path: &Path) -> Result<Option<MasterKey>, VaultError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(VaultError::KeyIo {
                path: path.into(),
                source,
            });
        }
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the master key file can be read by other users; restrict it with chmod 600"
        );
    }
    if bytes.len() == KEY_LEN {
        return Ok(MasterKey::from_slice(&bytes));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::KeyFile {
        path: path.into(),
        reason: format!(
            "it holds {} bytes that are neither a {KEY_LEN}-byte raw key nor base64 text",
            bytes.len()
        ),
    })?;
    MasterKey::from_base64(text)
        .map(Some)
        .map_err(|reason| VaultError::KeyFile {
            path: path.into(),
            reason,
        })
}

/// Generates a key and writes it to a new file (mode 0600, base64 text); if another process
/// created the file first, its key is used.
pub fn create_key_file(path: &Path) -> Result<MasterKey, VaultError> {
    let io = |source| VaultError::KeyIo {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let key = MasterKey::generate();
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read_key_file(path)?.ok_or_else(|| VaultError::KeyFile {
                path: path.into(),
                reason: "it vanished while being created".into(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let text = key.to_base64();
    f.write_all(text.as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keys_parse_and_bad_ones_are_precise() {
        let k = MasterKey::generate();
        let text = k.to_base64();
        let back = MasterKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.bytes(), k.bytes());
        let e = MasterKey::from_base64("not base64!!").unwrap_err();
        assert!(e.contains("not valid base64"), "{e}");
        let e = MasterKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(e.contains("16 bytes"), "{e}");
        assert!(!format!("{k:?}").contains(text.as_str()));
    }

    #[test]
    fn key_files_are_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        assert!(read_key_file(&path).unwrap().is_none());
        let k = create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().unwrap().bytes(), k.bytes());
        // a second creation keeps the first key
        assert_eq!(create_key_file(&path).unwrap().bytes(), k.bytes());
        // raw 32-byte files work too
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(read_key_file(&raw).unwrap().unwrap().bytes(), &[7u8; 32]);
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "short").unwrap();
        let e = read_key_file(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.key") && e.contains("not valid base64"),
            "{e}"
        );
    }
}
