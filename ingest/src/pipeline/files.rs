//! Which files an ingest run reads: folders walked, hidden files skipped, paths made canonical.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::PipelineError;

/// The files found under the paths given to [`collect_files`].
#[derive(Debug, Default)]
pub struct FileListing {
    /// Readable files, sorted and de-duplicated.
    pub files: Vec<PathBuf>,
    /// Entries that could not be listed, as (path, reason).
    pub unreadable: Vec<(String, String)>,
}

/// Lists the files under `paths` (files as given, folders walked recursively, hidden entries
/// skipped), sorted and de-duplicated.
pub fn collect_files(paths: &[PathBuf]) -> Result<FileListing, PipelineError> {
    let mut files = BTreeSet::new();
    let mut errors = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| PipelineError::Path {
            path: root.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_file() {
            files.insert(canonical(root));
            continue;
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()));
        for entry in walker {
            match entry {
                Ok(entry) if entry.file_type().is_file() => {
                    files.insert(canonical(entry.path()));
                }
                Ok(_) => {}
                Err(err) => errors.push((
                    err.path()
                        .map_or_else(|| root.display().to_string(), |p| p.display().to_string()),
                    err.to_string(),
                )),
            }
        }
    }
    Ok(FileListing {
        files: files.into_iter().collect(),
        unreadable: errors,
    })
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
