//! Folder watch: keeps a collection in step with folders as files appear, change and go.
//!
//! [`watch`] first syncs every root (an ingest with prune), then follows file-system events
//! (the notify crate; inotify on Linux). Events are debounced: after the first one, more are
//! collected until the folder has been quiet for `debounce` (editors and copies write a file
//! in several steps), then the touched paths are handled at once: files that exist are
//! ingested (unchanged ones are skipped by SHA-256), paths that are gone have their documents
//! deleted.
//!
//! A root that disappears (renamed, deleted) or whose file system changes (unmounted: the
//! mount point's device id changes) is *not* read as "every file was deleted": its documents
//! stay, the watch waits for the root to come back and then syncs it again. So a share that
//! drops for a minute does not empty the index.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use vellum_store::{SearchFilter, Store};

use crate::pipeline::{
    collect_files, ingest_files, IngestEvent, IngestOptions, IngestSummary, PassageEmbedder,
    PipelineError,
};

/// What the watch reports, besides the pipeline's per-file events.
#[derive(Debug, Clone)]
pub enum WatchEvent<'a> {
    /// A file was handled (indexed, replaced, unchanged, quarantined).
    File(IngestEvent<'a>),
    /// A pass over some files finished.
    Synced(&'a IngestSummary),
    /// The document of a file that is gone was deleted.
    Deleted {
        /// Its source path.
        path: &'a str,
    },
    /// A root is missing or on another file system; its documents are kept.
    RootUnavailable {
        /// The root.
        root: &'a Path,
        /// Why, in words.
        reason: &'a str,
    },
    /// A root that was unavailable is back (a full sync follows).
    RootBack {
        /// The root.
        root: &'a Path,
    },
    /// A file-system event could not be read; the watch re-syncs to be safe.
    WatchError {
        /// What notify said.
        message: String,
    },
}

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last event before changes are ingested.
    pub debounce: Duration,
    /// How often an unavailable root is looked for.
    pub poll_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_secs(2),
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// A watched root and the device it lives on.
struct Root {
    path: PathBuf,
    device: u64,
    available: bool,
}

/// Syncs `roots` into the store, then follows their changes until `stop` is set.
/// `ingest` carries the collection, limits and sandbox; its `prune` is ignored (the watch
/// decides what to delete).
pub fn watch(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    roots: &[PathBuf],
    ingest: &IngestOptions,
    options: &WatchOptions,
    stop: &AtomicBool,
    on_watch: &mut dyn FnMut(WatchEvent<'_>),
) -> Result<(), PipelineError> {
    let mut watched: Vec<Root> = Vec::new();
    for path in roots {
        let path = std::fs::canonicalize(path).map_err(|error| PipelineError::Path {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        let device = std::fs::metadata(&path)
            .map_err(|error| PipelineError::Path {
                path: path.clone(),
                reason: error.to_string(),
            })?
            .dev();
        watched.push(Root {
            path,
            device,
            available: true,
        });
    }
    let prune = IngestOptions {
        prune: true,
        ..ingest.clone()
    };
    let no_prune = IngestOptions {
        prune: false,
        ..ingest.clone()
    };

    let (sender, receiver) = channel();
    let mut watcher = notify::recommended_watcher(sender).map_err(watch_error)?;
    for root in &watched {
        watcher
            .watch(&root.path, RecursiveMode::Recursive)
            .map_err(watch_error)?;
    }
    // The first sync, after the watch is set up so no change falls between the two.
    let root_paths: Vec<PathBuf> = watched.iter().map(|root| root.path.clone()).collect();
    sync(store, embedder, &root_paths, &prune, on_watch)?;

    while !stop.load(Ordering::Relaxed) {
        let (touched, errors) = next_batch(&receiver, options, stop);
        // Roots first: an unavailable root is never synced or pruned.
        let mut resync = Vec::new();
        for root in &mut watched {
            match root_state(root) {
                Ok(()) if !root.available => {
                    root.available = true;
                    on_watch(WatchEvent::RootBack { root: &root.path });
                    // Watches on a removed folder are gone: watch it again.
                    let _ = watcher.unwatch(&root.path);
                    watcher
                        .watch(&root.path, RecursiveMode::Recursive)
                        .map_err(watch_error)?;
                    resync.push(root.path.clone());
                }
                Ok(()) => {}
                Err(reason) => {
                    if root.available {
                        on_watch(WatchEvent::RootUnavailable {
                            root: &root.path,
                            reason: &reason,
                        });
                    }
                    root.available = false;
                }
            }
        }
        for message in errors {
            on_watch(WatchEvent::WatchError { message });
            resync.extend(
                watched
                    .iter()
                    .filter(|root| root.available)
                    .map(|root| root.path.clone()),
            );
        }
        if !resync.is_empty() {
            resync.sort();
            resync.dedup();
            sync(store, embedder, &resync, &prune, on_watch)?;
            continue;
        }
        let available: Vec<&Root> = watched.iter().filter(|root| root.available).collect();
        let touched: BTreeSet<PathBuf> = touched
            .into_iter()
            .filter(|path| available.iter().any(|root| path.starts_with(&root.path)))
            .collect();
        if touched.is_empty() {
            continue;
        }
        let (present, gone): (Vec<PathBuf>, Vec<PathBuf>) =
            touched.into_iter().partition(|path| path.exists());
        if !gone.is_empty() {
            delete_gone(store, &ingest.collection, &gone, on_watch)?;
        }
        if !present.is_empty() {
            sync(store, embedder, &present, &no_prune, on_watch)?;
        }
    }
    Ok(())
}

/// Waits for the first event (or `poll_interval`), then collects until quiet for `debounce`
/// (at most 10 debounce periods, so a folder that never stops changing is still synced).
fn next_batch(
    receiver: &Receiver<notify::Result<notify::Event>>,
    options: &WatchOptions,
    stop: &AtomicBool,
) -> (BTreeSet<PathBuf>, Vec<String>) {
    let mut touched = BTreeSet::new();
    let mut errors = Vec::new();
    let mut add =
        |event: notify::Result<notify::Event>, touched: &mut BTreeSet<PathBuf>| match event {
            Ok(event) if event.kind.is_access() => {}
            Ok(event) => touched.extend(event.paths),
            Err(error) => errors.push(error.to_string()),
        };
    // Short waits so that `stop` is noticed.
    let tick = options.poll_interval.min(Duration::from_millis(200));
    let wait_started = Instant::now();
    loop {
        match receiver.recv_timeout(tick) {
            Ok(event) => {
                add(event, &mut touched);
                break;
            }
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) || wait_started.elapsed() >= options.poll_interval {
                    return (touched, errors);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                errors.push("the file-system watcher stopped".into());
                return (touched, errors);
            }
        }
    }
    let deadline = Instant::now() + options.debounce * 10;
    while Instant::now() < deadline {
        match receiver.recv_timeout(options.debounce) {
            Ok(event) => add(event, &mut touched),
            Err(_) => break,
        }
    }
    (touched, errors)
}

/// `Ok` if the root is a folder on the device it was on when the watch started.
fn root_state(root: &Root) -> Result<(), String> {
    match std::fs::metadata(&root.path) {
        Ok(metadata) if !metadata.is_dir() => Err("it is no longer a folder".into()),
        Ok(metadata) if metadata.dev() != root.device => Err(
            "it is on another file system now (unmounted?); its documents are kept until it \
             comes back"
                .into(),
        ),
        Ok(_) => Ok(()),
        Err(error) => Err(format!(
            "{error} (renamed, deleted or unmounted?); its documents are kept until it comes back"
        )),
    }
}

fn sync(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    paths: &[PathBuf],
    options: &IngestOptions,
    on_watch: &mut dyn FnMut(WatchEvent<'_>),
) -> Result<(), PipelineError> {
    // A path that vanished between the event and now is handled by the next event.
    let existing: Vec<PathBuf> = paths.iter().filter(|path| path.exists()).cloned().collect();
    if existing.is_empty() {
        return Ok(());
    }
    let listing = collect_files(&existing)?;
    let summary = ingest_files(
        store,
        embedder,
        &listing.files,
        &existing,
        options,
        &mut |event| on_watch(WatchEvent::File(event)),
    )?;
    on_watch(WatchEvent::Synced(&summary));
    Ok(())
}

/// Deletes the documents (and quarantine entries) of files that are gone: the path itself,
/// or anything under it if it was a folder.
fn delete_gone(
    store: &Store,
    collection: &str,
    gone: &[PathBuf],
    on_watch: &mut dyn FnMut(WatchEvent<'_>),
) -> Result<(), PipelineError> {
    let filter = SearchFilter {
        collections: Some(vec![collection.to_string()]),
        documents: None,
    };
    let is_gone = |source_path: &str| {
        let source = Path::new(source_path);
        gone.iter().any(|path| source.starts_with(path)) && !source.exists()
    };
    for (id, source_path) in store.collection_sources(collection)? {
        if is_gone(&source_path) {
            store.delete_document(&id)?;
            on_watch(WatchEvent::Deleted { path: &source_path });
        }
    }
    for entry in store.list_quarantine(&filter)? {
        if is_gone(&entry.source_path) {
            store.release_quarantine(collection, &entry.source_path)?;
        }
    }
    Ok(())
}

fn watch_error(error: notify::Error) -> PipelineError {
    PipelineError::Path {
        path: error.paths.first().cloned().unwrap_or_default(),
        reason: format!("cannot watch: {error}"),
    }
}
