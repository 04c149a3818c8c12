//! A factory's [`Life`] (active, dying, expired, timed out), and the end of it: clients move their balance to a newer factory of the same LSP,
//! hand the LSP the factory key that no longer guards anything of theirs, and the LSP closes the
//! old factory with one key-path transaction.
//!
//! Migration reuses what already exists instead of adding a signing ceremony:
//!
//! 1. The wallet joins a newer factory of the LSP through the ordinary creation ceremony, with a
//!    fresh factory key. It holds a verified, signed path there before anything else happens.
//! 2. Once that factory is confirmed and its channel is open, the wallet pays its whole balance
//!    from the old channel to an invoice of its own whose route hint names the new channel.
//!    That is an HTLC on each side with one hash: either both channels update or neither, so
//!    no step leaves the client without its money in one of them. A payment between two
//!    channels of the same wallet carries no routing fee and pays no join fee
//!    ([`crate::pay::policy::route_fee_for`]), so the balance arrives to the sat.
//! 3. With the old channel at a zero balance and no HTLC, the old factory key guards nothing of
//!    the client's. The wallet sends it to the LSP ([`KeyRelease`]); the LSP checks it is the
//!    member's key, stores it, and closes the channel ([`KeyReleased`]).
//! 4. When it holds the key of every member, the LSP alone signs the funding output's key path
//!    ([`build_close`], [`sign_close`]): one transaction returns the whole factory to its wallet,
//!    and no part of the tree ever reaches the chain.
//!
//! A member that never releases its key is not harmed: its leaf stays enforceable by its own
//! exit, or by the distribution transaction after the timeout, exactly as before. Once its path
//! is on chain, the LSP takes back each part of the tree that every member below left with one
//! key-path spend ([`released_frontier`], [`build_sweep`], [`sign_sweep`]).

mod close;
mod ladder;
mod life;
mod notice;
mod release;
mod sweep;

pub use close::{build_close, build_sweep, close_sighash, sign_close, sign_sweep, CloseError};
pub use ladder::Ladder;
pub use life::{Life, Stage};
pub use notice::FactoryNotice;
pub use release::{KeyRelease, KeyReleased, ReleaseError};
pub use sweep::{children, released_frontier};

#[cfg(test)]
mod tests;
