//! The wallet's side of a swap out against a scripted LSP: it takes only an output that is
//! exactly its payment's (a wrong refund height, amount or claim key is ignored), it never
//! claims an output its own chain source does not show, and when the LSP fails the HTLC back
//! the payment ends failed with the reason and the balance whole.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network, OutPoint, Txid};
use shared::channel::Side;
use shared::leaf::LeafEpoch;
use shared::swap::{SwapOutFunded, SwapPolicy, SwapScript};
use shared::wire::WireMsg;

use super::join_fee::offer;
use super::{now, open_first_channel, setup, with_client, Lsp};
use crate::pay::store::MemoryPayStore;
use crate::pay::PaymentStatus;

const FUNDS: Amount = Amount::from_sat(60_000);
const SENT: Amount = Amount::from_sat(20_000);

fn address() -> String {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x44; 32]).expect("a valid secret");
    Address::p2tr(
        &secp,
        key.x_only_public_key(&secp).0,
        None,
        Network::Regtest,
    )
    .to_string()
}

#[tokio::test]
async fn the_wallet_takes_only_its_own_output_and_gets_its_balance_back_when_failed() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let kept = store.clone();
    with_client(s, store, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (_, mut live) = open_first_channel(&mut lsp, s).await;
        let id = s.leaf.channel;
        let hash = handle.invoice(FUNDS, "funds").await.expect("invoice").hash;
        assert!(offer(&mut lsp, &mut live, id, FUNDS, hash).await.is_some());
        live.start_round(&mut rand::rngs::OsRng).expect("a round");
        lsp.round(&mut live, id, LeafEpoch::FIRST).await;

        let quote = handle.swap_quote(&address(), SENT).await.expect("a quote");
        assert_eq!(quote.fee, Amount::from_sat(520));
        let to = address();
        // A quote whose fee is not the provider's now is refused before anything moves.
        let stale = crate::pay::SwapQuote {
            fee: quote.fee + Amount::from_sat(1),
            total: quote.total + Amount::from_sat(1),
            ..quote.clone()
        };
        let refused = handle.swap_out(&to, &stale).await.expect_err("refused");
        assert!(refused.to_string().contains("review it again"), "{refused}");
        let sending = handle.swap_out(&to, &quote);
        let provider = async {
            let req = lsp
                .expect(|m| match m {
                    WireMsg::SwapOutRequest(r) => Some(r.clone()),
                    _ => None,
                })
                .await;
            assert_eq!(req.amount, SENT);
            // The wallet's HTLC arrives; the LSP commits it in a round.
            let frame = lsp
                .expect(|m| match m {
                    WireMsg::Channel(f) => Some(f.msg.clone()),
                    _ => None,
                })
                .await;
            live.handle_message(now(), frame, &mut rand::rngs::OsRng)
                .expect("the wallet's HTLC");
            live.start_round(&mut rand::rngs::OsRng).expect("a round");
            lsp.round(&mut live, id, LeafEpoch::FIRST).await;
            let htlc = live
                .spec()
                .htlcs
                .iter()
                .find(|h| h.offerer == Side::Client)
                .cloned()
                .expect("the wallet's HTLC is committed");
            assert_eq!(htlc.amount, SENT + quote.fee);
            let policy = SwapPolicy::for_network(Network::Regtest);
            let refund = policy.refund_height(htlc.expiry.to_consensus_u32());
            let right = SwapOutFunded {
                channel: id,
                htlc: req.htlc,
                script: SwapScript {
                    hash: req.hash,
                    claim_key: req.claim_key,
                    refund_key: shared::channel::scripts::nums_key(),
                    refund_height: bitcoin::absolute::Height::from_consensus(refund)
                        .expect("a height"),
                },
                outpoint: OutPoint::new(Txid::from_byte_array([9; 32]), 0),
                amount: SENT,
            };
            let funded = || {
                kept.snapshot()
                    .payments
                    .iter()
                    .any(|p| p.swap.as_ref().is_some_and(|s| s.funded.is_some()))
            };
            // Outputs that are not this payment's: a later refund, less, another claim key.
            let later = bitcoin::absolute::Height::from_consensus(refund + 1).expect("height");
            let mut wrongs = vec![right.clone(), right.clone(), right.clone()];
            wrongs[0].script.refund_height = later;
            wrongs[1].amount = SENT - Amount::from_sat(1);
            wrongs[2].script.claim_key = shared::channel::scripts::nums_key();
            for wrong in wrongs {
                lsp.send(WireMsg::SwapOutFunded(Box::new(wrong)));
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(!funded(), "an output that is not the payment's is ignored");
            lsp.send(WireMsg::SwapOutFunded(Box::new(right)));
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            while !funded() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the right output is kept"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            // The chain source knows no such output: nothing is claimed, whatever the tip.
            tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
            assert!(kept
                .snapshot()
                .payments
                .iter()
                .all(|p| p.swap.as_ref().is_none_or(|s| s.claim.is_none())));
            // The LSP fails the HTLC back.
            live.fail_htlc(now(), htlc.id).expect("fail");
            live.start_round(&mut rand::rngs::OsRng).expect("a round");
            lsp.round(&mut live, id, LeafEpoch::FIRST).await;
        };
        let (sent, ()) = futures::join!(sending, provider);
        let why = sent.expect_err("failed back").to_string();
        assert!(why.contains("took it back"), "{why}");
        let snap = handle.snapshot().await.expect("snapshot");
        let record = snap
            .payments
            .iter()
            .find(|p| p.swap.is_some())
            .expect("the payment");
        assert!(matches!(record.status, PaymentStatus::Failed(_)));
        assert_eq!(snap.balance, FUNDS);
    })
    .await;
}
