//! DOCX: `word/document.xml` read with quick-xml; paragraphs, tabs, breaks and table cells kept
//! as whitespace; page breaks recorded by Word (`w:lastRenderedPageBreak`) or typed by the author
//! (`w:br w:type="page"`) start a new page. Title and author come from `docProps/core.xml`.
//!
//! A DOCX is a zip, so it can be a zip bomb: the entry count and each entry's declared size are
//! checked before inflating, and reading stops at a hard cap whatever the header claims.
//! Nothing is ever written to disk, so entry names (path traversal) do not matter.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};

use crate::error::{Error, Result};
use crate::extract::{text, too_many_pages, ExtractLimits, ExtractedDocument, Format};

const DOCUMENT_PART: &str = "word/document.xml";
const CORE_PROPERTIES_PART: &str = "docProps/core.xml";
const FOOTNOTES_PART: &str = "word/footnotes.xml";
const ENDNOTES_PART: &str = "word/endnotes.xml";

/// Extracts a DOCX (also .docm and .dotx, which share the layout).
pub(crate) fn extract_docx(bytes: &[u8], limits: &ExtractLimits) -> Result<ExtractedDocument> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| malformed(format!("not a readable zip archive: {err}")))?;
    if archive.len() > limits.max_zip_entries {
        return Err(Error::TooLarge {
            reason: format!(
                "zip has {} entries, the limit is {}",
                archive.len(),
                limits.max_zip_entries
            ),
        });
    }
    let mut inflate_budget = limits.max_zip_uncompressed_bytes;
    let document_xml =
        read_entry(&mut archive, DOCUMENT_PART, &mut inflate_budget)?.ok_or_else(|| {
            Error::Unsupported {
                reason: "not a DOCX: zip without word/document.xml".to_string(),
            }
        })?;
    // Notes are optional parts: a broken one costs its notes, not the document.
    let mut notes = BTreeMap::new();
    for (part, kind) in [(FOOTNOTES_PART, "Footnote"), (ENDNOTES_PART, "Endnote")] {
        if let Ok(Some(xml)) = read_entry(&mut archive, part, &mut inflate_budget) {
            notes.extend(notes_text(&xml, kind));
        }
    }
    let pages = document_pages(&document_xml, notes)?;
    if pages.len() > limits.max_pages {
        return Err(too_many_pages(Format::Docx, pages.len(), limits));
    }
    // Core properties are optional and decorative: a broken one must not lose the text.
    let properties = read_entry(&mut archive, CORE_PROPERTIES_PART, &mut inflate_budget)
        .ok()
        .flatten()
        .map(|xml| core_properties(&xml))
        .unwrap_or_default();
    let mut metadata = BTreeMap::new();
    let mut title = None;
    for (key, value) in properties {
        match key.as_str() {
            "title" => title = Some(value),
            "creator" => {
                metadata.insert("author".to_string(), value);
            }
            "lastModifiedBy" => {
                metadata.insert("last_modified_by".to_string(), value);
            }
            "subject" | "description" | "keywords" | "created" | "modified" => {
                metadata.insert(key, value);
            }
            _ => {}
        }
    }
    Ok(ExtractedDocument {
        format: Format::Docx,
        title,
        pages,
        metadata,
    })
}

fn malformed(reason: String) -> Error {
    Error::Malformed {
        format: Format::Docx,
        reason,
    }
}

/// Reads one zip entry (name matched case-insensitively, `\` taken as `/`) with the size checks
/// described in the module docs; `Ok(None)` when the entry does not exist.
fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    wanted: &str,
    inflate_budget: &mut u64,
) -> Result<Option<Vec<u8>>> {
    let index = match archive.index_for_name(wanted) {
        Some(index) => index,
        None => {
            let found = archive
                .file_names()
                .position(|name| name.replace('\\', "/").eq_ignore_ascii_case(wanted));
            match found {
                Some(index) => index,
                None => return Ok(None),
            }
        }
    };
    let entry = match archive.by_index(index) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::UnsupportedArchive(message))
            if message == zip::result::ZipError::PASSWORD_REQUIRED =>
        {
            return Err(Error::Encrypted {
                reason: format!("{wanted} is encrypted inside the zip"),
            })
        }
        Err(err) => return Err(malformed(format!("cannot open {wanted}: {err}"))),
    };
    let declared_size = entry.size();
    if declared_size > *inflate_budget {
        return Err(Error::TooLarge {
            reason: format!(
                "{wanted} would inflate to {declared_size} bytes, over the limit of {} (zip bomb?)",
                *inflate_budget
            ),
        });
    }
    // The declared size can lie: cap the actual read one byte past the budget to notice.
    let mut content = Vec::new();
    entry
        .take(inflate_budget.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(|err| malformed(format!("cannot inflate {wanted}: {err}")))?;
    let num_read = content.len() as u64;
    if num_read > *inflate_budget {
        return Err(Error::TooLarge {
            reason: format!(
                "{wanted} inflates past the limit of {} bytes (zip bomb?)",
                *inflate_budget
            ),
        });
    }
    *inflate_budget -= num_read;
    Ok(Some(content))
}

/// Tracks where the reader is in `document.xml`.
#[derive(Default)]
struct BodyWalker {
    pages: Vec<String>,
    current: String,
    /// Inside `<w:t>`: its text is document text.
    in_text_run: bool,
    /// Depth inside `mc:Fallback` (a duplicate of the preceding `mc:Choice`, e.g. text boxes).
    fallback_depth: usize,
    /// Depth inside `w:tabs` (tab stop definitions, not tab characters).
    tab_stops_depth: usize,
    /// Depth of table cells (`w:tc`), for nested tables.
    cell_depth: usize,
    /// Text (not only whitespace) was added since the last page break.
    page_has_text: bool,
    /// Footnote and endnote texts by (kind, id), e.g. ("Footnote", "2").
    notes: BTreeMap<(String, String), String>,
    /// Notes referenced in the current paragraph, written after it so that they land on the
    /// page where the reader sees them.
    pending_notes: Vec<String>,
}

impl BodyWalker {
    fn push_text(&mut self, piece: &str) {
        if self.in_text_run && self.fallback_depth == 0 {
            if !piece.trim().is_empty() {
                self.page_has_text = true;
            }
            self.current.push_str(piece);
        }
    }

    fn push_separator(&mut self, separator: &str) {
        if self.fallback_depth == 0 {
            self.current.push_str(separator);
        }
    }

    /// Starts a new page. Word writes a rendered break right after a typed one, so a break
    /// with no text since the previous one is the same boundary and is ignored.
    fn page_break(&mut self) {
        if self.fallback_depth > 0 || !self.page_has_text {
            return;
        }
        self.pages.push(std::mem::take(&mut self.current));
        self.page_has_text = false;
    }

    fn open(&mut self, element: &BytesStart<'_>, is_empty: bool) {
        match element.local_name().as_ref() {
            b"t" if !is_empty => self.in_text_run = true,
            b"Fallback" if !is_empty => self.fallback_depth += 1,
            b"tabs" if !is_empty => self.tab_stops_depth += 1,
            b"tc" if !is_empty => self.cell_depth += 1,
            b"tab" if self.tab_stops_depth == 0 => self.push_separator("\t"),
            b"br" => {
                if attribute_value(element, b"type").as_deref() == Some("page") {
                    self.page_break();
                } else {
                    self.push_separator("\n");
                }
            }
            b"cr" => self.push_separator("\n"),
            b"lastRenderedPageBreak" => self.page_break(),
            b"noBreakHyphen" => self.push_separator("-"),
            b"pageBreakBefore" => {
                let value = attribute_value(element, b"val");
                if !matches!(value.as_deref(), Some("0" | "false" | "off")) {
                    self.page_break();
                }
            }
            b"p" if is_empty => self.end_paragraph(),
            kind @ (b"footnoteReference" | b"endnoteReference") => {
                let kind = if kind == b"footnoteReference" {
                    "Footnote"
                } else {
                    "Endnote"
                };
                if let Some(id) = attribute_value(element, b"id") {
                    if let Some(note) = self.notes.get(&(kind.to_string(), id)) {
                        let note = format!("[{kind}: {}]", note.trim());
                        self.pending_notes.push(note);
                    }
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, local_name: &[u8]) {
        match local_name {
            b"t" => self.in_text_run = false,
            b"Fallback" => self.fallback_depth = self.fallback_depth.saturating_sub(1),
            b"tabs" => self.tab_stops_depth = self.tab_stops_depth.saturating_sub(1),
            b"p" => self.end_paragraph(),
            b"tc" => {
                self.cell_depth = self.cell_depth.saturating_sub(1);
                self.push_separator("\t");
            }
            b"tr" => self.push_separator("\n"),
            b"tbl" => self.push_separator("\n\n"),
            _ => {}
        }
    }

    /// Paragraphs end with a blank line; inside a table cell a space keeps the row on one line.
    fn end_paragraph(&mut self) {
        let separator = if self.cell_depth > 0 { " " } else { "\n\n" };
        self.push_separator(separator);
        for note in std::mem::take(&mut self.pending_notes) {
            if self.fallback_depth == 0 {
                self.page_has_text = true;
                self.current.push_str(&note);
                self.current.push_str(separator);
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.page_has_text || self.pages.is_empty() {
            self.pages.push(self.current);
        }
        self.pages
    }
}

fn attribute_value(element: &BytesStart<'_>, local_name: &[u8]) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == local_name)
        .and_then(|attribute| {
            attribute
                .unescape_value()
                .ok()
                .map(|value| value.into_owned())
        })
}

/// Turns `word/document.xml` into page texts, with each referenced note after its paragraph.
fn document_pages(xml: &[u8], notes: BTreeMap<(String, String), String>) -> Result<Vec<String>> {
    let decoded =
        text::decode_text(xml).map_err(|err| malformed(format!("{DOCUMENT_PART}: {err}")))?;
    let mut reader = quick_xml::Reader::from_str(&decoded);
    let mut walker = BodyWalker {
        notes,
        ..BodyWalker::default()
    };
    loop {
        let event = reader.read_event().map_err(|err| {
            malformed(format!(
                "{DOCUMENT_PART} is not well-formed XML at byte {}: {err}",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(element) => walker.open(&element, false),
            Event::Empty(element) => walker.open(&element, true),
            Event::End(element) => walker.close(element.local_name().as_ref()),
            Event::Text(content) => {
                let decoded = content
                    .decode()
                    .map_err(|err| malformed(format!("{DOCUMENT_PART}: {err}")))?;
                walker.push_text(&decoded);
            }
            Event::CData(content) => {
                let decoded = content
                    .decode()
                    .map_err(|err| malformed(format!("{DOCUMENT_PART}: {err}")))?;
                walker.push_text(&decoded);
            }
            // Only character references and the five XML entities are resolved; a DTD entity
            // (possibly external, e.g. `SYSTEM "http://..."`) is dropped, never fetched.
            Event::GeneralRef(reference) => {
                if let Some(resolved) = text::resolve_xml_reference(&reference) {
                    walker.push_text(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(walker.finish())
}

/// Reads `word/footnotes.xml` or `word/endnotes.xml` into texts by ((`kind`, id)). Only text
/// runs count, so the separator pseudo-notes come out empty and are left out.
fn notes_text(xml: &[u8], kind: &str) -> BTreeMap<(String, String), String> {
    let mut notes = BTreeMap::new();
    let Ok(decoded) = text::decode_text(xml) else {
        return notes;
    };
    let mut reader = quick_xml::Reader::from_str(&decoded);
    let mut current: Option<(String, String)> = None;
    let mut in_text_run = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => match element.local_name().as_ref() {
                b"footnote" | b"endnote" => {
                    current = attribute_value(&element, b"id").map(|id| (id, String::new()));
                }
                b"t" => in_text_run = true,
                _ => {}
            },
            Ok(Event::Empty(element)) => {
                if let (b"tab" | b"br", Some((_, text))) =
                    (element.local_name().as_ref(), current.as_mut())
                {
                    text.push(' ');
                }
            }
            Ok(Event::Text(content)) => {
                if let (true, Some((_, text)), Ok(decoded)) =
                    (in_text_run, current.as_mut(), content.decode())
                {
                    text.push_str(&decoded);
                }
            }
            Ok(Event::GeneralRef(reference)) => {
                if let (true, Some((_, text)), Some(resolved)) = (
                    in_text_run,
                    current.as_mut(),
                    text::resolve_xml_reference(&reference),
                ) {
                    text.push_str(&resolved);
                }
            }
            Ok(Event::End(element)) => match element.local_name().as_ref() {
                b"t" => in_text_run = false,
                b"p" => {
                    if let Some((_, text)) = current.as_mut() {
                        text.push(' ');
                    }
                }
                b"footnote" | b"endnote" => {
                    if let Some((id, text)) = current.take() {
                        if !text.trim().is_empty() {
                            notes.insert((kind.to_string(), id), text);
                        }
                    }
                }
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    notes
}

/// Reads `docProps/core.xml` into (local element name, text) pairs, e.g. ("title", "...").
fn core_properties(xml: &[u8]) -> Vec<(String, String)> {
    let Ok(decoded) = text::decode_text(xml) else {
        return Vec::new();
    };
    let mut reader = quick_xml::Reader::from_str(&decoded);
    let mut properties = Vec::new();
    let mut current: Option<(String, String)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => {
                let name = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                current = Some((name, String::new()));
            }
            Ok(Event::Text(content)) => {
                if let (Some((_, value)), Ok(decoded)) = (current.as_mut(), content.decode()) {
                    value.push_str(&decoded);
                }
            }
            Ok(Event::GeneralRef(reference)) => {
                if let (Some((_, value)), Some(resolved)) =
                    (current.as_mut(), text::resolve_xml_reference(&reference))
                {
                    value.push_str(&resolved);
                }
            }
            Ok(Event::End(_)) => {
                if let Some((name, value)) = current.take() {
                    let value = value.trim().to_string();
                    if !value.is_empty() {
                        properties.push((name, value));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn docx_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            let started = writer.start_file(*name, SimpleFileOptions::default());
            assert!(started.is_ok());
            assert!(writer.write_all(content).is_ok());
        }
        writer.finish().map(Cursor::into_inner).unwrap_or_default()
    }

    const BODY: &str = r#"<?xml version="1.0"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>First</w:t><w:tab/><w:t xml:space="preserve">para &amp; more</w:t></w:r></w:p>
<w:p><w:r><w:t>Before break</w:t><w:br w:type="page"/></w:r></w:p>
<w:p><w:r><w:lastRenderedPageBreak/><w:t>Second page</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>A1</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>B1</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:r><w:lastRenderedPageBreak/><w:t>Third</w:t><w:delText>deleted</w:delText></w:r></w:p>
</w:body></w:document>"#;

    const CORE: &str = r#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="x" xmlns:dc="y">
<dc:title>My Title</dc:title><dc:creator>Jane Roe</dc:creator></cp:coreProperties>"#;

    #[test]
    fn pages_paragraphs_tables_and_properties() {
        let bytes = docx_with(&[
            ("word/document.xml", BODY.as_bytes()),
            ("docProps/core.xml", CORE.as_bytes()),
        ]);
        let document =
            extract_docx(&bytes, &ExtractLimits::default()).unwrap_or_else(|err| panic!("{err}"));
        let pages: Vec<String> = document
            .pages
            .iter()
            .map(|page| crate::extract::normalize_page_text(page))
            .collect();
        assert_eq!(
            pages,
            vec![
                "First para & more\n\nBefore break",
                "Second page\n\nA1 B1",
                "Third"
            ]
        );
        assert_eq!(document.title.as_deref(), Some("My Title"));
        assert_eq!(
            document.metadata.get("author").map(String::as_str),
            Some("Jane Roe")
        );
    }

    #[test]
    fn footnotes_follow_their_paragraph() {
        let body = r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>Claim</w:t></w:r><w:r><w:footnoteReference w:id="2"/></w:r></w:p><w:p><w:r><w:t>Next</w:t></w:r></w:p></w:body></w:document>"#;
        let notes = r#"<w:footnotes xmlns:w="w"><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote><w:footnote w:id="2"><w:p><w:r><w:t>See 12 U.S.C. 1.</w:t></w:r></w:p></w:footnote></w:footnotes>"#;
        let bytes = docx_with(&[
            ("word/document.xml", body.as_bytes()),
            ("word/footnotes.xml", notes.as_bytes()),
        ]);
        let document =
            extract_docx(&bytes, &ExtractLimits::default()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            crate::extract::normalize_page_text(&document.pages[0]),
            "Claim\n\n[Footnote: See 12 U.S.C. 1.]\n\nNext"
        );
    }

    #[test]
    fn zip_without_document_part_is_unsupported() {
        let bytes = docx_with(&[("hello.txt", b"hello")]);
        let result = extract_docx(&bytes, &ExtractLimits::default());
        assert!(
            matches!(result, Err(Error::Unsupported { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn zip_bomb_is_refused_before_inflating_everything() {
        let spaces = vec![b' '; 2 * 1024 * 1024];
        let bytes = docx_with(&[("word/document.xml", &spaces)]);
        let limits = ExtractLimits {
            max_zip_uncompressed_bytes: 1024 * 1024,
            ..ExtractLimits::default()
        };
        let result = extract_docx(&bytes, &limits);
        assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
    }

    #[test]
    fn too_many_entries_is_refused() {
        let entries: Vec<(String, Vec<u8>)> =
            (0..20).map(|i| (format!("f{i}.txt"), vec![b'x'])).collect();
        let borrowed: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(name, content)| (name.as_str(), content.as_slice()))
            .collect();
        let bytes = docx_with(&borrowed);
        let limits = ExtractLimits {
            max_zip_entries: 10,
            ..ExtractLimits::default()
        };
        let result = extract_docx(&bytes, &limits);
        assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
    }
}
