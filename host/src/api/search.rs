//! Search requests shared by both APIs: parse filter and order_by, page through results.

use super::paging;
use crate::service::Service;
use crate::store::{ExperimentQuery, RunQuery};
use crate::workspace::filter::{self, Entity};
use crate::workspace::{DomainError, DomainResult, Experiment, Run, ViewType, Workspace};

/// Largest page of runs a search may ask for.
pub const MAX_RUNS_PAGE: usize = 50_000;
/// Page size when none is given.
pub const DEFAULT_RUNS_PAGE: usize = 1_000;

/// A run search as clients phrase it.
#[derive(Debug, Default)]
pub struct RunSearch<'a> {
    /// Experiment ids as text (MLflow sends strings).
    pub experiment_ids: &'a [String],
    /// Filter text.
    pub filter: &'a str,
    /// `order_by` clauses.
    pub order_by: &'a [String],
    /// Lifecycle view.
    pub view: ViewType,
    /// Page size.
    pub max_results: Option<i64>,
    /// Page token.
    pub page_token: Option<&'a str>,
}

fn page_size(max: Option<i64>, default: usize, limit: usize) -> DomainResult<usize> {
    match max {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= limit => Ok(n as usize),
        Some(n) => Err(DomainError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied: it must be between 1 and {limit}"
        ))),
    }
}

/// Experiment ids as clients send them (strings or numbers) as text.
pub fn id_strings(values: &[serde_json::Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Runs one page of a run search; returns the runs and the next page token.
pub async fn runs(
    t: &Service,
    ws: &Workspace,
    s: RunSearch<'_>,
) -> DomainResult<(Vec<Run>, Option<String>)> {
    let limit = page_size(s.max_results, DEFAULT_RUNS_PAGE, MAX_RUNS_PAGE)?;
    let offset = paging::decode(s.page_token)?;
    let experiment_ids = s
        .experiment_ids
        .iter()
        .map(|id| super::wire::experiment_id(id))
        .collect::<DomainResult<Vec<_>>>()?;
    let order_by = s
        .order_by
        .iter()
        .map(|o| {
            filter::parse_order_by(
                o,
                filter::run_attribute,
                &[
                    Entity::Metric,
                    Entity::Param,
                    Entity::Tag,
                    Entity::Attribute,
                ],
            )
        })
        .collect::<DomainResult<Vec<_>>>()?;
    let q = RunQuery {
        experiment_ids,
        filter: filter::parse_run_filter(s.filter)?,
        order_by,
        view: s.view,
        limit: limit + 1,
        offset,
    };
    let mut runs = t.store.search_runs(ws.id, &q).await?;
    let next = paging::next(offset, runs.len(), limit);
    runs.truncate(limit);
    Ok((runs, next))
}

/// Runs one page of an experiment search.
pub async fn experiments(
    t: &Service,
    ws: &Workspace,
    filter_text: &str,
    order_by: &[String],
    view: ViewType,
    max_results: Option<i64>,
    page_token: Option<&str>,
) -> DomainResult<(Vec<Experiment>, Option<String>)> {
    let limit = page_size(max_results, 1_000, 50_000)?;
    let offset = paging::decode(page_token)?;
    let order_by = order_by
        .iter()
        .map(|o| filter::parse_order_by(o, filter::experiment_attribute, &[Entity::Attribute]))
        .collect::<DomainResult<Vec<_>>>()?;
    let q = ExperimentQuery {
        filter: filter::parse_experiment_filter(filter_text)?,
        order_by,
        view,
        limit: limit + 1,
        offset,
    };
    let mut exps = t.store.search_experiments(ws.id, &q).await?;
    let next = paging::next(offset, exps.len(), limit);
    exps.truncate(limit);
    Ok((exps, next))
}
