//! When the Lightning node syncs with the chain.
//!
//! LDK's own background sync is off: the LSP already reads the tip every second
//! (`crate::tip`), so the node syncs as soon as a new block shows there, and at least every
//! [`RESYNC`] for what has no block yet (unconfirmed coins, fee estimates). A failed sync is
//! retried after [`BACKOFF`], not at every tick. The schedule is plain data over the time
//! passed in, so its rules are tested without a node.

use std::time::{Duration, Instant};

/// The longest the node goes without syncing.
pub(crate) const RESYNC: Duration = Duration::from_secs(30);
/// How long after a failed sync the next one is tried.
pub(crate) const BACKOFF: Duration = Duration::from_secs(10);
/// How often the schedule is looked at.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// What the last syncs did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncSchedule {
    /// The tip at the start of the last sync that succeeded.
    synced_tip: Option<u32>,
    /// When the last sync started.
    last_attempt: Option<Instant>,
    /// Whether the last sync failed.
    failed: bool,
}

impl SyncSchedule {
    /// Whether to sync now, with the LSP's tip at `tip` (if it has one).
    pub(crate) fn due(&self, tip: Option<u32>, now: Instant) -> bool {
        let Some(last) = self.last_attempt else {
            return true;
        };
        let since = now.saturating_duration_since(last);
        if self.failed {
            return since >= BACKOFF;
        }
        since >= RESYNC || (tip.is_some() && tip != self.synced_tip)
    }

    /// A sync that started at `now` with the tip at `tip` ended, successfully or not.
    pub(crate) fn record(&mut self, tip: Option<u32>, now: Instant, ok: bool) {
        self.last_attempt = Some(now);
        self.failed = !ok;
        if ok {
            self.synced_tip = tip.or(self.synced_tip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_at_start_at_each_new_block_and_at_least_every_resync() {
        let t0 = Instant::now();
        let mut s = SyncSchedule::default();
        assert!(
            s.due(None, t0),
            "the first sync runs at once, even without a tip"
        );
        s.record(Some(100), t0, true);
        assert!(!s.due(Some(100), t0 + TICK), "same tip, nothing to do");
        assert!(s.due(Some(101), t0 + TICK), "a new block");
        s.record(Some(101), t0 + TICK, true);
        assert!(
            !s.due(None, t0 + TICK * 2),
            "no tip read: wait for the resync"
        );
        assert!(!s.due(Some(101), t0 + TICK + RESYNC - TICK));
        assert!(s.due(Some(101), t0 + TICK + RESYNC));
    }

    #[test]
    fn a_failed_sync_backs_off_even_when_blocks_arrive() {
        let t0 = Instant::now();
        let mut s = SyncSchedule::default();
        s.record(Some(100), t0, false);
        assert!(
            !s.due(Some(101), t0 + TICK),
            "a new block does not override the backoff"
        );
        assert!(s.due(Some(101), t0 + BACKOFF));
        s.record(Some(101), t0 + BACKOFF, true);
        assert!(!s.due(Some(101), t0 + BACKOFF + TICK));
    }
}
