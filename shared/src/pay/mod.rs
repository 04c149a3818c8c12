//! Payments between the LSP's clients: the channel on each leaf, reached over the WebSocket, and
//! the one-hop route payer → LSP → payee.
//!
//! - [`policy`]: the channel parameters every leaf channel of a network uses, the channel seeds,
//!   the routing fee and the HTLC expiries;
//! - [`invoice`]: BOLT11 invoices (the payee's identity key signs; the LSP is the route hint);
//! - [`messages`]: what wallet and LSP send each other about channels and payments;
//! - [`join_fee`]: what a channel still owes for its join, and how an incoming HTLC pays it.
//!
//! `docs/protocol.md`, section "Payments", specifies the flow and every decision.

pub mod invoice;
pub mod join_fee;
pub mod messages;
pub mod policy;

pub use invoice::{InvoiceError, InvoiceRequest, ParsedInvoice};
pub use join_fee::{JoinFee, JoinFeeError};
pub use messages::{
    ChannelClosed, ChannelFrame, ChannelId, ChannelOpen, FaucetRequest, InvoiceRegister,
    InvoiceRegistered, PayFailure, PayOutcome, PayRequest, PayResult, RouteAnswer, RouteQuery,
};
pub use policy::{
    leaf_channel_params, leaf_state_channel_params, liquidity_price, route_fee_for, ChannelPolicy,
};

#[cfg(test)]
mod tests;
