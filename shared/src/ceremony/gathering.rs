//! What a factory that is still gathering looks like from outside: how many have joined, how
//! many it needs, how many it takes, and when gathering ends. The LSP serves it at
//! `GET /factories/{id}/gathering`; a joining wallet shows it while it waits for the others.

use serde::{Deserialize, Serialize};

use crate::types::FactoryId;

/// A gathering factory, as the LSP reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatheringStatus {
    /// The factory.
    pub factory: FactoryId,
    /// Members so far.
    pub members: u32,
    /// Fewest members it starts with once gathering ends.
    pub min_members: u32,
    /// Members that make it start at once.
    pub max_members: u32,
    /// Unix time gathering ends (for a rung of the LSP's ladder, an estimate of when the chain
    /// reaches `start_height`).
    pub gather_until: u64,
    /// A rung of the LSP's ladder starts at this block (or at once when full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_height: Option<u32>,
    /// A rung with fewer than `min_members` at its block waits for the next rung (rather than
    /// being called off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waits_when_short: bool,
}

impl GatheringStatus {
    /// What happens when gathering ends, in words, at unix time `now`.
    pub fn outlook(&self, now: u64) -> String {
        let left = self.gather_until.saturating_sub(now);
        let wait = match self.start_height {
            Some(height) => format!("The LSP starts its next factory at block {height}"),
            None if left == 0 => "Gathering time is over".to_string(),
            None => format!("Gathering ends in {}", mm_ss(left)),
        };
        if self.members >= self.min_members {
            format!(
                "{wait}; then the factory starts with the {} members it has (or at once with {}).",
                self.members, self.max_members
            )
        } else if self.start_height.is_some() && self.waits_when_short {
            format!(
                "{wait}; it needs at least {} members by then, or it waits for the next one, \
                 and you keep your place.",
                self.min_members
            )
        } else {
            format!(
                "{wait}; it needs at least {} members by then, or it is called off and you can \
                 join again, having paid nothing.",
                self.min_members
            )
        }
    }
}

/// `secs` as `m:ss`.
fn mm_ss(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_happens_at_the_deadline() {
        let mut g = GatheringStatus {
            factory: FactoryId(3),
            members: 1,
            min_members: 2,
            max_members: 8,
            gather_until: 1_000,
            start_height: None,
            waits_when_short: false,
        };
        let words = g.outlook(925);
        assert!(words.starts_with("Gathering ends in 1:15"), "{words}");
        assert!(words.contains("at least 2 members"), "{words}");
        g.members = 2;
        assert!(g.outlook(1_000).contains("starts with the 2 members"));
        assert!(g.outlook(2_000).starts_with("Gathering time is over"));
        g.start_height = Some(150);
        let words = g.outlook(2_000);
        assert!(
            words.starts_with("The LSP starts its next factory at block 150; then"),
            "{words}"
        );
        g.members = 1;
        assert!(g
            .outlook(2_000)
            .ends_with("or it is called off and you can join again, having paid nothing."));
        g.waits_when_short = true;
        assert!(g
            .outlook(2_000)
            .ends_with("or it waits for the next one, and you keep your place."));
    }
}
