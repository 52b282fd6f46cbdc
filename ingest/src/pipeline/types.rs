//! What the pipeline takes and reports: options, outcomes, events, summaries, errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::chunk::ChunkOptions;
use crate::extract::{ExtractLimits, PdfPasswords};
use crate::isolate::{Sandbox, SandboxError};
use crate::ocr::OcrOptions;

/// Errors that stop an ingest run (a bad file does not: it is reported and skipped).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] vellum_store::Error),
    /// The embedder failed.
    #[error(transparent)]
    Model(#[from] vellum_models::Error),
    /// The extraction sandbox does not work (not a file's fault): nothing more can be done.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A folder given to ingest cannot be read.
    #[error("cannot read {path}: {reason}")]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Embeds passages for the pipeline. Implemented by the real embedder; tests may stub it.
pub trait PassageEmbedder: Sync {
    /// Returns one L2-normalised vector per text, in order.
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, vellum_models::Error>;
    /// Returns the number of model tokens of `text` (no special tokens).
    fn count_tokens(&self, text: &str) -> usize;
    /// Returns the model's window in tokens, special tokens included.
    fn max_tokens(&self) -> usize;
}

impl PassageEmbedder for vellum_models::Embedder {
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, vellum_models::Error> {
        self.embed(texts)
    }
    fn count_tokens(&self, text: &str) -> usize {
        // A text the tokenizer cannot encode counts as too long, so the chunker splits it.
        vellum_models::Embedder::count_tokens(self, text).unwrap_or(usize::MAX)
    }
    fn max_tokens(&self) -> usize {
        vellum_models::Embedder::max_tokens(self)
    }
}

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The collection the documents go into.
    pub collection: String,
    /// Chunk sizes.
    pub chunk: ChunkOptions,
    /// Size limits for extraction.
    pub limits: ExtractLimits,
    /// Files extracted, embedded and committed together.
    pub batch_files: usize,
    /// Delete documents of this collection under the given folders whose files are gone.
    pub prune: bool,
    /// Where untrusted files are parsed. `None` parses in this process (panics are still
    /// caught, but a hang or a crash is not contained): only for trusted input.
    pub sandbox: Option<Sandbox>,
    /// Extract quarantined files again even if they have not changed (after raising a limit,
    /// say). Otherwise an unchanged quarantined file is skipped.
    pub retry_quarantined: bool,
    /// Passwords tried on encrypted PDFs.
    pub pdf_passwords: PdfPasswords,
    /// OCR scanned PDFs (no text layer) instead of quarantining them.
    pub ocr: Option<OcrOptions>,
    /// Access labels given to every document of the run (e.g. `privileged`, `phi`); they
    /// become part of each chunk's scope in both indexes. Normalised like
    /// [`vellum_store::normalize_labels`]; an invalid label stops the run before any file is
    /// read. A stored, unchanged file with other labels is indexed again under the new ones.
    pub labels: Vec<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            collection: "default".into(),
            chunk: ChunkOptions::default(),
            limits: ExtractLimits::default(),
            batch_files: 32,
            prune: false,
            sandbox: None,
            retry_quarantined: false,
            pdf_passwords: PdfPasswords::default(),
            ocr: None,
            labels: Vec::new(),
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum FileOutcome {
    /// New document indexed.
    Indexed {
        /// Pages extracted.
        num_pages: u32,
        /// Chunks indexed.
        num_chunks: u32,
    },
    /// A changed file replaced its older version.
    Replaced {
        /// Pages extracted.
        num_pages: u32,
        /// Chunks indexed.
        num_chunks: u32,
    },
    /// Same content as the stored version: nothing done.
    Unchanged,
    /// Not indexed: recorded in the quarantine with the reason.
    Quarantined {
        /// A short category (`encrypted`, `no_text`, `timeout`, `crashed`, ...).
        kind: String,
        /// Why, in words a person understands.
        reason: String,
    },
    /// Quarantined earlier and unchanged since: not tried again.
    StillQuarantined {
        /// The category recorded then.
        kind: String,
        /// The reason recorded then.
        reason: String,
    },
}

/// A file that was not indexed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuarantinedFile {
    /// Its path.
    pub path: String,
    /// A short category (`encrypted`, `no_text`, `unreadable`, `timeout`, ...).
    pub kind: String,
    /// Why, in words a person understands.
    pub reason: String,
}

/// Progress events, in order: one `Started`, then `FileDone` per file.
#[derive(Debug, Clone)]
pub enum IngestEvent<'a> {
    /// Work is known.
    Started {
        /// Files (or text documents) to process.
        num_files: usize,
    },
    /// One file finished.
    FileDone {
        /// Its source path.
        path: &'a str,
        /// What happened.
        outcome: &'a FileOutcome,
    },
}

/// The summary printed at the end of an ingest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    /// Files looked at.
    pub num_files: usize,
    /// New documents indexed.
    pub num_indexed: usize,
    /// Changed documents replaced.
    pub num_replaced: usize,
    /// Unchanged documents skipped.
    pub num_unchanged: usize,
    /// Documents deleted because their file is gone (`prune`).
    pub num_pruned: usize,
    /// Pages extracted from indexed documents.
    pub num_pages: u64,
    /// Chunks indexed.
    pub num_chunks: u64,
    /// Files quarantined by this run, with their reasons.
    pub quarantined: Vec<QuarantinedFile>,
    /// Files quarantined by an earlier run and unchanged since (not tried again).
    pub num_still_quarantined: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A document whose text is already known (e.g. a BEIR corpus record).
#[derive(Debug, Clone)]
pub struct TextDocument {
    /// Identity within the collection (a path, or a corpus id).
    pub source_path: String,
    /// Title, may be empty.
    pub title: String,
    /// Text per page.
    pub pages: Vec<String>,
    /// Format name stored in the catalog.
    pub format: String,
    /// Extra metadata.
    pub metadata: BTreeMap<String, String>,
}

impl PipelineError {
    /// The caller's view of this failure.
    pub fn kind(&self) -> vellum_errorkind::ErrorKind {
        use vellum_errorkind::ErrorKind;
        match self {
            PipelineError::Store(error) => error.kind(),
            PipelineError::Model(error) => error.kind(),
            // The sandbox does not work on this machine: not the file's fault, nor the caller's.
            PipelineError::Sandbox(_) => ErrorKind::Unavailable,
            PipelineError::Path { .. } => ErrorKind::Invalid,
        }
    }
}
