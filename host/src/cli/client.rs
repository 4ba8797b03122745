//! A small client of the native API, used by the CLI.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Errors of a client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not usable.
    #[error("invalid server URL '{0}'")]
    Url(String),
    /// The server could not be reached or the transfer broke.
    #[error("cannot reach {server}: {source}")]
    Transport {
        /// The server URL.
        server: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// Local I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The API token is unusable.
    #[error("{0}")]
    Token(String),
}

/// A client bound to one server and workspace.
pub struct Client {
    http: reqwest::Client,
    server: String,
    workspace: String,
}

fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a path, keeping its `/` separators.
pub fn encode_path(p: &str) -> String {
    p.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes a query value.
pub fn encode_query(v: &str) -> String {
    encode_segment(v)
}

impl Client {
    /// A client of `server` (e.g. `http://127.0.0.1:8080`) acting in `workspace`, sending
    /// `token` (an API token) on every request.
    pub fn new(server: &str, workspace: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let server = server.trim_end_matches('/').to_string();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(ClientError::Url(server));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                .map_err(|_| {
                    ClientError::Token("the API token has characters a header cannot carry".into())
                })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .map_err(|source| ClientError::Transport {
                server: server.clone(),
                source,
            })?;
        Ok(Self {
            http,
            server,
            workspace: workspace.to_string(),
        })
    }

    /// `/api/v1/workspaces/{ws}` + `rest`.
    pub fn ws_path(&self, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}{rest}",
            encode_segment(&self.workspace)
        )
    }

    fn transport(&self, source: reqwest::Error) -> ClientError {
        ClientError::Transport {
            server: self.server.clone(),
            source,
        }
    }

    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Err(ClientError::Api {
            status,
            code: v["error_code"].as_str().unwrap_or("HTTP_ERROR").to_string(),
            message: v["message"].as_str().map(String::from).unwrap_or(body),
        })
    }

    /// Sends a request; a non-2xx answer becomes `ClientError::Api`.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        self.check(resp).await
    }

    /// Sends a request and parses the JSON answer.
    async fn send_json(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = self.send(req).await?;
        resp.json().await.map_err(|e| self.transport(e))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// Sends a JSON request and returns the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.call_status(method, path, body).await.map(|(_, v)| v)
    }

    /// A JSON call that answers the status too (201 created vs 200 existing).
    pub async fn call_status(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        if bytes.is_empty() {
            return Ok((status, Value::Null));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| ClientError::Api {
            status: StatusCode::OK,
            code: "BAD_RESPONSE".into(),
            message: format!("server answered with invalid JSON: {e}"),
        })?;
        Ok((status, v))
    }

    /// GET returning JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// Streams a GET response into `out`; returns the bytes written.
    pub async fn download<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        path: &str,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        let resp = self.send(self.http.get(self.url(path))).await?;
        let mut stream = resp.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            out.write_all(&chunk).await?;
            n += chunk.len() as u64;
        }
        out.flush().await?;
        Ok(n)
    }

    /// Uploads a component and its manifest as a multipart PUT.
    pub async fn push_component(
        &self,
        path: &str,
        wasm: Vec<u8>,
        manifest: String,
    ) -> Result<Value, ClientError> {
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm).file_name("component.wasm"),
            )
            .part(
                "manifest",
                reqwest::multipart::Part::text(manifest).file_name("plugin.toml"),
            );
        self.send_json(self.http.put(self.url(path)).multipart(form))
            .await
    }

    /// Uploads model files as a multipart POST: a `file` part per `(path, bytes)` (the filename
    /// is the path inside the version, not percent-encoded) and a `meta` JSON part.
    pub async fn upload_model(
        &self,
        path: &str,
        meta: &Value,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Value, ClientError> {
        let mut form = reqwest::multipart::Form::new().percent_encode_noop().part(
            "meta",
            reqwest::multipart::Part::text(meta.to_string()).file_name("meta.json"),
        );
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        }
        self.send_json(self.http.post(self.url(path)).multipart(form))
            .await
    }

    /// PUTs raw bytes; returns the JSON answer.
    pub async fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<Value, ClientError> {
        self.send_json(self.http.put(self.url(path)).body(body))
            .await
    }

    /// Streams a local file as a PUT body.
    pub async fn upload(&self, path: &str, file: &std::path::Path) -> Result<Value, ClientError> {
        let f = tokio::fs::File::open(file).await?;
        let len = f.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
        self.send_json(
            self.http
                .put(self.url(path))
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(body),
        )
        .await
    }

    /// Scores a request on an endpoint's raw route; returns the status and body as they are.
    pub async fn score(
        &self,
        endpoint: &str,
        body: Vec<u8>,
        content_type: &str,
        key: Option<&str>,
        deployment: Option<&str>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut req = self
            .http
            .post(self.url(&format!("/endpoints/{}/score", encode_segment(endpoint))))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(d) = deployment {
            req = req.header("x-atrium-deployment", d);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        Ok((status, bytes.to_vec()))
    }

    /// POSTs raw bytes with a content type; returns the JSON answer.
    pub async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Value, ClientError> {
        self.send_json(
            self.http
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// POSTs a job spec as JSON (and a code archive) as multipart.
    pub async fn submit_job(
        &self,
        path: &str,
        spec: String,
        code: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let mut form = reqwest::multipart::Form::new().part(
            "spec",
            reqwest::multipart::Part::text(spec).file_name("job.json"),
        );
        if let Some(tar) = code {
            form = form.part(
                "code",
                reqwest::multipart::Part::bytes(tar).file_name("code.tar"),
            );
        }
        self.send_json(self.http.post(self.url(path)).multipart(form))
            .await
    }

    /// POSTs a spec file's text (its file name tells its format) and a code archive as multipart.
    pub async fn post_spec(
        &self,
        path: &str,
        spec: String,
        file_name: &str,
        code: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let mut form = reqwest::multipart::Form::new().part(
            "spec",
            reqwest::multipart::Part::text(spec).file_name(file_name.to_string()),
        );
        if let Some(tar) = code {
            form = form.part(
                "code",
                reqwest::multipart::Part::bytes(tar).file_name("code.tar"),
            );
        }
        self.send_json(self.http.post(self.url(path)).multipart(form))
            .await
    }
}
