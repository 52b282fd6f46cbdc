//! The support check: a generated sentence is kept only if the sources it cites say what it
//! says. A model may phrase, never add: every number in the sentence must appear in the cited
//! text, and most of its content words too. This is a lexical test, deliberately strict: a
//! paraphrase with new words is dropped, which costs some fluency on a small model and never
//! shows an invented fact as the answer.

use std::collections::HashSet;

/// Share of a sentence's content words that must appear in its cited sources.
pub const MIN_SUPPORTED_SHARE: f32 = 0.7;

/// Words too common to carry a claim.
const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "that",
    "this",
    "with",
    "are",
    "was",
    "were",
    "has",
    "have",
    "had",
    "not",
    "but",
    "any",
    "all",
    "its",
    "his",
    "her",
    "their",
    "they",
    "them",
    "from",
    "into",
    "onto",
    "which",
    "who",
    "whom",
    "what",
    "when",
    "where",
    "will",
    "shall",
    "may",
    "can",
    "could",
    "would",
    "should",
    "must",
    "been",
    "being",
    "also",
    "such",
    "than",
    "then",
    "there",
    "these",
    "those",
    "other",
    "each",
    "both",
    "more",
    "most",
    "only",
    "own",
    "same",
    "some",
    "does",
    "did",
    "doing",
    "one",
    "two",
    "out",
    "over",
    "under",
    "about",
    "upon",
    "per",
    "via",
    "document",
    "documents",
    "source",
    "sources",
    "according",
    "states",
    "stated",
    "says",
    "said",
    "provides",
    "provided",
    "mentions",
    "mentioned",
    "describes",
    "described",
    "text",
    "passage",
    "excerpt",
    "summary",
    "answer",
    "question",
    "following",
    "based",
    "information",
];

/// Lower-case words of `text` (letters and digits), for matching.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// A crude stem so "terminates" matches "termination": the first 6 characters of a long word.
pub(crate) fn stem(word: &str) -> String {
    word.chars().take(6).collect()
}

/// The words of a sentence that carry its claim: numbers, and words of 3+ letters that are not
/// stopwords.
pub fn content_words(text: &str) -> Vec<String> {
    words(text)
        .filter(|word| {
            word.chars().any(|c| c.is_ascii_digit())
                || (word.chars().count() >= 3 && !STOPWORDS.contains(&word.as_str()))
        })
        .collect()
}

/// True when `sentence` (citation markers already removed or ignored) is supported by
/// `evidence`: each of its numbers appears there, and at least [`MIN_SUPPORTED_SHARE`] of its
/// content words (compared by stem). A sentence with no content word is not a claim and is
/// not supported either.
pub fn is_supported(sentence: &str, evidence: &[&str]) -> bool {
    let claim = content_words(&strip_markers(sentence));
    if claim.is_empty() {
        return false;
    }
    let mut known_words = HashSet::new();
    let mut known_stems = HashSet::new();
    for text in evidence {
        for word in words(text) {
            known_stems.insert(stem(&word));
            known_words.insert(word);
        }
    }
    let numbers_known = claim
        .iter()
        .filter(|word| word.chars().any(|c| c.is_ascii_digit()))
        .all(|number| known_words.contains(number));
    let covered = claim
        .iter()
        .filter(|word| known_stems.contains(&stem(word)))
        .count();
    numbers_known && covered as f32 >= MIN_SUPPORTED_SHARE * claim.len() as f32
}

/// The sentence without `[n]` markers (their digits are not claims).
fn strip_markers(sentence: &str) -> String {
    let mut out = String::with_capacity(sentence.len());
    let mut depth = 0;
    for c in sentence.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The source numbers a sentence cites (`[1]`, `[2, 3]`).
pub fn cited_numbers(sentence: &str) -> Vec<usize> {
    let mut numbers = Vec::new();
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        for part in after[..close].split(',') {
            if let Ok(n) = part.trim().parse::<usize>() {
                numbers.push(n);
            }
        }
        rest = &after[close + 1..];
    }
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUSE: &str = "This Agreement shall be governed by the laws of the State of Delaware. \
                          Either party may terminate this Agreement on 30 days written notice.";

    #[test]
    fn a_restatement_of_the_source_is_supported() {
        assert!(is_supported(
            "The agreement is governed by Delaware law [1].",
            &[CLAUSE]
        ));
        assert!(is_supported(
            "Either party may terminate on 30 days notice [1].",
            &[CLAUSE]
        ));
    }

    #[test]
    fn a_new_number_or_new_claim_is_not() {
        assert!(!is_supported(
            "Either party may terminate on 60 days notice [1].",
            &[CLAUSE]
        ));
        assert!(!is_supported(
            "The contract has no liability cap and pays royalties quarterly [1].",
            &[CLAUSE]
        ));
        assert!(!is_supported("[1].", &[CLAUSE]));
    }

    #[test]
    fn markers_are_read() {
        assert_eq!(cited_numbers("A [1]. B [2, 3]"), vec![1, 2, 3]);
        assert!(cited_numbers("none").is_empty());
    }
}
