//! What the coordinator stores about factories, in the LSP's SQLite database (schema 2 of
//! `crate::store`), and the LSP's double-sign guard.
//!
//! Durability contract (see `shared::musig::guard` and `docs/protocol.md`, "Persistence and
//! ordering"): every write here is one SQLite transaction with `synchronous = FULL`, and the
//! coordinator finishes it before it performs any later action of the ceremony. So the guard
//! records are on disk before any message that depends on them leaves, and the complete
//! signature set is on disk before the funding transaction is broadcast.
//!
//! Ceremony state itself (secret nonces) is never stored: a factory whose ceremony was in flight
//! when the LSP stopped is marked aborted at the next start.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bitcoin::consensus::encode;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::{OutPoint, TapSighash, Transaction, Txid};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use shared::ceremony::{Member, ProposalPayload, SignedFactory};
use shared::musig::{GuardError, GuardRecord, MemorySignGuard, SignGuard};
use shared::tree::FactoryProposal;
use shared::types::{ClientId, FactoryId, NodeId, SessionId, SigningJob};

use crate::store::Store;

/// Why a factory record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("the LSP database failed: {0}; check disk space and permissions")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record does not decode.
    #[error("the LSP database holds an unreadable {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// Why it does not decode.
        reason: String,
    },
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { what, reason }
}

/// Where a factory stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactoryState {
    /// Accepting clients.
    Gathering,
    /// A signing session is running.
    Signing,
    /// Every signature is stored; the funding transaction is about to be broadcast.
    Signed,
    /// The funding transaction was broadcast; waiting for confirmations.
    Broadcast,
    /// Confirmed at the configured depth.
    Funded,
    /// The LSP stopped during the ceremony; nothing was broadcast.
    Aborted,
    /// The ceremony gave up (too few clients, no valid proposal); nothing was broadcast.
    Failed,
}

impl FactoryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FactoryState::Gathering => "gathering",
            FactoryState::Signing => "signing",
            FactoryState::Signed => "signed",
            FactoryState::Broadcast => "broadcast",
            FactoryState::Funded => "funded",
            FactoryState::Aborted => "aborted",
            FactoryState::Failed => "failed",
        }
    }
}

impl FromStr for FactoryState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "gathering" => FactoryState::Gathering,
            "signing" => FactoryState::Signing,
            "signed" => FactoryState::Signed,
            "broadcast" => FactoryState::Broadcast,
            "funded" => FactoryState::Funded,
            "aborted" => FactoryState::Aborted,
            "failed" => FactoryState::Failed,
            other => return Err(corrupt("factory state")(other.to_owned())),
        })
    }
}

/// One member of a factory, as stored when its first session starts.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// Its id in the factory.
    pub client: ClientId,
    /// The identity key it authenticated with.
    pub identity: XOnlyPublicKey,
    /// Its factory key and quote.
    pub member: Member,
}

/// A factory that was not finished when the LSP last stopped.
#[derive(Debug, Clone)]
pub struct Unfinished {
    /// The factory.
    pub id: FactoryId,
    /// Its stored state.
    pub state: FactoryState,
    /// Its last session.
    pub session: Option<SessionId>,
    /// The funding transaction of that session.
    pub funding_tx: Option<Transaction>,
    /// Its members that were not excluded: id and identity.
    pub members: Vec<(ClientId, XOnlyPublicKey)>,
}

/// [`SignedFactory`] as stored (JSON).
#[derive(Serialize, Deserialize)]
struct SignedRecord {
    factory: FactoryId,
    session: SessionId,
    payload: ProposalPayload,
    members: Vec<(ClientId, Member)>,
    jobs: Vec<SigningJob>,
    signatures: Vec<(NodeId, schnorr::Signature)>,
    funding_txid: Txid,
}

impl Store {
    /// The id for a new factory: one above every stored one.
    pub fn next_factory_id(&self) -> Result<FactoryId, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM factories", [], |r| r.get(0))?;
        Ok(FactoryId(max.map_or(1, |m| m as u64 + 1)))
    }

    /// Records a new factory that starts gathering.
    pub fn create_factory(
        &self,
        id: FactoryId,
        lsp_key: &bitcoin::secp256k1::PublicKey,
        now: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO factories (id, state, lsp_key, created_at, updated_at)
             VALUES (?1, 'gathering', ?2, ?3, ?3)",
            params![id.0 as i64, lsp_key.to_string(), now as i64],
        )?;
        Ok(())
    }

    /// A session started: its proposal and funding transaction, and (the first time) every
    /// member, in one transaction.
    pub fn session_started(
        &mut self,
        id: FactoryId,
        session: SessionId,
        proposal: Option<(&FactoryProposal, &Transaction)>,
        members: &[MemberRow],
        now: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let (json, funding_hex, txid) = match proposal {
            Some((p, funding)) => (
                Some(serde_json::to_string(p).map_err(|e| corrupt("proposal")(e.to_string()))?),
                Some(encode::serialize_hex(funding)),
                Some(funding.compute_txid().to_string()),
            ),
            None => (None, None, None),
        };
        tx.execute(
            "UPDATE factories SET state = 'signing', session = ?2, proposal = ?3, funding_tx = ?4,
             funding_txid = ?5, updated_at = ?6 WHERE id = ?1",
            params![
                id.0 as i64,
                session.0 as i64,
                json,
                funding_hex,
                txid,
                now as i64
            ],
        )?;
        for m in members {
            tx.execute(
                "INSERT OR IGNORE INTO factory_clients (factory, client, identity, factory_key,
                 channel_sat, liquidity_sat, fee_sat, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'member')",
                params![
                    id.0 as i64,
                    m.client.0,
                    m.identity.to_string(),
                    m.member.pubkey.to_string(),
                    m.member.quote.channel.to_sat() as i64,
                    m.member.quote.liquidity.to_sat() as i64,
                    m.member.quote.fee.to_sat() as i64,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A member was excluded, with why.
    pub fn client_excluded(
        &self,
        id: FactoryId,
        client: ClientId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE factory_clients SET status = 'excluded', reason = ?3 WHERE factory = ?1 AND client = ?2",
            params![id.0 as i64, client.0, reason],
        )?;
        Ok(())
    }

    /// Moves a factory to `state` (with a reason for the failed ones).
    pub fn set_state(
        &self,
        id: FactoryId,
        state: FactoryState,
        reason: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE factories SET state = ?2, reason = COALESCE(?3, reason), updated_at = ?4 WHERE id = ?1",
            params![id.0 as i64, state.as_str(), reason, now as i64],
        )?;
        Ok(())
    }

    /// Stores the LSP's double-sign records of one session, all or nothing.
    pub fn save_guard_records(
        &mut self,
        id: FactoryId,
        records: &[GuardRecord],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO sign_guard (prevout, sighash, factory) VALUES (?1, ?2, ?3)",
            )?;
            for r in records {
                insert.execute(params![
                    r.prevout.to_string(),
                    r.sighash.to_string(),
                    id.0 as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every double-sign record, to restore the guard at start-up.
    pub fn load_guard_records(&self) -> Result<Vec<GuardRecord>, StoreError> {
        let mut query = self
            .conn
            .prepare("SELECT prevout, sighash FROM sign_guard")?;
        let rows = query.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (prevout, sighash) = row?;
            out.push(GuardRecord {
                prevout: OutPoint::from_str(&prevout)
                    .map_err(|e| corrupt("guard prevout")(e.to_string()))?,
                sighash: TapSighash::from_str(&sighash)
                    .map_err(|e| corrupt("guard sighash")(e.to_string()))?,
            });
        }
        Ok(out)
    }

    /// Stores the complete signature set and marks the factory signed, in one transaction.
    pub fn factory_signed(&mut self, signed: &SignedFactory, now: u64) -> Result<(), StoreError> {
        let record = SignedRecord {
            factory: signed.factory,
            session: signed.session,
            payload: signed.payload.clone(),
            members: signed
                .members
                .iter()
                .map(|(c, m)| (*c, m.clone()))
                .collect(),
            jobs: signed.jobs.clone(),
            signatures: signed.signatures.iter().map(|(n, s)| (*n, *s)).collect(),
            funding_txid: signed.funding_txid,
        };
        let json =
            serde_json::to_string(&record).map_err(|e| corrupt("signed factory")(e.to_string()))?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO signed_factories (factory, session, signed) VALUES (?1, ?2, ?3)",
            params![signed.factory.0 as i64, signed.session.0 as i64, json],
        )?;
        tx.execute(
            "UPDATE factories SET state = 'signed', updated_at = ?2 WHERE id = ?1",
            params![signed.factory.0 as i64, now as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The stored complete signature set of a factory, if it has one.
    #[cfg(test)]
    pub fn load_signed(&self, id: FactoryId) -> Result<Option<SignedFactory>, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT signed FROM signed_factories WHERE factory = ?1",
                [id.0 as i64],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let Some(json) = json else { return Ok(None) };
        let r: SignedRecord =
            serde_json::from_str(&json).map_err(|e| corrupt("signed factory")(e.to_string()))?;
        Ok(Some(SignedFactory {
            factory: r.factory,
            session: r.session,
            payload: r.payload,
            members: r
                .members
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
            jobs: r.jobs,
            signatures: r.signatures.into_iter().collect(),
            funding_txid: r.funding_txid,
        }))
    }

    /// Every factory that was gathering, signing, signed or broadcast, with its members.
    pub fn load_unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        let mut query = self.conn.prepare(
            "SELECT id, state, session, funding_tx FROM factories
             WHERE state IN ('gathering', 'signing', 'signed', 'broadcast') ORDER BY id",
        )?;
        type Row = (i64, String, Option<i64>, Option<String>);
        let rows: Vec<Row> = query
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, state, session, funding) in rows {
            let funding_tx = funding
                .map(|hex| encode::deserialize_hex::<Transaction>(&hex))
                .transpose()
                .map_err(|e| corrupt("funding transaction")(e.to_string()))?;
            let mut members = Vec::new();
            let mut q = self.conn.prepare(
                "SELECT client, identity FROM factory_clients WHERE factory = ?1 AND status = 'member'",
            )?;
            let rows = q.query_map([id], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (client, identity) = row?;
                let identity = XOnlyPublicKey::from_str(&identity)
                    .map_err(|e| corrupt("client identity")(e.to_string()))?;
                members.push((ClientId(client), identity));
            }
            out.push(Unfinished {
                id: FactoryId(id as u64),
                state: state.parse()?,
                session: session.map(|s| SessionId(s as u64)),
                funding_tx,
                members,
            });
        }
        Ok(out)
    }
}

/// The LSP's double-sign guard, shared by every factory's ceremony (prevouts never repeat
/// across factories, so one record set serves all).
///
/// It answers from memory (restored from the store at start-up); the records a ceremony makes
/// reach the disk through the ceremony's `Persist(SignRecords)` action, which the coordinator
/// commits before it performs anything that follows it.
#[derive(Debug, Clone, Default)]
pub struct SharedGuard(Arc<Mutex<MemorySignGuard>>);

impl SharedGuard {
    /// A guard holding `records` (from [`Store::load_guard_records`]).
    pub fn restore(records: Vec<GuardRecord>) -> Result<SharedGuard, GuardError> {
        Ok(SharedGuard(Arc::new(Mutex::new(
            MemorySignGuard::from_records(records)?,
        ))))
    }
}

impl SignGuard for SharedGuard {
    fn check(&self, prevout: &OutPoint, sighash: &TapSighash) -> Result<(), GuardError> {
        self.0
            .lock()
            .map_err(|_| GuardError::Storage("the guard's lock is poisoned".into()))?
            .check(prevout, sighash)
    }

    fn check_and_record(
        &mut self,
        prevout: OutPoint,
        sighash: TapSighash,
    ) -> Result<(), GuardError> {
        self.0
            .lock()
            .map_err(|_| GuardError::Storage("the guard's lock is poisoned".into()))?
            .check_and_record(prevout, sighash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn guard_records_survive_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let record = GuardRecord {
            prevout: OutPoint::new(Txid::all_zeros(), 3),
            sighash: TapSighash::from_byte_array([7; 32]),
        };
        store
            .save_guard_records(FactoryId(1), &[record])
            .expect("save");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let mut guard =
            SharedGuard::restore(store.load_guard_records().expect("load")).expect("consistent");
        let other = TapSighash::from_byte_array([8; 32]);
        assert!(guard.check_and_record(record.prevout, other).is_err());
        assert!(guard
            .check_and_record(record.prevout, record.sighash)
            .is_ok());
    }

    #[test]
    fn signed_factory_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let secp = shared::secp::ctx();
        let kp = bitcoin::secp256k1::Keypair::new(secp, &mut rand::thread_rng());
        store
            .create_factory(FactoryId(1), &kp.public_key(), 1)
            .expect("create");
        let signed = SignedFactory {
            factory: FactoryId(1),
            session: SessionId(2),
            payload: ProposalPayload {
                factory: FactoryId(1),
                session: SessionId(2),
                body: shared::ceremony::ProposalBody::encode(&"body").expect("encodes"),
            },
            members: Default::default(),
            jobs: Vec::new(),
            signatures: [(
                NodeId(4),
                schnorr::Signature::from_slice(&[1; 64]).expect("64 bytes"),
            )]
            .into_iter()
            .collect(),
            funding_txid: Txid::all_zeros(),
        };
        store.factory_signed(&signed, 2).expect("store");
        assert_eq!(store.load_signed(FactoryId(1)).expect("load"), Some(signed));
    }

    #[test]
    fn unfinished_factories_come_back_with_their_members() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let secp = shared::secp::ctx();
        let kp = bitcoin::secp256k1::Keypair::new(secp, &mut rand::thread_rng());
        let id = store.next_factory_id().expect("id");
        store
            .create_factory(id, &kp.public_key(), 1)
            .expect("create");
        let member = MemberRow {
            client: ClientId(0),
            identity: kp.x_only_public_key().0,
            member: Member {
                pubkey: kp.public_key(),
                quote: shared::ceremony::Quote {
                    channel: bitcoin::Amount::from_sat(20_000),
                    liquidity: bitcoin::Amount::from_sat(20_000),
                    fee: bitcoin::Amount::from_sat(1_100),
                },
            },
        };
        store
            .session_started(id, SessionId(1), None, &[member], 2)
            .expect("session");
        let unfinished = store.load_unfinished().expect("load");
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].state, FactoryState::Signing);
        assert_eq!(
            unfinished[0].members,
            vec![(ClientId(0), kp.x_only_public_key().0)]
        );
        store
            .set_state(id, FactoryState::Aborted, Some("restart"), 3)
            .expect("abort");
        assert!(store.load_unfinished().expect("load").is_empty());
        assert_eq!(store.next_factory_id().expect("id"), FactoryId(id.0 + 1));
    }
}
