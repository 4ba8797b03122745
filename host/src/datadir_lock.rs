//! One server per embedded data directory: an exclusive `flock` on `DATA_DIR/atrium.lock`,
//! held for the life of the process and dropped by the kernel when it dies (even by `kill -9`).
//!
//! A second `atrium serve` on the same directory would otherwise "recover" the first one's
//! running jobs (fail them as interrupted by a host restart) while the first still runs them.
//! The lock is taken when the metadata store is SQLite; with PostgreSQL several hosts share the
//! database by design and coordinate through it, so no lock is taken.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "atrium.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "data directory {} is in use by another atrium server ({holder}; lock file {}): \
         stop that server first, or give this one another --data-dir",
        dir.display(),
        path.display()
    )]
    Held {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// `PID 1234`, or why the PID is not known.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock data directory {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The held lock (released when dropped or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
}

impl DataDirLock {
    /// Takes the lock on `dir` without waiting, and writes this process's id into the file.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Rust opens files close-on-exec: job processes the server starts do not inherit the
        // descriptor, so they cannot keep the lock alive after the server dies.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("PID {pid}"),
                    Err(_) => "PID not yet recorded: it is starting".to_string(),
                };
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    path,
                    holder,
                });
            }
            return Err(io(e));
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { file })
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // still locked here: nobody else can have written their PID yet
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open in this process
        // conflicts like another process would
        let e = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("PID {}", std::process::id())) && e.contains("in use"),
            "{e}"
        );
        drop(held);
        let again = DataDirLock::acquire(dir.path()).unwrap();
        drop(again);
    }
}
