//! SQLite for channels and payments: each channel's opening and its ordered `ChannelChange`
//! log (replayed by `Channel::restore`), and one row per payment (with the join fee it paid, so
//! a channel's join fee is paid once, across restarts).

use std::path::Path;
use std::str::FromStr;

use bitcoin::hashes::sha256;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::Amount;
use rusqlite::{params, Connection, OptionalExtension};
use shared::channel::{ChannelChange, CommitmentSpec};
use shared::leaf::{LeafEpoch, LeafStates};
use shared::pay::{ChannelId, ChannelOpen, JoinFee};
use shared::swap::SwapScript;
use shared::tree::FactoryProposal;
use shared::types::{ClientId, FactoryId, NodeId};

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

/// A stored value as JSON (every stored type serializes infallibly).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored values serialize")
}

fn corrupt(what: &'static str) -> impl Fn(String) -> ChannelStoreError {
    move |reason| ChannelStoreError::Corrupt { what, reason }
}

/// A stored channel.
pub struct StoredChannel {
    /// Which.
    pub id: ChannelId,
    /// Its client.
    pub identity: XOnlyPublicKey,
    /// What the client sent when it opened the live channel.
    pub client_open: ChannelOpen,
    /// The live channel's changes, in order.
    pub changes: Vec<ChannelChange>,
    /// The next sequence number (changes of every leaf state share one sequence).
    pub next_seq: u64,
    /// The leaf's states, once the client bought liquidity.
    pub leaf: Option<StoredLeaf>,
}

/// A leaf that advanced: its states and the live channel's opening balances.
pub struct StoredLeaf {
    /// Every state and redistribution.
    pub states: LeafStates,
    /// The live channel's opening balances.
    pub opening: CommitmentSpec,
}

/// Everything one completed liquidity sale writes, in one transaction.
pub struct SaleRecord<'a> {
    /// The channel.
    pub id: ChannelId,
    /// The leaf after the sale.
    pub states: &'a LeafStates,
    /// The new channel's opening balances.
    pub opening: &'a CommitmentSpec,
    /// What the wallet sent to open the new channel.
    pub client_open: &'a ChannelOpen,
    /// The new channel's changes so far (round 0), with their sequence numbers.
    pub changes: &'a [(u64, ChannelChange)],
    /// Liquidity sold.
    pub amount: Amount,
    /// Its price.
    pub price: Amount,
    /// Unix time.
    pub now: u64,
}

/// Liquidity sold since the database was created.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SalesTotals {
    /// Number of sales.
    pub sales: u64,
    /// Liquidity moved into channels.
    pub sold_sat: u64,
    /// What the clients paid for it.
    pub earned_sat: u64,
}

/// One payment row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaymentRow {
    /// Row id.
    pub id: i64,
    /// Payment hash (hex).
    pub hash: String,
    /// `forward`, `outside` (to a payee beyond the LSP, through its Lightning node),
    /// `inbound` (from the Lightning Network, held by the node), `swap` (to an on-chain
    /// output, `channels::swap`) or `faucet`.
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
    /// The invoice's amount (what the payee is paid, its join fee included).
    pub amount_sat: u64,
    /// Routing fee.
    pub fee_sat: u64,
    /// The payee's join fee, taken from the HTLC offered to it (`shared::pay::join_fee`).
    pub join_fee_sat: u64,
    /// For an outside payment: what the route's nodes took, once settled (out of `fee_sat`).
    pub network_fee_msat: Option<u64>,
    /// For a payment from the Lightning Network: what the LSP's node holds (msat), claimed with
    /// the payee's preimage.
    pub held_msat: Option<u64>,
    /// ...and the height after which the node fails it back by itself.
    pub held_deadline: Option<u32>,
    /// `pending`, `settled` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Unix time created.
    pub created: u64,
    /// Unix time settled or failed.
    pub settled: Option<u64>,
}

/// A swap out not yet ended, as stored.
pub struct SwapRow {
    /// Its payment's row.
    pub payment: i64,
    /// The output's script.
    pub script: SwapScript,
    /// The output's value.
    pub amount: Amount,
    /// The funding transaction and the output's index, once built.
    pub funding: Option<(bitcoin::Transaction, u32)>,
    /// The refund, once built.
    pub refund: Option<bitcoin::Transaction>,
}

/// An invoice the LSP's Lightning node holds for a client's payment hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LnInvoiceRow {
    /// The client's payment hash.
    pub hash: bitcoin::hashes::sha256::Hash,
    /// The client.
    pub identity: XOnlyPublicKey,
    /// The invoice's amount.
    pub amount: Amount,
    /// The invoice, signed by the node.
    pub invoice: String,
    /// Unix time it stops being payable.
    pub expires_at: u64,
    /// Unix time made.
    pub created: u64,
}

/// Fees earned over the database's life, from the settled payments: routing fees and join
/// fees apart.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FeesEarned {
    /// Routing fees of settled payments.
    pub routing_sat: u64,
    /// Join fees taken from settled payments.
    pub join_sat: u64,
    /// How many channels paid their join fee.
    pub joins_paid: u64,
    /// What outside payments' routes took, paid by the LSP out of `routing_sat`.
    pub network_msat: u64,
}

/// The router's connection to the LSP's database.
pub struct ChannelStore {
    conn: Connection,
    /// Payment rows' updates that ride in the next [`ChannelStore::append`] transaction, with
    /// the channel changes they go with (one `fsync` for both, and never one without the other).
    batched: Vec<BatchedWrite>,
}

/// Ends payment `?1`: its status, the reason, when.
const END_PAYMENT: &str =
    "UPDATE payments SET status = ?2, reason = ?3, settled = ?4 WHERE id = ?1";

/// An update of a payment row written with the next batch of channel changes.
enum BatchedWrite {
    /// [`ChannelStore::payment_delivered`].
    Delivered {
        id: i64,
        payee: ChannelId,
        htlc: u64,
        join_fee: Amount,
    },
    /// [`ChannelStore::payment_ended_with_batch`].
    Ended {
        id: i64,
        status: &'static str,
        reason: Option<String>,
        now: u64,
    },
}

fn write_payment(conn: &Connection, write: &BatchedWrite) -> rusqlite::Result<usize> {
    match write {
        BatchedWrite::Delivered {
            id,
            payee,
            htlc,
            join_fee,
        } => conn.execute(
            "UPDATE payments SET payee_factory = ?2, payee_client = ?3, payee_htlc = ?4,
                join_fee_sat = ?5 WHERE id = ?1",
            params![
                id,
                payee.factory.0 as i64,
                payee.client.0 as i64,
                *htlc as i64,
                join_fee.to_sat() as i64
            ],
        ),
        BatchedWrite::Ended {
            id,
            status,
            reason,
            now,
        } => conn.execute(END_PAYMENT, params![id, status, reason, *now as i64]),
    }
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
        Ok(ChannelStore {
            conn,
            batched: Vec::new(),
        })
    }

    /// The identity of member `client` of funded factory `factory`, if there is one.
    pub fn funded_identity(
        &self,
        id: ChannelId,
    ) -> Result<Option<XOnlyPublicKey>, ChannelStoreError> {
        let identity: Option<String> = self
            .conn
            .query_row(
                "SELECT c.identity FROM factory_clients c
                 JOIN factories f ON f.id = c.factory
                 WHERE c.factory = ?1 AND c.client = ?2 AND f.state = 'funded'
                   AND f.proposal IS NOT NULL",
                params![id.factory.0 as i64, id.client.0 as i64],
                |r| r.get(0),
            )
            .optional()?;
        identity
            .map(|i| XOnlyPublicKey::from_str(&i).map_err(|e| corrupt("identity")(e.to_string())))
            .transpose()
    }

    /// The proposal of funded factory `factory`, if it is one.
    pub fn funded_proposal(
        &self,
        factory: FactoryId,
    ) -> Result<Option<FactoryProposal>, ChannelStoreError> {
        let proposal: Option<String> = self
            .conn
            .query_row(
                "SELECT proposal FROM factories
                 WHERE id = ?1 AND state = 'funded' AND proposal IS NOT NULL",
                params![factory.0 as i64],
                |r| r.get(0),
            )
            .optional()?;
        proposal
            .map(|p| serde_json::from_str(&p).map_err(|e| corrupt("proposal")(e.to_string())))
            .transpose()
    }

    /// The final signatures of factory `factory`'s tree, by node (the ceremony's complete set).
    pub fn tree_signatures(
        &self,
        factory: FactoryId,
    ) -> Result<Vec<(NodeId, schnorr::Signature)>, ChannelStoreError> {
        #[derive(serde::Deserialize)]
        struct Signed {
            signatures: Vec<(NodeId, schnorr::Signature)>,
        }
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT signed FROM signed_factories WHERE factory = ?1",
                params![factory.0 as i64],
                |r| r.get(0),
            )
            .optional()?;
        let json = json.ok_or_else(|| corrupt("signed factory")("none stored".into()))?;
        let signed: Signed =
            serde_json::from_str(&json).map_err(|e| corrupt("signed factory")(e.to_string()))?;
        Ok(signed.signatures)
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
    /// changes allow is sent), with the payment updates batched since the last call. On failure
    /// the batched updates stay queued for the next call.
    pub fn append(
        &mut self,
        changes: &[(ChannelId, LeafEpoch, u64, ChannelChange)],
    ) -> Result<(), ChannelStoreError> {
        if changes.is_empty() && self.batched.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO channel_changes (factory, client, seq, change, leaf)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, leaf, seq, change) in changes {
                stmt.execute(params![
                    id.factory.0 as i64,
                    id.client.0 as i64,
                    *seq as i64,
                    json(change),
                    i64::from(leaf.0)
                ])?;
            }
            for write in &self.batched {
                write_payment(&tx, write)?;
            }
        }
        tx.commit()?;
        self.batched.clear();
        Ok(())
    }

    /// Whether payment updates wait for the next [`ChannelStore::append`].
    pub fn has_batched(&self) -> bool {
        !self.batched.is_empty()
    }

    /// The balances an earlier attempt opened leaf state `leaf`'s channel with, bought with
    /// `amount`, if there was one.
    pub fn attempt(
        &self,
        id: ChannelId,
        leaf: LeafEpoch,
        amount: Amount,
    ) -> Result<Option<CommitmentSpec>, ChannelStoreError> {
        let earlier: Option<String> = self
            .conn
            .query_row(
                "SELECT opening FROM liquidity_attempts
                 WHERE factory = ?1 AND client = ?2 AND leaf = ?3 AND amount_sat = ?4",
                params![
                    id.factory.0 as i64,
                    id.client.0 as i64,
                    i64::from(leaf.0),
                    amount.to_sat() as i64
                ],
                |r| r.get(0),
            )
            .optional()?;
        earlier
            .map(|e| {
                serde_json::from_str(&e).map_err(|e| corrupt("liquidity attempt")(e.to_string()))
            })
            .transpose()
    }

    /// Records that round 0 of the new channel of leaf state `leaf` bought with `amount` opens
    /// with `opening` (kept if an identical one is recorded). Two attempts at one (leaf,
    /// amount) build the same channel output with the same keys, so a second commitment 0 with
    /// other balances would be one the LSP can never revoke: callers refuse that first
    /// ([`ChannelStore::attempt`]).
    pub fn record_attempt(
        &self,
        id: ChannelId,
        leaf: LeafEpoch,
        amount: Amount,
        opening: &CommitmentSpec,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "INSERT INTO liquidity_attempts (factory, client, leaf, amount_sat, opening)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![
                id.factory.0 as i64,
                id.client.0 as i64,
                i64::from(leaf.0),
                amount.to_sat() as i64,
                json(opening)
            ],
        )?;
        Ok(())
    }

    /// Records a completed liquidity sale: the leaf's states, the new live channel's opening
    /// and round 0, the wallet's new `channel_open` and the sale, all or nothing.
    pub fn commit_sale(&mut self, sale: &SaleRecord<'_>) -> Result<(), ChannelStoreError> {
        let (factory, client) = (sale.id.factory.0 as i64, sale.id.client.0 as i64);
        let live = i64::from(sale.states.latest().epoch.0);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO leaves (factory, client, live, states, opening) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (factory, client) DO UPDATE SET live = ?3, states = ?4, opening = ?5",
            params![factory, client, live, json(sale.states), json(sale.opening)],
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO channel_changes (factory, client, seq, change, leaf)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (seq, change) in sale.changes {
                stmt.execute(params![factory, client, *seq as i64, json(change), live])?;
            }
        }
        tx.execute(
            "UPDATE channels SET client_open = ?3 WHERE factory = ?1 AND client = ?2",
            params![factory, client, json(sale.client_open)],
        )?;
        tx.execute(
            "INSERT INTO liquidity_sales (factory, client, leaf, amount_sat, price_sat, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                factory,
                client,
                live,
                sale.amount.to_sat() as i64,
                sale.price.to_sat() as i64,
                sale.now as i64
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Liquidity sold so far.
    pub fn sales_totals(&self) -> Result<SalesTotals, ChannelStoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(amount_sat), 0), COALESCE(SUM(price_sat), 0)
             FROM liquidity_sales",
            [],
            |r| {
                Ok(SalesTotals {
                    sales: r.get::<_, i64>(0)? as u64,
                    sold_sat: r.get::<_, i64>(1)? as u64,
                    earned_sat: r.get::<_, i64>(2)? as u64,
                })
            },
        )?)
    }

    fn load_leaf(
        &self,
        factory: i64,
        client: i64,
    ) -> Result<Option<StoredLeaf>, ChannelStoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT states, opening FROM leaves WHERE factory = ?1 AND client = ?2",
                params![factory, client],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(states, opening)| {
            Ok(StoredLeaf {
                states: serde_json::from_str(&states)
                    .map_err(|e| corrupt("leaf states")(e.to_string()))?,
                opening: serde_json::from_str(&opening)
                    .map_err(|e| corrupt("leaf opening")(e.to_string()))?,
            })
        })
        .transpose()
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
            "SELECT change FROM channel_changes WHERE factory = ?1 AND client = ?2 AND leaf = ?3
             ORDER BY seq",
        )?;
        let mut next = self.conn.prepare(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM channel_changes WHERE factory = ?1 AND client = ?2",
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (factory, client, identity, open) in rows {
            let leaf = self.load_leaf(factory, client)?;
            let live = leaf
                .as_ref()
                .map_or(0, |l| i64::from(l.states.latest().epoch.0));
            let next_seq = next.query_row(params![factory, client], |r| r.get::<_, i64>(0))? as u64;
            let list = changes
                .query_map(params![factory, client, live], |r| r.get::<_, String>(0))?
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
                next_seq,
                leaf,
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

    /// The payee HTLC a payment was delivered on, and the join fee taken from it: written with
    /// the next batch of channel changes, which holds that HTLC.
    pub fn payment_delivered(&mut self, id: i64, payee: ChannelId, htlc: u64, join_fee: Amount) {
        self.batched.push(BatchedWrite::Delivered {
            id,
            payee,
            htlc,
            join_fee,
        });
    }

    /// What channel `id` owes for its join: the fee of the quote its client accepted (stored
    /// when the factory's session started), paid by the channel's pending or settled payment
    /// that carried a join fee, if there is one.
    pub fn join_fee(&self, id: ChannelId) -> Result<JoinFee, ChannelStoreError> {
        let (factory, client) = (id.factory.0 as i64, id.client.0 as i64);
        let quoted: i64 = self
            .conn
            .query_row(
                "SELECT fee_sat FROM factory_clients WHERE factory = ?1 AND client = ?2",
                params![factory, client],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let quoted = Amount::from_sat(quoted as u64);
        let paid_by: Option<String> = self
            .conn
            .query_row(
                "SELECT hash FROM payments
                 WHERE payee_factory = ?1 AND payee_client = ?2 AND join_fee_sat > 0
                   AND status IN ('pending', 'settled')
                 ORDER BY id LIMIT 1",
                params![factory, client],
                |r| r.get(0),
            )
            .optional()?;
        match paid_by {
            None => Ok(JoinFee::owed(quoted)),
            Some(hash) => {
                let hash = hash
                    .parse::<sha256::Hash>()
                    .map_err(|e| corrupt("payment hash")(e.to_string()))?;
                Ok(JoinFee::paid(quoted, hash))
            }
        }
    }

    /// Routing and join fees of every settled payment.
    pub fn fees_earned(&self) -> Result<FeesEarned, ChannelStoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(fee_sat), 0), COALESCE(SUM(join_fee_sat), 0),
                COALESCE(SUM(join_fee_sat > 0), 0), COALESCE(SUM(network_fee_msat), 0)
             FROM payments WHERE status = 'settled'",
            [],
            |r| {
                Ok(FeesEarned {
                    routing_sat: r.get::<_, i64>(0)? as u64,
                    join_sat: r.get::<_, i64>(1)? as u64,
                    joins_paid: r.get::<_, i64>(2)? as u64,
                    network_msat: r.get::<_, i64>(3)? as u64,
                })
            },
        )?)
    }

    /// How a payment ended.
    pub fn payment_ended(
        &self,
        id: i64,
        status: &str,
        reason: Option<&str>,
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        self.conn
            .execute(END_PAYMENT, params![id, status, reason, now as i64])?;
        Ok(())
    }

    /// [`ChannelStore::payment_ended`], written with the next batch of channel changes (the
    /// HTLC's fulfill or fail that ends it).
    pub fn payment_ended_with_batch(
        &mut self,
        id: i64,
        status: &'static str,
        reason: Option<String>,
        now: u64,
    ) {
        self.batched.push(BatchedWrite::Ended {
            id,
            status,
            reason,
            now,
        });
    }

    /// Marks payment `id` as going to an outside payee through the Lightning node, with the
    /// invoice to send: stored before the node is asked to send it.
    pub fn payment_outside(&self, id: i64, invoice: &str) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE payments SET kind = 'outside', invoice = ?2 WHERE id = ?1",
            params![id, invoice],
        )?;
        Ok(())
    }

    /// The invoice of outside payment `id`.
    pub fn outside_invoice(&self, id: i64) -> Result<Option<String>, ChannelStoreError> {
        Ok(self
            .conn
            .query_row("SELECT invoice FROM payments WHERE id = ?1", [id], |r| {
                r.get(0)
            })?)
    }

    /// Marks payment `id` as coming from the Lightning Network: `invoice` (the node's), what
    /// the node holds of it, and until which height.
    pub fn payment_held(
        &self,
        id: i64,
        invoice: &str,
        msat: u64,
        deadline: u32,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE payments SET held_msat = ?2, invoice = ?3, held_deadline = ?4 WHERE id = ?1",
            params![id, msat as i64, invoice, deadline as i64],
        )?;
        Ok(())
    }

    /// Stores an invoice the LSP's node holds for a client's payment hash.
    pub fn insert_ln_invoice(&self, invoice: &LnInvoiceRow) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO ln_invoices (hash, identity, amount_sat, invoice, expires_at, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                invoice.hash.to_string(),
                invoice.identity.to_string(),
                invoice.amount.to_sat() as i64,
                invoice.invoice,
                invoice.expires_at as i64,
                invoice.created as i64
            ],
        )?;
        Ok(())
    }

    /// The invoices the node holds for clients that were payable at or after `since` (Unix
    /// time).
    pub fn ln_invoices(&self, since: u64) -> Result<Vec<LnInvoiceRow>, ChannelStoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT hash, identity, amount_sat, invoice, expires_at, created FROM ln_invoices
             WHERE expires_at >= ?1",
        )?;
        let rows = stmt
            .query_map([since as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(hash, identity, amount, invoice, expires_at, created)| {
                Some(LnInvoiceRow {
                    hash: hash.parse().ok()?,
                    identity: identity.parse().ok()?,
                    amount: Amount::from_sat(amount as u64),
                    invoice,
                    expires_at: expires_at as u64,
                    created: created as u64,
                })
            })
            .collect())
    }

    /// Records what an outside payment's route took.
    pub fn payment_network_fee(&self, id: i64, msat: u64) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE payments SET network_fee_msat = ?2 WHERE id = ?1",
            params![id, msat as i64],
        )?;
        Ok(())
    }

    /// Stores the factory key a wallet released for channel `id` (again is no change).
    pub fn release_key(
        &self,
        id: ChannelId,
        secret: &bitcoin::secp256k1::SecretKey,
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO released_keys (factory, client, secret, released)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                id.factory.0 as i64,
                id.client.0 as i64,
                hex::encode(secret.secret_bytes()),
                now as i64
            ],
        )?;
        Ok(())
    }

    /// Every released key, by channel.
    pub fn released_keys(
        &self,
    ) -> Result<Vec<(ChannelId, bitcoin::secp256k1::SecretKey)>, ChannelStoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT factory, client, secret FROM released_keys ORDER BY factory, client",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (factory, client, secret) = row?;
            let bytes = hex::decode(&secret).map_err(|e| corrupt("released key")(e.to_string()))?;
            let secret = bitcoin::secp256k1::SecretKey::from_slice(&bytes)
                .map_err(|e| corrupt("released key")(e.to_string()))?;
            let id = channel_of(Some(factory), Some(client)).expect("both given");
            out.push((id, secret));
        }
        Ok(out)
    }

    /// Stores the signed key-path close of `factory` (before it is first broadcast).
    pub fn insert_close(
        &self,
        factory: FactoryId,
        tx: &bitcoin::Transaction,
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO factory_closes (factory, txid, tx, created)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                factory.0 as i64,
                tx.compute_txid().to_string(),
                bitcoin::consensus::encode::serialize_hex(tx),
                now as i64
            ],
        )?;
        Ok(())
    }

    /// Records the block a factory's close confirmed in.
    pub fn close_confirmed(
        &self,
        factory: FactoryId,
        tx: &bitcoin::Transaction,
        height: u32,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE factory_closes SET confirmed_height = ?2, txid = ?3, tx = ?4 WHERE factory = ?1",
            params![
                factory.0 as i64,
                height as i64,
                tx.compute_txid().to_string(),
                bitcoin::consensus::encode::serialize_hex(tx),
            ],
        )?;
        Ok(())
    }

    /// Replaces `factory`'s unconfirmed close by `tx`, the same close signed again at a higher
    /// fee rate.
    pub fn replace_close(
        &self,
        factory: FactoryId,
        tx: &bitcoin::Transaction,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE factory_closes SET txid = ?2, tx = ?3 WHERE factory = ?1 AND confirmed_height IS NULL",
            params![
                factory.0 as i64,
                tx.compute_txid().to_string(),
                bitcoin::consensus::encode::serialize_hex(tx),
            ],
        )?;
        Ok(())
    }

    /// Forgets `factory`'s close: something else spent its funding output, so it can never
    /// confirm (a restart that finds every key released signs another, which the channel watch
    /// drops again the same way).
    pub fn drop_close(&self, factory: FactoryId) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "DELETE FROM factory_closes WHERE factory = ?1 AND confirmed_height IS NULL",
            params![factory.0 as i64],
        )?;
        Ok(())
    }

    /// Stores (or replaces, signed again at a higher rate, while unconfirmed) the key-path
    /// sweep of the output `node` of `factory` would spend, worth `spent`, before it is
    /// broadcast.
    pub fn put_sweep(
        &self,
        factory: FactoryId,
        node: shared::types::NodeId,
        tx: &bitcoin::Transaction,
        spent: bitcoin::Amount,
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "INSERT INTO factory_sweeps (factory, node, txid, tx, spent_sat, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (factory, node) DO UPDATE SET txid = ?3, tx = ?4
                WHERE confirmed_height IS NULL",
            params![
                factory.0 as i64,
                node.0 as i64,
                tx.compute_txid().to_string(),
                bitcoin::consensus::encode::serialize_hex(tx),
                spent.to_sat() as i64,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// Records the block a sweep confirmed in (`tx`: the version that did).
    pub fn sweep_confirmed(
        &self,
        factory: FactoryId,
        node: shared::types::NodeId,
        tx: &bitcoin::Transaction,
        height: u32,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE factory_sweeps SET confirmed_height = ?3, txid = ?4, tx = ?5
             WHERE factory = ?1 AND node = ?2",
            params![
                factory.0 as i64,
                node.0 as i64,
                height as i64,
                tx.compute_txid().to_string(),
                bitcoin::consensus::encode::serialize_hex(tx),
            ],
        )?;
        Ok(())
    }

    /// Forgets an unconfirmed sweep: something else spent its output.
    pub fn drop_sweep(
        &self,
        factory: FactoryId,
        node: shared::types::NodeId,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "DELETE FROM factory_sweeps
             WHERE factory = ?1 AND node = ?2 AND confirmed_height IS NULL",
            params![factory.0 as i64, node.0 as i64],
        )?;
        Ok(())
    }

    /// `factory`'s stored sweeps: node, transaction, confirmation height.
    pub fn sweeps(
        &self,
        factory: FactoryId,
    ) -> Result<Vec<(shared::types::NodeId, bitcoin::Transaction, Option<u32>)>, ChannelStoreError>
    {
        let mut stmt = self.conn.prepare(
            "SELECT node, tx, confirmed_height FROM factory_sweeps WHERE factory = ?1 ORDER BY node",
        )?;
        let rows = stmt.query_map(params![factory.0 as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (node, tx, height) = row?;
            let tx = bitcoin::consensus::encode::deserialize_hex(&tx)
                .map_err(|e| corrupt("factory sweep")(e.to_string()))?;
            out.push((
                shared::types::NodeId(node as u32),
                tx,
                height.map(|h| h as u32),
            ));
        }
        Ok(out)
    }

    /// Every stored close: factory, transaction, confirmation height.
    pub fn closes(
        &self,
    ) -> Result<Vec<(FactoryId, bitcoin::Transaction, Option<u32>)>, ChannelStoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT factory, tx, confirmed_height FROM factory_closes ORDER BY factory")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (factory, tx, height) = row?;
            let tx = bitcoin::consensus::encode::deserialize_hex(&tx)
                .map_err(|e| corrupt("factory close")(e.to_string()))?;
            out.push((FactoryId(factory as u64), tx, height.map(|h| h as u32)));
        }
        Ok(out)
    }

    /// Stores a swap out of payment `payment` before its output is funded.
    pub fn insert_swap(
        &self,
        payment: i64,
        script: &SwapScript,
        amount: Amount,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "INSERT INTO swaps (payment, script, amount_sat, state) VALUES (?1, ?2, ?3, 'funding')",
            params![payment, json(script), amount.to_sat() as i64],
        )?;
        Ok(())
    }

    /// The swap's funding transaction and output, stored before its first broadcast.
    pub fn swap_funded(
        &self,
        payment: i64,
        tx: &bitcoin::Transaction,
        vout: u32,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE swaps SET funding_tx = ?2, vout = ?3, state = 'funded' WHERE payment = ?1",
            params![
                payment,
                bitcoin::consensus::encode::serialize_hex(tx),
                i64::from(vout)
            ],
        )?;
        Ok(())
    }

    /// The swap's refund, stored before its first broadcast.
    pub fn swap_refund(
        &self,
        payment: i64,
        tx: &bitcoin::Transaction,
    ) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE swaps SET refund_tx = ?2 WHERE payment = ?1",
            params![payment, bitcoin::consensus::encode::serialize_hex(tx)],
        )?;
        Ok(())
    }

    /// The preimage a swap's claim revealed, with its payment settled, in one transaction:
    /// stored before the wallet's HTLC is fulfilled, so a restart fulfills it again.
    pub fn swap_claimed(
        &mut self,
        payment: i64,
        preimage: &[u8; 32],
        now: u64,
    ) -> Result<(), ChannelStoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE swaps SET state = 'claimed', preimage = ?2 WHERE payment = ?1",
            params![payment, hex::encode(preimage)],
        )?;
        tx.execute(
            "UPDATE payments SET status = 'settled', settled = ?2 WHERE id = ?1",
            params![payment, now as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every claimed swap's preimage with its payer HTLC, for a restart to fulfill again what
    /// the channel did not store yet.
    pub fn claimed_swaps(&self) -> Result<Vec<(ChannelId, u64, [u8; 32])>, ChannelStoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT p.payer_factory, p.payer_client, p.payer_htlc, s.preimage
             FROM swaps s JOIN payments p ON p.id = s.payment
             WHERE s.state = 'claimed' AND s.preimage IS NOT NULL",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for (factory, client, htlc, preimage) in rows {
            let (Some(id), Some(htlc)) = (channel_of(factory, client), htlc) else {
                continue;
            };
            let preimage = hex::decode(&preimage)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| corrupt("swap preimage")("not 32 bytes of hex".into()))?;
            out.push((id, htlc as u64, preimage));
        }
        Ok(out)
    }

    /// How a swap ended: `refunded` or `failed` (never funded).
    pub fn swap_ended(&self, payment: i64, state: &str) -> Result<(), ChannelStoreError> {
        self.conn.execute(
            "UPDATE swaps SET state = ?2 WHERE payment = ?1",
            params![payment, state],
        )?;
        Ok(())
    }

    /// Swaps not yet ended.
    pub fn open_swaps(&self) -> Result<Vec<SwapRow>, ChannelStoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT payment, script, amount_sat, funding_tx, vout, refund_tx FROM swaps
             WHERE state IN ('funding', 'funded') ORDER BY payment",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let tx = |hex: Option<String>| -> Result<Option<bitcoin::Transaction>, ChannelStoreError> {
            hex.map(|h| {
                bitcoin::consensus::encode::deserialize_hex(&h)
                    .map_err(|e| corrupt("swap transaction")(e.to_string()))
            })
            .transpose()
        };
        rows.into_iter()
            .map(|(payment, script, amount, funding, vout, refund)| {
                Ok(SwapRow {
                    payment,
                    script: serde_json::from_str(&script)
                        .map_err(|e| corrupt("swap script")(e.to_string()))?,
                    amount: Amount::from_sat(amount as u64),
                    funding: tx(funding)?.zip(vout.map(|v| v as u32)),
                    refund: tx(refund)?,
                })
            })
            .collect()
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
                payee_identity, join_fee_sat, network_fee_msat, held_msat, held_deadline
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
                    join_fee_sat: r.get::<_, i64>(16)? as u64,
                    network_fee_msat: r.get::<_, Option<i64>>(17)?.map(|m| m as u64),
                    held_msat: r.get::<_, Option<i64>>(18)?.map(|m| m as u64),
                    held_deadline: r.get::<_, Option<i64>>(19)?.map(|h| h as u32),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::secp256k1::XOnlyPublicKey;
    use bitcoin::Amount;
    use shared::pay::ChannelId;
    use shared::types::{ClientId, FactoryId};

    use super::ChannelStore;

    #[test]
    fn a_payments_delivery_and_end_are_written_with_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::Store::open(dir.path()).unwrap();
        let mut store = ChannelStore::open(dir.path()).unwrap();
        let payee = XOnlyPublicKey::from_slice(&shared::channel::scripts::NUMS).unwrap();
        let row = store
            .insert_payment("00", "internal", &payee, None, 1_000, 1, 7)
            .unwrap();
        let channel = ChannelId {
            factory: FactoryId(1),
            client: ClientId(2),
        };
        store.payment_delivered(row, channel, 5, Amount::from_sat(30));
        store.payment_ended_with_batch(row, "settled", None, 9);
        let read = |s: &ChannelStore| s.recent_payments(10).unwrap().remove(0);
        // Nothing is written before the batch's transaction.
        let before = read(&store);
        assert_eq!(
            (before.status.as_str(), before.payee_htlc),
            ("pending", None)
        );
        assert!(store.has_batched());
        store.append(&[]).unwrap();
        let after = read(&store);
        assert_eq!(after.status, "settled");
        assert_eq!((after.payee, after.payee_htlc), (Some(channel), Some(5)));
        assert!(!store.has_batched());
        // Another connection (a restart) reads the same.
        assert_eq!(
            read(&ChannelStore::open(dir.path()).unwrap()).status,
            "settled"
        );
    }
}
