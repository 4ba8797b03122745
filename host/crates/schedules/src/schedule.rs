//! Triggers and schedules as configured, compiled against a time zone into something that
//! answers "when is the next tick?".
//!
//! # Time zones and DST
//!
//! Cron expressions and day, week and month recurrences name local times in the schedule's
//! time zone; minute and hour recurrences count absolute time. Around DST transitions local
//! times follow Dagster's rules:
//!
//! - A local time that does not exist (the spring-forward gap) fires at the next local time
//!   that exists, the end of the gap: `30 2 * * *` in America/New_York fires at 03:00 EDT on
//!   the spring-forward day. All the schedule's times inside one gap fire once, together.
//! - A local time that occurs twice (the fall-back fold) fires once, at its second occurrence
//!   (the later instant): `30 1 * * *` fires at 01:30 EST, not at 01:30 EDT.
//! - Schedules that fire every hour (an hour field covering all 24 hours, such as `*` or
//!   `*/1`) keep running hourly in absolute time instead: they fire in both repeated hours of
//!   a fold and have no tick in a gap (`30 * * * *` fires at 01:30 EST and then 03:30 EDT).

use std::collections::VecDeque;
use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::civil::{SECS_PER_DAY, civil_from_days, weekday_mon0};
use crate::cron::{CronError, CronExpr};
use crate::recurrence::{Frequency, LocalRecurrence, RecurrenceSchedule, Unit, Weekday};

/// The most ticks [`Compiled::count_between`] counts; larger counts saturate at it.
pub const MAX_COUNTED_TICKS: u64 = 1_000_000;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// A five-field cron expression (`minute hour day-of-month month day-of-week`) or a macro
    /// such as `@daily`, in the schedule's time zone.
    Cron {
        /// The expression, e.g. `0 2 * * *`.
        expression: String,
    },
    /// Every `interval` units of `frequency`, counted from the start time (Azure ML style).
    Recurrence {
        /// The unit counted in.
        frequency: Frequency,
        /// How many units between ticks (at least 1).
        #[serde(default = "default_interval")]
        interval: u32,
        /// Hours, minutes, weekdays or days of the month pinned (day, week and month only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<RecurrenceSchedule>,
    },
}

fn default_interval() -> u32 {
    1
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

fn is_utc(name: &str) -> bool {
    name == "UTC"
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Cron { expression } => write!(f, "cron \"{expression}\""),
            Trigger::Recurrence {
                frequency,
                interval,
                schedule,
            } => {
                if *interval == 1 {
                    write!(f, "every {frequency}")?;
                } else {
                    write!(f, "every {interval} {frequency}s")?;
                }
                let Some(schedule) = schedule else {
                    return Ok(());
                };
                if !schedule.week_days.is_empty() {
                    write!(f, " on {}", join(&schedule.week_days))?;
                }
                if !schedule.month_days.is_empty() {
                    write!(f, " on day {}", join(&schedule.month_days))?;
                }
                let (hours, minutes) = (&schedule.hours, &schedule.minutes);
                if !hours.is_empty() && !minutes.is_empty() && hours.len() * minutes.len() <= 6 {
                    let mut times = Vec::new();
                    for hour in hours {
                        for minute in minutes {
                            times.push(format!("{hour:02}:{minute:02}"));
                        }
                    }
                    write!(f, " at {}", times.join(", "))?;
                } else {
                    if !hours.is_empty() {
                        write!(f, " at hour {}", join(hours))?;
                    }
                    if !minutes.is_empty() {
                        write!(f, " at minute {}", join(minutes))?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Trigger {
    /// A short human line, e.g. `cron "0 2 * * *"` or `every 2 weeks on monday at 09:15`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

/// A trigger in a time zone, optionally bounded by a start and an end time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// When it fires.
    pub trigger: Trigger,
    /// The IANA time zone the trigger's local times are in (default `UTC`).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// No tick before this; also a recurrence's anchor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// No tick after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.trigger, self.time_zone)?;
        if let Some(start) = self.start_time {
            write!(f, " from {start}")?;
        }
        if let Some(end) = self.end_time {
            write!(f, " until {end}")?;
        }
        Ok(())
    }
}

/// Why a schedule does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is invalid.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// The time zone is not in the tz database.
    #[error("unknown time zone '{0}': use an IANA name such as Europe/Berlin or UTC")]
    UnknownTimeZone(String),
    /// `end_time` is earlier than `start_time`.
    #[error("end_time {end} is before start_time {start}")]
    EndBeforeStart {
        /// The start time.
        start: Timestamp,
        /// The end time.
        end: Timestamp,
    },
    /// A recurrence with interval 0.
    #[error("recurrence interval must be at least 1")]
    ZeroInterval,
    /// A pinned hour, minute or day of the month out of its range.
    #[error("recurrence schedule {field}: {value} is out of range {min}-{max}")]
    OutOfRange {
        /// `hours`, `minutes` or `month_days`.
        field: &'static str,
        /// The value given.
        value: u8,
        /// The smallest allowed value.
        min: u8,
        /// The largest allowed value.
        max: u8,
    },
    /// A schedule list given for a frequency it does not apply to.
    #[error(
        "recurrence schedule {field} does not apply to frequency '{frequency}' (only to {only})"
    )]
    NotApplicable {
        /// The list, e.g. `week_days`.
        field: &'static str,
        /// The recurrence's frequency.
        frequency: Frequency,
        /// The frequencies it applies to.
        only: &'static str,
    },
    /// A valid recurrence that never reaches one of its days (e.g. day 31 every 12 months
    /// from April).
    #[error("recurrence never fires: {0}")]
    NeverFires(String),
}

/// What a compiled schedule searches.
#[derive(Debug, Clone)]
enum Rule {
    /// Local times in the time zone, with the DST rules of the module.
    Local { local: Local, every_hour: bool },
    /// Absolute instants `anchor + k * period`, `k >= 0` (seconds).
    Fixed { anchor: i64, period: i64 },
}

/// A rule on local civil time.
#[derive(Debug, Clone)]
enum Local {
    Cron(CronExpr),
    Recurrence(LocalRecurrence),
}

impl Local {
    fn next_local(&self, after: i64) -> Option<i64> {
        match self {
            Local::Cron(cron) => cron.next_local(after),
            Local::Recurrence(recurrence) => recurrence.next_local(after),
        }
    }
}

/// A validated schedule bound to its time zone: the ticks it fires at.
#[derive(Debug, Clone)]
pub struct Compiled {
    tz: TimeZone,
    rule: Rule,
    /// No tick before this (seconds, inclusive).
    first: Option<i64>,
    /// No tick after this (seconds, inclusive).
    last: Option<i64>,
}

/// Whole seconds at or below `t`.
fn floor_second(t: Timestamp) -> i64 {
    let s = t.as_second();
    if t.subsec_nanosecond() < 0 { s - 1 } else { s }
}

/// Whole seconds at or above `t`.
fn ceil_second(t: Timestamp) -> i64 {
    let s = t.as_second();
    if t.subsec_nanosecond() > 0 { s + 1 } else { s }
}

fn check_range(field: &'static str, values: &[u8], min: u8, max: u8) -> Result<(), ScheduleError> {
    match values.iter().find(|v| **v < min || **v > max) {
        Some(value) => Err(ScheduleError::OutOfRange {
            field,
            value: *value,
            min,
            max,
        }),
        None => Ok(()),
    }
}

impl Schedule {
    /// A schedule of `trigger` in UTC, unbounded.
    pub fn new(trigger: Trigger) -> Self {
        Schedule {
            trigger,
            time_zone: default_time_zone(),
            start_time: None,
            end_time: None,
        }
    }

    /// A short human line, e.g. `cron "0 2 * * *" (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// Validates the schedule and binds it to its time zone. `anchor` is the instant a
    /// recurrence counts from when it has no `start_time` (when the schedule was created or
    /// enabled); it is rounded up to a whole minute and no recurrence tick precedes it. Cron
    /// triggers ignore it.
    pub fn compile(&self, anchor: Timestamp) -> Result<Compiled, ScheduleError> {
        let tz = if is_utc(&self.time_zone) {
            TimeZone::UTC
        } else {
            TimeZone::get(&self.time_zone)
                .map_err(|_| ScheduleError::UnknownTimeZone(self.time_zone.clone()))?
        };
        if let (Some(start), Some(end)) = (self.start_time, self.end_time)
            && end < start
        {
            return Err(ScheduleError::EndBeforeStart { start, end });
        }
        let last = self.end_time.map(floor_second);
        match &self.trigger {
            Trigger::Cron { expression } => {
                let cron = CronExpr::parse(expression)?;
                let every_hour = cron.every_hour();
                let rule = Rule::Local {
                    local: Local::Cron(cron),
                    every_hour,
                };
                Ok(Compiled {
                    tz,
                    rule,
                    first: self.start_time.map(ceil_second),
                    last,
                })
            }
            Trigger::Recurrence {
                frequency,
                interval,
                schedule,
            } => {
                let anchor = ceil_second(self.start_time.unwrap_or(anchor));
                let anchor = (anchor + 59).div_euclid(60) * 60;
                let rule = recurrence_rule(&tz, anchor, *frequency, *interval, schedule.as_ref())?;
                Ok(Compiled {
                    tz,
                    rule,
                    first: Some(anchor),
                    last,
                })
            }
        }
    }
}

/// Validates a recurrence and compiles it from `anchor` (whole minute, seconds).
fn recurrence_rule(
    tz: &TimeZone,
    anchor: i64,
    frequency: Frequency,
    interval: u32,
    schedule: Option<&RecurrenceSchedule>,
) -> Result<Rule, ScheduleError> {
    if interval == 0 {
        return Err(ScheduleError::ZeroInterval);
    }
    let empty = RecurrenceSchedule::default();
    let schedule = schedule.unwrap_or(&empty);
    let not_applicable = |field| ScheduleError::NotApplicable {
        field,
        frequency,
        only: match field {
            "week_days" => "week",
            "month_days" => "month",
            _ => "day, week and month",
        },
    };
    let unit = match frequency {
        Frequency::Minute | Frequency::Hour => {
            if !schedule.hours.is_empty() {
                return Err(not_applicable("hours"));
            }
            if !schedule.minutes.is_empty() {
                return Err(not_applicable("minutes"));
            }
            if !schedule.week_days.is_empty() {
                return Err(not_applicable("week_days"));
            }
            if !schedule.month_days.is_empty() {
                return Err(not_applicable("month_days"));
            }
            let unit = if frequency == Frequency::Minute {
                60
            } else {
                3600
            };
            return Ok(Rule::Fixed {
                anchor,
                period: i64::from(interval) * unit,
            });
        }
        Frequency::Day => Unit::Day,
        Frequency::Week => Unit::Week,
        Frequency::Month => Unit::Month,
    };
    if unit != Unit::Week && !schedule.week_days.is_empty() {
        return Err(not_applicable("week_days"));
    }
    if unit != Unit::Month && !schedule.month_days.is_empty() {
        return Err(not_applicable("month_days"));
    }
    check_range("hours", &schedule.hours, 0, 23)?;
    check_range("minutes", &schedule.minutes, 0, 59)?;
    check_range("month_days", &schedule.month_days, 1, 31)?;

    let local_anchor = anchor
        + i64::from(
            tz.to_offset(Timestamp::from_second(anchor).unwrap_or(Timestamp::MIN))
                .seconds(),
        );
    let anchor_day = local_anchor.div_euclid(SECS_PER_DAY);
    let anchor_minute = (local_anchor.rem_euclid(SECS_PER_DAY) / 60) as u32;
    let (year, month, day_of_month) = civil_from_days(anchor_day);

    let hours: Vec<u32> = if schedule.hours.is_empty() {
        vec![anchor_minute / 60]
    } else {
        schedule.hours.iter().map(|h| u32::from(*h)).collect()
    };
    let minutes: Vec<u32> = if schedule.minutes.is_empty() {
        vec![anchor_minute % 60]
    } else {
        schedule.minutes.iter().map(|m| u32::from(*m)).collect()
    };
    let mut times: Vec<u32> = hours
        .iter()
        .flat_map(|h| minutes.iter().map(move |m| h * 60 + m))
        .collect();
    times.sort_unstable();
    times.dedup();

    let (first, days) = match unit {
        Unit::Day => (anchor_day, 0),
        Unit::Week => {
            let days = if schedule.week_days.is_empty() {
                1 << weekday_mon0(anchor_day)
            } else {
                schedule
                    .week_days
                    .iter()
                    .fold(0, |acc, d: &Weekday| acc | 1 << d.index_from_monday())
            };
            (anchor_day - i64::from(weekday_mon0(anchor_day)), days)
        }
        Unit::Month => {
            let days = if schedule.month_days.is_empty() {
                1 << day_of_month
            } else {
                schedule.month_days.iter().fold(0, |acc, d| acc | 1 << d)
            };
            (year * 12 + i64::from(month) - 1, days)
        }
    };
    let recurrence = LocalRecurrence {
        unit,
        first,
        interval: i64::from(interval),
        days,
        times,
    };
    if recurrence.next_local(local_anchor - 1).is_none() {
        return Err(ScheduleError::NeverFires(format!(
            "no month reached every {interval} month(s) from {year}-{month:02} has any of the days {}",
            join(&schedule.month_days)
        )));
    }
    let every_hour = recurrence.every_hour();
    Ok(Rule::Local {
        local: Local::Recurrence(recurrence),
        every_hour,
    })
}

/// The stretch of time from `start` up to the next transition, at one UTC offset.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: i64,
    offset: i64,
    /// The next transition: its instant and the offset from then on.
    next: Option<(i64, i64)>,
}

impl Segment {
    fn contains(&self, s: i64) -> bool {
        s >= self.start && self.next.is_none_or(|(at, _)| s < at)
    }
}

/// Successive ticks after an instant, caching the current UTC-offset segment.
struct Ticks<'a> {
    compiled: &'a Compiled,
    /// Ticks are strictly after this (seconds).
    after: i64,
    segment: Option<Segment>,
}

impl Ticks<'_> {
    fn segment(&mut self, s: i64) -> Option<Segment> {
        if let Some(segment) = self.segment.filter(|seg| seg.contains(s)) {
            return Some(segment);
        }
        let ts = Timestamp::from_second(s).ok()?;
        let tz = &self.compiled.tz;
        let offset = i64::from(tz.to_offset(ts).seconds());
        let next = tz
            .following(ts)
            .next()
            .map(|tr| (tr.timestamp().as_second(), i64::from(tr.offset().seconds())));
        let segment = Segment {
            start: s,
            offset,
            next,
        };
        self.segment = Some(segment);
        Some(segment)
    }

    /// The first local-time tick strictly after `after`, with the DST rules of the module.
    fn next_local(&mut self, local: &Local, every_hour: bool, after: i64) -> Option<i64> {
        let mut s = after.checked_add(1)?;
        loop {
            let segment = self.segment(s)?;
            let o = segment.offset;
            let candidate = local.next_local(s + o - 1)?;
            let Some((at, o2)) = segment.next else {
                return Some(candidate - o);
            };
            // in a fold, the repeated local times fire in the next segment (their second
            // occurrence) unless the schedule runs every hour
            let end = if o2 < o && !every_hour {
                at + o2
            } else {
                at + o
            };
            if candidate < end {
                return Some(candidate - o);
            }
            // local times in a gap fire once, when the gap ends
            if o2 > o && !every_hour && candidate < at + o2 {
                return Some(at);
            }
            s = at;
        }
    }
}

impl Iterator for Ticks<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        let compiled = self.compiled;
        let mut after = self.after;
        if let Some(first) = compiled.first {
            after = after.max(first.saturating_sub(1));
        }
        let tick = match &compiled.rule {
            Rule::Fixed { anchor, period } => {
                if after < *anchor {
                    *anchor
                } else {
                    let k = (after - anchor) / period + 1;
                    k.checked_mul(*period)?.checked_add(*anchor)?
                }
            }
            Rule::Local { local, every_hour } => self.next_local(local, *every_hour, after)?,
        };
        if compiled.last.is_some_and(|last| tick > last) {
            return None;
        }
        self.after = tick;
        Some(tick)
    }
}

impl Compiled {
    /// The time zone local times are in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    fn ticks(&self, after: Timestamp) -> Ticks<'_> {
        Ticks {
            compiled: self,
            after: floor_second(after),
            segment: None,
        }
    }

    /// The first tick strictly after `t`, none before the start time and none after the end
    /// time (`None` past the end, or past year 9999).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.ticks(t)
            .next()
            .and_then(|s| Timestamp::from_second(s).ok())
    }

    /// The ticks in `(after, until]`, in order: the last `limit` of them if there are more.
    pub fn ticks_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Vec<Timestamp> {
        self.last_ticks(after, until, limit).0
    }

    /// How many ticks lie in `(after, until]`, saturating at [`MAX_COUNTED_TICKS`].
    pub fn count_between(&self, after: Timestamp, until: Timestamp) -> u64 {
        if let Rule::Fixed { anchor, period } = self.rule {
            let Some(first) = self.ticks(after).next() else {
                return 0;
            };
            let until = self
                .last
                .map_or(floor_second(until), |last| last.min(floor_second(until)));
            if first > until {
                return 0;
            }
            let count = (until - anchor) / period - (first - anchor) / period + 1;
            return (count as u64).min(MAX_COUNTED_TICKS);
        }
        self.last_ticks(after, until, 0).1
    }

    /// The last `limit` ticks in `(after, until]` and how many there are (counting stops at
    /// [`MAX_COUNTED_TICKS`] when `limit` is 0).
    pub(crate) fn last_ticks(
        &self,
        after: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> (Vec<Timestamp>, u64) {
        let until = floor_second(until);
        let mut kept = VecDeque::with_capacity(limit.min(1024));
        let mut count = 0u64;
        for tick in self.ticks(after) {
            if tick > until || (limit == 0 && count >= MAX_COUNTED_TICKS) {
                break;
            }
            count += 1;
            if limit > 0 {
                if kept.len() == limit {
                    kept.pop_front();
                }
                kept.push_back(tick);
            }
        }
        let kept = kept
            .into_iter()
            .filter_map(|s| Timestamp::from_second(s).ok())
            .collect();
        (kept, count)
    }
}
