#![no_main]
//! `Snapshot::try_from` on arbitrary bytes (bounded XML), with a round trip of what it accepts
//! (`skipped` is podium's note of unreadable entries and never serialised).

use libfuzzer_sys::fuzz_target;
use podium::protocol::Snapshot;

fuzz_target!(
    |data: &[u8]| podium_fuzz::payload::<Snapshot>(data, |a, b| a.rooms == b.rooms
        && a.next == b.next)
);
