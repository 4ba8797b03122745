//! Components (kind, versions, manifest and capabilities) and datastores (component, grants):
//! read-only pages; pushing and configuring stay in the CLI and API.

use atrium_portal::fmt;
use atrium_portal::views::{ComponentPage, ComponentRow, ComponentsPage, DatastoreRow, Kv};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::Value;

use super::{Page, chrome, page};
use crate::api::AppState;
use crate::api::extract::Ws;
use crate::auth::Principal;
use crate::store::Datastore;

/// A stored component's manifest (`null` if it does not parse).
fn manifest_of(c: &crate::store::ComponentRow) -> Value {
    serde_json::from_str(&c.manifest).unwrap_or(Value::Null)
}

/// The list row of a stored component with its parsed manifest.
fn row_of(c: &crate::store::ComponentRow, manifest: &Value) -> ComponentRow {
    let description = manifest["description"].as_str().unwrap_or("").to_string();
    ComponentRow {
        name: c.name.clone(),
        version: c.version.clone(),
        kind: c.kind.clone(),
        description,
        builtin: c.builtin,
        size: fmt::size(c.size.max(0) as u64),
        digest: c.digest.chars().take(12).collect(),
        created: fmt::time(c.created_at),
    }
}

/// One line of a JSON value: strings bare, lists comma-separated, the rest as JSON.
fn line(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(line).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", line(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The non-empty entries of a JSON object, one line each.
fn lines(v: &Value) -> Vec<Kv> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !matches!(v, Value::Null) && v.as_array().is_none_or(|a| !a.is_empty()))
        .map(|(k, v)| Kv {
            k: k.clone(),
            v: line(v),
        })
        .collect()
}

/// `component@version` of a datastore, or empty for the built-in local store.
fn component_of(d: &Datastore) -> String {
    match (
        d.config.get("component").and_then(Value::as_str),
        d.config.get("version").and_then(Value::as_str),
    ) {
        (Some(c), Some(v)) => format!("{c}@{v}"),
        (Some(c), None) => c.to_string(),
        _ => String::new(),
    }
}

/// `GET /ui/ws/{ws}/components`: the workspace's components and datastores.
pub async fn components(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "components", "Components").await?;
    let components = st
        .svc
        .store
        .list_components(ws.id)
        .await?
        .iter()
        .map(|c| row_of(c, &manifest_of(c)))
        .collect();
    let datastores = st
        .svc
        .store
        .list_datastores(ws.id)
        .await?
        .into_iter()
        .map(|d| DatastoreRow {
            component: component_of(&d),
            grants: d.config.get("grants").map(lines).unwrap_or_default(),
            name: d.name,
            default: d.is_default,
        })
        .collect();
    page(&ComponentsPage {
        chrome: c,
        components,
        datastores,
    })
}

/// `GET /ui/ws/{ws}/components/{name}/{version}`: facts, capabilities, limits, the manifest,
/// the other versions and the datastores that use it.
pub async fn component(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Page {
    let comp = st.svc.component(&ws, &name, &version).await?;
    let c = chrome(
        &st,
        &who,
        &headers,
        &ws.name,
        "components",
        format!("{name}@{version}"),
    )
    .await?;
    let manifest = manifest_of(&comp);
    let mut facts = vec![
        Kv {
            k: "Digest".into(),
            v: format!("sha256:{}", comp.digest),
        },
        Kv {
            k: "Size".into(),
            v: fmt::size(comp.size.max(0) as u64),
        },
        Kv {
            k: "SDK API".into(),
            v: comp
                .api_version
                .clone()
                .unwrap_or_else(|| "not embedded".into()),
        },
        Kv {
            k: "Pushed".into(),
            v: fmt::time(comp.created_at),
        },
    ];
    if comp.builtin {
        facts.push(Kv {
            k: "Origin".into(),
            v: "registered by the host".into(),
        });
    }
    let all = st.svc.store.list_components(ws.id).await?;
    let versions = all
        .iter()
        .filter(|v| v.name == comp.name)
        .map(|v| (v.version.clone(), v.kind.clone(), fmt::time(v.created_at)))
        .collect();
    let me = format!("{}@{}", comp.name, comp.version);
    let datastores = st
        .svc
        .store
        .list_datastores(ws.id)
        .await?
        .into_iter()
        .filter(|d| component_of(d) == me)
        .map(|d| d.name)
        .collect();
    page(&ComponentPage {
        chrome: c,
        row: row_of(&comp, &manifest),
        facts,
        capabilities: lines(&manifest["capabilities"]),
        limits: lines(&manifest["limits"]),
        manifest: serde_json::to_string_pretty(&manifest).unwrap_or_default(),
        versions,
        datastores,
    })
}
