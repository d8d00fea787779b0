//! Incoming packs, whoever brings them (a push, a gc, the fuzzers): the [`quarantine`]
//! a pack is indexed into before anyone may see its objects, and the [`inspect`]ion
//! in front of gix's indexer that refuses what would exhaust memory before it is
//! allocated. A module of its own so that the push ([`crate::receive`]) and pack
//! maintenance ([`crate::maintenance`]) share it without depending on each other.

pub mod arriving;
pub mod fsck;
pub mod inspect;
pub mod quarantine;

/// Index slots of a repository's object store. gix sizes them from the packs on disk
/// at open time by default, and a long session then fails ("too few index slots") when
/// concurrent pushes add packs; a server should give a fixed, generous number.
pub const ODB_SLOTS: u16 = 4096;

/// Object store options for repositories and the views over a quarantine (same slots).
pub fn odb_options() -> gix::odb::store::init::Options {
    gix::odb::store::init::Options {
        slots: gix::odb::store::init::Slots::Given(ODB_SLOTS),
        ..Default::default()
    }
}
