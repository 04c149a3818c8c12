//! Sending from a channel to an on-chain address (a swap out, `shared::swap`), end to end: a
//! real regtest node, the LSP, a native wallet over WebSockets. The provider is paid only by
//! the wallet's own claim, and a wallet that never claims gets its HTLC back once the
//! provider's refund confirmed; nothing is lost either way.

mod common;

use std::time::Duration;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network};
use common::chain::{confirm_first_output, in_mempool, within};
use common::pay::{start_payer, two_funded, Payer};
use common::swarm::ClientSpec;
use lsp_server::PaymentOptions;
use wallet::pay::{MemoryPayStore, PayError, PaymentRecord, PaymentStatus, SwapQuote};

const FAUCET: u64 = 50_000;
const SENT: u64 = 20_000;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(200_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

fn options() -> PaymentOptions {
    PaymentOptions {
        faucet_max_sat: FAUCET,
        ..PaymentOptions::default()
    }
}

/// A fresh regtest address no one else pays.
fn address(byte: u8) -> Address {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[byte; 32]).expect("a valid secret");
    Address::p2tr(
        &secp,
        key.x_only_public_key(&secp).0,
        None,
        Network::Regtest,
    )
}

/// The wallet's swap payment once the provider's output is stored in it.
async fn funded(payer: &Payer, secs: u64) -> PaymentRecord {
    within(secs, "the provider funds the swap's output", || async {
        payer
            .store
            .snapshot()
            .payments
            .into_iter()
            .find(|p| p.swap.as_ref().is_some_and(|s| s.funded.is_some()))
    })
    .await
}

/// A funded factory, a wallet with faucet sats in its channel, a fresh address, and the
/// wallet's quote for sending `SENT` there: where every test starts.
struct Ready {
    stack: common::Stack,
    runs: Vec<common::swarm::ClientRun>,
    _storage: tempfile::TempDir,
    store: MemoryPayStore,
    payer: Payer,
    /// What the faucet left in the channel.
    arrived: Amount,
    to: Address,
    quote: SwapQuote,
}

async fn ready(address_byte: u8) -> Ready {
    let (stack, runs, _storage) = two_funded(options(), spec()).await;
    let store = MemoryPayStore::default();
    let mut payer = start_payer(&stack, &runs[0], store.clone());
    payer.ready(30).await;
    let arrived = payer.faucet(Amount::from_sat(FAUCET), 30).await;
    let to = address(address_byte);
    let quote = payer
        .handle
        .swap_quote(&to.to_string(), Amount::from_sat(SENT))
        .await
        .expect("quote");
    Ready {
        stack,
        runs,
        _storage,
        store,
        payer,
        arrived,
        to,
        quote,
    }
}

impl Ready {
    /// Starts the swap out at the quote; the task ends with it.
    fn send(&self) -> tokio::task::JoinHandle<Result<PaymentRecord, PayError>> {
        let handle = self.payer.handle.clone();
        let (to, quote) = (self.to.to_string(), self.quote.clone());
        tokio::spawn(async move { handle.swap_out(&to, &quote).await })
    }
}

/// The LSP's `/metrics` text.
async fn metrics(stack: &common::Stack) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", stack.http_url()))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The LSP's row of the swap of payment `hash`: `(swap state, payment status)`.
fn lsp_rows(stack: &common::Stack, hash: &str) -> (String, String) {
    stack
        .db()
        .query_row(
            "SELECT s.state, p.status FROM swaps s JOIN payments p ON p.id = s.payment
             WHERE p.hash = ?1",
            [hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the LSP stored the swap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_sends_to_an_address_and_the_provider_is_paid_only_by_its_claim() {
    let mut r = ready(0x61).await;
    let (stack, arrived, to) = (&r.stack, r.arrived, r.to.clone());

    // What it costs, before anything moves; nonsense is refused in words.
    let bad = r
        .payer
        .handle
        .swap_quote("not an address", Amount::from_sat(SENT))
        .await;
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("not a Bitcoin address"));
    let tiny = r
        .payer
        .handle
        .swap_quote(&to.to_string(), Amount::from_sat(500))
        .await;
    assert!(tiny.unwrap_err().to_string().contains("at least"));
    let quote = r.quote.clone();
    let terms = common::terms(stack)
        .await
        .body
        .swap_out
        .expect("the LSP offers swaps out");
    assert_eq!(quote.fee, terms.fee(Amount::from_sat(SENT)));
    assert_eq!(quote.total, Amount::from_sat(SENT) + quote.fee);
    assert_eq!(quote.arrives, Amount::from_sat(SENT) - quote.claim_fee);
    assert!(quote.claim_fee > Amount::ZERO);

    let sending = r.send();
    let record = funded(&r.payer, 30).await;
    let swap = record.swap.clone().expect("a swap");
    let out = swap.funded.as_ref().expect("funded").outpoint;
    // Unconfirmed, the output is not claimed: the preimage stays the wallet's.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        r.store
            .snapshot()
            .payments
            .iter()
            .all(|p| p.swap.as_ref().is_none_or(|s| s.claim.is_none())),
        "no claim before the output confirmed"
    );
    assert_eq!(lsp_rows(stack, &record.hash.to_string()).1, "pending");
    // The operator sees the swap and the sats it has on chain for it.
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let swaps = view["swaps"].as_array().expect("swaps");
    assert_eq!(swaps.len(), 1, "{view}");
    assert_eq!(swaps[0]["state"], "funded");
    assert_eq!(swaps[0]["amount_sat"], SENT);
    assert_eq!(swaps[0]["outpoint"], out.to_string().as_str());
    assert_eq!(
        swaps[0]["refund_height"],
        swap.funded
            .as_ref()
            .map_or(0, |f| f.script.refund_height.to_consensus_u32())
    );
    let scraped = metrics(stack).await;
    assert!(scraped.contains("superscalar_swaps_open 1\n"), "{scraped}");
    assert!(
        scraped.contains(&format!("superscalar_swaps_open_sats {SENT}\n")),
        "{scraped}"
    );

    stack.devnet.mine(1).await.expect("mine");
    let done = tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("the swap completes in time")
        .expect("task")
        .expect("the provider settles with the claim's preimage");
    assert_eq!(done.status, PaymentStatus::Complete);
    assert_eq!(done.preimage, Some(swap.preimage));
    assert_eq!(
        lsp_rows(stack, &record.hash.to_string()),
        ("claimed".into(), "settled".into())
    );
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(view["swaps"].as_array().map(Vec::len), Some(0), "{view}");
    assert!(metrics(stack).await.contains("superscalar_swaps_open 0\n"));

    // The claim confirms and pays the address what was quoted.
    let claim = r
        .payer
        .store
        .snapshot()
        .payments
        .into_iter()
        .find_map(|p| p.swap.and_then(|s| s.claim))
        .expect("the claim is stored");
    assert_eq!(claim.input[0].previous_output, out);
    let paid = confirm_first_output(&stack.devnet, &claim).await;
    assert_eq!(paid.script_pubkey, to.script_pubkey());
    assert_eq!(paid.value, quote.arrives);
    // The balance fell by the amount and the provider's fee, exactly.
    r.payer.balance_becomes(arrived - quote.total, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_that_never_claims_gets_its_payment_back_after_the_refund() {
    let r = ready(0x62).await;
    let _sending = r.send();
    let record = funded(&r.payer, 30).await;
    let Ready {
        stack,
        runs,
        store,
        payer,
        arrived,
        ..
    } = r;
    let script = record
        .swap
        .as_ref()
        .and_then(|s| s.funded.clone())
        .expect("funded")
        .script;
    // The wallet goes away before the output confirms: it never claims.
    payer.task.abort();
    drop(payer);

    // At the refund height the provider takes its output back, and only once the refund
    // confirmed does it fail the HTLC back.
    let tip = stack.devnet.height().await.expect("tip").to_consensus_u32();
    let refund_height = script.refund_height.to_consensus_u32();
    stack
        .devnet
        .mine(refund_height - tip)
        .await
        .expect("mine to the refund height");
    let hash = record.hash.to_string();
    let stored_refund = || {
        stack
            .db()
            .query_row(
                "SELECT s.refund_tx FROM swaps s JOIN payments p ON p.id = s.payment
                 WHERE p.hash = ?1",
                [&hash],
                |r| r.get::<_, Option<String>>(0),
            )
            .expect("row")
            .map(|hex| {
                bitcoin::consensus::encode::deserialize_hex::<bitcoin::Transaction>(&hex)
                    .expect("a transaction")
            })
    };
    let refund = within(30, "the LSP builds its refund", || async {
        stored_refund()
    })
    .await;
    assert_eq!(
        lsp_rows(&stack, &hash).1,
        "pending",
        "nothing failed back before the refund confirmed"
    );
    in_mempool(
        &stack.devnet,
        refund.compute_txid(),
        "the refund is broadcast",
    )
    .await;
    // The fee market moves before it confirms: the LSP replaces it by one paying today's rate.
    stack.devnet.set_fee_estimate(10.0);
    let value = Amount::from_sat(SENT);
    let rate =
        |tx: &bitcoin::Transaction| (value - tx.output[0].value).to_sat() / tx.vsize() as u64;
    let refund = within(30, "the LSP replaces its refund", || async {
        stored_refund().filter(|r| r.compute_txid() != refund.compute_txid())
    })
    .await;
    assert_eq!(rate(&refund), 10);
    in_mempool(
        &stack.devnet,
        refund.compute_txid(),
        "the replacement refund is broadcast",
    )
    .await;
    stack.devnet.mine(1).await.expect("mine");
    within(30, "the LSP fails the HTLC back", || async {
        (lsp_rows(&stack, &hash) == ("refunded".into(), "failed".into())).then_some(())
    })
    .await;

    // The wallet comes back: the HTLC is failed back in its channel, the balance is whole, and
    // it never revealed its preimage.
    let mut payer = start_payer(&stack, &runs[0], store);
    payer.balance_becomes(arrived, 30).await;
    let after = payer.store.snapshot();
    let swap = after
        .payments
        .iter()
        .find(|p| p.hash == record.hash)
        .expect("the payment");
    assert!(
        matches!(swap.status, PaymentStatus::Failed(ref why) if why.contains("took it back")),
        "{swap:?}"
    );
    assert!(swap.swap.as_ref().is_some_and(|s| s.claim.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_lags_behind_the_fee_market_is_replaced_until_it_confirms() {
    let r = ready(0x63).await;
    let (stack, payer, to) = (&r.stack, &r.payer, &r.to);
    let sending = r.send();
    funded(payer, 30).await;
    stack.devnet.mine(1).await.expect("mine");
    // The first claim goes out at today's low rate, and the provider settles from it.
    tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("settled in time")
        .expect("task")
        .expect("settled");
    let claim_of = |payer: &Payer| {
        payer
            .store
            .snapshot()
            .payments
            .into_iter()
            .find_map(|p| p.swap.and_then(|s| s.claim))
            .expect("a claim")
    };
    let first = claim_of(payer);
    let value = Amount::from_sat(SENT);
    let rate =
        |tx: &bitcoin::Transaction| (value - tx.output[0].value).to_sat() / tx.vsize() as u64;
    assert!(rate(&first) < 10, "the first claim pays today's low rate");

    // The market moves before it confirms: the wallet replaces it, though the payment is
    // already settled (the coins are the user's only once a claim confirms).
    stack.devnet.set_fee_estimate(10.0);
    let second = within(30, "the claim is replaced", || async {
        Some(claim_of(payer)).filter(|c| c.compute_txid() != first.compute_txid())
    })
    .await;
    assert_eq!(rate(&second), 10);
    assert_eq!(
        second.input[0].previous_output,
        first.input[0].previous_output
    );
    in_mempool(
        &stack.devnet,
        second.compute_txid(),
        "the replacement is in the mempool",
    )
    .await;
    let paid = confirm_first_output(&stack.devnet, &second).await;
    assert_eq!(paid.script_pubkey, to.script_pubkey());
    // The wallet sees it confirmed and stops watching.
    within(30, "the wallet records the confirmation", || async {
        payer
            .store
            .snapshot()
            .payments
            .iter()
            .any(|p| p.swap.as_ref().is_some_and(|s| s.claim_confirmed.is_some()))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_away_when_the_output_was_paid_hears_of_it_again_and_claims() {
    let r = ready(0x64).await;
    let _sending = r.send();
    let record = funded(&r.payer, 30).await;
    let Ready {
        stack,
        runs,
        store,
        payer,
        arrived,
        to,
        quote,
        ..
    } = r;
    // The wallet goes away, and what it stored is as if `swap_out_funded` had never reached
    // it (the tab closed first).
    payer.task.abort();
    drop(payer);
    let mut unheard = record.clone();
    if let Some(swap) = unheard.swap.as_mut() {
        swap.funded = None;
    }
    let mut kept = store.clone();
    wallet::pay::PayStore::save_payment(&mut kept, &unheard)
        .await
        .expect("store");
    stack.devnet.mine(1).await.expect("mine");

    // It comes back: the LSP says where its output is when the channel reopens, the wallet
    // checks it and claims, and the payment completes.
    let mut payer = start_payer(&stack, &runs[0], store.clone());
    let claim = within(
        30,
        "the wallet claims the output it heard of again",
        || async {
            store
                .snapshot()
                .payments
                .into_iter()
                .find(|p| p.hash == record.hash)
                .and_then(|p| p.swap.and_then(|s| s.claim))
        },
    )
    .await;
    payer.balance_becomes(arrived - quote.total, 30).await;
    let paid = confirm_first_output(&stack.devnet, &claim).await;
    assert_eq!(paid.script_pubkey, to.script_pubkey());
    assert_eq!(paid.value, quote.arrives);
    let done = store
        .snapshot()
        .payments
        .into_iter()
        .find(|p| p.hash == record.hash)
        .expect("the payment");
    assert_eq!(done.status, PaymentStatus::Complete);
    assert_eq!(
        lsp_rows(&stack, &record.hash.to_string()),
        ("claimed".into(), "settled".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_funding_gets_a_child_and_the_swap_completes() {
    let mut r = ready(0x65).await;
    let sending = r.send();
    let record = funded(&r.payer, 30).await;
    let (stack, arrived, total) = (&r.stack, r.arrived, r.quote.total);
    let out = record
        .swap
        .as_ref()
        .and_then(|s| s.funded.as_ref())
        .expect("funded")
        .outpoint;
    in_mempool(&stack.devnet, out.txid, "the funding is broadcast").await;

    // Miners ignore it: in the node's eyes it pays nothing.
    let rpc = stack.devnet.rpc();
    let entry = rpc
        .get_mempool_entry(&out.txid)
        .await
        .expect("rpc")
        .expect("in the mempool");
    let delta = -(entry.fees.base.to_sat() as i64);
    let _: bool = rpc
        .call(
            "prioritisetransaction",
            &[
                serde_json::json!(out.txid),
                serde_json::json!(0),
                serde_json::json!(delta),
            ],
        )
        .await
        .expect("prioritisetransaction");
    stack.devnet.mine(2).await.expect("mine");
    assert!(
        rpc.get_mempool_entry(&out.txid)
            .await
            .expect("rpc")
            .is_some(),
        "the funding stalls"
    );

    // The LSP pays for it with a child; the pair confirms, the wallet claims, the swap ends.
    let child = within(30, "the LSP bumps the stalled funding", || async {
        let entry = rpc.get_mempool_entry(&out.txid).await.ok()??;
        entry.spentby.first().copied()
    })
    .await;
    assert!(
        rpc.get_mempool_entry(&child)
            .await
            .expect("rpc")
            .is_some_and(|c| c.fees.base > Amount::ZERO),
        "the child pays"
    );
    stack.devnet.mine(1).await.expect("mine");
    let done = tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("the swap completes in time")
        .expect("task")
        .expect("settled");
    assert_eq!(done.status, PaymentStatus::Complete);
    r.payer.balance_becomes(arrived - total, 30).await;
}
