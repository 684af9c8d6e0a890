#![no_main]
//! `Applied::try_from` on arbitrary bytes (bounded XML), with a round trip of what it accepts.

use libfuzzer_sys::fuzz_target;
use podium::protocol::Applied;

fuzz_target!(|data: &[u8]| podium_fuzz::payload::<Applied>(data, |a, b| a == b));
