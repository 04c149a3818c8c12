//! The shape of a factory tree: which clients each node covers, node numbering, and what every
//! subtree costs, all computed without any elliptic-curve work.
//!
//! Clients `0..n` are first cut into `groups` contiguous *DW groups* of at most
//! `dw_arity^dw_levels` clients (balanced: the first `n % groups` groups hold one more). Each
//! group is the subtree of one DW root. Above them, static nodes split the list of groups,
//! `static_arity` at a time, until one root remains. Every split is balanced the same way:
//! `m` items into `c = min(arity, m)` chunks, the first `m % c` chunks one larger. A chunk of
//! one group is a DW root; inside a DW subtree a chunk of one client is a leaf.
//!
//! Because balanced splits only ever produce two sizes per level, the stats of every subtree
//! size are memoised, and the numbering of any node ([`Layout::path`]) costs O(depth · arity).
//! Nodes are numbered in pre-order: a static node has one transaction, a DW node two (kickoff,
//! then state), a leaf one; the distribution transaction comes last.

use std::collections::HashMap;

use bitcoin::Amount;

use super::fees;
use crate::params::FactoryParams;
use crate::types::NodeId;

/// A subtree: the clients it covers and its place in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// A static node over groups `start..end` (at least two).
    Static { start: u32, end: u32, depth: u32 },
    /// A DW node over clients `start..end`, at DW layer `layer`.
    Dw {
        start: u32,
        end: u32,
        layer: u32,
        depth: u32,
    },
    /// The leaf of one client.
    Leaf { client: u32, depth: u32 },
}

impl Span {
    /// How many transactions this node itself has.
    pub(crate) fn own_txs(&self) -> u32 {
        match self {
            Span::Dw { .. } => 2,
            Span::Static { .. } | Span::Leaf { .. } => 1,
        }
    }
}

/// Totals of a subtree: its transaction count and the fees plus anchors of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stats {
    pub(crate) txs: u32,
    pub(crate) cost: Amount,
}

impl Stats {
    fn add(self, other: Stats, times: u32) -> Stats {
        Stats {
            txs: self.txs + other.txs * times,
            cost: self.cost + other.cost * u64::from(times),
        }
    }
}

/// One transaction of a node, as far as sizes and delays go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxShape {
    /// Number of P2TR outputs (the anchor comes on top).
    pub(crate) p2tr_outputs: usize,
    /// Whether it is a DW state transaction or a leaf state (relative delay).
    pub(crate) is_state: bool,
}

/// The shape of the tree for `n` clients under some parameters.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    n: u32,
    groups: u32,
    group_base: u32,
    group_rem: u32,
    static_arity: u32,
    dw_arity: u32,
    dw_levels: u32,
    dw_stats: HashMap<u32, Stats>,
    split_stats: HashMap<u32, Stats>,
    leaf: Stats,
}

/// `m` items cut into `min(arity, m)` balanced chunks: `(chunks, base size, larger chunks)`.
fn balanced(m: u32, arity: u32) -> (u32, u32, u32) {
    let c = arity.min(m).max(1);
    (c, m / c, m % c)
}

/// Start of chunk `i` when `m` items are cut into chunks of `base` (+1 for the first `rem`).
fn chunk_start(i: u32, base: u32, rem: u32) -> u32 {
    i * base + i.min(rem)
}

/// Smallest `d` with `arity^d >= m`.
fn ceil_log(arity: u32, m: u32) -> u32 {
    let (mut d, mut cap) = (0, 1u64);
    while cap < u64::from(m) {
        cap *= u64::from(arity);
        d += 1;
    }
    d
}

impl Layout {
    /// The layout of `n >= 1` clients. `params` must have passed validation (arities >= 2).
    pub(crate) fn new(params: &FactoryParams, n: u32) -> Layout {
        let dw_arity = u32::from(params.dw_arity).max(2);
        let static_arity = u32::from(params.static_arity).max(2);
        let n = n.max(1);
        let dw_levels = ceil_log(dw_arity, n).clamp(1, u32::from(params.dw_layers).max(1));
        let cap = u64::from(dw_arity).pow(dw_levels);
        let groups = u64::from(n).div_ceil(cap) as u32;
        let mut layout = Layout {
            n,
            groups,
            group_base: n / groups,
            group_rem: n % groups,
            static_arity,
            dw_arity,
            dw_levels,
            dw_stats: HashMap::new(),
            split_stats: HashMap::new(),
            leaf: Stats {
                txs: 1,
                cost: fees::overhead(params, 2),
            },
        };
        for size in [layout.group_base, layout.group_base + 1] {
            if size >= 1 {
                layout.fill_dw(params, size);
            }
        }
        layout.fill_split(params, groups);
        layout
    }

    fn fill_dw(&mut self, params: &FactoryParams, m: u32) -> Stats {
        if let Some(s) = self.dw_stats.get(&m) {
            return *s;
        }
        let (c, base, rem) = balanced(m, self.dw_arity);
        let own = Stats {
            txs: 2,
            cost: fees::overhead(params, 1) + fees::overhead(params, c as usize),
        };
        let mut total = own;
        for (size, count) in [(base + 1, rem), (base, c - rem)] {
            if count == 0 {
                continue;
            }
            let child = if size == 1 {
                self.leaf
            } else {
                self.fill_dw(params, size)
            };
            total = total.add(child, count);
        }
        self.dw_stats.insert(m, total);
        total
    }

    /// Stats of the static (split) transactions alone of a static subtree over `count` groups.
    fn fill_split(&mut self, params: &FactoryParams, count: u32) -> Stats {
        if count <= 1 {
            return Stats::default();
        }
        if let Some(s) = self.split_stats.get(&count) {
            return *s;
        }
        let (c, base, rem) = balanced(count, self.static_arity);
        let mut total = Stats {
            txs: 1,
            cost: fees::overhead(params, c as usize),
        };
        for (size, times) in [(base + 1, rem), (base, c - rem)] {
            if times > 0 {
                total = total.add(self.fill_split(params, size), times);
            }
        }
        self.split_stats.insert(count, total);
        total
    }

    /// Number of DW layers the tree actually has (at most the parameters' `dw_layers`).
    pub(crate) fn dw_levels(&self) -> u32 {
        self.dw_levels
    }

    fn group_start(&self, g: u32) -> u32 {
        chunk_start(g, self.group_base, self.group_rem)
    }

    /// Clients `start..end` covered by a span.
    pub(crate) fn clients_of(&self, span: &Span) -> (u32, u32) {
        match *span {
            Span::Static { start, end, .. } => (self.group_start(start), self.group_start(end)),
            Span::Dw { start, end, .. } => (start, end),
            Span::Leaf { client, .. } => (client, client + 1),
        }
    }

    /// The root span.
    pub(crate) fn root(&self) -> Span {
        if self.groups == 1 {
            Span::Dw {
                start: 0,
                end: self.n,
                layer: 0,
                depth: 0,
            }
        } else {
            Span::Static {
                start: 0,
                end: self.groups,
                depth: 0,
            }
        }
    }

    /// The children of a span, left to right.
    pub(crate) fn children(&self, span: &Span) -> Vec<Span> {
        match *span {
            Span::Static { start, end, depth } => {
                let (c, base, rem) = balanced(end - start, self.static_arity);
                (0..c)
                    .map(|i| {
                        let (s, e) = (
                            start + chunk_start(i, base, rem),
                            start + chunk_start(i + 1, base, rem),
                        );
                        if e - s == 1 {
                            Span::Dw {
                                start: self.group_start(s),
                                end: self.group_start(e),
                                layer: 0,
                                depth: depth + 1,
                            }
                        } else {
                            Span::Static {
                                start: s,
                                end: e,
                                depth: depth + 1,
                            }
                        }
                    })
                    .collect()
            }
            Span::Dw {
                start,
                end,
                layer,
                depth,
            } => {
                let (c, base, rem) = balanced(end - start, self.dw_arity);
                (0..c)
                    .map(|i| {
                        let (s, e) = (
                            start + chunk_start(i, base, rem),
                            start + chunk_start(i + 1, base, rem),
                        );
                        if e - s == 1 {
                            Span::Leaf {
                                client: s,
                                depth: depth + 1,
                            }
                        } else {
                            Span::Dw {
                                start: s,
                                end: e,
                                layer: layer + 1,
                                depth: depth + 1,
                            }
                        }
                    })
                    .collect()
            }
            Span::Leaf { .. } => Vec::new(),
        }
    }

    /// Transaction count and fees plus anchors of the whole subtree under (and including) `span`.
    pub(crate) fn stats(&self, span: &Span) -> Stats {
        match *span {
            Span::Static { start, end, .. } => {
                let big = self.group_rem.min(end).saturating_sub(start);
                let small = end - start - big;
                let mut s = self
                    .split_stats
                    .get(&(end - start))
                    .copied()
                    .unwrap_or_default();
                if big > 0 {
                    s = s.add(self.dw_stats[&(self.group_base + 1)], big);
                }
                if small > 0 {
                    s = s.add(self.dw_stats[&self.group_base], small);
                }
                s
            }
            Span::Dw { start, end, .. } => self.dw_stats[&(end - start)],
            Span::Leaf { .. } => self.leaf,
        }
    }

    /// Number of tree transactions (the distribution transaction's id).
    pub(crate) fn tree_txs(&self) -> u32 {
        self.stats(&self.root()).txs
    }

    /// The transactions of one span, in order.
    pub(crate) fn shapes(&self, span: &Span) -> Vec<TxShape> {
        let children = || self.children(span).len();
        match span {
            Span::Static { .. } => vec![TxShape {
                p2tr_outputs: children(),
                is_state: false,
            }],
            Span::Dw { .. } => vec![
                TxShape {
                    p2tr_outputs: 1,
                    is_state: false,
                },
                TxShape {
                    p2tr_outputs: children(),
                    is_state: true,
                },
            ],
            Span::Leaf { .. } => vec![TxShape {
                p2tr_outputs: 2,
                is_state: true,
            }],
        }
    }

    /// Node ids of a span's children, given the span's own first id.
    pub(crate) fn child_ids(&self, span: &Span, id: NodeId, children: &[Span]) -> Vec<NodeId> {
        let mut next = id.0 + span.own_txs();
        children
            .iter()
            .map(|c| {
                let this = NodeId(next);
                next += self.stats(c).txs;
                this
            })
            .collect()
    }

    /// The spans from the root to `client`'s leaf, each with its first node id.
    pub(crate) fn path(&self, client: u32) -> Vec<(Span, NodeId)> {
        let mut out = vec![(self.root(), NodeId(0))];
        loop {
            let (span, id) = out[out.len() - 1];
            if let Span::Leaf { .. } = span {
                return out;
            }
            let children = self.children(&span);
            let ids = self.child_ids(&span, id, &children);
            let i = children
                .iter()
                .position(|c| {
                    let (s, e) = self.clients_of(c);
                    (s..e).contains(&client)
                })
                .expect("children partition their parent's clients");
            out.push((children[i], ids[i]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(l: &Layout, span: Span, id: u32, leaves: &mut Vec<u32>) -> u32 {
        // Returns the number of transactions, checking the memoised stats and the numbering.
        let children = l.children(&span);
        let ids = l.child_ids(&span, NodeId(id), &children);
        let mut txs = span.own_txs();
        for (c, cid) in children.iter().zip(ids) {
            assert_eq!(cid.0, id + txs, "pre-order numbering");
            txs += walk(l, *c, cid.0, leaves);
        }
        if let Span::Leaf { client, .. } = span {
            leaves.push(client);
        }
        assert_eq!(l.stats(&span).txs, txs);
        txs
    }

    #[test]
    fn every_client_gets_one_leaf_in_order() {
        let mut p = FactoryParams::regtest();
        for (dw, st, layers) in [(2, 4, 2), (3, 2, 1), (4, 8, 3), (2, 2, 1)] {
            p.dw_arity = dw;
            p.static_arity = st;
            p.dw_layers = layers;
            for n in (1..=70).chain([127, 128, 129, 1000, 1024, 1025]) {
                let l = Layout::new(&p, n);
                let mut leaves = Vec::new();
                let txs = walk(&l, l.root(), 0, &mut leaves);
                assert_eq!(leaves, (0..n).collect::<Vec<_>>());
                assert_eq!(txs, l.tree_txs());
                for c in [0, n / 2, n - 1] {
                    let path = l.path(c);
                    assert!(
                        matches!(path.last().unwrap().0, Span::Leaf { client, .. } if client == c)
                    );
                    let dw = path
                        .iter()
                        .filter(|(s, _)| matches!(s, Span::Dw { .. }))
                        .count();
                    assert!(dw >= 1 && dw as u32 <= l.dw_levels());
                }
            }
        }
    }

    #[test]
    fn leftmost_path_is_deepest() {
        let p = FactoryParams::mainnet();
        for n in [1, 2, 5, 17, 100, 1000, 4096] {
            let l = Layout::new(&p, n);
            let first = l.path(0).len();
            assert!((0..n).step_by(7).all(|c| l.path(c).len() <= first));
        }
    }
}
