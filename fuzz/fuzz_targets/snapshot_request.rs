#![no_main]
//! `SnapshotRequest::try_from` on arbitrary bytes (bounded XML), with a round trip of what it accepts.

use libfuzzer_sys::fuzz_target;
use podium::protocol::SnapshotRequest;

fuzz_target!(|data: &[u8]| podium_fuzz::payload::<SnapshotRequest>(data, |a, b| a == b));
