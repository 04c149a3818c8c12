//! The wallet's offer checks and arithmetic, and a whole advance signed against an LSP built
//! from the test keys, stored and loaded back from the memory store.

use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, FeeRate, TapSighash};
use rand::rngs::StdRng;
use rand::SeedableRng;
use shared::channel::keys::ChannelSecrets;
use shared::channel::{ChannelChange, CommitmentSpec};
use shared::leaf::{Advance, LeafEpoch, LeafStates, LiquidityOffer};
use shared::params::FactoryParams;
use shared::path::ClientPath;
use shared::pay::policy::channel_seed;
use shared::pay::{ChannelId, ChannelOpen};
use shared::testing::{sample_proposal, TestKeys};
use shared::types::{ClientId, FactoryId};

use super::*;
use crate::pay::store::{Attempt, LeafChannel, LeafRecord, MemoryPayStore, Opening, PayStore};
use crate::pay::PendingAdvance;

fn setup() -> (ClientPath, TestKeys) {
    let keys = TestKeys::generate(4, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    (
        ClientPath::build(&proposal, ClientId(2)).expect("client 2 is in the tree"),
        keys,
    )
}

fn channel() -> ChannelId {
    ChannelId {
        factory: FactoryId(5),
        client: ClientId(2),
    }
}

fn secret_of(keys: &TestKeys, key: &bitcoin::secp256k1::PublicKey) -> SecretKey {
    keys.secret(key).expect("a test key")
}

fn lsp_open(secret: &SecretKey, leaf: LeafEpoch) -> ChannelOpen {
    let s = ChannelSecrets::from_seed(&channel_seed(secret, channel(), leaf));
    ChannelOpen {
        feerate: Some(FeeRate::from_sat_per_vb_u32(1)),
        ..ChannelOpen::new(channel(), leaf, &s)
    }
}

fn live_spec() -> CommitmentSpec {
    CommitmentSpec {
        lsp_balance: Amount::from_sat(60_000),
        client_balance: Amount::from_sat(20_000),
        htlcs: Vec::new(),
        feerate: FeeRate::from_sat_per_vb_u32(2),
    }
}

/// The LSP's offer of `amount` at `price`, with its nonces for the advance.
fn offer(
    path: &ClientPath,
    keys: &TestKeys,
    amount: Amount,
    price: Amount,
) -> (LiquidityOffer, Advance, [shared::musig::SecNonce; 2]) {
    let lsp = secret_of(keys, &path.proposal().lsp_key);
    let advance = Advance::new(path, &LeafStates::new(path).latest().clone(), amount)
        .expect("the leaf has that much");
    let (secs, nonces) = advance.nonces(&lsp, &mut StdRng::seed_from_u64(9));
    let offer = LiquidityOffer {
        channel: channel(),
        leaf: advance.epoch(),
        amount,
        price,
        open: lsp_open(&lsp, advance.epoch()),
        nonces,
    };
    (offer, advance, secs)
}

fn expected(amount: Amount, price: Amount) -> Expected {
    Expected {
        live_leaf: LeafEpoch::FIRST,
        amount,
        price,
        live: live_spec(),
        quiescent: true,
    }
}

#[test]
fn an_offer_of_what_was_asked_passes_and_any_other_is_refused() {
    let (path, keys) = setup();
    let (amount, price) = (Amount::from_sat(5_000), Amount::from_sat(25));
    let (good, _, _) = offer(&path, &keys, amount, price);
    assert_eq!(
        check_offer(&good, &expected(amount, price)),
        Ok(LeafEpoch(1))
    );

    let mut other = good.clone();
    other.leaf = LeafEpoch(2);
    assert!(matches!(
        check_offer(&other, &expected(amount, price)),
        Err(OfferError::WrongLeaf { .. })
    ));
    let mut other = good.clone();
    other.amount = Amount::from_sat(4_000);
    assert!(matches!(
        check_offer(&other, &expected(amount, price)),
        Err(OfferError::WrongAmount { .. })
    ));
    let mut other = good.clone();
    other.price = Amount::from_sat(26);
    assert!(matches!(
        check_offer(&other, &expected(amount, price)),
        Err(OfferError::WrongPrice { .. })
    ));
    let mut other = good.clone();
    other.open.leaf = LeafEpoch::FIRST;
    assert_eq!(
        check_offer(&other, &expected(amount, price)),
        Err(OfferError::WrongOpen)
    );
    let busy = Expected {
        quiescent: false,
        ..expected(amount, price)
    };
    assert_eq!(check_offer(&good, &busy), Err(OfferError::Busy));
    let mut poor = expected(amount, price);
    poor.live.client_balance = Amount::from_sat(24);
    assert!(matches!(
        check_offer(&good, &poor),
        Err(OfferError::Unaffordable { .. })
    ));
}

#[test]
fn the_new_channel_opens_with_the_price_moved_and_the_liquidity_added() {
    let live = live_spec();
    let spec =
        opening_spec(&live, Amount::from_sat(5_000), Amount::from_sat(25)).expect("affordable");
    assert_eq!(spec.client_balance, Amount::from_sat(19_975));
    assert_eq!(spec.lsp_balance, Amount::from_sat(65_025));
    assert_eq!(spec.feerate, live.feerate);
    assert_eq!(spec.total(), live.total() + Amount::from_sat(5_000));
    assert!(spec.htlcs.is_empty());
}

#[test]
fn an_earlier_attempts_log_replays_only_its_double_sign_records() {
    let record = |n: u8| ChannelChange::SignRecord {
        holder: shared::channel::Side::Lsp,
        number: 0,
        sighash: TapSighash::from_raw_hash(bitcoin::hashes::Hash::from_byte_array([n; 32])),
    };
    let other = ChannelChange::CloseRecord {
        sighash: TapSighash::from_raw_hash(bitcoin::hashes::Hash::from_byte_array([7; 32])),
    };
    let log = vec![
        record(1),
        other.clone(),
        record(2),
        other.clone(),
        record(3),
        record(4),
    ];
    let at = |amount: u64, log_from: u64| Attempt {
        amount: Amount::from_sat(amount),
        log_from,
    };
    // Attempts at 5,000 from 0, at 6,000 from 2, at 5,000 from 4; then 5,000 again from 6.
    let earlier = [at(5_000, 0), at(6_000, 2), at(5_000, 4)];
    assert_eq!(
        replayed(&log, &earlier, &at(5_000, 6)),
        vec![record(1), record(3), record(4)],
        "the records of the same amount's attempts only"
    );
    assert_eq!(replayed(&log, &earlier, &at(6_000, 6)), vec![record(2)]);
    assert_eq!(replayed(&log, &earlier, &at(7_000, 6)), vec![]);
    // The live attempt (from 4, at 5,000) is replayed whole, with the first attempt's records.
    assert_eq!(
        replayed(&log, &earlier[..2], &at(5_000, 4)),
        vec![record(1), record(3), record(4)]
    );
    assert_eq!(replayed(&log, &[], &at(5_000, 0)), log);
}

#[test]
fn what_is_for_sale_shrinks_with_each_state_and_ends_with_the_last() {
    let (path, _) = setup();
    let params = path.proposal().params.clone();
    let record = LeafRecord {
        states: LeafStates::new(&path),
        openings: Default::default(),
        attempts: Default::default(),
    };
    let all = record.states.available();
    assert_eq!(all, record.states.latest().available(&params));
    assert!(all > Amount::ZERO);
}

/// The wallet's step 5 and the LSP's step 6 with the real signing code, then the records the
/// wallet stores, loaded back.
#[test]
fn an_advance_signed_with_the_lsp_is_stored_and_loaded_back() {
    futures::executor::block_on(advance_signed_stored_and_loaded());
}

async fn advance_signed_stored_and_loaded() {
    let (path, keys) = setup();
    let client = secret_of(&keys, &path.client_key());
    let lsp = secret_of(&keys, &path.proposal().lsp_key);
    let (amount, price) = (Amount::from_sat(5_000), Amount::from_sat(25));
    let (offer, mut lsp_advance, lsp_secs) = offer(&path, &keys, amount, price);
    let leaf = check_offer(&offer, &expected(amount, price)).expect("the offer is right");

    // Wallet: records the state, stores the record and the pending advance, then signs.
    let mut record = LeafRecord {
        states: LeafStates::new(&path),
        openings: Default::default(),
        attempts: Default::default(),
    };
    let mut advance =
        Advance::new(&path, record.states.latest(), offer.amount).expect("the leaf has that much");
    record
        .states
        .record_signing(&advance.state)
        .expect("the next state");
    let opening = Opening {
        spec: opening_spec(&live_spec(), amount, price).expect("affordable"),
        log_from: 0,
    };
    let mut store = MemoryPayStore::default();
    store.save_leaf(channel(), &record).await.expect("stored");
    let pending = PendingAdvance {
        leaf,
        amount,
        price,
        opening: opening.clone(),
    };
    store
        .save_advance(channel(), Some(&pending))
        .await
        .expect("stored");
    let (secs, nonces) = advance.nonces(&client, &mut StdRng::seed_from_u64(3));
    let partials = advance
        .sign(&client, secs, &nonces, &offer.nonces)
        .expect("signed");

    // LSP: checks, signs, aggregates.
    let client_key = path.client_key();
    let sigs = lsp_advance
        .complete(
            &lsp,
            lsp_secs,
            &offer.nonces,
            &client_key,
            &nonces,
            &partials,
        )
        .expect("the wallet's partials verify");

    // Wallet: attaches, advances, stores, forgets the pending advance.
    advance.attach(sigs).expect("the LSP's signatures verify");
    record
        .states
        .advance(advance.state.clone(), advance.redistribution.clone())
        .expect("the leaf advances");
    record.openings.insert(leaf, opening);
    store.save_leaf(channel(), &record).await.expect("stored");
    store
        .save_advance(channel(), None)
        .await
        .expect("forgotten");
    store.save_lsp_open(&offer.open).await.expect("stored");

    let loaded = store.load().await.expect("loaded");
    assert_eq!(loaded.leaves[&channel()], record);
    assert_eq!(
        loaded.leaves[&channel()].states.latest().epoch,
        LeafEpoch(1)
    );
    assert!(loaded.advances.is_empty());
    let key = LeafChannel {
        channel: channel(),
        leaf,
    };
    assert_eq!(loaded.channels[&key].0.as_ref(), Some(&offer.open));
}

#[test]
fn a_pending_advance_survives_a_restart_of_the_memory_store() {
    futures::executor::block_on(pending_advance_survives());
}

async fn pending_advance_survives() {
    let mut store = MemoryPayStore::default();
    let pending = PendingAdvance {
        leaf: LeafEpoch(1),
        amount: Amount::from_sat(5_000),
        price: Amount::from_sat(25),
        opening: Opening {
            spec: live_spec(),
            log_from: 3,
        },
    };
    store
        .save_advance(channel(), Some(&pending))
        .await
        .expect("stored");
    let mut restarted = store.clone();
    assert_eq!(
        restarted.load().await.expect("loaded").advances[&channel()],
        pending
    );
}
