#![no_main]
//! `HeldQuery::try_from` on arbitrary bytes (bounded XML), with a round trip of what it accepts.

use libfuzzer_sys::fuzz_target;
use podium::protocol::HeldQuery;

fuzz_target!(|data: &[u8]| podium_fuzz::payload::<HeldQuery>(data, |a, b| a == b));
