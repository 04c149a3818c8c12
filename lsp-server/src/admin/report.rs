//! Read-only reports from the LSP's database, for the admin API and `/metrics`.
//!
//! Each request opens its own read-only connection: WAL mode lets it read while the
//! coordinator writes, and a report can never change what the coordinator stored.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use serde::Serialize;

/// Runs `f` on a read-only connection to `data_dir/lsp.sqlite`.
pub fn read<T>(
    data_dir: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let conn = Connection::open_with_flags(
        data_dir.join("lsp.sqlite"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    f(&conn)
}

/// One stored factory.
#[derive(Debug, Serialize)]
pub struct FactoryReport {
    id: u64,
    state: String,
    session: Option<u64>,
    lsp_key: String,
    funding_txid: Option<String>,
    reason: Option<String>,
    created_at: u64,
    updated_at: u64,
    members: u64,
    excluded: u64,
    channel_sat: u64,
    liquidity_sat: u64,
    fees_sat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    clients: Option<Vec<ClientReport>>,
}

/// One stored membership.
#[derive(Debug, Serialize)]
pub struct ClientReport {
    factory: u64,
    client: u64,
    identity: String,
    factory_key: String,
    channel_sat: u64,
    liquidity_sat: u64,
    fee_sat: u64,
    status: String,
    reason: Option<String>,
}

const FACTORY_COLUMNS: &str =
    "SELECT f.id, f.state, f.session, f.lsp_key, f.funding_txid, f.reason,
        f.created_at, f.updated_at,
        COALESCE(SUM(c.status = 'member'), 0), COALESCE(SUM(c.status = 'excluded'), 0),
        COALESCE(SUM(CASE WHEN c.status = 'member' THEN c.channel_sat END), 0),
        COALESCE(SUM(CASE WHEN c.status = 'member' THEN c.liquidity_sat END), 0),
        COALESCE(SUM(CASE WHEN c.status = 'member' THEN c.fee_sat END), 0)
    FROM factories f LEFT JOIN factory_clients c ON c.factory = f.id";

fn factory_row(r: &Row<'_>) -> rusqlite::Result<FactoryReport> {
    Ok(FactoryReport {
        id: r.get(0)?,
        state: r.get(1)?,
        session: r.get(2)?,
        lsp_key: r.get(3)?,
        funding_txid: r.get(4)?,
        reason: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        members: r.get(8)?,
        excluded: r.get(9)?,
        channel_sat: r.get(10)?,
        liquidity_sat: r.get(11)?,
        fees_sat: r.get(12)?,
        clients: None,
    })
}

const CLIENT_COLUMNS: &str = "SELECT factory, client, identity, factory_key, channel_sat,
        liquidity_sat, fee_sat, status, reason FROM factory_clients";

fn client_row(r: &Row<'_>) -> rusqlite::Result<ClientReport> {
    Ok(ClientReport {
        factory: r.get(0)?,
        client: r.get(1)?,
        identity: r.get(2)?,
        factory_key: r.get(3)?,
        channel_sat: r.get(4)?,
        liquidity_sat: r.get(5)?,
        fee_sat: r.get(6)?,
        status: r.get(7)?,
        reason: r.get(8)?,
    })
}

/// Every factory, newest first, with member counts and totals.
pub fn factories(conn: &Connection) -> rusqlite::Result<Vec<FactoryReport>> {
    let sql = format!("{FACTORY_COLUMNS} GROUP BY f.id ORDER BY f.id DESC");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], factory_row)?;
    rows.collect()
}

/// One factory with its clients.
pub fn factory(conn: &Connection, id: u64) -> rusqlite::Result<Option<FactoryReport>> {
    let sql = format!("{FACTORY_COLUMNS} WHERE f.id = ?1 GROUP BY f.id");
    let Some(mut report) = conn.query_row(&sql, [id], factory_row).optional()? else {
        return Ok(None);
    };
    let sql = format!("{CLIENT_COLUMNS} WHERE factory = ?1 ORDER BY client");
    let mut stmt = conn.prepare(&sql)?;
    let clients = stmt.query_map(params![id], client_row)?;
    report.clients = Some(clients.collect::<rusqlite::Result<_>>()?);
    Ok(Some(report))
}

/// Every membership, newest factory first.
pub fn clients(conn: &Connection) -> rusqlite::Result<Vec<ClientReport>> {
    let sql = format!("{CLIENT_COLUMNS} ORDER BY factory DESC, client");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], client_row)?;
    rows.collect()
}

/// Factory counts for `/metrics`.
#[derive(Debug, Default)]
pub struct StateCounts {
    /// (state, count).
    pub factories: Vec<(String, u64)>,
    /// Members of funded factories.
    pub funded_clients: u64,
}

/// Counts factories by state, and the members of funded ones.
pub fn state_counts(conn: &Connection) -> rusqlite::Result<StateCounts> {
    let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM factories GROUP BY state")?;
    let factories = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let funded_clients = conn.query_row(
        "SELECT COUNT(*) FROM factory_clients c JOIN factories f ON f.id = c.factory
         WHERE f.state = 'funded' AND c.status = 'member'",
        [],
        |r| r.get(0),
    )?;
    Ok(StateCounts {
        factories,
        funded_clients,
    })
}

/// Swaps out not yet ended (`channels::swap`): how many, and the sats the LSP has put (or is
/// putting) on chain for them, which come back only by a claim's settlement or a refund.
pub fn open_swaps(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(amount_sat), 0) FROM swaps
         WHERE state IN ('funding', 'funded')",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

/// Funded factories counted by stage, in ladder order of stages.
pub fn stage_counts(conn: &Connection, tip: u32) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for entry in ladder(conn, tip)? {
        match counts.iter_mut().find(|(s, _)| *s == entry.stage) {
            Some((_, n)) => *n += 1,
            None => counts.push((entry.stage, 1)),
        }
    }
    Ok(counts)
}

/// One funded factory in the ladder view: where it is in its life, who left, how it closed.
#[derive(Debug, Serialize)]
pub struct LadderEntry {
    id: u64,
    funding_txid: Option<String>,
    funding_sat: u64,
    members: u64,
    /// Members that moved to a newer factory and released their key.
    moved: u64,
    /// `active`, `dying`, `expired`, `timed_out`; `closing` or `closed` once every member left
    /// and the LSP's key-path close is broadcast or confirmed.
    stage: String,
    /// Blocks since creation.
    age_blocks: u32,
    life: shared::lifecycle::Life,
    /// What happens next, and the height it is due (none once closed).
    next: Option<NextAction>,
    close_txid: Option<String>,
    close_height: Option<u32>,
    /// Key-path sweeps of the parts of its tree every member below left, once its tree went on
    /// chain (partial cooperation).
    sweeps: Vec<SweepEntry>,
    channel_sat: u64,
    liquidity_sat: u64,
}

/// One key-path sweep of a part of a factory's tree.
#[derive(Debug, Serialize)]
pub struct SweepEntry {
    /// The tree node whose input it spends.
    node: u32,
    txid: String,
    /// What the swept output held.
    spent_sat: u64,
    confirmed_height: Option<u32>,
}

/// `factory`'s sweeps.
fn sweeps(conn: &Connection, factory: u64) -> rusqlite::Result<Vec<SweepEntry>> {
    let mut stmt = conn.prepare(
        "SELECT node, txid, spent_sat, confirmed_height FROM factory_sweeps
         WHERE factory = ?1 ORDER BY node",
    )?;
    let rows = stmt.query_map([factory as i64], |r| {
        Ok(SweepEntry {
            node: r.get(0)?,
            txid: r.get(1)?,
            spent_sat: r.get(2)?,
            confirmed_height: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The next thing due in a factory's life.
#[derive(Debug, Serialize)]
pub struct NextAction {
    what: String,
    height: u32,
    /// Blocks from the tip (zero when due).
    in_blocks: u32,
}

/// Every funded factory's life at `tip`, oldest first.
pub fn ladder(conn: &Connection, tip: u32) -> rusqlite::Result<Vec<LadderEntry>> {
    let mut stmt = conn.prepare(
        "SELECT f.id, f.funding_txid, f.proposal,
            (SELECT COUNT(*) FROM factory_clients c WHERE c.factory = f.id AND c.status = 'member'),
            (SELECT COUNT(*) FROM released_keys r WHERE r.factory = f.id),
            k.txid, k.confirmed_height,
            (SELECT COALESCE(SUM(channel_sat), 0) FROM factory_clients c
                WHERE c.factory = f.id AND c.status = 'member'),
            (SELECT COALESCE(SUM(liquidity_sat), 0) FROM factory_clients c
                WHERE c.factory = f.id AND c.status = 'member')
         FROM factories f LEFT JOIN factory_closes k ON k.factory = f.id
         WHERE f.state = 'funded' AND f.proposal IS NOT NULL ORDER BY f.id",
    )?;
    let tip_h =
        bitcoin::absolute::Height::from_consensus(tip).unwrap_or(bitcoin::absolute::Height::ZERO);
    let rows = stmt.query_map([], |r| {
        let proposal: String = r.get(2)?;
        let proposal: shared::tree::FactoryProposal =
            serde_json::from_str(&proposal).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
        let life = shared::lifecycle::Life::of(&proposal);
        let close_txid: Option<String> = r.get(5)?;
        let close_height: Option<u32> = r.get(6)?;
        let stage = match (&close_txid, close_height) {
            (Some(_), Some(_)) => "closed".to_string(),
            (Some(_), None) => "closing".to_string(),
            _ => serde_json::to_value(life.stage(tip_h))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        let next = close_txid.is_none().then(|| {
            let (what, at) = life.next(tip_h);
            let height = at.to_consensus_u32();
            NextAction {
                what: what.into(),
                height,
                in_blocks: height.saturating_sub(tip),
            }
        });
        Ok(LadderEntry {
            id: r.get(0)?,
            funding_txid: r.get(1)?,
            funding_sat: proposal.funding_amount.to_sat(),
            members: r.get(3)?,
            moved: r.get(4)?,
            stage,
            age_blocks: tip.saturating_sub(life.created.to_consensus_u32()),
            life,
            next,
            close_txid,
            close_height,
            sweeps: Vec::new(),
            channel_sat: r.get(7)?,
            liquidity_sat: r.get(8)?,
        })
    })?;
    let mut entries = rows.collect::<rusqlite::Result<Vec<LadderEntry>>>()?;
    for entry in &mut entries {
        entry.sweeps = sweeps(conn, entry.id)?;
    }
    Ok(entries)
}
