//! The wallet's [`JobSource`]: decode the LSP's factory proposal, run every client check of
//! `shared::verify`, and sign exactly the nodes of its own path (and the distribution
//! transaction). Anything that fails a check is refused with the check's reason.
//!
//! The path it built is kept (one per session, the latest) so the driver can attach the final
//! signatures to it without rebuilding it.

use std::sync::{Arc, Mutex, PoisonError};

use shared::ceremony::{JobSource, ProposalPayload, RebuildContext, Refusal};
use shared::path::ClientPath;
use shared::tree::FactoryProposal;
use shared::types::{FactoryId, SessionId, SigningJob};
use shared::verify::{check_proposal, ClientPolicy, Expectation};

/// The latest checked path, by factory and session.
pub(super) type LastPath = Arc<Mutex<Option<((FactoryId, SessionId), ClientPath)>>>;

/// Rebuilds and checks this wallet's jobs from a [`FactoryProposal`].
#[derive(Debug, Clone)]
pub struct TreeJobs {
    policy: ClientPolicy,
    last: LastPath,
}

impl TreeJobs {
    /// Checks proposals against `policy`.
    pub fn new(policy: ClientPolicy) -> Self {
        TreeJobs {
            policy,
            last: LastPath::default(),
        }
    }

    /// The path of the latest proposal this source accepted.
    pub(super) fn last_path(&self) -> LastPath {
        self.last.clone()
    }
}

impl JobSource for TreeJobs {
    fn rebuild(
        &self,
        ctx: &RebuildContext,
        payload: &ProposalPayload,
    ) -> Result<Vec<SigningJob>, Refusal> {
        let proposal: FactoryProposal = payload.body.decode()?;
        let expect = Expectation {
            my_key: ctx.pubkey,
            lsp_key: ctx.lsp_key,
            channel: ctx.quote.channel,
            lstock: ctx.quote.liquidity,
        };
        let path = check_proposal(&proposal, &expect, &self.policy, ctx.now.height)
            .map_err(|e| Refusal::new(e.to_string()))?;
        let jobs = path.signing_jobs();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(((payload.factory, payload.session), path));
        Ok(jobs)
    }
}
