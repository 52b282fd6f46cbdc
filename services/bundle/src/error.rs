//! Every way signing or verifying a bundle can fail. A failure about one file names it, as a
//! path relative to the bundle folder.

use std::path::PathBuf;

/// Why a bundle could not be signed or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A key given on the command line or in a file is not a key.
    #[error("{0}")]
    Key(String),
    /// The folder to sign or verify is not a folder.
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bundle has no MANIFEST or no MANIFEST.sig.
    #[error(
        "{file}: missing: the bundle has no signed manifest (deploy/bundle.sh signs it when \
         VELLUM_BUNDLE_SECRET_KEY names a key file; or run `vellum bundle sign`)"
    )]
    Unsigned { file: String },
    /// MANIFEST.sig is not in the format `sign` writes.
    #[error("{file}: malformed: {reason}")]
    MalformedSignature { file: String, reason: String },
    /// The signature does not verify: MANIFEST was changed after signing, or another key
    /// signed it.
    #[error("{file}: the signature does not verify with public key {given}: {hint}")]
    BadSignature {
        file: String,
        given: String,
        hint: String,
    },
    /// A MANIFEST line is not `<64 hex digits>  <path>`, or the lines are not sorted.
    #[error("{file} line {line}: {reason}")]
    MalformedManifest {
        file: String,
        line: usize,
        reason: String,
    },
    /// A path that could leave the bundle folder, or that the manifest format cannot carry.
    #[error("{path}: refused: {reason}")]
    UnsafePath { path: String, reason: String },
    /// Symbolic links are refused: a link could point outside the bundle.
    #[error("{path}: refused: a symbolic link (a bundle holds plain files only)")]
    Symlink { path: String },
    /// A socket, device or FIFO.
    #[error("{path}: refused: not a plain file or folder")]
    NotAPlainFile { path: String },
    /// The file's SHA-256 is not the one in the manifest.
    #[error("{path}: changed: SHA-256 {actual}, the manifest says {expected}")]
    Changed {
        path: String,
        expected: String,
        actual: String,
    },
    /// The manifest lists a file that is not there.
    #[error("{path}: missing: listed in the manifest but not in the bundle")]
    Missing { path: String },
    /// A file that the manifest does not list.
    #[error("{path}: extra: in the bundle but not in the manifest")]
    Extra { path: String },
}

impl BundleError {
    /// The file (relative to the bundle folder) this error is about, when it is about one.
    pub fn file(&self) -> Option<&str> {
        match self {
            BundleError::Unsigned { file }
            | BundleError::MalformedSignature { file, .. }
            | BundleError::BadSignature { file, .. }
            | BundleError::MalformedManifest { file, .. } => Some(file),
            BundleError::UnsafePath { path, .. }
            | BundleError::Symlink { path }
            | BundleError::NotAPlainFile { path }
            | BundleError::Changed { path, .. }
            | BundleError::Missing { path }
            | BundleError::Extra { path } => Some(path),
            BundleError::Key(_) | BundleError::NotAFolder(_) | BundleError::Io { .. } => None,
        }
    }

    /// True when the caller's input was wrong (a malformed key, no such folder), as opposed to
    /// a bundle that does not verify: the CLI exits 2 for these and 1 for the rest.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, BundleError::Key(_) | BundleError::NotAFolder(_))
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.into();
    move |source| BundleError::Io { path, source }
}

pub type Result<T, E = BundleError> = std::result::Result<T, E>;
