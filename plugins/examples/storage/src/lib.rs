//! A storage plugin: objects are files in the directory the operator grants at `/data`.
//! Writes go to `/data/.tmp/<upload-id>` and are renamed into place by `finish`.

use std::cell::RefCell;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};

use atrium_sdk::storage::atrium::plugin::types::PluginError;
use atrium_sdk::storage::exports::atrium::plugin::storage::{Guest, GuestWriter, ObjectMeta, Writer};

fn path(name: &str) -> Result<String, PluginError> {
    if name.is_empty() || name.starts_with('/') || name.split('/').any(|s| s.is_empty() || s == ".." || s == "." || s == ".tmp") {
        return Err(PluginError::InvalidArgument(format!("invalid object name '{name}'")));
    }
    Ok(format!("/data/{name}"))
}

fn io(e: std::io::Error) -> PluginError {
    match e.kind() {
        std::io::ErrorKind::NotFound => PluginError::NotFound(e.to_string()),
        _ => PluginError::Internal(e.to_string()),
    }
}

fn temp(upload_id: &str) -> Result<String, PluginError> {
    if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(PluginError::InvalidArgument(format!("invalid upload id '{upload_id}'")));
    }
    Ok(format!("/data/.tmp/{upload_id}"))
}

pub struct FileWriter {
    tmp: String,
    file: RefCell<Option<fs::File>>,
    size: RefCell<u64>,
}

impl GuestWriter for FileWriter {
    fn write(&self, chunk: Vec<u8>) -> Result<(), PluginError> {
        let mut f = self.file.borrow_mut();
        f.as_mut().ok_or_else(|| PluginError::Internal("finished".into()))?.write_all(&chunk).map_err(io)?;
        *self.size.borrow_mut() += chunk.len() as u64;
        Ok(())
    }

    fn finish(w: Writer, name: String) -> Result<ObjectMeta, PluginError> {
        let me: &FileWriter = w.get();
        let target = path(&name)?;
        let file = me.file.borrow_mut().take().ok_or_else(|| PluginError::Internal("finished".into()))?;
        file.sync_all().map_err(io)?;
        if let Some((dir, _)) = target.rsplit_once('/') {
            fs::create_dir_all(dir).map_err(io)?;
        }
        fs::rename(&me.tmp, &target).map_err(io)?;
        Ok(ObjectMeta { name, size: *me.size.borrow() })
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.file.get_mut().take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

pub struct Plugin;

impl Guest for Plugin {
    type Writer = FileWriter;

    fn put_writer(upload_id: String) -> Result<Writer, PluginError> {
        fs::create_dir_all("/data/.tmp").map_err(io)?;
        let tmp = temp(&upload_id)?;
        let file = fs::File::create(&tmp).map_err(io)?;
        Ok(Writer::new(FileWriter { tmp, file: RefCell::new(Some(file)), size: RefCell::new(0) }))
    }

    fn read(name: String, offset: u64, len: u32) -> Result<Vec<u8>, PluginError> {
        let mut f = fs::File::open(path(&name)?).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = Vec::with_capacity(len.min(1 << 20) as usize);
        f.take(u64::from(len.min(1 << 20))).read_to_end(&mut buf).map_err(io)?;
        Ok(buf)
    }

    fn stat(name: String) -> Result<Option<ObjectMeta>, PluginError> {
        match fs::metadata(path(&name)?) {
            Ok(m) => Ok(Some(ObjectMeta { name, size: m.len() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    fn delete(name: String) -> Result<(), PluginError> {
        match fs::remove_file(path(&name)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    fn list_objects(prefix: String, cursor: Option<String>, limit: u32) -> Result<(Vec<ObjectMeta>, Option<String>), PluginError> {
        fn walk(dir: &str, rel: &str, out: &mut Vec<ObjectMeta>) -> Result<(), PluginError> {
            let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if rel.is_empty() && name == ".tmp" {
                    continue;
                }
                let child = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                let meta = e.metadata().map_err(io)?;
                if meta.is_dir() {
                    walk(&format!("{dir}/{name}"), &child, out)?;
                } else {
                    out.push(ObjectMeta { name: child, size: meta.len() });
                }
            }
            Ok(())
        }
        let mut all = Vec::new();
        walk("/data", "", &mut all)?;
        all.retain(|o| o.name.starts_with(&prefix) && cursor.as_ref().is_none_or(|c| &o.name > c));
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let limit = limit.max(1) as usize;
        let next = (all.len() > limit).then(|| all[limit - 1].name.clone());
        all.truncate(limit);
        Ok((all, next))
    }

    fn clean_incomplete(upload_id: Option<String>) -> Result<u64, PluginError> {
        let mut n = 0;
        for e in fs::read_dir("/data/.tmp").into_iter().flatten().flatten() {
            if upload_id.as_ref().is_none_or(|id| e.file_name().to_string_lossy() == id.as_str()) && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

atrium_sdk::export_storage!(Plugin);
