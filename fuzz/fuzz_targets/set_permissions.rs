#![no_main]
//! `SetPermissions::try_from` on arbitrary bytes (bounded XML), with a round trip of what it accepts.

use libfuzzer_sys::fuzz_target;
use podium::protocol::SetPermissions;

fuzz_target!(|data: &[u8]| podium_fuzz::payload::<SetPermissions>(data, |a, b| a == b));
