//! What a handler's signature says about its operation: the request body and the query
//! parameters come from its extractors, the responses from its return type. A documented
//! route whose handler takes or answers a type without a description does not compile.

use std::future::Future;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params, Ws};

/// The schema generators of one document: request schemas are inlined and describe what is
/// accepted (serde's deserialize side); response schemas describe what is sent (the serialize
/// side) and share definitions under `#/components/schemas`.
pub struct Generators {
    request: SchemaGenerator,
    response: SchemaGenerator,
}

impl Default for Generators {
    fn default() -> Self {
        let request = SchemaSettings::draft2020_12()
            .with(|s| {
                s.inline_subschemas = true;
                s.meta_schema = None;
            })
            .for_deserialize()
            .into_generator();
        let response = SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.meta_schema = None;
            })
            .for_serialize()
            .into_generator();
        Self { request, response }
    }
}

impl Generators {
    /// The schema of what a request may send as `T`.
    pub fn request<T: JsonSchema>(&mut self) -> Value {
        self.request.subschema_for::<T>().to_value()
    }

    /// The schema of what a response sends as `T` (a `$ref` for named types).
    pub fn response<T: JsonSchema>(&mut self) -> Value {
        self.response.subschema_for::<T>().to_value()
    }

    /// The named response schemas collected so far, for `components.schemas`.
    pub fn take_definitions(&mut self) -> serde_json::Map<String, Value> {
        self.response.take_definitions(true)
    }
}

/// A request body: its media types with their schemas.
#[derive(Debug, Clone)]
pub struct BodyDoc {
    /// Whether a request must send one.
    pub required: bool,
    /// Media type → schema.
    pub content: Vec<(&'static str, Value)>,
}

/// A success response.
#[derive(Debug, Clone)]
pub struct ResponseDoc {
    /// HTTP status.
    pub status: u16,
    /// When it is sent.
    pub description: &'static str,
    /// Media type → schema (empty: no body).
    pub content: Vec<(&'static str, Value)>,
}

/// What an operation takes and answers.
#[derive(Debug, Clone, Default)]
pub struct OpDoc {
    /// The query parameters as one object schema (a property per parameter).
    pub query: Option<Value>,
    /// The request body.
    pub body: Option<BodyDoc>,
    /// Success responses (errors share one shape, documented for every operation).
    pub responses: Vec<ResponseDoc>,
}

impl OpDoc {
    /// Adds a JSON success response.
    pub fn json<T: JsonSchema>(
        &mut self,
        g: &mut Generators,
        status: u16,
        description: &'static str,
    ) {
        let schema = g.response::<T>();
        self.responses.push(ResponseDoc {
            status,
            description,
            content: vec![("application/json", schema)],
        });
    }
}

/// An extractor's part of the operation (most add nothing: path and state).
pub trait DocInput {
    /// Adds what the extractor reads to the operation.
    fn describe(g: &mut Generators, op: &mut OpDoc);
}

/// A return type's part of the operation: its success responses.
pub trait DocOutput {
    /// Adds the responses to the operation.
    fn describe(g: &mut Generators, op: &mut OpDoc);
}

/// A handler whose operation its signature describes (`Args`: its argument and return types,
/// inferred).
pub trait Described<Args> {
    /// The operation of the handler.
    fn describe(g: &mut Generators) -> OpDoc;
}

macro_rules! described {
    ($($t:ident),*) => {
        impl<F, Fut, R, $($t,)*> Described<(R, $($t,)*)> for F
        where
            F: FnOnce($($t),*) -> Fut,
            Fut: Future<Output = R>,
            R: DocOutput,
            $($t: DocInput,)*
        {
            fn describe(g: &mut Generators) -> OpDoc {
                let mut op = OpDoc::default();
                $(<$t as DocInput>::describe(g, &mut op);)*
                <R as DocOutput>::describe(g, &mut op);
                op
            }
        }
    };
}

described!();
described!(T1);
described!(T1, T2);
described!(T1, T2, T3);
described!(T1, T2, T3, T4);
described!(T1, T2, T3, T4, T5);
described!(T1, T2, T3, T4, T5, T6);

impl<S> DocInput for State<S> {
    fn describe(_: &mut Generators, _: &mut OpDoc) {}
}

impl<T> DocInput for Extension<T> {
    fn describe(_: &mut Generators, _: &mut OpDoc) {}
}

/// Path parameters are documented from the route's path template.
impl<T> DocInput for Path<T> {
    fn describe(_: &mut Generators, _: &mut OpDoc) {}
}

impl DocInput for Ws {
    fn describe(_: &mut Generators, _: &mut OpDoc) {}
}

impl<T: JsonSchema> DocInput for JsonBody<T> {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        let schema = g.request::<T>();
        // an empty body reads as `{}`: the body is optional when no field is required
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        op.body = Some(BodyDoc {
            required,
            content: vec![("application/json", schema)],
        });
    }
}

impl<T: JsonSchema> DocInput for Params<T> {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.query = Some(g.request::<T>());
    }
}

impl<T: JsonSchema> DocOutput for Json<T> {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.json::<T>(g, 200, "OK");
    }
}

impl<R: DocOutput> DocOutput for Result<R, ApiError> {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        R::describe(g, op);
    }
}

/// A body of any bytes (`application/octet-stream` or a file's own type).
pub fn binary() -> Value {
    json!({ "type": "string", "format": "binary" })
}

/// A body of text.
pub fn text() -> Value {
    json!({ "type": "string" })
}
