use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

/// Every piece of lifecycle code asks this for "now", so tests can move time
/// instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock, truncated to milliseconds: that is what the stores
/// keep, so a value read back compares equal to the value written.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Read as milliseconds directly: `Utc::now().timestamp_millis()`
        // turned the time into a calendar date and back, which cost as much
        // as the rest of a cached verification's bookkeeping.
        let millis = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970: rounded down, as chrono rounds.
            Err(before) => i64::try_from(before.duration().as_nanos().div_ceil(1_000_000))
                .map_or(i64::MIN, |millis| -millis),
        };
        millis_to_time(millis)
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(start.timestamp_millis())),
        }
    }

    pub fn advance(&self, by: TimeDelta) {
        self.millis
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.millis.store(to.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        millis_to_time(self.millis.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the Unix epoch to a UTC time; out-of-range values
/// (only possible from a corrupt store) clamp to the epoch.
pub fn millis_to_time(millis: i64) -> DateTime<Utc> {
    const MILLIS_PER_DAY: i64 = 86_400_000;
    thread_local! {
        /// The last day converted on this thread and its date: nearly every
        /// time read is today, and finding the calendar date of a day is
        /// the costly part of the conversion.
        static LAST_DAY: Cell<Option<(i64, NaiveDate)>> = const { Cell::new(None) };
    }
    let day = millis.div_euclid(MILLIS_PER_DAY);
    let date = LAST_DAY.with(|last| match last.get() {
        Some((cached, date)) if cached == day => Some(date),
        _ => {
            let date = DateTime::from_timestamp(day.checked_mul(86_400)?, 0)?.date_naive();
            last.set(Some((day, date)));
            Some(date)
        }
    });
    let in_day = millis.rem_euclid(MILLIS_PER_DAY);
    // In range by construction: seconds below 86,400, nanoseconds below 10⁹.
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(in_day / 1000).unwrap_or(0),
        u32::try_from(in_day % 1000).unwrap_or(0) * 1_000_000,
    );
    match (date, time) {
        (Some(date), Some(time)) => date.and_time(time).and_utc(),
        _ => DateTime::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn as_chrono_converts(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap_or_default()
    }

    proptest! {
        #[test]
        fn milliseconds_convert_exactly_as_chrono_converts_them(
            // Times near one another (same day, next day) and anywhere,
            // in any order, so the remembered day is both hit and missed.
            base in prop_oneof![any::<i64>(), -100_000_000_000_000_i64..300_000_000_000_000],
            offsets in proptest::collection::vec(-200_000_000_i64..200_000_000, 1..8),
            elsewhere in any::<i64>(),
        ) {
            for millis in offsets
                .iter()
                .map(|offset| base.saturating_add(*offset))
                .chain([elsewhere, base])
            {
                prop_assert_eq!(millis_to_time(millis), as_chrono_converts(millis), "{}", millis);
            }
        }
    }

    #[test]
    fn day_boundaries_and_the_ends_of_the_range_convert_exactly() {
        let day = 86_400_000_i64;
        for millis in [
            0,
            -1,
            1,
            day - 1,
            day,
            -day,
            -day - 1,
            i64::MIN,
            i64::MAX,
            8_210_298_412_799_999,
            8_210_298_412_800_000,
            -8_334_632_851_200_000,
            -8_334_632_851_200_001,
        ] {
            assert_eq!(
                millis_to_time(millis),
                as_chrono_converts(millis),
                "{millis}"
            );
        }
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock_to_the_millisecond() {
        let before = Utc::now().timestamp_millis();
        let read = SystemClock.now();
        let after = Utc::now().timestamp_millis();
        assert_eq!(read.timestamp_subsec_nanos() % 1_000_000, 0);
        assert!((before..=after).contains(&read.timestamp_millis()));
    }
}
