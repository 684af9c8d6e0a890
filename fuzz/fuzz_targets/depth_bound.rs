#![no_main]
//! The stream depth bound itself: whatever bytes arrive, in whatever pieces, the scanner's output is
//! the input when it dropped nothing, and an element tree built from it is never deeper than the bound.

use libfuzzer_sys::fuzz_target;
use minidom::Element;
use podium::xmpp::depth::DepthScanner;

const BOUND: usize = 8;

fn depth(element: &Element) -> usize {
    1 + element.children().map(depth).max().unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(data.len());
    let mut whole = DepthScanner::new(BOUND, 1);
    let mut out = Vec::new();
    whole.feed(data, &mut out);
    let mut pieces = DepthScanner::new(BOUND, 1);
    let mut out_pieces = Vec::new();
    pieces.feed(&data[..split], &mut out_pieces);
    pieces.feed(&data[split..], &mut out_pieces);
    assert_eq!(
        out, out_pieces,
        "the result depends on how the bytes arrive"
    );
    if whole.elided_bytes == 0 {
        // Nothing cut: the bytes pass unchanged, but for a `<` held back until the next byte.
        assert!(
            data.starts_with(&out) && data.len() - out.len() <= 1,
            "uncut input changed"
        );
    }
    if let Ok(text) = std::str::from_utf8(&out)
        && let Ok(element) = text.parse::<Element>()
    {
        // One level more at most: the marker where an element was cut.
        assert!(depth(&element) <= BOUND + 1, "{text}");
    }
});
