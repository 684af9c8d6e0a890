//! The kinds of media podium governs, and sets of them.
//!
//! Three kinds, matching what Jitsi can tell apart in signalling: `audio`; `video`, a camera (any video
//! source whose `videoType` is not `desktop`); `screen`, a screenshare (a video source with
//! `videoType='desktop'`, see lib-jitsi-meet `SDP.ts` and jicofo `VideoType.kt`).

use std::fmt;
use std::str::FromStr;

/// One kind of media a participant may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Media {
    /// Microphone audio.
    Audio,
    /// Camera video (any video source that is not a screenshare).
    Video,
    /// Screenshare: a video source with `videoType='desktop'`.
    Screen,
}

impl Media {
    /// Every kind, in a fixed order used for display and iteration.
    pub const ALL: [Media; 3] = [Media::Audio, Media::Video, Media::Screen];

    /// The name used in SQL rows, configuration and the module protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Audio => "audio",
            Media::Video => "video",
            Media::Screen => "screen",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Media::Audio => 1,
            Media::Video => 2,
            Media::Screen => 4,
        }
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a media name that is none of `audio`, `video`, `screen` (or `all`/`none` in a list).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown media kind {0:?} (expected audio, video, screen, all or none)")]
pub struct UnknownMedia(pub String);

impl FromStr for Media {
    type Err = UnknownMedia;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "audio" => Ok(Media::Audio),
            "video" | "camera" => Ok(Media::Video),
            "screen" | "desktop" | "screenshare" => Ok(Media::Screen),
            _ => Err(UnknownMedia(s.to_owned())),
        }
    }
}

/// A set of media kinds, e.g. the permissions of one occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MediaSet(u8);

impl MediaSet {
    /// Nothing may be sent.
    pub const NONE: MediaSet = MediaSet(0);
    /// Audio, camera and screenshare.
    pub const ALL: MediaSet = MediaSet(7);

    /// A set holding exactly one kind.
    pub fn only(media: Media) -> MediaSet {
        MediaSet(media.bit())
    }

    /// Whether `media` is in the set.
    pub fn contains(self, media: Media) -> bool {
        self.0 & media.bit() != 0
    }

    /// The set with `media` added.
    #[must_use]
    pub fn with(self, media: Media) -> MediaSet {
        MediaSet(self.0 | media.bit())
    }

    /// The set with `media` removed.
    #[must_use]
    pub fn without(self, media: Media) -> MediaSet {
        MediaSet(self.0 & !media.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`Media::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Media> {
        Media::ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// Parses a list such as `audio,screen`, `all` or `none` (commas or spaces; empty means none).
    pub fn parse_list(list: &str) -> Result<MediaSet, UnknownMedia> {
        let mut set = MediaSet::NONE;
        for word in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            match word.to_ascii_lowercase().as_str() {
                "all" => set = MediaSet::ALL,
                "none" => {}
                _ => set = set.with(word.parse()?),
            }
        }
        Ok(set)
    }
}

impl FromIterator<Media> for MediaSet {
    fn from_iter<I: IntoIterator<Item = Media>>(iter: I) -> Self {
        iter.into_iter().fold(MediaSet::NONE, MediaSet::with)
    }
}

/// `audio,video`, or `none` for the empty set: the form stored in the audit table.
impl MediaSet {
    /// As [`fmt::Display`] writes it (`none`, `audio,video`, …), without making a string.
    pub fn as_str(self) -> &'static str {
        const NAMES: [&str; 8] = [
            "none",
            "audio",
            "video",
            "audio,video",
            "screen",
            "audio,screen",
            "video,screen",
            "audio,video,screen",
        ];
        let index = Media::ALL
            .into_iter()
            .enumerate()
            .filter(|(_, media)| self.contains(*media))
            .map(|(bit, _)| 1 << bit)
            .sum::<usize>();
        NAMES[index]
    }
}

impl fmt::Display for MediaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for media in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(media.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_as_str_is_display() {
        for bits in 0..8u8 {
            let set: MediaSet = Media::ALL
                .into_iter()
                .enumerate()
                .filter(|(bit, _)| bits & (1 << bit) != 0)
                .map(|(_, media)| media)
                .collect();
            assert_eq!(set.as_str(), set.to_string());
        }
    }

    #[test]
    fn test_parse_list() {
        assert_eq!(MediaSet::parse_list("").unwrap(), MediaSet::NONE);
        assert_eq!(MediaSet::parse_list("none").unwrap(), MediaSet::NONE);
        assert_eq!(MediaSet::parse_list("all").unwrap(), MediaSet::ALL);
        assert_eq!(
            MediaSet::parse_list("audio, screen").unwrap(),
            MediaSet::only(Media::Audio).with(Media::Screen)
        );
        assert_eq!(
            MediaSet::parse_list("Camera desktop").unwrap().to_string(),
            "video,screen"
        );
    }

    #[test]
    fn test_invalid_list() {
        assert_eq!(
            MediaSet::parse_list("audio,smell").unwrap_err().to_string(),
            "unknown media kind \"smell\" (expected audio, video, screen, all or none)"
        );
    }

    #[test]
    fn test_display() {
        assert_eq!(MediaSet::NONE.to_string(), "none");
        assert_eq!(MediaSet::ALL.to_string(), "audio,video,screen");
        assert_eq!(
            MediaSet::ALL.without(Media::Video).to_string(),
            "audio,screen"
        );
    }
}
