//! The steps of joining a factory, as the progress screen lists them, from the session's events.

use shared::ceremony::{ClientEvent, ClientOutcome};

use crate::session::SessionEvent;

/// One step of a join, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JoinStep {
    /// Opening the connection and proving who we are.
    Connecting,
    /// Accepted; waiting for the other members of the factory.
    WaitingForOthers,
    /// The tree was checked; nonces exchanged.
    Nonces,
    /// Partial signatures going out; waiting for the final ones (no event of its own: it is
    /// done when the path is stored).
    Signing,
    /// Every signature of our path verified and stored.
    Stored,
    /// The LSP broadcast the funding transaction.
    FundingBroadcast,
    /// The funding transaction confirmed: the factory is live.
    Open,
}

impl JoinStep {
    /// Every step, in order.
    pub const ALL: [JoinStep; 7] = [
        JoinStep::Connecting,
        JoinStep::WaitingForOthers,
        JoinStep::Nonces,
        JoinStep::Signing,
        JoinStep::Stored,
        JoinStep::FundingBroadcast,
        JoinStep::Open,
    ];

    /// The step's name on screen.
    pub fn label(self) -> &'static str {
        match self {
            JoinStep::Connecting => "Connecting to the LSP",
            JoinStep::WaitingForOthers => "Waiting for others to join",
            JoinStep::Nonces => "Checking the factory",
            JoinStep::Signing => "Signing your way out",
            JoinStep::Stored => "Your exit is signed and stored",
            JoinStep::FundingBroadcast => "The factory's coin is sent to the network",
            JoinStep::Open => "Confirmed: your factory is live",
        }
    }

    /// A stable id for the step's element.
    pub fn id(self) -> &'static str {
        match self {
            JoinStep::Connecting => "step-connecting",
            JoinStep::WaitingForOthers => "step-waiting",
            JoinStep::Nonces => "step-nonces",
            JoinStep::Signing => "step-signing",
            JoinStep::Stored => "step-stored",
            JoinStep::FundingBroadcast => "step-funding",
            JoinStep::Open => "step-open",
        }
    }

    /// The step reached after `event`, given the current one (steps never go back, except
    /// that a restarted signing session goes back to the nonces).
    pub fn after(self, event: &SessionEvent) -> JoinStep {
        let next = match event {
            SessionEvent::Connected { .. } => JoinStep::Connecting,
            // The provider restarted before anything was signed: the join starts over.
            SessionEvent::Rejoining => return JoinStep::Connecting,
            SessionEvent::Ceremony(ClientEvent::Joined { .. }) => JoinStep::WaitingForOthers,
            // A (re)started signing session: its nonces are out.
            SessionEvent::Ceremony(ClientEvent::SessionStarted { .. })
                if self < JoinStep::FundingBroadcast =>
            {
                return JoinStep::Nonces
            }
            SessionEvent::PathStored { .. }
            | SessionEvent::Ceremony(ClientEvent::FactorySigned { .. }) => JoinStep::Stored,
            SessionEvent::Ceremony(ClientEvent::FundingBroadcast { .. }) => {
                JoinStep::FundingBroadcast
            }
            SessionEvent::Ceremony(ClientEvent::Ended(ClientOutcome::Open { .. })) => {
                JoinStep::Open
            }
            _ => self,
        };
        self.max(next)
    }
}

/// How a session ended, in words for the user.
pub fn outcome_words(outcome: &ClientOutcome) -> String {
    match outcome {
        ClientOutcome::Open { txid } => format!("open (funding {txid})"),
        ClientOutcome::Rejected { reason } => format!("the LSP did not take you in: {reason}"),
        ClientOutcome::Refused { reason } => {
            format!("your wallet refused the factory to keep you safe: {reason}")
        }
        ClientOutcome::Excluded { reason } => format!("the LSP left you out: {reason}"),
        ClientOutcome::Aborted { reason } => {
            format!("the factory was called off (nothing was spent): {reason}")
        }
        ClientOutcome::Abandoned { waiting_for } => {
            format!("the LSP stopped answering while {waiting_for}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use shared::types::{FactoryId, SessionId};

    #[test]
    fn steps_follow_the_ceremony_and_never_go_back() {
        let started = SessionEvent::Ceremony(ClientEvent::SessionStarted {
            session: SessionId(1),
            nodes: 3,
        });
        let stored = SessionEvent::PathStored {
            factory: FactoryId(1),
            session: SessionId(1),
        };
        let open = SessionEvent::Ceremony(ClientEvent::Ended(ClientOutcome::Open {
            txid: bitcoin::Txid::all_zeros(),
        }));
        let lost = SessionEvent::Disconnected { reason: "x".into() };
        let mut step = JoinStep::Connecting;
        step = step.after(&started);
        assert_eq!(step, JoinStep::Nonces);
        step = step.after(&lost);
        assert_eq!(step, JoinStep::Nonces);
        // The provider lost an unsigned join: the steps start over, then go on.
        assert_eq!(step.after(&SessionEvent::Rejoining), JoinStep::Connecting);
        step = step.after(&stored);
        assert_eq!(step, JoinStep::Stored);
        step = step.after(&SessionEvent::Connected { resumed: None });
        assert_eq!(step, JoinStep::Stored);
        assert_eq!(step.after(&open), JoinStep::Open);
        assert_eq!(JoinStep::ALL.len(), 7);
    }
}
