//! `storage-s3`: a datastore in a bucket of an S3-compatible store (AWS S3, SeaweedFS, MinIO,
//! ...), spoken to over wasi:http only: SigV4-signed, path-style URLs
//! (`{endpoint}/{bucket}/{key}`).
//!
//! Config: `endpoint` and `bucket` (required), `region` (us-east-1), `prefix` (a key prefix
//! inside the bucket), `access_key_secret` / `secret_key_secret` (the names of the secrets
//! holding the access key id and the secret key: s3-access-key / s3-secret-key), and
//! `part_size_mb` (8; 5 to 32).
//!
//! Objects up to one part are PUT whole at `finish`; larger ones stream out as a multipart
//! upload to `blobs/<upload-id>` (one part buffered at a time) and get a zero-byte index object
//! under their name (see [`store`]). A download is one streaming GET, kept open across the
//! sequential `read` calls of its instance. Every request is retried on transport failures,
//! 429 and 5xx with exponential backoff. The protocol ([`s3`]) and the datastore logic
//! ([`store`]) do no I/O of their own: this file connects them to wasi:http and wasi clocks.

pub mod s3;
pub mod store;

#[cfg(test)]
mod live_tests;

use std::cell::RefCell;

use atrium_sdk::http::{SendError, StreamingResponse};
use atrium_sdk::storage::atrium::plugin::{config, secrets, types::PluginError};
use atrium_sdk::storage::exports::atrium::plugin::storage::{
    Guest, GuestWriter, ObjectMeta, Writer,
};
use wasip2::clocks::{monotonic_clock, wall_clock};

use s3::Settings;
use store::{Client, ReadState, Upload};

/// Requests over wasi:http, waits and time over wasi clocks, warnings to the host's log.
pub struct Wasi;

impl store::Body for StreamingResponse {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, SendError> {
        StreamingResponse::read(self, max)
    }
}

impl store::Transport for Wasi {
    type Body = StreamingResponse;

    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Result<store::Reply<StreamingResponse>, SendError> {
        let hs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut r = atrium_sdk::http::send(method, url, &hs, body, timeout_ms)?;
        Ok(store::Reply {
            status: r.status,
            headers: std::mem::take(&mut r.headers),
            body: r,
        })
    }

    fn sleep_ms(&self, ms: u64) {
        monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    }

    fn unix_time(&self) -> u64 {
        wall_clock::now().seconds
    }

    fn monotonic_ms(&self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }

    fn warn(&self, msg: &str) {
        atrium_sdk::log!(atrium_sdk::storage, Warn, "{msg}");
    }
}

thread_local! {
    /// The checked configuration of this instance (instances are per operation).
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
    /// The download of this instance: its object and open GET.
    static DOWNLOAD: RefCell<Option<ReadState<StreamingResponse>>> = const { RefCell::new(None) };
}

/// A client for this call, with the configuration read once per instance.
fn client() -> Result<Client<Wasi>, PluginError> {
    let s = SETTINGS.with_borrow_mut(|cached| -> Result<Settings, PluginError> {
        if let Some(s) = cached {
            return Ok(s.clone());
        }
        let s = Settings::load(config::get, secrets::get)?;
        *cached = Some(s.clone());
        Ok(s)
    })?;
    Ok(Client::new(s, Wasi))
}

/// An object being written; dropping it unfinished aborts its multipart upload.
pub struct S3Writer {
    inner: RefCell<Option<(Client<Wasi>, Upload)>>,
}

impl GuestWriter for S3Writer {
    fn write(&self, chunk: Vec<u8>) -> Result<(), PluginError> {
        let mut inner = self.inner.borrow_mut();
        let (c, upload) = inner
            .as_mut()
            .ok_or_else(|| PluginError::Internal("writer already finished".into()))?;
        c.begin_call();
        upload.write(c, &chunk)
    }

    fn finish(w: Writer, name: String) -> Result<ObjectMeta, PluginError> {
        let me: &S3Writer = w.get();
        let mut inner = me.inner.borrow_mut();
        let (c, upload) = inner
            .as_mut()
            .ok_or_else(|| PluginError::Internal("writer already finished".into()))?;
        c.begin_call();
        // on failure, dropping `w` discards what the upload left
        upload.finish(c, &name)
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some((c, mut upload)) = self.inner.get_mut().take() {
            c.begin_call();
            upload.discard(&c);
        }
    }
}

/// The plugin.
pub struct S3Storage;

impl Guest for S3Storage {
    type Writer = S3Writer;

    fn put_writer(upload_id: String) -> Result<Writer, PluginError> {
        let upload = Upload::new(&upload_id)?;
        let c = client()?;
        Ok(Writer::new(S3Writer {
            inner: RefCell::new(Some((c, upload))),
        }))
    }

    fn read(name: String, offset: u64, len: u32) -> Result<Vec<u8>, PluginError> {
        let c = client()?;
        DOWNLOAD.with_borrow_mut(|st| store::read(&c, st, &name, offset, len))
    }

    fn stat(name: String) -> Result<Option<ObjectMeta>, PluginError> {
        store::stat(&client()?, &name)
    }

    fn delete(name: String) -> Result<(), PluginError> {
        store::delete(&client()?, &name)
    }

    fn list_objects(
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<(Vec<ObjectMeta>, Option<String>), PluginError> {
        store::list(&client()?, &prefix, cursor.as_deref(), limit)
    }

    fn clean_incomplete(upload_id: Option<String>) -> Result<u64, PluginError> {
        store::clean(&client()?, upload_id.as_deref())
    }
}

atrium_sdk::export_storage!(S3Storage);
