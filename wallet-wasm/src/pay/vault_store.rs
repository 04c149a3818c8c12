//! Browser [`PayStore`]: channels, invoices and payments inside the encrypted IndexedDB
//! [`Vault`], next to the session's records.
//!
//! Layout (record names in the clear like every vault record name; values encrypted JSON):
//! - `pay/open/<factory>/<client>`: the LSP's [`ChannelOpen`] of a channel (leaf state 0), and
//!   `pay/open/<factory>/<client>/<leaf>` that of a later leaf state's channel (`leaf` three
//!   digits);
//! - `pay/ch/<factory>/<client>/<seq>`: one batch of a channel's changes, the first of them
//!   change number `seq` (ten digits, so the names sort in order); a later leaf state's channel
//!   has `pay/ch/<factory>/<client>/<leaf>/<seq>`;
//! - `pay/inv/<hash>`: an invoice;
//! - `pay/pay/<n>`: a payment, `n` (ten digits) counting payments in the order they started;
//! - `pay/leaf/<factory>/<client>`: the channel's [`LeafRecord`] (its signed leaf states and
//!   signing record, and the opening of each later state's channel);
//! - `pay/adv/<factory>/<client>`: a [`PendingAdvance`] whose partial signatures left, removed
//!   once the leaf advanced or the advance was given up.
//!
//! Contract: as for the session's `VaultStorage`, [`Vault::put`] returns after its IndexedDB
//! transaction committed, so every `save_*` and `append_changes` is durable when it returns.
//! A batch of changes is one record, written in one transaction: it is stored whole or not at
//! all, and `load` refuses a channel whose batches leave a gap.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bitcoin::hashes::sha256;
use shared::channel::ChannelChange;
use shared::leaf::LeafEpoch;
use shared::pay::{ChannelId, ChannelOpen};
use shared::types::{ClientId, FactoryId};

use super::store::{
    Direction, InvoiceRecord, LeafChannel, LeafRecord, PayState, PayStore, PaymentRecord,
    PendingAdvance,
};
use crate::session::vault_storage::{io, read_json, write_json};
use crate::session::StorageError;
use crate::vault::Vault;

/// The prefix of every payment record.
pub const PAY_PREFIX: &str = "pay/";
const OPEN_PREFIX: &str = "pay/open/";
const CHANGES_PREFIX: &str = "pay/ch/";
const INVOICE_PREFIX: &str = "pay/inv/";
const PAYMENT_PREFIX: &str = "pay/pay/";
const LEAF_PREFIX: &str = "pay/leaf/";
const ADVANCE_PREFIX: &str = "pay/adv/";

fn channel_name(channel: ChannelId) -> String {
    format!("{}/{}", channel.factory.0, channel.client.0)
}

fn open_record(key: LeafChannel) -> String {
    match key.leaf {
        LeafEpoch::FIRST => format!("{OPEN_PREFIX}{}", channel_name(key.channel)),
        leaf => format!("{OPEN_PREFIX}{}/{:03}", channel_name(key.channel), leaf.0),
    }
}

fn changes_record(key: LeafChannel, first_seq: u64) -> String {
    let channel = channel_name(key.channel);
    match key.leaf {
        LeafEpoch::FIRST => format!("{CHANGES_PREFIX}{channel}/{first_seq:010}"),
        leaf => format!("{CHANGES_PREFIX}{channel}/{:03}/{first_seq:010}", leaf.0),
    }
}

fn leaf_record(channel: ChannelId) -> String {
    format!("{LEAF_PREFIX}{}", channel_name(channel))
}

fn advance_record(channel: ChannelId) -> String {
    format!("{ADVANCE_PREFIX}{}", channel_name(channel))
}

fn invoice_record(hash: &sha256::Hash) -> String {
    format!("{INVOICE_PREFIX}{hash}")
}

fn payment_record(n: u64) -> String {
    format!("{PAYMENT_PREFIX}{n:010}")
}

/// Reads `<factory>/<client>[/<leaf>]/<seq>` back from a change batch's record name.
fn parse_changes_name(name: &str) -> Option<(LeafChannel, u64)> {
    let parts: Vec<&str> = name.strip_prefix(CHANGES_PREFIX)?.split('/').collect();
    let (leaf, seq) = match parts.as_slice() {
        [_, _, seq] => (LeafEpoch::FIRST, seq),
        [_, _, leaf, seq] => (LeafEpoch(leaf.parse().ok()?), seq),
        _ => return None,
    };
    let channel = parse_channel(&parts[..2])?;
    Some((LeafChannel { channel, leaf }, seq.parse().ok()?))
}

/// Reads `<factory>/<client>` back from a record name's last two parts.
fn parse_channel(parts: &[&str]) -> Option<ChannelId> {
    let [factory, client] = parts else {
        return None;
    };
    Some(ChannelId {
        factory: FactoryId(factory.parse().ok()?),
        client: ClientId(client.parse().ok()?),
    })
}

fn channel_of(name: &str, prefix: &str) -> Result<ChannelId, StorageError> {
    name.strip_prefix(prefix)
        .and_then(|rest| parse_channel(&rest.split('/').collect::<Vec<_>>()))
        .ok_or_else(|| StorageError::Corrupt {
            path: name.into(),
            reason: "not a channel's record name; restore the wallet from a backup".into(),
        })
}

/// What tells payments apart: hash and direction (a wallet may pay its own invoice).
fn payment_key(payment: &PaymentRecord) -> (sha256::Hash, bool) {
    (payment.hash, payment.direction == Direction::Sent)
}

/// What the store keeps in memory to name its next records: how many changes each channel
/// has, and which record holds each payment.
#[derive(Debug, Default)]
struct Index {
    changes: BTreeMap<LeafChannel, u64>,
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

    /// The leaf record of `channel`, if its leaf advanced (the exit screen adds its states to
    /// the exit kit).
    pub async fn leaf(&self, channel: ChannelId) -> Result<Option<LeafRecord>, StorageError> {
        read_json(&self.vault, &leaf_record(channel)).await
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
                let key = LeafChannel::of(&open);
                state.channels.entry(key).or_default().0 = Some(open);
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
            } else if name.starts_with(LEAF_PREFIX) {
                let leaf: LeafRecord = self.read(name).await?;
                state.leaves.insert(channel_of(name, LEAF_PREFIX)?, leaf);
            } else if name.starts_with(ADVANCE_PREFIX) {
                let advance: PendingAdvance = self.read(name).await?;
                state
                    .advances
                    .insert(channel_of(name, ADVANCE_PREFIX)?, advance);
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
        self.write(&open_record(LeafChannel::of(open)), open).await
    }

    async fn append_changes(
        &mut self,
        channel: LeafChannel,
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

    async fn save_leaf(
        &mut self,
        channel: ChannelId,
        leaf: &LeafRecord,
    ) -> Result<(), StorageError> {
        self.write(&leaf_record(channel), leaf).await
    }

    async fn save_advance(
        &mut self,
        channel: ChannelId,
        advance: Option<&PendingAdvance>,
    ) -> Result<(), StorageError> {
        let name = advance_record(channel);
        match advance {
            Some(a) => self.write(&name, a).await,
            None => self.vault.remove(&name).await.map_err(io("remove", &name)),
        }
    }
}

#[cfg(test)]
mod browser_tests;
