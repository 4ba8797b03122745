//! Domain types and rules of a workspace: no I/O, no HTTP, no SQL.

pub mod dataset;
pub mod endpoint;
pub mod error;
pub mod filter;
pub mod logged_model;
pub mod metric;
pub mod model;
pub mod registry;
pub mod run_io;
pub mod validate;

pub use error::{DomainError, DomainResult};
pub use model::*;
