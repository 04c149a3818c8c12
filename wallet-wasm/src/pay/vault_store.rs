//! Browser [`PayStore`]: channels, invoices and payments inside the encrypted IndexedDB
//! [`Vault`], next to the session's records.
//!
//! Layout (record names in the clear like every vault record name; values encrypted JSON):
//! - `pay/open/<factory>/<client>`: the LSP's [`ChannelOpen`] of a channel;
//! - `pay/ch/<factory>/<client>/<seq>`: one batch of a channel's changes, the first of them
//!   change number `seq` (ten digits, so the names sort in order);
//! - `pay/inv/<hash>`: an invoice;
//! - `pay/pay/<n>`: a payment, `n` (ten digits) counting payments in the order they started.
//!
//! Contract: as for the session's `VaultStorage`, [`Vault::put`] returns after its IndexedDB
//! transaction committed, so every `save_*` and `append_changes` is durable when it returns.
//! A batch of changes is one record, written in one transaction: it is stored whole or not at
//! all, and `load` refuses a channel whose batches leave a gap.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bitcoin::hashes::sha256;
use shared::channel::ChannelChange;
use shared::pay::{ChannelId, ChannelOpen};
use shared::types::{ClientId, FactoryId};

use super::store::{Direction, InvoiceRecord, PayState, PayStore, PaymentRecord};
use crate::session::vault_storage::{io, read_json, write_json};
use crate::session::StorageError;
use crate::vault::Vault;

/// The prefix of every payment record.
pub const PAY_PREFIX: &str = "pay/";
const OPEN_PREFIX: &str = "pay/open/";
const CHANGES_PREFIX: &str = "pay/ch/";
const INVOICE_PREFIX: &str = "pay/inv/";
const PAYMENT_PREFIX: &str = "pay/pay/";

fn open_record(channel: ChannelId) -> String {
    format!("{OPEN_PREFIX}{}/{}", channel.factory.0, channel.client.0)
}

fn changes_record(channel: ChannelId, first_seq: u64) -> String {
    format!(
        "{CHANGES_PREFIX}{}/{}/{first_seq:010}",
        channel.factory.0, channel.client.0
    )
}

fn invoice_record(hash: &sha256::Hash) -> String {
    format!("{INVOICE_PREFIX}{hash}")
}

fn payment_record(n: u64) -> String {
    format!("{PAYMENT_PREFIX}{n:010}")
}

/// Reads `<factory>/<client>/<seq>` back from a change batch's record name.
fn parse_changes_name(name: &str) -> Option<(ChannelId, u64)> {
    let mut parts = name.strip_prefix(CHANGES_PREFIX)?.split('/');
    let factory = FactoryId(parts.next()?.parse().ok()?);
    let client = ClientId(parts.next()?.parse().ok()?);
    let seq = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some((ChannelId { factory, client }, seq))
}

/// What tells payments apart: hash and direction (a wallet may pay its own invoice).
fn payment_key(payment: &PaymentRecord) -> (sha256::Hash, bool) {
    (payment.hash, payment.direction == Direction::Sent)
}

/// What the store keeps in memory to name its next records: how many changes each channel
/// has, and which record holds each payment.
#[derive(Debug, Default)]
struct Index {
    changes: BTreeMap<ChannelId, u64>,
    /// By payment hash and whether this wallet sent it.
    payments: HashMap<(sha256::Hash, bool), u64>,
    next_payment: u64,
}

/// Payments' storage in an open vault (shared with the rest of the wallet).
#[derive(Debug)]
pub struct VaultPayStore {
    vault: Rc<Vault>,
    /// Built by the first `load` (or the first write, if that comes first).
    index: Option<Index>,
}

impl VaultPayStore {
    /// Stores in `vault`.
    pub fn new(vault: Rc<Vault>) -> VaultPayStore {
        VaultPayStore { vault, index: None }
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, StorageError> {
        read_json(&self.vault, name)
            .await?
            .ok_or_else(|| StorageError::Corrupt {
                path: name.into(),
                reason: "listed but missing; restore the wallet from a backup".into(),
            })
    }

    async fn write<T: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        write_json(&self.vault, name, value).await
    }

    /// Reads every payment record, and the index that names the next ones.
    async fn read_all(&self) -> Result<(PayState, Index), StorageError> {
        let mut names = self.vault.names().await.map_err(io("list", "pay/*"))?;
        names.retain(|n| n.starts_with(PAY_PREFIX));
        // Ten-digit sequence numbers: the name order is the order of the changes and payments.
        names.sort();
        let mut state = PayState::default();
        let mut index = Index::default();
        for name in &names {
            if name.starts_with(OPEN_PREFIX) {
                let open: ChannelOpen = self.read(name).await?;
                let channel = open.channel;
                state.channels.entry(channel).or_default().0 = Some(open);
            } else if let Some((channel, seq)) = parse_changes_name(name) {
                let batch: Vec<ChannelChange> = self.read(name).await?;
                let log = &mut state.channels.entry(channel).or_default().1;
                if log.len() as u64 != seq {
                    return Err(StorageError::Corrupt {
                        path: name.clone(),
                        reason: format!(
                            "changes of channel {channel} from {seq} follow {} stored ones",
                            log.len()
                        ),
                    });
                }
                log.extend(batch);
            } else if name.starts_with(INVOICE_PREFIX) {
                let invoice: InvoiceRecord = self.read(name).await?;
                state.invoices.insert(invoice.hash, invoice);
            } else if let Some(n) = name.strip_prefix(PAYMENT_PREFIX) {
                let n: u64 = n.parse().map_err(|_| StorageError::Corrupt {
                    path: name.clone(),
                    reason: "not a payment record name".into(),
                })?;
                let payment: PaymentRecord = self.read(name).await?;
                index.payments.insert(payment_key(&payment), n);
                index.next_payment = index.next_payment.max(n + 1);
                state.payments.push(payment);
            }
        }
        index.changes = state
            .channels
            .iter()
            .map(|(id, (_, log))| (*id, log.len() as u64))
            .collect();
        Ok((state, index))
    }

    async fn index(&mut self) -> Result<&mut Index, StorageError> {
        if self.index.is_none() {
            let (_, index) = self.read_all().await?;
            self.index = Some(index);
        }
        Ok(self.index.as_mut().expect("just built"))
    }
}

impl PayStore for VaultPayStore {
    async fn load(&mut self) -> Result<PayState, StorageError> {
        let (state, index) = self.read_all().await?;
        self.index = Some(index);
        Ok(state)
    }

    async fn save_lsp_open(&mut self, open: &ChannelOpen) -> Result<(), StorageError> {
        self.write(&open_record(open.channel), open).await
    }

    async fn append_changes(
        &mut self,
        channel: ChannelId,
        first_seq: u64,
        changes: &[ChannelChange],
    ) -> Result<(), StorageError> {
        let stored = self.index().await?.changes.get(&channel).copied();
        let stored = stored.unwrap_or(0);
        if stored != first_seq {
            return Err(StorageError::Corrupt {
                path: format!("channel {channel}"),
                reason: format!("change {first_seq} follows {stored} stored ones"),
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.write(&changes_record(channel, first_seq), changes)
            .await?;
        self.index()
            .await?
            .changes
            .insert(channel, first_seq + changes.len() as u64);
        Ok(())
    }

    async fn save_invoice(&mut self, invoice: &InvoiceRecord) -> Result<(), StorageError> {
        self.write(&invoice_record(&invoice.hash), invoice).await
    }

    async fn save_payment(&mut self, payment: &PaymentRecord) -> Result<(), StorageError> {
        let key = payment_key(payment);
        let index = self.index().await?;
        let n = match index.payments.get(&key) {
            Some(n) => *n,
            None => index.next_payment,
        };
        self.write(&payment_record(n), payment).await?;
        let index = self.index().await?;
        index.payments.insert(key, n);
        index.next_payment = index.next_payment.max(n + 1);
        Ok(())
    }
}

#[cfg(test)]
mod browser_tests;
