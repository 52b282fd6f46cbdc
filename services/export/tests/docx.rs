//! The DOCX export opened with the zip crate and its XML read back with quick-xml.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use common::*;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use vellum_export::{to_docx, ExportedConversation, DOCX_CONTENT_TYPE};

const CLOSING: &str = "Exported from Vellum. Quotes are verbatim from the indexed text.";

/// The package's parts, by name.
fn parts(bytes: &[u8]) -> BTreeMap<String, String> {
    assert!(bytes.starts_with(b"PK\x03\x04"), "not a zip");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip archive");
    let mut parts = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("entry");
        let mut text = String::new();
        file.read_to_string(&mut text).expect("UTF-8 part");
        parts.insert(file.name().to_string(), text);
    }
    parts
}

fn export(conversation: &ExportedConversation) -> BTreeMap<String, String> {
    parts(&to_docx(conversation).expect("export"))
}

fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .try_get_attribute(name)
        .expect("well-formed attributes")
        .map(|a| a.unescape_value().expect("attribute value").into_owned())
}

/// Every event of an XML part, so a malformed part fails the test; returns the element names.
fn well_formed(xml: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut names = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return names,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                for a in e.attributes() {
                    a.expect("attribute").unescape_value().expect("value");
                }
            }
            Ok(_) => {}
            Err(e) => panic!("malformed XML at {}: {e}\n{xml}", reader.error_position()),
        }
    }
}

/// The paragraphs of word/document.xml: (style, text), with `<w:br/>` as `\n` and `<w:tab/>`
/// as `\t`, entities resolved.
fn paragraphs(xml: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut style = String::new();
    let mut text = String::new();
    let mut in_text = false;
    loop {
        match reader.read_event().expect("well-formed document.xml") {
            Event::Eof => return out,
            Event::Start(e) if e.name().as_ref() == b"w:p" => {
                style.clear();
                text.clear();
            }
            Event::End(e) if e.name().as_ref() == b"w:p" => {
                out.push((style.clone(), text.clone()));
            }
            Event::Empty(e) if e.name().as_ref() == b"w:pStyle" => {
                style = attribute(&e, "w:val").expect("w:val");
            }
            Event::Empty(e) if e.name().as_ref() == b"w:br" => text.push('\n'),
            Event::Empty(e) if e.name().as_ref() == b"w:tab" => text.push('\t'),
            Event::Start(e) if e.name().as_ref() == b"w:t" => {
                assert_eq!(attribute(&e, "xml:space").as_deref(), Some("preserve"));
                in_text = true;
            }
            Event::End(e) if e.name().as_ref() == b"w:t" => in_text = false,
            Event::Text(t) if in_text => text.push_str(&t.xml10_content().expect("text")),
            Event::GeneralRef(r) if in_text => {
                if let Some(c) = r.resolve_char_ref().expect("char ref") {
                    text.push(c);
                } else {
                    let name = r.decode().expect("entity name");
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .unwrap_or_else(|| panic!("unknown entity &{name};"));
                    text.push_str(resolved);
                }
            }
            Event::Text(t) => {
                let raw = t.xml10_content().expect("text");
                assert!(raw.trim().is_empty(), "text outside <w:t>: {raw:?}");
            }
            _ => {}
        }
    }
}

fn find(paragraphs: &[(String, String)], style: &str, text: &str) -> usize {
    paragraphs
        .iter()
        .position(|(s, t)| s == style && t == text)
        .unwrap_or_else(|| panic!("no {style} paragraph {text:?} in {paragraphs:#?}"))
}

#[test]
fn the_package_is_a_minimal_valid_wordprocessingml_document() {
    assert_eq!(
        DOCX_CONTENT_TYPE,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let parts = export(&conversation());
    let names: BTreeSet<&str> = parts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "[Content_Types].xml",
            "_rels/.rels",
            "docProps/core.xml",
            "word/_rels/document.xml.rels",
            "word/document.xml",
            "word/footer1.xml",
            "word/styles.xml",
        ])
    );
    for (name, xml) in &parts {
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\""),
            "{name}"
        );
        well_formed(xml);
    }

    // Every part but the content types has a content type: the XML and rels defaults, and an
    // override for each main part.
    let types = &parts["[Content_Types].xml"];
    for (part, content_type) in [
        ("/word/document.xml", "wordprocessingml.document.main+xml"),
        ("/word/styles.xml", "wordprocessingml.styles+xml"),
        ("/word/footer1.xml", "wordprocessingml.footer+xml"),
        ("/docProps/core.xml", "core-properties+xml"),
    ] {
        let needle = format!("PartName=\"{part}\" ContentType=\"application/vnd.openxmlformats-");
        let at = types
            .find(&needle)
            .unwrap_or_else(|| panic!("no override for {part}"));
        assert!(types[at..]
            .split("/>")
            .next()
            .unwrap_or("")
            .contains(content_type));
    }

    // Relationships point at parts that exist.
    for (rels, base) in [
        ("_rels/.rels", ""),
        ("word/_rels/document.xml.rels", "word/"),
    ] {
        let mut reader = Reader::from_str(&parts[rels]);
        let mut targets = 0;
        loop {
            match reader.read_event().expect("rels") {
                Event::Eof => break,
                Event::Empty(e) if e.name().as_ref() == b"Relationship" => {
                    let target = attribute(&e, "Target").expect("Target");
                    assert!(
                        parts.contains_key(&format!("{base}{target}")),
                        "{rels}: {target}"
                    );
                    targets += 1;
                }
                _ => {}
            }
        }
        assert_eq!(targets, 2, "{rels}");
    }
    let document = &parts["word/document.xml"];
    assert!(document.contains("<w:footerReference w:type=\"default\" r:id=\"rId2\"/>"));
    assert!(parts["word/_rels/document.xml.rels"]
        .contains("Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer\""));

    // Every paragraph style the document uses is defined, the headings as outline levels.
    let styles = &parts["word/styles.xml"];
    let used: BTreeSet<String> = paragraphs(document).into_iter().map(|(s, _)| s).collect();
    for style in &used {
        assert!(
            styles.contains(&format!("w:styleId=\"{style}\"")),
            "style {style} undefined"
        );
    }
    for (level, id) in ["Heading1", "Heading2", "Heading3"].iter().enumerate() {
        let at = styles
            .find(&format!("w:styleId=\"{id}\""))
            .expect("heading style");
        let definition = styles[at..].split("</w:style>").next().unwrap_or("");
        assert!(
            definition.contains(&format!("<w:outlineLvl w:val=\"{level}\"/>")),
            "{id}"
        );
        assert!(used.contains(*id), "{id} unused");
    }
    assert!(parts["word/footer1.xml"].contains(CLOSING));
    assert!(parts["docProps/core.xml"].contains(&format!("<dc:title>{TITLE}</dc:title>")));
}

#[test]
fn the_docx_carries_the_conversation_and_its_citations() {
    let parts = export(&conversation());
    let p = paragraphs(&parts["word/document.xml"]);

    assert_eq!(p[0], ("Title".to_string(), TITLE.to_string()));
    find(
        &p,
        "VellumMeta",
        "Exported by alice@firm.example on 2026-12-05 09:30 UTC",
    );
    find(&p, "VellumMeta", "Collections: contracts, hr-policies");
    let question = find(&p, "VellumQuestion", QUESTION);
    assert_eq!(
        p[question - 2],
        ("Heading1".to_string(), "Question 1".to_string())
    );
    find(&p, "VellumMeta", "Asked 2026-12-05 09:12 UTC");
    let answer = find(&p, "Normal", ANSWER_1);
    assert!(answer > question);
    find(&p, "Normal", ANSWER_2);

    // Sources: cited first in number order, each followed by its status and its quote.
    let sources = find(&p, "Heading2", "Sources");
    let one = find(&p, "Heading3", "[1] Employment contract, page 3");
    let two = find(&p, "Heading3", "[2] Employee handbook, page 12");
    let three = find(&p, "Heading3", "[3] Board minutes 2024, page 7");
    assert!(sources < one && one < two && two < three);
    assert_eq!(p[one + 1].1, "Cited in the answer \u{b7} document doc-0001");
    assert_eq!(p[one + 2], ("Quote".to_string(), QUOTE_1.to_string()));
    assert_eq!(p[two + 2], ("Quote".to_string(), QUOTE_2.to_string()));
    assert_eq!(
        p[three + 1].1,
        "Given to the model but not cited \u{b7} document doc-0003"
    );
    // The quote full of markup comes back as the same text.
    assert_eq!(
        p[three + 2],
        ("Quote".to_string(), QUOTE_MARKUP.to_string())
    );

    let notes = find(&p, "Heading2", "Notes");
    assert!(notes > three);
    find(
        &p,
        "VellumNote",
        "Sentences of the answer that cite no source:",
    );
    find(&p, "VellumNoteItem", &format!("\u{2022}\t{ANSWER_2}"));
    find(
        &p,
        "VellumNote",
        "Citation markers that pointed to no source (removed from the answer):",
    );
    find(&p, "VellumNoteItem", &format!("\u{2022}\t{INVALID}"));

    // The second turn keeps every character: DOCX is not limited to WinAnsi.
    find(&p, "Heading1", "Question 2");
    find(&p, "VellumQuestion", QUESTION_2);
    find(&p, "Normal", ANSWER_2_TEXT);
    find(&p, "Heading3", "[1] Vertrag Müller, page 5");
    find(&p, "Quote", QUOTE_LATIN1);

    assert_eq!(
        p[p.len() - 1],
        ("VellumClosing".to_string(), CLOSING.to_string())
    );
}

#[test]
fn text_is_escaped_never_markup() {
    let parts = export(&conversation());
    let document = &parts["word/document.xml"];
    assert!(document.contains(
        "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;other&quot; markup &lt;b&gt;bold&lt;/b&gt;"
    ));
    assert!(!document.contains("<script"));
    assert!(!document.contains("<b>"));
    // No element but WordprocessingML's own.
    for name in well_formed(document) {
        assert!(name.starts_with("w:"), "element {name}");
    }

    // The title in the core properties too.
    let mut conversation = conversation();
    conversation.title = "R&D <draft> \"v2\"".into();
    let parts = export(&conversation);
    assert!(parts["docProps/core.xml"]
        .contains("<dc:title>R&amp;D &lt;draft&gt; &quot;v2&quot;</dc:title>"));
    let p = paragraphs(&parts["word/document.xml"]);
    assert_eq!(p[0].1, "R&D <draft> \"v2\"");
}

#[test]
fn line_breaks_tabs_and_characters_xml_cannot_carry() {
    let mut conversation = conversation();
    conversation.turns[0].answer =
        "First line [1].\nSecond line\twith a tab.\r\n\r\nNext paragraph.".into();
    conversation.turns[0].sources[1].quote = "Bell\u{7} and null\u{0} and \u{FFFF}.".into();
    let parts = export(&conversation);
    let document = &parts["word/document.xml"];
    assert!(
        !document.contains('\u{7}')
            && !document.contains('\u{0}')
            && !document.contains('\u{FFFF}')
    );
    let p = paragraphs(document);
    find(&p, "Normal", "First line [1].\nSecond line\twith a tab.");
    find(&p, "Normal", "Next paragraph.");
    find(&p, "Quote", "Bell\u{FFFD} and null\u{FFFD} and \u{FFFD}.");
}

#[test]
fn empty_fields_get_placeholders_and_a_long_conversation_exports_whole() {
    let empty = ExportedConversation {
        title: " ".into(),
        user: String::new(),
        exported_at: String::new(),
        collections: vec![],
        turns: vec![],
    };
    let p = paragraphs(&export(&empty)["word/document.xml"]);
    assert_eq!(p[0], ("Title".to_string(), "Conversation".to_string()));
    find(
        &p,
        "VellumMeta",
        "Exported by an unknown user on an unknown date",
    );
    find(&p, "VellumMeta", "Collections: none recorded");
    find(&p, "Normal", "This conversation has no questions.");

    let p = paragraphs(&export(&long_conversation(300))["word/document.xml"]);
    for i in 1..=300 {
        find(&p, "Normal", &long_sentence(i));
    }
    find(&p, "Heading3", "[1] Master services agreement, page 41");
}

#[test]
fn the_same_conversation_gives_the_same_bytes() {
    let conversation = conversation();
    assert_eq!(to_docx(&conversation).ok(), to_docx(&conversation).ok());
}
