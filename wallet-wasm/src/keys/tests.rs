//! Unit tests of seeds and derivation: BIP-39/BIP-32/BIP-86 published vectors, and this wallet's
//! own fixed vectors for its identity and factory paths.

use std::str::FromStr;

use bitcoin::bip32::{DerivationPath, Xpriv};
use bitcoin::secp256k1::Secp256k1;
use bitcoin::Network;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

/// The BIP-39 phrase of 16 zero bytes, used by the BIP-86 test vectors.
const ABANDON_ABOUT: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
                             abandon abandon abandon about";

fn abandon_keys(network: Network) -> WalletKeys {
    let seed = Seed::from_words(ABANDON_ABOUT).expect("valid phrase");
    WalletKeys::new(&seed, network).expect("derivable")
}

#[test]
fn generated_seed_has_24_words_and_round_trips() {
    let mut rng = StdRng::seed_from_u64(7);
    let seed = Seed::generate(&mut rng);
    assert_eq!(seed.word_count(), 24);
    assert_eq!(seed.entropy().len(), 32);
    assert_eq!(Seed::from_words(&seed.words()), Ok(seed.clone()));
    assert_eq!(Seed::from_entropy(&seed.entropy()), Ok(seed.clone()));
    assert_ne!(
        Seed::generate(&mut rng),
        seed,
        "fresh randomness gives a fresh seed"
    );
}

#[test]
fn zero_entropy_is_the_bip39_vector() {
    let seed = Seed::from_entropy(&[0u8; 16]).expect("valid entropy");
    assert_eq!(
        seed.words().as_str(),
        ABANDON_ABOUT
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
}

#[test]
fn restore_ignores_case_and_spacing() {
    let messy = format!("  {}\n", ABANDON_ABOUT.to_uppercase().replace(' ', "   "));
    assert_eq!(Seed::from_words(&messy), Seed::from_words(ABANDON_ABOUT));
}

#[test]
fn restore_names_the_unknown_word() {
    let phrase = ABANDON_ABOUT.replacen("abandon", "abandonn", 1);
    assert_eq!(
        Seed::from_words(&phrase),
        Err(KeysError::UnknownWord { position: 1 })
    );
    let fifth = "abandon abandon abandon abandon bitcoinz abandon abandon abandon abandon abandon \
                 abandon about";
    let err = Seed::from_words(fifth).expect_err("unknown word");
    assert_eq!(err, KeysError::UnknownWord { position: 5 });
    assert!(err.to_string().contains("word 5"), "{err}");
}

#[test]
fn restore_refuses_a_bad_checksum() {
    let twelve_abandons = ["abandon"; 12].join(" ");
    let err = Seed::from_words(&twelve_abandons).expect_err("bad checksum");
    assert_eq!(err, KeysError::BadChecksum);
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn restore_refuses_a_bad_word_count() {
    let eleven = ["abandon"; 11].join(" ");
    assert_eq!(Seed::from_words(&eleven), Err(KeysError::BadWordCount(11)));
    assert_eq!(Seed::from_words(""), Err(KeysError::BadWordCount(0)));
    assert_eq!(
        Seed::from_entropy(&[0u8; 15]),
        Err(KeysError::BadEntropyLength(15))
    );
}

#[test]
fn debug_prints_no_secrets() {
    let seed = Seed::from_words(ABANDON_ABOUT).expect("valid phrase");
    let keys = WalletKeys::new(&seed, Network::Regtest).expect("derivable");
    let factory = keys.factory(FactoryIndex::FIRST).expect("derivable");
    let shown = format!("{seed:?} {keys:?} {factory:?}");
    assert!(!shown.contains("abandon"), "{shown}");
    assert!(
        !shown.contains(&factory.secret_key().display_secret().to_string()),
        "{shown}"
    );
}

#[test]
fn master_key_is_the_bip86_vector() {
    let seed = Seed::from_words(ABANDON_ABOUT).expect("valid phrase");
    let master = Xpriv::new_master(Network::Bitcoin, seed.bip39_seed().as_ref()).expect("master");
    let expected = Xpriv::from_str(
        "xprv9s21ZrQH143K3GJpoapnV8SFfukcVBSfeCficPSGfubmSFDxo1kuHnLisriDvSnRRuL2Qrg5ggqHKNVpxR86QEC8w35uxmGoggxtQTPvfUu",
    )
    .expect("valid xprv");
    assert_eq!(master, expected);
}

#[test]
fn sweep_address_is_the_bip86_vector() {
    let sweep = abandon_keys(Network::Bitcoin)
        .sweep(SweepIndex::FIRST)
        .expect("derivable");
    assert_eq!(
        sweep.internal_keypair().x_only_public_key().0.to_string(),
        "cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115"
    );
    assert_eq!(
        sweep.address().to_string(),
        "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
    );
    let secp = Secp256k1::new();
    assert_eq!(
        sweep
            .spending_keypair(&secp)
            .x_only_public_key()
            .0
            .to_string(),
        "a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c",
        "the spending key is the BIP-86 output key"
    );
}

/// The documented paths, derived through BIP-32 path strings (an independent route).
fn derive_path(keys_network: Network, path: &str) -> bitcoin::secp256k1::Keypair {
    let seed = Seed::from_words(ABANDON_ABOUT).expect("valid phrase");
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(keys_network, seed.bip39_seed().as_ref()).expect("master");
    let path = DerivationPath::from_str(path).expect("valid path");
    master
        .derive_priv(&secp, &path)
        .expect("derivable")
        .to_keypair(&secp)
}

#[test]
fn identity_and_factory_keys_match_fixed_vectors() {
    let secp = Secp256k1::new();
    let regtest = abandon_keys(Network::Regtest);
    let identity = regtest.identity().expect("derivable");
    assert_eq!(
        identity.public_key().to_string(),
        "01003b8b17e0ae38cf75c936fddc4f2864aba1b29138652f075856876aa1cca0"
    );
    assert_eq!(
        identity.keypair(),
        &derive_path(Network::Regtest, "m/7373'/1'/0'/0'")
    );

    let factory0 = regtest.factory(FactoryIndex::FIRST).expect("derivable");
    assert_eq!(
        factory0.public_key(&secp).to_string(),
        "0230085c05a70beca11666cc0a7d55ac29f2a2f79129dcee6d89c9c6075407fe64"
    );
    let factory1 = regtest
        .factory(FactoryIndex::new(1).expect("small"))
        .expect("derivable");
    assert_eq!(
        factory1.public_key(&secp).to_string(),
        "026f168902078f1d41ac32aa6fa12951890d5fd6b2f21fe9c454197d6f94df9903"
    );
    assert_eq!(
        factory1.secret_key(),
        derive_path(Network::Regtest, "m/7373'/1'/1'/1'").secret_key()
    );
    assert_eq!(
        regtest
            .sweep(SweepIndex::FIRST)
            .expect("derivable")
            .address()
            .to_string(),
        "bcrt1p8wpt9v4frpf3tkn0srd97pksgsxc5hs52lafxwru9kgeephvs7rqjeprhg"
    );

    let mainnet = abandon_keys(Network::Bitcoin);
    assert_eq!(
        mainnet
            .identity()
            .expect("derivable")
            .public_key()
            .to_string(),
        "6402da282bd02200a1229b5591a82d350b3833b6fb729f17f0d60e1f88054d76"
    );
    assert_eq!(
        mainnet
            .factory(FactoryIndex::FIRST)
            .expect("derivable")
            .public_key(&secp)
            .to_string(),
        "0213d98a727a91affd940d89b5a1de27d415aaf25e3aaa75fca613112f97f8bcb4"
    );
    assert_eq!(
        mainnet
            .factory(FactoryIndex::FIRST)
            .expect("derivable")
            .secret_key(),
        derive_path(Network::Bitcoin, "m/7373'/0'/1'/0'").secret_key()
    );
}

#[test]
fn derivation_is_deterministic() {
    let (a, b) = (
        abandon_keys(Network::Regtest),
        abandon_keys(Network::Regtest),
    );
    assert_eq!(a.identity(), b.identity());
    let index = FactoryIndex::new(42).expect("small");
    assert_eq!(a.factory(index), b.factory(index));
    assert_eq!(a.sweep(SweepIndex::FIRST), b.sweep(SweepIndex::FIRST));
}

#[test]
fn purposes_give_different_keys() {
    let keys = abandon_keys(Network::Regtest);
    let secp = Secp256k1::new();
    let identity = keys.identity().expect("derivable").keypair().secret_key();
    let factory = keys
        .factory(FactoryIndex::FIRST)
        .expect("derivable")
        .secret_key();
    let sweep = keys.sweep(SweepIndex::FIRST).expect("derivable");
    assert_ne!(identity, factory);
    assert_ne!(identity, sweep.internal_keypair().secret_key());
    assert_ne!(factory, sweep.internal_keypair().secret_key());
    assert_ne!(factory, sweep.spending_keypair(&secp).secret_key());
}

#[test]
fn factory_keys_differ_per_index() {
    let keys = abandon_keys(Network::Regtest);
    let mut seen = std::collections::HashSet::new();
    let mut index = FactoryIndex::FIRST;
    for _ in 0..64 {
        let key = keys.factory(index).expect("derivable");
        assert_eq!(key.index(), index);
        assert!(
            seen.insert(key.secret_key().secret_bytes()),
            "index {index:?} reused a key"
        );
        index = index.next().expect("small");
    }
}

#[test]
fn networks_and_seeds_give_different_keys() {
    let main = abandon_keys(Network::Bitcoin);
    let test = abandon_keys(Network::Testnet);
    let regtest = abandon_keys(Network::Regtest);
    assert_ne!(main.identity(), regtest.identity());
    assert_eq!(
        test.identity(),
        regtest.identity(),
        "all test networks share coin type 1'"
    );
    assert!(regtest
        .sweep(SweepIndex::FIRST)
        .expect("d")
        .address()
        .to_string()
        .starts_with("bcrt1p"));

    let other = Seed::from_entropy(&[1u8; 32]).expect("valid entropy");
    let other = WalletKeys::new(&other, Network::Regtest).expect("derivable");
    assert_ne!(other.identity(), regtest.identity());
    assert_ne!(
        other.factory(FactoryIndex::FIRST),
        regtest.factory(FactoryIndex::FIRST)
    );
}

#[test]
fn indexes_stop_below_two_to_the_31() {
    let last = FactoryIndex::new((1 << 31) - 1).expect("largest index");
    assert_eq!(last.next(), Err(KeysError::IndexOutOfRange(1 << 31)));
    assert_eq!(
        FactoryIndex::new(u32::MAX),
        Err(KeysError::IndexOutOfRange(u32::MAX))
    );
    assert!(SweepIndex::new(1 << 31).is_err());
    assert_eq!(SweepIndex::FIRST.next().map(SweepIndex::get), Ok(1));
}
