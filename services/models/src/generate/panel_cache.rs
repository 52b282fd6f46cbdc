//! Panel cache files: the decoder's weights in its kernels' layout, written once beside the
//! service's data and memory-mapped by every later load of the same model.
//!
//! Why: the kernels read weights in panels of 16 rows (`qmatmul.rs`), not in the file's row
//! order, so a GGUF cannot be mapped and read as stored; every load rearranged the whole model
//! (9.7 s and the whole model in anonymous memory for a 2.7 GB file). The first load with a
//! cache folder writes the panels it built to `<folder>/<model SHA-256>-<options>.v1.panels`;
//! later loads map that file and read the weights from it: the page cache holds them, shared
//! by every process that maps them and given back under memory pressure, and loading is
//! reading the small tensors and checking the file.
//!
//! The file: the panels, each matrix at a 64-byte boundary, then a JSON footer (its model's
//! SHA-256, the load options, every matrix's key, type, layout, shape, offset and length, and
//! a hash of everything before the footer, [`pieces_sha256`]), the footer's length (8 bytes, little-endian)
//! and [`MAGIC`]. A file whose footer, model, options or data hash do not match is not used
//! (the load rebuilds and writes a new one); it is written under a temporary name and renamed,
//! so a crash leaves no half file under the real name, and never changed in place afterwards,
//! so a mapping stays valid when a new file replaces it.

// Mapping a file needs `unsafe`: this module, `qmatmul.rs` and `embed/int8.rs` are the only
// ones of the workspace allowed it.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::qmatmul::{BlockFormat, QuantizedMatrix};

/// The last 8 bytes of every panel cache file.
const MAGIC: &[u8; 8] = b"VLMPANL1";
/// The footer's `kind`.
const KIND: &str = "vellum-panels";
/// Bumped whenever the panel layout changes: files of another version are rebuilt.
const FORMAT_VERSION: u32 = 1;
/// Each matrix starts at a multiple of this (a cache line).
const ALIGN: u64 = 64;
/// Panel cache files a folder keeps: the one just written and the most recently used other
/// (a model and the one it replaced, or two in turn); older ones are removed when a new one
/// is written, so that upgrading a model does not leave its predecessors' copies behind.
const KEEP_FILES: usize = 2;
/// The panels are hashed in pieces of this many bytes, each on its own thread at load, and
/// the footer holds the SHA-256 of the pieces' digests: one SHA-256 over 2.7 GB took ~1.5 s
/// on one core of a two-core machine.
const PIECE: usize = 64 << 20;

/// Where one model's panel cache file is, and what it must match.
#[derive(Clone, Debug)]
pub struct PanelCache {
    folder: PathBuf,
    model_sha256: String,
    /// The load options that change the panels (re-quantization), as text.
    options: String,
}

#[derive(Serialize, Deserialize)]
struct Footer {
    kind: String,
    version: u32,
    model_sha256: String,
    options: String,
    /// SHA-256 of the SHA-256 digests of the panels' [`PIECE`]-byte pieces, in order.
    pieces_sha256: String,
    matrices: Vec<Entry>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    /// The tensors the matrix holds, their names joined by `+` (fused projections).
    key: String,
    /// `Q4_1` or `Q8_0`.
    format: String,
    /// Factors as f16 (see `QuantizedMatrix`).
    half: bool,
    rows: usize,
    columns: usize,
    offset: u64,
    length: u64,
}

impl PanelCache {
    /// The cache of the model whose file has SHA-256 `model_sha256`, loaded with `options`,
    /// in `folder` (created when the first file is written).
    pub(crate) fn new(folder: &Path, model_sha256: &str, options: &str) -> PanelCache {
        PanelCache {
            folder: folder.to_path_buf(),
            model_sha256: model_sha256.to_string(),
            options: options.to_string(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.folder.join(format!(
            "{}-{}.v{FORMAT_VERSION}.panels",
            self.model_sha256, self.options
        ))
    }

    /// The mapped file, when there is one for this model and options and it checks out;
    /// `None` (and a warning for a file that exists but does not) otherwise.
    pub(crate) fn open(&self) -> Option<MappedPanels> {
        let path = self.path();
        if !path.is_file() {
            return None;
        }
        match self.open_checked(&path) {
            Ok(mapped) => Some(mapped),
            Err(reason) => {
                tracing::warn!(
                    path = %path.display(),
                    reason = reason.as_str(),
                    "panel cache file not used; the weights are rearranged and the file written anew"
                );
                None
            }
        }
    }

    fn open_checked(&self, path: &Path) -> Result<MappedPanels, String> {
        let mut file = File::open(path).map_err(|err| format!("cannot open it: {err}"))?;
        let size = file.metadata().map_err(|err| err.to_string())?.len();
        let mut tail = [0_u8; 16];
        if size < tail.len() as u64 {
            return Err("too short".to_string());
        }
        file.seek(SeekFrom::End(-16))
            .and_then(|_| file.read_exact(&mut tail))
            .map_err(|err| format!("cannot read its end: {err}"))?;
        if &tail[8..] != MAGIC {
            return Err("not a panel cache file (or a truncated one)".to_string());
        }
        let mut length = [0_u8; 8];
        length.copy_from_slice(&tail[..8]);
        let footer_length = u64::from_le_bytes(length);
        let data_length = size
            .checked_sub(16)
            .and_then(|rest| rest.checked_sub(footer_length))
            .ok_or("its footer is longer than the file")?;
        let mut footer = vec![0_u8; usize::try_from(footer_length).map_err(|e| e.to_string())?];
        file.seek(SeekFrom::Start(data_length))
            .and_then(|_| file.read_exact(&mut footer))
            .map_err(|err| format!("cannot read its footer: {err}"))?;
        let footer: Footer =
            serde_json::from_slice(&footer).map_err(|err| format!("its footer: {err}"))?;
        if footer.kind != KIND || footer.version != FORMAT_VERSION {
            return Err(format!("{} version {}", footer.kind, footer.version));
        }
        if footer.model_sha256 != self.model_sha256 || footer.options != self.options {
            return Err("made from another model file or with other options".to_string());
        }
        // SAFETY: the file is mapped read-only and only ever replaced by a rename, never
        // written in place (this module writes a new file under a temporary name), so the
        // mapped bytes do not change under the kernels. A process that wrote into it anyway
        // could change the weights, as it could change the model file itself: the folder is the
        // service's own.
        let map = unsafe { Mmap::map(&file) }.map_err(|err| format!("cannot map it: {err}"))?;
        let data_end = usize::try_from(data_length).map_err(|err| err.to_string())?;
        let data = map.get(..data_end).ok_or("shorter than its footer says")?;
        if pieces_sha256(data) != footer.pieces_sha256 {
            return Err("its panels do not match their SHA-256 (a damaged file)".to_string());
        }
        // Its modification time says when it was last used (see `prune`).
        if let Err(err) = file.set_modified(std::time::SystemTime::now()) {
            tracing::debug!(error = %err, "cannot mark the panel cache file as used");
        }
        let mut entries = HashMap::new();
        for entry in footer.matrices {
            let end = entry.offset.checked_add(entry.length);
            if end.is_none_or(|end| end > data_length) {
                return Err(format!("matrix {} lies outside the file", entry.key));
            }
            entries.insert(entry.key.clone(), entry);
        }
        Ok(MappedPanels {
            map: Arc::new(map),
            entries,
        })
    }

    /// A writer for a new file; `None` (and a warning) where the folder cannot take one.
    pub(crate) fn writer(&self) -> Option<PanelWriter> {
        match PanelWriter::create(self) {
            Ok(writer) => Some(writer),
            Err(err) => {
                tracing::warn!(
                    folder = %self.folder.display(),
                    error = %err,
                    "cannot write a panel cache file; loads will keep rearranging the weights"
                );
                None
            }
        }
    }
}

/// The SHA-256 of the digests of `data`'s [`PIECE`]-byte pieces, the pieces hashed in
/// parallel.
fn pieces_sha256(data: &[u8]) -> String {
    use rayon::prelude::*;
    let digests: Vec<_> = data.par_chunks(PIECE).map(Sha256::digest).collect();
    let mut hasher = Sha256::new();
    for digest in &digests {
        hasher.update(digest);
    }
    hex::encode(hasher.finalize())
}

/// A mapped panel cache file whose footer and data checked out.
pub(crate) struct MappedPanels {
    map: Arc<Mmap>,
    entries: HashMap<String, Entry>,
}

impl MappedPanels {
    /// The matrix of tensors `key` as an `F` matrix of `rows` × `columns` read from the map;
    /// `None` where the file has no such matrix.
    pub(crate) fn matrix<F: BlockFormat>(
        &self,
        key: &str,
        rows: usize,
        columns: usize,
    ) -> Option<QuantizedMatrix<F>> {
        let entry = self.entries.get(key)?;
        if entry.format != F::NAME || entry.rows != rows || entry.columns != columns {
            return None;
        }
        let start = usize::try_from(entry.offset).ok()?;
        let length = usize::try_from(entry.length).ok()?;
        let map = Arc::clone(&self.map);
        QuantizedMatrix::mapped(map, start, length, rows, columns, entry.half).ok()
    }
}

/// Writes a new panel cache file: matrices as the load builds them, then [`Self::finish`].
/// Dropped unfinished, it removes its temporary file.
pub(crate) struct PanelWriter {
    file: Option<BufWriter<File>>,
    temporary: PathBuf,
    path: PathBuf,
    /// The digest of the piece being written, and those of the pieces before it.
    piece: Sha256,
    pieces: Sha256,
    offset: u64,
    footer: Footer,
}

impl PanelWriter {
    fn create(cache: &PanelCache) -> std::io::Result<PanelWriter> {
        create_private_folder(&cache.folder)?;
        let path = cache.path();
        let temporary = cache.folder.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("panels"),
            std::process::id()
        ));
        let file = File::create(&temporary)?;
        Ok(PanelWriter {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            temporary,
            path,
            piece: Sha256::new(),
            pieces: Sha256::new(),
            offset: 0,
            footer: Footer {
                kind: KIND.to_string(),
                version: FORMAT_VERSION,
                model_sha256: cache.model_sha256.clone(),
                options: cache.options.clone(),
                pieces_sha256: String::new(),
                matrices: Vec::new(),
            },
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the panel cache file is finished"))?;
        file.write_all(bytes)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            // The bytes up to the end of the current piece, then a new piece.
            let into_piece = (self.offset % PIECE as u64) as usize;
            let (now, later) = rest.split_at(rest.len().min(PIECE - into_piece));
            self.piece.update(now);
            self.offset += now.len() as u64;
            if self.offset.is_multiple_of(PIECE as u64) {
                let piece = std::mem::take(&mut self.piece).finalize();
                self.pieces.update(piece);
            }
            rest = later;
        }
        Ok(())
    }

    /// Appends `matrix`, the matrix of tensors `key`.
    pub(crate) fn add<F: BlockFormat>(
        &mut self,
        key: &str,
        matrix: &QuantizedMatrix<F>,
    ) -> std::io::Result<()> {
        let padding = self.offset.next_multiple_of(ALIGN) - self.offset;
        self.write(&vec![0_u8; padding as usize])?;
        let (bytes, half) = matrix.panel_bytes_and_layout();
        let offset = self.offset;
        self.write(bytes)?;
        self.footer.matrices.push(Entry {
            key: key.to_string(),
            format: F::NAME.to_string(),
            half,
            rows: matrix.rows(),
            columns: matrix.columns(),
            offset,
            length: bytes.len() as u64,
        });
        Ok(())
    }

    /// Writes the footer, flushes the file to disk and gives it its name; returns its path.
    pub(crate) fn finish(mut self) -> std::io::Result<PathBuf> {
        if !self.offset.is_multiple_of(PIECE as u64) {
            let piece = std::mem::take(&mut self.piece).finalize();
            self.pieces.update(piece);
        }
        self.footer.pieces_sha256 = hex::encode(std::mem::take(&mut self.pieces).finalize());
        let footer = serde_json::to_vec(&self.footer).map_err(std::io::Error::other)?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the panel cache file is finished"))?;
        file.write_all(&footer)?;
        file.write_all(&(footer.len() as u64).to_le_bytes())?;
        file.write_all(MAGIC)?;
        let file = file.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.temporary, &self.path)?;
        if let Some(folder) = self.path.parent() {
            File::open(folder)?.sync_all()?;
            prune(folder, KEEP_FILES);
        }
        Ok(self.path.clone())
    }
}

/// Removes all but the `keep` most recently used (modified) panel cache files in `folder`.
/// Failures only log: the files are derived data.
fn prune(folder: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "panels"))
        .filter_map(|path| {
            let modified = path.metadata().and_then(|meta| meta.modified()).ok()?;
            Some((modified, path))
        })
        .collect();
    files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in files.into_iter().skip(keep) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "old panel cache file removed"),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove an old panel cache file")
            }
        }
    }
}

impl Drop for PanelWriter {
    fn drop(&mut self) {
        if self.file.is_some() || self.temporary.exists() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Creates `folder` (and its parents) readable by its owner alone where it is new.
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    if folder.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_keeps_the_most_recently_used_panel_files_and_nothing_else_goes() {
        let folder = tempfile::tempdir().expect("tempdir");
        let now = std::time::SystemTime::now();
        let hours = |h: u64| now - std::time::Duration::from_secs(3600 * h);
        // Four panel files last used 1, 5, 30 and 2 hours ago, and files of other kinds.
        for (name, age) in [("a.v1.panels", 1), ("b.v1.panels", 5), ("c.v1.panels", 30)] {
            let file = File::create(folder.path().join(name)).expect("create");
            file.set_modified(hours(age)).expect("mtime");
        }
        File::create(folder.path().join("d.v1.panels"))
            .and_then(|file| file.set_modified(hours(2)))
            .expect("d");
        for other in ["notes.txt", ".x.panels.123.tmp"] {
            File::create(folder.path().join(other))
                .and_then(|file| file.set_modified(hours(99)))
                .expect("other");
        }
        prune(folder.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(folder.path())
            .expect("read_dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".x.panels.123.tmp",
                "a.v1.panels",
                "d.v1.panels",
                "notes.txt"
            ]
        );
    }
}
