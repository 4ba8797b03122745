//! Atrium's web portal, the parts that know no HTTP, SQL or workspace service: page templates
//! (askama, compiled at build time), their view models, the embedded static files, and the
//! chart downsampling. The host's `portal` module serves them.
//!
//! Map: [`views`] page models and templates (`templates/`) · [`assets`] embedded files
//! (`assets/`, vendored htmx and uPlot) · [`fmt`] times, sizes, numbers · [`series`] min/max bucketing for charts.

pub mod assets;
pub mod fmt;
pub mod series;
pub mod views;

pub use askama::Template;
