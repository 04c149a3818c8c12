//! The payments' vault storage in a real browser: channels' changes, invoices and payments
//! come back in order after the vault is closed and opened again.

use std::rc::Rc;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, TapSighash};
use shared::channel::keys::Basepoints;
use shared::channel::ChannelChange;
use shared::pay::{ChannelId, ChannelOpen};
use shared::types::{ClientId, FactoryId};
use wasm_bindgen_test::*;

use super::{VaultPayStore, PAY_PREFIX};
use crate::pay::{
    Direction, InvoiceRecord, LeafChannel, LeafRecord, Opening, PayStore, PaymentRecord,
    PaymentStatus, PendingAdvance,
};
use crate::session::StorageError;
use crate::vault::{Protection, Vault};

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_name(test: &str) -> String {
    format!("test-{test}-{}", js_sys::Math::random().to_bits())
}

fn channel(factory: u64, client: u32) -> ChannelId {
    ChannelId {
        factory: FactoryId(factory),
        client: ClientId(client),
    }
}

fn point(byte: u8) -> PublicKey {
    let secret = SecretKey::from_slice(&[byte; 32]).expect("valid key");
    secret.public_key(&Secp256k1::signing_only())
}

fn open(id: ChannelId) -> ChannelOpen {
    ChannelOpen {
        channel: id,
        basepoints: Basepoints {
            revocation: point(1),
            payment: point(2),
            delayed_payment: point(3),
            htlc: point(4),
        },
        first_points: [point(5), point(6)],
        feerate: Some(bitcoin::FeeRate::from_sat_per_vb_u32(1)),
        next_update: 0,
        leaf: shared::leaf::LeafEpoch::FIRST,
        purchase: None,
    }
}

fn change(n: u64) -> ChannelChange {
    if n.is_multiple_of(2) {
        ChannelChange::RoundStarted {
            number: n,
            lsp_updates: n + 1,
            client_updates: n + 2,
        }
    } else {
        ChannelChange::CloseRecord {
            sighash: TapSighash::from_byte_array([n as u8; 32]),
        }
    }
}

fn invoice(byte: u8) -> InvoiceRecord {
    InvoiceRecord {
        hash: sha256::Hash::hash(&[byte]),
        preimage: [byte; 32],
        invoice: format!("lnbcrt{byte}"),
        amount: Amount::from_sat(1_000 * u64::from(byte)),
        description: format!("coffee {byte}"),
        created_at: 1_700_000_000,
        expires_at: 1_700_003_600,
        paid_at: None,
    }
}

fn payment(byte: u8, direction: Direction) -> PaymentRecord {
    PaymentRecord {
        hash: sha256::Hash::hash(&[byte]),
        direction,
        amount: Amount::from_sat(500 * u64::from(byte)),
        fee: Amount::from_sat(2),
        network_fee: None,
        join_fee: Amount::from_sat(3 * u64::from(byte)),
        description: format!("payment {byte}"),
        status: PaymentStatus::Pending,
        created_at: 1_700_000_000 + u64::from(byte),
        done_at: None,
        channel: Some((channel(3, 1), u64::from(byte))),
        preimage: None,
        swap: None,
    }
}

#[wasm_bindgen_test]
async fn changes_invoices_and_payments_survive_reopening_the_vault() {
    let name = fresh_name("pay-store");
    let vault = Vault::create(&name, Protection::Passphrase("pass"))
        .await
        .expect("created");
    let mut store = VaultPayStore::new(Rc::new(vault));
    let empty = store.load().await.expect("loaded");
    assert!(empty.channels.is_empty() && empty.invoices.is_empty() && empty.payments.is_empty());

    let a = channel(3, 1);
    let b = channel(12, 0);
    store.save_lsp_open(&open(a)).await.expect("saved");
    // Batches of changes, interleaved between channels; sequence numbers past 9 sort right.
    let a_changes: Vec<ChannelChange> = (0..14).map(change).collect();
    store
        .append_changes(LeafChannel::first(a), 0, &a_changes[..3])
        .await
        .expect("appended");
    store
        .append_changes(LeafChannel::first(b), 0, &[change(7)])
        .await
        .expect("appended");
    store
        .append_changes(LeafChannel::first(a), 3, &a_changes[3..10])
        .await
        .expect("appended");
    store
        .append_changes(LeafChannel::first(a), 10, &a_changes[10..])
        .await
        .expect("appended");
    // A batch that does not follow the stored ones is refused, and nothing of it is stored.
    let gap = store
        .append_changes(LeafChannel::first(a), 20, &[change(0)])
        .await;
    assert!(matches!(gap, Err(StorageError::Corrupt { .. })), "{gap:?}");

    let mut paid = invoice(2);
    store.save_invoice(&invoice(1)).await.expect("saved");
    store.save_invoice(&paid).await.expect("saved");
    paid.paid_at = Some(1_700_000_100);
    store.save_invoice(&paid).await.expect("replaced");

    let mut sent = payment(9, Direction::Sent);
    store.save_payment(&sent).await.expect("saved");
    store
        .save_payment(&payment(4, Direction::Received))
        .await
        .expect("saved");
    // The same hash the other way is another payment (a wallet may pay its own invoice).
    store
        .save_payment(&payment(9, Direction::Received))
        .await
        .expect("saved");
    sent.status = PaymentStatus::Complete;
    sent.preimage = Some([9; 32]);
    sent.done_at = Some(1_700_000_200);
    store.save_payment(&sent).await.expect("replaced");
    drop(store); // the tab reloads: only IndexedDB is left

    let vault = Rc::new(Vault::open(&name, Some("pass")).await.expect("reopened"));
    let mut store = VaultPayStore::new(vault.clone());
    let state = store.load().await.expect("loaded");
    assert_eq!(state.channels.len(), 2);
    assert_eq!(
        state.channels[&LeafChannel::first(a)],
        (Some(open(a)), a_changes.clone())
    );
    assert_eq!(
        state.channels[&LeafChannel::first(b)],
        (None, vec![change(7)])
    );
    assert_eq!(state.invoices.len(), 2);
    assert_eq!(state.invoices[&invoice(1).hash], invoice(1));
    assert_eq!(state.invoices[&paid.hash], paid);
    assert_eq!(
        state.payments,
        vec![
            sent.clone(),
            payment(4, Direction::Received),
            payment(9, Direction::Received)
        ],
        "payments in the order they started, the replaced one in its place"
    );

    // After reopening, appends carry on where the stored changes end, and new payments go last.
    let refused = store
        .append_changes(LeafChannel::first(a), 3, &[change(1)])
        .await;
    assert!(matches!(refused, Err(StorageError::Corrupt { .. })));
    store
        .append_changes(LeafChannel::first(a), 14, &[change(14)])
        .await
        .expect("appended");
    store
        .save_payment(&payment(5, Direction::Sent))
        .await
        .expect("saved");
    drop(store);
    let mut store = VaultPayStore::new(vault.clone());
    let state = store.load().await.expect("loaded");
    assert_eq!(state.channels[&LeafChannel::first(a)].1.len(), 15);
    assert_eq!(state.channels[&LeafChannel::first(a)].1[14], change(14));
    assert_eq!(state.payments.len(), 4);
    assert_eq!(state.payments[3], payment(5, Direction::Sent));

    // Every record is under the payments' prefix, and none holds its data in the clear.
    let names = vault.names().await.expect("names");
    let pay_names: Vec<&String> = names.iter().filter(|n| n.starts_with(PAY_PREFIX)).collect();
    assert_eq!(pay_names.len(), 1 + 5 + 2 + 4, "{pay_names:?}");
    drop(store);
    let vault = Rc::try_unwrap(vault).expect("last handle");
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn a_store_written_before_loading_still_appends_in_order() {
    let name = fresh_name("pay-store-unloaded");
    let vault = Rc::new(
        Vault::create(&name, Protection::DeviceKey)
            .await
            .expect("created"),
    );
    let a = channel(1, 0);
    let mut first = VaultPayStore::new(vault.clone());
    first
        .append_changes(LeafChannel::first(a), 0, &[change(0), change(1)])
        .await
        .expect("appended");
    drop(first);
    // A second store on the same vault, never loaded, learns what is there before writing.
    let mut second = VaultPayStore::new(vault.clone());
    let refused = second
        .append_changes(LeafChannel::first(a), 0, &[change(0)])
        .await;
    assert!(matches!(refused, Err(StorageError::Corrupt { .. })));
    second
        .append_changes(LeafChannel::first(a), 2, &[change(2)])
        .await
        .expect("appended");
    let state = second.load().await.expect("loaded");
    assert_eq!(
        state.channels[&LeafChannel::first(a)].1,
        vec![change(0), change(1), change(2)]
    );
    drop(second);
    let vault = Rc::try_unwrap(vault).expect("last handle");
    vault.wipe().await.expect("wiped");
}

fn commitment(client: u64) -> shared::channel::CommitmentSpec {
    shared::channel::CommitmentSpec {
        lsp_balance: Amount::from_sat(50_000),
        client_balance: Amount::from_sat(client),
        htlcs: Vec::new(),
        feerate: bitcoin::FeeRate::from_sat_per_vb_u32(1),
    }
}

#[wasm_bindgen_test]
async fn leaf_records_pending_advances_and_later_leaf_channels_survive_reopening() {
    use shared::leaf::{LeafEpoch, LeafStates};
    use shared::params::FactoryParams;
    use shared::path::ClientPath;
    use shared::testing::{sample_proposal, TestKeys};

    let name = fresh_name("pay-store-leaf");
    let vault = Rc::new(
        Vault::create(&name, Protection::DeviceKey)
            .await
            .expect("created"),
    );
    let keys = TestKeys::generate(4, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    let path = ClientPath::build(&proposal, ClientId(2)).expect("client 2");
    let a = channel(3, 2);
    let next = LeafChannel {
        channel: a,
        leaf: LeafEpoch(1),
    };
    let mut states = LeafStates::new(&path);
    let state = states
        .latest()
        .next(&path, Amount::from_sat(4_000))
        .expect("for sale");
    states.record_signing(&state).expect("the next state");
    let mut openings = std::collections::BTreeMap::new();
    openings.insert(
        LeafEpoch(1),
        Opening {
            spec: commitment(19_000),
            log_from: 2,
        },
    );
    let mut attempts = std::collections::BTreeMap::new();
    attempts.insert(
        LeafEpoch(1),
        vec![crate::pay::Attempt {
            amount: Amount::from_sat(4_000),
            log_from: 2,
        }],
    );
    let record = LeafRecord {
        states,
        openings,
        attempts,
    };
    let pending = PendingAdvance {
        leaf: LeafEpoch(1),
        amount: Amount::from_sat(4_000),
        price: Amount::from_sat(20),
        opening: Opening {
            spec: commitment(19_000),
            log_from: 2,
        },
    };
    let mut later = open(a);
    later.leaf = LeafEpoch(1);

    let mut store = VaultPayStore::new(vault.clone());
    store.save_lsp_open(&open(a)).await.expect("saved");
    store.save_lsp_open(&later).await.expect("saved");
    store
        .append_changes(LeafChannel::first(a), 0, &[change(0), change(1)])
        .await
        .expect("appended");
    // The later leaf state's channel has its own log, numbered from 0.
    store
        .append_changes(next, 0, &[change(2)])
        .await
        .expect("appended");
    store
        .append_changes(next, 1, &[change(3), change(4)])
        .await
        .expect("appended");
    store.save_leaf(a, &record).await.expect("saved");
    store.save_advance(a, Some(&pending)).await.expect("saved");
    assert_eq!(
        store.leaf(a).await.expect("read"),
        Some(record.clone()),
        "the exit screen reads the leaf record alone"
    );
    drop(store);

    let mut store = VaultPayStore::new(vault.clone());
    let state = store.load().await.expect("loaded");
    assert_eq!(
        state.channels[&LeafChannel::first(a)],
        (Some(open(a)), vec![change(0), change(1)])
    );
    assert_eq!(
        state.channels[&next],
        (Some(later.clone()), vec![change(2), change(3), change(4)])
    );
    assert_eq!(state.leaves[&a], record);
    assert_eq!(state.advances[&a], pending);

    // Once the leaf advanced, the pending advance is removed.
    store.save_advance(a, None).await.expect("removed");
    drop(store);
    let mut store = VaultPayStore::new(vault.clone());
    let state = store.load().await.expect("loaded");
    assert!(state.advances.is_empty());
    assert_eq!(state.leaves[&a], record);
    drop(store);
    let vault = Rc::try_unwrap(vault).expect("last handle");
    vault.wipe().await.expect("wiped");
}
