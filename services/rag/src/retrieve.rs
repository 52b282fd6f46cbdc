//! Hybrid retrieval: BM25 top-k from Tantivy and vector top-k from LanceDB, both filtered
//! inside their engines by the caller's [`SearchFilter`], fused by [`Fusion`].

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;
use vellum_store::{ChunkHit, ChunkId, ReadScope, SearchFilter, Store};

use crate::fusion::{convex_fusion_by, Fusion, VECTOR_WEIGHT_SETTING};
use crate::{Error, Result};

/// Turns a query into a vector. Implemented for the real embedder; tests use a stub.
pub trait QueryEmbedder: Send + Sync {
    /// Returns the L2-normalised embedding of `text`.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>>;

    /// Returns the L2-normalised embeddings of `texts`, in order (one batch where the embedder
    /// can batch).
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        texts.iter().map(|text| self.embed_query(text)).collect()
    }
}

impl QueryEmbedder for vellum_models::Embedder {
    fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let mut vectors = self.embed(&[text])?;
        vectors
            .pop()
            .ok_or_else(|| Error::InvalidInput("embedder returned no vector".into()))
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed(texts)?)
    }
}

/// Which engines answer a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Tantivy BM25 only.
    Bm25,
    /// LanceDB vector similarity only.
    Vector,
    /// Both, fused ([`Fusion`]; the default).
    Hybrid,
}

impl SearchMode {
    /// Returns the lowercase name used on the command line and in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            SearchMode::Bm25 => "bm25",
            SearchMode::Vector => "vector",
            SearchMode::Hybrid => "hybrid",
        }
    }
}

impl FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bm25" => Ok(SearchMode::Bm25),
            "vector" => Ok(SearchMode::Vector),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => Err(Error::InvalidInput(format!(
                "unknown search mode {other:?}: use bm25, vector or hybrid"
            ))),
        }
    }
}

/// How to retrieve.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    /// Engines to use.
    pub mode: SearchMode,
    /// Number of chunks returned.
    pub k: usize,
    /// Candidates each engine contributes before fusion (at least `k`; [`crate::FUSION_DEPTH`]
    /// by default).
    pub num_candidates: usize,
    /// How hybrid search merges the two lists.
    pub fusion: Fusion,
    /// Narrows the search to some collections (inside the retriever's [`ReadScope`]).
    pub filter: SearchFilter,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        RetrievalOptions {
            mode: SearchMode::Hybrid,
            k: 10,
            num_candidates: crate::fusion::FUSION_DEPTH,
            fusion: Fusion::DEFAULT,
            filter: SearchFilter::default(),
        }
    }
}

/// One retrieved chunk with how each engine ranked it.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievedChunk {
    /// The chunk, its document's title and source path.
    pub hit: ChunkHit,
    /// The score the results are ordered by: BM25, cosine similarity, or the fused score.
    pub score: f32,
    /// 1-based rank in the BM25 list, if it was there.
    pub bm25_rank: Option<usize>,
    /// 1-based rank in the vector list, if it was there.
    pub vector_rank: Option<usize>,
    /// Cosine similarity with the query, if the vector engine returned the chunk.
    pub similarity: Option<f32>,
}

/// Runs searches against a [`Store`] with a query embedder, inside the scopes Cedar
/// permitted the caller.
pub struct Retriever<'a> {
    store: &'a Store,
    embedder: &'a dyn QueryEmbedder,
    scope: &'a ReadScope,
}

impl<'a> Retriever<'a> {
    /// Creates a retriever over what `scope` permits of `store`, embedding queries with
    /// `embedder`.
    pub fn new(store: &'a Store, embedder: &'a dyn QueryEmbedder, scope: &'a ReadScope) -> Self {
        Retriever {
            store,
            embedder,
            scope,
        }
    }

    /// The query embedder (also used to choose an answer's lead quotes).
    pub fn embedder(&self) -> &'a dyn QueryEmbedder {
        self.embedder
    }

    /// Returns the store searched.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Returns the best `options.k` chunks for `query`, best first.
    pub fn search(&self, query: &str, options: &RetrievalOptions) -> Result<Vec<RetrievedChunk>> {
        let query = query.trim();
        if query.is_empty() {
            return Err(Error::InvalidInput("the query is empty".into()));
        }
        let num_candidates = options.num_candidates.max(options.k);
        let bm25_hits = match options.mode {
            SearchMode::Bm25 | SearchMode::Hybrid => {
                self.store
                    .search_bm25(self.scope, query, &options.filter, num_candidates)?
            }
            SearchMode::Vector => Vec::new(),
        };
        let vector_hits = match options.mode {
            SearchMode::Vector | SearchMode::Hybrid => {
                let vector = self.embedder.embed_query(query)?;
                self.store
                    .search_vector(self.scope, &vector, &options.filter, num_candidates)?
            }
            SearchMode::Bm25 => Vec::new(),
        };
        let mut results = match options.mode {
            SearchMode::Bm25 => ranked_alone(bm25_hits, true),
            SearchMode::Vector => ranked_alone(vector_hits, false),
            SearchMode::Hybrid => {
                // Collections tuned on their own gold set (`vellum eval --tune --apply`).
                let tuned = match options.fusion {
                    Fusion::Convex { .. } => {
                        self.store.collection_settings(VECTOR_WEIGHT_SETTING)?
                    }
                    Fusion::Rrf { .. } => Default::default(),
                };
                let weights: HashMap<String, f32> = tuned
                    .into_iter()
                    .filter_map(|(collection, value)| Some((collection, value.parse().ok()?)))
                    .collect();
                fuse(bm25_hits, vector_hits, options.fusion, &weights)
            }
        };
        results.truncate(options.k);
        Ok(results)
    }
}

fn ranked_alone(hits: Vec<ChunkHit>, is_bm25: bool) -> Vec<RetrievedChunk> {
    hits.into_iter()
        .enumerate()
        .map(|(idx, hit)| RetrievedChunk {
            score: hit.score,
            bm25_rank: is_bm25.then_some(idx + 1),
            vector_rank: (!is_bm25).then_some(idx + 1),
            similarity: (!is_bm25).then_some(hit.score),
            hit,
        })
        .collect()
}

fn fuse(
    bm25_hits: Vec<ChunkHit>,
    vector_hits: Vec<ChunkHit>,
    fusion: Fusion,
    tuned_weights: &HashMap<String, f32>,
) -> Vec<RetrievedChunk> {
    let bm25_ids: Vec<ChunkId> = bm25_hits.iter().map(|h| h.chunk.chunk_id.clone()).collect();
    let vector_ids: Vec<ChunkId> = vector_hits
        .iter()
        .map(|h| h.chunk.chunk_id.clone())
        .collect();
    let bm25_rank: HashMap<&ChunkId, usize> = bm25_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id, i + 1))
        .collect();
    let vector_rank: HashMap<&ChunkId, usize> = vector_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id, i + 1))
        .collect();
    let similarity: HashMap<ChunkId, f32> = vector_hits
        .iter()
        .map(|h| (h.chunk.chunk_id.clone(), h.score))
        .collect();
    let scored = |hits: &[ChunkHit]| -> Vec<(ChunkId, f32)> {
        hits.iter()
            .map(|hit| (hit.chunk.chunk_id.clone(), hit.score))
            .collect()
    };
    let fused = match fusion {
        Fusion::Convex { vector_weight } => {
            let collection_of: HashMap<&ChunkId, &str> = bm25_hits
                .iter()
                .chain(&vector_hits)
                .map(|hit| (&hit.chunk.chunk_id, hit.chunk.collection.as_str()))
                .collect();
            convex_fusion_by(&scored(&bm25_hits), &scored(&vector_hits), |id| {
                collection_of
                    .get(id)
                    .and_then(|collection| tuned_weights.get(*collection))
                    .copied()
                    .unwrap_or(vector_weight)
            })
        }
        Fusion::Rrf { .. } => fusion.fuse(&scored(&bm25_hits), &scored(&vector_hits)),
    };
    let mut by_id: HashMap<ChunkId, ChunkHit> = HashMap::new();
    for hit in bm25_hits.into_iter().chain(vector_hits) {
        by_id.entry(hit.chunk.chunk_id.clone()).or_insert(hit);
    }
    fused
        .into_iter()
        .filter_map(|(id, score)| {
            let hit = by_id.remove(&id)?;
            Some(RetrievedChunk {
                score,
                bm25_rank: bm25_rank.get(&id).copied(),
                vector_rank: vector_rank.get(&id).copied(),
                similarity: similarity.get(&id).copied(),
                hit,
            })
        })
        .collect()
}
