//! How hybrid search merges BM25's and the vector engine's lists (docs/architecture.md,
//! "Fusion"): a convex combination of per-query normalised scores (the default), or reciprocal
//! rank fusion (the previous default, kept for comparison and as a setting).

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// How hybrid search merges the two engines' lists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k`: ranks only, scores ignored.
    Rrf {
        /// The RRF constant (60 in the original paper).
        k: f32,
    },
    /// Each engine's scores divided by its best score for this query (BM25 and cosine
    /// similarity live on different scales), then `vector_weight × vector + (1 − vector_weight)
    /// × bm25`; a chunk an engine did not return gets that engine's lowest scaled score.
    Convex {
        /// The vector engine's weight, 0 to 1.
        vector_weight: f32,
    },
}

impl Fusion {
    /// The default: chosen on SciFact, TLDRLegal and CUAD (docs/benchmarks.md, "Search
    /// quality"), one setting for all of them.
    pub const DEFAULT: Fusion = Fusion::Convex {
        vector_weight: DEFAULT_VECTOR_WEIGHT,
    };

    /// Fuses two lists of `(item, engine score)`, best first, into one, best first.
    pub fn fuse<T: Clone + Eq + Hash>(
        &self,
        bm25: &[(T, f32)],
        vector: &[(T, f32)],
    ) -> Vec<(T, f32)> {
        match *self {
            Fusion::Rrf { k } => {
                let ids = |list: &[(T, f32)]| list.iter().map(|(id, _)| id.clone()).collect();
                reciprocal_rank_fusion(&[ids(bm25), ids(vector)], k)
            }
            Fusion::Convex { vector_weight } => convex_fusion(bm25, vector, vector_weight),
        }
    }

    /// A short name for reports, e.g. `convex w=0.60` or `rrf k=60`.
    pub fn label(&self) -> String {
        match self {
            Fusion::Rrf { k } => format!("rrf k={k}"),
            Fusion::Convex { vector_weight } => format!("convex w={vector_weight:.2}"),
        }
    }
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::DEFAULT
    }
}

/// The per-collection setting (`vellum eval --tune --apply`) that overrides the default
/// fusion's vector weight for that collection's chunks.
pub const VECTOR_WEIGHT_SETTING: &str = "fusion_vector_weight";

/// Candidates per engine that the convex fusion ranks first ([`convex_fusion_by`]), and the
/// depth live search asks each engine for. 100 rather than 50: long documents (a CUAD contract
/// has ~76 chunks) need that many chunks for ten distinct documents to appear at all.
pub const FUSION_DEPTH: usize = 100;

/// The vector engine's weight in the default fusion.
pub const DEFAULT_VECTOR_WEIGHT: f32 = 0.6;

/// Scales `list`'s scores by its top score (the best chunk gets 1), and returns them with the
/// lowest scaled score, which stands in for the chunks the engine did not return (they scored
/// at most its last candidate). Scores that are not all positive fall back to min-max.
fn scaled<T: Clone + Eq + Hash>(list: &[(T, f32)]) -> (HashMap<T, f32>, f32) {
    let (low, high) = list.iter().fold(
        (f32::INFINITY, f32::NEG_INFINITY),
        |(low, high), (_, score)| (low.min(*score), high.max(*score)),
    );
    let scale = |score: f32| {
        if low > 0.0 {
            score / high
        } else if high > low {
            (score - low) / (high - low)
        } else {
            1.0
        }
    };
    let scores: HashMap<T, f32> = list
        .iter()
        .map(|(id, score)| (id.clone(), scale(*score)))
        .collect();
    let floor = if list.is_empty() { 0.0 } else { scale(low) };
    (scores, floor)
}

/// The convex combination of scaled scores ([`Fusion::Convex`]). Ties keep the
/// order of first appearance (BM25's list first), so the result is deterministic.
pub fn convex_fusion<T: Clone + Eq + Hash>(
    bm25: &[(T, f32)],
    vector: &[(T, f32)],
    vector_weight: f32,
) -> Vec<(T, f32)> {
    convex_fusion_by(bm25, vector, |_| vector_weight)
}

/// [`convex_fusion`] with each item's own vector weight (its collection's tuned setting).
///
/// Only each engine's first [`FUSION_DEPTH`] candidates are fused into the head of the result,
/// so the top of the ranking does not depend on how deep the engines were asked to look (a
/// later page, or the evaluation's 300): page 2 continues page 1, and `vellum eval` measures
/// what live search returns. Deeper candidates follow, fused the same way among themselves.
pub fn convex_fusion_by<T: Clone + Eq + Hash>(
    bm25: &[(T, f32)],
    vector: &[(T, f32)],
    weight_of: impl Fn(&T) -> f32,
) -> Vec<(T, f32)> {
    let head = |list: &[(T, f32)]| list.len().min(FUSION_DEPTH);
    let mut fused = fuse_scaled(&bm25[..head(bm25)], &vector[..head(vector)], &weight_of);
    if bm25.len() > FUSION_DEPTH || vector.len() > FUSION_DEPTH {
        let in_head: std::collections::HashSet<T> =
            fused.iter().map(|(id, _)| id.clone()).collect();
        let lowest = fused.last().map_or(f32::INFINITY, |(_, score)| *score);
        let tail: Vec<(T, f32)> = fuse_scaled(bm25, vector, &weight_of)
            .into_iter()
            .filter(|(id, _)| !in_head.contains(id))
            // Scores stay in order: the tail never outscores the head it follows.
            .map(|(id, score)| (id, score.min(lowest)))
            .collect();
        fused.extend(tail);
    }
    fused
}

/// Each engine's candidates fused by one formula over their own scaling (see [`Fusion::Convex`]).
fn fuse_scaled<T: Clone + Eq + Hash>(
    bm25: &[(T, f32)],
    vector: &[(T, f32)],
    weight_of: &impl Fn(&T) -> f32,
) -> Vec<(T, f32)> {
    let (bm25_scores, bm25_floor) = scaled(bm25);
    let (vector_scores, vector_floor) = scaled(vector);
    let mut seen = std::collections::HashSet::new();
    let mut fused: Vec<(T, f32, usize)> = bm25
        .iter()
        .chain(vector)
        .filter(|(id, _)| seen.insert(id.clone()))
        .enumerate()
        .map(|(order, (id, _))| {
            let weight = weight_of(id).clamp(0.0, 1.0);
            let score = weight * vector_scores.get(id).copied().unwrap_or(vector_floor)
                + (1.0 - weight) * bm25_scores.get(id).copied().unwrap_or(bm25_floor);
            (id.clone(), score, order)
        })
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused
        .into_iter()
        .map(|(id, score, _)| (id, score))
        .collect()
}

/// Fuses ranked lists (best first) into one list of `(item, fused score)`, best first.
/// Ties keep the order of first appearance, so the result is deterministic.
pub fn reciprocal_rank_fusion<T: Clone + Eq + Hash>(lists: &[Vec<T>], k: f32) -> Vec<(T, f32)> {
    let mut scores: HashMap<T, (f32, usize)> = HashMap::new();
    let mut first_seen = 0usize;
    for list in lists {
        for (rank_idx, item) in list.iter().enumerate() {
            let contribution = 1.0 / (k + rank_idx as f32 + 1.0);
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                first_seen += 1;
                (0.0, first_seen)
            });
            entry.0 += contribution;
        }
    }
    let mut fused: Vec<(T, f32, usize)> = scores
        .into_iter()
        .map(|(item, (score, order))| (item, score, order))
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused
        .into_iter()
        .map(|(item, score, _)| (item, score))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ranked_high_in_both_lists_wins() {
        let bm25 = vec!["a", "b", "c"];
        let vector = vec!["b", "d", "a"];
        let fused = reciprocal_rank_fusion(&[bm25, vector], 60.0);
        let order: Vec<&str> = fused.iter().map(|(item, _)| *item).collect();
        assert_eq!(order, vec!["b", "a", "d", "c"]);
        let expected_b = 1.0 / 62.0 + 1.0 / 61.0;
        assert!((fused[0].1 - expected_b).abs() < 1e-6);
    }

    #[test]
    fn single_list_keeps_its_order() {
        let fused = reciprocal_rank_fusion(&[vec![3, 1, 2]], 60.0);
        assert_eq!(
            fused.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![3, 1, 2]
        );
    }

    #[test]
    fn convex_weighs_scaled_scores() {
        // BM25 scores on its own scale, cosine on another; each divided by its best.
        let bm25 = vec![("a", 12.0), ("b", 6.0), ("c", 2.0)];
        let vector = vec![("c", 0.9), ("b", 0.7), ("d", 0.5)];
        let fused = convex_fusion(&bm25, &vector, 0.5);
        let order: Vec<&str> = fused.iter().map(|(item, _)| *item).collect();
        // a: 0.5 × 1 + 0.5 × 5/9 (missing: the vector list's floor) = 0.778; b: 0.5 × 0.5 +
        // 0.5 × 7/9 = 0.639; c: 0.5 × 1/6 + 0.5 × 1 = 0.583; d: 0.5 × 1/6 + 0.5 × 5/9 = 0.361.
        assert_eq!(order, vec!["a", "b", "c", "d"]);
        assert!((fused[1].1 - (0.25 + 0.5 * 7.0 / 9.0)).abs() < 1e-6);
        // Weight 1 is the vector order, weight 0 the BM25 order.
        let top2 = |weight| -> Vec<&str> {
            convex_fusion(&bm25, &vector, weight)
                .iter()
                .map(|(item, _)| *item)
                .take(2)
                .collect()
        };
        assert_eq!(top2(1.0), vec!["c", "b"]);
        assert_eq!(top2(0.0), vec!["a", "b"]);
    }

    #[test]
    fn scores_that_are_not_all_positive_fall_back_to_min_max() {
        let (scores, floor) = scaled(&[("x", 0.5), ("y", -0.5)]);
        assert_eq!(scores["x"], 1.0);
        assert_eq!(scores["y"], 0.0);
        assert_eq!(floor, 0.0);
    }

    #[test]
    fn convex_copes_with_one_empty_list_and_equal_scores() {
        let fused = convex_fusion(&[], &[("x", 0.3), ("y", 0.3)], 0.6);
        assert_eq!(fused.len(), 2);
        assert_eq!(fused[0].0, "x");
        assert!(convex_fusion::<&str>(&[], &[], 0.6).is_empty());
    }

    #[test]
    fn deeper_candidates_follow_the_head_without_reordering_it() {
        let bm25: Vec<(usize, f32)> = (0..300).map(|i| (i, 300.0 - i as f32)).collect();
        let vector: Vec<(usize, f32)> = (0..300)
            .map(|i| (1000 + i, 0.9 - i as f32 * 0.001))
            .collect();
        let shallow = convex_fusion(&bm25[..FUSION_DEPTH], &vector[..FUSION_DEPTH], 0.6);
        let deep = convex_fusion(&bm25, &vector, 0.6);
        assert_eq!(deep.len(), 600);
        assert_eq!(&deep[..shallow.len()], &shallow[..]);
        assert!(
            deep.windows(2).all(|pair| pair[0].1 >= pair[1].1),
            "scores in order"
        );
    }

    #[test]
    fn empty_lists_give_nothing() {
        let fused: Vec<(u32, f32)> = reciprocal_rank_fusion(&[vec![], vec![]], 60.0);
        assert!(fused.is_empty());
    }
}
