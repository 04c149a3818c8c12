//! What outputs must look like, recomputed from keys and amounts (MuSig2 key aggregation,
//! BIP-86 and BIP-341 tweaks), independently of the tree builder under test.

use bitcoin::opcodes::all::{OP_CHECKSIG, OP_CSV, OP_DROP};
use bitcoin::secp256k1::{PublicKey, Secp256k1, XOnlyPublicKey};
use bitcoin::taproot::TaprootBuilder;
use bitcoin::{Amount, OutPoint, ScriptBuf, TxOut, Txid};
use musig2::secp::Point;
use musig2::KeyAggContext;
use shared::exit::ExitKit;
use shared::path::ClientPath;
use shared::tree::FactoryProposal;
use shared::types::ClientId;

use super::Regtest;

/// The untweaked MuSig2 (BIP-327) aggregate of `keys`, key-sorted first.
pub fn musig_internal(keys: &[PublicKey]) -> XOnlyPublicKey {
    let mut sorted: Vec<[u8; 33]> = keys.iter().map(PublicKey::serialize).collect();
    sorted.sort();
    let points = sorted
        .iter()
        .map(|k| Point::from_slice(k).expect("a valid key"));
    let ctx = KeyAggContext::new(points).expect("key aggregation");
    let agg: Point = ctx.aggregated_pubkey_untweaked();
    XOnlyPublicKey::from_slice(&agg.serialize_xonly()).expect("an x-only key")
}

/// What a client's leaf must hold: `[channel, L-stock, anchor]`, from the keys and amounts.
pub fn expected_leaf_outputs(proposal: &FactoryProposal, client: ClientId) -> [TxOut; 3] {
    let secp = Secp256k1::verification_only();
    let entry = &proposal.clients[client.0 as usize];
    let internal = musig_internal(&[entry.key, proposal.lsp_key]);
    let lsp = proposal.lsp_key.x_only_public_key().0;
    let csv = proposal.params.lstock_csv.to_blocks();
    let lstock_leaf = bitcoin::script::Builder::new()
        .push_int(i64::from(csv))
        .push_opcode(OP_CSV)
        .push_opcode(OP_DROP)
        .push_x_only_key(&lsp)
        .push_opcode(OP_CHECKSIG)
        .into_script();
    let lstock_tree = TaprootBuilder::new()
        .add_leaf(0, lstock_leaf)
        .expect("one leaf")
        .finalize(&secp, internal)
        .expect("a complete tree");
    [
        TxOut {
            value: entry.channel,
            script_pubkey: ScriptBuf::new_p2tr(&secp, internal, None),
        },
        TxOut {
            value: entry.lstock,
            script_pubkey: ScriptBuf::new_p2tr_tweaked(lstock_tree.output_key()),
        },
        anchor(proposal.params.anchor_value),
    ]
}

/// What the distribution tx pays `client`: its whole leaf value to its own key (BIP-86).
pub fn expected_payout(proposal: &FactoryProposal, client: ClientId) -> TxOut {
    let entry = &proposal.clients[client.0 as usize];
    TxOut {
        value: entry.channel + entry.lstock,
        script_pubkey: ScriptBuf::new_p2tr(
            &Secp256k1::verification_only(),
            entry.key.x_only_public_key().0,
            None,
        ),
    }
}

/// A P2A anchor, `OP_1 <0x4e73>`.
pub fn anchor(value: Amount) -> TxOut {
    TxOut {
        value,
        script_pubkey: ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]),
    }
}

/// Asserts the confirmed leaf `leaf` is one of `kit`'s leaves and that its three outputs are
/// unspent on chain with the amounts and scripts the client expects; returns its path.
pub async fn assert_leaf_on_chain<'k>(
    rt: &Regtest,
    kit: &'k ExitKit,
    leaf: Txid,
) -> &'k ClientPath {
    let path = kit
        .versions()
        .iter()
        .find(|v| v.leaf().txid() == leaf)
        .expect("the confirmed leaf is one of the client's");
    let tx = rt
        .rpc()
        .get_raw_transaction(&leaf)
        .await
        .expect("getrawtransaction")
        .expect("the leaf");
    assert_eq!(tx.output.len(), 3, "channel, L-stock, anchor");
    let expected = expected_leaf_outputs(path.proposal(), path.client());
    for (vout, want) in expected.iter().enumerate() {
        let got = rt.unspent(OutPoint::new(leaf, vout as u32)).await;
        assert_eq!(&got, want, "leaf output {vout}");
    }
    // The latest state's amounts: DW epochs never change what a leaf holds.
    let latest = &kit.latest().proposal().clients[path.client().0 as usize];
    assert_eq!(expected[0].value, latest.channel);
    assert_eq!(expected[1].value, latest.lstock);
    path
}
