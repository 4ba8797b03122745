//! Pipeline definitions, independent of where they run. Map: `spec` (the document: inputs,
//! outputs, settings, steps), `bind` (`${{...}}` references and their substitution), `check`
//! (references, cycles, types, names → a [`check::Checked`] plan), `when` (step conditions),
//! `key` (content-addressed step cache keys and version hashes).

pub mod bind;
pub mod check;
pub mod key;
pub mod spec;
pub mod when;

pub use bind::Ref;
pub use check::{Checked, Interface, check};
pub use spec::{PipelineSpec, Settings, Step, StepKind, Type};

/// Why a pipeline spec, an input or a reference is refused; the message names the step and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl SpecError {
    /// An error with this message.
    pub fn new(m: impl Into<String>) -> Self {
        Self(m.into())
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, SpecError>;
