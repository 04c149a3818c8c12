//! Spending: build, sign and persist a payment ([`LspWallet::fund`]) or an RBF replacement
//! ([`LspWallet::bump_fee`]). Both return a transaction that is stored but not yet broadcast.

use bdk_wallet::error::{BuildFeeBumpError, CreateTxError};
use bdk_wallet::{KeychainKind, SignOptions, Wallet};
use bitcoin::psbt::{ExtractTxError, Psbt};
use bitcoin::{FeeRate, OutPoint, Transaction, TxOut, Txid};

use super::chain::FEE_RATE_CAP;
use super::{unix_now, LspWallet, State, WalletError};

impl LspWallet {
    /// Builds and signs a transaction paying `outputs` at `fee_rate`, choosing coins and adding
    /// change to this wallet, signalling RBF. The transaction is persisted as unconfirmed (its
    /// coins are no longer offered to other payments) and returned; call
    /// [`broadcast`](Self::broadcast) to send it. If it never reaches the network, the next
    /// [`sync`](Self::sync) frees its coins.
    pub fn fund(&self, outputs: &[TxOut], fee_rate: FeeRate) -> Result<Transaction, WalletError> {
        if outputs.is_empty() {
            return Err(WalletError::NoOutputs);
        }
        let mut state = self.lock()?;
        let built = {
            let mut builder = state.wallet.build_tx();
            for output in outputs {
                builder.add_recipient(output.script_pubkey.clone(), output.value);
            }
            builder.fee_rate(fee_rate);
            builder.finish()
        };
        let tx = self.sign_and_record(&mut state, built, unix_now())?;
        tracing::info!(txid = %tx.compute_txid(), outputs = outputs.len(), "built on-chain funding transaction");
        Ok(tx)
    }

    /// Builds and signs a transaction paying `outputs` from exactly the inputs of `previous`, an
    /// unbroadcast wallet transaction (e.g. an earlier session's funding transaction of the same
    /// factory), which is forgotten first. Both spend the same coins, so at most one of them can
    /// ever confirm. Persisted and returned like [`fund`](Self::fund).
    pub fn fund_replacing(
        &self,
        previous: &Transaction,
        outputs: &[TxOut],
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        if outputs.is_empty() {
            return Err(WalletError::NoOutputs);
        }
        let inputs: Vec<OutPoint> = previous.input.iter().map(|i| i.previous_output).collect();
        let mut state = self.lock()?;
        state
            .wallet
            .apply_evicted_txs([(previous.compute_txid(), unix_now())]);
        let built = {
            let mut builder = state.wallet.build_tx();
            builder
                .add_utxos(&inputs)
                .map_err(|e| WalletError::InputsGone {
                    txid: previous.compute_txid(),
                    reason: e.to_string(),
                })?;
            builder.manually_selected_only();
            for output in outputs {
                builder.add_recipient(output.script_pubkey.clone(), output.value);
            }
            builder.fee_rate(fee_rate);
            builder.finish()
        };
        let tx = self.sign_and_record(&mut state, built, unix_now())?;
        tracing::info!(previous = %previous.compute_txid(), txid = %tx.compute_txid(), "rebuilt funding transaction on the same inputs");
        Ok(tx)
    }

    /// Forgets an unbroadcast wallet transaction (a factory that was abandoned before its
    /// funding broadcast), freeing its coins at once instead of at the next sync. A transaction
    /// the wallet does not hold is ignored.
    pub fn abandon(&self, txid: Txid) -> Result<(), WalletError> {
        let mut state = self.lock()?;
        state.wallet.apply_evicted_txs([(txid, unix_now())]);
        state.persist()?;
        tracing::info!(%txid, "abandoned unbroadcast transaction");
        Ok(())
    }

    /// Builds and signs a replacement of the unconfirmed wallet transaction `txid` paying the
    /// same outputs at `new_rate` (taking the extra fee from change, or adding coins). The
    /// replacement is persisted in place of the original and returned; broadcast it next.
    pub fn bump_fee(&self, txid: Txid, new_rate: FeeRate) -> Result<Transaction, WalletError> {
        let mut state = self.lock()?;
        let original_seen = state
            .wallet
            .tx_graph()
            .get_tx_node(txid)
            .and_then(|node| node.last_seen)
            .unwrap_or(0);
        let built = {
            let mut builder = state
                .wallet
                .build_fee_bump(txid)
                .map_err(|e| fee_bump_error(txid, e))?;
            builder.fee_rate(new_rate);
            builder.finish()
        };
        // Seen strictly later than the original, so the wallet counts the replacement, not it.
        let seen = unix_now().max(original_seen.saturating_add(1));
        let tx = self.sign_and_record(&mut state, built, seen)?;
        tracing::info!(original = %txid, replacement = %tx.compute_txid(), "built fee bump");
        Ok(tx)
    }

    /// Signs what the builder made, and stores it as unconfirmed (seen at `seen`) before it is
    /// returned, so its coins are never offered twice.
    pub(super) fn sign_and_record(
        &self,
        state: &mut State,
        built: Result<Psbt, CreateTxError>,
        seen: u64,
    ) -> Result<Transaction, WalletError> {
        let psbt = built.map_err(|e| create_tx_error(state, e))?;
        let tx = self.sign(&state.wallet, psbt)?;
        state.wallet.apply_unconfirmed_txs([(tx.clone(), seen)]);
        state.persist()?;
        Ok(tx)
    }

    /// Signs every input with the master key, finalizes, and extracts the transaction. A
    /// keyless input (a P2A anchor) gets its empty witness here: it needs no signature.
    fn sign(&self, wallet: &Wallet, mut psbt: Psbt) -> Result<Transaction, WalletError> {
        let mut keyless = Vec::new();
        for (i, input) in psbt.inputs.iter_mut().enumerate() {
            if input
                .witness_utxo
                .as_ref()
                .is_some_and(|o| o.script_pubkey == bitcoin::ScriptBuf::new_p2a())
            {
                input.final_script_witness = Some(bitcoin::Witness::new());
                keyless.push(i);
            }
        }
        if let Err((_, errors)) = psbt.sign(&self.master, wallet.secp_ctx()) {
            if errors.keys().any(|i| !keyless.contains(i)) {
                return Err(WalletError::Signing(format!("{errors:?}")));
            }
        }
        let finalized = wallet
            .finalize_psbt(&mut psbt, SignOptions::default())
            .map_err(|e| WalletError::Signing(e.to_string()))?;
        if !finalized {
            return Err(WalletError::Signing(
                "not every input could be finalized".to_owned(),
            ));
        }
        psbt.extract_tx_with_fee_rate_limit(FEE_RATE_CAP)
            .map_err(|e| match e {
                ExtractTxError::AbsurdFeeRate { fee_rate, .. } => WalletError::AbsurdFee {
                    fee_rate,
                    cap: FEE_RATE_CAP,
                },
                other => WalletError::Signing(other.to_string()),
            })
    }
}

/// Turns BDK's builder error into ours; for missing funds, reveals an address to fund.
fn create_tx_error(state: &mut State, e: CreateTxError) -> WalletError {
    match e {
        CreateTxError::CoinSelection(missing) => {
            let address = state
                .wallet
                .next_unused_address(KeychainKind::External)
                .address;
            if let Err(e) = state.persist() {
                return e;
            }
            WalletError::InsufficientFunds {
                available: missing.available,
                needed: missing.needed,
                address,
            }
        }
        CreateTxError::OutputBelowDustLimit(index) => WalletError::Dust { index },
        CreateTxError::FeeRateTooLow { required } => WalletError::FeeRateTooLow { required },
        CreateTxError::FeeTooLow { required } => WalletError::FeeTooLow { required },
        other => WalletError::Build(Box::new(other)),
    }
}

fn fee_bump_error(txid: Txid, e: BuildFeeBumpError) -> WalletError {
    match e {
        BuildFeeBumpError::TransactionNotFound(_) => WalletError::UnknownTx(txid),
        BuildFeeBumpError::TransactionConfirmed(_) => WalletError::AlreadyConfirmed(txid),
        BuildFeeBumpError::IrreplaceableTransaction(_) => WalletError::NotReplaceable(txid),
        source => WalletError::Bump { txid, source },
    }
}
