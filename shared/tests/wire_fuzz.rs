//! Fuzzing the wire decoder with proptest: random bytes, and valid frames of every message the
//! LSP and wallets exchange (one of each, checked to cover every `WireMsg` variant) cut, spliced
//! and edited at random. Decoding never panics, never accepts an oversized frame, and anything it
//! accepts re-encodes to a frame that decodes to the same message. Proposals and terms that
//! survive decoding go on through the checks a wallet runs on them, which must not panic either.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{schnorr, Keypair, Secp256k1, SecretKey};
use bitcoin::Amount;
use proptest::prelude::*;
use shared::auth::{AuthChallenge, AuthProof, AuthRequest, Authenticated, Challenge};
use shared::ceremony::{
    Aborted, Excluded, ExclusionReason, JoinAccepted, JoinRejected, JoinRequest, ProposalBody,
    ProposalPayload, Propose, Quote, Reason, Refuse, Round,
};
use shared::channel::keys::ChannelSecrets;
use shared::channel::{ChannelMsg, Update, UpdateMsg};
use shared::leaf::{
    LeafEpoch, LeafPartials, LeafSigned, LiquidityAccept, LiquidityOffer, LiquidityRequest,
};
use shared::lifecycle::{FactoryNotice, KeyRelease, KeyReleased, Life, Stage};
use shared::musig::{PartialSig, PubNonce};
use shared::params::FactoryParams;
use shared::pay::{
    ChannelClosed, ChannelFrame, ChannelId, ChannelOpen, FaucetRequest, InvoiceRegister,
    InvoiceRegistered, PayOutcome, PayRequest, PayResult, RouteAnswer, RouteQuery,
};
use shared::terms::TermsBody;
use shared::testing::ceremony::{msg_type, Net};
use shared::testing::{sample_proposal, TestKeys};
use shared::tree::{FactoryProposal, FactoryTree};
use shared::types::{ClientId, FactoryId, SessionId};
use shared::wire::{DecodeError, Envelope, ErrorAbout, ErrorCode, WireMsg, MAX_FRAME_BYTES};

/// Every message either side may send, one of each: a whole simulated creation ceremony
/// captured in flight, and the rest built from real keys, nonces and signatures.
fn every_message() -> Vec<WireMsg> {
    let secp = Secp256k1::new();
    let lsp = Keypair::from_secret_key(&secp, &SecretKey::from_slice(&[7; 32]).unwrap());
    let terms = TermsBody::example(lsp.x_only_public_key().0, 1_700_000_000, 1_800_000_000);
    let keys = TestKeys::generate(4, 1);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 1);
    let join = JoinRequest {
        pubkey: keys.client_pubkey(0),
        channel: Amount::from_sat(20_000),
        liquidity: Amount::from_sat(30_000),
    };
    let quote = Quote::for_request(&terms, &join).expect("a quote");

    // A ceremony of two, every message in flight kept.
    let seen: Rc<RefCell<Vec<WireMsg>>> = Rc::default();
    let mut net = Net::new(2, 7);
    let (a, b) = (seen.clone(), seen.clone());
    net.to_lsp = Some(Box::new(move |_, m| {
        a.borrow_mut().push(m.clone());
        true
    }));
    net.to_client = Some(Box::new(move |_, m| {
        b.borrow_mut().push(m.clone());
        true
    }));
    net.start().expect("the ceremony starts");
    net.run();
    let ceremony = seen.borrow().clone();
    let pick = |kind: &str, field: &str| -> serde_json::Value {
        let msg = ceremony
            .iter()
            .find(|m| msg_type(m) == kind)
            .unwrap_or_else(|| panic!("the ceremony sends {kind}"));
        let json = serde_json::to_value(msg).expect("json");
        // A node map is an object by node, or a list of `[node, value]` pairs.
        let map = &json[field];
        map.as_object()
            .and_then(|m| m.values().next().cloned())
            .or_else(|| {
                let first = map.as_array()?.first()?;
                Some(
                    first
                        .as_array()
                        .and_then(|p| p.get(1))
                        .unwrap_or(first)
                        .clone(),
                )
            })
            .unwrap_or_else(|| panic!("{kind} carries {field}: {json}"))
    };
    let nonce: PubNonce = serde_json::from_value(pick("nonces", "nonces")).expect("a nonce");
    let partial: PartialSig =
        serde_json::from_value(pick("partial_sigs", "partials")).expect("a partial");
    let signature: schnorr::Signature =
        serde_json::from_value(pick("final_sigs", "signatures")).expect("a signature");

    let channel = ChannelId {
        factory: FactoryId(1),
        client: ClientId(0),
    };
    let open = ChannelOpen::new(
        channel,
        LeafEpoch::FIRST,
        &ChannelSecrets::from_seed(&[3; 32]),
    );
    let hash = sha256::Hash::hash(&[9; 32]);
    let invoice = "lnbcrt10u1p0".to_owned();
    let mut all = vec![
        WireMsg::Hello {
            agent: "wallet/1".into(),
        },
        WireMsg::Welcome {
            terms: Box::new(terms.clone().sign(&secp, &lsp)),
        },
        WireMsg::Ping { nonce: 42 },
        WireMsg::Pong { nonce: 42 },
        WireMsg::refusal(
            ErrorCode::Unexpected,
            Some(ErrorAbout::Liquidity { channel }),
            "liquidity refused",
        ),
        WireMsg::JoinRequest(join),
        WireMsg::JoinAccepted(JoinAccepted {
            factory: FactoryId(1),
            client: ClientId(0),
            lsp_key: keys.lsp_pubkey(),
            quote,
            start_by: 1_700_000_060,
        }),
        WireMsg::JoinRejected(JoinRejected {
            reason: Reason::new("the factory is full"),
        }),
        WireMsg::Propose(Propose {
            payload: ProposalPayload {
                factory: FactoryId(1),
                session: SessionId(1),
                body: ProposalBody::encode(&proposal).unwrap(),
            },
            respond_by: 1_700_000_100,
        }),
        WireMsg::Refuse(Refuse {
            factory: FactoryId(1),
            session: Some(SessionId(1)),
            reason: Reason::new("the timeout is too close"),
        }),
        WireMsg::Excluded(Excluded {
            factory: FactoryId(1),
            session: SessionId(1),
            reason: ExclusionReason::Timeout {
                round: Round::Nonces,
            },
        }),
        WireMsg::Aborted(Aborted {
            factory: FactoryId(1),
            session: None,
            reason: Reason::new("too few members"),
        }),
        WireMsg::AuthRequest(AuthRequest {
            pubkey: lsp.x_only_public_key().0,
        }),
        WireMsg::AuthChallenge(AuthChallenge {
            challenge: Challenge([5; 32]),
        }),
        WireMsg::AuthProof(AuthProof { signature }),
        WireMsg::Authenticated(Authenticated {
            pubkey: lsp.x_only_public_key().0,
            resumed: None,
        }),
        WireMsg::ChannelOpen(Box::new(open.clone())),
        WireMsg::Channel(Box::new(ChannelFrame {
            channel,
            leaf: LeafEpoch::FIRST,
            msg: ChannelMsg::Update(UpdateMsg {
                seq: 0,
                update: Update::AddHtlc {
                    id: 0,
                    amount: Amount::from_sat(1_000),
                    hash,
                    expiry: Height::from_consensus(200).unwrap(),
                },
            }),
        })),
        WireMsg::PayRequest(PayRequest {
            channel,
            htlc: 0,
            invoice: invoice.clone(),
        }),
        WireMsg::PayResult(PayResult {
            channel,
            htlc: 0,
            hash,
            outcome: PayOutcome::Paid {
                preimage: [9; 32],
                fee: Amount::from_sat(2),
                network_fee: Some(Amount::from_sat(1)),
            },
        }),
        WireMsg::RouteQuery(RouteQuery {
            invoice: invoice.clone(),
        }),
        WireMsg::RouteAnswer(RouteAnswer {
            hash,
            warning: Some("the recipient is offline".into()),
            outside: false,
        }),
        WireMsg::InvoiceRegister(InvoiceRegister {
            hash,
            amount: Amount::from_sat(21_000),
            description: "coffee".into(),
            expiry_secs: 3_600,
        }),
        WireMsg::InvoiceRegistered(InvoiceRegistered {
            hash,
            invoice: invoice.clone(),
        }),
        WireMsg::SwapOutRequest(shared::swap::SwapOutRequest {
            channel,
            htlc: 3,
            hash,
            amount: Amount::from_sat(50_000),
            claim_key: shared::channel::scripts::nums_key(),
        }),
        WireMsg::SwapOutFunded(Box::new(shared::swap::SwapOutFunded {
            channel,
            htlc: 3,
            script: shared::swap::SwapScript {
                hash,
                claim_key: shared::channel::scripts::nums_key(),
                refund_key: shared::channel::scripts::nums_key(),
                refund_height: bitcoin::absolute::Height::from_consensus(700).unwrap(),
            },
            outpoint: bitcoin::OutPoint::null(),
            amount: Amount::from_sat(50_000),
        })),
        WireMsg::FaucetRequest(FaucetRequest { invoice }),
        WireMsg::ChannelClosed(ChannelClosed {
            channel,
            state: "closed".into(),
            reason: "its leaf is on chain".into(),
        }),
        WireMsg::LiquidityRequest(LiquidityRequest {
            channel,
            amount: Amount::from_sat(20_000),
        }),
        WireMsg::LiquidityOffer(Box::new(LiquidityOffer {
            channel,
            leaf: LeafEpoch(1),
            amount: Amount::from_sat(20_000),
            price: Amount::from_sat(100),
            open: open.clone(),
            nonces: [nonce.clone(), nonce.clone()],
        })),
        WireMsg::LiquidityAccept(Box::new(LiquidityAccept {
            channel,
            leaf: LeafEpoch(1),
            open,
        })),
        WireMsg::LeafPartials(Box::new(LeafPartials {
            channel,
            leaf: LeafEpoch(1),
            nonces: [nonce.clone(), nonce],
            partials: [partial, partial],
        })),
        WireMsg::LeafSigned(Box::new(LeafSigned {
            channel,
            leaf: LeafEpoch(1),
            signatures: [signature, signature],
        })),
        WireMsg::KeyRelease(KeyRelease {
            channel,
            secret: SecretKey::from_slice(&[9; 32]).unwrap(),
        }),
        WireMsg::KeyReleased(KeyReleased { channel }),
        WireMsg::FactoryNotice(FactoryNotice::new(
            channel,
            &Life::of(&sample_proposal(
                FactoryParams::regtest(),
                &TestKeys::generate(2, 1),
                1,
            )),
            Stage::Dying,
            Some(bitcoin::absolute::Height::from_consensus(20).unwrap()),
        )),
    ];
    all.extend(ceremony);
    let mut kinds = BTreeSet::new();
    all.retain(|m| kinds.insert(msg_type(m)));
    all
}

/// Valid frames to mutate: one of every message (built once: it runs a whole ceremony).
fn corpus() -> &'static [String] {
    static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        every_message()
            .into_iter()
            .map(|m| Envelope::new(m).encode())
            .collect()
    })
}

/// Every message type the decoder knows, as its error for an unknown `type` lists them.
fn known_types() -> BTreeSet<String> {
    let err = serde_json::from_str::<WireMsg>(r#"{"type":"no_such_message"}"#)
        .expect_err("an unknown type is refused")
        .to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("serde lists the variants: {err}"));
    list.split(", ")
        .map(|t| {
            t.trim_matches(|c: char| c == '`' || c.is_whitespace())
                .to_owned()
        })
        .map(|t| t.split('`').next().unwrap_or_default().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The corpus holds one of every message: a new variant fails here until it gets a sample, so
/// the fuzzing below always reaches every shape.
#[test]
fn the_corpus_has_every_message() {
    let known = known_types();
    assert!(known.len() >= 35, "{known:?}");
    let have: BTreeSet<String> = every_message().iter().map(msg_type).collect();
    let missing: Vec<&String> = known.difference(&have).collect();
    assert!(missing.is_empty(), "no sample of {missing:?}");
    for msg in every_message() {
        let frame = Envelope::new(msg.clone()).encode();
        assert_eq!(Envelope::decode(&frame).expect("decodes").msg, msg);
    }
}

/// Runs what a wallet or the LSP does with a decoded message; none of it may panic.
fn consume(msg: &WireMsg) {
    match msg {
        WireMsg::Welcome { terms } => {
            let secp = Secp256k1::verification_only();
            let _ = terms.verify(&secp, 1_750_000_000, bitcoin::Network::Regtest);
        }
        WireMsg::Propose(p) => {
            if let Ok(proposal) = p.payload.body.decode::<FactoryProposal>() {
                let _ = FactoryTree::build(&proposal);
            }
        }
        _ => {}
    }
}

/// Decodes `frame` and checks the decoder's promises.
fn check(frame: &str) {
    match Envelope::decode(frame) {
        Ok(env) => {
            assert!(frame.len() <= MAX_FRAME_BYTES);
            let again = Envelope::decode(&env.encode()).expect("a decoded frame re-encodes");
            assert_eq!(again, env);
            consume(&env.msg);
        }
        Err(DecodeError::TooLarge { len, max }) => assert!(len > max),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// An edit applied to a valid frame.
#[derive(Debug, Clone)]
enum Edit {
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, String),
    Splice(usize, usize, usize),
    Digit(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Edit::Delete(a, n)),
        (
            any::<usize>(),
            prop_oneof![
                "[\\[\\]{}\",:0-9a-z -]{1,8}".boxed(),
                Just("\"type\":\"ping\"".to_owned()).boxed(),
                Just("99999999999999999999999".to_owned()).boxed(),
                Just("-1".to_owned()).boxed(),
                Just("null".to_owned()).boxed(),
            ]
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), any::<usize>(), 1usize..256).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
        (any::<usize>(), proptest::char::range('0', '9')).prop_map(|(a, c)| Edit::Digit(a, c)),
    ]
}

/// Applies `edit` at char boundaries.
fn apply(frame: &str, edit: &Edit) -> String {
    let chars: Vec<char> = frame.chars().collect();
    let n = chars.len().max(1);
    let at = |i: usize| i % n;
    let mut out = chars.clone();
    match edit {
        Edit::Truncate(i) => out.truncate(at(*i)),
        Edit::Delete(i, len) => {
            let a = at(*i).min(out.len());
            let b = (a + len).min(out.len());
            out.drain(a..b);
        }
        Edit::Insert(i, s) => {
            let a = at(*i).min(out.len());
            out.splice(a..a, s.chars());
        }
        Edit::Splice(from, to, len) => {
            let a = at(*from).min(chars.len());
            let b = (a + len).min(chars.len());
            let piece: Vec<char> = chars[a..b].to_vec();
            let t = at(*to).min(out.len());
            out.splice(t..t, piece);
        }
        Edit::Digit(i, c) => {
            if let Some(p) = (0..out.len())
                .map(|k| (at(*i) + k) % out.len())
                .find(|&p| out[p].is_ascii_digit())
            {
                out[p] = *c;
            }
        }
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn edited_valid_frames_never_panic(
        which in any::<usize>(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let corpus = corpus();
        let mut frame = corpus[which % corpus.len()].clone();
        for e in &edits {
            frame = apply(&frame, e);
        }
        check(&frame);
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for open in ["[", "{\"a\":"] {
        let frame = format!("{{\"v\":1,\"msg\":{}", open.repeat(100_000));
        assert!(Envelope::decode(&frame).is_err());
    }
}

#[test]
fn every_corpus_frame_decodes() {
    for frame in corpus() {
        check(frame);
        assert!(Envelope::decode(frame).is_ok(), "{frame:.80}");
    }
}
