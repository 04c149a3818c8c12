//! The payee's side of the join fee (`shared::pay::join_fee`): the wallet accepts an HTLC short
//! by exactly its channel's unpaid fee once, records the invoice's amount with the fee taken,
//! and fails any other HTLC that is short.

use bitcoin::absolute::Height;
use bitcoin::hashes::sha256;
use bitcoin::Amount;
use shared::channel::{Channel, Side};
use shared::leaf::LeafEpoch;
use shared::pay::{ChannelId, ChannelPolicy};

use super::{now, open_first_channel, setup, with_client, Lsp, Setup};
use crate::pay::store::{Direction, MemoryPayStore};
use crate::pay::PayHandle;

const FEE: Amount = Amount::from_sat(1_500);
const INVOICE: Amount = Amount::from_sat(4_000);

/// The LSP offers an HTLC of `amount` for `hash` and commits it; returns the wallet's answer:
/// the preimage, or `None` if it failed the HTLC.
pub(super) async fn offer(
    lsp: &mut Lsp,
    channel: &mut Channel,
    id: ChannelId,
    amount: Amount,
    hash: sha256::Hash,
) -> Option<[u8; 32]> {
    let policy = ChannelPolicy::for_network(bitcoin::Network::Regtest);
    let expiry =
        Height::from_consensus(policy.payee_expiry(policy.payer_expiry(200))).expect("a height");
    let htlc = channel
        .add_htlc(now(), amount, hash, expiry)
        .expect("the LSP offers it");
    channel
        .start_round(&mut rand::rngs::OsRng)
        .expect("a round starts");
    lsp.round(channel, id, LeafEpoch::FIRST).await;
    // The wallet answers once it committed: a fulfill or a fail.
    loop {
        if let Some(preimage) = channel.preimage_received(htlc) {
            return Some(preimage);
        }
        let pending = channel.pending_spec().expect("a pending spec");
        if !pending
            .htlcs
            .iter()
            .any(|h| h.offerer == Side::Lsp && h.id == htlc)
        {
            return None;
        }
        let frame = lsp
            .expect(|m| match m {
                shared::wire::WireMsg::Channel(f) => Some(f.msg.clone()),
                _ => None,
            })
            .await;
        channel
            .handle_message(now(), frame, &mut rand::rngs::OsRng)
            .expect("the wallet's frame is valid");
    }
}

fn owing() -> Setup {
    let mut s = setup();
    s.leaf.join_fee = FEE;
    s
}

async fn invoice(handle: &PayHandle, what: &str) -> sha256::Hash {
    handle
        .invoice(INVOICE, what)
        .await
        .expect("an invoice")
        .hash
}

#[tokio::test]
async fn the_wallet_lets_its_join_fee_be_taken_once() {
    let s = &owing();
    with_client(
        s,
        MemoryPayStore::default(),
        |handle, mut conns| async move {
            let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
            let (_, mut live) = open_first_channel(&mut lsp, s).await;
            let id = s.leaf.channel;
            let snap = handle.snapshot().await.expect("snapshot");
            assert_eq!(snap.channels[0].join_fee.unpaid(), FEE);

            // Short by one sat more than the fee: failed.
            let first = invoice(&handle, "first").await;
            let wrong = INVOICE - FEE - Amount::from_sat(1);
            assert_eq!(offer(&mut lsp, &mut live, id, wrong, first).await, None);
            // Short by exactly the fee: paid, and the history says where the fee went.
            let second = invoice(&handle, "second").await;
            let short = INVOICE - FEE;
            assert!(offer(&mut lsp, &mut live, id, short, second)
                .await
                .is_some());
            let snap = handle.snapshot().await.expect("snapshot");
            let paid = snap
                .payments
                .iter()
                .find(|p| p.hash == second)
                .expect("the payment is recorded");
            assert_eq!(paid.direction, Direction::Received);
            assert_eq!((paid.amount, paid.join_fee), (INVOICE, FEE));
            assert_eq!(snap.channels[0].join_fee.paid_by(), Some(second));
            // The fee is paid: short again is failed, the whole amount is paid.
            let third = invoice(&handle, "third").await;
            assert_eq!(offer(&mut lsp, &mut live, id, short, third).await, None);
            let fourth = invoice(&handle, "fourth").await;
            assert!(offer(&mut lsp, &mut live, id, INVOICE, fourth)
                .await
                .is_some());
            // A round settles the fulfills: the balance holds both payments, less the fee
            // once.
            live.start_round(&mut rand::rngs::OsRng).expect("a round");
            lsp.round(&mut live, id, LeafEpoch::FIRST).await;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let snap = handle.snapshot().await.expect("snapshot");
                if snap.balance == INVOICE - FEE + INVOICE {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "{snap:?}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        },
    )
    .await;
}
