//! The store's searches and reads take a `ReadScope`, which only Cedar builds. These tests
//! check the engines' filtering, so they describe what to search as before (collections and
//! scope keys) and turn it into a proof here: Cedar under a permit-all policy, asked about
//! exactly those scopes (or about every scope with documents).

#![allow(dead_code)]

use vellum_authz::{Action, Authorizer, PrincipalInfo, ReadScope, RequestContext, Scope};
use vellum_store::{ChunkHit, DocumentId, DocumentRecord, Result, Store, StoredChunk};

/// What a test searches: collections and scope keys, `None` meaning all.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub collections: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
}

fn scope_of_key(key: &str) -> Option<Scope> {
    // A key without the separator is no scope at all: it matches nothing.
    let (collection, labels) = key.rsplit_once('\u{1f}')?;
    let labels: Vec<String> = labels
        .split(',')
        .filter(|label| !label.is_empty())
        .map(str::to_string)
        .collect();
    Some(Scope::new(collection, labels))
}

/// The proof for `filter`'s scopes (every scope with documents when it names none).
pub fn proof(store: &Store, filter: &SearchFilter) -> ReadScope {
    let candidates: Vec<Scope> = match &filter.scopes {
        Some(keys) => keys.iter().filter_map(|key| scope_of_key(key)).collect(),
        None => store
            .list_scopes()
            .unwrap_or_else(|err| panic!("scopes: {err}"))
            .into_iter()
            .map(|scope| Scope::new(scope.collection, scope.labels))
            .collect(),
    };
    let cedar = Authorizer::from_sources(&[(
        "tests.cedar".into(),
        "permit(principal, action, resource);".into(),
    )])
    .unwrap_or_else(|err| panic!("policy: {err}"));
    cedar.read_scope(
        &PrincipalInfo::new("tests", Vec::<String>::new(), Vec::<String>::new()),
        Action::Search,
        &candidates,
        &RequestContext::default(),
    )
}

fn narrowing(filter: &SearchFilter) -> vellum_store::SearchFilter {
    vellum_store::SearchFilter {
        collections: filter.collections.clone(),
        documents: None,
    }
}

pub fn scoped_bm25(
    store: &Store,
    query: &str,
    filter: &SearchFilter,
    k: usize,
) -> Result<Vec<ChunkHit>> {
    store.search_bm25(&proof(store, filter), query, &narrowing(filter), k)
}

pub fn scoped_vector(
    store: &Store,
    vector: &[f32],
    filter: &SearchFilter,
    k: usize,
) -> Result<Vec<ChunkHit>> {
    store.search_vector(&proof(store, filter), vector, &narrowing(filter), k)
}

pub fn scoped_list(store: &Store, filter: &SearchFilter) -> Result<Vec<DocumentRecord>> {
    store.list_documents(&proof(store, filter), &narrowing(filter))
}

pub fn scoped_chunks(store: &Store, id: &DocumentId) -> Result<Vec<StoredChunk>> {
    store.document_chunks(&proof(store, &SearchFilter::default()), id)
}
