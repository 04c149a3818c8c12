//! The session's vault storage in a real browser: what a session stores survives a reload.

use std::rc::Rc;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::Secp256k1;
use bitcoin::{OutPoint, TapSighash, Txid};
use shared::musig::GuardRecord;
use shared::params::FactoryParams;
use shared::path::ClientPath;
use shared::testing::{sample_proposal, TestKeys};
use shared::types::{ClientId, FactoryId, SessionId};
use wasm_bindgen_test::*;

use super::{Storage, StoredPath, VaultStorage, PATH_PREFIX};
use crate::vault::{Protection, Vault};

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_name(test: &str) -> String {
    format!("test-{test}-{}", js_sys::Math::random().to_bits())
}

fn record(vout: u32, byte: u8) -> GuardRecord {
    GuardRecord {
        prevout: OutPoint::new(Txid::all_zeros(), vout),
        sighash: TapSighash::from_byte_array([byte; 32]),
    }
}

fn stored_path(session: u64) -> StoredPath {
    let keys = TestKeys::generate(4, 9);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 9);
    let path = ClientPath::build(&proposal, ClientId(2)).expect("builds");
    let lsp = bitcoin::secp256k1::Keypair::from_seckey_slice(&Secp256k1::new(), &[4u8; 32])
        .expect("valid key")
        .x_only_public_key()
        .0;
    StoredPath {
        factory: FactoryId(7),
        session: SessionId(session),
        lsp,
        path,
    }
}

#[wasm_bindgen_test]
async fn session_records_survive_a_reload_encrypted() {
    let name = fresh_name("session-storage");
    let vault = Vault::create(&name, Protection::Passphrase("pass"))
        .await
        .expect("created");
    let mut storage = VaultStorage::new(Rc::new(vault));
    storage
        .save_guard_records(&[record(1, 1)])
        .await
        .expect("saved");
    storage
        .save_guard_records(&[record(2, 2), record(1, 1)])
        .await
        .expect("saved");
    let first = stored_path(1);
    let second = stored_path(2);
    storage.save_path(&first).await.expect("saved");
    storage.save_path(&second).await.expect("saved");
    storage.save_path(&first).await.expect("saved again");
    drop(storage); // the tab reloads: only IndexedDB is left

    let vault = Rc::new(Vault::open(&name, Some("pass")).await.expect("reopened"));
    let mut storage = VaultStorage::new(vault.clone());
    assert_eq!(
        storage.load_guard_records().await.expect("loaded"),
        vec![record(1, 1), record(2, 2)]
    );
    assert_eq!(
        storage.load_paths().await.expect("loaded"),
        vec![first.clone(), second.clone()]
    );
    // Read again (decoded once already), then one stored again with other contents: each
    // read returns what the record holds now.
    assert_eq!(
        storage.load_paths().await.expect("loaded"),
        vec![first.clone(), second]
    );
    let mut changed = stored_path(2);
    changed.path = ClientPath::build(first.path.proposal(), ClientId(3)).expect("builds");
    storage.save_path(&changed).await.expect("saved");
    assert_eq!(
        storage.load_paths().await.expect("loaded"),
        vec![first, changed]
    );
    let names = vault.names().await.expect("names");
    assert_eq!(
        names.iter().filter(|n| n.starts_with(PATH_PREFIX)).count(),
        2
    );
    drop(storage);
    let vault = Rc::try_unwrap(vault).expect("last handle");
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn a_fresh_vault_has_no_session_records() {
    let name = fresh_name("session-empty");
    let vault = Vault::create(&name, Protection::DeviceKey)
        .await
        .expect("created");
    let mut storage = VaultStorage::new(Rc::new(vault));
    assert!(storage
        .load_guard_records()
        .await
        .expect("loaded")
        .is_empty());
    assert!(storage.load_paths().await.expect("loaded").is_empty());
}
