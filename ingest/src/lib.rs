//! vellum-ingest: turns files into page texts and page-bound chunks ready for indexing.
//!
//! [`extract`] detects a file's format from its bytes (PDF, DOCX, HTML, e-mail, plain text,
//! Markdown) and returns an [`extract::ExtractedDocument`]: one text per page plus a title and
//! metadata. [`chunk`] splits those pages into overlapping [`chunk::Chunk`]s that never cross a
//! page boundary, so every chunk can be cited by page number. Neither module touches the store,
//! the models or the network; both treat their input as hostile (size limits, no panics escape).
//! [`pipeline`] walks folders, skips unchanged files, embeds chunks in batches and commits
//! them to the store.
//!
//! ```
//! use vellum_ingest::{chunk, extract};
//!
//! let doc = extract::extract(b"First page.\x0cSecond page.", Some("notes.txt")).unwrap();
//! assert_eq!(doc.pages.len(), 2);
//! let chunks = chunk::chunk_pages(&doc.pages, &chunk::ChunkOptions::default());
//! assert_eq!(chunks[1].page, 2);
//! ```

pub mod chunk;
mod error;
pub mod extract;
pub mod pipeline;

pub use error::{Error, Result};
