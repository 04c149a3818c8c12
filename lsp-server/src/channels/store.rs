//! SQLite for channels and payments: each channel's opening and its ordered `ChannelChange`
//! log (replayed by `Channel::restore`), and one row per payment.

use std::path::Path;
use std::str::FromStr;

use bitcoin::secp256k1::XOnlyPublicKey;
use rusqlite::{params, Connection, OptionalExtension};
use shared::channel::ChannelChange;
use shared::pay::{ChannelId, ChannelOpen};
use shared::tree::FactoryProposal;
use shared::types::{ClientId, FactoryId};

/// A storage failure; the router stops acting on that channel rather than act unstored.
#[derive(Debug, thiserror::Error)]
pub enum ChannelStoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored value does not decode.
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

fn corrupt(what: &'static str) -> impl Fn(String) -> ChannelStoreError {
    move |reason| ChannelStoreError::Corrupt { what, reason }
}

/// A funded factory's member, as the coordinator stored it.
pub struct Member {
    /// The member's identity key.
    pub identity: XOnlyPublicKey,
    /// The factory's proposal.
    pub proposal: FactoryProposal,
}

/// A stored channel.
pub struct StoredChannel {
    /// Which.
    pub id: ChannelId,
    /// Its client.
    pub identity: XOnlyPublicKey,
    /// What the client sent at open.
    pub client_open: ChannelOpen,
    /// Its changes, in order.
    pub changes: Vec<ChannelChange>,
}

/// One payment row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaymentRow {
    /// Row id.
    pub id: i64,
    /// Payment hash (hex).
    pub hash: String,
    /// `forward` or `faucet`.
    pub kind: String,
    /// The payee's identity key (hex).
    pub payee_identity: String,
    /// Payer's channel (none for the faucet).
    pub payer: Option<ChannelId>,
    /// Payer's HTLC id.
    pub payer_htlc: Option<u64>,
    /// Payee's channel, once chosen.
    pub payee: Option<ChannelId>,
    /// Payee's HTLC id.
    pub payee_htlc: Option<u64>,
    /// Amount delivered.
    pub amount_sat: u64,
    /// Routing fee.
    pub fee_sat: u64,
    /// `pending`, `settled` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Unix time created.
    pub created: u64,
    /// Unix time settled or failed.
    pub settled: Option<u64>,
}

/// The router's connection to the LSP's database.
pub struct ChannelStore {
    conn: Connection,
}

fn channel_of(factory: Option<i64>, client: Option<i64>) -> Option<ChannelId> {
    Some(ChannelId {
        factory: FactoryId(factory? as u64),
        client: ClientId(client? as u32),
    })
}

impl ChannelStore {
    /// Opens the database the coordinator created and migrated.
    pub fn open(data_dir: &Path) -> Result<ChannelStore, ChannelStoreError> {
        let conn = Connection::open(data_dir.join("lsp.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(ChannelStore { conn })
    }

    /// The member `client` of funded factory `factory`, if there is one.
    pub fn funded_member(&self, id: ChannelId) -> Result<Option<Member>, ChannelStoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT c.identity, f.proposal FROM factory_clients c
                 JOIN factories f ON f.id = c.factory
                 WHERE c.factory = ?1 AND c.client = ?2 AND f.state = 'funded'
                   AND f.proposal IS NOT NULL",
                params![id.factory.0 as i64, id.client.0 as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((identity, proposal)) = row else {
            return Ok(None);
        };
        Ok(Some(Member {
            identity: XOnlyPublicKey::from_str(&identity)
                .map_err(|e| corrupt("identity")(e.to_string()))?,
            proposal: serde_json::from_str(&proposal)
                .map_err(|e| corrupt("proposal")(e.to_string()))?,
        }))
    }

    /// Records a new channel.
    pub fn insert_channel(
        &self,
        id: ChannelId,
        identity: &XOnlyPublicKey,
        client_open: &ChannelOpen,
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        let open = serde_json::to_string(client_open).expect("serializable");
        self.conn.execute(
            "INSERT INTO channels (factory, client, identity, client_open, opened)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.factory.0 as i64,
                id.client.0 as i64,
                identity.to_string(),
                open,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// Appends changes of several channels in one transaction (committed before anything the
    /// changes allow is sent). `next` holds each channel's next sequence number.
    pub fn append(
        &mut self,
        changes: &[(ChannelId, u64, ChannelChange)],
    ) -> Result<(), ChannelStoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO channel_changes (factory, client, seq, change) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, seq, change) in changes {
                let json = serde_json::to_string(change).expect("serializable");
                stmt.execute(params![
                    id.factory.0 as i64,
                    id.client.0 as i64,
                    *seq as i64,
                    json
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every stored channel with its changes.
    pub fn load_channels(&self) -> Result<Vec<StoredChannel>, ChannelStoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT factory, client, identity, client_open FROM channels ORDER BY factory, client",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut changes = self.conn.prepare(
            "SELECT change FROM channel_changes WHERE factory = ?1 AND client = ?2 ORDER BY seq",
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (factory, client, identity, open) in rows {
            let list = changes
                .query_map(params![factory, client], |r| r.get::<_, String>(0))?
                .map(|j| {
                    j.map_err(ChannelStoreError::from).and_then(|j| {
                        serde_json::from_str(&j)
                            .map_err(|e| corrupt("channel change")(e.to_string()))
                    })
                })
                .collect::<Result<Vec<ChannelChange>, _>>()?;
            out.push(StoredChannel {
                id: channel_of(Some(factory), Some(client)).expect("both set"),
                identity: XOnlyPublicKey::from_str(&identity)
                    .map_err(|e| corrupt("identity")(e.to_string()))?,
                client_open: serde_json::from_str(&open)
                    .map_err(|e| corrupt("channel open")(e.to_string()))?,
                changes: list,
            });
        }
        Ok(out)
    }

    /// Records a payment the LSP started delivering; returns its row id.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_payment(
        &self,
        hash: &str,
        kind: &str,
        payee: &XOnlyPublicKey,
        payer: Option<(ChannelId, u64)>,
        amount_sat: u64,
        fee_sat: u64,
        now: u64,
    ) -> Result<i64, ChannelStoreError> {
        self.conn.execute(
            "INSERT INTO payments (hash, kind, payer_factory, payer_client, payer_htlc,
                amount_sat, fee_sat, status, created, payee_identity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9)",
            params![
                hash,
                kind,
                payer.map(|(c, _)| c.factory.0 as i64),
                payer.map(|(c, _)| c.client.0 as i64),
                payer.map(|(_, h)| h as i64),
                amount_sat as i64,
                fee_sat as i64,
                now as i64,
                payee.to_string()
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The payee HTLC a payment was delivered on.
    pub fn payment_delivered(
        &self,
        id: i64,
        payee: ChannelId,
        htlc: u64,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE payments SET payee_factory = ?2, payee_client = ?3, payee_htlc = ?4 WHERE id = ?1",
            params![id, payee.factory.0 as i64, payee.client.0 as i64, htlc as i64],
        )?;
        Ok(())
    }

    /// How a payment ended.
    pub fn payment_ended(
        &self,
        id: i64,
        status: &str,
        reason: Option<&str>,
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE payments SET status = ?2, reason = ?3, settled = ?4 WHERE id = ?1",
            params![id, status, reason, now as i64],
        )?;
        Ok(())
    }

    /// Payments still pending (after a restart they are resumed or failed back).
    pub fn pending_payments(&self) -> Result<Vec<PaymentRow>, ChannelStoreError> {
        self.payments_where("status = 'pending'", 1_000_000)
    }

    /// The latest payments, newest first.
    pub fn recent_payments(&self, limit: u32) -> Result<Vec<PaymentRow>, ChannelStoreError> {
        self.payments_where("1 = 1", limit)
    }

    fn payments_where(
        &self,
        filter: &str,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, ChannelStoreError> {
        let sql = format!(
            "SELECT id, hash, kind, payer_factory, payer_client, payer_htlc, payee_factory,
                payee_client, payee_htlc, amount_sat, fee_sat, status, reason, created, settled,
                payee_identity
             FROM payments WHERE {filter} ORDER BY id DESC LIMIT {limit}"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PaymentRow {
                    id: r.get(0)?,
                    hash: r.get(1)?,
                    kind: r.get(2)?,
                    payer: channel_of(r.get(3)?, r.get(4)?),
                    payer_htlc: r.get::<_, Option<i64>>(5)?.map(|h| h as u64),
                    payee: channel_of(r.get(6)?, r.get(7)?),
                    payee_htlc: r.get::<_, Option<i64>>(8)?.map(|h| h as u64),
                    amount_sat: r.get::<_, i64>(9)? as u64,
                    fee_sat: r.get::<_, i64>(10)? as u64,
                    status: r.get(11)?,
                    reason: r.get(12)?,
                    created: r.get::<_, i64>(13)? as u64,
                    settled: r.get::<_, Option<i64>>(14)?.map(|s| s as u64),
                    payee_identity: r.get(15)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
