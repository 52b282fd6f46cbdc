//! The DOCX writer: a minimal WordprocessingML package (content types, relationships, the
//! document, its styles, a page footer and the core properties).

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::outline::{outline, Block, Style, CLOSING};
use crate::{ExportError, ExportedConversation};

const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const R_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

pub(crate) fn write(conversation: &ExportedConversation) -> Result<Vec<u8>, ExportError> {
    let title = conversation.title.trim();
    let parts: [(&str, String); 7] = [
        ("[Content_Types].xml", content_types()),
        ("_rels/.rels", package_rels()),
        ("docProps/core.xml", core_properties(title)),
        ("word/document.xml", document(conversation)),
        ("word/_rels/document.xml.rels", document_rels()),
        ("word/styles.xml", styles()),
        ("word/footer1.xml", footer()),
    ];
    // No timestamp in the entries (zip's default, 1980-01-01): the same conversation gives the
    // same bytes.
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, text) in parts {
        zip.start_file(name, options)?;
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

fn content_types() -> String {
    format!(
        "{XML_DECLARATION}\n\
<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/>\
<Override PartName=\"/word/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml\"/>\
<Override PartName=\"/word/footer1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml\"/>\
<Override PartName=\"/docProps/core.xml\" ContentType=\"application/vnd.openxmlformats-package.core-properties+xml\"/>\
</Types>"
    )
}

fn package_rels() -> String {
    format!(
        "{XML_DECLARATION}\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/>\
<Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties\" Target=\"docProps/core.xml\"/>\
</Relationships>"
    )
}

fn document_rels() -> String {
    format!(
        "{XML_DECLARATION}\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>\
<Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer\" Target=\"footer1.xml\"/>\
</Relationships>"
    )
}

fn core_properties(title: &str) -> String {
    format!(
        "{XML_DECLARATION}\n\
<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
<dc:title>{}</dc:title><dc:creator>Vellum</dc:creator></cp:coreProperties>",
        escape(title)
    )
}

/// The paragraph style of each outline role (defined in [`styles`]).
fn style_id(style: Style) -> &'static str {
    match style {
        Style::Title => "Title",
        Style::Meta => "VellumMeta",
        Style::TurnHeading => "Heading1",
        Style::Section => "Heading2",
        Style::Question => "VellumQuestion",
        Style::Body => "Normal",
        Style::SourceHeading => "Heading3",
        Style::Quote => "Quote",
        Style::Note | Style::Notice => "VellumNote",
        Style::NoteItem => "VellumNoteItem",
        Style::Closing => "VellumClosing",
    }
}

fn document(conversation: &ExportedConversation) -> String {
    let mut xml =
        format!("{XML_DECLARATION}\n<w:document xmlns:w=\"{W_NS}\" xmlns:r=\"{R_NS}\"><w:body>");
    for block in outline(conversation) {
        paragraph(&mut xml, &block);
    }
    // A4 with 2 cm margins; the footer is rId2 in document.xml.rels.
    xml.push_str(
        "<w:sectPr><w:footerReference w:type=\"default\" r:id=\"rId2\"/>\
<w:pgSz w:w=\"11906\" w:h=\"16838\"/>\
<w:pgMar w:top=\"1134\" w:right=\"1134\" w:bottom=\"1134\" w:left=\"1134\" w:header=\"567\" w:footer=\"567\" w:gutter=\"0\"/>\
</w:sectPr></w:body></w:document>",
    );
    xml
}

fn paragraph(xml: &mut String, block: &Block) {
    xml.push_str("<w:p><w:pPr><w:pStyle w:val=\"");
    xml.push_str(style_id(block.style));
    xml.push_str("\"/></w:pPr>");
    let text = if block.style == Style::NoteItem {
        format!("\u{2022}\t{}", block.text)
    } else {
        block.text.clone()
    };
    run(xml, &text);
    xml.push_str("</w:p>");
}

/// One run of `text`: line breaks become `<w:br/>`, tabs `<w:tab/>`.
fn run(xml: &mut String, text: &str) {
    xml.push_str("<w:r>");
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            xml.push_str("<w:br/>");
        }
        for (j, piece) in line.split('\t').enumerate() {
            if j > 0 {
                xml.push_str("<w:tab/>");
            }
            if !piece.is_empty() {
                xml.push_str("<w:t xml:space=\"preserve\">");
                xml.push_str(&escape(piece));
                xml.push_str("</w:t>");
            }
        }
    }
    xml.push_str("</w:r>");
}

fn footer() -> String {
    format!(
        "{XML_DECLARATION}\n<w:ftr xmlns:w=\"{W_NS}\" xmlns:r=\"{R_NS}\">\
<w:p><w:pPr><w:pStyle w:val=\"Footer\"/></w:pPr>\
<w:r><w:t xml:space=\"preserve\">{} Page </w:t></w:r>\
<w:fldSimple w:instr=\" PAGE \"><w:r><w:t>1</w:t></w:r></w:fldSimple>\
<w:r><w:t xml:space=\"preserve\"> of </w:t></w:r>\
<w:fldSimple w:instr=\" NUMPAGES \"><w:r><w:t>1</w:t></w:r></w:fldSimple>\
</w:p></w:ftr>",
        escape(CLOSING)
    )
}

fn styles() -> String {
    // Sizes are in half-points, spacing and indents in twentieths of a point.
    let mut xml = format!(
        "{XML_DECLARATION}\n<w:styles xmlns:w=\"{W_NS}\">\
<w:docDefaults><w:rPrDefault><w:rPr>\
<w:rFonts w:ascii=\"Calibri\" w:hAnsi=\"Calibri\" w:eastAsia=\"Calibri\" w:cs=\"Calibri\"/>\
<w:sz w:val=\"22\"/><w:szCs w:val=\"22\"/><w:lang w:val=\"en-US\"/>\
</w:rPr></w:rPrDefault>\
<w:pPrDefault><w:pPr><w:spacing w:after=\"120\" w:line=\"264\" w:lineRule=\"auto\"/></w:pPr></w:pPrDefault>\
</w:docDefaults>\
<w:style w:type=\"paragraph\" w:default=\"1\" w:styleId=\"Normal\"><w:name w:val=\"Normal\"/><w:qFormat/></w:style>"
    );
    let styles: [(&str, &str, &str, &str); 11] = [
        (
            "Title",
            "Title",
            "<w:keepNext/><w:spacing w:after=\"120\"/>",
            "<w:b/><w:sz w:val=\"40\"/><w:szCs w:val=\"40\"/>",
        ),
        (
            "Heading1",
            "heading 1",
            "<w:keepNext/><w:keepLines/><w:spacing w:before=\"360\" w:after=\"80\"/><w:outlineLvl w:val=\"0\"/>",
            "<w:b/><w:color w:val=\"1F3864\"/><w:sz w:val=\"30\"/><w:szCs w:val=\"30\"/>",
        ),
        (
            "Heading2",
            "heading 2",
            "<w:keepNext/><w:keepLines/><w:spacing w:before=\"200\" w:after=\"60\"/><w:outlineLvl w:val=\"1\"/>",
            "<w:b/><w:color w:val=\"2F5496\"/><w:sz w:val=\"24\"/><w:szCs w:val=\"24\"/>",
        ),
        (
            "Heading3",
            "heading 3",
            "<w:keepNext/><w:keepLines/><w:spacing w:before=\"140\" w:after=\"20\"/><w:outlineLvl w:val=\"2\"/>",
            "<w:b/><w:sz w:val=\"21\"/><w:szCs w:val=\"21\"/>",
        ),
        (
            "Quote",
            "Quote",
            "<w:pBdr><w:left w:val=\"single\" w:sz=\"12\" w:space=\"8\" w:color=\"A6A6A6\"/></w:pBdr>\
<w:spacing w:after=\"160\"/><w:ind w:left=\"567\" w:right=\"284\"/>",
            "<w:i/><w:iCs/><w:color w:val=\"404040\"/>",
        ),
        (
            "VellumMeta",
            "Vellum Meta",
            "<w:keepNext/><w:spacing w:after=\"40\"/>",
            "<w:color w:val=\"595959\"/><w:sz w:val=\"18\"/><w:szCs w:val=\"18\"/>",
        ),
        (
            "VellumQuestion",
            "Vellum Question",
            "<w:spacing w:after=\"120\"/>",
            "<w:b/><w:bCs/>",
        ),
        (
            "VellumNote",
            "Vellum Note",
            "<w:keepNext/><w:spacing w:after=\"40\"/>",
            "<w:color w:val=\"7F3F00\"/><w:sz w:val=\"20\"/><w:szCs w:val=\"20\"/>",
        ),
        (
            "VellumNoteItem",
            "Vellum Note Item",
            "<w:spacing w:after=\"40\"/><w:ind w:left=\"567\" w:hanging=\"284\"/>",
            "<w:color w:val=\"7F3F00\"/><w:sz w:val=\"20\"/><w:szCs w:val=\"20\"/>",
        ),
        (
            "VellumClosing",
            "Vellum Closing",
            "<w:spacing w:before=\"360\"/>",
            "<w:i/><w:iCs/><w:color w:val=\"595959\"/><w:sz w:val=\"18\"/><w:szCs w:val=\"18\"/>",
        ),
        (
            "Footer",
            "footer",
            "<w:spacing w:after=\"0\"/>",
            "<w:color w:val=\"7F7F7F\"/><w:sz w:val=\"16\"/><w:szCs w:val=\"16\"/>",
        ),
    ];
    for (id, name, ppr, rpr) in styles {
        xml.push_str(&format!(
            "<w:style w:type=\"paragraph\" w:styleId=\"{id}\"><w:name w:val=\"{name}\"/>\
<w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr>{ppr}</w:pPr><w:rPr>{rpr}</w:rPr></w:style>"
        ));
    }
    xml.push_str("</w:styles>");
    xml
}

/// `text` escaped for XML character data and attribute values. Characters XML 1.0 cannot
/// carry at all (control characters other than tab and line breaks, U+FFFE, U+FFFF) become
/// U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_illegal_characters() {
        assert_eq!(
            escape("<a href=\"x\">Tom & Jerry's</a>\u{1}\u{FFFF}é"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;\u{FFFD}\u{FFFD}é"
        );
    }

    #[test]
    fn runs_turn_breaks_and_tabs_into_elements() {
        let mut xml = String::new();
        run(&mut xml, "a\tb\nc");
        assert_eq!(
            xml,
            "<w:r><w:t xml:space=\"preserve\">a</w:t><w:tab/><w:t xml:space=\"preserve\">b</w:t>\
<w:br/><w:t xml:space=\"preserve\">c</w:t></w:r>"
        );
    }
}
