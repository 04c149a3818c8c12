//! Per-connection message rate limit: a token bucket that paces reading.
//!
//! A connection over its rate is not refused frames (a dropped channel message would stall its
//! commitment round): the connection task waits for the bucket to refill before it reads on,
//! so a flood costs the flooder time, and the LSP never more than the rate per connection.

use std::time::{Duration, Instant};

/// Frames a connection may send per second on average, and in a burst.
const RATE_PER_SEC: f64 = 200.0;
const RATE_BURST: f64 = 400.0;

/// Token bucket limiting one connection's message rate.
pub(super) struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub(super) fn new() -> Self {
        RateLimit {
            tokens: RATE_BURST,
            last: Instant::now(),
        }
    }

    /// Takes one token; returns how long to wait first if the bucket was empty.
    pub(super) fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * RATE_PER_SEC)
            .min(RATE_BURST);
        self.last = now;
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / RATE_PER_SEC))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_burst_passes_then_reading_is_paced() {
        let mut r = super::RateLimit::new();
        for _ in 0..(super::RATE_BURST as usize - 5) {
            assert_eq!(r.take(), None);
        }
        let waits: Vec<_> = (0..20).filter_map(|_| r.take()).collect();
        assert!(!waits.is_empty() && waits.iter().all(|w| w.as_millis() < 200));
    }
}
