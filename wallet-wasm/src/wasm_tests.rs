//! Tests that need a real browser (run in headless Chromium by wasm-bindgen-test).

use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn signs_and_checks_terms_in_wasm() {
    use bitcoin::secp256k1::{Keypair, Secp256k1};
    let secp = Secp256k1::new();
    let kp = Keypair::from_seckey_slice(&secp, &[3u8; 32]).expect("valid key");
    let frame = shared::wire::Envelope::new(shared::wire::WireMsg::Welcome {
        terms: Box::new(
            shared::terms::TermsBody::example(kp.x_only_public_key().0, 0, u64::MAX)
                .sign(&secp, &kp),
        ),
    })
    .encode();
    let now = (js_sys::Date::now() / 1000.0) as u64;
    let terms = crate::lsp::accept_welcome(&frame, now, bitcoin::Network::Regtest).expect("valid");
    assert_eq!(terms.body.lsp_pubkey, kp.x_only_public_key().0);
    assert!(crate::lsp::accept_welcome(&frame, now, bitcoin::Network::Bitcoin).is_err());
}
