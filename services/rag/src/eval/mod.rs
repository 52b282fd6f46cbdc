//! Retrieval evaluation on BEIR-format sets (`corpus.jsonl`, `queries.jsonl`,
//! `qrels/<split>.tsv`): nDCG@10, Recall@10, Recall@100 and MRR@10 per search mode, with
//! per-query latency. Definitions follow BEIR (pytrec_eval): linear gains, recall over all
//! judged-relevant documents.

mod beir;
mod metrics;

pub use beir::{load_beir, BeirDocument, BeirSet};
pub use metrics::{ndcg_at, recall_at, reciprocal_rank_at, ModeReport, QueryMetrics};

use std::collections::HashSet;
use std::time::Instant;

use vellum_authz::{Action, Authorizer, PrincipalInfo, ReadScope, RequestContext, Scope};
use vellum_store::Store;

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
            .map(|chunk| chunk.hit.source_path)
            .filter(|doc| seen.insert(doc.clone()))
            .take(100)
            .collect();
        per_query.push(QueryMetrics::compute(&ranking, relevant));
    }
    Ok(ModeReport::aggregate(mode, &per_query, latencies_ms))
}
