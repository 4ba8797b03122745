//! Typed extractors: JSON bodies with precise errors, the workspace in scope, query maps.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, MlflowError};
use crate::workspace::{DEFAULT_WORKSPACE, DomainError, Workspace};

/// Parses a JSON body; an empty body counts as `{}`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DomainError> {
    let bytes: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DomainError::invalid(format!("invalid request: {e}")),
        _ => DomainError::Malformed(format!("malformed JSON body: {e}")),
    })
}

/// Whether JSON text escapes a NUL character (`\u0000`) anywhere.
fn escapes_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            // an escape: `\\` is a backslash, `\u0000` the NUL character
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Refuses text holding a NUL character: no name or value needs one, and PostgreSQL cannot
/// store one in text (it would be a 500 there).
pub(crate) fn no_nul(what: &str, text: &str) -> Result<(), DomainError> {
    if text.contains('\0') {
        Err(DomainError::invalid(format!(
            "{what} contains a NUL character (\\u0000), which no name or value may hold"
        )))
    } else {
        Ok(())
    }
}

/// Parses a JSON body of the native API: [`parse_json`], and no NUL character in any string.
pub fn parse_native_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DomainError> {
    if escapes_nul(bytes) {
        return Err(DomainError::invalid(
            "the request body contains a NUL character (\\u0000), which no name or value may hold",
        ));
    }
    parse_json(bytes)
}

/// Reads a whole request body; too large is a 400 in the error shape.
pub(crate) async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, DomainError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            DomainError::invalid(format!("request body is too large: {}", rej.body_text()))
        } else {
            DomainError::Malformed(format!("cannot read request body: {}", rej.body_text()))
        }
    })
}

/// A JSON request body with errors in the native API's shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        Ok(Self(parse_native_json(&bytes)?))
    }
}

/// A JSON request body with errors in MLflow's shape and wording, plus its size in bytes.
pub struct MlflowJson<T>(pub T, pub usize);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for MlflowJson<T> {
    type Rejection = MlflowError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        Ok(Self(parse_mlflow_json(&bytes)?, bytes.len()))
    }
}

/// Parses an MLflow request body; a field of the wrong type or a missing required one is
/// reported as MLflow words it (`Invalid value 123 for parameter 'name' supplied`, `Missing value
/// for required parameter 'metrics[0].timestamp'`). The success path parses once, as usual.
pub fn parse_mlflow_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DomainError> {
    let bytes: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        bytes
    };
    if escapes_nul(bytes) {
        return Err(DomainError::invalid(
            "the request body contains a NUL character (\\u0000), which no name or value may hold",
        ));
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(t) => Ok(t),
        Err(e) if e.classify() != serde_json::error::Category::Data => {
            Err(DomainError::Malformed(format!("malformed JSON body: {e}")))
        }
        Err(e) => {
            let root: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| DomainError::Malformed(format!("malformed JSON body: {e}")))?;
            Err(mlflow_field_error::<T>(&root)
                .unwrap_or_else(|| DomainError::invalid(format!("invalid request: {e}"))))
        }
    }
}

/// Deserializes an MLflow request from a JSON value, with MLflow's wording for bad fields.
pub fn mlflow_from_value<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, DomainError> {
    match T::deserialize(v) {
        Ok(t) => Ok(t),
        Err(e) => Err(mlflow_field_error::<T>(v)
            .unwrap_or_else(|| DomainError::invalid(format!("invalid request: {e}")))),
    }
}

/// Re-reads a request that failed to deserialize, tracking the path, and words the error.
fn mlflow_field_error<T: DeserializeOwned>(root: &serde_json::Value) -> Option<DomainError> {
    if !root.is_object() {
        return Some(DomainError::Malformed(
            "the request body must be a JSON object".into(),
        ));
    }
    let err = serde_path_to_error::deserialize::<_, T>(root).err()?;
    let mut segments: Vec<PathSeg> = err
        .path()
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(PathSeg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(PathSeg::Index(*index)),
            _ => None,
        })
        .collect();
    let inner = err.inner().to_string();
    let missing = inner
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| f.to_string());
    if let Some(f) = &missing {
        segments.push(PathSeg::Key(f.clone()));
    }
    let mut name = String::new();
    for s in &segments {
        match s {
            PathSeg::Key(k) if name.is_empty() => name.push_str(k),
            PathSeg::Key(k) => {
                name.push('.');
                name.push_str(k);
            }
            PathSeg::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    let mut at = Some(root);
    for s in &segments {
        at = at.and_then(|v| match s {
            PathSeg::Key(k) => v.get(k),
            PathSeg::Index(i) => v.get(*i),
        });
    }
    Some(match at {
        None | Some(serde_json::Value::Null) => DomainError::invalid(format!(
            "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
        )),
        Some(v) => DomainError::invalid(format!(
            "Invalid value {v} for parameter '{name}' supplied: {inner}"
        )),
    })
}

enum PathSeg {
    Key(String),
    Index(usize),
}

async fn scoped_workspace(parts: &mut Parts, state: &AppState) -> Result<Workspace, DomainError> {
    let params: Option<Path<HashMap<String, String>>> =
        <Path<HashMap<String, String>> as axum::extract::OptionalFromRequestParts<AppState>>::from_request_parts(
            parts, state,
        )
        .await
        .map_err(|e| DomainError::invalid(e.body_text()))?;
    let name = params
        .as_ref()
        .and_then(|p| p.get("ws"))
        .map(String::as_str)
        .unwrap_or(DEFAULT_WORKSPACE);
    state.svc.workspace(name).await
}

/// The workspace named by the `{ws}` path segment (native API).
pub struct Ws(pub Workspace);

impl FromRequestParts<AppState> for Ws {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(scoped_workspace(parts, state).await?))
    }
}

/// The workspace of an MLflow route: `/ws/{ws}/api/2.0/...`, or `default` without prefix.
pub struct MlflowWs(pub Workspace);

impl FromRequestParts<AppState> for MlflowWs {
    type Rejection = MlflowError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(scoped_workspace(parts, state).await?))
    }
}

/// The request's `Range` header, parsed (one `bytes=` range), for file downloads.
pub struct Ranged(pub Option<crate::service::ByteRange>);

impl<S: Send + Sync> FromRequestParts<S> for Ranged {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(axum::http::header::RANGE)
                .map(|v| crate::service::ByteRange::parse(v.to_str().unwrap_or("")))
                .transpose()?,
        ))
    }
}

impl crate::api::openapi::describe::DocInput for Ranged {
    fn describe(
        _: &mut crate::api::openapi::describe::Generators,
        _: &mut crate::api::openapi::describe::OpDoc,
    ) {
    }
}

/// Query parameters as a multimap (repeated keys kept), decoded with `+` as space.
#[derive(Debug, Default)]
pub struct QueryMap(pub HashMap<String, Vec<String>>);

impl QueryMap {
    /// Parses a raw query string.
    pub fn parse(q: &str) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(decode(k)).or_default().push(decode(v));
        }
        Self(m)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    /// All values of `key`.
    pub fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first value of `key`, required.
    pub fn require(&self, key: &str) -> Result<&str, DomainError> {
        self.get(key).ok_or_else(|| crate::api::wire::missing(key))
    }

    /// The first value of `key` as an integer.
    pub fn int(&self, key: &str) -> Result<Option<i64>, DomainError> {
        self.get(key)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    DomainError::invalid(format!("parameter '{key}' must be an integer, got '{s}'"))
                })
            })
            .transpose()
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters decoded into `T`, strictly: an unknown parameter is a 400 naming it, a
/// value of the wrong type a 400 naming the parameter. Repeated keys fill a `Vec` field; an
/// empty value counts as absent for an `Option` field; `?flag` alone is `true`.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = QueryMap::parse(parts.uri.query().unwrap_or(""));
        for (k, vs) in &q.0 {
            no_nul("the query string", k)?;
            for v in vs {
                no_nul(&format!("query parameter '{k}'"), v)?;
            }
        }
        Ok(Self(query::from_map(q)?))
    }
}

/// A serde deserializer over a [`QueryMap`].
mod query {
    use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

    use super::QueryMap;
    use crate::workspace::DomainError;

    /// Decodes a query map into `T`.
    pub fn from_map<T: DeserializeOwned>(q: QueryMap) -> Result<T, DomainError> {
        let mut entries: Vec<(String, Vec<String>)> = q.0.into_iter().collect();
        entries.sort();
        let map = de::value::MapDeserializer::new(
            entries
                .into_iter()
                .map(|(key, values)| (key.clone(), Value { key, values })),
        );
        T::deserialize(map)
            .map_err(|e: Error| DomainError::invalid(format!("invalid query parameter: {}", e.0)))
    }

    /// A deserialization error (the message names the parameter).
    #[derive(Debug)]
    pub struct Error(String);

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Error {}

    impl de::Error for Error {
        fn custom<M: std::fmt::Display>(msg: M) -> Self {
            Self(msg.to_string())
        }
    }

    /// The values of one key.
    pub struct Value {
        key: String,
        values: Vec<String>,
    }

    impl<'de> IntoDeserializer<'de, Error> for Value {
        type Deserializer = Self;
        fn into_deserializer(self) -> Self {
            self
        }
    }

    impl Value {
        fn first(&self) -> &str {
            self.values.first().map(String::as_str).unwrap_or("")
        }

        fn parse<N: std::str::FromStr>(&self, what: &str) -> Result<N, Error> {
            self.first().trim().parse().map_err(|_| {
                Error(format!(
                    "parameter '{}' must be {what}, got '{}'",
                    self.key,
                    self.first()
                ))
            })
        }
    }

    macro_rules! numbers {
        ($($method:ident $visit:ident $t:ty, $what:literal;)*) => {
            $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
                v.$visit(self.parse::<$t>($what)?)
            })*
        };
    }

    impl<'de> de::Deserializer<'de> for Value {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            let first = self.first().to_string();
            v.visit_string(first)
        }

        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            if self.values.iter().all(|s| s.is_empty()) {
                v.visit_none()
            } else {
                v.visit_some(self)
            }
        }

        fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            match self.first() {
                "" | "true" | "1" => v.visit_bool(true),
                "false" | "0" => v.visit_bool(false),
                other => Err(Error(format!(
                    "parameter '{}' must be true or false, got '{other}'",
                    self.key
                ))),
            }
        }

        numbers! {
            deserialize_i64 visit_i64 i64, "an integer";
            deserialize_i32 visit_i32 i32, "an integer";
            deserialize_u64 visit_u64 u64, "a non-negative integer";
            deserialize_u32 visit_u32 u32, "a non-negative integer";
            deserialize_f64 visit_f64 f64, "a number";
        }

        fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            let key = self.key;
            v.visit_seq(de::value::SeqDeserializer::new(
                self.values.into_iter().map(move |s| Value {
                    key: key.clone(),
                    values: vec![s],
                }),
            ))
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            let first = self.first().to_string();
            v.visit_enum(IntoDeserializer::<Error>::into_deserializer(first))
        }

        serde::forward_to_deserialize_any! {
            i8 i16 i128 u8 u16 u128 f32 char str string bytes byte_buf unit unit_struct
            tuple tuple_struct map struct identifier ignored_any
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_maps_decode_and_repeat() {
        let q = QueryMap::parse("experiment_name=my+exp%2Fa&run_ids=a&run_ids=b&bad=%zz&tail=%4");
        assert_eq!(q.get("experiment_name"), Some("my exp/a"));
        assert_eq!(q.all("run_ids"), ["a", "b"]);
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("tail"), Some("%4"));
        assert_eq!(q.get("missing"), None);
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Q {
        a: Option<i64>,
        #[serde(default)]
        b: Vec<String>,
        #[serde(default)]
        c: bool,
        #[serde(alias = "dd")]
        d: Option<String>,
    }

    fn q(s: &str) -> Result<Q, DomainError> {
        query::from_map(QueryMap::parse(s))
    }

    #[test]
    fn typed_queries_are_strict() {
        assert_eq!(
            q("a=5&b=x&b=y+z&c").unwrap(),
            Q {
                a: Some(5),
                b: vec!["x".into(), "y z".into()],
                c: true,
                d: None
            }
        );
        assert_eq!(
            q("a=&dd=w&c=false").unwrap(),
            Q {
                a: None,
                b: vec![],
                c: false,
                d: Some("w".into())
            }
        );
        let e = q("a=many").unwrap_err().to_string();
        assert!(e.contains("'a'") && e.contains("many"), "{e}");
        let e = q("c=maybe").unwrap_err().to_string();
        assert!(e.contains("'c'"), "{e}");
        let e = q("fliter=x").unwrap_err();
        assert!(matches!(e, DomainError::InvalidArgument(_)));
        assert!(e.to_string().contains("unknown field `fliter`"), "{e}");
    }

    #[test]
    fn nul_escapes_are_found_in_json_text() {
        assert!(escapes_nul(br#"{"a": "x\u0000y"}"#));
        assert!(escapes_nul(br#"{"a\u0000": 1}"#));
        assert!(
            !escapes_nul(br#"{"a": "x\\u0000y"}"#),
            "an escaped backslash, then text"
        );
        assert!(escapes_nul(br#"{"a": "x\\\u0000"}"#));
        assert!(escapes_nul(br#"{"a": "\u00001"}"#));
        assert!(!escapes_nul(br#"{"a": "\u0001", "b": "\\"}"#));
        assert!(matches!(
            parse_native_json::<serde_json::Value>(br#"{"a": "\u0000"}"#),
            Err(DomainError::InvalidArgument(_))
        ));
    }

    #[test]
    fn empty_json_is_an_empty_object() {
        let v: serde_json::Value = parse_json(b"").unwrap();
        assert_eq!(v, serde_json::json!({}));
        assert!(matches!(
            parse_json::<serde_json::Value>(b"{nope"),
            Err(DomainError::Malformed(_))
        ));
    }
}
