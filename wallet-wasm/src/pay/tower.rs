//! Keeping a keyless watchtower up to date (`shared::tower`): after every round that revokes a
//! commitment of the provider's, and after every new leaf state, the wallet sends the tower its
//! exit kit and the penalties it has not sent yet, signed with its identity key. While the
//! wallet is away the tower walks its path if the factory goes on chain and answers a revoked
//! commitment with the penalty, which pays this wallet's own on-chain address.
//!
//! What was sent lives in memory only: a restarted wallet sends everything once more (the
//! tower keeps each penalty once, by the revoked commitment's txid).

use std::collections::BTreeMap;

use bitcoin::{OutPoint, ScriptBuf};
use shared::exit::ExitKit;
use shared::pay::ChannelPolicy;
use shared::tower::{penalties, Appointment, SignedAppointment, PENALTIES_PER_BODY};

use super::{add_leaf_states, leaf_channels, PayLeaf, PayState};

/// Where the wallet's tower is and where its penalties pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TowerLink {
    /// The tower's HTTP origin (`http(s)://host[:port]`).
    pub url: String,
    /// The wallet's own on-chain script the penalties pay.
    pub destination: ScriptBuf,
}

/// What was sent to the tower, per leaf.
#[derive(Debug, Default)]
pub(crate) struct TowerSent {
    /// Per channel output: the lowest revoked commitment number not sent yet.
    from: BTreeMap<OutPoint, u64>,
    sequence: u64,
}

/// The appointment for `leaf` as the store holds it now: its kit and the penalties not in
/// `sent` (at most [`PENALTIES_PER_BODY`]). `sent` moves on only through [`TowerSent::sent`],
/// once the tower took it.
pub(crate) fn appointment(
    state: &PayState,
    leaf: &PayLeaf,
    policy: &ChannelPolicy,
    destination: &ScriptBuf,
    sent: &TowerSent,
    now_millis: u64,
) -> Result<Built, String> {
    let mut kit = ExitKit::new(leaf.path.clone()).map_err(|e| e.to_string())?;
    add_leaf_states(&mut kit, state, leaf).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    let mut next_from = BTreeMap::new();
    let mut more = false;
    for channel in leaf_channels(state, leaf, policy) {
        let funding = channel.params().funding;
        let from = sent.from.get(&funding).copied().unwrap_or(0);
        let room = PENALTIES_PER_BODY - all.len();
        let (new, last) = penalties(&channel, from, destination, room);
        let next = last.map_or(from, |l| l + 1);
        more |= channel.revoked_numbers().any(|n| n >= next);
        all.extend(new);
        next_from.insert(funding, next);
    }
    Ok(Built {
        appointment: Appointment {
            channel: leaf.channel,
            sequence: now_millis.max(sent.sequence + 1),
            kit,
            penalties: all,
            moved: false,
        },
        next_from,
        more,
    })
}

/// An appointment to send, and what sending it moves on.
pub(crate) struct Built {
    pub(crate) appointment: Appointment,
    /// Per channel output, the next revoked number to send once this body is taken.
    pub(crate) next_from: BTreeMap<OutPoint, u64>,
    /// Penalties are left for another body.
    pub(crate) more: bool,
}

impl TowerSent {
    /// The tower holds `sequence` already: the next body goes above it.
    pub(crate) fn above(&mut self, sequence: u64) {
        self.sequence = self.sequence.max(sequence);
    }

    /// The tower took `appointment`, built with `next_from`.
    pub(crate) fn sent(&mut self, appointment: &Appointment, next_from: BTreeMap<OutPoint, u64>) {
        self.sequence = appointment.sequence;
        self.from.extend(next_from);
    }
}

/// Why the tower did not take a body.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// In words.
    pub(crate) why: String,
    /// The sequence the tower holds, when it refused ours as not newer (a clock that went
    /// back): the next body goes above it.
    pub(crate) stored: Option<u64>,
}

/// Sends `signed` to the tower at `url`; the number of penalties it now holds for the channel.
pub(crate) async fn send(url: &str, signed: &SignedAppointment) -> Result<usize, Refused> {
    let endpoint = format!("{}/v1/appointments", url.trim_end_matches('/'));
    let (status, body) = post_json(&endpoint, signed)
        .await
        .map_err(|why| Refused { why, stored: None })?;
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if !(200..300).contains(&status) {
        let why = value["error"].as_str().unwrap_or(&body).to_string();
        return Err(Refused {
            why: format!("the watchtower refused it (HTTP {status}): {why}"),
            stored: value["stored"].as_u64(),
        });
    }
    Ok(value["penalties"].as_u64().unwrap_or(0) as usize)
}

#[cfg(not(target_arch = "wasm32"))]
async fn post_json(url: &str, body: &impl serde::Serialize) -> Result<(u16, String), String> {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("cannot reach the watchtower at {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

#[cfg(target_arch = "wasm32")]
async fn post_json(url: &str, body: &impl serde::Serialize) -> Result<(u16, String), String> {
    let response = gloo_net::http::Request::post(url)
        .json(body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| format!("cannot reach the watchtower at {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}
