//! Patient-record summaries: problems, medications, allergies, results, vital signs,
//! procedures, immunizations and encounters, each item quoted from the record's passages.
//!
//! A C-CDA carries every fact twice: coded entries (what the narrative was written from) and
//! the narrative a clinician reads, which is what Vellum indexes. The summary takes the list of
//! facts from the coded entries ([`ccda`]) and quotes the narrative row that shows each one.
//! Anything else (a discharge letter as PDF, DOCX or text, or a C-CDA whose original is not at
//! hand) is read from its headings ([`free_text`]). Either way an item is only ever something
//! the document says.

mod ccda;
mod free_text;
mod xml;

use std::ops::Range;

use crate::{Document, Item, Passage};

/// One heading of the summary, with how a C-CDA names its section.
pub(crate) struct Heading {
    /// The item's section name.
    pub name: &'static str,
    /// LOINC section codes (`section/code/@code`).
    pub loinc: &'static [&'static str],
    /// Section templateIds (`section/templateId/@root`), entries optional and required.
    pub templates: &'static [&'static str],
    /// The line for a section searched and found empty.
    pub empty: &'static str,
}

/// The headings in the order a summary lists them.
pub(crate) const HEADINGS: &[Heading] = &[
    Heading {
        name: "Problems",
        // 11450-4 problem list; 11535-2 hospital discharge diagnosis.
        loinc: &["11450-4", "11535-2"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.5",
            "2.16.840.1.113883.10.20.22.2.5.1",
            "2.16.840.1.113883.10.20.22.2.24",
        ],
        empty: "No problems recorded.",
    },
    Heading {
        name: "Medications",
        // 10160-0 medication history; 10183-2 hospital discharge medications.
        loinc: &["10160-0", "10183-2"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.1",
            "2.16.840.1.113883.10.20.22.2.1.1",
            "2.16.840.1.113883.10.20.22.2.11",
            "2.16.840.1.113883.10.20.22.2.11.1",
        ],
        empty: "No medications recorded.",
    },
    Heading {
        name: "Allergies",
        loinc: &["48765-2"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.6",
            "2.16.840.1.113883.10.20.22.2.6.1",
        ],
        empty: "No allergies recorded.",
    },
    Heading {
        name: "Results",
        loinc: &["30954-2"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.3",
            "2.16.840.1.113883.10.20.22.2.3.1",
        ],
        empty: "No results recorded.",
    },
    Heading {
        name: "Vital Signs",
        loinc: &["8716-3"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.4",
            "2.16.840.1.113883.10.20.22.2.4.1",
        ],
        empty: "No vital signs recorded.",
    },
    Heading {
        name: "Procedures",
        loinc: &["47519-4"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.7",
            "2.16.840.1.113883.10.20.22.2.7.1",
        ],
        empty: "No procedures recorded.",
    },
    Heading {
        name: "Immunizations",
        loinc: &["11369-6"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.2",
            "2.16.840.1.113883.10.20.22.2.2.1",
        ],
        empty: "No immunizations recorded.",
    },
    Heading {
        name: "Encounters",
        loinc: &["46240-8"],
        templates: &[
            "2.16.840.1.113883.10.20.22.2.22",
            "2.16.840.1.113883.10.20.22.2.22.1",
        ],
        empty: "No encounters recorded.",
    },
];

/// The patient-record summary of `document`: from the C-CDA's coded entries when the original
/// is a readable C-CDA, else from the passages' headings.
pub fn summary(document: &Document<'_>) -> Vec<Item> {
    if let Some(original) = document.original {
        if let Some(items) = ccda::summary(document, original) {
            return items;
        }
    }
    free_text::summary(document)
}

/// Byte offset of `needle` in `haystack`, ASCII case-insensitively (offsets stay valid in
/// `haystack` because ASCII lower-casing keeps byte lengths).
pub(crate) fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let hay = haystack.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = hay.get(from..).and_then(|rest| rest.find(&needle)) {
        let start = from + found;
        let end = start + needle.len();
        // Whole words only where the needle starts or ends with a letter or digit.
        let before_ok = !needle.starts_with(|c: char| c.is_alphanumeric())
            || !hay[..start].ends_with(|c: char| c.is_alphanumeric());
        let after_ok = !needle.ends_with(|c: char| c.is_alphanumeric())
            || !hay[end..].starts_with(|c: char| c.is_alphanumeric());
        if before_ok && after_ok {
            return Some(start);
        }
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// A window of at most `max` bytes of `text` around `range`, cut at spaces, never splitting a
/// character. The window always contains `range` (which may itself be longer than `max`).
pub(crate) fn window(text: &str, range: Range<usize>, max: usize) -> Range<usize> {
    let spare = max.saturating_sub(range.len()) / 2;
    let mut start = range.start.saturating_sub(spare);
    let mut end = (range.end + spare).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    if start > 0 && !text[..start].ends_with(' ') {
        if let Some(space) = text[start..range.start].find(' ') {
            start += space + 1;
        } else {
            start = range.start;
        }
    }
    if end < text.len() && !text[end..].starts_with(' ') {
        if let Some(space) = text[range.end..end].rfind(' ') {
            end = range.end + space;
        } else {
            end = range.end;
        }
    }
    let slice = &text[start..end];
    let trimmed_start = start + (slice.len() - slice.trim_start().len());
    let trimmed_end = end - (slice.len() - slice.trim_end().len());
    trimmed_start.min(range.start)..trimmed_end.max(range.end)
}

/// The sentence of `passage` containing `at`, narrowed to a window of `max` bytes around
/// `range` when longer.
pub(crate) fn sentence_around(
    passage: &Passage<'_>,
    range: Range<usize>,
    max: usize,
) -> Range<usize> {
    let sentence = crate::text::sentences(passage.text)
        .into_iter()
        .find(|sentence| sentence.start <= range.start && range.end <= sentence.end)
        .unwrap_or(range.clone());
    if sentence.len() <= max {
        return sentence;
    }
    let local = window(
        &passage.text[sentence.clone()],
        range.start - sentence.start..range.end - sentence.start,
        max,
    );
    sentence.start + local.start..sentence.start + local.end
}

/// Keeps the first of items that say the same thing in the same section (consecutive chunks
/// overlap, so a line is often seen twice).
pub(crate) fn dedup(items: Vec<Item>) -> Vec<Item> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert((item.section.clone(), item.text.to_lowercase())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_ignore_case_matches_whole_words() {
        assert_eq!(
            find_ignore_case("No Asthmatic; ASTHMA here", "asthma"),
            Some(14)
        );
        assert_eq!(find_ignore_case("asthmatic", "asthma"), None);
    }

    #[test]
    fn window_cuts_at_spaces_and_keeps_the_range() {
        let text = "one two three four five six seven";
        let range = 14..18; // "four"
        let got = window(text, range.clone(), 16);
        assert!(got.start <= range.start && got.end >= range.end);
        assert_eq!(&text[got], "three four five");
    }
}
