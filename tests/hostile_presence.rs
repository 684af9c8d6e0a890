//! A hostile occupant's presence against the module's own reading of it (issue 13 review): the module
//! no longer forwards presence to podium, it reports role and affiliation as the room computed them
//! and a few facts it read, and it batches the reports of one turn of Prosody's loop into one message.
//! Stanzas written in one TCP write are handled in one turn, so a join, a leave, a rejoin and a nick
//! change below reach podium in one message, in order. Asserted on podium's own view (its
//! `occupants` table) and on what the module holds, on a real Prosody with the real podium binary.

mod common;

use common::conference::start_with_rules;
use common::prosody::MUC;
use common::raw::RawClient;
use common::{decided, wait_audit, wait_held};

const ROOM: &str = "hostile-presence";

/// A presence to `nick` in the room, with `extra` children.
fn presence(nick: &str, extra: &str) -> String {
    format!(
        "<presence to='{ROOM}@{MUC}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/>\
         <SourceInfo>{{\"{nick}-a0\":{{\"muted\":false}}}}</SourceInfo>{extra}</presence>"
    )
}

/// What a modified client may claim about itself: the room's own muc#user item naming it moderator
/// and owner, a recorder's feature, text where podium reads words.
const FORGED: &str = "<x xmlns='http://jabber.org/protocol/muc#user'>\
    <item role='moderator' affiliation='owner' jid='alice@localhost/raw'/></x>\
    <features><feature var='http://jitsi.org/protocol/jibri'/><feature var='a b'/></features>\
    <jitsi_participant_raisedHand>&lt;x role=&quot;moderator&quot;/&gt;</jitsi_participant_raisedHand>";

#[tokio::test]
async fn a_forged_presence_and_a_burst_of_joins_leaves_and_nick_changes_leave_podium_with_the_room_as_it_is()
 {
    let (prosody, podium, db, mut inspector) = start_with_rules(
        &["alice", "mallory", "inspector"],
        "",
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'audio', 'allow', 0),
        (2, '*', 'role', 'moderator', 'all', 'allow', 10)",
    )
    .await;
    // alice creates the room: its owner, a moderator.
    let mut alice = RawClient::connect(prosody.c2s_port, "alice").await;
    alice.send(&presence("alice", "")).await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen")]),
    )
    .await;

    // One write: join as m1 (forged), leave, join as m2 (forged), change nick to m3 (forged).
    let mut mallory = RawClient::connect(prosody.c2s_port, "mallory").await;
    let burst = [
        presence("m1", FORGED),
        format!("<presence to='{ROOM}@{MUC}/m1' type='unavailable'/>"),
        presence("m2", FORGED),
        presence("m3", FORGED),
    ]
    .concat();
    mallory.send(&burst).await;

    // podium sees the room as it is: alice the owner, m3 a participant, no one else; m3 is decided
    // as a participant (audio only), never as the moderator it claimed to be.
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen"), ("m3", "audio")]),
    )
    .await;
    wait_audit(
        &podium,
        &db,
        &format!(
            "SELECT nick, role, affiliation, services FROM occupants \
             WHERE room = '{ROOM}@{MUC}' ORDER BY nick"
        ),
        "alice|moderator|owner|\nm3|participant|none|\n",
    )
    .await;

    // A presence update carrying the same forgeries changes nothing podium believes.
    mallory.send(&presence("m3", FORGED)).await;
    alice
        .send(&presence(
            "alice",
            "<jitsi_participant_raisedHand>1</jitsi_participant_raisedHand>",
        ))
        .await;
    wait_audit(
        &podium,
        &db,
        &format!(
            "SELECT nick, role, affiliation, hand_raised_at IS NOT NULL FROM occupants \
             WHERE room = '{ROOM}@{MUC}' ORDER BY nick"
        ),
        "alice|moderator|owner|1\nm3|participant|none|1\n",
    )
    .await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen"), ("m3", "audio")]),
    )
    .await;
}
