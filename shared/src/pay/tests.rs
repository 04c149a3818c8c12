use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
use bitcoin::{Amount, Network};

use super::invoice::{InvoiceError, InvoiceRequest, ParsedInvoice};
use super::messages::ChannelId;
use super::policy::{route_fee, ChannelPolicy};
use crate::terms::FeeSchedule;
use crate::types::{ClientId, FactoryId};

const NOW: u64 = 1_800_000_000;

fn keypair(byte: u8) -> Keypair {
    Keypair::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).unwrap(),
    )
}

fn fees() -> FeeSchedule {
    FeeSchedule {
        join_fee: Amount::from_sat(1000),
        liquidity_fee_ppm: 5000,
        routing_fee_base: Amount::from_sat(1),
        routing_fee_ppm: 1000,
    }
}

fn request(amount: u64) -> InvoiceRequest {
    InvoiceRequest {
        amount: Amount::from_sat(amount),
        description: "coffee ☕".into(),
        expiry_secs: 600,
        hash: sha256::Hash::hash(&[7; 32]),
        secret: [9; 32],
        channel: ChannelId {
            factory: FactoryId(3),
            client: ClientId(5),
        },
        lsp: keypair(2).x_only_public_key().0,
        fees: fees(),
        now_unix: NOW,
    }
}

#[test]
fn an_invoice_reads_back_what_was_asked() {
    let policy = ChannelPolicy::for_network(Network::Regtest);
    let payee = keypair(1);
    let text = request(21_000)
        .sign(Network::Regtest, &payee, &policy)
        .unwrap();
    assert!(text.starts_with("lnbcrt210u"), "{text}");
    let parsed =
        ParsedInvoice::parse(&format!("lightning:{text}"), Network::Regtest, NOW + 1).unwrap();
    assert_eq!(parsed.amount, Amount::from_sat(21_000));
    assert_eq!(parsed.hash, sha256::Hash::hash(&[7; 32]));
    assert_eq!(parsed.payee_identity(), payee.x_only_public_key().0);
    assert_eq!(parsed.description, "coffee ☕");
    assert_eq!(parsed.expires_at, NOW + 600);
}

#[test]
fn bad_invoices_are_refused_with_the_reason() {
    let policy = ChannelPolicy::for_network(Network::Regtest);
    let text = request(1000)
        .sign(Network::Regtest, &keypair(1), &policy)
        .unwrap();
    assert!(matches!(
        ParsedInvoice::parse(&text, Network::Bitcoin, NOW),
        Err(InvoiceError::WrongNetwork { .. })
    ));
    assert_eq!(
        ParsedInvoice::parse(&text, Network::Regtest, NOW + 700),
        Err(InvoiceError::Expired { ago_secs: 100 })
    );
    // One character changed: the checksum (or the signature) fails.
    let mut broken = text.clone().into_bytes();
    let i = broken.len() / 2;
    broken[i] = if broken[i] == b'q' { b'p' } else { b'q' };
    assert!(matches!(
        ParsedInvoice::parse(std::str::from_utf8(&broken).unwrap(), Network::Regtest, NOW),
        Err(InvoiceError::Invalid(_))
    ));
    assert!(matches!(
        ParsedInvoice::parse("hello", Network::Regtest, NOW),
        Err(InvoiceError::Invalid(_))
    ));
    let zero = request(0).sign(Network::Regtest, &keypair(1), &policy);
    assert!(matches!(zero, Err(InvoiceError::Create(_))));
}

#[test]
fn the_routing_fee_rounds_up() {
    assert_eq!(
        route_fee(&fees(), Amount::from_sat(1000)),
        Amount::from_sat(2)
    );
    assert_eq!(
        route_fee(&fees(), Amount::from_sat(1001)),
        Amount::from_sat(3)
    );
    assert_eq!(
        route_fee(&fees(), Amount::from_sat(100_000)),
        Amount::from_sat(101)
    );
}

#[test]
fn the_payee_expiry_leaves_room_for_its_claim() {
    for network in [Network::Regtest, Network::Signet, Network::Bitcoin] {
        let p = ChannelPolicy::for_network(network);
        let tip = 1000;
        let incoming = p.payer_expiry(tip);
        let outgoing = p.payee_expiry(incoming);
        let need = tip + p.to_self_delay.to_blocks() + p.htlc_margin.to_blocks();
        assert!(incoming > need && outgoing > need, "{network}");
        assert_eq!(incoming - outgoing, p.expiry_delta());
    }
}

#[test]
fn a_payment_from_the_lightning_network_leaves_both_sides_their_time() {
    for network in [Network::Regtest, Network::Signet, Network::Bitcoin] {
        let p = ChannelPolicy::for_network(network);
        let delta = p.inbound_invoice_delta();
        // The payer gives the final hop exactly the invoice's delta from its tip; the LSP's
        // tip may be up to 6 blocks ahead when the HTLC arrives.
        let payer_tip = 50_000;
        let lsp_tip = payer_tip + 6;
        let deadline = payer_tip + delta - crate::timing::UPSTREAM_FAIL_BACK;
        let offered = p.inbound_expiry(deadline);
        // The wallet can still enforce it on chain...
        assert_eq!(offered, lsp_tip + p.payee_window(), "{network}");
        // ...and if it does at the last moment, the LSP learns the preimage before its
        // node's deadline.
        assert_eq!(
            offered + p.to_self_delay.to_blocks() + p.htlc_margin.to_blocks(),
            deadline,
            "{network}"
        );
    }
}
