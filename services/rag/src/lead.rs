//! The sentences an answer leads with: quoted verbatim from the sources, chosen by the
//! embedder's similarity to the question (not by the model), each cited `[n]`.
//!
//! A small model often restates the question instead of answering it. The sources usually hold
//! a sentence that answers it; quoting that sentence first gives the reader the answer in the
//! document's own words, checkable at a click, whatever the model writes after it.

use serde::Serialize;

use crate::answer::Source;
use crate::retrieve::QueryEmbedder;
use crate::support::{content_words, stem};
use crate::Result;

/// Sources whose sentences are candidates (the best-ranked ones).
const CANDIDATE_SOURCES: usize = 5;
/// Sentences shorter than this many words are headings or fragments, not answers.
const MIN_WORDS: usize = 6;
/// Longer sentences are lists or run-on extraction; they are not quoted whole.
const MAX_WORDS: usize = 90;
/// A second quote is added only if it is nearly as close to the question as the first.
const SECOND_QUOTE_MARGIN: f32 = 0.05;
/// Weight of the question's own words in a sentence, beside the embedder's cosine. Measured on
/// CUAD's 941 labelled (contract, category) questions over every sentence of the contracts
/// (docs/benchmarks.md): the share of top-2 sentences matching the lawyers' clause went from
/// 0.354 (cosine alone) to 0.387 (0.2), 0.390 (0.3) and 0.383 (0.5).
const QUESTION_WORDS_WEIGHT: f32 = 0.3;

/// Share of the question's content words (compared by stem) that `sentence` contains.
fn question_words_share(question: &[String], sentence: &str) -> f32 {
    if question.is_empty() {
        return 0.0;
    }
    let present: std::collections::HashSet<String> = content_words(sentence)
        .iter()
        .map(|word| stem(word))
        .collect();
    let found = question
        .iter()
        .filter(|word| present.contains(&stem(word)))
        .count();
    found as f32 / question.len() as f32
}

/// A sentence quoted from source `n`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadQuote {
    /// The source it is quoted from.
    pub n: usize,
    /// The sentence, an exact substring of the source's text.
    pub text: String,
    /// The source's page.
    pub page: u32,
    /// How close the sentence is to the question: the embedder's cosine similarity plus
    /// [`QUESTION_WORDS_WEIGHT`] times the share of the question's words it contains.
    pub similarity: f32,
}

/// Up to `max` sentences of the best sources that are closest to `question` (at least one when
/// a source has a sentence of at least [`MIN_WORDS`] words).
pub fn lead_quotes(
    embedder: &dyn QueryEmbedder,
    question: &str,
    sources: &[Source],
    max: usize,
) -> Result<Vec<LeadQuote>> {
    let mut candidates: Vec<(usize, u32, &str)> = Vec::new();
    for source in sources.iter().take(CANDIDATE_SOURCES) {
        for range in vellum_brief::text::sentences(&source.text) {
            // A chunk starts and ends at a word limit, not always at a sentence: a cut-off
            // sentence at either end is a fragment, and a fragment is not quoted.
            let cut_at_start = range.start == 0 && source.text.starts_with(char::is_lowercase);
            let cut_at_end = range.end == source.text.len()
                && !source
                    .text
                    .trim_end()
                    .ends_with(['.', '?', '!', ';', '"', '\u{201d}', ')']);
            let sentence = &source.text[range];
            let words = sentence.split_whitespace().count();
            let is_new = !candidates.iter().any(|(_, _, seen)| *seen == sentence);
            if (MIN_WORDS..=MAX_WORDS).contains(&words) && is_new && !cut_at_start && !cut_at_end {
                candidates.push((source.n, source.page, sentence));
            }
        }
    }
    if candidates.is_empty() || max == 0 {
        return Ok(Vec::new());
    }
    let mut texts: Vec<&str> = Vec::with_capacity(candidates.len() + 1);
    texts.push(question);
    texts.extend(candidates.iter().map(|(_, _, sentence)| *sentence));
    let vectors = embedder.embed_texts(&texts)?;
    let Some((question_vector, sentence_vectors)) = vectors.split_first() else {
        return Ok(Vec::new());
    };
    let mut question_words = content_words(question);
    question_words.sort();
    question_words.dedup();
    let mut scored: Vec<LeadQuote> = candidates
        .iter()
        .zip(sentence_vectors)
        .map(|((n, page, sentence), vector)| LeadQuote {
            n: *n,
            text: sentence.to_string(),
            page: *page,
            similarity: dot(question_vector, vector)
                + QUESTION_WORDS_WEIGHT * question_words_share(&question_words, sentence),
        })
        .collect();
    scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    let best = scored[0].similarity;
    scored.truncate(max);
    scored.retain(|quote| quote.similarity >= best - SECOND_QUOTE_MARGIN);
    Ok(scored)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
