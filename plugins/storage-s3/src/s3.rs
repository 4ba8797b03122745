//! The S3 protocol without any I/O: configuration, SigV4 signing, request URLs, the XML of
//! S3's answers, and what its errors mean in words an operator can act on. Speaks path-style
//! URLs (`{endpoint}/{bucket}/{key}`), which every S3-compatible store serves.

use atrium_sdk::http::{FailureKind, SendError};
use atrium_sdk::storage::atrium::plugin::types::PluginError;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The region used when `region` is not set.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The secret holding the access key id when `access_key_secret` is not set.
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "s3-access-key";
/// The secret holding the secret key when `secret_key_secret` is not set.
pub const DEFAULT_SECRET_KEY_SECRET: &str = "s3-secret-key";
/// The part size when `part_size_mb` is not set.
pub const DEFAULT_PART_SIZE_MB: u64 = 8;
/// The smallest part size S3 accepts for all parts but the last.
pub const MIN_PART_SIZE_MB: u64 = 5;
/// The largest part size: one part is buffered in the plugin's memory.
pub const MAX_PART_SIZE_MB: u64 = 32;
/// The most parts one multipart upload may have.
pub const MAX_PARTS: u32 = 10_000;
/// The payload hash of a body that is not hashed (bulk bytes: the host hashes those).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of nothing.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Metadata of an index object: the key (under the prefix) of the blob holding the bytes.
pub const META_BLOB: &str = "x-amz-meta-atrium-blob";
/// Metadata of an index object: the size of the blob.
pub const META_SIZE: &str = "x-amz-meta-atrium-size";
/// Where multipart uploads put their bytes, under the prefix; never a content name.
pub const BLOBS: &str = "blobs/";
/// How many times a request is sent before giving up.
pub const ATTEMPTS: u32 = 5;
/// The wait before the second attempt; it doubles for each further one.
pub const FIRST_BACKOFF_MS: u64 = 100;

/// The plugin's configuration and credentials, checked.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// The store's base URL without a trailing `/` (`http://127.0.0.1:8333`).
    pub endpoint: String,
    /// `host[:port]` of the endpoint, as sent in `Host` and signed.
    pub authority: String,
    /// The bucket.
    pub bucket: String,
    /// The SigV4 region.
    pub region: String,
    /// The key prefix inside the bucket: empty, or ending in `/`.
    pub prefix: String,
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    /// The name of the secret holding the access key id.
    pub access_key_secret: String,
    /// The name of the secret holding the secret key.
    pub secret_key_secret: String,
    /// The part size in bytes.
    pub part_size: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("part_size", &self.part_size)
            .finish()
    }
}

fn invalid(m: impl Into<String>) -> PluginError {
    PluginError::InvalidArgument(m.into())
}

/// Whether `s` is a bucket name S3 accepts: 3 to 63 lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit.
pub fn valid_bucket(s: &str) -> bool {
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| edge(b) || b == b'.' || b == b'-' || b == b'_')
        && s.bytes().next().is_some_and(edge)
        && s.bytes().last().is_some_and(edge)
        && !s.contains("..")
}

impl Settings {
    /// Reads and checks the configuration: `config` answers config keys, `secret` resolves
    /// secret names (as the host's `config::get` and `secrets::get` do).
    pub fn load(
        config: impl Fn(&str) -> Option<String>,
        secret: impl Fn(&str) -> Result<String, PluginError>,
    ) -> Result<Self, PluginError> {
        let get = |k: &str| {
            config(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let endpoint = get("endpoint").ok_or_else(|| {
            invalid(
                "config 'endpoint' is required: the S3 store's base URL, e.g. http://127.0.0.1:8333",
            )
        })?;
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        let authority = match rest {
            Some(r)
                if !r.is_empty()
                    && !r.contains(['/', '?', '#', '@'])
                    && !r.chars().any(|c| c.is_control() || c.is_whitespace()) =>
            {
                r.to_string()
            }
            _ => {
                return Err(invalid(format!(
                    "config 'endpoint' must be http://HOST[:PORT] or https://HOST[:PORT] without a path (the bucket is config 'bucket'), e.g. http://127.0.0.1:8333 (got '{endpoint}')"
                )));
            }
        };
        if let Some((_, port)) = authority.rsplit_once(':')
            && !authority.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(invalid(format!(
                "config 'endpoint' has an invalid port '{port}' (got '{endpoint}')"
            )));
        }
        let bucket = get("bucket").ok_or_else(|| {
            invalid("config 'bucket' is required: the name of an existing bucket")
        })?;
        if !valid_bucket(&bucket) {
            return Err(invalid(format!(
                "config 'bucket' is not a valid bucket name: '{bucket}' (3 to 63 lowercase letters, digits, '.', '-' or '_', starting and ending with a letter or digit)"
            )));
        }
        let region = get("region").unwrap_or_else(|| DEFAULT_REGION.into());
        if !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(format!(
                "config 'region' is not a region name: '{region}' (e.g. us-east-1)"
            )));
        }
        let mut prefix = get("prefix").unwrap_or_default();
        prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.contains("//")
            || prefix.contains('\\')
            || prefix.chars().any(char::is_control)
            || prefix.split('/').any(|s| s == "." || s == "..")
            || prefix.len() > 512
        {
            return Err(invalid(format!(
                "config 'prefix' is not a usable key prefix: '{prefix}' (path segments separated by single '/', no '.' or '..', e.g. atrium/)"
            )));
        }
        let part_size_mb = match get("part_size_mb") {
            None => DEFAULT_PART_SIZE_MB,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (MIN_PART_SIZE_MB..=MAX_PART_SIZE_MB).contains(&n) => n,
                _ => {
                    return Err(invalid(format!(
                        "config 'part_size_mb' must be a whole number from {MIN_PART_SIZE_MB} to {MAX_PART_SIZE_MB} (MiB; got '{v}')"
                    )));
                }
            },
        };
        let access_key_secret =
            get("access_key_secret").unwrap_or_else(|| DEFAULT_ACCESS_KEY_SECRET.into());
        let secret_key_secret =
            get("secret_key_secret").unwrap_or_else(|| DEFAULT_SECRET_KEY_SECRET.into());
        let access_key = fetch_secret(&secret, &access_key_secret, "access_key_secret")?;
        if access_key
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
            || access_key.len() > 256
        {
            return Err(invalid(format!(
                "secret '{access_key_secret}' (config 'access_key_secret') does not hold an access key id: it has spaces or control characters inside"
            )));
        }
        let secret_key = fetch_secret(&secret, &secret_key_secret, "secret_key_secret")?;
        if secret_key.chars().any(char::is_control) {
            return Err(invalid(format!(
                "secret '{secret_key_secret}' (config 'secret_key_secret') does not hold a secret key: it has control characters inside"
            )));
        }
        Ok(Settings {
            endpoint,
            authority,
            bucket,
            region,
            prefix,
            access_key,
            secret_key,
            access_key_secret,
            secret_key_secret,
            part_size: (part_size_mb << 20) as usize,
        })
    }

    /// The bucket key of an object name.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The key (under the prefix) of the blob of an upload: `blobs/<id>`.
    pub fn blob_name(upload_id: &str) -> String {
        format!("{BLOBS}{upload_id}")
    }

    /// The path of a key, or of the bucket itself (`None`), URI-encoded as sent and signed.
    pub fn path(&self, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("/{}/{}", self.bucket, uri_encode(k, false)),
            None => format!("/{}", self.bucket),
        }
    }
}

fn fetch_secret(
    secret: &impl Fn(&str) -> Result<String, PluginError>,
    name: &str,
    key: &str,
) -> Result<String, PluginError> {
    let note = |m: String| format!("secret '{name}' (config '{key}'): {m}");
    let v = secret(name).map_err(|e| match e {
        PluginError::InvalidArgument(m) => PluginError::InvalidArgument(note(m)),
        PluginError::NotFound(m) => PluginError::NotFound(note(m)),
        PluginError::AccessDenied(m) => PluginError::AccessDenied(note(m)),
        PluginError::ResourceExhausted(m) => PluginError::ResourceExhausted(note(m)),
        PluginError::Unsupported(m) => PluginError::Unsupported(note(m)),
        PluginError::Internal(m) => PluginError::Internal(note(m)),
    })?;
    let v = v.trim().to_string();
    if v.is_empty() {
        return Err(invalid(format!(
            "secret '{name}' (config '{key}') is empty"
        )));
    }
    Ok(v)
}

/// Checks an object name: relative, `/`-separated, no empty, `.` or `..` segments, no control
/// characters, and not under `blobs/` (where unfinished and large uploads live).
pub fn check_name(name: &str) -> Result<(), PluginError> {
    let bad = name.is_empty()
        || name.len() > 512
        || name.starts_with('/')
        || name.contains('\\')
        || name.chars().any(char::is_control)
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || name.starts_with(BLOBS);
    if bad {
        return Err(invalid(format!("invalid object name '{name}'")));
    }
    Ok(())
}

/// Checks an upload id: 1 to 128 letters, digits and `-`.
pub fn check_upload_id(id: &str) -> Result<(), PluginError> {
    if id.is_empty()
        || id.len() > 128
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(invalid(format!("invalid upload id '{id}'")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SigV4

type HmacSha256 = Hmac<Sha256>;

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of `data` (the payload hash of a small body).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-._~` as `%XX` (upper-case hex), `/`
/// included only if `encode_slash` (query values; key paths keep their `/`).
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical query string: each name and value URI-encoded (`/` too), sorted by name then
/// value, `name=value` joined by `&` (a parameter without a value is `name=`). The same string
/// is sent in the URL, so what is signed is what goes out.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Headers that are signed: `host`, `content-type`, `content-md5`, `range` and all `x-amz-*`.
fn signed(name: &str) -> bool {
    matches!(name, "host" | "content-type" | "content-md5" | "range") || name.starts_with("x-amz-")
}

/// The canonical request of SigV4, and the `SignedHeaders` list. `headers` must hold `host`
/// and `x-amz-*` headers as they are sent (names in any case).
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> (String, String) {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .filter(|(k, _)| signed(k))
        .collect();
    hs.sort();
    let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = hs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (
        format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"),
        signed_headers,
    )
}

/// The SigV4 signing key of a day (`YYYYMMDD`) for S3 in `region`.
pub fn signing_key(secret_key: &str, date: &str, region: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    hmac(&k_service, b"aws4_request")
}

/// The string to sign of a canonical request made at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn string_to_sign(amz_date: &str, region: &str, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{region}/s3/aws4_request\n{}",
        &amz_date[..8],
        sha256_hex(canonical.as_bytes())
    )
}

/// Signs a request: returns every header to send (`headers` plus `x-amz-date`,
/// `x-amz-content-sha256` and `authorization`; not `host`, which the HTTP client sets from the
/// authority it signs). `path` and `query` are as sent (URI-encoded).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    s: &Settings,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers.to_vec();
    out.push(("x-amz-date".into(), amz_date.into()));
    out.push(("x-amz-content-sha256".into(), payload_hash.into()));
    let mut to_sign = out.clone();
    to_sign.push(("host".into(), s.authority.clone()));
    let (canonical, signed_headers) =
        canonical_request(method, path, query, &to_sign, payload_hash);
    let sts = string_to_sign(amz_date, &s.region, &canonical);
    let key = signing_key(&s.secret_key, &amz_date[..8], &s.region);
    let signature = hex(&hmac(&key, sts.as_bytes()));
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{}/s3/aws4_request, SignedHeaders={signed_headers}, Signature={signature}",
            s.access_key,
            &amz_date[..8],
            s.region
        ),
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// Time

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The `x-amz-date` of a Unix time: `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The Unix time of an ISO 8601 UTC timestamp as S3 writes them (`2024-05-01T12:34:56.000Z`).
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let rest = &s[19..];
    let rest = rest
        .strip_prefix('.')
        .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
        .unwrap_or(rest);
    if !matches!(rest, "Z" | "" | "+00:00") {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    u64::try_from(days * 86_400 + i64::from(h * 3600 + mi * 60 + se)).ok()
}

// ---------------------------------------------------------------------------------------------
// XML

/// An XML element: its local name (namespace prefix dropped), attributes ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Child elements and text, in order.
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Text (entities decoded).
    Text(String),
}

impl Element {
    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|n| match n {
            Node::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// The child elements called `name`.
    pub fn elements<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter_map(move |n| match n {
            Node::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// The text inside (of all descendants, concatenated).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            match n {
                Node::Text(t) => s.push_str(t),
                Node::Element(e) => s.push_str(&e.text()),
            }
        }
        s
    }

    /// The text of the first child element called `name`.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(Element::text)
    }
}

fn decode_entities(s: &str) -> Result<String, String> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let end = rest
            .find(';')
            .ok_or_else(|| "an entity without ';'".to_string())?;
        let ent = &rest[..end];
        match ent {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            _ => {
                let code =
                    if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                        u32::from_str_radix(h, 16).ok()
                    } else if let Some(d) = ent.strip_prefix('#') {
                        d.parse().ok()
                    } else {
                        None
                    };
                out.push(
                    code.and_then(char::from_u32)
                        .ok_or_else(|| format!("unknown entity '&{ent};'"))?,
                );
            }
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Escapes text for an XML element.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses an XML document into its root element (declaration, comments, processing
/// instructions and a doctype skipped; CDATA kept as text). Enough for S3's answers.
pub fn parse_xml(doc: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut rest = doc.trim_start_matches('\u{feff}');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            if let Some(r) = after.strip_prefix("?") {
                let end = r.find("?>").ok_or("an unterminated '<?'")?;
                rest = &r[end + 2..];
            } else if let Some(r) = after.strip_prefix("!--") {
                let end = r.find("-->").ok_or("an unterminated comment")?;
                rest = &r[end + 3..];
            } else if let Some(r) = after.strip_prefix("![CDATA[") {
                let end = r.find("]]>").ok_or("an unterminated CDATA section")?;
                let top = stack.last_mut().ok_or("text outside the root element")?;
                top.children.push(Node::Text(r[..end].to_string()));
                rest = &r[end + 3..];
            } else if let Some(r) = after.strip_prefix('!') {
                let end = r.find('>').ok_or("an unterminated '<!'")?;
                rest = &r[end + 1..];
            } else if let Some(r) = after.strip_prefix('/') {
                let end = r.find('>').ok_or("an unterminated end tag")?;
                let name = r[..end].trim();
                let name = name.rsplit(':').next().unwrap_or(name);
                let el = stack.pop().ok_or("an end tag without a start")?;
                if el.name != name {
                    return Err(format!("</{name}> closes <{}>", el.name));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => {
                        if root.is_some() {
                            return Err("two root elements".into());
                        }
                        root = Some(el);
                    }
                }
                rest = &r[end + 1..];
            } else {
                // a start tag: find its end outside quoted attribute values
                let mut quote: Option<char> = None;
                let mut end = None;
                for (i, c) in after.char_indices() {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '"' | '\'') => quote = Some(c),
                        (None, '>') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or("an unterminated start tag")?;
                let tag = &after[..end];
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let name = tag
                    .split_whitespace()
                    .next()
                    .ok_or("a tag without a name")?;
                let name = name.rsplit(':').next().unwrap_or(name).to_string();
                let el = Element {
                    name,
                    children: Vec::new(),
                };
                if self_closing {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None => {
                            if root.is_some() {
                                return Err("two root elements".into());
                            }
                            root = Some(el);
                        }
                    }
                } else {
                    stack.push(el);
                }
                rest = &after[end + 1..];
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            match stack.last_mut() {
                Some(top) => top.children.push(Node::Text(decode_entities(text)?)),
                None if text.trim().is_empty() => {}
                None => return Err("text outside the root element".into()),
            }
            rest = &rest[end..];
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{}> is not closed", open.name));
    }
    root.ok_or_else(|| "no element".into())
}

fn parse_doc(body: &[u8], expect: &str) -> Result<Element, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_string())?;
    let root = parse_xml(text).map_err(|e| format!("the answer is not XML ({e})"))?;
    if root.name != expect {
        return Err(format!("expected <{expect}>, got <{}>", root.name));
    }
    Ok(root)
}

/// S3's `<Error>` document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct S3Error {
    /// `Code` (`NoSuchBucket`, `SignatureDoesNotMatch`, ...).
    pub code: String,
    /// `Message`.
    pub message: String,
}

/// The error document in a body, if it holds one.
pub fn parse_error(body: &[u8]) -> Option<S3Error> {
    let root = parse_doc(body, "Error").ok()?;
    Some(S3Error {
        code: root
            .child_text("Code")
            .unwrap_or_default()
            .trim()
            .to_string(),
        message: root
            .child_text("Message")
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

/// One page of ListObjectsV2.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectsPage {
    /// Keys and sizes, in key order.
    pub objects: Vec<(String, u64)>,
    /// Whether more keys follow.
    pub truncated: bool,
}

/// Parses a `ListBucketResult` (ListObjectsV2).
pub fn parse_list_objects(body: &[u8]) -> Result<ObjectsPage, String> {
    let root = parse_doc(body, "ListBucketResult")?;
    let mut objects = Vec::new();
    for c in root.elements("Contents") {
        let key = c.child_text("Key").ok_or("a <Contents> without <Key>")?;
        let size = c
            .child_text("Size")
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("<Size> of '{key}' is not a number"))?;
        objects.push((key, size));
    }
    let truncated = root
        .child_text("IsTruncated")
        .is_some_and(|t| t.trim() == "true");
    Ok(ObjectsPage { objects, truncated })
}

/// An unfinished multipart upload.
#[derive(Debug, Clone, PartialEq)]
pub struct MultipartUpload {
    /// Its key.
    pub key: String,
    /// Its upload id.
    pub upload_id: String,
    /// When it was started (Unix time), if the store said.
    pub initiated: Option<u64>,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UploadsPage {
    /// The uploads.
    pub uploads: Vec<MultipartUpload>,
    /// Whether more follow.
    pub truncated: bool,
    /// Where the next page starts (`key-marker`).
    pub next_key_marker: Option<String>,
    /// Where the next page starts (`upload-id-marker`).
    pub next_upload_id_marker: Option<String>,
}

/// Parses a `ListMultipartUploadsResult`.
pub fn parse_list_uploads(body: &[u8]) -> Result<UploadsPage, String> {
    let root = parse_doc(body, "ListMultipartUploadsResult")?;
    let mut uploads = Vec::new();
    for u in root.elements("Upload") {
        let key = u.child_text("Key").ok_or("an <Upload> without <Key>")?;
        let upload_id = u
            .child_text("UploadId")
            .ok_or("an <Upload> without <UploadId>")?;
        let initiated = u.child_text("Initiated").and_then(|t| parse_timestamp(&t));
        uploads.push(MultipartUpload {
            key,
            upload_id: upload_id.trim().to_string(),
            initiated,
        });
    }
    let nonempty = |t: Option<String>| t.filter(|s| !s.is_empty());
    Ok(UploadsPage {
        uploads,
        truncated: root
            .child_text("IsTruncated")
            .is_some_and(|t| t.trim() == "true"),
        next_key_marker: nonempty(root.child_text("NextKeyMarker")),
        next_upload_id_marker: nonempty(root.child_text("NextUploadIdMarker")),
    })
}

/// The upload id in an `InitiateMultipartUploadResult`.
pub fn parse_initiate(body: &[u8]) -> Result<String, String> {
    let root = parse_doc(body, "InitiateMultipartUploadResult")?;
    let id = root.child_text("UploadId").unwrap_or_default();
    let id = id.trim();
    if id.is_empty() {
        return Err("no <UploadId>".into());
    }
    Ok(id.to_string())
}

/// The body of CompleteMultipartUpload for parts 1..=n with these ETags.
pub fn complete_body(etags: &[String]) -> String {
    let mut s =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (i, e) in etags.iter().enumerate() {
        s.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            escape_xml(e)
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

/// What a 200 answer to CompleteMultipartUpload says: S3 may send an `<Error>` with status 200
/// once it has started answering.
pub fn parse_complete(body: &[u8]) -> Result<(), Result<S3Error, String>> {
    if let Some(e) = parse_error(body) {
        return Err(Ok(e));
    }
    parse_doc(body, "CompleteMultipartUploadResult")
        .map(|_| ())
        .map_err(Err)
}

// ---------------------------------------------------------------------------------------------
// What a HEAD says

/// Where the bytes of an object are.
#[derive(Debug, Clone, PartialEq)]
pub enum Located {
    /// The object holds them itself.
    Plain {
        /// Its size.
        size: u64,
    },
    /// A zero-byte index object pointing to a blob (`blobs/<upload-id>` under the prefix).
    Index {
        /// The blob's name under the prefix.
        blob: String,
        /// The blob's size.
        size: u64,
    },
}

impl Located {
    /// The object's size.
    pub fn size(&self) -> u64 {
        match self {
            Located::Plain { size } | Located::Index { size, .. } => *size,
        }
    }
}

/// Reads a HEAD answer's headers (names lower-case).
pub fn locate(headers: &[(String, String)]) -> Result<Located, String> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.trim())
    };
    if let Some(blob) = get(META_BLOB) {
        let id = blob.strip_prefix(BLOBS).unwrap_or("");
        if check_upload_id(id).is_err() {
            return Err(format!(
                "its {META_BLOB} metadata is not blobs/<id>: '{blob}'"
            ));
        }
        let size = get(META_SIZE)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("it is an index object without a numeric {META_SIZE}"))?;
        return Ok(Located::Index {
            blob: blob.to_string(),
            size,
        });
    }
    let size = get("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or("the answer has no content-length")?;
    Ok(Located::Plain { size })
}

/// The start of a `Content-Range: bytes START-END/TOTAL` header.
pub fn content_range_start(v: &str) -> Option<u64> {
    let r = v.trim().strip_prefix("bytes")?.trim_start();
    r.split('-').next()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Retries and errors

/// Whether an answer with this status is worth sending again (throttled, or the server failed).
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Whether an error code is worth sending again whatever the status.
pub fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "Throttling"
    )
}

/// The wait before attempt `attempt + 1` (after `attempt` failed): 100 ms, doubling.
pub fn backoff_ms(attempt: u32) -> u64 {
    FIRST_BACKOFF_MS << attempt.saturating_sub(1).min(10)
}

fn clip(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n).collect();
    c.push('…');
    c
}

/// What an error answer of S3 means. `what` says what was being done (`reading 'sha256/..'`);
/// `body` is the answer's body (empty for HEAD).
pub fn refusal(s: &Settings, what: &str, status: u16, body: &[u8]) -> PluginError {
    let at = &s.endpoint;
    let ak = &s.access_key;
    match parse_error(body) {
        Some(e) => explain(s, what, status, &e),
        None => {
            let text = String::from_utf8_lossy(body);
            let shown = if text.trim().is_empty() {
                String::new()
            } else {
                format!(": '{}'", clip(&text, 200))
            };
            match status {
                403 => PluginError::AccessDenied(format!(
                    "S3 at {at} denied {what} to access key '{ak}' (HTTP 403{shown})"
                )),
                404 => PluginError::NotFound(format!(
                    "{what}: HTTP 404 from {at}{shown} (is config 'endpoint' an S3 store, and does bucket '{}' exist?)",
                    s.bucket
                )),
                s5 if s5 >= 500 => PluginError::Internal(format!(
                    "{what}: S3 at {at} failed (HTTP {status}{shown})"
                )),
                _ => PluginError::InvalidArgument(format!(
                    "{what}: S3 at {at} answered HTTP {status}{shown} (is config 'endpoint' an S3 store?)"
                )),
            }
        }
    }
}

/// What an S3 error document means (`status` is the answer's HTTP status).
pub fn explain(s: &Settings, what: &str, status: u16, e: &S3Error) -> PluginError {
    let at = &s.endpoint;
    let ak = &s.access_key;
    let detail = if e.message.is_empty() {
        e.code.clone()
    } else {
        format!("{}: {}", e.code, clip(&e.message, 300))
    };
    match e.code.as_str() {
        "InvalidAccessKeyId" => PluginError::AccessDenied(format!(
            "S3 at {at} does not know the access key '{ak}' ({detail}): the secret '{}' (config 'access_key_secret') holds a wrong access key id",
            s.access_key_secret
        )),
        "SignatureDoesNotMatch" => PluginError::AccessDenied(format!(
            "S3 at {at} rejected the signature of access key '{ak}' ({detail}): the secret key in secret '{}' (config 'secret_key_secret') is wrong for that access key",
            s.secret_key_secret
        )),
        "RequestTimeTooSkewed" => PluginError::AccessDenied(format!(
            "S3 at {at} refused {what} ({detail}): this machine's clock differs from the store's by more than 15 minutes"
        )),
        "AuthorizationHeaderMalformed" if e.message.contains("region") => {
            PluginError::InvalidArgument(format!(
                "S3 at {at} refused {what} ({detail}): config 'region' ('{}') is not the bucket's region",
                s.region
            ))
        }
        "NoSuchBucket" => PluginError::InvalidArgument(format!(
            "bucket '{}' does not exist at {at} (config 'bucket'): create it, or fix config 'bucket' or 'endpoint'",
            s.bucket
        )),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => {
            PluginError::AccessDenied(format!(
                "S3 at {at} denied {what} to access key '{ak}' ({detail}): it needs read, write and list permission on bucket '{}'{}",
                s.bucket,
                if s.prefix.is_empty() {
                    String::new()
                } else {
                    format!(" under '{}'", s.prefix)
                }
            ))
        }
        "NoSuchKey" | "NoSuchUpload" => {
            PluginError::NotFound(format!("{what}: S3 at {at} says {detail}"))
        }
        "EntityTooLarge" | "QuotaExceeded" | "TooManyBuckets" => PluginError::ResourceExhausted(
            format!("{what}: S3 at {at} refused it (HTTP {status}, {detail})"),
        ),
        "NotImplemented" => PluginError::Unsupported(format!(
            "{what}: S3 at {at} does not implement it (HTTP {status}, {detail})"
        )),
        _ if status >= 500 => PluginError::Internal(format!(
            "{what}: S3 at {at} failed (HTTP {status}, {detail})"
        )),
        _ => PluginError::InvalidArgument(format!(
            "{what}: S3 at {at} refused it (HTTP {status}, {detail})"
        )),
    }
}

/// What a transport failure means, after `attempts` attempts over `elapsed_ms`.
pub fn unreachable(
    s: &Settings,
    what: &str,
    e: &SendError,
    attempts: u32,
    elapsed_ms: u64,
) -> PluginError {
    let at = &s.endpoint;
    let tries = if attempts > 1 {
        format!(
            " ({attempts} attempts over {:.1} s)",
            elapsed_ms as f64 / 1000.0
        )
    } else {
        String::new()
    };
    match e.kind {
        FailureKind::Denied => PluginError::AccessDenied(format!(
            "{what}: the host does not let this plugin reach {} (grant it to the datastore's http hosts, and allow private addresses for a store on this network): {}",
            s.authority, e.message
        )),
        FailureKind::Dns => PluginError::InvalidArgument(format!(
            "{what}: the host of config 'endpoint' ({at}) does not resolve: {}",
            e.message
        )),
        FailureKind::Refused => PluginError::Internal(format!(
            "{what}: cannot reach S3 at {at}: connection refused{tries}: is the store running there, and is config 'endpoint' right?"
        )),
        FailureKind::Timeout => PluginError::Internal(format!(
            "{what}: S3 at {at} did not answer in time{tries}: {}",
            e.message
        )),
        FailureKind::Broken => PluginError::Internal(format!(
            "{what}: the connection to S3 at {at} broke{tries}: {}",
            e.message
        )),
        FailureKind::Tls => PluginError::Internal(format!(
            "{what}: TLS with {at} failed (a self-signed certificate is not accepted): {}",
            e.message
        )),
        FailureKind::Invalid | FailureKind::Other => {
            PluginError::Internal(format!("{what}: {}{tries}", e.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn settings(extra: &[(&str, &str)]) -> Result<Settings, PluginError> {
        let mut cfg: BTreeMap<String, String> =
            [("endpoint", "http://127.0.0.1:8333/"), ("bucket", "atrium")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for (k, v) in extra {
            if v.is_empty() {
                cfg.remove(*k);
            } else {
                cfg.insert(k.to_string(), v.to_string());
            }
        }
        Settings::load(
            |k| cfg.get(k).cloned(),
            |name| match name {
                "s3-access-key" => Ok("atrium-access\n".into()),
                "s3-secret-key" => Ok("atrium-secret-key".into()),
                "empty" => Ok("  ".into()),
                "spaced" => Ok("a b".into()),
                other => Err(PluginError::AccessDenied(format!(
                    "secret '{other}' is not granted to this datastore"
                ))),
            },
        )
    }

    fn msg(e: PluginError) -> String {
        format!("{e:?}")
            .trim_start_matches("PluginError::")
            .to_string()
    }

    fn aws() -> Settings {
        Settings {
            endpoint: "https://examplebucket.s3.amazonaws.com".into(),
            authority: "examplebucket.s3.amazonaws.com".into(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            access_key_secret: "s3-access-key".into(),
            secret_key_secret: "s3-secret-key".into(),
            part_size: 8 << 20,
        }
    }

    fn auth(h: &[(String, String)]) -> String {
        h.iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    /// AWS's "GET Object" example of SigV4 for S3 (virtual-hosted, `Range: bytes=0-9`).
    #[test]
    fn sigv4_matches_the_aws_get_object_example() {
        let s = aws();
        let amz = "20130524T000000Z";
        let headers = vec![("range".to_string(), "bytes=0-9".to_string())];
        let mut all = headers.clone();
        all.push(("host".into(), s.authority.clone()));
        all.push(("x-amz-date".into(), amz.into()));
        all.push(("x-amz-content-sha256".into(), EMPTY_SHA256.into()));
        let (canonical, signed_headers) =
            canonical_request("GET", "/test.txt", "", &all, EMPTY_SHA256);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
        let sts = string_to_sign(amz, "us-east-1", &canonical);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let signed = sign(&s, "GET", "/test.txt", "", &headers, EMPTY_SHA256, amz);
        assert_eq!(
            auth(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        // the host header is signed, never sent (the HTTP client sets it)
        assert!(!signed.iter().any(|(k, _)| k == "host"));
    }

    /// AWS's "GET Bucket (List Objects)" example: `?max-keys=2&prefix=J`.
    #[test]
    fn sigv4_matches_the_aws_list_objects_example() {
        let s = aws();
        let q = canonical_query(&[
            ("prefix".into(), "J".into()),
            ("max-keys".into(), "2".into()),
        ]);
        assert_eq!(q, "max-keys=2&prefix=J");
        let signed = sign(&s, "GET", "/", &q, &[], EMPTY_SHA256, "20130524T000000Z");
        assert!(auth(&signed).ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    /// AWS's "GET Bucket Lifecycle" example: a parameter without a value signs as `lifecycle=`.
    #[test]
    fn sigv4_matches_the_aws_lifecycle_example() {
        let s = aws();
        let q = canonical_query(&[("lifecycle".into(), String::new())]);
        assert_eq!(q, "lifecycle=");
        let signed = sign(&s, "GET", "/", &q, &[], EMPTY_SHA256, "20130524T000000Z");
        assert!(auth(&signed).ends_with(
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ));
    }

    #[test]
    fn the_signing_key_is_the_documented_chain() {
        // AWS's "deriving the signing key" example (service iam, 20120215, us-east-1)
        let k_date = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        let k_region = hmac(&k_date, b"us-east-1");
        let k_service = hmac(&k_region, b"iam");
        let k_signing = hmac(&k_service, b"aws4_request");
        assert_eq!(
            hex(&k_signing),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn uri_and_query_encoding() {
        assert_eq!(uri_encode("a b/c~d_e.f-g", false), "a%20b/c~d_e.f-g");
        assert_eq!(uri_encode("a b/c", true), "a%20b%2Fc");
        assert_eq!(uri_encode("é+=&", true), "%C3%A9%2B%3D%26");
        let q = canonical_query(&[
            ("uploadId".into(), "2~abc/def+ghi=".into()),
            ("partNumber".into(), "10".into()),
        ]);
        assert_eq!(q, "partNumber=10&uploadId=2~abc%2Fdef%2Bghi%3D");
        // sorted by encoded name: upper case before lower case, then by value
        let q = canonical_query(&[
            ("b".into(), "2".into()),
            ("B".into(), "1".into()),
            ("a".into(), "z".into()),
            ("a".into(), "y".into()),
        ]);
        assert_eq!(q, "B=1&a=y&a=z&b=2");
        let q = canonical_query(&[
            ("list-type".into(), "2".into()),
            ("prefix".into(), "atrium/sha256/".into()),
            ("start-after".into(), "atrium/sha256/ab/x y".into()),
        ]);
        assert_eq!(
            q,
            "list-type=2&prefix=atrium%2Fsha256%2F&start-after=atrium%2Fsha256%2Fab%2Fx%20y"
        );
        let s = settings(&[]).unwrap();
        assert_eq!(s.path(Some("sha256/ab/cd ef")), "/atrium/sha256/ab/cd%20ef");
        assert_eq!(s.path(None), "/atrium");
    }

    #[test]
    fn headers_are_canonicalised() {
        let (c, signed) = canonical_request(
            "PUT",
            "/b/k",
            "",
            &[
                ("Host".into(), "h:1".into()),
                ("X-Amz-Meta-Atrium-Size".into(), "  12 ".into()),
                ("Content-Length".into(), "0".into()),
                ("x-amz-meta-atrium-blob".into(), "blobs/a  b".into()),
            ],
            UNSIGNED_PAYLOAD,
        );
        assert_eq!(signed, "host;x-amz-meta-atrium-blob;x-amz-meta-atrium-size");
        assert!(c.contains(
            "\nhost:h:1\nx-amz-meta-atrium-blob:blobs/a b\nx-amz-meta-atrium-size:12\n\n"
        ));
        assert!(c.ends_with("\nUNSIGNED-PAYLOAD"));
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_827_696), "20000229T123456Z");
        assert_eq!(amz_date(4_102_444_799), "20991231T235959Z");
        assert_eq!(
            parse_timestamp("2013-05-24T00:00:00.000Z"),
            Some(1_369_353_600)
        );
        assert_eq!(parse_timestamp("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(
            parse_timestamp("2000-02-29T12:34:56.123456789Z"),
            Some(951_827_696)
        );
        assert_eq!(parse_timestamp("2000-02-29 12:34:56Z"), None);
        assert_eq!(parse_timestamp("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2000-01-01T00:00:00+02:00"), None);
        for t in [0u64, 86_399, 1_700_000_000, 1_709_164_800] {
            let d = amz_date(t);
            let iso = format!(
                "{}-{}-{}T{}:{}:{}Z",
                &d[0..4],
                &d[4..6],
                &d[6..8],
                &d[9..11],
                &d[11..13],
                &d[13..15]
            );
            assert_eq!(parse_timestamp(&iso), Some(t), "{iso}");
        }
    }

    #[test]
    fn config_defaults_and_normalisation() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:8333");
        assert_eq!(s.authority, "127.0.0.1:8333");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.prefix, "");
        assert_eq!(s.access_key, "atrium-access");
        assert_eq!(s.secret_key, "atrium-secret-key");
        assert_eq!(s.part_size, 8 << 20);
        assert!(!format!("{s:?}").contains("atrium-secret-key"));
        let s = settings(&[
            ("prefix", "/team/atrium"),
            ("part_size_mb", "5"),
            ("region", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(s.prefix, "team/atrium/");
        assert_eq!(s.key("sha256/ab/x"), "team/atrium/sha256/ab/x");
        assert_eq!(s.part_size, 5 << 20);
        assert_eq!(s.region, "eu-west-1");
        let s = settings(&[("endpoint", "https://s3.example.com")]).unwrap();
        assert_eq!(s.authority, "s3.example.com");
    }

    #[test]
    fn config_errors_say_what_to_fix() {
        let e = msg(settings(&[("endpoint", "")]).unwrap_err());
        assert!(e.contains("config 'endpoint' is required"), "{e}");
        let e = msg(settings(&[("endpoint", "127.0.0.1:8333")]).unwrap_err());
        assert!(
            e.contains("must be http://HOST[:PORT]") && e.contains("got '127.0.0.1:8333'"),
            "{e}"
        );
        let e = msg(settings(&[("endpoint", "http://127.0.0.1:8333/atrium")]).unwrap_err());
        assert!(e.contains("without a path"), "{e}");
        let e = msg(settings(&[("endpoint", "http://h:port")]).unwrap_err());
        assert!(e.contains("invalid port 'port'"), "{e}");
        let e = msg(settings(&[("bucket", "")]).unwrap_err());
        assert!(e.contains("config 'bucket' is required"), "{e}");
        let e = msg(settings(&[("bucket", "My Bucket")]).unwrap_err());
        assert!(e.contains("not a valid bucket name: 'My Bucket'"), "{e}");
        let e = msg(settings(&[("region", "us east")]).unwrap_err());
        assert!(e.contains("config 'region'"), "{e}");
        let e = msg(settings(&[("prefix", "a/../b")]).unwrap_err());
        assert!(e.contains("config 'prefix'"), "{e}");
        let e = msg(settings(&[("prefix", "a//b")]).unwrap_err());
        assert!(e.contains("config 'prefix'"), "{e}");
        for v in ["4", "33", "eight", "8.5"] {
            let e = msg(settings(&[("part_size_mb", v)]).unwrap_err());
            assert!(
                e.contains("from 5 to 32") && e.contains(&format!("got '{v}'")),
                "{e}"
            );
        }
        let e = msg(settings(&[("access_key_secret", "nope")]).unwrap_err());
        assert!(
            e.starts_with("AccessDenied(")
                && e.contains(
                    "secret 'nope' (config 'access_key_secret'): secret 'nope' is not granted"
                ),
            "{e}"
        );
        let e = msg(settings(&[("secret_key_secret", "empty")]).unwrap_err());
        assert!(
            e.contains("secret 'empty' (config 'secret_key_secret') is empty"),
            "{e}"
        );
        let e = msg(settings(&[("access_key_secret", "spaced")]).unwrap_err());
        assert!(e.contains("does not hold an access key id"), "{e}");
    }

    #[test]
    fn names_and_upload_ids() {
        assert!(check_name("sha256/ab/abcdef").is_ok());
        for bad in ["", "/a", "a//b", "a/../b", "./a", "blobs/x", "a\nb", "a\\b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_upload_id("0123abcd-ef").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_upload_id(bad).is_err(), "{bad:?}");
        }
        assert!(valid_bucket("atrium-data.1"));
        for bad in ["ab", "-ab", "ab-", "Ab1", "a..b", &"a".repeat(64)] {
            assert!(!valid_bucket(bad), "{bad}");
        }
    }

    #[test]
    fn xml_parsing() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<a:Root xmlns:a="urn:x" attr='1>2'><Empty/><T>x &amp; y &lt;z&gt; &#65;&#x42;</T><C><![CDATA[<raw>]]></C></a:Root>"#;
        let r = parse_xml(doc).unwrap();
        assert_eq!(r.name, "Root");
        assert_eq!(r.child_text("T").unwrap(), "x & y <z> AB");
        assert_eq!(r.child_text("C").unwrap(), "<raw>");
        assert_eq!(r.child_text("Empty").unwrap(), "");
        assert!(parse_xml("<a><b></a>").is_err());
        assert!(parse_xml("<a>").is_err());
        assert!(parse_xml("not xml").is_err());
        assert!(parse_xml("<a>&bogus;</a>").is_err());
        assert_eq!(escape_xml(r#""e&t'<>"#), "&quot;e&amp;t&apos;&lt;&gt;");
    }

    #[test]
    fn error_documents() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>nope</BucketName><RequestId>4442587FB7D0A2F9</RequestId></Error>"#;
        let e = parse_error(body).unwrap();
        assert_eq!(e.code, "NoSuchBucket");
        assert_eq!(e.message, "The specified bucket does not exist");
        assert_eq!(parse_error(b""), None);
        assert_eq!(parse_error(b"<html>502 Bad Gateway</html>"), None);
    }

    #[test]
    fn list_objects_v2() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>atrium</Name><Prefix>p/sha256/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
<Contents><Key>p/sha256/00/aa&amp;b</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/sha256/01/bb</Key><Size>12345678901</Size></Contents></ListBucketResult>"#;
        let p = parse_list_objects(body).unwrap();
        assert_eq!(
            p.objects,
            vec![
                ("p/sha256/00/aa&b".to_string(), 0),
                ("p/sha256/01/bb".to_string(), 12_345_678_901)
            ]
        );
        assert!(p.truncated);
        let p = parse_list_objects(
            b"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(p.objects.is_empty() && !p.truncated);
        assert!(parse_list_objects(b"<Error><Code>x</Code></Error>").is_err());
        assert!(
            parse_list_objects(b"<ListBucketResult><Contents><Key>k</Key><Size>x</Size></Contents></ListBucketResult>")
                .is_err()
        );
    }

    #[test]
    fn list_multipart_uploads() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>atrium</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>p/blobs/b</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker><Prefix>p/blobs/</Prefix><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
<Upload><Key>p/blobs/a</Key><UploadId>u1</UploadId><Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>
<Upload><Key>p/blobs/b</Key><UploadId> u2 </UploadId><Initiated>garbage</Initiated></Upload></ListMultipartUploadsResult>"#;
        let p = parse_list_uploads(body).unwrap();
        assert_eq!(p.uploads.len(), 2);
        assert_eq!(p.uploads[0].key, "p/blobs/a");
        assert_eq!(p.uploads[0].upload_id, "u1");
        assert_eq!(p.uploads[0].initiated, Some(1_289_422_113));
        assert_eq!(p.uploads[1].upload_id, "u2");
        assert_eq!(p.uploads[1].initiated, None);
        assert!(p.truncated);
        assert_eq!(p.next_key_marker.as_deref(), Some("p/blobs/b"));
        assert_eq!(p.next_upload_id_marker.as_deref(), Some("u2"));
        let p = parse_list_uploads(
            b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><NextKeyMarker></NextKeyMarker></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(p.uploads.is_empty() && !p.truncated && p.next_key_marker.is_none());
    }

    #[test]
    fn multipart_documents() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(
            parse_initiate(body).unwrap(),
            "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
        );
        assert!(
            parse_initiate(b"<InitiateMultipartUploadResult></InitiateMultipartUploadResult>")
                .is_err()
        );
        assert_eq!(
            complete_body(&["\"a1\"".into(), "\"b2\"".into()]),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber><ETag>&quot;a1&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b2&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(
            parse_complete(b"<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>"),
            Ok(())
        );
        match parse_complete(b"<Error><Code>InternalError</Code><Message>m</Message></Error>") {
            Err(Ok(e)) => assert_eq!(e.code, "InternalError"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_complete(b"junk"), Err(Err(_))));
    }

    #[test]
    fn head_answers() {
        let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            locate(&h(&[("content-length", "42")])),
            Ok(Located::Plain { size: 42 })
        );
        assert_eq!(
            locate(&h(&[
                ("content-length", "0"),
                ("x-amz-meta-atrium-blob", "blobs/abc-1"),
                ("X-Amz-Meta-Atrium-Size", "123456789")
            ])),
            Ok(Located::Index {
                blob: "blobs/abc-1".into(),
                size: 123_456_789
            })
        );
        assert!(
            locate(&h(&[
                ("x-amz-meta-atrium-blob", "../etc"),
                ("x-amz-meta-atrium-size", "1")
            ]))
            .is_err()
        );
        assert!(locate(&h(&[("x-amz-meta-atrium-blob", "blobs/a")])).is_err());
        assert!(locate(&h(&[])).is_err());
        assert_eq!(content_range_start("bytes 13-25/13000"), Some(13));
        assert_eq!(content_range_start("bytes */13000"), None);
    }

    #[test]
    fn retry_policy() {
        for s in [429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 416, 501] {
            assert!(!retryable_status(s), "{s}");
        }
        assert!(retryable_code("SlowDown") && retryable_code("RequestTimeout"));
        assert!(!retryable_code("AccessDenied") && !retryable_code("NoSuchKey"));
        assert_eq!(
            (1..=4).map(backoff_ms).collect::<Vec<_>>(),
            vec![100, 200, 400, 800]
        );
    }

    fn err_doc(code: &str, message: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><Resource>/atrium</Resource></Error>")
            .into_bytes()
    }

    #[test]
    fn errors_name_the_fix() {
        let s = settings(&[]).unwrap();
        let e = msg(refusal(
            &s,
            "probing",
            403,
            &err_doc(
                "InvalidAccessKeyId",
                "The access key ID you provided does not exist in our records.",
            ),
        ));
        assert_eq!(
            e,
            "AccessDenied(\"S3 at http://127.0.0.1:8333 does not know the access key 'atrium-access' (InvalidAccessKeyId: The access key ID you provided does not exist in our records.): the secret 's3-access-key' (config 'access_key_secret') holds a wrong access key id\")"
        );
        let e = msg(refusal(
            &s,
            "probing",
            403,
            &err_doc(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            ),
        ));
        assert!(e.starts_with("AccessDenied(\"S3 at http://127.0.0.1:8333 rejected the signature of access key 'atrium-access' (SignatureDoesNotMatch: The request signature"), "{e}");
        assert!(e.ends_with("the secret key in secret 's3-secret-key' (config 'secret_key_secret') is wrong for that access key\")"), "{e}");
        let e = msg(refusal(
            &s,
            "probing",
            404,
            &err_doc("NoSuchBucket", "The specified bucket does not exist"),
        ));
        assert_eq!(
            e,
            "InvalidArgument(\"bucket 'atrium' does not exist at http://127.0.0.1:8333 (config 'bucket'): create it, or fix config 'bucket' or 'endpoint'\")"
        );
        let s2 = settings(&[("prefix", "team")]).unwrap();
        let e = msg(refusal(
            &s2,
            "writing 'sha256/ab/cd'",
            403,
            &err_doc("AccessDenied", "Access Denied"),
        ));
        assert_eq!(
            e,
            "AccessDenied(\"S3 at http://127.0.0.1:8333 denied writing 'sha256/ab/cd' to access key 'atrium-access' (AccessDenied: Access Denied): it needs read, write and list permission on bucket 'atrium' under 'team/'\")"
        );
        let e = msg(refusal(
            &s,
            "reading 'x'",
            404,
            &err_doc("NoSuchKey", "gone"),
        ));
        assert!(e.starts_with("NotFound("), "{e}");
        let e = msg(refusal(
            &s,
            "reading 'x'",
            503,
            &err_doc("SlowDown", "Please reduce your request rate."),
        ));
        assert!(e.starts_with("Internal(\"reading 'x': S3 at http://127.0.0.1:8333 failed (HTTP 503, SlowDown: Please reduce"), "{e}");
        let e = msg(refusal(&s, "reading 'x'", 403, b""));
        assert_eq!(
            e,
            "AccessDenied(\"S3 at http://127.0.0.1:8333 denied reading 'x' to access key 'atrium-access' (HTTP 403)\")"
        );
        let e = msg(refusal(&s, "probing", 404, b"<html>nginx</html>"));
        assert!(e.contains("HTTP 404 from http://127.0.0.1:8333: '<html>nginx</html>' (is config 'endpoint' an S3 store"), "{e}");
        let e = msg(refusal(
            &s,
            "probing",
            400,
            &err_doc(
                "AuthorizationHeaderMalformed",
                "the region 'us-east-1' is wrong; expecting 'eu-west-1'",
            ),
        ));
        assert!(
            e.contains("config 'region' ('us-east-1') is not the bucket's region"),
            "{e}"
        );
        let e = msg(refusal(
            &s,
            "probing",
            403,
            &err_doc("RequestTimeTooSkewed", "skewed"),
        ));
        assert!(e.contains("clock differs"), "{e}");
    }

    #[test]
    fn transport_errors_name_the_fix() {
        let s = settings(&[]).unwrap();
        let e = |kind, m: &str| SendError {
            kind,
            message: m.into(),
        };
        let m = msg(unreachable(
            &s,
            "probing bucket 'atrium'",
            &e(
                FailureKind::Refused,
                "GET http://127.0.0.1:8333/atrium: connection refused",
            ),
            5,
            1523,
        ));
        assert_eq!(
            m,
            "Internal(\"probing bucket 'atrium': cannot reach S3 at http://127.0.0.1:8333: connection refused (5 attempts over 1.5 s): is the store running there, and is config 'endpoint' right?\")"
        );
        let m = msg(unreachable(
            &s,
            "probing bucket 'atrium'",
            &e(
                FailureKind::Denied,
                "GET http://127.0.0.1:8333/atrium: the host does not allow this plugin to reach it",
            ),
            1,
            0,
        ));
        assert_eq!(
            m,
            "AccessDenied(\"probing bucket 'atrium': the host does not let this plugin reach 127.0.0.1:8333 (grant it to the datastore's http hosts, and allow private addresses for a store on this network): GET http://127.0.0.1:8333/atrium: the host does not allow this plugin to reach it\")"
        );
        let m = msg(unreachable(
            &s,
            "x",
            &e(FailureKind::Dns, "its name does not resolve"),
            1,
            0,
        ));
        assert!(
            m.starts_with("InvalidArgument(\"x: the host of config 'endpoint'"),
            "{m}"
        );
        let m = msg(unreachable(
            &s,
            "x",
            &e(FailureKind::Timeout, "no answer in time"),
            5,
            100_000,
        ));
        assert!(
            m.contains("did not answer in time (5 attempts over 100.0 s)"),
            "{m}"
        );
    }
}
