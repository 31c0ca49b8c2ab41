//! The one place that answers "what time is it?", so that tests (and billing re-runs) can move
//! time instead of waiting for it.

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::sync::Mutex;

/// A source of the current time, in whole milliseconds (the precision rollcall stores).
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        now.duration_trunc(Duration::milliseconds(1)).unwrap_or(now)
    }
}

/// A clock that stands still until told to move: for tests and for replaying a past instant.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    #[test]
    fn the_system_clock_has_millisecond_precision() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000_000, 0);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let t = Utc.with_ymd_and_hms(2026, 10, 31, 14, 59, 59).unwrap();
        let c = ManualClock::new(t);
        assert_eq!(c.now(), t);
        c.advance(Duration::seconds(1));
        assert_eq!(c.now(), t + Duration::seconds(1));
    }
}
