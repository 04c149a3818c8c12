//! Sending the coins at the wallet's own on-chain address (what an exit or a sweep paid it) to
//! any address: the address read and checked for the wallet's network ([`parse_address`]), and
//! one transaction spending every confirmed coin, paying the amount asked (or everything) and
//! returning the change to the same address ([`build_spend`]). Each input is a BIP-86 key-path
//! spend of the wallet's sweep key. Nothing is sent here: the caller shows the
//! [`Spend`]'s amount and fee first, and broadcasts only what the user confirmed.

use bitcoin::address::NetworkUnchecked;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, Message};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    absolute, transaction, Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Sequence,
    TapSighashType, Transaction, TxIn, TxOut, Witness,
};

/// The least an output may hold (P2TR dust): less is refused, and change below it goes to the
/// fee.
pub const DUST: Amount = Amount::from_sat(330);

/// Why a payment from the on-chain address cannot be made, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not a Bitcoin address.
    #[error("that is not a Bitcoin address: check it and paste it again")]
    NotAnAddress,
    /// An address of another network.
    #[error("that address is for another network; this wallet is on {ours}")]
    WrongNetwork {
        /// This wallet's network.
        ours: Network,
    },
    /// No confirmed coin to spend.
    #[error("there is nothing confirmed on chain to send yet")]
    NothingToSend,
    /// Below the dust limit.
    #[error("send at least {} sats: less cannot be an output on chain", DUST.to_sat())]
    TooLittle,
    /// The amount and its fee are more than the coins.
    #[error(
        "you have {} sats on chain; sending {} sats costs a network fee of {} sats, {} sats in all",
        .available.to_sat(), .amount.to_sat(), .fee.to_sat(), (*.amount + *.fee).to_sat()
    )]
    TooMuch {
        /// What the confirmed coins hold.
        available: Amount,
        /// What was asked.
        amount: Amount,
        /// The network fee it would cost.
        fee: Amount,
    },
    /// Signing failed (a bug, reported rather than panicking).
    #[error("could not sign: {0}")]
    Signing(String),
}

/// A signed payment from the on-chain address, not yet sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// The signed transaction.
    pub tx: Transaction,
    /// Where it pays.
    pub to: Address,
    /// What the payee gets.
    pub amount: Amount,
    /// The network fee.
    pub fee: Amount,
    /// The fee rate it pays.
    pub rate: FeeRate,
    /// What comes back to the wallet's address (zero when everything goes).
    pub change: Amount,
}

/// The confirmed coins at `address`, as the chain at `esplora` has them.
pub async fn confirmed_coins(
    esplora: &crate::chain::Esplora,
    address: &Address,
) -> Result<Vec<(OutPoint, TxOut)>, esplora_client::Error> {
    let utxos = esplora.get_address_utxos(address).await?;
    Ok(utxos
        .into_iter()
        .filter(|u| u.status.confirmed)
        .map(|u| {
            (
                OutPoint::new(u.txid, u.vout),
                TxOut {
                    value: u.value,
                    script_pubkey: address.script_pubkey(),
                },
            )
        })
        .collect())
}

/// Reads `text` as an address of `network`.
pub fn parse_address(text: &str, network: Network) -> Result<Address, SendError> {
    let unchecked: Address<NetworkUnchecked> =
        text.trim().parse().map_err(|_| SendError::NotAnAddress)?;
    unchecked
        .require_network(network)
        .map_err(|_| SendError::WrongNetwork { ours: network })
}

/// Builds and signs a payment of `amount` (or, with `None`, everything less the fee) to `to`,
/// spending every coin in `coins` (outputs of `from`, whose key-path signer is `key`, the
/// BIP-86-tweaked key pair) at `rate`, with change back to `from`.
pub fn build_spend(
    coins: &[(OutPoint, TxOut)],
    key: &Keypair,
    from: &Address,
    to: &Address,
    amount: Option<Amount>,
    rate: FeeRate,
) -> Result<Spend, SendError> {
    if coins.is_empty() {
        return Err(SendError::NothingToSend);
    }
    let available: Amount = coins.iter().map(|(_, o)| o.value).sum();
    let pay = |value| TxOut {
        value,
        script_pubkey: to.script_pubkey(),
    };
    let back = |value| TxOut {
        value,
        script_pubkey: from.script_pubkey(),
    };
    let fee_for = |outputs: Vec<TxOut>| {
        let tx = unsigned(coins, outputs, true);
        rate.fee_vb(tx.vsize() as u64).unwrap_or(Amount::MAX_MONEY)
    };
    let (outputs, amount, fee, change) = match amount {
        None => {
            let fee = fee_for(vec![pay(Amount::ZERO)]);
            let amount = available
                .checked_sub(fee)
                .filter(|a| *a >= DUST)
                .ok_or(SendError::TooLittle)?;
            (vec![pay(amount)], amount, fee, Amount::ZERO)
        }
        Some(amount) if amount < DUST => return Err(SendError::TooLittle),
        Some(amount) => {
            let fee = fee_for(vec![pay(amount), back(Amount::ZERO)]);
            let change = available
                .checked_sub(amount + fee)
                .ok_or(SendError::TooMuch {
                    available,
                    amount,
                    fee,
                })?;
            if change >= DUST {
                (vec![pay(amount), back(change)], amount, fee, change)
            } else {
                // Change below dust goes to the fee rather than making an unspendable output.
                (vec![pay(amount)], amount, fee + change, Amount::ZERO)
            }
        }
    };
    let mut tx = unsigned(coins, outputs, false);
    let prevouts: Vec<TxOut> = coins.iter().map(|(_, o)| o.clone()).collect();
    let secp = shared::secp::ctx();
    for i in 0..tx.input.len() {
        let sighash = SighashCache::new(&tx)
            .taproot_key_spend_signature_hash(i, &Prevouts::All(&prevouts), TapSighashType::Default)
            .map_err(|e| SendError::Signing(e.to_string()))?;
        let sig =
            secp.sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), key);
        tx.input[i].witness = Witness::from_slice(&[sig.serialize()]);
    }
    Ok(Spend {
        tx,
        to: to.clone(),
        amount,
        fee,
        rate,
        change,
    })
}

/// The transaction spending `coins` to `outputs`, version 2, RBF-signalling; with `sized`, each
/// input carries a 64-byte placeholder signature so its size is the signed size.
fn unsigned(coins: &[(OutPoint, TxOut)], outputs: Vec<TxOut>, sized: bool) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: coins
            .iter()
            .map(|(outpoint, _)| TxIn {
                previous_output: *outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: if sized {
                    Witness::from_slice(&[[0u8; 64]])
                } else {
                    Witness::new()
                },
            })
            .collect(),
        output: outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::key::TapTweak;
    use bitcoin::secp256k1::SecretKey;

    fn wallet() -> (Keypair, Address) {
        let secp = shared::secp::ctx();
        let internal = Keypair::from_secret_key(secp, &SecretKey::from_slice(&[7; 32]).unwrap());
        let address = Address::p2tr(secp, internal.x_only_public_key().0, None, Network::Regtest);
        (internal.tap_tweak(secp, None).to_keypair(), address)
    }

    fn coin(n: u8, sats: u64, address: &Address) -> (OutPoint, TxOut) {
        (
            OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
            TxOut {
                value: Amount::from_sat(sats),
                script_pubkey: address.script_pubkey(),
            },
        )
    }

    fn payee() -> Address {
        parse_address(
            "bcrt1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqc8gma6",
            Network::Regtest,
        )
        .expect("a regtest address")
    }

    #[test]
    fn a_payment_pays_the_amount_and_returns_the_change_less_the_fee() {
        let (key, from) = wallet();
        let coins = [coin(1, 30_000, &from), coin(2, 20_000, &from)];
        let rate = FeeRate::from_sat_per_vb_u32(2);
        let spend = build_spend(
            &coins,
            &key,
            &from,
            &payee(),
            Some(Amount::from_sat(10_000)),
            rate,
        )
        .expect("builds");
        assert_eq!(spend.tx.output[0].value, Amount::from_sat(10_000));
        assert_eq!(spend.tx.output[1].script_pubkey, from.script_pubkey());
        assert_eq!(
            spend.amount + spend.fee + spend.change,
            Amount::from_sat(50_000)
        );
        assert_eq!(spend.fee, rate.fee_vb(spend.tx.vsize() as u64).unwrap());
        assert_eq!(spend.tx.input.len(), 2);
    }

    #[test]
    fn everything_goes_in_one_output_less_the_fee() {
        let (key, from) = wallet();
        let coins = [coin(1, 30_000, &from)];
        let rate = FeeRate::from_sat_per_vb_u32(3);
        let spend = build_spend(&coins, &key, &from, &payee(), None, rate).expect("builds");
        assert_eq!(spend.tx.output.len(), 1);
        assert_eq!(spend.amount + spend.fee, Amount::from_sat(30_000));
        assert_eq!(spend.change, Amount::ZERO);
    }

    #[test]
    fn what_cannot_be_sent_says_why() {
        let (key, from) = wallet();
        let rate = FeeRate::from_sat_per_vb_u32(2);
        let coins = [coin(1, 10_000, &from)];
        let too_much = build_spend(
            &coins,
            &key,
            &from,
            &payee(),
            Some(Amount::from_sat(10_000)),
            rate,
        )
        .expect_err("the fee does not fit");
        assert!(matches!(too_much, SendError::TooMuch { .. }), "{too_much}");
        assert!(
            too_much
                .to_string()
                .contains("you have 10000 sats on chain"),
            "{too_much}"
        );
        assert_eq!(
            build_spend(
                &coins,
                &key,
                &from,
                &payee(),
                Some(Amount::from_sat(100)),
                rate
            ),
            Err(SendError::TooLittle)
        );
        assert_eq!(
            build_spend(&[], &key, &from, &payee(), None, rate),
            Err(SendError::NothingToSend)
        );
        assert_eq!(
            parse_address(
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
                Network::Regtest
            ),
            Err(SendError::WrongNetwork {
                ours: Network::Regtest
            })
        );
        assert_eq!(
            parse_address("hello", Network::Regtest),
            Err(SendError::NotAnAddress)
        );
    }
}
