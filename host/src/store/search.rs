//! Run and experiment search: the filter AST translated to indexed SQL.

use super::experiments::{EXPERIMENT_COLUMNS, experiment_from};
use super::runs::{RUN_COLUMNS, run_from};
use super::sql::{Bind, SqlBuilder, bind_all};
use super::{Store, with_db};
use crate::workspace::filter::{Comparison, Entity, Expr, Op, OrderBy, Value};
use crate::workspace::{DomainError, DomainResult, Experiment, Run, ViewType};

/// A run search.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Public ids of the experiments to search (empty: all of the workspace).
    pub experiment_ids: Vec<i64>,
    /// Parsed filter.
    pub filter: Option<Expr>,
    /// Sort clauses, most significant first.
    pub order_by: Vec<OrderBy>,
    /// Lifecycle stages to include.
    pub view: ViewType,
    /// Page size.
    pub limit: usize,
    /// Rows to skip (from the page token).
    pub offset: usize,
}

/// An experiment search.
#[derive(Debug, Clone, Default)]
pub struct ExperimentQuery {
    /// Parsed filter.
    pub filter: Option<Expr>,
    /// Sort clauses.
    pub order_by: Vec<OrderBy>,
    /// Lifecycle stages to include.
    pub view: ViewType,
    /// Page size.
    pub limit: usize,
    /// Rows to skip.
    pub offset: usize,
}

fn view_clause(b: &mut SqlBuilder, col: &str, view: ViewType) {
    match view {
        ViewType::ActiveOnly => b.push(&format!(" AND {col} = 'active'")),
        ViewType::DeletedOnly => b.push(&format!(" AND {col} = 'deleted'")),
        ViewType::All => b,
    };
}

fn run_column(attr: &str) -> DomainResult<&'static str> {
    Ok(match attr {
        "run_id" => "r.uuid",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "start_time" => "r.start_time",
        "end_time" => "r.end_time",
        "lifecycle_stage" => "r.lifecycle_stage",
        other => {
            return Err(DomainError::invalid(format!(
                "attribute '{other}' cannot be searched on runs"
            )));
        }
    })
}

fn experiment_column(attr: &str) -> DomainResult<&'static str> {
    Ok(match attr {
        "name" => "e.name",
        "experiment_id" => "e.number",
        "creation_time" => "e.creation_time",
        "last_update_time" => "e.last_update_time",
        "lifecycle_stage" => "e.lifecycle_stage",
        other => {
            return Err(DomainError::invalid(format!(
                "attribute '{other}' cannot be searched on experiments"
            )));
        }
    })
}

/// Appends `column op value` for a scalar column.
fn column_test(b: &mut SqlBuilder, column: &str, c: &Comparison) {
    match (&c.op, &c.value) {
        (Op::Like | Op::ILike, Value::Text(s)) => {
            b.like(column, s, c.op == Op::ILike);
        }
        (Op::In | Op::NotIn, Value::List(items)) => {
            b.push(column).push(" ").push(c.op.sql()).push(" ");
            b.bind_list(items.iter().map(|s| Bind::Text(s.clone())));
        }
        (Op::IsNull | Op::IsNotNull, _) => {
            b.push(column).push(" ").push(c.op.sql());
        }
        (op, Value::Number(n)) => {
            b.push(column).push(" ").push(op.sql()).push(" ");
            if n.fract() == 0.0 && n.abs() < 9.0e15 && !column.ends_with("value") {
                b.bind(Bind::I64(*n as i64));
            } else {
                b.bind(Bind::F64(*n));
            }
        }
        (op, Value::Text(s)) => {
            b.push(column)
                .push(" ")
                .push(op.sql())
                .push(" ")
                .bind_text(s);
        }
        (op, _) => {
            b.push(column).push(" ").push(op.sql()).push(" NULL");
        }
    }
}

/// Appends the SQL of a run filter.
fn run_expr(b: &mut SqlBuilder, e: &Expr) -> DomainResult<()> {
    match e {
        Expr::And(parts) | Expr::Or(parts) => {
            let joiner = if matches!(e, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            b.push("(");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    b.push(joiner);
                }
                run_expr(b, p)?;
            }
            b.push(")");
        }
        Expr::Cmp(c) => match c.entity {
            Entity::Attribute => column_test(b, run_column(&c.key)?, c),
            Entity::Metric => {
                b.push("r.id IN (SELECT run_id FROM latest_metrics WHERE key = ")
                    .bind_text(&c.key);
                b.push(" AND is_nan = 0 AND ");
                column_test(b, "value", c);
                b.push(")");
            }
            Entity::Param | Entity::Tag => {
                let table = if c.entity == Entity::Param {
                    "params"
                } else {
                    "tags"
                };
                let (negate, has_value_test) = match c.op {
                    Op::IsNull => (true, false),
                    Op::IsNotNull => (false, false),
                    _ => (false, true),
                };
                b.push(if negate { "r.id NOT IN" } else { "r.id IN" });
                b.push(&format!(" (SELECT run_id FROM {table} WHERE key = "))
                    .bind_text(&c.key);
                if has_value_test {
                    b.push(" AND ");
                    column_test(b, "value", c);
                }
                b.push(")");
            }
        },
    }
    Ok(())
}

/// Appends the SQL of an experiment filter.
fn experiment_expr(b: &mut SqlBuilder, e: &Expr) -> DomainResult<()> {
    match e {
        Expr::And(parts) | Expr::Or(parts) => {
            let joiner = if matches!(e, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            b.push("(");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    b.push(joiner);
                }
                experiment_expr(b, p)?;
            }
            b.push(")");
        }
        Expr::Cmp(c) => match c.entity {
            Entity::Attribute => column_test(b, experiment_column(&c.key)?, c),
            Entity::Tag => {
                let negate = c.op == Op::IsNull;
                b.push(if negate { "e.id NOT IN" } else { "e.id IN" });
                b.push(" (SELECT experiment_id FROM experiment_tags WHERE key = ")
                    .bind_text(&c.key);
                if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
                    b.push(" AND ");
                    column_test(b, "value", c);
                }
                b.push(")");
            }
            other => {
                return Err(DomainError::invalid(format!(
                    "{other:?} cannot filter experiments"
                )));
            }
        },
    }
    Ok(())
}

impl Store {
    /// Runs matching a query, with their data, in order; returns the page.
    pub async fn search_runs(&self, workspace_id: i64, q: &RunQuery) -> DomainResult<Vec<Run>> {
        let mut b = SqlBuilder::new(self.dialect());
        b.push(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id"
        ));
        // one LEFT JOIN per ordering on a metric/param/tag
        let mut order_sql = Vec::new();
        for (i, o) in q.order_by.iter().enumerate() {
            let dir = if o.ascending { "ASC" } else { "DESC" };
            match o.entity {
                Entity::Attribute => {
                    let col = run_column(&o.key)?;
                    order_sql.push(format!("{col} {dir}"));
                }
                Entity::Metric => {
                    b.push(&format!(
                        " LEFT JOIN latest_metrics o{i} ON o{i}.run_id = r.id AND o{i}.key = "
                    ))
                    .bind_text(&o.key);
                    // runs without the metric go last either way; NaN counts as the largest value
                    order_sql.push(format!(
                        "(o{i}.run_id IS NULL) ASC, o{i}.is_nan {dir}, o{i}.value {dir}"
                    ));
                }
                Entity::Param | Entity::Tag => {
                    let table = if o.entity == Entity::Param {
                        "params"
                    } else {
                        "tags"
                    };
                    b.push(&format!(
                        " LEFT JOIN {table} o{i} ON o{i}.run_id = r.id AND o{i}.key = "
                    ))
                    .bind_text(&o.key);
                    order_sql.push(format!("(o{i}.run_id IS NULL) ASC, o{i}.value {dir}"));
                }
            }
        }
        b.push(" WHERE r.workspace_id = ")
            .bind(Bind::I64(workspace_id));
        if !q.experiment_ids.is_empty() {
            b.push(" AND e.number IN ")
                .bind_list(q.experiment_ids.iter().map(|i| Bind::I64(*i)));
        }
        view_clause(&mut b, "r.lifecycle_stage", q.view);
        if let Some(f) = &q.filter {
            b.push(" AND ");
            run_expr(&mut b, f)?;
        }
        order_sql.push("r.start_time DESC".into());
        order_sql.push("r.id ASC".into());
        b.push(" ORDER BY ").push(&order_sql.join(", "));
        b.push(" LIMIT ").bind(Bind::I64(q.limit as i64));
        b.push(" OFFSET ").bind(Bind::I64(q.offset as i64));
        tracing::trace!(sql = %b.sql, "search runs");
        let mut runs = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter().map(run_from).collect::<DomainResult<Vec<_>>>()
        })?;
        self.load_run_data(&mut runs).await?;
        Ok(runs)
    }

    /// Experiments matching a query, with their tags.
    pub async fn search_experiments(
        &self,
        workspace_id: i64,
        q: &ExperimentQuery,
    ) -> DomainResult<Vec<Experiment>> {
        let mut b = SqlBuilder::new(self.dialect());
        b.push(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.workspace_id = "
        ))
        .bind(Bind::I64(workspace_id));
        view_clause(&mut b, "e.lifecycle_stage", q.view);
        if let Some(f) = &q.filter {
            b.push(" AND ");
            experiment_expr(&mut b, f)?;
        }
        let mut order: Vec<String> = Vec::new();
        for o in &q.order_by {
            if o.entity != Entity::Attribute {
                return Err(DomainError::invalid(
                    "experiments can only be ordered by attributes",
                ));
            }
            order.push(format!(
                "{} {}",
                experiment_column(&o.key)?,
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        if q.order_by.is_empty() {
            order.push("e.last_update_time DESC".into());
        }
        order.push("e.number ASC".into());
        b.push(" ORDER BY ").push(&order.join(", "));
        b.push(" LIMIT ").bind(Bind::I64(q.limit as i64));
        b.push(" OFFSET ").bind(Bind::I64(q.offset as i64));
        let mut exps = with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(experiment_from)
                .collect::<DomainResult<Vec<_>>>()
        })?;
        for e in &mut exps {
            e.tags = self.experiment_tags(e.key).await?;
        }
        Ok(exps)
    }
}
