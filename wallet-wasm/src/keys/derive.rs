//! Keys derived from the seed, one type per purpose (paths in the module docs of [`super`]).

use std::fmt;

use bitcoin::bip32::{ChildNumber, Xpriv};
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Keypair, PublicKey, Secp256k1, SecretKey, Signing, XOnlyPublicKey};
use bitcoin::{Address, Network};

use super::{KeysError, Seed, PURPOSE};

/// BIP-86 purpose (single-key P2TR).
const BIP86_PURPOSE: u32 = 86;
/// Account under [`PURPOSE`] holding the identity key.
const IDENTITY_ACCOUNT: u32 = 0;
/// Account under [`PURPOSE`] holding the factory keys.
const FACTORY_ACCOUNT: u32 = 1;

/// Number of a factory key: each factory gets a fresh one, below 2^31 (hardened in the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FactoryIndex(u32);

impl FactoryIndex {
    /// The first factory's index.
    pub const FIRST: FactoryIndex = FactoryIndex(0);

    /// Checks that `index` is below 2^31.
    pub fn new(index: u32) -> Result<FactoryIndex, KeysError> {
        check_index(index).map(FactoryIndex)
    }

    /// The index as a number (for storage).
    pub fn get(self) -> u32 {
        self.0
    }

    /// The index after this one; an error once all 2^31 are used.
    pub fn next(self) -> Result<FactoryIndex, KeysError> {
        FactoryIndex::new(self.0.saturating_add(1))
    }
}

/// Number of a sweep address on the BIP-86 external chain, below 2^31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SweepIndex(u32);

impl SweepIndex {
    /// The first sweep address.
    pub const FIRST: SweepIndex = SweepIndex(0);

    /// Checks that `index` is below 2^31.
    pub fn new(index: u32) -> Result<SweepIndex, KeysError> {
        check_index(index).map(SweepIndex)
    }

    /// The index as a number (for storage).
    pub fn get(self) -> u32 {
        self.0
    }

    /// The index after this one; an error once all 2^31 are used.
    pub fn next(self) -> Result<SweepIndex, KeysError> {
        SweepIndex::new(self.0.saturating_add(1))
    }
}

fn check_index(index: u32) -> Result<u32, KeysError> {
    if index < (1 << 31) {
        Ok(index)
    } else {
        Err(KeysError::IndexOutOfRange(index))
    }
}

/// The wallet's long-term identity key: authenticates the wallet to its LSP, signs nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKey(Keypair);

impl IdentityKey {
    /// The key pair, for signing authentication challenges.
    pub fn keypair(&self) -> &Keypair {
        &self.0
    }

    /// The x-only public key the LSP knows the wallet by.
    pub fn public_key(&self) -> XOnlyPublicKey {
        self.0.x_only_public_key().0
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.public_key())
    }
}

/// The wallet's key for one factory, at its [`FactoryIndex`]; used in that factory only.
#[derive(Clone, PartialEq, Eq)]
pub struct FactoryKey {
    index: FactoryIndex,
    secret: SecretKey,
}

impl FactoryKey {
    /// Which factory key this is.
    pub fn index(&self) -> FactoryIndex {
        self.index
    }

    /// The secret key (for the ceremony's `ClientConfig`).
    pub fn secret_key(&self) -> SecretKey {
        self.secret
    }

    /// The public key.
    pub fn public_key<C: Signing>(&self, secp: &Secp256k1<C>) -> PublicKey {
        self.secret.public_key(secp)
    }
}

impl fmt::Debug for FactoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FactoryKey({}, secret redacted)", self.index.0)
    }
}

/// A BIP-86 key and its P2TR address (key path only, no script tree), where the wallet sweeps
/// its coins on chain.
#[derive(Clone, PartialEq, Eq)]
pub struct SweepKey {
    index: SweepIndex,
    internal: Keypair,
    address: Address,
}

impl SweepKey {
    /// Which sweep address this is.
    pub fn index(&self) -> SweepIndex {
        self.index
    }

    /// The P2TR address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The untweaked (internal) key pair at the BIP-86 path.
    pub fn internal_keypair(&self) -> &Keypair {
        &self.internal
    }

    /// The key pair that signs a key-path spend of the address (BIP-86 tweak, no merkle root).
    pub fn spending_keypair<C: bitcoin::secp256k1::Verification>(
        &self,
        secp: &Secp256k1<C>,
    ) -> Keypair {
        self.internal.tap_tweak(secp, None).to_keypair()
    }
}

impl fmt::Debug for SweepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SweepKey({}, {})", self.index.0, self.address)
    }
}

/// Derives the wallet's keys from its seed for one network. Holds the BIP-32 master key.
#[derive(Clone)]
pub struct WalletKeys {
    master: Xpriv,
    network: Network,
    secp: &'static Secp256k1<bitcoin::secp256k1::All>,
}

impl WalletKeys {
    /// The key tree of `seed` on `network` (which picks the coin type and address format).
    pub fn new(seed: &Seed, network: Network) -> Result<WalletKeys, KeysError> {
        let master = Xpriv::new_master(network, seed.bip39_seed().as_ref())?;
        Ok(WalletKeys {
            master,
            network,
            secp: shared::secp::ctx(),
        })
    }

    /// The network these keys are for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The identity key, `m/7373'/coin'/0'/0'`.
    pub fn identity(&self) -> Result<IdentityKey, KeysError> {
        let path = [
            hardened(PURPOSE)?,
            self.coin()?,
            hardened(IDENTITY_ACCOUNT)?,
            hardened(0)?,
        ];
        Ok(IdentityKey(self.derive(&path)?.to_keypair(self.secp)))
    }

    /// The factory key number `index`, `m/7373'/coin'/1'/index'`.
    pub fn factory(&self, index: FactoryIndex) -> Result<FactoryKey, KeysError> {
        let path = [
            hardened(PURPOSE)?,
            self.coin()?,
            hardened(FACTORY_ACCOUNT)?,
            hardened(index.0)?,
        ];
        Ok(FactoryKey {
            index,
            secret: self.derive(&path)?.private_key,
        })
    }

    /// The sweep key and address number `index`, `m/86'/coin'/0'/0/index` (BIP-86).
    pub fn sweep(&self, index: SweepIndex) -> Result<SweepKey, KeysError> {
        let path = [
            hardened(BIP86_PURPOSE)?,
            self.coin()?,
            hardened(0)?,
            normal(0)?,
            normal(index.0)?,
        ];
        let internal = self.derive(&path)?.to_keypair(self.secp);
        let address = Address::p2tr(
            self.secp,
            internal.x_only_public_key().0,
            None,
            self.network,
        );
        Ok(SweepKey {
            index,
            internal,
            address,
        })
    }

    fn coin(&self) -> Result<ChildNumber, KeysError> {
        hardened(if self.network == Network::Bitcoin {
            0
        } else {
            1
        })
    }

    fn derive(&self, path: &[ChildNumber]) -> Result<Xpriv, KeysError> {
        Ok(self.master.derive_priv(self.secp, &path)?)
    }
}

impl fmt::Debug for WalletKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletKeys({}, redacted)", self.network)
    }
}

fn hardened(index: u32) -> Result<ChildNumber, KeysError> {
    Ok(ChildNumber::from_hardened_idx(index)?)
}

fn normal(index: u32) -> Result<ChildNumber, KeysError> {
    Ok(ChildNumber::from_normal_idx(index)?)
}
