//! The payment client against a scripted LSP built from `shared`'s own channel and leaf code,
//! over an in-memory connection: the liquidity purchase (the whole ceremony, and the resume
//! where the LSP's signatures arrive only after a dropped connection), and the join fee
//! ([`join_fee`]).

mod join_fee;
mod receive;
mod swap;

use std::collections::VecDeque;
use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
use bitcoin::{Amount, FeeRate, Transaction, Txid};
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use rand::rngs::OsRng;
use shared::auth::{AuthChallenge, Authenticated, Challenge};
use shared::channel::keys::ChannelSecrets;
use shared::channel::{Action, Channel, ChannelEvent, CommitmentSpec, Side};
use shared::leaf::{Advance, LeafEpoch, LeafSigned, LeafState, LeafStates, LiquidityOffer};
use shared::params::FactoryParams;
use shared::path::ClientPath;
use shared::pay::policy::channel_seed;
use shared::pay::{leaf_state_channel_params, ChannelFrame, ChannelId, ChannelOpen, ChannelPolicy};
use shared::testing::ceremony::test_terms;
use shared::testing::{sample_proposal, TestKeys};
use shared::types::{ClientId, FactoryId, Now};
use shared::wire::{Envelope, WireMsg};

use crate::chain::ChainError;
use crate::pay::store::{LeafChannel, MemoryPayStore};
use crate::pay::{LiquidityBought, PayClient, PayConfig, PayHandle, PayLeaf, PayStore};
use crate::session::{ChainSource, Connect, Transport, TransportError};

/// One end of an in-memory connection.
struct Pipe {
    tx: UnboundedSender<String>,
    rx: UnboundedReceiver<String>,
}

impl Transport for Pipe {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        self.tx.unbounded_send(frame).map_err(|_| TransportError {
            url: "memory".into(),
            reason: "closed".into(),
        })
    }

    async fn next(&mut self) -> Result<Option<String>, TransportError> {
        Ok(self.rx.next().await)
    }
}

/// Hands the LSP's end of every new connection to the test.
struct Connector(UnboundedSender<Pipe>);

impl Connect for Connector {
    type Transport = Pipe;

    async fn connect(&mut self) -> Result<Pipe, TransportError> {
        let (to_wallet, from_lsp) = unbounded();
        let (to_lsp, from_wallet) = unbounded();
        self.0
            .unbounded_send(Pipe {
                tx: to_wallet,
                rx: from_wallet,
            })
            .map_err(|_| TransportError {
                url: "memory".into(),
                reason: "the test ended".into(),
            })?;
        Ok(Pipe {
            tx: to_lsp,
            rx: from_lsp,
        })
    }
}

struct Chain;

impl ChainSource for Chain {
    async fn tip_height(&self) -> Result<u32, ChainError> {
        Ok(200)
    }
    async fn confirmations(&self, _: &Txid) -> Result<u32, ChainError> {
        Ok(6)
    }
    async fn transaction(&self, _: &Txid) -> Result<Option<Transaction>, ChainError> {
        Ok(None)
    }
    async fn broadcast(&self, _: &Transaction) -> Result<(), ChainError> {
        Ok(())
    }
    async fn spender(&self, _: bitcoin::OutPoint) -> Result<Option<(Txid, bool)>, ChainError> {
        Ok(None)
    }
    async fn fee_rate(&self, _: u16) -> Result<bitcoin::FeeRate, ChainError> {
        Ok(bitcoin::FeeRate::from_sat_per_vb_u32(2))
    }
}

fn now() -> Now {
    Now {
        height: Height::from_consensus(200).expect("a height"),
        unix_time: crate::platform::unix_now(),
    }
}

/// The LSP's side of one connection, with messages it read but has not used yet.
struct Lsp {
    pipe: Pipe,
    stash: VecDeque<WireMsg>,
}

impl Lsp {
    fn send(&mut self, msg: WireMsg) {
        let _ = self.pipe.tx.unbounded_send(Envelope::new(msg).encode());
    }

    async fn recv(&mut self) -> WireMsg {
        if let Some(m) = self.stash.pop_front() {
            return m;
        }
        let frame = tokio::time::timeout(Duration::from_secs(20), self.pipe.rx.next())
            .await
            .expect("the wallet answers in time")
            .expect("the wallet keeps the connection");
        Envelope::decode(&frame).expect("a valid frame").msg
    }

    /// The next message `pick` takes; others are kept for later.
    async fn expect<R>(&mut self, mut pick: impl FnMut(&WireMsg) -> Option<R>) -> R {
        let mut skipped = VecDeque::new();
        loop {
            let m = self.recv().await;
            if let Some(r) = pick(&m) {
                skipped.extend(self.stash.drain(..));
                self.stash = skipped;
                return r;
            }
            skipped.push_back(m);
        }
    }

    /// The wallet's next connection (`what` names it for the failure message), past the
    /// handshake.
    async fn accept(conns: &mut UnboundedReceiver<Pipe>, s: &Setup, what: &str) -> Lsp {
        let mut lsp = Lsp {
            pipe: conns.next().await.expect(what),
            stash: VecDeque::new(),
        };
        lsp.handshake(&s.lsp, s.lightning_node).await;
        lsp
    }

    async fn handshake(&mut self, lsp: &Keypair, node: Option<bitcoin::secp256k1::PublicKey>) {
        self.expect(|m| matches!(m, WireMsg::Hello { .. }).then_some(()))
            .await;
        let mut terms = test_terms(&lsp.public_key());
        terms.lightning_node = node;
        terms.swap_out = Some(shared::swap::SwapOutTerms {
            fee_base: Amount::from_sat(500),
            fee_ppm: 1_000,
            min: Amount::from_sat(10_000),
            max: Amount::from_sat(1_000_000),
        });
        terms.fees.liquidity_fee_ppm = 0;
        terms.min_liquidity = Amount::from_sat(1_000);
        terms.issued_at = crate::platform::unix_now() - 10;
        terms.expires_at = terms.issued_at + 3_600;
        let signed = terms.sign(&Secp256k1::new(), lsp);
        self.send(WireMsg::Welcome {
            terms: Box::new(signed),
        });
        let me = self
            .expect(|m| match m {
                WireMsg::AuthRequest(r) => Some(r.pubkey),
                _ => None,
            })
            .await;
        self.send(WireMsg::AuthChallenge(AuthChallenge {
            challenge: Challenge::random(&mut OsRng),
        }));
        self.expect(|m| matches!(m, WireMsg::AuthProof(_)).then_some(()))
            .await;
        self.send(WireMsg::Authenticated(Authenticated {
            pubkey: me,
            resumed: None,
        }));
    }

    /// The wallet's `channel_open`.
    async fn wallet_open(&mut self) -> ChannelOpen {
        self.expect(|m| match m {
            WireMsg::ChannelOpen(o) => Some((**o).clone()),
            _ => None,
        })
        .await
    }

    /// Sends the channel's frames and feeds it the wallet's, until it emits `Committed`.
    async fn round(&mut self, channel: &mut Channel, id: ChannelId, leaf: LeafEpoch) {
        loop {
            while let Some(action) = channel.poll_action() {
                match action {
                    Action::Send(msg) => self.send(WireMsg::Channel(Box::new(ChannelFrame {
                        channel: id,
                        leaf,
                        msg,
                    }))),
                    Action::Emit(ChannelEvent::Committed { .. }) => return,
                    _ => {}
                }
            }
            let frame = self
                .expect(|m| match m {
                    WireMsg::Channel(f) if f.leaf == leaf => Some((**f).clone()),
                    _ => None,
                })
                .await;
            channel
                .handle_message(now(), frame.msg, &mut OsRng)
                .expect("the wallet's frame is valid");
        }
    }
}

fn lsp_open(secret: &SecretKey, id: ChannelId, leaf: LeafEpoch) -> ChannelOpen {
    let s = ChannelSecrets::from_seed(&channel_seed(secret, id, leaf));
    ChannelOpen {
        feerate: Some(FeeRate::from_sat_per_vb_u32(1)),
        ..ChannelOpen::new(id, leaf, &s)
    }
}

struct Setup {
    path: ClientPath,
    lsp: Keypair,
    lsp_secret: SecretKey,
    leaf: PayLeaf,
    /// The Lightning node the LSP's terms name, if any.
    lightning_node: Option<bitcoin::secp256k1::PublicKey>,
}

fn setup() -> Setup {
    let keys = TestKeys::generate(4, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    let path = ClientPath::build(&proposal, ClientId(2)).expect("client 2");
    let lsp_secret = keys.secret(&proposal.lsp_key).expect("the LSP's key");
    let client = keys.secret(&path.client_key()).expect("the client's key");
    let id = ChannelId {
        factory: FactoryId(5),
        client: ClientId(2),
    };
    Setup {
        lsp: Keypair::from_secret_key(&Secp256k1::new(), &lsp_secret),
        lsp_secret,
        leaf: PayLeaf {
            channel: id,
            path: path.clone(),
            factory_secret: client,
            join_fee: Amount::ZERO,
        },
        path,
        lightning_node: None,
    }
}

/// Opens the channel on leaf state 0 (all on the LSP's side); returns the state and the LSP's
/// side of the channel.
async fn open_first_channel(lsp: &mut Lsp, s: &Setup) -> (LeafState, Channel) {
    let state0 = LeafStates::new(&s.path).latest().clone();
    let spec0 = CommitmentSpec {
        lsp_balance: state0.channel_output().value,
        client_balance: Amount::ZERO,
        htlcs: Vec::new(),
        feerate: FeeRate::from_sat_per_vb_u32(1),
    };
    let live = open_channel(lsp, s, LeafEpoch::FIRST, &state0, spec0).await;
    (state0, live)
}

/// Opens the wallet's channel on leaf state `leaf` (spec as given) and runs its round 0.
async fn open_channel(
    lsp: &mut Lsp,
    s: &Setup,
    leaf: LeafEpoch,
    state: &shared::leaf::LeafState,
    spec: CommitmentSpec,
) -> Channel {
    let id = s.leaf.channel;
    let wallet = lsp.wallet_open().await;
    assert_eq!(wallet.leaf, leaf, "the wallet opens its live leaf state");
    let policy = ChannelPolicy::for_network(bitcoin::Network::Regtest);
    let params = leaf_state_channel_params(&s.path, state, &policy).expect("params");
    let mut channel = Channel::new(
        Side::Lsp,
        params,
        s.lsp_secret,
        &channel_seed(&s.lsp_secret, id, leaf),
        wallet.peer_info(),
        spec,
    )
    .expect("the LSP's channel");
    lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
        &s.lsp_secret,
        id,
        leaf,
    ))));
    channel.start_round(&mut OsRng).expect("round 0 starts");
    lsp.round(&mut channel, id, leaf).await;
    channel
}

/// Runs the purchase on the LSP's side up to the wallet's partial signatures; returns the
/// advance with the LSP's signatures attached.
async fn sell(lsp: &mut Lsp, s: &Setup, live: &Channel, amount: Amount) -> LeafSigned {
    let id = s.leaf.channel;
    let asked = lsp
        .expect(|m| match m {
            WireMsg::LiquidityRequest(r) => Some(r.amount),
            _ => None,
        })
        .await;
    assert_eq!(asked, amount);
    let first = LeafStates::new(&s.path);
    let mut advance = Advance::new(&s.path, first.latest(), amount).expect("for sale");
    let (secs, nonces) = advance.nonces(&s.lsp_secret, &mut OsRng);
    lsp.send(WireMsg::LiquidityOffer(Box::new(LiquidityOffer {
        channel: id,
        leaf: LeafEpoch(1),
        amount,
        price: Amount::ZERO,
        open: lsp_open(&s.lsp_secret, id, LeafEpoch(1)),
        nonces: nonces.clone(),
    })));
    let accept = lsp
        .expect(|m| match m {
            WireMsg::LiquidityAccept(a) => Some((**a).clone()),
            _ => None,
        })
        .await;
    assert_eq!(accept.leaf, LeafEpoch(1));
    assert_eq!(accept.open.leaf, LeafEpoch(1));
    let policy = ChannelPolicy::for_network(bitcoin::Network::Regtest);
    let params = leaf_state_channel_params(&s.path, &advance.state, &policy).expect("params");
    let live_spec = live.spec().clone();
    let spec = CommitmentSpec {
        lsp_balance: live_spec.lsp_balance + amount,
        client_balance: live_spec.client_balance,
        htlcs: Vec::new(),
        feerate: live_spec.feerate,
    };
    let mut new = Channel::new(
        Side::Lsp,
        params,
        s.lsp_secret,
        &channel_seed(&s.lsp_secret, id, LeafEpoch(1)),
        accept.open.peer_info(),
        spec,
    )
    .expect("the new channel");
    new.start_round(&mut OsRng).expect("round 0 starts");
    lsp.round(&mut new, id, LeafEpoch(1)).await;
    let partials = lsp
        .expect(|m| match m {
            WireMsg::LeafPartials(p) => Some((**p).clone()),
            _ => None,
        })
        .await;
    let client = s.path.client_key();
    let signatures = advance
        .complete(
            &s.lsp_secret,
            secs,
            &nonces,
            &client,
            &partials.nonces,
            &partials.partials,
        )
        .expect("the wallet's partial signatures verify");
    LeafSigned {
        channel: id,
        leaf: LeafEpoch(1),
        signatures,
    }
}

/// Runs the client and `script` together on one thread.
async fn with_client<F: std::future::Future<Output = ()>>(
    s: &Setup,
    store: MemoryPayStore,
    script: impl FnOnce(PayHandle, UnboundedReceiver<Pipe>) -> F,
) {
    let (conns_tx, conns) = unbounded();
    let identity = Keypair::new(&Secp256k1::new(), &mut OsRng);
    let mut config = PayConfig::new(bitcoin::Network::Regtest, identity, vec![s.leaf.clone()]);
    config.reconnect_delay = Duration::from_millis(50);
    let (client, handle) = PayClient::new(config, Connector(conns_tx), store, Chain);
    let stopper = handle.clone();
    let run = async move {
        client.run().await.expect("the client runs");
    };
    let test = async move {
        script(handle, conns).await;
        stopper.stop();
    };
    futures::join!(run, test);
}

/// The LSP sells `amount`, signs the new leaf state and re-opens the channel on it.
async fn sell_and_reopen(lsp: &mut Lsp, s: &Setup, live: &Channel, amount: Amount) {
    let signed = sell(lsp, s, live, amount).await;
    lsp.send(WireMsg::LeafSigned(Box::new(signed)));
    assert_eq!(lsp.wallet_open().await.leaf, LeafEpoch(1));
    lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
        &s.lsp_secret,
        s.leaf.channel,
        LeafEpoch(1),
    ))));
}

/// The wallet buying `amount` of liquidity, as a future of its own.
fn buy(
    handle: &PayHandle,
    amount: Amount,
) -> impl std::future::Future<Output = Result<LiquidityBought, crate::pay::PayError>> {
    let handle = handle.clone();
    async move { handle.buy_liquidity(amount).await }
}

/// The LSP drops the purchase on the wallet's channel, saying `why`.
fn abandon(lsp: &mut Lsp, s: &Setup, why: &str) {
    lsp.send(WireMsg::refusal(
        shared::wire::ErrorCode::Unexpected,
        Some(shared::wire::ErrorAbout::Liquidity {
            channel: s.leaf.channel,
        }),
        format!("liquidity purchase abandoned: {why}"),
    ));
}

fn bought(b: &Result<LiquidityBought, crate::pay::PayError>) -> &LiquidityBought {
    b.as_ref().expect("the purchase succeeded")
}

#[tokio::test]
async fn a_purchase_moves_the_channel_to_the_next_leaf_state() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let amount = Amount::from_sat(5_000);
    let checked = store.clone();
    with_client(s, store, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (state0, live) = open_first_channel(&mut lsp, s).await;
        let value = state0.channel_output().value;
        let quote = handle.liquidity_quote(amount).await.expect("a quote");
        assert_eq!(quote.refusal, None, "{quote:?}");
        assert_eq!(quote.price, Amount::ZERO);
        let buying = {
            let handle = handle.clone();
            async move { handle.buy_liquidity(amount).await }
        };
        let lsp_side = async {
            let signed = sell(&mut lsp, s, &live, amount).await;
            // Frozen while the partial signatures are out.
            let snap = handle.snapshot().await.expect("snapshot");
            assert_eq!(
                snap.channels[0].advance,
                Some(crate::pay::LiquidityStep::Signing)
            );
            lsp.send(WireMsg::LeafSigned(Box::new(signed)));
            let reopen = lsp.wallet_open().await;
            assert_eq!(
                reopen.leaf,
                LeafEpoch(1),
                "the wallet re-opens on the new state"
            );
            lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
                &s.lsp_secret,
                s.leaf.channel,
                LeafEpoch(1),
            ))));
        };
        let (result, ()) = futures::join!(buying, lsp_side);
        let b = bought(&result);
        assert_eq!((b.leaf, b.amount), (LeafEpoch(1), amount));
        let snap = handle.snapshot().await.expect("snapshot");
        let c = &snap.channels[0];
        assert_eq!(c.leaf, LeafEpoch(1));
        assert_eq!(c.capacity, value + amount);
        assert_eq!(c.advance, None);
    })
    .await;
    let stored = checked.clone().load().await.expect("loaded");
    let record = &stored.leaves[&s.leaf.channel];
    assert_eq!(record.states.latest().epoch, LeafEpoch(1));
    assert!(record.states.latest().node.signature.is_some());
    assert!(stored.advances.is_empty(), "the pending advance is gone");
    let key = LeafChannel {
        channel: s.leaf.channel,
        leaf: LeafEpoch(1),
    };
    assert!(!stored.channels[&key].1.is_empty(), "the new channel's log");

    // A restarted wallet opens the new state's channel, rebuilt from what it stored.
    with_client(s, checked, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        assert_eq!(lsp.wallet_open().await.leaf, LeafEpoch(1));
        lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
            &s.lsp_secret,
            s.leaf.channel,
            LeafEpoch(1),
        ))));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let snap = handle.snapshot().await.expect("snapshot");
            if let Some(c) = snap.channels.first().filter(|c| c.ready) {
                assert_eq!(c.leaf, LeafEpoch(1));
                assert_eq!(c.balance, Amount::ZERO);
                assert!(c.inbound > amount, "{c:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "reopened: {snap:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn signatures_arriving_after_a_dropped_connection_complete_the_purchase() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let amount = Amount::from_sat(5_000);
    let checked = store.clone();
    with_client(s, store, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (state0, live) = open_first_channel(&mut lsp, s).await;
        let value = state0.channel_output().value;
        let buying = {
            let handle = handle.clone();
            async move { handle.buy_liquidity(amount).await }
        };
        let lsp_side = async {
            let signed = sell(&mut lsp, s, &live, amount).await;
            // The connection drops before the signatures go out.
            drop(lsp);
            let mut lsp = Lsp::accept(&mut conns, s, "a reconnection").await;
            let open = lsp.wallet_open().await;
            assert_eq!(open.leaf, LeafEpoch::FIRST, "still on the old state");
            // The LSP is past it: it answers with the stored signatures, and nothing else.
            lsp.send(WireMsg::LeafSigned(Box::new(signed)));
            let reopen = lsp.wallet_open().await;
            assert_eq!(reopen.leaf, LeafEpoch(1));
            lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
                &s.lsp_secret,
                s.leaf.channel,
                LeafEpoch(1),
            ))));
            lsp
        };
        let (result, _lsp) = futures::join!(buying, lsp_side);
        assert_eq!(bought(&result).leaf, LeafEpoch(1));
        let snap = handle.snapshot().await.expect("snapshot");
        assert_eq!(snap.channels[0].leaf, LeafEpoch(1));
        assert_eq!(snap.channels[0].capacity, value + amount);
    })
    .await;
    let stored = checked.clone().load().await.expect("loaded");
    assert_eq!(
        stored.leaves[&s.leaf.channel].states.latest().epoch,
        LeafEpoch(1)
    );
    assert!(stored.advances.is_empty());
}

#[tokio::test]
async fn a_purchase_dropped_after_the_partial_signatures_is_asked_again_and_completes() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let amount = Amount::from_sat(5_000);
    let checked = store.clone();
    with_client(s, store, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (_, live) = open_first_channel(&mut lsp, s).await;
        let buying = {
            let handle = handle.clone();
            async move { handle.buy_liquidity(amount).await }
        };
        let lsp_side = async {
            // The LSP never signs this attempt: the connection drops first.
            let _forgotten = sell(&mut lsp, s, &live, amount).await;
            drop(lsp);
            let mut lsp = Lsp::accept(&mut conns, s, "a reconnection").await;
            assert_eq!(lsp.wallet_open().await.leaf, LeafEpoch::FIRST);
            // Not past the state: it re-opens the live channel, and the wallet asks again.
            lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
                &s.lsp_secret,
                s.leaf.channel,
                LeafEpoch::FIRST,
            ))));
            let snap = handle.snapshot().await.expect("snapshot");
            assert_eq!(
                snap.channels[0].advance,
                Some(crate::pay::LiquidityStep::Signing),
                "still frozen"
            );
            sell_and_reopen(&mut lsp, s, &live, amount).await;
            lsp
        };
        let (result, _lsp) = futures::join!(buying, lsp_side);
        assert_eq!(bought(&result).leaf, LeafEpoch(1));
    })
    .await;
    let stored = checked.clone().load().await.expect("loaded");
    let record = &stored.leaves[&s.leaf.channel];
    assert_eq!(record.states.latest().epoch, LeafEpoch(1));
    // The second attempt's changes follow the first's in the new channel's log.
    let key = LeafChannel {
        channel: s.leaf.channel,
        leaf: LeafEpoch(1),
    };
    let attempts = &record.attempts[&LeafEpoch(1)];
    assert_eq!(attempts.len(), 2, "both attempts are recorded");
    assert!(attempts.iter().all(|a| a.amount == amount));
    let from = record.openings[&LeafEpoch(1)].log_from;
    assert_eq!(
        from, attempts[1].log_from,
        "the channel opened by the second"
    );
    assert!(from > 0 && (from as usize) < stored.channels[&key].1.len());
}

#[tokio::test]
async fn a_purchase_abandoned_before_its_signatures_left_ends_and_the_next_works() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let amount = Amount::from_sat(5_000);
    with_client(s, store, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (_, live) = open_first_channel(&mut lsp, s).await;
        let buying = buy(&handle, amount);
        let lsp_side = async {
            lsp.expect(|m| matches!(m, WireMsg::LiquidityRequest(_)).then_some(()))
                .await;
            let first = LeafStates::new(&s.path);
            let advance = Advance::new(&s.path, first.latest(), amount).expect("for sale");
            let (_, nonces) = advance.nonces(&s.lsp_secret, &mut OsRng);
            lsp.send(WireMsg::LiquidityOffer(Box::new(LiquidityOffer {
                channel: s.leaf.channel,
                leaf: LeafEpoch(1),
                amount,
                price: Amount::ZERO,
                open: lsp_open(&s.lsp_secret, s.leaf.channel, LeafEpoch(1)),
                nonces,
            })));
            lsp.expect(|m| matches!(m, WireMsg::LiquidityAccept(_)).then_some(()))
                .await;
            // The wallet accepted and opened the new channel; its partial signatures have not
            // left (round 0 has not run). The provider drops the purchase.
            abandon(&mut lsp, s, "the channel changed; ask again");
        };
        let (result, ()) = futures::join!(
            tokio::time::timeout(Duration::from_secs(10), buying),
            lsp_side
        );
        let refused = result
            .expect("the purchase ends instead of waiting forever")
            .expect_err("nothing was bought");
        assert!(refused.to_string().contains("ask again"), "{refused}");
        let snap = handle.snapshot().await.expect("snapshot");
        assert_eq!(snap.channels[0].advance, None, "not frozen");
        assert_eq!(snap.channels[0].leaf, LeafEpoch::FIRST);

        // Asked again, the purchase completes.
        let buying = buy(&handle, amount);
        let lsp_side = async {
            sell_and_reopen(&mut lsp, s, &live, amount).await;
        };
        let (result, ()) = futures::join!(buying, lsp_side);
        assert_eq!(bought(&result).leaf, LeafEpoch(1));
    })
    .await;
}

#[tokio::test]
async fn a_signed_purchase_the_provider_abandons_is_asked_again_on_the_same_connection() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let amount = Amount::from_sat(5_000);
    with_client(s, store, |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (_, live) = open_first_channel(&mut lsp, s).await;
        let buying = buy(&handle, amount);
        let lsp_side = async {
            // The partial signatures arrive, and the provider drops the purchase anyway.
            let _dropped = sell(&mut lsp, s, &live, amount).await;
            abandon(&mut lsp, s, "it took too long");
            // The wallet stays frozen (the provider may hold the new state) and asks again
            // by itself, without a new connection: `sell` waits for that request.
            sell_and_reopen(&mut lsp, s, &live, amount).await;
        };
        let (result, lsp_done) = futures::join!(
            tokio::time::timeout(Duration::from_secs(20), buying),
            tokio::time::timeout(Duration::from_secs(20), lsp_side),
        );
        lsp_done.expect("the wallet asked again by itself");
        let result = result.expect("the purchase completes");
        assert_eq!(bought(&result).leaf, LeafEpoch(1));
    })
    .await;
}

#[tokio::test]
async fn a_wallet_restarted_with_its_partial_signatures_out_takes_the_stored_signatures() {
    let s = &setup();
    let store = MemoryPayStore::default();
    let amount = Amount::from_sat(5_000);
    let signed = std::rc::Rc::new(std::cell::RefCell::new(None));
    let keep = signed.clone();
    with_client(s, store.clone(), |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let (_, live) = open_first_channel(&mut lsp, s).await;
        let buying = {
            let handle = handle.clone();
            async move { handle.buy_liquidity(amount).await }
        };
        let lsp_side = async {
            // The wallet stops (the tab closes) once its partial signatures are out.
            *keep.borrow_mut() = Some(sell(&mut lsp, s, &live, amount).await);
            handle.stop();
        };
        let (result, ()) = futures::join!(buying, lsp_side);
        assert!(result.is_err(), "the purchase did not end before the stop");
    })
    .await;
    let stored = store.clone().load().await.expect("loaded");
    assert_eq!(stored.advances[&s.leaf.channel].leaf, LeafEpoch(1));

    let signed = signed.borrow_mut().take().expect("the LSP signed");
    with_client(s, store.clone(), |handle, mut conns| async move {
        let mut lsp = Lsp::accept(&mut conns, s, "a connection").await;
        let snap = handle.snapshot().await.expect("snapshot");
        assert!(snap.channels.is_empty(), "not open yet: {snap:?}");
        assert_eq!(lsp.wallet_open().await.leaf, LeafEpoch::FIRST);
        lsp.send(WireMsg::LeafSigned(Box::new(signed)));
        assert_eq!(lsp.wallet_open().await.leaf, LeafEpoch(1));
        lsp.send(WireMsg::ChannelOpen(Box::new(lsp_open(
            &s.lsp_secret,
            s.leaf.channel,
            LeafEpoch(1),
        ))));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let snap = handle.snapshot().await.expect("snapshot");
            if let Some(c) = snap.channels.first().filter(|c| c.ready) {
                assert_eq!((c.leaf, c.advance), (LeafEpoch(1), None));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "reopened: {snap:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let stored = store.clone().load().await.expect("loaded");
    assert!(stored.advances.is_empty());
    assert_eq!(
        stored.leaves[&s.leaf.channel].states.latest().epoch,
        LeafEpoch(1)
    );
}
