#![no_main]
//! Presence reading: `PresenceFacts::from_presence` on arbitrary bytes (bounded XML), and an occupant
//! built and updated from it as the engine does.

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use podium::protocol::OccupantState;
use podium::rooms::{Occupant, PresenceFacts};

fuzz_target!(|data: &[u8]| {
    let Some(presence) = podium_fuzz::element(data) else {
        return;
    };
    let facts = PresenceFacts::from_presence(&presence);
    let state = OccupantState {
        nick: "n".into(),
        real_jid: "n@localhost/r".parse().unwrap(),
        identity: None,
        held: None,
        presence: Some(presence),
        joined: Some(1),
        meeting: Some("m-1".into()),
    };
    let mut occupant = Occupant::from_state(state.clone(), Timestamp::UNIX_EPOCH);
    assert_eq!(occupant.presence, facts);
    occupant.update(state, Timestamp::UNIX_EPOCH);
    assert_eq!(occupant.presence, facts);
    let _ = occupant.services(&["localhost".to_owned()]);
});
