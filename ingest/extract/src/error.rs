//! Errors of extraction: what is wrong with a file, said so that a person can act on it.

use crate::extract::Format;

/// Result with the ingest crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a file could not be turned into text. Every variant is the file's fault (or a parser's
/// bug triggered by the file), never the caller's; messages are lowercase and meant to be
/// printed after the file's path.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Error {
    /// The file is of a kind Vellum does not read (binary, legacy .doc, a zip that is no DOCX...).
    #[error("unsupported format: {reason}")]
    Unsupported {
        /// What the file is and, where there is one, what to do instead.
        reason: String,
    },
    /// The file claims a supported format but its structure is broken.
    #[error("malformed {format}: {reason}")]
    Malformed {
        /// The format the file was detected as.
        format: Format,
        /// What the parser found wrong.
        reason: String,
    },
    /// The file, or what it unpacks to, is above a configured limit.
    #[error("too large: {reason}")]
    TooLarge {
        /// Which limit was hit, with the numbers.
        reason: String,
    },
    /// The file is password-protected.
    #[error("encrypted: {reason}")]
    Encrypted {
        /// What kind of protection was found.
        reason: String,
    },
    /// The file parsed but holds no extractable text (for example a scan without a text layer).
    #[error("no text: {reason}")]
    NoText {
        /// Why there is no text and what would help.
        reason: String,
    },
    /// A third-party parser panicked on this file; the panic was caught.
    #[error("{format} parser crashed: {message}")]
    Panicked {
        /// The format whose parser crashed.
        format: Format,
        /// The panic message.
        message: String,
    },
    /// A scanned document: images of pages without a text layer.
    #[error("needs OCR: {reason}")]
    NeedsOcr {
        /// What was found and what to do.
        reason: String,
    },
    /// Extraction did not finish in time (wall clock or CPU) and its worker was killed.
    #[error("timeout after {seconds} s: the file made the parser run too long")]
    Timeout {
        /// The limit that was hit, in seconds.
        seconds: f64,
    },
    /// The parser's worker process died (stack overflow, abort, signal); the caller survived.
    #[error("parser crashed: {reason}")]
    Crashed {
        /// How the worker died.
        reason: String,
    },
}

impl Error {
    /// A short, stable category for reports and the quarantine (`encrypted`, `no_text`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unsupported { .. } => "unsupported",
            Error::Malformed { .. } => "malformed",
            Error::TooLarge { .. } => "too_large",
            Error::Encrypted { .. } => "encrypted",
            Error::NoText { .. } => "no_text",
            Error::NeedsOcr { .. } => "needs_ocr",
            Error::Panicked { .. } => "panicked",
            Error::Timeout { .. } => "timeout",
            Error::Crashed { .. } => "crashed",
        }
    }
}
