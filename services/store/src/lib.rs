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
//! [`NewChunk`]s; searches return [`ChunkHit`]s, only ever from documents whose catalog state
//! is `ready`.
//!
//! Every search and read of document text takes a [`ReadScope`]: the (collection, labels)
//! scopes Cedar permitted the caller, which only `vellum_authz::Authorizer::read_scope`
//! builds. It becomes a term-set clause in Tantivy and a prefilter in LanceDB, so a document
//! outside it is never scored or returned; a [`SearchFilter`] can narrow further, never widen.
//!
//! The store does not parse, chunk or embed anything (that is `vellum-ingest` and
//! `vellum-models`), does not fuse the two result lists (that is `vellum-rag`) and does not
//! decide who may read what (that is Cedar, asked by the application layer `vellum-app`).
//!
//! All methods are synchronous and block; see [`Store`] for the threading contract.
//!
//! ```
//! use std::collections::BTreeMap;
//! use vellum_authz::{Action, Authorizer, PrincipalInfo, RequestContext, Scope};
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
//! // Cedar decides which scopes with documents the caller may search.
//! let candidates: Vec<Scope> = store
//!     .list_scopes()?
//!     .into_iter()
//!     .map(|scope| Scope::new(scope.collection, scope.labels))
//!     .collect();
//! let ask = |policy: &str| -> Result<_, Box<dyn std::error::Error>> {
//!     let cedar = Authorizer::from_sources(&[("p.cedar".into(), policy.into())])?;
//!     let alice = PrincipalInfo::new("alice", ["staff"], Vec::<String>::new());
//!     Ok(cedar.read_scope(&alice, Action::Search, &candidates, &RequestContext::default()))
//! };
//! let everything = ask("permit(principal, action, resource);")?;
//! let by_words = store.search_bm25(&everything, "tides", &SearchFilter::default(), 5)?;
//! let by_vector = store.search_vector(&everything, &[1.0, 0.0], &SearchFilter::default(), 5)?;
//! assert_eq!(by_words[0].chunk.chunk_id.as_str(), "d1-0");
//! assert_eq!(by_vector[0].title, "Tides");
//!
//! // A policy that keeps privileged documents out: the search runs inside the permitted
//! // scopes, in both engines.
//! let unprivileged = ask(
//!     "permit(principal, action, resource is Vellum::Document) \
//!      unless { resource.labels.contains(\"privileged\") };",
//! )?;
//! assert!(store.search_bm25(&unprivileged, "tides", &SearchFilter::default(), 5)?.is_empty());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod backup;
mod catalog;
mod error;
mod format;
mod fulltext;
mod scope;
mod store;
mod types;
mod vectors;

pub use crate::error::{Error, ErrorKind, Result};
pub use crate::format::{check_data_format, DATA_FORMAT, FORMAT_FILE};
pub use crate::scope::{normalize_labels, scope_key};
pub use crate::store::{PassageVectors, Store, EMBEDDER_SETTING};
pub use crate::types::{
    ChunkHit, ChunkId, ConsistencyReport, DocumentId, DocumentRecord, DocumentState, NewChunk,
    NewDocument, NewQuarantine, QuarantineRecord, RecoveryReport, ReembedProgress, ScopeCount,
    SearchFilter, StoreOptions, StoreStats, StoredChunk,
};
pub use vellum_authz::ReadScope;
