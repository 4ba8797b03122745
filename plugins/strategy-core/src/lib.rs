//! Shared logic of Atrium's AutoML plugins (the built-in samplers `sampler-random`,
//! `sampler-grid`, `sampler-tpe` and the stoppers `stop-bandit`, `stop-median`,
//! `stop-truncation`, `stop-asha`), usable by uploaded plugins as well.
//!
//! Everything except [`guest`] is plain Rust with no host calls, so it runs (and is tested)
//! natively:
//!
//! - [`rng`]: a small seeded generator (xoshiro256** seeded by splitmix64) whose state is data.
//! - [`dist`]: the standard normal CDF / inverse CDF and truncated-normal sampling.
//! - [`space`]: search-space dimensions (the eight kinds of the WIT `dimension` record), their
//!   validation and their inverse-CDF maps from the unit interval.
//! - [`sobol`]: Sobol points (Joe–Kuo direction numbers, 64 dimensions) with a digital shift.
//! - [`options`]: typed sampler options (`list<(string, param-value)>`), unknown names refused.
//! - [`study`]: a sampler study engine (trial ids, observations, snapshot / restore) around a
//!   [`study::Strategy`] that only decides the next point.
//! - [`traces`]: stopper helpers: per-trial metric traces, "best up to step", option JSON,
//!   the evaluation schedule, and a replay harness for tests.
//! - [`guest`]: the glue that exports a [`study::Strategy`] as the `sampler` interface.

pub mod dist;
pub mod guest;
pub mod options;
pub mod rng;
pub mod sobol;
pub mod space;
pub mod study;
pub mod testing;
pub mod traces;

/// Why a sampler refused a request; maps onto the WIT `plugin-error` of the same names.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    InvalidArgument(String),
    Unsupported(String),
}

impl Error {
    /// The message, whatever the variant.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m) | Error::Unsupported(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

/// `Err(Error::InvalidArgument(format!(...)))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { Err($crate::Error::InvalidArgument(format!($($arg)*))) };
}
