//! The ingest pipeline: files → bytes → SHA-256 (skip unchanged) → text per page → chunks →
//! embeddings → one `commit_batch` into the store.
//!
//! Files are processed in batches so that a 10,000-file folder never holds all its text in
//! memory: extraction runs on one thread per core, then the batch's chunks are embedded
//! together (the embedder sorts them by length and batches them) and committed at once.
//! A file that cannot be read or extracted is quarantined with its reason (recorded in the
//! catalog, listed by `vellum ingest --report`) and the batch goes on. Untrusted files are
//! parsed only inside worker processes ([`vellum_extract::isolate::Sandbox`]) with CPU,
//! memory and time limits, so a parser that hangs or crashes costs one file, not the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use vellum_store::{NewChunk, NewDocument, SearchFilter, Store};

use vellum_store::NewQuarantine;

use crate::chunk::{chunk_pages_with, ChunkOptions};
use crate::extract::{extract_with_passwords, ExtractedDocument};
use crate::isolate::{Sandbox, SandboxError};
use crate::ocr::{ocr_pdf, ocr_pdf_sandboxed, OcrOptions, OcrText};

mod files;
mod ids;
mod types;

pub(crate) use files::canonical;
pub use files::{collect_files, FileListing};
pub use ids::{chunk_id, document_id, labelled_document_id};
pub use types::*;

/// A document ready to embed and commit.
struct Prepared {
    document: NewDocument,
    chunks: Vec<(u32, u32, String)>,
    replaces_existing: bool,
}

/// What to do with one file.
enum FileWork {
    Index(Prepared),
    Unchanged,
    StillQuarantined { kind: String, reason: String },
    Reject(Rejection),
}

/// Why a file is not indexed.
struct Rejection {
    kind: String,
    reason: String,
    sha256: Option<String>,
}

impl Rejection {
    fn new(kind: &str, reason: impl Into<String>, sha256: Option<&str>) -> Self {
        Rejection {
            kind: kind.to_string(),
            reason: reason.into(),
            sha256: sha256.map(str::to_string),
        }
    }
}

/// Ingests `files` into `store`. Returns the summary; per-file problems are in `skipped`.
pub fn ingest_files(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    files: &[PathBuf],
    roots: &[PathBuf],
    options: &IngestOptions,
    on_event: &mut dyn FnMut(IngestEvent<'_>),
) -> Result<IngestSummary, PipelineError> {
    let started = Instant::now();
    let options = &with_normalized_labels(options)?;
    let mut summary = IngestSummary {
        num_files: files.len(),
        ..IngestSummary::default()
    };
    on_event(IngestEvent::Started {
        num_files: files.len(),
    });
    for batch in files.chunks(options.batch_files.max(1)) {
        let prepared = parallel_map(batch, |path| {
            let source_path = path.display().to_string();
            let result = prepare_file(store, embedder, path, &source_path, options);
            (source_path, result)
        });
        let prepared = prepared
            .into_iter()
            .map(|(path, result)| result.map(|work| (path, work)))
            .collect::<Result<Vec<_>, _>>()?;
        commit_prepared(store, embedder, prepared, options, &mut summary, on_event)?;
    }
    if options.prune {
        summary.num_pruned = prune_missing(store, files, roots, &options.collection)?;
    }
    if summary.num_indexed + summary.num_replaced + summary.num_pruned > 0 {
        store.optimize()?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Ingests documents whose text is already known (used by `vellum eval` for BEIR corpora).
pub fn ingest_texts(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    documents: Vec<TextDocument>,
    options: &IngestOptions,
    on_event: &mut dyn FnMut(IngestEvent<'_>),
) -> Result<IngestSummary, PipelineError> {
    let started = Instant::now();
    let options = &with_normalized_labels(options)?;
    let mut summary = IngestSummary {
        num_files: documents.len(),
        ..IngestSummary::default()
    };
    on_event(IngestEvent::Started {
        num_files: documents.len(),
    });
    let batch_size = options.batch_files.max(1) * 4;
    let mut documents = documents.into_iter().peekable();
    while documents.peek().is_some() {
        let batch: Vec<TextDocument> = documents.by_ref().take(batch_size).collect();
        let prepared = parallel_map(&batch, |doc| {
            let source_path = doc.source_path.clone();
            let result = prepare_text(store, embedder, doc.clone(), options);
            (source_path, result)
        });
        let prepared = prepared
            .into_iter()
            .map(|(path, result)| result.map(|work| (path, work)))
            .collect::<Result<Vec<_>, _>>()?;
        commit_prepared(store, embedder, prepared, options, &mut summary, on_event)?;
    }
    if summary.num_indexed + summary.num_replaced > 0 {
        store.optimize()?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The options with their labels normalised (so they compare equal to stored labels).
fn with_normalized_labels(options: &IngestOptions) -> Result<IngestOptions, PipelineError> {
    Ok(IngestOptions {
        labels: vellum_store::normalize_labels(&options.labels)?,
        ..options.clone()
    })
}

/// Maps `items` on plain scoped threads (one per core), keeping the input order.
///
/// Not rayon: extraction runs on its own big-stack thread and the PDF extractor uses rayon
/// inside. If rayon's workers were the ones waiting for those extraction threads, the nested
/// rayon jobs would find no free worker and the ingest would deadlock (seen with 2 cores).
fn parallel_map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let num_workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(items.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..num_workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let idx = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(idx) else { break };
                        done.push((idx, work(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(idx, _)| *idx);
    results.into_iter().map(|(_, result)| result).collect()
}

fn prepare_file(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    path: &Path,
    source_path: &str,
    options: &IngestOptions,
) -> Result<FileWork, PipelineError> {
    let size = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(error) => return Ok(FileWork::Reject(unreadable(&error, None))),
    };
    if size > options.limits.max_file_bytes {
        return Ok(FileWork::Reject(Rejection::new(
            "too_large",
            format!(
                "file too large: {} MB (limit {} MB)",
                size / 1_000_000,
                options.limits.max_file_bytes / 1_000_000
            ),
            None,
        )));
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => return Ok(FileWork::Reject(unreadable(&error, None))),
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let Some(replaces_existing) = needs_indexing(store, options, source_path, &sha256)? else {
        return Ok(FileWork::Unchanged);
    };
    if !options.retry_quarantined {
        if let Some(entry) = store.quarantine_entry(&options.collection, source_path)? {
            if entry.sha256.as_deref() == Some(sha256.as_str()) {
                return Ok(FileWork::StillQuarantined {
                    kind: entry.kind,
                    reason: entry.reason,
                });
            }
        }
    }
    let file_name = path.file_name().and_then(|n| n.to_str());
    let extracted = match &options.sandbox {
        Some(sandbox) => sandbox.extract_with_passwords(
            &bytes,
            file_name,
            &options.limits,
            &options.pdf_passwords,
        )?,
        None => extract_with_passwords(&bytes, file_name, &options.limits, &options.pdf_passwords),
    };
    let extracted = match (extracted, &options.ocr) {
        (Err(crate::Error::NeedsOcr { .. }), Some(ocr)) => {
            ocr_document(&bytes, ocr, options.sandbox.as_ref())?
        }
        (extracted, _) => extracted,
    };
    drop(bytes);
    let extracted = match extracted {
        Ok(extracted) => extracted,
        Err(error) => {
            return Ok(FileWork::Reject(Rejection::new(
                error.kind(),
                error.to_string(),
                Some(&sha256),
            )))
        }
    };
    let title = extracted
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| file_name.map(str::to_string))
        .unwrap_or_default();
    let document = new_document(
        options,
        source_path,
        title,
        sha256,
        extracted.format.as_str().to_string(),
        extracted.pages.len(),
        extracted.metadata,
    );
    Ok(prepared(
        embedder,
        document,
        &extracted.pages,
        options,
        replaces_existing,
    ))
}

/// OCRs a scanned PDF into a document (format `pdf`, metadata saying how it was read), with
/// poppler and Tesseract confined like the extraction worker when there is a sandbox.
fn ocr_document(
    bytes: &[u8],
    options: &OcrOptions,
    sandbox: Option<&Sandbox>,
) -> Result<crate::Result<ExtractedDocument>, SandboxError> {
    let pages = match sandbox {
        Some(sandbox) => ocr_pdf_sandboxed(bytes, options, sandbox)?,
        None => ocr_pdf(bytes, options),
    };
    Ok(pages.and_then(|text| ocr_pages(text, options)))
}

fn ocr_pages(text: OcrText, options: &OcrOptions) -> crate::Result<ExtractedDocument> {
    let OcrText { pages, engine } = text;
    let mut metadata = BTreeMap::new();
    metadata.insert(
        "ocr".to_string(),
        format!(
            "{engine}, language {}, {} dpi",
            options.language, options.dpi
        ),
    );
    if pages.iter().all(|page| page.trim().is_empty()) {
        return Err(crate::Error::NoText {
            reason: "scanned PDF: OCR found no text on any page".into(),
        });
    }
    Ok(ExtractedDocument {
        format: crate::extract::Format::Pdf,
        title: None,
        pages,
        metadata,
    })
}

fn unreadable(error: &std::io::Error, sha256: Option<&str>) -> Rejection {
    let advice = match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (give the user running vellum read access, then ingest again)"
        }
        std::io::ErrorKind::NotFound => " (it disappeared while being ingested)",
        _ => "",
    };
    Rejection::new(
        "unreadable",
        format!("cannot read: {error}{advice}"),
        sha256,
    )
}

fn prepare_text(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    doc: TextDocument,
    options: &IngestOptions,
) -> Result<FileWork, PipelineError> {
    let mut hasher = Sha256::new();
    hasher.update(doc.title.as_bytes());
    for page in &doc.pages {
        hasher.update([0u8]);
        hasher.update(page.as_bytes());
    }
    let sha256 = hex::encode(hasher.finalize());
    let Some(replaces_existing) = needs_indexing(store, options, &doc.source_path, &sha256)? else {
        return Ok(FileWork::Unchanged);
    };
    let document = new_document(
        options,
        &doc.source_path,
        doc.title,
        sha256,
        doc.format,
        doc.pages.len(),
        doc.metadata,
    );
    Ok(prepared(
        embedder,
        document,
        &doc.pages,
        options,
        replaces_existing,
    ))
}

/// Returns `None` when the stored version of `source_path` has this content and these labels
/// and is ready (nothing to do), else whether an older version exists that the new one
/// replaces.
fn needs_indexing(
    store: &Store,
    options: &IngestOptions,
    source_path: &str,
    sha256: &str,
) -> Result<Option<bool>, PipelineError> {
    let existing = store.find_document(&options.collection, source_path)?;
    match existing {
        Some(existing)
            if existing.sha256 == sha256
                && existing.labels == options.labels
                && existing.state == vellum_store::DocumentState::Ready =>
        {
            Ok(None)
        }
        existing => Ok(Some(existing.is_some())),
    }
}

/// Chunks the document's pages; a document without any text is an error for the summary.
fn prepared(
    embedder: &dyn PassageEmbedder,
    document: NewDocument,
    pages: &[String],
    options: &IngestOptions,
    replaces_existing: bool,
) -> FileWork {
    let chunks = make_chunks(embedder, pages, &options.chunk);
    if chunks.is_empty() {
        return FileWork::Reject(Rejection::new(
            "no_text",
            "no text: the file has no words to index",
            Some(&document.sha256),
        ));
    }
    FileWork::Index(Prepared {
        document,
        chunks,
        replaces_existing,
    })
}

fn new_document(
    options: &IngestOptions,
    source_path: &str,
    title: String,
    sha256: String,
    format: String,
    num_pages: usize,
    mut metadata: BTreeMap<String, String>,
) -> NewDocument {
    let collection = &options.collection;
    // Access labels come from whoever runs the ingest, never from the file: the store would
    // merge a `labels` metadata entry into them.
    metadata.remove("labels");
    NewDocument {
        id: labelled_document_id(collection, source_path, &sha256, &options.labels),
        collection: collection.to_string(),
        source_path: source_path.to_string(),
        title,
        sha256,
        format,
        num_pages: u32::try_from(num_pages).unwrap_or(u32::MAX),
        metadata,
        labels: options.labels.clone(),
    }
}

/// Chunks the pages so that each chunk fits the embedder's window. Returns (ordinal, page, text).
fn make_chunks(
    embedder: &dyn PassageEmbedder,
    pages: &[String],
    options: &ChunkOptions,
) -> Vec<(u32, u32, String)> {
    // Two of the window's tokens are [CLS] and [SEP].
    let max_tokens = embedder.max_tokens().saturating_sub(2).max(16);
    chunk_pages_with(
        pages,
        options,
        &|text| embedder.count_tokens(text),
        max_tokens,
    )
    .into_iter()
    .map(|chunk| (chunk.ordinal, chunk.page, chunk.text))
    .collect()
}

fn commit_prepared(
    store: &Store,
    embedder: &dyn PassageEmbedder,
    prepared: Vec<(String, FileWork)>,
    options: &IngestOptions,
    summary: &mut IngestSummary,
    on_event: &mut dyn FnMut(IngestEvent<'_>),
) -> Result<(), PipelineError> {
    let mut ready = Vec::new();
    for (source_path, work) in prepared {
        match work {
            FileWork::Index(doc) => ready.push((source_path, doc)),
            FileWork::Unchanged => {
                summary.num_unchanged += 1;
                on_event(IngestEvent::FileDone {
                    path: &source_path,
                    outcome: &FileOutcome::Unchanged,
                });
            }
            FileWork::StillQuarantined { kind, reason } => {
                summary.num_still_quarantined += 1;
                on_event(IngestEvent::FileDone {
                    path: &source_path,
                    outcome: &FileOutcome::StillQuarantined { kind, reason },
                });
            }
            FileWork::Reject(rejection) => {
                store.quarantine(&NewQuarantine {
                    collection: &options.collection,
                    source_path: &source_path,
                    sha256: rejection.sha256.as_deref(),
                    kind: &rejection.kind,
                    reason: &rejection.reason,
                })?;
                let outcome = FileOutcome::Quarantined {
                    kind: rejection.kind.clone(),
                    reason: rejection.reason.clone(),
                };
                on_event(IngestEvent::FileDone {
                    path: &source_path,
                    outcome: &outcome,
                });
                summary.quarantined.push(QuarantinedFile {
                    path: source_path,
                    kind: rejection.kind,
                    reason: rejection.reason,
                });
            }
        }
    }
    if ready.is_empty() {
        return Ok(());
    }
    let texts: Vec<&str> = ready
        .iter()
        .flat_map(|(_, doc)| doc.chunks.iter().map(|(_, _, text)| text.as_str()))
        .collect();
    let mut vectors = embedder.embed_passages(&texts)?.into_iter();
    let mut batch = Vec::with_capacity(ready.len());
    let mut outcomes = Vec::with_capacity(ready.len());
    for (source_path, doc) in ready {
        let mut chunks = Vec::with_capacity(doc.chunks.len());
        for (ordinal, page, text) in doc.chunks {
            let vector = vectors.next().ok_or_else(|| {
                vellum_models::Error::Runtime(
                    "the embedder returned fewer vectors than texts".into(),
                )
            })?;
            chunks.push(NewChunk {
                chunk_id: chunk_id(&doc.document.id, ordinal, &text),
                ordinal,
                page,
                text,
                vector,
            });
        }
        let num_pages = doc.document.num_pages;
        let num_chunks = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        summary.num_pages += u64::from(num_pages);
        summary.num_chunks += u64::from(num_chunks);
        let outcome = if doc.replaces_existing {
            summary.num_replaced += 1;
            FileOutcome::Replaced {
                num_pages,
                num_chunks,
            }
        } else {
            summary.num_indexed += 1;
            FileOutcome::Indexed {
                num_pages,
                num_chunks,
            }
        };
        outcomes.push((source_path, outcome));
        batch.push((doc.document, chunks));
    }
    store.commit_batch(batch)?;
    for (source_path, _) in &outcomes {
        store.release_quarantine(&options.collection, source_path)?;
    }
    for (source_path, outcome) in &outcomes {
        on_event(IngestEvent::FileDone {
            path: source_path,
            outcome,
        });
    }
    Ok(())
}

/// Deletes documents of `collection` stored under one of `roots` whose file is not in `files`.
fn prune_missing(
    store: &Store,
    files: &[PathBuf],
    roots: &[PathBuf],
    collection: &str,
) -> Result<usize, PipelineError> {
    let present: BTreeSet<String> = files.iter().map(|p| p.display().to_string()).collect();
    let roots: Vec<String> = roots
        .iter()
        .map(|r| canonical(r).display().to_string())
        .collect();
    let filter = SearchFilter {
        collections: Some(vec![collection.to_string()]),
        documents: None,
    };
    let gone = |source_path: &str| {
        let under_root = roots
            .iter()
            .any(|root| Path::new(source_path).starts_with(root));
        under_root && !present.contains(source_path)
    };
    let mut pruned = 0;
    for (id, source_path) in store.collection_sources(collection)? {
        if gone(&source_path) {
            store.delete_document(&id)?;
            pruned += 1;
        }
    }
    for entry in store.list_quarantine(&filter)? {
        if gone(&entry.source_path) {
            store.release_quarantine(collection, &entry.source_path)?;
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_content_sensitive() {
        let a = document_id("c", "/x.pdf", "abc");
        assert_eq!(a, document_id("c", "/x.pdf", "abc"));
        assert_ne!(a, document_id("c", "/x.pdf", "abd"));
        assert_ne!(a, document_id("d", "/x.pdf", "abc"));
        assert_eq!(chunk_id(&a, 0, "t"), chunk_id(&a, 0, "t"));
        assert_ne!(chunk_id(&a, 0, "t"), chunk_id(&a, 1, "t"));
        assert_eq!(a.as_str().len(), 32);
        let labels = vec!["phi".to_string()];
        assert_eq!(labelled_document_id("c", "/x.pdf", "abc", &[]), a);
        assert_ne!(labelled_document_id("c", "/x.pdf", "abc", &labels), a);
    }
}
