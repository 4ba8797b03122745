//! Experiments and their tags.

use std::collections::BTreeMap;

use super::rows::RowExt;
use super::{Store, is_unique_violation, with_db};
use crate::workspace::{
    DomainError, DomainResult, Experiment, LifecycleStage, experiment_artifact_location, now_millis,
};

pub(crate) const EXPERIMENT_COLUMNS: &str = "e.id, e.number, e.name, e.lifecycle_stage, e.creation_time, e.last_update_time, \
     e.artifact_location, \
     (SELECT d.name FROM datastores d WHERE d.id = e.datastore_id) AS datastore";

pub(crate) fn experiment_from(r: &impl RowExt) -> DomainResult<Experiment> {
    let number = r.i64("number")?;
    Ok(Experiment {
        key: r.i64("id")?,
        id: number,
        name: r.text("name")?,
        artifact_location: r
            .opt_text("artifact_location")?
            .unwrap_or_else(|| experiment_artifact_location(number)),
        lifecycle_stage: r.text("lifecycle_stage")?.parse()?,
        creation_time: r.i64("creation_time")?,
        last_update_time: r.i64("last_update_time")?,
        artifact_datastore: r.opt_text("datastore")?,
        tags: BTreeMap::new(),
    })
}

impl Store {
    /// The artifact location an experiment was created with, if any (cached: it never changes).
    pub(crate) async fn experiment_location(
        &self,
        workspace_id: i64,
        number: i64,
    ) -> DomainResult<Option<String>> {
        if let Some(l) = self
            .locations
            .lock()
            .expect("locations")
            .get(&(workspace_id, number))
        {
            return Ok(l.clone());
        }
        let found: Option<Option<String>> = with_db!(self, read, |p| sqlx::query(
            "SELECT artifact_location FROM experiments WHERE workspace_id = $1 AND number = $2"
        )
        .bind(workspace_id)
        .bind(number)
        .fetch_optional(p)
        .await?
        .map(|r| r.opt_text("artifact_location"))
        .transpose()?);
        let Some(loc) = found else {
            return Ok(None);
        };
        self.locations
            .lock()
            .expect("locations")
            .insert((workspace_id, number), loc.clone());
        Ok(loc)
    }
}

fn missing(id: i64) -> DomainError {
    DomainError::NotFound(format!("experiment '{id}' does not exist"))
}

impl Store {
    /// Creates an experiment with the next free number in the workspace.
    pub async fn create_experiment(
        &self,
        workspace_id: i64,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> DomainResult<Experiment> {
        self.create_experiment_at(workspace_id, name, tags, None)
            .await
    }

    /// Creates an experiment whose runs keep artifacts at `artifact_location` (a URI the client
    /// reads and writes itself) instead of the workspace datastore when given.
    pub async fn create_experiment_at(
        &self,
        workspace_id: i64,
        name: &str,
        tags: &BTreeMap<String, String>,
        artifact_location: Option<&str>,
    ) -> DomainResult<Experiment> {
        let now = now_millis();
        // Two replicas may pick the same number at once: retry on that conflict.
        for _ in 0..5 {
            let res: Result<i64, sqlx::Error> = with_db!(self, write, |p| {
                async {
                let mut tx = p.begin().await?;
                let taken = sqlx::query("SELECT number FROM experiments WHERE workspace_id = $1 AND name = $2")
                    .bind(workspace_id)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Ok(-1);
                }
                let row = sqlx::query(
                    "INSERT INTO experiments (workspace_id, number, name, lifecycle_stage, creation_time, last_update_time, artifact_location) \
                     SELECT $1, COALESCE(MAX(number), -1) + 1, $2, $3, $4, $4, $5 FROM experiments WHERE workspace_id = $1 \
                     RETURNING id, number",
                )
                .bind(workspace_id)
                .bind(name)
                .bind(LifecycleStage::Active.as_str())
                .bind(now)
                .bind(artifact_location)
                .fetch_one(&mut *tx)
                .await?;
                let key = row.i64("id").map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                let number = row.i64("number").map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                for (k, v) in tags {
                    sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)")
                        .bind(key)
                        .bind(k)
                        .bind(v)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(number)
            }
            .await
            });
            match res {
                Ok(-1) => {
                    return Err(DomainError::AlreadyExists(format!(
                        "experiment '{name}' already exists"
                    )));
                }
                Ok(number) => return self.experiment(workspace_id, number).await,
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::AlreadyExists(format!(
            "experiment '{name}' already exists"
        )))
    }

    async fn experiment_where(
        &self,
        workspace_id: i64,
        clause: &str,
        bind: Bind1<'_>,
    ) -> DomainResult<Option<Experiment>> {
        let sql = format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.workspace_id = $1 AND {clause}"
        );
        let found = with_db!(self, read, |p| {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(workspace_id);
            let row = match bind {
                Bind1::Int(v) => q.bind(v).fetch_optional(p).await?,
                Bind1::Str(v) => q.bind(v).fetch_optional(p).await?,
            };
            row.as_ref().map(experiment_from).transpose()?
        });
        let Some(mut e) = found else { return Ok(None) };
        e.tags = self.experiment_tags(e.key).await?;
        Ok(Some(e))
    }

    /// An experiment by its public id.
    pub async fn experiment(&self, workspace_id: i64, id: i64) -> DomainResult<Experiment> {
        self.experiment_where(workspace_id, "e.number = $2", Bind1::Int(id))
            .await?
            .ok_or_else(|| missing(id))
    }

    /// An experiment by name.
    pub async fn experiment_by_name(
        &self,
        workspace_id: i64,
        name: &str,
    ) -> DomainResult<Experiment> {
        self.experiment_where(workspace_id, "e.name = $2", Bind1::Str(name))
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("experiment '{name}' does not exist")))
    }

    /// The distinct param, metric and tag keys of an experiment's runs (the portal's column
    /// chooser), each sorted; `experiment_key` is the internal key.
    pub async fn experiment_keys(&self, experiment_key: i64) -> DomainResult<[Vec<String>; 3]> {
        let mut out: [Vec<String>; 3] = Default::default();
        for (i, table) in ["params", "latest_metrics", "tags"].into_iter().enumerate() {
            out[i] = with_db!(self, read, |p| {
                // A skip scan over the key index (one probe per distinct key, not one row per
                // run and key), each key kept when a run of the experiment has it, probed from
                // the experiment's runs so a small experiment costs little in a big workspace:
                // 10,000 runs x 30 keys answer in ~10 ms instead of sorting 300,000 rows.
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "WITH RECURSIVE k(key) AS (SELECT min(key) FROM {table} UNION ALL \
                     SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) \
                     SELECT k.key AS key FROM k WHERE k.key IS NOT NULL AND EXISTS \
                     (SELECT 1 FROM runs r CROSS JOIN {table} t \
                      WHERE r.experiment_id = $1 AND t.run_id = r.id AND t.key = k.key) \
                     ORDER BY k.key LIMIT 2000"
                )))
                .bind(experiment_key)
                .fetch_all(p)
                .await?;
                rows.iter()
                    .map(|r| r.text("key"))
                    .collect::<DomainResult<Vec<String>>>()
            })?;
        }
        Ok(out)
    }

    pub(crate) async fn experiment_tags(&self, key: i64) -> DomainResult<BTreeMap<String, String>> {
        with_db!(self, read, |p| {
            let rows =
                sqlx::query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1")
                    .bind(key)
                    .fetch_all(p)
                    .await?;
            rows.iter()
                .map(|r| Ok((r.text("key")?, r.text("value")?)))
                .collect()
        })
    }

    /// Renames an experiment.
    pub async fn rename_experiment(
        &self,
        workspace_id: i64,
        id: i64,
        name: &str,
    ) -> DomainResult<()> {
        let res = with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE workspace_id = $3 AND number = $4"
        )
        .bind(name)
        .bind(now_millis())
        .bind(workspace_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        });
        match res {
            Ok(0) => Err(missing(id)),
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(DomainError::AlreadyExists(format!(
                "experiment '{name}' already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Soft-deletes or restores an experiment; its runs follow it.
    pub async fn set_experiment_stage(
        &self,
        workspace_id: i64,
        id: i64,
        stage: LifecycleStage,
    ) -> DomainResult<()> {
        if id == 0 && stage == LifecycleStage::Deleted {
            return Err(DomainError::invalid(
                "the Default experiment (id 0) cannot be deleted",
            ));
        }
        let now = now_millis();
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            let Some(row) =
                sqlx::query("SELECT id FROM experiments WHERE workspace_id = $1 AND number = $2")
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            else {
                return Err(missing(id));
            };
            let key = row.i64("id")?;
            sqlx::query(
                "UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE id = $3",
            )
            .bind(stage.as_str())
            .bind(now)
            .bind(key)
            .execute(&mut *tx)
            .await?;
            let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
            sqlx::query(
                "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3",
            )
            .bind(stage.as_str())
            .bind(deleted_time)
            .bind(key)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await)
    }

    /// Sets (or with `None` removes) an experiment tag.
    pub async fn set_experiment_tag(
        &self,
        workspace_id: i64,
        id: i64,
        key: &str,
        value: Option<&str>,
    ) -> DomainResult<()> {
        let exp = self.experiment(workspace_id, id).await?;
        with_db!(self, write, |p| {
            async {
            match value {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(exp.key)
                    .bind(key)
                    .bind(v)
                    .execute(p)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                        .bind(exp.key)
                        .bind(key)
                        .execute(p)
                        .await?;
                }
            }
            sqlx::query("UPDATE experiments SET last_update_time = $1 WHERE id = $2")
                .bind(now_millis())
                .bind(exp.key)
                .execute(p)
                .await?;
            Ok::<_, DomainError>(())
        }
        .await
        })
    }
}

enum Bind1<'a> {
    Int(i64),
    Str(&'a str),
}
