//! The datastore logic against an in-memory fake S3 that checks every request's signature
//! and payload hash, with scripted faults (refused connections, 503 SlowDown, bodies that
//! break off).

use super::*;
use atrium_sdk::http::FailureKind;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

const NOW: u64 = 1_700_000_000;
const MIB: usize = 1 << 20;

struct Mpu {
    key: String,
    initiated: u64,
    parts: BTreeMap<u32, Vec<u8>>,
}

enum Fault {
    Net(FailureKind),
    Status(u16, &'static str),
    /// The next successful body breaks off after this many bytes.
    BreakBody(usize),
    /// No fault for this request.
    Pass,
}

/// An object's bytes and its `x-amz-meta-*` headers.
type Stored = (Vec<u8>, Vec<(String, String)>);

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Stored>,
    uploads: BTreeMap<String, Mpu>,
    next_upload: u32,
    requests: Vec<String>,
    sleeps: Vec<u64>,
    warnings: Vec<String>,
    clock_ms: u64,
    faults: VecDeque<Fault>,
    /// Every request is refused with this code (403; a HEAD gets no body).
    deny: Option<&'static str>,
    no_bucket: bool,
}

#[derive(Clone)]
struct Fake(Rc<RefCell<State>>);

struct FakeBody {
    data: Vec<u8>,
    pos: usize,
    fail_at: Option<usize>,
}

impl Body for FakeBody {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, SendError> {
        if self.fail_at == Some(self.pos) {
            self.fail_at = None;
            return Err(SendError {
                kind: FailureKind::Broken,
                message: "GET: reading the body: connection reset".into(),
            });
        }
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        // frames of at most 256 KiB, as a socket would deliver them
        let mut end = (self.pos + max.min(256 << 10)).min(self.data.len());
        if let Some(f) = self.fail_at {
            end = end.min(f);
        }
        let out = self.data[self.pos..end].to_vec();
        self.pos = end;
        Ok(Some(out))
    }
}

fn settings() -> Settings {
    Settings {
        endpoint: "http://127.0.0.1:8333".into(),
        authority: "127.0.0.1:8333".into(),
        bucket: "atrium".into(),
        region: "us-east-1".into(),
        prefix: "p/".into(),
        access_key: "atrium-access".into(),
        secret_key: "atrium-secret-key".into(),
        access_key_secret: "s3-access-key".into(),
        secret_key_secret: "s3-secret-key".into(),
        part_size: 5 * MIB,
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn error_doc(code: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>fake {code}</Message></Error>"
    )
    .into_bytes()
}

type Answer3 = (u16, Vec<(String, String)>, Vec<u8>);

impl Fake {
    fn new() -> Self {
        Fake(Rc::new(RefCell::new(State::default())))
    }

    fn client(&self) -> Client<Fake> {
        Client::new(settings(), self.clone())
    }

    fn st(&self) -> std::cell::RefMut<'_, State> {
        self.0.borrow_mut()
    }

    fn requests(&self) -> Vec<String> {
        std::mem::take(&mut self.st().requests)
    }

    fn route(
        &self,
        method: &str,
        key: Option<String>,
        q: &BTreeMap<String, String>,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Answer3 {
        let mut st = self.st();
        let hdr = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let none = Vec::new;
        if st.no_bucket {
            return (404, none(), error_doc("NoSuchBucket"));
        }
        let Some(key) = key else {
            if q.contains_key("uploads") {
                let prefix = q.get("prefix").cloned().unwrap_or_default();
                let mut xml =
                    String::from("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>");
                for (id, u) in &st.uploads {
                    if u.key.starts_with(&prefix) {
                        xml.push_str(&format!(
                            "<Upload><Key>{}</Key><UploadId>{id}</UploadId><Initiated>{}</Initiated></Upload>",
                            s3::escape_xml(&u.key),
                            iso(u.initiated)
                        ));
                    }
                }
                xml.push_str("</ListMultipartUploadsResult>");
                return (200, none(), xml.into_bytes());
            }
            assert_eq!(q.get("list-type").map(String::as_str), Some("2"));
            let prefix = q.get("prefix").cloned().unwrap_or_default();
            let max: usize = q.get("max-keys").map_or(1000, |m| m.parse().unwrap());
            let after = q.get("start-after").cloned();
            let keys: Vec<(String, usize)> = st
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && after.as_ref().is_none_or(|a| *k > a))
                .map(|(k, (d, _))| (k.clone(), d.len()))
                .collect();
            let mut xml = format!(
                "<ListBucketResult><IsTruncated>{}</IsTruncated>",
                keys.len() > max
            );
            for (k, n) in keys.iter().take(max) {
                xml.push_str(&format!(
                    "<Contents><Key>{}</Key><Size>{n}</Size></Contents>",
                    s3::escape_xml(k)
                ));
            }
            xml.push_str("</ListBucketResult>");
            return (200, none(), xml.into_bytes());
        };
        match method {
            "HEAD" => match st.objects.get(&key) {
                Some((d, meta)) => {
                    let mut h = meta.clone();
                    h.push(("content-length".into(), d.len().to_string()));
                    (200, h, Vec::new())
                }
                None => (404, none(), Vec::new()),
            },
            "GET" => match st.objects.get(&key) {
                Some((d, _)) => {
                    let range = hdr("range").expect("reads are ranged");
                    let from: usize = range
                        .strip_prefix("bytes=")
                        .and_then(|r| r.strip_suffix('-'))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if from >= d.len() {
                        return (416, none(), error_doc("InvalidRange"));
                    }
                    let h = vec![(
                        "content-range".to_string(),
                        format!("bytes {from}-{}/{}", d.len() - 1, d.len()),
                    )];
                    (206, h, d[from..].to_vec())
                }
                None => (404, none(), error_doc("NoSuchKey")),
            },
            "PUT" if q.contains_key("uploadId") => {
                let n: u32 = q["partNumber"].parse().unwrap();
                match st.uploads.get_mut(&q["uploadId"]) {
                    Some(u) => {
                        assert_eq!(u.key, key);
                        u.parts.insert(n, body.to_vec());
                        (
                            200,
                            vec![("etag".into(), format!("\"etag-{n}\""))],
                            Vec::new(),
                        )
                    }
                    None => (404, none(), error_doc("NoSuchUpload")),
                }
            }
            "PUT" => {
                let meta = headers
                    .iter()
                    .filter(|(k, _)| k.starts_with("x-amz-meta-"))
                    .cloned()
                    .collect();
                st.objects.insert(key, (body.to_vec(), meta));
                (200, vec![("etag".into(), "\"x\"".into())], Vec::new())
            }
            "POST" if q.contains_key("uploads") => {
                st.next_upload += 1;
                let id = format!("up{}", st.next_upload);
                let initiated = NOW + st.clock_ms / 1000;
                st.uploads.insert(
                    id.clone(),
                    Mpu {
                        key: key.clone(),
                        initiated,
                        parts: BTreeMap::new(),
                    },
                );
                let xml = format!(
                    "<InitiateMultipartUploadResult><Bucket>atrium</Bucket><Key>{key}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>"
                );
                (200, none(), xml.into_bytes())
            }
            "POST" if q.contains_key("uploadId") => {
                let Some(u) = st.uploads.remove(&q["uploadId"]) else {
                    return (404, none(), error_doc("NoSuchUpload"));
                };
                let doc = s3::parse_xml(std::str::from_utf8(body).unwrap()).unwrap();
                let mut data = Vec::new();
                for (i, p) in doc.elements("Part").enumerate() {
                    let n: u32 = p.child_text("PartNumber").unwrap().parse().unwrap();
                    assert_eq!(n as usize, i + 1);
                    assert_eq!(p.child_text("ETag").unwrap(), format!("\"etag-{n}\""));
                    let part = &u.parts[&n];
                    if n as usize != u.parts.len() {
                        assert!(part.len() >= 5 * MIB, "part {n} is too small");
                    }
                    data.extend_from_slice(part);
                }
                st.objects.insert(u.key, (data, Vec::new()));
                (
                    200,
                    none(),
                    b"<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>".to_vec(),
                )
            }
            "DELETE" if q.contains_key("uploadId") => match st.uploads.remove(&q["uploadId"]) {
                Some(_) => (204, none(), Vec::new()),
                None => (404, none(), error_doc("NoSuchUpload")),
            },
            "DELETE" => {
                st.objects.remove(&key);
                (204, none(), Vec::new())
            }
            other => panic!("unexpected {other}"),
        }
    }
}

fn iso(t: u64) -> String {
    let d = s3::amz_date(t);
    format!(
        "{}-{}-{}T{}:{}:{}.000Z",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

impl Transport for Fake {
    type Body = FakeBody;

    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        _timeout_ms: u64,
    ) -> Result<Reply<FakeBody>, SendError> {
        let s = settings();
        let rest = url.strip_prefix(&s.endpoint).expect("the endpoint");
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        self.st().clock_ms += 1;
        self.st()
            .requests
            .push(format!("{method} {}", decode(&format!("{path}?{query}"))));
        // the signature covers exactly what goes out
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {n} header"))
        };
        let date = get("x-amz-date");
        let hash = get("x-amz-content-sha256");
        let plain: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "x-amz-date" | "x-amz-content-sha256" | "authorization"
                )
            })
            .cloned()
            .collect();
        let expect = s3::sign(&s, method, path, query, &plain, &hash, &date);
        assert_eq!(
            expect.last().unwrap().1,
            get("authorization"),
            "signature of {method} {url}"
        );
        assert_eq!(date, s3::amz_date(NOW + self.0.borrow().clock_ms / 1000));
        if hash != s3::UNSIGNED_PAYLOAD {
            assert_eq!(hash, s3::sha256_hex(body.unwrap_or(b"")), "payload hash");
        }
        let fault = self.st().faults.pop_front();
        let mut fail_at = None;
        match fault {
            Some(Fault::Net(kind)) => {
                return Err(SendError {
                    kind,
                    message: format!("{method} {url}: connection refused"),
                });
            }
            Some(Fault::Status(status, code)) => {
                return Ok(Reply {
                    status,
                    headers: Vec::new(),
                    body: FakeBody {
                        data: error_doc(code),
                        pos: 0,
                        fail_at: None,
                    },
                });
            }
            Some(Fault::BreakBody(n)) => fail_at = Some(n),
            Some(Fault::Pass) | None => {}
        }
        if let Some(code) = self.0.borrow().deny {
            let data = if method == "HEAD" {
                Vec::new()
            } else {
                error_doc(code)
            };
            return Ok(Reply {
                status: 403,
                headers: Vec::new(),
                body: FakeBody {
                    data,
                    pos: 0,
                    fail_at: None,
                },
            });
        }
        let key = path
            .strip_prefix("/atrium")
            .unwrap()
            .strip_prefix('/')
            .map(decode);
        let q: BTreeMap<String, String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let (status, headers, data) = self.route(method, key, &q, headers, body.unwrap_or(b""));
        Ok(Reply {
            status,
            headers,
            body: FakeBody {
                data,
                pos: 0,
                fail_at,
            },
        })
    }

    fn sleep_ms(&self, ms: u64) {
        let mut st = self.st();
        st.sleeps.push(ms);
        st.clock_ms += ms;
    }

    fn unix_time(&self) -> u64 {
        NOW + self.0.borrow().clock_ms / 1000
    }

    fn monotonic_ms(&self) -> u64 {
        self.0.borrow().clock_ms
    }

    fn warn(&self, msg: &str) {
        self.st().warnings.push(msg.to_string());
    }
}

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn name(tag: &str) -> String {
    let d = s3::sha256_hex(tag.as_bytes());
    format!("sha256/{}/{d}", &d[..2])
}

fn upload(c: &Client<Fake>, id: &str, data: &[u8], name: &str) -> Result<ObjectMeta, PluginError> {
    let mut u = Upload::new(id)?;
    for chunk in data.chunks(MIB) {
        u.write(c, chunk)?;
    }
    u.finish(c, name)
}

fn download(c: &Client<Fake>, name: &str) -> Vec<u8> {
    let mut st = None;
    let mut out = Vec::new();
    loop {
        let b = read(c, &mut st, name, out.len() as u64, MIB as u32).unwrap();
        if b.is_empty() {
            return out;
        }
        assert!(
            b.len() == MIB || out.len() + b.len() == stat(c, name).unwrap().unwrap().size as usize
        );
        out.extend_from_slice(&b);
    }
}

fn msg(e: PluginError) -> String {
    format!("{e:?}")
        .trim_start_matches("PluginError::")
        .to_string()
}

#[test]
fn a_small_object_is_one_put() {
    let f = Fake::new();
    let c = f.client();
    let data = content(3 * MIB + 5, 1);
    let n = name("small");
    let meta = upload(&c, "u1", &data, &n).unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(f.requests(), vec![format!("PUT /atrium/p/{n}?")]);
    assert_eq!(stat(&c, &n).unwrap().unwrap().size, data.len() as u64);
    f.requests();
    assert_eq!(download(&c, &n), data);
    // one HEAD, one GET for the whole download (the final empty read needs no request)
    let reqs = f.requests();
    assert_eq!(
        reqs.iter().filter(|r| r.starts_with("GET")).count(),
        1,
        "{reqs:?}"
    );
    delete(&c, &n).unwrap();
    assert!(stat(&c, &n).unwrap().is_none());
    // deleting again is fine
    delete(&c, &n).unwrap();
}

#[test]
fn exactly_one_part_is_still_one_put() {
    let f = Fake::new();
    let c = f.client();
    let data = content(5 * MIB, 2);
    upload(&c, "u1", &data, &name("five")).unwrap();
    let reqs = f.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(f.st().uploads.is_empty());
}

#[test]
fn an_empty_object_is_one_put_and_reads_empty() {
    let f = Fake::new();
    let c = f.client();
    let n = format!("sha256/e3/{}", s3::EMPTY_SHA256);
    assert_eq!(upload(&c, "u1", b"", &n).unwrap().size, 0);
    let mut st = None;
    assert!(read(&c, &mut st, &n, 0, MIB as u32).unwrap().is_empty());
    let (page, next) = list(&c, "sha256/", None, 1000).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].size, 0);
    assert!(next.is_none());
}

#[test]
fn a_large_object_is_a_multipart_upload_with_an_index() {
    let f = Fake::new();
    let c = f.client();
    let data = content(12 * MIB + 3, 3);
    let n = name("large");
    let mut u = Upload::new("up-1").unwrap();
    for (i, chunk) in data.chunks(MIB).enumerate() {
        u.write(&c, chunk).unwrap();
        // parts go out as they fill; nothing is visible under the name before finish
        assert!(!f.st().objects.contains_key(&format!("p/{n}")));
        assert!(
            u.buf.len() <= 5 * MIB && u.buf.capacity() <= 5 * MIB,
            "chunk {i}"
        );
    }
    assert_eq!(
        f.requests(),
        vec![
            "POST /atrium/p/blobs/up-1?uploads=".to_string(),
            "PUT /atrium/p/blobs/up-1?partNumber=1&uploadId=up1".into(),
            "PUT /atrium/p/blobs/up-1?partNumber=2&uploadId=up1".into(),
        ]
    );
    let meta = u.finish(&c, &n).unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(
        f.requests(),
        vec![
            "PUT /atrium/p/blobs/up-1?partNumber=3&uploadId=up1".to_string(),
            "POST /atrium/p/blobs/up-1?uploadId=up1".into(),
            format!("HEAD /atrium/p/{n}?"),
            format!("PUT /atrium/p/{n}?"),
        ]
    );
    {
        let st = f.st();
        let (idx, meta) = &st.objects[&format!("p/{n}")];
        assert!(idx.is_empty());
        assert!(meta.contains(&("x-amz-meta-atrium-blob".into(), "blobs/up-1".into())));
        assert!(meta.contains(&("x-amz-meta-atrium-size".into(), data.len().to_string())));
        assert_eq!(st.objects["p/blobs/up-1"].0, data);
    }
    assert_eq!(stat(&c, &n).unwrap().unwrap().size, data.len() as u64);
    f.requests();
    assert_eq!(download(&c, &n), data);
    let reqs = f.requests();
    assert_eq!(
        reqs.iter()
            .filter(|r| r.starts_with("GET"))
            .collect::<Vec<_>>(),
        vec!["GET /atrium/p/blobs/up-1?"],
        "one GET of the blob for the whole download"
    );
    // listed under its name with the blob's size; the blob itself is not listed
    let (page, next) = list(&c, "sha256/", None, 1000).unwrap();
    assert_eq!(
        page.iter()
            .map(|o| (o.name.clone(), o.size))
            .collect::<Vec<_>>(),
        vec![(n.clone(), data.len() as u64)]
    );
    assert!(next.is_none());
    let (page, _) = list(&c, "", None, 1000).unwrap();
    assert_eq!(page.len(), 1);
    f.requests();
    delete(&c, &n).unwrap();
    assert_eq!(
        f.requests(),
        [
            format!("HEAD /atrium/p/{n}?"),
            format!("DELETE /atrium/p/{n}?"),
            "DELETE /atrium/p/blobs/up-1?".to_string()
        ]
    );
    assert!(f.st().objects.is_empty());
}

#[test]
fn the_same_large_content_twice_keeps_one_copy() {
    let f = Fake::new();
    let c = f.client();
    let data = content(6 * MIB, 4);
    let n = name("dup");
    upload(&c, "first", &data, &n).unwrap();
    let meta = upload(&c, "second", &data, &n).unwrap();
    assert_eq!(meta.size, data.len() as u64);
    let st = f.st();
    let keys: Vec<&String> = st.objects.keys().collect();
    assert_eq!(keys, vec!["p/blobs/first", &format!("p/{n}")]);
    assert!(st.uploads.is_empty());
}

#[test]
fn an_unfinished_upload_is_aborted_when_discarded() {
    let f = Fake::new();
    let c = f.client();
    let mut u = Upload::new("gone").unwrap();
    for chunk in content(7 * MIB, 5).chunks(MIB) {
        u.write(&c, chunk).unwrap();
    }
    assert_eq!(f.st().uploads.len(), 1);
    f.requests();
    u.discard(&c);
    assert_eq!(
        f.requests(),
        vec!["DELETE /atrium/p/blobs/gone?uploadId=up1"]
    );
    assert!(f.st().uploads.is_empty() && f.st().objects.is_empty());
    // and a small one left nothing behind to remove
    let mut u = Upload::new("small").unwrap();
    u.write(&c, b"abc").unwrap();
    u.discard(&c);
    assert!(f.requests().is_empty());
}

#[test]
fn a_completed_blob_without_its_index_is_removed_when_discarded() {
    let f = Fake::new();
    let c = f.client();
    let mut u = Upload::new("half").unwrap();
    for chunk in content(6 * MIB, 6).chunks(MIB) {
        u.write(&c, chunk).unwrap();
    }
    // finish: the last part, the completion and the HEAD pass; the index PUT fails for good
    f.st().faults.extend(
        [Fault::Pass, Fault::Pass, Fault::Pass]
            .into_iter()
            .chain((0..5).map(|_| Fault::Status(503, "SlowDown"))),
    );
    let e = msg(u.finish(&c, &name("half")).unwrap_err());
    assert!(
        e.contains("HTTP 503, SlowDown") && e.contains("(5 attempts over"),
        "{e}"
    );
    assert_eq!(u.phase, Phase::Completed);
    assert!(f.st().objects.contains_key("p/blobs/half"));
    u.discard(&c);
    assert!(f.st().objects.is_empty(), "the unreferenced blob is gone");
}

#[test]
fn throttling_and_server_errors_are_retried_with_backoff() {
    let f = Fake::new();
    let c = f.client();
    f.st().faults.extend([
        Fault::Status(503, "SlowDown"),
        Fault::Status(500, "InternalError"),
    ]);
    let n = name("retry");
    upload(&c, "u1", b"hello", &n).unwrap();
    assert_eq!(f.st().sleeps, vec![100, 200]);
    assert_eq!(f.requests().len(), 3);
    // a 400 with a retryable code is sent again too
    f.st()
        .faults
        .push_back(Fault::Status(400, "RequestTimeout"));
    assert!(stat(&c, &n).unwrap().is_some());
    assert_eq!(f.requests().len(), 2);
}

#[test]
fn refused_connections_are_retried_then_explained() {
    let f = Fake::new();
    let c = f.client();
    f.st()
        .faults
        .extend((0..5).map(|_| Fault::Net(FailureKind::Refused)));
    let e = msg(clean(&c, None).unwrap_err());
    assert_eq!(f.st().sleeps, vec![100, 200, 400, 800]);
    assert!(
        e.starts_with("Internal(\"listing bucket 'atrium': cannot reach S3 at http://127.0.0.1:8333: connection refused (5 attempts over 1.5 s): is the store running there"),
        "{e}"
    );
}

#[test]
fn a_denied_host_is_not_retried() {
    let f = Fake::new();
    let c = f.client();
    f.st().faults.push_back(Fault::Net(FailureKind::Denied));
    let e = msg(clean(&c, None).unwrap_err());
    assert!(f.st().sleeps.is_empty());
    assert_eq!(f.requests().len(), 1);
    assert!(e.starts_with("AccessDenied(\"listing bucket 'atrium': the host does not let this plugin reach 127.0.0.1:8333"), "{e}");
}

#[test]
fn refusals_are_not_retried_and_say_what_to_fix() {
    let f = Fake::new();
    let c = f.client();
    f.st().deny = Some("SignatureDoesNotMatch");
    let e = msg(clean(&c, None).unwrap_err());
    assert_eq!(f.requests().len(), 1);
    assert!(
        e.contains(
            "the secret key in secret 's3-secret-key' (config 'secret_key_secret') is wrong"
        ),
        "{e}"
    );
    // a HEAD's 403 has no body: the probe finds out why
    let e = msg(stat(&c, &name("x")).unwrap_err());
    assert_eq!(f.requests().len(), 2);
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    f.st().deny = Some("InvalidAccessKeyId");
    let e = msg(upload(&c, "u", b"x", &name("x")).unwrap_err());
    assert!(
        e.contains("does not know the access key 'atrium-access'")
            && e.contains("secret 's3-access-key'"),
        "{e}"
    );
    f.st().deny = None;
    f.st().no_bucket = true;
    let e = msg(clean(&c, None).unwrap_err());
    assert_eq!(
        e,
        "InvalidArgument(\"bucket 'atrium' does not exist at http://127.0.0.1:8333 (config 'bucket'): create it, or fix config 'bucket' or 'endpoint'\")"
    );
}

#[test]
fn a_broken_download_reopens_where_it_broke() {
    let f = Fake::new();
    let c = f.client();
    let data = content(3 * MIB, 7);
    let n = name("broken");
    upload(&c, "u1", &data, &n).unwrap();
    f.requests();
    let mut st = None;
    let first = read(&c, &mut st, &n, 0, MIB as u32).unwrap();
    assert_eq!(first, data[..MIB]);
    // the stream is open; make the next GET's body break 100 bytes in, after a reopen
    st.as_mut().unwrap().body.as_mut().unwrap().fail_at = Some(MIB + 300_000);
    f.st().faults.push_back(Fault::BreakBody(100));
    let second = read(&c, &mut st, &n, MIB as u64, MIB as u32).unwrap();
    assert_eq!(second, data[MIB..2 * MIB]);
    let third = read(&c, &mut st, &n, 2 * MIB as u64, MIB as u32).unwrap();
    assert_eq!(third, data[2 * MIB..]);
    assert!(
        read(&c, &mut st, &n, 3 * MIB as u64, MIB as u32)
            .unwrap()
            .is_empty()
    );
    let reqs = f.requests();
    assert_eq!(
        reqs,
        vec![
            format!("HEAD /atrium/p/{n}?"),
            format!("GET /atrium/p/{n}?"),
            format!("GET /atrium/p/{n}?"),
            format!("GET /atrium/p/{n}?"),
        ]
    );
    assert_eq!(f.st().sleeps, vec![100, 200]);
    assert_eq!(f.st().warnings.len(), 2);
}

#[test]
fn a_download_that_keeps_breaking_gives_up() {
    let f = Fake::new();
    let c = f.client();
    let data = content(2 * MIB, 8);
    let n = name("flaky");
    upload(&c, "u1", &data, &n).unwrap();
    let mut st = None;
    read(&c, &mut st, &n, 0, 10).unwrap();
    st.as_mut().unwrap().body = None;
    // every GET now breaks off 10 bytes in
    f.st().faults.extend((0..5).map(|_| Fault::BreakBody(10)));
    let e = msg(read(&c, &mut st, &n, 10, MIB as u32).unwrap_err());
    assert!(
        e.contains("the connection to S3 at http://127.0.0.1:8333 broke (5 attempts"),
        "{e}"
    );
}

#[test]
fn out_of_order_reads_reopen_and_the_end_needs_no_request() {
    let f = Fake::new();
    let c = f.client();
    let data = content(2 * MIB, 9);
    let n = name("seek");
    upload(&c, "u1", &data, &n).unwrap();
    f.requests();
    let mut st = None;
    assert_eq!(read(&c, &mut st, &n, 1000, 10).unwrap(), data[1000..1010]);
    assert_eq!(read(&c, &mut st, &n, 1010, 10).unwrap(), data[1010..1020]);
    assert_eq!(read(&c, &mut st, &n, 5, 10).unwrap(), data[5..15]);
    assert_eq!(
        read(&c, &mut st, &n, 2 * MIB as u64 - 4, 10).unwrap(),
        data[2 * MIB - 4..]
    );
    assert!(
        read(&c, &mut st, &n, 2 * MIB as u64, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        read(&c, &mut st, &n, 9 * MIB as u64, 10)
            .unwrap()
            .is_empty()
    );
    let gets = f.requests().iter().filter(|r| r.starts_with("GET")).count();
    assert_eq!(gets, 3);
    let e = msg(read(&c, &mut None, &name("absent"), 0, 10).unwrap_err());
    assert!(e.starts_with("NotFound("), "{e}");
}

#[test]
fn listing_pages_in_name_order_with_a_cursor() {
    let f = Fake::new();
    let c = f.client();
    let mut names: Vec<String> = (0..5).map(|i| name(&format!("l{i}"))).collect();
    for (i, n) in names.iter().enumerate() {
        upload(&c, &format!("u{i}"), &content(10 + i, 0), n).unwrap();
    }
    // another datastore's object in the bucket, outside our prefix
    f.st()
        .objects
        .insert("other/sha256/00/x".into(), (vec![1], Vec::new()));
    names.sort();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = list(&c, "sha256/", cursor.as_deref(), 2).unwrap();
        pages += 1;
        got.extend(page.into_iter().map(|o| o.name));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(got, names);
    assert_eq!(pages, 3);
    let (all, _) = list(&c, "sha256/", None, 1000).unwrap();
    assert_eq!(
        all.iter().map(|o| o.size).sum::<u64>(),
        10 + 11 + 12 + 13 + 14
    );
}

#[test]
fn cleaning_aborts_only_stale_uploads_of_this_datastore() {
    let f = Fake::new();
    let c = f.client();
    let mut u = Upload::new("recent").unwrap();
    for chunk in content(6 * MIB, 1).chunks(MIB) {
        u.write(&c, chunk).unwrap();
    }
    {
        let mut st = f.st();
        st.uploads.insert(
            "old1".into(),
            Mpu {
                key: "p/blobs/stale".into(),
                initiated: NOW - 2 * 86_400,
                parts: BTreeMap::new(),
            },
        );
        st.uploads.insert(
            "old2".into(),
            Mpu {
                key: "elsewhere/blobs/stale".into(),
                initiated: NOW - 2 * 86_400,
                parts: BTreeMap::new(),
            },
        );
    }
    assert_eq!(clean(&c, None).unwrap(), 1);
    let left: Vec<String> = f.st().uploads.keys().cloned().collect();
    assert_eq!(left, vec!["old2".to_string(), "up1".to_string()]);
    // the upload named goes whatever its age; a completed blob stays
    assert_eq!(clean(&c, Some("recent")).unwrap(), 1);
    assert_eq!(clean(&c, Some("recent")).unwrap(), 0);
    f.st()
        .objects
        .insert("p/blobs/done".into(), (vec![1], Vec::new()));
    assert_eq!(clean(&c, Some("done")).unwrap(), 0);
    assert!(f.st().objects.contains_key("p/blobs/done"));
    assert!(clean(&c, Some("../x")).is_err());
}

#[test]
fn names_are_checked() {
    let f = Fake::new();
    let c = f.client();
    assert!(stat(&c, "blobs/x").is_err());
    assert!(delete(&c, "../x").is_err());
    assert!(upload(&c, "u", b"x", "a//b").is_err());
    assert!(Upload::new("a b").is_err());
    let mut u = Upload::new("big").unwrap();
    assert!(u.write(&c, &vec![0; MIB + 1]).is_err());
    assert!(f.requests().is_empty());
}
