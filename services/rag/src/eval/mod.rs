//! Retrieval evaluation on BEIR-format sets (`corpus.jsonl`, `queries.jsonl`,
//! `qrels/<split>.tsv`): nDCG@10, Recall@10, Recall@100 and MRR@10 per search mode, with
//! per-query latency. Definitions follow BEIR (pytrec_eval): linear gains, recall over all
//! judged-relevant documents.

mod beir;
mod metrics;

pub use beir::{load_beir, BeirDocument, BeirSet};
pub use metrics::{ndcg_at, recall_at, reciprocal_rank_at, ModeReport, QueryMetrics};

use std::collections::HashSet;

use serde::Serialize;
use std::time::Instant;

use vellum_authz::{Action, Authorizer, PrincipalInfo, ReadScope, RequestContext, Scope};
use vellum_store::Store;

use crate::fusion::Fusion;
use crate::retrieve::{RetrievalOptions, Retriever, SearchMode};
use crate::{Error, Result};

/// The evaluator's read proof for a benchmark's own throwaway index (never a data folder):
/// Cedar asked under a policy of its own that grants search on every scope of `store`. An
/// offline tool's proof, like `vellum check`'s; docs/audit.md lists them.
pub fn benchmark_scope(store: &Store) -> Result<ReadScope> {
    let policy = "@id(\"evaluator-may-search-the-benchmark\")\n\
                  permit (principal, action == Vellum::Action::\"search\", resource);";
    let cedar = Authorizer::from_sources(&[("eval.cedar".into(), policy.into())])
        .map_err(|err| Error::InvalidInput(format!("the evaluation policy: {err}")))?;
    let candidates: Vec<Scope> = store
        .list_scopes()?
        .into_iter()
        .map(|scope| Scope::new(scope.collection, scope.labels))
        .collect();
    Ok(cedar.read_scope(
        &PrincipalInfo::new("evaluator", Vec::<String>::new(), Vec::<String>::new()),
        Action::Search,
        &candidates,
        &RequestContext::default(),
    ))
}

/// Evaluates `mode` over every query of `set` that has judgments. Retrieved chunks are mapped
/// to BEIR document ids by their document's source path (the ingest of a BEIR corpus stores
/// each document's `_id` there); a document counts once, at its best chunk's rank.
pub fn evaluate(
    retriever: &Retriever<'_>,
    set: &BeirSet,
    mode: SearchMode,
    base: &RetrievalOptions,
) -> Result<ModeReport> {
    evaluate_mapped(retriever, set, mode, base, &|source| source.to_string())
}

/// [`evaluate`] where `document_of` maps a chunk's source path to the set's document id (a
/// corpus ingested from files: the file's name without its extension).
pub fn evaluate_mapped(
    retriever: &Retriever<'_>,
    set: &BeirSet,
    mode: SearchMode,
    base: &RetrievalOptions,
    document_of: &dyn Fn(&str) -> String,
) -> Result<ModeReport> {
    let options = RetrievalOptions {
        mode,
        k: 300,
        num_candidates: 300,
        ..base.clone()
    };
    let mut per_query = Vec::new();
    let mut latencies_ms = Vec::new();
    for (query_id, relevant) in &set.qrels {
        let Some(query_text) = set.queries.get(query_id) else {
            continue;
        };
        let started = Instant::now();
        let retrieved = retriever.search(query_text, &options)?;
        latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let mut seen = HashSet::new();
        let ranking: Vec<String> = retrieved
            .into_iter()
            .map(|chunk| document_of(&chunk.hit.source_path))
            .filter(|doc| seen.insert(doc.clone()))
            .take(100)
            .collect();
        per_query.push(QueryMetrics::compute(&ranking, relevant));
    }
    let mut report = ModeReport::aggregate(mode, &per_query, latencies_ms);
    if mode == SearchMode::Hybrid {
        report.fusion = Some(base.fusion.label());
    }
    Ok(report)
}

/// One engine's candidate for a query: the judged document it belongs to, the chunk, and the
/// engine's score (BM25, or cosine similarity).
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The BEIR document id ([`evaluate`]'s mapping from the source path).
    pub document: String,
    /// The chunk's id.
    pub chunk: String,
    /// The engine's score.
    pub score: f32,
}

/// Both engines' candidates for one query, retrieved once so that fusion methods and their
/// settings can be compared, and tuned, without searching again.
#[derive(Debug, Clone, Serialize)]
pub struct QueryCandidates {
    /// The query's id in the set.
    pub query_id: String,
    /// BM25's chunks, best first.
    pub bm25: Vec<Candidate>,
    /// The vector engine's chunks, best first.
    pub vector: Vec<Candidate>,
    /// BM25's latency in milliseconds.
    pub bm25_ms: f64,
    /// The vector search's latency in milliseconds, embedding the query included.
    pub vector_ms: f64,
}

/// Retrieves `depth` chunks from each engine for every judged query of `set`. `document_of`
/// maps a chunk's source path to the set's document id.
pub fn collect_candidates(
    retriever: &Retriever<'_>,
    set: &BeirSet,
    base: &RetrievalOptions,
    depth: usize,
    document_of: &dyn Fn(&str) -> String,
) -> Result<Vec<QueryCandidates>> {
    let mut all = Vec::new();
    for query_id in set.qrels.keys() {
        let Some(query_text) = set.queries.get(query_id) else {
            continue;
        };
        let mut lists = Vec::new();
        for mode in [SearchMode::Bm25, SearchMode::Vector] {
            let options = RetrievalOptions {
                mode,
                k: depth,
                num_candidates: depth,
                ..base.clone()
            };
            let started = Instant::now();
            let retrieved = retriever.search(query_text, &options)?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let list: Vec<Candidate> = retrieved
                .into_iter()
                .map(|chunk| Candidate {
                    document: document_of(&chunk.hit.source_path),
                    chunk: chunk.hit.chunk.chunk_id.0,
                    score: chunk.score,
                })
                .collect();
            lists.push((list, ms));
        }
        let (vector, vector_ms) = lists.pop().unwrap_or_default();
        let (bm25, bm25_ms) = lists.pop().unwrap_or_default();
        all.push(QueryCandidates {
            query_id: query_id.clone(),
            bm25,
            vector,
            bm25_ms,
            vector_ms,
        });
    }
    Ok(all)
}

/// The set's documents ranked for one query's candidates under `fusion`: the chunk lists
/// fused as hybrid search fuses them, each document at its best chunk's rank.
pub fn fused_documents(query: &QueryCandidates, fusion: &Fusion) -> Vec<String> {
    let scored = |list: &[Candidate]| -> Vec<((String, String), f32)> {
        list.iter()
            .map(|c| ((c.document.clone(), c.chunk.clone()), c.score))
            .collect()
    };
    let fused = fusion.fuse(&scored(&query.bm25), &scored(&query.vector));
    let mut seen = HashSet::new();
    fused
        .into_iter()
        .map(|((document, _), _)| document)
        .filter(|document| seen.insert(document.clone()))
        .take(100)
        .collect()
}

/// Mean nDCG@10 of `fusion` over `candidates` (each query judged by `set`'s qrels).
pub fn fusion_ndcg(candidates: &[&QueryCandidates], set: &BeirSet, fusion: &Fusion) -> f64 {
    if candidates.is_empty() {
        return 0.0;
    }
    let total: f64 = candidates
        .iter()
        .filter_map(|query| {
            let relevant = set.qrels.get(&query.query_id)?;
            Some(ndcg_at(&fused_documents(query, fusion), relevant, 10))
        })
        .sum();
    total / candidates.len() as f64
}

/// What `vellum eval --tune` found: the best vector weight on the tuning queries, and how it
/// does on the held-out queries against the default.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// Queries the weight was chosen on.
    pub tuning_queries: usize,
    /// Queries held out (every third query id in sorted order), never seen while tuning.
    pub held_out_queries: usize,
    /// The weight chosen.
    pub vector_weight: f32,
    /// nDCG@10 on the tuning queries: default, tuned.
    pub tuning_ndcg: (f64, f64),
    /// nDCG@10 on the held-out queries: default, tuned.
    pub held_out_ndcg: (f64, f64),
    /// BM25 alone and vectors alone on the held-out queries.
    pub held_out_engines: (f64, f64),
}

/// Chooses the convex fusion's vector weight (0 to 1 in steps of 0.05) that maximises nDCG@10
/// on two thirds of the queries, and reports it on the third held out. Ties go to the weight
/// nearest the default, so a gold set that cannot tell weights apart keeps the default.
pub fn tune(candidates: &[QueryCandidates], set: &BeirSet) -> TuneReport {
    let mut sorted: Vec<&QueryCandidates> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.query_id.cmp(&b.query_id));
    // Every third query (in id order) is held out; the others choose the weight.
    let mut held_out = Vec::new();
    let mut tuning = Vec::new();
    for (index, query) in sorted.into_iter().enumerate() {
        if index % 3 == 2 {
            held_out.push(query);
        } else {
            tuning.push(query);
        }
    }
    let default = Fusion::DEFAULT;
    let default_weight = crate::fusion::DEFAULT_VECTOR_WEIGHT;
    let mut best = (f64::NEG_INFINITY, default_weight);
    for step in 0..=20 {
        let weight = step as f32 * 0.05;
        let ndcg = fusion_ndcg(
            &tuning,
            set,
            &Fusion::Convex {
                vector_weight: weight,
            },
        );
        let closer = (weight - default_weight).abs() < (best.1 - default_weight).abs();
        if ndcg > best.0 + 1e-9 || ((ndcg - best.0).abs() <= 1e-9 && closer) {
            best = (ndcg, weight);
        }
    }
    let tuned = Fusion::Convex {
        vector_weight: best.1,
    };
    TuneReport {
        tuning_queries: tuning.len(),
        held_out_queries: held_out.len(),
        vector_weight: best.1,
        tuning_ndcg: (fusion_ndcg(&tuning, set, &default), best.0),
        held_out_ndcg: (
            fusion_ndcg(&held_out, set, &default),
            fusion_ndcg(&held_out, set, &tuned),
        ),
        held_out_engines: (
            fusion_ndcg(&held_out, set, &Fusion::Convex { vector_weight: 0.0 }),
            fusion_ndcg(&held_out, set, &Fusion::Convex { vector_weight: 1.0 }),
        ),
    }
}
