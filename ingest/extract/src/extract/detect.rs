//! Format detection from content (magic bytes, container entries, text shape), never from the
//! file extension alone: a PDF renamed `.docx` is still read as a PDF.

use std::io::Cursor;

use crate::error::{Error, Result};
use crate::extract::{ccda, email, msg, text, Format};

/// How far into a file a PDF header may start (the PDF spec allows junk before `%PDF-`).
const PDF_HEADER_WINDOW: usize = 1024;
/// How much of a text file is looked at to tell e-mail, HTML, XML and plain text apart.
const TEXT_SNIFF_BYTES: usize = 64 * 1024;

const OLE2_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// What a zip container holds, as far as detection cares.
pub(crate) enum ZipKind {
    Docx,
    OpenDocument,
    Spreadsheet,
    Presentation,
    Other,
}

/// Detects the format from the bytes (content, not extension; the file name is only a hint to
/// tell Markdown from plain text).
///
/// Returns [`Error::Unsupported`] for binary junk, legacy Office files (OLE2), zips that are
/// not DOCX, images and other formats Vellum does not read, [`Error::Encrypted`] for
/// password-protected Office files and [`Error::NoText`] for empty files.
pub fn detect_format(bytes: &[u8], file_name: Option<&str>) -> Result<Format> {
    if bytes.iter().all(|byte| byte.is_ascii_whitespace()) {
        return Err(Error::NoText {
            reason: if bytes.is_empty() {
                "empty file (0 bytes)".to_string()
            } else {
                "the file contains only whitespace".to_string()
            },
        });
    }
    let head = bytes.get(..PDF_HEADER_WINDOW).unwrap_or(bytes);
    if find(head, b"%PDF-").is_some() {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(OLE2_MAGIC) {
        if msg::looks_like_msg(bytes) {
            return Ok(Format::OutlookMsg);
        }
        return Err(classify_ole2(bytes));
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return match zip_kind(bytes)? {
            ZipKind::Docx => Ok(Format::Docx),
            ZipKind::OpenDocument => Err(unsupported(
                "OpenDocument file (.odt/.ods/.odp) is not supported; save it as DOCX or PDF",
            )),
            ZipKind::Spreadsheet => Err(unsupported(
                "Excel spreadsheet (.xlsx) is not supported; save it as PDF",
            )),
            ZipKind::Presentation => Err(unsupported(
                "PowerPoint presentation (.pptx) is not supported; save it as PDF",
            )),
            ZipKind::Other => Err(unsupported("not a DOCX: zip without word/document.xml")),
        };
    }
    if let Some(reason) = known_binary_format(bytes) {
        return Err(unsupported(reason));
    }
    let sniffed = text::decode_text(bytes.get(..TEXT_SNIFF_BYTES).unwrap_or(bytes))?;
    let sniffed = sniffed.trim_start_matches('\u{feff}');
    if email::looks_like_email(sniffed) {
        return Ok(Format::Email);
    }
    if ccda::looks_like_ccda(sniffed) {
        return Ok(Format::Ccda);
    }
    if looks_like_html(sniffed) {
        return Ok(Format::Html);
    }
    let is_markdown = file_name.is_some_and(|name| {
        let lower = name.to_ascii_lowercase();
        lower.ends_with(".md") || lower.ends_with(".markdown")
    });
    Ok(if is_markdown {
        Format::Markdown
    } else {
        Format::Text
    })
}

fn unsupported(reason: &str) -> Error {
    Error::Unsupported {
        reason: reason.to_string(),
    }
}

/// Returns where `needle` first occurs in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Tells the reader what kind of OLE2 (Compound File) container this is. Encrypted OOXML files
/// (a password-protected .docx) are stored in OLE2 with an `EncryptionInfo` stream; legacy
/// Word files have a `WordDocument` stream. Stream names are UTF-16LE in the directory.
fn classify_ole2(bytes: &[u8]) -> Error {
    let has_stream = |name: &str| {
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        find(bytes, &utf16).is_some()
    };
    if has_stream("EncryptionInfo") || has_stream("EncryptedPackage") {
        Error::Encrypted {
            reason: "password-protected Office document (encrypted OOXML in an OLE2 container)"
                .to_string(),
        }
    } else if has_stream("WordDocument") {
        unsupported("legacy Word .doc is not supported; save it as DOCX or PDF")
    } else if has_stream("Workbook") || has_stream("Book") {
        unsupported("legacy Excel .xls is not supported; save it as PDF")
    } else if has_stream("PowerPoint Document") {
        unsupported("legacy PowerPoint .ppt is not supported; save it as PDF")
    } else {
        unsupported("legacy Microsoft Office or OLE2 file is not supported; save it as DOCX or PDF")
    }
}

/// Opens a zip and reports what it holds, without inflating anything.
pub(crate) fn zip_kind(bytes: &[u8]) -> Result<ZipKind> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|err| Error::Unsupported {
        reason: format!("damaged or unreadable zip archive: {err}"),
    })?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.replace('\\', "/").to_ascii_lowercase())
        .collect();
    let has = |wanted: &str| names.iter().any(|name| name == wanted);
    Ok(if has("word/document.xml") {
        ZipKind::Docx
    } else if has("mimetype") && names.iter().any(|name| name == "content.xml") {
        ZipKind::OpenDocument
    } else if has("xl/workbook.xml") {
        ZipKind::Spreadsheet
    } else if has("ppt/presentation.xml") {
        ZipKind::Presentation
    } else {
        ZipKind::Other
    })
}

/// Names well-known binary formats by their magic bytes, so the message says what the file is.
fn known_binary_format(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (
            b"\x89PNG\r\n\x1a\n",
            "PNG image: images are not supported (no OCR)",
        ),
        (
            b"\xFF\xD8\xFF",
            "JPEG image: images are not supported (no OCR)",
        ),
        (b"GIF87a", "GIF image: images are not supported"),
        (b"GIF89a", "GIF image: images are not supported"),
        (b"II*\x00", "TIFF image: images are not supported (no OCR)"),
        (b"MM\x00*", "TIFF image: images are not supported (no OCR)"),
        (
            b"\x00\x00\x00\x0CjP  ",
            "JPEG 2000 image: images are not supported",
        ),
        (
            b"{\\rtf",
            "RTF document is not supported; save it as DOCX or PDF",
        ),
        (
            b"\xFFWPC",
            "WordPerfect document is not supported; save it as DOCX or PDF",
        ),
        (
            b"\x1F\x8B",
            "gzip archive is not supported; unpack it first",
        ),
        (
            b"7z\xBC\xAF\x27\x1C",
            "7-Zip archive is not supported; unpack it first",
        ),
        (
            b"Rar!\x1A\x07",
            "RAR archive is not supported; unpack it first",
        ),
        (b"\x7FELF", "executable file (ELF) is not a document"),
        (b"MZ\x90\x00", "Windows executable is not a document"),
        (
            b"\x00\x01\x00\x00Standard Jet DB",
            "Microsoft Access database is not supported",
        ),
        (
            b"\x00\x01\x00\x00Standard ACE DB",
            "Microsoft Access database is not supported",
        ),
        (b"SQLite format 3\x00", "SQLite database is not a document"),
        (b"AT&TFORM", "DjVu document is not supported"),
        (b"\x97JB2\r\n\x1A\n", "JBIG2 image is not supported"),
    ];
    SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, reason)| *reason)
}

/// Tells HTML from other text: a doctype or an `<html>`, `<head>` or `<body>` tag near the
/// start. XHTML (an XML declaration followed by an XHTML root) counts as HTML.
fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start();
    if !start.starts_with('<') {
        return false;
    }
    let head: String = start
        .chars()
        .take(4096)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || head.contains("<html")
        || (head.contains("<head") && head.contains("<body"))
        || head.contains("<head>")
        || head.contains("<body")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_of(result: Result<Format>) -> String {
        match result {
            Err(Error::Unsupported { reason }) => reason,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[test]
    fn pdf_header_may_follow_junk() {
        assert_eq!(
            detect_format(b"\r\n%PDF-1.4\n...", Some("a.docx")).ok(),
            Some(Format::Pdf)
        );
    }

    #[test]
    fn markdown_only_by_name() {
        assert_eq!(
            detect_format(b"# Title\n\nbody", Some("README.md")).ok(),
            Some(Format::Markdown)
        );
        assert_eq!(
            detect_format(b"# Title\n\nbody", Some("README.txt")).ok(),
            Some(Format::Text)
        );
    }

    #[test]
    fn html_is_detected_by_content() {
        let html = b"\n<!DOCTYPE html><html><body><p>x</p></body></html>";
        assert_eq!(detect_format(html, Some("a.eml")).ok(), Some(Format::Html));
    }

    #[test]
    fn email_is_detected_by_headers() {
        let mail = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody";
        assert_eq!(detect_format(mail, None).ok(), Some(Format::Email));
        let not_mail = b"Note: this is plain text\nwith a colon in its first line\n";
        assert_eq!(detect_format(not_mail, None).ok(), Some(Format::Text));
    }

    #[test]
    fn images_and_executables_are_named() {
        assert!(
            reason_of(detect_format(b"\x89PNG\r\n\x1a\n\0\0\0", Some("x.txt"))).contains("PNG")
        );
        assert!(reason_of(detect_format(b"\x7FELF\x02\x01", None)).contains("ELF"));
    }

    #[test]
    fn binary_junk_is_refused() {
        let junk: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
        assert!(reason_of(detect_format(&junk, None)).contains("binary"));
    }

    #[test]
    fn ole2_without_word_stream_is_unsupported() {
        let mut bytes = OLE2_MAGIC.to_vec();
        bytes.extend_from_slice(&[0u8; 512]);
        assert!(reason_of(detect_format(&bytes, Some("x.doc"))).contains("OLE2"));
    }

    #[test]
    fn empty_file_has_no_text() {
        assert!(matches!(
            detect_format(b"", Some("empty.pdf")),
            Err(Error::NoText { .. })
        ));
    }
}
