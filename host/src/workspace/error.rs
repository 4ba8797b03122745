//! The error every layer below the API speaks.

/// What went wrong, classified the way clients need to react to it.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request names an object that does not exist (or is not visible).
    #[error("{0}")]
    NotFound(String),
    /// The object to create already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well-formed but a value breaks a rule.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request body could not be parsed.
    #[error("{0}")]
    Malformed(String),
    /// The operation conflicts with the object's current state.
    #[error("{0}")]
    InvalidState(String),
    /// A plugin failed while serving the request (deadline, memory cap, crash, its own error).
    #[error("{0}")]
    Plugin(String),
    /// The caller did not prove who it is (no, unknown, expired or revoked credentials).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but lacks the role the operation needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// The requested byte range lies outside the file.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// A backend the host needs is unreachable for now (the database restarting): nothing was
    /// written; the request may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of the host itself (database, filesystem).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with a [`DomainError`].
pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    /// Shorthand for an invalid argument.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }
    /// Shorthand for a missing object.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
}
