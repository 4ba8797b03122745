//! Bulk import: many runs with their params, tags and metrics, in one transaction, written with
//! multi-row inserts (a few statements per thousand runs instead of several per run).

use std::collections::{BTreeMap, HashMap};

use super::logging::{CHUNK_INSERT, LATEST_INSERT};
use super::rows::RowExt;
use super::runs::PreparedRun;
use super::sql::{Bind, bind_all, inserts, push_values};
use super::{LogBatch, NewRun, Store, with_db};
use crate::workspace::{DomainError, DomainResult, RunStatus};

impl Store {
    /// Creates many runs with their data in one transaction (bulk import, benchmark seeding).
    /// Runs are FINISHED unless a status is given. Returns the new ids in input order.
    pub async fn create_runs_bulk(
        &self,
        workspace_id: i64,
        runs: Vec<(NewRun, LogBatch)>,
    ) -> DomainResult<Vec<String>> {
        let d = self.dialect();
        let prepared: Vec<(PreparedRun, LogBatch)> = runs
            .into_iter()
            .map(|(mut new, batch)| {
                new.status = Some(new.status.unwrap_or(RunStatus::Finished));
                Ok((PreparedRun::new(new)?, batch))
            })
            .collect::<DomainResult<_>>()?;
        let ids: Vec<String> = prepared.iter().map(|(r, _)| r.uuid.clone()).collect();
        let mut experiments: Vec<i64> = prepared.iter().map(|(r, _)| r.experiment_id).collect();
        experiments.sort_unstable();
        experiments.dedup();
        with_db!(self, write, |p| {
            async {
            let mut tx = p.begin().await?;
            let mut exp_keys: HashMap<i64, i64> = HashMap::new();
            for number in experiments {
                let Some(row) = sqlx::query(
                    "SELECT id FROM experiments WHERE workspace_id = $1 AND number = $2 AND lifecycle_stage = 'active'",
                )
                .bind(workspace_id)
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Err(DomainError::NotFound(format!("experiment '{number}' does not exist or is deleted")));
                };
                exp_keys.insert(number, row.i64("id")?);
            }
            // runs, then their keys by uuid
            let run_rows = prepared
                .iter()
                .map(|(r, _)| {
                    let end = r.status.is_terminal().then_some(r.start_time);
                    vec![
                        Bind::Text(r.uuid.clone()),
                        Bind::I64(workspace_id),
                        Bind::I64(exp_keys[&r.experiment_id]),
                        Bind::Text(r.name.clone()),
                        Bind::Text(r.user_id.clone()),
                        Bind::Text(r.status.as_str().into()),
                        Bind::I64(r.start_time),
                        end.map_or(Bind::NullInt, Bind::I64),
                        Bind::Text("active".into()),
                        r.parent.clone().map_or(Bind::NullText, Bind::Text),
                    ]
                })
                .collect();
            let head = "INSERT INTO runs (uuid, workspace_id, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, parent_run_id) VALUES ";
            for ins in inserts(d, head, "", 10, run_rows) {
                bind_all!(sqlx::query(sqlx::AssertSqlSafe(ins.sql)), &ins.binds).execute(&mut *tx).await?;
            }
            let mut keys: HashMap<String, i64> = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(1000) {
                let mut sql = String::from("SELECT id, uuid FROM runs WHERE uuid IN ");
                push_values(d, &mut sql, 1, chunk.len());
                let binds: Vec<Bind> = chunk.iter().map(|u| Bind::Text(u.clone())).collect();
                for row in bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds).fetch_all(&mut *tx).await? {
                    keys.insert(row.text("uuid")?, row.i64("id")?);
                }
            }
            // params, tags (run tags then batch tags, last wins), metric chunks, latest values
            let (mut params, mut tags, mut chunks, mut latest) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (r, batch) in &prepared {
                let key = keys[&r.uuid];
                let mut seen = std::collections::HashSet::new();
                for (k, v) in &batch.params {
                    if seen.insert(k) {
                        params.push(vec![Bind::I64(key), Bind::Text(k.clone()), Bind::Text(v.clone())]);
                    }
                }
                let mut all_tags: BTreeMap<&str, &str> = r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                for (k, v) in &batch.tags {
                    all_tags.insert(k, v);
                }
                for (k, v) in all_tags {
                    tags.push(vec![Bind::I64(key), Bind::Text(k.into()), Bind::Text(v.into())]);
                }
                chunks.extend(batch.chunk_rows(key));
                latest.extend(batch.latest_rows(key));
            }
            let statements = [
                inserts(d, "INSERT INTO params (run_id, key, value) VALUES ", "", 3, params),
                inserts(d, "INSERT INTO tags (run_id, key, value) VALUES ", "", 3, tags),
                inserts(d, CHUNK_INSERT, "", 4, chunks),
                inserts(d, LATEST_INSERT, "", 6, latest),
            ];
            for ins in statements.into_iter().flatten() {
                bind_all!(sqlx::query(sqlx::AssertSqlSafe(ins.sql)), &ins.binds).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, DomainError>(())
        }
        .await
        })?;
        Ok(ids)
    }
}
