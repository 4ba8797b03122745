//! Behaviour of the whole crate, with injected clocks.

use jiff::{SignedDuration, Timestamp};

use crate::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron_in(expression: &str, tz: &str) -> Compiled {
    let mut schedule = Schedule::new(Trigger::Cron {
        expression: expression.into(),
    });
    schedule.time_zone = tz.into();
    schedule.compile(Timestamp::UNIX_EPOCH).unwrap()
}

fn cron(expression: &str) -> Compiled {
    cron_in(expression, "UTC")
}

/// The first `n` ticks after `after`.
fn next_n(compiled: &Compiled, after: &str, n: usize) -> Vec<String> {
    let mut t = ts(after);
    let mut out = Vec::new();
    for _ in 0..n {
        t = compiled.next_after(t).unwrap();
        out.push(t.to_string());
    }
    out
}

fn recurrence(
    frequency: Frequency,
    interval: u32,
    schedule: Option<RecurrenceSchedule>,
) -> Trigger {
    Trigger::Recurrence {
        frequency,
        interval,
        schedule,
    }
}

#[test]
fn every_fifteen_minutes() {
    let c = cron("*/15 * * * *");
    assert_eq!(
        next_n(&c, "2026-04-01T10:07:30Z", 4),
        [
            "2026-04-01T10:15:00Z",
            "2026-04-01T10:30:00Z",
            "2026-04-01T10:45:00Z",
            "2026-04-01T11:00:00Z"
        ]
    );
    // strictly after: a tick instant itself is not returned
    assert_eq!(
        c.next_after(ts("2026-04-01T10:15:00Z")),
        Some(ts("2026-04-01T10:30:00Z"))
    );
    assert_eq!(
        c.next_after(ts("2026-04-01T10:14:59.999Z")),
        Some(ts("2026-04-01T10:15:00Z"))
    );
}

#[test]
fn weekdays_skip_the_weekend() {
    let c = cron("0 9 * * 1-5");
    // 2026-03-13 is a Friday
    assert_eq!(
        next_n(&c, "2026-03-13T08:00:00Z", 3),
        [
            "2026-03-13T09:00:00Z",
            "2026-03-16T09:00:00Z",
            "2026-03-17T09:00:00Z"
        ]
    );
    assert_eq!(
        next_n(&cron("0 9 * * mon-fri"), "2026-03-13T08:00:00Z", 3),
        next_n(&c, "2026-03-13T08:00:00Z", 3)
    );
}

#[test]
fn day_of_month_or_day_of_week() {
    let c = cron("0 0 13 * 5");
    assert_eq!(
        next_n(&c, "2026-03-01T00:00:00Z", 8),
        [
            "2026-03-06T00:00:00Z", // Friday
            "2026-03-13T00:00:00Z", // Friday the 13th, once
            "2026-03-20T00:00:00Z",
            "2026-03-27T00:00:00Z",
            "2026-04-03T00:00:00Z",
            "2026-04-10T00:00:00Z",
            "2026-04-13T00:00:00Z", // a Monday, the 13th
            "2026-04-17T00:00:00Z",
        ]
    );
    // a star-prefixed day field means both must match (Vixie): odd days that are Fridays
    assert_eq!(
        next_n(&cron("0 0 */2 * 5"), "2026-03-01T00:00:00Z", 2),
        ["2026-03-13T00:00:00Z", "2026-03-27T00:00:00Z"]
    );
}

#[test]
fn leap_day_is_found_quickly() {
    let c = cron("0 0 29 2 *");
    assert_eq!(
        c.next_after(ts("2026-03-01T00:00:00Z")),
        Some(ts("2028-02-29T00:00:00Z"))
    );
    // 2100 is not a leap year
    assert_eq!(
        c.next_after(ts("2096-03-01T00:00:00Z")),
        Some(ts("2104-02-29T00:00:00Z"))
    );
    // a hundred of them (four centuries) is a field-by-field search, not minute by minute
    let ticks = next_n(&c, "2000-01-01T00:00:00Z", 97);
    assert_eq!(ticks.last().unwrap(), "2396-02-29T00:00:00Z");
    // past the end of time
    assert_eq!(c.next_after(ts("9996-03-01T00:00:00Z")), None);
}

#[test]
fn month_and_day_names() {
    let names = cron("30 12 * JAN,jul Mon-Fri");
    let numbers = cron("30 12 * 1,7 1-5");
    assert_eq!(
        next_n(&names, "2026-01-30T00:00:00Z", 5),
        next_n(&numbers, "2026-01-30T00:00:00Z", 5)
    );
    assert_eq!(
        next_n(&names, "2026-01-30T00:00:00Z", 2),
        ["2026-01-30T12:30:00Z", "2026-07-01T12:30:00Z"]
    );
    // 7 and 0 are both Sunday; a range may end at sun
    let sundays = next_n(&cron("0 0 * * 7"), "2026-03-01T00:00:00Z", 3);
    assert_eq!(
        sundays,
        next_n(&cron("0 0 * * SUN"), "2026-03-01T00:00:00Z", 3)
    );
    assert_eq!(
        sundays,
        [
            "2026-03-08T00:00:00Z",
            "2026-03-15T00:00:00Z",
            "2026-03-22T00:00:00Z"
        ]
    );
    assert_eq!(
        next_n(&cron("0 0 * * fri-sun"), "2026-03-05T00:00:00Z", 4),
        [
            "2026-03-06T00:00:00Z",
            "2026-03-07T00:00:00Z",
            "2026-03-08T00:00:00Z",
            "2026-03-13T00:00:00Z"
        ]
    );
    assert_eq!(
        next_n(&cron("10-50/20 3 * * *"), "2026-03-05T00:00:00Z", 4),
        [
            "2026-03-05T03:10:00Z",
            "2026-03-05T03:30:00Z",
            "2026-03-05T03:50:00Z",
            "2026-03-06T03:10:00Z"
        ]
    );
}

#[test]
fn macros() {
    assert_eq!(
        next_n(&cron("@daily"), "2026-03-05T10:00:00Z", 1),
        ["2026-03-06T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@midnight"), "2026-03-05T10:00:00Z", 1),
        ["2026-03-06T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@hourly"), "2026-03-05T10:00:00Z", 1),
        ["2026-03-05T11:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@weekly"), "2026-03-05T10:00:00Z", 1),
        ["2026-03-08T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@monthly"), "2026-03-05T10:00:00Z", 1),
        ["2026-04-01T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@yearly"), "2026-03-05T10:00:00Z", 1),
        ["2027-01-01T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@ANNUALLY"), "2026-03-05T10:00:00Z", 1),
        ["2027-01-01T00:00:00Z"]
    );
}

#[test]
fn time_zone_offsets() {
    let berlin = cron_in("0 9 * * *", "Europe/Berlin");
    let utc = cron("0 9 * * *");
    assert_eq!(
        next_n(&berlin, "2026-01-15T00:00:00Z", 1),
        ["2026-01-15T08:00:00Z"]
    ); // CET
    assert_eq!(
        next_n(&berlin, "2026-07-15T00:00:00Z", 1),
        ["2026-07-15T07:00:00Z"]
    ); // CEST
    assert_eq!(
        next_n(&utc, "2026-07-15T00:00:00Z", 1),
        ["2026-07-15T09:00:00Z"]
    );
    // Berlin's local 09:00 ticks across its spring forward (2026-03-29)
    assert_eq!(
        next_n(&berlin, "2026-03-28T00:00:00Z", 2),
        ["2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"]
    );
}

#[test]
fn dst_spring_forward_new_york() {
    // 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z)
    let c = cron_in("30 2 * * *", "America/New_York");
    assert_eq!(
        next_n(&c, "2026-03-07T12:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z"
        ]
    );
    // several times in the gap fire once, together with a real 03:00
    let c = cron_in("0,30 2,3 * * *", "America/New_York");
    assert_eq!(
        next_n(&c, "2026-03-08T06:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:00:00Z"
        ]
    );
    // hourly schedules stay hourly: no tick in the gap
    let hourly = cron_in("30 * * * *", "America/New_York");
    assert_eq!(
        next_n(&hourly, "2026-03-08T06:00:00Z", 2),
        ["2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"]
    );
}

#[test]
fn dst_fall_back_new_york() {
    // 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:00-02:00 happens twice
    let c = cron_in("30 1 * * *", "America/New_York");
    assert_eq!(
        next_n(&c, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // also from inside the first occurrence
    assert_eq!(
        c.next_after(ts("2026-11-01T05:31:00Z")),
        Some(ts("2026-11-01T06:30:00Z"))
    );
    let hourly = cron_in("30 * * * *", "America/New_York");
    assert_eq!(
        next_n(&hourly, "2026-11-01T04:00:00Z", 4),
        [
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z"
        ]
    );
    // minute steps over every hour also fire in both
    let quarter = cron_in("*/15 * * * *", "America/New_York");
    assert_eq!(
        quarter
            .ticks_between(ts("2026-11-01T04:59:00Z"), ts("2026-11-01T07:00:00Z"), 100)
            .len(),
        9
    );
}

#[test]
fn start_and_end_bound_ticks() {
    let mut schedule = Schedule::new(Trigger::Cron {
        expression: "0 0 * * *".into(),
    });
    schedule.start_time = Some(ts("2026-05-01T00:00:30Z"));
    schedule.end_time = Some(ts("2026-05-04T00:00:00Z"));
    let c = schedule.compile(Timestamp::UNIX_EPOCH).unwrap();
    assert_eq!(
        c.next_after(ts("2026-01-01T00:00:00Z")),
        Some(ts("2026-05-02T00:00:00Z"))
    );
    assert_eq!(
        c.next_after(ts("2026-05-03T00:00:00Z")),
        Some(ts("2026-05-04T00:00:00Z"))
    );
    assert_eq!(c.next_after(ts("2026-05-04T00:00:00Z")), None);
    assert_eq!(c.next_after(ts("2027-01-01T00:00:00Z")), None);
    assert_eq!(
        c.count_between(ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z")),
        3
    );
}

#[test]
fn recurrence_every_two_hours() {
    let schedule = Schedule::new(recurrence(Frequency::Hour, 2, None));
    let c = schedule.compile(ts("2026-01-01T10:30:00Z")).unwrap();
    assert_eq!(
        next_n(&c, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-01T10:30:00Z",
            "2026-01-01T12:30:00Z",
            "2026-01-01T14:30:00Z"
        ]
    );
    assert_eq!(
        c.next_after(ts("2026-01-01T11:00:00Z")),
        Some(ts("2026-01-01T12:30:00Z"))
    );
    assert_eq!(
        c.count_between(ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z")),
        7
    );
    // an anchor with seconds is rounded up to the minute
    let c = schedule.compile(ts("2026-01-01T10:30:05Z")).unwrap();
    assert_eq!(
        c.next_after(ts("2026-01-01T00:00:00Z")),
        Some(ts("2026-01-01T10:31:00Z"))
    );
    // start_time is the anchor when given
    let mut schedule = Schedule::new(recurrence(Frequency::Minute, 45, None));
    schedule.start_time = Some(ts("2026-02-01T00:00:00Z"));
    let c = schedule.compile(ts("2030-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        next_n(&c, "2026-01-01T00:00:00Z", 2),
        ["2026-02-01T00:00:00Z", "2026-02-01T00:45:00Z"]
    );
}

#[test]
fn recurrence_weekly_monday_and_thursday() {
    let pinned = RecurrenceSchedule {
        hours: vec![9],
        minutes: vec![15],
        week_days: vec![Weekday::Monday, Weekday::Thursday],
        month_days: vec![],
    };
    // anchored on Wednesday 2026-03-04
    let anchor = ts("2026-03-04T12:00:00Z");
    let c = Schedule::new(recurrence(Frequency::Week, 1, Some(pinned.clone())))
        .compile(anchor)
        .unwrap();
    assert_eq!(
        next_n(&c, "2026-03-01T00:00:00Z", 4),
        [
            "2026-03-05T09:15:00Z",
            "2026-03-09T09:15:00Z",
            "2026-03-12T09:15:00Z",
            "2026-03-16T09:15:00Z"
        ]
    );
    let c = Schedule::new(recurrence(Frequency::Week, 2, Some(pinned)))
        .compile(anchor)
        .unwrap();
    assert_eq!(
        next_n(&c, "2026-03-01T00:00:00Z", 3),
        [
            "2026-03-05T09:15:00Z",
            "2026-03-16T09:15:00Z",
            "2026-03-19T09:15:00Z"
        ]
    );
    // local times in the schedule's time zone
    let mut berlin = Schedule::new(recurrence(
        Frequency::Week,
        1,
        Some(RecurrenceSchedule {
            hours: vec![9],
            minutes: vec![15],
            ..Default::default()
        }),
    ));
    berlin.time_zone = "Europe/Berlin".into();
    let c = berlin.compile(anchor).unwrap();
    // the anchor's weekday (Wednesday) by default
    assert_eq!(
        next_n(&c, "2026-03-01T00:00:00Z", 2),
        ["2026-03-11T08:15:00Z", "2026-03-18T08:15:00Z"]
    );
}

#[test]
fn recurrence_monthly_on_day_31() {
    let pinned = RecurrenceSchedule {
        hours: vec![8],
        minutes: vec![0],
        month_days: vec![31],
        ..Default::default()
    };
    let c = Schedule::new(recurrence(Frequency::Month, 1, Some(pinned)))
        .compile(ts("2026-01-01T00:00:00Z"))
        .unwrap();
    let months: Vec<String> = next_n(&c, "2026-01-01T00:00:00Z", 7)
        .iter()
        .map(|t| t[..10].to_string())
        .collect();
    assert_eq!(
        months,
        [
            "2026-01-31",
            "2026-03-31",
            "2026-05-31",
            "2026-07-31",
            "2026-08-31",
            "2026-10-31",
            "2026-12-31"
        ]
    );
    // the anchor's day and time by default, every 3 months
    let c = Schedule::new(recurrence(Frequency::Month, 3, None))
        .compile(ts("2026-01-15T06:45:00Z"))
        .unwrap();
    assert_eq!(
        next_n(&c, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-15T06:45:00Z",
            "2026-04-15T06:45:00Z",
            "2026-07-15T06:45:00Z"
        ]
    );
    // day 31 every 12 months from April never comes
    let never = RecurrenceSchedule {
        month_days: vec![31],
        ..Default::default()
    };
    let err = Schedule::new(recurrence(Frequency::Month, 12, Some(never)))
        .compile(ts("2026-04-01T00:00:00Z"))
        .unwrap_err();
    assert!(matches!(err, ScheduleError::NeverFires(_)), "{err}");
}

#[test]
fn recurrence_daily_defaults_to_the_anchor_time() {
    let c = Schedule::new(recurrence(Frequency::Day, 3, None))
        .compile(ts("2026-01-01T09:45:00Z"))
        .unwrap();
    assert_eq!(
        next_n(&c, "2025-12-01T00:00:00Z", 3),
        [
            "2026-01-01T09:45:00Z",
            "2026-01-04T09:45:00Z",
            "2026-01-07T09:45:00Z"
        ]
    );
    let twice = RecurrenceSchedule {
        hours: vec![17, 9],
        ..Default::default()
    };
    let c = Schedule::new(recurrence(Frequency::Day, 1, Some(twice)))
        .compile(ts("2026-01-01T10:00:00Z"))
        .unwrap();
    assert_eq!(
        next_n(&c, "2025-12-01T00:00:00Z", 3),
        [
            "2026-01-01T17:00:00Z",
            "2026-01-02T09:00:00Z",
            "2026-01-02T17:00:00Z"
        ]
    );
}

#[test]
fn compile_errors() {
    let mut schedule = Schedule::new(Trigger::Cron {
        expression: "0 2 * * *".into(),
    });
    schedule.time_zone = "Mars/Base".into();
    let err = schedule.compile(Timestamp::UNIX_EPOCH).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown time zone 'Mars/Base': use an IANA name such as Europe/Berlin or UTC"
    );

    let mut schedule = Schedule::new(Trigger::Cron {
        expression: "0 2 * * *".into(),
    });
    schedule.start_time = Some(ts("2026-02-01T00:00:00Z"));
    schedule.end_time = Some(ts("2026-01-01T00:00:00Z"));
    let err = schedule.compile(Timestamp::UNIX_EPOCH).unwrap_err();
    assert_eq!(
        err.to_string(),
        "end_time 2026-01-01T00:00:00Z is before start_time 2026-02-01T00:00:00Z"
    );

    let cron_err = Schedule::new(Trigger::Cron {
        expression: "0 25 * * *".into(),
    })
    .compile(Timestamp::UNIX_EPOCH);
    assert_eq!(
        cron_err.unwrap_err().to_string(),
        "cron field 'hour' (2nd): '25' is out of range 0-23"
    );

    let anchor = Timestamp::UNIX_EPOCH;
    let compile = |trigger| {
        Schedule::new(trigger)
            .compile(anchor)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        compile(recurrence(Frequency::Day, 0, None)),
        "recurrence interval must be at least 1"
    );
    let hours = RecurrenceSchedule {
        hours: vec![24],
        ..Default::default()
    };
    assert_eq!(
        compile(recurrence(Frequency::Day, 1, Some(hours))),
        "recurrence schedule hours: 24 is out of range 0-23"
    );
    let minutes = RecurrenceSchedule {
        minutes: vec![60],
        ..Default::default()
    };
    assert_eq!(
        compile(recurrence(Frequency::Week, 1, Some(minutes))),
        "recurrence schedule minutes: 60 is out of range 0-59"
    );
    let days = RecurrenceSchedule {
        month_days: vec![0],
        ..Default::default()
    };
    assert_eq!(
        compile(recurrence(Frequency::Month, 1, Some(days))),
        "recurrence schedule month_days: 0 is out of range 1-31"
    );
    let week_days = RecurrenceSchedule {
        week_days: vec![Weekday::Monday],
        ..Default::default()
    };
    assert_eq!(
        compile(recurrence(Frequency::Day, 1, Some(week_days))),
        "recurrence schedule week_days does not apply to frequency 'day' (only to week)"
    );
    let hours = RecurrenceSchedule {
        hours: vec![1],
        ..Default::default()
    };
    assert_eq!(
        compile(recurrence(Frequency::Hour, 1, Some(hours))),
        "recurrence schedule hours does not apply to frequency 'hour' (only to day, week and month)"
    );
    // an empty schedule is fine anywhere
    let empty = Some(RecurrenceSchedule::default());
    assert!(
        Schedule::new(recurrence(Frequency::Minute, 5, empty))
            .compile(anchor)
            .is_ok()
    );
}

#[test]
fn ticks_between_keeps_the_last() {
    let c = cron("* * * * *");
    let (after, until) = (ts("2026-04-01T00:00:00Z"), ts("2026-05-01T00:00:00Z"));
    let last = c.ticks_between(after, until, 3);
    assert_eq!(
        last,
        [
            ts("2026-04-30T23:58:00Z"),
            ts("2026-04-30T23:59:00Z"),
            ts("2026-05-01T00:00:00Z")
        ]
    );
    assert_eq!(c.count_between(after, until), 30 * 24 * 60);
    assert!(c.ticks_between(after, until, 0).is_empty());
    assert_eq!(
        cron("0 0 1 * *").ticks_between(after, until, 10),
        [ts("2026-05-01T00:00:00Z")]
    );
}

#[test]
fn serde_config() {
    let schedule: Schedule = serde_json::from_str(
        r#"{"trigger": {"type": "cron", "expression": "0 2 * * *"}, "time_zone": "Europe/Berlin"}"#,
    )
    .unwrap();
    assert_eq!(schedule.describe(), r#"cron "0 2 * * *" (Europe/Berlin)"#);
    assert!(schedule.compile(Timestamp::UNIX_EPOCH).is_ok());

    let schedule: Schedule = serde_json::from_str(
        r#"{"trigger": {"type": "recurrence", "frequency": "week",
            "schedule": {"hours": [9], "minutes": [15], "week_days": ["monday", "thursday"]}},
            "start_time": "2026-03-04T12:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(schedule.time_zone, "UTC");
    assert_eq!(schedule.start_time, Some(ts("2026-03-04T12:00:00Z")));
    let Trigger::Recurrence { interval, .. } = &schedule.trigger else {
        panic!()
    };
    assert_eq!(*interval, 1);
    assert_eq!(
        schedule.trigger.describe(),
        "every week on monday, thursday at 09:15"
    );
    let json = serde_json::to_string(&schedule).unwrap();
    assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), schedule);

    let unknown = serde_json::from_str::<Schedule>(
        r#"{"trigger": {"type": "cron", "expression": "* * * * *", "tz": "x"}}"#,
    );
    assert!(unknown.unwrap_err().to_string().contains("unknown field"));
    let unknown = serde_json::from_str::<Schedule>(
        r#"{"trigger": {"type": "cron", "expression": "* * * * *"}, "zone": "x"}"#,
    );
    assert!(unknown.is_err());
    let bad_day = serde_json::from_str::<Schedule>(
        r#"{"trigger": {"type": "recurrence", "frequency": "week", "schedule": {"week_days": ["Monday"]}}}"#,
    );
    assert!(bad_day.is_err());

    assert_eq!(
        serde_json::from_str::<Catchup>(r#""all""#).unwrap(),
        Catchup::All
    );
    assert_eq!(
        serde_json::from_str::<Overlap>(r#""queue""#).unwrap(),
        Overlap::Queue
    );
    assert_eq!(
        (Catchup::default(), Overlap::default()),
        (Catchup::Latest, Overlap::Skip)
    );
    assert_eq!(
        recurrence(Frequency::Hour, 2, None).to_string(),
        "every 2 hours"
    );
}

const GRACE: SignedDuration = SignedDuration::from_mins(5);

#[test]
fn due_with_three_missed_ticks() {
    let c = cron("0 * * * *");
    let (cursor, now) = (ts("2026-04-01T00:00:00Z"), ts("2026-04-01T03:30:00Z"));
    let latest = due(&c, cursor, now, Catchup::Latest, 0, GRACE);
    assert_eq!(
        latest,
        Due {
            run: vec![ts("2026-04-01T03:00:00Z")],
            missed: 2,
            cursor: ts("2026-04-01T03:00:00Z")
        }
    );
    let none = due(&c, cursor, now, Catchup::None, 0, GRACE);
    assert_eq!(
        none,
        Due {
            run: vec![],
            missed: 3,
            cursor: ts("2026-04-01T03:00:00Z")
        }
    );
    let all = due(&c, cursor, now, Catchup::All, 5, GRACE);
    assert_eq!(
        all.run,
        [
            ts("2026-04-01T01:00:00Z"),
            ts("2026-04-01T02:00:00Z"),
            ts("2026-04-01T03:00:00Z")
        ]
    );
    assert_eq!((all.missed, all.cursor), (0, ts("2026-04-01T03:00:00Z")));
    // planning again from the returned cursor plans nothing
    for catchup in [Catchup::Latest, Catchup::None, Catchup::All] {
        let again = due(&c, latest.cursor, now, catchup, 5, GRACE);
        assert_eq!(
            again,
            Due {
                run: vec![],
                missed: 0,
                cursor: latest.cursor
            }
        );
    }
}

#[test]
fn due_on_time() {
    let c = cron("0 * * * *");
    let (cursor, now) = (ts("2026-04-01T00:00:00Z"), ts("2026-04-01T03:02:00Z"));
    let none = due(&c, cursor, now, Catchup::None, 0, GRACE);
    assert_eq!(
        none,
        Due {
            run: vec![ts("2026-04-01T03:00:00Z")],
            missed: 2,
            cursor: ts("2026-04-01T03:00:00Z")
        }
    );
    // exactly at the grace limit is on time
    let edge = due(
        &c,
        cursor,
        ts("2026-04-01T03:05:00Z"),
        Catchup::None,
        0,
        GRACE,
    );
    assert_eq!(edge.run, [ts("2026-04-01T03:00:00Z")]);
    let late = due(
        &c,
        cursor,
        ts("2026-04-01T03:05:01Z"),
        Catchup::None,
        0,
        GRACE,
    );
    assert!(late.run.is_empty());
    // nothing due yet, or a clock that went backwards
    let quiet = due(
        &c,
        ts("2026-04-01T03:00:00Z"),
        ts("2026-04-01T03:59:59Z"),
        Catchup::All,
        0,
        GRACE,
    );
    assert_eq!(
        quiet,
        Due {
            run: vec![],
            missed: 0,
            cursor: ts("2026-04-01T03:00:00Z")
        }
    );
    let backwards = due(&c, now, cursor, Catchup::Latest, 0, GRACE);
    assert_eq!(
        backwards,
        Due {
            run: vec![],
            missed: 0,
            cursor: now
        }
    );
}

#[test]
fn due_all_is_bounded() {
    let c = cron("0 * * * *");
    let (cursor, now) = (ts("2026-04-01T00:00:00Z"), ts("2026-04-01T10:30:00Z"));
    let expected: Vec<Timestamp> = (6..=10)
        .map(|h| ts(&format!("2026-04-01T{h:02}:00:00Z")))
        .collect();
    let all = due(&c, cursor, now, Catchup::All, 5, GRACE);
    assert_eq!((all.run.clone(), all.missed), (expected.clone(), 5));
    let default = due(&c, cursor, now, Catchup::All, 0, GRACE);
    assert_eq!(default.run, expected);
    assert_eq!(DEFAULT_MAX_CATCHUP_RUNS, 5);
}

#[test]
fn due_after_a_long_downtime() {
    // a minutely schedule down for 30 days: found from the windows near now, counted in full
    let c = cron("* * * * *");
    let (cursor, now) = (ts("2026-04-01T00:00:00Z"), ts("2026-05-01T00:00:30Z"));
    let plan = due(&c, cursor, now, Catchup::Latest, 0, GRACE);
    assert_eq!(plan.run, [ts("2026-05-01T00:00:00Z")]);
    assert_eq!(plan.missed, 30 * 24 * 60 - 1);
    // a yearly schedule down for years
    let c = cron("@yearly");
    let plan = due(
        &c,
        ts("2020-06-01T00:00:00Z"),
        ts("2026-06-01T00:00:00Z"),
        Catchup::All,
        3,
        GRACE,
    );
    assert_eq!(
        plan.run,
        [
            ts("2024-01-01T00:00:00Z"),
            ts("2025-01-01T00:00:00Z"),
            ts("2026-01-01T00:00:00Z")
        ]
    );
    assert_eq!(plan.missed, 3);
}

#[test]
fn matches_a_minute_by_minute_search() {
    use jiff::civil::Weekday as W;
    // brute force in UTC over 70 days, checking the fields with Jiff's calendar
    let expressions = [
        "*/7 3,15 * * *",
        "0 0 13 * 5",
        "15 10 1-7 * mon",
        "0 12 */10 feb,mar *",
        "59 23 31 * *",
    ];
    for expression in expressions {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let c = cron(expression);
        let mut t = ts("2026-01-20T00:00:00Z");
        let mut expected = Vec::new();
        while t < ts("2026-03-31T00:00:00Z") {
            t += SignedDuration::from_mins(1);
            let dt = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
            let minute_ok = field_has(fields[0], i64::from(dt.minute()), 0, 59, &[]);
            let hour_ok = field_has(fields[1], i64::from(dt.hour()), 0, 23, &[]);
            let dow = match dt.weekday() {
                W::Sunday => 0,
                other => other.to_monday_one_offset(),
            };
            let dom_ok = field_has(fields[2], i64::from(dt.day()), 1, 31, &[]);
            let dow_ok = field_has(
                fields[4],
                i64::from(dow),
                0,
                6,
                &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            );
            let month_ok = field_has(
                fields[3],
                i64::from(dt.month()),
                1,
                12,
                &[
                    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                    "dec",
                ],
            );
            let day_ok = if fields[2].starts_with('*') || fields[4].starts_with('*') {
                dom_ok && dow_ok
            } else {
                dom_ok || dow_ok
            };
            if minute_ok && hour_ok && month_ok && day_ok {
                expected.push(t);
            }
        }
        let got = c.ticks_between(
            ts("2026-01-20T00:00:00Z"),
            ts("2026-03-31T00:00:00Z"),
            usize::MAX,
        );
        assert!(!expected.is_empty(), "{expression}");
        assert_eq!(got, expected, "{expression}");
    }
}

/// Whether a simple field (lists, ranges, `*/n`, names) contains `value`: an independent reading.
fn field_has(field: &str, value: i64, min: i64, max: i64, names: &[&str]) -> bool {
    let number = |s: &str| -> i64 {
        s.parse()
            .unwrap_or_else(|_| names.iter().position(|n| *n == s).unwrap() as i64 + min)
    };
    field.split(',').any(|item| {
        let (base, step) = item
            .split_once('/')
            .map_or((item, 1), |(b, s)| (b, s.parse().unwrap()));
        let (low, high) = match base {
            "*" => (min, max),
            _ => match base.split_once('-') {
                Some((a, b)) => (number(a), number(b)),
                None => (number(base), number(base)),
            },
        };
        (low..=high).step_by(step).any(|v| v == value)
    })
}

#[test]
fn the_tz_database_is_embedded() {
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    let new_york = bundled.get("America/New_York").expect("bundled tzdb");
    let spring = new_york
        .following(ts("2026-03-01T00:00:00Z"))
        .next()
        .unwrap();
    assert_eq!(spring.timestamp(), ts("2026-03-08T07:00:00Z"));
    assert!(bundled.get("Europe/Berlin").is_ok());
}

#[test]
fn daily_recurrence_across_dst() {
    // every day at 02:30 New York time: the gap day fires at 03:00 EDT, the fold day at 01:30 EST
    let mut schedule = Schedule::new(recurrence(
        Frequency::Day,
        1,
        Some(RecurrenceSchedule {
            hours: vec![2],
            minutes: vec![30],
            ..Default::default()
        }),
    ));
    schedule.time_zone = "America/New_York".into();
    let c = schedule.compile(ts("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        next_n(&c, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    schedule.trigger = recurrence(
        Frequency::Day,
        1,
        Some(RecurrenceSchedule {
            hours: vec![1],
            minutes: vec![30],
            ..Default::default()
        }),
    );
    let c = schedule.compile(ts("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        next_n(&c, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"]
    );
}
