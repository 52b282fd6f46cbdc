//! Plain text and Markdown: decoding (UTF-8, UTF-16, Windows-1252), binary rejection, form feeds
//! as page breaks. XML files are read as text too, reduced to the text between their tags.

use std::collections::BTreeMap;

use quick_xml::events::Event;

use crate::error::{Error, Result};
use crate::extract::{too_many_pages, ExtractLimits, ExtractedDocument, Format};

/// How much of the decoded text the control-character check looks at.
const BINARY_CHECK_CHARS: usize = 64 * 1024;

/// Extracts a plain-text or Markdown file. Form feeds (`\x0c`) separate pages.
pub(crate) fn extract_text(
    bytes: &[u8],
    format: Format,
    limits: &ExtractLimits,
) -> Result<ExtractedDocument> {
    let decoded = decode_text(bytes)?;
    let decoded = decoded.trim_start_matches('\u{feff}');
    let mut metadata = BTreeMap::new();
    if format == Format::Text && looks_like_xml(decoded) {
        if let Some((title, body)) = xml_to_text(decoded) {
            metadata.insert("content_type".to_string(), "application/xml".to_string());
            return Ok(ExtractedDocument {
                format,
                title,
                pages: vec![body],
                metadata,
            });
        }
    }
    let mut pages: Vec<String> = decoded.split('\u{c}').map(str::to_string).collect();
    while pages.len() > 1 && pages.last().is_some_and(|page| page.trim().is_empty()) {
        pages.pop();
    }
    if pages.len() > limits.max_pages {
        return Err(too_many_pages(format, pages.len(), limits));
    }
    let title = match format {
        Format::Markdown => markdown_title(decoded),
        _ => None,
    };
    Ok(ExtractedDocument {
        format,
        title,
        pages,
        metadata,
    })
}

/// Decodes text bytes: UTF-8 (BOM optional), UTF-16 with a BOM or with the zero-byte pattern of
/// ASCII-heavy UTF-16, else Windows-1252 when the bytes are far from UTF-8. Stray invalid UTF-8
/// bytes become U+FFFD. Refuses binary data (NUL bytes, many control characters).
pub(crate) fn decode_text(bytes: &[u8]) -> Result<String> {
    let decoded = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        decode_utf16(rest, u16::from_le_bytes)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        decode_utf16(rest, u16::from_be_bytes)
    } else if let Some(little_endian) = guess_utf16_without_bom(bytes) {
        if little_endian {
            decode_utf16(bytes, u16::from_le_bytes)
        } else {
            decode_utf16(bytes, u16::from_be_bytes)
        }
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => {
                let lossy = String::from_utf8_lossy(bytes);
                let num_replaced = lossy.chars().filter(|c| *c == '\u{fffd}').count();
                // A few stray bytes in UTF-8 text are tolerated; many mean another encoding,
                // and Windows-1252 is what old e-mail and text files use most.
                if num_replaced * 200 <= lossy.chars().count() {
                    lossy.into_owned()
                } else {
                    decode_windows_1252(bytes)
                }
            }
        }
    };
    check_not_binary(&decoded)?;
    Ok(decoded)
}

fn decode_utf16(bytes: &[u8], to_unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| {
        to_unit([
            pair.first().copied().unwrap_or(0),
            pair.get(1).copied().unwrap_or(0),
        ])
    });
    char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Recognises BOM-less UTF-16 by its zero bytes: ASCII-heavy UTF-16LE text has a zero in
/// (nearly) every odd position and none in even ones. Returns `Some(true)` for little endian.
fn guess_utf16_without_bom(bytes: &[u8]) -> Option<bool> {
    let sample = bytes.get(..4096).unwrap_or(bytes);
    let num_pairs = sample.len() / 2;
    if num_pairs < 2 {
        return None;
    }
    let zeros_at = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|byte| **byte == 0)
            .count()
    };
    let (even_zeros, odd_zeros) = (zeros_at(0), zeros_at(1));
    let is_mostly = |count: usize| count * 10 >= num_pairs * 7;
    let is_rare = |count: usize| count * 20 <= num_pairs;
    if is_mostly(odd_zeros) && is_rare(even_zeros) {
        Some(true)
    } else if is_mostly(even_zeros) && is_rare(odd_zeros) {
        Some(false)
    } else {
        None
    }
}

/// Decodes Windows-1252 (Latin-1 plus typographic characters in 0x80..0x9F).
fn decode_windows_1252(bytes: &[u8]) -> String {
    const HIGH_CONTROLS: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&byte| match byte {
            0x80..=0x9F => HIGH_CONTROLS
                .get(usize::from(byte - 0x80))
                .copied()
                .unwrap_or(char::REPLACEMENT_CHARACTER),
            _ => char::from(byte),
        })
        .collect()
}

/// Refuses text that is really binary data: any NUL, or more than 2% control characters (other
/// than tab, newlines, form feed and escape) among the first characters.
fn check_not_binary(text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::Unsupported {
            reason: "binary file (contains NUL bytes)".to_string(),
        });
    }
    let mut num_chars = 0usize;
    let mut num_controls = 0usize;
    for c in text.chars().take(BINARY_CHECK_CHARS) {
        num_chars += 1;
        let is_allowed_control = matches!(c, '\t' | '\n' | '\r' | '\u{c}' | '\u{1b}');
        if (c.is_control() && !is_allowed_control) || c == '\u{fffd}' {
            num_controls += 1;
        }
    }
    if num_controls >= 4 && num_controls * 50 > num_chars {
        return Err(Error::Unsupported {
            reason: format!(
                "binary file ({num_controls} control characters in the first {num_chars})"
            ),
        });
    }
    Ok(())
}

/// Returns the text of the first ATX heading (`# Title`), preferring a level-1 heading.
fn markdown_title(text: &str) -> Option<String> {
    let heading_text = |line: &str, level_one_only: bool| {
        let trimmed = line.trim_start();
        let after_hashes = trimmed.trim_start_matches('#');
        let num_hashes = trimmed.len() - after_hashes.len();
        let is_heading = (1..=6).contains(&num_hashes)
            && after_hashes.starts_with([' ', '\t'])
            && (!level_one_only || num_hashes == 1);
        is_heading
            .then(|| after_hashes.trim().trim_end_matches('#').trim().to_string())
            .filter(|title| !title.is_empty())
    };
    text.lines()
        .find_map(|line| heading_text(line, true))
        .or_else(|| text.lines().find_map(|line| heading_text(line, false)))
}

/// Tells XML (an XML declaration, or a document that starts with a tag and ends with one).
fn looks_like_xml(text: &str) -> bool {
    let trimmed = text.trim();
    trimmed.starts_with("<?xml")
        || (trimmed.starts_with('<')
            && trimmed.chars().nth(1).is_some_and(|c| c.is_alphabetic())
            && trimmed.ends_with('>'))
}

/// Inline elements of XHTML and the C-CDA narrative block: their end is not a line break.
const INLINE_XML_ELEMENTS: &[&str] = &[
    "a",
    "b",
    "i",
    "u",
    "em",
    "strong",
    "span",
    "sub",
    "sup",
    "content",
    "linkHtml",
    "footnoteRef",
    "renderMultiMedia",
    "given",
    "family",
    "prefix",
    "suffix",
];

/// Reduces an XML document to its text: element ends become line breaks (except inline
/// elements), the first `<title>` becomes the title. External entities are never resolved
/// (quick-xml does not read DTDs). Returns `None` when the XML is malformed, so the caller
/// can fall back to the raw text.
fn xml_to_text(xml: &str) -> Option<(Option<String>, String)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut text = String::new();
    let mut title: Option<String> = None;
    let mut title_buffer: Option<String> = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(element)
                if title.is_none() && element.local_name().as_ref() == b"title" =>
            {
                title_buffer = Some(String::new());
            }
            Event::End(element) => {
                let name = element.local_name();
                let name = std::str::from_utf8(name.as_ref()).unwrap_or("");
                if name == "title" {
                    if let Some(buffer) = title_buffer.take() {
                        title = Some(buffer);
                    }
                }
                if INLINE_XML_ELEMENTS.contains(&name) {
                    text.push(' ');
                } else if !text.ends_with('\n') {
                    text.push('\n');
                }
            }
            Event::Text(content) => {
                let decoded = content.decode().ok()?;
                push_both(&mut text, title_buffer.as_mut(), &decoded);
            }
            Event::CData(content) => {
                let decoded = content.decode().ok()?;
                push_both(&mut text, title_buffer.as_mut(), &decoded);
            }
            Event::GeneralRef(reference) => {
                if let Some(resolved) = resolve_xml_reference(&reference) {
                    push_both(&mut text, title_buffer.as_mut(), &resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Some((title, text))
}

fn push_both(text: &mut String, title_buffer: Option<&mut String>, piece: &str) {
    text.push_str(piece);
    if let Some(buffer) = title_buffer {
        buffer.push_str(piece);
    }
}

/// Resolves `&#NN;`, `&#xNN;` and the five predefined entities; any other entity (a DTD
/// entity, possibly external) is dropped, never fetched or expanded.
pub(crate) fn resolve_xml_reference(reference: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        return Some(c.to_string());
    }
    let name = reference.decode().ok()?;
    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages_of(bytes: &[u8]) -> Vec<String> {
        match extract_text(bytes, Format::Text, &ExtractLimits::default()) {
            Ok(document) => document.pages,
            Err(err) => panic!("extraction failed: {err}"),
        }
    }

    #[test]
    fn form_feed_splits_pages_and_trailing_feed_is_dropped() {
        assert_eq!(pages_of(b"one\x0ctwo\x0c\x0c"), vec!["one", "two"]);
        assert_eq!(pages_of(b"one\x0c\x0cthree"), vec!["one", "", "three"]);
    }

    #[test]
    fn utf16_with_and_without_bom() {
        let text = "Grüße, Welt";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let with_bom = [b"\xFF\xFE".as_slice(), &le].concat();
        assert_eq!(decode_text(&with_bom).ok().as_deref(), Some(text));
        assert_eq!(decode_text(&le).ok().as_deref(), Some(text));
        let be_with_bom = [b"\xFE\xFF".as_slice(), &be].concat();
        assert_eq!(decode_text(&be_with_bom).ok().as_deref(), Some(text));
        assert_eq!(decode_text(&be).ok().as_deref(), Some(text));
    }

    #[test]
    fn windows_1252_when_not_utf8() {
        let bytes = b"caf\xe9 \x93quoted\x94 na\xefve r\xe9sum\xe9";
        assert_eq!(
            decode_text(bytes).ok().as_deref(),
            Some("café “quoted” naïve résumé")
        );
    }

    #[test]
    fn stray_invalid_byte_is_replaced() {
        let mut bytes = "a long enough line of ordinary UTF-8 text "
            .repeat(10)
            .into_bytes();
        bytes.push(0xFF);
        let decoded = decode_text(&bytes).unwrap_or_default();
        assert!(decoded.ends_with('\u{fffd}'), "{decoded:?}");
    }

    #[test]
    fn nul_bytes_mean_binary() {
        let result = decode_text(b"text with a \0 inside it");
        assert!(
            matches!(result, Err(Error::Unsupported { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn markdown_title_prefers_level_one() {
        assert_eq!(
            markdown_title("## Intro\n# Real Title #\ntext").as_deref(),
            Some("Real Title")
        );
        assert_eq!(markdown_title("#hashtag\nplain").as_deref(), None);
    }

    #[test]
    fn xml_is_reduced_to_text_without_entities() {
        let xml =
            "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"http://example.com/\">]>\
                   <doc><title>T &amp; C</title><p>Hello <b>big</b> world &x;</p></doc>";
        let (title, text) = xml_to_text(xml).unwrap_or_default();
        assert_eq!(title.as_deref(), Some("T & C"));
        assert!(text.contains("Hello big  world"), "{text:?}");
        assert!(!text.contains("example.com"));
    }
}
