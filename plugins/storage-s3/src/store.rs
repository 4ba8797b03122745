//! The datastore on S3, generic over how requests travel ([`Transport`]): the plugin sends
//! them through wasi:http, the tests through an in-memory fake store or plain TCP.
//!
//! Layout in the bucket, under the configured prefix:
//! - an object of at most one part is stored whole under its name (`sha256/ab/<digest>`),
//!   with a single PUT at `finish`;
//! - a larger one is a multipart upload to `blobs/<upload-id>`, and at `finish` a zero-byte
//!   *index* object under its name points to it (metadata `atrium-blob`, `atrium-size`).
//!
//! Nothing appears under a content name before its bytes are complete, and an index is written
//! only after its blob is complete and removed before it, so an index never dangles.

use std::cell::Cell;

use atrium_sdk::http::SendError;
use atrium_sdk::storage::atrium::plugin::types::PluginError;
use atrium_sdk::storage::exports::atrium::plugin::storage::ObjectMeta;

use crate::s3::{
    self, ATTEMPTS, BLOBS, EMPTY_SHA256, Located, META_BLOB, META_SIZE, MultipartUpload,
    ObjectsPage, Settings, UNSIGNED_PAYLOAD,
};

/// Largest chunk moved in one call (the WIT contract's bound).
pub const MAX_CHUNK: usize = 1 << 20;
/// How long one plugin call may spend before it stops retrying (the manifest gives it 60 s).
pub const CALL_BUDGET_MS: u64 = 50_000;
/// The longest one request may wait to connect, for its answer, or between body bytes.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// The shortest wait granted to an attempt, even when the call's budget is spent.
pub const MIN_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Largest answer body read into memory (XML listings of 1000 keys are about 300 KB).
pub const MAX_ANSWER: usize = 8 << 20;
/// Multipart uploads older than this are taken for abandoned by `clean-incomplete(none)`.
pub const STALE_UPLOAD_SECS: u64 = 24 * 3600;
/// Time kept back in a listing call for the answer: it stops resolving index sizes before.
pub const LIST_RESERVE_MS: u64 = 10_000;

/// How requests travel, and the clocks the retries need.
pub trait Transport {
    /// A response body being read.
    type Body: Body;
    /// Sends a request (`headers` complete but for `host` and `content-length`, which the
    /// transport sets); any status is an answer.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Result<Reply<Self::Body>, SendError>;
    /// Waits `ms` milliseconds.
    fn sleep_ms(&self, ms: u64);
    /// Seconds since the Unix epoch (for signatures and upload ages).
    fn unix_time(&self) -> u64;
    /// A monotonic clock in milliseconds.
    fn monotonic_ms(&self) -> u64;
    /// Logs a warning.
    fn warn(&self, msg: &str);
}

/// A response body read as it arrives.
pub trait Body {
    /// At most `max` more bytes; `None` at the end.
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, SendError>;
}

/// A response head with its body still to read.
pub struct Reply<B> {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: B,
}

/// An answer after retries: a success body still open, or any body read.
pub(crate) struct Answer<B> {
    /// Status code.
    pub(crate) status: u16,
    /// Headers (names lower-case).
    pub(crate) headers: Vec<(String, String)>,
    /// The open body of a 2xx answer when the caller streams it.
    stream: Option<B>,
    /// The body, read (every non-2xx answer, and 2xx when not streamed).
    pub(crate) body: Vec<u8>,
}

impl<B> Answer<B> {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request to send.
pub(crate) struct Req<'a> {
    method: &'static str,
    /// The full bucket key, or `None` for the bucket itself.
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<&'a [u8]>,
    payload_hash: String,
}

impl<'a> Req<'a> {
    /// A request of `method` on a full bucket key (`None`: the bucket).
    pub(crate) fn new(method: &'static str, key: Option<String>) -> Self {
        Req {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            payload_hash: EMPTY_SHA256.into(),
        }
    }

    /// Adds a query parameter.
    pub(crate) fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }

    /// Adds a header.
    pub(crate) fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Bulk bytes: sent unsigned.
    fn bytes(mut self, b: &'a [u8]) -> Self {
        self.body = Some(b);
        self.payload_hash = UNSIGNED_PAYLOAD.into();
        self
    }

    /// A small document: its hash is signed.
    fn document(mut self, b: &'a [u8]) -> Self {
        self.body = Some(b);
        self.payload_hash = s3::sha256_hex(b);
        self
    }
}

/// The last failure of a request that was tried again.
enum Failure {
    Net(SendError),
    Status(u16, Vec<u8>),
}

/// Appends a note to an error's message.
fn noted(e: PluginError, note: &str) -> PluginError {
    match e {
        PluginError::InvalidArgument(m) => PluginError::InvalidArgument(m + note),
        PluginError::NotFound(m) => PluginError::NotFound(m + note),
        PluginError::AccessDenied(m) => PluginError::AccessDenied(m + note),
        PluginError::ResourceExhausted(m) => PluginError::ResourceExhausted(m + note),
        PluginError::Unsupported(m) => PluginError::Unsupported(m + note),
        PluginError::Internal(m) => PluginError::Internal(m + note),
    }
}

fn read_all<B: Body>(body: &mut B, limit: usize, what: &str) -> Result<Vec<u8>, SendError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.read(64 * 1024)? {
        out.extend_from_slice(&chunk);
        if out.len() > limit {
            return Err(SendError {
                kind: atrium_sdk::http::FailureKind::Other,
                message: format!("{what}: the answer is larger than {} MiB", limit >> 20),
            });
        }
    }
    Ok(out)
}

/// A store client for one plugin call (or one upload or download spanning calls).
pub struct Client<T: Transport> {
    /// The checked configuration.
    pub s: Settings,
    /// How requests travel.
    pub t: T,
    deadline: Cell<u64>,
}

impl<T: Transport> Client<T> {
    /// A client whose current call starts now.
    pub fn new(s: Settings, t: T) -> Self {
        let c = Client {
            s,
            t,
            deadline: Cell::new(0),
        };
        c.begin_call();
        c
    }

    /// Starts the retry budget of a new plugin call.
    pub fn begin_call(&self) {
        self.deadline
            .set(self.t.monotonic_ms().saturating_add(CALL_BUDGET_MS));
    }

    /// Milliseconds left of the current call's budget.
    pub fn remaining_ms(&self) -> u64 {
        self.deadline.get().saturating_sub(self.t.monotonic_ms())
    }

    fn url(&self, path: &str, query: &str) -> String {
        if query.is_empty() {
            format!("{}{path}", self.s.endpoint)
        } else {
            format!("{}{path}?{query}", self.s.endpoint)
        }
    }

    /// Sends `req`, again on transport failures, on 429/5xx and on throttling codes, with
    /// backoff, within the call's budget. A 2xx answer's body stays open if `stream`.
    fn exchange(
        &self,
        req: &Req,
        what: &str,
        stream: bool,
    ) -> Result<Answer<T::Body>, PluginError> {
        let path = self.s.path(req.key.as_deref());
        let query = s3::canonical_query(&req.query);
        let url = self.url(&path, &query);
        let start = self.t.monotonic_ms();
        let mut attempt = 0;
        let last = loop {
            attempt += 1;
            let timeout = self
                .remaining_ms()
                .clamp(MIN_REQUEST_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
            let headers = s3::sign(
                &self.s,
                req.method,
                &path,
                &query,
                &req.headers,
                &req.payload_hash,
                &s3::amz_date(self.t.unix_time()),
            );
            let failure = match self.t.send(req.method, &url, &headers, req.body, timeout) {
                Err(e) if !e.is_transient() => {
                    return Err(s3::unreachable(&self.s, what, &e, attempt, 0));
                }
                Err(e) => Failure::Net(e),
                Ok(mut r) => {
                    let ok = (200..300).contains(&r.status);
                    if ok && stream {
                        return Ok(Answer {
                            status: r.status,
                            headers: r.headers,
                            stream: Some(r.body),
                            body: Vec::new(),
                        });
                    }
                    match read_all(&mut r.body, MAX_ANSWER, &format!("{} {url}", req.method)) {
                        Err(e) if !e.is_transient() => {
                            return Err(s3::unreachable(&self.s, what, &e, attempt, 0));
                        }
                        Err(e) => Failure::Net(e),
                        Ok(body) => {
                            let again = !ok
                                && (s3::retryable_status(r.status)
                                    || s3::parse_error(&body)
                                        .is_some_and(|e| s3::retryable_code(&e.code)));
                            if !again {
                                return Ok(Answer {
                                    status: r.status,
                                    headers: r.headers,
                                    stream: None,
                                    body,
                                });
                            }
                            Failure::Status(r.status, body)
                        }
                    }
                }
            };
            let pause = s3::backoff_ms(attempt);
            if attempt >= ATTEMPTS || self.remaining_ms() < pause + MIN_REQUEST_TIMEOUT_MS {
                break failure;
            }
            self.t.sleep_ms(pause);
        };
        let elapsed = self.t.monotonic_ms().saturating_sub(start);
        Err(match last {
            Failure::Net(e) => s3::unreachable(&self.s, what, &e, attempt, elapsed),
            Failure::Status(status, body) => noted(
                s3::refusal(&self.s, what, status, &body),
                &format!(
                    " ({attempt} attempts over {:.1} s)",
                    elapsed as f64 / 1000.0
                ),
            ),
        })
    }

    /// Sends `req` and reads its answer whole.
    pub(crate) fn call(&self, req: &Req, what: &str) -> Result<Answer<T::Body>, PluginError> {
        self.exchange(req, what, false)
    }

    /// Checks the bucket and the credentials with the cheapest listing (one key), turning
    /// what S3 says into what to fix.
    pub fn probe(&self) -> Result<(), PluginError> {
        let what = format!("listing bucket '{}'", self.s.bucket);
        let a = self.call(
            &Req::new("GET", None)
                .query("list-type", "2")
                .query("max-keys", "1")
                .query("prefix", self.s.prefix.clone()),
            &what,
        )?;
        if !a.ok() {
            return Err(s3::refusal(&self.s, &what, a.status, &a.body));
        }
        s3::parse_list_objects(&a.body).map_err(|e| {
            PluginError::Internal(format!(
                "{what}: {} did not answer like an S3 store: {e}",
                self.s.endpoint
            ))
        })?;
        Ok(())
    }

    /// Why a bodiless 403 (a HEAD's) happened: the probe's answer says what S3 objects to.
    fn explain_403(&self, what: &str) -> PluginError {
        match self.probe() {
            Err(e) => e,
            Ok(()) => PluginError::AccessDenied(format!(
                "S3 at {} denied {what} to access key '{}' (HTTP 403), though it may list bucket '{}': it needs read, write and list permission",
                self.s.endpoint, self.s.access_key, self.s.bucket
            )),
        }
    }

    /// Where the bytes of `name` are, if it exists.
    pub fn head(&self, name: &str) -> Result<Option<Located>, PluginError> {
        let what = format!("reading '{name}'");
        let a = self.call(&Req::new("HEAD", Some(self.s.key(name))), &what)?;
        match a.status {
            200..=299 => s3::locate(&a.headers).map(Some).map_err(|e| {
                PluginError::Internal(format!(
                    "object '{}' in bucket '{}' at {}: {e}",
                    self.s.key(name),
                    self.s.bucket,
                    self.s.endpoint
                ))
            }),
            404 => Ok(None),
            403 => Err(self.explain_403(&what)),
            status => Err(s3::refusal(&self.s, &what, status, &a.body)),
        }
    }

    /// PUTs a whole object.
    fn put(&self, key: String, data: &[u8], what: &str) -> Result<(), PluginError> {
        let a = self.call(
            &Req::new("PUT", Some(key))
                .header("content-type", "application/octet-stream")
                .bytes(data),
            what,
        )?;
        if !a.ok() {
            return Err(s3::refusal(&self.s, what, a.status, &a.body));
        }
        Ok(())
    }

    /// PUTs the zero-byte index object of `name`, pointing to `blob` of `size` bytes.
    fn put_index(&self, name: &str, blob: &str, size: u64) -> Result<(), PluginError> {
        let what = format!("writing '{name}'");
        let a = self.call(
            &Req::new("PUT", Some(self.s.key(name)))
                .header("content-type", "application/octet-stream")
                .header(META_BLOB, blob)
                .header(META_SIZE, size.to_string())
                .document(b""),
            &what,
        )?;
        if !a.ok() {
            return Err(s3::refusal(&self.s, &what, a.status, &a.body));
        }
        Ok(())
    }

    /// Deletes a key (no error if it is absent).
    fn delete_key(&self, key: String, what: &str) -> Result<(), PluginError> {
        let a = self.call(&Req::new("DELETE", Some(key)), what)?;
        if a.ok() || a.status == 404 {
            return Ok(());
        }
        Err(s3::refusal(&self.s, what, a.status, &a.body))
    }

    /// Starts a multipart upload at `key`; returns its upload id.
    fn create_multipart(&self, key: String, what: &str) -> Result<String, PluginError> {
        let a = self.call(
            &Req::new("POST", Some(key))
                .query("uploads", "")
                .header("content-type", "application/octet-stream"),
            what,
        )?;
        if !a.ok() {
            return Err(s3::refusal(&self.s, what, a.status, &a.body));
        }
        s3::parse_initiate(&a.body)
            .map_err(|e| PluginError::Internal(format!("{what}: starting a multipart upload: {e}")))
    }

    /// Uploads part `n` (from 1); returns its ETag.
    fn upload_part(
        &self,
        key: String,
        upload_id: &str,
        n: u32,
        data: &[u8],
        what: &str,
    ) -> Result<String, PluginError> {
        let a = self.call(
            &Req::new("PUT", Some(key))
                .query("partNumber", n.to_string())
                .query("uploadId", upload_id)
                .bytes(data),
            what,
        )?;
        if !a.ok() {
            return Err(s3::refusal(&self.s, what, a.status, &a.body));
        }
        a.header("etag")
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                PluginError::Internal(format!("{what}: S3 answered part {n} without an ETag"))
            })
    }

    /// Completes a multipart upload from its parts' ETags.
    fn complete(
        &self,
        key: String,
        upload_id: &str,
        etags: &[String],
        what: &str,
    ) -> Result<(), PluginError> {
        let doc = s3::complete_body(etags);
        let req = Req::new("POST", Some(key))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml")
            .document(doc.as_bytes());
        let mut attempt = 1;
        loop {
            let a = self.call(&req, what)?;
            if !a.ok() {
                return Err(s3::refusal(&self.s, what, a.status, &a.body));
            }
            match s3::parse_complete(&a.body) {
                Ok(()) => return Ok(()),
                // S3 may report a failure in the body of a 200 (it answers before it is done)
                Err(Ok(e)) => {
                    let pause = s3::backoff_ms(attempt);
                    if !s3::retryable_code(&e.code)
                        || attempt >= ATTEMPTS
                        || self.remaining_ms() < pause + MIN_REQUEST_TIMEOUT_MS
                    {
                        return Err(s3::explain(&self.s, what, 500, &e));
                    }
                    attempt += 1;
                    self.t.sleep_ms(pause);
                }
                Err(Err(e)) => {
                    return Err(PluginError::Internal(format!(
                        "{what}: completing the multipart upload: {e}"
                    )));
                }
            }
        }
    }

    /// Aborts a multipart upload; `false` if S3 no longer has it.
    fn abort(&self, key: String, upload_id: &str, what: &str) -> Result<bool, PluginError> {
        let a = self.call(
            &Req::new("DELETE", Some(key)).query("uploadId", upload_id),
            what,
        )?;
        if a.ok() {
            return Ok(true);
        }
        if a.status == 404 {
            return Ok(false);
        }
        Err(s3::refusal(&self.s, what, a.status, &a.body))
    }

    /// One page of keys starting with `prefix` (a full key prefix), after `start_after`.
    fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: u32,
        what: &str,
    ) -> Result<ObjectsPage, PluginError> {
        let mut req = Req::new("GET", None)
            .query("list-type", "2")
            .query("prefix", prefix)
            .query("max-keys", max.to_string());
        if let Some(after) = start_after {
            req = req.query("start-after", after);
        }
        let a = self.call(&req, what)?;
        if !a.ok() {
            return Err(s3::refusal(&self.s, what, a.status, &a.body));
        }
        s3::parse_list_objects(&a.body).map_err(|e| PluginError::Internal(format!("{what}: {e}")))
    }

    /// The unfinished multipart uploads of keys starting with `prefix` (a full key prefix),
    /// as many pages as the call's budget allows.
    fn list_uploads(&self, prefix: &str, what: &str) -> Result<Vec<MultipartUpload>, PluginError> {
        let mut out = Vec::new();
        let mut markers: Option<(String, Option<String>)> = None;
        loop {
            let mut req = Req::new("GET", None)
                .query("uploads", "")
                .query("prefix", prefix);
            if let Some((k, u)) = &markers {
                req = req.query("key-marker", k.clone());
                if let Some(u) = u {
                    req = req.query("upload-id-marker", u.clone());
                }
            }
            let a = self.call(&req, what)?;
            if !a.ok() {
                return Err(s3::refusal(&self.s, what, a.status, &a.body));
            }
            let page = s3::parse_list_uploads(&a.body)
                .map_err(|e| PluginError::Internal(format!("{what}: {e}")))?;
            let last_key = page.uploads.last().map(|u| u.key.clone());
            out.extend(page.uploads);
            let next = page.next_key_marker.or(last_key);
            match next {
                Some(k)
                    if page.truncated
                        && markers.as_ref().map(|(m, _)| m) != Some(&k)
                        && self.remaining_ms() > LIST_RESERVE_MS =>
                {
                    markers = Some((k, page.next_upload_id_marker));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Opens a streaming GET of `key` from byte `offset`.
    fn open_get(&self, key: &str, offset: u64, what: &str) -> Result<T::Body, PluginError> {
        let a = self.exchange(
            &Req::new("GET", Some(key.to_string())).header("range", format!("bytes={offset}-")),
            what,
            true,
        )?;
        match a.status {
            206 => {
                let start = a.header("content-range").and_then(s3::content_range_start);
                if start != Some(offset) {
                    return Err(PluginError::Internal(format!(
                        "{what}: S3 at {} answered a read from byte {offset} with Content-Range {:?}",
                        self.s.endpoint,
                        a.header("content-range")
                    )));
                }
            }
            200 if offset == 0 => {}
            200 => {
                return Err(PluginError::Unsupported(format!(
                    "{what}: S3 at {} ignored the Range of a read from byte {offset}",
                    self.s.endpoint
                )));
            }
            404 => {
                return Err(PluginError::NotFound(format!(
                    "{what}: key '{key}' is gone from bucket '{}'",
                    self.s.bucket
                )));
            }
            status => return Err(s3::refusal(&self.s, what, status, &a.body)),
        }
        a.stream
            .ok_or_else(|| PluginError::Internal(format!("{what}: no body")))
    }
}

/// `stat`: the size of `name`, if it exists.
pub fn stat<T: Transport>(c: &Client<T>, name: &str) -> Result<Option<ObjectMeta>, PluginError> {
    s3::check_name(name)?;
    Ok(c.head(name)?.map(|l| ObjectMeta {
        name: name.to_string(),
        size: l.size(),
    }))
}

/// `delete`: removes `name` (an index before its blob), no error if absent.
pub fn delete<T: Transport>(c: &Client<T>, name: &str) -> Result<(), PluginError> {
    s3::check_name(name)?;
    let what = format!("deleting '{name}'");
    match c.head(name)? {
        None => Ok(()),
        Some(Located::Plain { .. }) => c.delete_key(c.s.key(name), &what),
        Some(Located::Index { blob, .. }) => {
            c.delete_key(c.s.key(name), &what)?;
            c.delete_key(c.s.key(&blob), &what).map_err(|e| {
                noted(
                    e,
                    &format!(" (the object is deleted; its bytes stay behind as '{blob}')"),
                )
            })
        }
    }
}

/// `list-objects`: names starting with `prefix` after `cursor` (the last name of the previous
/// page), in name order, at most `limit`. Index objects list with their blob's size (one HEAD
/// each); a page ends early, with a cursor, when the call's time runs short.
pub fn list<T: Transport>(
    c: &Client<T>,
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<ObjectMeta>, Option<String>), PluginError> {
    if prefix.chars().any(char::is_control) {
        return Err(PluginError::InvalidArgument(format!(
            "invalid prefix '{prefix}'"
        )));
    }
    let what = format!("listing '{prefix}' in bucket '{}'", c.s.bucket);
    let full = c.s.key(prefix);
    let after = cursor.map(|k| c.s.key(k));
    let page = c.list_page(&full, after.as_deref(), limit.clamp(1, 1000), &what)?;
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    let mut cut = false;
    for (key, size) in page.objects {
        let Some(name) = key.strip_prefix(&c.s.prefix) else {
            continue;
        };
        if !name.starts_with(BLOBS) {
            // an empty object is the empty content's, or an index: its size is its blob's
            let size = if size == 0 && !name.ends_with(EMPTY_SHA256) {
                if c.remaining_ms() < LIST_RESERVE_MS && !out.is_empty() {
                    cut = true;
                    break;
                }
                c.head(name)?.map(|l| l.size())
            } else {
                Some(size)
            };
            if let Some(size) = size {
                out.push(ObjectMeta {
                    name: name.to_string(),
                    size,
                });
            }
        }
        last = Some(name.to_string());
    }
    let next = if page.truncated || cut { last } else { None };
    Ok((out, next))
}

/// `clean-incomplete`: with an upload id, aborts that upload's multipart upload (never a
/// completed blob: an index may point to it); without, checks the bucket and credentials and
/// aborts this datastore's multipart uploads started over a day ago (younger ones may be other
/// hosts' uploads in flight). Returns how many it aborted.
pub fn clean<T: Transport>(c: &Client<T>, upload_id: Option<&str>) -> Result<u64, PluginError> {
    let mut n = 0;
    match upload_id {
        Some(id) => {
            s3::check_upload_id(id)?;
            let key = c.s.key(&Settings::blob_name(id));
            let what = format!("removing unfinished upload {id}");
            for u in c.list_uploads(&key, &what)? {
                if u.key == key && c.abort(key.clone(), &u.upload_id, &what)? {
                    n += 1;
                }
            }
        }
        None => {
            c.probe()?;
            let prefix = c.s.key(BLOBS);
            let what = format!("removing unfinished uploads under '{prefix}'");
            let now = c.t.unix_time();
            for u in c.list_uploads(&prefix, &what)? {
                let stale = u
                    .initiated
                    .is_some_and(|t| t.saturating_add(STALE_UPLOAD_SECS) < now);
                if !stale || !u.key.starts_with(&prefix) {
                    continue;
                }
                if c.remaining_ms() < LIST_RESERVE_MS {
                    break;
                }
                if c.abort(u.key.clone(), &u.upload_id, &what)? {
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// Where an upload is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Taking chunks (multipart started or not).
    Open,
    /// The multipart upload is complete, its index not yet written.
    Completed,
    /// Finished or discarded: nothing left to clean.
    Done,
}

/// An object being written: chunks buffer up to one part; then parts go out as they fill.
#[derive(Debug)]
pub struct Upload {
    id: String,
    buf: Vec<u8>,
    size: u64,
    /// The multipart upload's id and the ETags of the parts sent, once it started.
    multipart: Option<(String, Vec<String>)>,
    phase: Phase,
}

impl Upload {
    /// A new upload named `id` (letters, digits, `-`).
    pub fn new(id: &str) -> Result<Self, PluginError> {
        s3::check_upload_id(id)?;
        Ok(Upload {
            id: id.to_string(),
            buf: Vec::new(),
            size: 0,
            multipart: None,
            phase: Phase::Open,
        })
    }

    /// The blob's name (under the prefix) of this upload.
    fn blob(&self) -> String {
        Settings::blob_name(&self.id)
    }

    /// Appends a chunk of at most 1 MiB; sends a part whenever one is full and more follows.
    pub fn write<T: Transport>(&mut self, c: &Client<T>, chunk: &[u8]) -> Result<(), PluginError> {
        if chunk.len() > MAX_CHUNK {
            return Err(PluginError::InvalidArgument(format!(
                "chunk of {} bytes exceeds 1 MiB",
                chunk.len()
            )));
        }
        if self.phase != Phase::Open {
            return Err(PluginError::Internal("writer already finished".into()));
        }
        let part = c.s.part_size;
        let mut rest = chunk;
        // a full part goes out only once more bytes follow: the last part is never empty, and
        // an object of exactly one part is a single PUT
        while self.buf.len() + rest.len() > part {
            let take = part - self.buf.len();
            self.reserve(part, take);
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.send_part(c)?;
        }
        self.reserve(part, rest.len());
        self.buf.extend_from_slice(rest);
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Grows the buffer for `more` bytes, never beyond one part.
    fn reserve(&mut self, part: usize, more: usize) {
        let need = self.buf.len() + more;
        if need > self.buf.capacity() {
            let want = need.max((self.buf.capacity() * 2).min(part));
            self.buf.reserve_exact(want - self.buf.len());
        }
    }

    fn send_part<T: Transport>(&mut self, c: &Client<T>) -> Result<(), PluginError> {
        let key = c.s.key(&self.blob());
        let what = format!("uploading {}", self.id);
        if self.multipart.is_none() {
            let upload_id = c.create_multipart(key.clone(), &what)?;
            self.multipart = Some((upload_id, Vec::new()));
        }
        let (upload_id, etags) = self.multipart.as_mut().expect("started above");
        let n = etags.len() as u32 + 1;
        if n > s3::MAX_PARTS {
            return Err(PluginError::ResourceExhausted(format!(
                "{what}: an object of more than {} parts of {} MiB; raise config 'part_size_mb' (at most {})",
                s3::MAX_PARTS,
                c.s.part_size >> 20,
                s3::MAX_PART_SIZE_MB
            )));
        }
        let etag = c.upload_part(key, upload_id, n, &self.buf, &format!("{what}, part {n}"))?;
        etags.push(etag);
        self.buf.clear();
        Ok(())
    }

    /// Makes the bytes visible under `name`: a single PUT, or the last part, completion and
    /// the index (unless the same content is already there: then this upload's blob goes).
    pub fn finish<T: Transport>(
        &mut self,
        c: &Client<T>,
        name: &str,
    ) -> Result<ObjectMeta, PluginError> {
        s3::check_name(name)?;
        if self.phase != Phase::Open {
            return Err(PluginError::Internal("writer already finished".into()));
        }
        let what = format!("writing '{name}'");
        let meta = ObjectMeta {
            name: name.to_string(),
            size: self.size,
        };
        if self.multipart.is_none() {
            c.put(c.s.key(name), &self.buf, &what)?;
            self.buf = Vec::new();
            self.phase = Phase::Done;
            return Ok(meta);
        }
        if !self.buf.is_empty() {
            self.send_part(c)?;
        }
        self.buf = Vec::new();
        let (upload_id, etags) = self.multipart.clone().expect("checked above");
        c.complete(c.s.key(&self.blob()), &upload_id, &etags, &what)?;
        self.phase = Phase::Completed;
        match c.head(name)? {
            Some(existing) if existing.size() == self.size => {
                // the same content is there already: keep it, drop ours
                let blob = c.s.key(&self.blob());
                if let Err(e) = c.delete_key(blob, &what) {
                    c.t.warn(&format!(
                        "{what}: the content was there already; removing this upload's copy failed: {e:?}"
                    ));
                }
                self.phase = Phase::Done;
                return Ok(meta);
            }
            Some(existing) => c.t.warn(&format!(
                "{what}: replacing an object of {} bytes with one of {}",
                existing.size(),
                self.size
            )),
            None => {}
        }
        c.put_index(name, &self.blob(), self.size)?;
        self.phase = Phase::Done;
        Ok(meta)
    }

    /// Removes what an unfinished upload left: its multipart upload, or a completed blob no
    /// index points to yet. Failures are logged (`clean-incomplete` catches what is left).
    pub fn discard<T: Transport>(&mut self, c: &Client<T>) {
        let key = c.s.key(&self.blob());
        let what = format!("discarding upload {}", self.id);
        let r = match (&self.phase, &self.multipart) {
            (Phase::Open, Some((upload_id, _))) => c.abort(key, upload_id, &what).map(|_| ()),
            (Phase::Completed, _) => c.delete_key(key, &what),
            _ => Ok(()),
        };
        if let Err(e) = r {
            c.t.warn(&format!("{what}: {e:?}"));
        }
        self.buf = Vec::new();
        self.phase = Phase::Done;
    }
}

/// A download in progress: the object, and the GET streaming it from `offset`.
pub struct ReadState<B> {
    name: String,
    key: String,
    size: u64,
    offset: u64,
    body: Option<B>,
}

/// `read`: up to `len` bytes (at most 1 MiB) of `name` from `offset`, fewer only at the end.
/// Sequential reads share one streaming GET; another offset, or a stream that breaks, opens
/// a new one from where it is needed.
pub fn read<T: Transport>(
    c: &Client<T>,
    state: &mut Option<ReadState<T::Body>>,
    name: &str,
    offset: u64,
    len: u32,
) -> Result<Vec<u8>, PluginError> {
    s3::check_name(name)?;
    let what = format!("reading '{name}'");
    if state.as_ref().is_none_or(|st| st.name != name) {
        *state = None;
        let loc = c.head(name)?.ok_or_else(|| {
            PluginError::NotFound(format!("{what}: no such object in bucket '{}'", c.s.bucket))
        })?;
        let key = match &loc {
            Located::Plain { .. } => c.s.key(name),
            Located::Index { blob, .. } => c.s.key(blob),
        };
        *state = Some(ReadState {
            name: name.to_string(),
            key,
            size: loc.size(),
            offset,
            body: None,
        });
    }
    let st = state.as_mut().expect("set above");
    if offset >= st.size || len == 0 {
        return Ok(Vec::new());
    }
    if st.offset != offset {
        st.body = None;
        st.offset = offset;
    }
    let want = (u64::from(len).min(MAX_CHUNK as u64)).min(st.size - offset) as usize;
    let mut out = Vec::with_capacity(want);
    let mut breaks = 0;
    let start = c.t.monotonic_ms();
    while out.len() < want {
        if st.body.is_none() {
            st.body = Some(c.open_get(&st.key, st.offset, &what)?);
        }
        let body = st.body.as_mut().expect("opened above");
        let failure = match body.read(want - out.len()) {
            Ok(Some(bytes)) => {
                let n = bytes.len().min(want - out.len());
                out.extend_from_slice(&bytes[..n]);
                st.offset += n as u64;
                continue;
            }
            Ok(None) => SendError {
                kind: atrium_sdk::http::FailureKind::Broken,
                message: format!(
                    "GET {}: the body ended at byte {} of {}",
                    st.key, st.offset, st.size
                ),
            },
            Err(e) => e,
        };
        st.body = None;
        breaks += 1;
        if !failure.is_transient() {
            return Err(s3::unreachable(&c.s, &what, &failure, breaks, 0));
        }
        let pause = s3::backoff_ms(breaks);
        if breaks >= ATTEMPTS || c.remaining_ms() < pause + MIN_REQUEST_TIMEOUT_MS {
            let elapsed = c.t.monotonic_ms().saturating_sub(start);
            return Err(s3::unreachable(&c.s, &what, &failure, breaks, elapsed));
        }
        c.t.warn(&format!(
            "{what}: the stream broke at byte {} ({}); reading on from there",
            st.offset, failure.message
        ));
        c.t.sleep_ms(pause);
    }
    if st.offset >= st.size {
        // read to the end: let the connection go
        st.body = None;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
