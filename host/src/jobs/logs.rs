//! Job logs: one append-only file per job under the data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::workspace::{DomainError, DomainResult};

/// Where job logs live.
#[derive(Clone)]
pub struct JobLogs {
    dir: PathBuf,
}

impl JobLogs {
    /// Logs under `data_dir/jobs`.
    pub fn new(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory holding the logs and working directories.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of a job.
    pub fn path(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.log"))
    }

    /// A working directory for a job's files.
    pub fn work_dir(&self, job: &str) -> PathBuf {
        self.dir.join(job)
    }

    /// Appends a line.
    pub fn line(&self, job: &str, text: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(job))
        {
            let _ = writeln!(f, "{text}");
        }
    }

    /// Appends raw bytes.
    pub fn append(&self, job: &str, bytes: &[u8]) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(job))
        {
            let _ = f.write_all(bytes);
        }
    }

    /// Bytes from `offset` (empty when the log does not exist yet).
    pub fn read_from(&self, job: &str, offset: u64) -> DomainResult<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::File::open(self.path(job)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DomainError::from(e)),
        };
        f.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The last `n` lines.
    pub fn tail(&self, job: &str, n: usize) -> DomainResult<String> {
        let bytes = self.read_from(job, 0)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
    }
}

impl From<std::io::Error> for DomainError {
    fn from(e: std::io::Error) -> Self {
        tracing::error!(error = %e, "i/o error");
        DomainError::Internal(format!("i/o: {e}"))
    }
}
