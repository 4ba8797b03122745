//! Five-field cron expressions (`minute hour day-of-month month day-of-week`) and the Vixie
//! macros, parsed into bit sets and searched field by field in local civil time.

use std::str::FromStr;

use crate::civil::{
    MAX_YEAR, SECS_PER_DAY, civil_from_days, days_from_civil, days_in_month, minute_after,
    next_bit, weekday_sun0,
};

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression has no fields at all.
    #[error(
        "cron expression is empty: expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily"
    )]
    Empty,
    /// The expression does not have exactly five fields.
    #[error(
        "cron expression '{expression}' has {found} field(s): expected 5 (minute hour day-of-month month day-of-week) or a macro such as @daily"
    )]
    FieldCount {
        /// The expression as given.
        expression: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// An `@` macro that is not one of the supported ones.
    #[error(
        "unknown cron macro '{0}': expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
    )]
    UnknownMacro(String),
    /// One token of one field is invalid.
    #[error("cron field '{field}' ({ordinal}): '{token}' {problem}")]
    Field {
        /// The field's name, e.g. `hour`.
        field: &'static str,
        /// The field's position, e.g. `2nd`.
        ordinal: &'static str,
        /// The offending token.
        token: String,
        /// What is wrong with it, e.g. `is out of range 0-23`.
        problem: String,
    },
    /// The fields are valid but no date ever matches them (e.g. `0 0 30 2 *`).
    #[error(
        "cron expression '{0}' never matches: none of its months has any of its days of the month"
    )]
    NeverMatches(String),
}

/// One of the five fields: its name, position, range and (for months and weekdays) names.
struct Field {
    name: &'static str,
    ordinal: &'static str,
    min: u32,
    max: u32,
    /// The largest value `*` covers (6 for day-of-week, where 7 is an alias of 0).
    star_max: u32,
    names: &'static [&'static str],
    /// The value of `names[0]`.
    names_base: u32,
    names_hint: &'static str,
}

const MINUTE: Field = Field {
    name: "minute",
    ordinal: "1st",
    min: 0,
    max: 59,
    star_max: 59,
    names: &[],
    names_base: 0,
    names_hint: "",
};
const HOUR: Field = Field {
    name: "hour",
    ordinal: "2nd",
    min: 0,
    max: 23,
    star_max: 23,
    names: &[],
    names_base: 0,
    names_hint: "",
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    ordinal: "3rd",
    min: 1,
    max: 31,
    star_max: 31,
    names: &[],
    names_base: 0,
    names_hint: "",
};
const MONTH: Field = Field {
    name: "month",
    ordinal: "4th",
    min: 1,
    max: 12,
    star_max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    names_base: 1,
    names_hint: " or a month name (jan-dec)",
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    ordinal: "5th",
    min: 0,
    max: 7,
    star_max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    names_base: 0,
    names_hint: " or a weekday name (sun-sat)",
};

impl Field {
    fn error(&self, token: &str, problem: impl Into<String>) -> CronError {
        CronError::Field {
            field: self.name,
            ordinal: self.ordinal,
            token: token.to_string(),
            problem: problem.into(),
        }
    }

    /// A single value: a number in range or a name.
    fn value(&self, token: &str) -> Result<u32, CronError> {
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            let value = token.parse::<u32>().unwrap_or(u32::MAX);
            if value < self.min || value > self.max {
                let range = format!("is out of range {}-{}", self.min, self.max);
                return Err(self.error(token, range));
            }
            return Ok(value);
        }
        let lower = token.to_ascii_lowercase();
        match self.names.iter().position(|name| *name == lower) {
            Some(index) => Ok(self.names_base + index as u32),
            None => Err(self.error(token, format!("is not a number{}", self.names_hint))),
        }
    }

    /// The bit set of a whole field: a comma-separated list of `*`, values, ranges and steps.
    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut mask = 0u64;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.error(text, "has an empty list item"));
            }
            let (base, step) = match item.split_once('/') {
                Some((base, step)) => {
                    let parsed = step.parse::<u32>().ok().filter(|s| *s >= 1);
                    let Some(parsed) = parsed else {
                        return Err(
                            self.error(step, "is not a valid step (a number of at least 1)")
                        );
                    };
                    (base, Some(parsed))
                }
                None => (item, None),
            };
            let (low, high) = if base == "*" {
                (self.min, self.star_max)
            } else if let Some((a, b)) = base.split_once('-') {
                let low = self.value(a)?;
                let mut high = self.value(b)?;
                // `fri-sun`: Sunday closing a weekday range is 7
                if self.name == DAY_OF_WEEK.name && high == 0 && low > 0 {
                    high = 7;
                }
                if low > high {
                    return Err(
                        self.error(base, "is a reversed range (write the smaller value first)")
                    );
                }
                (low, high)
            } else {
                let value = self.value(base)?;
                // `5/15` means from 5 to the end of the range in steps of 15
                if step.is_some() {
                    (value, self.star_max.max(value))
                } else {
                    (value, value)
                }
            };
            let step = step.unwrap_or(1) as usize;
            for value in (low..=high).step_by(step) {
                // day-of-week 7 is Sunday, like 0
                let bit = if self.name == DAY_OF_WEEK.name && value == 7 {
                    0
                } else {
                    value
                };
                mask |= 1 << bit;
            }
        }
        Ok(mask)
    }
}

/// A parsed cron expression: the set of minutes, hours, days of the month, months and weekdays
/// it matches, with Vixie cron's day rule.
///
/// When both day-of-month and day-of-week are restricted (neither field starts with `*`), a day
/// matches if either matches (`0 0 13 * 5`: the 13th and every Friday); otherwise both must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    dom_star: bool,
    dow_star: bool,
}

impl CronExpr {
    /// Parses five fields or a macro (`@hourly @daily @midnight @weekly @monthly @yearly @annually`).
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let trimmed = expression.trim();
        let expanded = if let Some(name) = trimmed.strip_prefix('@') {
            match name.to_ascii_lowercase().as_str() {
                "hourly" => "0 * * * *",
                "daily" | "midnight" => "0 0 * * *",
                "weekly" => "0 0 * * 0",
                "monthly" => "0 0 1 * *",
                "yearly" | "annually" => "0 0 1 1 *",
                _ => return Err(CronError::UnknownMacro(trimmed.to_string())),
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.is_empty() {
            return Err(CronError::Empty);
        }
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                expression: trimmed.to_string(),
                found: fields.len(),
            });
        }
        let cron = CronExpr {
            minutes: MINUTE.parse(fields[0])?,
            hours: HOUR.parse(fields[1])? as u32,
            days_of_month: DAY_OF_MONTH.parse(fields[2])? as u32,
            months: MONTH.parse(fields[3])? as u16,
            days_of_week: DAY_OF_WEEK.parse(fields[4])? as u8,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        };
        if !cron.can_match() {
            return Err(CronError::NeverMatches(trimmed.to_string()));
        }
        Ok(cron)
    }

    /// Whether the hour field covers all 24 hours (the schedule fires every hour it fires at all).
    pub fn every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    /// Whether some date matches. With the either-or rule every week has a matching day; with
    /// both rules every (month, day) pair falls on each weekday some year, so only the months
    /// and days of the month can rule out every date (`0 0 30 2 *`).
    fn can_match(&self) -> bool {
        if !self.dom_star && !self.dow_star {
            return true;
        }
        (1..=12u32).any(|month| {
            // February has a 29th in leap years
            let longest = if month == 2 {
                29
            } else {
                days_in_month(2001, month)
            };
            self.months & (1 << month) != 0
                && (1..=longest).any(|day| self.days_of_month & (1 << day) != 0)
        })
    }

    /// Whether a day matches the day-of-month, day-of-week pair (Vixie's either-or rule).
    fn day_matches(&self, day_of_month: u32, weekday: u32) -> bool {
        let dom = self.days_of_month & (1 << day_of_month) != 0;
        let dow = self.days_of_week & (1 << weekday) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching local minute strictly after `after` (local epoch seconds), searched
    /// month by month, then day, hour and minute; `None` past year 9999.
    pub(crate) fn next_local(&self, after: i64) -> Option<i64> {
        let (day, minute_of_day) = minute_after(after);
        let (mut year, mut month, mut dom) = civil_from_days(day);
        let mut hour = minute_of_day / 60;
        let mut minute = minute_of_day % 60;
        loop {
            if year > MAX_YEAR {
                return None;
            }
            if self.months & (1 << month) == 0 || dom > days_in_month(year, month) {
                // on to the next allowed month
                match next_bit(u64::from(self.months), month + 1) {
                    Some(next) => month = next,
                    None => {
                        year += 1;
                        month = self.months.trailing_zeros();
                    }
                }
                (dom, hour, minute) = (1, 0, 0);
                continue;
            }
            let day = days_from_civil(year, month, dom);
            if !self.day_matches(dom, weekday_sun0(day)) {
                (dom, hour, minute) = (dom + 1, 0, 0);
                continue;
            }
            match next_bit(u64::from(self.hours), hour) {
                None => {
                    (dom, hour, minute) = (dom + 1, 0, 0);
                    continue;
                }
                Some(next) if next != hour => (hour, minute) = (next, 0),
                Some(_) => {}
            }
            match next_bit(self.minutes, minute) {
                None => (hour, minute) = (hour + 1, 0),
                Some(found) => {
                    return Some(day * SECS_PER_DAY + i64::from(hour * 3600 + found * 60));
                }
            }
        }
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(expression: &str) -> String {
        CronExpr::parse(expression).unwrap_err().to_string()
    }

    #[test]
    fn field_errors_name_the_field_and_token() {
        assert_eq!(
            err("60 * * * *"),
            "cron field 'minute' (1st): '60' is out of range 0-59"
        );
        assert_eq!(
            err("0 25 * * *"),
            "cron field 'hour' (2nd): '25' is out of range 0-23"
        );
        assert_eq!(
            err("0 0 32 * *"),
            "cron field 'day-of-month' (3rd): '32' is out of range 1-31"
        );
        assert_eq!(
            err("0 0 0 * *"),
            "cron field 'day-of-month' (3rd): '0' is out of range 1-31"
        );
        assert_eq!(
            err("0 0 1 13 *"),
            "cron field 'month' (4th): '13' is out of range 1-12"
        );
        assert_eq!(
            err("0 0 1 foo *"),
            "cron field 'month' (4th): 'foo' is not a number or a month name (jan-dec)"
        );
        assert_eq!(
            err("0 0 * * 8"),
            "cron field 'day-of-week' (5th): '8' is out of range 0-7"
        );
        assert_eq!(
            err("0 0 * * mon-xyz"),
            "cron field 'day-of-week' (5th): 'xyz' is not a number or a weekday name (sun-sat)"
        );
        assert_eq!(
            err("x * * * *"),
            "cron field 'minute' (1st): 'x' is not a number"
        );
        assert_eq!(
            err("1-30/0 * * * *"),
            "cron field 'minute' (1st): '0' is not a valid step (a number of at least 1)"
        );
        assert_eq!(
            err("0 22-2 * * *"),
            "cron field 'hour' (2nd): '22-2' is a reversed range (write the smaller value first)"
        );
        assert_eq!(
            err("0 1,,2 * * *"),
            "cron field 'hour' (2nd): '1,,2' has an empty list item"
        );
        assert_eq!(
            err("0 0 1-5/x * *"),
            "cron field 'day-of-month' (3rd): 'x' is not a valid step (a number of at least 1)"
        );
        assert_eq!(
            err("0 0 * * 1-"),
            "cron field 'day-of-week' (5th): '' is not a number or a weekday name (sun-sat)"
        );
    }

    #[test]
    fn shape_errors() {
        assert_eq!(CronExpr::parse("  "), Err(CronError::Empty));
        assert!(err("0 0 * *").starts_with("cron expression '0 0 * *' has 4 field(s): expected 5"));
        assert!(err("0 0 * * * *").contains("has 6 field(s)"));
        assert!(err("@reboot").starts_with("unknown cron macro '@reboot'"));
        assert!(err("0 0 30 2 *").contains("never matches"));
        assert!(err("0 0 31 4,6,9,11 *").contains("never matches"));
        // with a weekday too, either rule: every Friday
        assert!(CronExpr::parse("0 0 30 2 fri").is_ok());
    }

    #[test]
    fn fields_are_parsed() {
        let cron = CronExpr::parse("*/15 9-17 1,15 JAN-mar sat,7").unwrap();
        assert_eq!(cron.minutes, 1 << 0 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(cron.hours, 0b11_1111_1110_0000_0000);
        assert_eq!(cron.days_of_month, 1 << 1 | 1 << 15);
        assert_eq!(cron.months, 0b1110);
        assert_eq!(cron.days_of_week, 1 << 6 | 1);
        assert!(!cron.every_hour());
        assert!(CronExpr::parse("5 */1 * * *").unwrap().every_hour());
        assert!(!CronExpr::parse("5 */2 * * *").unwrap().every_hour());
        assert_eq!(
            "5/20 * * * *".parse::<CronExpr>().unwrap().minutes,
            1 << 5 | 1 << 25 | 1 << 45
        );
        assert_eq!(
            CronExpr::parse("@hourly").unwrap(),
            CronExpr::parse("0 * * * *").unwrap()
        );
    }
}
