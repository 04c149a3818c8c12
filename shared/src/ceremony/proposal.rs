//! Where the ceremony meets the factory tree: the proposal it carries, and the two hooks that
//! turn a proposal into [`SigningJob`]s ([`Proposer`] on the LSP, [`JobSource`] on the client).
//!
//! The ceremony does not know what a tree is. The LSP's [`Proposer`] builds the tree for the
//! current members and returns its public parameters ([`ProposalBody`], any serde type) together
//! with every job. Each client's [`JobSource`] rebuilds and checks *its own* jobs from that body;
//! if it cannot, it returns a [`Refusal`] and the client signs nothing. A tree type slots in by
//! implementing [`Proposal`] (then [`ProposalJobs`] is its `JobSource`), or through closures.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Transaction;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::messages::{Quote, Reason};
use crate::musig::KeyAgg;
use crate::types::{ClientId, FactoryId, Now, SessionId, SigningJob};

/// The tree's public parameters, opaque to the ceremony: any serde type, carried as JSON.
///
/// Shared, not copied: the LSP queues one `propose` per member, and for a large factory the
/// body is hundreds of kilobytes of JSON, so clones share one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalBody(Arc<serde_json::Value>);

impl Serialize for ProposalBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProposalBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(|v| ProposalBody(Arc::new(v)))
    }
}

impl ProposalBody {
    /// Encodes a typed proposal (e.g. the tree's `FactoryProposal`).
    pub fn encode<T: Serialize>(proposal: &T) -> Result<ProposalBody, Refusal> {
        serde_json::to_value(proposal)
            .map(|v| ProposalBody(Arc::new(v)))
            .map_err(|e| Refusal::new(format!("proposal does not encode: {e}")))
    }

    /// Decodes the typed proposal; a body that does not decode is refused.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        T::deserialize(&*self.0).map_err(|e| Refusal::new(format!("proposal does not decode: {e}")))
    }

    /// The raw JSON value.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }
}

/// What the LSP proposes for one session: everything a client needs to rebuild its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalPayload {
    /// The factory.
    pub factory: FactoryId,
    /// The session this proposal belongs to; a restart proposes again under a new one.
    pub session: SessionId,
    /// The tree's parameters.
    pub body: ProposalBody,
}

/// A signer's refusal to go on, with a reason that is sent to the other side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub Reason);

impl Refusal {
    /// A refusal with this reason (cut to the wire limit).
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal(Reason::new(reason))
    }
}

/// What a client knows when it rebuilds its jobs: who it is and what it was promised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildContext {
    /// The factory it joined.
    pub factory: FactoryId,
    /// The session being proposed.
    pub session: SessionId,
    /// Its id in the factory.
    pub client: ClientId,
    /// Its factory key.
    pub pubkey: PublicKey,
    /// The LSP's factory key, as announced at join.
    pub lsp_key: PublicKey,
    /// The quote it accepted at join.
    pub quote: Quote,
    /// The present, for timeout checks.
    pub now: Now,
}

/// Client side: rebuilds and checks the jobs this client must sign from a proposal.
///
/// Must return exactly the jobs of every node on the client's path (every node whose signers
/// include `ctx.pubkey`), each with the sighash the client computed itself, or a [`Refusal`]
/// if anything in the proposal fails the client's checks (amounts, timeouts, fees, funding
/// outpoint…). Closures `Fn(&RebuildContext, &ProposalPayload) -> Result<Vec<SigningJob>, Refusal>`
/// implement it.
pub trait JobSource {
    /// The client's jobs for this proposal, or why it refuses.
    fn rebuild(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<Vec<SigningJob>, Refusal>;

    /// [`JobSource::rebuild`], with the key aggregations the check already made (each of the
    /// jobs' signer sets it aggregated, [`crate::path::ClientPath::build_with_keys`]), so the
    /// client does not aggregate them again. The default has none to give.
    fn rebuild_with_keys(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<(Vec<SigningJob>, Vec<KeyAgg>), Refusal> {
        Ok((self.rebuild(ctx, payload)?, Vec::new()))
    }
}

impl<F> JobSource for F
where
    F: Fn(&RebuildContext, &ProposalPayload) -> Result<Vec<SigningJob>, Refusal>,
{
    fn rebuild(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<Vec<SigningJob>, Refusal> {
        self(ctx, payload)
    }
}

/// A typed proposal that can check itself for one client and derive that client's jobs.
pub trait Proposal: Serialize + DeserializeOwned {
    /// The jobs `ctx.pubkey` must sign, after every check the client needs.
    fn jobs_for(&self, ctx: &RebuildContext) -> Result<Vec<SigningJob>, Refusal>;
}

/// The [`JobSource`] of a [`Proposal`] type: decode the body as `P`, then [`Proposal::jobs_for`].
pub struct ProposalJobs<P>(PhantomData<fn() -> P>);

impl<P> ProposalJobs<P> {
    /// The job source for proposals of type `P`.
    pub fn new() -> Self {
        ProposalJobs(PhantomData)
    }
}

impl<P> Default for ProposalJobs<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> fmt::Debug for ProposalJobs<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProposalJobs")
    }
}

impl<P: Proposal> JobSource for ProposalJobs<P> {
    fn rebuild(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<Vec<SigningJob>, Refusal> {
        payload.body.decode::<P>()?.jobs_for(ctx)
    }
}

/// A member of the factory as the LSP's proposer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its factory key.
    pub pubkey: PublicKey,
    /// What it was quoted.
    pub quote: Quote,
}

/// What the LSP's proposer is asked to build.
#[derive(Debug, Clone)]
pub struct ProposalRequest<'a> {
    /// The factory.
    pub factory: FactoryId,
    /// The session the proposal is for.
    pub session: SessionId,
    /// The LSP's factory key.
    pub lsp_pubkey: PublicKey,
    /// The current members (excluded clients are gone), by id.
    pub members: &'a BTreeMap<ClientId, Member>,
    /// The present.
    pub now: Now,
}

/// A built proposal: the body clients rebuild from, every job, and the funding transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
    /// Sent to every client.
    pub body: ProposalBody,
    /// Every job of the tree; each signer must be the LSP or a member.
    pub jobs: Vec<SigningJob>,
    /// Key aggregations the builder already made for the jobs' signer sets
    /// ([`crate::tree::FactoryTree::build_with_keys`]); may be empty.
    pub keys: Vec<KeyAgg>,
    /// The signed funding transaction, broadcast only once every member stored its signatures.
    pub funding_tx: Transaction,
}

/// LSP side: builds the tree for the current members. Called again on each restart, with fewer
/// members; every session of one factory must be funded from the same LSP inputs, so that at
/// most one session's funding transaction can ever confirm.
/// Closures `FnMut(&ProposalRequest) -> Result<Proposed, Refusal>` implement it.
pub trait Proposer {
    /// The proposal for these members, or why none can be made.
    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposed, Refusal>;
}

impl<F> Proposer for F
where
    F: FnMut(&ProposalRequest<'_>) -> Result<Proposed, Refusal>,
{
    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposed, Refusal> {
        self(request)
    }
}
