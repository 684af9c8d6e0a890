//! The source model the Jitsi stand-ins share: media sources and SSRC groups as Jingle, Colibri2 and
//! jicofo's compact JSON carry them, with jicofo's validation rules.
//!
//! Facts this rests on (research: /work/shared/research/jitsi-protocol.md §2, §3; recorded client
//! stanzas in real-client-stanzas/):
//! * sources are `<source xmlns=ssma ssrc name videoType>` and `<ssrc-group xmlns=ssma semantics>`
//!   children of `<content><description xmlns=rtp media>`; the msid is a `<parameter name='msid'>`
//!   child, which jicofo writes in the rtp namespace and lib-jitsi-meet without xmlns (so ssma);
//! * jicofo names the owner of a source it relays with `<ssrc-info xmlns=jitmeet owner>`, or sends
//!   `<json-message xmlns=jitmeet>{"sources":{"<owner>":[[video],[video groups],[audio],[audio
//!   groups]]}}` (jicofo `EndpointSourceSet.compactJson`; a source is `{"s","n","m"}` plus `"v":"d"`
//!   for desktop only, a group `["f"|"s", ssrc…]`; trailing arrays may be missing);
//! * lib-jitsi-meet reads a JSON video source without `"v"` as a camera (`JingleHelperFunctions.ts`);
//! * jicofo validates an endpoint's sources in `ValidatingConferenceSourceMap`: the texts below are
//!   its exception messages, which it sends back as `bad-request` text.

use std::collections::{BTreeMap, BTreeSet};

use minidom::Element;
use serde_json::Value;

use super::c2s::{attr, el};
use super::peer::random_hex;

/// XEP-0166 Jingle.
pub const JINGLE: &str = "urn:xmpp:jingle:1";
/// XEP-0167 RTP sessions: `<description>`, `<payload-type>`, jicofo's msid `<parameter>`.
pub const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
/// XEP-0339 source-specific media attributes: `<source>` and `<ssrc-group>`.
pub const SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
/// Jitsi's own extensions: `<ssrc-info owner>`, `<json-message>`.
pub const JITMEET: &str = "http://jitsi.org/jitmeet";
/// Colibri2, jicofo ↔ bridge.
pub const COLIBRI2: &str = "jitsi:colibri2";
/// XEP-0176 ICE-UDP transport.
pub const ICE: &str = "urn:xmpp:jingle:transports:ice-udp:1";
/// XEP-0320 DTLS fingerprints inside the ICE transport.
pub const DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
/// XEP-0338 grouping (BUNDLE).
pub const GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
/// XEP-0293 RTCP feedback.
pub const RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
/// XEP-0294 RTP header extensions.
pub const RTP_HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
/// jicofo's focus namespace: the conference request, `<bridge-session>`.
pub const FOCUS: &str = "http://jitsi.org/protocol/focus";
/// jicofo's `<traceparent>` (OpenTelemetry context) in its session-initiate, echoed by current clients.
pub const OPENTELEMETRY: &str = "jitsi:opentelemetry";
/// Mute IQs (`<mute>`), one namespace per media.
pub const MUTE_AUDIO: &str = "http://jitsi.org/jitmeet/audio";
/// Mute IQs for the camera.
pub const MUTE_VIDEO: &str = "http://jitsi.org/jitmeet/video";
/// Mute IQs for the screenshare.
pub const MUTE_DESKTOP: &str = "http://jitsi.org/jitmeet/desktop";
/// The disco feature by which a participant asks for JSON-encoded sources.
pub const JSON_SOURCES_FEATURE: &str = "http://jitsi.org/json-encoded-sources";

/// jicofo's `max-ssrcs-per-user` and `max-ssrc-groups-per-user` defaults.
pub const MAX_SSRCS_PER_ENDPOINT: usize = 20;
/// jicofo's `max-ssrc-groups-per-user` default.
pub const MAX_GROUPS_PER_ENDPOINT: usize = 20;

/// The media a source carries (camera and screenshare are both video).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Media {
    Audio,
    Video,
}

impl Media {
    /// The media name as Jingle and Colibri2 write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Audio => "audio",
            Media::Video => "video",
        }
    }

    /// "audio" or "video"; anything else (e.g. "application") is `None`.
    pub fn parse(text: &str) -> Option<Media> {
        match text {
            "audio" => Some(Media::Audio),
            "video" => Some(Media::Video),
            _ => None,
        }
    }
}

/// How sources are written: as lib-jitsi-meet sends them, or as jicofo relays them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `<parameter name='msid'>` without xmlns (inheriting ssma); no owner.
    Client,
    /// `<ssrc-info owner>` when the owner is known, `<parameter xmlns=rtp name='msid'>`.
    Focus,
}

/// One RTP source (one SSRC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub ssrc: u32,
    pub media: Media,
    /// `<endpoint>-<a|v><index>`; absent from older clients.
    pub name: Option<String>,
    /// "camera" or "desktop" for video; asserted by the client, checked by nobody.
    pub video_type: Option<String>,
    pub msid: Option<String>,
    /// The endpoint (nick) that sends it, when relayed by the focus.
    pub owner: Option<String>,
}

impl Source {
    /// A bare source: no name, video type, msid or owner.
    pub fn new(media: Media, ssrc: u32) -> Source {
        Source {
            ssrc,
            media,
            name: None,
            video_type: None,
            msid: None,
            owner: None,
        }
    }

    /// With a source name.
    pub fn named(mut self, name: &str) -> Source {
        self.name = Some(name.to_owned());
        self
    }

    /// With a video type ("camera" or "desktop").
    pub fn with_video_type(mut self, video_type: &str) -> Source {
        self.video_type = Some(video_type.to_owned());
        self
    }

    /// With an msid.
    pub fn with_msid(mut self, msid: &str) -> Source {
        self.msid = Some(msid.to_owned());
        self
    }

    /// With an owner (an endpoint id).
    pub fn owned_by(mut self, owner: &str) -> Source {
        self.owner = Some(owner.to_owned());
        self
    }

    /// Whether the source claims to be a screenshare.
    pub fn is_desktop(&self) -> bool {
        self.video_type.as_deref() == Some("desktop")
    }

    /// `<source xmlns=ssma ssrc name? videoType?>` with msid and (focus style) owner.
    pub fn to_element(&self, style: Style) -> Element {
        let mut source = el("source", SSMA).attr(attr("ssrc"), self.ssrc.to_string());
        if let Some(name) = &self.name {
            source = source.attr(attr("name"), name.as_str());
        }
        if let Some(video_type) = &self.video_type {
            source = source.attr(attr("videoType"), video_type.as_str());
        }
        if style == Style::Focus
            && let Some(owner) = &self.owner
        {
            source = source.append(el("ssrc-info", JITMEET).attr(attr("owner"), owner.as_str()));
        }
        if let Some(msid) = &self.msid {
            let namespace = match style {
                Style::Client => SSMA,
                Style::Focus => RTP,
            };
            source = source.append(
                el("parameter", namespace)
                    .attr(attr("name"), "msid")
                    .attr(attr("value"), msid.as_str()),
            );
        }
        source.build()
    }

    /// Reads a `<source>` of `media`; the msid `<parameter>` may be in either namespace.
    pub fn from_element(media: Media, element: &Element) -> Result<Source, String> {
        let ssrc = parse_ssrc(element.attr("ssrc"))?;
        let msid = element
            .children()
            .find(|child| {
                child.name() == "parameter"
                    && (child.ns() == RTP || child.ns() == SSMA)
                    && child.attr("name") == Some("msid")
            })
            .and_then(|parameter| parameter.attr("value"))
            .map(str::to_owned);
        let owner = element
            .get_child("ssrc-info", JITMEET)
            .and_then(|info| info.attr("owner"))
            .map(str::to_owned);
        Ok(Source {
            ssrc,
            media,
            name: element.attr("name").map(str::to_owned),
            video_type: element.attr("videoType").map(str::to_owned),
            msid,
            owner,
        })
    }

    /// jicofo's compact JSON for one source (`Source.compactJson`).
    fn compact_json(&self) -> String {
        let mut json = format!("{{\"s\":{}", self.ssrc);
        if let Some(name) = &self.name {
            json.push_str(&format!(",\"n\":{}", quote(name)));
        }
        if let Some(msid) = &self.msid {
            json.push_str(&format!(",\"m\":{}", quote(msid)));
        }
        if self.is_desktop() {
            json.push_str(",\"v\":\"d\"");
        }
        json.push('}');
        json
    }
}

/// An SSRC group: `FID` (a source and its RTX) or `SIM` (simulcast layers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub media: Media,
    pub semantics: String,
    pub ssrcs: Vec<u32>,
}

impl Group {
    /// A group of `semantics` ("FID" or "SIM") over `ssrcs`.
    pub fn new(media: Media, semantics: &str, ssrcs: &[u32]) -> Group {
        Group {
            media,
            semantics: semantics.to_owned(),
            ssrcs: ssrcs.to_vec(),
        }
    }

    /// `<ssrc-group xmlns=ssma semantics><source ssrc/>…</ssrc-group>`.
    pub fn to_element(&self) -> Element {
        el("ssrc-group", SSMA)
            .attr(attr("semantics"), self.semantics.as_str())
            .append_all(
                self.ssrcs
                    .iter()
                    .map(|ssrc| el("source", SSMA).attr(attr("ssrc"), ssrc.to_string())),
            )
            .build()
    }

    /// Reads an `<ssrc-group>` of `media`.
    pub fn from_element(media: Media, element: &Element) -> Result<Group, String> {
        let ssrcs = element
            .children()
            .filter(|child| child.name() == "source")
            .map(|child| parse_ssrc(child.attr("ssrc")))
            .collect::<Result<Vec<u32>, String>>()?;
        Ok(Group {
            media,
            semantics: element.attr("semantics").unwrap_or("").to_owned(),
            ssrcs,
        })
    }

    /// jicofo's compact JSON for one group (`SsrcGroup.compactJson`).
    fn compact_json(&self) -> String {
        let mut json = match self.semantics.as_str() {
            "SIM" => "[\"s\"".to_owned(),
            _ => "[\"f\"".to_owned(),
        };
        for ssrc in &self.ssrcs {
            json.push_str(&format!(",{ssrc}"));
        }
        json.push(']');
        json
    }
}

/// The sources one endpoint sends (or, at a participant, one remote owner's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceSet {
    pub sources: Vec<Source>,
    pub groups: Vec<Group>,
}

/// Sources per owner (endpoint id = nick; the bridge's own are owned by "jvb").
pub type SourcesByOwner = BTreeMap<String, SourceSet>;

impl SourceSet {
    /// A set of these sources and groups.
    pub fn new(sources: Vec<Source>, groups: Vec<Group>) -> SourceSet {
        SourceSet { sources, groups }
    }

    /// No sources and no groups.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.groups.is_empty()
    }

    /// The number of sources (SSRCs).
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Every SSRC, in order.
    pub fn ssrcs(&self) -> Vec<u32> {
        self.sources.iter().map(|source| source.ssrc).collect()
    }

    /// The SSRCs of one media.
    pub fn ssrcs_of(&self, media: Media) -> BTreeSet<u32> {
        self.sources
            .iter()
            .filter(|source| source.media == media)
            .map(|source| source.ssrc)
            .collect()
    }

    /// The source names present (e.g. {"alice-a0", "alice-v0"}).
    pub fn names(&self) -> BTreeSet<String> {
        self.sources
            .iter()
            .filter_map(|source| source.name.clone())
            .collect()
    }

    /// The source with `ssrc`, if present.
    pub fn source(&self, ssrc: u32) -> Option<&Source> {
        self.sources.iter().find(|source| source.ssrc == ssrc)
    }

    /// Only the sources and groups of `media`.
    pub fn of_media(&self, media: Media) -> SourceSet {
        SourceSet {
            sources: self
                .sources
                .iter()
                .filter(|source| source.media == media)
                .cloned()
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|group| group.media == media)
                .cloned()
                .collect(),
        }
    }

    /// Only the desktop (screenshare) sources and their groups.
    pub fn desktop(&self) -> SourceSet {
        let ssrcs: BTreeSet<u32> = self
            .sources
            .iter()
            .filter(|source| source.is_desktop())
            .map(|source| source.ssrc)
            .collect();
        self.restricted_to(&ssrcs)
    }

    /// Only the sources whose SSRC is in `ssrcs`, with the groups entirely inside them.
    pub fn restricted_to(&self, ssrcs: &BTreeSet<u32>) -> SourceSet {
        SourceSet {
            sources: self
                .sources
                .iter()
                .filter(|source| ssrcs.contains(&source.ssrc))
                .cloned()
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|group| group.ssrcs.iter().all(|ssrc| ssrcs.contains(ssrc)))
                .cloned()
                .collect(),
        }
    }

    /// The same sources with `owner` set on each.
    pub fn owned_by(&self, owner: &str) -> SourceSet {
        let mut owned = self.clone();
        for source in &mut owned.sources {
            source.owner = Some(owner.to_owned());
        }
        owned
    }

    /// These sources plus `other`'s (sources by SSRC, groups by equality, no duplicates).
    pub fn union(&self, other: &SourceSet) -> SourceSet {
        let mut union = self.clone();
        for source in &other.sources {
            if union.source(source.ssrc).is_none() {
                union.sources.push(source.clone());
            }
        }
        for group in &other.groups {
            if !union.groups.contains(group) {
                union.groups.push(group.clone());
            }
        }
        union
    }

    /// These sources without `ssrcs`, and without every group that names one of them.
    pub fn without_ssrcs(&self, ssrcs: &BTreeSet<u32>) -> SourceSet {
        SourceSet {
            sources: self
                .sources
                .iter()
                .filter(|source| !ssrcs.contains(&source.ssrc))
                .cloned()
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|group| !group.ssrcs.iter().any(|ssrc| ssrcs.contains(ssrc)))
                .cloned()
                .collect(),
        }
    }

    /// What is in `self` and not in `other` (sources by SSRC, groups by equality).
    pub fn minus(&self, other: &SourceSet) -> SourceSet {
        SourceSet {
            sources: self
                .sources
                .iter()
                .filter(|source| other.source(source.ssrc).is_none())
                .cloned()
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|group| !other.groups.contains(group))
                .cloned()
                .collect(),
        }
    }

    /// What jicofo signals to other participants: simulcast stripped, leaving the first layer of each
    /// SIM group and its RTX (jicofo `EndpointSourceSet.stripSimulcast`).
    pub fn strip_simulcast(&self) -> SourceSet {
        let mut dropped_groups: Vec<&Group> = Vec::new();
        let mut dropped_ssrcs: BTreeSet<u32> = BTreeSet::new();
        for group in self.groups.iter().filter(|group| group.semantics == "SIM") {
            dropped_groups.push(group);
            dropped_ssrcs.extend(group.ssrcs.iter().skip(1));
        }
        for group in self.groups.iter().filter(|group| group.semantics == "FID") {
            if group.ssrcs.len() == 2 && dropped_ssrcs.contains(&group.ssrcs[0]) {
                dropped_ssrcs.insert(group.ssrcs[1]);
                dropped_groups.push(group);
            }
        }
        SourceSet {
            sources: self
                .sources
                .iter()
                .filter(|source| !dropped_ssrcs.contains(&source.ssrc))
                .cloned()
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|group| !dropped_groups.contains(group))
                .cloned()
                .collect(),
        }
    }

    /// jicofo's `ValidatingConferenceSourceMap.tryToAdd` for one endpoint whose sources are `self`:
    /// `elsewhere` are the other endpoints' sources in the conference. On success returns (the
    /// resulting set, the accepted additions); on failure the message jicofo answers with, and nothing
    /// changes.
    pub fn try_add(
        &self,
        added: &SourceSet,
        elsewhere: &[&SourceSet],
    ) -> Result<(SourceSet, SourceSet), String> {
        let used_elsewhere: BTreeSet<u32> = elsewhere.iter().flat_map(|set| set.ssrcs()).collect();
        let msids_elsewhere: BTreeSet<&str> = elsewhere
            .iter()
            .flat_map(|set| {
                set.sources
                    .iter()
                    .filter_map(|source| source.msid.as_deref())
            })
            .collect();
        // jicofo holds sources in a set: an identical repetition is one source.
        let mut accepted_sources: Vec<Source> = Vec::new();
        for source in &added.sources {
            if !accepted_sources.contains(source) {
                accepted_sources.push(source.clone());
            }
        }
        let mut seen: BTreeSet<u32> = BTreeSet::new();
        for source in &accepted_sources {
            if source.ssrc == 0 {
                return Err(format!("Invalid SSRC: {}.", source.ssrc));
            }
            if used_elsewhere.contains(&source.ssrc)
                || self.source(source.ssrc).is_some()
                || !seen.insert(source.ssrc)
            {
                return Err(format!("SSRC is already used: {}.", source.ssrc));
            }
            if let Some(msid) = &source.msid
                && msids_elsewhere.contains(msid.as_str())
            {
                return Err(format!("MSID is already used: {msid}."));
            }
            if self.sources.len() + accepted_sources.len() > MAX_SSRCS_PER_ENDPOINT {
                return Err(format!("SSRC limit ({MAX_SSRCS_PER_ENDPOINT}) exceeded."));
            }
        }
        let mut resulting_ssrcs: BTreeSet<u32> = self.ssrcs().into_iter().collect();
        resulting_ssrcs.extend(accepted_sources.iter().map(|source| source.ssrc));
        let mut accepted_groups: Vec<Group> = Vec::new();
        for group in &added.groups {
            if group.ssrcs.is_empty()
                || self.groups.contains(group)
                || accepted_groups.contains(group)
            {
                continue; // jicofo ignores empty and repeated groups
            }
            if !group
                .ssrcs
                .iter()
                .all(|ssrc| resulting_ssrcs.contains(ssrc))
            {
                return Err(format!(
                    "An SSRC group contains an SSRC, which hasn't been signaled as a source: {}.",
                    kotlin_list(&group.ssrcs)
                ));
            }
            accepted_groups.push(group.clone());
        }
        if self.groups.len() + accepted_groups.len() > MAX_GROUPS_PER_ENDPOINT {
            return Err(format!(
                "ssrc-group limit ({MAX_GROUPS_PER_ENDPOINT}) exceeded."
            ));
        }
        let accepted = SourceSet::new(accepted_sources, accepted_groups);
        let resulting = self.union(&accepted);
        resulting.validate()?;
        Ok((resulting, accepted))
    }

    /// jicofo's `ValidatingConferenceSourceMap.tryToRemove`: sources are matched by SSRC only, and
    /// every group naming a removed SSRC goes too. Returns (the resulting set, what was removed).
    pub fn try_remove(&self, removed: &SourceSet) -> Result<(SourceSet, SourceSet), String> {
        if removed.is_empty() {
            return Ok((self.clone(), SourceSet::default()));
        }
        if self.is_empty() {
            return Err("Source does not exist or is not owned by endpoint null.".to_owned());
        }
        let mut removed_sources: Vec<Source> = Vec::new();
        for source in &removed.sources {
            let existing = self.source(source.ssrc).ok_or_else(|| {
                format!(
                    "Source does not exist or is not owned by endpoint (ssrc={}).",
                    source.ssrc
                )
            })?;
            if !removed_sources.contains(existing) {
                removed_sources.push(existing.clone());
            }
        }
        if !removed
            .groups
            .iter()
            .all(|group| self.groups.contains(group))
        {
            return Err("Source group does not exist".to_owned());
        }
        let removed_ssrcs: BTreeSet<u32> =
            removed_sources.iter().map(|source| source.ssrc).collect();
        let removed_groups: Vec<Group> = self
            .groups
            .iter()
            .filter(|group| {
                removed.groups.contains(group)
                    || group.ssrcs.iter().any(|ssrc| removed_ssrcs.contains(ssrc))
            })
            .cloned()
            .collect();
        let resulting = SourceSet::new(
            self.sources
                .iter()
                .filter(|source| !removed_ssrcs.contains(&source.ssrc))
                .cloned()
                .collect(),
            self.groups
                .iter()
                .filter(|group| !removed_groups.contains(group))
                .cloned()
                .collect(),
        );
        resulting.validate()?;
        Ok((resulting, SourceSet::new(removed_sources, removed_groups)))
    }

    /// jicofo's `validateEndpointSourceSet`: FID groups have two SSRCs, grouped sources have one msid,
    /// and no two streams of one media share an msid.
    pub fn validate(&self) -> Result<(), String> {
        for group in &self.groups {
            let mut group_msid: Option<&str> = None;
            for ssrc in &group.ssrcs {
                let Some(source) = self.source(*ssrc) else {
                    continue;
                };
                if group.semantics == "FID" && group.ssrcs.len() != 2 {
                    return Err(format!("Invalid FID group: {}.", kotlin_list(&group.ssrcs)));
                }
                let Some(msid) = source.msid.as_deref() else {
                    return Err("Required source parameter 'msid' is not present.".to_owned());
                };
                match group_msid {
                    None => group_msid = Some(msid),
                    Some(first) if first != msid => {
                        return Err(format!(
                            "SsrcGroup contains sources with different MSIDs: {}.",
                            kotlin_list(&group.ssrcs)
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for media in [Media::Audio, Media::Video] {
            // One msid per stream: a SIM group with its RTXs, a lone FID pair, or a lone source.
            let mut stream_msids: BTreeMap<Vec<u32>, &str> = BTreeMap::new();
            for source in self.sources.iter().filter(|source| source.media == media) {
                let Some(msid) = source.msid.as_deref() else {
                    continue;
                };
                stream_msids
                    .entry(self.stream_of(source.ssrc))
                    .or_insert(msid);
            }
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            for msid in stream_msids.values() {
                if !seen.insert(msid) {
                    return Err(format!("MSID is already used: {msid}."));
                }
            }
        }
        Ok(())
    }

    /// The SSRCs naming the stream `ssrc` belongs to (jicofo `groupBySimulcastGroup`).
    fn stream_of(&self, ssrc: u32) -> Vec<u32> {
        let sim_containing = |ssrc: u32| {
            self.groups
                .iter()
                .find(|group| group.semantics == "SIM" && group.ssrcs.contains(&ssrc))
        };
        if let Some(sim) = sim_containing(ssrc) {
            return sim.ssrcs.clone();
        }
        if let Some(fid) = self
            .groups
            .iter()
            .find(|group| group.semantics == "FID" && group.ssrcs.contains(&ssrc))
        {
            if fid.ssrcs.get(1) == Some(&ssrc)
                && let Some(sim) = sim_containing(fid.ssrcs[0])
            {
                return sim.ssrcs.clone();
            }
            return fid.ssrcs.clone();
        }
        vec![ssrc]
    }

    /// The `<source>` and `<ssrc-group>` elements of `media`, for a `<description>`.
    pub fn description_children(&self, media: Media, style: Style) -> Vec<Element> {
        let sources = self
            .sources
            .iter()
            .filter(|source| source.media == media)
            .map(|source| source.to_element(style));
        let groups = self
            .groups
            .iter()
            .filter(|group| group.media == media)
            .map(Group::to_element);
        sources.chain(groups).collect()
    }

    /// One `<content name=media [creator]><description media>` per media present (audio first), as
    /// in a source-add or source-remove.
    pub fn to_contents(&self, style: Style, creator: Option<&str>) -> Vec<Element> {
        [Media::Audio, Media::Video]
            .into_iter()
            .filter(|media| !self.of_media(*media).is_empty())
            .map(|media| {
                let mut content = el("content", JINGLE).attr(attr("name"), media.as_str());
                if let Some(creator) = creator {
                    content = content.attr(attr("creator"), creator);
                }
                content
                    .append(
                        el("description", RTP)
                            .attr(attr("media"), media.as_str())
                            .append_all(self.description_children(media, style)),
                    )
                    .build()
            })
            .collect()
    }

    /// Reads the sources in a `<jingle>`'s contents (jicofo `EndpointSourceSet.fromJingle`): media
    /// from `<description media>` (else the content name), sources in the description or the content.
    pub fn from_contents(jingle: &Element) -> Result<SourceSet, String> {
        let mut set = SourceSet::default();
        for content in jingle
            .children()
            .filter(|child| child.is("content", JINGLE))
        {
            let description = content.get_child("description", RTP);
            let media_name = description
                .and_then(|description| description.attr("media"))
                .or(content.attr("name"))
                .unwrap_or("");
            let mut sources: Vec<&Element> = Vec::new();
            let mut groups: Vec<&Element> = Vec::new();
            if let Some(description) = description {
                sources.extend(description.children().filter(|c| c.is("source", SSMA)));
                groups.extend(description.children().filter(|c| c.is("ssrc-group", SSMA)));
            }
            sources.extend(content.children().filter(|c| c.is("source", SSMA)));
            if sources.is_empty() && groups.is_empty() {
                continue;
            }
            let media = Media::parse(media_name)
                .ok_or_else(|| format!("Unsupported media type: {media_name}"))?;
            for source in sources {
                let source = Source::from_element(media, source)?;
                if !set.sources.contains(&source) {
                    set.sources.push(source);
                }
            }
            for group in groups {
                let group = Group::from_element(media, group)?;
                if !set.groups.contains(&group) {
                    set.groups.push(group);
                }
            }
        }
        Ok(set)
    }

    /// jicofo's compact JSON for this set (`EndpointSourceSet.compactJson`).
    pub fn compact_json(&self) -> String {
        let join = |parts: Vec<String>| parts.join(",");
        let video = self.of_media(Media::Video);
        let audio = self.of_media(Media::Audio);
        let mut json = format!(
            "[[{}],[{}],[{}]",
            join(video.sources.iter().map(Source::compact_json).collect()),
            join(video.groups.iter().map(Group::compact_json).collect()),
            join(audio.sources.iter().map(Source::compact_json).collect()),
        );
        if !audio.groups.is_empty() {
            json.push_str(&format!(
                ",[{}]",
                join(audio.groups.iter().map(Group::compact_json).collect())
            ));
        }
        json.push(']');
        json
    }
}

/// `{"sources":{…}}`, the text of jicofo's `<json-message>` (`ConferenceSourceMap.compactJson`).
pub fn sources_json(by_owner: &SourcesByOwner) -> String {
    let owners: Vec<String> = by_owner
        .iter()
        .map(|(owner, set)| format!("{}:{}", quote(owner), set.compact_json()))
        .collect();
    format!("{{\"sources\":{{{}}}}}", owners.join(","))
}

/// `<json-message xmlns=jitmeet>` carrying `by_owner`.
pub fn json_message(by_owner: &SourcesByOwner) -> Element {
    el("json-message", JITMEET)
        .append(sources_json(by_owner))
        .build()
}

/// Reads jicofo's compact JSON (`{"sources":{owner:[[video],[groups],[audio],[groups]]}}`) the way
/// lib-jitsi-meet's `expandSourcesFromJson` does: a video source without `"v"` is a camera.
pub fn parse_sources_json(text: &str) -> Result<SourcesByOwner, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let owners = value
        .get("sources")
        .and_then(Value::as_object)
        .ok_or("no \"sources\" object")?;
    let mut by_owner = SourcesByOwner::new();
    for (owner, arrays) in owners {
        let arrays = arrays
            .as_array()
            .ok_or("an owner's sources are not an array")?;
        let part = |index: usize| -> Vec<Value> {
            arrays
                .get(index)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut set = SourceSet::default();
        for (media, sources_at, groups_at) in [(Media::Video, 0, 1), (Media::Audio, 2, 3)] {
            for source in part(sources_at) {
                set.sources
                    .push(json_source(media, &source)?.owned_by(owner));
            }
            for group in part(groups_at) {
                set.groups.push(json_group(media, &group)?);
            }
        }
        by_owner.insert(owner.clone(), set);
    }
    Ok(by_owner)
}

fn json_source(media: Media, value: &Value) -> Result<Source, String> {
    let ssrc = match value.get("s") {
        Some(Value::Number(number)) => number.as_u64().map(|ssrc| ssrc.to_string()),
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let mut source = Source::new(media, parse_ssrc(ssrc.as_deref())?);
    source.name = value.get("n").and_then(Value::as_str).map(str::to_owned);
    source.msid = value.get("m").and_then(Value::as_str).map(str::to_owned);
    if media == Media::Video {
        let desktop = value.get("v").is_some_and(|v| !v.is_null());
        source.video_type = Some(if desktop { "desktop" } else { "camera" }.to_owned());
    }
    Ok(source)
}

fn json_group(media: Media, value: &Value) -> Result<Group, String> {
    let items = value.as_array().ok_or("a group is not an array")?;
    let semantics = match items.first().and_then(Value::as_str) {
        Some("s") => "SIM",
        Some("f") => "FID",
        other => return Err(format!("unknown group semantics {other:?}")),
    };
    let ssrcs = items[1..]
        .iter()
        .map(|item| parse_ssrc(item.as_u64().map(|ssrc| ssrc.to_string()).as_deref()))
        .collect::<Result<Vec<u32>, String>>()?;
    Ok(Group::new(media, semantics, &ssrcs))
}

/// Every source a `<jingle>` carries, per owner: XML sources by their `<ssrc-info owner>` (a group
/// goes to the owner of its first SSRC; owner "" when none is named), plus a `<json-message>`.
pub fn sources_by_owner(jingle: &Element) -> Result<SourcesByOwner, String> {
    let mut by_owner = SourcesByOwner::new();
    let listed = SourceSet::from_contents(jingle)?;
    for source in &listed.sources {
        let owner = source.owner.clone().unwrap_or_default();
        by_owner
            .entry(owner)
            .or_default()
            .sources
            .push(source.clone());
    }
    for group in &listed.groups {
        let owner = group
            .ssrcs
            .first()
            .and_then(|ssrc| listed.source(*ssrc))
            .and_then(|source| source.owner.clone())
            .unwrap_or_default();
        by_owner
            .entry(owner)
            .or_default()
            .groups
            .push(group.clone());
    }
    if let Some(message) = jingle.get_child("json-message", JITMEET) {
        for (owner, set) in parse_sources_json(&message.text())? {
            let merged = by_owner.remove(&owner).unwrap_or_default().union(&set);
            by_owner.insert(owner, merged);
        }
    }
    Ok(by_owner)
}

/// Contents carrying `by_owner` the way jicofo writes XML sources (`EndpointSourceSet.toJingle`):
/// one content per media in order of first appearance, `<ssrc-info owner>` on every source.
pub fn contents_by_owner(by_owner: &SourcesByOwner) -> Vec<Element> {
    let mut all = SourceSet::default();
    for (owner, set) in by_owner {
        let owned = set.owned_by(owner);
        all.sources.extend(owned.sources);
        all.groups.extend(owned.groups);
    }
    all.to_contents(Style::Focus, None)
}

/// Adds `by_owner`'s sources (focus style) into existing contents with the same media name, creating
/// a content for a media that has none, as jicofo's `ConferenceSourceMap.toContents` does.
pub fn add_sources_to_contents(contents: &mut Vec<Element>, by_owner: &SourcesByOwner) {
    for extra in contents_by_owner(by_owner) {
        let name = extra.attr("name").unwrap_or("").to_owned();
        let existing = contents
            .iter_mut()
            .find(|content| content.attr("name") == Some(name.as_str()));
        match existing.and_then(|content| content.get_child_mut("description", RTP)) {
            Some(description) => {
                let additions = extra.get_child("description", RTP).unwrap();
                for child in additions.children() {
                    description.append_child(child.clone());
                }
            }
            None => contents.push(extra),
        }
    }
}

/// A `<description xmlns=rtp media>` with the codecs a Jitsi call uses (opus/111; VP8/100 with
/// rtx/96, as in the recorded session-initiate and session-accept), then `extra` (sources, groups).
pub fn rtp_description(media: Media, extra: Vec<Element>) -> Element {
    let payload = |id: &str, name: &str, clockrate: &str| {
        el("payload-type", RTP)
            .attr(attr("id"), id)
            .attr(attr("name"), name)
            .attr(attr("clockrate"), clockrate)
    };
    let parameter = |name: &str, value: &str| {
        el("parameter", RTP)
            .attr(attr("name"), name)
            .attr(attr("value"), value)
    };
    let feedback = |type_: &str| el("rtcp-fb", RTCP_FB).attr(attr("type"), type_);
    let header_extension = |id: &str, uri: &str| {
        el("rtp-hdrext", RTP_HDREXT)
            .attr(attr("id"), id)
            .attr(attr("uri"), uri)
    };
    let payloads = match media {
        Media::Audio => vec![
            payload("111", "opus", "48000")
                .attr(attr("channels"), "2")
                .append(parameter("minptime", "10"))
                .append(parameter("useinbandfec", "1"))
                .append(feedback("transport-cc"))
                .build(),
            header_extension("1", "urn:ietf:params:rtp-hdrext:ssrc-audio-level").build(),
        ],
        Media::Video => vec![
            payload("100", "VP8", "90000")
                .append(feedback("ccm").attr(attr("subtype"), "fir"))
                .append(feedback("nack"))
                .append(feedback("nack").attr(attr("subtype"), "pli"))
                .append(feedback("transport-cc"))
                .build(),
            payload("96", "rtx", "90000")
                .append(parameter("apt", "100"))
                .build(),
        ],
    };
    el("description", RTP)
        .attr(attr("media"), media.as_str())
        .append_all(payloads)
        .append_all(extra)
        .append(el("rtcp-mux", RTP))
        .build()
}

/// An ICE-UDP transport with a sha-256 DTLS fingerprint (`setup` "actpass" in an offer, "active" in
/// an answer) and, when given, one host candidate on 127.0.0.1.
pub fn ice_transport(ufrag: &str, pwd: &str, setup: &str, candidate_port: Option<u16>) -> Element {
    let fingerprint = random_hex(64)
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let mut transport = el("transport", ICE)
        .attr(attr("ufrag"), ufrag)
        .attr(attr("pwd"), pwd)
        .append(
            el("fingerprint", DTLS)
                .attr(attr("hash"), "sha-256")
                .attr(attr("setup"), setup)
                .append(fingerprint),
        );
    if let Some(port) = candidate_port {
        transport = transport.append(
            el("candidate", ICE)
                .attr(attr("component"), "1")
                .attr(attr("foundation"), "1")
                .attr(attr("generation"), "0")
                .attr(attr("id"), random_hex(10))
                .attr(attr("ip"), "127.0.0.1")
                .attr(attr("network"), "0")
                .attr(attr("port"), port.to_string())
                .attr(attr("priority"), "2130706431")
                .attr(attr("protocol"), "udp")
                .attr(attr("type"), "host"),
        );
    }
    transport.build()
}

/// `<group xmlns=grouping semantics='BUNDLE'>` naming `contents`.
pub fn bundle_group(contents: &[&str]) -> Element {
    el("group", GROUPING)
        .attr(attr("semantics"), "BUNDLE")
        .append_all(
            contents
                .iter()
                .map(|name| el("content", GROUPING).attr(attr("name"), *name)),
        )
        .build()
}

/// The `<transport xmlns=ice-udp>` of a `<jingle>`'s first content that has one.
pub fn first_transport(jingle: &Element) -> Option<&Element> {
    jingle
        .children()
        .filter(|child| child.is("content", JINGLE))
        .find_map(|content| content.get_child("transport", ICE))
}

/// An SSRC as jicofo accepts it when parsing: a decimal number that fits 32 bits.
fn parse_ssrc(text: Option<&str>) -> Result<u32, String> {
    let text = text.unwrap_or("");
    text.parse::<u32>()
        .map_err(|_| format!("Invalid SSRC: {text}."))
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// A list as Kotlin prints it in jicofo's messages: `[1, 2, 3]`.
fn kotlin_list(ssrcs: &[u32]) -> String {
    let items: Vec<String> = ssrcs.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The focus → participant source-add in research §2.3.
    const RESEARCH_JSON: &str = r#"{"sources":{"77aa0b12":[[{"s":1111,"n":"77aa0b12-v0","m":"77aa0b12-video-0-1 t0-1"},{"s":5555,"n":"77aa0b12-v1","m":"77aa0b12-video-1-1 t1-1","v":"d"}],[["f",1111,2222]],[{"s":3333,"n":"77aa0b12-a0","m":"77aa0b12-audio-0-1 t2-1"}]]}}"#;

    /// Recorded from lib-jitsi-meet 2021 in headless Chromium (real-client-stanzas/07).
    const RECORDED_SOURCE_ADD: &str = r#"<iq xmlns="jabber:client" from="room1@conference.meet.example/c07d8cc1" type="set" id="Zm9jdXNAYXV0aC5tZWV0LmV4YW1wbGUvZm9jdXMAYTJiZGIxNzQtNWFiNS00NjI4LWJiOWUtNGIxOTliZTY1ZTVmOnNlbmRJUQA0kJ5iaGZ3Ag==" xml:lang="en" to="focus@auth.meet.example/focus">
  <jingle xmlns="urn:xmpp:jingle:1" action="source-add" initiator="room1@conference.meet.example/focus" sid="94741cf5a347">
    <content name="video">
      <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" name="c07d8cc1-v0" ssrc="2001635846">
          <parameter name="msid" value="c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1"/>
        </source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" name="c07d8cc1-v0" ssrc="2771585420">
          <parameter name="msid" value="c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1"/>
        </source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" name="c07d8cc1-v0" ssrc="2828276602">
          <parameter name="msid" value="c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1"/>
        </source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" name="c07d8cc1-v0" ssrc="2916935180">
          <parameter name="msid" value="c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1"/>
        </source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" name="c07d8cc1-v0" ssrc="3514870648">
          <parameter name="msid" value="c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1"/>
        </source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" name="c07d8cc1-v0" ssrc="3797691866">
          <parameter name="msid" value="c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1"/>
        </source>
        <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID">
          <source ssrc="3514870648"/>
          <source ssrc="2771585420"/>
        </ssrc-group>
        <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="SIM">
          <source ssrc="3514870648"/>
          <source ssrc="2916935180"/>
          <source ssrc="2828276602"/>
        </ssrc-group>
        <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID">
          <source ssrc="2916935180"/>
          <source ssrc="3797691866"/>
        </ssrc-group>
        <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID">
          <source ssrc="2828276602"/>
          <source ssrc="2001635846"/>
        </ssrc-group>
      </description>
    </content>
  </jingle>
</iq>"#;

    fn recorded_camera() -> SourceSet {
        let iq: Element = RECORDED_SOURCE_ADD.parse().unwrap();
        SourceSet::from_contents(iq.get_child("jingle", JINGLE).unwrap()).unwrap()
    }

    #[test]
    fn test_json_round_trip() {
        let by_owner = parse_sources_json(RESEARCH_JSON).unwrap();
        let set = &by_owner["77aa0b12"];
        assert_eq!(set.ssrcs(), vec![1111, 5555, 3333]);
        assert_eq!(
            set.source(1111).unwrap().video_type.as_deref(),
            Some("camera")
        );
        assert!(set.source(5555).unwrap().is_desktop());
        assert_eq!(set.source(3333).unwrap().video_type, None);
        assert_eq!(set.source(3333).unwrap().owner.as_deref(), Some("77aa0b12"));
        assert_eq!(
            set.groups,
            vec![Group::new(Media::Video, "FID", &[1111, 2222])]
        );
        assert_eq!(sources_json(&by_owner), RESEARCH_JSON);
    }

    #[test]
    fn test_json_trailing_arrays_may_be_missing() {
        let by_owner = parse_sources_json(r#"{"sources":{"a":[[{"s":7}]]}}"#).unwrap();
        assert_eq!(by_owner["a"].ssrcs_of(Media::Video), BTreeSet::from([7]));
        assert_eq!(
            sources_json(&by_owner),
            r#"{"sources":{"a":[[{"s":7}],[],[]]}}"#
        );
    }

    #[test]
    fn test_recorded_source_add() {
        let set = recorded_camera();
        assert_eq!(set.len(), 6);
        assert!(set.sources.iter().all(|source| source.media == Media::Video
            && source.name.as_deref() == Some("c07d8cc1-v0")
            && source.msid.as_deref()
                == Some("c07d8cc1-video-1 cf21f4ae-a168-4408-a329-28b08d440c64-1")));
        let semantics: Vec<&str> = set.groups.iter().map(|g| g.semantics.as_str()).collect();
        assert_eq!(semantics, ["FID", "SIM", "FID", "FID"]);
        assert_eq!(
            set.groups[1].ssrcs,
            vec![3514870648, 2916935180, 2828276602]
        );
        assert_eq!(set.validate(), Ok(()));
        // jicofo relays the first simulcast layer and its RTX only.
        let stripped = set.strip_simulcast();
        assert_eq!(
            stripped.ssrcs_of(Media::Video),
            BTreeSet::from([3514870648, 2771585420])
        );
        assert_eq!(
            stripped.groups,
            vec![Group::new(Media::Video, "FID", &[3514870648, 2771585420])]
        );
    }

    #[test]
    fn test_serialise_xml_round_trip() {
        let set = recorded_camera().owned_by("c07d8cc1");
        let jingle = el("jingle", JINGLE)
            .append_all(set.to_contents(Style::Focus, None))
            .build();
        let by_owner = sources_by_owner(&jingle).unwrap();
        assert_eq!(by_owner.len(), 1);
        assert_eq!(by_owner["c07d8cc1"], set);
        let client = el("jingle", JINGLE)
            .append_all(set.to_contents(Style::Client, Some("responder")))
            .build();
        let mut without_owner = set.clone();
        without_owner
            .sources
            .iter_mut()
            .for_each(|source| source.owner = None);
        assert_eq!(SourceSet::from_contents(&client).unwrap(), without_owner);
    }

    #[test]
    fn test_invalid_additions() {
        let camera = recorded_camera();
        let empty = SourceSet::default();
        // A group naming an SSRC that is not signalled fails the whole request.
        let mut orphan_group = camera.clone();
        orphan_group
            .groups
            .push(Group::new(Media::Video, "FID", &[2001635846, 9]));
        assert_eq!(
            empty.try_add(&orphan_group, &[]).unwrap_err(),
            "An SSRC group contains an SSRC, which hasn't been signaled as a source: [2001635846, 9]."
        );
        // Another endpoint's SSRC.
        assert_eq!(
            empty.try_add(&camera, &[&camera]).unwrap_err(),
            "SSRC is already used: 2001635846."
        );
        // 21 SSRCs.
        let many = SourceSet::new(
            (1..=21)
                .map(|ssrc| Source::new(Media::Audio, ssrc))
                .collect(),
            vec![],
        );
        assert_eq!(
            empty.try_add(&many, &[]).unwrap_err(),
            "SSRC limit (20) exceeded."
        );
        assert_eq!(
            empty
                .try_add(
                    &SourceSet::new(vec![Source::new(Media::Audio, 0)], vec![]),
                    &[]
                )
                .unwrap_err(),
            "Invalid SSRC: 0."
        );
        let (resulting, accepted) = empty.try_add(&camera, &[]).unwrap();
        assert_eq!(resulting, camera);
        assert_eq!(accepted, camera);
    }

    #[test]
    fn test_invalid_removals() {
        let camera = recorded_camera();
        let unknown = SourceSet::new(vec![Source::new(Media::Video, 42)], vec![]);
        assert_eq!(
            camera.try_remove(&unknown).unwrap_err(),
            "Source does not exist or is not owned by endpoint (ssrc=42)."
        );
        // Removing one SSRC by number takes the groups that name it.
        let one = SourceSet::new(vec![Source::new(Media::Video, 2001635846)], vec![]);
        let (resulting, removed) = camera.try_remove(&one).unwrap();
        assert_eq!(resulting.len(), 5);
        assert_eq!(removed.groups.len(), 1);
    }
}
