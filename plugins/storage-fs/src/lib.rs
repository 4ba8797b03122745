//! `storage-fs`: a datastore whose objects are files under a directory the operator grants
//! (mounted at `/data`, or the `root` config value). Writes go to `.tmp/` and are renamed into
//! place on `finish`, so a reader never sees a partial object.
//!
//! Writes use the WASI descriptor API directly (`descriptor.write` of whole chunks): Rust's std
//! writes files through output streams, 4 KiB per host call, which is several times slower.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use atrium_sdk::storage::atrium::plugin::config;
use atrium_sdk::storage::atrium::plugin::types::PluginError;
use atrium_sdk::storage::exports::atrium::plugin::storage::{Guest, GuestWriter, ObjectMeta, Writer};
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

/// Largest chunk moved in one call.
const MAX_CHUNK: u32 = 1 << 20;
const TMP: &str = ".tmp";

fn root() -> PathBuf {
    PathBuf::from(config::get("root").unwrap_or_else(|| "/data".into()))
}

fn io_err(what: &str, name: &str, e: std::io::Error) -> PluginError {
    match e.kind() {
        std::io::ErrorKind::NotFound => PluginError::NotFound(format!("{what} '{name}': not found")),
        std::io::ErrorKind::PermissionDenied => PluginError::AccessDenied(format!("{what} '{name}': {e}")),
        _ => PluginError::Internal(format!("{what} '{name}': {e}")),
    }
}

/// Maps an object name to a path under the root; names are relative, `/`-separated, and may not
/// leave the root (the sandbox would refuse anyway; this gives a clear error first).
fn path_of(name: &str) -> Result<PathBuf, PluginError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|s| s.is_empty() || s == "." || s == ".." || s == TMP);
    if bad {
        return Err(PluginError::InvalidArgument(format!("invalid object name '{name}'")));
    }
    Ok(root().join(name))
}

/// Where an unfinished upload lives.
fn temp_path(upload_id: &str) -> Result<PathBuf, PluginError> {
    if upload_id.is_empty() || upload_id.len() > 128 || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(PluginError::InvalidArgument(format!("invalid upload id '{upload_id}'")));
    }
    Ok(root().join(TMP).join(upload_id))
}

/// The preopened directory holding the objects, and the object path relative to it.
fn dir_and_rel(path: &Path) -> Result<(Descriptor, String), PluginError> {
    let root = root();
    let rel = path
        .strip_prefix(&root)
        .map_err(|_| PluginError::Internal(format!("{} is outside {}", path.display(), root.display())))?
        .to_string_lossy()
        .into_owned();
    let root_str = root.to_string_lossy();
    let dir = get_directories()
        .into_iter()
        .find(|(_, p)| p.trim_end_matches('/') == root_str.trim_end_matches('/'))
        .map(|(d, _)| d)
        .ok_or_else(|| PluginError::AccessDenied(format!("no directory is granted at {root_str}")))?;
    Ok((dir, rel))
}

fn wasi_err(what: &str, name: &str, e: ErrorCode) -> PluginError {
    match e {
        ErrorCode::NoEntry => PluginError::NotFound(format!("{what} '{name}': not found")),
        ErrorCode::Access | ErrorCode::NotPermitted => PluginError::AccessDenied(format!("{what} '{name}': {e:?}")),
        other => PluginError::Internal(format!("{what} '{name}': {other:?}")),
    }
}

/// An object being written to a temporary file.
pub struct FsWriter {
    state: RefCell<Option<WriteState>>,
}

struct WriteState {
    dir: Descriptor,
    tmp: String,
    file: Descriptor,
    size: u64,
}

impl GuestWriter for FsWriter {
    fn write(&self, chunk: Vec<u8>) -> Result<(), PluginError> {
        if chunk.len() > MAX_CHUNK as usize {
            return Err(PluginError::InvalidArgument(format!("chunk of {} bytes exceeds 1 MiB", chunk.len())));
        }
        let mut state = self.state.borrow_mut();
        let st = state.as_mut().ok_or_else(|| PluginError::Internal("writer already finished".into()))?;
        let mut done = 0;
        while done < chunk.len() {
            let n = st.file.write(&chunk[done..], st.size + done as u64).map_err(|e| wasi_err("write", &st.tmp, e))?;
            done += n as usize;
        }
        st.size += chunk.len() as u64;
        Ok(())
    }

    fn finish(w: Writer, name: String) -> Result<ObjectMeta, PluginError> {
        let target = path_of(&name)?;
        let me: &FsWriter = w.get();
        let st = me.state.borrow_mut().take().ok_or_else(|| PluginError::Internal("writer already finished".into()))?;
        st.file.sync().map_err(|e| wasi_err("sync", &name, e))?;
        drop(st.file);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("create directory for", &name, e))?;
        }
        let (_, rel) = dir_and_rel(&target)?;
        st.dir.rename_at(&st.tmp, &st.dir, &rel).map_err(|e| wasi_err("rename into", &name, e))?;
        Ok(ObjectMeta { name, size: st.size })
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // not finished: discard the temporary file
        if let Some(st) = self.state.get_mut().take() {
            drop(st.file);
            let _ = st.dir.unlink_file_at(&st.tmp);
        }
    }
}

/// The plugin.
pub struct FsStorage;

fn walk(dir: &Path, rel: &str, out: &mut Vec<ObjectMeta>) -> Result<(), PluginError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", rel, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", rel, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if rel.is_empty() && name == TMP {
            continue;
        }
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let ft = entry.file_type().map_err(|e| io_err("list", &child, e))?;
        if ft.is_dir() {
            walk(&entry.path(), &child, out)?;
        } else if ft.is_file() {
            let size = entry.metadata().map_err(|e| io_err("stat", &child, e))?.len();
            out.push(ObjectMeta { name: child, size });
        }
    }
    Ok(())
}

impl Guest for FsStorage {
    type Writer = FsWriter;

    fn put_writer(upload_id: String) -> Result<Writer, PluginError> {
        fs::create_dir_all(root().join(TMP)).map_err(|e| io_err("create", TMP, e))?;
        let (dir, tmp) = dir_and_rel(&temp_path(&upload_id)?)?;
        let file = dir
            .open_at(PathFlags::empty(), &tmp, OpenFlags::CREATE | OpenFlags::EXCLUSIVE, DescriptorFlags::WRITE)
            .map_err(|e| wasi_err("create", &tmp, e))?;
        Ok(Writer::new(FsWriter { state: RefCell::new(Some(WriteState { dir, tmp, file, size: 0 })) }))
    }

    fn read(name: String, offset: u64, len: u32) -> Result<Vec<u8>, PluginError> {
        let len = len.min(MAX_CHUNK) as usize;
        let mut f = File::open(path_of(&name)?).map_err(|e| io_err("read", &name, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| io_err("seek", &name, e))?;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", &name, e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn stat(name: String) -> Result<Option<ObjectMeta>, PluginError> {
        match fs::metadata(path_of(&name)?) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta { name, size: m.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &name, e)),
        }
    }

    fn delete(name: String) -> Result<(), PluginError> {
        match fs::remove_file(path_of(&name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &name, e)),
        }
    }

    fn list_objects(prefix: String, cursor: Option<String>, limit: u32) -> Result<(Vec<ObjectMeta>, Option<String>), PluginError> {
        // walk only the directory the prefix names (e.g. "sha256/" walks sha256/)
        let (dir_rel, _) = prefix.rsplit_once('/').unwrap_or(("", ""));
        let start = if dir_rel.is_empty() { root() } else { path_of(dir_rel)? };
        let mut all = Vec::new();
        walk(&start, dir_rel, &mut all)?;
        all.retain(|o| o.name.starts_with(&prefix) && cursor.as_ref().is_none_or(|c| &o.name > c));
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let limit = limit.clamp(1, 10_000) as usize;
        let next = (all.len() > limit).then(|| all[limit - 1].name.clone());
        all.truncate(limit);
        Ok((all, next))
    }

    fn clean_incomplete(upload_id: Option<String>) -> Result<u64, PluginError> {
        if let Some(id) = upload_id {
            return Ok(u64::from(fs::remove_file(temp_path(&id)?).is_ok()));
        }
        let mut n = 0;
        if let Ok(entries) = fs::read_dir(root().join(TMP)) {
            for e in entries.flatten() {
                if fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

atrium_sdk::export_storage!(FsStorage);
