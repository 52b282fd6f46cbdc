//! Any other document: up to eight "Key Points", sentences quoted with their pages.
//!
//! Deterministic extractive choice: each sentence scores by its informative words (words of
//! four letters or more, not stop words, weighted by how rare they are in the document, so a
//! sentence about the document's specific matter beats boilerplate), plus a little for numbers.
//! The pages are cut into up to eight spans and each span gives its best sentence, so the points
//! come from the whole document; they are listed in document order.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use crate::{Document, Item, Passage};

/// Most key points.
const MAX_POINTS: usize = 8;
/// Longest sentence quoted (longer ones are usually run-together tables or lists).
const MAX_QUOTE: usize = 400;

const STOP_WORDS: &[&str] = &[
    "that", "this", "with", "from", "have", "which", "will", "shall", "such", "been", "were",
    "their", "there", "they", "them", "than", "then", "into", "upon", "also", "these", "those",
    "other", "each", "under", "over", "when", "where", "what", "about", "would", "could", "should",
    "being", "only", "more", "most", "some", "very", "does", "your", "page",
];

/// A candidate sentence: where it is and its score.
struct Candidate<'p> {
    passage: &'p Passage<'p>,
    range: std::ops::Range<usize>,
    words: Vec<String>,
    score: f64,
}

fn furniture() -> &'static Regex {
    static FURNITURE: OnceLock<Regex> = OnceLock::new();
    FURNITURE.get_or_init(|| {
        Regex::new(
            r"(?i)^(?:page \d+(?: of \d+)?|\d+ of \d+|\d+)$|\bpage \d+ of \d+\b|\.(?:pdf|docx?|txt|html?|xml|eml)\b|^(?:table of contents|contents)$|https?://\S+$",
        )
        .unwrap_or_else(|_| unreachable!())
    })
}

/// The key points of `document`.
pub fn summary(document: &Document<'_>) -> Vec<Item> {
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    let mut seen = HashSet::new();
    for passage in document.passages {
        for range in crate::text::sentences(passage.text) {
            let sentence = &passage.text[range.clone()];
            if !is_sentence(sentence) || !seen.insert(sentence.to_lowercase()) {
                continue;
            }
            let words = informative_words(sentence);
            candidates.push(Candidate {
                passage,
                range,
                words,
                score: 0.0,
            });
        }
    }
    if candidates.is_empty() {
        return vec![Item::not_found(
            "Key Points",
            "No sentences to quote.".to_string(),
        )];
    }
    // Document frequency of each word over the sentences.
    let mut frequency: HashMap<&str, usize> = HashMap::new();
    for candidate in &candidates {
        let distinct: HashSet<&str> = candidate.words.iter().map(String::as_str).collect();
        for word in distinct {
            *frequency.entry(word).or_default() += 1;
        }
    }
    let total = candidates.len() as f64;
    let scores: Vec<f64> = candidates
        .iter()
        .map(|candidate| {
            let distinct: HashSet<&str> = candidate.words.iter().map(String::as_str).collect();
            let weight: f64 = distinct
                .iter()
                .map(|word| {
                    let df = frequency.get(word).copied().unwrap_or(1) as f64;
                    // Words seen once are often OCR noise or names; a word that recurs a few
                    // times is the document's subject.
                    let recurrence = if df >= 2.0 { 1.0 } else { 0.6 };
                    (1.0 + total / df).ln() * recurrence
                })
                .sum();
            let sentence = &candidate.passage.text[candidate.range.clone()];
            let numbers = if sentence.chars().any(|c| c.is_ascii_digit()) {
                1.0
            } else {
                0.0
            };
            // Normalised by length so long run-on sentences do not always win.
            weight / (distinct.len() as f64 + 4.0).sqrt() + numbers
        })
        .collect();
    for (candidate, score) in candidates.iter_mut().zip(scores) {
        candidate.score = score;
    }
    let chosen = choose(&candidates);
    chosen
        .into_iter()
        .map(|index| {
            let candidate = &candidates[index];
            let quote = &candidate.passage.text[candidate.range.clone()];
            Item::found("Key Points", candidate.passage, quote, quote.to_string())
        })
        .collect()
}

/// Up to [`MAX_POINTS`] candidates: the best of each of up to eight spans of the document,
/// then the best of the rest, in document order.
fn choose(candidates: &[Candidate<'_>]) -> Vec<usize> {
    let spans = MAX_POINTS.min(candidates.len());
    let mut chosen: Vec<usize> = Vec::new();
    for span in 0..spans {
        let start = span * candidates.len() / spans;
        let end = (span + 1) * candidates.len() / spans;
        let best = (start..end).max_by(|&a, &b| {
            candidates[a]
                .score
                .partial_cmp(&candidates[b].score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(b.cmp(&a))
        });
        if let Some(best) = best {
            chosen.push(best);
        }
    }
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

/// A sentence worth quoting: 6 to 80 words, mostly letters, not page furniture.
fn is_sentence(sentence: &str) -> bool {
    let words = sentence.split_whitespace().count();
    if !(6..=80).contains(&words) || sentence.len() > MAX_QUOTE {
        return false;
    }
    let letters = sentence.chars().filter(|c| c.is_alphabetic()).count();
    if letters * 2 < sentence.chars().count() {
        return false;
    }
    !furniture().is_match(sentence.trim())
}

fn informative_words(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().count() >= 4 && word.chars().any(char::is_alphabetic))
        .map(str::to_lowercase)
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .collect()
}
