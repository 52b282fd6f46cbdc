//! Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): each list contributes
//! `1 / (k + rank)` for every item it ranks. Scores from BM25 and cosine similarity live on
//! different scales; RRF needs only ranks, so no score normalisation is tuned per corpus.

use std::collections::HashMap;
use std::hash::Hash;

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
    fn empty_lists_give_nothing() {
        let fused: Vec<(u32, f32)> = reciprocal_rank_fusion(&[vec![], vec![]], 60.0);
        assert!(fused.is_empty());
    }
}
