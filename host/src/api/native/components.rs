//! Component registry and datastore endpoints.

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws, no_nul};
use crate::api::openapi::describe::{BodyDoc, DocInput, Generators, OpDoc};
use crate::api::reply::{Created, Empty, Upserted};
use crate::auth::{Principal, Role};
use crate::service::{ComponentUpload, DatastoreRequest};
use crate::store::{ComponentRow, Datastore};
use crate::workspace::DomainError;

type Reply<T> = Result<Json<T>, ApiError>;

/// A component version.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Component")]
pub struct ComponentJson {
    /// Registry name.
    name: String,
    /// Version label.
    version: String,
    /// Plugin kind (`scorer`, `storage`, `sampler`, …).
    kind: String,
    /// sha256 of the `.wasm`.
    digest: String,
    /// Bytes.
    size: i64,
    /// The SDK API version embedded in the component, if any.
    api_version: Option<String>,
    /// The manifest (`plugin.toml`) as JSON.
    manifest: Map<String, Value>,
    /// Whether the host registered it itself.
    builtin: bool,
    /// Milliseconds since the epoch.
    created_at: i64,
}

fn component_json(c: ComponentRow) -> Result<ComponentJson, DomainError> {
    let manifest = serde_json::from_str(&c.manifest).map_err(|e| {
        DomainError::Internal(format!(
            "stored manifest of component {}@{}: {e}",
            c.name, c.version
        ))
    })?;
    Ok(ComponentJson {
        name: c.name,
        version: c.version,
        kind: c.kind,
        digest: c.digest,
        size: c.size,
        api_version: c.api_version,
        manifest,
        builtin: c.builtin,
        created_at: c.created_at,
    })
}

/// A datastore (its grants included; secrets by name only).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Datastore")]
pub struct DatastoreJson {
    /// Name in the workspace.
    name: String,
    /// Whether new artifacts go here unless an experiment says otherwise.
    default: bool,
    /// Storage component (none for the built-in local store).
    component: Option<String>,
    /// Its version.
    version: Option<String>,
    /// What the component was granted: config, directories, hosts, secret names.
    grants: Option<Map<String, Value>>,
}

fn datastore_json(d: Datastore) -> DatastoreJson {
    let c = &d.config;
    let text = |k: &str| c.get(k).and_then(Value::as_str).map(String::from);
    DatastoreJson {
        component: text("component"),
        version: text("version"),
        grants: c.get("grants").and_then(Value::as_object).cloned(),
        name: d.name,
        default: d.is_default,
    }
}

/// The multipart body of a component push: parts `component` (the `.wasm`) and `manifest`
/// (`plugin.toml`).
pub struct ComponentForm {
    wasm: Vec<u8>,
    manifest: String,
}

impl<S: Send + Sync> FromRequest<S> for ComponentForm {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| DomainError::Malformed(format!("invalid multipart body: {e}")))?;
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
                    let text = String::from_utf8(data.to_vec())
                        .map_err(|_| DomainError::invalid("the manifest is not UTF-8"))?;
                    no_nul("the manifest", &text)?;
                    manifest = Some(text);
                }
                other => {
                    return Err(DomainError::invalid(format!(
                        "unexpected part '{other}': send 'component' and 'manifest'"
                    ))
                    .into());
                }
            }
        }
        Ok(Self {
            wasm: wasm
                .ok_or_else(|| DomainError::invalid("missing part 'component' (the .wasm file)"))?,
            manifest: manifest
                .ok_or_else(|| DomainError::invalid("missing part 'manifest' (plugin.toml)"))?,
        })
    }
}

impl DocInput for ComponentForm {
    fn describe(_: &mut Generators, op: &mut OpDoc) {
        op.body = Some(BodyDoc {
            required: true,
            content: vec![(
                "multipart/form-data",
                json!({
                    "type": "object",
                    "properties": {
                        "component": {
                            "type": "string",
                            "format": "binary",
                            "description": "The component (.wasm)."
                        },
                        "manifest": { "type": "string", "description": "plugin.toml" },
                    },
                    "required": ["component", "manifest"],
                    "additionalProperties": false,
                }),
            )],
        });
    }
}

/// `PUT .../components/{name}/versions/{version}`: validated before anything is stored; 201
/// when new, 200 when the same bytes were already registered.
pub async fn push(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
    form: ComponentForm,
) -> Result<Upserted<ComponentJson>, ApiError> {
    let (c, created) = st
        .svc
        .push_component(
            &ws,
            ComponentUpload {
                name,
                version,
                manifest: form.manifest,
                wasm: form.wasm,
            },
        )
        .await?;
    Ok(Upserted {
        created,
        body: component_json(c)?,
    })
}

/// The components of a workspace.
#[derive(Serialize, JsonSchema)]
pub struct ComponentList {
    /// By name, then version.
    components: Vec<ComponentJson>,
}

/// `GET .../components`.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Reply<ComponentList> {
    let all = st.svc.store.list_components(ws.id).await?;
    Ok(Json(ComponentList {
        components: all
            .into_iter()
            .map(component_json)
            .collect::<Result<_, _>>()?,
    }))
}

/// `GET .../components/{name}/versions/{version}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply<ComponentJson> {
    Ok(Json(component_json(
        st.svc.component(&ws, &name, &version).await?,
    )?))
}

/// `DELETE .../components/{name}/versions/{version}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Reply<Empty> {
    st.svc.delete_component(&ws, &name, &version).await?;
    Ok(Json(Empty {}))
}

/// The datastores of a workspace.
#[derive(Serialize, JsonSchema)]
pub struct DatastoreList {
    /// By name.
    datastores: Vec<DatastoreJson>,
}

/// `GET .../datastores`.
pub async fn list_datastores(State(st): State<AppState>, Ws(ws): Ws) -> Reply<DatastoreList> {
    let all = st.svc.store.list_datastores(ws.id).await?;
    Ok(Json(DatastoreList {
        datastores: all.into_iter().map(datastore_json).collect(),
    }))
}

/// `PUT .../datastores/{name}` with a [`DatastoreRequest`].
pub async fn create_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<DatastoreRequest>,
) -> Result<Created<DatastoreJson>, ApiError> {
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
    let ds = st.svc.create_datastore(&ws, &name, req).await?;
    Ok(Created(datastore_json(ds)))
}

/// `GET .../datastores/{name}`.
pub async fn get_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<DatastoreJson> {
    Ok(Json(datastore_json(
        st.svc.store.datastore_by_name(ws.id, &name).await?,
    )))
}

/// `POST .../datastores/{name}/default`: makes it the workspace's default datastore.
pub async fn set_default_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<DatastoreJson> {
    Ok(Json(datastore_json(
        st.svc.store.set_default_datastore(ws.id, &name).await?,
    )))
}

/// `DELETE .../datastores/{name}`.
pub async fn delete_datastore(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<Empty> {
    st.svc.delete_datastore(&ws, &name).await?;
    Ok(Json(Empty {}))
}
