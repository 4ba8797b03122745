//! Run and experiment search: the filter AST translated to indexed SQL.

use super::experiments::{EXPERIMENT_COLUMNS, experiment_from};
use super::rows::RowExt;
use super::runs::{RUN_COLUMNS, run_from};
use super::sql::{Bind, SqlBuilder, bind_all};
use super::{Dialect, Store, with_db};
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

/// The table holding a metric/param/tag leaf's values.
fn leaf_table(c: &Comparison) -> &'static str {
    match c.entity {
        Entity::Metric => "latest_metrics",
        Entity::Param => "params",
        _ => "tags",
    }
}

/// Appends `WHERE`-conditions of a metric/param/tag leaf on alias `x` (key and value test).
fn leaf_conditions(b: &mut SqlBuilder, c: &Comparison) {
    b.push("x.key = ").bind_text(&c.key);
    if c.entity == Entity::Metric {
        b.push(" AND x.is_nan = 0");
    }
    if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
        b.push(" AND ");
        column_test(b, "x.value", c);
    }
}

/// Appends a filter expression, rendering each comparison with `leaf`.
fn push_expr(
    b: &mut SqlBuilder,
    e: &Expr,
    leaf: &dyn Fn(&mut SqlBuilder, &Comparison) -> DomainResult<()>,
) -> DomainResult<()> {
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
                push_expr(b, p, leaf)?;
            }
            b.push(")");
            Ok(())
        }
        Expr::Cmp(c) => leaf(b, c),
    }
}

/// Appends the SQL of a run filter. Metric/param/tag tests become correlated `EXISTS` probes on
/// the (run_id, key) primary keys, which cost one index lookup per candidate run; `driver` is the
/// leaf the query is already driven from (rendered as TRUE).
fn run_expr(b: &mut SqlBuilder, e: &Expr, driver: Option<&Comparison>) -> DomainResult<()> {
    push_expr(b, e, &|b, c| {
        if driver.is_some_and(|d| std::ptr::eq(d, c)) {
            b.push("1 = 1");
            return Ok(());
        }
        match c.entity {
            Entity::Attribute => column_test(b, run_column(&c.key)?, c),
            Entity::Dataset => {
                let col = match c.key.as_str() {
                    "name" => "d.name",
                    "digest" => "d.digest",
                    _ => "i.context",
                };
                b.push(if c.op == Op::IsNull {
                    "NOT EXISTS"
                } else {
                    "EXISTS"
                });
                b.push(
                    " (SELECT 1 FROM run_dataset_inputs i JOIN mlflow_datasets d ON d.id = i.dataset_id \
                     WHERE i.run_id = r.id",
                );
                if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
                    b.push(" AND ");
                    column_test(b, col, c);
                }
                b.push(")");
            }
            _ => {
                b.push(if c.op == Op::IsNull {
                    "NOT EXISTS"
                } else {
                    "EXISTS"
                });
                b.push(&format!(
                    " (SELECT 1 FROM {} x WHERE x.run_id = r.id AND ",
                    leaf_table(c)
                ));
                leaf_conditions(b, c);
                b.push(")");
            }
        }
        Ok(())
    })
}

/// Leaves ANDed at the top of a filter that could drive the query (they select runs by index).
fn driver_candidates(e: &Expr) -> Vec<&Comparison> {
    let usable = |c: &Comparison| {
        !matches!(c.entity, Entity::Attribute | Entity::Dataset) && c.op != Op::IsNull
    };
    match e {
        Expr::Cmp(c) if usable(c) => vec![c],
        Expr::And(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Expr::Cmp(c) if usable(c) => Some(c),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Most rows a driving leaf may match; above it, scanning runs in order with probes is cheaper.
const DRIVE_CAP: i64 = 4000;

/// Which runs of a metric-ordered search a query returns.
#[derive(Clone, Copy)]
enum MetricSide<'a> {
    /// Runs that have the metric, in the metric's order (driven by its index).
    With(&'a OrderBy),
    /// Runs without it, in the remaining order.
    Without(&'a OrderBy),
}

/// A resolved run search: experiment keys and the driving leaf, if any.
#[derive(Clone, Copy)]
struct Plan<'a> {
    workspace_id: i64,
    exp_keys: &'a [i64],
    driver: Option<&'a Comparison>,
    q: &'a RunQuery,
}

impl Plan<'_> {
    /// The conditions every variant shares: scope, lifecycle view and the filter.
    fn push_where(&self, b: &mut SqlBuilder) -> DomainResult<()> {
        if self.exp_keys.is_empty() {
            b.push(" WHERE r.workspace_id = ")
                .bind(Bind::I64(self.workspace_id));
        } else {
            // the keys were resolved within the workspace
            b.push(" WHERE r.experiment_id IN ")
                .bind_list(self.exp_keys.iter().map(|k| Bind::I64(*k)));
        }
        view_clause(b, "r.lifecycle_stage", self.q.view);
        if let Some(f) = &self.q.filter {
            b.push(" AND ");
            run_expr(b, f, self.driver)?;
        }
        Ok(())
    }

    /// The page query, optionally one side of a metric-ordered search.
    fn query(&self, d: Dialect, side: Option<MetricSide<'_>>) -> DomainResult<SqlBuilder> {
        let cross = if d == Dialect::Sqlite {
            "CROSS JOIN"
        } else {
            "JOIN"
        };
        let mut b = SqlBuilder::new(d);
        b.push(&format!("SELECT {RUN_COLUMNS} FROM "));
        let mut order_sql = Vec::new();
        let mut skip_first = false;
        if let Some(c) = self.driver {
            b.push(&format!("(SELECT x.run_id FROM {} x WHERE ", leaf_table(c)));
            leaf_conditions(&mut b, c);
            // SQLite keeps the left side of a CROSS JOIN as the outer loop
            b.push(&format!(") drv {cross} runs r ON r.id = drv.run_id"));
        } else if let Some(MetricSide::With(o)) = side {
            b.push(&format!(
                "latest_metrics om {cross} runs r ON r.id = om.run_id"
            ));
            let dir = if o.ascending { "ASC" } else { "DESC" };
            // NaN counts as the largest value
            order_sql.push(format!("om.is_nan {dir}, om.value {dir}"));
            skip_first = true;
        } else {
            b.push("runs r");
        }
        b.push(" JOIN experiments e ON e.id = r.experiment_id");
        for (i, o) in self.q.order_by.iter().enumerate() {
            if i == 0 && (skip_first || matches!(side, Some(MetricSide::Without(_)))) {
                continue;
            }
            let dir = if o.ascending { "ASC" } else { "DESC" };
            match o.entity {
                Entity::Attribute => order_sql.push(format!("{} {dir}", run_column(&o.key)?)),
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
                Entity::Dataset => {
                    return Err(DomainError::invalid(
                        "runs cannot be ordered by their datasets",
                    ));
                }
            }
        }
        self.push_where(&mut b)?;
        match side {
            Some(MetricSide::With(o)) => {
                b.push(" AND om.key = ").bind_text(&o.key);
            }
            Some(MetricSide::Without(o)) => {
                b.push(" AND NOT EXISTS (SELECT 1 FROM latest_metrics x WHERE x.run_id = r.id AND x.key = ")
                    .bind_text(&o.key)
                    .push(")");
            }
            None => {}
        }
        order_sql.push("r.start_time DESC".into());
        order_sql.push("r.id ASC".into());
        b.push(" ORDER BY ").push(&order_sql.join(", "));
        b.push(" LIMIT ").bind(Bind::I64(self.q.limit as i64));
        b.push(" OFFSET ").bind(Bind::I64(self.q.offset as i64));
        Ok(b)
    }

    /// How many matching runs have metric `o` (for paging past them).
    fn count(&self, d: Dialect, o: &OrderBy) -> DomainResult<SqlBuilder> {
        let mut b = SqlBuilder::new(d);
        b.push("SELECT count(*) AS n FROM runs r");
        self.push_where(&mut b)?;
        b.push(" AND EXISTS (SELECT 1 FROM latest_metrics x WHERE x.run_id = r.id AND x.key = ")
            .bind_text(&o.key)
            .push(")");
        Ok(b)
    }
}

/// Appends the SQL of an experiment filter.
fn experiment_expr(b: &mut SqlBuilder, e: &Expr) -> DomainResult<()> {
    push_expr(b, e, &|b, c| {
        match c.entity {
            Entity::Attribute => column_test(b, experiment_column(&c.key)?, c),
            Entity::Tag => {
                b.push(if c.op == Op::IsNull {
                    "NOT EXISTS"
                } else {
                    "EXISTS"
                });
                b.push(" (SELECT 1 FROM experiment_tags x WHERE x.experiment_id = e.id AND ");
                leaf_conditions(b, c);
                b.push(")");
            }
            other => {
                return Err(DomainError::invalid(format!(
                    "{other:?} cannot filter experiments"
                )));
            }
        }
        Ok(())
    })
}

impl Store {
    /// How many rows a leaf matches, counted up to `cap + 1` on its (key, value) index.
    async fn leaf_count(&self, c: &Comparison, cap: i64) -> DomainResult<i64> {
        let mut b = SqlBuilder::new(self.dialect());
        b.push(&format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {} x WHERE ",
            leaf_table(c)
        ));
        leaf_conditions(&mut b, c);
        b.push(" LIMIT ").bind(Bind::I64(cap + 1)).push(") t");
        with_db!(self, read, |p| {
            let row = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_one(p)
                .await?;
            row.i64("n")
        })
    }

    /// Runs matching a query, with their data, in order; returns the page.
    ///
    /// Plan: when one ANDed leaf matches few rows (counted cheaply on its index, up to
    /// [`DRIVE_CAP`]), the query is driven from that leaf's rows and the rest is probed per run;
    /// otherwise runs are scanned in `(experiment, start_time)` order and every leaf is a probe,
    /// which stops as soon as a page is full.
    pub async fn search_runs(&self, workspace_id: i64, q: &RunQuery) -> DomainResult<Vec<Run>> {
        let d = self.dialect();
        // experiment numbers → keys, so the runs index on (experiment_id, start_time) applies
        let exp_keys: Vec<i64> = if q.experiment_ids.is_empty() {
            Vec::new()
        } else {
            let mut b = SqlBuilder::new(d);
            b.push("SELECT id FROM experiments WHERE workspace_id = ")
                .bind(Bind::I64(workspace_id));
            b.push(" AND number IN ")
                .bind_list(q.experiment_ids.iter().map(|i| Bind::I64(*i)));
            let keys = with_db!(self, read, |p| {
                let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| r.i64("id"))
                    .collect::<DomainResult<Vec<_>>>()
            })?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            keys
        };
        let mut driver: Option<&Comparison> = None;
        let exp_keys = &exp_keys;
        if let Some(f) = &q.filter {
            let mut best = DRIVE_CAP + 1;
            for c in driver_candidates(f) {
                let n = self.leaf_count(c, DRIVE_CAP).await?;
                if n < best {
                    best = n;
                    driver = Some(c);
                }
            }
        }
        let plan = Plan {
            workspace_id,
            exp_keys,
            driver,
            q,
        };
        let first_metric = q.order_by.first().filter(|o| o.entity == Entity::Metric);
        let mut runs = match (driver, first_metric) {
            (None, Some(o)) => self.runs_by_metric(&plan, o).await?,
            _ => {
                let b = plan.query(d, None)?;
                self.fetch_runs(&b).await?
            }
        };
        self.load_run_data(&mut runs).await?;
        Ok(runs)
    }

    async fn fetch_runs(&self, b: &SqlBuilder) -> DomainResult<Vec<Run>> {
        tracing::debug!(sql = %b.sql, "search runs");
        with_db!(self, read, |p| {
            let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(b.sql.as_str())), &b.binds)
                .fetch_all(p)
                .await?;
            rows.iter().map(run_from).collect::<DomainResult<Vec<_>>>()
        })
    }

    /// Ordered by a metric first: walk that metric's (key, is_nan, value) index in order and stop
    /// when the page is full; runs without the metric come after all runs with it.
    async fn runs_by_metric(&self, plan: &Plan<'_>, o: &OrderBy) -> DomainResult<Vec<Run>> {
        let d = self.dialect();
        let (limit, offset) = (plan.q.limit, plan.q.offset);
        let with = plan.query(d, Some(MetricSide::With(o)))?;
        let mut runs = self.fetch_runs(&with).await?;
        if runs.len() >= limit {
            return Ok(runs);
        }
        let with_total = if runs.is_empty() {
            let count = plan.count(d, o)?;
            with_db!(self, read, |p| {
                let row = bind_all!(
                    sqlx::query(sqlx::AssertSqlSafe(count.sql.as_str())),
                    &count.binds
                )
                .fetch_one(p)
                .await?;
                row.i64("n")? as usize
            })
        } else {
            offset + runs.len()
        };
        let rest = Plan {
            q: &RunQuery {
                limit: limit - runs.len(),
                offset: offset.saturating_sub(with_total),
                ..plan.q.clone()
            },
            ..*plan
        };
        let without = rest.query(d, Some(MetricSide::Without(o)))?;
        runs.extend(self.fetch_runs(&without).await?);
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
        // MLflow's orders: newest first by default; ties (and custom orders) by id
        if q.order_by.is_empty() {
            order.push("e.creation_time DESC".into());
            order.push("e.number ASC".into());
        } else if !q.order_by.iter().any(|o| o.key == "experiment_id") {
            order.push("e.number DESC".into());
        }
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
