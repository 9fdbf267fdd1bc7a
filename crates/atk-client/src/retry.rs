//! How often and how soon a call that may be repeated is sent again.

use std::time::Duration;

/// Retries with exponential backoff and jitter: the `n`th retry waits
/// between half and all of `first_delay × 2ⁿ`, capped at 2 s (or at
/// `first_delay`, if longer).
///
/// ```
/// use atk_client::Retry;
///
/// assert_eq!(Retry::default(), Retry::with(2, std::time::Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub(crate) retries: u32,
    first_delay: Duration,
    max_delay: Duration,
}

impl Default for Retry {
    /// Two retries, from 100 ms, at most 2 s apart.
    fn default() -> Self {
        Self {
            retries: 2,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl Retry {
    /// Never retry.
    ///
    /// ```
    /// let retry = atk_client::Retry::none();
    /// assert_eq!(retry, atk_client::Retry::with(0, std::time::Duration::ZERO));
    /// ```
    pub fn none() -> Self {
        Self::with(0, Duration::ZERO)
    }

    /// `retries` retries, the first after about `first_delay`.
    ///
    /// ```
    /// let retry = atk_client::Retry::with(5, std::time::Duration::from_millis(50));
    /// ```
    pub fn with(retries: u32, first_delay: Duration) -> Self {
        Self {
            retries,
            first_delay,
            max_delay: Duration::from_secs(2).max(first_delay),
        }
    }

    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .first_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        // Jitter spreads the retries of many clients after one outage.
        let mut byte = [0u8; 1];
        let share = match getrandom::fill(&mut byte) {
            Ok(()) => 0.5 + f64::from(byte[0]) / 510.0,
            Err(_) => 1.0,
        };
        full.mul_f64(share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_jitter_and_stop_at_the_cap() {
        let retry = Retry::with(10, Duration::from_millis(100));
        for attempt in 0..10 {
            let full = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(2));
            let delay = retry.delay(attempt);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
    }
}
