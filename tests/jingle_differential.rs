//! Issue 11 point 1, proved against jicofo's own parser: every participant Jingle the module forwards
//! to jicofo must give jicofo exactly the sources and groups the module believes it forwarded.
//!
//! Each run builds a few thousand stanzas from a printed seed (`JINGLE_DIFF_SEED` replays one,
//! `JINGLE_DIFF_COUNT` changes how many): the recorded lib-jitsi-meet stanzas
//! (tests/jingle-differential/recorded/, copied from the research's real-client-stanzas/), synthetic
//! client shapes, and mutations of both (duplicated descriptions, elements moved into other namespaces
//! and depths, unknown wrappers holding sources, SSRC texts Lua and Java read differently, prefixed
//! attributes, …). Every stanza goes through the module's side (tests/jingle-differential/
//! module_view.lua: Prosody's c2s parser and router checks, then podium_jingle.lib.lua as mod_podium
//! calls it); every stanza it forwards goes through jicofo's side (tests/jicofo-parser/: Smack 4.4.8
//! and jitsi-xmpp-extensions as jicofo registers them, and jicofo's `EndpointSourceSet.fromJingle`).
//! The test fails on any stanza where the two disagree, printing the stanza and both views.
//!
//! It needs Java 17 and Maven (scripts/test installs them and fetches the artifacts: ensure_java_parser);
//! without them it fails, saying so. It never skips.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const JINGLE: &str = "urn:xmpp:jingle:1";
const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
const SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
const GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
const ICE: &str = "urn:xmpp:jingle:transports:ice-udp:1";
const CLIENT: &str = "jabber:client";
const DEFAULT_COUNT: usize = 3000;

// ---------------------------------------------------------------------------------------------------
// A seeded PRNG (SplitMix64): the same seed gives the same stanzas on every machine.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------------
// A small XML tree whose serialisation the test controls exactly (prefixes, attribute order, text).

#[derive(Clone, Debug)]
enum Child {
    Element(Node),
    Text(String),
}

#[derive(Clone, Debug)]
struct Node {
    name: String,
    ns: String,
    /// Written as `<prefix:name xmlns:prefix=ns>` instead of `<name xmlns=ns>`.
    prefix: Option<String>,
    attrs: Vec<(String, String)>,
    children: Vec<Child>,
}

impl Node {
    fn new(name: &str, ns: &str) -> Node {
        Node {
            name: name.to_owned(),
            ns: ns.to_owned(),
            prefix: None,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    fn attr(mut self, key: &str, value: &str) -> Node {
        self.set(key, value);
        self
    }

    fn child(mut self, child: Node) -> Node {
        self.children.push(Child::Element(child));
        self
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.attrs.push((key.to_owned(), value.to_owned())),
        }
    }

    fn remove(&mut self, key: &str) {
        self.attrs.retain(|(k, _)| k != key);
    }

    fn elements(&self) -> impl Iterator<Item = &Node> {
        self.children.iter().filter_map(|child| match child {
            Child::Element(node) => Some(node),
            Child::Text(_) => None,
        })
    }

    fn write(&self, default_ns: &str, out: &mut String) {
        let qname = match &self.prefix {
            Some(prefix) => format!("{prefix}:{}", self.name),
            None => self.name.clone(),
        };
        let _ = write!(out, "<{qname}");
        let mut inner_default = default_ns;
        match &self.prefix {
            Some(prefix) => {
                let _ = write!(out, " xmlns:{prefix}='{}'", escape(&self.ns));
            }
            None if self.ns != default_ns => {
                let _ = write!(out, " xmlns='{}'", escape(&self.ns));
                inner_default = &self.ns;
            }
            None => {}
        }
        for (key, value) in &self.attrs {
            let _ = write!(out, " {key}='{}'", escape(value));
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for child in &self.children {
            match child {
                Child::Element(node) => node.write(inner_default, out),
                Child::Text(text) => out.push_str(&escape(text)),
            }
        }
        let _ = write!(out, "</{qname}>");
    }

    fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(CLIENT, &mut out);
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Reads the recorded stanzas: elements, double- or single-quoted attributes, default-namespace
/// declarations and text; nothing else occurs in them.
fn parse_recorded(text: &str) -> Node {
    fn parse_element(text: &str, pos: &mut usize, parent_ns: &str) -> Node {
        let bytes = text.as_bytes();
        assert_eq!(bytes[*pos], b'<');
        *pos += 1;
        let start = *pos;
        while !matches!(bytes[*pos], b' ' | b'/' | b'>' | b'\n') {
            *pos += 1;
        }
        let mut node = Node::new(&text[start..*pos], parent_ns);
        loop {
            while bytes[*pos].is_ascii_whitespace() {
                *pos += 1;
            }
            match bytes[*pos] {
                b'/' => {
                    *pos += 2;
                    return node;
                }
                b'>' => {
                    *pos += 1;
                    break;
                }
                _ => {
                    let key_start = *pos;
                    while bytes[*pos] != b'=' {
                        *pos += 1;
                    }
                    let key = text[key_start..*pos].to_owned();
                    let quote = bytes[*pos + 1];
                    *pos += 2;
                    let value_start = *pos;
                    while bytes[*pos] != quote {
                        *pos += 1;
                    }
                    let value = unescape(&text[value_start..*pos]);
                    *pos += 1;
                    if key == "xmlns" {
                        node.ns = value;
                    } else {
                        node.attrs.push((key, value));
                    }
                }
            }
        }
        loop {
            if text[*pos..].starts_with("</") {
                *pos = text[*pos..].find('>').unwrap() + *pos + 1;
                return node;
            }
            if bytes[*pos] == b'<' {
                let ns = node.ns.clone();
                let child = parse_element(text, pos, &ns);
                node.children.push(Child::Element(child));
            } else {
                let end = text[*pos..].find('<').unwrap() + *pos;
                node.children.push(Child::Text(unescape(&text[*pos..end])));
                *pos = end;
            }
        }
    }
    let mut pos = text.find('<').expect("an element");
    parse_element(text, &mut pos, CLIENT)
}

fn strip_whitespace(node: &mut Node) {
    node.children
        .retain(|child| !matches!(child, Child::Text(text) if text.trim().is_empty()));
    for child in &mut node.children {
        if let Child::Element(element) = child {
            strip_whitespace(element);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Base shapes: what lib-jitsi-meet sends.

const NICK: &str = "ab12cd34";

fn source(ssrc: u64, name: Option<&str>, video_type: Option<&str>) -> Node {
    let mut node = Node::new("source", SSMA).attr("ssrc", &ssrc.to_string());
    if let Some(name) = name {
        node.set("name", name);
    }
    if let Some(video_type) = video_type {
        node.set("videoType", video_type);
    }
    // lib-jitsi-meet writes the msid parameter without xmlns (so in ssma).
    node.child(
        Node::new("parameter", SSMA)
            .attr("name", "msid")
            .attr("value", &format!("{}-track {ssrc}", name.unwrap_or("anon"))),
    )
}

fn group(semantics: &str, ssrcs: &[u64]) -> Node {
    let mut node = Node::new("ssrc-group", SSMA).attr("semantics", semantics);
    for ssrc in ssrcs {
        node = node.child(Node::new("source", SSMA).attr("ssrc", &ssrc.to_string()));
    }
    node
}

/// A track's sources and groups: one SSRC, one with RTX (FID), or simulcast (SIM of 3 + 3 FID).
fn track(rng: &mut Rng, name: Option<&str>, video: bool, video_type: Option<&str>) -> Vec<Node> {
    let base = 1 + rng.below(4_000_000_000) as u64;
    let layout = if video { rng.below(3) } else { 0 };
    let count = [1, 2, 6][layout];
    let ssrcs: Vec<u64> = (0..count).map(|i| base + i as u64).collect();
    let mut out: Vec<Node> = ssrcs
        .iter()
        .map(|ssrc| source(*ssrc, name, video_type))
        .collect();
    match layout {
        1 => out.push(group("FID", &ssrcs)),
        2 => {
            out.push(group("SIM", &ssrcs[..3]));
            for i in 0..3 {
                out.push(group("FID", &[ssrcs[i], ssrcs[i + 3]]));
            }
        }
        _ => {}
    }
    out
}

fn description(media: &str, payload: bool, children: Vec<Node>) -> Node {
    let mut node = Node::new("description", RTP).attr("media", media);
    if payload {
        let (id, name, rate) = if media == "audio" {
            ("111", "opus", "48000")
        } else {
            ("100", "VP8", "90000")
        };
        node = node.child(
            Node::new("payload-type", RTP)
                .attr("id", id)
                .attr("name", name)
                .attr("clockrate", rate)
                .child(
                    Node::new("parameter", RTP)
                        .attr("name", "minptime")
                        .attr("value", "10"),
                ),
        );
    }
    for child in children {
        node = node.child(child);
    }
    if payload {
        node = node.child(Node::new("rtcp-mux", RTP));
    }
    node
}

/// A synthetic session-accept, source-add or source-remove in lib-jitsi-meet's shape.
fn synthetic(rng: &mut Rng) -> Node {
    let action = *rng.pick(&[
        "session-accept",
        "source-add",
        "source-add",
        "source-remove",
    ]);
    let named = rng.chance(80);
    let name = |kind: char, index: usize| named.then(|| format!("{NICK}-{kind}{index}"));
    let mut jingle = Node::new("jingle", JINGLE)
        .attr("action", action)
        .attr("sid", "4a5b6c7d8e9f");
    let session = action == "session-accept";
    if session {
        jingle = jingle.child(
            Node::new("group", GROUPING)
                .attr("semantics", "BUNDLE")
                .child(Node::new("content", GROUPING).attr("name", "audio"))
                .child(Node::new("content", GROUPING).attr("name", "video")),
        );
    }
    if session || rng.chance(50) {
        let audio = if rng.chance(85) {
            track(rng, name('a', 0).as_deref(), false, None)
        } else {
            Vec::new()
        };
        let mut content = Node::new("content", JINGLE)
            .attr("name", "audio")
            .child(description("audio", session, audio));
        if session {
            content = content.child(
                Node::new("transport", ICE)
                    .attr("ufrag", "u1")
                    .attr("pwd", "p1"),
            );
        }
        jingle = jingle.child(content);
    }
    let mut video = Vec::new();
    for index in 0..rng.below(3) {
        let video_type = *rng.pick(&[None, Some("camera"), Some("desktop")]);
        video.extend(track(rng, name('v', index).as_deref(), true, video_type));
    }
    if session || !video.is_empty() || jingle.elements().count() == 0 {
        jingle = jingle.child(
            Node::new("content", JINGLE)
                .attr("name", "video")
                .child(description("video", session, video)),
        );
    }
    Node::new("iq", CLIENT)
        .attr("type", "set")
        .attr("id", &format!("syn{}", rng.next() % 100_000))
        .attr("to", "room1@conference.meet.example/focus")
        .child(jingle)
}

// ---------------------------------------------------------------------------------------------------
// Mutations. Each picks a random place in the tree; a path is a list of child indexes.

type Path = Vec<usize>;

fn all_paths(node: &Node, path: &mut Path, out: &mut Vec<Path>) {
    out.push(path.clone());
    for (index, child) in node.children.iter().enumerate() {
        if let Child::Element(element) = child {
            path.push(index);
            all_paths(element, path, out);
            path.pop();
        }
    }
}

fn at<'a>(node: &'a mut Node, path: &[usize]) -> &'a mut Node {
    let mut current = node;
    for index in path {
        current = match &mut current.children[*index] {
            Child::Element(element) => element,
            Child::Text(_) => unreachable!("paths name elements"),
        };
    }
    current
}

fn paths_where(root: &Node, keep: impl Fn(&Node) -> bool) -> Vec<Path> {
    let mut paths = Vec::new();
    all_paths(root, &mut Vec::new(), &mut paths);
    let mut copy = root.clone();
    paths.retain(|path| keep(at(&mut copy, path)));
    paths
}

fn named(names: &'static [&'static str]) -> impl Fn(&Node) -> bool {
    move |node| names.contains(&node.name.as_str())
}

fn take(root: &mut Node, path: &[usize]) -> Node {
    let (last, parent) = path.split_last().expect("not the root");
    match at(root, parent).children.remove(*last) {
        Child::Element(node) => node,
        Child::Text(_) => unreachable!(),
    }
}

fn insert_random(rng: &mut Rng, root: &mut Node, node: Node, parents: &[Path]) {
    // With no parent of the kinds wanted left (a mutation renamed them), the iq itself.
    let path = if parents.is_empty() {
        Vec::new()
    } else {
        rng.pick(parents).clone()
    };
    let parent = at(root, &path);
    let index = rng.below(parent.children.len() + 1);
    parent.children.insert(index, Child::Element(node));
}

const SSRC_TEXTS: &[&str] = &[
    "0x10",
    " 5",
    "5 ",
    "1e3",
    "+5",
    "-1",
    "4294967296",
    "4294967295",
    "007",
    "0",
    "",
    "5.0",
    "\u{0661}\u{0662}",
    "1_000",
    "NaN",
    "inf",
    "99999999999999999999",
    "2147483648",
    "\t7",
];
const NAMESPACES: &[&str] = &[
    "urn:x",
    RTP,
    SSMA,
    JINGLE,
    CLIENT,
    GROUPING,
    "urn:xmpp:jingle:apps:rtp:ssma:1",
];

const CONTAINERS: &[&str] = &[
    "jingle",
    "content",
    "description",
    "source",
    "payload-type",
    "transport",
    "ssrc-group",
    "group",
];

/// Applies one random mutation; returns its name (for the report).
fn mutate(rng: &mut Rng, iq: &mut Node) -> &'static str {
    let sources = paths_where(iq, named(&["source", "ssrc-group"]));
    let descriptions = paths_where(iq, |n| n.name == "description");
    let contents = paths_where(iq, |n| n.name == "content" && n.ns == JINGLE);
    let containers = paths_where(iq, named(CONTAINERS));
    let everything = paths_where(iq, |n| n.name != "iq");
    match rng.below(24) {
        0 if !descriptions.is_empty() => {
            // The proof of concept: an empty description first, and an empty element named
            // description of another namespace at the head of the real one.
            let path = rng.pick(&descriptions).clone();
            let real = at(iq, &path);
            real.children
                .insert(0, Child::Element(Node::new("description", "urn:x")));
            let mut empty = real.clone();
            empty.children.clear();
            let (last, parent) = path.split_last().unwrap();
            at(iq, parent).children.insert(*last, Child::Element(empty));
            "poc-empty-first-description"
        }
        1 if !descriptions.is_empty() => {
            let path = rng.pick(&descriptions).clone();
            let copy = at(iq, &path).clone();
            let (last, parent) = path.split_last().unwrap();
            let offset = rng.below(2);
            at(iq, parent)
                .children
                .insert(*last + offset, Child::Element(copy));
            "duplicate-description"
        }
        2 if !sources.is_empty() => {
            let path = rng.pick(&sources).clone();
            let node = take(iq, &path);
            let parents = paths_where(
                iq,
                named(&[
                    "jingle",
                    "content",
                    "description",
                    "source",
                    "payload-type",
                    "transport",
                    "ssrc-group",
                    "group",
                    "parameter",
                ]),
            );
            insert_random(rng, iq, node, &parents);
            "move-source-elsewhere"
        }
        3 if !sources.is_empty() => {
            let path = rng.pick(&sources).clone();
            let node = take(iq, &path);
            let ns = format!("urn:wrap:{}", rng.below(3));
            let wrapper = Node::new(
                rng.pick::<&str>(&["wrap", "x", "description", "content", "reason"]),
                &ns,
            )
            .child(node);
            // Paths found before the source was taken out may be stale.
            let parents = paths_where(iq, named(CONTAINERS));
            insert_random(rng, iq, wrapper, &parents);
            "unknown-wrapper-holding-source"
        }
        4 if !everything.is_empty() => {
            let path = rng.pick(&everything).clone();
            let ns = *rng.pick(NAMESPACES);
            at(iq, &path).ns = ns.to_owned();
            "namespace-changed"
        }
        5 | 6 if !sources.is_empty() => {
            let members = paths_where(iq, |n| n.name == "source");
            let path = rng.pick(&members).clone();
            at(iq, &path).set("ssrc", rng.pick::<&str>(SSRC_TEXTS));
            "ssrc-text"
        }
        7 if !descriptions.is_empty() => {
            let path = rng.pick(&descriptions).clone();
            let media = *rng.pick(&[
                "AUDIO",
                "Video",
                "application",
                "",
                "data",
                "audio",
                "video",
                "-",
            ]);
            let node = at(iq, &path);
            if media == "-" {
                node.remove("media");
            } else {
                node.set("media", media);
            }
            "media-text"
        }
        8 if !everything.is_empty() => {
            let path = rng.pick(&everything).clone();
            let node = at(iq, &path);
            let key = match node.attrs.len() {
                0 => rng
                    .pick(&["ssrc", "media", "name", "videoType", "semantics"])
                    .to_string(),
                n => node.attrs[rng.below(n)].0.clone(),
            };
            let value = node.get(&key).unwrap_or("4242").to_owned();
            if rng.chance(50) {
                node.remove(&key);
            }
            node.set("xmlns:p", "urn:prefixed");
            node.set(&format!("p:{key}"), &value);
            "prefixed-attribute"
        }
        9 if !sources.is_empty() => {
            let members = paths_where(iq, |n| n.name == "source");
            let path = rng.pick(&members).clone();
            let value = *rng.pick(&[
                "Desktop", "DESKTOP", "screen", "", "camera", "desktop", "CAMERA",
            ]);
            at(iq, &path).set("videoType", value);
            "video-type-text"
        }
        10 => {
            let groups = paths_where(iq, |n| n.name == "ssrc-group");
            if groups.is_empty() {
                return "none";
            }
            let path = rng.pick(&groups).clone();
            let value = *rng.pick(&["fid", "Sim", "FEC-FR", "", "FID ", "FID", "SIM"]);
            at(iq, &path).set("semantics", value);
            "semantics-text"
        }
        11 => {
            let groups = paths_where(iq, |n| n.name == "ssrc-group");
            if groups.is_empty() {
                return "none";
            }
            let path = rng.pick(&groups).clone();
            let node = at(iq, &path);
            match rng.below(4) {
                0 => node.children.push(Child::Element(
                    Node::new("source", SSMA).attr("ssrc", &(1 + rng.below(1000)).to_string()),
                )),
                1 => node.children.push(Child::Element(
                    Node::new("source", SSMA)
                        .attr("ssrc", "77")
                        .attr("name", &format!("{NICK}-v9")),
                )),
                2 => node.children.push(Child::Element(group("FID", &[5, 6]))),
                _ => node.children.push(Child::Element(
                    Node::new("source", "urn:x").attr("ssrc", "78"),
                )),
            }
            "group-members"
        }
        12 if !contents.is_empty() => {
            let path = rng.pick(&contents).clone();
            let node = at(iq, &path).clone();
            let parents = paths_where(
                iq,
                named(&["content", "description", "source", "transport"]),
            );
            insert_random(rng, iq, node, &parents);
            "nested-content"
        }
        13 if !contents.is_empty() => {
            let path = rng.pick(&contents).clone();
            let extra = source(4242, Some(&format!("{NICK}-a5")), None);
            at(iq, &path).children.push(Child::Element(extra));
            "source-directly-in-content"
        }
        14 if !sources.is_empty() => {
            let members = paths_where(iq, |n| n.name == "source");
            let path = rng.pick(&members).clone();
            let node = at(iq, &path);
            match rng.below(3) {
                0 => node.remove("name"),
                1 => node.set("name", "someoneelse-v0"),
                _ => node.set("name", &format!("{NICK}-V0")),
            }
            "source-name"
        }
        15 => {
            let Some(path) = paths_where(iq, |n| n.name == "jingle").first().cloned() else {
                return "none";
            };
            let jingle = at(iq, &path);
            let action = *rng.pick(&[
                "source-add",
                "addsource",
                "session-accept",
                "transport-accept",
                "source-remove",
                "removesource",
                "SOURCE-ADD",
                "session-info",
                "transport-info",
                "content-add",
            ]);
            jingle.set("action", action);
            "action"
        }
        16 => {
            iq.set("type", rng.pick::<&str>(&["SET", "get", "set", "Set"]));
            "iq-type"
        }
        17 if !containers.is_empty() => {
            let path = rng.pick(&containers).clone();
            let node = at(iq, &path);
            let index = rng.below(node.children.len() + 1);
            node.children.insert(
                index,
                Child::Text(rng.pick(&[" ", "\n  ", "x", "5"]).to_string()),
            );
            "text-node"
        }
        18 if !everything.is_empty() => {
            let path = rng.pick(&everything).clone();
            at(iq, &path).prefix = Some(rng.pick(&["s", "jingle", "x"]).to_string());
            "prefixed-element"
        }
        19 if !sources.is_empty() => {
            let path = rng.pick(&sources).clone();
            let copy = at(iq, &path).clone();
            let (last, parent) = path.split_last().unwrap();
            at(iq, parent).children.insert(*last, Child::Element(copy));
            "duplicate-source"
        }
        20 => {
            let jingle = iq.elements().find(|n| n.name == "jingle").cloned();
            match (rng.below(2), jingle) {
                (0, Some(jingle)) => iq.children.push(Child::Element(jingle)),
                _ => iq
                    .children
                    .insert(0, Child::Element(Node::new("x", "urn:x"))),
            }
            "second-iq-child"
        }
        21 if !contents.is_empty() => {
            let path = rng.pick(&contents).clone();
            let node = take(iq, &path);
            let wrapper = Node::new("wrap", "urn:x").child(node);
            let jingles = paths_where(iq, |n| n.name == "jingle");
            insert_random(rng, iq, wrapper, &jingles);
            "wrapped-content"
        }
        22 if !everything.is_empty() => {
            let path = rng.pick(&everything).clone();
            let node = at(iq, &path);
            node.name = match node.name.as_str() {
                "source" => "Source",
                "content" => "CONTENT",
                "description" => "Description",
                "ssrc-group" => "ssrc-Group",
                _ => "source",
            }
            .to_owned();
            "element-name-case"
        }
        23 if !descriptions.is_empty() => {
            let path = rng.pick(&descriptions).clone();
            let node = take(iq, &path);
            let parents = paths_where(
                iq,
                named(&[
                    "jingle",
                    "content",
                    "description",
                    "transport",
                    "payload-type",
                ]),
            );
            insert_random(rng, iq, node, &parents);
            "move-description"
        }
        _ => "none",
    }
}

// ---------------------------------------------------------------------------------------------------
// The two sides.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the Jingle differential test needs `{tool}` (Java 17 and Maven run jicofo's parser): run \
         scripts/test, or `apt-get install openjdk-17-jdk-headless maven lua5.4 prosody`"
    );
}

/// Builds tests/jicofo-parser (offline when Maven has the artifacts, else online) and returns the
/// `java` arguments that run it.
fn jicofo_parser() -> Vec<String> {
    require_tool("java");
    require_tool("mvn");
    let pom = root().join("tests/jicofo-parser/pom.xml");
    let dir = root().join("target/jicofo-parser");
    let source =
        root().join("tests/jicofo-parser/src/main/java/org/podium/jicofoparser/JicofoSources.java");
    let class = dir.join("classes/org/podium/jicofoparser/JicofoSources.class");
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    // Built after its sources changed: the class after the Java file and the pom, the class path after
    // the pom (Maven rewrites it only when it changes).
    let newer =
        |built: &std::path::Path, than: &std::path::Path| match (modified(built), modified(than)) {
            (Some(built), Some(than)) => built >= than,
            _ => false,
        };
    let classpath = dir.join("classpath.txt");
    let up_to_date = newer(&class, &source) && newer(&class, &pom) && newer(&classpath, &pom);
    let build = |offline: bool| {
        let mut command = Command::new("mvn");
        command.arg("-q").arg("-B").arg("-Dstyle.color=never");
        if offline {
            command.arg("-o");
        }
        command.arg("-f").arg(&pom).arg("compile");
        command.output().expect("mvn runs")
    };
    if !up_to_date {
        let mut output = build(true);
        if !output.status.success() {
            output = build(false);
        }
        assert!(
            output.status.success(),
            "building tests/jicofo-parser with Maven failed (Maven Central must be reachable once, or \
         scripts/test's ensure_java_parser must have fetched the artifacts):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let classpath =
        std::fs::read_to_string(dir.join("classpath.txt")).expect("Maven wrote classpath.txt");
    vec![
        "-Xss8m".to_owned(),
        "-cp".to_owned(),
        format!("{}:{}", dir.join("classes").display(), classpath.trim()),
        "org.podium.jicofoparser.JicofoSources".to_owned(),
    ]
}

/// Runs `program` with `input` on stdin (through a file: no pipe can fill up) and returns its
/// stdout lines, one JSON value each.
fn run_lines(program: &str, args: &[String], input: &[u8], expected: usize) -> Vec<Value> {
    let mut file = tempfile::tempfile().expect("a temporary file");
    std::io::Write::write_all(&mut file, input).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .stdin(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|error| panic!("{program} cannot run: {error}"));
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{program} printed {line:?}: {e}"))
        })
        .collect();
    assert_eq!(lines.len(), expected, "{program} answered every stanza");
    lines
}

type SourceKey = (String, String, Option<String>, Option<String>);
type GroupKey = (String, String, Vec<String>);

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn list(value: &Value, key: &str) -> Vec<Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The sources and groups of one side's JSON, as sets.
fn view(value: &Value) -> (BTreeSet<SourceKey>, BTreeSet<GroupKey>) {
    let sources = list(value, "sources")
        .iter()
        .map(|s| {
            (
                text(s, "ssrc").unwrap_or_default(),
                text(s, "media").unwrap_or_default(),
                text(s, "name"),
                text(s, "videoType"),
            )
        })
        .collect();
    let groups = list(value, "groups")
        .iter()
        .map(|g| {
            (
                text(g, "semantics").unwrap_or_default(),
                text(g, "media").unwrap_or_default(),
                list(g, "ssrcs")
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .collect();
    (sources, groups)
}

/// The (SSRC, media) pairs a view names, in sources and in groups.
fn ssrcs_of(sets: &(BTreeSet<SourceKey>, BTreeSet<GroupKey>)) -> BTreeSet<(String, String)> {
    let from_sources = sets
        .0
        .iter()
        .map(|(ssrc, media, _, _)| (ssrc.clone(), media.clone()));
    let from_groups = sets
        .1
        .iter()
        .flat_map(|(_, media, ssrcs)| ssrcs.iter().map(move |ssrc| (ssrc.clone(), media.clone())));
    from_sources.chain(from_groups).collect()
}

struct Case {
    origin: String,
    mutations: Vec<&'static str>,
    nick: String,
    allowed: String,
    xml: String,
    /// Unmutated recorded client stanza with every kind allowed: must be forwarded.
    must_forward: bool,
}

/// Hand-written tricks every run tries, whatever the seed (the participant may send audio only).
fn fixed_cases() -> Vec<(&'static str, String)> {
    let iq = |contents: &str| {
        format!(
            "<iq type='set' id='fixed' to='room1@conference.meet.example/focus'><jingle xmlns='{JINGLE}' \
             action='source-add' sid='4a5b6c7d8e9f'>{contents}</jingle></iq>"
        )
    };
    let audio = |children: &str| {
        format!(
            "<content name='audio'><description xmlns='{RTP}' media='audio'>{children}</description></content>"
        )
    };
    let source = |ssrc: &str| format!("<source xmlns='{SSMA}' ssrc='{ssrc}' name='{NICK}-a0'/>");
    vec![
        (
            "issue 11 proof of concept: empty first description, then an empty foreign <description>",
            iq(&format!(
                "<content name='audio'><description xmlns='{RTP}' media='audio'/><description xmlns='{RTP}' \
                 media='audio'><description xmlns='urn:x'/>{}</description></content>",
                source("4242")
            )),
        ),
        ("ssrc '1e3'", iq(&audio(&source("1e3")))),
        ("ssrc '0x10'", iq(&audio(&source("0x10")))),
        ("ssrc ' 5'", iq(&audio(&source(" 5")))),
        ("ssrc '+5'", iq(&audio(&source("+5")))),
        (
            "video source under an unknown wrapper in an audio description",
            iq(&audio(&format!(
                "<x xmlns='urn:x'><source xmlns='{SSMA}' ssrc='77' name='{NICK}-v0'/></x>"
            ))),
        ),
        (
            "video source directly in the content",
            iq(&format!(
                "<content name='video'><source xmlns='{SSMA}' ssrc='78' name='{NICK}-v0'/></content>{}",
                audio(&source("5"))
            )),
        ),
        (
            "group semantics 'fid'",
            iq(&audio(&format!(
                "{}{}<ssrc-group xmlns='{SSMA}' semantics='fid'><source ssrc='5'/><source ssrc='6'/></ssrc-group>",
                source("5"),
                source("6")
            ))),
        ),
        (
            "whitespace between the contents of <jingle>",
            iq(&format!(" {} ", audio(&source("5")))),
        ),
        (
            "<traceparent> without its attributes (TraceParentProvider fails the stanza)",
            iq(&format!(
                "<traceparent xmlns='jitsi:opentelemetry'/>{}",
                audio(&source("5"))
            )),
        ),
        (
            "<traceparent> without trace_flags",
            iq(&format!(
                "<traceparent xmlns='jitsi:opentelemetry' trace_id='{}' parent_id='{}'/>{}",
                "0".repeat(32),
                "0".repeat(16),
                audio(&source("5"))
            )),
        ),
    ]
}

fn nick_of(xml: &str) -> String {
    // lib-jitsi-meet's source names are `<endpoint>-<a|v><n>`; the endpoint is the MUC nick.
    xml.split("name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find_map(|name| {
            let (nick, track) = name.rsplit_once('-')?;
            (track.len() >= 2 && matches!(&track[..1], "a" | "v")).then(|| nick.to_owned())
        })
        .unwrap_or_else(|| NICK.to_owned())
}

fn cases(rng: &mut Rng, count: usize) -> Vec<Case> {
    let dir = root().join("tests/jingle-differential/recorded");
    let mut recorded: Vec<(String, Node, String)> = std::fs::read_dir(&dir)
        .expect("the recorded stanzas")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "xml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Recorded pretty-printed; lib-jitsi-meet (Strophe) sends no whitespace between elements.
            let mut node = parse_recorded(&text);
            strip_whitespace(&mut node);
            (name, node, nick_of(&text))
        })
        .collect();
    recorded.sort_by(|a, b| a.0.cmp(&b.0));
    let kinds = ["audio", "video", "screen"];
    let mut out = Vec::new();
    for (name, node, nick) in &recorded {
        out.push(Case {
            origin: name.clone(),
            mutations: Vec::new(),
            nick: nick.clone(),
            allowed: "audio,video,screen".to_owned(),
            xml: node.to_xml(),
            must_forward: true,
        });
    }
    for (name, xml) in fixed_cases() {
        out.push(Case {
            origin: name.to_owned(),
            mutations: Vec::new(),
            nick: NICK.to_owned(),
            allowed: "audio".to_owned(),
            xml,
            must_forward: false,
        });
    }
    // lib-jitsi-meet's data channel content, as it sends it when jicofo offers SCTP (SDP.ts toJingle;
    // the shared yardstick's session-accept carries one): it must pass, and jicofo read the same.
    out.push(Case {
        origin: "session-accept with the data channel's content".to_owned(),
        mutations: Vec::new(),
        nick: NICK.to_owned(),
        allowed: "audio".to_owned(),
        xml: format!(
            "<iq type='set' id='data' to='room1@conference.meet.example/focus'><jingle xmlns='{JINGLE}' \
             action='session-accept' sid='4a5b6c7d8e9f'><content name='audio'><description xmlns='{RTP}' \
             media='audio'><source xmlns='{SSMA}' ssrc='5' name='{NICK}-a0'/></description></content>\
             <content name='data'><description xmlns='{RTP}' media='application'/></content></jingle></iq>"
        ),
        must_forward: true,
    });
    while out.len() < count {
        let (origin, mut iq, nick) = if rng.chance(40) {
            let (name, node, nick) = rng.pick(&recorded);
            (name.clone(), node.clone(), nick.clone())
        } else {
            ("synthetic".to_owned(), synthetic(rng), NICK.to_owned())
        };
        let mut mutations = Vec::new();
        let rounds = if rng.chance(10) { 0 } else { 1 + rng.below(3) };
        for _ in 0..rounds {
            mutations.push(mutate(rng, &mut iq));
        }
        let allowed: Vec<&str> = kinds.iter().copied().filter(|_| rng.chance(60)).collect();
        out.push(Case {
            origin,
            mutations,
            nick,
            allowed: if allowed.is_empty() {
                "-".to_owned()
            } else {
                allowed.join(",")
            },
            xml: iq.to_xml(),
            must_forward: false,
        });
    }
    out
}

#[test]
fn jicofo_reads_exactly_what_the_module_forwards() {
    let seed = std::env::var("JINGLE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let count = std::env::var("JINGLE_DIFF_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_COUNT);
    println!(
        "jingle differential: seed {seed} (replay with JINGLE_DIFF_SEED={seed}), {count} stanzas"
    );
    require_tool("lua5.4");
    let java = jicofo_parser();
    let started = Instant::now();
    let mut rng = Rng(seed);
    let cases = cases(&mut rng, count);

    let mut module_input = Vec::new();
    for case in &cases {
        module_input
            .extend(format!("{} {} {}\n", case.nick, case.allowed, case.xml.len()).as_bytes());
        module_input.extend(case.xml.as_bytes());
    }
    let module = run_lines(
        "lua5.4",
        &[
            "tests/jingle-differential/module_view.lua".to_owned(),
            "prosody-plugins".to_owned(),
        ],
        &module_input,
        cases.len(),
    );

    let forwarded: Vec<usize> = (0..cases.len())
        .filter(|i| module[*i].get("forwarded").is_some())
        .collect();
    let mut jicofo_input = Vec::new();
    for i in &forwarded {
        let xml = module[*i]["forwarded"].as_str().unwrap();
        jicofo_input.extend(format!("{}\n", xml.len()).as_bytes());
        jicofo_input.extend(xml.as_bytes());
    }
    let jicofo = run_lines("java", &java, &jicofo_input, forwarded.len());

    let mut report = String::new();
    let mut mismatches = 0;
    let mut with_sources = 0;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_mutation: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, i) in forwarded.iter().enumerate() {
        let (case, module_view, jicofo_view) = (&cases[*i], &module[*i], &jicofo[k]);
        let module_sets = view(module_view);
        let jicofo_sets = if jicofo_view.get("error").is_some() {
            None
        } else {
            Some(view(jicofo_view))
        };
        if !module_sets.0.is_empty() {
            with_sources += 1;
        }
        let agree = match &jicofo_sets {
            Some(sets) => *sets == module_sets,
            // jicofo could not read it and takes nothing: right only when the module forwarded nothing.
            None => module_sets.0.is_empty() && module_sets.1.is_empty(),
        };
        if !agree {
            mismatches += 1;
            let kind = match &jicofo_sets {
                None => {
                    "jicofo cannot read it (takes nothing) while the module believes it took sources"
                }
                Some(sets) if !ssrcs_of(sets).is_subset(&ssrcs_of(&module_sets)) => {
                    "jicofo takes SSRCs the module does not know of"
                }
                Some(_) => {
                    "the same or fewer SSRCs, read differently (name, videoType, media, semantics)"
                }
            };
            let seen = kinds.entry(kind).or_insert(0);
            *seen += 1;
            let example = *seen <= 3;
            for mutation in &case.mutations {
                *by_mutation.entry(*mutation).or_insert(0) += 1;
            }
            if example {
                let _ = writeln!(
                    report,
                    "--- {kind}: {} mutated by {:?}, nick {}, allowed {}\n  client sent: {}\n  forwarded:   {}\n  \
                     module view: {}\n  jicofo view: {}",
                    case.origin,
                    case.mutations,
                    case.nick,
                    case.allowed,
                    case.xml,
                    module_view["forwarded"].as_str().unwrap_or(""),
                    serde_json::json!({"sources": module_view["sources"], "groups": module_view["groups"]}),
                    jicofo_view
                );
            }
        }
    }
    let refused_recorded: Vec<String> = cases
        .iter()
        .zip(&module)
        .filter(|(case, view)| case.must_forward && view.get("forwarded").is_none())
        .map(|(case, view)| format!("{}: {}", case.origin, view))
        .collect();
    println!(
        "jingle differential: {} stanzas, {} forwarded ({} with sources), {} refused, {} mismatches, {:.1} s",
        cases.len(),
        forwarded.len(),
        with_sources,
        cases.len() - forwarded.len(),
        mismatches,
        started.elapsed().as_secs_f64()
    );
    assert!(
        refused_recorded.is_empty(),
        "the module refuses what lib-jitsi-meet really sends: {refused_recorded:#?}"
    );
    assert!(
        with_sources * 10 >= forwarded.len(),
        "too few forwarded stanzas carry sources ({with_sources} of {}): the test would prove little",
        forwarded.len()
    );
    assert_eq!(
        mismatches, 0,
        "jicofo reads {mismatches} forwarded stanza(s) differently from the module (seed {seed}).\n\
         by kind: {kinds:?}\nmutations among them: {by_mutation:?}\nup to three of each kind:\n{report}"
    );
}

#[test]
fn test_recorded_parse_round_trip() {
    let text = std::fs::read_to_string(
        root().join("tests/jingle-differential/recorded/07-source-add-camera.xml"),
    )
    .unwrap();
    let node = parse_recorded(&text);
    let xml = node.to_xml();
    assert!(xml.starts_with("<iq "), "{xml}");
    assert!(
        xml.contains("<jingle xmlns='urn:xmpp:jingle:1' action='source-add'"),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0'")
            .count(),
        6,
        "{xml}"
    );
    assert_eq!(nick_of(&text), "c07d8cc1");
}
