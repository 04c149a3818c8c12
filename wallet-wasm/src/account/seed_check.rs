//! Did the user write the recovery words down? Ask for a few of them, picked at random.

use rand::seq::index::sample;
use rand::{CryptoRng, RngCore};

use crate::keys::Seed;

/// How many words the check asks for.
pub const CHECKED_WORDS: usize = 3;

/// Which words to ask for (1-based positions, ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedCheck {
    positions: [usize; CHECKED_WORDS],
}

/// Why the check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedCheckError {
    /// A word does not match.
    #[error("word {position} is not right; look at what you wrote down and try again")]
    Wrong {
        /// 1-based position of the first wrong word.
        position: usize,
    },
    /// Not every asked word was given.
    #[error("type all {CHECKED_WORDS} words")]
    Missing,
}

impl SeedCheck {
    /// Picks [`CHECKED_WORDS`] distinct positions of a `word_count`-word phrase.
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R, word_count: usize) -> SeedCheck {
        let mut picked = sample(rng, word_count.max(CHECKED_WORDS), CHECKED_WORDS).into_vec();
        picked.sort_unstable();
        let mut positions = [0; CHECKED_WORDS];
        for (slot, index) in positions.iter_mut().zip(picked) {
            *slot = index + 1;
        }
        SeedCheck { positions }
    }

    /// The 1-based positions asked for.
    pub fn positions(&self) -> [usize; CHECKED_WORDS] {
        self.positions
    }

    /// Checks `answers` (in the order of [`SeedCheck::positions`]); case and spaces are ignored.
    pub fn verify(&self, seed: &Seed, answers: &[String]) -> Result<(), SeedCheckError> {
        if answers.len() != CHECKED_WORDS || answers.iter().any(|a| a.trim().is_empty()) {
            return Err(SeedCheckError::Missing);
        }
        let words = seed.words();
        let words: Vec<&str> = words.split(' ').collect();
        for (position, answer) in self.positions.iter().zip(answers) {
            let expected = words.get(position - 1).copied().unwrap_or_default();
            if !answer.trim().eq_ignore_ascii_case(expected) {
                return Err(SeedCheckError::Wrong {
                    position: *position,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn asks_three_distinct_positions_in_range() {
        for _ in 0..200 {
            let check = SeedCheck::new(&mut OsRng, 24);
            let p = check.positions();
            assert!(p[0] >= 1 && p[2] <= 24, "{p:?}");
            assert!(p[0] < p[1] && p[1] < p[2], "{p:?}");
        }
    }

    #[test]
    fn right_words_pass_and_a_wrong_one_is_named() {
        let seed = Seed::generate(&mut OsRng);
        let check = SeedCheck::new(&mut OsRng, seed.word_count());
        let words = seed.words();
        let words: Vec<&str> = words.split(' ').collect();
        let mut answers: Vec<String> = check
            .positions()
            .iter()
            .map(|p| format!(" {} ", words[p - 1].to_uppercase()))
            .collect();
        assert_eq!(check.verify(&seed, &answers), Ok(()));
        answers[1] = "zzz".into();
        assert_eq!(
            check.verify(&seed, &answers),
            Err(SeedCheckError::Wrong {
                position: check.positions()[1]
            })
        );
        answers[1] = "".into();
        assert_eq!(check.verify(&seed, &answers), Err(SeedCheckError::Missing));
    }
}
