//! Incoming packs, whoever brings them (a push, a gc, the fuzzers): the [`quarantine`]
//! a pack is indexed into before anyone may see its objects, and the [`inspect`]ion
//! in front of gix's indexer that refuses what would exhaust memory before it is
//! allocated. A module of its own so that the push ([`crate::receive`]) and pack
//! maintenance ([`crate::maintenance`]) share it without depending on each other.

pub mod fsck;
pub mod inspect;
pub mod quarantine;
