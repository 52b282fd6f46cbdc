//! Checks the `[n]` citation markers in a generated answer against the sources it was given:
//! markers that point to no source are removed and reported, and sentences that cite nothing
//! are flagged, so a reader can see which claims are grounded.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// The outcome of checking an answer's citations.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CitationCheck {
    /// The answer with invalid markers removed.
    pub text: String,
    /// Source numbers cited at least once, ascending.
    pub cited: Vec<usize>,
    /// Markers that pointed to no source, as written (e.g. `[9]`).
    pub invalid: Vec<String>,
    /// Sentences that cite no source.
    pub uncited_sentences: Vec<String>,
}

/// A marker is `[n]` or `[n, m, ...]`.
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[\s*(\d{1,4}(?:\s*,\s*\d{1,4})*)\s*\]").expect("constant pattern compiles")
});

/// Checks `answer` against `num_sources` numbered sources (1..=num_sources).
pub fn check_citations(answer: &str, num_sources: usize) -> CitationCheck {
    let marker = &*MARKER;
    let mut cited = BTreeSet::new();
    let mut invalid = Vec::new();
    let cleaned = marker.replace_all(answer, |caps: &regex::Captures<'_>| {
        let numbers: Vec<usize> = caps[1]
            .split(',')
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .collect();
        let valid: Vec<usize> = numbers
            .iter()
            .copied()
            .filter(|n| *n >= 1 && *n <= num_sources)
            .collect();
        if valid.len() != numbers.len() {
            invalid.push(caps[0].to_string());
        }
        cited.extend(valid.iter().copied());
        if valid.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = valid.iter().map(|n| n.to_string()).collect();
            format!("[{}]", parts.join(", "))
        }
    });
    let text = tidy_spaces(&cleaned);
    let uncited_sentences = sentences(&text)
        .into_iter()
        .filter(|sentence| !marker.is_match(sentence))
        .filter(|sentence| sentence.chars().any(char::is_alphanumeric))
        .collect();
    CitationCheck {
        text,
        cited: cited.into_iter().collect(),
        invalid,
        uncited_sentences,
    }
}

/// Removes the double spaces and space-before-period left where a marker was removed.
fn tidy_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let collapsed = line
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let collapsed = collapsed.replace(" .", ".").replace(" ,", ",");
        out.push_str(&collapsed);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Splits text into sentences; markers that follow a sentence's full stop belong to it.
pub(crate) fn sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut idx = 0;
    while idx < chars.len() {
        let c = chars[idx];
        current.push(c);
        let ends_sentence = matches!(c, '.' | '!' | '?' | '\n')
            && chars.get(idx + 1).is_none_or(|next| next.is_whitespace());
        if ends_sentence {
            // Attach markers written after the full stop: "It is five years. [1]"
            let mut look = idx + 1;
            while look < chars.len() && chars[look] == ' ' {
                look += 1;
            }
            while look < chars.len() && chars[look] == '[' {
                let Some(close) = chars[look..].iter().position(|ch| *ch == ']') else {
                    break;
                };
                current.push(' ');
                current.extend(&chars[look..=look + close]);
                look += close + 1;
                idx = look - 1;
                while look < chars.len() && chars[look] == ' ' {
                    look += 1;
                }
            }
            let sentence = current.trim().to_string();
            if !sentence.is_empty() {
                sentences.push(sentence);
            }
            current.clear();
        }
        idx += 1;
    }
    let rest = current.trim();
    if !rest.is_empty() {
        sentences.push(rest.to_string());
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bogus_marker_is_removed_and_reported() {
        let check = check_citations("The term is five years [1]. It renews yearly [9].", 3);
        assert_eq!(check.text, "The term is five years [1]. It renews yearly.");
        assert_eq!(check.cited, vec![1]);
        assert_eq!(check.invalid, vec!["[9]".to_string()]);
        assert_eq!(
            check.uncited_sentences,
            vec!["It renews yearly.".to_string()]
        );
    }

    #[test]
    fn list_markers_keep_their_valid_part() {
        let check = check_citations("Both agree [2, 7].", 2);
        assert_eq!(check.text, "Both agree [2].");
        assert_eq!(check.cited, vec![2]);
        assert_eq!(check.invalid, vec!["[2, 7]".to_string()]);
        assert!(check.uncited_sentences.is_empty());
    }

    #[test]
    fn marker_after_full_stop_counts_for_that_sentence() {
        let check = check_citations("Payment is due in 30 days. [3] Late fees apply.", 3);
        assert_eq!(check.cited, vec![3]);
        assert_eq!(
            check.uncited_sentences,
            vec!["Late fees apply.".to_string()]
        );
    }

    #[test]
    fn zero_is_not_a_source() {
        let check = check_citations("Nothing [0].", 5);
        assert_eq!(check.invalid, vec!["[0]".to_string()]);
        assert!(check.cited.is_empty());
    }

    #[test]
    fn answer_without_markers_flags_every_sentence() {
        let check = check_citations("One. Two!", 2);
        assert_eq!(check.uncited_sentences, vec!["One.", "Two!"]);
    }
}
