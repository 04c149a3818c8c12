//! The double-sign guard: a signer never signs one prevout with two different sighashes.
//!
//! Signing two different messages for the same output is how a signer is tricked into
//! authorising two conflicting spends (and, with a reused nonce, how a key leaks). So every
//! signer keeps a durable `prevout → sighash` record and consults it before each partial
//! signature. Signing the *same* sighash again is allowed: that is a restart with a fresh nonce.
//!
//! # Persistence contract
//!
//! A record must be durable **before** the partial signature it allows leaves the process. Two
//! ways to honour it:
//! - implement [`SignGuard`] over synchronous storage that commits (fsync) in
//!   [`SignGuard::check_and_record`]; or
//! - use [`MemorySignGuard`], loaded from storage at start-up with
//!   [`MemorySignGuard::from_records`], and persist the [`GuardRecord`]s the state machines hand
//!   out in their `Persist` actions before performing any later `Send` (the ceremonies emit the
//!   `Persist` before the `Send` that carries the signatures). This is the only option in a
//!   browser, whose storage is asynchronous.
//!
//! Records are never deleted while the key they were signed with may still guard funds.

use std::collections::BTreeMap;

use bitcoin::{OutPoint, TapSighash};
use serde::{Deserialize, Serialize};

/// One `prevout → sighash` the signer has agreed to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GuardRecord {
    /// The output being spent.
    pub prevout: OutPoint,
    /// The only sighash this signer will ever sign for it.
    pub sighash: TapSighash,
}

/// Why the guard refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The prevout was already signed (or promised) with another sighash.
    #[error("refusing to sign {prevout} again with a different message (recorded {recorded}, asked {requested})")]
    Conflict {
        /// The contested output.
        prevout: OutPoint,
        /// What was signed before.
        recorded: TapSighash,
        /// What is asked now.
        requested: TapSighash,
    },
    /// The guard's storage failed; nothing may be signed.
    #[error("the double-sign record could not be stored: {0}")]
    Storage(String),
}

/// A persistent `prevout → sighash` record consulted before every partial signature.
pub trait SignGuard {
    /// Whether `sighash` may be signed for `prevout`, without recording anything.
    fn check(&self, prevout: &OutPoint, sighash: &TapSighash) -> Result<(), GuardError>;

    /// Refuses a `prevout` already recorded with a different sighash; otherwise records it.
    /// Recording the same pair again succeeds. See the module's persistence contract.
    fn check_and_record(
        &mut self,
        prevout: OutPoint,
        sighash: TapSighash,
    ) -> Result<(), GuardError>;
}

impl<T: SignGuard + ?Sized> SignGuard for &mut T {
    fn check(&self, prevout: &OutPoint, sighash: &TapSighash) -> Result<(), GuardError> {
        (**self).check(prevout, sighash)
    }
    fn check_and_record(
        &mut self,
        prevout: OutPoint,
        sighash: TapSighash,
    ) -> Result<(), GuardError> {
        (**self).check_and_record(prevout, sighash)
    }
}

impl<T: SignGuard + ?Sized> SignGuard for Box<T> {
    fn check(&self, prevout: &OutPoint, sighash: &TapSighash) -> Result<(), GuardError> {
        (**self).check(prevout, sighash)
    }
    fn check_and_record(
        &mut self,
        prevout: OutPoint,
        sighash: TapSighash,
    ) -> Result<(), GuardError> {
        (**self).check_and_record(prevout, sighash)
    }
}

/// Checks a whole batch (including conflicts inside the batch) before recording any of it, so a
/// refused batch leaves the guard unchanged. Returns the records to persist.
pub fn check_and_record_all<G: SignGuard + ?Sized>(
    guard: &mut G,
    batch: &[GuardRecord],
) -> Result<Vec<GuardRecord>, GuardError> {
    let mut seen: BTreeMap<OutPoint, TapSighash> = BTreeMap::new();
    for r in batch {
        if let Some(prev) = seen.insert(r.prevout, r.sighash) {
            if prev != r.sighash {
                return Err(GuardError::Conflict {
                    prevout: r.prevout,
                    recorded: prev,
                    requested: r.sighash,
                });
            }
        }
        guard.check(&r.prevout, &r.sighash)?;
    }
    for r in batch {
        guard.check_and_record(r.prevout, r.sighash)?;
    }
    Ok(batch.to_vec())
}

/// An in-memory [`SignGuard`]; the driver persists what it records (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySignGuard {
    records: BTreeMap<OutPoint, TapSighash>,
}

impl MemorySignGuard {
    /// An empty guard (a key that has never signed).
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a guard from stored records; refuses contradictory records.
    pub fn from_records(
        records: impl IntoIterator<Item = GuardRecord>,
    ) -> Result<Self, GuardError> {
        let mut guard = Self::new();
        for r in records {
            guard.check_and_record(r.prevout, r.sighash)?;
        }
        Ok(guard)
    }

    /// Every record, in prevout order.
    pub fn records(&self) -> impl Iterator<Item = GuardRecord> + '_ {
        self.records.iter().map(|(prevout, sighash)| GuardRecord {
            prevout: *prevout,
            sighash: *sighash,
        })
    }

    /// Number of recorded prevouts.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl SignGuard for MemorySignGuard {
    fn check(&self, prevout: &OutPoint, sighash: &TapSighash) -> Result<(), GuardError> {
        match self.records.get(prevout) {
            Some(recorded) if recorded != sighash => Err(GuardError::Conflict {
                prevout: *prevout,
                recorded: *recorded,
                requested: *sighash,
            }),
            _ => Ok(()),
        }
    }

    fn check_and_record(
        &mut self,
        prevout: OutPoint,
        sighash: TapSighash,
    ) -> Result<(), GuardError> {
        self.check(&prevout, &sighash)?;
        self.records.insert(prevout, sighash);
        Ok(())
    }
}
