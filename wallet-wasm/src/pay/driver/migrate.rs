//! Moving into a newer factory (`shared::lifecycle`): the whole balance of an old channel goes
//! to an invoice of this wallet's own whose route hint names the new channel (one HTLC on each
//! side with one hash, so both channels update or neither); then, with the old channel empty,
//! its factory key goes to the provider, which closes the old factory alone once every member
//! did so. The key is never sent while the channel holds a sat or a payment of this wallet's.

use bitcoin::Amount;
use futures::channel::oneshot;
use shared::lifecycle::KeyRelease;
use shared::pay::ChannelId;
use shared::wire::WireMsg;

use super::PayClient;
use crate::pay::store::{PayStore, PaymentRecord};
use crate::pay::{PayError, PayEvent};
use crate::session::{ChainSource, Connect};

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// What of this wallet's channel `id` still holds: its balance, and whether a payment is in
    /// flight on it (in the committed or the pending state).
    fn holds(&self, id: ChannelId) -> Option<(Amount, bool)> {
        let o = self.open.get(&id)?;
        let pending = o.channel.pending_spec().ok()?;
        let committed = o.channel.spec();
        let in_flight = !pending.htlcs.is_empty() || !committed.htlcs.is_empty();
        Some((
            pending.client_balance.max(committed.client_balance),
            in_flight,
        ))
    }

    /// Pays the whole balance of `from` to this wallet's own invoice on `to`.
    pub(super) async fn move_balance(
        &mut self,
        from: ChannelId,
        to: ChannelId,
        reply: oneshot::Sender<Result<PaymentRecord, PayError>>,
    ) -> Result<(), PayError> {
        if self.moved.contains(&from) {
            // Moved already (the answer was lost to a reload or a restart).
            let _ = reply.send(Err(PayError::NothingToMove));
            return Ok(());
        }
        if from == to || !self.open.get(&to).is_some_and(|o| o.ready) {
            let _ = reply.send(Err(PayError::NoChannel));
            return Ok(());
        }
        let Some((amount, in_flight)) = self.holds(from) else {
            let _ = reply.send(Err(PayError::NoChannel));
            return Ok(());
        };
        if in_flight {
            let _ = reply.send(Err(PayError::StillHolds("a payment in flight".into())));
            return Ok(());
        }
        if amount == Amount::ZERO {
            let _ = reply.send(Err(PayError::NothingToMove));
            return Ok(());
        }
        let description = format!("Move to factory {}", to.factory);
        let invoice = match self.make_invoice(amount, description, Some(to)).await {
            Ok(invoice) => invoice,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        self.pay(&invoice.invoice, Some(from), reply).await
    }

    /// Sends the factory key of `channel` once it holds nothing of this wallet's.
    pub(super) async fn release_key(
        &mut self,
        channel: ChannelId,
        reply: oneshot::Sender<Result<(), PayError>>,
    ) {
        if self.moved.contains(&channel) {
            let _ = reply.send(Ok(()));
            return;
        }
        let (Some((amount, in_flight)), Some(leaf)) =
            (self.holds(channel), self.leaves.get(&channel))
        else {
            let _ = reply.send(Err(PayError::NoChannel));
            return;
        };
        if in_flight {
            let _ = reply.send(Err(PayError::StillHolds("a payment in flight".into())));
            return;
        }
        if amount > Amount::ZERO {
            let held = format!("{} sat", amount.to_sat());
            let _ = reply.send(Err(PayError::StillHolds(held)));
            return;
        }
        if self.link.is_none() {
            let _ = reply.send(Err(PayError::NotConnected));
            return;
        }
        let secret = leaf.factory_secret;
        self.send(WireMsg::KeyRelease(KeyRelease { channel, secret }))
            .await;
        self.releases.insert(channel, reply);
    }

    /// The provider stored the key: the channel is closed as moved.
    pub(super) fn on_key_released(&mut self, channel: ChannelId) {
        self.moved.insert(channel);
        let reason = "moved to a newer factory; this one's key is released".to_string();
        self.closed.insert(channel, reason.clone());
        self.emit(PayEvent::ChannelClosed { channel, reason });
        // Only a release this wallet asked for (with the channel empty) tells the watchtower
        // to stop walking the old path: never the provider's word alone, which could
        // otherwise switch the tower off for a channel that still holds money.
        let Some(reply) = self.releases.remove(&channel) else {
            return;
        };
        if self.config.watchtower.is_some() {
            self.tower.released(channel, reply);
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    /// The provider refused something about `channel`: a release waiting on it failed.
    pub(super) fn release_refused(&mut self, channel: ChannelId, message: &str) {
        if let Some(reply) = self.releases.remove(&channel) {
            let _ = reply.send(Err(PayError::Failed(message.to_owned())));
        }
    }
}
