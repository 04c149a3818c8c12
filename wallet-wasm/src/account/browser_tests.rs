//! The account in a real browser: what it stores survives a reload, factory key indexes are
//! never handed out twice, and the lock keeps a second opener out.

use bitcoin::Network;
use wasm_bindgen_test::*;

use super::{Account, AccountError, Profile};
use crate::keys::Seed;
use crate::vault::{Protection, VaultError};

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_name() -> String {
    format!("test-account-{}", js_sys::Math::random().to_bits())
}

#[wasm_bindgen_test]
async fn account_survives_a_reload_and_never_reuses_a_factory_index() {
    let name = fresh_name();
    let seed = Seed::generate(&mut rand::rngs::OsRng);
    let profile = Profile::new(
        Network::Regtest,
        "http://127.0.0.1:8800",
        Some("http://127.0.0.1:8801".into()),
    );
    let account = Account::create_in(&name, &seed, Protection::Passphrase("pw"), profile)
        .await
        .expect("created");
    let identity = account.keys().identity().expect("identity").public_key();
    let address = account.sweep_address().expect("address");
    let mut taken = None;
    account
        .update(|p| taken = p.take_factory_index().ok())
        .await
        .expect("stored");
    assert_eq!(taken.map(|i| i.get()), Some(0));

    // Another opener is refused while this one holds the wallet.
    assert!(matches!(
        Account::open_in(&name, Some("pw")).await,
        Err(AccountError::Vault(VaultError::OtherTabOpen))
    ));
    drop(account); // the tab reloads

    assert!(matches!(
        Account::open_in(&name, Some("nope")).await,
        Err(AccountError::Vault(VaultError::WrongPassphrase))
    ));
    let account = Account::open_in(&name, Some("pw")).await.expect("reopened");
    assert_eq!(account.profile().next_factory, 1);
    assert_eq!(
        account.profile().lsp_esplora.as_deref(),
        Some("http://127.0.0.1:8801")
    );
    assert_eq!(
        account.keys().identity().expect("identity").public_key(),
        identity
    );
    assert_eq!(account.sweep_address().expect("address"), address);
    assert!(account.paths().await.expect("paths").is_empty());
    account.wipe().await.expect("wiped");
}
