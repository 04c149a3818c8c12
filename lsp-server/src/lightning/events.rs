//! The node's events: taken one at a time, acted on, then acknowledged.
//!
//! LDK keeps an event until it is acknowledged (`event_handled`), across restarts too, so an
//! event whose handling was cut short by a crash comes again: whatever handles one must be
//! idempotent.

use ldk_node::Event;

/// Logs `event` with its ids as fields.
pub(crate) fn log(event: &Event) {
    match event {
        Event::ChannelPending {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            funding_txo,
            ..
        } => tracing::info!(
            %channel_id,
            user_channel_id = user_channel_id.0,
            peer = %counterparty_node_id,
            %funding_txo,
            "Lightning channel pending: funding transaction published"
        ),
        Event::ChannelReady {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            ..
        } => tracing::info!(
            %channel_id,
            user_channel_id = user_channel_id.0,
            peer = ?counterparty_node_id,
            "Lightning channel ready"
        ),
        Event::ChannelClosed {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            reason,
        } => tracing::info!(
            %channel_id,
            user_channel_id = user_channel_id.0,
            peer = ?counterparty_node_id,
            reason = ?reason,
            "Lightning channel closed"
        ),
        Event::PaymentSuccessful {
            payment_hash,
            fee_paid_msat,
            ..
        } => {
            tracing::info!(%payment_hash, fee_paid_msat = ?fee_paid_msat, "Lightning payment sent")
        }
        Event::PaymentFailed {
            payment_hash,
            reason,
            ..
        } => {
            tracing::info!(payment_hash = ?payment_hash, reason = ?reason, "Lightning payment failed")
        }
        Event::PaymentReceived {
            payment_hash,
            amount_msat,
            ..
        } => tracing::info!(%payment_hash, amount_msat, "Lightning payment received"),
        other => tracing::debug!(event = ?other, "Lightning event"),
    }
}
