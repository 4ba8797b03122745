//! Proleptic Gregorian calendar arithmetic on plain integers: days since 1970-01-01 and seconds
//! of "local epoch" time (a civil date-time counted as if it were UTC).

/// Seconds in a civil day.
pub(crate) const SECS_PER_DAY: i64 = 86_400;
/// The last year searched: Jiff's timestamps end in 9999.
pub(crate) const MAX_YEAR: i64 = 9999;

/// The day number (days since 1970-01-01) of a civil date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether `year` is a leap year.
pub(crate) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in `month` (1-12) of `year`.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The weekday of a day number, 0 = Sunday .. 6 = Saturday (1970-01-01 was a Thursday).
pub(crate) fn weekday_sun0(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// The weekday of a day number, 0 = Monday .. 6 = Sunday.
pub(crate) fn weekday_mon0(days: i64) -> u32 {
    (days + 3).rem_euclid(7) as u32
}

/// The first whole local minute strictly after `local` seconds: `(day number, minute of day)`.
pub(crate) fn minute_after(local: i64) -> (i64, u32) {
    let minute = local.div_euclid(60) + 1;
    (minute.div_euclid(1440), minute.rem_euclid(1440) as u32)
}

/// The lowest set bit of `mask` at or above `from`.
pub(crate) fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask & (u64::MAX << from);
    (rest != 0).then(|| rest.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_weekdays() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        for days in [-800_000, -1, 59, 60, 10_957, 20_513, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(days_from_civil(2028, 2, 29)), (2028, 2, 29));
        // 2026-03-13 is a Friday
        let friday = days_from_civil(2026, 3, 13);
        assert_eq!(weekday_sun0(friday), 5);
        assert_eq!(weekday_mon0(friday), 4);
        assert!(is_leap(2000) && is_leap(2028) && !is_leap(2100) && !is_leap(2026));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 64), None);
        assert_eq!(minute_after(59), (0, 1));
        assert_eq!(minute_after(-1), (0, 0));
    }
}
