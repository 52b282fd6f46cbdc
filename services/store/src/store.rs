//! [`Store`]: the catalog, the full-text index and the vector table kept in step.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::catalog::{Catalog, HitDocument};
use crate::error::{Error, Result};
use crate::fulltext::{self, FulltextIndex};
use crate::scope::{encode_labels, normalize_labels};
use crate::types::{
    ChunkHit, ConsistencyReport, DocumentId, DocumentRecord, DocumentState, IndexFilter, NewChunk,
    NewDocument, NewQuarantine, QuarantineRecord, RecoveryReport, ReembedProgress, ScopeCount,
    SearchFilter, StoreOptions, StoreStats, StoredChunk,
};
use crate::vectors::VectorTable;
use vellum_authz::ReadScope;

/// File name of the SQLite catalog inside the data directory.
const CATALOG_FILE: &str = "catalog.sqlite";
/// Directory of the Tantivy index inside the data directory.
const FULLTEXT_DIR: &str = "fulltext";
/// Directory of the LanceDB database inside the data directory.
const VECTORS_DIR: &str = "vectors";
/// Creates `path` (and missing parents) owner-only: the data folder holds the documents' full
/// text, and Tantivy and LanceDB create their files with the process's default mode. An
/// existing folder keeps its mode (the `vellum` binary checks it at start).
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Extra candidates fetched from each engine to make up for hits of documents that are not
/// `ready` (mid-commit or mid-delete), which are dropped. During a large replacement more than
/// this many may be dropped and a search then returns fewer than `k` hits for a moment.
const NOT_READY_MARGIN: usize = 32;

/// One store of documents and chunks over a SQLite catalog, a Tantivy index and a LanceDB
/// table, all under one data directory.
///
/// Every method is synchronous. LanceDB calls run on a small tokio runtime owned by the
/// store, and the calling thread blocks until they finish, so do not call the store from an
/// async runtime's worker thread: use `tokio::task::spawn_blocking` (or a plain thread).
///
/// `Store` is `Send + Sync`. Searches run concurrently; commits, deletions and `optimize`
/// are serialised by an internal write lock. Only one `Store` (in any process) may open a
/// data directory at a time; a second one fails with [`Error::FulltextLocked`].
pub struct Store {
    data_dir: PathBuf,
    options: StoreOptions,
    catalog: Catalog,
    fulltext: FulltextIndex,
    vectors: VectorTable,
    write_lock: Mutex<()>,
    recovery: RecoveryReport,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.data_dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates `data_dir/{catalog.sqlite, fulltext/, vectors/}`.
    ///
    /// Fails with a "re-ingest needed" error ([`crate::ErrorKind::Conflict`]) if the catalog
    /// records another embedding dimension, or the existing vector table has another one.
    /// Another embedder of the same dimension opens the store; the collections whose vectors
    /// another embedder made then refuse vector searches and ingest until
    /// [`Store::reembed_collection`] has re-embedded them (see [`Store::check_embedders`]).
    ///
    /// A data directory written before chunks carried a scope is migrated here, once: the
    /// catalog gains its `labels` column (labels copied from the `labels` metadata entry), the
    /// Tantivy index is rebuilt from the catalog with the `scope` field, and the LanceDB table
    /// gains its `scope` column. Each step is crash-safe; an interrupted migration is finished
    /// by the next open. The Tantivy rebuild needs the index's writer lock: while another
    /// process writes to the old index, this fails with [`Error::FulltextLocked`].
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Store> {
        let create_dir = |path: PathBuf| -> Result<PathBuf> {
            create_private_dir(&path).map_err(|source| Error::DataDir {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        if options.embedding_dim == 0 {
            return Err(Error::InvalidInput {
                detail: "embedding dimension must be at least 1".into(),
            });
        }
        // The folder-wide format gate comes before any store opens (and perhaps migrates).
        let has_data = data_dir.join(CATALOG_FILE).exists();
        let found_format = crate::format::check(data_dir, has_data)?;
        let data_dir = create_dir(data_dir.to_path_buf())?;
        let catalog = Catalog::open(&data_dir.join(CATALOG_FILE), &options)?;
        let fulltext_dir = data_dir.join(FULLTEXT_DIR);
        fulltext::finish_interrupted_rebuild(&fulltext_dir)?;
        let fulltext_dir = create_dir(fulltext_dir)?;
        if fulltext::needs_rebuild(&fulltext_dir)? {
            fulltext::rebuild_from_catalog(&fulltext_dir, &catalog)?;
        }
        let fulltext = FulltextIndex::open(&fulltext_dir)?;
        let mut vectors = VectorTable::open(
            &create_dir(data_dir.join(VECTORS_DIR))?,
            options.embedding_dim,
        )?;
        migrate_vector_scopes(&catalog, &mut vectors)?;
        let mut store = Store {
            data_dir,
            options,
            catalog,
            fulltext,
            vectors,
            write_lock: Mutex::new(()),
            recovery: RecoveryReport::default(),
        };
        store.recovery = store.recover()?;
        crate::format::record(&store.data_dir, found_format)?;
        Ok(store)
    }

    /// Brings the three stores back in step after a crash: documents left `pending` (their
    /// commit never published) are removed from Tantivy, LanceDB and the catalog, and
    /// removals left `deleting` are finished. Rolling back is always safe: a rolled-back file
    /// is unchanged on disk and has no ready version, so the next ingest indexes it again.
    fn recover(&self) -> Result<RecoveryReport> {
        let _writes = self.lock_writes()?;
        let unfinished = self.catalog.unfinished_documents()?;
        if unfinished.is_empty() {
            return Ok(RecoveryReport::default());
        }
        let mut report = RecoveryReport::default();
        for (id, state) in &unfinished {
            match state {
                DocumentState::Pending => report.rolled_back.push(id.clone()),
                _ => report.deletions_finished.push(id.clone()),
            }
        }
        let ids: Vec<DocumentId> = unfinished.into_iter().map(|(id, _)| id).collect();
        self.catalog.set_state(&ids, DocumentState::Deleting)?;
        self.remove_from_indexes_and_catalog(&ids)?;
        tracing::warn!(
            data_dir = %self.data_dir.display(),
            rolled_back = report.rolled_back.len(),
            deletions_finished = report.deletions_finished.len(),
            "recovered documents left half-written by an interrupted ingest or delete"
        );
        Ok(report)
    }

    /// Returns every (collection, label set) scope that has ready documents, with their
    /// number, sorted by collection and labels: one grouped scan of a catalog index, cheap
    /// enough to call on every search. Cedar decides which of them a caller may use
    /// (`vellum_authz::Authorizer::read_scope`), and that [`ReadScope`] is what searches take.
    pub fn list_scopes(&self) -> Result<Vec<ScopeCount>> {
        self.catalog.list_scopes()
    }

    /// Returns what [`Store::open`] repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Compares the chunks of the catalog (ready documents), Tantivy and LanceDB. Reads every
    /// chunk id of all three stores: meant for `vellum check` and tests, not for every open.
    pub fn check_consistency(&self) -> Result<ConsistencyReport> {
        use std::collections::BTreeMap;
        let _writes = self.lock_writes()?;
        let catalog_keys = self.catalog.chunk_keys()?;
        let unfinished_documents = self.catalog.unfinished_documents()?.len();
        let fulltext_keys = self.fulltext.chunk_keys()?;
        let vector_keys = self.vectors.chunk_keys()?;
        // Index 0: ready in the catalog, 1: in Tantivy, 2: in LanceDB; counts catch
        // duplicates. The catalog's scope must be the one both indexes filter by.
        let mut seen: BTreeMap<(String, String), ([usize; 3], Option<String>)> = BTreeMap::new();
        let mut scope_mismatches = Vec::new();
        let mut catalog_chunks = 0;
        for key in catalog_keys {
            if key.ready {
                catalog_chunks += 1;
                let entry = seen.entry((key.document_id, key.chunk_id)).or_default();
                entry.0[0] += 1;
                entry.1 = Some(key.scope);
            }
        }
        let fulltext_chunks = fulltext_keys.len();
        let vector_chunks = vector_keys.len();
        for (engine, position, keys) in [("Tantivy", 1, fulltext_keys), ("LanceDB", 2, vector_keys)]
        {
            for (document_id, chunk_id, scope) in keys {
                let entry = seen
                    .entry((document_id.clone(), chunk_id.clone()))
                    .or_default();
                entry.0[position] += 1;
                if entry.1.as_ref().is_some_and(|expected| *expected != scope) {
                    scope_mismatches.push(format!(
                        "document {document_id} chunk {chunk_id}: scope in {engine} {scope:?} \
                         differs from the catalog's {:?}",
                        entry.1.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
        let mismatches = seen
            .into_iter()
            .filter(|(_, (counts, _))| *counts != [1, 1, 1])
            .map(
                |((document_id, chunk_id), ([catalog, fulltext, vectors], _))| {
                    format!(
                        "document {document_id} chunk {chunk_id}: ready in catalog {catalog}x, \
                     in Tantivy {fulltext}x, in LanceDB {vectors}x"
                    )
                },
            )
            .chain(scope_mismatches)
            .take(100)
            .collect();
        Ok(ConsistencyReport {
            catalog_chunks,
            fulltext_chunks,
            vector_chunks,
            unfinished_documents,
            mismatches,
        })
    }

    /// Records a file that ingest rejected (replacing an older entry for the same source).
    pub fn quarantine(&self, entry: &NewQuarantine<'_>) -> Result<()> {
        self.catalog.quarantine(entry)
    }

    /// Forgets the quarantine entry of a source, if any.
    pub fn release_quarantine(&self, collection: &str, source_path: &str) -> Result<()> {
        self.catalog.release_quarantine(collection, source_path)
    }

    /// Returns the quarantine entry of a source, if it has one.
    pub fn quarantine_entry(
        &self,
        collection: &str,
        source_path: &str,
    ) -> Result<Option<QuarantineRecord>> {
        self.catalog.quarantine_entry(collection, source_path)
    }

    /// Returns the quarantined files (of the filter's collections).
    /// (Quarantined files were never indexed: this is the ingest report's list of file names
    /// and reasons, not document text.)
    pub fn list_quarantine(&self, filter: &SearchFilter) -> Result<Vec<QuarantineRecord>> {
        // Quarantined files have no labels yet: only the collection restriction applies.
        self.catalog.list_quarantine(filter.collections.as_deref())
    }

    /// Returns the data directory this store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Returns the options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn lock_writes(&self) -> Result<MutexGuard<'_, ()>> {
        self.write_lock.lock().map_err(|_| Error::Poisoned {
            name: "store writes",
        })
    }

    /// Returns the document currently stored for (collection, source_path), any state: the
    /// ready version if there is one, else the most recently written one.
    pub fn find_document(
        &self,
        collection: &str,
        source_path: &str,
    ) -> Result<Option<DocumentRecord>> {
        self.catalog.find_document(collection, source_path)
    }

    /// Returns the document with this id, any state.
    pub fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRecord>> {
        self.catalog.get_document(id)
    }

    /// Commits many documents at once (one Tantivy commit, one LanceDB append for the batch)
    /// and returns their records, in input order.
    ///
    /// A document whose id is already stored and `ready` is left alone (its stored record is
    /// returned). A document whose (collection, source_path) is stored under another id
    /// replaces it: the old version is removed from all three stores.
    ///
    /// Order: catalog rows inserted as `pending` → Tantivy add + commit → LanceDB append →
    /// catalog switch (old versions `deleting`, new ones `ready`, one SQLite transaction) →
    /// old versions deleted. If a step before the switch fails, what was written is undone
    /// (best effort) and the error returned. If removing old versions fails after the switch,
    /// the batch is committed and the failure is only logged: the old versions stay in state
    /// `deleting`, invisible to search.
    ///
    /// The whole batch is validated first (ids, labels, vector lengths, finite values, no
    /// duplicate ids or sources within the batch); nothing is written if any document is
    /// invalid. Labels are normalised ([`crate::normalize_labels`]), merged with a `labels`
    /// metadata entry, and written back to that entry (removed when there are none).
    ///
    /// Labels are part of every chunk's scope, so a label change needs a new document id
    /// (the ingest pipeline derives ids from the labels too): committing a stored, ready id
    /// with other labels fails with [`Error::InvalidDocument`].
    pub fn commit_batch(
        &self,
        mut documents: Vec<(NewDocument, Vec<NewChunk>)>,
    ) -> Result<Vec<DocumentRecord>> {
        for (document, _) in &mut documents {
            normalize_document_labels(document)?;
        }
        self.validate_batch(&documents)?;
        let _writes = self.lock_writes()?;
        self.claim_collections(
            documents
                .iter()
                .map(|(document, _)| document.collection.as_str()),
        )?;

        let mut records: Vec<Option<DocumentRecord>> = vec![None; documents.len()];
        let mut new_positions = Vec::new();
        let mut new_documents = Vec::new();
        // Versions with the same id left `pending`/`deleting` by an interrupted commit or
        // delete: rewritten from scratch.
        let mut stale_ids = Vec::new();
        // Other versions of the same sources: removed once the new ones are ready.
        let mut retired_ids = Vec::new();
        for (position, (document, chunks)) in documents.into_iter().enumerate() {
            match self.catalog.get_document(&document.id)? {
                Some(existing) if existing.state == DocumentState::Ready => {
                    if existing.labels != document.labels {
                        return Err(Error::InvalidDocument {
                            id: document.id.clone(),
                            detail: format!(
                                "already stored with labels {:?}, not {:?}; a label change \
                                 needs a new document id",
                                existing.labels, document.labels
                            ),
                        });
                    }
                    records[position] = Some(existing);
                    continue;
                }
                Some(_) => stale_ids.push(document.id.clone()),
                None => {}
            }
            for other_id in self
                .catalog
                .ids_for_source(&document.collection, &document.source_path)?
            {
                if other_id != document.id {
                    retired_ids.push(other_id);
                }
            }
            new_positions.push(position);
            new_documents.push((document, chunks));
        }
        if new_documents.is_empty() {
            return collect_records(records);
        }
        let new_ids: Vec<DocumentId> = new_documents
            .iter()
            .map(|(document, _)| document.id.clone())
            .collect();

        self.catalog.insert_pending(&new_documents, &stale_ids)?;
        crash_point("commit:after-pending");
        if let Err(error) = self.fulltext.replace_and_commit(&stale_ids, &new_documents) {
            self.undo_new_documents(&new_ids, UndoFrom::Catalog);
            return Err(error);
        }
        crash_point("commit:after-fulltext");
        let vectors_written = self
            .vectors
            .delete_documents(&stale_ids)
            .and_then(|()| self.vectors.append(&new_documents));
        if let Err(error) = vectors_written {
            self.undo_new_documents(&new_ids, UndoFrom::Fulltext);
            return Err(error);
        }
        crash_point("commit:after-vectors");
        if let Err(error) = self.catalog.publish(&new_ids, &retired_ids) {
            self.undo_new_documents(&new_ids, UndoFrom::Vectors);
            return Err(error);
        }
        crash_point("commit:after-publish");
        if let Err(error) = self.remove_from_indexes_and_catalog(&retired_ids) {
            tracing::warn!(
                data_dir = %self.data_dir.display(),
                num_documents = retired_ids.len(),
                error = %error,
                "old document versions are left in state deleting"
            );
        }

        for (position, id) in new_positions.into_iter().zip(&new_ids) {
            let record = self
                .catalog
                .get_document(id)?
                .ok_or_else(|| Error::DocumentNotFound { id: id.clone() })?;
            if let Some(slot) = records.get_mut(position) {
                *slot = Some(record);
            }
        }
        collect_records(records)
    }

    fn validate_batch(&self, documents: &[(NewDocument, Vec<NewChunk>)]) -> Result<()> {
        let mut ids = HashSet::new();
        let mut sources = HashSet::new();
        for (document, chunks) in documents {
            let invalid = |detail: String| Error::InvalidDocument {
                id: document.id.clone(),
                detail,
            };
            if document.id.as_str().trim().is_empty() {
                return Err(invalid("the id is empty".into()));
            }
            if document.collection.trim().is_empty() {
                return Err(invalid("the collection name is empty".into()));
            }
            if !ids.insert(&document.id) {
                return Err(invalid("the id appears twice in the batch".into()));
            }
            if !sources.insert((&document.collection, &document.source_path)) {
                return Err(invalid(format!(
                    "source {:?} of collection {:?} appears twice in the batch",
                    document.source_path, document.collection
                )));
            }
            let mut chunk_ids = HashSet::new();
            for chunk in chunks {
                if !chunk_ids.insert(&chunk.chunk_id) {
                    return Err(invalid(format!(
                        "chunk id {} appears twice",
                        chunk.chunk_id
                    )));
                }
                if chunk.vector.len() != self.options.embedding_dim {
                    return Err(invalid(format!(
                        "chunk {} has a vector of length {}, the store's dimension is {}",
                        chunk.chunk_id,
                        chunk.vector.len(),
                        self.options.embedding_dim
                    )));
                }
                if chunk.vector.iter().any(|value| !value.is_finite()) {
                    return Err(invalid(format!(
                        "chunk {} has a vector with a non-finite value",
                        chunk.chunk_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Best-effort removal of documents whose commit failed half-way; failures are logged,
    /// the original error is what the caller sees.
    fn undo_new_documents(&self, ids: &[DocumentId], written_up_to: UndoFrom) {
        let mut undo_errors = Vec::new();
        if written_up_to >= UndoFrom::Vectors {
            if let Err(error) = self.vectors.delete_documents(ids) {
                undo_errors.push(error);
            }
        }
        if written_up_to >= UndoFrom::Fulltext {
            if let Err(error) = self.fulltext.delete_and_commit(ids) {
                undo_errors.push(error);
            }
        }
        if let Err(error) = self.catalog.delete_rows(ids) {
            undo_errors.push(error);
        }
        for error in undo_errors {
            tracing::warn!(
                data_dir = %self.data_dir.display(),
                error = %error,
                "undoing a failed commit failed; pending documents remain"
            );
        }
    }

    /// Removes documents from Tantivy, LanceDB and then the catalog (in that order, so that a
    /// failure leaves a catalog row that still names what is left to clean).
    fn remove_from_indexes_and_catalog(&self, ids: &[DocumentId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        crash_point("delete:after-mark");
        self.fulltext.delete_and_commit(ids)?;
        crash_point("delete:after-fulltext");
        self.vectors.delete_documents(ids)?;
        crash_point("delete:after-vectors");
        self.catalog.delete_rows(ids)
    }

    /// Removes from Tantivy and LanceDB the chunks of documents the catalog does not know at
    /// all. A commit never leaves such chunks (the catalog row comes first), but a backup taken
    /// file by file while a server ingests does: the catalog is copied first, so the indexes
    /// copied after it may hold documents committed in between. `vellum restore` calls this.
    /// Returns the documents removed.
    pub fn remove_orphans(&self) -> Result<Vec<DocumentId>> {
        use std::collections::BTreeSet;
        let _writes = self.lock_writes()?;
        let known: BTreeSet<String> = self
            .catalog
            .chunk_keys()?
            .into_iter()
            .map(|key| key.document_id)
            .chain(
                self.catalog
                    .unfinished_documents()?
                    .into_iter()
                    .map(|(id, _)| id.0),
            )
            .collect();
        let mut orphans: BTreeSet<String> = BTreeSet::new();
        for (document_id, _, _) in self
            .fulltext
            .chunk_keys()?
            .into_iter()
            .chain(self.vectors.chunk_keys()?)
        {
            if !known.contains(&document_id) {
                orphans.insert(document_id);
            }
        }
        let ids: Vec<DocumentId> = orphans.into_iter().map(DocumentId).collect();
        if !ids.is_empty() {
            self.fulltext.delete_and_commit(&ids)?;
            self.vectors.delete_documents(&ids)?;
        }
        Ok(ids)
    }

    /// Removes a document from all three stores (catalog state `deleting` first, then
    /// Tantivy, LanceDB, then the row). Fails with [`Error::DocumentNotFound`] if absent.
    pub fn delete_document(&self, id: &DocumentId) -> Result<()> {
        let _writes = self.lock_writes()?;
        if self.catalog.get_document(id)?.is_none() {
            return Err(Error::DocumentNotFound { id: id.clone() });
        }
        let ids = std::slice::from_ref(id);
        self.catalog.set_state(ids, DocumentState::Deleting)?;
        self.remove_from_indexes_and_catalog(ids)
    }

    /// Returns the ready documents inside `scope`, narrowed by `filter`, sorted by source
    /// path.
    pub fn list_documents(
        &self,
        scope: &ReadScope,
        filter: &SearchFilter,
    ) -> Result<Vec<DocumentRecord>> {
        self.catalog
            .list_ready_documents(&IndexFilter::within(scope, filter))
    }

    /// The ready documents of one collection as ingest's bookkeeping sees them: ids and source
    /// paths, to find files that are gone (prune, watch). No titles, labels or text: a front
    /// door lists documents with [`Store::list_documents`] and a [`ReadScope`].
    pub fn collection_sources(&self, collection: &str) -> Result<Vec<(DocumentId, String)>> {
        Ok(self
            .catalog
            .list_ready_documents(&IndexFilter::collection(collection))?
            .into_iter()
            .map(|record| (record.id, record.source_path))
            .collect())
    }

    /// Returns every collection ever committed to, with its number of ready documents,
    /// sorted by name (a collection whose documents were all deleted is listed with 0).
    pub fn list_collections(&self) -> Result<Vec<(String, u64)>> {
        self.catalog.list_collections()
    }

    /// Every collection's value of the per-collection setting `name` (collection → value);
    /// collections without one are absent.
    pub fn collection_settings(&self, name: &str) -> Result<BTreeMap<String, String>> {
        self.catalog.collection_settings(name)
    }

    /// Sets `collection`'s value of the setting `name`, or removes it (`None`). The collection
    /// must exist.
    pub fn set_collection_setting(
        &self,
        collection: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<()> {
        self.require_collection(collection)?;
        self.catalog.set_collection_setting(collection, name, value)
    }

    /// Fails with [`Error::InvalidInput`] if no document was ever committed to `collection`.
    fn require_collection(&self, collection: &str) -> Result<()> {
        if self
            .list_collections()?
            .iter()
            .any(|(existing, _)| existing == collection)
        {
            Ok(())
        } else {
            Err(Error::InvalidInput {
                detail: format!("there is no collection {collection:?}"),
            })
        }
    }

    /// The embedder whose vectors `collection` holds (its `embedder` setting, else the one the
    /// store was created with), or `reembedding:NAME` while [`Store::reembed_collection`] is
    /// replacing them with NAME's (also after it was interrupted).
    pub fn collection_embedder(&self, collection: &str) -> Result<String> {
        Ok(self
            .catalog
            .collection_settings(EMBEDDER_SETTING)?
            .remove(collection)
            .unwrap_or_else(|| self.catalog.first_embedder().to_string()))
    }

    /// Fails with [`Error::CollectionEmbedder`] ([`crate::ErrorKind::Conflict`]) if any of
    /// `collections` holds vectors of another embedder than this store was opened with
    /// ([`StoreOptions::embedding_model`]): a query vector is never compared with them.
    /// Collections that do not exist pass.
    pub fn check_embedders<'a>(&self, collections: impl Iterator<Item = &'a str>) -> Result<()> {
        let settings = self.catalog.collection_settings(EMBEDDER_SETTING)?;
        let running = &self.options.embedding_model;
        for collection in collections {
            let recorded = settings
                .get(collection)
                .map_or(self.catalog.first_embedder(), String::as_str);
            if recorded != running {
                return Err(embedder_conflict(collection, recorded, running));
            }
        }
        Ok(())
    }

    /// Before a commit into `collections` (under the write lock): a collection without ready
    /// documents (new, or emptied) takes this store's embedder; any other must already hold
    /// its vectors.
    fn claim_collections<'a>(&self, collections: impl Iterator<Item = &'a str>) -> Result<()> {
        let settings = self.catalog.collection_settings(EMBEDDER_SETTING)?;
        let counts: BTreeMap<String, u64> = self.catalog.list_collections()?.into_iter().collect();
        let running = &self.options.embedding_model;
        let mut seen = std::collections::BTreeSet::new();
        for collection in collections {
            if !seen.insert(collection) {
                continue;
            }
            let recorded = settings
                .get(collection)
                .map_or(self.catalog.first_embedder(), String::as_str);
            if recorded == running {
                continue;
            }
            if counts.get(collection).copied().unwrap_or(0) > 0 {
                return Err(embedder_conflict(collection, recorded, running));
            }
            self.catalog
                .set_collection_setting(collection, EMBEDDER_SETTING, Some(running))?;
        }
        Ok(())
    }

    /// Replaces the vectors of every ready document of `collection` with `embed`'s (this
    /// store's embedder), `documents_per_step` documents per LanceDB commit, and records the
    /// store's embedder as the collection's. Nothing else changes: catalog, full-text index,
    /// chunk ids and scopes stay as they are.
    ///
    /// While it runs the collection is marked `reembedding:NAME`, so vector searches and
    /// ingest into it are refused; if it is interrupted the mark stays (fail closed) and
    /// running it again finishes the work. Other collections are searched and written to
    /// meanwhile: the write lock is held for one step at a time. `progress` is told the
    /// documents and chunks done after each step.
    pub fn reembed_collection(
        &self,
        collection: &str,
        documents_per_step: usize,
        embed: &mut PassageVectors<'_>,
        progress: &mut dyn FnMut(&ReembedProgress),
    ) -> Result<ReembedProgress> {
        self.require_collection(collection)?;
        let running = self.options.embedding_model.clone();
        let previous = self.collection_embedder(collection)?;
        self.catalog.set_collection_setting(
            collection,
            EMBEDDER_SETTING,
            Some(&format!("{REEMBEDDING_PREFIX}{running}")),
        )?;
        let documents = self
            .catalog
            .list_ready_documents(&IndexFilter::collection(collection))?;
        let mut done = ReembedProgress {
            previous,
            documents_total: documents.len() as u64,
            ..ReembedProgress::default()
        };
        for step in documents.chunks(documents_per_step.max(1)) {
            let mut rows = Vec::with_capacity(step.len());
            for record in step {
                let chunks = self.catalog.document_chunks(&record.id, collection)?;
                rows.push((record, chunks));
            }
            let texts: Vec<&str> = rows
                .iter()
                .flat_map(|(_, chunks)| chunks.iter().map(|chunk| chunk.text.as_str()))
                .collect();
            let vectors = embed(&texts).map_err(|detail| Error::InvalidInput {
                detail: format!("embedding the chunks of {collection:?} failed: {detail}"),
            })?;
            if vectors.len() != texts.len() {
                return Err(Error::InvalidInput {
                    detail: format!(
                        "the embedder returned {} vectors for {} chunks",
                        vectors.len(),
                        texts.len()
                    ),
                });
            }
            let mut vectors = vectors.into_iter();
            let mut new_rows = Vec::with_capacity(rows.len());
            for (record, chunks) in rows {
                let document = NewDocument {
                    id: record.id.clone(),
                    collection: record.collection.clone(),
                    source_path: record.source_path.clone(),
                    title: record.title.clone(),
                    sha256: record.sha256.clone(),
                    format: record.format.clone(),
                    num_pages: record.num_pages,
                    metadata: record.metadata.clone(),
                    labels: record.labels.clone(),
                };
                let chunks: Vec<NewChunk> = chunks
                    .into_iter()
                    .zip(vectors.by_ref())
                    .map(|(chunk, vector)| NewChunk {
                        chunk_id: chunk.chunk_id,
                        ordinal: chunk.ordinal,
                        page: chunk.page,
                        text: chunk.text,
                        vector,
                    })
                    .collect();
                new_rows.push((document, chunks));
            }
            let _writes = self.lock_writes()?;
            // A document deleted or replaced while its chunks were embedded keeps its fate.
            let mut still_ready = Vec::with_capacity(new_rows.len());
            for row in new_rows {
                if self
                    .catalog
                    .get_document(&row.0.id)?
                    .is_some_and(|record| record.state == DocumentState::Ready)
                {
                    still_ready.push(row);
                }
            }
            let ids: Vec<DocumentId> = still_ready
                .iter()
                .map(|(document, _)| document.id.clone())
                .collect();
            self.vectors.delete_documents(&ids)?;
            crash_point("reembed-between-delete-and-append");
            self.vectors.append(&still_ready)?;
            drop(_writes);
            done.documents_done += step.len() as u64;
            done.chunks_done += still_ready
                .iter()
                .map(|(_, chunks)| chunks.len() as u64)
                .sum::<u64>();
            progress(&done);
        }
        self.catalog
            .set_collection_setting(collection, EMBEDDER_SETTING, Some(&running))?;
        Ok(done)
    }

    /// Returns all chunks of a document in ordinal order (for whole-document summaries). A
    /// document outside `scope` is [`Error::DocumentNotFound`], like a missing one.
    pub fn document_chunks(&self, scope: &ReadScope, id: &DocumentId) -> Result<Vec<StoredChunk>> {
        let record = self
            .catalog
            .get_document(id)?
            .filter(|record| scope.permits(&record.collection, &record.labels))
            .ok_or_else(|| Error::DocumentNotFound { id: id.clone() })?;
        self.catalog.document_chunks(id, &record.collection)
    }

    /// Returns the BM25 top `k` chunks for user text, matched against chunk text and title.
    ///
    /// The collection and scope filters are part of the Tantivy query. The query is parsed leniently:
    /// punctuation, quotes, colons and operators never cause an error; an empty query returns
    /// no hits. Only chunks of `ready` documents are returned.
    pub fn search_bm25(
        &self,
        scope: &ReadScope,
        query: &str,
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<ChunkHit>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let hits = self.fulltext.search(
            query,
            &IndexFilter::within(scope, filter),
            k.saturating_add(NOT_READY_MARGIN),
        )?;
        self.keep_ready(hits.into_iter().map(|hit| (hit.chunk, hit.score)), k)
    }

    /// Returns the `k` chunks nearest to `vector` (cosine; score = 1 - cosine distance,
    /// higher is better).
    ///
    /// The collection and scope filters are a LanceDB prefilter, so the top `k` are chosen
    /// among the allowed chunks. Only chunks of `ready` documents are returned. Fails with
    /// [`crate::ErrorKind::Invalid`] if the vector's length is not the store's dimension.
    pub fn search_vector(
        &self,
        scope: &ReadScope,
        vector: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<ChunkHit>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let searched = scope.scopes().iter().map(|scope| scope.collection.as_str());
        match &filter.collections {
            Some(wanted) => self.check_embedders(
                searched.filter(|collection| wanted.iter().any(|name| name == collection)),
            )?,
            None => self.check_embedders(searched)?,
        }
        let hits = self.vectors.search(
            vector,
            &IndexFilter::within(scope, filter),
            k.saturating_add(NOT_READY_MARGIN),
        )?;
        self.keep_ready(hits.into_iter().map(|hit| (hit.chunk, hit.score)), k)
    }

    /// Drops hits whose document is not `ready` in the catalog and adds title and source
    /// path to the rest. Since [`Store::open`] recovers what a crash left behind, non-ready
    /// hits can only come from commits or deletions in flight in this process.
    fn keep_ready(
        &self,
        hits: impl Iterator<Item = (StoredChunk, f32)>,
        k: usize,
    ) -> Result<Vec<ChunkHit>> {
        let hits: Vec<(StoredChunk, f32)> = hits.collect();
        let documents = self
            .catalog
            .hit_documents(hits.iter().map(|(chunk, _)| chunk.document_id.clone()))?;
        Ok(hits
            .into_iter()
            .filter_map(|(chunk, score)| {
                let document: &HitDocument = documents.get(&chunk.document_id)?;
                (document.state == DocumentState::Ready).then(|| ChunkHit {
                    title: document.title.clone(),
                    source_path: document.source_path.clone(),
                    chunk,
                    score,
                })
            })
            .take(k)
            .collect())
    }

    /// Returns document and chunk counts and the engines' commit counters.
    pub fn stats(&self) -> Result<StoreStats> {
        let counts = self.catalog.counts()?;
        Ok(StoreStats {
            num_documents: counts.num_documents,
            num_chunks: counts.num_chunks,
            fulltext_opstamp: self.fulltext.commit_opstamp()?,
            vectors_version: self.vectors.version()?,
        })
    }

    /// Compacts LanceDB fragments (and prunes superseded versions) and merges Tantivy
    /// segments; call it after a big ingest.
    pub fn optimize(&self) -> Result<()> {
        let _writes = self.lock_writes()?;
        self.vectors.optimize()?;
        self.fulltext.merge_segments()
    }
}

/// The per-collection setting (see [`Store::collection_settings`]) naming the embedder whose
/// vectors the collection holds.
pub const EMBEDDER_SETTING: &str = "embedder";

/// What [`Store::reembed_collection`] calls to embed chunk texts: one vector per text, in order,
/// or why not.
pub type PassageVectors<'a> = dyn FnMut(&[&str]) -> std::result::Result<Vec<Vec<f32>>, String> + 'a;

/// How an interrupted or running re-embed marks its collection's `embedder` setting.
const REEMBEDDING_PREFIX: &str = "reembedding:";

/// The error for a collection whose vectors this store's embedder did not make.
fn embedder_conflict(collection: &str, recorded: &str, running: &str) -> Error {
    let detail = match recorded.strip_prefix(REEMBEDDING_PREFIX) {
        Some(target) => format!(
            "collection {collection:?} was being re-embedded with {target:?} and the re-embed \
             did not finish: run `vellum reembed {collection}` with that embedder to finish it"
        ),
        None => format!(
            "collection {collection:?} holds vectors made by the embedder {recorded:?}, and \
             this vellum embeds with {running:?}: run `vellum reembed {collection}` to \
             re-embed it with {running:?}, or run vellum with the embedder {recorded:?}"
        ),
    };
    Error::CollectionEmbedder {
        collection: collection.to_string(),
        detail,
    }
}

/// Crash injection for the crash harness (`tests/crash.rs`): when the
/// environment variable `VELLUM_CRASH_POINT` names this point, the process aborts here, as a
/// power cut or `kill -9` would stop it (no destructor, no flush). Random `kill -9` timing
/// seldom lands inside a commit's few milliseconds; these points make sure every window
/// between two stores' commits is tried. Only in builds with the `crash-points` feature, which
/// the workspace's test build turns on (`vellum`'s dev-dependencies); a release binary has none.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var("VELLUM_CRASH_POINT").ok());
    if point.as_deref() == Some(name) {
        std::process::abort();
    }
}

/// Without the `crash-points` feature there is nothing to inject.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// Normalises a document's labels, merged with its `labels` metadata entry (so a restriction
/// given either way is kept), and writes them back to that entry.
fn normalize_document_labels(document: &mut NewDocument) -> Result<()> {
    let from_metadata = document
        .metadata
        .get("labels")
        .map(|value| value.split(',').map(str::to_string).collect::<Vec<_>>())
        .unwrap_or_default();
    let labels =
        normalize_labels(document.labels.iter().chain(&from_metadata)).map_err(|error| {
            Error::InvalidDocument {
                id: document.id.clone(),
                detail: error.to_string(),
            }
        })?;
    if labels.is_empty() {
        document.metadata.remove("labels");
    } else {
        document
            .metadata
            .insert("labels".to_string(), encode_labels(&labels));
    }
    document.labels = labels;
    Ok(())
}

/// Gives a LanceDB table written before scopes existed its `scope` column, and (re)writes the
/// scopes of labelled documents while the catalog says a migration is pending. The pending
/// mark is recorded before the column is added and cleared only after the last update, so a
/// crash in between is finished at the next open.
fn migrate_vector_scopes(catalog: &Catalog, vectors: &mut VectorTable) -> Result<()> {
    if !vectors.has_scope_column() {
        catalog.begin_scope_migration()?;
        vectors.add_scope_column()?;
        crash_point("migrate:after-scope-column");
    }
    if catalog.scope_migration_pending()? {
        let labelled = catalog.labelled_document_scopes()?;
        vectors.set_scopes(&labelled)?;
        catalog.finish_scope_migration()?;
        tracing::info!(
            labelled_documents = labelled.len(),
            "vector table scopes migrated"
        );
    }
    Ok(())
}

/// How far a failed commit got, i.e. what has to be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum UndoFrom {
    /// Only catalog rows were written.
    Catalog,
    /// Catalog rows and Tantivy documents were written.
    Fulltext,
    /// Catalog rows, Tantivy documents and LanceDB rows were written.
    Vectors,
}

fn collect_records(records: Vec<Option<DocumentRecord>>) -> Result<Vec<DocumentRecord>> {
    records
        .into_iter()
        .map(|record| {
            record.ok_or_else(|| Error::Runtime {
                detail: "a committed document has no record (bug)".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
