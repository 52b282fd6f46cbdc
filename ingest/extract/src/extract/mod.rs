//! Text extraction: detects a file's format from its bytes and returns its text page by page.
//!
//! Every parser runs behind [`std::panic::catch_unwind`], so a third-party parser that panics on
//! a hostile file yields [`Error::Panicked`] instead of taking the process down. Extraction does
//! not time out by itself: a file that makes a parser loop must be isolated by the caller (for
//! example in a subprocess).

mod ccda;
mod detect;
mod docx;
mod email;
mod html;
mod msg;
mod pdf;
mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use detect::detect_format;

/// A document format Vellum can extract text from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Portable Document Format, one text per page.
    Pdf,
    /// Office Open XML word-processing document (.docx, .docm, .dotx).
    Docx,
    /// An HTML page (main content only).
    Html,
    /// An RFC 5322 e-mail message (.eml).
    Email,
    /// An HL7 C-CDA clinical document (XML): the narrative of each section.
    Ccda,
    /// An Outlook message (.msg), attachments included.
    OutlookMsg,
    /// Plain text (UTF-8, UTF-16 with BOM or Windows-1252); also XML, reduced to its text.
    Text,
    /// Markdown, told from plain text by its file name.
    Markdown,
}

impl Format {
    /// Returns the lowercase name used in JSON and the catalog (`"pdf"`, `"email"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Html => "html",
            Format::Email => "email",
            Format::Ccda => "ccda",
            Format::OutlookMsg => "msg",
            Format::Text => "text",
            Format::Markdown => "markdown",
        }
    }

    /// Returns the name a person knows the format by, for messages.
    fn display_name(&self) -> &'static str {
        match self {
            Format::Pdf => "PDF",
            Format::Docx => "DOCX",
            Format::Html => "HTML",
            Format::Email => "e-mail",
            Format::Ccda => "C-CDA clinical document",
            Format::OutlookMsg => "Outlook message",
            Format::Text => "text",
            Format::Markdown => "Markdown",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.display_name())
    }
}

/// The text of one document, page by page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractedDocument {
    /// The detected format.
    pub format: Format,
    /// The document's title where the file names one (PDF info, DOCX core properties, HTML
    /// `<title>`, e-mail subject, Markdown's first heading).
    pub title: Option<String>,
    /// Page texts: page 1 is `pages[0]`. Formats without pages give one page (e-mail: the body,
    /// then one page per text attachment). Lines are separated by `\n`, paragraphs by a blank line.
    pub pages: Vec<String>,
    /// Further facts from the file, e.g. `from`/`to`/`subject`/`date` for e-mail, `author` for
    /// DOCX and PDF.
    pub metadata: BTreeMap<String, String>,
}

/// Bounds that keep a hostile file from exhausting memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractLimits {
    /// Largest input accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most pages a document may have (PDF pages, DOCX page breaks, form feeds, attachments).
    pub max_pages: usize,
    /// Most bytes all entries read from a zip container (DOCX) may inflate to, together.
    pub max_zip_uncompressed_bytes: u64,
    /// Most entries a zip container may list.
    pub max_zip_entries: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_file_bytes: 200 * 1024 * 1024,
            max_pages: 5000,
            max_zip_uncompressed_bytes: 512 * 1024 * 1024,
            max_zip_entries: 10_000,
        }
    }
}

/// Extracts the text of a file with the default [`ExtractLimits`].
///
/// The format is detected from the bytes; `file_name` only tells Markdown from plain text.
/// Panics inside a parser are caught and returned as [`Error::Panicked`].
pub fn extract(bytes: &[u8], file_name: Option<&str>) -> Result<ExtractedDocument> {
    extract_with_limits(bytes, file_name, &ExtractLimits::default())
}

/// Stack for the extraction thread. The parsers recurse (pdf-extract once per nested form
/// XObject, lopdf per nested object); a stack overflow aborts the whole process, which
/// `catch_unwind` cannot stop, so extraction never runs on a small worker-thread stack.
const EXTRACT_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Extracts the text of a file, refusing inputs above `limits`.
///
/// Runs on its own thread with a large stack (see `EXTRACT_STACK_BYTES`), whatever thread
/// calls it.
pub fn extract_with_limits(
    bytes: &[u8],
    file_name: Option<&str>,
    limits: &ExtractLimits,
) -> Result<ExtractedDocument> {
    extract_with_passwords(bytes, file_name, limits, &PdfPasswords::default())
}

/// Passwords tried, in order, on a PDF that does not open with the empty user password. Its
/// `Debug` output names only how many there are, so a log never shows one.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfPasswords(pub Vec<String>);

impl fmt::Debug for PdfPasswords {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PdfPasswords({} redacted)", self.0.len())
    }
}

impl PdfPasswords {
    /// Reads one password per line (line endings stripped, nothing else; empty lines skipped).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<PdfPasswords> {
        let text = std::fs::read_to_string(path)?;
        Ok(PdfPasswords(
            text.lines()
                .map(|line| line.strip_suffix('\r').unwrap_or(line))
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect(),
        ))
    }

    /// True if there is no password to try.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// [`extract_with_limits`], trying `passwords` on encrypted PDFs.
pub fn extract_with_passwords(
    bytes: &[u8],
    file_name: Option<&str>,
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
) -> Result<ExtractedDocument> {
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("vellum-extract".to_string())
            .stack_size(EXTRACT_STACK_BYTES)
            .spawn_scoped(scope, || {
                extract_on_this_thread(bytes, file_name, limits, passwords)
            });
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|payload| {
                Err(Error::Panicked {
                    format: Format::Text,
                    message: panic_message(payload.as_ref()),
                })
            }),
            // No thread to be had (resource limits): extract here rather than fail.
            Err(_) => extract_on_this_thread(bytes, file_name, limits, passwords),
        }
    })
}

/// Extracts `bytes` as the given format, skipping detection, on the calling thread (panics
/// caught as in [`extract_with_limits`], but on the caller's stack). For fuzz targets that
/// aim at one parser; everything else should call [`extract_with_limits`].
pub fn extract_as(
    bytes: &[u8],
    format: Format,
    limits: &ExtractLimits,
) -> Result<ExtractedDocument> {
    extract_format(bytes, format, limits, &PdfPasswords::default())
}

fn extract_on_this_thread(
    bytes: &[u8],
    file_name: Option<&str>,
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
) -> Result<ExtractedDocument> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Error::TooLarge {
            reason: format!(
                "file has {} bytes, the limit is {}",
                bytes.len(),
                limits.max_file_bytes
            ),
        });
    }
    let format = match catch_unwind(AssertUnwindSafe(|| detect_format(bytes, file_name))) {
        Ok(detected) => detected?,
        Err(payload) => {
            return Err(Error::Unsupported {
                reason: format!(
                    "format detection crashed: {}",
                    panic_message(payload.as_ref())
                ),
            })
        }
    };
    extract_format(bytes, format, limits, passwords)
}

fn extract_format(
    bytes: &[u8],
    format: Format,
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
) -> Result<ExtractedDocument> {
    let extracted = catch_unwind(AssertUnwindSafe(|| match format {
        Format::Pdf => pdf::extract_pdf(bytes, limits, passwords),
        Format::Docx => docx::extract_docx(bytes, limits),
        Format::Html => html::extract_html(bytes),
        Format::Email => email::extract_email(bytes, limits),
        Format::Ccda => ccda::extract_ccda(bytes, limits),
        Format::OutlookMsg => msg::extract_msg(bytes, limits, passwords),
        Format::Text | Format::Markdown => text::extract_text(bytes, format, limits),
    }));
    let mut document = match extracted {
        Ok(result) => result?,
        Err(payload) => {
            return Err(Error::Panicked {
                format,
                message: panic_message(payload.as_ref()),
            })
        }
    };
    if document.pages.len() > limits.max_pages {
        return Err(too_many_pages(format, document.pages.len(), limits));
    }
    for page in &mut document.pages {
        *page = normalize_page_text(page);
    }
    document.title = document
        .title
        .map(|title| title.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|title| !title.is_empty());
    if document.pages.iter().all(|page| page.is_empty()) {
        return Err(match format {
            Format::Pdf => Error::NeedsOcr {
                reason: "scanned PDF: no text layer, needs OCR (ingest with --ocr, which needs Tesseract)".to_string(),
            },
            other => Error::NoText {
                reason: format!("the {other} file contains no text"),
            },
        });
    }
    Ok(document)
}

/// Builds the error for a document with more pages than allowed.
fn too_many_pages(format: Format, num_pages: usize, limits: &ExtractLimits) -> Error {
    Error::TooLarge {
        reason: format!(
            "{format} has {num_pages} pages, the limit is {}",
            limits.max_pages
        ),
    }
}

/// Returns the message of a caught panic (`panic!` payloads are `&str` or `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic without a message".to_string()
    }
}

/// Cleans one page of extracted text: `\r\n` and `\r` become `\n`, control characters go,
/// runs of spaces and tabs inside a line become one space, lines are trimmed, and runs of blank
/// lines become one blank line (a paragraph break the chunker can see).
pub(crate) fn normalize_page_text(raw: &str) -> String {
    let mut normalized = String::with_capacity(raw.len());
    let mut pending_blank_line = false;
    let unified = raw.replace("\r\n", "\n").replace('\r', "\n");
    for line in unified.split('\n') {
        let mut cleaned_line = String::with_capacity(line.len());
        for word in line
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|word| !word.is_empty())
        {
            if !cleaned_line.is_empty() {
                cleaned_line.push(' ');
            }
            cleaned_line.push_str(word);
        }
        if cleaned_line.is_empty() {
            pending_blank_line = !normalized.is_empty();
            continue;
        }
        if !normalized.is_empty() {
            normalized.push('\n');
            if pending_blank_line {
                normalized.push('\n');
            }
        }
        pending_blank_line = false;
        normalized.push_str(&cleaned_line);
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_paragraph_breaks_and_drops_controls() {
        let raw = "  Hello \t world\r\n\r\n\r\n\u{0}Next\u{7} para  \rline three\n\n";
        assert_eq!(
            normalize_page_text(raw),
            "Hello world\n\nNext para\nline three"
        );
    }

    #[test]
    fn normalize_of_blank_page_is_empty() {
        assert_eq!(normalize_page_text(" \n\t\n \u{c} "), "");
    }

    #[test]
    fn format_names_are_stable() {
        assert_eq!(Format::Email.as_str(), "email");
        assert_eq!(
            serde_json::to_string(&Format::Markdown).ok().as_deref(),
            Some("\"markdown\"")
        );
        assert_eq!(Format::Docx.to_string(), "DOCX");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let limits = ExtractLimits {
            max_file_bytes: 4,
            ..ExtractLimits::default()
        };
        let result = extract_with_limits(b"hello world", None, &limits);
        assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
    }
}
