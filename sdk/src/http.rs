//! A small blocking HTTP/1.1 client over `wasi:http` (feature `http`), for storage and target
//! plugins: the host lets a plugin reach only the hosts its operator granted, so a denied host
//! comes back as an [`HttpError`] naming it.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A response, read to its end.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Largest body read from a response (a hostile or broken server cannot exhaust memory).
pub const MAX_BODY: usize = 16 << 20;

fn describe(e: &ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => "the host does not allow this plugin to reach it".into(),
        ErrorCode::DestinationIpProhibited => {
            "the host resolves to a private address the operator did not allow".into()
        }
        ErrorCode::DnsError(_) => "its name does not resolve".into(),
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::ConnectionTimeout => "connection timed out".into(),
        ErrorCode::ConnectionReadTimeout => "no answer in time".into(),
        other => format!("{other:?}"),
    }
}

/// Sends `method url` with `headers` and an optional body, and reads the answer to its end (at
/// most [`MAX_BODY`]); `timeout_ms` bounds connecting, the wait for the answer and each wait
/// for more bytes. Any status is a response; only transport failures are errors. [`send`]
/// with the body read at once.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<Response, HttpError> {
    let mut r = send(method, url, headers, body, timeout_ms).map_err(|e| HttpError(e.message))?;
    let body = r.read_all(MAX_BODY).map_err(|e| HttpError(e.message))?;
    Ok(Response {
        status: r.status,
        headers: std::mem::take(&mut r.headers),
        body,
    })
}

/// What went wrong in a [`send`]: lets a caller decide whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The host does not let this plugin reach that host (not granted, or a private address).
    Denied,
    /// The host name does not resolve.
    Dns,
    /// Nothing accepted the connection.
    Refused,
    /// Connecting, the answer, or the next bytes of the body took longer than allowed.
    Timeout,
    /// The connection broke, or the peer's HTTP was malformed or cut short.
    Broken,
    /// TLS failed (handshake, certificate).
    Tls,
    /// The request itself is invalid (URL, method, header, body size).
    Invalid,
    /// Anything else.
    Other,
}

/// Why a [`send`] got no response, or its body could not be read to the end.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    /// The kind of failure.
    pub kind: FailureKind,
    /// What failed, with the method and URL.
    pub message: String,
}

impl SendError {
    /// Whether the same request may succeed if sent again (refused, reset, timed out).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Refused | FailureKind::Timeout | FailureKind::Broken
        )
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<SendError> for HttpError {
    fn from(e: SendError) -> Self {
        HttpError(e.message)
    }
}

/// The kind of a wasi:http error code.
fn kind_of(e: &ErrorCode) -> FailureKind {
    match e {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => FailureKind::Denied,
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => FailureKind::Dns,
        ErrorCode::ConnectionRefused
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionLimitReached => FailureKind::Refused,
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => FailureKind::Timeout,
        ErrorCode::ConnectionTerminated
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpProtocolError
        | ErrorCode::HttpResponseTransferCoding(_)
        | ErrorCode::HttpResponseContentCoding(_) => FailureKind::Broken,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => FailureKind::Tls,
        ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_) => FailureKind::Invalid,
        _ => FailureKind::Other,
    }
}

/// A response whose body is read as it arrives ([`send`]); dropping it closes the connection.
pub struct StreamingResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    what: String,
    // the stream is a child of the body: dropped first (see `Drop`)
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("open", &self.stream.is_some())
            .finish()
    }
}

impl StreamingResponse {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next bytes of the body, at most `max` (blocks until some arrive); `None` at its
    /// end. A body that breaks off is an error, never a silent end.
    pub fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, SendError> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(None);
        };
        loop {
            match stream.blocking_read(max.max(1) as u64) {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(chunk)),
                Err(StreamError::Closed) => {
                    self.close();
                    return Ok(None);
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    let (kind, why) = match wasip2::http::types::http_error_code(&e) {
                        Some(code) => (kind_of(&code), describe(&code)),
                        None => (FailureKind::Broken, e.to_debug_string()),
                    };
                    self.close();
                    return Err(SendError {
                        kind,
                        message: format!("{}: reading the body: {why}", self.what),
                    });
                }
            }
        }
    }

    /// The rest of the body, failing if it is longer than `limit` bytes.
    pub fn read_all(&mut self, limit: usize) -> Result<Vec<u8>, SendError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read(64 * 1024)? {
            out.extend_from_slice(&chunk);
            if out.len() > limit {
                self.close();
                return Err(SendError {
                    kind: FailureKind::Other,
                    message: format!("{}: the response is larger than {limit} bytes", self.what),
                });
            }
        }
        Ok(out)
    }

    /// Whether the body has been read to its end (or abandoned).
    pub fn is_closed(&self) -> bool {
        self.stream.is_none()
    }

    fn close(&mut self) {
        drop(self.stream.take());
        if let Some(b) = self.body.take() {
            let _ = IncomingBody::finish(b);
        }
    }
}

impl Drop for StreamingResponse {
    fn drop(&mut self) {
        self.close();
    }
}

/// Writes all of `data` in pieces as large as the stream takes (`check-write` + `write`,
/// up to 1 MiB a call in wasmtime, against 4 KiB for `blocking-write-and-flush`), then flushes.
fn write_all(stream: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let n = stream.check_write()?;
        if n == 0 {
            stream.subscribe().block();
            continue;
        }
        let k = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
        stream.write(&data[..k])?;
        data = &data[k..];
    }
    stream.flush()?;
    stream.subscribe().block();
    stream.check_write().map(|_| ())
}

/// Sends `method url` with `headers` and an optional body, and returns as soon as the
/// response's head arrives; its body is read from the [`StreamingResponse`]. `timeout_ms`
/// bounds connecting, the wait for the answer (sending the body included), and each wait for
/// more body bytes. A body gets a `content-length` unless one is given, and a request with a
/// method other than GET, HEAD or OPTIONS gets one (0) too. Any status is a response; only
/// transport failures are errors, with a [`FailureKind`].
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<StreamingResponse, SendError> {
    let what = format!("{method} {url}");
    let invalid = |m: String| SendError {
        kind: FailureKind::Invalid,
        message: m,
    };
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err(invalid(format!(
            "'{url}' is not an http:// or https:// URL"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (k, v) in headers {
        fields
            .append(k, v.as_bytes())
            .map_err(|e| invalid(format!("{what}: header {k}: {e:?}")))?;
    }
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    let needs_length = body.is_some() || !matches!(method, "GET" | "HEAD" | "OPTIONS");
    if !has_length && needs_length {
        let n = body.map_or(0, <[u8]>::len).to_string();
        fields
            .append("content-length", &n.into_bytes())
            .map_err(|e| invalid(format!("{what}: header content-length: {e:?}")))?;
    }
    let req = OutgoingRequest::new(fields);
    let m = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let bad = |part: &str| invalid(format!("invalid {part} in '{url}'"));
    req.set_method(&m).map_err(|_| bad("method"))?;
    req.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    req.set_authority(Some(authority))
        .map_err(|_| bad("host"))?;
    req.set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let out = req.body().map_err(|_| SendError {
        kind: FailureKind::Other,
        message: format!("{what}: cannot open the request body"),
    })?;
    let opts = RequestOptions::new();
    let ns = timeout_ms.saturating_mul(1_000_000);
    let _ = opts.set_connect_timeout(Some(ns));
    let _ = opts.set_first_byte_timeout(Some(ns));
    let _ = opts.set_between_bytes_timeout(Some(ns));
    let fail = |e: &ErrorCode| SendError {
        kind: kind_of(e),
        message: format!("{what}: {}", describe(e)),
    };
    let fut = outgoing_handler::handle(req, Some(opts)).map_err(|e| fail(&e))?;
    // the body streams while the request is in flight; a write that fails (the server answered
    // early, or the host refused the request) gives way to what the response says
    let mut write_error = None;
    if let Some(b) = body {
        match out.write() {
            Ok(stream) => {
                if let Err(e) = write_all(&stream, b) {
                    write_error = Some(e);
                }
            }
            Err(()) => write_error = Some(StreamError::Closed),
        }
    }
    let finished = OutgoingBody::finish(out, None);
    let resp = wait_response(&fut, &what, &fail)?;
    if resp.is_none() {
        if let Some(e) = write_error {
            let why = match e {
                StreamError::LastOperationFailed(e) => {
                    match wasip2::http::types::http_error_code(&e) {
                        Some(code) => describe(&code),
                        None => e.to_debug_string(),
                    }
                }
                StreamError::Closed => "the connection closed".into(),
            };
            return Err(SendError {
                kind: FailureKind::Broken,
                message: format!("{what}: writing the body: {why}"),
            });
        }
        if let Err(e) = finished {
            return Err(fail(&e));
        }
    }
    let Some(resp) = resp else {
        return Err(SendError {
            kind: FailureKind::Broken,
            message: format!("{what}: no response"),
        });
    };
    let status = resp.status();
    let headers = resp
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let incoming = resp.consume().map_err(|_| SendError {
        kind: FailureKind::Other,
        message: format!("{what}: cannot read the response body"),
    })?;
    let stream = incoming.stream().map_err(|_| SendError {
        kind: FailureKind::Other,
        message: format!("{what}: cannot read the response body"),
    })?;
    Ok(StreamingResponse {
        status,
        headers,
        what,
        stream: Some(stream),
        body: Some(incoming),
    })
}

/// Waits for the response head: `Ok(None)` when the request failed in a way the body's
/// write error explains better (nothing came back), an error when the host or peer said why.
fn wait_response(
    fut: &FutureIncomingResponse,
    what: &str,
    fail: &dyn Fn(&ErrorCode) -> SendError,
) -> Result<Option<wasip2::http::types::IncomingResponse>, SendError> {
    fut.subscribe().block();
    match fut.get() {
        Some(Ok(Ok(r))) => Ok(Some(r)),
        Some(Ok(Err(e))) => Err(fail(&e)),
        Some(Err(())) => Err(SendError {
            kind: FailureKind::Other,
            message: format!("{what}: response taken twice"),
        }),
        None => Ok(None),
    }
}
