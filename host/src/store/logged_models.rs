//! MLflow 3 logged models: rows, params, tags and metrics linked to a model id.

use std::collections::{BTreeMap, HashMap};

use super::rows::{RowExt, loaded_value, stored_value};
use super::sql::{Bind, SqlBuilder, bind_all};
use super::{Store, with_db};
use crate::workspace::logged_model::{
    LoggedModel, LoggedModelStatus, ModelMetric, artifact_uri, not_found,
};
use crate::workspace::{
    DomainError, DomainResult, LifecycleStage, experiment_artifact_location, now_millis,
};

/// What a new logged model starts with.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    /// The experiment's public id.
    pub experiment_id: i64,
    /// Display name.
    pub name: String,
    /// Free-form type.
    pub model_type: Option<String>,
    /// The run that produced it.
    pub source_run_id: Option<String>,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

const COLUMNS: &str = "m.id, m.uuid, e.number, e.artifact_location, m.name, m.model_type, \
     m.source_run_id, m.status, m.status_message, m.lifecycle_stage, m.created_at, m.updated_at";

fn model_from(r: &impl RowExt) -> DomainResult<LoggedModel> {
    let number = r.i64("number")?;
    let id = r.text("uuid")?;
    let location = r
        .opt_text("artifact_location")?
        .unwrap_or_else(|| experiment_artifact_location(number));
    Ok(LoggedModel {
        key: r.i64("id")?,
        artifact_uri: artifact_uri(&location, &id),
        id,
        experiment_id: number,
        name: r.text("name")?,
        model_type: r.opt_text("model_type")?,
        source_run_id: r.opt_text("source_run_id")?,
        status: LoggedModelStatus::parse(&r.text("status")?)?,
        status_message: r.opt_text("status_message")?,
        lifecycle_stage: r.text("lifecycle_stage")?.parse()?,
        created_at: r.i64("created_at")?,
        updated_at: r.i64("updated_at")?,
        params: BTreeMap::new(),
        tags: BTreeMap::new(),
        metrics: Vec::new(),
    })
}

/// Upserts `(model_id, key, value)` rows of a params or tags table inside a transaction.
macro_rules! upsert_pairs {
    ($conn:expr, $table:literal, $key:expr, $pairs:expr) => {
        async {
            for (k, v) in $pairs {
                sqlx::query(concat!(
                    "INSERT INTO ",
                    $table,
                    " (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
                ))
                .bind($key)
                .bind(k)
                .bind(v)
                .execute(&mut *$conn)
                .await?;
            }
            Ok::<(), DomainError>(())
        }
        .await
    };
}

impl Store {
    /// Creates a pending logged model in an active experiment.
    pub async fn create_logged_model(
        &self,
        workspace_id: i64,
        new: NewLoggedModel,
    ) -> DomainResult<LoggedModel> {
        let uuid = crate::workspace::logged_model::new_model_id();
        let now = now_millis();
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let Some(exp) = sqlx::query(
                "SELECT id, lifecycle_stage FROM experiments WHERE workspace_id = $1 AND number = $2",
            )
            .bind(workspace_id)
            .bind(new.experiment_id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Err(DomainError::NotFound(format!(
                    "No Experiment with id={} exists",
                    new.experiment_id
                )));
            };
            if exp.text("lifecycle_stage")? != LifecycleStage::Active.as_str() {
                return Err(DomainError::InvalidState(format!(
                    "The experiment {} must be in the 'active' state. Current state is deleted.",
                    new.experiment_id
                )));
            }
            let key = sqlx::query(
                "INSERT INTO logged_models (uuid, workspace_id, experiment_id, name, model_type, source_run_id, \
                 status, lifecycle_stage, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8) RETURNING id",
            )
            .bind(&uuid)
            .bind(workspace_id)
            .bind(exp.i64("id")?)
            .bind(&new.name)
            .bind(&new.model_type)
            .bind(&new.source_run_id)
            .bind(LoggedModelStatus::Pending.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .i64("id")?;
            upsert_pairs!(tx, "logged_model_params", key, &new.params)?;
            upsert_pairs!(tx, "logged_model_tags", key, &new.tags)?;
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })?;
        self.logged_model(workspace_id, &uuid, false).await
    }

    /// A logged model with its data; deleted ones only when `allow_deleted`.
    pub async fn logged_model(
        &self,
        workspace_id: i64,
        id: &str,
        allow_deleted: bool,
    ) -> DomainResult<LoggedModel> {
        let row = with_db!(self, read, |p| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM logged_models m JOIN experiments e ON e.id = m.experiment_id \
             WHERE m.uuid = $1 AND m.workspace_id = $2"
        )))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(model_from)
        .transpose()
        })?;
        let model = row.ok_or_else(|| not_found(id))?;
        if model.lifecycle_stage == LifecycleStage::Deleted && !allow_deleted {
            return Err(not_found(id));
        }
        let mut models = vec![model];
        self.load_logged_model_data(&mut models).await?;
        Ok(models.pop().expect("one model"))
    }

    /// The active logged models of some experiments (all experiments when empty), with data.
    pub async fn logged_models(
        &self,
        workspace_id: i64,
        experiment_ids: &[i64],
    ) -> DomainResult<Vec<LoggedModel>> {
        let mut b = SqlBuilder::new(self.dialect());
        b.push(&format!(
            "SELECT {COLUMNS} FROM logged_models m JOIN experiments e ON e.id = m.experiment_id \
             WHERE m.workspace_id = "
        ));
        b.bind(Bind::I64(workspace_id));
        b.push(" AND m.lifecycle_stage = 'active'");
        if !experiment_ids.is_empty() {
            b.push(" AND e.number IN ");
            b.bind_list(experiment_ids.iter().map(|i| Bind::I64(*i)));
        }
        let mut models = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(model_from)
                .collect::<DomainResult<Vec<_>>>()?
        });
        self.load_logged_model_data(&mut models).await?;
        Ok(models)
    }

    /// Fills params, tags and metrics of the given models.
    async fn load_logged_model_data(&self, models: &mut [LoggedModel]) -> DomainResult<()> {
        if models.is_empty() {
            return Ok(());
        }
        let index: HashMap<i64, usize> =
            models.iter().enumerate().map(|(i, m)| (m.key, i)).collect();
        let all: Vec<i64> = models.iter().map(|m| m.key).collect();
        let keys = || all.iter().map(|k| Bind::I64(*k)).collect::<Vec<_>>();
        for table in ["logged_model_params", "logged_model_tags"] {
            let mut b = SqlBuilder::new(self.dialect());
            b.push(&format!(
                "SELECT model_id, key, value FROM {table} WHERE model_id IN "
            ));
            b.bind_list(keys());
            let rows: Vec<(i64, String, String)> = with_db!(self, read, |p| {
                let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.i64("model_id")?, r.text("key")?, r.text("value")?)))
                    .collect::<DomainResult<Vec<_>>>()?
            });
            for (key, k, v) in rows {
                let m = &mut models[index[&key]];
                if table == "logged_model_params" {
                    m.params.insert(k, v);
                } else {
                    m.tags.insert(k, v);
                }
            }
        }
        let mut b = SqlBuilder::new(self.dialect());
        b.push(
            "SELECT model_id, key, value, is_nan, timestamp, step, run_id, dataset_name, dataset_digest \
             FROM logged_model_metrics WHERE model_id IN ",
        );
        b.bind_list(keys());
        b.push(" ORDER BY id");
        let rows: Vec<(i64, ModelMetric)> = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let value: Option<f64> = sqlx::Row::try_get(r, "value")?;
                    Ok((
                        r.i64("model_id")?,
                        ModelMetric {
                            key: r.text("key")?,
                            value: loaded_value(value.unwrap_or(0.0), r.i64("is_nan")?),
                            timestamp: r.i64("timestamp")?,
                            step: r.i64("step")?,
                            run_id: r.opt_text("run_id")?,
                            dataset_name: r.opt_text("dataset_name")?,
                            dataset_digest: r.opt_text("dataset_digest")?,
                        },
                    ))
                })
                .collect::<DomainResult<Vec<_>>>()?
        });
        for (key, m) in rows {
            models[index[&key]].metrics.push(m);
        }
        Ok(())
    }

    /// The key of an active logged model (for writes).
    async fn active_logged_model_key(&self, workspace_id: i64, id: &str) -> DomainResult<i64> {
        let key = with_db!(self, read, |p| {
            sqlx::query(
            "SELECT id FROM logged_models WHERE uuid = $1 AND workspace_id = $2 AND lifecycle_stage = 'active'"
        )
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(p)
        .await?
        .map(|r| r.i64("id"))
        .transpose()
        })?;
        key.ok_or_else(|| not_found(id))
    }

    /// Sets a logged model's status (finalizing it).
    pub async fn set_logged_model_status(
        &self,
        workspace_id: i64,
        id: &str,
        status: LoggedModelStatus,
        message: Option<&str>,
    ) -> DomainResult<LoggedModel> {
        let key = self.active_logged_model_key(workspace_id, id).await?;
        with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE logged_models SET status = $1, status_message = $2, updated_at = $3 WHERE id = $4"
        )
        .bind(status.as_str())
        .bind(message)
        .bind(now_millis())
        .bind(key)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        self.logged_model(workspace_id, id, false).await
    }

    /// Soft-deletes a logged model (its files stay until garbage collection).
    pub async fn delete_logged_model(&self, workspace_id: i64, id: &str) -> DomainResult<()> {
        let key = self.active_logged_model_key(workspace_id, id).await?;
        with_db!(self, write, |p| sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', updated_at = $1 WHERE id = $2"
        )
        .bind(now_millis())
        .bind(key)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Sets tags (or params, `params = true`) on a logged model; a repeated key: the last wins.
    pub async fn set_logged_model_pairs(
        &self,
        workspace_id: i64,
        id: &str,
        pairs: &BTreeMap<String, String>,
        params: bool,
    ) -> DomainResult<()> {
        let key = self.active_logged_model_key(workspace_id, id).await?;
        let now = now_millis();
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            if params {
                upsert_pairs!(tx, "logged_model_params", key, pairs)?;
            } else {
                upsert_pairs!(tx, "logged_model_tags", key, pairs)?;
            }
            sqlx::query("UPDATE logged_models SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await)
    }

    /// Removes a tag from a logged model.
    pub async fn delete_logged_model_tag(
        &self,
        workspace_id: i64,
        id: &str,
        tag: &str,
    ) -> DomainResult<()> {
        let key = self.active_logged_model_key(workspace_id, id).await?;
        let n = with_db!(self, write, |p| sqlx::query(
            "DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2"
        )
        .bind(key)
        .bind(tag)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(DomainError::NotFound(format!(
                "No tag with key '{tag}' found for model with ID '{id}'."
            )));
        }
        Ok(())
    }

    /// Records metrics logged with model ids (`(model id, metric)`); unknown ids are refused
    /// before anything is written.
    pub async fn log_model_metrics(
        &self,
        workspace_id: i64,
        metrics: &[(String, ModelMetric)],
    ) -> DomainResult<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let mut keys: HashMap<&str, i64> = HashMap::new();
        for (id, _) in metrics {
            if !keys.contains_key(id.as_str()) {
                let k = self.active_logged_model_key(workspace_id, id).await?;
                keys.insert(id, k);
            }
        }
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            for (id, m) in metrics {
                let (value, is_nan) = stored_value(m.value);
                sqlx::query(
                    "INSERT INTO logged_model_metrics (model_id, key, value, is_nan, timestamp, step, run_id, dataset_name, dataset_digest) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(keys[id.as_str()])
                .bind(&m.key)
                .bind(value)
                .bind(is_nan)
                .bind(m.timestamp)
                .bind(m.step)
                .bind(&m.run_id)
                .bind(&m.dataset_name)
                .bind(&m.dataset_digest)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })
    }
}
