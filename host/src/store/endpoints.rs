//! Endpoints and their deployments. An endpoint is saved whole (its row and every deployment)
//! in one transaction, so a traffic split never names a deployment that is not stored.

use std::collections::BTreeMap;

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::endpoint::{AuthMode, Deployment, Endpoint};
use crate::workspace::{DomainError, DomainResult};

/// Where a deployment that uses something lives.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentUse {
    /// Endpoint name.
    pub endpoint: String,
    /// Deployment name.
    pub deployment: String,
}

/// The endpoint columns with the workspace name (a macro so queries stay `&'static str`).
macro_rules! select_endpoint {
    ($rest:literal) => {
        concat!(
            "SELECT e.id, e.name, e.description, e.auth_mode, e.key_hash, e.traffic, \
             e.mirror, e.created_at, e.updated_at, w.name AS ws_name \
             FROM endpoints e JOIN workspaces w ON w.id = e.workspace_id ",
            $rest
        )
    };
}

fn json_map(text: &str, what: &str) -> DomainResult<BTreeMap<String, u32>> {
    serde_json::from_str(text)
        .map_err(|e| DomainError::Internal(format!("stored {what} is not valid: {e}")))
}

fn endpoint_from(r: &impl RowExt) -> DomainResult<(i64, Endpoint)> {
    let auth_mode = match r.text("auth_mode")?.as_str() {
        "none" => AuthMode::None,
        _ => AuthMode::Key,
    };
    Ok((
        r.i64("id")?,
        Endpoint {
            workspace: r.text("ws_name")?,
            name: r.text("name")?,
            description: r.text("description")?,
            auth_mode,
            key_hash: r.text("key_hash")?,
            traffic: json_map(&r.text("traffic")?, "traffic")?,
            mirror: json_map(&r.text("mirror")?, "mirror")?,
            deployments: Vec::new(),
            created_at: r.i64("created_at")?,
            updated_at: r.i64("updated_at")?,
        },
    ))
}

fn use_from(r: &impl RowExt) -> DomainResult<DeploymentUse> {
    Ok(DeploymentUse {
        endpoint: r.text("endpoint")?,
        deployment: r.text("deployment")?,
    })
}

fn deployment_from(r: &impl RowExt) -> DomainResult<Deployment> {
    serde_json::from_str(&r.text("spec")?)
        .map_err(|e| DomainError::Internal(format!("stored deployment is not valid: {e}")))
}

impl Store {
    /// Creates an endpoint (and its deployments); refuses a name taken on this host.
    pub async fn create_endpoint(&self, workspace_id: i64, ep: &Endpoint) -> DomainResult<()> {
        self.save_endpoint_inner(workspace_id, ep, true).await?;
        self.endpoint_changed(workspace_id, &ep.name).await;
        Ok(())
    }

    /// Replaces a stored endpoint's fields and deployments with `ep`'s.
    pub async fn save_endpoint(&self, workspace_id: i64, ep: &Endpoint) -> DomainResult<()> {
        self.save_endpoint_inner(workspace_id, ep, false).await?;
        self.endpoint_changed(workspace_id, &ep.name).await;
        Ok(())
    }

    /// Tells every replica that an endpoint changed.
    async fn endpoint_changed(&self, workspace_id: i64, name: &str) {
        self.announce(super::Change::Endpoint {
            workspace_id,
            name: name.to_string(),
        })
        .await;
    }

    async fn save_endpoint_inner(
        &self,
        workspace_id: i64,
        ep: &Endpoint,
        create: bool,
    ) -> DomainResult<()> {
        let traffic =
            serde_json::to_string(&ep.traffic).map_err(|e| DomainError::Internal(e.to_string()))?;
        let mirror =
            serde_json::to_string(&ep.mirror).map_err(|e| DomainError::Internal(e.to_string()))?;
        let mut specs = Vec::new();
        for d in &ep.deployments {
            specs.push((
                d,
                serde_json::to_string(d).map_err(|e| DomainError::Internal(e.to_string()))?,
            ));
        }
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            let id = if create {
                let r = sqlx::query(
                    "INSERT INTO endpoints (workspace_id, name, description, auth_mode, key_hash, \
                     traffic, mirror, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(workspace_id)
                .bind(&ep.name)
                .bind(&ep.description)
                .bind(ep.auth_mode.as_str())
                .bind(&ep.key_hash)
                .bind(&traffic)
                .bind(&mirror)
                .bind(ep.created_at)
                .bind(ep.updated_at)
                .fetch_one(&mut *tx)
                .await;
                match r {
                    Ok(r) => r.i64("id")?,
                    Err(e) if is_unique_violation(&e) => {
                        return Err(DomainError::AlreadyExists(format!(
                            "endpoint '{}' already exists on this host",
                            ep.name
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                let r = sqlx::query(
                    "UPDATE endpoints SET description = $1, auth_mode = $2, key_hash = $3, \
                     traffic = $4, mirror = $5, updated_at = $6 \
                     WHERE workspace_id = $7 AND name = $8 RETURNING id",
                )
                .bind(&ep.description)
                .bind(ep.auth_mode.as_str())
                .bind(&ep.key_hash)
                .bind(&traffic)
                .bind(&mirror)
                .bind(ep.updated_at)
                .bind(workspace_id)
                .bind(&ep.name)
                .fetch_optional(&mut *tx)
                .await?;
                match r {
                    Some(r) => r.i64("id")?,
                    None => {
                        return Err(DomainError::NotFound(format!(
                            "endpoint '{}' does not exist",
                            ep.name
                        )));
                    }
                }
            };
            sqlx::query("DELETE FROM deployments WHERE endpoint_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (d, spec) in &specs {
                sqlx::query(
                    "INSERT INTO deployments (endpoint_id, workspace_id, name, spec, model_name, \
                     model_version, scorer_name, scorer_version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(id)
                .bind(workspace_id)
                .bind(&d.name)
                .bind(spec)
                .bind(&d.model_name)
                .bind(d.model_version)
                .bind(&d.scorer_name)
                .bind(&d.scorer_version)
                .bind(d.created_at)
                .bind(d.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await)
    }

    async fn with_deployments(&self, rows: Vec<(i64, Endpoint)>) -> DomainResult<Vec<Endpoint>> {
        let mut out = Vec::with_capacity(rows.len());
        for (id, mut ep) in rows {
            ep.deployments = with_db!(self, read, |p| {
                let rows = sqlx::query(
                    "SELECT spec FROM deployments WHERE endpoint_id = $1 ORDER BY name",
                )
                .bind(id)
                .fetch_all(p)
                .await?;
                rows.iter()
                    .map(deployment_from)
                    .collect::<DomainResult<Vec<_>>>()?
            });
            out.push(ep);
        }
        Ok(out)
    }

    /// An endpoint of a workspace, with its deployments.
    pub async fn endpoint(&self, workspace_id: i64, name: &str) -> DomainResult<Option<Endpoint>> {
        let rows = with_db!(self, read, |p| {
            let rows = sqlx::query(select_endpoint!(
                "WHERE e.workspace_id = $1 AND e.name = $2"
            ))
            .bind(workspace_id)
            .bind(name)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(endpoint_from)
                .collect::<DomainResult<Vec<_>>>()?
        });
        Ok(self.with_deployments(rows).await?.pop())
    }

    /// An endpoint by its host-wide name, in whichever workspace holds it.
    pub async fn endpoint_anywhere(&self, name: &str) -> DomainResult<Option<Endpoint>> {
        let rows = with_db!(self, read, |p| {
            let rows = sqlx::query(select_endpoint!("WHERE e.name = $1"))
                .bind(name)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(endpoint_from)
                .collect::<DomainResult<Vec<_>>>()?
        });
        Ok(self.with_deployments(rows).await?.pop())
    }

    /// The endpoints of a workspace (`None`: of every workspace), by name.
    pub async fn list_endpoints(&self, workspace_id: Option<i64>) -> DomainResult<Vec<Endpoint>> {
        let rows = with_db!(self, read, |p| {
            let rows = match workspace_id {
                Some(ws) => {
                    sqlx::query(select_endpoint!(
                        "WHERE e.workspace_id = $1 ORDER BY e.name"
                    ))
                    .bind(ws)
                    .fetch_all(p)
                    .await?
                }
                None => {
                    sqlx::query(select_endpoint!("ORDER BY e.name"))
                        .fetch_all(p)
                        .await?
                }
            };
            rows.iter()
                .map(endpoint_from)
                .collect::<DomainResult<Vec<_>>>()?
        });
        self.with_deployments(rows).await
    }

    /// Deletes an endpoint and its deployments.
    pub async fn delete_endpoint(&self, workspace_id: i64, name: &str) -> DomainResult<()> {
        let n = with_db!(self, write, |p| {
            sqlx::query("DELETE FROM endpoints WHERE workspace_id = $1 AND name = $2")
                .bind(workspace_id)
                .bind(name)
                .execute(p)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(DomainError::NotFound(format!(
                "endpoint '{name}' does not exist"
            )));
        }
        self.endpoint_changed(workspace_id, name).await;
        Ok(())
    }

    /// Deployments serving a registered model (one version, or any with `None`).
    pub async fn deployments_using_model(
        &self,
        workspace_id: i64,
        model: &str,
        version: Option<i64>,
    ) -> DomainResult<Vec<DeploymentUse>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT e.name AS endpoint, d.name AS deployment FROM deployments d \
                 JOIN endpoints e ON e.id = d.endpoint_id \
                 WHERE d.workspace_id = $1 AND d.model_name = $2 AND ($3 < 0 OR d.model_version = $3) \
                 ORDER BY e.name, d.name",
            )
            .bind(workspace_id)
            .bind(model)
            .bind(version.unwrap_or(-1))
            .fetch_all(p)
            .await?;
            rows.iter().map(use_from).collect()
        })
    }

    /// Deployments whose scorer is a component version.
    pub async fn deployments_using_component(
        &self,
        workspace_id: i64,
        name: &str,
        version: &str,
    ) -> DomainResult<Vec<DeploymentUse>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT e.name AS endpoint, d.name AS deployment FROM deployments d \
                 JOIN endpoints e ON e.id = d.endpoint_id \
                 WHERE d.workspace_id = $1 AND d.scorer_name = $2 AND d.scorer_version = $3 \
                 ORDER BY e.name, d.name",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .fetch_all(p)
            .await?;
            rows.iter().map(use_from).collect()
        })
    }
}
