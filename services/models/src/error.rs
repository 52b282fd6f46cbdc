//! Errors of the models crate. Each says whose fault it is: the model file or config, the
//! runtime, or a bug.

use std::path::PathBuf;

/// Result with the models crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file or folder is missing, unreadable, corrupt or of an unsupported kind.
    #[error("model file {path}: {reason}")]
    ModelFile { path: PathBuf, reason: String },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The tokenizer could not encode or decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// A tensor operation failed while running the model.
    #[error("model runtime: {0}")]
    Runtime(String),
    /// The caller asked for something the model cannot do (e.g. a prompt longer than its context).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A remote inference server could not be reached or answered with an error.
    #[error("remote engine {url}: {reason}")]
    Remote { url: String, reason: String },
}

impl From<candle_core::Error> for Error {
    fn from(err: candle_core::Error) -> Self {
        Error::Runtime(err.to_string())
    }
}

impl Error {
    /// The caller's view of this failure.
    pub fn kind(&self) -> vellum_errorkind::ErrorKind {
        use vellum_errorkind::ErrorKind;
        match self {
            Error::InvalidRequest(_) => ErrorKind::Invalid,
            // A missing model or an unreachable engine: the service cannot answer now.
            Error::ModelFile { .. } | Error::Remote { .. } => ErrorKind::Unavailable,
            Error::Io { .. } | Error::Tokenizer(_) | Error::Template(_) | Error::Runtime(_) => {
                ErrorKind::Internal
            }
        }
    }
}
