//! Artifacts of runs and of MLflow 3 logged models: streamed into the workspace's datastore,
//! indexed by path under their owner.

use std::io::Read;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::Service;
use crate::datastore::{BlobWriter, DatastoreError};
use crate::store::{ArtifactOwner, ArtifactRow};
use crate::workspace::{ArtifactFile, DomainError, DomainResult, Workspace, validate};

/// A stored artifact, as reported after upload.
pub type ArtifactUpload = ArtifactFile;

/// Whose artifacts a call addresses: a run or a logged model, by public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactScope<'a> {
    /// A run (32 hex digits).
    Run(&'a str),
    /// A logged model (`m-` + 32 hex digits).
    Model(&'a str),
}

impl<'a> From<&'a str> for ArtifactScope<'a> {
    fn from(run_id: &'a str) -> Self {
        Self::Run(run_id)
    }
}

impl<'a> From<&'a String> for ArtifactScope<'a> {
    fn from(run_id: &'a String) -> Self {
        Self::Run(run_id)
    }
}

/// An artifact owner looked up: its index key and experiment.
struct Owner {
    key: ArtifactOwner,
    experiment_id: i64,
}

/// Most bytes of a failed upload read and discarded before answering.
const DRAIN_LIMIT: usize = 64 << 20;

fn task_err(e: tokio::task::JoinError) -> DomainError {
    DomainError::Internal(format!("storage task failed: {e}"))
}

impl Service {
    /// Looks up an artifact owner; `writable` asks for one that may change (not deleted).
    async fn owner(
        &self,
        ws: &Workspace,
        scope: ArtifactScope<'_>,
        writable: bool,
    ) -> DomainResult<Owner> {
        match scope {
            ArtifactScope::Run(id) => {
                let run = if writable {
                    self.store.active_run(ws.id, id).await?
                } else {
                    self.store.run_info(ws.id, id).await?
                };
                Ok(Owner {
                    key: ArtifactOwner::Run(run.key),
                    experiment_id: run.experiment_id,
                })
            }
            ArtifactScope::Model(id) => {
                crate::workspace::logged_model::check_model_id(id)?;
                let m = self.store.logged_model(ws.id, id, !writable).await?;
                Ok(Owner {
                    key: ArtifactOwner::Model(m.key),
                    experiment_id: m.experiment_id,
                })
            }
        }
    }

    /// Streams `body` into a new blob of `backend` and returns its writer, unfinished (the
    /// caller finishes it under the GC read lock and references it). On an interrupted body
    /// the temporary object is discarded and the error names `what`.
    pub(crate) async fn stream_blob<S, E>(
        &self,
        backend: std::sync::Arc<dyn crate::datastore::BlobStore>,
        body: S,
        what: &str,
    ) -> DomainResult<Box<dyn BlobWriter>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let path = what;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let writer_task = tokio::task::spawn_blocking(move || {
            let mut w = backend.writer()?;
            while let Some(chunk) = rx.blocking_recv() {
                w.write(&chunk)?;
            }
            Ok::<Box<dyn BlobWriter>, DatastoreError>(w)
        });
        let mut body = body;
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        // The writer failed (its error is reported below). Read the rest of a
                        // moderate body so the client receives that answer instead of a reset
                        // connection in the middle of its upload.
                        let mut left = DRAIN_LIMIT;
                        while let Some(Ok(c)) = body.next().await {
                            left = left.saturating_sub(c.len());
                            if left == 0 {
                                break;
                            }
                        }
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        drop(tx);
        let writer = writer_task.await.map_err(task_err)??;
        if let Some(e) = failure {
            drop(writer); // discards the temporary object
            return Err(DomainError::invalid(format!(
                "upload of '{path}' was interrupted: {e}"
            )));
        }
        Ok(writer)
    }

    /// Streams `body` into the owner's artifact `path`. Nothing becomes visible unless the whole
    /// body arrived and was hashed; an interrupted upload leaves no trace.
    pub async fn upload_artifact<'a, S, E>(
        &self,
        ws: &Workspace,
        scope: impl Into<ArtifactScope<'a>>,
        path: &str,
        body: S,
    ) -> DomainResult<ArtifactUpload>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        validate::artifact_path(path)?;
        let owner = self.owner(ws, scope.into(), true).await?;
        let ds = self
            .store
            .artifact_datastore(ws.id, owner.experiment_id)
            .await?;
        let backend = self.backend(&ds).await?;
        if !self
            .store
            .artifacts_under(owner.key, path)
            .await?
            .is_empty()
        {
            return Err(DomainError::InvalidState(format!(
                "'{path}' is a directory of artifacts; it cannot become a file"
            )));
        }
        for (i, _) in path.match_indices('/') {
            if self.store.artifact(owner.key, &path[..i]).await?.is_some() {
                return Err(DomainError::InvalidState(format!(
                    "'{}' is an artifact file; it cannot become a directory",
                    &path[..i]
                )));
            }
        }
        let writer = self.stream_blob(backend, body, path).await?;
        // Finish and reference under the GC read lock so a concurrent GC cannot free the blob
        // between it becoming visible and the row pointing at it.
        let _guard = self.gc_lock.read().await;
        let meta = self.finish_blob(ds.id, writer).await?;
        let row = ArtifactRow {
            path: path.to_string(),
            datastore_id: ds.id,
            digest: meta.digest,
            size: meta.size as i64,
        };
        self.store.put_artifact(owner.key, &row).await?;
        Ok(ArtifactFile {
            path: row.path,
            is_dir: false,
            size: Some(meta.size),
            digest: Some(row.digest),
        })
    }

    /// Opens the artifact file at `path` for reading.
    pub async fn open_artifact<'a>(
        &self,
        ws: &Workspace,
        scope: impl Into<ArtifactScope<'a>>,
        path: &str,
    ) -> DomainResult<(ArtifactFile, Box<dyn Read + Send>)> {
        let (file, reader, _) = self.open_artifact_range(ws, scope, path, None).await?;
        Ok((file, reader))
    }

    /// Opens the artifact file at `path` for reading, only the bytes of `range` when one is
    /// given (read from the datastore at that offset); returns the file, the reader and the
    /// range resolved against the file's size (first byte, last byte).
    pub async fn open_artifact_range<'a>(
        &self,
        ws: &Workspace,
        scope: impl Into<ArtifactScope<'a>>,
        path: &str,
        range: Option<ByteRange>,
    ) -> DomainResult<(ArtifactFile, Box<dyn Read + Send>, Option<(u64, u64)>)> {
        validate::artifact_path(path)?;
        let scope = scope.into();
        let owner = self.owner(ws, scope, false).await?;
        let Some(row) = self.store.artifact(owner.key, path).await? else {
            if !self
                .store
                .artifacts_under(owner.key, path)
                .await?
                .is_empty()
            {
                return Err(DomainError::invalid(format!(
                    "'{path}' is a directory; list it instead"
                )));
            }
            return Err(DomainError::NotFound(match scope {
                ArtifactScope::Run(id) => format!("run '{id}' has no artifact '{path}'"),
                ArtifactScope::Model(id) => format!("logged model '{id}' has no artifact '{path}'"),
            }));
        };
        let size = row.size as u64;
        let span = range.map(|r| r.resolve(size)).transpose()?;
        let ds = self.store.datastore(row.datastore_id).await?;
        let backend = self.backend(&ds).await?;
        let digest = row.digest.clone();
        // Read the first chunk before answering, so that a failing datastore gives a precise
        // error status rather than a 200 with a cut body.
        let reader = tokio::task::spawn_blocking(move || {
            let mut reader: Box<dyn Read + Send> = match span {
                Some((first, last)) => {
                    Box::new(backend.open_at(&digest, first)?.take(last - first + 1))
                }
                None => backend.open(&digest)?,
            };
            let mut first = vec![0u8; 256 * 1024];
            let mut n = 0;
            while n < first.len() {
                match reader.read(&mut first[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(crate::datastore::DatastoreError::Plugin(e.to_string())),
                }
            }
            first.truncate(n);
            Ok(Box::new(std::io::Cursor::new(first).chain(reader)) as Box<dyn Read + Send>)
        })
        .await
        .map_err(task_err)??;
        let file = ArtifactFile {
            path: row.path,
            is_dir: false,
            size: Some(row.size as u64),
            digest: Some(row.digest),
        };
        Ok((file, reader, span))
    }

    /// The immediate children of an artifact directory (empty `dir`: the run's root).
    /// A path naming a file, or nothing, lists as empty, as MLflow does.
    pub async fn list_artifacts<'a>(
        &self,
        ws: &Workspace,
        scope: impl Into<ArtifactScope<'a>>,
        dir: &str,
    ) -> DomainResult<Vec<ArtifactFile>> {
        let dir = dir.trim_matches('/');
        if !dir.is_empty() {
            validate::artifact_path(dir)?;
        }
        let owner = self.owner(ws, scope.into(), false).await?;
        let rows = self.store.artifacts_under(owner.key, dir).await?;
        Ok(ArtifactFile::one_level(
            dir,
            rows.into_iter().map(|r| (r.path, r.size as u64, r.digest)),
        ))
    }

    /// Deletes an artifact file or directory; bytes are freed by the next GC.
    pub async fn delete_artifact<'a>(
        &self,
        ws: &Workspace,
        scope: impl Into<ArtifactScope<'a>>,
        path: &str,
    ) -> DomainResult<u64> {
        validate::artifact_path(path)?;
        let owner = self.owner(ws, scope.into(), true).await?;
        self.store.delete_artifacts(owner.key, path).await
    }
}

/// A byte range of an HTTP `Range` header (one range, `bytes=` unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=A-`: from A to the end.
    From(u64),
    /// `bytes=A-B`: A to B inclusive.
    FromTo(u64, u64),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header value; several ranges or another unit are refused.
    pub fn parse(v: &str) -> DomainResult<Self> {
        let bad = || {
            DomainError::invalid(format!(
                "unsupported Range '{v}': give one range as bytes=FIRST-LAST, bytes=FIRST- or bytes=-COUNT"
            ))
        };
        let spec = v.trim().strip_prefix("bytes=").ok_or_else(bad)?;
        if spec.contains(',') {
            return Err(bad());
        }
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, false) => Ok(Self::Suffix(num(b)?)),
            (false, true) => Ok(Self::From(num(a)?)),
            (false, false) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad());
                }
                Ok(Self::FromTo(a, b))
            }
            (true, true) => Err(bad()),
        }
    }

    /// The first and last byte of this range in a file of `size` bytes.
    pub fn resolve(self, size: u64) -> DomainResult<(u64, u64)> {
        let span = match self {
            Self::From(a) if a < size => Some((a, size - 1)),
            Self::FromTo(a, b) if a < size => Some((a, b.min(size - 1))),
            Self::Suffix(n) if n > 0 && size > 0 => Some((size - n.min(size), size - 1)),
            _ => None,
        };
        span.ok_or_else(|| {
            DomainError::RangeNotSatisfiable(format!(
                "range not satisfiable: the file has {size} bytes"
            ))
        })
    }
}

#[cfg(test)]
mod range_tests {
    use super::ByteRange;

    #[test]
    fn ranges_parse_and_resolve() {
        assert_eq!(
            ByteRange::parse("bytes=0-9").unwrap().resolve(100).unwrap(),
            (0, 9)
        );
        assert_eq!(
            ByteRange::parse("bytes=90-").unwrap().resolve(100).unwrap(),
            (90, 99)
        );
        assert_eq!(
            ByteRange::parse("bytes=-10").unwrap().resolve(100).unwrap(),
            (90, 99)
        );
        assert_eq!(
            ByteRange::parse("bytes=-500")
                .unwrap()
                .resolve(100)
                .unwrap(),
            (0, 99)
        );
        assert_eq!(
            ByteRange::parse("bytes=50-500")
                .unwrap()
                .resolve(100)
                .unwrap(),
            (50, 99)
        );
        assert!(
            ByteRange::parse("bytes=100-")
                .unwrap()
                .resolve(100)
                .is_err()
        );
        for bad in [
            "bytes=5-1",
            "items=0-1",
            "bytes=0-1,4-5",
            "bytes=-",
            "bytes=a-b",
        ] {
            assert!(ByteRange::parse(bad).is_err(), "{bad}");
        }
    }
}
