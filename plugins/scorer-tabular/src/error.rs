//! Errors of the scorer's pure logic, mapped to `plugin-error` at the component boundary.

use std::fmt;

/// What went wrong, with the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad request or a bad config (the host answers 400).
    Invalid(String),
    /// An unsupported content type (the host answers 415).
    Unsupported(String),
    /// A bug or a model that broke its contract (the host answers 500).
    Internal(String),
}

impl Error {
    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Invalid(m) | Error::Unsupported(m) | Error::Internal(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// `Err(Error::Invalid(format!(...)))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => {
        Err($crate::error::Error::Invalid(format!($($arg)*)))
    };
}

/// A JSON value shown in an error message: its JSON text, cut after 60 characters.
pub fn show(v: &serde_json::Value) -> String {
    cut(v.to_string())
}

/// A text value shown in an error message, quoted like JSON, cut after 60 characters.
pub fn show_text(s: &str) -> String {
    cut(serde_json::Value::from(s).to_string())
}

fn cut(mut s: String) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let end = s.char_indices().nth(MAX).map(|(i, _)| i).unwrap_or(s.len());
        s.truncate(end);
        s.push('…');
    }
    s
}
