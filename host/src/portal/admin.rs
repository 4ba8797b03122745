//! Workspace settings: secrets (names only; set and delete for Contributors, as the API),
//! roles (assign and remove for Owners) and the audit log (Owners); datasets (versions, schema,
//! preview, download, the jobs that used a version).

use std::collections::BTreeMap;

use atrium_portal::fmt::{self, url_enc};
use atrium_portal::views::{
    AuditPage, AuditRow, DatasetPage, DatasetRow, DatasetsPage, Kv, SettingsPage,
};
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;

use crate::api::reply::CsvFile;
use serde::Deserialize;

use super::{Page, chrome, flash, page};
use crate::api::AppState;
use crate::api::extract::{QueryMap, Ws};
use crate::auth::{AuditFilter, Principal, Role};
use crate::secrets::SecretString;
use crate::workspace::{DomainError, Workspace};

/// Preview rows on a dataset page.
const PREVIEW_ROWS: usize = 20;

/// `GET /ui/ws/{ws}/datasets`.
pub async fn datasets(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "datasets", "Datasets").await?;
    let mut by_name: BTreeMap<String, Vec<crate::store::DatasetRow>> = BTreeMap::new();
    for d in st.svc.store.list_datasets(ws.id, None).await? {
        by_name.entry(d.name.clone()).or_default().push(d);
    }
    let rows = by_name
        .into_iter()
        .filter_map(|(name, vs)| {
            let latest = vs.iter().max_by_key(|d| d.version)?;
            Some(DatasetRow {
                latest: latest.version,
                versions: vs.len(),
                rows: latest.rows,
                size: fmt::size(latest.size.max(0) as u64),
                created: fmt::time(latest.created_at),
                name,
            })
        })
        .collect();
    page(&DatasetsPage { chrome: c, rows })
}

/// `GET /ui/ws/{ws}/datasets/{name}?version=N` (default: the latest).
pub async fn dataset(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    uri: Uri,
) -> Page {
    let q = QueryMap::parse(uri.query().unwrap_or(""));
    let d = st
        .svc
        .store
        .dataset(ws.id, &name, q.int("version")?)
        .await?;
    let c = chrome(
        &st,
        &who,
        &headers,
        &ws.name,
        "datasets",
        format!("{}:{}", d.name, d.version),
    )
    .await?;
    let mut versions: Vec<(i64, i64, String, String)> = st
        .svc
        .store
        .list_datasets(ws.id, Some(&name))
        .await?
        .iter()
        .map(|v| {
            (
                v.version,
                v.rows,
                fmt::size(v.size.max(0) as u64),
                fmt::time(v.created_at),
            )
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    let schema = serde_json::from_str::<serde_json::Value>(&d.schema)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|col| Kv {
            k: col["name"].as_str().unwrap_or("").to_string(),
            v: {
                let kind = col["kind"].as_str().or(col["type"].as_str()).unwrap_or("?");
                match col["distinct"].as_u64() {
                    Some(n) => format!("{kind}, {n} distinct values"),
                    None => kind.to_string(),
                }
            },
        })
        .collect();
    let table = st.svc.dataset_table(&ws, &d).await?;
    let jobs = st
        .svc
        .store
        .jobs_using_dataset(ws.id, &d.name, d.version)
        .await?;
    page(&DatasetPage {
        chrome: c,
        download: format!(
            "/ui/ws/{}/datasets/{}/data?version={}",
            url_enc(&ws.name),
            url_enc(&d.name),
            d.version
        ),
        name: d.name,
        version: d.version,
        versions,
        schema,
        head: table.header,
        preview: table.rows.into_iter().take(PREVIEW_ROWS).collect(),
        jobs,
    })
}

/// `GET /ui/ws/{ws}/datasets/{name}/data?version=N`: the CSV, as a download.
pub async fn dataset_data(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    uri: Uri,
) -> Page {
    let q = QueryMap::parse(uri.query().unwrap_or(""));
    let d = st
        .svc
        .store
        .dataset(ws.id, &name, q.int("version")?)
        .await?;
    let bytes = st.svc.dataset_bytes(&d).await?;
    Ok(CsvFile::dataset(&d.name, d.version, bytes).into_response())
}

async fn settings_page(
    st: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    ws: &Workspace,
    flash: Option<(bool, String)>,
) -> Page {
    let c = chrome(st, who, headers, &ws.name, "settings", "Settings").await?;
    let secrets = st
        .svc
        .list_secrets(ws)
        .await?
        .into_iter()
        .map(|s| (s.name, s.version, fmt::time(s.updated_at)))
        .collect();
    let roles = st
        .access
        .store()
        .list_roles(Some(&ws.name), None)
        .await?
        .into_iter()
        .map(|(_, user, role)| Kv {
            k: user,
            v: role.as_str().to_string(),
        })
        .collect();
    page(&SettingsPage {
        chrome: c,
        secrets,
        roles,
        flash,
    })
}

/// `GET /ui/ws/{ws}/settings`.
pub async fn settings(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    settings_page(&st, &who, &headers, &ws, None).await
}

/// The set-secret form.
#[derive(Deserialize)]
pub struct SecretForm {
    /// Secret name.
    name: String,
    /// Its value (set only).
    #[serde(default)]
    value: Option<String>,
}

/// `POST /ui/ws/{ws}/secrets/set`.
pub async fn set_secret(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Form(f): Form<SecretForm>,
) -> Page {
    let name = f.name.trim().to_string();
    let r = match f.value.filter(|v| !v.is_empty()) {
        None => Err(DomainError::invalid("a secret needs a value")),
        Some(v) => st
            .svc
            .set_secret(&ws, &name, SecretString::new(v), Some(who.actor()))
            .await
            .map(|w| format!("secret '{name}' set (version {})", w.meta.version)),
    };
    let flash = flash(r)?;
    settings_page(&st, &who, &headers, &ws, Some(flash)).await
}

/// `POST /ui/ws/{ws}/secrets/delete`.
pub async fn delete_secret(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Form(f): Form<SecretForm>,
) -> Page {
    let name = f.name.trim().to_string();
    let r = st
        .svc
        .delete_secret(&ws, &name)
        .await
        .map(|()| format!("secret '{name}' deleted"));
    let flash = flash(r)?;
    settings_page(&st, &who, &headers, &ws, Some(flash)).await
}

/// The role form.
#[derive(Deserialize)]
pub struct RoleForm {
    /// User name.
    user: String,
    /// `Reader`, `Contributor` or `Owner` (assign only).
    #[serde(default)]
    role: Option<String>,
}

/// `POST /ui/ws/{ws}/roles/assign` (Owners).
pub async fn assign_role(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Form(f): Form<RoleForm>,
) -> Page {
    let user = f.user.trim().to_string();
    let r = async {
        let role = Role::parse(f.role.as_deref().unwrap_or(""))?;
        let name = st.access.assign_role(ws.id, &user, role).await?;
        Ok(format!("{name} is now {} on {}", role.as_str(), ws.name))
    }
    .await;
    let flash = flash(r)?;
    settings_page(&st, &who, &headers, &ws, Some(flash)).await
}

/// `POST /ui/ws/{ws}/roles/remove` (Owners).
pub async fn remove_role(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
    Form(f): Form<RoleForm>,
) -> Page {
    let user = f.user.trim().to_string();
    let r = match st.access.store().remove_role(ws.id, &user).await {
        Ok(true) => Ok(format!("{user} has no role on {} any more", ws.name)),
        Ok(false) => Err(DomainError::NotFound(format!(
            "user '{user}' has no role on workspace '{}'",
            ws.name
        ))),
        Err(e) => Err(e),
    };
    let flash = flash(r)?;
    settings_page(&st, &who, &headers, &ws, Some(flash)).await
}

/// `GET /ui/ws/{ws}/audit` (Owners): the newest 200 records of the workspace.
pub async fn audit(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Ws(ws): Ws,
) -> Page {
    let c = chrome(&st, &who, &headers, &ws.name, "settings", "Audit log").await?;
    let f = AuditFilter {
        workspace: Some(ws.name.clone()),
        limit: 200,
        ..Default::default()
    };
    let rows = st
        .access
        .store()
        .list_audit(&f)
        .await?
        .into_iter()
        .map(|a| AuditRow {
            at: fmt::time(a.at),
            actor: a.actor,
            action: a.action,
            object: a.object,
            status: a.status,
            result: a.result,
        })
        .collect();
    page(&AuditPage { chrome: c, rows })
}
