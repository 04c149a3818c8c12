//! Both sides of a leaf advance, wired to each other with no I/O: the order of stores and
//! sends, refusals, a dropped connection and a restart, the clock.

use bitcoin::{Amount, FeeRate};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::ceremony::Deadline;
use crate::channel::keys::ChannelSecrets;
use crate::leaf::{LeafPartials, LeafSigned, LeafStates, LiquidityAccept, LiquidityOffer};
use crate::params::FactoryParams;
use crate::path::ClientPath;
use crate::testing::{sample_proposal, TestKeys};
use crate::types::{ClientId, FactoryId};

const AMOUNT: Amount = Amount::from_sat(2_500);
const PRICE: Amount = Amount::from_sat(100);

struct Fixture {
    path: ClientPath,
    keys: TestKeys,
    id: ChannelId,
    live: CommitmentSpec,
    lsp_states: LeafStates,
    client_states: LeafStates,
    rng: StdRng,
}

fn fixture() -> Fixture {
    let keys = TestKeys::generate(4, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    let path = ClientPath::build(&proposal, ClientId(2)).unwrap();
    let states = LeafStates::new(&path);
    let value = states.latest().channel_output().value;
    let live = CommitmentSpec {
        lsp_balance: value - Amount::from_sat(5_000),
        client_balance: Amount::from_sat(5_000),
        htlcs: Vec::new(),
        feerate: FeeRate::from_sat_per_vb_u32(1),
    };
    Fixture {
        id: ChannelId {
            factory: FactoryId(1),
            client: ClientId(2),
        },
        path,
        keys,
        live,
        lsp_states: states.clone(),
        client_states: states,
        rng: StdRng::seed_from_u64(7),
    }
}

fn open(f: &Fixture, seed: u8) -> ChannelOpen {
    ChannelOpen::new(f.id, LeafEpoch(1), &ChannelSecrets::from_seed(&[seed; 32]))
}

fn lsp_offer(f: &mut Fixture, now: u64) -> LspAdvance {
    let inputs = OfferInputs {
        path: &f.path,
        current: f.lsp_states.latest(),
        amount: AMOUNT,
        price: PRICE,
        live: &f.live,
        secret: f.keys.lsp,
        open: open(f, 1),
        now,
        limit: 30,
    };
    LspAdvance::offer(f.id, inputs, &mut f.rng).expect("offer")
}

fn context(f: &Fixture) -> OfferContext<'_> {
    OfferContext {
        path: &f.path,
        states: &f.client_states,
        expected: Expected {
            live_leaf: LeafEpoch(0),
            amount: AMOUNT,
            price: PRICE,
            live: f.live.clone(),
            quiescent: true,
        },
        open: open(f, 2),
        stored_peer: None,
    }
}

fn drain<C>(poll: impl FnMut() -> Option<AdvanceAction<C>>) -> Vec<AdvanceAction<C>> {
    std::iter::from_fn(poll).collect()
}

/// The shape of an action list, for comparing orders.
fn kinds<C: core::fmt::Debug>(actions: &[AdvanceAction<C>]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            AdvanceAction::Send(m) => {
                let json = serde_json::to_value(m).expect("encodes");
                format!("send {}", json["type"].as_str().unwrap_or("?"))
            }
            AdvanceAction::Persist(c) => {
                let c = format!("{c:?}");
                format!("persist {}", c.split([' ', '{']).next().unwrap_or(""))
            }
            AdvanceAction::OpenChannel(_) => "open channel".into(),
            AdvanceAction::Emit(AdvanceEvent::Step(step)) => format!("emit {step:?}"),
            AdvanceAction::Emit(AdvanceEvent::Done { .. }) => "emit done".into(),
        })
        .collect()
}

fn sent_msg<C>(actions: &[AdvanceAction<C>]) -> WireMsg {
    actions
        .iter()
        .find_map(|a| match a {
            AdvanceAction::Send(m) => Some(m.clone()),
            _ => None,
        })
        .expect("a message")
}

fn offer_of(msg: WireMsg) -> LiquidityOffer {
    match msg {
        WireMsg::LiquidityOffer(o) => *o,
        other => panic!("not an offer: {other:?}"),
    }
}

/// Runs a purchase up to the client's partial signatures; returns both machines and them.
/// A client that asked (its request sent) and the LSP's offer in answer, made at time 1,000.
fn asked_and_offered(f: &mut Fixture) -> (ClientAdvance, LspAdvance, LiquidityOffer) {
    let mut client = ClientAdvance::ask(f.id, AMOUNT, PRICE);
    drain(|| client.poll_action());
    let mut lsp = lsp_offer(f, 1_000);
    let offer = offer_of(sent_msg(&drain(|| lsp.poll_action())));
    (client, lsp, offer)
}

fn up_to_partials(f: &mut Fixture) -> (LspAdvance, ClientAdvance, LeafPartials) {
    let mut client = ClientAdvance::ask(f.id, AMOUNT, PRICE);
    let asked = drain(|| client.poll_action());
    assert_eq!(kinds(&asked), ["send liquidity_request", "emit Asking"]);
    let mut lsp = lsp_offer(f, 1_000);
    let offer = offer_of(sent_msg(&drain(|| lsp.poll_action())));
    client
        .handle_offer(&offer, context(f))
        .expect("a good offer");
    let accepted = drain(|| client.poll_action());
    assert_eq!(
        kinds(&accepted),
        [
            "persist Attempt",
            "open channel",
            "send liquidity_accept",
            "emit Opening"
        ],
        "the attempt is stored before the wallet's side of the channel leaves"
    );
    let WireMsg::LiquidityAccept(accept) = sent_msg(&accepted) else {
        panic!("an accept")
    };
    lsp.handle_accept(&accept).expect("accept");
    let opening = drain(|| lsp.poll_action());
    assert_eq!(kinds(&opening), ["persist Attempt", "open channel"]);
    let (AdvanceAction::OpenChannel(a), AdvanceAction::OpenChannel(b)) =
        (&accepted[1], &opening[1])
    else {
        panic!("both open the channel")
    };
    assert_eq!(a.opening, b.opening, "both open it with the same balances");
    assert_eq!(a.opening.client_balance, f.live.client_balance - PRICE);

    lsp.handle_committed();
    let secret = f.keys.clients[2];
    client
        .handle_committed(&f.client_states, &secret, &mut f.rng)
        .expect("sign");
    let signing = drain(|| client.poll_action());
    assert_eq!(
        kinds(&signing),
        ["persist Signing", "send leaf_partials", "emit Signing"],
        "the signing record is stored before the partial signatures leave"
    );
    if let AdvanceAction::Persist(ClientChange::Signing { states, .. }) = &signing[0] {
        f.client_states = (**states).clone();
    }
    assert!(client.sent().is_some());
    let WireMsg::LeafPartials(partials) = sent_msg(&signing) else {
        panic!("partials")
    };
    (lsp, client, *partials)
}

/// The LSP completes with `partials`; returns the `leaf_signed` it sends.
fn lsp_signs(lsp: &mut LspAdvance, partials: &LeafPartials, f: &Fixture) -> LeafSigned {
    lsp.handle_partials(partials, &f.lsp_states)
        .expect("good partials");
    match sent_msg(&drain(|| lsp.poll_action())) {
        WireMsg::LeafSigned(signed) => *signed,
        other => panic!("not signatures: {other:?}"),
    }
}

#[test]
fn an_advance_runs_in_order_and_each_side_stores_before_it_sends() {
    let mut f = fixture();
    let (mut lsp, mut client, partials) = up_to_partials(&mut f);
    lsp.handle_partials(&partials, &f.lsp_states)
        .expect("good partials");
    let sold = drain(|| lsp.poll_action());
    assert_eq!(
        kinds(&sold),
        ["persist Sold", "send leaf_signed", "emit done"],
        "the sale is stored before the signatures leave"
    );
    let AdvanceAction::Persist(LspChange::Sold { states, .. }) = &sold[0] else {
        panic!("sold")
    };
    let WireMsg::LeafSigned(signed) = sent_msg(&sold) else {
        panic!("signed")
    };
    client
        .handle_signed(&signed, &f.path, &f.client_states)
        .expect("good signatures");
    let advanced = drain(|| client.poll_action());
    assert_eq!(kinds(&advanced), ["persist Advanced", "emit done"]);
    let AdvanceAction::Persist(ClientChange::Advanced {
        states: client_states,
        ..
    }) = &advanced[0]
    else {
        panic!("advanced")
    };
    assert_eq!(
        client_states.latest(),
        states.latest(),
        "both hold the same state"
    );
    assert_eq!(states.latest().epoch, LeafEpoch(1));
    assert_eq!(states.latest().sold, AMOUNT);
    assert!(client.is_done() && lsp.is_done());
    assert_eq!(lsp.poll_timeout(), None);
}

#[test]
fn out_of_order_and_bad_inputs_are_refused() {
    let mut f = fixture();
    // Partial signatures before the new channel's round 0 is done.
    let (mut lsp, _, partials) = up_to_partials(&mut f);
    let mut early = lsp_offer(&mut f, 1_000);
    drain(|| early.poll_action());
    assert!(matches!(
        early.handle_partials(&partials, &f.lsp_states),
        Err(FlowError::OutOfOrder(_))
    ));
    // A bad partial signature.
    let mut bad = partials.clone();
    bad.partials.swap(0, 1);
    assert!(matches!(
        lsp.handle_partials(&bad, &f.lsp_states),
        Err(FlowError::Advance(_))
    ));
    assert!(lsp.poll_action().is_none(), "nothing stored, nothing sent");
    assert!(!lsp.is_done() && lsp.poll_timeout().is_none(), "it ended");
    // An offer at another price than the terms'.
    let (mut client, _lsp, mut offer) = asked_and_offered(&mut f);
    offer.price = PRICE + Amount::ONE_SAT;
    assert!(matches!(
        client.handle_offer(&offer, context(&f)),
        Err(FlowError::Offer(OfferError::WrongPrice { .. }))
    ));
    assert!(client.ends_on_refusal());
    // An accept for another leaf state.
    let mut other = lsp_offer(&mut f, 1);
    let offer = offer_of(sent_msg(&drain(|| other.poll_action())));
    let accept = LiquidityAccept {
        channel: f.id,
        leaf: LeafEpoch(2),
        open: offer.open,
    };
    assert!(lsp.handle_accept(&accept).is_err());
}

#[test]
fn a_purchase_whose_signatures_left_survives_a_dropped_connection_and_a_restart() {
    let mut f = fixture();
    // Dropped before the signatures left: it ends, nothing bought.
    let mut early = ClientAdvance::ask(f.id, AMOUNT, PRICE);
    assert!(early.handle_disconnected().is_err());

    let (mut lsp, mut client, partials) = up_to_partials(&mut f);
    assert!(client.handle_disconnected().is_ok(), "it waits");
    assert!(!client.ends_on_refusal());
    let sent = client.sent().cloned().expect("stored");
    // The LSP got the partials and signed before the connection went.
    let signed = lsp_signs(&mut lsp, &partials, &f);
    // The wallet restarts with the stored purchase, asks again once connected, and the
    // signatures the LSP sends again complete it with the advance rebuilt from the path.
    let mut resumed = ClientAdvance::resume(f.id, sent);
    assert_eq!(resumed.step(), AdvanceStep::Signing);
    assert!(drain(|| resumed.poll_action()).is_empty());
    resumed.handle_connected();
    resumed.handle_connected();
    assert_eq!(
        kinds(&drain(|| resumed.poll_action())),
        ["send liquidity_request"],
        "asked again once per connection"
    );
    resumed
        .handle_signed(&signed, &f.path, &f.client_states)
        .expect("completes");
    assert_eq!(
        kinds(&drain(|| resumed.poll_action()))[0],
        "persist Advanced"
    );
    // Forged signatures are refused.
    let mut again = ClientAdvance::resume(f.id, resumed.sent().cloned().expect("sent"));
    let mut forged = signed.clone();
    forged.signatures.swap(0, 1);
    assert!(again
        .handle_signed(&forged, &f.path, &f.client_states)
        .is_err());
}

#[test]
fn an_advance_past_its_deadline_ends() {
    let mut f = fixture();
    let mut lsp = lsp_offer(&mut f, 1_000);
    // Thirty seconds are allowed; the deadline is the first second past them.
    assert_eq!(lsp.poll_timeout(), Some(Deadline::UnixTime(1_031)));
    assert_eq!(lsp.handle_timeout(1_030), Ok(()));
    assert_eq!(lsp.handle_timeout(1_031), Err(FlowError::TimedOut));
    assert_eq!(lsp.poll_timeout(), None, "it ended");
}

#[test]
fn an_offer_again_for_a_purchase_being_signed_must_be_the_same_one() {
    let mut f = fixture();
    let (_, mut client, _) = up_to_partials(&mut f);
    client.handle_disconnected().expect("it waits");
    client.handle_connected();
    assert_eq!(
        kinds(&drain(|| client.poll_action())),
        ["send liquidity_request"]
    );
    // The same purchase again: no "opening" step shown (the wallet is still signing), the
    // attempt stored before the accept, and on commitment 0 the purchase stored before the
    // partial signatures.
    let mut lsp = lsp_offer(&mut f, 2_000);
    let offer = offer_of(sent_msg(&drain(|| lsp.poll_action())));
    client
        .handle_offer(&offer, context(&f))
        .expect("the same purchase");
    assert_eq!(
        kinds(&drain(|| client.poll_action())),
        ["persist Attempt", "open channel", "send liquidity_accept"]
    );
    assert_eq!(client.step(), AdvanceStep::Signing);
    let secret = f.keys.clients[2];
    client
        .handle_committed(&f.client_states, &secret, &mut f.rng)
        .expect("signs again: the same state");
    assert_eq!(
        kinds(&drain(|| client.poll_action())),
        ["persist Signing", "send leaf_partials", "emit Signing"]
    );
    // Another amount is not the purchase being signed; a refusal does not end it.
    client.handle_disconnected().expect("it waits");
    let mut other = offer.clone();
    other.amount = AMOUNT + Amount::ONE_SAT;
    let mut ctx = context(&f);
    ctx.expected.amount = other.amount;
    assert!(matches!(
        client.handle_offer(&other, ctx),
        Err(FlowError::Offer(OfferError::NotTheSigned))
    ));
    assert!(!client.ends_on_refusal());
    assert!(client.poll_action().is_none());
}

#[test]
fn a_new_channel_with_other_keys_than_stored_is_refused_before_anything_is_stored() {
    let mut f = fixture();
    let (mut client, _lsp, offer) = asked_and_offered(&mut f);
    let mut ctx = context(&f);
    ctx.stored_peer = Some(open(&f, 9));
    assert_eq!(
        client.handle_offer(&offer, ctx),
        Err(FlowError::Offer(OfferError::OtherKeys))
    );
    assert!(client.poll_action().is_none(), "no attempt stored");
    // A busy channel and a price above the balance are refused too.
    let mut ctx = context(&f);
    ctx.expected.quiescent = false;
    assert_eq!(
        client.handle_offer(&offer, ctx),
        Err(FlowError::Offer(OfferError::Busy))
    );
    let mut ctx = context(&f);
    ctx.expected.live.client_balance = PRICE - Amount::ONE_SAT;
    assert!(matches!(
        client.handle_offer(&offer, ctx),
        Err(FlowError::Offer(OfferError::Unaffordable { .. }))
    ));
}

#[test]
fn a_failed_action_drops_what_was_queued_after_it() {
    let mut f = fixture();
    let (mut client, _lsp, offer) = asked_and_offered(&mut f);
    client.handle_offer(&offer, context(&f)).expect("offer");
    // The attempt could not be stored: the accept must not leave.
    assert!(matches!(
        client.poll_action(),
        Some(AdvanceAction::Persist(ClientChange::Attempt { .. }))
    ));
    client.handle_failed();
    assert!(client.poll_action().is_none());
    assert!(client.new_state().is_none());
    // The LSP refuses a second accept, and partials twice.
    let (mut lsp, _, partials) = up_to_partials(&mut f);
    let accept = LiquidityAccept {
        channel: f.id,
        leaf: LeafEpoch(1),
        open: open(&f, 2),
    };
    assert!(lsp.handle_accept(&accept).is_err(), "accepted already");
    lsp.handle_partials(&partials, &f.lsp_states)
        .expect("signed");
    assert!(lsp.handle_partials(&partials, &f.lsp_states).is_err());
}

#[test]
fn signatures_for_anything_else_are_ignored_and_a_double_sign_is_refused() {
    let mut f = fixture();
    let (mut lsp, mut client, partials) = up_to_partials(&mut f);
    let signed = lsp_signs(&mut lsp, &partials, &f);
    let mut other = signed.clone();
    other.leaf = LeafEpoch(2);
    client
        .handle_signed(&other, &f.path, &f.client_states)
        .expect("ignored");
    assert!(client.poll_action().is_none());
    client
        .handle_signed(&signed, &f.path, &f.client_states)
        .expect("done");
    drain(|| client.poll_action());
    client
        .handle_signed(&signed, &f.path, &f.client_states)
        .expect("ignored once done");
    assert!(client.poll_action().is_none());

    // A record that agreed to another state at leaf state 1 refuses to sign this one.
    let mut g = fixture();
    let conflicting = g
        .client_states
        .latest()
        .next(&g.path, AMOUNT + Amount::ONE_SAT)
        .expect("state");
    g.client_states
        .record_signing(&conflicting)
        .expect("record");
    let mut client = ClientAdvance::ask(g.id, AMOUNT, PRICE);
    drain(|| client.poll_action());
    let mut lsp = lsp_offer(&mut g, 1_000);
    let offer = offer_of(sent_msg(&drain(|| lsp.poll_action())));
    client.handle_offer(&offer, context(&g)).expect("offer");
    drain(|| client.poll_action());
    let secret = g.keys.clients[2];
    assert!(matches!(
        client.handle_committed(&g.client_states, &secret, &mut g.rng),
        Err(FlowError::Guard(_))
    ));
    assert!(client.poll_action().is_none(), "nothing stored or sent");
    assert!(client.sent().is_none());
}
