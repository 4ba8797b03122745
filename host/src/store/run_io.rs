//! Run inputs and outputs: MLflow datasets (one per experiment, name and digest), the runs that
//! used them, and logged models a run used or produced.

use std::collections::HashMap;

use super::rows::RowExt;
use super::sql::{Bind, SqlBuilder, bind_all};
use super::{Store, with_db};
use crate::workspace::run_io::{DatasetInput, MlflowDataset, ModelOutput, RunIo};
use crate::workspace::{DomainError, DomainResult};

/// Direction of a run ↔ logged model link.
const INPUT: &str = "input";
const OUTPUT: &str = "output";

/// A dataset as a search over an experiment's datasets answers it.
#[derive(Debug, Clone)]
pub struct DatasetSummary {
    /// The experiment's public id.
    pub experiment_id: i64,
    /// Dataset name.
    pub name: String,
    /// Dataset digest.
    pub digest: String,
    /// The `mlflow.data.context` tag of its inputs (empty when none).
    pub context: String,
}

fn dataset_from(r: &impl RowExt) -> DomainResult<MlflowDataset> {
    Ok(MlflowDataset {
        name: r.text("name")?,
        digest: r.text("digest")?,
        source_type: r.text("source_type")?,
        source: r.text("source")?,
        schema: r.opt_text("schema")?,
        profile: r.opt_text("profile")?,
        atrium_version: r.opt_text("atrium_version")?,
    })
}

/// Links a run to a logged model inside a transaction `$tx` (an existing link is kept);
/// evaluates to `DomainResult<()>`.
macro_rules! link_model {
    ($tx:expr, $run_key:expr, $model_id:expr, $direction:expr, $step:expr, $position:expr) => {
        sqlx::query(
            "INSERT INTO run_model_links (run_id, model_uuid, direction, step, position) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (run_id, direction, model_uuid) DO NOTHING",
        )
        .bind($run_key)
        .bind($model_id)
        .bind($direction)
        .bind($step)
        .bind($position)
        .execute(&mut *$tx)
        .await
        .map(|_| ())
    };
}

impl Store {
    /// Records dataset and model inputs of an active run. A dataset already known to the
    /// experiment (same name and digest) is reused; an input the run already has is kept as it
    /// was (MLflow's rules). `link` names the Atrium dataset version matching a digest.
    pub async fn log_run_inputs(
        &self,
        workspace_id: i64,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[String],
        link: &HashMap<String, String>,
    ) -> DomainResult<()> {
        let run = self.active_run(workspace_id, run_id).await?;
        for m in models {
            self.logged_model(workspace_id, m, false).await?;
        }
        let exp_key = self.experiment_key(workspace_id, run.experiment_id).await?;
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let mut position = sqlx::query(
                "SELECT coalesce(max(position), -1) + 1 AS n FROM run_dataset_inputs WHERE run_id = $1",
            )
            .bind(run.key)
            .fetch_one(&mut *tx)
            .await?
            .i64("n")?;
            for input in datasets {
                let d = &input.dataset;
                sqlx::query(
                    "INSERT INTO mlflow_datasets (experiment_id, name, digest, source_type, source, schema, profile, atrium_version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (experiment_id, name, digest) DO NOTHING",
                )
                .bind(exp_key)
                .bind(&d.name)
                .bind(&d.digest)
                .bind(&d.source_type)
                .bind(&d.source)
                .bind(&d.schema)
                .bind(&d.profile)
                .bind(link.get(&d.digest))
                .execute(&mut *tx)
                .await?;
                let ds_key = sqlx::query(
                    "SELECT id FROM mlflow_datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
                )
                .bind(exp_key)
                .bind(&d.name)
                .bind(&d.digest)
                .fetch_one(&mut *tx)
                .await?
                .i64("id")?;
                let tags = serde_json::to_string(&input.tags)
                    .map_err(|e| DomainError::Internal(e.to_string()))?;
                let n = sqlx::query(
                    "INSERT INTO run_dataset_inputs (run_id, dataset_id, tags, context, position) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (run_id, dataset_id) DO NOTHING",
                )
                .bind(run.key)
                .bind(ds_key)
                .bind(&tags)
                .bind(input.tag(crate::workspace::run_io::CONTEXT_TAG))
                .bind(position)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                position += n as i64;
            }
            for (i, m) in models.iter().enumerate() {
                link_model!(tx, run.key, m, INPUT, 0i64, i as i64)?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })
    }

    /// Records logged models an active run produced.
    pub async fn log_run_outputs(
        &self,
        workspace_id: i64,
        run_id: &str,
        models: &[ModelOutput],
    ) -> DomainResult<()> {
        let run = self.active_run(workspace_id, run_id).await?;
        for m in models {
            self.logged_model(workspace_id, &m.model_id, false).await?;
        }
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            for (i, m) in models.iter().enumerate() {
                link_model!(tx, run.key, &m.model_id, OUTPUT, m.step, i as i64)?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await)
    }

    /// Inputs and outputs of the given runs (by internal key); runs without any are absent.
    pub async fn run_io(&self, run_keys: &[i64]) -> DomainResult<HashMap<i64, RunIo>> {
        let mut out: HashMap<i64, RunIo> = HashMap::new();
        if run_keys.is_empty() {
            return Ok(out);
        }
        let keys = || run_keys.iter().map(|k| Bind::I64(*k)).collect::<Vec<_>>();
        let mut b = SqlBuilder::new(self.dialect());
        b.push(
            "SELECT i.run_id, i.tags, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, d.atrium_version \
             FROM run_dataset_inputs i JOIN mlflow_datasets d ON d.id = i.dataset_id WHERE i.run_id IN ",
        );
        b.bind_list(keys());
        b.push(" ORDER BY i.run_id, i.position");
        let rows: Vec<(i64, DatasetInput)> = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let tags: Vec<(String, String)> = serde_json::from_str(&r.text("tags")?)
                        .map_err(|e| DomainError::Internal(format!("input tags: {e}")))?;
                    Ok((
                        r.i64("run_id")?,
                        DatasetInput {
                            dataset: dataset_from(r)?,
                            tags,
                        },
                    ))
                })
                .collect::<DomainResult<Vec<_>>>()?
        });
        for (k, d) in rows {
            out.entry(k).or_default().datasets.push(d);
        }
        let mut b = SqlBuilder::new(self.dialect());
        b.push("SELECT run_id, model_uuid, direction, step FROM run_model_links WHERE run_id IN ");
        b.bind_list(keys());
        b.push(" ORDER BY run_id, direction, position");
        let rows: Vec<(i64, String, String, i64)> = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.i64("run_id")?,
                        r.text("model_uuid")?,
                        r.text("direction")?,
                        r.i64("step")?,
                    ))
                })
                .collect::<DomainResult<Vec<_>>>()?
        });
        for (k, model_id, dir, step) in rows {
            let io = out.entry(k).or_default();
            if dir == INPUT {
                io.model_inputs.push(model_id);
            } else {
                io.model_outputs.push(ModelOutput { model_id, step });
            }
        }
        Ok(out)
    }

    /// The datasets used by runs of some experiments, with their input context, at most `limit`.
    pub async fn search_datasets(
        &self,
        workspace_id: i64,
        experiment_ids: &[i64],
        limit: i64,
    ) -> DomainResult<Vec<DatasetSummary>> {
        let mut b = SqlBuilder::new(self.dialect());
        b.push(
            "SELECT DISTINCT e.number, d.name, d.digest, i.tags FROM mlflow_datasets d \
             JOIN experiments e ON e.id = d.experiment_id \
             JOIN run_dataset_inputs i ON i.dataset_id = d.id WHERE e.workspace_id = ",
        );
        b.bind(Bind::I64(workspace_id));
        if !experiment_ids.is_empty() {
            b.push(" AND e.number IN ");
            b.bind_list(experiment_ids.iter().map(|i| Bind::I64(*i)));
        }
        b.push(" ORDER BY e.number, d.name, d.digest");
        let rows: Vec<DatasetSummary> = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let tags: Vec<(String, String)> =
                        serde_json::from_str(&r.text("tags")?).unwrap_or_default();
                    Ok(DatasetSummary {
                        experiment_id: r.i64("number")?,
                        name: r.text("name")?,
                        digest: r.text("digest")?,
                        context: tags
                            .into_iter()
                            .find(|(k, _)| k == crate::workspace::run_io::CONTEXT_TAG)
                            .map(|(_, v)| v)
                            .unwrap_or_default(),
                    })
                })
                .collect::<DomainResult<Vec<_>>>()?
        });
        let mut seen = std::collections::HashSet::new();
        Ok(rows
            .into_iter()
            .filter(|d| {
                seen.insert((
                    d.experiment_id,
                    d.name.clone(),
                    d.digest.clone(),
                    d.context.clone(),
                ))
            })
            .take(limit.max(0) as usize)
            .collect())
    }

    /// The internal key of an experiment.
    pub(crate) async fn experiment_key(&self, workspace_id: i64, number: i64) -> DomainResult<i64> {
        let key = with_db!(self, read, |p| sqlx::query(
            "SELECT id FROM experiments WHERE workspace_id = $1 AND number = $2"
        )
        .bind(workspace_id)
        .bind(number)
        .fetch_optional(p)
        .await?
        .map(|r| r.i64("id"))
        .transpose())?;
        key.ok_or_else(|| DomainError::NotFound(format!("experiment '{number}' does not exist")))
    }
}
