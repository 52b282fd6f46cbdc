//! vellum-ingest: walks folders, skips unchanged files, extracts (in isolated worker
//! processes), chunks, embeds in batches and commits to the store.
//!
//! Extraction and chunking live in `vellum-extract` and are re-exported here.

pub mod pipeline;
pub mod watch;

pub use vellum_extract::{chunk, extract, isolate, ocr, Error, Result};
