//! The one closed set every Vellum failure falls into. Each library error has a `kind()`
//! returning an [`ErrorKind`]; the application layer (`vellum-app`) turns it into what a caller
//! sees, and the interfaces map each kind once: the HTTP server to a status code, the CLI to an
//! exit code. No dependencies, so every crate can use it. (`vellum-extract` keeps its own
//! errors: they become quarantine reasons, never a caller's error.)

/// What kind of failure something is, for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Malformed or unusable input (HTTP 400; exit 2).
    Invalid,
    /// No valid credentials (401; exit 4).
    Unauthenticated,
    /// Not permitted, or a password change is due first (403; exit 4).
    Forbidden,
    /// Missing, or not readable by the caller (404; exit 3).
    NotFound,
    /// Contradicts what exists (a user name taken, another embedding model) (409; exit 2).
    Conflict,
    /// Over a size limit (413; exit 2).
    TooLarge,
    /// Received but cannot be indexed (422; exit 6).
    Unprocessable,
    /// Too many at once or too many failures: try again later (429; exit 5).
    Throttled,
    /// A part is missing, busy or failing (a locked index, a busy database, the audit log, a
    /// remote engine): retrying may help (503; exit 5).
    Unavailable,
    /// A bug or corruption (500; exit 1).
    Internal,
}
