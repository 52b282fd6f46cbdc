//! The one error type of the audit log.

use std::path::PathBuf;

use crate::verify::Problem;

/// Why an audit operation failed. For `append` any error means: the record may not be on disk,
/// so the caller must not serve the request (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An earlier write, flush or checkpoint failed; nothing more is written until the log is
    /// reopened (the chain on disk stays consistent).
    #[error("the audit log stopped accepting records after a failure ({0}); fix the cause and reopen it")]
    Failed(String),
    #[error("the audit log is closed")]
    Closed,
    /// `open` found a log that does not verify with its own key: someone changed it, or it was
    /// damaged. Move the folder aside (and verify it offline) before starting again.
    #[error("the audit log in {} does not verify: {problem}", dir.display())]
    Tampered { dir: PathBuf, problem: Box<Problem> },
    #[error("audit key: {0}")]
    Key(String),
    #[error("audit configuration: {0}")]
    Config(String),
    #[error("the audit log in {} is in use by another process", .0.display())]
    Locked(PathBuf),
    #[error("{} line {line}: {message}", segment.display())]
    Record {
        segment: PathBuf,
        line: u64,
        message: String,
    },
    #[error("could not encode an audit record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("clock: {0}")]
    Clock(String),
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.into();
    move |source| AuditError::Io { path, source }
}

impl AuditError {
    /// The caller's view of this failure: a log that cannot take a record makes the service
    /// unavailable (it fails closed); a damaged log or bad configuration is an operator's
    /// problem.
    pub fn kind(&self) -> vellum_errorkind::ErrorKind {
        use vellum_errorkind::ErrorKind;
        match self {
            AuditError::Io { .. }
            | AuditError::Failed(_)
            | AuditError::Closed
            | AuditError::Locked(_)
            | AuditError::Clock(_) => ErrorKind::Unavailable,
            AuditError::Tampered { .. }
            | AuditError::Key(_)
            | AuditError::Config(_)
            | AuditError::Record { .. }
            | AuditError::Encode(_) => ErrorKind::Internal,
        }
    }
}
