//! Secret endpoints: set (create or replace), list, show and delete. No response ever carries
//! a value: the API takes values in and gives back metadata only.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::Ws;
use crate::auth::Principal;
use crate::secrets::{SecretMeta, SecretString};
use crate::workspace::DomainError;

/// A secret's metadata as JSON, with the datastores whose grants name it.
fn secret_json(m: &SecretMeta, datastores: Option<Vec<String>>) -> Value {
    let mut v = json!({
        "name": m.name,
        "version": m.version,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "created_by": m.created_by,
    });
    if let Some(d) = datastores {
        v["datastores"] = json!(d);
    }
    v
}

/// The body of `PUT .../secrets/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
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

/// `PUT .../secrets/{name}` with `{"value": "..."}`: 201 when created, 200 when replaced;
/// answers the metadata.
pub async fn put(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let value = parse_body(&body)?;
    drop(body);
    let w = st
        .tracking
        .set_secret(&ws, &name, value, Some(p.actor()))
        .await?;
    Ok((
        if w.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(secret_json(&w.meta, None)),
    ))
}

/// `GET .../secrets`: metadata of every secret of the workspace.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Result<Json<Value>, ApiError> {
    let all = st.tracking.list_secrets(&ws).await?;
    Ok(Json(json!({
        "secrets": all.iter().map(|m| secret_json(m, None)).collect::<Vec<_>>()
    })))
}

/// `GET .../secrets/{name}`: metadata, and the datastores granted the secret.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = st.tracking.secret(&ws, &name).await?;
    let users = st.tracking.secret_datastores(&ws, &name).await?;
    Ok(Json(secret_json(&m, Some(users))))
}

/// `DELETE .../secrets/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    st.tracking.delete_secret(&ws, &name).await?;
    Ok(Json(json!({})))
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
