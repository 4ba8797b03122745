//! The model registry: registered models, versions, tags, aliases and the files each version
//! owns (references to content-addressed blobs).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::rows::RowExt;
use super::{ArtifactRow, Store, is_unique_violation, with_db};
use crate::workspace::registry::{ModelVersion, RegisteredModel, STAGE_NONE, STATUS_READY};
use crate::workspace::{DomainError, DomainResult, now_millis};

/// A version to add to a registered model.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    /// The registered model (created when absent and `create_model` is set).
    pub name: String,
    /// Whether to create the registered model when it does not exist.
    pub create_model: bool,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Aliases to point at the new version.
    pub aliases: Vec<String>,
    /// Source run id.
    pub run_id: Option<String>,
    /// Source logged model id.
    pub model_id: Option<String>,
    /// Where the files came from.
    pub source: String,
    /// Training dataset `name:version`.
    pub dataset: Option<String>,
    /// Training job's internal key.
    pub job_key: Option<i64>,
    /// The files, paths relative to the version's root.
    pub files: Vec<ArtifactRow>,
}

/// Changes to a registered model; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ModelUpdate {
    /// New name.
    pub new_name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Tags to set.
    pub set_tags: BTreeMap<String, String>,
    /// Tags to remove.
    pub delete_tags: Vec<String>,
}

/// Changes to a model version; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct VersionUpdate {
    /// New description.
    pub description: Option<String>,
    /// New legacy stage (canonical spelling).
    pub stage: Option<String>,
    /// Tags to set.
    pub set_tags: BTreeMap<String, String>,
    /// Tags to remove.
    pub delete_tags: Vec<String>,
}

fn model_missing(name: &str) -> DomainError {
    DomainError::NotFound(format!("Registered Model with name={name} not found"))
}

fn version_missing(name: &str, version: i64) -> DomainError {
    DomainError::NotFound(format!("model version {name}/{version} does not exist"))
}

const MODEL_ID: &str = "(SELECT id FROM registered_models WHERE workspace_id = $1 AND name = $2)";

impl Store {
    /// Creates an empty registered model.
    pub async fn create_registered_model(
        &self,
        workspace_id: i64,
        name: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> DomainResult<RegisteredModel> {
        let now = now_millis();
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let id = sqlx::query(
                "INSERT INTO registered_models (workspace_id, name, description, last_version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $4) RETURNING id",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(description)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DomainError::AlreadyExists(format!("Registered Model (name={name}) already exists."))
                } else {
                    e.into()
                }
            })?
            .i64("id")?;
            for (k, v) in tags {
                sqlx::query(
                    "INSERT INTO registered_model_tags (model_id, key, value) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })?;
        self.registered_model(workspace_id, name).await
    }

    /// Registered models of a workspace (one, when `name` is given), by name.
    pub async fn registered_models(
        &self,
        workspace_id: i64,
        name: Option<&str>,
    ) -> DomainResult<Vec<RegisteredModel>> {
        let name = name.unwrap_or("");
        let (rows, tags, aliases) = with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT m.id, m.name, m.description, m.created_at, m.updated_at, \
                 (SELECT MAX(v.version) FROM model_versions v WHERE v.model_id = m.id) AS latest, \
                 (SELECT count(*) FROM model_versions v WHERE v.model_id = m.id) AS n \
                 FROM registered_models m WHERE m.workspace_id = $1 AND ($2 = '' OR m.name = $2) ORDER BY m.name",
            )
            .bind(workspace_id)
            .bind(name)
            .fetch_all(p)
            .await?;
            let tags = sqlx::query(
                "SELECT t.model_id AS owner, t.key, t.value FROM registered_model_tags t \
                 JOIN registered_models m ON m.id = t.model_id WHERE m.workspace_id = $1 AND ($2 = '' OR m.name = $2)",
            )
            .bind(workspace_id)
            .bind(name)
            .fetch_all(p)
            .await?;
            let aliases = sqlx::query(
                "SELECT a.model_id, a.alias, a.version FROM model_aliases a \
                 JOIN registered_models m ON m.id = a.model_id WHERE m.workspace_id = $1 AND ($2 = '' OR m.name = $2)",
            )
            .bind(workspace_id)
            .bind(name)
            .fetch_all(p)
            .await?;
            let rows = rows
                .iter()
                .map(|r| {
                    Ok::<_, DomainError>((
                        r.i64("id")?,
                        RegisteredModel {
                            name: r.text("name")?,
                            description: r.text("description")?,
                            tags: BTreeMap::new(),
                            aliases: BTreeMap::new(),
                            latest_version: r.opt_i64("latest")?,
                            version_count: r.i64("n")?,
                            created_at: r.i64("created_at")?,
                            updated_at: r.i64("updated_at")?,
                        },
                    ))
                })
                .collect::<DomainResult<Vec<_>>>()?;
            let tags = tag_rows(&tags)?;
            let aliases = aliases
                .iter()
                .map(|r| Ok((r.i64("model_id")?, r.text("alias")?, r.i64("version")?)))
                .collect::<DomainResult<Vec<_>>>()?;
            (rows, tags, aliases)
        });
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for (i, (id, m)) in rows.into_iter().enumerate() {
            by_id.insert(id, i);
            out.push(m);
        }
        for (id, k, v) in tags {
            if let Some(&i) = by_id.get(&id) {
                out[i].tags.insert(k, v);
            }
        }
        for (id, a, v) in aliases {
            if let Some(&i) = by_id.get(&id) {
                out[i].aliases.insert(a, v);
            }
        }
        Ok(out)
    }

    /// One registered model.
    pub async fn registered_model(
        &self,
        workspace_id: i64,
        name: &str,
    ) -> DomainResult<RegisteredModel> {
        self.registered_models(workspace_id, Some(name))
            .await?
            .pop()
            .ok_or_else(|| model_missing(name))
    }

    /// Renames a registered model, changes its description or tags.
    pub async fn update_registered_model(
        &self,
        workspace_id: i64,
        name: &str,
        u: &ModelUpdate,
    ) -> DomainResult<RegisteredModel> {
        let now = now_millis();
        let target = u.new_name.clone().unwrap_or_else(|| name.to_string());
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let Some(row) = sqlx::query(
                "UPDATE registered_models SET updated_at = $3, description = COALESCE($4, description) \
                 WHERE workspace_id = $1 AND name = $2 RETURNING id",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(now)
            .bind(u.description.as_deref())
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Err(model_missing(name));
            };
            let id = row.i64("id")?;
            if let Some(new) = &u.new_name {
                sqlx::query("UPDATE registered_models SET name = $2 WHERE id = $1")
                    .bind(id)
                    .bind(new)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            DomainError::AlreadyExists(format!(
                                "registered model '{new}' already exists"
                            ))
                        } else {
                            e.into()
                        }
                    })?;
            }
            for (k, v) in &u.set_tags {
                sqlx::query(
                    "INSERT INTO registered_model_tags (model_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            for k in &u.delete_tags {
                sqlx::query("DELETE FROM registered_model_tags WHERE model_id = $1 AND key = $2")
                    .bind(id)
                    .bind(k)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })?;
        self.registered_model(workspace_id, &target).await
    }

    /// Deletes a registered model with all its versions, aliases and file references.
    pub async fn delete_registered_model(&self, workspace_id: i64, name: &str) -> DomainResult<()> {
        let n = with_db!(self, write, |p| sqlx::query(
            "DELETE FROM registered_models WHERE workspace_id = $1 AND name = $2"
        )
        .bind(workspace_id)
        .bind(name)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(model_missing(name));
        }
        Ok(())
    }

    /// Adds the next version of a registered model (creating the model when asked), with its
    /// tags, aliases and files, in one transaction; returns it.
    pub async fn add_model_version(
        &self,
        workspace_id: i64,
        v: &NewModelVersion,
    ) -> DomainResult<ModelVersion> {
        let now = now_millis();
        let version = with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            if v.create_model {
                sqlx::query(
                    "INSERT INTO registered_models (workspace_id, name, description, last_version, created_at, updated_at) \
                     VALUES ($1, $2, '', 0, $3, $3) ON CONFLICT (workspace_id, name) DO NOTHING",
                )
                .bind(workspace_id)
                .bind(&v.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let Some(row) = sqlx::query(
                "UPDATE registered_models SET last_version = last_version + 1, updated_at = $3 \
                 WHERE workspace_id = $1 AND name = $2 RETURNING id, last_version",
            )
            .bind(workspace_id)
            .bind(&v.name)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Err(model_missing(&v.name));
            };
            let (model_id, version) = (row.i64("id")?, row.i64("last_version")?);
            let version_id = sqlx::query(
                "INSERT INTO model_versions (model_id, version, description, run_id, source, status, stage, dataset, job_id, created_at, updated_at, logged_model_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) RETURNING id",
            )
            .bind(model_id)
            .bind(version)
            .bind(&v.description)
            .bind(v.run_id.as_deref())
            .bind(&v.source)
            .bind(STATUS_READY)
            .bind(STAGE_NONE)
            .bind(v.dataset.as_deref())
            .bind(v.job_key)
            .bind(now)
            .bind(v.model_id.as_deref())
            .fetch_one(&mut *tx)
            .await?
            .i64("id")?;
            for (k, val) in &v.tags {
                sqlx::query(
                    "INSERT INTO model_version_tags (version_id, key, value) VALUES ($1, $2, $3)",
                )
                .bind(version_id)
                .bind(k)
                .bind(val)
                .execute(&mut *tx)
                .await?;
            }
            for f in &v.files {
                sqlx::query(
                    "INSERT INTO model_files (version_id, path, datastore_id, digest, size) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(version_id)
                .bind(&f.path)
                .bind(f.datastore_id)
                .bind(&f.digest)
                .bind(f.size)
                .execute(&mut *tx)
                .await?;
            }
            for a in &v.aliases {
                sqlx::query(
                    "INSERT INTO model_aliases (model_id, alias, version) VALUES ($1, $2, $3) \
                     ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version",
                )
                .bind(model_id)
                .bind(a)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(version)
        }
        .await
        })?;
        self.model_version(workspace_id, &v.name, version).await
    }

    /// Versions of a workspace's models (of one model, or one version), by name then version.
    pub async fn model_versions(
        &self,
        workspace_id: i64,
        name: Option<&str>,
        version: Option<i64>,
    ) -> DomainResult<Vec<ModelVersion>> {
        let name = name.unwrap_or("");
        let version = version.unwrap_or(0);
        let (rows, tags, aliases) = with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT v.id, v.model_id, m.name, v.version, v.description, v.run_id, v.source, v.status, v.stage, \
                 v.dataset, v.job_id, j.uuid AS job_uuid, v.created_at, v.updated_at, v.logged_model_id \
                 FROM model_versions v JOIN registered_models m ON m.id = v.model_id LEFT JOIN jobs j ON j.id = v.job_id \
                 WHERE m.workspace_id = $1 AND ($2 = '' OR m.name = $2) AND ($3 = 0 OR v.version = $3) \
                 ORDER BY m.name, v.version",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .fetch_all(p)
            .await?;
            let tags = sqlx::query(
                "SELECT t.version_id AS owner, t.key, t.value FROM model_version_tags t \
                 JOIN model_versions v ON v.id = t.version_id JOIN registered_models m ON m.id = v.model_id \
                 WHERE m.workspace_id = $1 AND ($2 = '' OR m.name = $2) AND ($3 = 0 OR v.version = $3)",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .fetch_all(p)
            .await?;
            let aliases = sqlx::query(
                "SELECT a.model_id, a.alias, a.version FROM model_aliases a \
                 JOIN registered_models m ON m.id = a.model_id WHERE m.workspace_id = $1 AND ($2 = '' OR m.name = $2) \
                 ORDER BY a.alias",
            )
            .bind(workspace_id)
            .bind(name)
            .fetch_all(p)
            .await?;
            let rows = rows
                .iter()
                .map(|r| {
                    Ok::<_, DomainError>((
                        r.i64("id")?,
                        r.i64("model_id")?,
                        ModelVersion {
                            name: r.text("name")?,
                            version: r.i64("version")?,
                            run_id: r.opt_text("run_id")?,
                            model_id: r.opt_text("logged_model_id")?,
                            source: r.text("source")?,
                            status: r.text("status")?,
                            stage: r.text("stage")?,
                            aliases: Vec::new(),
                            tags: BTreeMap::new(),
                            dataset: r.opt_text("dataset")?,
                            job_id: r.opt_i64("job_id")?,
                            job: r.opt_text("job_uuid")?,
                            description: r.text("description")?,
                            created_at: r.i64("created_at")?,
                            updated_at: r.i64("updated_at")?,
                        },
                    ))
                })
                .collect::<DomainResult<Vec<_>>>()?;
            let tags = tag_rows(&tags)?;
            let aliases = aliases
                .iter()
                .map(|r| Ok((r.i64("model_id")?, r.text("alias")?, r.i64("version")?)))
                .collect::<DomainResult<Vec<_>>>()?;
            (rows, tags, aliases)
        });
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        let mut by_version: HashMap<(i64, i64), usize> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for (i, (id, model_id, v)) in rows.into_iter().enumerate() {
            by_id.insert(id, i);
            by_version.insert((model_id, v.version), i);
            out.push(v);
        }
        for (id, k, v) in tags {
            if let Some(&i) = by_id.get(&id) {
                out[i].tags.insert(k, v);
            }
        }
        for (model_id, a, v) in aliases {
            if let Some(&i) = by_version.get(&(model_id, v)) {
                out[i].aliases.push(a);
            }
        }
        Ok(out)
    }

    /// One model version; the error names what is missing (model or version).
    pub async fn model_version(
        &self,
        workspace_id: i64,
        name: &str,
        version: i64,
    ) -> DomainResult<ModelVersion> {
        if let Some(v) = self
            .model_versions(workspace_id, Some(name), Some(version))
            .await?
            .pop()
        {
            return Ok(v);
        }
        // tell a missing model from a missing version
        self.registered_model(workspace_id, name).await?;
        Err(version_missing(name, version))
    }

    /// Changes a version's description, stage or tags.
    pub async fn update_model_version(
        &self,
        workspace_id: i64,
        name: &str,
        version: i64,
        u: &VersionUpdate,
    ) -> DomainResult<ModelVersion> {
        let now = now_millis();
        let found = with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE model_versions SET updated_at = $4, description = COALESCE($5, description), \
                 stage = COALESCE($6, stage) WHERE model_id = {MODEL_ID} AND version = $3 RETURNING id"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .bind(now)
            .bind(u.description.as_deref())
            .bind(u.stage.as_deref())
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(false);
            };
            let id = row.i64("id")?;
            for (k, v) in &u.set_tags {
                sqlx::query(
                    "INSERT INTO model_version_tags (version_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (version_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            for k in &u.delete_tags {
                sqlx::query("DELETE FROM model_version_tags WHERE version_id = $1 AND key = $2")
                    .bind(id)
                    .bind(k)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE registered_models SET updated_at = $3 WHERE id = {MODEL_ID}"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(true)
        }
        .await
        })?;
        if !found {
            self.registered_model(workspace_id, name).await?;
            return Err(version_missing(name, version));
        }
        self.model_version(workspace_id, name, version).await
    }

    /// Sets the legacy stage of every other version in `stage` to `Archived`.
    pub async fn archive_other_versions(
        &self,
        workspace_id: i64,
        name: &str,
        keep: i64,
        stage: &str,
    ) -> DomainResult<()> {
        with_db!(self, write, |p| sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE model_versions SET stage = 'Archived', updated_at = $5 \
             WHERE model_id = {MODEL_ID} AND version <> $3 AND stage = $4"
        )))
        .bind(workspace_id)
        .bind(name)
        .bind(keep)
        .bind(stage)
        .bind(now_millis())
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Deletes a version with its tags, file references and the aliases pointing at it.
    pub async fn delete_model_version(
        &self,
        workspace_id: i64,
        name: &str,
        version: i64,
    ) -> DomainResult<()> {
        let n = with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM model_aliases WHERE model_id = {MODEL_ID} AND version = $3"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM model_versions WHERE model_id = {MODEL_ID} AND version = $3"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE registered_models SET updated_at = $3 WHERE id = {MODEL_ID}"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(n)
        }
        .await)?;
        if n == 0 {
            self.registered_model(workspace_id, name).await?;
            return Err(version_missing(name, version));
        }
        Ok(())
    }

    /// Points an alias at an existing version (moving it if it pointed elsewhere).
    pub async fn set_model_alias(
        &self,
        workspace_id: i64,
        name: &str,
        alias: &str,
        version: i64,
    ) -> DomainResult<()> {
        // checks model and version, with a precise error
        self.model_version(workspace_id, name, version).await?;
        let n = with_db!(self, write, |p| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO model_aliases (model_id, alias, version) \
             SELECT v.model_id, $3, v.version FROM model_versions v WHERE v.model_id = {MODEL_ID} AND v.version = $4 \
             ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version"
        )))
        .bind(workspace_id)
        .bind(name)
        .bind(alias)
        .bind(version)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            // deleted between the check and the insert
            return Err(version_missing(name, version));
        }
        Ok(())
    }

    /// Removes an alias.
    pub async fn delete_model_alias(
        &self,
        workspace_id: i64,
        name: &str,
        alias: &str,
    ) -> DomainResult<()> {
        let n = with_db!(self, write, |p| sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM model_aliases WHERE model_id = {MODEL_ID} AND alias = $3"
        )))
        .bind(workspace_id)
        .bind(name)
        .bind(alias)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            self.registered_model(workspace_id, name).await?;
            return Err(DomainError::NotFound(format!(
                "registered model '{name}' has no alias '{alias}'"
            )));
        }
        Ok(())
    }

    /// The version an alias points at.
    pub async fn model_alias(
        &self,
        workspace_id: i64,
        name: &str,
        alias: &str,
    ) -> DomainResult<i64> {
        let found = with_db!(self, read, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM model_aliases WHERE model_id = {MODEL_ID} AND alias = $3"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(alias)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(|r| r.i64("version")).transpose()?
        });
        match found {
            Some(v) => Ok(v),
            None => {
                self.registered_model(workspace_id, name).await?;
                Err(DomainError::NotFound(format!(
                    "registered model '{name}' has no alias '{alias}'"
                )))
            }
        }
    }

    /// The files of a version, by path.
    pub async fn model_files(
        &self,
        workspace_id: i64,
        name: &str,
        version: i64,
    ) -> DomainResult<Vec<ArtifactRow>> {
        with_db!(self, read, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT f.path, f.datastore_id, f.digest, f.size FROM model_files f JOIN model_versions v ON v.id = f.version_id \
                 WHERE v.model_id = {MODEL_ID} AND v.version = $3 ORDER BY f.path"
            )))
            .bind(workspace_id)
            .bind(name)
            .bind(version)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ArtifactRow {
                        path: r.text("path")?,
                        datastore_id: r.i64("datastore_id")?,
                        digest: r.text("digest")?,
                        size: r.i64("size")?,
                    })
                })
                .collect()
        })
    }

    /// Digests of model version files in a datastore (garbage collection keeps them).
    pub async fn model_file_digests(&self, datastore_id: i64) -> DomainResult<HashSet<String>> {
        with_db!(self, read, |p| {
            let rows =
                sqlx::query("SELECT DISTINCT digest FROM model_files WHERE datastore_id = $1")
                    .bind(datastore_id)
                    .fetch_all(p)
                    .await?;
            rows.iter().map(|r| r.text("digest")).collect()
        })
    }
}

fn tag_rows<R: RowExt>(rows: &[R]) -> DomainResult<Vec<(i64, String, String)>> {
    rows.iter()
        .map(|r| Ok((r.i64("owner")?, r.text("key")?, r.text("value")?)))
        .collect()
}
