//! Atrium's schedule time logic, pure (every function takes `now`): [`cron`] parses cron
//! expressions, [`recurrence`] holds Azure ML style recurrences, [`schedule`] compiles a
//! trigger in a time zone (with DST rules) into ticks, [`catchup`] plans which ticks to run
//! after downtime and names the overlap policies.

#![warn(missing_docs)]

pub mod catchup;
mod civil;
pub mod cron;
pub mod recurrence;
pub mod schedule;

pub use catchup::{Catchup, DEFAULT_MAX_CATCHUP_RUNS, Due, Overlap, due};
pub use cron::{CronError, CronExpr};
pub use jiff::{SignedDuration, Timestamp};
pub use recurrence::{Frequency, RecurrenceSchedule, Weekday};
pub use schedule::{Compiled, MAX_COUNTED_TICKS, Schedule, ScheduleError, Trigger};

#[cfg(test)]
mod tests;
