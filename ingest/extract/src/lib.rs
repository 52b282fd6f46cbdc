//! vellum-extract: turns file bytes into page texts and page-bound chunks.
//!
//! [`extract`] detects a file's format from its bytes (PDF, DOCX, HTML, e-mail, plain text,
//! Markdown) and returns an [`extract::ExtractedDocument`]: one text per page plus a title and
//! metadata. [`chunk`] splits those pages into overlapping [`chunk::Chunk`]s that never cross a
//! page boundary, so every chunk can be cited by page number. [`isolate`] runs extraction in a
//! child process with CPU, memory and wall-clock limits, so a parser that hangs, overflows its
//! stack or aborts cannot take the caller down, and with an empty environment, Landlock and a
//! seccomp filter, so a parser exploited by a hostile file cannot read, change or send anything
//! ([`isolate::sandbox_support`] says what the running kernel enforces).
//!
//! This crate touches no store, model or network, and it is the only code that parses
//! untrusted files: that is why it stands alone (the fuzz targets in `fuzz/` build only it).
//!
//! ```
//! use vellum_extract::{chunk, extract};
//!
//! let doc = extract::extract(b"First page.\x0cSecond page.", Some("notes.txt")).unwrap();
//! assert_eq!(doc.pages.len(), 2);
//! let chunks = chunk::chunk_pages(&doc.pages, &chunk::ChunkOptions::default());
//! assert_eq!(chunks[1].page, 2);
//! ```

pub mod chunk;
mod error;
pub mod extract;
pub mod isolate;
pub mod ocr;

pub use error::{Error, Result};
