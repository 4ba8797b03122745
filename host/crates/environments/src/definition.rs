//! What an environment is: a Python version constraint plus requirements, checked and
//! normalised, with a content hash that names its virtualenv on every machine.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::EnvError;

/// Requirements one environment may list.
pub const MAX_REQUIREMENTS: usize = 500;
/// Longest requirement line.
const MAX_LINE: usize = 1000;

/// A checked environment definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// A Python version request for uv (`>=3.11`, `3.12`, ...); `None`: the first Python found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// PEP 508 requirements, as written (trimmed), one per entry.
    #[serde(default)]
    pub requirements: Vec<String>,
}

impl Definition {
    /// Checks and normalises a definition: a well-formed Python request and requirement lines
    /// (no pip options, no blank entries, at most [`MAX_REQUIREMENTS`]).
    pub fn new(python: Option<String>, requirements: Vec<String>) -> Result<Self, EnvError> {
        let python = python
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
        if let Some(p) = &python {
            check_python(p)?;
        }
        if requirements.len() > MAX_REQUIREMENTS {
            return Err(EnvError::Invalid(format!(
                "an environment lists at most {MAX_REQUIREMENTS} requirements, got {}",
                requirements.len()
            )));
        }
        let mut reqs = Vec::with_capacity(requirements.len());
        for (i, r) in requirements.iter().enumerate() {
            let r = r.trim();
            check_requirement(r).map_err(|e| {
                EnvError::Invalid(format!("requirement {} ('{}'): {e}", i + 1, clip(r)))
            })?;
            if !reqs.iter().any(|x: &String| x == r) {
                reqs.push(r.to_string());
            }
        }
        Ok(Self {
            python,
            requirements: reqs,
        })
    }

    /// The content hash (sha256, hex) of what the virtualenv is built from: the Python request
    /// and the set of requirements (their order does not matter to the resolver, so it does
    /// not matter here either).
    pub fn hash(&self) -> String {
        let mut reqs: Vec<&str> = self.requirements.iter().map(String::as_str).collect();
        reqs.sort_unstable();
        let mut h = Sha256::new();
        h.update(b"atrium-environment/1\n");
        h.update(b"python=");
        h.update(self.python.as_deref().unwrap_or("").as_bytes());
        h.update(b"\n");
        for r in reqs {
            h.update(b"requirement=");
            h.update(r.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

fn check_python(p: &str) -> Result<(), EnvError> {
    let ok = p.len() <= 64
        && p.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '.' | '<' | '>' | '=' | '!' | '~' | ',' | '*' | ' ' | '-' | '+'
                )
        })
        && p.chars().any(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(EnvError::Invalid(format!(
            "python must be a version or a version constraint such as \">=3.11\" or \"3.12\", got '{}'",
            clip(p)
        )))
    }
}

fn check_requirement(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("a requirement must not be empty".into());
    }
    if r.len() > MAX_LINE {
        return Err(format!("longer than {MAX_LINE} characters"));
    }
    if r.chars().any(|c| c.is_control()) {
        return Err("contains a control character (one requirement per entry)".into());
    }
    if r.starts_with('-') {
        return Err(
            "pip options (-r, -e, --index-url, ...) are not requirements; list packages only"
                .into(),
        );
    }
    if !r.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("a requirement starts with a package name".into());
    }
    Ok(())
}

/// The requirements of a `requirements.txt`: one per line, `#` comments and blank lines
/// skipped, a trailing `\` joining lines; pip options are refused with their line number.
pub fn requirements_txt(text: &str) -> Result<Vec<String>, EnvError> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut first_line = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            first_line = i + 1;
        }
        let line = match raw.find(" #").or_else(|| raw.starts_with('#').then_some(0)) {
            Some(at) => &raw[..at],
            None => raw,
        };
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head.trim());
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let req = std::mem::take(&mut pending);
        let req = req.trim();
        if req.is_empty() {
            continue;
        }
        check_requirement(req)
            .map_err(|e| EnvError::Invalid(format!("requirements.txt line {first_line}: {e}")))?;
        out.push(req.to_string());
    }
    Ok(out)
}

/// `requires-python` and `dependencies` of a `pyproject.toml`'s `[project]` table.
pub fn pyproject(text: &str) -> Result<(Option<String>, Vec<String>), EnvError> {
    #[derive(Deserialize)]
    struct File {
        project: Option<Project>,
    }
    #[derive(Deserialize)]
    struct Project {
        #[serde(rename = "requires-python")]
        requires_python: Option<String>,
        #[serde(default)]
        dependencies: Vec<String>,
    }
    let f: File = toml::from_str(text)
        .map_err(|e| EnvError::Invalid(format!("pyproject.toml does not parse: {e}")))?;
    let p = f.project.ok_or_else(|| {
        EnvError::Invalid("pyproject.toml has no [project] table (PEP 621)".into())
    })?;
    Ok((p.requires_python, p.dependencies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_order_and_duplicates_but_not_content() {
        let a = Definition::new(Some(">=3.11".into()), vec!["b==1".into(), "a==2".into()]).unwrap();
        let b = Definition::new(
            Some(" >=3.11 ".into()),
            vec!["a==2".into(), " b==1".into(), "a==2".into()],
        )
        .unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(b.requirements, vec!["a==2", "b==1"]);
        let c = Definition::new(Some(">=3.12".into()), vec!["a==2".into(), "b==1".into()]).unwrap();
        assert_ne!(a.hash(), c.hash());
        let d = Definition::new(None, vec!["a==2".into(), "b==1".into()]).unwrap();
        assert_ne!(a.hash(), d.hash());
    }

    #[test]
    fn bad_definitions_are_refused_precisely() {
        for (py, reqs, needle) in [
            (Some("python3; rm -rf /"), vec![], "python must be"),
            (Some("latest"), vec![], "python must be"),
            (None, vec!["-e ."], "requirement 1 ('-e .'): pip options"),
            (
                None,
                vec!["numpy", ""],
                "requirement 2 (''): a requirement must not be empty",
            ),
            (None, vec!["a\nb"], "control character"),
            (None, vec!["==1.0"], "starts with a package name"),
        ] {
            let e = Definition::new(
                py.map(String::from),
                reqs.into_iter().map(String::from).collect(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(needle), "{e}");
        }
        let many = (0..=MAX_REQUIREMENTS).map(|i| format!("p{i}")).collect();
        assert!(
            Definition::new(None, many)
                .unwrap_err()
                .to_string()
                .contains("at most 500")
        );
    }

    #[test]
    fn requirements_files() {
        let txt = "# pinned\nnumpy==2.1.0  # math\n\npandas>=2 ; python_version > '3.9'\nscikit-learn\\\n  ==1.5\n";
        assert_eq!(
            requirements_txt(txt).unwrap(),
            vec![
                "numpy==2.1.0",
                "pandas>=2 ; python_version > '3.9'",
                "scikit-learn ==1.5"
            ]
        );
        let e = requirements_txt("numpy\n--index-url http://x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("pip options"), "{e}");
        let (py, deps) = pyproject(
            "[project]\nname = \"x\"\nrequires-python = \">=3.10\"\ndependencies = [\"mlflow-skinny==3.17.2\"]\n",
        )
        .unwrap();
        assert_eq!(py.as_deref(), Some(">=3.10"));
        assert_eq!(deps, vec!["mlflow-skinny==3.17.2"]);
        assert!(
            pyproject("[tool.x]\n")
                .unwrap_err()
                .to_string()
                .contains("[project]")
        );
        assert!(
            pyproject("[project\n")
                .unwrap_err()
                .to_string()
                .contains("does not parse")
        );
    }
}
