//! Errors of the retrieval and answer layer.

/// Result with the rag crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while retrieving, answering, summarizing or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] vellum_store::Error),
    /// A model failed.
    #[error(transparent)]
    Model(#[from] vellum_models::Error),
    /// The caller's input cannot be used (empty question, unknown mode, malformed eval file).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A document asked for does not exist.
    #[error("document not found: {0}")]
    DocumentNotFound(String),
    /// The caller's hook refused to go on (e.g. the audit record of the read could not be
    /// written, so nothing may be generated or shown).
    #[error("stopped before generation: {0}")]
    Stopped(String),
    /// An evaluation file could not be read.
    #[error("cannot read {path}: {reason}")]
    EvalFile {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl Error {
    /// The caller's view of this failure.
    pub fn kind(&self) -> vellum_errorkind::ErrorKind {
        use vellum_errorkind::ErrorKind;
        match self {
            Error::Store(error) => error.kind(),
            Error::Model(error) => error.kind(),
            Error::InvalidInput(_) | Error::EvalFile { .. } => ErrorKind::Invalid,
            Error::DocumentNotFound(_) => ErrorKind::NotFound,
            // A hook refused to go on (the audit log could not record the sources).
            Error::Stopped(_) => ErrorKind::Unavailable,
        }
    }
}
