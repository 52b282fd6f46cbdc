//! What the HTTPS API does, without HTTP: authentication, authorization and the calls into the
//! store and retriever. Handlers (`routes.rs`) only translate between JSON and these methods,
//! so everything here is tested without a server.
//!
//! Authorization never filters after fetching. The caller's permitted (collection, labels)
//! scopes are computed by Cedar first and become a collection filter that runs inside Tantivy
//! and LanceDB. The indexes filter by collection only, so a collection whose documents carry
//! label sets the caller may not all see is left out of the search entirely (safe: it costs
//! recall, never leaks); `docs/architecture.md` ("Authorization") says what closes that gap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vellum_auth::{AuthStore, Principal, Throttle};
use vellum_authz::{Action, Authorizer, PrincipalInfo, RequestContext, Resource, Scope};
use vellum_rag::{QueryEmbedder, RetrievalOptions, Retriever, SearchMode};
use vellum_store::{DocumentId, DocumentRecord, SearchFilter, Store};

/// What the API answers when something fails; `error.rs` maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Too many failed logins.
    #[error("too many failed logins: try again in {0} s")]
    Throttled(u64),
    /// The caller may see the resource but not do this to it.
    #[error("not permitted")]
    Forbidden,
    /// Missing, or not readable by the caller: the two look the same.
    #[error("not found")]
    NotFound,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Our fault; the detail is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

impl From<vellum_store::Error> for ServiceError {
    fn from(err: vellum_store::Error) -> Self {
        ServiceError::Internal(err.to_string())
    }
}

impl From<vellum_rag::Error> for ServiceError {
    fn from(err: vellum_rag::Error) -> Self {
        ServiceError::Internal(err.to_string())
    }
}

impl From<vellum_auth::Error> for ServiceError {
    fn from(err: vellum_auth::Error) -> Self {
        match err {
            vellum_auth::Error::Unauthenticated => ServiceError::Unauthenticated,
            vellum_auth::Error::Throttled {
                retry_after_seconds,
            } => ServiceError::Throttled(retry_after_seconds),
            vellum_auth::Error::Invalid(message) => ServiceError::BadRequest(message),
            vellum_auth::Error::NotFound(_) => ServiceError::NotFound,
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// `POST /v1/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
}

/// A successful login.
#[derive(Debug, Serialize)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub user: UserView,
}

/// Who the caller is, as `GET /v1/me` shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// `session` or `api_key`.
    pub via: String,
}

impl From<&Principal> for UserView {
    fn from(principal: &Principal) -> Self {
        UserView {
            name: principal.name.clone(),
            roles: principal.roles.clone(),
            groups: principal.groups.clone(),
            via: principal.via.clone(),
        }
    }
}

/// `POST /v1/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    /// `hybrid` (default), `bm25` or `vector`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Results wanted (1-100, default 10).
    #[serde(default)]
    pub k: Option<usize>,
    /// Only these collections (intersected with what the caller may search).
    #[serde(default)]
    pub collections: Option<Vec<String>>,
}

/// One search result.
#[derive(Debug, Serialize)]
pub struct SearchHit {
    pub document_id: String,
    pub collection: String,
    pub title: String,
    pub page: u32,
    pub chunk_id: String,
    pub text: String,
    pub score: f32,
}

/// `POST /v1/search`'s answer.
#[derive(Debug, Serialize)]
pub struct SearchResponse {
    pub mode: String,
    pub results: Vec<SearchHit>,
}

/// A document as the API shows it.
#[derive(Debug, Serialize)]
pub struct DocumentView {
    pub id: String,
    pub collection: String,
    pub title: String,
    pub source_path: String,
    pub sha256: String,
    pub format: String,
    pub num_pages: u32,
    pub num_chunks: u32,
    pub ingested_at: String,
    pub labels: Vec<String>,
}

/// A collection the caller can use.
#[derive(Debug, Serialize)]
pub struct CollectionView {
    pub name: String,
    /// Documents in it the caller may read.
    pub num_documents: u64,
}

/// The labels of a document: its `labels` metadata, comma-separated (set at ingest).
pub fn document_labels(record: &DocumentRecord) -> Vec<String> {
    let mut labels: Vec<String> = record
        .metadata
        .get("labels")
        .map(|text| {
            text.split(',')
                .map(|label| label.trim().to_lowercase())
                .filter(|label| !label.is_empty())
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    labels.dedup();
    labels
}

fn view(record: &DocumentRecord) -> DocumentView {
    DocumentView {
        id: record.id.0.clone(),
        collection: record.collection.clone(),
        title: record.title.clone(),
        source_path: record.source_path.clone(),
        sha256: record.sha256.clone(),
        format: record.format.clone(),
        num_pages: record.num_pages,
        num_chunks: record.num_chunks,
        ingested_at: record.ingested_at.clone(),
        labels: document_labels(record),
    }
}

fn principal_info(principal: &Principal) -> PrincipalInfo {
    PrincipalInfo::new(
        principal.name.clone(),
        principal.roles.clone(),
        principal.groups.clone(),
    )
}

/// Everything the API serves from: the stores, the query embedder, identities and policies.
pub struct Service {
    store: Store,
    embedder: Box<dyn QueryEmbedder>,
    auth: AuthStore,
    throttle: Throttle,
    authorizer: Authorizer,
    policies_dir: PathBuf,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("policies_dir", &self.policies_dir)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Assembles the service; the policies are loaded (and validated) from `policies_dir`.
    pub fn new(
        store: Store,
        embedder: Box<dyn QueryEmbedder>,
        auth: AuthStore,
        policies_dir: &Path,
    ) -> Result<Service, vellum_authz::LoadError> {
        let authorizer = Authorizer::load(policies_dir)?;
        Ok(Service {
            store,
            embedder,
            auth,
            throttle: Throttle::default(),
            authorizer,
            policies_dir: policies_dir.to_path_buf(),
        })
    }

    /// The identity store (for the first-start admin).
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// Policy ids in force (for the start-up banner and the audit log).
    pub fn policy_ids(&self) -> Vec<String> {
        self.authorizer.policy_ids()
    }

    /// Checks a password, throttled per account and per source address.
    pub fn login(&self, request: &LoginRequest, address: &str) -> ServiceResult<LoginResponse> {
        self.throttle.check(&request.user, address)?;
        match self.auth.login(&request.user, &request.password) {
            Ok(session) => {
                self.throttle.record_success(&request.user);
                Ok(LoginResponse {
                    token: session.token,
                    expires_at: session.expires_at,
                    user: UserView::from(&session.principal),
                })
            }
            Err(vellum_auth::Error::Unauthenticated) => {
                self.throttle.record_failure(&request.user, address);
                Err(ServiceError::Unauthenticated)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Ends a session (a key is revoked with `vellum key revoke` or by an admin).
    pub fn logout(&self, bearer: &str) -> ServiceResult<()> {
        Ok(self.auth.logout(bearer)?)
    }

    /// Resolves a bearer token or API key.
    pub fn authenticate(&self, bearer: &str) -> ServiceResult<Principal> {
        Ok(self.auth.authenticate(bearer)?)
    }

    /// The (collection, labels) scopes that exist in the catalog.
    fn scopes(&self) -> ServiceResult<BTreeMap<String, BTreeSet<Vec<String>>>> {
        let mut scopes: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (collection, _) in self.store.list_collections()? {
            scopes.entry(collection).or_default();
        }
        for record in self.store.list_documents(&SearchFilter::default())? {
            scopes
                .entry(record.collection.clone())
                .or_default()
                .insert(document_labels(&record));
        }
        Ok(scopes)
    }

    /// Collections in which the caller may do `action` to every document: the filter that runs
    /// inside the indexes.
    pub fn searchable_collections(
        &self,
        principal: &Principal,
        action: Action,
    ) -> ServiceResult<Vec<String>> {
        let scopes = self.scopes()?;
        let flat: Vec<Scope> = scopes
            .iter()
            .flat_map(|(collection, label_sets)| {
                // An empty collection is still a scope: policies decide about it by name.
                let sets: Vec<Vec<String>> = if label_sets.is_empty() {
                    vec![Vec::new()]
                } else {
                    label_sets.iter().cloned().collect()
                };
                sets.into_iter()
                    .map(move |labels| Scope::new(collection.clone(), labels))
            })
            .collect();
        let permitted: BTreeSet<Scope> = self
            .authorizer
            .permitted_scopes(
                &principal_info(principal),
                action,
                &flat,
                &RequestContext::default(),
            )
            .into_iter()
            .collect();
        let allowed = flat
            .iter()
            .map(|scope| scope.collection.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|collection| {
                flat.iter()
                    .filter(|scope| &scope.collection == collection)
                    .all(|scope| permitted.contains(scope))
            })
            .collect();
        Ok(allowed)
    }

    /// Hybrid (or BM25 / vector) search over what the caller may search.
    pub fn search(
        &self,
        principal: &Principal,
        request: &SearchRequest,
    ) -> ServiceResult<SearchResponse> {
        let query = request.query.trim();
        if query.is_empty() || query.len() > 4096 {
            return Err(ServiceError::BadRequest(
                "query must be 1-4096 bytes of text".into(),
            ));
        }
        let mode: SearchMode = match request.mode.as_deref() {
            None => SearchMode::Hybrid,
            Some(mode) => mode.parse().map_err(|_| {
                ServiceError::BadRequest(format!(
                    "unknown mode {mode:?}: use hybrid, bm25 or vector"
                ))
            })?,
        };
        let k = request.k.unwrap_or(10);
        if !(1..=100).contains(&k) {
            return Err(ServiceError::BadRequest("k must be 1-100".into()));
        }
        let mut collections = self.searchable_collections(principal, Action::Search)?;
        if let Some(wanted) = &request.collections {
            // Asking for a collection one may not search gives no results, not an error that
            // would confirm it exists.
            collections.retain(|collection| wanted.contains(collection));
        }
        let options = RetrievalOptions {
            mode,
            k,
            num_candidates: (k * 5).max(50),
            filter: SearchFilter {
                collections: Some(collections),
            },
            ..RetrievalOptions::default()
        };
        let retriever = Retriever::new(&self.store, self.embedder.as_ref());
        let results = retriever
            .search(query, &options)?
            .into_iter()
            .map(|retrieved| SearchHit {
                document_id: retrieved.hit.chunk.document_id.0.clone(),
                collection: retrieved.hit.chunk.collection.clone(),
                title: retrieved.hit.title.clone(),
                page: retrieved.hit.chunk.page,
                chunk_id: retrieved.hit.chunk.chunk_id.0.clone(),
                text: retrieved.hit.chunk.text.clone(),
                score: retrieved.score,
            })
            .collect();
        Ok(SearchResponse {
            mode: mode.as_str().to_string(),
            results,
        })
    }

    fn may(&self, principal: &Principal, action: Action, record: &DocumentRecord) -> bool {
        self.authorizer
            .is_allowed(
                &principal_info(principal),
                action,
                &Resource::document(
                    record.id.0.clone(),
                    record.collection.clone(),
                    document_labels(record),
                ),
                &RequestContext::default(),
            )
            .allowed
    }

    /// Documents the caller may read, optionally of one collection.
    pub fn list_documents(
        &self,
        principal: &Principal,
        collection: Option<&str>,
    ) -> ServiceResult<Vec<DocumentView>> {
        let filter = SearchFilter {
            collections: collection.map(|name| vec![name.to_string()]),
        };
        Ok(self
            .store
            .list_documents(&filter)?
            .iter()
            .filter(|record| self.may(principal, Action::Read, record))
            .map(view)
            .collect())
    }

    /// Collections with at least one document the caller may read.
    pub fn list_collections(&self, principal: &Principal) -> ServiceResult<Vec<CollectionView>> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for document in self.list_documents(principal, None)? {
            *counts.entry(document.collection).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|(name, num_documents)| CollectionView {
                name,
                num_documents,
            })
            .collect())
    }

    /// One document's catalog entry: [`ServiceError::NotFound`] both when it does not exist
    /// and when the caller may not read it.
    pub fn get_document(&self, principal: &Principal, id: &str) -> ServiceResult<DocumentView> {
        let record = self.readable(principal, id)?;
        Ok(view(&record))
    }

    fn readable(&self, principal: &Principal, id: &str) -> ServiceResult<DocumentRecord> {
        let record = self
            .store
            .get_document(&DocumentId(id.to_string()))?
            .filter(|record| record.state == vellum_store::DocumentState::Ready)
            .ok_or(ServiceError::NotFound)?;
        if self.may(principal, Action::Read, &record) {
            Ok(record)
        } else {
            Err(ServiceError::NotFound)
        }
    }

    /// Deletes a document from every store. Not readable: not found; readable but not
    /// deletable: forbidden.
    pub fn delete_document(&self, principal: &Principal, id: &str) -> ServiceResult<()> {
        let record = self.readable(principal, id)?;
        if !self.may(principal, Action::Delete, &record) {
            return Err(ServiceError::Forbidden);
        }
        self.store.delete_document(&record.id)?;
        Ok(())
    }
}
