//! Errors of the identity store. Authentication failures are deliberately vague towards
//! callers ([`Error::Unauthenticated`] does not say whether the user exists).

/// Result with the auth crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong user name or password, or an unknown, expired or revoked token or key, or a
    /// disabled account: one variant, so that a caller cannot tell which.
    #[error("authentication failed")]
    Unauthenticated,
    /// Too many failed logins for this account or address; try again after the delay.
    #[error("too many failed logins: try again in {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    /// The request is not acceptable (weak password, bad name, duplicate user...).
    #[error("{0}")]
    Invalid(String),
    /// A user, key or session that the command names does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The database failed or holds something this version cannot read.
    #[error("auth database: {0}")]
    Database(String),
    /// The operating system's random source failed.
    #[error("random source: {0}")]
    Random(String),
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Database(err.to_string())
    }
}

impl Error {
    /// The caller's view of this failure.
    pub fn kind(&self) -> vellum_errorkind::ErrorKind {
        use vellum_errorkind::ErrorKind;
        match self {
            Error::Unauthenticated => ErrorKind::Unauthenticated,
            Error::Throttled { .. } => ErrorKind::Throttled,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Database(_) | Error::Random(_) => ErrorKind::Internal,
        }
    }
}
