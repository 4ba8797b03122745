//! A small blocking HTTP/1.1 client over `wasi:http` (feature `http`), for storage and target
//! plugins: the host lets a plugin reach only the hosts its operator granted, so a denied host
//! comes back as an [`HttpError`] naming it.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

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

/// Sends `method url` with `headers` and an optional body; waits at most `timeout_ms` for the
/// connection and for the first byte of the answer. Any status is a response; only transport
/// failures are errors.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<Response, HttpError> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err(HttpError(format!(
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
            .append(&k.to_string(), &v.as_bytes().to_vec())
            .map_err(|e| HttpError(format!("header {k}: {e:?}")))?;
    }
    // a body of unknown length goes out chunked, which some servers refuse (slurmrestd
    // drops the connection): say how long it is
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    let needs_length = body.is_some() || !matches!(method, "GET" | "HEAD" | "OPTIONS");
    if !has_length && needs_length {
        let n = body.map_or(0, <[u8]>::len).to_string();
        fields
            .append("content-length", &n.into_bytes())
            .map_err(|e| HttpError(format!("header content-length: {e:?}")))?;
    }
    let req = OutgoingRequest::new(fields);
    let m = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| HttpError(format!("invalid {what} in '{url}'"));
    req.set_method(&m).map_err(|_| bad("method"))?;
    req.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    req.set_authority(Some(authority))
        .map_err(|_| bad("host"))?;
    req.set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let out = req
        .body()
        .map_err(|_| HttpError("cannot open the request body".into()))?;
    let opts = RequestOptions::new();
    let ns = timeout_ms.saturating_mul(1_000_000);
    let _ = opts.set_connect_timeout(Some(ns));
    let _ = opts.set_first_byte_timeout(Some(ns));
    let _ = opts.set_between_bytes_timeout(Some(ns));
    let fut = outgoing_handler::handle(req, Some(opts))
        .map_err(|e| HttpError(format!("{method} {url}: {}", describe(&e))))?;
    if let Some(b) = body {
        let stream = out
            .write()
            .map_err(|_| HttpError("cannot write the request body".into()))?;
        for chunk in b.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError(format!("{method} {url}: writing the body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(out, None)
        .map_err(|e| HttpError(format!("{method} {url}: {}", describe(&e))))?;
    fut.subscribe().block();
    let resp = match fut.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(HttpError(format!("{method} {url}: {}", describe(&e)))),
        Some(Err(())) => return Err(HttpError(format!("{method} {url}: response taken twice"))),
        None => return Err(HttpError(format!("{method} {url}: no response"))),
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
    let incoming = resp
        .consume()
        .map_err(|_| HttpError("cannot read the response body".into()))?;
    let stream = incoming
        .stream()
        .map_err(|_| HttpError("cannot read the response body".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(HttpError(format!(
                        "{method} {url}: the response is larger than {} MiB",
                        MAX_BODY >> 20
                    )));
                }
            }
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(e) => {
                return Err(HttpError(format!(
                    "{method} {url}: reading the body: {e:?}"
                )));
            }
        }
    }
    drop(stream);
    let _ = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}
