//! The secret store's operations on the workspace service: set, list, show and delete work on
//! metadata and ciphertext only; [`Service::resolve_secrets`] is the one place where values
//! are decrypted for use.

use std::collections::BTreeSet;

use serde::Serialize;
use zeroize::Zeroize;

use super::cipher::secret_aad;
use super::names::{check_name, check_value};
use super::value::SecretString;
use crate::datastore::PluginDatastore;
use crate::plugins::SecretValues;
use crate::service::Service;
use crate::workspace::{DomainError, DomainResult, Workspace, now_millis};

/// What the API shows of a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    /// Name, unique in its workspace.
    pub name: String,
    /// 1 when created, +1 on each replacement.
    pub version: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch of the last replacement.
    pub updated_at: i64,
    /// Who created it (when the request was authenticated).
    pub created_by: Option<String>,
}

/// The outcome of setting a secret.
#[derive(Debug, Clone)]
pub struct SecretWrite {
    /// The stored metadata.
    pub meta: SecretMeta,
    /// Whether the secret is new (rather than a replacement).
    pub created: bool,
}

fn missing(ws: &Workspace, name: &str) -> DomainError {
    DomainError::NotFound(format!(
        "secret '{name}' does not exist in workspace '{}'",
        ws.name
    ))
}

impl Service {
    /// Creates or replaces a secret (sealed before it is stored). Cached datastores that use
    /// it are reopened with the new value on their next use.
    pub async fn set_secret(
        &self,
        ws: &Workspace,
        name: &str,
        value: SecretString,
        created_by: Option<&str>,
    ) -> DomainResult<SecretWrite> {
        check_name(name)?;
        check_value(value.expose())?;
        let sealed = self
            .vault
            .cipher()
            .seal(&secret_aad(&ws.name, name), value.expose().as_bytes())?;
        drop(value);
        let meta = self
            .store
            .put_secret(ws.id, name, &sealed, now_millis(), created_by)
            .await?;
        self.datastores.forget_secret_users(&ws.name, name);
        let created = meta.version == 1;
        tracing::info!(
            workspace = ws.name.as_str(),
            secret = name,
            version = meta.version,
            "secret {}",
            if created { "created" } else { "replaced" }
        );
        Ok(SecretWrite { meta, created })
    }

    /// Metadata of a workspace's secrets.
    pub async fn list_secrets(&self, ws: &Workspace) -> DomainResult<Vec<SecretMeta>> {
        self.store.list_secrets(ws.id).await
    }

    /// Metadata of one secret.
    pub async fn secret(&self, ws: &Workspace, name: &str) -> DomainResult<SecretMeta> {
        check_name(name)?;
        self.store
            .secret_meta(ws.id, name)
            .await?
            .ok_or_else(|| missing(ws, name))
    }

    /// Names of the workspace's datastores whose grants name the secret.
    pub async fn secret_datastores(&self, ws: &Workspace, name: &str) -> DomainResult<Vec<String>> {
        let mut out = Vec::new();
        for ds in self.store.list_datastores(ws.id).await? {
            if let Ok(cfg) = serde_json::from_value::<PluginDatastore>(ds.config.clone())
                && cfg.grants.secrets.iter().any(|s| s == name)
            {
                out.push(ds.name);
            }
        }
        Ok(out)
    }

    /// Deletes a secret; refused while a datastore's grants name it (it would stop working).
    pub async fn delete_secret(&self, ws: &Workspace, name: &str) -> DomainResult<()> {
        check_name(name)?;
        let users = self.secret_datastores(ws, name).await?;
        if let Some(ds) = users.first() {
            return Err(DomainError::InvalidState(format!(
                "secret '{name}' is granted to datastore '{ds}'; delete that datastore first (or replace the secret's value instead)"
            )));
        }
        if !self.store.delete_secret(ws.id, name).await? {
            return Err(missing(ws, name));
        }
        self.datastores.forget_secret_users(&ws.name, name);
        tracing::info!(
            workspace = ws.name.as_str(),
            secret = name,
            "secret deleted"
        );
        Ok(())
    }

    /// Checks that secrets exist (without decrypting them): names that break the naming rules
    /// are refused (400), names that do not exist are not found (404).
    pub async fn check_secrets_exist(&self, ws: &Workspace, names: &[String]) -> DomainResult<()> {
        for name in names.iter().collect::<BTreeSet<_>>() {
            check_name(name)?;
            if self.store.secret_meta(ws.id, name).await?.is_none() {
                return Err(missing(ws, name));
            }
        }
        Ok(())
    }

    /// Decrypts secrets for use by `used_by` (a datastore, a job). Every decryption of a
    /// value for use passes through here and nowhere else.
    pub async fn resolve_secrets(
        &self,
        ws: &Workspace,
        names: &[String],
        used_by: &str,
    ) -> DomainResult<SecretValues> {
        let mut out = SecretValues::new();
        for name in names.iter().collect::<BTreeSet<_>>() {
            check_name(name)?;
            let sealed = self
                .store
                .sealed_secret(ws.id, name)
                .await?
                .ok_or_else(|| missing(ws, name))?;
            let what = format!("secret '{name}' of workspace '{}'", ws.name);
            let mut plain =
                self.vault
                    .cipher()
                    .open(&secret_aad(&ws.name, name), &sealed, &what)?;
            let value = match String::from_utf8(std::mem::take(&mut *plain)) {
                Ok(s) => SecretString::new(s),
                Err(e) => {
                    e.into_bytes().zeroize();
                    return Err(DomainError::Internal(format!("{what} is not UTF-8")));
                }
            };
            out.insert(name.clone(), value);
        }
        tracing::debug!(
            workspace = ws.name.as_str(),
            secrets = ?out.keys().collect::<Vec<_>>(),
            used_by,
            "secrets resolved"
        );
        // every use is on the record (the name, never the value)
        for name in out.keys() {
            let entry = crate::auth::NewAuditEntry {
                at: crate::workspace::now_millis(),
                workspace: Some(ws.name.clone()),
                actor: used_by.to_string(),
                token_id: None,
                action: "secret.use".into(),
                object: format!("secret:{name}"),
                status: 0,
                result: "ok",
            };
            if let Err(e) = self.store.insert_audit(&entry).await {
                tracing::error!(error = %e, "cannot write the audit record of a secret use");
            }
        }
        Ok(out)
    }
}
