//! Azure ML style recurrences: every `interval` minutes, hours, days, weeks or months from an
//! anchor, optionally pinned to hours, minutes, weekdays or days of the month.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::civil::{
    MAX_YEAR, SECS_PER_DAY, civil_from_days, days_from_civil, days_in_month, minute_after,
    weekday_mon0,
};

/// The unit a recurrence counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Every `interval` minutes (absolute time: unaffected by DST).
    Minute,
    /// Every `interval` hours (absolute time: unaffected by DST).
    Hour,
    /// Every `interval` days, at local times.
    Day,
    /// Every `interval` weeks (Monday to Sunday), on weekdays at local times.
    Week,
    /// Every `interval` months, on days of the month at local times.
    Month,
}

impl Frequency {
    /// The lowercase name, as in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Minute => "minute",
            Frequency::Hour => "hour",
            Frequency::Day => "day",
            Frequency::Week => "week",
            Frequency::Month => "month",
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A day of the week, written `monday` .. `sunday`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl Weekday {
    /// 0 = Monday .. 6 = Sunday.
    pub fn index_from_monday(self) -> u32 {
        self as u32
    }

    /// The lowercase name, as in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Monday => "monday",
            Weekday::Tuesday => "tuesday",
            Weekday::Wednesday => "wednesday",
            Weekday::Thursday => "thursday",
            Weekday::Friday => "friday",
            Weekday::Saturday => "saturday",
            Weekday::Sunday => "sunday",
        }
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in each day, week or month a recurrence fires; empty lists take the anchor's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceSchedule {
    /// Local hours 0-23 (default: the anchor's local hour).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<u8>,
    /// Minutes 0-59 (default: the anchor's local minute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minutes: Vec<u8>,
    /// Weekdays, frequency `week` only (default: the anchor's weekday).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub week_days: Vec<Weekday>,
    /// Days of the month 1-31, frequency `month` only (default: the anchor's day); a month
    /// without the day is skipped for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub month_days: Vec<u8>,
}

impl RecurrenceSchedule {
    /// Whether every list is empty (nothing pinned).
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
            && self.minutes.is_empty()
            && self.week_days.is_empty()
            && self.month_days.is_empty()
    }
}

/// The calendar unit of a local-time recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Day,
    Week,
    Month,
}

/// A day, week or month recurrence compiled to numbers, searched in local civil time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalRecurrence {
    pub(crate) unit: Unit,
    /// The first period: the anchor's day number (day), the day number of the Monday of its
    /// week (week) or its month number `year * 12 + month - 1` (month).
    pub(crate) first: i64,
    pub(crate) interval: i64,
    /// Weekdays (bit 0 = Monday) for weeks, days of the month (bit n = day n) for months.
    pub(crate) days: u32,
    /// Minutes of the day, sorted and unique.
    pub(crate) times: Vec<u32>,
}

/// The last day number searched.
fn max_day() -> i64 {
    days_from_civil(MAX_YEAR, 12, 31)
}

impl LocalRecurrence {
    /// Whether the times cover all 24 hours.
    pub(crate) fn every_hour(&self) -> bool {
        let mut hours = 0u32;
        for time in &self.times {
            hours |= 1 << (time / 60);
        }
        hours == (1 << 24) - 1
    }

    /// The first time of day at or after `minute`.
    fn time_from(&self, minute: u32) -> Option<u32> {
        self.times.iter().copied().find(|t| *t >= minute)
    }

    fn at(day: i64, minute: u32) -> i64 {
        day * SECS_PER_DAY + i64::from(minute) * 60
    }

    /// The first tick strictly after `after` (local epoch seconds); `None` past year 9999.
    pub(crate) fn next_local(&self, after: i64) -> Option<i64> {
        let (day, minute) = minute_after(after);
        match self.unit {
            Unit::Day => self.next_day(day, minute),
            Unit::Week => self.next_week(day, minute),
            Unit::Month => self.next_month(day, minute),
        }
    }

    fn next_day(&self, day: i64, minute: u32) -> Option<i64> {
        let (mut day, mut minute) = if day < self.first {
            (self.first, 0)
        } else {
            (day, minute)
        };
        let offset = (day - self.first).rem_euclid(self.interval);
        if offset != 0 {
            day += self.interval - offset;
            minute = 0;
        }
        loop {
            if day > max_day() {
                return None;
            }
            if let Some(time) = self.time_from(minute) {
                return Some(Self::at(day, time));
            }
            day += self.interval;
            minute = 0;
        }
    }

    fn next_week(&self, day: i64, minute: u32) -> Option<i64> {
        let (mut day, mut minute) = if day < self.first {
            (self.first, 0)
        } else {
            (day, minute)
        };
        loop {
            if day > max_day() {
                return None;
            }
            let week = (day - self.first).div_euclid(7);
            let offset = week.rem_euclid(self.interval);
            if offset != 0 {
                day = self.first + (week + self.interval - offset) * 7;
                minute = 0;
                continue;
            }
            if self.days & (1 << weekday_mon0(day)) != 0
                && let Some(time) = self.time_from(minute)
            {
                return Some(Self::at(day, time));
            }
            day += 1;
            minute = 0;
        }
    }

    fn next_month(&self, day: i64, minute: u32) -> Option<i64> {
        let (year, month, dom) = civil_from_days(day);
        let mut month_number = year * 12 + i64::from(month) - 1;
        let (mut dom, mut minute) = (dom, minute);
        if month_number < self.first {
            (month_number, dom, minute) = (self.first, 1, 0);
        }
        loop {
            let offset = (month_number - self.first).rem_euclid(self.interval);
            if offset != 0 {
                month_number += self.interval - offset;
                (dom, minute) = (1, 0);
            }
            let year = month_number.div_euclid(12);
            if year > MAX_YEAR {
                return None;
            }
            let month = month_number.rem_euclid(12) as u32 + 1;
            for day_of_month in dom..=days_in_month(year, month) {
                if self.days & (1 << day_of_month) == 0 {
                    continue;
                }
                let from = if day_of_month == dom { minute } else { 0 };
                if let Some(time) = self.time_from(from) {
                    return Some(Self::at(days_from_civil(year, month, day_of_month), time));
                }
            }
            month_number += 1;
            (dom, minute) = (1, 0);
        }
    }
}
