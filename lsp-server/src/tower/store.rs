//! The tower's SQLite file (`tower.sqlite` in its data dir): one row per watched channel (the
//! latest kit and its sequence) and one per penalty, looked up by the revoked commitment's txid
//! only when something spends a channel output. Nothing in it is secret: every transaction is
//! already signed, and each pays the wallet that sent it.
//!
//! The kits are parsed once (at start, and when a body replaces one) and kept in memory, so a
//! pass over every channel reads no JSON and holds no lock while it talks to Esplora.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

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
        moved INTEGER NOT NULL DEFAULT 0,
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

/// One watched channel: whose, which, its latest kit and what the tower holds for it.
#[derive(Debug, Clone)]
pub(super) struct Watched {
    pub(super) identity: XOnlyPublicKey,
    pub(super) channel: ChannelId,
    pub(super) kit: ExitKit,
    /// The last sequence taken.
    pub(super) sequence: u64,
    /// The penalties kept.
    pub(super) penalties: usize,
    /// The wallet moved out of the channel and released its key: nothing to act for.
    pub(super) moved: bool,
}

impl Watched {
    /// How far the kit has come: its newest tree state, then its leaf states. A body whose kit
    /// is behind the stored one (a wallet restored from an older backup, another device) must
    /// not replace it.
    fn progress(kit: &ExitKit) -> (u32, usize) {
        (
            kit.latest().epoch().0,
            kit.leaf().map_or(1, |l| l.states().len()),
        )
    }

    /// The kit's leaf states (1 until liquidity was bought).
    pub(super) fn leaf_states(&self) -> usize {
        Watched::progress(&self.kit).1
    }
}

/// What storing an appointment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// Taken; the channel now has this many penalties.
    Taken { penalties: usize },
    /// Its sequence is not above the stored one (`stored`): refused, nothing changed.
    Stale { stored: u64 },
    /// Its kit is behind the stored one: refused, nothing changed.
    Older,
    /// The kit was taken, but the channel holds [`MAX_PENALTIES`]: penalties beyond were not.
    Full { penalties: usize },
    /// The tower watches its most channels and this one is new: refused.
    TooManyChannels,
}

type Key = (XOnlyPublicKey, ChannelId);

/// The tower's store.
#[derive(Debug)]
pub(super) struct TowerStore {
    conn: Mutex<Connection>,
    cache: Mutex<BTreeMap<Key, Arc<Watched>>>,
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
        // A data dir from before moves were recorded.
        let has_moved: bool = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('appointments') WHERE name = 'moved'",
            [],
            |r| r.get::<_, u32>(0).map(|n| n > 0),
        )?;
        if !has_moved {
            conn.execute_batch(
                "ALTER TABLE appointments ADD COLUMN moved INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        let cache = load(&conn)?;
        Ok(TowerStore {
            conn: Mutex::new(conn),
            cache: Mutex::new(cache),
            max_channels,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Arc<Watched>>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `appointment` of `identity` in one transaction: its kit replaces the stored one
    /// and its penalties join the stored ones, if its sequence is the newest and its kit is not
    /// behind.
    pub(super) fn put(
        &self,
        identity: &XOnlyPublicKey,
        appointment: &Appointment,
    ) -> Result<Stored> {
        let key = (*identity, appointment.channel);
        let stored = self.cache().get(&key).cloned();
        match &stored {
            Some(s) if s.sequence >= appointment.sequence => {
                return Ok(Stored::Stale { stored: s.sequence })
            }
            Some(s) if Watched::progress(&appointment.kit) < Watched::progress(&s.kit) => {
                return Ok(Stored::Older)
            }
            None if self.cache().len() >= self.max_channels => return Ok(Stored::TooManyChannels),
            _ => {}
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let row = (
            identity.to_string(),
            appointment.channel.factory.0,
            appointment.channel.client.0,
        );
        // A move cannot be undone (the key is the LSP's): it stays set.
        let moved = appointment.moved || stored.as_ref().is_some_and(|s| s.moved);
        tx.execute(
            "INSERT INTO appointments (identity, factory, client, sequence, kit, moved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (identity, factory, client) DO UPDATE SET sequence = ?4, kit = ?5,
                moved = appointments.moved OR ?6
             WHERE excluded.sequence > appointments.sequence",
            params![
                row.0,
                row.1,
                row.2,
                appointment.sequence,
                serde_json::to_string(&appointment.kit)?,
                moved
            ],
        )?;
        let mut penalties = stored.as_ref().map_or(0, |s| s.penalties);
        let mut full = false;
        for penalty in &appointment.penalties {
            if penalties >= MAX_PENALTIES {
                full = true;
                break;
            }
            penalties += tx.execute(
                "INSERT OR IGNORE INTO penalties (identity, factory, client, revoked, rungs)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    row.0,
                    row.1,
                    row.2,
                    penalty.revoked.to_string(),
                    serde_json::to_string(&penalty.rungs)?
                ],
            )?;
        }
        tx.commit()?;
        self.cache().insert(
            key,
            Arc::new(Watched {
                identity: *identity,
                channel: appointment.channel,
                kit: appointment.kit.clone(),
                sequence: appointment.sequence,
                penalties,
                moved,
            }),
        );
        Ok(if full {
            Stored::Full { penalties }
        } else {
            Stored::Taken { penalties }
        })
    }

    /// Every watched channel (shared, not copied).
    pub(super) fn watched(&self) -> Vec<Arc<Watched>> {
        self.cache().values().cloned().collect()
    }

    /// One watched channel.
    pub(super) fn get(
        &self,
        identity: &XOnlyPublicKey,
        channel: ChannelId,
    ) -> Option<Arc<Watched>> {
        self.cache().get(&(*identity, channel)).cloned()
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
}

/// Every stored channel, its kit parsed, with its penalty count.
fn load(conn: &Connection) -> Result<BTreeMap<Key, Arc<Watched>>> {
    let mut stmt = conn.prepare(
        "SELECT a.identity, a.factory, a.client, a.sequence, a.kit,
                (SELECT COUNT(*) FROM penalties p WHERE p.identity = a.identity
                   AND p.factory = a.factory AND p.client = a.client),
                a.moved
         FROM appointments a",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u64>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, u64>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, usize>(5)?,
            r.get::<_, bool>(6)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (identity, factory, client, sequence, kit, penalties, moved) = row?;
        let identity: XOnlyPublicKey = identity.parse().context("a stored identity")?;
        let channel = ChannelId {
            factory: FactoryId(factory),
            client: ClientId(client),
        };
        let watched = Watched {
            identity,
            channel,
            kit: serde_json::from_str(&kit).context("a stored kit")?,
            sequence,
            penalties,
            moved,
        };
        out.insert((identity, channel), Arc::new(watched));
    }
    Ok(out)
}
