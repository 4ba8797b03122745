//! Validation rules for names, keys, values and batch sizes (MLflow's limits where it has them).

use super::{DomainError, DomainResult};

/// Longest metric, param or tag key.
pub const MAX_KEY_LEN: usize = 250;
/// Longest param value (MLflow's limit).
pub const MAX_PARAM_VALUE_LEN: usize = 6000;
/// Longest tag value (MLflow's limit).
pub const MAX_TAG_VALUE_LEN: usize = 8000;
/// Longest experiment name.
pub const MAX_EXPERIMENT_NAME_LEN: usize = 500;
/// Most metrics in one log-batch.
pub const MAX_BATCH_METRICS: usize = 1000;
/// Most params in one log-batch.
pub const MAX_BATCH_PARAMS: usize = 100;
/// Most tags in one log-batch.
pub const MAX_BATCH_TAGS: usize = 100;
/// Most items in one log-batch, all kinds together.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Largest log-batch request body in bytes.
pub const MAX_BATCH_BYTES: usize = 1_000_000;

/// Whether `name` is a label: 1..=`max_len` bytes of ASCII letters, digits and the `extra`
/// punctuation, starting with a letter or digit (safe in URLs and references).
pub fn is_label(name: &str, max_len: usize, extra: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Checks a workspace name: 1–63 characters of `a-z 0-9 -`, starting with a letter or digit.
pub fn workspace_name(name: &str) -> DomainResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid workspace name '{name}': use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )))
    }
}

/// Checks an experiment name.
pub fn experiment_name(name: &str) -> DomainResult<()> {
    if name.trim().is_empty() {
        return Err(DomainError::invalid("experiment name must not be empty"));
    }
    if name.chars().count() > MAX_EXPERIMENT_NAME_LEN {
        return Err(DomainError::invalid(format!(
            "experiment name is longer than {MAX_EXPERIMENT_NAME_LEN} characters"
        )));
    }
    Ok(())
}

/// Checks a metric, param or tag key: MLflow's characters (`\w / . - space :`), no path tricks.
pub fn key(kind: &str, key: &str) -> DomainResult<()> {
    if key.is_empty() {
        return Err(DomainError::invalid(format!(
            "{kind} key must not be empty"
        )));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(DomainError::invalid(format!(
            "{kind} key '{}...' is longer than {MAX_KEY_LEN} characters",
            key.chars().take(40).collect::<String>()
        )));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':')))
    {
        return Err(DomainError::invalid(format!(
            "invalid {kind} key '{key}': character '{bad}' is not allowed (use letters, digits, '_', '-', '.', ' ', '/', ':')"
        )));
    }
    if key.starts_with('/') || key.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(DomainError::invalid(format!(
            "invalid {kind} key '{key}': it must be a relative path without '.' or '..' segments"
        )));
    }
    Ok(())
}

/// Checks a param value's length.
pub fn param_value(key: &str, value: &str) -> DomainResult<()> {
    if value.chars().count() > MAX_PARAM_VALUE_LEN {
        return Err(DomainError::invalid(format!(
            "value of param '{key}' is longer than {MAX_PARAM_VALUE_LEN} characters"
        )));
    }
    Ok(())
}

/// Checks a tag value's length.
pub fn tag_value(key: &str, value: &str) -> DomainResult<()> {
    if value.chars().count() > MAX_TAG_VALUE_LEN {
        return Err(DomainError::invalid(format!(
            "value of tag '{key}' is longer than {MAX_TAG_VALUE_LEN} characters"
        )));
    }
    Ok(())
}

/// Checks every key and value of a tag map.
pub fn tags<'a>(tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> DomainResult<()> {
    for (k, v) in tags {
        key("tag", k)?;
        tag_value(k, v)?;
    }
    Ok(())
}

/// Checks a run id: 32 lower-case hex characters (also accepts MLflow's uuid4 hex).
pub fn run_id(id: &str) -> DomainResult<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(run_not_found(id))
    }
}

/// The error for a run that does not exist (MLflow's wording, which clients match).
pub fn run_not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("Run '{id}' not found"))
}

/// The error for a change to a deleted run (MLflow's wording).
pub fn run_not_active(id: &str) -> DomainError {
    DomainError::InvalidState(format!(
        "The run {id} must be in the 'active' state. Current state is deleted."
    ))
}

/// Checks the sizes of a batch against MLflow's limits.
pub fn batch_sizes(metrics: usize, params: usize, tags: usize) -> DomainResult<()> {
    if metrics > MAX_BATCH_METRICS {
        return Err(DomainError::invalid(format!(
            "a batch may hold at most {MAX_BATCH_METRICS} metrics, got {metrics}"
        )));
    }
    if params > MAX_BATCH_PARAMS {
        return Err(DomainError::invalid(format!(
            "a batch may hold at most {MAX_BATCH_PARAMS} params, got {params}"
        )));
    }
    if tags > MAX_BATCH_TAGS {
        return Err(DomainError::invalid(format!(
            "a batch may hold at most {MAX_BATCH_TAGS} tags, got {tags}"
        )));
    }
    let total = metrics + params + tags;
    if total > MAX_BATCH_ITEMS {
        return Err(DomainError::invalid(format!(
            "a batch may hold at most {MAX_BATCH_ITEMS} items in all, got {total}"
        )));
    }
    Ok(())
}

/// Checks an artifact path: relative, `/`-separated, no empty, `.` or `..` segments.
pub fn artifact_path(path: &str) -> DomainResult<()> {
    if path.is_empty() {
        return Err(DomainError::invalid("artifact path must not be empty"));
    }
    if path.len() > 1024 {
        return Err(DomainError::invalid(
            "artifact path is longer than 1024 bytes",
        ));
    }
    if path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(DomainError::invalid(format!(
            "invalid artifact path '{path}': use a relative path without empty, '.' or '..' segments"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names() {
        assert!(workspace_name("team-a").is_ok());
        assert!(workspace_name("default").is_ok());
        assert!(workspace_name("").is_err());
        assert!(workspace_name("-a").is_err());
        assert!(workspace_name("Team").is_err());
        assert!(workspace_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn keys() {
        assert!(key("metric", "train/loss").is_ok());
        assert!(key("metric", "val acc:top-1").is_ok());
        assert!(key("metric", "").is_err());
        assert!(key("metric", "a/../b").is_err());
        assert!(key("metric", "/abs").is_err());
        assert!(key("metric", "semi;colon").is_err());
        assert!(key("metric", &"k".repeat(251)).is_err());
    }

    #[test]
    fn batches() {
        assert!(batch_sizes(1000, 0, 0).is_ok());
        assert!(batch_sizes(1001, 0, 0).is_err());
        assert!(batch_sizes(900, 100, 1).is_err());
        assert!(batch_sizes(0, 101, 0).is_err());
    }

    #[test]
    fn artifact_paths() {
        assert!(artifact_path("model/weights.bin").is_ok());
        assert!(artifact_path("../etc/passwd").is_err());
        assert!(artifact_path("a//b").is_err());
        assert!(artifact_path("/a").is_err());
    }
}
