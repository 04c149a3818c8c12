//! The wallet's keys: one BIP-39 seed, and every key the wallet uses derived from it by purpose.
//!
//! Platform-neutral: no I/O and no hidden randomness (a new seed takes the caller's
//! `CryptoRng`; in the browser that is `rand::rngs::OsRng`, i.e. `crypto.getRandomValues`).
//!
//! # Seed
//!
//! [`Seed`] is a 24-word English BIP-39 mnemonic (256 bits of entropy) when generated; restoring
//! accepts any valid BIP-39 length (12, 15, 18, 21 or 24 words). The BIP-32 master key is made
//! from the BIP-39 seed with an empty BIP-39 passphrase. A wrong word or a bad checksum is a
//! [`KeysError`] that says which.
//!
//! # Derivation paths
//!
//! `coin` is `0'` on [`Network::Bitcoin`](bitcoin::Network::Bitcoin) and `1'` on every test
//! network (testnet, testnet4, signet, regtest), as in BIP-44. [`PURPOSE`] is `7373'`, a number
//! no BIP-43 scheme uses, so no other wallet derives these keys from the same words.
//!
//! | key                                  | path                        | type                |
//! |--------------------------------------|-----------------------------|---------------------|
//! | identity (LSP authentication only)   | `m/7373'/coin'/0'/0'`       | [`IdentityKey`]     |
//! | factory key number `i`               | `m/7373'/coin'/1'/i'`       | [`FactoryKey`]      |
//! | on-chain sweep address number `n`    | `m/86'/coin'/0'/0/n` (BIP-86) | [`SweepKey`]      |
//!
//! Every step of the wallet's own paths is hardened, so a leaked factory private key together with
//! any public data never reveals another factory's key or the identity key. The sweep path is
//! plain BIP-86 (account 0, external chain), so any BIP-86 wallet restored from the same words
//! finds the swept coins.
//!
//! # Factory keys are never reused
//!
//! Each factory gets the key at the next unused [`FactoryIndex`]. Deriving is deterministic, so
//! *never reusing* is the caller's duty: persist `index.next()` as the next free index **before**
//! the key of `index` is used in any ceremony (a crash in between then only skips an index).
//!
//! # Secrets in memory
//!
//! The mnemonic is wiped on drop (bip39's `zeroize` feature) and entropy passes through
//! [`Zeroizing`](zeroize::Zeroizing) buffers. `Debug` never prints secret material. BIP-32
//! extended keys and secp256k1 keys are not wiped by their crates; a browser gives no real
//! guarantee about copies in memory anyway.

mod derive;
mod error;
mod seed;
#[cfg(test)]
mod tests;

pub use derive::{FactoryIndex, FactoryKey, IdentityKey, SweepIndex, SweepKey, WalletKeys};
pub use error::KeysError;
pub use seed::Seed;

/// The BIP-43 purpose of this wallet's own keys (identity and factories), hardened in paths.
pub const PURPOSE: u32 = 7373;
