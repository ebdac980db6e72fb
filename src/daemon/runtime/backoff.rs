//! How soon a crashed machine is started again: at once the first time, then after a delay
//! that doubles with each crash in a row, up to a cap; a process that stayed up long enough
//! starts the count again.

use std::time::Duration;

/// A process that ran this long before exiting resets the backoff.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Backoff doubles from this after the first (immediate) restart...
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// ...up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The delay before restart number `n` in a row: at once, then doubling up to a cap.
pub(super) fn backoff(n: u32) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    BACKOFF_BASE
        .saturating_mul(1 << (n - 2).min(16))
        .min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_restarts_at_once_then_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(6), Duration::from_millis(3200));
        assert_eq!(backoff(20), BACKOFF_CAP);
    }
}
