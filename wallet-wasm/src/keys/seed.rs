//! The BIP-39 seed: made from the caller's randomness, shown as words, restored from words.

use std::fmt;

use bip39::{Language, Mnemonic};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::KeysError;

/// Bytes of entropy in a new seed (24 words).
const NEW_SEED_ENTROPY: usize = 32;

/// The wallet's BIP-39 seed. Wiped from memory on drop; `Debug` prints no words.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed {
    mnemonic: Mnemonic,
}

impl Seed {
    /// A new 24-word seed from 256 bits of the caller's cryptographic randomness.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Seed {
        let mut entropy = Zeroizing::new([0u8; NEW_SEED_ENTROPY]);
        rng.fill_bytes(entropy.as_mut());
        let mnemonic = Mnemonic::from_entropy_in(Language::English, entropy.as_ref())
            .expect("32 bytes is a valid BIP-39 entropy length");
        Seed { mnemonic }
    }

    /// Restores a seed from its recovery phrase. Case and extra whitespace are ignored; a word
    /// outside the English list, a wrong word count or a bad checksum is an error saying which.
    pub fn from_words(phrase: &str) -> Result<Seed, KeysError> {
        let normalized = Zeroizing::new(
            phrase
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let mnemonic = Mnemonic::parse_in_normalized(Language::English, &normalized)?;
        Ok(Seed { mnemonic })
    }

    /// Restores a seed from its raw BIP-39 entropy (16 to 32 bytes, a multiple of 4), e.g. as
    /// stored by [`Seed::entropy`].
    pub fn from_entropy(entropy: &[u8]) -> Result<Seed, KeysError> {
        let mnemonic = Mnemonic::from_entropy_in(Language::English, entropy)?;
        Ok(Seed { mnemonic })
    }

    /// The raw BIP-39 entropy: the most compact form to store (encrypted) and restore from.
    pub fn entropy(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.mnemonic.to_entropy())
    }

    /// The recovery phrase, words separated by single spaces, to show the user once.
    pub fn words(&self) -> Zeroizing<String> {
        Zeroizing::new(self.mnemonic.to_string())
    }

    /// How many words the recovery phrase has.
    pub fn word_count(&self) -> usize {
        self.mnemonic.word_count()
    }

    /// The 64-byte BIP-39 seed (empty BIP-39 passphrase), input of the BIP-32 master key.
    pub(crate) fn bip39_seed(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.mnemonic.to_seed_normalized(""))
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({} words, redacted)", self.word_count())
    }
}
