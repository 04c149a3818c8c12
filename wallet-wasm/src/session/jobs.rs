//! The wallet's [`JobSource`]: decode the LSP's factory proposal, run every client check of
//! `shared::verify`, and sign exactly the nodes of its own path (and the distribution
//! transaction). Anything that fails a check is refused with the check's reason.
//!
//! The path it built is kept (one per session, the latest) so the driver can attach the final
//! signatures to it without rebuilding it.
//!
//! The driver reads the tip before each proposal; when it could not (or the tip contradicts
//! one already seen) it leaves the reason in the [`ChainNote`], and the proposal is refused
//! with it: a proposal's timeouts cannot be checked without a height the wallet trusts.

use std::sync::{Arc, Mutex, PoisonError};

use shared::ceremony::{JobSource, ProposalPayload, RebuildContext, Refusal};
use shared::musig::KeyAgg;
use shared::path::ClientPath;
use shared::tree::FactoryProposal;
use shared::types::{FactoryId, SessionId, SigningJob};
use shared::verify::{check_proposal_with_keys, ClientPolicy, Expectation};

/// The latest checked path, by factory and session.
pub(super) type LastPath = Arc<Mutex<Option<((FactoryId, SessionId), ClientPath)>>>;

/// Why the chain cannot be trusted right now (`None`: the last tip read was good).
pub(super) type ChainNote = Arc<Mutex<Option<String>>>;

/// Rebuilds and checks this wallet's jobs from a [`FactoryProposal`].
#[derive(Debug, Clone)]
pub struct TreeJobs {
    policy: ClientPolicy,
    last: LastPath,
    chain: ChainNote,
}

impl TreeJobs {
    /// Checks proposals against `policy`.
    pub fn new(policy: ClientPolicy) -> Self {
        TreeJobs {
            policy,
            last: LastPath::default(),
            chain: ChainNote::default(),
        }
    }

    /// The path of the latest proposal this source accepted.
    pub(super) fn last_path(&self) -> LastPath {
        self.last.clone()
    }

    /// Where the driver says whether the chain can be trusted.
    pub(super) fn chain_note(&self) -> ChainNote {
        self.chain.clone()
    }
}

impl JobSource for TreeJobs {
    fn rebuild(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<Vec<SigningJob>, Refusal> {
        Ok(self.rebuild_with_keys(ctx, payload)?.0)
    }

    /// The check aggregates every signer set of the path; signing reuses them.
    fn rebuild_with_keys(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<(Vec<SigningJob>, Vec<KeyAgg>), Refusal> {
        if let Some(why) = self
            .chain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(Refusal::new(why));
        }
        let proposal: FactoryProposal = payload.body.decode()?;
        let expect = Expectation {
            my_key: ctx.pubkey,
            lsp_key: ctx.lsp_key,
            channel: ctx.quote.channel,
            lstock: ctx.quote.liquidity,
        };
        let (path, keys) =
            check_proposal_with_keys(&proposal, &expect, &self.policy, ctx.now.height)
                .map_err(|e| Refusal::new(e.to_string()))?;
        let jobs = path.signing_jobs();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(((payload.factory, payload.session), path));
        Ok((jobs, keys))
    }
}
