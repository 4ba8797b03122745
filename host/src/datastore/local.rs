//! The local-directory datastore, confined to its root through cap-std.
//!
//! Layout: `sha256/ab/<digest>` for blobs, `tmp/<uuid>` for writes in progress.

use std::io::{Read, Write};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};
use sha2::{Digest, Sha256};

use super::{BlobMeta, BlobStore, BlobWriter, DatastoreError};

/// A blob store in one directory.
pub struct LocalBlobStore {
    root: Dir,
}

fn blob_path(digest: &str) -> Result<String, DatastoreError> {
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(DatastoreError::Missing(digest.to_string()));
    }
    Ok(format!("sha256/{}/{}", &digest[..2], digest))
}

impl LocalBlobStore {
    /// Opens (creating) the store rooted at `path`.
    pub fn open(path: &Path) -> Result<Self, DatastoreError> {
        std::fs::create_dir_all(path)?;
        let root = Dir::open_ambient_dir(path, ambient_authority())?;
        root.create_dir_all("sha256")?;
        root.create_dir_all("tmp")?;
        Ok(Self { root })
    }
}

struct LocalWriter {
    root: Dir,
    tmp_name: String,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter for LocalWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<(), DatastoreError> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file
            .as_mut()
            .expect("open until finished")
            .write_all(chunk)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<BlobMeta, DatastoreError> {
        let file = self.file.take().expect("finish once");
        file.sync_all()?;
        drop(file);
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let path = blob_path(&digest)?;
        if self.root.metadata(&path).is_ok() {
            // identical content is already stored: keep one copy
            self.root.remove_file(&self.tmp_name)?;
        } else {
            self.root
                .create_dir_all(format!("sha256/{}", &digest[..2]))?;
            self.root.rename(&self.tmp_name, &self.root, &path)?;
        }
        self.tmp_name.clear();
        Ok(BlobMeta {
            digest,
            size: self.size,
        })
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.tmp_name.is_empty() {
            self.file.take();
            let _ = self.root.remove_file(&self.tmp_name);
        }
    }
}

impl BlobStore for LocalBlobStore {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, DatastoreError> {
        let tmp_name = format!("tmp/{}", uuid::Uuid::new_v4().simple());
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        let file = self.root.open_with(&tmp_name, &opts)?;
        Ok(Box::new(LocalWriter {
            root: self.root.try_clone()?,
            tmp_name,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        }))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, DatastoreError> {
        match self.root.open(blob_path(digest)?) {
            Ok(f) => Ok(Box::new(f.into_std())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DatastoreError::Missing(digest.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn stat(&self, digest: &str) -> Result<Option<u64>, DatastoreError> {
        match self.root.metadata(blob_path(digest)?) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, digest: &str) -> Result<u64, DatastoreError> {
        let path = blob_path(digest)?;
        let size = match self.root.metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        self.root.remove_file(&path)?;
        Ok(size)
    }

    fn digests(&self) -> Result<Vec<String>, DatastoreError> {
        let mut out = Vec::new();
        for shard in self.root.read_dir("sha256")? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            let name = shard.file_name().to_string_lossy().into_owned();
            for blob in self.root.read_dir(format!("sha256/{name}"))? {
                out.push(blob?.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    fn clean_temporary(&self) -> Result<usize, DatastoreError> {
        let mut n = 0;
        for entry in self.root.read_dir("tmp")? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            self.root.remove_file(format!("tmp/{name}"))?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_content_is_stored_once_and_aborted_writes_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        let a = w.finish().unwrap();
        let mut w = store.writer().unwrap();
        w.write(b"hello world").unwrap();
        let b = w.finish().unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.digest,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(store.digests().unwrap(), vec![a.digest.clone()]);
        let mut s = String::new();
        store
            .open(&a.digest)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello world");

        let mut w = store.writer().unwrap();
        w.write(b"partial").unwrap();
        drop(w);
        assert_eq!(store.clean_temporary().unwrap(), 0);
        assert_eq!(store.digests().unwrap().len(), 1);
        assert_eq!(store.delete(&a.digest).unwrap(), 11);
        assert!(matches!(
            store.open(&a.digest),
            Err(DatastoreError::Missing(_))
        ));
        assert!(matches!(
            store.open("../../etc/passwd"),
            Err(DatastoreError::Missing(_))
        ));
    }
}
