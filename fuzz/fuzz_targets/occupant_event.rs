#![no_main]
//! `OccupantEvent::try_from` on arbitrary bytes (bounded XML), with a round trip of what it accepts.

use libfuzzer_sys::fuzz_target;
use podium::protocol::OccupantEvent;

fuzz_target!(|data: &[u8]| podium_fuzz::payload::<OccupantEvent>(data, |a, b| a == b));
