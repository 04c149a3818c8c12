//! Buying inbound liquidity end to end: two real wallets (the native payment client, exactly
//! as the browser runs it) and a real LSP process on the devnet.
//!
//! Wallet B has a small channel. A payment larger than it can receive fails with "no
//! liquidity". B buys liquidity from its leaf's L-stock. The same payment then arrives, and
//! both wallets keep paying each other. The purchase survives an LSP restart and a restart of
//! B from its store. At every step the LSP's view matches the wallets' balances to the sat,
//! and its admin totals show the sale.

mod common;

use bitcoin::Amount;
use common::pay::{admin_channel, start_payer, two_funded};
use common::swarm::ClientSpec;
use futures::StreamExt;
use lsp_server::PaymentOptions;
use shared::leaf::LeafEpoch;
use shared::pay::policy::route_fee;
use shared::pay::{liquidity_price, PayFailure};
use wallet::pay::{MemoryPayStore, PayEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_buys_inbound_liquidity_and_then_receives_what_it_could_not() {
    let options = PaymentOptions::default();
    let spec = ClientSpec {
        channel: Amount::from_sat(20_000),
        liquidity: Amount::from_sat(100_000),
        ..ClientSpec::honest()
    };
    let (stack, runs, _storage) = two_funded(options.clone(), spec).await;
    let mut a = start_payer(&stack, &runs[0], MemoryPayStore::default());
    let mut b = start_payer(&stack, &runs[1], MemoryPayStore::default());
    a.ready(30).await;
    let before = b.ready(30).await;
    let terms = common::terms(&stack).await;
    let fees = terms.body.fees;

    // B can receive less than its 20,000-sat channel; 30,000 from the faucet does not fit.
    assert!(before.inbound < Amount::from_sat(20_000));
    b.handle
        .faucet(Amount::from_sat(30_000))
        .await
        .expect("the faucet takes the request");
    let no_liquidity = PayFailure::NoLiquidity.describe();
    let refused = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match b.events.next().await {
                Some(PayEvent::LspError(e)) if e.contains(&no_liquidity) => return e,
                Some(_) => {}
                None => panic!("B's payment client stopped"),
            }
        }
    })
    .await
    .expect("the faucet says B cannot receive that much");
    assert!(refused.contains("faucet"), "{refused}");
    assert_eq!(
        b.handle.snapshot().await.expect("snapshot").balance,
        Amount::ZERO
    );
    // B gets 5,000 to pay for liquidity with, A gets 15,000 to pay B with (each less its join
    // fee: the first payment each receives pays it).
    let funded_b = b.faucet(Amount::from_sat(5_000), 30).await;
    assert_eq!(
        funded_b,
        Amount::from_sat(5_000) - common::pay::join_fee_of(&runs[1])
    );
    let funded_a = a.faucet(Amount::from_sat(15_000), 30).await;
    assert_eq!(
        funded_a,
        Amount::from_sat(15_000) - common::pay::join_fee_of(&runs[0])
    );

    // The quote, then the purchase.
    let amount = Amount::from_sat(60_000);
    let price = liquidity_price(&fees, amount);
    let quote = b.handle.liquidity_quote(amount).await.expect("a quote");
    assert_eq!(quote.price, price);
    assert_eq!(quote.refusal, None, "{quote:?}");
    let inbound_before = b.handle.snapshot().await.expect("snapshot").inbound;
    // What it pays for the liquidity goes to the LSP's side: it can receive that back too.
    assert_eq!(quote.inbound_after, inbound_before + amount + price);
    let channel_b = quote.channel;
    let lsp_before = admin_channel(&stack, channel_b).await["lsp_sat"]
        .as_u64()
        .expect("sats");
    let (bought, after) = b.buy_liquidity(amount, 60).await;
    assert_eq!(
        (bought.leaf, bought.amount, bought.price),
        (LeafEpoch(1), amount, price)
    );
    assert_eq!(after.balance, funded_b - price);
    assert_eq!(after.inbound, quote.inbound_after);
    let view = admin_channel(&stack, channel_b).await;
    assert_eq!(view["leaf"], 1);
    assert_eq!(view["bought_sat"], amount.to_sat());
    assert_eq!(view["client_sat"], after.balance.to_sat());
    assert_eq!(
        view["lsp_sat"],
        lsp_before + amount.to_sat() + price.to_sat()
    );
    let totals = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(totals["liquidity"]["sold_sat"], amount.to_sat());
    assert_eq!(totals["liquidity"]["earned_sat"], price.to_sat());

    // Now the 30,000 fits.
    b.handle
        .faucet(Amount::from_sat(30_000))
        .await
        .expect("B receives what it could not before");
    let mut bal_b = funded_b.to_sat() - price.to_sat() + 30_000;
    let mut bal_a = funded_a.to_sat();
    b.balance_becomes(Amount::from_sat(bal_b), 30).await;

    // Both wallets pay each other on the new channel.
    let fee = |sat: u64| route_fee(&fees, Amount::from_sat(sat)).to_sat();
    let inv = b
        .handle
        .invoice(Amount::from_sat(12_000), "a to b")
        .await
        .unwrap();
    a.handle.pay(&inv.invoice).await.expect("A pays B");
    bal_a -= 12_000 + fee(12_000);
    bal_b += 12_000;
    let inv = a
        .handle
        .invoice(Amount::from_sat(4_000), "b to a")
        .await
        .unwrap();
    b.handle.pay(&inv.invoice).await.expect("B pays A");
    bal_b -= 4_000 + fee(4_000);
    bal_a += 4_000;
    a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    b.balance_becomes(Amount::from_sat(bal_b), 30).await;

    // The LSP restarts: B's channel comes back on leaf state 1.
    let stack = common::restart(stack, common::fast_factory(2, 2), options).await;
    a.ready(30).await;
    b.ready(30).await;
    let view = admin_channel(&stack, channel_b).await;
    assert_eq!(view["leaf"], 1);
    assert_eq!(view["client_sat"], bal_b);
    let inv = b
        .handle
        .invoice(Amount::from_sat(2_000), "after")
        .await
        .unwrap();
    a.handle
        .pay(&inv.invoice)
        .await
        .expect("paid after the LSP restarted");
    bal_a -= 2_000 + fee(2_000);
    bal_b += 2_000;
    b.balance_becomes(Amount::from_sat(bal_b), 30).await;

    // B restarts from its store: the new channel, its balance and the leaf come back.
    b.handle.stop();
    b.task.await.expect("B stops");
    let mut b = start_payer(&stack, &runs[1], b.store.clone());
    let s = b.ready(30).await;
    assert_eq!(s.balance, Amount::from_sat(bal_b));
    let summary = s
        .channels
        .iter()
        .find(|c| c.channel == bought.channel)
        .expect("B's channel");
    assert_eq!(summary.leaf, LeafEpoch(1));
    let inv = a
        .handle
        .invoice(Amount::from_sat(1_000), "back")
        .await
        .unwrap();
    b.handle
        .pay(&inv.invoice)
        .await
        .expect("B pays after its restart");
    bal_b -= 1_000 + fee(1_000);
    bal_a += 1_000;
    a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    b.balance_becomes(Amount::from_sat(bal_b), 30).await;
    assert_eq!(admin_channel(&stack, channel_b).await["client_sat"], bal_b);
}
