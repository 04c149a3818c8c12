//! One connection's authentication state: `auth_request` → challenge → `auth_proof`.
//!
//! A challenge is single use: a proof is checked against the latest challenge of this
//! connection only, and a failed proof discards it (the wallet must ask again).

use bitcoin::secp256k1::XOnlyPublicKey;
use shared::auth::{verify_proof, AuthChallenge, AuthError, AuthProof, AuthRequest, Challenge};

/// Where a connection is in the handshake.
#[derive(Debug, Default)]
pub(super) enum AuthState {
    /// Nothing asked yet (or the last proof failed).
    #[default]
    Anonymous,
    /// A challenge is out for `identity`.
    Challenged {
        identity: XOnlyPublicKey,
        challenge: Challenge,
    },
    /// Proven.
    Authenticated(XOnlyPublicKey),
}

impl AuthState {
    /// The proven identity, if any.
    pub(super) fn identity(&self) -> Option<XOnlyPublicKey> {
        match self {
            AuthState::Authenticated(id) => Some(*id),
            _ => None,
        }
    }

    /// A wallet asks to be challenged; returns the challenge to send.
    pub(super) fn request(&mut self, req: AuthRequest) -> AuthChallenge {
        let challenge = Challenge::random(&mut rand::rngs::OsRng);
        *self = AuthState::Challenged {
            identity: req.pubkey,
            challenge,
        };
        AuthChallenge { challenge }
    }

    /// Checks a proof against the pending challenge; on success the connection is bound to the
    /// identity, which is returned.
    pub(super) fn prove(
        &mut self,
        lsp: &XOnlyPublicKey,
        proof: &AuthProof,
    ) -> Result<XOnlyPublicKey, AuthError> {
        let (identity, challenge) = match self {
            AuthState::Challenged {
                identity,
                challenge,
            } => (*identity, *challenge),
            _ => return Err(AuthError::NoChallenge),
        };
        *self = AuthState::Anonymous;
        verify_proof(shared::secp::ctx(), &challenge, lsp, &identity, proof)?;
        *self = AuthState::Authenticated(identity);
        Ok(identity)
    }
}
