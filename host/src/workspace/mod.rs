//! Domain types and rules of a workspace: no I/O, no HTTP, no SQL.

pub mod dataset;
pub mod endpoint;
pub mod error;
pub mod filter;
pub mod metric;
pub mod model;
pub mod registry;
pub mod validate;

pub use error::{DomainError, DomainResult};
pub use model::*;
