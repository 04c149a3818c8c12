//! The payment client's side of the watchtower (`crate::pay::tower`): one upload in flight at a
//! time, in a task of its own so a slow tower never holds up a payment; a leaf whose channel
//! stored a change is sent again; a failure is retried after [`RETRY_MS`].

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::OutPoint;
use futures::channel::oneshot;
use rand::rngs::OsRng;
use shared::pay::ChannelId;
use shared::tower::{Appointment, SignedAppointment};

use super::PayClient;
use crate::pay::tower::{appointment, send, Built, Refused, TowerSent};
use crate::pay::{PayError, PayEvent, PayStore};
use crate::platform::unix_millis;
use crate::session::{ChainSource, Connect};

/// Pause after a failed upload.
const RETRY_MS: u64 = 10_000;
/// Longest a key release waits for the tower to hear of the move before it is answered.
const RELEASE_WAIT_MS: u64 = 15_000;

struct Flight {
    channel: ChannelId,
    appointment: Appointment,
    next_from: BTreeMap<OutPoint, u64>,
    more: bool,
    answer: oneshot::Receiver<Result<usize, Refused>>,
}

/// What was sent, what is out of date, and the upload in flight.
#[derive(Default)]
pub(super) struct TowerSync {
    sent: BTreeMap<ChannelId, TowerSent>,
    dirty: BTreeSet<ChannelId>,
    flight: Option<Flight>,
    held: BTreeMap<ChannelId, usize>,
    /// Channels whose key this wallet released (`TowerSync::released`).
    released: BTreeSet<ChannelId>,
    /// Key releases answered once the tower took the move (or by a deadline, Unix ms).
    answer_after: BTreeMap<ChannelId, (oneshot::Sender<Result<(), PayError>>, u64)>,
    failed: Option<String>,
    not_before: u64,
}

impl TowerSync {
    /// `id`'s channel stored a change: its appointment is out of date.
    pub(super) fn touch(&mut self, id: ChannelId) {
        self.dirty.insert(id);
    }

    /// The provider took the key of `id`, released at this wallet's own request: the next
    /// appointment says the channel moved, and `reply` is answered once the tower took it (or
    /// could not, or after [`RELEASE_WAIT_MS`]), so a caller that stops the client right after
    /// a move does not leave the tower walking the old path.
    pub(super) fn released(&mut self, id: ChannelId, reply: oneshot::Sender<Result<(), PayError>>) {
        self.released.insert(id);
        self.dirty.insert(id);
        self.answer_after
            .insert(id, (reply, unix_millis() + RELEASE_WAIT_MS));
    }

    /// Answers the release of `id`, and every one past its deadline.
    fn answer_releases(&mut self, id: Option<ChannelId>) {
        let now = unix_millis();
        let due: Vec<ChannelId> = self
            .answer_after
            .iter()
            .filter(|(c, (_, deadline))| Some(**c) == id || *deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            if let Some((reply, _)) = self.answer_after.remove(&c) {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// In words, for the home screen.
    pub(super) fn words(&self, configured: bool) -> Option<String> {
        if !configured {
            return None;
        }
        if let Some(why) = &self.failed {
            return Some(format!("Your watchtower is not up to date: {why}"));
        }
        let held: usize = self.held.values().sum();
        Some(match (self.held.is_empty(), held) {
            (true, _) => "Your watchtower has not been updated yet".into(),
            (false, 0) => "Your watchtower can walk your way out; no old state of your channel needs a penalty yet".into(),
            (false, 1) => "Your watchtower can walk your way out and holds the penalty for 1 old state of your channel".into(),
            (false, n) => format!("Your watchtower can walk your way out and holds penalties for {n} old states of your channel"),
        })
    }
}

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// Takes the answer of the upload in flight, if any, and starts the next one due.
    pub(super) fn sync_tower(&mut self) {
        let Some(link) = self.config.watchtower.clone() else {
            return;
        };
        self.tower.answer_releases(None);
        if let Some(mut flight) = self.tower.flight.take() {
            let answer = match flight.answer.try_recv() {
                Ok(None) => {
                    self.tower.flight = Some(flight);
                    return;
                }
                Ok(Some(answer)) => answer,
                Err(oneshot::Canceled) => Err(Refused {
                    why: "the upload stopped".into(),
                    stored: None,
                }),
            };
            if flight.appointment.moved {
                // Taken or refused, the tower had its chance: the release is answered.
                self.tower.answer_releases(Some(flight.channel));
            }
            match answer {
                Ok(penalties) => {
                    if flight.more {
                        self.tower.dirty.insert(flight.channel);
                    }
                    let sent = self.tower.sent.entry(flight.channel).or_default();
                    sent.sent(&flight.appointment, flight.next_from);
                    if flight.appointment.moved {
                        self.tower.held.remove(&flight.channel);
                    } else {
                        self.tower.held.insert(flight.channel, penalties);
                    }
                    self.tower.failed = None;
                    self.emit(PayEvent::TowerUpdated {
                        channel: flight.channel,
                        penalties,
                    });
                }
                Err(Refused {
                    stored: Some(stored),
                    ..
                }) => {
                    // Our clock is behind the tower's record: go above it at once.
                    let sent = self.tower.sent.entry(flight.channel).or_default();
                    sent.above(stored);
                    self.tower.dirty.insert(flight.channel);
                }
                Err(Refused { why, .. }) => {
                    self.tower.dirty.insert(flight.channel);
                    self.tower.not_before = unix_millis() + RETRY_MS;
                    self.tower.failed = Some(why.clone());
                    self.emit(PayEvent::TowerFailed(why));
                }
            }
        }
        if unix_millis() < self.tower.not_before {
            return;
        }
        // A leaf no longer among the wallet's (it moved, or left) is not sent again.
        let Some(id) = self
            .tower
            .dirty
            .iter()
            .copied()
            .find(|id| self.leaves.contains_key(id))
        else {
            self.tower.dirty.clear();
            return;
        };
        self.tower.dirty.remove(&id);
        let leaf = &self.leaves[&id];
        let sent = self.tower.sent.entry(id).or_default();
        let built = appointment(
            &self.stored,
            leaf,
            &self.policy,
            &link.destination,
            sent,
            unix_millis(),
        );
        let Built {
            mut appointment,
            next_from,
            more,
        } = match built {
            Ok(b) => b,
            Err(why) => {
                self.tower.failed = Some(format!("its exit could not be built: {why}"));
                self.tower.dirty.insert(id);
                self.tower.not_before = unix_millis() + RETRY_MS;
                return;
            }
        };
        // A channel this wallet moved out of: the tower stops walking its old path.
        appointment.moved = self.tower.released.contains(&id);
        let signed = SignedAppointment::sign(&self.config.identity, &appointment, &mut OsRng);
        let (tx, answer) = oneshot::channel();
        crate::platform::spawn(async move {
            let _ = tx.send(send(&link.url, &signed).await);
        });
        self.tower.flight = Some(Flight {
            channel: id,
            appointment,
            next_from,
            more,
            answer,
        });
    }
}
