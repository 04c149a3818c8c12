//! The LSP's ladder schedule: with an interval of `B` blocks, the LSP starts a new factory (a
//! *rung*) at every height that is a multiple of `B`, with whoever joined it since the last one
//! (or at once, when it fills up).
//!
//! Rungs fall on multiples of `B`, not on "the last rung plus `B`", so anyone can tell the next
//! one from the terms and the tip alone, and a restarted LSP keeps the same timetable without
//! storing one. Factories started `B` blocks apart die `B` blocks apart, so about
//! `lifetime / B` are alive at once. The LSP refuses an interval that leaves a dying period
//! without a rung early enough for its members to move into and see confirmed before the
//! period ends ([`Ladder::fits_dying_period`]).

use bitcoin::absolute::Height;

/// A ladder with a rung every `interval` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    interval: u32,
}

impl Ladder {
    /// A ladder with a rung every `interval` blocks; `None` for 0 (no schedule: factories
    /// start as people join).
    pub fn new(interval: u32) -> Option<Ladder> {
        (interval > 0).then_some(Ladder { interval })
    }

    /// Blocks between two rungs.
    pub fn interval(self) -> u32 {
        self.interval
    }

    /// The first rung strictly above `tip`: a factory that starts gathering at `tip` starts
    /// signing then.
    pub fn next_rung(self, tip: u32) -> Height {
        let next = (tip / self.interval)
            .saturating_add(1)
            .saturating_mul(self.interval);
        Height::from_consensus(next).unwrap_or(Height::MAX)
    }

    /// Whether every dying period of `dying_blocks` holds a rung whose factory is funded with
    /// `confirmations` before the period ends: a rung falls at most `interval - 1` blocks after
    /// the period starts, and its funding has its confirmations `confirmations` blocks later
    /// at the earliest.
    pub fn fits_dying_period(self, dying_blocks: u32, confirmations: u32) -> bool {
        self.interval.saturating_add(confirmations) <= dying_blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_fall_on_multiples_of_the_interval() {
        assert_eq!(Ladder::new(0), None);
        let ladder = Ladder::new(6).unwrap();
        assert_eq!(ladder.next_rung(0).to_consensus_u32(), 6);
        assert_eq!(ladder.next_rung(5).to_consensus_u32(), 6);
        assert_eq!(ladder.next_rung(6).to_consensus_u32(), 12);
        assert_eq!(ladder.next_rung(u32::MAX), Height::MAX);
    }

    #[test]
    fn every_dying_period_holds_a_rung_funded_in_time_when_the_interval_fits() {
        for interval in 1..=12 {
            let ladder = Ladder::new(interval).unwrap();
            for dying in 1..=14 {
                for confirmations in 0..=3 {
                    // Does every dying period [start, start + dying) hold a rung `r` (the first
                    // multiple at or after `start`) funded by `r + confirmations < start + dying`?
                    let always = (1..50u32).all(|start| {
                        let rung = ladder.next_rung(start - 1).to_consensus_u32();
                        rung + confirmations < start + dying
                    });
                    assert_eq!(
                        ladder.fits_dying_period(dying, confirmations),
                        always,
                        "{interval} {dying} {confirmations}"
                    );
                }
            }
        }
    }
}
