//! The real `lsp-server` process, running its Lightning node, killed with SIGKILL in the middle
//! of a payment with the rest of the Lightning Network (an independent LDK node over a public
//! channel), then started again on the same data dir:
//!
//! - **from the network**: the LSP's node holds a payment for a wallet that is offline (so it
//!   waits at the LSP); the LSP is killed; after the restart the wallet comes back and is paid,
//!   and the outside payer sees one successful payment;
//! - **to the network**: a wallet's HTLC is committed and the outside node holds the LSP's HTLC
//!   (a hold invoice); the LSP is killed; after the restart the outside node claims, the wallet's
//!   payment settles once, at the quoted fee.
//!
//! Each side's balance is checked to the sat, and the LSP's rows say each payment settled once.

mod common;

use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::Amount;
use common::ln::{self, Outside, Target};
use common::pay::{funded_factory_of, join_fee_of, leaf_of, start_payer_at, Payer};
use common::process::{free_port, fund, swarm_config, LspProcess};
use common::swarm::{self, ClientRun, ClientSpec};
use devnet::{Devnet, DevnetConfig};
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::lightning_types::payment::{PaymentHash, PaymentPreimage};
use ldk_node::Event;
use serde_json::Value;
use shared::pay::policy::route_fee;
use std::str::FromStr;
use wallet::pay::{MemoryPayStore, PaymentStatus};

const CAPACITY: Amount = Amount::from_sat(200_000);
const PUSH: Amount = Amount::from_sat(100_000);
const RECEIVED: Amount = Amount::from_sat(12_000);
const PAID: Amount = Amount::from_sat(5_000);

/// The LSP binary on `port`, seen by the Lightning helpers.
struct Process<'a> {
    devnet: &'a Devnet,
    port: u16,
}

impl Target for Process<'_> {
    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn devnet(&self) -> &Devnet {
        self.devnet
    }
}

async fn start(devnet: &Devnet, data_dir: &std::path::Path, port: u16, ln: &str) -> LspProcess {
    let extra = ["--ln-listen".to_string(), ln.to_string()];
    LspProcess::start_with(devnet, data_dir, port, 2, &extra).await
}

fn payer(devnet: &Devnet, port: u16, run: &ClientRun, store: MemoryPayStore) -> Payer {
    start_payer_at(
        &format!("ws://127.0.0.1:{port}/ws"),
        devnet.esplora_url(),
        run.keys,
        vec![leaf_of(run)],
        store,
    )
}

/// The rows of `kind` in the LSP's payment view.
async fn rows(lsp: &Process<'_>, kind: &str) -> Vec<Value> {
    let view = common::admin_get(&lsp.http_url(), "/admin/payments").await;
    view["recent"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["kind"] == kind)
        .cloned()
        .collect()
}

async fn usable(lsp: &Process<'_>) {
    ln::wait_for(60, "the LSP's channel to the outside usable", || async {
        let channels = ln::get(lsp, "/admin/ln/channels").await;
        (channels[0]["is_usable"] == true).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsp_killed_mid_payment_with_the_network_loses_nothing() {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let storage = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let ln_listen = ln::free_addr().to_string();
    let lsp = start(&devnet, data_dir.path(), port, &ln_listen).await;
    let target = Process {
        devnet: &devnet,
        port,
    };
    let outside = Outside::start(&devnet);
    ln::open_channel_to(
        &target,
        &outside,
        Amount::from_sat(1_000_000),
        CAPACITY,
        PUSH,
    )
    .await;
    fund(&devnet, port).await;
    let config = swarm_config(&devnet, port, storage.path());
    let runs = funded_factory_of(
        &devnet,
        swarm::spawn(&config, &[ClientSpec::honest(); 2]),
        2,
    )
    .await;
    let mut wallet = payer(&devnet, port, &runs[0], MemoryPayStore::default());
    wallet.ready(30).await;

    // From the network: held for an offline wallet, then the LSP is killed.
    let record = wallet
        .handle
        .invoice(RECEIVED, "while the LSP falls")
        .await
        .expect("an invoice");
    let store = wallet.store.clone();
    wallet.handle.stop();
    wallet.task.await.expect("the wallet stops");
    let invoice = Bolt11Invoice::from_str(&record.invoice).expect("an invoice");
    outside
        .node
        .bolt11_payment()
        .send(&invoice, None)
        .expect("the outside node sends");
    ln::wait_for(30, "the payment held at the LSP", || async {
        let held = rows(&target, "inbound").await;
        held.first()
            .filter(|r| r["status"] == "pending")
            .map(|_| ())
    })
    .await;
    lsp.kill().await;
    let lsp = start(&devnet, data_dir.path(), port, &ln_listen).await;
    let mut wallet = payer(&devnet, port, &runs[0], store);
    let mut balance = RECEIVED - join_fee_of(&runs[0]);
    wallet.balance_becomes(balance, 60).await;
    let ended = outside
        .expect_event(60, "the payment's end", |e| {
            matches!(
                e,
                Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(ended, Event::PaymentSuccessful { .. }),
        "{ended:?}"
    );
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH - RECEIVED).to_sat()
    );
    let inbound = rows(&target, "inbound").await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["status"], "settled");

    // To the network: the outside node holds the LSP's HTLC, then the LSP is killed.
    usable(&target).await;
    let preimage = [7u8; 32];
    let hash = PaymentHash(sha256::Hash::hash(&preimage).to_byte_array());
    let description =
        Bolt11InvoiceDescription::Direct(Description::new("held".into()).expect("a description"));
    let held = outside
        .node
        .bolt11_payment()
        .receive_for_hash(PAID.to_sat() * 1000, &description, 3600, hash)
        .expect("a hold invoice")
        .to_string();
    let handle = wallet.handle.clone();
    let paying = tokio::spawn(async move { handle.pay(&held).await });
    let claimable = outside
        .expect_event(30, "the HTLC held by the outside node", |e| {
            matches!(e, Event::PaymentClaimable { .. })
        })
        .await;
    let Event::PaymentClaimable {
        claimable_amount_msat,
        ..
    } = claimable
    else {
        unreachable!("matched above")
    };
    lsp.kill().await;
    let _lsp = start(&devnet, data_dir.path(), port, &ln_listen).await;
    usable(&target).await;
    outside
        .node
        .bolt11_payment()
        .claim_for_hash(hash, claimable_amount_msat, PaymentPreimage(preimage))
        .expect("the outside node claims");
    let paid = tokio::time::timeout(Duration::from_secs(60), paying)
        .await
        .expect("the payment ends")
        .expect("the paying task ran")
        .expect("the payment went through");
    assert_eq!(paid.status, PaymentStatus::Complete);
    let terms: Value = reqwest::get(format!(
        "{}/.well-known/superscalar.json",
        target.http_url()
    ))
    .await
    .expect("terms")
    .json()
    .await
    .expect("terms JSON");
    let fees: shared::terms::FeeSchedule =
        serde_json::from_value(terms["body"]["fees"].clone()).expect("fees");
    balance -= PAID + route_fee(&fees, PAID);
    wallet.balance_becomes(balance, 30).await;
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH - RECEIVED + PAID).to_sat()
    );
    let outgoing = rows(&target, "outside").await;
    assert_eq!(outgoing.len(), 1, "{outgoing:?}");
    assert_eq!(outgoing[0]["status"], "settled");
}
