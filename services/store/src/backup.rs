//! A consistent copy of the three stores while a server may be using them, without opening
//! them (their writer locks stay with the server):
//! - the catalog (and any other SQLite file) with `VACUUM INTO`: one read transaction, so a
//!   consistent database whatever commits at the same time;
//! - Tantivy and LanceDB after it, file by file. Their data files are never rewritten, only
//!   added and (after merges, prunes) deleted, and a commit publishes new files by writing a
//!   new `meta.json` / `_versions/N.manifest` last. So Tantivy's `meta.json` is read first and
//!   the files it names copied; LanceDB's manifests are copied before the data files they name.
//!   A file deleted under the copy (a merge or prune finishing) makes the copy start again.
//!
//! The indexes may then hold documents committed after the catalog was copied; the catalog is
//! the truth, and [`crate::Store::remove_orphans`] drops them when the copy is restored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Attempts of a copy that a concurrent merge or prune can spoil.
const ATTEMPTS: usize = 5;

/// The store's parts inside a data folder, as [`crate::Store::open`] lays them out.
pub const STORE_PARTS: [&str; 3] = ["catalog.sqlite", "fulltext", "vectors"];

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies a SQLite database as of one read transaction (`VACUUM INTO`), whoever writes it.
pub fn copy_sqlite(from: &Path, to: &Path) -> Result<()> {
    let catalog_error = |operation: &'static str| {
        move |source| Error::Catalog {
            path: from.to_path_buf(),
            operation,
            source,
        }
    };
    let connection = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(catalog_error("open for backup"))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(catalog_error("set busy timeout"))?;
    let target = to.to_str().ok_or_else(|| Error::InvalidInput {
        detail: format!("backup path {} is not UTF-8", to.display()),
    })?;
    connection
        .execute("VACUUM INTO ?1", [target])
        .map_err(catalog_error("VACUUM INTO"))?;
    Ok(())
}

/// Copies the catalog, then Tantivy, then LanceDB from `data_dir` into `dest` (which must
/// exist). Returns the bytes copied.
pub fn snapshot_store(data_dir: &Path, dest: &Path) -> Result<u64> {
    let catalog = data_dir.join("catalog.sqlite");
    copy_sqlite(&catalog, &dest.join("catalog.sqlite"))?;
    let mut bytes = std::fs::metadata(dest.join("catalog.sqlite"))
        .map_err(io_error(dest))?
        .len();
    bytes += retrying(|| copy_tantivy(&data_dir.join("fulltext"), &dest.join("fulltext")))?;
    bytes += retrying(|| copy_lance_tables(&data_dir.join("vectors"), &dest.join("vectors")))?;
    Ok(bytes)
}

/// Runs a copy again when a file vanished under it (a concurrent merge or prune).
fn retrying(mut copy: impl FnMut() -> Result<u64>) -> Result<u64> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match copy() {
            Err(Error::DataDir { path, source })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::info!(
                    "backup: {} went away during the copy; copying again",
                    path.display()
                );
                last = Some(Error::DataDir { path, source });
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
    Err(last.unwrap_or(Error::Runtime {
        detail: "backup: the copy kept changing".into(),
    }))
}

fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io_error(dir))?;
    }
    crate::store::create_private_dir(dir).map_err(io_error(dir))
}

fn copy_file(from: &Path, to: &Path) -> Result<u64> {
    std::fs::copy(from, to).map_err(io_error(from))
}

/// Tantivy: `meta.json` as read first, and the segment files it names (`<segment id>.*`).
fn copy_tantivy(from: &Path, to: &Path) -> Result<u64> {
    fresh_dir(to)?;
    let meta_path = from.join("meta.json");
    let meta = std::fs::read(&meta_path).map_err(io_error(&meta_path))?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|err| Error::Runtime {
            detail: format!("{}: {err}", meta_path.display()),
        })?;
    // Segment ids are UUIDs written without hyphens in file names.
    let segments: BTreeSet<String> = parsed["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|segment| segment["segment_id"].as_str())
        .map(|id| id.replace('-', ""))
        .collect();
    let mut bytes = 0;
    let mut found: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(segment) = name.split('.').next() else {
            continue;
        };
        if segments.contains(segment) {
            bytes += copy_file(&entry.path(), &to.join(&name))?;
            found.insert(segment.to_string());
        }
    }
    if let Some(missing) = segments.difference(&found).next() {
        return Err(Error::DataDir {
            path: from.join(missing),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "segment files gone"),
        });
    }
    std::fs::write(to.join("meta.json"), &meta).map_err(io_error(to))?;
    Ok(bytes + meta.len() as u64)
}

/// Every LanceDB table folder (`*.lance`) under `from`.
fn copy_lance_tables(from: &Path, to: &Path) -> Result<u64> {
    fresh_dir(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        if entry.file_type().map_err(io_error(from))?.is_dir() {
            bytes += copy_lance_table(&entry.path(), &to.join(entry.file_name()))?;
        }
    }
    Ok(bytes)
}

/// A Lance dataset: `_versions/` (the manifests) first, then everything else, so every copied
/// manifest names files that existed before it and so are found by the later listing.
fn copy_lance_table(from: &Path, to: &Path) -> Result<u64> {
    crate::store::create_private_dir(to).map_err(io_error(to))?;
    let mut bytes = 0;
    let versions = from.join("_versions");
    if versions.is_dir() {
        bytes += copy_tree(&versions, &to.join("_versions"))?;
    }
    for entry in std::fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        if entry.file_name() == "_versions" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io_error(from))?.is_dir() {
            bytes += copy_tree(&entry.path(), &target)?;
        } else {
            bytes += copy_file(&entry.path(), &target)?;
        }
    }
    Ok(bytes)
}

/// Copies a folder tree (plain files and folders; links are not followed).
pub fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    crate::store::create_private_dir(to).map_err(io_error(to))?;
    let mut bytes = 0;
    let mut pending: Vec<(PathBuf, PathBuf)> = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((source, target)) = pending.pop() {
        for entry in std::fs::read_dir(&source).map_err(io_error(&source))? {
            let entry = entry.map_err(io_error(&source))?;
            let kind = entry.file_type().map_err(io_error(&source))?;
            let destination = target.join(entry.file_name());
            if kind.is_dir() {
                crate::store::create_private_dir(&destination).map_err(io_error(&destination))?;
                pending.push((entry.path(), destination));
            } else if kind.is_file() {
                bytes += copy_file(&entry.path(), &destination)?;
            }
        }
    }
    Ok(bytes)
}
