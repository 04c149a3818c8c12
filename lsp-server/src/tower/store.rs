//! The tower's SQLite file (`tower.sqlite` in its data dir): one row per watched channel (the
//! latest kit and its sequence) and one per penalty, looked up by the revoked commitment's txid
//! only when something spends a channel output. Nothing in it is secret: every transaction is
//! already signed, and each pays the wallet that sent it.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use rusqlite::{params, Connection, OptionalExtension};
use shared::exit::ExitKit;
use shared::pay::ChannelId;
use shared::tower::{Appointment, Penalty, MAX_PENALTIES};
use shared::types::{ClientId, FactoryId};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS appointments (
        identity TEXT NOT NULL,
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        kit TEXT NOT NULL,
        PRIMARY KEY (identity, factory, client)
    );
    CREATE TABLE IF NOT EXISTS penalties (
        identity TEXT NOT NULL,
        factory INTEGER NOT NULL,
        client INTEGER NOT NULL,
        revoked TEXT NOT NULL,
        rungs TEXT NOT NULL,
        PRIMARY KEY (identity, factory, client, revoked)
    );";

/// One watched channel: whose, which, and its latest kit.
#[derive(Debug, Clone)]
pub(super) struct Watched {
    pub(super) identity: XOnlyPublicKey,
    pub(super) channel: ChannelId,
    pub(super) kit: ExitKit,
}

/// What storing an appointment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// Taken; the channel now has this many penalties.
    Taken { penalties: usize },
    /// Its sequence is not above the stored one (`stored`): refused, nothing changed.
    Stale { stored: u64 },
    /// The channel would pass [`MAX_PENALTIES`]: refused, nothing changed.
    Full,
    /// The tower watches its most channels and this one is new: refused.
    TooManyChannels,
}

/// The tower's store.
#[derive(Debug)]
pub(super) struct TowerStore {
    conn: Mutex<Connection>,
    max_channels: usize,
}

impl TowerStore {
    pub(super) fn open(dir: &Path, max_channels: usize) -> Result<TowerStore> {
        let path = dir.join("tower.sqlite");
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        conn.execute_batch(SCHEMA)
            .context("creating the tower's tables")?;
        Ok(TowerStore {
            conn: Mutex::new(conn),
            max_channels,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `appointment` of `identity` in one transaction: its kit replaces the stored one
    /// and its penalties join the stored ones, if its sequence is the newest.
    pub(super) fn put(
        &self,
        identity: &XOnlyPublicKey,
        appointment: &Appointment,
    ) -> Result<Stored> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let key = (
            identity.to_string(),
            appointment.channel.factory.0,
            appointment.channel.client.0,
        );
        let stored: Option<u64> = tx
            .query_row(
                "SELECT sequence FROM appointments WHERE identity = ?1 AND factory = ?2 AND client = ?3",
                params![key.0, key.1, key.2],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(stored) if stored >= appointment.sequence => return Ok(Stored::Stale { stored }),
            None => {
                let channels: usize =
                    tx.query_row("SELECT COUNT(*) FROM appointments", [], |r| r.get(0))?;
                if channels >= self.max_channels {
                    return Ok(Stored::TooManyChannels);
                }
            }
            Some(_) => {}
        }
        tx.execute(
            "INSERT INTO appointments (identity, factory, client, sequence, kit)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (identity, factory, client) DO UPDATE SET sequence = ?4, kit = ?5",
            params![
                key.0,
                key.1,
                key.2,
                appointment.sequence,
                serde_json::to_string(&appointment.kit)?
            ],
        )?;
        for penalty in &appointment.penalties {
            tx.execute(
                "INSERT OR IGNORE INTO penalties (identity, factory, client, revoked, rungs)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.0,
                    key.1,
                    key.2,
                    penalty.revoked.to_string(),
                    serde_json::to_string(&penalty.rungs)?
                ],
            )?;
        }
        let penalties: usize = tx.query_row(
            "SELECT COUNT(*) FROM penalties WHERE identity = ?1 AND factory = ?2 AND client = ?3",
            params![key.0, key.1, key.2],
            |r| r.get(0),
        )?;
        if penalties > MAX_PENALTIES {
            return Ok(Stored::Full); // dropped: the transaction is not committed
        }
        tx.commit()?;
        Ok(Stored::Taken { penalties })
    }

    /// Every watched channel.
    pub(super) fn watched(&self) -> Result<Vec<Watched>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT identity, factory, client, kit FROM appointments")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (identity, factory, client, kit) = row?;
            out.push(Watched {
                identity: identity.parse().context("a stored identity")?,
                channel: ChannelId {
                    factory: FactoryId(factory),
                    client: ClientId(client),
                },
                kit: serde_json::from_str(&kit).context("a stored kit")?,
            });
        }
        Ok(out)
    }

    /// The penalty `identity` left for `channel` against `revoked`, if any.
    pub(super) fn penalty(
        &self,
        identity: &XOnlyPublicKey,
        channel: ChannelId,
        revoked: Txid,
    ) -> Result<Option<Penalty>> {
        let rungs: Option<String> = self
            .conn()
            .query_row(
                "SELECT rungs FROM penalties
                 WHERE identity = ?1 AND factory = ?2 AND client = ?3 AND revoked = ?4",
                params![
                    identity.to_string(),
                    channel.factory.0,
                    channel.client.0,
                    revoked.to_string()
                ],
                |r| r.get(0),
            )
            .optional()?;
        rungs
            .map(|r| {
                Ok(Penalty {
                    revoked,
                    rungs: serde_json::from_str(&r).context("stored rungs")?,
                })
            })
            .transpose()
    }

    /// What the tower holds for one channel: the stored sequence, the kit's leaf states and the
    /// penalty count.
    pub(super) fn counts(
        &self,
        identity: &XOnlyPublicKey,
        channel: ChannelId,
    ) -> Result<Option<Held>> {
        let conn = self.conn();
        let key = params![identity.to_string(), channel.factory.0, channel.client.0];
        let row: Option<(u64, String)> = conn
            .query_row(
                "SELECT sequence, kit FROM appointments WHERE identity = ?1 AND factory = ?2 AND client = ?3",
                key,
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((sequence, kit)) = row else {
            return Ok(None);
        };
        let kit: ExitKit = serde_json::from_str(&kit).context("a stored kit")?;
        let leaf_states = kit.leaf().map_or(1, |l| l.states().len());
        let penalties: usize = conn.query_row(
            "SELECT COUNT(*) FROM penalties WHERE identity = ?1 AND factory = ?2 AND client = ?3",
            key,
            |r| r.get(0),
        )?;
        Ok(Some(Held {
            sequence,
            leaf_states,
            penalties,
        }))
    }
}

/// What the tower holds for one channel.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(super) struct Held {
    /// The last sequence taken.
    pub(super) sequence: u64,
    /// The leaf states in the kit (1 until liquidity was bought).
    pub(super) leaf_states: usize,
    /// The penalties kept.
    pub(super) penalties: usize,
}
