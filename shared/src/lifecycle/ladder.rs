//! The LSP's ladder schedule: with an interval of `B` blocks, the LSP starts a new factory (a
//! *rung*) at every height that is a multiple of `B`, with whoever joined it since the last one
//! (or at once, when it fills up).
//!
//! Rungs fall on multiples of `B`, not on "the last rung plus `B`", so anyone can tell the next
//! one from the terms and the tip alone, and a restarted LSP keeps the same timetable without
//! storing one. Factories started `B` blocks apart die `B` blocks apart, so about
//! `lifetime / B` are alive at once. The LSP refuses an interval longer than the dying period
//! (`crate::timing`'s model is checked the same way): every dying period then holds at least
//! one rung for its members to move into.

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

    /// Whether every dying period of `dying_blocks` holds a rung.
    pub fn fits_dying_period(self, dying_blocks: u32) -> bool {
        self.interval <= dying_blocks
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
    fn every_dying_period_holds_a_rung_when_the_interval_fits() {
        for interval in 1..=12 {
            let ladder = Ladder::new(interval).unwrap();
            for dying in 1..=12 {
                // Does every window of `dying` blocks [start, start + dying) hold a multiple?
                let always = (1..50u32)
                    .all(|start| ladder.next_rung(start - 1).to_consensus_u32() < start + dying);
                assert_eq!(
                    ladder.fits_dying_period(dying),
                    always,
                    "{interval} {dying}"
                );
            }
        }
    }
}
