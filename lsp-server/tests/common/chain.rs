//! Reading and writing the devnet's chain as a test would by hand.

use bitcoin::{Transaction, Txid};

use super::Stack;

/// Broadcasts `tx` through the devnet's Esplora (`POST /tx`).
pub async fn broadcast(stack: &Stack, tx: &Transaction) -> Result<(), String> {
    broadcast_on(&stack.devnet, tx).await
}

/// Broadcasts `tx` through `devnet`'s Esplora (`POST /tx`).
pub async fn broadcast_on(devnet: &devnet::Devnet, tx: &Transaction) -> Result<(), String> {
    let response = reqwest::Client::new()
        .post(format!("{}/tx", devnet.esplora_url()))
        .body(bitcoin::consensus::encode::serialize_hex(tx))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(response.text().await.unwrap_or_default())
    }
}

/// The chain tip's height.
pub async fn tip(stack: &Stack) -> u32 {
    stack
        .devnet
        .rpc()
        .get_block_count()
        .await
        .expect("height")
        .to_consensus_u32()
}

/// Whether Esplora knows `txid` (in the mempool or a block).
pub async fn known(stack: &Stack, txid: Txid) -> bool {
    known_at(&stack.devnet, txid).await
}

/// Whether `devnet`'s Esplora knows `txid` (in the mempool or a block).
pub async fn known_at(devnet: &devnet::Devnet, txid: Txid) -> bool {
    reqwest::get(format!("{}/tx/{txid}/hex", devnet.esplora_url()))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Publishes every transaction of `path` above its leaf (and the leaf, if `with_leaf`), each as
/// early as its relative lock allows, mining as it goes; returns the height of the last one.
pub async fn publish_path(stack: &Stack, path: &shared::path::ClientPath, with_leaf: bool) -> u32 {
    publish_path_on(&stack.devnet, path, with_leaf).await
}

/// [`publish_path`] on `devnet` (the LSP may be gone).
pub async fn publish_path_on(
    devnet: &devnet::Devnet,
    path: &shared::path::ClientPath,
    with_leaf: bool,
) -> u32 {
    let nodes = path.nodes();
    let upto = if with_leaf {
        nodes.len()
    } else {
        nodes.len() - 1
    };
    let mut height = 0;
    for node in &nodes[..upto] {
        let tx = node.signed_tx().expect("the client's path is signed");
        for _ in 1..node.relative_delay().to_blocks() {
            devnet.mine(1).await.expect("mine");
        }
        broadcast_on(devnet, &tx).await.expect("a tree transaction");
        devnet.mine(1).await.expect("mine");
        height = devnet.height().await.expect("height").to_consensus_u32();
    }
    height
}

/// The transaction spending `txid:vout`, if any.
pub async fn spender(stack: &Stack, txid: Txid, vout: u32) -> Option<Txid> {
    spender_on(&stack.devnet, txid, vout).await
}

/// The transaction spending `txid:vout` on `devnet` (in the mempool or a block), if any.
pub async fn spender_on(devnet: &devnet::Devnet, txid: Txid, vout: u32) -> Option<Txid> {
    let status: serde_json::Value = reqwest::get(format!(
        "{}/tx/{txid}/outspend/{vout}",
        devnet.esplora_url()
    ))
    .await
    .ok()?
    .json()
    .await
    .ok()?;
    status["txid"].as_str()?.parse().ok()
}

/// Whether `txid` is in a block.
pub async fn confirmed(stack: &Stack, txid: Txid) -> bool {
    let status: Option<serde_json::Value> =
        match reqwest::get(format!("{}/tx/{txid}/status", stack.devnet.esplora_url())).await {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
    status.is_some_and(|s| s["confirmed"] == true)
}

/// Every change the LSP stored for the channel of client `client` in factory 1, in order (what
/// the LSP holds: its commitments, the committed states).
pub fn lsp_changes(stack: &Stack, client: u32) -> Vec<shared::channel::ChannelChange> {
    let db = stack.db();
    let mut stmt = db
        .prepare(
            "SELECT change FROM channel_changes WHERE factory = 1 AND client = ?1 ORDER BY seq",
        )
        .expect("query");
    let rows: Vec<String> = stmt
        .query_map([client], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    rows.iter()
        .map(|json| serde_json::from_str(json).expect("a stored change"))
        .collect()
}

/// The LSP's own signed commitment `number` of the channel of client `client` in factory 1
/// (what a cheating LSP holds).
pub fn lsp_commitment(stack: &Stack, client: u32, number: u64) -> Option<Transaction> {
    lsp_changes(stack, client)
        .into_iter()
        .find_map(|change| match change {
            shared::channel::ChannelChange::LocalCommitment { number: n, tx } if n == number => {
                Some(tx)
            }
            _ => None,
        })
}

/// What transaction `txid` (in a block or the mempool) pays to `address`.
pub async fn paid_to(stack: &Stack, txid: Txid, address: &bitcoin::Address) -> bitcoin::Amount {
    let tx = stack
        .devnet
        .rpc()
        .get_raw_transaction(&txid)
        .await
        .expect("bitcoind answers")
        .expect("the transaction");
    tx.output
        .iter()
        .filter(|o| o.script_pubkey == address.script_pubkey())
        .map(|o| o.value)
        .sum()
}

/// Waits (at most `within`) until `op` is spent on the chain the Esplora at `esplora_url`
/// serves; returns the spending transaction.
pub async fn spent_by(
    esplora_url: &str,
    op: bitcoin::OutPoint,
    within: std::time::Duration,
) -> Transaction {
    let esplora = esplora_client::Builder::new(esplora_url)
        .build_async()
        .expect("esplora client");
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(Some(s)) = esplora
            .get_output_status(&op.txid, u64::from(op.vout))
            .await
        {
            if let (true, Some(txid)) = (s.spent, s.txid) {
                return esplora.get_tx(&txid).await.expect("tx").expect("known");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{op} is spent in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Mines one block once the LSP's watch had its chance to publish: up to two seconds for the
/// mempool to fill (a pass that builds a fee child takes longer under load; a real chain gives
/// it ten minutes), then 2.3 s for the next pass to see the block.
pub async fn mine_after_a_pass(devnet: &devnet::Devnet) {
    for _ in 0..20 {
        let mempool = devnet.rpc().get_raw_mempool().await.expect("mempool");
        if !mempool.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    devnet.mine(1).await.expect("mine");
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
}

/// The signed tree path of client `client` of factory `factory`, as the LSP stored it (its
/// proposal and the ceremony's signatures): what a member's wallet holds.
pub fn member_path(stack: &Stack, factory: u64, client: u32) -> shared::path::ClientPath {
    #[derive(serde::Deserialize)]
    struct Signed {
        signatures: Vec<(
            shared::types::NodeId,
            bitcoin::secp256k1::schnorr::Signature,
        )>,
    }
    let db = stack.db();
    let (proposal, signed): (String, String) = db
        .query_row(
            "SELECT f.proposal, s.signed FROM factories f JOIN signed_factories s ON s.factory = f.id
             WHERE f.id = ?1",
            [factory],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a signed factory");
    let proposal: shared::tree::FactoryProposal =
        serde_json::from_str(&proposal).expect("a proposal");
    let signed: Signed = serde_json::from_str(&signed).expect("signatures");
    let mut path = shared::path::ClientPath::build(&proposal, shared::types::ClientId(client))
        .expect("a member's path");
    for (node, sig) in signed.signatures {
        let _ = path.set_signature(node, sig);
    }
    assert!(path.is_fully_signed(), "every node of the path is signed");
    path
}

/// Polls `check` every 100 ms until it gives a value; fails the test naming `what` after
/// `secs` seconds.
pub async fn within<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits (at most 30 s) until `txid` is in the node's mempool; `what` names it.
pub async fn in_mempool(devnet: &devnet::Devnet, txid: Txid, what: &str) {
    within(30, what, || async {
        devnet
            .rpc()
            .get_mempool_entry(&txid)
            .await
            .expect("getmempoolentry")
            .map(|_| ())
    })
    .await
}

/// Mines a block and returns the first output of `tx`, which must have confirmed in it
/// (bitcoind's `gettxout` without the mempool).
pub async fn confirm_first_output(devnet: &devnet::Devnet, tx: &Transaction) -> bitcoin::TxOut {
    devnet.mine(1).await.expect("mine");
    let out = devnet
        .rpc()
        .get_tx_out(&bitcoin::OutPoint::new(tx.compute_txid(), 0), false)
        .await
        .expect("gettxout")
        .unwrap_or_else(|| panic!("{} confirmed", tx.compute_txid()));
    bitcoin::TxOut {
        value: out.value,
        script_pubkey: out.script_pubkey,
    }
}
