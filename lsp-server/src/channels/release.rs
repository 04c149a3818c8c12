//! Wallets leaving a factory (`shared::lifecycle`): the notice that a factory is ending, the key
//! release and the LSP's key-path close.
//!
//! A wallet that moved everything out of a channel sends that factory's key. The router takes it
//! only while the channel holds nothing of the client's (no balance, no HTLC, no round or
//! purchase under way) and only if it is the member's key; it stores it, then closes the channel
//! as moved. Once it holds the key of every member of a factory, it signs the key-path close
//! paying its own wallet and stores it before the first broadcast; each pass of the channel
//! watch broadcasts it again until it confirms. A restart finds both in SQLite.
//!
//! A wallet that released its key may still publish the old tree and one of its revoked
//! commitments: the released channel stays in the channel watch, which answers with the penalty.

use std::collections::BTreeMap;

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use bitcoin::{Amount, FeeRate, Transaction};
use esplora_client::AsyncClient;
use shared::lifecycle::{build_close, sign_close, FactoryNotice, KeyRelease, KeyReleased, Stage};
use shared::types::{ClientId, FactoryId};
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};
use tokio::sync::mpsc;

use super::onchain::{confirmed_spend, read, Closing, Seen};
use super::trees::TreeLoadError;
use super::Router;
use crate::factory::{factory_key, unix_now, ConnId};

impl Router {
    /// A wallet hands over the factory key of a channel it moved everything out of.
    pub(super) fn on_key_release(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        release: KeyRelease,
    ) {
        let id = release.channel;
        match self.accept_release(identity, &release) {
            Ok(()) => {
                self.send_conn(conn, WireMsg::KeyReleased(KeyReleased { channel: id }));
                self.try_close(id.factory);
            }
            Err(reason) => self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Channel { channel: id }),
                format!("channel {id}: the key was not taken: {reason}"),
            ),
        }
    }

    fn accept_release(
        &mut self,
        identity: XOnlyPublicKey,
        release: &KeyRelease,
    ) -> Result<(), String> {
        let id = release.channel;
        let link = self
            .links
            .get(&id)
            .filter(|l| l.identity == identity)
            .ok_or("you have no such channel")?;
        if link.closing == Some(Closing::Released) {
            return Ok(()); // sent again (the answer was lost): same answer
        }
        if link.channel.in_round() || link.advance.is_some() {
            return Err("an update is under way on it; send it again once it is done".into());
        }
        // A factory going on chain closes by its tree, never by key path: a close signed now
        // would race the walk.
        let on_chain = matches!(
            link.closing,
            Some(
                Closing::FactoryOnChain { .. }
                    | Closing::ChannelOnChain { .. }
                    | Closing::Overdue { .. }
                    | Closing::Retired
            )
        ) || self.chain.walks.keys().any(|w| w.factory == id.factory);
        if on_chain {
            return Err("its factory is going on chain: keep your key".into());
        }
        let spec = link.channel.spec();
        if spec.client_balance > Amount::ZERO {
            return Err(format!(
                "it still holds {} sat of yours: move them first, and keep your key",
                spec.client_balance.to_sat()
            ));
        }
        if !spec.htlcs.is_empty() {
            return Err("a payment is still in flight on it".into());
        }
        let tree = self.funded_tree(id.factory).map_err(|e| match e {
            TreeLoadError::NotFunded => "its factory is not funded".to_string(),
            e => e.to_string(),
        })?;
        release.check(tree.proposal()).map_err(|e| e.to_string())?;
        self.store
            .release_key(id, &release.secret, unix_now())
            .map_err(|e| format!("the provider could not store it ({e})"))?;
        tracing::info!(channel = %id, "factory key released: the wallet moved out");
        self.close_link(id, Closing::Released);
        Ok(())
    }

    /// The keys released by members of `factory`.
    pub(super) fn released_in(&self, factory: FactoryId) -> BTreeMap<ClientId, SecretKey> {
        match self.store.released_keys() {
            Ok(keys) => keys
                .into_iter()
                .filter(|(id, _)| id.factory == factory)
                .map(|(id, secret)| (id.client, secret))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the released keys");
                BTreeMap::new()
            }
        }
    }

    /// Closes `factory` by key path once every member released its key.
    pub(super) fn try_close(&mut self, factory: FactoryId) {
        if self.chain.closes.contains_key(&factory) {
            return;
        }
        let Ok(Some(proposal)) = self.store.funded_proposal(factory) else {
            return;
        };
        let released = self.released_in(factory);
        let members = proposal.clients.len();
        if released.len() < members {
            tracing::info!(%factory, released = released.len(), members, "members left the factory");
            return;
        }
        let rate = self.close_rate();
        let Some(tx) = self.sign_close_at(factory, &proposal, &released, rate) else {
            return;
        };
        if let Err(e) = self.store.insert_close(factory, &tx, unix_now()) {
            tracing::error!(%factory, error = %e, "cannot store the factory's close; not broadcast");
            return;
        }
        tracing::info!(
            %factory, txid = %tx.compute_txid(), amount = %tx.output[0].value,
            "every member left: closing the factory by key path"
        );
        self.chain.key_closed.insert(factory);
        self.chain.closes.insert(factory, tx);
    }

    /// What a key-path close pays: today's urgent rate, at least the channels' opening rate and
    /// 2 sat/vB.
    pub(super) fn close_rate(&self) -> FeeRate {
        self.settings
            .policy
            .opening_feerate
            .max(FeeRate::from_sat_per_vb_u32(2))
            .max(self.chain.urgent_rate)
    }

    /// `factory`'s key-path close at `rate`, signed with every member's released key.
    fn sign_close_at(
        &self,
        factory: FactoryId,
        proposal: &shared::tree::FactoryProposal,
        released: &BTreeMap<ClientId, SecretKey>,
        rate: FeeRate,
    ) -> Option<Transaction> {
        let secret = factory_key(&self.key, factory);
        let signed = build_close(proposal, &self.settings.sweep_to, rate)
            .and_then(|tx| sign_close(&mut rand::thread_rng(), proposal, tx, &secret, released));
        match signed {
            Ok(tx) => Some(tx),
            Err(e) => {
                tracing::error!(%factory, error = %e, "cannot close the factory by key path");
                None
            }
        }
    }

    /// Signs again, at today's rate, every close not confirmed yet that pays less than it (the
    /// LSP holds every key, so the close is its own to re-price; the new version replaces the
    /// old one in the mempool and in SQLite). Any version that confirms counts.
    pub(super) fn reprice_closes(&mut self) {
        let rate = self.close_rate();
        let enough = shared::fees::replaceable_below(rate);
        let mut cheap = Vec::new();
        for (factory, tx) in &self.chain.closes {
            let Ok(Some(proposal)) = self.store.funded_proposal(*factory) else {
                continue;
            };
            if shared::fees::rate_paid(tx, proposal.funding_amount) < enough {
                cheap.push((*factory, proposal));
            }
        }
        for (factory, proposal) in cheap {
            let released = self.released_in(factory);
            let Some(tx) = self.sign_close_at(factory, &proposal, &released, rate) else {
                continue;
            };
            if let Err(e) = self.store.replace_close(factory, &tx) {
                tracing::error!(%factory, error = %e, "cannot store the re-priced close; keeping the old one");
                continue;
            }
            tracing::info!(%factory, txid = %tx.compute_txid(), %rate, "the factory's close signed again at today's rate");
            self.chain.closes.insert(factory, tx);
        }
    }

    /// Tells each wallet, once per connection and channel, that the channel's factory is in
    /// its dying period or past it (moved channels excepted).
    pub(super) fn tell_ending(&mut self) {
        let tip = bitcoin::absolute::Height::from_consensus(self.height)
            .unwrap_or(bitcoin::absolute::Height::ZERO);
        let next_rung = self.settings.ladder.map(|l| l.next_rung(self.height));
        let due: Vec<(ConnId, FactoryNotice)> = self
            .links
            .values()
            .filter(|l| l.closing != Some(Closing::Released))
            .filter_map(|l| {
                let conn = l.ready?;
                let stage = l.life.stage(tip);
                (stage >= Stage::Dying && !self.told_ending.contains(&(l.id, conn)))
                    .then(|| (conn, FactoryNotice::new(l.id, &l.life, stage, next_rung)))
            })
            .collect();
        for (conn, notice) in due {
            tracing::info!(channel = %notice.channel, stage = ?notice.stage, "telling the wallet its factory is ending");
            self.told_ending.insert((notice.channel, conn));
            self.send_conn(conn, WireMsg::FactoryNotice(notice));
        }
    }

    /// A factory's close confirmed (`tx`: the version that did).
    pub(super) fn on_close_confirmed(&mut self, factory: FactoryId, tx: &Transaction, height: u32) {
        if self.chain.closes.remove(&factory).is_none() {
            return;
        }
        if let Err(e) = self.store.close_confirmed(factory, tx, height) {
            tracing::error!(%factory, error = %e, "cannot record the close's confirmation");
        }
        tracing::info!(%factory, height, "the factory's close confirmed: its capital is back");
    }

    /// At start: released channels stay closed as moved; unconfirmed closes are broadcast again.
    pub(super) fn releases_restore(&mut self) -> anyhow::Result<()> {
        for (id, _) in self.store.released_keys()? {
            if let Some(link) = self.links.get_mut(&id) {
                link.closing = Some(Closing::Released);
            }
        }
        let mut closed = std::collections::BTreeSet::new();
        for (factory, tx, confirmed) in self.store.closes()? {
            closed.insert(factory);
            self.chain.key_closed.insert(factory);
            if confirmed.is_none() {
                self.chain.closes.insert(factory, tx);
            }
        }
        // Stopped between the last release and storing the close: sign it now.
        let factories: std::collections::BTreeSet<FactoryId> = self
            .store
            .released_keys()?
            .into_iter()
            .map(|(id, _)| id.factory)
            .filter(|f| !closed.contains(f))
            .collect();
        for factory in factories {
            self.try_close(factory);
        }
        Ok(())
    }
}

/// One pass over a close. It reads what spent the funding output: a confirmed spend shaped as
/// the close (this version or an older one: only the LSP, holding every key, signs such a
/// spend) is reported confirmed; any other confirmed spender means the close lost; otherwise
/// the close is broadcast (again).
pub(super) async fn step(
    esplora: &AsyncClient,
    factory: FactoryId,
    tx: &Transaction,
    report: &mpsc::UnboundedSender<Seen>,
) {
    let txid = tx.compute_txid();
    let funding = tx.input[0].previous_output;
    if let Some((spender, height)) = confirmed_spend(esplora, funding, "funding outspend").await {
        let Some(Some(spent_by)) = read("funding spender", esplora.get_tx(&spender)).await else {
            return;
        };
        // Any version of the close: one input, one output to the same script (the tree's own
        // transactions spend the funding output by key path too, but to several outputs and
        // an anchor).
        let a_close = spent_by.input.len() == 1
            && spent_by.output.len() == 1
            && spent_by.output[0].script_pubkey == tx.output[0].script_pubkey;
        let _ = report.send(if a_close {
            Seen::CloseConfirmed {
                factory,
                tx: Box::new(spent_by),
                height,
            }
        } else {
            Seen::CloseLost { factory, spender }
        });
        return;
    }
    if let Some(()) = read("close broadcast", esplora.broadcast(tx)).await {
        tracing::info!(%factory, %txid, "factory close broadcast");
    }
}
