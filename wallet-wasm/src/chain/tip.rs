//! The highest tip this wallet has seen, and the rule every new tip reading must pass before
//! the wallet signs, confirms or moves an exit on it.
//!
//! A chain source that cannot be read gives no height at all (never 0). A source that says the
//! tip is below what this wallet has already seen is behind or lying: a few blocks are a lagging
//! server (the wallet goes on with the highest tip it saw, which only brings deadlines closer),
//! more are refused.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// How far a reading may fall below the highest tip seen and still be taken as a lagging
/// server (the wallet then uses the highest tip it saw).
pub const LAG_BLOCKS: u32 = 2;

/// A reading below the highest tip seen by more than [`LAG_BLOCKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("says the tip is block {got}, {} blocks below block {seen} that this wallet has already seen: it is behind or not telling the truth", seen - got)]
pub struct Backwards {
    /// The tip the source gave.
    pub got: u32,
    /// The highest tip this wallet saw before.
    pub seen: u32,
}

/// The rule: the height to go on with after reading `tip`, given the highest tip seen before.
pub fn judge(seen: Option<u32>, tip: u32) -> Result<u32, Backwards> {
    match seen {
        Some(seen) if tip < seen && seen - tip > LAG_BLOCKS => Err(Backwards { got: tip, seen }),
        Some(seen) => Ok(seen.max(tip)),
        None => Ok(tip),
    }
}

/// The highest tip seen, shared by every chain read of one wallet (clones share it).
#[derive(Debug, Clone, Default)]
pub struct TipWatch(Arc<AtomicU32>);

impl TipWatch {
    /// A watch that has seen nothing yet.
    pub fn new() -> TipWatch {
        TipWatch::default()
    }

    /// A watch that starts from a height the wallet knows was reached (e.g. a stored
    /// factory's creation height).
    pub fn starting_at(height: u32) -> TipWatch {
        TipWatch(Arc::new(AtomicU32::new(height)))
    }

    /// The highest tip seen (`None` before any).
    pub fn highest(&self) -> Option<u32> {
        Some(self.0.load(Ordering::SeqCst)).filter(|h| *h > 0)
    }

    /// Raises the highest tip seen to at least `height`.
    pub fn saw(&self, height: u32) {
        self.0.fetch_max(height, Ordering::SeqCst);
    }

    /// Judges a new reading (see [`judge`]) and remembers it: the height to go on with.
    pub fn check(&self, tip: u32) -> Result<u32, Backwards> {
        let height = judge(self.highest(), tip)?;
        self.saw(height);
        Ok(height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reading_is_taken() {
        assert_eq!(judge(None, 0), Ok(0));
        assert_eq!(judge(None, 850_000), Ok(850_000));
    }

    #[test]
    fn a_rising_or_equal_tip_is_taken() {
        assert_eq!(judge(Some(100), 100), Ok(100));
        assert_eq!(judge(Some(100), 107), Ok(107));
    }

    #[test]
    fn a_lagging_server_never_lowers_the_height() {
        assert_eq!(judge(Some(100), 99), Ok(100));
        assert_eq!(judge(Some(100), 100 - LAG_BLOCKS), Ok(100));
    }

    #[test]
    fn a_tip_further_back_is_refused_with_both_heights() {
        let e = judge(Some(100), 100 - LAG_BLOCKS - 1).expect_err("too far back");
        assert_eq!(e, Backwards { got: 97, seen: 100 });
        let words = e.to_string();
        assert!(
            words.contains("block 97") && words.contains("block 100"),
            "{words}"
        );
        assert_eq!(judge(Some(900), 0), Err(Backwards { got: 0, seen: 900 }));
    }

    #[test]
    fn the_watch_keeps_the_highest_and_refuses_a_lie_after_it() {
        let watch = TipWatch::new();
        assert_eq!(watch.highest(), None);
        assert_eq!(watch.check(200), Ok(200));
        let shared = watch.clone();
        assert_eq!(shared.check(205), Ok(205));
        assert_eq!(watch.highest(), Some(205));
        assert_eq!(watch.check(204), Ok(205));
        assert!(watch.check(100).is_err());
        // A refused reading changes nothing.
        assert_eq!(watch.highest(), Some(205));
        assert_eq!(
            TipWatch::starting_at(50).check(10),
            Err(Backwards { got: 10, seen: 50 })
        );
    }
}
