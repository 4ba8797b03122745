//! The datastore against a real S3 store (SeaweedFS from `scripts/engines/seaweedfs.sh`), with
//! the plugin's own signing and logic over a plain-TCP HTTP/1.1 client instead of wasi:http.
//! They need the `S3_*` variables of a started SeaweedFS (scripts/test.sh sets them):
//!
//! ```text
//! scripts/engines/seaweedfs.sh start /tmp/s3 && set -a && . /tmp/s3/env && set +a
//! (cd plugins && cargo test -p storage-s3)
//! ```

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atrium_sdk::http::{FailureKind, SendError};
use atrium_sdk::storage::atrium::plugin::types::PluginError;

use crate::s3::{self, Settings};
use crate::store::{self, Body, Client, Reply, Req, Transport, Upload};

const MIB: usize = 1 << 20;

/// HTTP/1.1 over `TcpStream`, one connection per request, counting requests by method.
#[derive(Clone)]
struct Tcp {
    start: Instant,
    gets: Rc<Cell<u32>>,
    requests: Rc<Cell<u32>>,
}

enum Framing {
    Empty,
    Length(u64),
    Chunked { left: u64, done: bool },
    UntilClose,
}

struct TcpBody {
    r: BufReader<TcpStream>,
    framing: Framing,
}

fn broken(m: impl Into<String>) -> SendError {
    SendError {
        kind: FailureKind::Broken,
        message: m.into(),
    }
}

impl Body for TcpBody {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, SendError> {
        let io = |e: std::io::Error| broken(format!("reading the body: {e}"));
        let want = match &mut self.framing {
            Framing::Empty => return Ok(None),
            Framing::Length(0) => return Ok(None),
            Framing::Length(n) => (*n).min(max as u64) as usize,
            Framing::Chunked { done: true, .. } => return Ok(None),
            Framing::Chunked { left, done } => {
                if *left == 0 {
                    let mut line = String::new();
                    self.r.read_line(&mut line).map_err(io)?;
                    let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| broken(format!("bad chunk size {line:?}")))?;
                    if size == 0 {
                        loop {
                            let mut t = String::new();
                            self.r.read_line(&mut t).map_err(io)?;
                            if t.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(None);
                    }
                    *left = size;
                }
                (*left).min(max as u64) as usize
            }
            Framing::UntilClose => max,
        };
        let mut buf = vec![0; want.min(256 << 10)];
        let n = self.r.read(&mut buf).map_err(io)?;
        buf.truncate(n);
        match &mut self.framing {
            Framing::Length(left) => {
                if n == 0 {
                    return Err(broken("the body ended early"));
                }
                *left -= n as u64;
            }
            Framing::Chunked { left, .. } => {
                if n == 0 {
                    return Err(broken("the body ended early"));
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = String::new();
                    self.r.read_line(&mut crlf).map_err(io)?;
                }
            }
            Framing::UntilClose if n == 0 => return Ok(None),
            _ => {}
        }
        Ok(Some(buf))
    }
}

impl Tcp {
    fn new() -> Self {
        Tcp {
            start: Instant::now(),
            gets: Rc::new(Cell::new(0)),
            requests: Rc::new(Cell::new(0)),
        }
    }
}

impl Transport for Tcp {
    type Body = TcpBody;

    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Result<Reply<TcpBody>, SendError> {
        self.requests.set(self.requests.get() + 1);
        if method == "GET" {
            self.gets.set(self.gets.get() + 1);
        }
        let rest = url.strip_prefix("http://").expect("http only");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let stream = TcpStream::connect(authority).map_err(|e| SendError {
            kind: if e.kind() == std::io::ErrorKind::ConnectionRefused {
                FailureKind::Refused
            } else {
                FailureKind::Other
            },
            message: format!("{method} {url}: {e}"),
        })?;
        let t = Some(Duration::from_millis(timeout_ms));
        stream.set_read_timeout(t).unwrap();
        stream.set_write_timeout(t).unwrap();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if body.is_some() || !matches!(method, "GET" | "HEAD") {
            head.push_str(&format!(
                "content-length: {}\r\n",
                body.map_or(0, <[u8]>::len)
            ));
        }
        head.push_str("\r\n");
        let mut w = &stream;
        let io = |e: std::io::Error| broken(format!("{method} {url}: {e}"));
        w.write_all(head.as_bytes()).map_err(io)?;
        if let Some(b) = body {
            w.write_all(b).map_err(io)?;
        }
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        r.read_line(&mut line).map_err(io)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| broken(format!("{method} {url}: bad status line {line:?}")))?;
        let mut hs = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).map_err(io)?;
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            hs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let get = |n: &str| hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Empty
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked {
                left: 0,
                done: false,
            }
        } else if let Some(n) = get("content-length") {
            Framing::Length(n.parse().unwrap())
        } else {
            Framing::UntilClose
        };
        if std::env::var_os("S3_TRACE").is_some() {
            eprintln!(
                "{:>8.3} s {method} {url} -> {status}",
                self.start.elapsed().as_secs_f64()
            );
        }
        Ok(Reply {
            status,
            headers: hs,
            body: TcpBody { r, framing },
        })
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn unix_time(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn monotonic_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn warn(&self, msg: &str) {
        eprintln!("warn: {msg}");
    }
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!("{k} is not set: source the env file of scripts/engines/seaweedfs.sh start")
    })
}

/// Settings for `bucket` with these overrides (an empty value removes a key).
fn settings(bucket: &str, extra: &[(&str, &str)]) -> Result<Settings, PluginError> {
    let mut cfg: std::collections::BTreeMap<String, String> = [
        ("endpoint".to_string(), env("S3_ENDPOINT")),
        ("bucket".to_string(), bucket.to_string()),
        ("prefix".to_string(), "live/".to_string()),
        ("part_size_mb".to_string(), "5".to_string()),
    ]
    .into_iter()
    .collect();
    for (k, v) in extra {
        cfg.insert(k.to_string(), v.to_string());
    }
    let (ak, sk) = (env("S3_ACCESS_KEY"), env("S3_SECRET_KEY"));
    let (rak, rsk) = (
        std::env::var("S3_READER_ACCESS_KEY").unwrap_or_default(),
        std::env::var("S3_READER_SECRET_KEY").unwrap_or_default(),
    );
    Settings::load(
        |k| cfg.get(k).cloned().filter(|v| !v.is_empty()),
        |name| match name {
            "s3-access-key" => Ok(ak.clone()),
            "s3-secret-key" => Ok(sk.clone()),
            "reader-access" => Ok(rak.clone()),
            "reader-secret" => Ok(rsk.clone()),
            "wrong-access" => Ok("no-such-key".into()),
            "wrong-secret" => Ok("not-the-secret".into()),
            other => Err(PluginError::AccessDenied(format!("{other} is not granted"))),
        },
    )
}

/// A client on a fresh bucket (created with a signed `PUT /bucket`).
fn fresh(tag: &str) -> (Client<Tcp>, Tcp) {
    let bucket = format!(
        "atrium-live-{tag}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let t = Tcp::new();
    let c = Client::new(settings(&bucket, &[]).unwrap(), t.clone());
    let a = c
        .call(&Req::new("PUT", None), "creating the bucket")
        .unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    (c, t)
}

fn msg(e: PluginError) -> String {
    format!("{e:?}")
        .trim_start_matches("PluginError::")
        .to_string()
}

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn name_of(data: &[u8]) -> String {
    let d = s3::sha256_hex(data);
    format!("sha256/{}/{d}", &d[..2])
}

fn upload(c: &Client<Tcp>, id: &str, data: &[u8]) -> String {
    let name = name_of(data);
    let mut u = Upload::new(id).unwrap();
    for chunk in data.chunks(MIB) {
        u.write(c, chunk).unwrap();
    }
    let meta = u.finish(c, &name).unwrap();
    assert_eq!(meta.size, data.len() as u64);
    name
}

fn download(c: &Client<Tcp>, name: &str) -> Vec<u8> {
    let mut st = None;
    let mut out = Vec::new();
    loop {
        let b = store::read(c, &mut st, name, out.len() as u64, MIB as u32).unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend_from_slice(&b);
    }
}

/// Every key in the bucket (our prefix and beyond), from a raw listing.
fn keys(c: &Client<Tcp>) -> Vec<String> {
    let a = c
        .call(&Req::new("GET", None).query("list-type", "2"), "listing")
        .unwrap();
    s3::parse_list_objects(&a.body)
        .unwrap()
        .objects
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Unfinished multipart uploads in the bucket.
fn uploads(c: &Client<Tcp>) -> Vec<String> {
    let a = c
        .call(
            &Req::new("GET", None).query("uploads", ""),
            "listing uploads",
        )
        .unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    s3::parse_list_uploads(&a.body)
        .unwrap()
        .uploads
        .into_iter()
        .map(|u| u.key)
        .collect()
}

#[test]
fn live_small_objects() {
    let (c, t) = fresh("small");
    assert_eq!(store::clean(&c, None).unwrap(), 0);
    let data = content(MIB + 17, 1);
    let name = upload(&c, "small-1", &data);
    assert_eq!(keys(&c), vec![format!("live/{name}")]);
    assert_eq!(
        store::stat(&c, &name).unwrap().unwrap().size,
        data.len() as u64
    );
    t.gets.set(0);
    assert_eq!(download(&c, &name), data);
    assert_eq!(t.gets.get(), 1);
    // out of order, and past the end
    let mut st = None;
    assert_eq!(
        store::read(&c, &mut st, &name, 1000, 10).unwrap(),
        data[1000..1010]
    );
    assert_eq!(store::read(&c, &mut st, &name, 7, 3).unwrap(), data[7..10]);
    assert!(
        store::read(&c, &mut st, &name, data.len() as u64, 10)
            .unwrap()
            .is_empty()
    );
    // the empty content
    let empty = upload(&c, "empty-1", b"");
    assert!(download(&c, &empty).is_empty());
    let (page, next) = store::list(&c, "sha256/", None, 1000).unwrap();
    assert_eq!(page.len(), 2);
    assert!(next.is_none());
    store::delete(&c, &name).unwrap();
    store::delete(&c, &name).unwrap();
    assert!(store::stat(&c, &name).unwrap().is_none());
    let e = msg(store::read(&c, &mut None, &name, 0, 10).unwrap_err());
    assert!(e.starts_with("NotFound("), "{e}");
}

#[test]
fn live_large_objects() {
    let (c, t) = fresh("large");
    let data = content(13 * MIB + 5, 2);
    let started = Instant::now();
    let name = upload(&c, "large-1", &data);
    eprintln!("13 MiB multipart upload: {:?}", started.elapsed());
    let mut ks = keys(&c);
    ks.sort();
    assert_eq!(
        ks,
        vec!["live/blobs/large-1".to_string(), format!("live/{name}")]
    );
    let a = c
        .call(&Req::new("HEAD", Some(c.s.key(&name))), "head")
        .unwrap();
    let meta = |k: &str| {
        a.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        meta("x-amz-meta-atrium-blob").as_deref(),
        Some("blobs/large-1")
    );
    assert_eq!(meta("x-amz-meta-atrium-size"), Some(data.len().to_string()));
    assert_eq!(meta("content-length").as_deref(), Some("0"));
    assert_eq!(
        store::stat(&c, &name).unwrap().unwrap().size,
        data.len() as u64
    );
    t.gets.set(0);
    let started = Instant::now();
    assert_eq!(download(&c, &name), data);
    eprintln!("13 MiB download in 1 MiB reads: {:?}", started.elapsed());
    assert_eq!(t.gets.get(), 1, "one GET for the whole download");
    // a read across the part boundaries, from the middle
    let mut st = None;
    let off = 5 * MIB as u64 - 10;
    assert_eq!(
        store::read(&c, &mut st, &name, off, MIB as u32).unwrap(),
        data[off as usize..off as usize + MIB]
    );
    let (page, _) = store::list(&c, "sha256/", None, 1000).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].size, data.len() as u64);
    // the same content again keeps one copy
    let again = upload(&c, "large-2", &data);
    assert_eq!(again, name);
    let mut ks = keys(&c);
    ks.sort();
    assert_eq!(
        ks,
        vec!["live/blobs/large-1".to_string(), format!("live/{name}")]
    );
    assert!(uploads(&c).is_empty());
    store::delete(&c, &name).unwrap();
    assert!(keys(&c).is_empty(), "index and blob are gone");
}

#[test]
fn live_unfinished_uploads() {
    let (c, _) = fresh("unfinished");
    // dropped by the host: the writer's destructor aborts it
    let mut u = Upload::new("dropped").unwrap();
    for chunk in content(6 * MIB, 3).chunks(MIB) {
        u.write(&c, chunk).unwrap();
    }
    assert_eq!(uploads(&c), vec!["live/blobs/dropped".to_string()]);
    u.discard(&c);
    assert!(uploads(&c).is_empty());
    // its instance trapped: clean-incomplete with its id aborts it
    let mut u = Upload::new("trapped").unwrap();
    for chunk in content(6 * MIB, 4).chunks(MIB) {
        u.write(&c, chunk).unwrap();
    }
    drop(u);
    // a start-up clean leaves young uploads alone (another host may be writing them)
    assert_eq!(store::clean(&c, None).unwrap(), 0);
    assert_eq!(uploads(&c), vec!["live/blobs/trapped".to_string()]);
    assert_eq!(store::clean(&c, Some("trapped")).unwrap(), 1);
    assert!(uploads(&c).is_empty());
    assert_eq!(store::clean(&c, Some("trapped")).unwrap(), 0);
    assert!(keys(&c).is_empty());
}

#[test]
fn live_listing_pages() {
    let (c, _) = fresh("list");
    let mut names: Vec<String> = (0..5)
        .map(|i| upload(&c, &format!("l-{i}"), &content(100 + i, i as u8)))
        .collect();
    names.push(upload(&c, "l-big", &content(6 * MIB, 9)));
    names.sort();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = store::list(&c, "sha256/", cursor.as_deref(), 2).unwrap();
        assert!(page.len() <= 2);
        got.extend(page);
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        got.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        names
    );
    assert!(got.iter().any(|o| o.size == 6 * MIB as u64));
}

#[test]
fn live_errors() {
    let (c, _) = fresh("errors");
    let bucket = c.s.bucket.clone();
    let endpoint = env("S3_ENDPOINT");
    let probe = |extra: &[(&str, &str)]| {
        let c = Client::new(settings(&bucket, extra).unwrap(), Tcp::new());
        msg(store::clean(&c, None).unwrap_err())
    };
    let e = probe(&[("secret_key_secret", "wrong-secret")]);
    eprintln!("wrong secret: {e}");
    assert!(
        e.contains("SignatureDoesNotMatch")
            && e.contains("secret 'wrong-secret' (config 'secret_key_secret') is wrong"),
        "{e}"
    );
    let e = probe(&[("access_key_secret", "wrong-access")]);
    eprintln!("wrong access key: {e}");
    assert!(
        e.contains("does not know the access key 'no-such-key' (InvalidAccessKeyId"),
        "{e}"
    );
    let e = probe(&[("bucket", "no-such-bucket-atrium")]);
    eprintln!("missing bucket: {e}");
    assert_eq!(
        e,
        format!(
            "InvalidArgument(\"bucket 'no-such-bucket-atrium' does not exist at {endpoint} (config 'bucket'): create it, or fix config 'bucket' or 'endpoint'\")"
        )
    );
    // a HEAD with a wrong secret has no body: the probe says why
    let bad = Client::new(
        settings(&bucket, &[("secret_key_secret", "wrong-secret")]).unwrap(),
        Tcp::new(),
    );
    let e = msg(store::stat(&bad, "sha256/00/x").unwrap_err());
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    if !std::env::var("S3_READER_ACCESS_KEY")
        .unwrap_or_default()
        .is_empty()
    {
        let reader = Client::new(
            settings(
                &bucket,
                &[
                    ("access_key_secret", "reader-access"),
                    ("secret_key_secret", "reader-secret"),
                ],
            )
            .unwrap(),
            Tcp::new(),
        );
        let mut u = Upload::new("denied").unwrap();
        u.write(&reader, b"x").unwrap();
        let e = msg(u.finish(&reader, "sha256/00/denied").unwrap_err());
        eprintln!("read-only identity writing: {e}");
        assert!(
            e.starts_with("AccessDenied(") && e.contains("AccessDenied"),
            "{e}"
        );
    }
    let started = Instant::now();
    let e = probe(&[("endpoint", "http://127.0.0.1:9")]);
    eprintln!("unreachable: {e} ({:?})", started.elapsed());
    assert!(
        e.contains(
            "cannot reach S3 at http://127.0.0.1:9: connection refused (5 attempts over 1.5 s)"
        ),
        "{e}"
    );
}
