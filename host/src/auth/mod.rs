//! Access control: users, API tokens, roles per workspace, route policies, the audit log.
//!
//! Every HTTP route carries a [`Policy`]; the API layer resolves the caller's [`Principal`]
//! from its credentials and checks the policy before the handler runs. Verified tokens and roles
//! are cached in memory under the store's access epoch (`cache`).

pub mod audit;
pub mod bootstrap;
mod cache;
mod policy;
mod service;
pub mod token;

pub use audit::{AuditEntry, AuditFilter, NewAuditEntry};
pub use policy::Policy;
pub use service::{Access, Identity, JOBS_USER, NewToken, TokenInfo, User};

use serde::{Deserialize, Serialize};

use crate::workspace::DomainError;

/// A role on one workspace; each includes the ones below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Role {
    /// Read everything in the workspace.
    Reader,
    /// Create and change everything except role assignments.
    Contributor,
    /// Everything, role assignments and deleting the workspace included.
    Owner,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "Reader",
            Role::Contributor => "Contributor",
            Role::Owner => "Owner",
        }
    }

    /// Parses a role name (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "reader" => Ok(Role::Reader),
            "contributor" => Ok(Role::Contributor),
            "owner" => Ok(Role::Owner),
            _ => Err(DomainError::invalid(format!(
                "unknown role '{s}': use Owner, Contributor or Reader"
            ))),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials (allowed only on public routes and anonymous-read workspaces).
    Anonymous,
    /// A user, through one of their tokens.
    User(Identity),
}

impl Principal {
    /// The name recorded in the audit log.
    pub fn actor(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::User(i) => &i.user,
        }
    }

    /// The identity, if any.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Principal::Anonymous => None,
            Principal::User(i) => Some(i),
        }
    }
}

/// Checks a user name: 1-64 characters of letters, digits, '-', '_', '.', '@'.
pub fn check_user_name(name: &str) -> Result<(), DomainError> {
    if crate::workspace::validate::is_label(name, 64, b"-_.@") {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid user name '{name}': use 1-64 letters, digits, '-', '_', '.', '@', starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Owner > Role::Contributor && Role::Contributor > Role::Reader);
        assert_eq!(Role::parse("contributor").unwrap(), Role::Contributor);
        assert_eq!(Role::parse("Owner").unwrap(), Role::Owner);
        assert!(Role::parse("admin").is_err());
        assert!(check_user_name("ann.lee@x").is_ok());
        assert!(check_user_name("-x").is_err());
        assert!(check_user_name("a b").is_err());
    }
}
