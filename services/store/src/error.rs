//! The store's error type and the small set of kinds callers branch on.

use std::path::PathBuf;

use crate::types::DocumentId;

/// Result alias used throughout `vellum-store`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use vellum_errorkind::ErrorKind;

/// Errors returned by [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request argument was rejected before anything was written.
    #[error("invalid input: {detail}")]
    InvalidInput {
        /// What was wrong, in words.
        detail: String,
    },

    /// A document in a batch was rejected before anything was written.
    #[error("invalid document {id}: {detail}")]
    InvalidDocument {
        /// The offending document.
        id: DocumentId,
        /// What was wrong, in words.
        detail: String,
    },

    /// An access label is not acceptable.
    #[error("invalid label {label:?}: {detail}")]
    InvalidLabel {
        /// The label, trimmed and lowercased.
        label: String,
        /// What is wrong with it.
        detail: String,
    },

    /// No document with this id is stored.
    #[error("document {id} not found")]
    DocumentNotFound {
        /// The id that was looked up.
        id: DocumentId,
    },

    /// The catalog was built with another embedding model or dimension.
    #[error(
        "catalog {path} was built with embedding model {recorded_model:?} (dimension \
         {recorded_dim}) but {requested_model:?} (dimension {requested_dim}) was requested; \
         re-ingest needed (use a new data directory or delete this one)"
    )]
    EmbeddingMismatch {
        /// The catalog file.
        path: PathBuf,
        /// Model recorded when the store was created.
        recorded_model: String,
        /// Dimension recorded when the store was created.
        recorded_dim: usize,
        /// Model asked for now.
        requested_model: String,
        /// Dimension asked for now.
        requested_dim: usize,
    },

    /// A collection's vectors were made by another embedder than the store was opened with
    /// (or their re-embed did not finish): comparing them with this embedder's is refused.
    #[error("{detail}")]
    CollectionEmbedder {
        /// The collection.
        collection: String,
        /// What was recorded and what to do.
        detail: String,
    },

    /// The vector table on disk has another vector dimension than requested.
    #[error(
        "vector table {path} stores vectors of dimension {table_dim} but dimension \
         {requested_dim} was requested; re-ingest needed"
    )]
    VectorDimensionMismatch {
        /// The LanceDB directory.
        path: PathBuf,
        /// Dimension of the existing table's vector column.
        table_dim: usize,
        /// Dimension asked for now.
        requested_dim: usize,
    },

    /// Another process (or another `Store` in this one) holds the full-text index writer.
    #[error("full-text index {path} is locked by another writer")]
    FulltextLocked {
        /// The Tantivy index directory.
        path: PathBuf,
    },

    /// A directory of the data dir could not be created or opened.
    #[error("cannot prepare data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// SQLite failed.
    #[error("catalog {path}: {operation} failed")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// What we were doing.
        operation: &'static str,
        /// The SQLite failure.
        #[source]
        source: rusqlite::Error,
    },

    /// The catalog holds something this version cannot interpret.
    #[error("catalog {path} is corrupt: {detail}")]
    CatalogCorrupt {
        /// The catalog file.
        path: PathBuf,
        /// What was unreadable.
        detail: String,
    },

    /// Tantivy failed.
    #[error("full-text index {path}: {operation} failed")]
    Fulltext {
        /// The Tantivy index directory.
        path: PathBuf,
        /// What we were doing.
        operation: &'static str,
        /// The Tantivy failure.
        #[source]
        source: tantivy::TantivyError,
    },

    /// LanceDB failed.
    #[error("vector table {path}: {operation} failed")]
    Vectors {
        /// The LanceDB directory.
        path: PathBuf,
        /// What we were doing.
        operation: &'static str,
        /// The LanceDB failure (boxed: it is large, and every `Result` of the store pays for
        /// the size of its biggest error).
        #[source]
        source: Box<lancedb::Error>,
    },

    /// LanceDB returned data shaped unlike the table schema we wrote.
    #[error("vector table {path} returned unexpected data: {detail}")]
    VectorsCorrupt {
        /// The LanceDB directory.
        path: PathBuf,
        /// What was unexpected.
        detail: String,
    },

    /// The store's internal async runtime failed (could not start, task panicked).
    #[error("store runtime failure: {detail}")]
    Runtime {
        /// What happened.
        detail: String,
    },

    /// The data folder's format version is newer than this build, or unreadable.
    #[error("data folder {path}: {detail}")]
    DataFormat {
        /// The version file.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },

    /// A lock guarding the store was poisoned by a panic in another thread.
    #[error("store lock {name} poisoned by an earlier panic")]
    Poisoned {
        /// Which lock.
        name: &'static str,
    },
}

impl Error {
    /// Returns the kind of failure, for mapping to user-facing statuses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. }
            | Error::InvalidDocument { .. }
            | Error::InvalidLabel { .. } => ErrorKind::Invalid,
            Error::DocumentNotFound { .. } => ErrorKind::NotFound,
            Error::EmbeddingMismatch { .. }
            | Error::VectorDimensionMismatch { .. }
            | Error::CollectionEmbedder { .. } => ErrorKind::Conflict,
            Error::FulltextLocked { .. } => ErrorKind::Unavailable,
            Error::Catalog { source, .. } => {
                if is_sqlite_busy(source) {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                }
            }
            Error::DataFormat { .. } => ErrorKind::Conflict,
            Error::DataDir { .. }
            | Error::CatalogCorrupt { .. }
            | Error::Fulltext { .. }
            | Error::Vectors { .. }
            | Error::VectorsCorrupt { .. }
            | Error::Runtime { .. }
            | Error::Poisoned { .. } => ErrorKind::Internal,
        }
    }
}

fn is_sqlite_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_mismatch_says_reingest_and_is_a_conflict() {
        let error = Error::EmbeddingMismatch {
            path: PathBuf::from("/data/catalog.sqlite"),
            recorded_model: "a".into(),
            recorded_dim: 384,
            requested_model: "b".into(),
            requested_dim: 768,
        };
        assert_eq!(error.kind(), ErrorKind::Conflict);
        let message = error.to_string();
        assert!(message.contains("re-ingest needed"), "{message}");
        assert!(message.contains("/data/catalog.sqlite"), "{message}");
    }

    #[test]
    fn busy_sqlite_is_unavailable() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let error = Error::Catalog {
            path: PathBuf::from("c"),
            operation: "insert",
            source: busy,
        };
        assert_eq!(error.kind(), ErrorKind::Unavailable);
    }
}
