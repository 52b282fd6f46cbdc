//! Retrieval quality floor: BM25, vector and hybrid retrieval with the real all-MiniLM-L6-v2
//! embedder on a fixed slice of BEIR SciFact, indexed the way `vellum eval --beir` indexes a
//! BEIR corpus (title and text as one page, chunked like any document). A regression in
//! chunking, BM25, the embedder or fusion lowers nDCG@10 or Recall@100 below the floors and
//! turns CI red.
//!
//! The slice: every document judged relevant to a test query, then the other documents in
//! order of their id until there are [`SLICE_DOCUMENTS`]; all 300 test queries. The figures
//! are higher than on the whole corpus (500 documents, not 5,183) and are not comparable with
//! docs/benchmarks.md's BEIR table; they are a tripwire. Floors are the figures measured when
//! the test was written minus [`MARGIN`] (docs/benchmarks.md, "Retrieval quality in CI").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use vellum_ingest::pipeline::{self, IngestOptions, TextDocument};
use vellum_rag::eval::{self, BeirSet, ModeReport};
use vellum_rag::{RetrievalOptions, Retriever, SearchMode};
use vellum_store::{Store, StoreOptions};

const SLICE_DOCUMENTS: usize = 500;
/// How far below the measured figure a floor sits.
const MARGIN: f64 = 0.03;

/// Hybrid may trail the better single engine by at most this much (today it equals vector).
const HYBRID_MARGIN: f64 = 0.01;

/// Measured on the slice when this test was written (all-MiniLM-L6-v2, branch tests-prove on
/// commit 0420d9f): mode, nDCG@10, Recall@10, Recall@100. Recall@100 is near 1 on 500
/// documents (100 is a fifth of the slice), so it only catches gross breakage; nDCG@10 and
/// Recall@10 are the sensitive ones.
const MEASURED: [(SearchMode, f64, f64, f64); 3] = [
    (SearchMode::Bm25, 0.8278, 0.8957, 0.9700),
    (SearchMode::Vector, 0.8589, 0.9353, 0.9967),
    (SearchMode::Hybrid, 0.8589, 0.9277, 0.9967),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scifact_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
        .join("corpora/beir-scifact")
}

fn models_dir() -> PathBuf {
    std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models"))
}

/// The fixed slice: relevant documents of the test split, then fillers by id.
fn slice(full: &BeirSet) -> BeirSet {
    let relevant: BTreeSet<&str> = full
        .qrels
        .values()
        .flat_map(|judged| judged.keys().map(String::as_str))
        .collect();
    let mut corpus: Vec<_> = full
        .corpus
        .iter()
        .filter(|doc| relevant.contains(doc.id.as_str()))
        .cloned()
        .collect();
    let mut fillers: Vec<_> = full
        .corpus
        .iter()
        .filter(|doc| !relevant.contains(doc.id.as_str()))
        .collect();
    fillers.sort_by(|a, b| a.id.cmp(&b.id));
    let room = SLICE_DOCUMENTS.saturating_sub(corpus.len());
    corpus.extend(fillers.into_iter().take(room).cloned());
    corpus.sort_by(|a, b| a.id.cmp(&b.id));
    BeirSet {
        corpus,
        queries: full.queries.clone(),
        qrels: full.qrels.clone(),
    }
}

#[test]
fn scifact_slice_stays_above_the_quality_floor() {
    let started = Instant::now();
    let full = eval::load_beir(&scifact_dir(), "test").expect("BEIR SciFact in shared/corpora");
    let set = slice(&full);
    let num_relevant = set
        .qrels
        .values()
        .flat_map(|judged| judged.keys())
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(set.corpus.len(), SLICE_DOCUMENTS);
    assert_eq!(set.qrels.len(), 300, "SciFact has 300 judged test queries");

    let embedder = vellum_models::Embedder::load(&models_dir().join("all-MiniLM-L6-v2"))
        .expect("all-MiniLM-L6-v2 (deploy/fetch-models.sh)");
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = Store::open(
        tmp.path(),
        StoreOptions {
            embedding_dim: embedder.dim(),
            embedding_model: embedder.model_name().to_string(),
        },
    )
    .expect("store");
    // As `vellum eval --beir` does (services/cli/src/commands.rs, `evaluate`).
    let documents: Vec<TextDocument> = set
        .corpus
        .iter()
        .map(|doc| TextDocument {
            source_path: doc.id.clone(),
            title: String::new(),
            pages: vec![format!("{}\n{}", doc.title, doc.text)],
            format: "text".into(),
            metadata: Default::default(),
        })
        .collect();
    let options = IngestOptions {
        collection: "beir".into(),
        ..IngestOptions::default()
    };
    let summary = pipeline::ingest_texts(&store, &embedder, documents, &options, &mut |_| {})
        .expect("index the slice");

    // Its own throwaway index, searched under the evaluator's proof, as `vellum eval` does.
    let scope = eval::benchmark_scope(&store).expect("the evaluator's scope");
    let retriever = Retriever::new(&store, &embedder, &scope);
    let base = RetrievalOptions::default();
    let reports: Vec<ModeReport> = MEASURED
        .iter()
        .map(|(mode, ..)| eval::evaluate(&retriever, &set, *mode, &base).expect("evaluate"))
        .collect();

    eprintln!(
        "BEIR SciFact slice: {} documents ({num_relevant} judged relevant to a test query), {} \
         chunks indexed in {:.1} s; {} queries; whole test {:.1} s",
        set.corpus.len(),
        summary.num_chunks,
        summary.seconds,
        reports[0].num_queries,
        started.elapsed().as_secs_f64(),
    );
    eprintln!(
        "| mode | nDCG@10 (floor) | Recall@10 (floor) | Recall@100 (floor) | MRR@10 | p50 ms |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|");
    let mut below = Vec::new();
    for (report, (mode, ndcg, recall_10, recall_100)) in reports.iter().zip(MEASURED) {
        assert_eq!(report.mode, mode);
        let figures = [
            ("nDCG@10", report.ndcg_at_10, ndcg - MARGIN),
            ("Recall@10", report.recall_at_10, recall_10 - MARGIN),
            ("Recall@100", report.recall_at_100, recall_100 - MARGIN),
        ];
        let cells: Vec<String> = figures
            .iter()
            .map(|(_, got, floor)| format!("{got:.4} ({floor:.4})"))
            .collect();
        eprintln!(
            "| {} | {} | {:.4} | {:.1} |",
            mode.as_str(),
            cells.join(" | "),
            report.mrr_at_10,
            report.latency_p50_ms,
        );
        for (name, got, floor) in figures {
            if got < floor {
                below.push(format!(
                    "{}: {name} {got:.4} < floor {floor:.4}",
                    mode.as_str()
                ));
            }
        }
    }
    // Fusion must not lose to the better engine by more than a little.
    let ndcg = |mode: SearchMode| {
        reports
            .iter()
            .find(|report| report.mode == mode)
            .map_or(0.0, |report| report.ndcg_at_10)
    };
    let best_single = ndcg(SearchMode::Bm25).max(ndcg(SearchMode::Vector));
    if ndcg(SearchMode::Hybrid) < best_single - HYBRID_MARGIN {
        below.push(format!(
            "hybrid nDCG@10 {:.4} < the better single engine's {best_single:.4} - {HYBRID_MARGIN}",
            ndcg(SearchMode::Hybrid)
        ));
    }
    assert!(below.is_empty(), "retrieval quality fell: {below:#?}");
}
