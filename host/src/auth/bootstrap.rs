//! First start: create the admin user and hand its token to the operator through a file only
//! the owner can read, in the data directory (where the CLI on the same machine finds it).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Access;
use crate::workspace::{DomainError, DomainResult};

/// The bootstrap admin's name.
pub const ADMIN_USER: &str = "admin";
/// The file in the data directory that holds the bootstrap admin token.
pub const TOKEN_FILE: &str = "admin.token";

/// Creates the admin and its token file unless an admin exists; returns the file written.
pub async fn ensure_admin(access: &Access, data_dir: &Path) -> DomainResult<Option<PathBuf>> {
    let users = access.store().list_users().await?;
    if users.iter().any(|u| u.admin) {
        return Ok(None);
    }
    match access.create_user(ADMIN_USER, true).await {
        Ok(_) => {}
        // another host sharing the database got there first
        Err(DomainError::AlreadyExists(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    let t = access
        .create_token(ADMIN_USER, "bootstrap admin token", None, None)
        .await?;
    let path = data_dir.join(TOKEN_FILE);
    write_private(&path, &format!("{}\n", t.token))
        .map_err(|e| DomainError::Internal(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(path))
}

/// Recovery: gives the `admin` user (created as a server admin if missing) a new token and
/// writes it to the token file; refuses when `admin` exists but is not a server admin.
pub async fn reset_admin_token(access: &Access, data_dir: &Path) -> DomainResult<PathBuf> {
    match access.store().user(ADMIN_USER).await? {
        Some(u) if !u.admin => {
            return Err(DomainError::InvalidState(format!(
                "user '{ADMIN_USER}' exists but is not a server admin; refusing to give it a token"
            )));
        }
        Some(_) => {}
        None => {
            access.create_user(ADMIN_USER, true).await?;
        }
    }
    let t = access
        .create_token(
            ADMIN_USER,
            "admin token reset from the command line",
            None,
            None,
        )
        .await?;
    let path = data_dir.join(TOKEN_FILE);
    write_private(&path, &format!("{}\n", t.token))
        .map_err(|e| DomainError::Internal(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Writes a file readable and writable by its owner only (replacing any old one).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
