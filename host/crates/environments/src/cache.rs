//! The virtualenv cache of one machine: `<root>/<hash>` per definition, built once by uv under
//! a lock (in this process and across processes sharing the directory), ready when its marker
//! file exists; a build a crash interrupted is removed and made again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Definition, EnvError};

/// The file whose presence says a virtualenv is complete.
const READY: &str = ".atrium-ready";
/// How much of uv's output an error message quotes.
const ERROR_LINES: usize = 12;

/// A log sink for build output, one line at a time.
pub type LogFn<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A materialised environment.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The virtualenv's directory (`VIRTUAL_ENV`).
    pub dir: PathBuf,
    /// Its `bin/` directory, to put first on `PATH`.
    pub bin: PathBuf,
    /// Whether it was already built (a cache hit).
    pub hit: bool,
    /// How long finding (or building) it took.
    pub elapsed: Duration,
}

/// A machine's cache of environments.
pub struct Cache {
    root: PathBuf,
    uv: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Cache {
    /// A cache under `root` (created if missing), building with the `uv` binary at `uv`.
    pub fn new(root: impl Into<PathBuf>, uv: impl Into<PathBuf>) -> Result<Self, EnvError> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| EnvError::Io(format!("cannot create {}: {e}", root.display())))?;
        Ok(Self {
            root,
            uv: uv.into(),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The directory of a definition's virtualenv (whether built or not).
    pub fn dir_of(&self, def: &Definition) -> PathBuf {
        self.root.join(&def.hash()[..32])
    }

    /// The definition's virtualenv, built first when missing. Concurrent callers for the same
    /// definition build it once; the others wait and get it as a hit. uv's output goes to
    /// `log`; `cancel` stops a build (uv is killed and the half-built directory removed).
    pub async fn ensure(
        &self,
        def: &Definition,
        log: LogFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<Ready, EnvError> {
        let started = Instant::now();
        let dir = self.dir_of(def);
        let ready = |hit| Ready {
            bin: dir.join("bin"),
            dir: dir.clone(),
            hit,
            elapsed: started.elapsed(),
        };
        if dir.join(READY).is_file() {
            return Ok(ready(true));
        }
        let key = def.hash();
        let local = {
            let mut locks = self.locks.lock().expect("environment locks");
            locks.entry(key.clone()).or_default().clone()
        };
        let _local = local.lock().await;
        let lock_path = self.root.join(format!("{}.lock", &key[..32]));
        let _file = FileLock::acquire(lock_path).await?;
        if dir.join(READY).is_file() {
            log("environment built by another job meanwhile");
            return Ok(ready(true));
        }
        let result = self.build(def, &dir, log, cancel).await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        result?;
        Ok(ready(false))
    }

    async fn build(
        &self,
        def: &Definition,
        dir: &Path,
        log: LogFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(), EnvError> {
        if dir.exists() {
            log("removing an environment build that did not finish");
            tokio::fs::remove_dir_all(dir)
                .await
                .map_err(|e| EnvError::Io(format!("cannot remove {}: {e}", dir.display())))?;
        }
        let mut venv = vec!["venv".to_string(), "--no-config".into()];
        if let Some(p) = &def.python {
            venv.extend(["--python".into(), p.clone()]);
        }
        venv.push(dir.display().to_string());
        self.uv_step("creating the virtualenv", &venv, log, cancel)
            .await?;
        if !def.requirements.is_empty() {
            let reqs = dir.join("atrium-requirements.txt");
            let mut text = def.requirements.join("\n");
            text.push('\n');
            tokio::fs::write(&reqs, text)
                .await
                .map_err(|e| EnvError::Io(format!("cannot write {}: {e}", reqs.display())))?;
            let install = vec![
                "pip".to_string(),
                "install".into(),
                "--no-config".into(),
                "--python".into(),
                dir.join("bin/python").display().to_string(),
                "-r".into(),
                reqs.display().to_string(),
            ];
            self.uv_step("installing the requirements", &install, log, cancel)
                .await?;
        }
        let marker = serde_json::to_string(def).map_err(|e| EnvError::Io(e.to_string()))?;
        tokio::fs::write(dir.join(READY), marker)
            .await
            .map_err(|e| EnvError::Io(format!("cannot mark {} ready: {e}", dir.display())))?;
        Ok(())
    }

    /// Runs one uv command, its output lines into `log`; fails with uv's last lines.
    async fn uv_step(
        &self,
        step: &'static str,
        args: &[String],
        log: LogFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(), EnvError> {
        log(&format!("$ uv {}", args.join(" ")));
        let mut cmd = tokio::process::Command::new(&self.uv);
        cmd.args(args)
            .current_dir(&self.root)
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_NO_PROGRESS", "1")
            .env("NO_COLOR", "1")
            .env_remove("VIRTUAL_ENV")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("UV_CACHE_DIR").is_none() {
            cmd.env("UV_CACHE_DIR", self.root.join(".uv-cache"));
        }
        let mut child = cmd.spawn().map_err(|e| {
            EnvError::UvMissing(format!("cannot run uv at {}: {e}", self.uv.display()))
        })?;
        let mut tail = std::collections::VecDeque::new();
        let mut take = |l: String| {
            log(&l);
            tail.push_back(l);
            if tail.len() > ERROR_LINES {
                tail.pop_front();
            }
        };
        let mut pumps = Vec::new();
        let outs: [Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as _),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for out in outs.into_iter().flatten() {
            let tx = tx.clone();
            pumps.push(tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                line = rx.recv() => {
                    if let Some(l) = line {
                        take(l);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if cancel.load(Ordering::Relaxed) {
                let _ = child.kill().await;
                return Err(EnvError::Canceled);
            }
        };
        for p in pumps {
            let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
        }
        while let Ok(l) = rx.try_recv() {
            take(l);
        }
        let status = status.map_err(|e| EnvError::Io(format!("cannot wait for uv: {e}")))?;
        if status.success() {
            return Ok(());
        }
        let message = tail
            .iter()
            .map(|l| l.trim_end())
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Err(EnvError::Build {
            step,
            message: if message.is_empty() {
                format!("uv exited with {status}")
            } else {
                message
            },
        })
    }
}

/// An exclusive `flock(2)` on a file, released when dropped.
struct FileLock {
    _held: std::fs::File,
}

impl FileLock {
    async fn acquire(path: PathBuf) -> Result<Self, EnvError> {
        tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| EnvError::Io(format!("cannot open {}: {e}", path.display())))?;
            // SAFETY: flock(2) on a descriptor this function owns; no memory is touched.
            let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if rc != 0 {
                return Err(EnvError::Io(format!(
                    "cannot lock {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                )));
            }
            Ok(Self { _held: f })
        })
        .await
        .map_err(|e| EnvError::Io(e.to_string()))?
    }
}

/// Finds uv: `explicit` when given, else `uv` on `PATH`, else the one `scripts/setup.sh`
/// installs (`.tools/uv/bin/uv` in the current directory or in the checkout the running
/// binary was built in).
pub fn find_uv(explicit: Option<&Path>) -> Result<PathBuf, EnvError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
        } else {
            Err(EnvError::UvMissing(format!(
                "uv is not at {} (the configured path)",
                p.display()
            )))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let c = d.join("uv");
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    let mut candidates = vec![PathBuf::from(".tools/uv/bin/uv")];
    if let Ok(exe) = std::env::current_exe() {
        // <checkout>/target/{release,debug}/atrium (or .../deps/<test binary>)
        for up in exe.ancestors().skip(1).take(4) {
            candidates.push(up.join(".tools/uv/bin/uv"));
        }
    }
    // absolute: uv runs with the cache directory as its working directory
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .map(|c| std::fs::canonicalize(&c).unwrap_or(c))
        .ok_or_else(|| {
            EnvError::UvMissing(
                "uv was not found (on PATH or in .tools/uv); run scripts/setup.sh, or set ATRIUM_UV to its path".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> Cache {
        Cache::new(
            dir.join("envs"),
            find_uv(None).expect("uv (scripts/setup.sh installs it)"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn builds_once_then_hits_and_concurrent_callers_share_one_build() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path());
        let def = Definition::new(None, vec![]).unwrap();
        let lines = Mutex::new(Vec::<String>::new());
        let log = |l: &str| lines.lock().unwrap().push(l.to_string());
        let no = AtomicBool::new(false);
        let (a, b) = tokio::join!(c.ensure(&def, &log, &no), c.ensure(&def, &log, &no));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            [a.hit, b.hit].iter().filter(|h| !**h).count(),
            1,
            "built once"
        );
        assert!(a.bin.join("python").exists());
        let creates = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("$ uv venv"))
            .count();
        assert_eq!(creates, 1);
        let again = c.ensure(&def, &log, &no).await.unwrap();
        assert!(again.hit);
        assert!(
            again.elapsed < Duration::from_millis(100),
            "{:?}",
            again.elapsed
        );
        // a build a crash left without its marker is made again
        std::fs::remove_file(again.dir.join(READY)).unwrap();
        assert!(!c.ensure(&def, &log, &no).await.unwrap().hit);
    }

    #[tokio::test]
    async fn a_python_nobody_has_fails_with_uvs_message_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path());
        let def = Definition::new(Some("==2.1".into()), vec![]).unwrap();
        let no = AtomicBool::new(false);
        let e = c.ensure(&def, &|_| {}, &no).await.unwrap_err().to_string();
        assert!(e.starts_with("creating the virtualenv failed"), "{e}");
        assert!(e.contains("2.1"), "{e}");
        assert!(!c.dir_of(&def).exists());
    }

    #[test]
    fn uv_is_found_as_an_absolute_path() {
        assert!(find_uv(None).unwrap().is_absolute());
        let rel = Path::new("../../../.tools/uv/bin/uv");
        if rel.is_file() {
            assert!(find_uv(Some(rel)).unwrap().is_absolute());
        }
    }

    #[test]
    fn a_configured_uv_must_exist() {
        let e = find_uv(Some(Path::new("/nonexistent/uv")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/uv"), "{e}");
    }
}
