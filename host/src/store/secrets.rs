//! Sealed workspace secrets and the vault's key check row. Rows hold only ciphertext: sealing
//! and opening happen in [`crate::secrets`].

use super::rows::RowExt;
use super::{Store, with_db};
use crate::secrets::{Sealed, SecretMeta};
use crate::workspace::DomainResult;

/// The stored key check: a constant sealed under the master key, with the key's fingerprint.
#[derive(Debug, Clone)]
pub struct VaultMetaRow {
    /// Fingerprint of the master key the database's secrets are sealed with.
    pub key_fingerprint: String,
    /// The sealed constant.
    pub check: Sealed,
}

fn meta_from(r: &impl RowExt) -> DomainResult<SecretMeta> {
    Ok(SecretMeta {
        name: r.text("name")?,
        version: r.i64("version")?,
        created_at: r.i64("created_at")?,
        updated_at: r.i64("updated_at")?,
        created_by: r.opt_text("created_by")?,
    })
}

fn vault_meta_from(r: &impl RowExt) -> DomainResult<VaultMetaRow> {
    Ok(VaultMetaRow {
        key_fingerprint: r.text("key_fingerprint")?,
        check: Sealed {
            nonce: r.bytes("check_nonce")?,
            ciphertext: r.bytes("check_ciphertext")?,
        },
    })
}

impl Store {
    /// The key check row, if the vault was ever initialized.
    pub async fn vault_meta(&self) -> DomainResult<Option<VaultMetaRow>> {
        let row = with_db!(self, read, |p| {
            sqlx::query(
                "SELECT key_fingerprint, check_nonce, check_ciphertext FROM vault_meta WHERE id = 1",
            )
            .fetch_optional(p)
            .await?
            .as_ref()
            .map(vault_meta_from)
            .transpose()
        })?;
        Ok(row)
    }

    /// Writes the key check row unless one exists (another replica may have written it).
    pub async fn init_vault_meta(&self, m: &VaultMetaRow, now: i64) -> DomainResult<()> {
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO vault_meta (id, key_fingerprint, check_nonce, check_ciphertext, created_at) \
                 VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&m.key_fingerprint)
            .bind(&m.check.nonce)
            .bind(&m.check.ciphertext)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Replaces the key check row, only while no secret is stored; returns whether it did.
    pub async fn replace_vault_meta_if_empty(
        &self,
        m: &VaultMetaRow,
        now: i64,
    ) -> DomainResult<bool> {
        let done = with_db!(self, write, |p| {
            sqlx::query(
                "UPDATE vault_meta SET key_fingerprint = $1, check_nonce = $2, \
                 check_ciphertext = $3, created_at = $4 \
                 WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM secrets)",
            )
            .bind(&m.key_fingerprint)
            .bind(&m.check.nonce)
            .bind(&m.check.ciphertext)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Creates or replaces a sealed secret; a replacement bumps its version and keeps its
    /// creation time and creator. Returns the stored metadata.
    pub async fn put_secret(
        &self,
        workspace_id: i64,
        name: &str,
        sealed: &Sealed,
        now: i64,
        created_by: Option<&str>,
    ) -> DomainResult<SecretMeta> {
        let meta = with_db!(self, write, |p| {
            let r = sqlx::query(
                "INSERT INTO secrets (workspace_id, name, nonce, ciphertext, version, created_at, \
                 updated_at, created_by) VALUES ($1, $2, $3, $4, 1, $5, $5, $6) \
                 ON CONFLICT (workspace_id, name) DO UPDATE SET nonce = excluded.nonce, \
                 ciphertext = excluded.ciphertext, version = secrets.version + 1, \
                 updated_at = excluded.updated_at \
                 RETURNING name, version, created_at, updated_at, created_by",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(now)
            .bind(created_by)
            .fetch_one(p)
            .await?;
            meta_from(&r)
        });
        if meta.is_ok() {
            self.announce(super::Change::Secret {
                workspace_id,
                name: name.to_string(),
            })
            .await;
        }
        meta
    }

    /// Metadata of a workspace's secrets, by name.
    pub async fn list_secrets(&self, workspace_id: i64) -> DomainResult<Vec<SecretMeta>> {
        with_db!(self, read, |p| {
            sqlx::query(
                "SELECT name, version, created_at, updated_at, created_by FROM secrets \
                 WHERE workspace_id = $1 ORDER BY name",
            )
            .bind(workspace_id)
            .fetch_all(p)
            .await?
            .iter()
            .map(meta_from)
            .collect()
        })
    }

    /// Metadata of one secret.
    pub async fn secret_meta(
        &self,
        workspace_id: i64,
        name: &str,
    ) -> DomainResult<Option<SecretMeta>> {
        with_db!(self, read, |p| {
            sqlx::query(
                "SELECT name, version, created_at, updated_at, created_by FROM secrets \
                 WHERE workspace_id = $1 AND name = $2",
            )
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(p)
            .await?
            .as_ref()
            .map(meta_from)
            .transpose()
        })
    }

    /// The sealed value of one secret.
    pub async fn sealed_secret(
        &self,
        workspace_id: i64,
        name: &str,
    ) -> DomainResult<Option<Sealed>> {
        with_db!(self, read, |p| {
            sqlx::query(
                "SELECT nonce, ciphertext FROM secrets WHERE workspace_id = $1 AND name = $2",
            )
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(p)
            .await?
            .map(|r| {
                Ok(Sealed {
                    nonce: r.bytes("nonce")?,
                    ciphertext: r.bytes("ciphertext")?,
                })
            })
            .transpose()
        })
    }

    /// Deletes a secret; returns whether it existed.
    pub async fn delete_secret(&self, workspace_id: i64, name: &str) -> DomainResult<bool> {
        let done = with_db!(self, write, |p| {
            sqlx::query("DELETE FROM secrets WHERE workspace_id = $1 AND name = $2")
                .bind(workspace_id)
                .bind(name)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done > 0 {
            self.announce(super::Change::Secret {
                workspace_id,
                name: name.to_string(),
            })
            .await;
        }
        Ok(done > 0)
    }
}

impl Store {
    /// Whether any workspace holds a secret.
    pub async fn any_secret(&self) -> DomainResult<bool> {
        let any = with_db!(self, read, |p| {
            sqlx::query("SELECT 1 AS one FROM secrets LIMIT 1")
                .fetch_optional(p)
                .await
                .map(|r| r.is_some())
        })?;
        Ok(any)
    }
}
