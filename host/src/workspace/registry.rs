//! The model registry's domain: registered models, numbered versions, aliases, model
//! references (`models:/name/3`, `models:/name@champion`, `models:/name/latest`) and the
//! rules for names. No I/O.

use std::collections::BTreeMap;

use super::filter::{Comparison, Expr, Op, Value};
use super::{DomainError, DomainResult, Millis};

/// Status of a version whose files are in place (registration is synchronous).
pub const STATUS_READY: &str = "READY";
/// The stage a version starts in (MLflow's legacy stages).
pub const STAGE_NONE: &str = "None";
/// MLflow's legacy stages, in their canonical spelling.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];
/// Longest registered model name.
pub const MAX_MODEL_NAME_LEN: usize = 256;
/// Longest alias.
pub const MAX_ALIAS_LEN: usize = 255;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 5000;

/// A registered model: a name with numbered versions, tags and aliases.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    /// Name, unique in the workspace.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Tags (last writer wins).
    pub tags: BTreeMap<String, String>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, i64>,
    /// The highest existing version number, if any version exists.
    pub latest_version: Option<i64>,
    /// How many versions exist.
    pub version_count: i64,
    /// Creation time.
    pub created_at: Millis,
    /// Last change of the model or one of its versions.
    pub updated_at: Millis,
}

/// One version of a registered model, with its lineage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// The registered model's name.
    pub name: String,
    /// Version number (1, 2, 3, ... per model; never reused).
    pub version: i64,
    /// The run it was registered from (kept after the run is deleted).
    pub run_id: Option<String>,
    /// The MLflow logged model it was registered from (`m-...`), when it was.
    pub model_id: Option<String>,
    /// Where the files came from (`runs:/<run>/<path>`, an MLflow artifact URI, or `upload`).
    pub source: String,
    /// `READY` once its files are in place.
    pub status: String,
    /// MLflow's legacy stage (`None`, `Staging`, `Production`, `Archived`).
    pub stage: String,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Training dataset `name:version`, when known.
    pub dataset: Option<String>,
    /// The training job's internal key, when known (see `job` for its public id).
    pub job_id: Option<i64>,
    /// The training job's public id, when known.
    pub job: Option<String>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl ModelVersion {
    /// The canonical reference, `models:/name/version`.
    pub fn uri(&self) -> String {
        format!("models:/{}/{}", self.name, self.version)
    }
}

/// Which version a reference selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A version number.
    Version(i64),
    /// The version an alias points at.
    Alias(String),
    /// The highest version number.
    Latest,
}

/// A reference to a model version: `models:/name/3`, `models:/name@champion`,
/// `models:/name/latest`, with or without the `models:/` prefix; a bare name means latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// Registered model name.
    pub name: String,
    /// The version selected.
    pub selector: Selector,
}

impl ModelRef {
    /// Parses a reference (see the type's documentation for the forms).
    pub fn parse(s: &str) -> DomainResult<Self> {
        let bad = |why: &str| {
            DomainError::invalid(format!(
                "invalid model reference '{s}': {why}; use models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest"
            ))
        };
        let rest = s.strip_prefix("models:/").unwrap_or(s);
        let (name, selector) = if let Some((name, alias)) = rest.split_once('@') {
            check_alias(alias).map_err(|e| bad(&e.to_string()))?;
            (name, Selector::Alias(alias.to_string()))
        } else if let Some((name, v)) = rest.split_once('/') {
            let sel = if v.eq_ignore_ascii_case("latest") {
                Selector::Latest
            } else {
                Selector::Version(
                    parse_version(v)
                        .map_err(|_| bad("the version must be a positive integer or 'latest'"))?,
                )
            };
            (name, sel)
        } else {
            (rest, Selector::Latest)
        };
        if name.is_empty() {
            return Err(bad("the model name is empty"));
        }
        check_model_name(name).map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            selector,
        })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Version(v) => write!(f, "models:/{}/{v}", self.name),
            Selector::Alias(a) => write!(f, "models:/{}@{a}", self.name),
            Selector::Latest => write!(f, "models:/{}/latest", self.name),
        }
    }
}

/// Parses a version number (a positive integer).
pub fn parse_version(v: &str) -> DomainResult<i64> {
    v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        DomainError::invalid(format!(
            "model version must be a positive integer, got '{v}'"
        ))
    })
}

/// Checks a registered model name: 1–256 characters of letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit (so it fits in URLs and `models:/` references).
pub fn check_model_name(name: &str) -> DomainResult<()> {
    if name.trim().is_empty() {
        return Err(DomainError::invalid(
            "Missing value for required parameter 'name'.",
        ));
    }
    // MLflow's rule (no '/' or ':'), plus '@' (it separates an alias in models:/NAME@ALIAS) and
    // control characters; spaces and other punctuation are allowed, as in MLflow
    let bad = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '@' | '\\') || c.is_control());
    if let Some(c) = bad {
        return Err(DomainError::invalid(format!(
            "Invalid model name '{name}'. Names cannot contain '/', ':', '@', '\\' or control characters (found {c:?})."
        )));
    }
    if name.chars().count() > MAX_MODEL_NAME_LEN || name == "." || name == ".." {
        return Err(DomainError::invalid(format!(
            "Invalid model name '{name}': use at most {MAX_MODEL_NAME_LEN} characters, not '.' or '..'"
        )));
    }
    Ok(())
}

/// Checks an alias: 1–255 letters, digits, `-`, `_`, starting with a letter; `latest` and
/// version-like names (`v3`) are reserved, as in MLflow.
pub fn check_alias(alias: &str) -> DomainResult<()> {
    let chars_ok = !alias.is_empty()
        && alias.len() <= MAX_ALIAS_LEN
        && alias.as_bytes()[0].is_ascii_alphabetic()
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !chars_ok {
        return Err(DomainError::invalid(format!(
            "invalid alias '{alias}': use 1-{MAX_ALIAS_LEN} letters, digits, '-' and '_', starting with a letter"
        )));
    }
    let lower = alias.to_ascii_lowercase();
    if lower == "latest" {
        return Err(DomainError::invalid(
            "the alias 'latest' is reserved: models:/NAME/latest always means the highest version",
        ));
    }
    if lower.len() > 1 && lower.starts_with('v') && lower[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(format!(
            "the alias '{alias}' is reserved: it reads as a version number"
        )));
    }
    Ok(())
}

/// Where the files of a version to register come from, as its source names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// A run's artifact directory (`runs:/<run>/<path>`, or the run's `mlflow-artifacts:` URI).
    Run {
        /// The run's id.
        run_id: String,
        /// The directory inside the run.
        path: String,
    },
    /// An MLflow logged model (`models:/m-...`, or its `mlflow-artifacts:` URI).
    LoggedModel {
        /// The model's id.
        model_id: String,
        /// A directory inside the model (empty: all of it).
        path: String,
    },
    /// Another registered version (`models:/NAME/VERSION`, `models:/NAME@ALIAS`).
    Version(ModelRef),
    /// A URI outside this server (s3:, gs:, http:, a local path): recorded, no files held.
    External,
    /// A local path (no scheme, or file:): external, allowed only inside a run's own local
    /// artifact directory.
    Local,
}

fn invalid_source(source: &str, id: &str) -> DomainError {
    DomainError::invalid(format!(
        "Invalid model version source: '{source}'. The {id} request parameter must identify the resource that contains the source."
    ))
}

/// Percent-decodes repeatedly (`%252e` → `%2e` → `.`), as MLflow does before its checks.
fn unquote_all(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut cur = s.to_string();
    for _ in 0..8 {
        let b = cur.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
            {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// Classifies a version source and refuses the ones MLflow refuses (relative path references,
/// hosts in `runs:`/`models:` URIs, `mlflow-artifacts:` URIs that name no run or model).
pub fn classify_source(source: &str) -> DomainResult<VersionSource> {
    let relative = || {
        DomainError::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
        ))
    };
    let decoded = unquote_all(source);
    if decoded.contains('\0') || decoded.split('/').any(|s| s == "..") {
        return Err(relative());
    }
    let scheme = decoded
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| {
            s.len() > 1
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        })
        .map(str::to_ascii_lowercase);
    let Some(scheme) = scheme else {
        return Ok(VersionSource::Local);
    };
    let rest = &decoded[scheme.len() + 1..];
    // the path after an optional `//authority`
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => r.split_once('/').unwrap_or((r, "")),
        None => ("", rest),
    };
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    match scheme.as_str() {
        "file" => Ok(VersionSource::Local),
        "runs" => {
            if !authority.is_empty() {
                return Err(invalid_source(source, "run_id"));
            }
            let (run, rest) = segments
                .split_first()
                .ok_or_else(|| invalid_source(source, "run_id"))?;
            Ok(VersionSource::Run {
                run_id: run.to_string(),
                path: rest.join("/"),
            })
        }
        "models" => {
            if !authority.is_empty() {
                return Err(invalid_source(source, "model_id"));
            }
            match segments.first() {
                Some(m) if super::logged_model::is_model_id(m) => Ok(VersionSource::LoggedModel {
                    model_id: m.to_string(),
                    path: segments[1..].join("/"),
                }),
                _ => ModelRef::parse(source)
                    .map(VersionSource::Version)
                    .map_err(|_| invalid_source(source, "model_id")),
            }
        }
        "mlflow-artifacts" => match segments.as_slice() {
            [_exp, "models", m, "artifacts", rest @ ..] if super::logged_model::is_model_id(m) => {
                Ok(VersionSource::LoggedModel {
                    model_id: m.to_string(),
                    path: rest.join("/"),
                })
            }
            [_exp, run, "artifacts", rest @ ..] => Ok(VersionSource::Run {
                run_id: run.to_string(),
                path: rest.join("/"),
            }),
            _ => Err(invalid_source(source, "run_id")),
        },
        _ => Ok(VersionSource::External),
    }
}

/// Checks a description's length.
pub fn check_description(d: &str) -> DomainResult<()> {
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(DomainError::invalid(format!(
            "description is longer than {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    Ok(())
}

/// The canonical spelling of a legacy MLflow stage (any case).
pub fn canonical_stage(stage: &str) -> DomainResult<&'static str> {
    STAGES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stage))
        .copied()
        .ok_or_else(|| {
            DomainError::invalid(format!(
                "invalid stage '{stage}': expected one of None, Staging, Production, Archived"
            ))
        })
}

/// Attributes of a registered model usable in search filters and order_by.
pub fn model_attribute(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "name" => "name",
        "creation_timestamp" | "creation_time" => "creation_time",
        "last_updated_timestamp" | "last_update_time" => "last_update_time",
        _ => return None,
    })
}

/// Attributes of a model version usable in search filters and order_by.
pub fn version_attribute(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "name" => "name",
        "version_number" | "version" => "version_number",
        "run_id" => "run_id",
        "source_path" | "source" => "source",
        "current_stage" | "stage" => "current_stage",
        "status" => "status",
        "creation_timestamp" | "creation_time" => "creation_time",
        "last_updated_timestamp" | "last_update_time" => "last_update_time",
        _ => return None,
    })
}

/// A value an object offers to a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// Absent.
    Null,
}

/// Evaluates a parsed filter against one object, given its attributes and tags.
pub fn eval_filter(
    e: &Expr,
    attr: &dyn Fn(&str) -> Field,
    tags: &BTreeMap<String, String>,
) -> bool {
    match e {
        Expr::And(all) => all.iter().all(|x| eval_filter(x, attr, tags)),
        Expr::Or(any) => any.iter().any(|x| eval_filter(x, attr, tags)),
        Expr::Cmp(c) => eval_cmp(c, attr, tags),
    }
}

fn eval_cmp(c: &Comparison, attr: &dyn Fn(&str) -> Field, tags: &BTreeMap<String, String>) -> bool {
    use super::filter::Entity;
    let field = match c.entity {
        Entity::Tag => tags
            .get(&c.key)
            .map(|v| Field::Text(v.clone()))
            .unwrap_or(Field::Null),
        Entity::Attribute => attr(&c.key),
        Entity::Metric | Entity::Param | Entity::Dataset => Field::Null,
    };
    field_matches(c, &field)
}

/// Whether a field's value satisfies a comparison: text against text, numbers against numbers
/// (a numeric text compared with a number counts as that number); an absent tag differs from
/// every value (MLflow's client filters prompts out of model searches with
/// `tag.mlflow.prompt.is_prompt != 'true'`), other absent fields match only `IS NULL`.
pub fn field_matches(c: &Comparison, field: &Field) -> bool {
    use super::filter::Entity;
    match (c.op, &c.value, field) {
        (Op::IsNull, _, f) => *f == Field::Null,
        (Op::IsNotNull, _, f) => *f != Field::Null,
        (Op::Ne | Op::NotIn, _, Field::Null) => c.entity == Entity::Tag,
        (_, _, Field::Null) => false,
        (Op::In, Value::List(l), Field::Text(t)) => l.contains(t),
        (Op::NotIn, Value::List(l), Field::Text(t)) => !l.contains(t),
        (Op::Like, Value::Text(p), Field::Text(t)) => like(p, t, false),
        (Op::ILike, Value::Text(p), Field::Text(t)) => like(p, t, true),
        (op, Value::Text(v), Field::Text(t)) => compare(op, t.as_str().cmp(v.as_str())),
        (op, Value::Number(v), Field::Number(n)) => {
            n.partial_cmp(v).is_some_and(|o| compare(op, o))
        }
        (op, Value::Text(v), Field::Number(n)) => v
            .parse::<f64>()
            .ok()
            .and_then(|v| n.partial_cmp(&v))
            .is_some_and(|o| compare(op, o)),
        _ => false,
    }
}

fn compare(op: Op, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => o == Equal,
        Op::Ne => o != Equal,
        Op::Lt => o == Less,
        Op::Le => o != Greater,
        Op::Gt => o == Greater,
        Op::Ge => o != Less,
        _ => false,
    }
}

/// SQL LIKE: `%` any run, `_` one character.
pub fn like(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // iterative matcher with backtracking to the last '%'
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::filter::{Entity, parse};

    #[test]
    fn model_refs_parse() {
        let r = ModelRef::parse("models:/iris/3").unwrap();
        assert_eq!(r.name, "iris");
        assert_eq!(r.selector, Selector::Version(3));
        assert_eq!(
            ModelRef::parse("models:/iris@champion").unwrap().selector,
            Selector::Alias("champion".into())
        );
        assert_eq!(
            ModelRef::parse("models:/iris/latest").unwrap().selector,
            Selector::Latest
        );
        assert_eq!(
            ModelRef::parse("iris/7").unwrap().selector,
            Selector::Version(7)
        );
        assert_eq!(
            ModelRef::parse("iris@prod-2").unwrap(),
            ModelRef {
                name: "iris".into(),
                selector: Selector::Alias("prod-2".into())
            }
        );
        assert_eq!(ModelRef::parse("iris").unwrap().selector, Selector::Latest);
        assert_eq!(
            ModelRef::parse("models:/iris@champion")
                .unwrap()
                .to_string(),
            "models:/iris@champion"
        );
        for bad in [
            "",
            "models:/",
            "models:/iris/0",
            "models:/iris/-1",
            "models:/iris/abc",
            "models:/iris@",
            "models:/iris@latest",
            "models:/@champion",
            "models:/a/b/c",
            "models:/ir:is/1",
        ] {
            let e = ModelRef::parse(bad).unwrap_err();
            assert!(matches!(e, DomainError::InvalidArgument(_)), "{bad}: {e:?}");
            assert!(
                e.to_string().contains("invalid model reference"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn names_and_aliases() {
        assert!(check_model_name("iris-clf_v2.1").is_ok());
        assert!(check_model_name("Update RM 2").is_ok());
        assert!(check_model_name(" ").is_err());
        assert!(check_model_name("a:b").is_err());
        assert!(check_model_name("a@b").is_err());
        assert!(check_model_name("a/b").is_err());
        assert!(check_model_name(&"a".repeat(257)).is_err());
        assert!(check_alias("champion").is_ok());
        assert!(check_alias("Latest").is_err());
        assert!(check_alias("v3").is_err());
        assert!(check_alias("v").is_ok());
        assert!(check_alias("3").is_err());
        assert!(check_alias("a b").is_err());
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert!(canonical_stage("Live").is_err());
    }

    #[test]
    fn version_sources() {
        let run = "0123456789abcdef0123456789abcdef";
        let m = "m-0123456789abcdef0123456789abcdef";
        let r = |p: &str| VersionSource::Run {
            run_id: run.to_string(),
            path: p.to_string(),
        };
        assert_eq!(
            classify_source(&format!("runs:/{run}/model")).unwrap(),
            r("model")
        );
        assert_eq!(
            classify_source(&format!("mlflow-artifacts:/1/{run}/artifacts/model/")).unwrap(),
            r("model")
        );
        assert_eq!(
            classify_source(&format!(
                "mlflow-artifacts://h:5000/1/{run}/artifacts/m/./x"
            ))
            .unwrap(),
            r("m/x")
        );
        assert_eq!(
            classify_source(&format!("models:/{m}")).unwrap(),
            VersionSource::LoggedModel {
                model_id: m.to_string(),
                path: String::new()
            }
        );
        assert_eq!(
            classify_source(&format!("mlflow-artifacts:/2/models/{m}/artifacts")).unwrap(),
            VersionSource::LoggedModel {
                model_id: m.to_string(),
                path: String::new()
            }
        );
        assert!(matches!(
            classify_source("models:/wine/3").unwrap(),
            VersionSource::Version(_)
        ));
        assert_eq!(
            classify_source("s3://bucket/model").unwrap(),
            VersionSource::External
        );
        assert_eq!(classify_source("/tmp/model").unwrap(), VersionSource::Local);
        assert_eq!(
            classify_source("file:///tmp/model").unwrap(),
            VersionSource::Local
        );
        assert!(classify_source(&format!("mlflow-artifacts:/1/{run}/other/m")).is_err());
        assert!(classify_source("runs:/").is_err());
        assert!(classify_source("runs://host/x/y").is_err());
        let e = classify_source("http://host:9000/models/../../../").unwrap_err();
        assert!(
            e.to_string()
                .contains("If supplying a source as an http, https,"),
            "{e}"
        );
        assert!(classify_source("s3://b/x/%2e%2e/y").is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("iris%", "iris-clf", false));
        assert!(!like("iris%", "Iris-clf", false));
        assert!(like("iris%", "Iris-clf", true));
        assert!(like("%clf", "iris-clf", false));
        assert!(like("i_is", "iris", false));
        assert!(like("%", "", false));
        assert!(!like("a%b", "acbd", false));
        assert!(like("a%b%", "acbd", false));
    }

    #[test]
    fn filters_evaluate() {
        let e = parse(
            "name LIKE 'iris%' AND tags.team = 'a'",
            model_attribute,
            &[Entity::Tag, Entity::Attribute],
        )
        .unwrap()
        .unwrap();
        let tags: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let name = |n: &'static str| {
            move |k: &str| match k {
                "name" => Field::Text(n.to_string()),
                _ => Field::Null,
            }
        };
        assert!(eval_filter(&e, &name("iris-x"), &tags));
        assert!(!eval_filter(&e, &name("digits"), &tags));
        assert!(!eval_filter(&e, &name("iris-x"), &BTreeMap::new()));
        let not_prompt = parse(
            "name = 'iris-x' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            model_attribute,
            &[Entity::Tag, Entity::Attribute],
        )
        .unwrap()
        .unwrap();
        assert!(eval_filter(&not_prompt, &name("iris-x"), &BTreeMap::new()));
        let prompt: BTreeMap<String, String> =
            [("mlflow.prompt.is_prompt".to_string(), "true".to_string())].into();
        assert!(!eval_filter(&not_prompt, &name("iris-x"), &prompt));
        let v = parse(
            "version_number >= 2",
            version_attribute,
            &[Entity::Tag, Entity::Attribute],
        )
        .unwrap()
        .unwrap();
        let num = |n: f64| {
            move |k: &str| match k {
                "version_number" => Field::Number(n),
                _ => Field::Null,
            }
        };
        assert!(eval_filter(&v, &num(2.0), &BTreeMap::new()));
        assert!(!eval_filter(&v, &num(1.0), &BTreeMap::new()));
    }
}
