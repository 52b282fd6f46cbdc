//! Extract first, then write: summaries whose every line is a verbatim quote of the document
//! with its page.
//!
//! A model summary of a contract or a patient record can invent a clause or a medication; a
//! quote cannot. This crate finds the facts a reader acts on (a contract's parties, dates,
//! governing law and CUAD's clause categories; a patient's problems, medications, allergies,
//! results; an e-mail thread's messages; a court filing's court, parties and docket) and
//! quotes them from the document's indexed passages. Each [`Item`]'s `quote` is an exact
//! substring of one passage's text, and carries that passage's page and chunk id, so it can be
//! checked and audited as a read of that chunk. A model may later turn the items into prose
//! (vellum-rag), but never adds an item.
//!
//! The crate is pure: text in, items out. It imports no Vellum crate, so the rules can be
//! tested and measured on real files without a store or a model.

pub mod clinical;
pub mod contract;
mod detect;
pub mod email;
pub mod filing;
pub mod general;
pub mod text;

use serde::{Deserialize, Serialize};

pub use detect::detect_kind;

/// One indexed passage of the document (a chunk: it never crosses a page boundary).
#[derive(Debug, Clone, Copy)]
pub struct Passage<'a> {
    /// The chunk's id, recorded in the audit log as a read when the chunk is quoted.
    pub chunk_id: &'a str,
    /// Position in the document, from 0.
    pub ordinal: u32,
    /// The page the passage is on, from 1.
    pub page: u32,
    /// The passage's text (whitespace already normalised to single spaces).
    pub text: &'a str,
}

/// What the document is, which decides what the summary looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An agreement: parties, dates, governing law and CUAD's clause categories.
    Contract,
    /// A patient record: problems, medications, allergies, results, vitals, procedures,
    /// immunizations, encounters.
    Clinical,
    /// An e-mail or thread: who said what when, attachments.
    Email,
    /// A court filing: court, parties, docket number, what is asked or ordered, deadlines.
    Filing,
    /// Anything else: key points with quotes and pages.
    General,
}

impl Kind {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Contract => "contract",
            Kind::Clinical => "clinical",
            Kind::Email => "email",
            Kind::Filing => "filing",
            Kind::General => "general",
        }
    }

    /// Parses a name given by a user (`contract`, `clinical`, `email`, `filing`, `general`).
    pub fn parse(name: &str) -> Option<Kind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "contract" => Some(Kind::Contract),
            "clinical" => Some(Kind::Clinical),
            "email" | "e-mail" => Some(Kind::Email),
            "filing" => Some(Kind::Filing),
            "general" => Some(Kind::General),
            _ => None,
        }
    }
}

/// Whether a section was found in the document. A section searched for and not found is
/// listed too: a reader needs to know the search was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Found: `quote`, `page` and `chunk_id` are set.
    Found,
    /// Searched for and not found: `quote`, `page` and `chunk_id` are empty.
    NotFound,
}

/// One line of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What the line is about: a CUAD category exactly as CUAD's column headers spell it
    /// (`Change Of Control`, `Governing Law`, ...), or a clinical heading (`Medications`), ...
    pub section: String,
    /// Found or not.
    pub status: Status,
    /// The verbatim quote: an exact substring of the passage `chunk_id`'s text.
    pub quote: Option<String>,
    /// The page the quote is on.
    pub page: Option<u32>,
    /// The chunk quoted.
    pub chunk_id: Option<String>,
    /// The plain reading: what the quote means, in one line (a normalised value for structured
    /// fields, e.g. the governing law's jurisdiction or a date).
    pub text: String,
}

impl Item {
    /// A found item quoting `quote` from `passage`. `quote` must be a substring of the
    /// passage's text (checked in debug builds; the callers take it from the passage).
    pub fn found(section: &str, passage: &Passage<'_>, quote: &str, text: String) -> Item {
        debug_assert!(passage.text.contains(quote), "quote not in passage");
        Item {
            section: section.to_string(),
            status: Status::Found,
            quote: Some(quote.to_string()),
            page: Some(passage.page),
            chunk_id: Some(passage.chunk_id.to_string()),
            text,
        }
    }

    /// A section searched for and not found.
    pub fn not_found(section: &str, text: String) -> Item {
        Item {
            section: section.to_string(),
            status: Status::NotFound,
            quote: None,
            page: None,
            chunk_id: None,
            text,
        }
    }
}

/// The document as the summarizers see it.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a> {
    /// Its title (may be empty).
    pub title: &'a str,
    /// The format ingest detected: `pdf`, `docx`, `html`, `email`, `ccda`, `text`, ...
    pub format: &'a str,
    /// Its passages in document order.
    pub passages: &'a [Passage<'a>],
    /// The original file's bytes where the summarizer may use them (a C-CDA's coded entries),
    /// already checked by the caller to be the ingested version (same SHA-256).
    pub original: Option<&'a [u8]>,
}

/// The items of a summary of `kind` for `document`.
pub fn summarize(document: &Document<'_>, kind: Kind) -> Vec<Item> {
    match kind {
        Kind::Contract => contract::brief(document),
        Kind::Clinical => clinical::summary(document),
        Kind::Email => email::summary(document),
        Kind::Filing => filing::summary(document),
        Kind::General => general::summary(document),
    }
}
