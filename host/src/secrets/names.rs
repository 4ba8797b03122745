//! Rules for secret names and values.

use crate::workspace::{DomainError, DomainResult};

/// Largest secret value in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Longest secret name.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a secret name: 1-128 characters of letters, digits, `-`, `_` and `.`, starting with
/// a letter or digit (so it is safe in URLs, and `/` never appears in a binding).
pub fn check_name(name: &str) -> DomainResult<()> {
    if crate::workspace::validate::is_label(name, MAX_NAME_LEN, b"-_.") {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid secret name '{}': use 1-{MAX_NAME_LEN} characters of letters, digits, '-', '_' and '.', starting with a letter or digit",
            name.escape_default()
        )))
    }
}

/// Checks a value (by its size and bytes only; the message never repeats it).
pub fn check_value(value: &str) -> DomainResult<()> {
    if value.is_empty() {
        return Err(DomainError::invalid("a secret value must not be empty"));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(DomainError::invalid(format!(
            "the secret value is {} bytes; the limit is {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(DomainError::invalid(
            "a secret value must not contain NUL characters (it could not be passed as an environment variable)",
        ));
    }
    Ok(())
}

/// Checks that a secret name can be passed as an environment variable of a command job:
/// `[A-Za-z_][A-Za-z0-9_]*`, and not one of the variables the host sets itself.
pub fn check_env_name(name: &str) -> DomainResult<()> {
    let valid = !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(DomainError::invalid(format!(
            "secret '{}' cannot be passed to a command as an environment variable: use a name of letters, digits and '_' that does not start with a digit",
            name.escape_default()
        )));
    }
    if name.starts_with("MLFLOW_") || name.starts_with("ATRIUM_") {
        return Err(DomainError::invalid(format!(
            "secret '{name}' would replace a variable the host sets (MLFLOW_*, ATRIUM_*)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["db-password", "API_TOKEN", "a", "s3.key", "x1"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "ä", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_env_name("API_TOKEN").unwrap();
        check_env_name("_x").unwrap();
        for bad in [
            "db-password",
            "1X",
            "s3.key",
            "MLFLOW_RUN_ID",
            "ATRIUM_JOB_ID",
        ] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values() {
        check_value("x").unwrap();
        assert!(check_value("").is_err());
        assert!(check_value("a\0b").is_err());
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        let e = check_value(&big).unwrap_err().to_string();
        assert!(e.contains("65537 bytes") && !e.contains("xxxx"), "{e}");
        check_value(&"x".repeat(MAX_VALUE_BYTES)).unwrap();
    }
}
