//! vellum-store: where Vellum keeps documents, chunks and their two search indexes.
//!
//! A [`Store`] owns one data directory holding three stores kept in step:
//!
//! - `catalog.sqlite`: the SQLite catalog, the source of truth for which documents exist and
//!   whether they are searchable ([`DocumentState`]); it also keeps each chunk's text.
//! - `fulltext/`: a Tantivy index of chunk text and titles, for BM25 search
//!   ([`Store::search_bm25`]).
//! - `vectors/`: a LanceDB table of chunk embeddings, for cosine search
//!   ([`Store::search_vector`]).
//!
//! Documents arrive in batches through [`Store::commit_batch`] as a [`NewDocument`] with its
//! [`NewChunk`]s; searches return [`ChunkHit`]s, restricted by a [`SearchFilter`] and only
//! ever from documents whose catalog state is `ready`.
//!
//! The store does not parse, chunk or embed anything (that is `vellum-ingest` and
//! `vellum-models`), does not fuse the two result lists (that is `vellum-rag`) and does not
//! check who may read which collection.
//!
//! All methods are synchronous and block; see [`Store`] for the threading contract.
//!
//! ```
//! use std::collections::BTreeMap;
//! use vellum_store::{
//!     ChunkId, DocumentId, NewChunk, NewDocument, SearchFilter, Store, StoreOptions,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_dir = tempfile::tempdir()?;
//! let options = StoreOptions { embedding_dim: 2, embedding_model: "stub".into() };
//! let store = Store::open(data_dir.path(), options)?;
//! let document = NewDocument {
//!     id: DocumentId("d1".into()),
//!     collection: "notes".into(),
//!     source_path: "notes/tides.txt".into(),
//!     title: "Tides".into(),
//!     sha256: "00".into(),
//!     format: "txt".into(),
//!     num_pages: 1,
//!     metadata: BTreeMap::new(),
//!     labels: vec!["privileged".into()],
//! };
//! let chunk = NewChunk {
//!     chunk_id: ChunkId("d1-0".into()),
//!     ordinal: 0,
//!     page: 1,
//!     text: "The moon raises the tides.".into(),
//!     vector: vec![1.0, 0.0],
//! };
//! store.commit_batch(vec![(document, vec![chunk])])?;
//!
//! let by_words = store.search_bm25("tides", &SearchFilter::default(), 5)?;
//! let by_vector = store.search_vector(&[1.0, 0.0], &SearchFilter::default(), 5)?;
//! assert_eq!(by_words[0].chunk.chunk_id.as_str(), "d1-0");
//! assert_eq!(by_vector[0].title, "Tides");
//!
//! // Restrict to (collection, labels) scopes, inside both engines.
//! let unlabelled = SearchFilter {
//!     scopes: Some(vec![vellum_store::scope_key("notes", &[])]),
//!     ..SearchFilter::default()
//! };
//! assert!(store.search_bm25("tides", &unlabelled, 5)?.is_empty());
//! let scopes = store.list_scopes()?;
//! assert_eq!(scopes[0].labels, vec!["privileged".to_string()]);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod catalog;
mod error;
mod fulltext;
mod scope;
mod store;
mod types;
mod vectors;

pub use crate::error::{Error, ErrorKind, Result};
pub use crate::scope::{normalize_labels, scope_key};
pub use crate::store::Store;
pub use crate::types::{
    ChunkHit, ChunkId, ConsistencyReport, DocumentId, DocumentRecord, DocumentState, NewChunk,
    NewDocument, NewQuarantine, QuarantineRecord, RecoveryReport, ScopeCount, SearchFilter,
    StoreOptions, StoreStats, StoredChunk,
};
