//! Which ticks to run when the host wakes up: catch-up after downtime or a clock jump
//! ([`due`], [`Catchup`]), and what to do when a run is still going ([`Overlap`]).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::schedule::{Compiled, MAX_COUNTED_TICKS};

/// How many missed ticks [`Catchup::All`] runs when asked for 0.
pub const DEFAULT_MAX_CATCHUP_RUNS: usize = 5;

/// What to do with ticks that were missed (older than the grace period when planned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Catchup {
    /// Run the latest due tick, on time or not; the older ones are missed.
    #[default]
    Latest,
    /// Run only an on-time tick (the latest); missed ticks are skipped.
    None,
    /// Run the most recent due ticks, up to a bound, in order; older ones are missed.
    All,
}

/// What to do when a tick comes while the schedule's previous run is still going (applied by
/// the host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Drop the new tick: at most one run at a time.
    #[default]
    Skip,
    /// Start the new run when the previous one ends.
    Queue,
    /// Start the new run right away, alongside the previous one.
    Allow,
}

/// The plan for one wake-up: the ticks to run, how many were dropped, and the new cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The ticks to start runs for, oldest first.
    pub run: Vec<Timestamp>,
    /// How many due ticks are not run (saturating at [`MAX_COUNTED_TICKS`]).
    pub missed: u64,
    /// The latest tick considered, or the cursor given when there was none: pass it back next
    /// time so no tick is planned twice.
    pub cursor: Timestamp,
}

/// Plans the ticks in `(cursor, now]`. A tick is on time when `now - tick <= grace`, missed
/// otherwise; `catchup` decides which run (`max_catchup_runs` bounds [`Catchup::All`], 0
/// meaning [`DEFAULT_MAX_CATCHUP_RUNS`]). Cost grows with the ticks near `now`, not with the
/// length of the downtime beyond counting.
pub fn due(
    compiled: &Compiled,
    cursor: Timestamp,
    now: Timestamp,
    catchup: Catchup,
    max_catchup_runs: usize,
    grace: SignedDuration,
) -> Due {
    let keep = match catchup {
        Catchup::All if max_catchup_runs == 0 => DEFAULT_MAX_CATCHUP_RUNS,
        Catchup::All => max_catchup_runs,
        Catchup::Latest | Catchup::None => 1,
    };
    if now <= cursor {
        return Due {
            run: Vec::new(),
            missed: 0,
            cursor,
        };
    }
    // the last `keep` ticks, looked for in windows growing back from `now`
    let mut window: i64 = 3600;
    let (recent, in_window, window_start) = loop {
        let start = now
            .as_second()
            .checked_sub(window)
            .and_then(|s| Timestamp::from_second(s).ok())
            .filter(|start| *start > cursor)
            .unwrap_or(cursor);
        let (recent, count) = compiled.last_ticks(start, now, keep);
        if recent.len() >= keep || start == cursor {
            break (recent, count, start);
        }
        window = window.saturating_mul(16);
    };
    let older = if window_start > cursor {
        compiled.count_between(cursor, window_start)
    } else {
        0
    };
    let total = older.saturating_add(in_window).min(MAX_COUNTED_TICKS);
    let on_time = |tick: &Timestamp| now.duration_since(*tick) <= grace;
    let run: Vec<Timestamp> = match catchup {
        Catchup::Latest => recent.last().copied().into_iter().collect(),
        Catchup::None => recent.last().copied().filter(on_time).into_iter().collect(),
        Catchup::All => recent.clone(),
    };
    Due {
        missed: total.saturating_sub(run.len() as u64),
        run,
        cursor: recent.last().copied().unwrap_or(cursor),
    }
}
