//! Per-connection message rate limit: a token bucket.

use std::time::Instant;

/// Frames a connection may send per second on average, and in a burst.
const RATE_PER_SEC: f64 = 50.0;
const RATE_BURST: f64 = 200.0;

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

    /// Whether one more frame is allowed now.
    pub(super) fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * RATE_PER_SEC)
            .min(RATE_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
