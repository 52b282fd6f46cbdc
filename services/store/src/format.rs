//! The data folder's format version, in `<data>/FORMAT`: one line, `vellum-data N`.
//!
//! Each store inside has its own schema check (the catalog's `user_version`, the Tantivy
//! schema, the LanceDB columns) and migrates itself crash-safely; this file is the folder-wide
//! gate in front of them, read before anything is opened:
//! - a folder newer than this binary is refused untouched, with a message that says what to do;
//! - a folder without the file was written before it existed (format 0) and is migrated by the
//!   stores' own migrations; the file is written last, once they all succeeded, so a crash in
//!   between only means the (idempotent) migrations run again at the next open.
//!
//! Bump [`DATA_FORMAT`] together with any migration that an older binary must not see.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The format this build writes and reads.
pub const DATA_FORMAT: u32 = 1;

/// The version file's name inside the data folder.
pub const FORMAT_FILE: &str = "FORMAT";

const PREFIX: &str = "vellum-data ";

/// What the folder said before it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FoundFormat {
    /// No data folder content yet.
    Fresh,
    /// Data written before the version file existed.
    Unversioned,
    /// The version the file names (at most [`DATA_FORMAT`]).
    Version(u32),
}

/// Reads the folder's format and refuses a newer one (or an unreadable file) before anything
/// else is touched. `has_data` says whether the folder already holds stores.
pub(crate) fn check(data_dir: &Path, has_data: bool) -> Result<FoundFormat> {
    let path = data_dir.join(FORMAT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(if has_data {
                FoundFormat::Unversioned
            } else {
                FoundFormat::Fresh
            });
        }
        Err(source) => return Err(Error::DataDir { path, source }),
    };
    let version = text
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|n| n.trim().parse::<u32>().ok())
        .ok_or_else(|| Error::DataFormat {
            path: path.clone(),
            detail: format!(
                "unreadable version {:?} (expected `{PREFIX}N`); restore the file or the folder \
                 from a backup",
                text.chars().take(40).collect::<String>()
            ),
        })?;
    if version > DATA_FORMAT {
        return Err(Error::DataFormat {
            path,
            detail: format!(
                "the data folder is format {version}, written by a newer Vellum; this one reads \
                 format {DATA_FORMAT} and older. Nothing was changed: run the newer version, or \
                 restore a backup made with this one"
            ),
        });
    }
    Ok(FoundFormat::Version(version))
}

/// The same gate for callers that create things in the data folder before the store opens
/// (the audit log, the user database): a newer folder is refused before any of them.
pub fn check_data_format(data_dir: &Path) -> Result<()> {
    check(data_dir, true).map(|_| ())
}

/// Records [`DATA_FORMAT`] once every store has opened (and migrated): written to a temporary
/// file, synced, renamed over, and the folder synced, so the file is either old or new.
pub(crate) fn record(data_dir: &Path, found: FoundFormat) -> Result<()> {
    if found == FoundFormat::Version(DATA_FORMAT) {
        return Ok(());
    }
    let path = data_dir.join(FORMAT_FILE);
    let temporary: PathBuf = data_dir.join(format!("{FORMAT_FILE}.tmp"));
    let io = |source| Error::DataDir {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(format!("{PREFIX}{DATA_FORMAT}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_and_newer_ones_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(dir.path(), false).ok(), Some(FoundFormat::Fresh));
        assert_eq!(check(dir.path(), true).ok(), Some(FoundFormat::Unversioned));
        record(dir.path(), FoundFormat::Fresh).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check(dir.path(), true).ok(),
            Some(FoundFormat::Version(DATA_FORMAT))
        );
        std::fs::write(dir.path().join(FORMAT_FILE), "vellum-data 99\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = check(dir.path(), true).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("format 99")),
            "{err:?}"
        );
        std::fs::write(dir.path().join(FORMAT_FILE), "garbage").unwrap_or_else(|e| panic!("{e}"));
        assert!(check(dir.path(), true).is_err());
    }
}
