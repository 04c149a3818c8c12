//! Client–LSP channels on a real regtest node (bitcoind via the devnet, read through Esplora).
//!
//! Most tests fund a MuSig2(client, LSP) BIP-86 output straight from the faucet (the leaf's
//! `channel` output, without the factory above it); one exits a real 8-client factory to its
//! leaf and uses the leaf's `channel` output. Each runs both sides' channel state machines
//! against each other with real MuSig2, then publishes what a cheater or a closing side would.
//! Every transaction passes `testmempoolaccept` (policy, not only consensus) before it goes out
//! through Esplora; every relative or absolute lock is checked one block early (bitcoind must
//! refuse it); every test ends by reading the honest side's coins back from the chain.

// The shared regtest helpers serve several test files; this one uses part of them.
#[allow(dead_code, unused_imports)]
mod regtest;

use std::collections::BTreeMap;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::TweakedPublicKey;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Transaction, TxOut};
use rand::rngs::StdRng;
use rand::SeedableRng;
use regtest::{add, feerate, peer_info, sub, Regtest, MISSING_INPUTS, NON_BIP68_FINAL, NON_FINAL};
use shared::channel::claim::{build_claim, to_local_input, ClaimInput};
use shared::channel::{Action, Channel, ChannelParams, ClaimKind, CommitmentSpec, Side};
use shared::musig::{key_sort, public_key, JobKeys};
use shared::params::BlockDelta;
use shared::types::Now;

const CAPACITY: u64 = 1_000_000;
const CLIENT_START: u64 = 300_000;
const TO_SELF_DELAY: u32 = 6;
const DUST: Amount = Amount::from_sat(330);

/// Both sides of one channel on a funded output, and the chain.
struct Setup {
    rt: Regtest,
    lsp: Channel,
    client: Channel,
    rng: StdRng,
    /// Each side's own payout address (a key of its seed).
    lsp_dest: ScriptBuf,
    client_dest: ScriptBuf,
}

fn p2tr_of(secret: &SecretKey) -> ScriptBuf {
    let secp = Secp256k1::new();
    ScriptBuf::new_p2tr(&secp, secret.x_only_public_key(&secp).0, None)
}

impl Setup {
    /// Funds the channel output from the faucet, confirms it and opens the channel (round 0).
    async fn open(seed: u64) -> Setup {
        let rt = Regtest::start().await;
        let mut rng = StdRng::seed_from_u64(seed);
        let lsp_funding = SecretKey::new(&mut rng);
        let client_funding = SecretKey::new(&mut rng);
        let (lsp_key, client_key) = (public_key(&lsp_funding), public_key(&client_funding));
        let mut signers: Vec<PublicKey> = vec![lsp_key, client_key];
        key_sort(&mut signers);
        let agg = JobKeys::new(&signers, None).expect("two keys aggregate");
        let funding = TxOut {
            value: Amount::from_sat(CAPACITY),
            script_pubkey: ScriptBuf::new_p2tr_tweaked(TweakedPublicKey::dangerous_assume_tweaked(
                agg.output_key(),
            )),
        };
        let address = Address::from_script(&funding.script_pubkey, Network::Regtest).expect("P2TR");
        let txid = rt
            .devnet
            .faucet(&address, funding.value)
            .await
            .expect("faucet pays the channel output");
        rt.mine(1).await;
        let tx = rt
            .rpc()
            .get_raw_transaction(&txid)
            .await
            .expect("getrawtransaction")
            .expect("the funding tx");
        let vout = tx
            .output
            .iter()
            .position(|o| *o == funding)
            .expect("an output pays the channel");
        let outpoint = OutPoint::new(txid, vout as u32);
        assert_eq!(rt.unspent(outpoint).await, funding);
        let params = ChannelParams {
            funding: outpoint,
            funding_output: funding,
            lsp_funding_key: lsp_key,
            client_funding_key: client_key,
            to_self_delay: BlockDelta::from_blocks(TO_SELF_DELAY),
            dust_limit: DUST,
            anchor: Amount::from_sat(240),
            htlc_margin: BlockDelta::from_blocks(6),
            walk: BlockDelta::ZERO,
        };
        let spec = CommitmentSpec {
            lsp_balance: Amount::from_sat(CAPACITY - CLIENT_START),
            client_balance: Amount::from_sat(CLIENT_START),
            htlcs: vec![],
            feerate: feerate(),
        };
        let (lsp_seed, client_seed) = ([seed as u8; 32], [!(seed as u8); 32]);
        let lsp = Channel::new(
            Side::Lsp,
            params.clone(),
            lsp_funding,
            &lsp_seed,
            peer_info(&client_seed),
            spec.clone(),
        )
        .expect("LSP side opens");
        let client = Channel::new(
            Side::Client,
            params,
            client_funding,
            &client_seed,
            peer_info(&lsp_seed),
            spec,
        )
        .expect("client side opens");
        let mut s = Setup {
            rt,
            lsp,
            client,
            lsp_dest: p2tr_of(&SecretKey::new(&mut rng)),
            client_dest: p2tr_of(&SecretKey::new(&mut rng)),
            rng,
        };
        s.round().await;
        s
    }

    async fn now(&self) -> Now {
        Now {
            height: self.rt.tip().await,
            unix_time: 0,
        }
    }

    /// Delivers messages both ways until both sides are quiet.
    async fn pump(&mut self) {
        let now = self.now().await;
        loop {
            let mut moved = false;
            while let Some(a) = self.lsp.poll_action() {
                if let Action::Send(m) = a {
                    self.client
                        .handle_message(now, m, &mut self.rng)
                        .expect("the client accepts the LSP's message");
                    moved = true;
                }
            }
            while let Some(a) = self.client.poll_action() {
                if let Action::Send(m) = a {
                    self.lsp
                        .handle_message(now, m, &mut self.rng)
                        .expect("the LSP accepts the client's message");
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// One full commitment round (everything sent so far gets committed on both sides).
    async fn round(&mut self) {
        self.pump().await;
        self.lsp.start_round(&mut self.rng).expect("round starts");
        self.pump().await;
        assert_eq!(self.lsp.spec(), self.client.spec());
        assert_eq!(self.lsp.number(), self.client.number());
    }

    /// `payer` pays `amount` to its peer through an HTLC, committed and then fulfilled.
    async fn pay(&mut self, payer: Side, amount: u64, n: u8) {
        let preimage = [n; 32];
        let hash = sha256::Hash::hash(&preimage);
        let expiry = add(self.rt.tip().await, 100);
        let now = self.now().await;
        let (from, to) = match payer {
            Side::Lsp => (&mut self.lsp, &mut self.client),
            Side::Client => (&mut self.client, &mut self.lsp),
        };
        let id = from
            .add_htlc(now, Amount::from_sat(amount), hash, expiry)
            .expect("HTLC added");
        let _ = to;
        self.round().await;
        let payee = match payer {
            Side::Lsp => &mut self.client,
            Side::Client => &mut self.lsp,
        };
        payee.fulfill_htlc(now, id, preimage).expect("fulfilled");
        self.round().await;
    }
}

/// The confirmed unspent value paid to `dest` by `tx` (output 0 of a claim).
async fn paid(rt: &Regtest, tx: &Transaction, dest: &ScriptBuf) -> Amount {
    let out = rt.unspent(OutPoint::new(tx.compute_txid(), 0)).await;
    assert_eq!(
        &out.script_pubkey, dest,
        "paid to the honest side's own key"
    );
    out.value
}

fn claim(inputs: &[ClaimInput], dest: &ScriptBuf, lock_time: LockTime) -> Transaction {
    build_claim(inputs, dest.clone(), feerate(), lock_time, DUST).expect("the claim builds")
}

fn honest_of(s: &Setup, cheater: Side) -> &Channel {
    match cheater {
        Side::Lsp => &s.client,
        Side::Client => &s.lsp,
    }
}

/// The revoked commitment as the honest side rebuilds it from its own store (its outputs and
/// their taproot trees).
fn honest_rebuild(honest: &Channel, tx: &Transaction) -> shared::channel::Commitment {
    let number = honest.commitment_number_of(tx).expect("a commitment");
    let spec = honest.revoked_spec(number).expect("revoked").clone();
    let c = honest
        .build_commitment(honest.side().other(), number, &spec)
        .expect("rebuilds");
    assert_eq!(c.tx.compute_txid(), tx.compute_txid());
    c
}

/// Broadcast a revoked commitment of `cheater`, and the honest side's penalty for it.
async fn punish(s: &mut Setup, cheater: Side, revoked: Transaction) {
    let (honest, dest, latest) = match cheater {
        Side::Lsp => (&s.client, &s.client_dest, s.client.spec().client_balance),
        Side::Client => (&s.lsp, &s.lsp_dest, s.lsp.spec().lsp_balance),
    };
    // The cheater publishes an old, revoked but fully signed commitment.
    let height = s.rt.confirm(&revoked, None).await;
    // Its own delayed path is closed for `to_self_delay` blocks: the honest side has time.
    let cheat_side = match cheater {
        Side::Lsp => &s.lsp,
        Side::Client => &s.client,
    };
    let number = cheat_side
        .commitment_number_of(&revoked)
        .expect("its commitment");
    let cheat_point = cheat_side
        .commitment_point(cheater, number)
        .expect("own point");
    let cheat_commitment = honest_rebuild(honest_of(s, cheater), &revoked);
    let cheat_in = to_local_input(
        cheat_side.params(),
        &cheat_commitment,
        cheat_side.secrets(),
        &cheat_point,
    )
    .expect("the cheater's to_local");
    let cheat_dest = p2tr_of(&SecretKey::from_slice(&[3; 32]).expect("key"));
    let cheat_sweep = claim(std::slice::from_ref(&cheat_in), &cheat_dest, LockTime::ZERO);
    s.rt.assert_cannot_broadcast(&cheat_sweep, &[NON_BIP68_FINAL])
        .await;
    // The honest side recognises it from the chain and builds its penalty from its own store.
    let number = honest
        .commitment_number_of(&revoked)
        .expect("a commitment of this channel");
    assert!(number < honest.number().expect("open"), "an old commitment");
    let penalty = honest
        .penalty_for(&revoked, dest.clone(), feerate())
        .expect("the revoked commitment can be punished");
    let via_watch = honest
        .claims_for(&revoked, dest, feerate(), &BTreeMap::new())
        .expect("claims");
    assert_eq!(via_watch, vec![(ClaimKind::Penalty, penalty.clone())]);
    // Every output but the anchor is taken.
    assert_eq!(penalty.input.len(), revoked.output.len() - 1);
    let confirmed = s.rt.confirm(&penalty, None).await;
    assert_eq!(
        confirmed,
        add(height, 1),
        "the penalty confirms in the next block"
    );
    // Even once the delay has passed, the cheater's sweep has nothing left to spend.
    s.rt.mine(TO_SELF_DELAY).await;
    s.rt.assert_cannot_broadcast(&cheat_sweep, &[MISSING_INPUTS])
        .await;
    let got = paid(&s.rt, &penalty, dest).await;
    assert!(
        got >= latest,
        "the honest side holds at least its latest balance: {got} < {latest}"
    );
    let total: Amount = revoked
        .output
        .iter()
        .filter(|o| o.script_pubkey != ScriptBuf::new_p2a())
        .map(|o| o.value)
        .sum();
    assert!(
        total - got < Amount::from_sat(2_000),
        "only the penalty's fee is lost"
    );
}

/// (a) The LSP publishes a commitment it revoked (with an HTLC in flight): the client's
/// penalty takes `to_local`, the HTLC and its own `to_remote` in the next block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsp_publishes_a_revoked_commitment_and_the_client_punishes_it() {
    let mut s = Setup::open(11).await;
    // The LSP pays the client 200k: commitment 1 carries the HTLC, 2 settles it.
    let preimage = [5u8; 32];
    let hash = sha256::Hash::hash(&preimage);
    let expiry = add(s.rt.tip().await, 100);
    let now = s.now().await;
    let id = s
        .lsp
        .add_htlc(now, Amount::from_sat(200_000), hash, expiry)
        .expect("HTLC added");
    s.round().await;
    let revoked = s.lsp.latest_signed().expect("signed").clone();
    assert_eq!(revoked.output.len(), 4, "to_local, to_remote, HTLC, anchor");
    s.client.fulfill_htlc(now, id, preimage).expect("fulfilled");
    s.round().await;
    s.pay(Side::Client, 50_000, 6).await;
    assert_eq!(s.client.spec().client_balance, Amount::from_sat(450_000));
    punish(&mut s, Side::Lsp, revoked).await;
}

/// (b) The client publishes the commitment it held before paying: the LSP's penalty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publishes_a_revoked_commitment_and_the_lsp_punishes_it() {
    let mut s = Setup::open(12).await;
    let preimage = [7u8; 32];
    let hash = sha256::Hash::hash(&preimage);
    let expiry = add(s.rt.tip().await, 100);
    let now = s.now().await;
    let id = s
        .client
        .add_htlc(now, Amount::from_sat(100_000), hash, expiry)
        .expect("HTLC added");
    s.round().await;
    let revoked = s.client.latest_signed().expect("signed").clone();
    s.lsp.fulfill_htlc(now, id, preimage).expect("fulfilled");
    s.round().await;
    assert_eq!(s.lsp.spec().lsp_balance, Amount::from_sat(800_000));
    punish(&mut s, Side::Client, revoked).await;
}

/// (c) The LSP offers an HTLC to a client that then goes offline: the LSP closes with its
/// latest commitment and, after the HTLC's expiry (and `to_self_delay`), takes it back; the
/// client, back later, sweeps its `to_remote`. Both end with their latest balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_htlc_times_out_on_chain_and_the_payer_recovers_it() {
    let mut s = Setup::open(13).await;
    let hash = sha256::Hash::hash(&[9u8; 32]);
    let expiry = add(s.rt.tip().await, 20);
    let now = s.now().await;
    s.lsp
        .add_htlc(now, Amount::from_sat(150_000), hash, expiry)
        .expect("HTLC added");
    s.round().await;
    let spec = s.lsp.spec().clone();
    // The client is gone; at the HTLC's deadline the LSP's machine asks to close.
    assert_eq!(s.lsp.poll_timeout(), Some(expiry));
    s.lsp.handle_timeout(Now {
        height: expiry,
        unix_time: 0,
    });
    let signed = match s.lsp.poll_action() {
        Some(Action::Broadcast(tx)) => tx,
        other => panic!("expected the LSP's commitment, got {other:?}"),
    };
    assert_eq!(Some(&signed), s.lsp.latest_signed());
    // (Published early here, so that the HTLC's expiry is the lock the test waits for.)
    let confirmed = s.rt.confirm(&signed, None).await;
    let claims = s
        .lsp
        .claims_for(&signed, &s.lsp_dest, feerate(), &BTreeMap::new())
        .expect("the LSP knows its commitment");
    let kinds: Vec<ClaimKind> = claims.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds.len(), 2, "to_local and the HTLC timeout: {kinds:?}");
    let local = claims
        .iter()
        .find(|(k, _)| *k == ClaimKind::ToLocal)
        .expect("to_local")
        .1
        .clone();
    let timeout = claims
        .iter()
        .find(|(k, _)| matches!(k, ClaimKind::HtlcTimeout { .. }))
        .expect("HTLC timeout")
        .1
        .clone();
    // to_local: refused until `to_self_delay` blocks after the commitment.
    let matured = add(confirmed, TO_SELF_DELAY - 1);
    s.rt.mine_to(sub(matured, 1)).await;
    s.rt.assert_cannot_broadcast(&local, &[NON_BIP68_FINAL])
        .await;
    s.rt.mine_to(matured).await;
    s.rt.confirm(&local, None).await;
    // The HTLC: refused one block before its expiry, accepted at it.
    s.rt.mine_to(sub(expiry, 1)).await;
    s.rt.assert_cannot_broadcast(&timeout, &[NON_FINAL]).await;
    s.rt.mine_to(expiry).await;
    s.rt.confirm(&timeout, None).await;
    let lsp_total =
        paid(&s.rt, &local, &s.lsp_dest).await + paid(&s.rt, &timeout, &s.lsp_dest).await;
    let fees = signed_fee(&s, &signed)
        + Amount::from_sat(240)
        + Amount::from_sat((local.vsize() + timeout.vsize()) as u64 * 2);
    assert_eq!(
        lsp_total + fees,
        spec.lsp_balance + spec.htlcs[0].amount,
        "the LSP recovers its balance and the HTLC, less exactly the fees"
    );
    // The client comes back, recognises the LSP's commitment and sweeps its balance; with no
    // preimage it makes no claim on the HTLC.
    let claims = s
        .client
        .claims_for(&signed, &s.client_dest, feerate(), &BTreeMap::new())
        .expect("the client knows the LSP's commitment");
    assert_eq!(claims.len(), 1);
    let (kind, sweep) = &claims[0];
    assert_eq!(*kind, ClaimKind::ToRemote);
    s.rt.confirm(sweep, None).await;
    let got = paid(&s.rt, sweep, &s.client_dest).await;
    assert_eq!(
        got + Amount::from_sat(sweep.vsize() as u64 * 2),
        spec.client_balance
    );
}

fn signed_fee(s: &Setup, tx: &Transaction) -> Amount {
    let out: Amount = tx.output.iter().map(|o| o.value).sum();
    s.lsp.params().funding_output.value - out
}

/// (d) The client closes with its latest commitment: it sweeps `to_local` after exactly
/// `to_self_delay` blocks, the LSP sweeps `to_remote` after one; both get their latest
/// balances less the fees of their own claim (and, for the LSP, the commitment fee).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_state_unilateral_close_pays_both_sides() {
    let mut s = Setup::open(14).await;
    s.pay(Side::Lsp, 120_000, 1).await;
    s.pay(Side::Client, 20_000, 2).await;
    let spec = s.client.spec().clone();
    assert_eq!(spec.client_balance, Amount::from_sat(400_000));
    let signed = s.client.latest_signed().expect("signed").clone();
    let confirmed = s.rt.confirm(&signed, None).await;
    let none = BTreeMap::new();
    // The LSP recognises the client's latest commitment and sweeps its to_remote next block.
    let lsp_claims = s
        .lsp
        .claims_for(&signed, &s.lsp_dest, feerate(), &none)
        .expect("known");
    assert_eq!(lsp_claims.len(), 1);
    let (kind, lsp_sweep) = &lsp_claims[0];
    assert_eq!(*kind, ClaimKind::ToRemote);
    s.rt.confirm(lsp_sweep, None).await;
    let lsp_got = paid(&s.rt, lsp_sweep, &s.lsp_dest).await;
    assert_eq!(
        lsp_got
            + signed_fee(&s, &signed)
            + Amount::from_sat(240)
            + Amount::from_sat(lsp_sweep.vsize() as u64 * 2),
        spec.lsp_balance
    );
    // The client waits to_self_delay.
    let claims = s
        .client
        .claims_for(&signed, &s.client_dest, feerate(), &none)
        .expect("known");
    assert_eq!(claims.len(), 1);
    let (kind, sweep) = &claims[0];
    assert_eq!(*kind, ClaimKind::ToLocal);
    let matured = add(confirmed, TO_SELF_DELAY - 1);
    s.rt.mine_to(sub(matured, 1)).await;
    s.rt.assert_cannot_broadcast(sweep, &[NON_BIP68_FINAL])
        .await;
    s.rt.mine_to(matured).await;
    let at = s.rt.confirm(sweep, None).await;
    assert_eq!(at, add(confirmed, TO_SELF_DELAY));
    let got = paid(&s.rt, sweep, &s.client_dest).await;
    assert_eq!(
        got + Amount::from_sat(sweep.vsize() as u64 * 2),
        spec.client_balance
    );
}

/// (d') Both sides close cooperatively: one key-path transaction, confirmed at once, pays the
/// client exactly its latest balance and the LSP its balance less the close's fee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_close_pays_both_latest_balances() {
    let mut s = Setup::open(15).await;
    s.pay(Side::Lsp, 70_000, 3).await;
    let spec = s.client.spec().clone();
    assert_eq!(spec.client_balance, Amount::from_sat(370_000));
    s.client
        .shutdown(s.client_dest.clone())
        .expect("client shutdown");
    s.lsp.shutdown(s.lsp_dest.clone()).expect("LSP shutdown");
    s.pump().await;
    s.lsp
        .start_close(&mut s.rng, feerate())
        .expect("close starts");
    let now = s.now().await;
    let mut broadcasts = Vec::new();
    loop {
        let mut moved = false;
        while let Some(a) = s.lsp.poll_action() {
            match a {
                Action::Send(m) => {
                    s.client.handle_message(now, m, &mut s.rng).expect("client");
                    moved = true;
                }
                Action::Broadcast(tx) => broadcasts.push(tx),
                _ => {}
            }
        }
        while let Some(a) = s.client.poll_action() {
            match a {
                Action::Send(m) => {
                    s.lsp.handle_message(now, m, &mut s.rng).expect("LSP");
                    moved = true;
                }
                Action::Broadcast(tx) => broadcasts.push(tx),
                _ => {}
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(broadcasts.len(), 2);
    let close = broadcasts.remove(0);
    s.rt.confirm(&close, None).await;
    let txid = close.compute_txid();
    let mut client_got = Amount::ZERO;
    let mut lsp_got = Amount::ZERO;
    for vout in 0..close.output.len() as u32 {
        let out = s.rt.unspent(OutPoint::new(txid, vout)).await;
        if out.script_pubkey == s.client_dest {
            client_got += out.value;
        } else if out.script_pubkey == s.lsp_dest {
            lsp_got += out.value;
        }
    }
    assert_eq!(client_got, spec.client_balance);
    assert_eq!(
        lsp_got + Amount::from_sat(close.vsize() as u64 * 2),
        spec.lsp_balance
    );
}

/// (e) The channel on a real factory leaf: a client of an 8-client factory exits to its leaf
/// exactly as the exit planner says; the leaf's `channel` output (MuSig2 of the client's and the
/// LSP's factory keys) funds the channel; the LSP pays the client, then publishes its revoked
/// commitment; the client's penalty takes it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_on_a_real_factory_leaf_punishes_a_revoked_lsp_commitment() {
    let rt = Regtest::start().await;
    let factory = regtest::Factory::create(&rt, 8, 21, 0).await;
    let client = shared::types::ClientId(0);
    let kit = factory.client_kit(client);
    let (done, _) = regtest::run_exit(&rt, &kit, 20).await;
    let channel = match done {
        shared::exit::ExitAction::LeafConfirmed { channel, .. } => channel,
        other => panic!("expected the leaf, got {other:?}"),
    };
    let proposal = factory.proposal();
    let entry = &proposal.clients[0];
    let funding_output = rt.unspent(channel).await;
    assert_eq!(funding_output.value, entry.channel);
    let params = ChannelParams {
        funding: channel,
        funding_output,
        lsp_funding_key: proposal.lsp_key,
        client_funding_key: entry.key,
        to_self_delay: BlockDelta::from_blocks(TO_SELF_DELAY),
        dust_limit: DUST,
        anchor: Amount::from_sat(240),
        htlc_margin: BlockDelta::from_blocks(6),
        walk: BlockDelta::ZERO,
    };
    // The test's opening split: the client holds 40% of the channel.
    let capacity = entry.channel.to_sat();
    let spec = CommitmentSpec {
        lsp_balance: Amount::from_sat(capacity - capacity * 2 / 5),
        client_balance: Amount::from_sat(capacity * 2 / 5),
        htlcs: vec![],
        feerate: feerate(),
    };
    let (lsp_seed, client_seed) = ([31u8; 32], [32u8; 32]);
    let lsp = Channel::new(
        Side::Lsp,
        params.clone(),
        factory.keys.lsp,
        &lsp_seed,
        peer_info(&client_seed),
        spec.clone(),
    )
    .expect("the leaf's channel output is MuSig2(client, LSP)");
    let client_ch = Channel::new(
        Side::Client,
        params,
        factory.keys.clients[0],
        &client_seed,
        peer_info(&lsp_seed),
        spec,
    )
    .expect("client side");
    let mut rng = StdRng::seed_from_u64(21);
    let mut s = Setup {
        rt,
        lsp,
        client: client_ch,
        lsp_dest: p2tr_of(&SecretKey::new(&mut rng)),
        client_dest: p2tr_of(&SecretKey::new(&mut rng)),
        rng,
    };
    s.round().await;
    let revoked = s.lsp.latest_signed().expect("signed").clone();
    s.pay(Side::Lsp, capacity / 10, 4).await;
    assert_eq!(
        s.client.spec().client_balance,
        Amount::from_sat(capacity * 2 / 5 + capacity / 10)
    );
    punish(&mut s, Side::Lsp, revoked).await;
}

/// (f) The direct-claim design on chain: the LSP offers an HTLC, the client fulfills it, and
/// the LSP vanishes without committing the fulfill. At its deadline the client's machine asks to
/// publish its latest commitment; the client's preimage claim (delayed by `to_self_delay` on its
/// own commitment) confirms before the HTLC's expiry, so the LSP's timeout claim never can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_claims_with_its_preimage_before_the_payer_can_time_out() {
    let mut s = Setup::open(16).await;
    let preimage = [16u8; 32];
    let hash = sha256::Hash::hash(&preimage);
    let expiry = add(s.rt.tip().await, 30);
    let now = s.now().await;
    let id = s
        .lsp
        .add_htlc(now, Amount::from_sat(80_000), hash, expiry)
        .expect("HTLC added");
    s.round().await;
    let spec = s.client.spec().clone();
    // The client reveals the preimage; the LSP never answers.
    s.client.fulfill_htlc(now, id, preimage).expect("fulfilled");
    while s.client.poll_action().is_some() {}
    let deadline = s.client.poll_timeout().expect("a deadline");
    assert_eq!(deadline, sub(expiry, TO_SELF_DELAY + 3));
    s.rt.mine_to(sub(deadline, 1)).await;
    s.client.handle_timeout(s.now().await);
    assert!(s.client.poll_action().is_none(), "not before the deadline");
    s.rt.mine_to(deadline).await;
    s.client.handle_timeout(s.now().await);
    let commitment = match s.client.poll_action() {
        Some(Action::Broadcast(tx)) => tx,
        other => panic!("expected the client's commitment, got {other:?}"),
    };
    let confirmed = s.rt.confirm(&commitment, None).await;
    let known = BTreeMap::from([(hash, preimage)]);
    let claims = s
        .client
        .claims_for(&commitment, &s.client_dest, feerate(), &known)
        .expect("the client's own commitment");
    let success = claims
        .iter()
        .find(|(k, _)| matches!(k, ClaimKind::HtlcSuccess { .. }))
        .expect("the HTLC success claim")
        .1
        .clone();
    let local = claims
        .iter()
        .find(|(k, _)| *k == ClaimKind::ToLocal)
        .expect("to_local")
        .1
        .clone();
    // The LSP's timeout of the same HTLC, as it would build it.
    let lsp_claims = s
        .lsp
        .claims_for(&commitment, &s.lsp_dest, feerate(), &BTreeMap::new())
        .expect("the LSP knows the client's commitment");
    let lsp_timeout = lsp_claims
        .iter()
        .find(|(k, _)| matches!(k, ClaimKind::HtlcTimeout { .. }))
        .expect("the LSP's timeout claim")
        .1
        .clone();
    let matured = add(confirmed, TO_SELF_DELAY - 1);
    assert!(matured < expiry, "the success path opens before the expiry");
    s.rt.mine_to(sub(matured, 1)).await;
    s.rt.assert_cannot_broadcast(&success, &[NON_BIP68_FINAL])
        .await;
    s.rt.assert_cannot_broadcast(&lsp_timeout, &[NON_FINAL])
        .await;
    s.rt.mine_to(matured).await;
    s.rt.assert_cannot_broadcast(&lsp_timeout, &[NON_FINAL])
        .await;
    s.rt.confirm(&success, None).await;
    s.rt.confirm(&local, None).await;
    // Past the expiry, the LSP's timeout has nothing left to spend.
    s.rt.mine_to(add(expiry, 1)).await;
    s.rt.assert_cannot_broadcast(&lsp_timeout, &[MISSING_INPUTS])
        .await;
    let got =
        paid(&s.rt, &success, &s.client_dest).await + paid(&s.rt, &local, &s.client_dest).await;
    assert_eq!(
        got + Amount::from_sat((success.vsize() + local.vsize()) as u64 * 2),
        spec.client_balance + spec.htlcs[0].amount,
        "the client holds its balance and the HTLC, less its claims' fees"
    );
}

/// (g) A commitment signed at a low fee rate is bumped through its P2A anchor: the LSP's
/// child spends the anchor and one wallet coin so that the package pays 10 sat/vB; bitcoind
/// takes the package and both confirm in the next block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commitment_is_bumped_through_its_anchor() {
    let mut s = Setup::open(17).await;
    let now = s.now().await;
    s.lsp
        .update_fee(now, FeeRate::from_sat_per_vb_u32(1))
        .expect("1 sat/vB");
    s.round().await;
    let commitment = s.lsp.latest_signed().expect("signed").clone();
    let parent_fee = signed_fee(&s, &commitment);
    assert_eq!(parent_fee, Amount::from_sat(commitment.vsize() as u64));
    // A wallet coin of the LSP.
    let coin_key = SecretKey::from_slice(&[17u8; 32]).expect("key");
    let coin_script = p2tr_of(&coin_key);
    let address = Address::from_script(&coin_script, Network::Regtest).expect("P2TR");
    let txid =
        s.rt.devnet
            .faucet(&address, Amount::from_sat(50_000))
            .await
            .expect("faucet");
    s.rt.mine(1).await;
    let funding =
        s.rt.rpc()
            .get_raw_transaction(&txid)
            .await
            .expect("rpc")
            .expect("tx");
    let vout = funding
        .output
        .iter()
        .position(|o| o.script_pubkey == coin_script)
        .expect("the coin");
    let coin = (
        OutPoint::new(txid, vout as u32),
        funding.output[vout].clone(),
    );
    let rate = FeeRate::from_sat_per_vb_u32(10);
    let child = shared::channel::anchor::build_cpfp(
        &commitment,
        parent_fee,
        coin,
        &coin_key,
        s.lsp_dest.clone(),
        rate,
        DUST,
    )
    .expect("the child builds");
    let child_fee = Amount::from_sat(50_000 + 240) - child.output[0].value;
    assert_eq!(
        parent_fee + child_fee,
        rate.fee_vb((commitment.vsize() + child.vsize()) as u64)
            .expect("fee")
    );
    let result =
        s.rt.rpc()
            .submit_package(&[commitment.clone(), child.clone()], None, None)
            .await
            .expect("submitpackage answers");
    assert!(
        result.is_success(),
        "bitcoind takes the package: {result:?}"
    );
    let height = s.rt.mine(1).await;
    for tx in [&commitment, &child] {
        let status =
            s.rt.esplora
                .get_tx_status(&tx.compute_txid())
                .await
                .expect("status");
        assert_eq!(status.block_height, Some(height.to_consensus_u32()));
    }
}
