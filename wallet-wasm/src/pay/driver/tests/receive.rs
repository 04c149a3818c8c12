//! Invoices held by the provider's Lightning node (`driver::receive`): the wallet takes the
//! node's invoice only if it carries the wallet's hash and amount, is signed by the node the
//! terms name, and leaves the final delta a leaf channel needs; otherwise it keeps its own.

use std::time::Duration;

use bitcoin::hashes::sha256;
use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
use bitcoin::Amount;
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use shared::pay::{ChannelPolicy, InvoiceRegistered, ParsedInvoice};
use shared::wire::WireMsg;

use super::{open_first_channel, setup, with_client, Lsp};
use crate::pay::store::MemoryPayStore;

const AMOUNT: Amount = Amount::from_sat(5_000);

/// An invoice for `hash` of `amount`, signed by `key`, with final delta `delta`.
fn node_invoice(key: &SecretKey, hash: sha256::Hash, amount: Amount, delta: u64) -> String {
    let secp = Secp256k1::new();
    InvoiceBuilder::new(Currency::Regtest)
        .description("from afar".into())
        .payment_hash(hash)
        .payment_secret(PaymentSecret([4; 32]))
        .duration_since_epoch(Duration::from_secs(crate::platform::unix_now()))
        .min_final_cltv_expiry_delta(delta)
        .amount_milli_satoshis(amount.to_sat() * 1000)
        .expiry_time(Duration::from_secs(3_600))
        .build_signed(|d| secp.sign_ecdsa_recoverable(d, key))
        .expect("an invoice")
        .to_string()
}

#[tokio::test]
async fn the_wallet_takes_the_nodes_invoice_only_when_it_checks_out() {
    let node = SecretKey::from_slice(&[9; 32]).expect("a key");
    let node_id = Keypair::from_secret_key(&Secp256k1::new(), &node).public_key();
    let mut s = setup();
    s.lightning_node = Some(node_id);
    let s = &s;
    let delta =
        u64::from(ChannelPolicy::for_network(bitcoin::Network::Regtest).inbound_invoice_delta());
    with_client(
        s,
        MemoryPayStore::default(),
        |handle, mut conns| async move {
            let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
            let _ = open_first_channel(&mut lsp, s).await;
            let other = SecretKey::from_slice(&[8; 32]).expect("a key");
            // (signer, amount, delta, taken?)
            let answers = [
                (node, AMOUNT, delta, true),
                (other, AMOUNT, delta, false),
                (node, AMOUNT + Amount::from_sat(1), delta, false),
                (node, AMOUNT, 42, false),
            ];
            for (signer, amount, final_delta, taken) in answers {
                let asking = {
                    let handle = handle.clone();
                    tokio::spawn(async move { handle.invoice(AMOUNT, "from afar").await })
                };
                let hash = lsp
                    .expect(|m| match m {
                        WireMsg::InvoiceRegister(r) => Some(r.hash),
                        _ => None,
                    })
                    .await;
                let text = node_invoice(&signer, hash, amount, final_delta);
                lsp.send(WireMsg::InvoiceRegistered(InvoiceRegistered {
                    hash,
                    invoice: text.clone(),
                }));
                let record = asking
                    .await
                    .expect("the task ran")
                    .expect("an invoice either way");
                assert_eq!(record.hash, hash);
                let payee = ParsedInvoice::parse(&record.invoice, bitcoin::Network::Regtest, 0)
                    .expect("parses")
                    .payee;
                if taken {
                    assert_eq!(record.invoice, text, "the node's invoice is taken");
                    assert_eq!(payee, node_id);
                } else {
                    assert_ne!(
                        payee, node_id,
                        "the wallet keeps its own ({amount}, {final_delta})"
                    );
                }
            }
        },
    )
    .await;
}
