//! Component registry and datastore endpoints.

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::auth::{Principal, Role};
use crate::store::{ComponentRow, Datastore};
use crate::tracking::{ComponentUpload, DatastoreRequest};
use crate::workspace::DomainError;

/// A component version as JSON.
fn component_json(c: &ComponentRow) -> Value {
    json!({
        "name": c.name,
        "version": c.version,
        "kind": c.kind,
        "digest": c.digest,
        "size": c.size,
        "api_version": c.api_version,
        "manifest": serde_json::from_str::<Value>(&c.manifest).unwrap_or(Value::Null),
        "builtin": c.builtin,
        "created_at": c.created_at,
    })
}

/// A datastore as JSON (its grants included; secrets are names only).
fn datastore_json(d: &Datastore) -> Value {
    let c = &d.config;
    json!({
        "name": d.name,
        "default": d.is_default,
        "component": c.get("component"),
        "version": c.get("version"),
        "grants": c.get("grants"),
    })
}

/// `PUT .../components/{name}/versions/{version}`: multipart with parts `component` (the
/// `.wasm`) and `manifest` (`plugin.toml`). Validated before anything is stored.
pub async fn push(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (mut wasm, mut manifest) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?
    {
        let part = field.name().unwrap_or("").to_string();
        let data = field
            .bytes()
            .await
            .map_err(|e| DomainError::invalid(format!("cannot read part '{part}': {e}")))?;
        match part.as_str() {
            "component" => wasm = Some(data.to_vec()),
            "manifest" => {
                manifest = Some(
                    String::from_utf8(data.to_vec())
                        .map_err(|_| DomainError::invalid("the manifest is not UTF-8"))?,
                )
            }
            other => {
                return Err(DomainError::invalid(format!(
                    "unexpected part '{other}': send 'component' and 'manifest'"
                ))
                .into());
            }
        }
    }
    let wasm =
        wasm.ok_or_else(|| DomainError::invalid("missing part 'component' (the .wasm file)"))?;
    let manifest =
        manifest.ok_or_else(|| DomainError::invalid("missing part 'manifest' (plugin.toml)"))?;
    let (c, created) = st
        .tracking
        .push_component(
            &ws,
            ComponentUpload {
                name,
                version,
                manifest,
                wasm,
            },
        )
        .await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(component_json(&c)),
    ))
}

/// `GET .../components`.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Result<Json<Value>, ApiError> {
    let all = st.tracking.store.list_components(ws.id).await?;
    Ok(Json(
        json!({ "components": all.iter().map(component_json).collect::<Vec<_>>() }),
    ))
}

/// `GET .../components/{name}/versions/{version}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(component_json(
        &st.tracking.component(&ws, &name, &version).await?,
    )))
}

/// `DELETE .../components/{name}/versions/{version}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    st.tracking.delete_component(&ws, &name, &version).await?;
    Ok(Json(json!({})))
}

/// `GET .../datastores`.
pub async fn list_datastores(
    State(st): State<AppState>,
    Ws(ws): Ws,
) -> Result<Json<Value>, ApiError> {
    let all = st.tracking.store.list_datastores(ws.id).await?;
    Ok(Json(
        json!({ "datastores": all.iter().map(datastore_json).collect::<Vec<_>>() }),
    ))
}

/// `PUT .../datastores/{name}` with a [`DatastoreRequest`].
pub async fn create_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<DatastoreRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !req.secrets.is_empty() {
        // granting a plugin secrets is the Owner's decision (a Contributor could otherwise
        // hand any workspace secret to a component of their own)
        super::require_role(
            &st,
            &p,
            &ws.name,
            Role::Owner,
            "granting secrets to a datastore",
        )
        .await?;
    }
    let ds = st.tracking.create_datastore(&ws, &name, req).await?;
    Ok((StatusCode::CREATED, Json(datastore_json(&ds))))
}

/// `GET .../datastores/{name}`.
pub async fn get_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(datastore_json(
        &st.tracking.store.datastore_by_name(ws.id, &name).await?,
    )))
}

/// `DELETE .../datastores/{name}`.
pub async fn delete_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    st.tracking.delete_datastore(&ws, &name).await?;
    Ok(Json(json!({})))
}
