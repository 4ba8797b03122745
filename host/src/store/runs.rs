//! Runs: creation, lookup with their data, updates, lifecycle, metric history.

use std::collections::{BTreeMap, HashMap};

use super::rows::{RowExt, loaded_value};
use super::sql::{Bind, SqlBuilder, bind_all};
use super::{Dialect, Store, with_db};
use crate::workspace::metric::decode_chunk;
use crate::workspace::{
    DomainError, DomainResult, LifecycleStage, MetricPoint, Millis, PARENT_RUN_TAG, RUN_NAME_TAG,
    Run, RunStatus, USER_TAG, run_artifact_uri,
};

/// What a new run starts with.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// The experiment's public id.
    pub experiment_id: i64,
    /// Display name; generated when absent.
    pub name: Option<String>,
    /// Who starts it.
    pub user_id: String,
    /// Start time.
    pub start_time: Millis,
    /// Initial status (RUNNING unless given).
    pub status: Option<RunStatus>,
    /// Initial tags.
    pub tags: BTreeMap<String, String>,
    /// Parent run for nested runs.
    pub parent_run_id: Option<String>,
}

/// Changes to a run's attributes.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    /// New status.
    pub status: Option<RunStatus>,
    /// End time.
    pub end_time: Option<Millis>,
    /// New name.
    pub name: Option<String>,
}

pub(crate) const RUN_COLUMNS: &str = "r.id, r.uuid, e.number, r.name, r.user_id, r.status, r.start_time, \
     r.end_time, r.lifecycle_stage, r.parent_run_id, e.artifact_location";

pub(crate) fn run_from(r: &impl RowExt) -> DomainResult<Run> {
    let number = r.i64("number")?;
    let id = r.text("uuid")?;
    Ok(Run {
        key: r.i64("id")?,
        artifact_uri: run_artifact_uri(number, r.opt_text("artifact_location")?.as_deref(), &id),
        id,
        experiment_id: number,
        name: r.text("name")?,
        user_id: r.text("user_id")?,
        status: r.text("status")?.parse()?,
        start_time: r.i64("start_time")?,
        end_time: r.opt_i64("end_time")?,
        lifecycle_stage: r.text("lifecycle_stage")?.parse()?,
        parent_run_id: r.opt_text("parent_run_id")?,
        params: BTreeMap::new(),
        metrics: BTreeMap::new(),
        tags: BTreeMap::new(),
    })
}

/// Parses a double as the database printed it (`Inf`, `-Inf`, `Infinity` included).
fn parse_stored_f64(s: &str) -> DomainResult<f64> {
    match s {
        "Inf" | "Infinity" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        other => other.parse().map_err(|_| {
            DomainError::Internal(format!("stored metric value '{other}' does not parse"))
        }),
    }
}

fn missing(id: &str) -> DomainError {
    crate::workspace::validate::run_not_found(id)
}

/// A random, readable run name like `calm-heron-417`.
pub fn generate_run_name() -> String {
    const ADJ: &[&str] = &[
        "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "gentle", "glad",
        "grand", "keen", "lively", "lucid", "merry", "nimble", "quiet", "rapid", "serene", "sharp",
        "silver", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise",
    ];
    const NOUN: &[&str] = &[
        "badger", "crane", "dolphin", "falcon", "finch", "fox", "gecko", "heron", "ibis", "koala",
        "lark", "lynx", "marten", "newt", "otter", "owl", "panda", "quail", "raven", "seal",
        "stork", "swan", "tern", "vole", "wren", "yak",
    ];
    let bytes = uuid::Uuid::new_v4();
    let b = bytes.as_bytes();
    let n = u16::from_le_bytes([b[2], b[3]]) % 1000;
    format!(
        "{}-{}-{}",
        ADJ[b[0] as usize % ADJ.len()],
        NOUN[b[1] as usize % NOUN.len()],
        n
    )
}

/// A run ready to insert: name, tags and id settled.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRun {
    pub uuid: String,
    pub experiment_id: i64,
    pub name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: Millis,
    pub parent: Option<String>,
    /// Whether the parent must exist: yes when named explicitly, not when it only comes from
    /// the `mlflow.parentRunId` tag (MLflow stores that tag as given).
    pub check_parent: bool,
    pub tags: BTreeMap<String, String>,
}

impl PreparedRun {
    /// Settles the name (attribute and MLflow tag must agree), user and parent tags, and the id.
    pub fn new(new: NewRun) -> DomainResult<Self> {
        let mut tags = new.tags;
        let name = match (new.name.filter(|n| !n.is_empty()), tags.get(RUN_NAME_TAG)) {
            (Some(n), Some(t)) if &n != t => {
                return Err(DomainError::invalid(format!(
                    "run name '{n}' and tag {RUN_NAME_TAG} '{t}' differ"
                )));
            }
            (Some(n), _) => n,
            (None, Some(t)) if !t.is_empty() => t.clone(),
            _ => generate_run_name(),
        };
        tags.insert(RUN_NAME_TAG.to_string(), name.clone());
        if !new.user_id.is_empty() {
            tags.entry(USER_TAG.to_string())
                .or_insert_with(|| new.user_id.clone());
        }
        let check_parent = new.parent_run_id.is_some();
        let parent = new
            .parent_run_id
            .or_else(|| tags.get(PARENT_RUN_TAG).cloned());
        if let Some(p) = &parent {
            tags.insert(PARENT_RUN_TAG.to_string(), p.clone());
        }
        Ok(Self {
            uuid: uuid::Uuid::now_v7().simple().to_string(),
            experiment_id: new.experiment_id,
            name,
            user_id: new.user_id,
            status: new.status.unwrap_or(RunStatus::Running),
            start_time: new.start_time,
            parent,
            check_parent,
            tags,
        })
    }

    fn into_run(self, key: i64) -> Run {
        Run {
            key,
            artifact_uri: run_artifact_uri(self.experiment_id, None, &self.uuid),
            id: self.uuid,
            experiment_id: self.experiment_id,
            name: self.name,
            user_id: self.user_id,
            status: self.status,
            start_time: self.start_time,
            end_time: None,
            lifecycle_stage: LifecycleStage::Active,
            parent_run_id: self.parent,
            params: BTreeMap::new(),
            metrics: BTreeMap::new(),
            tags: self.tags,
        }
    }
}

/// Inserts a prepared run inside an open transaction `$conn`; evaluates to `DomainResult<i64>`
/// (the new key). Domain errors are raised before anything is written.
macro_rules! insert_run {
    ($conn:expr, $workspace_id:expr, $run:expr) => {
        async {
            let workspace_id: i64 = $workspace_id;
            let run: &$crate::store::runs::PreparedRun = $run;
            let Some(exp) = sqlx::query(
                "SELECT id, lifecycle_stage FROM experiments WHERE workspace_id = $1 AND number = $2",
            )
            .bind(workspace_id)
            .bind(run.experiment_id)
            .fetch_optional(&mut *$conn)
            .await?
            else {
                return Err(DomainError::NotFound(format!("experiment '{}' does not exist", run.experiment_id)));
            };
            if exp.text("lifecycle_stage")? != LifecycleStage::Active.as_str() {
                return Err(DomainError::InvalidState(format!(
                    "experiment '{}' is deleted: restore it before creating runs",
                    run.experiment_id
                )));
            }
            if let Some(parent) = run.parent.as_ref().filter(|_| run.check_parent) {
                let found = sqlx::query("SELECT id FROM runs WHERE uuid = $1 AND workspace_id = $2")
                    .bind(parent)
                    .bind(workspace_id)
                    .fetch_optional(&mut *$conn)
                    .await?;
                if found.is_none() {
                    return Err(DomainError::NotFound(format!("parent run '{parent}' does not exist")));
                }
            }
            let row = sqlx::query(
                "INSERT INTO runs (uuid, workspace_id, experiment_id, name, user_id, status, start_time, lifecycle_stage, parent_run_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8) RETURNING id",
            )
            .bind(&run.uuid)
            .bind(workspace_id)
            .bind(exp.i64("id")?)
            .bind(&run.name)
            .bind(&run.user_id)
            .bind(run.status.as_str())
            .bind(run.start_time)
            .bind(&run.parent)
            .fetch_one(&mut *$conn)
            .await?;
            let key = row.i64("id")?;
            // all tags in one statement (there is at least the run name)
            let mut sql = String::from("INSERT INTO tags (run_id, key, value) VALUES ");
            for i in 0..run.tags.len() {
                let b = i * 3;
                sql.push_str(&format!("{}(${}, ${}, ${})", if i > 0 { ", " } else { "" }, b + 1, b + 2, b + 3));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (k, v) in &run.tags {
                q = q.bind(key).bind(k).bind(v);
            }
            q.execute(&mut *$conn).await?;
            Ok::<i64, DomainError>(key)
        }
        .await
    };
}

impl Store {
    /// Creates a run in an active experiment.
    pub async fn create_run(&self, workspace_id: i64, new: NewRun) -> DomainResult<Run> {
        let run = PreparedRun::new(new)?;
        let key = match &self.db {
            super::Db::Sqlite { .. } => {
                self.writer()?.create_run(workspace_id, run.clone()).await?
            }
            super::Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let key = insert_run!(tx, workspace_id, &run)?;
                tx.commit().await?;
                key
            }
        };
        // Everything the new run holds is known here: no need to read it back.
        let location = self
            .experiment_location(workspace_id, run.experiment_id)
            .await?;
        let mut run = run.into_run(key);
        if location.is_some() {
            run.artifact_uri = run_artifact_uri(run.experiment_id, location.as_deref(), &run.id);
        }
        Ok(run)
    }

    /// A run's attributes only (no params/metrics/tags).
    pub async fn run_info(&self, workspace_id: i64, id: &str) -> DomainResult<Run> {
        let row = with_db!(self, read, |p| sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id \
             WHERE r.uuid = $1 AND r.workspace_id = $2"
        )))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(run_from)
        .transpose())?;
        row.ok_or_else(|| missing(id))
    }

    /// A run with its params, latest metrics and tags.
    pub async fn run(&self, workspace_id: i64, id: &str) -> DomainResult<Run> {
        let run = self.run_info(workspace_id, id).await?;
        let mut runs = vec![run];
        self.load_run_data(&mut runs).await?;
        Ok(runs.pop().expect("one run"))
    }

    /// Fills params, latest metrics and tags of the given runs. One query answers one row holding
    /// all of it as JSON: with SQLite every row crosses a thread boundary, so few rows is fast.
    pub(crate) async fn load_run_data(&self, runs: &mut [Run]) -> DomainResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let index: HashMap<i64, usize> = runs.iter().enumerate().map(|(i, r)| (r.key, i)).collect();
        let mut b = SqlBuilder::new(self.dialect());
        b.push(match self.dialect() {
            Dialect::Sqlite => {
                "SELECT json_group_array(json_array(r.id, \
                 json((SELECT json_group_object(key, value) FROM params WHERE run_id = r.id)), \
                 json((SELECT json_group_object(key, value) FROM tags WHERE run_id = r.id)), \
                 json((SELECT json_group_array(json_array(key, is_nan, step, timestamp, printf('%!.17g', value))) \
                       FROM latest_metrics WHERE run_id = r.id)))) AS data FROM runs r WHERE r.id IN "
            }
            Dialect::Postgres => {
                "SELECT coalesce(json_agg(json_build_array(r.id, \
                 (SELECT coalesce(json_object_agg(key, value), '{}'::json) FROM params WHERE run_id = r.id), \
                 (SELECT coalesce(json_object_agg(key, value), '{}'::json) FROM tags WHERE run_id = r.id), \
                 (SELECT coalesce(json_agg(json_build_array(key, is_nan, step, timestamp, value::text)), '[]'::json) \
                  FROM latest_metrics WHERE run_id = r.id))), '[]'::json)::text AS data FROM runs r WHERE r.id IN "
            }
        });
        b.bind_list(runs.iter().map(|r| Bind::I64(r.key)));
        let data = with_db!(self, read, |p| {
            let row = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_one(p)
                .await?;
            row.text("data")?
        });
        type MetricRow = (String, i64, i64, i64, String);
        type RunData = (
            i64,
            BTreeMap<String, String>,
            BTreeMap<String, String>,
            Vec<MetricRow>,
        );
        let parsed: Vec<RunData> = serde_json::from_str(&data).map_err(|e| {
            DomainError::Internal(format!("run data from the database does not parse: {e}"))
        })?;
        for (key, params, tags, metrics) in parsed {
            let run = &mut runs[index[&key]];
            run.params = params;
            run.tags = tags;
            for (k, is_nan, step, timestamp, value) in metrics {
                let value = parse_stored_f64(&value)?;
                run.metrics.insert(
                    k,
                    MetricPoint {
                        value: loaded_value(value, is_nan),
                        step,
                        timestamp,
                    },
                );
            }
        }
        Ok(())
    }

    /// Changes status, end time or name of a run.
    pub async fn update_run(
        &self,
        workspace_id: i64,
        id: &str,
        upd: RunUpdate,
    ) -> DomainResult<Run> {
        let run = self.run_info(workspace_id, id).await?;
        if run.lifecycle_stage != LifecycleStage::Active {
            return Err(DomainError::InvalidState(format!(
                "run '{id}' is deleted: restore it before changing it"
            )));
        }
        let status = upd.status.unwrap_or(run.status);
        let end_time = match (upd.end_time, upd.status) {
            (Some(t), _) => Some(t),
            (None, Some(s)) if s.is_terminal() && run.end_time.is_none() => {
                Some(crate::workspace::now_millis())
            }
            _ => run.end_time,
        };
        let name = upd
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or(run.name.clone());
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE runs SET status = $1, end_time = $2, name = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(end_time)
                .bind(&name)
                .bind(run.key)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO tags (run_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(run.key)
            .bind(RUN_NAME_TAG)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await)?;
        self.run_info(workspace_id, id).await
    }

    /// Soft-deletes or restores a run.
    pub async fn set_run_stage(
        &self,
        workspace_id: i64,
        id: &str,
        stage: LifecycleStage,
    ) -> DomainResult<()> {
        let deleted_time = (stage == LifecycleStage::Deleted).then(crate::workspace::now_millis);
        let n = with_db!(self, write, |p| {
            sqlx::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE uuid = $3 AND workspace_id = $4"
        )
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(id)
        .bind(workspace_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        if n == 0 { Err(missing(id)) } else { Ok(()) }
    }

    /// Removes a tag from a run.
    pub async fn delete_run_tag(&self, workspace_id: i64, id: &str, key: &str) -> DomainResult<()> {
        let run = self.active_run(workspace_id, id).await?;
        let n = with_db!(self, write, |p| sqlx::query(
            "DELETE FROM tags WHERE run_id = $1 AND key = $2"
        )
        .bind(run.key)
        .bind(key)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            Err(DomainError::NotFound(format!(
                "No tag with name: {key} in run with id {id}"
            )))
        } else {
            Ok(())
        }
    }

    /// A run that may be written to: it exists and is not deleted.
    pub(crate) async fn active_run(&self, workspace_id: i64, id: &str) -> DomainResult<Run> {
        let run = self.run_info(workspace_id, id).await?;
        if run.lifecycle_stage != LifecycleStage::Active {
            return Err(crate::workspace::validate::run_not_active(id));
        }
        Ok(run)
    }

    /// The full history of one metric of a run, by step then timestamp (then logging order).
    pub async fn metric_history(
        &self,
        workspace_id: i64,
        id: &str,
        key: &str,
    ) -> DomainResult<Vec<MetricPoint>> {
        let run = self.run_info(workspace_id, id).await?;
        let mut points = Vec::new();
        with_db!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT data FROM metric_chunks WHERE run_id = $1 AND key = $2 ORDER BY id",
            )
            .bind(run.key)
            .bind(key)
            .fetch_all(p)
            .await?;
            for r in &rows {
                decode_chunk(&r.bytes("data")?, &mut points)?;
            }
        });
        points.sort_by_key(|p| (p.step, p.timestamp)); // stable: equal points keep logging order
        Ok(points)
    }

    /// Permanently removes deleted runs (all, or those deleted before `before`); returns how many.
    pub async fn purge_deleted_runs(
        &self,
        workspace_id: Option<i64>,
        before: Millis,
    ) -> DomainResult<u64> {
        let (ws_clause, ws) = match workspace_id {
            Some(id) => (" AND workspace_id = $2", id),
            None => (" AND $2 = $2", 0),
        };
        let sel = format!(
            "SELECT id FROM runs WHERE lifecycle_stage = 'deleted' AND deleted_time <= $1{ws_clause}"
        );
        with_db!(self, write, |p| async {
            let mut tx = p.begin().await?;
            for table in ["metric_chunks", "artifacts"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE run_id IN ({sel})"
                )))
                .bind(before)
                .bind(ws)
                .execute(&mut *tx)
                .await?;
            }
            let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM runs WHERE id IN ({sel})"
            )))
            .bind(before)
            .bind(ws)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok::<_, DomainError>(n)
        }
        .await)
    }
}
