//! A swap-out output (`shared::swap`) on a real regtest node: the wallet's claim with the
//! preimage, the LSP's refund only from its height, and what each spend reveals.

// The shared regtest helpers serve several test files; this one uses part of them.
#[allow(dead_code, unused_imports)]
mod regtest;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, ScriptBuf};
use regtest::{add, sub, Regtest, NON_FINAL};
use shared::swap::tx::{build_claim, build_refund, preimage_in};
use shared::swap::SwapScript;

const VALUE: Amount = Amount::from_sat(80_000);

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).expect("a valid secret")
}

fn p2tr(secret: &SecretKey) -> ScriptBuf {
    let secp = Secp256k1::new();
    ScriptBuf::new_p2tr(&secp, secret.x_only_public_key(&secp).0, None)
}

/// Pays `VALUE` to `script` from the faucet and confirms it.
async fn fund(rt: &Regtest, script: &SwapScript) -> OutPoint {
    let spk = script.script_pubkey();
    let address = Address::from_script(&spk, Network::Regtest).expect("P2TR");
    let txid = rt.devnet.faucet(&address, VALUE).await.expect("faucet");
    rt.mine(1).await;
    let tx = rt.esplora.get_tx(&txid).await.expect("tx").expect("known");
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == spk)
        .expect("the faucet paid the swap script") as u32;
    OutPoint::new(txid, vout)
}

#[tokio::test]
async fn the_wallet_claims_with_its_preimage_and_the_lsp_refunds_only_from_its_height() {
    let rt = Regtest::start().await;
    let secp = Secp256k1::new();
    let (claim, refund) = (key(0x21), key(0x22));
    let rate = FeeRate::from_sat_per_vb_u32(2);
    let tip = rt.tip().await;
    let preimage = [0x5a; 32];
    let script = SwapScript {
        hash: sha256::Hash::hash(&preimage),
        claim_key: claim.x_only_public_key(&secp).0,
        refund_key: refund.x_only_public_key(&secp).0,
        refund_height: add(tip, 10),
    };

    // The claim: a wrong preimage or key fails the script; the right one confirms, pays the
    // wallet's address and reveals the preimage.
    let out = fund(&rt, &script).await;
    let wallet = p2tr(&key(0x31));
    let wrong =
        build_claim(&script, out, VALUE, claim, [0x5b; 32], wallet.clone(), rate).expect("builds");
    rt.assert_script_refused(&wrong, "").await;
    let stolen =
        build_claim(&script, out, VALUE, refund, preimage, wallet.clone(), rate).expect("builds");
    rt.assert_script_refused(&stolen, "").await;
    let good =
        build_claim(&script, out, VALUE, claim, preimage, wallet.clone(), rate).expect("builds");
    rt.confirm(&good, Some(good.vsize() as u64)).await;
    assert_eq!(preimage_in(&script, &good), Some(preimage));
    let paid = rt.unspent(OutPoint::new(good.compute_txid(), 0)).await;
    assert_eq!(paid.script_pubkey, wallet);
    assert_eq!(
        paid.value,
        VALUE - rate.fee_vb(good.vsize() as u64).expect("fee")
    );

    // The refund of a second, unclaimed output: refused while the tip is below its height
    // (its lock time: valid in the block after the tip), accepted once the tip is there, and
    // it reveals nothing.
    let out = fund(&rt, &script).await;
    let lsp = p2tr(&key(0x41));
    let back = build_refund(&script, out, VALUE, refund, lsp.clone(), rate).expect("builds");
    rt.mine_to(sub(script.refund_height, 1)).await;
    rt.assert_refused(&back, &[NON_FINAL]).await;
    rt.mine(1).await;
    rt.confirm(&back, Some(back.vsize() as u64)).await;
    assert_eq!(preimage_in(&script, &back), None);
    assert_eq!(
        rt.unspent(OutPoint::new(back.compute_txid(), 0))
            .await
            .script_pubkey,
        lsp
    );
}
