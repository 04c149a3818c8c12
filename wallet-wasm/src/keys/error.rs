//! Errors of seed handling and key derivation.

/// Why a seed could not be made or restored, or a key not derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The recovery phrase has a word count BIP-39 does not allow.
    #[error("the recovery phrase has {0} words; it must have 12, 15, 18, 21 or 24")]
    BadWordCount(usize),
    /// A word is not in the BIP-39 English word list (position counts from 1).
    #[error(
        "word {position} of the recovery phrase is not a BIP-39 English word; check its spelling"
    )]
    UnknownWord {
        /// 1-based position of the word in the phrase.
        position: usize,
    },
    /// Every word is valid but the checksum does not match: a word is wrong or out of order.
    #[error(
        "the recovery phrase's checksum does not match: a word is wrong or words are out of order"
    )]
    BadChecksum,
    /// Raw entropy of a length BIP-39 does not allow.
    #[error("seed entropy must be 16, 20, 24, 28 or 32 bytes, not {0}")]
    BadEntropyLength(usize),
    /// An index at or above 2^31 (it could not be a hardened child).
    #[error("key index {0} is too large; indexes must be below 2^31")]
    IndexOutOfRange(u32),
    /// BIP-32 refused a derivation (practically impossible: an invalid child key).
    #[error("key derivation failed: {0}")]
    Derivation(String),
}

impl From<bip39::Error> for KeysError {
    fn from(e: bip39::Error) -> Self {
        match e {
            bip39::Error::BadWordCount(n) => KeysError::BadWordCount(n),
            bip39::Error::UnknownWord(i) => KeysError::UnknownWord { position: i + 1 },
            bip39::Error::BadEntropyBitCount(bits) => KeysError::BadEntropyLength(bits / 8),
            bip39::Error::InvalidChecksum => KeysError::BadChecksum,
            // Only English is enabled, so a phrase cannot be ambiguous; map defensively anyway.
            bip39::Error::AmbiguousLanguages(_) => KeysError::BadChecksum,
        }
    }
}

impl From<bitcoin::bip32::Error> for KeysError {
    fn from(e: bitcoin::bip32::Error) -> Self {
        KeysError::Derivation(e.to_string())
    }
}
