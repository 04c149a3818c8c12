//! A raw WebSocket to the LSP, for tests that send frames no honest wallet would: connect and
//! say hello, authenticate as any key, send and receive envelopes, expect an error.

use std::time::Duration;

use bitcoin::secp256k1::{Keypair, Secp256k1, XOnlyPublicKey};
use futures::{SinkExt, StreamExt};
use shared::auth::{sign_challenge, AuthRequest, Authenticated};
use shared::wire::{Envelope, ErrorCode, WireMsg};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one text frame as is.
pub async fn send_text(ws: &mut Ws, text: String) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// Sends `msg` in an envelope of this build's version.
pub async fn send(ws: &mut Ws, msg: WireMsg) {
    send_text(ws, Envelope::new(msg).encode()).await;
}

/// The next message from the LSP (within 10 s), skipping WebSocket pings.
pub async fn recv(ws: &mut Ws) -> WireMsg {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time")
            .expect("connection open")
            .expect("frame");
        match frame {
            Message::Text(t) => {
                return Envelope::decode(t.as_str()).expect("LSP frames decode").msg
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next error from the LSP, skipping anything else (e.g. a replayed ceremony frame).
pub async fn next_error(ws: &mut Ws) -> WireMsg {
    loop {
        let msg = recv(ws).await;
        if matches!(msg, WireMsg::Error { .. }) {
            return msg;
        }
    }
}

/// Checks that `msg` is a non-fatal error with code `want`; returns its message.
pub fn expect_error(msg: WireMsg, want: ErrorCode) -> String {
    match msg {
        WireMsg::Error {
            code,
            message,
            fatal,
            ..
        } => {
            assert_eq!(code, want, "{message}");
            assert!(!fatal, "{message}");
            message
        }
        other => panic!("expected a {want:?} error, got {other:?}"),
    }
}

/// Connects and says hello; returns the socket and the LSP's identity key.
pub async fn connect(url: &str) -> (Ws, XOnlyPublicKey) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    send(
        &mut ws,
        WireMsg::Hello {
            agent: "raw test client".into(),
        },
    )
    .await;
    let WireMsg::Welcome { terms } = recv(&mut ws).await else {
        panic!("expected welcome")
    };
    (ws, terms.body.lsp_pubkey)
}

/// Connects, says hello and authenticates as `identity`.
pub async fn connect_as(url: &str, identity: &Keypair) -> (Ws, Authenticated) {
    let (mut ws, lsp) = connect(url).await;
    let secp = Secp256k1::new();
    send(
        &mut ws,
        WireMsg::AuthRequest(AuthRequest {
            pubkey: identity.x_only_public_key().0,
        }),
    )
    .await;
    let WireMsg::AuthChallenge(c) = recv(&mut ws).await else {
        panic!("expected a challenge")
    };
    let proof = sign_challenge(&secp, identity, &c.challenge, &lsp, &mut rand::thread_rng());
    send(&mut ws, WireMsg::AuthProof(proof)).await;
    let WireMsg::Authenticated(a) = recv(&mut ws).await else {
        panic!("expected authenticated")
    };
    (ws, a)
}
