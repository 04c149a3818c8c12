//! Fuzzing the wire decoder with proptest: random bytes, and valid frames of every shape the
//! LSP and wallets exchange (terms, proposals, join requests) cut, spliced and edited at random.
//! Decoding never panics, never accepts an oversized frame, and anything it accepts re-encodes
//! to a frame that decodes to the same message. Proposals and terms that survive decoding go on
//! through the checks a wallet runs on them, which must not panic either.

use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
use bitcoin::Amount;
use proptest::prelude::*;
use shared::ceremony::{JoinRequest, ProposalBody, ProposalPayload, Propose};
use shared::params::FactoryParams;
use shared::terms::TermsBody;
use shared::testing::{sample_proposal, TestKeys};
use shared::tree::{FactoryProposal, FactoryTree};
use shared::types::{FactoryId, SessionId};
use shared::wire::{DecodeError, Envelope, WireMsg, MAX_FRAME_BYTES};

/// Valid frames to mutate.
fn corpus() -> Vec<String> {
    let secp = Secp256k1::new();
    let lsp = Keypair::from_secret_key(&secp, &SecretKey::from_slice(&[7; 32]).unwrap());
    let terms = TermsBody::example(lsp.x_only_public_key().0, 1_700_000_000, 1_800_000_000)
        .sign(&secp, &lsp);
    let keys = TestKeys::generate(4, 1);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 1);
    let propose = Propose {
        payload: ProposalPayload {
            factory: FactoryId(1),
            session: SessionId(1),
            body: ProposalBody::encode(&proposal).unwrap(),
        },
        respond_by: 1_700_000_100,
    };
    let join = JoinRequest {
        pubkey: keys.client_pubkey(0),
        channel: Amount::from_sat(20_000),
        liquidity: Amount::from_sat(30_000),
    };
    [
        WireMsg::Ping { nonce: 42 },
        WireMsg::Hello {
            agent: "wallet/1".into(),
        },
        WireMsg::Welcome {
            terms: Box::new(terms),
        },
        WireMsg::JoinRequest(join),
        WireMsg::Propose(propose),
    ]
    .into_iter()
    .map(|m| Envelope::new(m).encode())
    .collect()
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
        which in 0usize..5,
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
        check(&frame);
        assert!(Envelope::decode(&frame).is_ok(), "{frame:.80}");
    }
}
