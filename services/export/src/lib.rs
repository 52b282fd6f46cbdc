//! Exports an answered conversation to DOCX and PDF, keeping each answer's citations: the
//! `[n]` markers in the answer text and, under "Sources", each numbered source's document,
//! page and verbatim quote, cited ones first.
//!
//! Both formats carry the same text (see `outline`): a heading with the title, who exported it
//! and when, and the collections; per turn the question, the answer, the sources and a note of
//! the answer's uncited sentences and invalid citation markers when there are any; and the
//! closing line "Exported from Vellum. Quotes are verbatim from the indexed text."
//!
//! * [`to_docx`] writes a minimal WordprocessingML package; every piece of text is XML-escaped
//!   and characters XML cannot carry (control characters) become U+FFFD. All other Unicode
//!   is kept.
//! * [`to_pdf`] writes A4 pages set in the standard Helvetica faces (nothing embedded), wrapped
//!   by Helvetica's glyph widths, with page breaks and "Page i of n" footers. Those fonts only
//!   cover WinAnsi (Latin-1 plus typographic marks): any other character is shown as `?`, and
//!   the PDF then ends with a note saying so and pointing to the DOCX, which keeps the text.
//!
//! Both functions are pure (no I/O, no clock) and deterministic: the same conversation gives
//! the same bytes.

mod docx;
mod outline;
mod pdf;
mod winansi;

use serde::{Deserialize, Serialize};
use vellum_errorkind::ErrorKind;

/// The media type of [`to_docx`]'s output.
pub const DOCX_CONTENT_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// The media type of [`to_pdf`]'s output.
pub const PDF_CONTENT_TYPE: &str = "application/pdf";

/// A conversation to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedConversation {
    /// The conversation's title (empty: "Conversation").
    pub title: String,
    /// Who is exporting it.
    pub user: String,
    /// When, as the caller wants it shown.
    pub exported_at: String,
    /// The collections it searched.
    pub collections: Vec<String>,
    /// Its questions and answers, in order.
    pub turns: Vec<ExportedTurn>,
}

/// One question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedTurn {
    /// The question as asked.
    pub question: String,
    /// When it was asked, as the caller wants it shown (empty: not shown).
    pub asked_at: String,
    /// The answer, with its `[n]` citation markers; blank lines separate paragraphs.
    pub answer: String,
    /// The numbered sources the model was given.
    pub sources: Vec<ExportedSource>,
    /// Sentences of the answer that cite no source.
    pub uncited_sentences: Vec<String>,
    /// Citation markers that pointed to no source, as written (e.g. `[9]`).
    pub invalid_citations: Vec<String>,
}

/// A numbered source given to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedSource {
    /// The number the answer cites it by (`[n]`).
    pub n: usize,
    /// Its document's title (empty: "Untitled document").
    pub document_title: String,
    /// Its document's id.
    pub document_id: String,
    /// The page the quote is on, from 1.
    pub page: u32,
    /// The quote, verbatim from the indexed text.
    pub quote: String,
    /// Whether the answer cites it.
    pub cited: bool,
}

/// Why an export failed. Both formats are built in memory, so only the zip writer can fail,
/// and only on a bug.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing the DOCX package failed.
    #[error("writing the DOCX package: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// Writing to the in-memory buffer failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

impl ExportError {
    /// The kind of failure, for the caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExportError::Zip(_) | ExportError::Io(_) => ErrorKind::Internal,
        }
    }
}

/// The conversation as a DOCX (WordprocessingML) file.
pub fn to_docx(conversation: &ExportedConversation) -> Result<Vec<u8>, ExportError> {
    docx::write(conversation)
}

/// The conversation as a PDF file (A4, standard Helvetica; see the crate documentation for
/// the characters it cannot show).
pub fn to_pdf(conversation: &ExportedConversation) -> Result<Vec<u8>, ExportError> {
    Ok(pdf::write(conversation))
}
