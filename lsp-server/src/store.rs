//! SQLite persistence. Schemas migrate by version; every migration runs in one transaction.
//!
//! Schema 2 adds the factory tables (written by `crate::factory::persist`): `factories` (state,
//! current proposal and funding transaction), `factory_clients` (who joined with which amounts,
//! and whether they were excluded), `sign_guard` (the LSP's double-sign records) and
//! `signed_factories` (the complete signature set of a factory, stored before its funding
//! broadcast).

use std::path::Path;

use anyhow::{bail, Context, Result};
use bitcoin::Network;
use rusqlite::Connection;

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    "CREATE TABLE factories (
        id INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        session INTEGER,
        lsp_key TEXT NOT NULL,
        proposal TEXT,
        funding_tx TEXT,
        funding_txid TEXT,
        reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE factory_clients (
        factory INTEGER NOT NULL REFERENCES factories(id),
        client INTEGER NOT NULL,
        identity TEXT NOT NULL,
        factory_key TEXT NOT NULL,
        channel_sat INTEGER NOT NULL,
        liquidity_sat INTEGER NOT NULL,
        fee_sat INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        PRIMARY KEY (factory, client)
    );
    CREATE INDEX factory_clients_identity ON factory_clients (identity);
    CREATE TABLE sign_guard (
        prevout TEXT PRIMARY KEY,
        sighash TEXT NOT NULL,
        factory INTEGER NOT NULL
    );
    CREATE TABLE signed_factories (
        factory INTEGER PRIMARY KEY REFERENCES factories(id),
        session INTEGER NOT NULL,
        signed TEXT NOT NULL
    );",
    // Channels and payments (`channels`).
    "CREATE TABLE channels (
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        identity TEXT NOT NULL,
        client_open TEXT NOT NULL,
        opened INTEGER NOT NULL,
        PRIMARY KEY (factory, client)
    );
    CREATE TABLE channel_changes (
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        change TEXT NOT NULL,
        PRIMARY KEY (factory, client, seq)
    );
    CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        kind TEXT NOT NULL,
        payee_identity TEXT NOT NULL,
        payer_factory INTEGER,
        payer_client INTEGER,
        payer_htlc INTEGER,
        payee_factory INTEGER,
        payee_client INTEGER,
        payee_htlc INTEGER,
        amount_sat INTEGER NOT NULL,
        fee_sat INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        created INTEGER NOT NULL,
        settled INTEGER
    );
    CREATE INDEX payments_status ON payments(status);",
    // Leaf states and liquidity sales (`channels::liquidity`).
    "ALTER TABLE channel_changes ADD COLUMN leaf INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE leaves (
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        live INTEGER NOT NULL,
        states TEXT NOT NULL,
        opening TEXT NOT NULL,
        PRIMARY KEY (factory, client)
    );
    CREATE TABLE liquidity_sales (
        id INTEGER PRIMARY KEY,
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        leaf INTEGER NOT NULL,
        amount_sat INTEGER NOT NULL,
        price_sat INTEGER NOT NULL,
        created INTEGER NOT NULL
    );",
    // Round 0 of every liquidity purchase's new channel, signed or about to be: a later
    // attempt at the same leaf state must open it with the same balances (`channels::liquidity`).
    "CREATE TABLE liquidity_attempts (
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        leaf INTEGER NOT NULL,
        amount_sat INTEGER NOT NULL,
        opening TEXT NOT NULL,
        PRIMARY KEY (factory, client, leaf, amount_sat)
    );",
    // The join fee a payment paid (`shared::pay::join_fee`): taken from the HTLC offered to the
    // payee; a channel's fee is paid by its one pending or settled payment with a join fee.
    "ALTER TABLE payments ADD COLUMN join_fee_sat INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX payments_payee ON payments(payee_factory, payee_client);",
    // Payments to outside payees through the LSP's Lightning node (`channels::outside`): the
    // invoice, to send it again after a restart, and what the route's nodes took.
    "ALTER TABLE payments ADD COLUMN invoice TEXT;
    ALTER TABLE payments ADD COLUMN network_fee_msat INTEGER;",
    // Leaving factories (`shared::lifecycle`): the factory keys wallets released after moving
    // everything out of a channel (they guard nothing of the client's any more), and the
    // key-path close the LSP signed once it held every member's key, broadcast until confirmed.
    "CREATE TABLE released_keys (
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        secret TEXT NOT NULL,
        released INTEGER NOT NULL,
        PRIMARY KEY (factory, client)
    );
    CREATE TABLE factory_closes (
        factory INTEGER PRIMARY KEY,
        txid TEXT NOT NULL,
        tx TEXT NOT NULL,
        created INTEGER NOT NULL,
        confirmed_height INTEGER
    );",
    // Receiving from the Lightning Network (`channels::inbound`): the invoices the LSP's node
    // holds for its clients' payment hashes, and what the node holds of a payment that came.
    "CREATE TABLE ln_invoices (
        hash TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        amount_sat INTEGER NOT NULL,
        invoice TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    ALTER TABLE payments ADD COLUMN held_msat INTEGER;
    ALTER TABLE payments ADD COLUMN held_deadline INTEGER;",
    // Partial cooperation (`channels::sweep`): the key-path sweeps of the parts of a factory's
    // tree every member below left, stored before their first broadcast.
    "CREATE TABLE factory_sweeps (
        factory INTEGER NOT NULL,
        node INTEGER NOT NULL,
        txid TEXT NOT NULL,
        tx TEXT NOT NULL,
        spent_sat INTEGER NOT NULL,
        created INTEGER NOT NULL,
        confirmed_height INTEGER,
        PRIMARY KEY (factory, node)
    );",
    // Swaps out (`channels::swap`): the on-chain output paid against a wallet's HTLC, its
    // funding transaction stored before its first broadcast, and the refund once built.
    "CREATE TABLE swaps (
        payment INTEGER PRIMARY KEY,
        script TEXT NOT NULL,
        amount_sat INTEGER NOT NULL,
        funding_tx TEXT,
        vout INTEGER,
        refund_tx TEXT,
        state TEXT NOT NULL,
        preimage TEXT
    );",
];

/// The LSP's database.
pub struct Store {
    pub(crate) conn: Connection,
}

impl Store {
    /// Opens (creating if needed) `lsp.sqlite` in `data_dir` and migrates it to the latest schema.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join("lsp.sqlite");
        let mut conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// Current schema version.
    #[cfg(test)]
    fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Binds the data dir to one network on first use and refuses any other afterwards, so a
    /// regtest database is never served as mainnet (or the reverse).
    pub fn check_network(&self, network: Network) -> Result<()> {
        let name = network.to_core_arg();
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('network', ?1)",
            [name],
        )?;
        let stored: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'network'", [], |r| {
                    r.get(0)
                })?;
        if stored != name {
            bail!("this data dir belongs to {stored}, not {name}; use another --data-dir");
        }
        Ok(())
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrates_once() {
        let dir = std::env::temp_dir().join(format!("lsp-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = super::Store::open(&dir).unwrap().schema_version().unwrap();
        assert_eq!(v as usize, super::MIGRATIONS.len());
        let again = super::Store::open(&dir).unwrap().schema_version().unwrap();
        assert_eq!(again, v);
        let store = super::Store::open(&dir).unwrap();
        store.check_network(bitcoin::Network::Regtest).unwrap();
        store.check_network(bitcoin::Network::Regtest).unwrap();
        assert!(store.check_network(bitcoin::Network::Bitcoin).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
