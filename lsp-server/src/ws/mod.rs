//! One WebSocket connection with a wallet: decode with limits, answer what needs no state
//! (hello, ping, authentication), and hand ceremony messages of an authenticated wallet to the
//! factory coordinator, whose frames it sends back. Never panics on input.

mod auth;
mod rate;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use shared::wire::{Envelope, ErrorCode, WireMsg, MAX_FRAME_BYTES};
use tokio::sync::mpsc;

use self::auth::AuthState;
use self::rate::RateLimit;
use crate::factory::{Inbound, Outbound};
use crate::AppState;

fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> WireMsg {
    WireMsg::Error {
        code,
        message: message.into(),
        fatal,
        about: None,
    }
}

/// What woke the connection task.
enum Wake {
    Frame(Option<Result<Message, axum::Error>>),
    Out(Option<Outbound>),
    Ping,
    Shutdown,
}

/// One connection's state.
struct Connection {
    id: u64,
    state: AppState,
    auth: AuthState,
    /// Handed to the coordinator when the wallet authenticates.
    out: Option<mpsc::UnboundedSender<Outbound>>,
}

/// Serves one connection until the peer leaves, a fatal error, or shutdown.
pub async fn serve(mut socket: WebSocket, state: AppState) {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let mut conn = Connection {
        id: state.next_conn.fetch_add(1, Ordering::Relaxed),
        state: state.clone(),
        auth: AuthState::default(),
        out: Some(out_tx),
    };
    let metrics = state.metrics.clone();
    let _open = metrics.connection();
    let mut shutdown = state.shutdown.clone();
    let mut rate = RateLimit::new();
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    loop {
        let attached = conn.out.is_none();
        let wake = tokio::select! {
            frame = socket.recv() => Wake::Frame(frame),
            out = out_rx.recv(), if attached => Wake::Out(out),
            _ = ping.tick() => Wake::Ping,
            _ = shutdown.changed() => Wake::Shutdown,
        };
        let reply = match wake {
            Wake::Shutdown | Wake::Frame(None) | Wake::Out(None) => break,
            Wake::Ping => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
                continue;
            }
            Wake::Out(Some(Outbound::Frame(frame))) => {
                metrics.frame_sent();
                if socket
                    .send(Message::Text(frame.as_ref().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Wake::Out(Some(Outbound::Close(frame))) => {
                let _ = socket.send(Message::Text(frame.as_ref().into())).await;
                break;
            }
            Wake::Frame(Some(Err(e))) => {
                metrics.error_sent(ErrorCode::TooLarge);
                // The socket layer refused the frame (e.g. over the size limit): say why, then close.
                let msg = error(ErrorCode::TooLarge, format!("connection closed: {e}"), true);
                let _ = socket
                    .send(Message::Text(Envelope::new(msg).encode().into()))
                    .await;
                break;
            }
            Wake::Frame(Some(Ok(frame))) => {
                metrics.frame_received();
                if matches!(frame, Message::Text(_) | Message::Binary(_)) {
                    if let Some(pause) = rate.take() {
                        tokio::time::sleep(pause).await;
                    }
                }
                match frame {
                    Message::Text(text) => match Envelope::decode(text.as_str()) {
                        Ok(env) => match conn.handle(env.msg).await {
                            Ok(reply) => reply,
                            Err(Gone) => break,
                        },
                        Err(e) => Some(error(e.code(), e.to_string(), false)),
                    },
                    Message::Binary(b) if b.len() > MAX_FRAME_BYTES => {
                        Some(error(ErrorCode::TooLarge, "frame too large", false))
                    }
                    Message::Binary(_) => Some(error(
                        ErrorCode::Malformed,
                        "binary frames are not used; send JSON text",
                        false,
                    )),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => None,
                }
            }
        };
        if let Some(msg) = reply {
            let fatal = matches!(msg, WireMsg::Error { fatal: true, .. });
            if let WireMsg::Error { code, .. } = &msg {
                metrics.error_sent(*code);
            }
            metrics.frame_sent();
            if socket
                .send(Message::Text(Envelope::new(msg).encode().into()))
                .await
                .is_err()
                || fatal
            {
                break;
            }
        }
    }
    if conn.out.is_none() {
        let _ = state
            .coordinator
            .send(Inbound::Detach { conn: conn.id })
            .await;
        let _ = state
            .router
            .send(crate::channels::RouterMsg::Detach { conn: conn.id })
            .await;
    }
}

/// The coordinator is gone (the server is stopping).
struct Gone;

impl Connection {
    /// Answers one message, or forwards it to the coordinator.
    async fn handle(&mut self, msg: WireMsg) -> Result<Option<WireMsg>, Gone> {
        Ok(match msg {
            WireMsg::Hello { agent } => {
                tracing::info!(%agent, conn = self.id, "wallet connected");
                Some(WireMsg::Welcome {
                    terms: Box::new(self.state.terms().await),
                })
            }
            WireMsg::Ping { nonce } => Some(WireMsg::Pong { nonce }),
            WireMsg::Pong { .. } => None,
            WireMsg::AuthRequest(req) => match self.auth.identity() {
                Some(id) => Some(error(
                    ErrorCode::Unexpected,
                    format!("this connection is already authenticated as {id}"),
                    false,
                )),
                None => Some(WireMsg::AuthChallenge(self.auth.request(req))),
            },
            WireMsg::AuthProof(proof) => {
                let lsp = self.state.key.x_only_public_key().0;
                match (self.auth.prove(&lsp, &proof), self.out.take()) {
                    (Ok(identity), Some(out)) => {
                        self.state.metrics.authenticated();
                        let router = crate::channels::RouterMsg::Attach {
                            conn: self.id,
                            identity,
                            out: out.clone(),
                        };
                        self.state.router.send(router).await.map_err(|_| Gone)?;
                        let attach = Inbound::Attach {
                            conn: self.id,
                            identity,
                            out,
                        };
                        self.state
                            .coordinator
                            .send(attach)
                            .await
                            .map_err(|_| Gone)?;
                        None
                    }
                    (Ok(_), None) => None,
                    (Err(e), out) => {
                        self.out = out;
                        tracing::info!(conn = self.id, error = %e, "authentication failed");
                        Some(error(ErrorCode::AuthFailed, e.to_string(), false))
                    }
                }
            }
            WireMsg::JoinRequest(_)
            | WireMsg::Nonces(_)
            | WireMsg::PartialSigs(_)
            | WireMsg::SigsStored(_)
            | WireMsg::Refuse(_) => {
                if self.auth.identity().is_none() || self.out.is_some() {
                    Some(not_authenticated())
                } else {
                    let msg = Inbound::Message { conn: self.id, msg };
                    self.state.coordinator.send(msg).await.map_err(|_| Gone)?;
                    None
                }
            }
            WireMsg::ChannelOpen(_)
            | WireMsg::Channel(_)
            | WireMsg::PayRequest(_)
            | WireMsg::SwapOutRequest(_)
            | WireMsg::FaucetRequest(_)
            | WireMsg::RouteQuery(_)
            | WireMsg::InvoiceRegister(_)
            | WireMsg::LiquidityRequest(_)
            | WireMsg::LiquidityAccept(_)
            | WireMsg::LeafPartials(_)
            | WireMsg::KeyRelease(_) => {
                if self.auth.identity().is_none() || self.out.is_some() {
                    Some(not_authenticated())
                } else {
                    let msg = crate::channels::RouterMsg::Message { conn: self.id, msg };
                    self.state.router.send(msg).await.map_err(|_| Gone)?;
                    None
                }
            }
            WireMsg::Error { code, message, .. } => {
                tracing::debug!(conn = self.id, ?code, %message, "wallet reported an error");
                None
            }
            other => Some(error(
                ErrorCode::Unexpected,
                format!("the LSP does not accept {} from a wallet", kind(&other)),
                false,
            )),
        })
    }
}

fn not_authenticated() -> WireMsg {
    error(
        ErrorCode::NotAuthenticated,
        "authenticate first: send auth_request, sign the challenge, send auth_proof",
        false,
    )
}

fn kind(msg: &WireMsg) -> String {
    serde_json::to_value(msg)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "this message".into())
}
