//! The Esplora REST API (the subset esplora-client 0.12 and bdk_esplora use, plus a few
//! extras), served from the devnet's index and bitcoind. Errors are plain-text bodies with
//! 400/404 like Blockstream's electrs; CORS is open to any origin.

mod address;
mod blocks;
mod json;
mod mempool;
mod txs;

use std::str::FromStr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bitcoin::{BlockHash, Txid};

use crate::error::DevnetError;
use crate::faucet::FaucetError;
use crate::rpc::RpcError;
use crate::state::Shared;

/// Every Esplora route.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .merge(blocks::routes())
        .merge(txs::routes())
        .merge(address::routes())
        .merge(mempool::routes())
}

/// An HTTP error with a plain-text body.
#[derive(Debug)]
pub(crate) struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        (self.status, content_type, self.message).into_response()
    }
}

impl From<DevnetError> for HttpError {
    fn from(e: DevnetError) -> Self {
        let status = match &e {
            DevnetError::WrongNetwork(_) => StatusCode::BAD_REQUEST,
            DevnetError::Faucet(FaucetError::Signing(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            DevnetError::Faucet(_) => StatusCode::BAD_REQUEST,
            DevnetError::Rpc(RpcError::Transport { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, "request failed");
        }
        HttpError::new(status, e.to_string())
    }
}

impl From<RpcError> for HttpError {
    fn from(e: RpcError) -> Self {
        DevnetError::from(e).into()
    }
}

/// The result type of every handler.
pub(crate) type HttpResult<T> = Result<T, HttpError>;

/// A plain-text 200 response.
pub(crate) fn text(body: impl Into<String>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    (content_type, body.into()).into_response()
}

/// A binary 200 response.
pub(crate) fn octets(body: Vec<u8>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "application/octet-stream")];
    (content_type, body).into_response()
}

pub(crate) fn parse_txid(s: &str) -> HttpResult<Txid> {
    Txid::from_str(s).map_err(|_| HttpError::bad_request(format!("Invalid txid: {s}")))
}

pub(crate) fn parse_block_hash(s: &str) -> HttpResult<BlockHash> {
    BlockHash::from_str(s).map_err(|_| HttpError::bad_request(format!("Invalid block hash: {s}")))
}

pub(crate) fn parse_number<T: FromStr>(s: &str, what: &str) -> HttpResult<T> {
    s.parse()
        .map_err(|_| HttpError::bad_request(format!("Invalid {what}: {s}")))
}
