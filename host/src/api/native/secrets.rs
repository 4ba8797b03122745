//! Secret endpoints: set (create or replace), list, show and delete. No response ever carries
//! a value: the API takes values in and gives back metadata only.

use axum::extract::{FromRequest, Path, Request, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{Ws, body_bytes};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc};
use crate::api::reply::{Empty, Upserted};
use crate::auth::Principal;
use crate::secrets::{SecretMeta, SecretString};
use crate::workspace::DomainError;

/// A secret's metadata (never its value).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Secret")]
pub struct SecretJson {
    /// Name, unique in the workspace.
    name: String,
    /// 1 when created, +1 on each replacement.
    version: i64,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// The last replacement.
    updated_at: i64,
    /// Who created it.
    created_by: Option<String>,
    /// The datastores whose grants name it (`GET .../secrets/{name}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    datastores: Option<Vec<String>>,
}

fn secret_json(m: SecretMeta, datastores: Option<Vec<String>>) -> SecretJson {
    SecretJson {
        name: m.name,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
        created_by: m.created_by,
        datastores,
    }
}

/// The body of `PUT .../secrets/{name}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetBody {
    /// The value (UTF-8 text).
    #[schemars(with = "String")]
    value: SecretString,
}

/// Parses the body without ever echoing it: serde's messages can quote input.
fn parse_body(bytes: &[u8]) -> Result<SecretString, DomainError> {
    let shape = || {
        DomainError::invalid(
            "the body must be a JSON object {\"value\": \"...\"} with the value as a string and no other field",
        )
    };
    // serde would also take a one-element array for the struct
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(shape());
    }
    serde_json::from_slice::<SetBody>(bytes)
        .map(|b| b.value)
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => shape(),
            _ => DomainError::Malformed(format!(
                "malformed JSON body at line {} column {}",
                e.line(),
                e.column()
            )),
        })
}

/// The value sent to `PUT .../secrets/{name}`, read without echoing it in any error.
pub struct SecretBody(SecretString);

impl<S: Send + Sync> FromRequest<S> for SecretBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = body_bytes(req, state).await?;
        Ok(Self(parse_body(&body)?))
    }
}

impl DocInput for SecretBody {
    fn describe(g: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: true,
            content: vec![("application/json", g.request::<SetBody>())],
        });
    }
}

/// `PUT .../secrets/{name}` with `{"value": "..."}`: 201 when created, 200 when replaced;
/// answers the metadata.
pub async fn put(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    SecretBody(value): SecretBody,
) -> Result<Upserted<SecretJson>, ApiError> {
    let w = st
        .svc
        .set_secret(&ws, &name, value, Some(p.actor()))
        .await?;
    Ok(Upserted {
        created: w.created,
        body: secret_json(w.meta, None),
    })
}

/// The secrets of a workspace.
#[derive(Serialize, JsonSchema)]
pub struct SecretList {
    /// Metadata only, by name.
    secrets: Vec<SecretJson>,
}

/// `GET .../secrets`: metadata of every secret of the workspace.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Result<Json<SecretList>, ApiError> {
    let all = st.svc.list_secrets(&ws).await?;
    Ok(Json(SecretList {
        secrets: all.into_iter().map(|m| secret_json(m, None)).collect(),
    }))
}

/// `GET .../secrets/{name}`: metadata, and the datastores granted the secret.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<SecretJson>, ApiError> {
    let m = st.svc.secret(&ws, &name).await?;
    let users = st.svc.secret_datastores(&ws, &name).await?;
    Ok(Json(secret_json(m, Some(users))))
}

/// `DELETE .../secrets/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Empty>, ApiError> {
    st.svc.delete_secret(&ws, &name).await?;
    Ok(Json(Empty {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_never_quote_the_input() {
        assert_eq!(
            parse_body(br#"{"value": "hunter2"}"#).unwrap().expose(),
            "hunter2"
        );
        for bad in [
            &br#"{"value": "hunter2", "other": "hunter2"}"#[..],
            br#"{"valu": "hunter2"}"#,
            br#"["hunter2"]"#,
            br#""hunter2""#,
            br#"{"value": "hunter2"#,
            br#"{"value": hunter2}"#,
        ] {
            let e = parse_body(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
