//! Vault tests in a real browser (headless Chromium via wasm-bindgen-test): IndexedDB,
//! WebCrypto and Web Locks as they really behave.

use bitcoin::Network;
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

use super::*;
use crate::keys::{Seed, WalletKeys};

/// A database name no earlier test or run used.
fn fresh_name(test: &str) -> String {
    format!("test-{test}-{}", hex::encode(crypto::random_bytes::<6>()))
}

fn test_seed() -> Seed {
    Seed::generate(&mut rand::rngs::OsRng)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every byte string stored in the vault's database, as it lies at rest.
async fn raw_bytes(vault: &Vault) -> Vec<Vec<u8>> {
    idb::raw_values(vault.database())
        .await
        .expect("readable")
        .into_iter()
        .filter_map(|v| v.dyn_into::<Uint8Array>().ok().map(|a| a.to_vec()))
        .collect()
}

#[wasm_bindgen_test]
async fn store_round_trip_survives_reopen() {
    let name = fresh_name("round-trip");
    let seed = test_seed();
    let vault = Vault::create(&name, Protection::Passphrase("correct horse"))
        .await
        .expect("created");
    assert_eq!(vault.mode(), ProtectionMode::Passphrase);
    vault.put("seed", &seed.entropy()).await.expect("stored");
    vault
        .put("next_factory_index", &7u32.to_be_bytes())
        .await
        .expect("stored");
    vault.put("scratch", b"gone soon").await.expect("stored");
    vault.remove("scratch").await.expect("removed");
    drop(vault); // a reload: nothing survives but IndexedDB

    assert_eq!(
        Vault::inspect(&name).await,
        Ok(Some(ProtectionMode::Passphrase))
    );
    let vault = Vault::open(&name, Some("correct horse"))
        .await
        .expect("reopened");
    let entropy = vault.get("seed").await.expect("readable").expect("present");
    assert_eq!(Seed::from_entropy(&entropy), Ok(seed));
    let index = vault
        .get("next_factory_index")
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(index.as_slice(), 7u32.to_be_bytes());
    assert_eq!(vault.get("scratch").await, Ok(None));
    assert_eq!(vault.get("never written").await, Ok(None));
    let mut names = vault.names().await.expect("listed");
    names.sort();
    assert_eq!(names, ["next_factory_index", "seed"]);
    vault.wipe().await.expect("wiped");
    assert_eq!(Vault::exists(&name).await, Ok(false));
}

#[wasm_bindgen_test]
async fn secrets_are_encrypted_at_rest() {
    for protection in [Protection::Passphrase("at rest"), Protection::DeviceKey] {
        let name = fresh_name("at-rest");
        let seed = test_seed();
        let keys = WalletKeys::new(&seed, Network::Regtest).expect("derivable");
        let identity = keys.identity().expect("derivable").keypair().secret_bytes();
        let vault = Vault::create(&name, protection).await.expect("created");
        vault.put("seed", &seed.entropy()).await.expect("stored");
        vault.put("identity", &identity).await.expect("stored");
        vault
            .put("words", seed.words().as_bytes())
            .await
            .expect("stored");

        let at_rest = raw_bytes(&vault).await;
        assert!(
            at_rest.len() >= 5,
            "meta, check and three records are bytes: {}",
            at_rest.len()
        );
        for stored in &at_rest {
            assert!(
                !contains(stored, &seed.entropy()),
                "seed entropy in the clear ({protection:?})"
            );
            assert!(
                !contains(stored, &identity),
                "identity key in the clear ({protection:?})"
            );
            let first_words: String = seed
                .words()
                .split(' ')
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                !contains(stored, first_words.as_bytes()),
                "recovery words in the clear"
            );
            assert!(!contains(stored, b"correct horse") && !contains(stored, b"at rest"));
        }
        // Two writes of the same value never give the same ciphertext (fresh IV each time).
        vault.put("again", &seed.entropy()).await.expect("stored");
        let again = raw_bytes(&vault).await;
        let unique: std::collections::HashSet<_> = again.iter().collect();
        assert_eq!(unique.len(), again.len(), "no two stored values are equal");
        vault.wipe().await.expect("wiped");
    }
}

#[wasm_bindgen_test]
async fn wrong_passphrase_is_refused_clearly() {
    let name = fresh_name("wrong-pass");
    let vault = Vault::create(&name, Protection::Passphrase("right one"))
        .await
        .expect("created");
    vault.put("seed", &[1, 2, 3]).await.expect("stored");
    drop(vault);

    let err = Vault::open(&name, Some("wrong one"))
        .await
        .expect_err("wrong passphrase");
    assert_eq!(err, VaultError::WrongPassphrase);
    assert_eq!(err.to_string(), "wrong passphrase");
    assert_eq!(
        Vault::open(&name, None).await.expect_err("no passphrase"),
        VaultError::PassphraseRequired
    );
    assert_eq!(
        Vault::open(&name, Some("")).await.expect_err("empty"),
        VaultError::EmptyPassphrase
    );
    let empty = Vault::create(&fresh_name("empty"), Protection::Passphrase("")).await;
    assert_eq!(empty.expect_err("empty"), VaultError::EmptyPassphrase);
    let missing = fresh_name("missing");
    assert_eq!(
        Vault::open(&missing, None).await.expect_err("absent"),
        VaultError::NotFound(missing.clone())
    );
    assert_eq!(
        Vault::exists(&missing).await,
        Ok(false),
        "looking did not create it"
    );

    let vault = Vault::open(&name, Some("right one"))
        .await
        .expect("right passphrase opens");
    assert_eq!(
        vault
            .get("seed")
            .await
            .expect("readable")
            .as_deref()
            .map(Vec::as_slice),
        Some(&[1u8, 2, 3][..])
    );
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn no_passphrase_mode_round_trip() {
    let name = fresh_name("device-key");
    let vault = Vault::create(&name, Protection::DeviceKey)
        .await
        .expect("created");
    assert_eq!(vault.mode(), ProtectionMode::DeviceKey);
    vault
        .put("seed", b"device protected")
        .await
        .expect("stored");
    drop(vault);

    assert_eq!(
        Vault::inspect(&name).await,
        Ok(Some(ProtectionMode::DeviceKey))
    );
    assert_eq!(
        Vault::open(&name, Some("x")).await.expect_err("has none"),
        VaultError::NoPassphraseSet
    );
    let vault = Vault::open(&name, None).await.expect("reopened");
    let value = vault.get("seed").await.expect("readable").expect("present");
    assert_eq!(value.as_slice(), b"device protected");
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn writes_wait_for_a_protection_change_instead_of_being_overwritten() {
    let name = fresh_name("change-busy");
    let vault = Vault::create(&name, Protection::Passphrase("old"))
        .await
        .expect("created");
    vault.put("profile", b"before").await.expect("stored");
    // A write that lands while the records are re-encrypted is refused, not lost.
    let (changed, written) = futures::join!(
        vault.change_protection(Protection::Passphrase("new")),
        vault.put("profile", b"during"),
    );
    changed.expect("changed");
    assert_eq!(
        written.expect_err("refused while changing"),
        VaultError::Busy("the wallet's protection is being changed")
    );
    vault.put("profile", b"after").await.expect("writes resume");
    drop(vault);
    let vault = Vault::open(&name, Some("new")).await.expect("opens");
    assert_eq!(
        vault
            .get("profile")
            .await
            .expect("ok")
            .expect("present")
            .as_slice(),
        b"after"
    );
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn change_protection_re_encrypts_everything() {
    let name = fresh_name("change");
    let vault = Vault::create(&name, Protection::Passphrase("old"))
        .await
        .expect("created");
    vault
        .put("seed", b"kept across changes")
        .await
        .expect("stored");
    vault
        .change_protection(Protection::Passphrase("new"))
        .await
        .expect("changed");
    drop(vault);
    assert_eq!(
        Vault::open(&name, Some("old")).await.expect_err("old"),
        VaultError::WrongPassphrase
    );
    let vault = Vault::open(&name, Some("new"))
        .await
        .expect("new passphrase opens");
    assert_eq!(
        vault
            .get("seed")
            .await
            .expect("ok")
            .expect("present")
            .as_slice(),
        b"kept across changes"
    );

    vault
        .change_protection(Protection::DeviceKey)
        .await
        .expect("passphrase removed");
    drop(vault);
    let vault = Vault::open(&name, None)
        .await
        .expect("opens without passphrase");
    assert_eq!(
        vault
            .get("seed")
            .await
            .expect("ok")
            .expect("present")
            .as_slice(),
        b"kept across changes"
    );

    vault
        .change_protection(Protection::Passphrase("again"))
        .await
        .expect("passphrase added");
    assert!(!idb::keys(vault.database())
        .await
        .expect("keys")
        .contains(&format::DEVICE_KEY.to_string()));
    drop(vault);
    let vault = Vault::open(&name, Some("again")).await.expect("opens");
    assert_eq!(
        vault
            .get("seed")
            .await
            .expect("ok")
            .expect("present")
            .as_slice(),
        b"kept across changes"
    );
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn backup_export_wipe_import_restores_the_same_data() {
    let name = fresh_name("backup");
    let seed = test_seed();
    let vault = Vault::create(&name, Protection::DeviceKey)
        .await
        .expect("created");
    vault.put("seed", &seed.entropy()).await.expect("stored");
    vault
        .put("factory/0", b"state of factory 0")
        .await
        .expect("stored");
    vault.put("empty", b"").await.expect("stored");
    let before = vault.read_all().await.expect("readable");
    let backup = vault
        .export_backup("backup password")
        .await
        .expect("exported");
    assert!(
        !contains(&backup, &seed.entropy())
            && !contains(&backup, hex::encode(seed.entropy()).as_bytes())
    );
    vault.wipe().await.expect("wiped");
    assert_eq!(Vault::exists(&name).await, Ok(false));

    let wrong = Vault::restore_backup(&name, &backup, "not it", Protection::DeviceKey).await;
    assert_eq!(
        wrong.expect_err("wrong password"),
        VaultError::WrongBackupPassword
    );
    assert_eq!(
        Vault::exists(&name).await,
        Ok(false),
        "a failed restore writes nothing"
    );
    let garbage = Vault::restore_backup(&name, b"{\"hello\":1}", "x", Protection::DeviceKey).await;
    assert!(
        matches!(garbage, Err(VaultError::BadBackup(_))),
        "{garbage:?}"
    );

    let vault = Vault::restore_backup(
        &name,
        &backup,
        "backup password",
        Protection::Passphrase("new device"),
    )
    .await
    .expect("restored");
    assert_eq!(vault.mode(), ProtectionMode::Passphrase);
    let after = vault.read_all().await.expect("readable");
    assert_eq!(after, before);
    let entropy = vault.get("seed").await.expect("ok").expect("present");
    assert_eq!(Seed::from_entropy(&entropy), Ok(seed));
    drop(vault);
    let again =
        Vault::restore_backup(&name, &backup, "backup password", Protection::DeviceKey).await;
    assert_eq!(
        again.expect_err("exists"),
        VaultError::AlreadyExists(name.clone())
    );
    let vault = Vault::open(&name, Some("new device")).await.expect("opens");
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn second_lock_attempt_fails_while_the_first_is_held() {
    let lock_name = fresh_name("lock");
    let first = TabLock::try_acquire(&lock_name).await.expect("free");
    let second = TabLock::try_acquire(&lock_name).await.expect_err("held");
    assert_eq!(second, VaultError::OtherTabOpen);
    assert!(second.to_string().contains("another tab"), "{second}");
    first.release().await;
    let third = TabLock::acquire(&lock_name)
        .await
        .expect("free once released");
    drop(third);

    let name = fresh_name("lock-vault");
    let vault = Vault::create(&name, Protection::DeviceKey)
        .await
        .expect("created");
    assert_eq!(
        Vault::open(&name, None).await.expect_err("held"),
        VaultError::OtherTabOpen
    );
    assert_eq!(
        Vault::create(&name, Protection::DeviceKey)
            .await
            .expect_err("held"),
        VaultError::OtherTabOpen
    );
    drop(vault);
    let vault = Vault::open(&name, None)
        .await
        .expect("free again after the first closed");
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn create_never_overwrites() {
    let name = fresh_name("exists");
    let vault = Vault::create(&name, Protection::Passphrase("one"))
        .await
        .expect("created");
    vault.put("seed", b"first").await.expect("stored");
    drop(vault);
    let err = Vault::create(&name, Protection::DeviceKey)
        .await
        .expect_err("exists");
    assert_eq!(err, VaultError::AlreadyExists(name.clone()));
    let vault = Vault::open(&name, Some("one")).await.expect("untouched");
    assert_eq!(
        vault
            .get("seed")
            .await
            .expect("ok")
            .expect("present")
            .as_slice(),
        b"first"
    );
    vault.wipe().await.expect("wiped");
}

#[wasm_bindgen_test]
async fn persistence_request_gets_an_answer() {
    // Headless Chromium may grant or deny it; either is an answer, not an error.
    let answer = request_persistence().await;
    assert!(answer.is_ok(), "{answer:?}");
}

#[wasm_bindgen_test]
async fn tampered_storage_is_reported_not_trusted() {
    let name = fresh_name("tamper");
    let vault = Vault::create(&name, Protection::DeviceKey)
        .await
        .expect("created");
    vault.put("a", b"value of a").await.expect("stored");
    vault.put("b", b"value of b").await.expect("stored");
    // Someone with the storage moves a's ciphertext to b, and writes a string at c.
    let sealed_a = idb::get(vault.database(), &format::record_key("a"))
        .await
        .expect("ok")
        .expect("present");
    let (tx, store) = idb::transaction(vault.database(), idb::Mode::Write).expect("tx");
    idb::put(&store, &format::record_key("b"), &sealed_a).expect("put");
    idb::put(&store, &format::record_key("c"), &"not bytes".into()).expect("put");
    idb::committed(&tx).await.expect("committed");

    assert_eq!(
        vault.get("b").await,
        Err(VaultError::Corrupt("record b".into()))
    );
    assert!(matches!(vault.get("c").await, Err(VaultError::Corrupt(_))));
    assert_eq!(
        vault
            .get("a")
            .await
            .expect("ok")
            .expect("present")
            .as_slice(),
        b"value of a"
    );
    assert!(matches!(
        vault.export_backup("pw").await,
        Err(VaultError::Corrupt(_))
    ));

    // A damaged header is an error on open, not a panic.
    let (tx, store) = idb::transaction(vault.database(), idb::Mode::Write).expect("tx");
    idb::put(
        &store,
        format::META_KEY,
        &Uint8Array::from(&b"{not json"[..]).into(),
    )
    .expect("put");
    idb::committed(&tx).await.expect("committed");
    vault.close().await;
    assert!(matches!(
        Vault::open(&name, None).await,
        Err(VaultError::Corrupt(_))
    ));
    assert!(matches!(
        Vault::inspect(&name).await,
        Err(VaultError::Corrupt(_))
    ));
    idb::delete(&name).await.expect("deleted");
}
