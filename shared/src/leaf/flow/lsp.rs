//! The LSP's side of one leaf advance.

use std::collections::VecDeque;

use bitcoin::secp256k1::{schnorr, PublicKey, SecretKey};
use bitcoin::Amount;

use super::{AdvanceAction, FlowError, NewChannel};
use crate::ceremony::Deadline;
use crate::channel::CommitmentSpec;
use crate::leaf::{
    Advance, LeafEpoch, LeafPartials, LeafSigned, LeafState, LeafStates, LiquidityAccept,
    LiquidityOffer,
};
use crate::musig::{PubNonce, SecNonce};
use crate::path::ClientPath;
use crate::pay::{ChannelId, ChannelOpen};
use crate::wire::WireMsg;

/// What the LSP stores during an advance.
#[derive(Debug, Clone, PartialEq)]
pub enum LspChange {
    /// Before the new channel's round 0 signs anything: an attempt of `amount` opened leaf
    /// state `leaf`'s channel with `opening` (a later attempt of the same amount must open it
    /// with the same balances, or be refused).
    Attempt {
        /// The new leaf state.
        leaf: LeafEpoch,
        /// Liquidity asked.
        amount: Amount,
        /// The new channel's opening balances.
        opening: CommitmentSpec,
    },
    /// Before `leaf_signed` leaves: the sale. `states` is the leaf's record with the new state
    /// and the redistribution, both signed; the new channel becomes the live one.
    Sold {
        /// The leaf's record after the advance.
        states: Box<LeafStates>,
        /// Liquidity sold.
        amount: Amount,
        /// Its price.
        price: Amount,
        /// The new channel's opening balances.
        opening: CommitmentSpec,
    },
}

/// What the LSP's driver decided before offering (its settings, its copy of the live channel).
#[derive(Debug, Clone)]
pub struct OfferInputs<'a> {
    /// The client's path in its factory.
    pub path: &'a ClientPath,
    /// The leaf's latest state.
    pub current: &'a LeafState,
    /// Liquidity asked.
    pub amount: Amount,
    /// The terms' price of it.
    pub price: Amount,
    /// The live channel's committed state (quiescent).
    pub live: &'a CommitmentSpec,
    /// The LSP's factory key.
    pub secret: SecretKey,
    /// The LSP's side of the new channel.
    pub open: ChannelOpen,
    /// Unix time now.
    pub now: u64,
    /// Seconds the whole advance may take.
    pub limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Offered,
    Opening,
    Committed,
    Done,
    /// Refused or out of time: the driver drops it.
    Failed,
}

/// The LSP's side of one advance: offer → accept → round 0 → partials → signed.
pub struct LspAdvance {
    channel: ChannelId,
    step: Step,
    deadline: u64,
    advance: Advance,
    secs: Option<[SecNonce; 2]>,
    pubs: [PubNonce; 2],
    amount: Amount,
    price: Amount,
    opening: CommitmentSpec,
    secret: SecretKey,
    client_key: PublicKey,
    actions: VecDeque<AdvanceAction<LspChange>>,
}

impl LspAdvance {
    /// Builds the advance a `liquidity_request` asks for and queues the offer.
    pub fn offer<R: rand::RngCore + rand::CryptoRng>(
        channel: ChannelId,
        inputs: OfferInputs<'_>,
        rng: &mut R,
    ) -> Result<LspAdvance, FlowError> {
        let advance = Advance::new(inputs.path, inputs.current, inputs.amount)?;
        let opening = super::opening(inputs.live, inputs.amount, inputs.price)?;
        if opening.total() != advance.state.channel_output().value {
            return Err(FlowError::Unbalanced);
        }
        let (secs, pubs) = advance.nonces(&inputs.secret, rng);
        let offer = LiquidityOffer {
            channel,
            leaf: advance.epoch(),
            amount: inputs.amount,
            price: inputs.price,
            open: inputs.open,
            nonces: pubs.clone(),
        };
        Ok(LspAdvance {
            channel,
            step: Step::Offered,
            // Ends once more than `limit` seconds passed.
            deadline: inputs.now.saturating_add(inputs.limit).saturating_add(1),
            advance,
            secs: Some(secs),
            pubs,
            amount: inputs.amount,
            price: inputs.price,
            opening,
            secret: inputs.secret,
            client_key: inputs.path.client_key(),
            actions: VecDeque::from([AdvanceAction::Send(WireMsg::LiquidityOffer(Box::new(
                offer,
            )))]),
        })
    }

    /// The new leaf state.
    pub fn leaf(&self) -> LeafEpoch {
        self.advance.epoch()
    }

    /// The new leaf state (the channel the purchase opens lives on its channel output).
    pub fn new_state(&self) -> &LeafState {
        &self.advance.state
    }

    /// The new channel's opening balances.
    pub fn opening(&self) -> &CommitmentSpec {
        &self.opening
    }

    /// The wallet accepts: the attempt is stored, then the new channel opens.
    pub fn handle_accept(&mut self, accept: &LiquidityAccept) -> Result<(), FlowError> {
        if self.step != Step::Offered
            || accept.leaf != self.leaf()
            || accept.open.leaf != self.leaf()
            || accept.open.channel != self.channel
        {
            return Err(FlowError::OutOfOrder("liquidity_accept"));
        }
        self.step = Step::Opening;
        self.actions
            .push_back(AdvanceAction::Persist(LspChange::Attempt {
                leaf: self.leaf(),
                amount: self.amount,
                opening: self.opening.clone(),
            }));
        self.actions
            .push_back(AdvanceAction::OpenChannel(Box::new(NewChannel {
                channel: self.channel,
                leaf: self.leaf(),
                opening: self.opening.clone(),
                peer: accept.open.clone(),
            })));
        Ok(())
    }

    /// Commitment 0 of the new channel is done.
    pub fn handle_committed(&mut self) {
        if self.step == Step::Opening {
            self.step = Step::Committed;
        }
    }

    /// The wallet's partial signatures: checked, the LSP's added, the sale stored, then the
    /// signatures sent. `states` is the leaf's record as stored. A refusal ends the advance.
    pub fn handle_partials(
        &mut self,
        msg: &LeafPartials,
        states: &LeafStates,
    ) -> Result<(), FlowError> {
        if msg.leaf != self.leaf() {
            return Err(FlowError::OutOfOrder(
                "leaf_partials for another leaf state",
            ));
        }
        if self.step != Step::Committed {
            return Err(FlowError::OutOfOrder(
                "leaf_partials before the new channel's first round is done",
            ));
        }
        let (states, signatures) = match self.complete(msg, states) {
            Ok(done) => done,
            Err(e) => {
                self.step = Step::Failed;
                return Err(e);
            }
        };
        self.step = Step::Done;
        self.actions
            .push_back(AdvanceAction::Persist(LspChange::Sold {
                states: Box::new(states),
                amount: self.amount,
                price: self.price,
                opening: self.opening.clone(),
            }));
        self.actions
            .push_back(AdvanceAction::Send(WireMsg::LeafSigned(Box::new(
                LeafSigned {
                    channel: self.channel,
                    leaf: self.leaf(),
                    signatures,
                },
            ))));
        self.actions
            .push_back(AdvanceAction::Emit(super::AdvanceEvent::Done {
                leaf: self.leaf(),
                amount: self.amount,
                price: self.price,
            }));
        Ok(())
    }

    /// Records, checks, signs and aggregates: the leaf's record after the advance.
    fn complete(
        &mut self,
        msg: &LeafPartials,
        states: &LeafStates,
    ) -> Result<(LeafStates, [schnorr::Signature; 2]), FlowError> {
        let secs = self
            .secs
            .take()
            .ok_or(FlowError::OutOfOrder("leaf_partials twice"))?;
        let mut states = states.clone();
        states.record_signing(&self.advance.state)?;
        let signatures = self.advance.complete(
            &self.secret,
            secs,
            &self.pubs,
            &self.client_key,
            &msg.nonces,
            &msg.partials,
        )?;
        states.advance(
            self.advance.state.clone(),
            self.advance.redistribution.clone(),
        )?;
        Ok((states, signatures))
    }

    /// When the advance must be over.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        matches!(self.step, Step::Offered | Step::Opening | Step::Committed)
            .then_some(Deadline::UnixTime(self.deadline))
    }

    /// The clock: an advance past its deadline ends (the driver drops it and tells the wallet).
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), FlowError> {
        match self.poll_timeout() {
            Some(Deadline::UnixTime(t)) if now >= t => {
                self.step = Step::Failed;
                Err(FlowError::TimedOut)
            }
            _ => Ok(()),
        }
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<AdvanceAction<LspChange>> {
        self.actions.pop_front()
    }

    /// Whether it completed (the sale was queued).
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }
}
