//! The user's wallet as the app sees it: the seed and settings kept in the vault, the check that
//! the recovery words were written down, joining a factory, and what the home screen shows.
//!
//! Stored records (all in the encrypted vault): `seed` (BIP-39 entropy), `profile` (JSON of
//! [`Profile`]: network, chosen LSP, Esplora override, next factory key index, joins), and the
//! session's own records (`session/…`, see `session::VaultStorage`), and the payments' records
//! (`pay/…`, see `pay::VaultPayStore`).
//!
//! Guarantees: a factory key index is stored as used before its key enters any ceremony, so no
//! factory key is ever used twice; the recovery words are shown only while creating the wallet.
//! The pure parts ([`Profile`], [`SeedCheck`], [`FactoryOverview`]) build everywhere; the parts
//! that touch the vault or the network are wasm32-only.

mod error;
mod overview;
mod profile;
mod progress;
mod seed_check;

#[cfg(all(test, target_arch = "wasm32"))]
mod browser_tests;
#[cfg(target_arch = "wasm32")]
mod exit;
#[cfg(target_arch = "wasm32")]
mod join;
#[cfg(target_arch = "wasm32")]
mod onchain;
#[cfg(target_arch = "wasm32")]
mod open;
#[cfg(target_arch = "wasm32")]
mod pay;

pub use error::AccountError;
pub use overview::{FactoryOverview, FactoryPhase};
pub use profile::{JoinRecord, Profile};
pub use progress::{outcome_words, JoinStep};
pub use seed_check::{SeedCheck, SeedCheckError, CHECKED_WORDS};

#[cfg(target_arch = "wasm32")]
pub use join::JoinPlan;
#[cfg(target_arch = "wasm32")]
pub use open::Account;

/// The IndexedDB name of the wallet's vault (one wallet per browser profile).
pub const VAULT_NAME: &str = "superscalar-wallet";
/// The vault record holding the seed's entropy.
pub const SEED_RECORD: &str = "seed";
/// The vault record holding the [`Profile`].
pub const PROFILE_RECORD: &str = "profile";
