//! Contract briefs: parties, dates, renewal, governing law and CUAD's clause categories, each a
//! verbatim quote of one passage with its page.
//!
//! The rules are deterministic (regular expressions, keyword weights and section headings),
//! written from how such clauses are phrased in commercial agreements. A category is reported
//! found only when a sentence scores above its threshold: a false "found" misleads a reader
//! more than a "not found" that sends them to read the contract.

mod categories;
mod dates;
mod fields;

use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::text::sentences;
use crate::{Document, Item, Passage};

pub use dates::{normalise_date, SimpleDate};
pub use fields::normalise_jurisdiction;

/// The structured sections, in output order, before the clause categories.
pub const FIELD_SECTIONS: [&str; 7] = [
    "Parties",
    "Agreement Date",
    "Effective Date",
    "Expiration Date",
    "Renewal Term",
    "Notice Period To Terminate Renewal",
    "Governing Law",
];

/// The items for this kind of document: the seven structured sections, then the clause
/// categories as CUAD's column headers spell them, one item each.
pub fn brief(document: &Document<'_>) -> Vec<Item> {
    let units = Units::of(document.passages);
    let mut items = fields::items(&units);
    items.extend(categories::items(&units));
    items
}

/// One sentence of the document, as a byte range of one passage.
#[derive(Debug, Clone)]
pub(crate) struct Sentence<'a> {
    /// Index into `Units::passages`.
    pub passage: usize,
    /// Byte range in that passage's text.
    pub range: Range<usize>,
    /// The sentence (a slice of the passage's text).
    pub text: &'a str,
    /// Lower-cased for keyword tests.
    pub lower: String,
    /// The lower-cased heading of the section the sentence is in (the last heading-like
    /// sentence before it), or empty.
    pub heading: String,
    /// Whether this sentence itself looks like a heading.
    pub is_heading: bool,
    /// Whether it is part of a table of contents ("12.1 Obligations 33 12.2 ...").
    pub is_contents: bool,
    /// Whether it is a recital ("WHEREAS, ..."): background, not an operative clause.
    pub is_recital: bool,
}

/// The document cut into de-duplicated sentences.
pub(crate) struct Units<'a> {
    pub passages: &'a [Passage<'a>],
    pub sentences: Vec<Sentence<'a>>,
}

impl<'a> Units<'a> {
    pub fn of(passages: &'a [Passage<'a>]) -> Units<'a> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out = Vec::new();
        let mut heading = String::new();
        for (index, passage) in passages.iter().enumerate() {
            // Consecutive chunks of a page overlap: a sentence wholly inside the previous
            // chunk was seen there.
            let previous = index
                .checked_sub(1)
                .and_then(|i| passages.get(i))
                .filter(|p| p.page == passage.page)
                .map(|p| p.text);
            for range in sentences(passage.text) {
                let text = &passage.text[range.clone()];
                if !seen.insert(text) || previous.is_some_and(|p| p.contains(text)) {
                    continue;
                }
                let is_heading = looks_like_heading(text);
                if is_heading {
                    heading = text.to_lowercase();
                }
                let lower = text.to_lowercase();
                out.push(Sentence {
                    passage: index,
                    range,
                    text,
                    is_contents: CONTENTS_ENTRY.find_iter(text).count() >= 2,
                    is_recital: is_recital(&lower),
                    lower,
                    heading: heading.clone(),
                    is_heading,
                });
            }
        }
        Units {
            passages,
            sentences: out,
        }
    }

    /// An item quoting `range` (a sub-range of `sentence`) of its passage.
    pub fn found(
        &self,
        section: &str,
        sentence: &Sentence<'_>,
        range: Range<usize>,
        text: String,
    ) -> Item {
        let passage = &self.passages[sentence.passage];
        Item::found(section, passage, &passage.text[range], text)
    }
}

/// "Obligations 33 12.2": a page number followed by the next entry's section number.
static CONTENTS_ENTRY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{1,3}\s+\d{1,2}\.\d{1,2}\b").expect("static regex"));

/// Recitals give the background ("WHEREAS, ...", "Licensee wishes to ..."); they grant and
/// restrict nothing.
fn is_recital(lower: &str) -> bool {
    let start = lower.trim_start();
    start.starts_with("whereas")
        || start.starts_with("recitals")
        || lower.contains("wishes to")
        || lower.contains("desires to")
}

/// A short line of title-case or upper-case words ("12. GOVERNING LAW.", "Assignment.",
/// "Section 9 Limitation of Liability"): the heading of the clauses after it.
fn looks_like_heading(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || words.len() > 9 {
        return false;
    }
    let mut letters = 0;
    for word in &words {
        let Some(first) = word.chars().find(|c| c.is_alphabetic()) else {
            continue; // numbers, section marks
        };
        let lower = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if matches!(
            lower.as_str(),
            "of" | "and" | "to" | "the" | "for" | "in" | "on" | "or" | "a" | "by" | "with"
        ) {
            continue;
        }
        if !first.is_uppercase() {
            return false;
        }
        letters += 1;
    }
    letters > 0
}

/// The sub-range of `sentence` to quote for a match at `at` (byte offsets in the passage):
/// the whole sentence when it is short, else the `;`-separated part around the match, else a
/// window of words around it. CUAD's labels are clauses, not pages of text.
pub(crate) fn clause_around(text: &str, sentence: &Range<usize>, at: usize) -> Range<usize> {
    const MAX_WORDS: usize = 110;
    let words = |r: &Range<usize>| text[r.clone()].split_whitespace().count();
    if words(sentence) <= MAX_WORDS {
        return sentence.clone();
    }
    // The `;`-separated part holding the match.
    let mut start = sentence.start;
    let mut part = sentence.clone();
    for (offset, _) in text[sentence.clone()].match_indices("; ") {
        let end = sentence.start + offset + 1;
        if at < end {
            part = start..end;
            break;
        }
        start = end + 1;
        part = start..sentence.end;
    }
    if words(&part) <= MAX_WORDS && words(&part) >= 8 {
        return trim_range(text, part);
    }
    // A window of words: a few before the match, the rest after it.
    let region = if words(&part) >= 8 {
        part
    } else {
        sentence.clone()
    };
    let bounds: Vec<Range<usize>> = word_ranges(text, &region);
    let hit = bounds
        .iter()
        .position(|w| w.end > at)
        .unwrap_or(bounds.len().saturating_sub(1));
    let first = hit.saturating_sub(25);
    let last = (first + MAX_WORDS).min(bounds.len());
    match (bounds.get(first), bounds.get(last.saturating_sub(1))) {
        (Some(a), Some(b)) => a.start..b.end,
        _ => sentence.clone(),
    }
}

fn word_ranges(text: &str, region: &Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text[region.clone()].char_indices() {
        let at = region.start + i;
        match (c == ' ', start) {
            (true, Some(s)) => {
                out.push(s..at);
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..region.end);
    }
    out
}

fn trim_range(text: &str, range: Range<usize>) -> Range<usize> {
    let slice = &text[range.clone()];
    let leading = slice.len() - slice.trim_start().len();
    let trailing = slice.len() - slice.trim_end().len();
    range.start + leading..range.end - trailing
}
