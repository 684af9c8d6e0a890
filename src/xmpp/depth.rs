//! A nesting bound on the raw component stream, applied before any XML becomes an [`Element`] tree.
//!
//! minidom builds, clones and drops elements recursively, and tokio-xmpp's parser has no depth limit:
//! one stanza with an element nested some 30,000 levels deep (210 KB, well within Prosody's stanza size
//! limits) overflows a tokio worker's stack and aborts the whole process. So the bytes from Prosody pass
//! through [`DepthGuard`] first: a small byte-level scanner that tracks element nesting and drops every
//! element deeper than the bound, whole, before tokio-xmpp's parser sees it. In its place it leaves one
//! empty marker element ([`ELIDED`] in [`ns::PODIUM_ELIDED`](super::ns::PODIUM_ELIDED)) per stanza, so
//! the link can tell the stanza was cut, log it with its header and skip it ([`was_cut`]). The stream
//! stays well-formed and up: one bad stanza never costs the link.
//!
//! The scanner reads the XML Prosody writes (RFC 6120 §11: no DTD, no comments or processing
//! instructions inside stanzas) but also steps over comments, CDATA sections and processing
//! instructions correctly, and tracks quoted attribute values, so a `>` or `/>` inside quotes never
//! counts as the end of a tag. Its own state is a handful of integers: the work is linear in the bytes
//! read, whatever their shape.
//!
//! [`parse_bounded`] applies the same bound to a standalone document (tests and the fuzz targets).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::warn;

use super::ns;

/// How deep a stanza may nest, counting the stanza itself as level 1. podium's deepest payload is a
/// snapshot page (`iq/snapshot/room/occupant/presence/x/item`: 7 levels); Jitsi's presence
/// extensions add two. Anything deeper is not podium's and is cut.
pub const MAX_STANZA_DEPTH: usize = 16;

/// The marker element left where a too-deep element was cut (in [`ns::PODIUM_ELIDED`]).
pub const ELIDED: &str = "elided";

/// Why [`parse_bounded`] refused a document.
#[derive(Debug, thiserror::Error)]
pub enum BoundedParseError {
    /// An element is nested deeper than the bound.
    #[error("element nested deeper than {0} levels")]
    TooDeep(usize),
    /// The bytes are not UTF-8.
    #[error("not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// minidom refused the document.
    #[error("not XML: {0}")]
    Xml(#[from] minidom::Error),
}

/// Parses one standalone XML document into an [`Element`], refusing it when any element is nested
/// deeper than `max_depth` (the root is level 1) before a tree is built.
pub fn parse_bounded(bytes: &[u8], max_depth: usize) -> Result<Element, BoundedParseError> {
    let mut scanner = DepthScanner::new(max_depth, 1);
    let mut out = Vec::with_capacity(bytes.len());
    scanner.feed(bytes, &mut out);
    if scanner.cuts > 0 {
        return Err(BoundedParseError::TooDeep(max_depth));
    }
    Ok(std::str::from_utf8(&out)?.parse::<Element>()?)
}

/// Whether `element` or anything below it is the marker of a cut (the tree is bounded by the guard, so
/// the recursion is too).
pub fn was_cut(element: &Element) -> bool {
    element.is(ELIDED, ns::PODIUM_ELIDED) || element.children().any(was_cut)
}

/// Where the scanner is inside the markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data.
    Text,
    /// Just after `<`: the next byte says what kind of markup this is.
    Open,
    /// Inside a start tag. `quote` is the open quote of an attribute value; `slash` whether the last
    /// byte outside quotes was `/` (an empty-element tag ends in `/>`).
    StartTag { quote: Option<u8>, slash: bool },
    /// Inside an end tag.
    EndTag,
    /// Just after `<!`.
    Bang,
    /// Inside a comment; the count of `-` just seen (at most 2).
    Comment(u8),
    /// Inside a CDATA section (or a declaration starting `<![`); the count of `]` just seen.
    CData(u8),
    /// Inside a DOCTYPE-like declaration, up to `>` (rxml refuses these; they only need skipping).
    Declaration,
    /// Inside a processing instruction; whether the last byte was `?`.
    Instruction(bool),
}

/// The byte-level nesting tracker: copies its input to the output, minus every element deeper than
/// `max_depth`, which it replaces with one [`ELIDED`] marker per element at `scope_depth` (a stanza on
/// the stream, the root of a document).
#[derive(Debug)]
pub struct DepthScanner {
    max_depth: usize,
    scope_depth: usize,
    depth: usize,
    state: State,
    /// The depth of the element being dropped, while one is.
    cutting: Option<usize>,
    /// Whether the current scope already holds a marker.
    marked: bool,
    /// Elements cut so far.
    pub cuts: u64,
    /// Bytes dropped so far.
    pub elided_bytes: u64,
}

impl DepthScanner {
    /// A scanner for elements up to `max_depth` deep, with one marker per element at `scope_depth`.
    pub fn new(max_depth: usize, scope_depth: usize) -> DepthScanner {
        DepthScanner {
            max_depth,
            scope_depth,
            depth: 0,
            state: State::Text,
            cutting: None,
            marked: false,
            cuts: 0,
            elided_bytes: 0,
        }
    }

    /// Scans `input`, appending what passes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            self.step(byte, out);
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        if self.cutting.is_some() {
            self.elided_bytes += bytes.len() as u64;
        } else {
            out.extend_from_slice(bytes);
        }
    }

    /// Ends the cut of the element at the current depth: the marker goes where it was.
    fn end_cut(&mut self, out: &mut Vec<u8>) {
        self.cutting = None;
        self.cuts += 1;
        if !self.marked {
            self.marked = true;
            out.extend_from_slice(format!("<{ELIDED} xmlns='{}'/>", ns::PODIUM_ELIDED).as_bytes());
        }
    }

    fn step(&mut self, byte: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Text => {
                if byte == b'<' {
                    // Held back until the next byte says whether an element starts.
                    self.state = State::Open;
                } else {
                    self.emit(out, &[byte]);
                }
            }
            State::Open => {
                let markup = match byte {
                    b'/' => State::EndTag,
                    b'!' => State::Bang,
                    b'?' => State::Instruction(false),
                    _ => {
                        // A start tag: this byte is its first, read as such (even a `>`).
                        if self.cutting.is_none() && self.depth + 1 > self.max_depth {
                            self.cutting = Some(self.depth + 1);
                        }
                        self.emit(out, b"<");
                        self.state = State::StartTag {
                            quote: None,
                            slash: false,
                        };
                        return self.step(byte, out);
                    }
                };
                self.state = markup;
                self.emit(out, &[b'<', byte]);
            }
            State::StartTag { quote, slash } => {
                self.emit(out, &[byte]);
                self.state = match (quote, byte) {
                    (Some(q), b) if b == q => State::StartTag {
                        quote: None,
                        slash: false,
                    },
                    (Some(_), _) => State::StartTag { quote, slash },
                    (None, b'"' | b'\'') => State::StartTag {
                        quote: Some(byte),
                        slash: false,
                    },
                    (None, b'>') => {
                        self.start_tag_closed(slash, out);
                        State::Text
                    }
                    (None, b) => State::StartTag {
                        quote: None,
                        slash: b == b'/',
                    },
                };
            }
            State::EndTag => {
                self.emit(out, &[byte]);
                if byte == b'>' {
                    if self.cutting == Some(self.depth) {
                        self.end_cut(out);
                    }
                    self.depth = self.depth.saturating_sub(1);
                    self.state = State::Text;
                }
            }
            State::Bang => {
                self.emit(out, &[byte]);
                self.state = match byte {
                    b'-' => State::Comment(0),
                    b'[' => State::CData(0),
                    _ => State::Declaration,
                };
            }
            State::Comment(dashes) => {
                self.emit(out, &[byte]);
                self.state = match byte {
                    // The first '-' after "<!-" opens the comment; "-->" closes it.
                    b'-' => State::Comment((dashes + 1).min(2)),
                    b'>' if dashes >= 2 => State::Text,
                    _ => State::Comment(0),
                };
            }
            State::CData(brackets) => {
                self.emit(out, &[byte]);
                self.state = match byte {
                    b']' => State::CData((brackets + 1).min(2)),
                    b'>' if brackets >= 2 => State::Text,
                    _ => State::CData(0),
                };
            }
            State::Declaration => {
                self.emit(out, &[byte]);
                if byte == b'>' {
                    self.state = State::Text;
                }
            }
            State::Instruction(question) => {
                self.emit(out, &[byte]);
                self.state = match byte {
                    b'>' if question => State::Text,
                    _ => State::Instruction(byte == b'?'),
                };
            }
        }
    }

    /// A start tag ended with `>` (an empty element when `empty`).
    fn start_tag_closed(&mut self, empty: bool, out: &mut Vec<u8>) {
        let depth = self.depth + 1;
        if depth == self.scope_depth {
            self.marked = false;
        }
        if empty {
            if self.cutting == Some(depth) {
                self.end_cut(out);
            }
        } else {
            self.depth = depth;
        }
    }
}

/// The component stream's transport with the depth bound on everything read (see the module docs).
/// Writes pass through untouched.
#[derive(Debug)]
pub struct DepthGuard<T> {
    inner: T,
    scanner: DepthScanner,
    /// Scanned bytes not yet handed to the reader, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    scratch: Box<[u8]>,
}

impl<T> DepthGuard<T> {
    /// Guards a component stream's transport: the stream root is level 1, so stanzas may nest
    /// [`MAX_STANZA_DEPTH`] levels below it.
    pub fn new(inner: T) -> DepthGuard<T> {
        DepthGuard::with_depth(inner, MAX_STANZA_DEPTH)
    }

    /// Guards with another bound (tests).
    pub fn with_depth(inner: T, max_stanza_depth: usize) -> DepthGuard<T> {
        DepthGuard {
            inner,
            scanner: DepthScanner::new(max_stanza_depth + 1, 2),
            pending: Vec::new(),
            pending_at: 0,
            scratch: vec![0; 8192].into_boxed_slice(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DepthGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pending_at < this.pending.len() {
                let ready = &this.pending[this.pending_at..];
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.pending_at += n;
                if this.pending_at == this.pending.len() {
                    this.pending.clear();
                    this.pending_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut raw = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            let read = raw.filled();
            if read.is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            let cuts = this.scanner.cuts;
            this.scanner.feed(read, &mut this.pending);
            if this.scanner.cuts > cuts {
                warn!(
                    max_stanza_depth = this.scanner.max_depth - 1,
                    cut_elements = this.scanner.cuts,
                    elided_bytes = this.scanner.elided_bytes,
                    "element nested too deep cut from the component stream"
                );
            }
            // Everything read may have been cut: read on (the inner reader registers the waker
            // when it has nothing more).
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DepthGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &str, max_depth: usize) -> (String, u64) {
        let mut scanner = DepthScanner::new(max_depth, 1);
        let mut out = Vec::new();
        // Byte by byte and whole must agree: the stream arrives in arbitrary pieces.
        for chunk in input.as_bytes().chunks(1) {
            scanner.feed(chunk, &mut out);
        }
        let mut whole = DepthScanner::new(max_depth, 1);
        let mut whole_out = Vec::new();
        whole.feed(input.as_bytes(), &mut whole_out);
        assert_eq!(out, whole_out);
        (String::from_utf8(out).unwrap(), scanner.cuts)
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
    }

    #[test]
    fn test_within_the_bound_passes_unchanged() {
        let doc = "<?xml version='1.0'?><p xmlns='jabber:client' a='x/>' b=\"'>\"><x><y/><!-- <z> --><![CDATA[<q>]]></x>text &amp; <e/></p>";
        assert_eq!(scan(doc, 3), (doc.to_owned(), 0));
        assert_eq!(scan(&nested(16), 16), (nested(16), 0));
    }

    #[test]
    fn test_too_deep_is_cut_with_one_marker() {
        let marker = format!("<{ELIDED} xmlns='{}'/>", ns::PODIUM_ELIDED);
        let (out, cuts) = scan("<p><x><a><b/></a><c/></x><y>t</y></p>", 2);
        assert_eq!(out, format!("<p><x>{marker}</x><y>t</y></p>"));
        assert_eq!(cuts, 2);
        let (out, cuts) = scan(&nested(30_000), 16);
        assert_eq!(
            out,
            format!("{}{marker}{}", "<a>".repeat(16), "</a>".repeat(16))
        );
        assert_eq!(cuts, 1);
    }

    #[test]
    fn test_a_tag_closed_at_once_still_counts() {
        // Found by the depth_bound fuzz target: `<>` (not XML, but bytes) must open a level like any
        // start tag, or the count drifts from what a parser sees.
        let (out, cuts) = scan("<a><><b/></></a>", 2);
        let marker = format!("<{ELIDED} xmlns='{}'/>", ns::PODIUM_ELIDED);
        assert_eq!(out, format!("<a><>{marker}</></a>"));
        assert_eq!(cuts, 1);
    }

    #[test]
    fn test_one_marker_per_stanza_on_the_stream() {
        let mut scanner = DepthScanner::new(3, 2);
        let mut out = Vec::new();
        scanner.feed(
            b"<stream:stream xmlns:stream='s'><m><a><b/></a><a><b/></a></m><m><a><b/></a></m>",
            &mut out,
        );
        let marker = format!("<{ELIDED} xmlns='{}'/>", ns::PODIUM_ELIDED);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "<stream:stream xmlns:stream='s'><m><a>{marker}</a><a></a></m><m><a>{marker}</a></m>"
            )
        );
        assert_eq!(scanner.cuts, 3);
    }

    #[test]
    fn test_parse_bounded_refuses_deep_documents() {
        let deep = format!("<p xmlns='jabber:client'>{}</p>", nested(30_000));
        match parse_bounded(deep.as_bytes(), MAX_STANZA_DEPTH) {
            Err(BoundedParseError::TooDeep(16)) => {}
            other => panic!("expected TooDeep, got {other:?}"),
        }
        let fine = format!("<p xmlns='jabber:client'>{}</p>", nested(15));
        let element = parse_bounded(fine.as_bytes(), MAX_STANZA_DEPTH).unwrap();
        assert!(!was_cut(&element));
    }

    #[tokio::test]
    async fn test_guarded_stream_cuts_and_marks() {
        use tokio::io::AsyncReadExt;
        let stanza = format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>\
             <presence from='r@muc/n'>{}</presence><message/>",
            nested(30_000)
        );
        let (mut writer, reader) = tokio::io::duplex(4096);
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            writer.write_all(stanza.as_bytes()).await.unwrap();
        });
        let mut guard = DepthGuard::new(reader);
        let mut read = String::new();
        guard.read_to_string(&mut read).await.unwrap();
        feed.await.unwrap();
        let marker = format!("<{ELIDED} xmlns='{}'/>", ns::PODIUM_ELIDED);
        assert!(
            read.ends_with(&format!(
                "{}{marker}{}</presence><message/>",
                "<a>".repeat(15),
                "</a>".repeat(15)
            )),
            "{}",
            &read[read.len().saturating_sub(300)..]
        );
    }
}
