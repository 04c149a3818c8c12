//! The wallet's side of one leaf advance.

use std::collections::VecDeque;

use bitcoin::secp256k1::SecretKey;
use bitcoin::Amount;

use super::{check_offer, AdvanceAction, AdvanceEvent, AdvanceStep, Expected, FlowError};
use super::{NewChannel, OfferError};
use crate::channel::CommitmentSpec;
use crate::leaf::{
    Advance, LeafEpoch, LeafPartials, LeafSigned, LeafStates, LiquidityAccept, LiquidityOffer,
    LiquidityRequest,
};
use crate::musig::PubNonce;
use crate::path::ClientPath;
use crate::pay::{ChannelId, ChannelOpen};
use crate::wire::WireMsg;

/// A purchase whose partial signatures left (or are about to): the wallet stores it first,
/// and from then on never gives it up (the LSP may hold the new state), so the live channel
/// stays frozen until the leaf advances, across reconnections and restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The leaf state being signed.
    pub leaf: LeafEpoch,
    /// Liquidity bought.
    pub amount: Amount,
    /// Its price.
    pub price: Amount,
    /// The new channel's opening balances.
    pub opening: CommitmentSpec,
}

/// What the wallet stores during an advance.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientChange {
    /// Before `liquidity_accept`: an attempt of `amount` at leaf state `leaf`'s channel.
    Attempt {
        /// The new leaf state.
        leaf: LeafEpoch,
        /// Liquidity asked.
        amount: Amount,
    },
    /// Before `leaf_partials`: the leaf's record with the signing recorded (its double-sign
    /// guard), and the purchase.
    Signing {
        /// The leaf's record.
        states: Box<LeafStates>,
        /// The purchase.
        sent: Sent,
    },
    /// After `leaf_signed` verified: the leaf's record in its new state; the new channel is the
    /// live one.
    Advanced {
        /// The leaf's record.
        states: Box<LeafStates>,
        /// The purchase.
        sent: Sent,
    },
}

/// What the wallet holds when an offer comes.
#[derive(Debug, Clone)]
pub struct OfferContext<'a> {
    /// Its path.
    pub path: &'a ClientPath,
    /// Its leaf's record.
    pub states: &'a LeafStates,
    /// What it asked and its live channel.
    pub expected: Expected,
    /// Its side of the new channel.
    pub open: ChannelOpen,
    /// The provider's side of the new channel as an earlier attempt stored it: a new offer must
    /// carry the same keys.
    pub stored_peer: Option<ChannelOpen>,
}

/// Built from the LSP's offer on this connection.
#[derive(Debug, Clone)]
struct Signing {
    advance: Advance,
    lsp_nonces: [PubNonce; 2],
    opening: CommitmentSpec,
}

/// The wallet's side of one advance: request → offer checked → accept → round 0 → partials →
/// signed.
#[derive(Debug, Clone)]
pub struct ClientAdvance {
    channel: ChannelId,
    amount: Amount,
    price: Amount,
    step: AdvanceStep,
    signing: Option<Signing>,
    sent: Option<Sent>,
    /// Whether the request went out on this connection.
    asked: bool,
    done: bool,
    actions: VecDeque<AdvanceAction<ClientChange>>,
}

impl ClientAdvance {
    /// Asks for `amount` at the terms' `price`.
    pub fn ask(channel: ChannelId, amount: Amount, price: Amount) -> ClientAdvance {
        let mut a = ClientAdvance {
            channel,
            amount,
            price,
            step: AdvanceStep::Asking,
            signing: None,
            sent: None,
            asked: false,
            done: false,
            actions: VecDeque::new(),
        };
        a.request();
        a.actions
            .push_back(AdvanceAction::Emit(AdvanceEvent::Step(AdvanceStep::Asking)));
        a
    }

    /// A purchase stored before its partial signatures left, at start: under way again, asked
    /// for once the connection is up ([`ClientAdvance::handle_connected`]).
    pub fn resume(channel: ChannelId, sent: Sent) -> ClientAdvance {
        ClientAdvance {
            channel,
            amount: sent.amount,
            price: sent.price,
            step: AdvanceStep::Signing,
            signing: None,
            sent: Some(sent),
            asked: false,
            done: false,
            actions: VecDeque::new(),
        }
    }

    fn request(&mut self) {
        self.asked = true;
        self.actions
            .push_back(AdvanceAction::Send(WireMsg::LiquidityRequest(
                LiquidityRequest {
                    channel: self.channel,
                    amount: self.amount,
                },
            )));
    }

    /// Where it is.
    pub fn step(&self) -> AdvanceStep {
        self.step
    }

    /// Liquidity asked.
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// The purchase whose partial signatures left, if they did: the live channel is frozen.
    pub fn sent(&self) -> Option<&Sent> {
        self.sent.as_ref()
    }

    /// The new leaf state, once an offer was accepted on this connection.
    pub fn new_state(&self) -> Option<&crate::leaf::LeafState> {
        self.signing.as_ref().map(|s| &s.advance.state)
    }

    /// Whether the leaf advanced.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The LSP re-opened the live channel on a new connection: a purchase whose signatures
    /// left is asked for again (the LSP sends `leaf_signed` if it signed, or offers again).
    pub fn handle_connected(&mut self) {
        if self.sent.is_some() && !self.asked {
            self.request();
        }
    }

    /// The connection dropped. A purchase whose signatures did not leave ends (nothing was
    /// bought: the error says so); one whose did waits for the next connection.
    pub fn handle_disconnected(&mut self) -> Result<(), FlowError> {
        if self.sent.is_none() {
            return Err(FlowError::OutOfOrder(
                "end of the connection before the purchase was signed",
            ));
        }
        self.reset();
        Ok(())
    }

    /// The driver could not perform an action (a store or the new channel failed): what this
    /// connection built and everything still queued is dropped. A purchase whose signatures
    /// left stays, frozen, and is asked for again on the next connection.
    pub fn handle_failed(&mut self) {
        self.reset();
    }

    fn reset(&mut self) {
        self.signing = None;
        self.asked = false;
        self.actions.clear();
    }

    /// Whether a refusal of the LSP ends it: until its partial signatures leave. Every
    /// refusal about a purchase means the LSP holds none for this connection (it dropped it,
    /// or never took it), so a purchase that was only asked for, or whose offer was accepted
    /// and whose new channel is in its round 0, has bought nothing and ends, as on a dropped
    /// connection. One whose signatures left stays: the LSP may hold the new state.
    pub fn ends_on_refusal(&self) -> bool {
        self.sent.is_none()
    }

    /// The LSP's offer: checked against what was asked, then the attempt is stored, the new
    /// channel opened and the wallet's side sent. An offer after one was accepted on this
    /// connection is ignored.
    pub fn handle_offer(
        &mut self,
        offer: &LiquidityOffer,
        ctx: OfferContext<'_>,
    ) -> Result<(), FlowError> {
        if self.signing.is_some() || self.done || offer.channel != self.channel {
            return Ok(());
        }
        check_offer(offer, &ctx.expected)?;
        let advance = Advance::new(ctx.path, ctx.states.latest(), offer.amount)?;
        if advance.epoch() != offer.leaf {
            return Err(OfferError::WrongLeaf {
                want: advance.epoch(),
                got: offer.leaf,
            }
            .into());
        }
        let opening = super::opening(&ctx.expected.live, offer.amount, offer.price)?;
        if let Some(sent) = &self.sent {
            if sent.leaf != offer.leaf || sent.amount != offer.amount || sent.opening != opening {
                return Err(OfferError::NotTheSigned.into());
            }
        }
        if ctx
            .stored_peer
            .as_ref()
            .is_some_and(|s| !s.same_points(&offer.open))
        {
            return Err(OfferError::OtherKeys.into());
        }
        self.price = offer.price;
        self.signing = Some(Signing {
            advance,
            lsp_nonces: offer.nonces.clone(),
            opening: opening.clone(),
        });
        self.actions
            .push_back(AdvanceAction::Persist(ClientChange::Attempt {
                leaf: offer.leaf,
                amount: offer.amount,
            }));
        self.actions
            .push_back(AdvanceAction::OpenChannel(Box::new(NewChannel {
                channel: self.channel,
                leaf: offer.leaf,
                opening,
                peer: offer.open.clone(),
            })));
        self.actions
            .push_back(AdvanceAction::Send(WireMsg::LiquidityAccept(Box::new(
                LiquidityAccept {
                    channel: self.channel,
                    leaf: offer.leaf,
                    open: ctx.open,
                },
            ))));
        if self.sent.is_none() {
            self.step = AdvanceStep::Opening;
            self.actions
                .push_back(AdvanceAction::Emit(AdvanceEvent::Step(
                    AdvanceStep::Opening,
                )));
        }
        Ok(())
    }

    /// Commitment 0 of the new channel is done: the signing is recorded and the purchase
    /// stored, and only then do the partial signatures leave. `states` is the leaf's record as
    /// stored.
    pub fn handle_committed<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        states: &LeafStates,
        secret: &SecretKey,
        rng: &mut R,
    ) -> Result<(), FlowError> {
        let Some(signing) = self.signing.as_ref() else {
            return Ok(());
        };
        let mut record = states.clone();
        record.record_signing(&signing.advance.state)?;
        let sent = Sent {
            leaf: signing.advance.epoch(),
            amount: self.amount,
            price: self.price,
            opening: signing.opening.clone(),
        };
        self.sent = Some(sent.clone());
        self.step = AdvanceStep::Signing;
        self.actions
            .push_back(AdvanceAction::Persist(ClientChange::Signing {
                states: Box::new(record),
                sent: sent.clone(),
            }));
        let (secs, nonces) = signing.advance.nonces(secret, rng);
        let partials = signing
            .advance
            .sign(secret, secs, &nonces, &signing.lsp_nonces)?;
        self.actions
            .push_back(AdvanceAction::Send(WireMsg::LeafPartials(Box::new(
                LeafPartials {
                    channel: self.channel,
                    leaf: sent.leaf,
                    nonces,
                    partials,
                },
            ))));
        self.actions
            .push_back(AdvanceAction::Emit(AdvanceEvent::Step(
                AdvanceStep::Signing,
            )));
        Ok(())
    }

    /// The LSP's signatures: both checked, then the advanced leaf is stored. After a restart
    /// (no offer on this connection) the advance is rebuilt from the path and the stored
    /// purchase. A `leaf_signed` for anything else is ignored.
    pub fn handle_signed(
        &mut self,
        signed: &LeafSigned,
        path: &ClientPath,
        states: &LeafStates,
    ) -> Result<(), FlowError> {
        let Some(sent) = self.sent.clone() else {
            return Ok(());
        };
        if self.done || sent.leaf != signed.leaf || signed.channel != self.channel {
            return Ok(());
        }
        let mut advance = match self.signing.as_ref() {
            Some(s) => s.advance.clone(),
            None => Advance::new(path, states.latest(), sent.amount)?,
        };
        if advance.epoch() != signed.leaf {
            return Ok(());
        }
        advance.attach(signed.signatures)?;
        let mut record = states.clone();
        record.advance(advance.state, advance.redistribution)?;
        self.done = true;
        self.actions
            .push_back(AdvanceAction::Persist(ClientChange::Advanced {
                states: Box::new(record),
                sent: sent.clone(),
            }));
        self.actions
            .push_back(AdvanceAction::Emit(AdvanceEvent::Done {
                leaf: sent.leaf,
                amount: sent.amount,
                price: sent.price,
            }));
        Ok(())
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<AdvanceAction<ClientChange>> {
        self.actions.pop_front()
    }
}
