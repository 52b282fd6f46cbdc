//! Ranking metrics as BEIR computes them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::retrieve::SearchMode;

/// nDCG@k with linear gains (the relevance grade), as trec_eval's `ndcg_cut`.
pub fn ndcg_at(ranking: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(idx, doc)| {
            let gain = f64::from(relevant.get(doc).copied().unwrap_or(0));
            gain / ((idx + 2) as f64).log2()
        })
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(idx, grade)| f64::from(*grade) / ((idx + 2) as f64).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Share of the relevant documents found in the top `k`.
pub fn recall_at(ranking: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|doc| relevant.contains_key(*doc))
        .count();
    found as f64 / relevant.len() as f64
}

/// 1 / rank of the first relevant document within the top `k`, else 0.
pub fn reciprocal_rank_at(ranking: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    ranking
        .iter()
        .take(k)
        .position(|doc| relevant.contains_key(doc))
        .map_or(0.0, |idx| 1.0 / (idx + 1) as f64)
}

/// Metrics of one query.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueryMetrics {
    /// nDCG@10.
    pub ndcg_at_10: f64,
    /// Recall@10.
    pub recall_at_10: f64,
    /// Recall@100.
    pub recall_at_100: f64,
    /// MRR@10.
    pub mrr_at_10: f64,
}

impl QueryMetrics {
    /// Computes the metrics of one ranking.
    pub fn compute(ranking: &[String], relevant: &BTreeMap<String, u32>) -> Self {
        QueryMetrics {
            ndcg_at_10: ndcg_at(ranking, relevant, 10),
            recall_at_10: recall_at(ranking, relevant, 10),
            recall_at_100: recall_at(ranking, relevant, 100),
            mrr_at_10: reciprocal_rank_at(ranking, relevant, 10),
        }
    }
}

/// Mean metrics and latency of one search mode over a query set.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// The mode evaluated.
    pub mode: SearchMode,
    /// How hybrid fused the lists (`None` for a single engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion: Option<String>,
    /// Queries evaluated.
    pub num_queries: usize,
    /// Mean nDCG@10.
    pub ndcg_at_10: f64,
    /// Mean Recall@10.
    pub recall_at_10: f64,
    /// Mean Recall@100.
    pub recall_at_100: f64,
    /// Mean MRR@10.
    pub mrr_at_10: f64,
    /// Median query latency in milliseconds.
    pub latency_p50_ms: f64,
    /// 99th percentile query latency in milliseconds.
    pub latency_p99_ms: f64,
}

impl ModeReport {
    /// Averages per-query metrics and summarises latencies.
    pub fn aggregate(
        mode: SearchMode,
        per_query: &[QueryMetrics],
        mut latencies_ms: Vec<f64>,
    ) -> Self {
        let n = per_query.len().max(1) as f64;
        let mean = |f: fn(&QueryMetrics) -> f64| per_query.iter().map(f).sum::<f64>() / n;
        latencies_ms.sort_by(f64::total_cmp);
        ModeReport {
            mode,
            fusion: None,
            num_queries: per_query.len(),
            ndcg_at_10: mean(|m| m.ndcg_at_10),
            recall_at_10: mean(|m| m.recall_at_10),
            recall_at_100: mean(|m| m.recall_at_100),
            mrr_at_10: mean(|m| m.mrr_at_10),
            latency_p50_ms: percentile(&latencies_ms, 0.50),
            latency_p99_ms: percentile(&latencies_ms, 0.99),
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qrels(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn ranking(docs: &[&str]) -> Vec<String> {
        docs.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let rel = qrels(&[("a", 1), ("b", 1)]);
        let r = ranking(&["a", "b", "c"]);
        assert!((ndcg_at(&r, &rel, 10) - 1.0).abs() < 1e-12);
        assert_eq!(recall_at(&r, &rel, 10), 1.0);
        assert_eq!(reciprocal_rank_at(&r, &rel, 10), 1.0);
    }

    #[test]
    fn relevant_at_rank_three() {
        let rel = qrels(&[("c", 1)]);
        let r = ranking(&["a", "b", "c"]);
        // DCG = 1/log2(4) = 0.5; IDCG = 1.
        assert!((ndcg_at(&r, &rel, 10) - 0.5).abs() < 1e-12);
        assert!((reciprocal_rank_at(&r, &rel, 10) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_at(&r, &rel, 2), 0.0);
    }

    #[test]
    fn graded_gains_are_linear() {
        let rel = qrels(&[("a", 2), ("b", 1)]);
        let swapped = ranking(&["b", "a"]);
        let dcg = 1.0 + 2.0 / 3f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((ndcg_at(&swapped, &rel, 10) - dcg / idcg).abs() < 1e-12);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
    }
}
