//! Where time comes from: the one source of "now" for whatever waits, expires or times
//! out, so that tests move it by hand instead of sleeping.
//!
//! Within a process, time comes from the monotonic clock, so a step of the system clock
//! (NTP, a suspended laptop, an operator) changes nothing: read straight from the wall clock,
//! a forward step made every in-flight message visible at once and spent a receive of each
//! (repeated steps could dead-letter healthy messages), and a backward step hid them. The
//! times the database keeps stay wall-clock milliseconds, and a process starts its clock no
//! earlier than the latest of them, so that a restart after the clock went back does not hide
//! what was queued before.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> i64;

    /// The same, for the places that count in unsigned milliseconds (a time before 1970 is 0).
    fn now_ms_u64(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0)
    }
}

/// This process's clock: the wall clock when it was first read, advanced by the monotonic
/// clock since (a [`ProcessClock`] shared by the whole process). What the functions and the
/// runner count on unless a test hands them another clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        static PROCESS: LazyLock<ProcessClock> = LazyLock::new(|| ProcessClock::not_before(0));
        PROCESS.now_ms()
    }
}

/// The wall clock at start, advanced by the monotonic clock since.
#[derive(Debug)]
pub struct ProcessClock {
    base_ms: i64,
    started: Instant,
}

impl ProcessClock {
    /// Starts at the wall clock's time, or at `floor_ms` if the wall clock is behind it (the
    /// latest time the database holds).
    pub fn not_before(floor_ms: i64) -> Self {
        Self {
            base_ms: wall_clock_ms().max(floor_ms),
            started: Instant::now(),
        }
    }
}

impl Clock for ProcessClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.base_ms.saturating_add(elapsed)
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A clock that moves only when told: tests pass a visibility timeout without sleeping.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// A clock at the wall clock's time now, plus `offset_ms`.
    pub fn at_wall_clock_plus(offset_ms: i64) -> Self {
        Self::at(wall_clock_ms() + offset_ms)
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_clock_never_starts_behind_the_times_the_database_holds() {
        let an_hour_ahead = wall_clock_ms() + 3_600_000;
        let clock = ProcessClock::not_before(an_hour_ahead);
        assert!(clock.now_ms() >= an_hour_ahead);
    }

    #[test]
    fn a_process_clock_only_moves_forward() {
        let clock = ProcessClock::not_before(0);
        let mut last = clock.now_ms();
        for _ in 0..1000 {
            let now = clock.now_ms();
            assert!(now >= last);
            last = now;
        }
    }
}
