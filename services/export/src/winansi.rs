//! Text for the base-14 Helvetica faces: WinAnsiEncoding (PDF 32000-1, annex D) and the
//! glyph widths from Adobe's Helvetica and Helvetica-Bold AFM files (Helvetica-Oblique has
//! Helvetica's widths).
//!
//! The standard fonts have no glyphs beyond WinAnsi (Latin-1 plus a few typographic marks), so
//! [`encode`] maps every other character to a visible `?` ([`REPLACEMENT`]) and counts it;
//! the PDF then says that it did. A few characters have a faithful WinAnsi spelling and get it
//! instead (Unicode spaces become a space, the hyphen and minus variants `-`, the `fi`-style
//! ligatures their letters); zero-width characters, soft hyphens, combining marks and control
//! characters are dropped (combining marks are counted as replaced, since an accent is lost).

/// What a character with no WinAnsi glyph becomes.
pub(crate) const REPLACEMENT: u8 = b'?';

/// Text in WinAnsi bytes, with `\n` for a forced line break.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub bytes: Vec<u8>,
    /// How many characters were replaced by [`REPLACEMENT`] or lost an accent.
    pub replaced: usize,
}

/// Encodes `text` in WinAnsi (see the module documentation for what cannot be encoded).
pub(crate) fn encode(text: &str) -> Encoded {
    let mut out = Encoded {
        bytes: Vec::with_capacity(text.len()),
        replaced: 0,
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                // \r\n and a lone \r are both one line break.
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.bytes.push(b'\n');
            }
            '\n' | '\u{2028}' | '\u{2029}' | '\u{0B}' | '\u{0C}' | '\u{85}' => {
                out.bytes.push(b'\n')
            }
            '\t' => out.bytes.push(b' '),
            _ => {
                if let Some(byte) = single(c) {
                    out.bytes.push(byte);
                } else if let Some(spelled) = spelled(c) {
                    out.bytes.extend_from_slice(spelled);
                } else if is_dropped(c) {
                    // Invisible: nothing to show.
                } else if is_combining(c) {
                    out.replaced += 1;
                } else {
                    out.bytes.push(REPLACEMENT);
                    out.replaced += 1;
                }
            }
        }
    }
    out
}

/// The WinAnsi code of a character that has one.
fn single(c: char) -> Option<u8> {
    let code = u32::from(c);
    let byte = match code {
        0x20..=0x7E => return u8::try_from(code).ok(),
        // The soft hyphen is 0xAD in WinAnsi, but it is drawn as a hyphen: drop it instead.
        0xAD => return None,
        0xA0..=0xFF => return u8::try_from(code).ok(),
        0x20AC => 0x80, // €
        0x201A => 0x82, // ‚
        0x0192 => 0x83, // ƒ
        0x201E => 0x84, // „
        0x2026 => 0x85, // …
        0x2020 => 0x86, // †
        0x2021 => 0x87, // ‡
        0x02C6 => 0x88, // ˆ
        0x2030 => 0x89, // ‰
        0x0160 => 0x8A, // Š
        0x2039 => 0x8B, // ‹
        0x0152 => 0x8C, // Œ
        0x017D => 0x8E, // Ž
        0x2018 => 0x91, // ‘
        0x2019 => 0x92, // ’
        0x201C => 0x93, // “
        0x201D => 0x94, // ”
        0x2022 => 0x95, // •
        0x2013 => 0x96, // –
        0x2014 => 0x97, // —
        0x02DC => 0x98, // ˜
        0x2122 => 0x99, // ™
        0x0161 => 0x9A, // š
        0x203A => 0x9B, // ›
        0x0153 => 0x9C, // œ
        0x017E => 0x9E, // ž
        0x0178 => 0x9F, // Ÿ
        _ => return None,
    };
    Some(byte)
}

/// Characters with a faithful spelling in WinAnsi.
fn spelled(c: char) -> Option<&'static [u8]> {
    Some(match c {
        '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => b" ",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2043}' | '\u{2212}' | '\u{FE63}'
        | '\u{FF0D}' => b"-",
        '\u{2015}' => b"\x97",
        '\u{2024}' => b".",
        '\u{2032}' => b"'",
        '\u{2033}' => b"\"",
        '\u{2044}' | '\u{2215}' => b"/",
        '\u{FB00}' => b"ff",
        '\u{FB01}' => b"fi",
        '\u{FB02}' => b"fl",
        '\u{FB03}' => b"ffi",
        '\u{FB04}' => b"ffl",
        _ => return None,
    })
}

/// Invisible characters: dropped without a trace.
fn is_dropped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{202A}'..='\u{202E}'
        )
}

/// Combining marks (the common blocks): the base letter stays, the accent is lost.
fn is_combining(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}'
    )
}

/// One of the fonts the PDF uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    Regular,
    Bold,
    Oblique,
}

impl Face {
    /// The width of `bytes` (WinAnsi, no line breaks) set at `size` points.
    pub(crate) fn width(self, bytes: &[u8], size: f32) -> f32 {
        let table = match self {
            Face::Regular | Face::Oblique => &HELVETICA,
            Face::Bold => &HELVETICA_BOLD,
        };
        let units: u32 = bytes
            .iter()
            .map(|&b| {
                b.checked_sub(32)
                    .and_then(|i| table.get(usize::from(i)))
                    .map_or(0, |&w| u32::from(w))
            })
            .sum();
        // Widths are in thousandths of the font size.
        #[allow(clippy::cast_precision_loss)]
        let units = units as f32;
        units * size / 1000.0
    }
}

// Generated from the AFM metrics of the standard 14 fonts (as pdf-extract's core_fonts.rs
// carries them), indexed by WinAnsi code - 32.

/// Helvetica advance widths (1/1000 em) for WinAnsi codes 32..=255; 0 where the code is unused.
pub(crate) const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
    350, 556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350, 350,
    222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667, 278, 333, 556,
    556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 556,
    537, 278, 333, 333, 365, 556, 834, 834, 834, 611, 667, 667, 667, 667, 667, 667, 1000, 722, 667,
    667, 667, 667, 278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722,
    722, 667, 667, 611, 556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278,
    278, 556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

/// Helvetica-Bold advance widths (1/1000 em) for WinAnsi codes 32..=255; 0 where the code is unused.
pub(crate) const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667,
    611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556,
    278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
    350, 556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350, 350,
    278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667, 278, 333, 556,
    556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 611,
    556, 278, 333, 333, 365, 556, 834, 834, 834, 611, 722, 722, 722, 722, 722, 722, 1000, 722, 667,
    667, 667, 667, 278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722,
    722, 667, 667, 611, 556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278,
    278, 611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];
