//! Opening a connection: `hello` → checked terms → `auth_request` → signed challenge →
//! `authenticated`. Used for the first connection and for every reconnection.

use std::pin::pin;
use std::time::Duration;

use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use bitcoin::Network;
use futures::future::{select, Either};
use shared::auth::{sign_challenge, AuthRequest, Resumed};
use shared::terms::TermsBody;
use shared::wire::{Envelope, ErrorCode, WireMsg};

use super::transport::{Transport, TransportError};
use super::SessionError;
use crate::platform::{sleep, unix_now};

/// How long the LSP may take to answer each handshake message.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// An authenticated connection.
pub(crate) struct Link<T> {
    pub(crate) transport: T,
    pub(crate) lsp: XOnlyPublicKey,
    pub(crate) resumed: Option<Resumed>,
    /// The LSP's checked terms.
    pub(crate) terms: TermsBody,
}

/// Who says hello.
pub(crate) struct Greeting<'a> {
    pub(crate) network: Network,
    pub(crate) identity: &'a Keypair,
    pub(crate) agent: &'a str,
}

/// A transport failure, retried by reconnecting.
pub(crate) fn unreachable(source: TransportError) -> SessionError {
    SessionError::Unreachable {
        source,
        attempts: 0,
    }
}

/// The next frame within `timeout`, decoded.
pub(crate) async fn recv<T: Transport>(
    transport: &mut T,
    timeout: Duration,
) -> Result<Option<WireMsg>, SessionError> {
    let next = pin!(transport.next());
    let timer = pin!(sleep(timeout));
    match select(next, timer).await {
        Either::Left((frame, _)) => match frame.map_err(unreachable)? {
            Some(text) => Ok(Some(Envelope::decode(&text)?.msg)),
            None => Err(unreachable(TransportError {
                url: String::new(),
                reason: "the LSP closed the connection".into(),
            })),
        },
        Either::Right(_) => Ok(None),
    }
}

async fn send<T: Transport>(transport: &mut T, msg: WireMsg) -> Result<(), SessionError> {
    transport
        .send(Envelope::new(msg).encode())
        .await
        .map_err(unreachable)
}

/// Waits for the handshake answer `pick` accepts, answering pings on the way.
async fn expect<T: Transport, R>(
    transport: &mut T,
    what: &str,
    mut pick: impl FnMut(WireMsg) -> Option<Result<R, SessionError>>,
) -> Result<R, SessionError> {
    loop {
        let Some(msg) = recv(transport, HANDSHAKE_TIMEOUT).await? else {
            return Err(SessionError::Handshake(format!(
                "no {what} within {HANDSHAKE_TIMEOUT:?}"
            )));
        };
        match msg {
            WireMsg::Ping { nonce } => send(transport, WireMsg::Pong { nonce }).await?,
            WireMsg::Error { code, message, .. } => {
                return Err(match code {
                    ErrorCode::AuthFailed | ErrorCode::NotAuthenticated => {
                        SessionError::AuthRefused(message)
                    }
                    _ => SessionError::Handshake(message),
                })
            }
            other => {
                if let Some(result) = pick(other) {
                    return result;
                }
            }
        }
    }
}

/// Says hello, checks the terms (and that the LSP is the one seen before, if any), and
/// authenticates with the wallet's identity key.
pub(crate) async fn handshake<T: Transport>(
    mut transport: T,
    hello: Greeting<'_>,
    known_lsp: Option<XOnlyPublicKey>,
) -> Result<Link<T>, SessionError> {
    let secp = shared::secp::ctx();
    send(
        &mut transport,
        WireMsg::Hello {
            agent: hello.agent.to_owned(),
        },
    )
    .await?;
    let network = hello.network;
    let terms = expect(&mut transport, "welcome", |msg| match msg {
        WireMsg::Welcome { terms } => Some(
            terms
                .verify(secp, unix_now(), network)
                .cloned()
                .map_err(SessionError::from),
        ),
        _ => None,
    })
    .await?;
    let lsp = terms.lsp_pubkey;
    if known_lsp.is_some_and(|k| k != lsp) {
        return Err(SessionError::LspChanged);
    }
    let me = hello.identity.x_only_public_key().0;
    send(
        &mut transport,
        WireMsg::AuthRequest(AuthRequest { pubkey: me }),
    )
    .await?;
    let challenge = expect(&mut transport, "auth_challenge", |msg| match msg {
        WireMsg::AuthChallenge(c) => Some(Ok(c.challenge)),
        _ => None,
    })
    .await?;
    let proof = sign_challenge(
        secp,
        hello.identity,
        &challenge,
        &lsp,
        &mut rand::rngs::OsRng,
    );
    send(&mut transport, WireMsg::AuthProof(proof)).await?;
    let resumed = expect(&mut transport, "authenticated", |msg| match msg {
        WireMsg::Authenticated(a) if a.pubkey == me => Some(Ok(a.resumed)),
        _ => None,
    })
    .await?;
    Ok(Link {
        transport,
        lsp,
        resumed,
        terms,
    })
}
