//! Plain data types of the store's public API: ids, documents, chunks, hits, filters.
//!
//! Compatibility: `DocumentState` is persisted in the catalog as its lowercase name
//! (`pending`, `ready`, `deleting`); renaming a variant needs a catalog migration.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use vellum_authz::ReadScope;

/// Identifies one version of a document (the ingest crate derives it from the content hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocumentId(pub String);

impl DocumentId {
    /// Returns the id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one chunk of one document version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub String);

impl ChunkId {
    /// Returns the id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a store is opened: the embedding space every vector in it belongs to.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Length of every chunk vector.
    pub embedding_dim: usize,
    /// Name of the model that produced the vectors; recorded in the catalog on creation.
    pub embedding_model: String,
}

/// A document to commit, without its chunks.
#[derive(Debug, Clone, Serialize)]
pub struct NewDocument {
    /// The version's id; committing the same id twice is a no-op.
    pub id: DocumentId,
    /// Collection the document belongs to.
    pub collection: String,
    /// Where it came from; (collection, source_path) names "the same document" across versions.
    pub source_path: String,
    /// Human-readable title (indexed for BM25 too).
    pub title: String,
    /// Hex SHA-256 of the source bytes.
    pub sha256: String,
    /// Source format, e.g. `pdf`, `html`.
    pub format: String,
    /// Number of pages of the source.
    pub num_pages: u32,
    /// Free-form metadata, stored as JSON in the catalog.
    ///
    /// Its `labels` entry (comma-separated) is merged into [`NewDocument::labels`] and then
    /// rewritten from them, so that readers of the metadata see the labels that are indexed.
    pub metadata: BTreeMap<String, String>,
    /// Access labels (e.g. `privileged`, `phi`): part of every chunk's scope
    /// ([`crate::scope_key`]), so searches can be restricted to (collection, labels) scopes
    /// inside both engines. [`crate::Store::commit_batch`] normalises them
    /// ([`crate::normalize_labels`]) and rejects invalid ones.
    pub labels: Vec<String>,
}

/// A chunk to commit with its document.
#[derive(Debug, Clone)]
pub struct NewChunk {
    /// The chunk's id, unique within its document.
    pub chunk_id: ChunkId,
    /// Position of the chunk in the document, from 0.
    pub ordinal: u32,
    /// Page the chunk starts on.
    pub page: u32,
    /// The chunk's text.
    pub text: String,
    /// L2-normalised embedding of the text; its length must equal the store's dimension.
    pub vector: Vec<f32>,
}

/// Where a document is in its life cycle; only `Ready` documents are searchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentState {
    /// Catalog row written, indexes not yet committed.
    Pending,
    /// In all three stores and searchable.
    Ready,
    /// Being removed from the indexes.
    Deleting,
}

impl DocumentState {
    /// Returns the name stored in the catalog's `state` column.
    pub(crate) fn as_catalog_str(self) -> &'static str {
        match self {
            DocumentState::Pending => "pending",
            DocumentState::Ready => "ready",
            DocumentState::Deleting => "deleting",
        }
    }

    /// Parses the catalog's `state` column.
    pub(crate) fn from_catalog_str(value: &str) -> Option<DocumentState> {
        match value {
            "pending" => Some(DocumentState::Pending),
            "ready" => Some(DocumentState::Ready),
            "deleting" => Some(DocumentState::Deleting),
            _ => None,
        }
    }
}

/// A document as the catalog records it.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentRecord {
    /// The version's id.
    pub id: DocumentId,
    /// Collection the document belongs to.
    pub collection: String,
    /// Where it came from.
    pub source_path: String,
    /// Human-readable title.
    pub title: String,
    /// Hex SHA-256 of the source bytes.
    pub sha256: String,
    /// Source format.
    pub format: String,
    /// Number of pages of the source.
    pub num_pages: u32,
    /// Number of chunks stored for it.
    pub num_chunks: u32,
    /// Life-cycle state.
    pub state: DocumentState,
    /// When the catalog row was written, RFC 3339 UTC.
    pub ingested_at: String,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// Access labels, normalised (lowercase, sorted, no duplicates); empty for none.
    pub labels: Vec<String>,
}

impl DocumentRecord {
    /// The scope key of the document's chunks ([`crate::scope_key`]).
    pub fn scope_key(&self) -> String {
        crate::scope::scope_key(&self.collection, &self.labels)
    }
}

/// A chunk as stored (without its vector).
#[derive(Debug, Clone, Serialize)]
pub struct StoredChunk {
    /// The chunk's id.
    pub chunk_id: ChunkId,
    /// The document version it belongs to.
    pub document_id: DocumentId,
    /// The document's collection.
    pub collection: String,
    /// Position in the document, from 0.
    pub ordinal: u32,
    /// Page the chunk starts on.
    pub page: u32,
    /// The chunk's text.
    pub text: String,
}

/// One search result: a chunk, its score and enough about its document to cite it.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkHit {
    /// The matching chunk.
    pub chunk: StoredChunk,
    /// Engine score, higher is better (BM25 score, or 1 - cosine distance).
    pub score: f32,
    /// Title of the chunk's document.
    pub title: String,
    /// Source path of the chunk's document.
    pub source_path: String,
}

/// Narrows a search or listing to some collections. It can only narrow: what may be read at
/// all comes from the [`ReadScope`] every search and read takes, which only Cedar builds.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Only these collections; `None` means every collection the scope permits, an empty list
    /// means none.
    pub collections: Option<Vec<String>>,
    /// Only these documents (ids of document versions); `None` means every document, an
    /// empty list means none. An attorney asks about one contract: `ask --document`.
    pub documents: Option<Vec<String>>,
}

/// What runs inside the engines: the caller's narrowing plus the scope keys of a
/// [`ReadScope`] (or, for the store's own bookkeeping, no scope restriction).
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexFilter {
    /// Only these collections; `None` means all, an empty list means none.
    pub(crate) collections: Option<Vec<String>>,
    /// Only chunks and documents whose scope key ([`crate::scope_key`]) is one of these;
    /// `None` means all (bookkeeping only), an empty list means none.
    pub(crate) scopes: Option<Vec<String>>,
    /// Only these documents; `None` means all, an empty list means none.
    pub(crate) documents: Option<Vec<String>>,
}

impl IndexFilter {
    /// The filter of a read under `scope`, narrowed by `narrowing`.
    pub(crate) fn within(scope: &ReadScope, narrowing: &SearchFilter) -> IndexFilter {
        IndexFilter {
            collections: narrowing.collections.clone(),
            documents: narrowing.documents.clone(),
            scopes: Some(
                scope
                    .scopes()
                    .iter()
                    .map(|scope| crate::scope::scope_key(&scope.collection, &scope.labels))
                    .collect(),
            ),
        }
    }

    /// Every document of one collection, for the store's own bookkeeping.
    pub(crate) fn collection(name: &str) -> IndexFilter {
        IndexFilter {
            collections: Some(vec![name.to_string()]),
            scopes: None,
            documents: None,
        }
    }

    /// True when the filter can match nothing (an empty list of collections or scopes).
    pub(crate) fn matches_nothing(&self) -> bool {
        self.collections.as_ref().is_some_and(Vec::is_empty)
            || self.scopes.as_ref().is_some_and(Vec::is_empty)
            || self.documents.as_ref().is_some_and(Vec::is_empty)
    }
}

/// One (collection, label set) scope with ready documents ([`crate::Store::list_scopes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeCount {
    /// The collection.
    pub collection: String,
    /// The label set, normalised; empty for unlabelled documents.
    pub labels: Vec<String>,
    /// Ready documents in this scope.
    pub num_documents: u64,
}

impl ScopeCount {
    /// The scope's key, as the indexes store it.
    pub fn scope_key(&self) -> String {
        crate::scope::scope_key(&self.collection, &self.labels)
    }
}

/// Counters describing the store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    /// Ready documents.
    pub num_documents: u64,
    /// Chunks of ready documents.
    pub num_chunks: u64,
    /// Opstamp of the last Tantivy commit.
    pub fulltext_opstamp: u64,
    /// Version of the LanceDB table.
    pub vectors_version: u64,
}

/// A file that ingest rejected, to be recorded in the quarantine.
#[derive(Debug, Clone)]
pub struct NewQuarantine<'a> {
    /// The collection it was meant for.
    pub collection: &'a str,
    /// Its source path.
    pub source_path: &'a str,
    /// SHA-256 of its bytes, if they could be read.
    pub sha256: Option<&'a str>,
    /// A short machine-readable category (`encrypted`, `no_text`, `timeout`, ...).
    pub kind: &'a str,
    /// Why, in words a person understands.
    pub reason: &'a str,
}

/// A quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineRecord {
    /// The collection it was meant for.
    pub collection: String,
    /// Its source path.
    pub source_path: String,
    /// SHA-256 of its bytes, if they could be read.
    pub sha256: Option<String>,
    /// A short machine-readable category.
    pub kind: String,
    /// Why it was rejected.
    pub reason: String,
    /// When (RFC 3339, UTC).
    pub quarantined_at: String,
}

/// What [`crate::Store::open`] repaired: documents a crash or failed commit left half-written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// `pending` documents rolled back (their file is ingested again next time).
    pub rolled_back: Vec<DocumentId>,
    /// `deleting` documents whose removal was finished.
    pub deletions_finished: Vec<DocumentId>,
}

/// How far [`crate::Store::reembed_collection`] got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReembedProgress {
    /// The embedder the collection was recorded with before (`reembedding:…` if an earlier
    /// re-embed was interrupted).
    pub previous: String,
    /// Ready documents of the collection when the re-embed began.
    pub documents_total: u64,
    /// Documents re-embedded so far (one deleted meanwhile counts as done).
    pub documents_done: u64,
    /// Chunks given new vectors so far.
    pub chunks_done: u64,
}

/// Whether the catalog, Tantivy and LanceDB hold the same chunks
/// ([`crate::Store::check_consistency`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsistencyReport {
    /// Chunks of ready documents in the catalog.
    pub catalog_chunks: usize,
    /// Chunks in the Tantivy index.
    pub fulltext_chunks: usize,
    /// Chunks in the LanceDB table.
    pub vector_chunks: usize,
    /// Documents not `ready` in the catalog.
    pub unfinished_documents: usize,
    /// (document id, chunk id) pairs that are not in all three stores, with where they are
    /// missing; at most 100 are listed.
    pub mismatches: Vec<String>,
}

impl ConsistencyReport {
    /// True if all three stores hold exactly the same chunks and nothing is unfinished.
    pub fn is_consistent(&self) -> bool {
        self.mismatches.is_empty()
            && self.unfinished_documents == 0
            && self.catalog_chunks == self.fulltext_chunks
            && self.catalog_chunks == self.vector_chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_state_round_trips_through_catalog_names() {
        for state in [
            DocumentState::Pending,
            DocumentState::Ready,
            DocumentState::Deleting,
        ] {
            assert_eq!(
                DocumentState::from_catalog_str(state.as_catalog_str()),
                Some(state)
            );
        }
        assert_eq!(DocumentState::from_catalog_str("Ready"), None);
    }

    #[test]
    fn document_state_serializes_lowercase() {
        let json = serde_json::to_string(&DocumentState::Deleting).unwrap_or_default();
        assert_eq!(json, "\"deleting\"");
    }
}
