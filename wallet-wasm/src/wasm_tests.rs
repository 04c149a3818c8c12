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

/// The browser half of `cargo xtask bench browser`: one client's check and signing of a
/// proposal of 127 and of 1,024 clients in Chromium, by the same code the factory bench times
/// natively (`shared::testing::client_work`). It prints a `bench=browser` line per N and asserts
/// nothing about time, so the test run skips it; the bench runs it with `--include-ignored`.
#[wasm_bindgen_test]
#[ignore = "a benchmark: `cargo xtask bench browser` runs it"]
fn browser_client_work() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for n in [127, 1024] {
        let work =
            shared::testing::client_work::client_work(n, &mut rng, || js_sys::Date::now() / 1000.0);
        assert!(work.jobs > 0);
        console_log!(
            "bench=browser n={n} jobs={} check_ms={:.0} sign_ms={:.0}",
            work.jobs,
            work.check_s * 1000.0,
            work.sign_s * 1000.0
        );
    }
}
