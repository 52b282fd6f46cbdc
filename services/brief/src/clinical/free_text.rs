//! Clinical free text (discharge letters, notes): the items listed under headings such as
//! "Discharge Medications:" or "ALLERGIES", quoted from the passages.
//!
//! Passages have no line breaks left, so a heading is recognised by its words followed by a
//! colon, or written in capitals, and its body runs to the next heading (or the passage end).
//! The body is split into items at list markers ("1.", "-", "•"), else at semicolons (and
//! commas for allergies), else into sentences.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use super::{dedup, sentence_around, window, HEADINGS};
use crate::{Document, Item};

/// Heading phrases of each section (longest first within the regex alternation).
const SECTION_PHRASES: &[(&str, &[&str])] = &[
    (
        "Problems",
        &[
            "Active Problem List",
            "Problem List",
            "Active Problems",
            "Problems",
            "Discharge Diagnoses",
            "Discharge Diagnosis",
            "Admission Diagnoses",
            "Admission Diagnosis",
            "Admitting Diagnosis",
            "Principal Diagnosis",
            "Secondary Diagnoses",
            "Diagnoses",
            "Diagnosis",
            "Past Medical History",
            "PMH",
        ],
    ),
    (
        "Medications",
        &[
            "Discharge Medications",
            "Current Medications",
            "Home Medications",
            "Admission Medications",
            "Medications on Discharge",
            "Medication List",
            "Medications",
            "Meds",
        ],
    ),
    ("Allergies", &["Drug Allergies", "Allergies", "Allergy"]),
    (
        "Results",
        &[
            "Labs/Results",
            "Laboratory Results",
            "Laboratory Data",
            "Lab Results",
            "Pertinent Results",
            "Laboratory",
            "Results",
            "Labs",
        ],
    ),
    ("Vital Signs", &["Vital Signs", "Vitals"]),
    (
        "Procedures",
        &[
            "Procedures Performed",
            "Procedures",
            "Procedure",
            "Operations",
            "Surgical History",
        ],
    ),
    (
        "Immunizations",
        &[
            "Immunization History",
            "Immunizations",
            "Vaccinations",
            "Vaccines",
        ],
    ),
    ("Encounters", &["Encounters", "Visits"]),
];

/// Headings that end a section's body without starting one of ours.
const OTHER_HEADINGS: &[&str] = &[
    "History of Present Illness",
    "HPI",
    "Hospital Course",
    "Brief Hospital Course",
    "Chief Complaint",
    "Reason for Admission",
    "Reason for Visit",
    "Assessment and Plan",
    "Assessment",
    "Plan",
    "Follow-up",
    "Follow up",
    "Followup",
    "Social History",
    "Family History",
    "Physical Exam",
    "Physical Examination",
    "Review of Systems",
    "Disposition",
    "Discharge Instructions",
    "Instructions",
    "Condition on Discharge",
    "Discharge Condition",
    "Diet",
    "Activity",
    "Impression",
    "Signed",
    "Attending",
];

/// Most items listed under one heading.
const MAX_ITEMS: usize = 30;
/// Longest item quote.
const MAX_ITEM: usize = 300;
/// Longest heading body read.
const MAX_BODY: usize = 2000;

struct Patterns {
    /// Any heading; group 1 is the phrase.
    heading: Regex,
    list_marker: Regex,
    no_known_allergies: Regex,
    vitals: Regex,
    encounter_dates: Regex,
    injection: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let mut phrases: Vec<&str> = SECTION_PHRASES
            .iter()
            .flat_map(|(_, phrases)| phrases.iter().copied())
            .chain(OTHER_HEADINGS.iter().copied())
            .collect();
        phrases.sort_by_key(|phrase| std::cmp::Reverse(phrase.len()));
        let alternation = phrases
            .iter()
            .map(|phrase| regex::escape(phrase))
            .collect::<Vec<_>>()
            .join("|");
        let compile = |pattern: &str| Regex::new(pattern).unwrap_or_else(|_| unreachable!());
        Patterns {
            heading: compile(&format!(r"(?i)\b({alternation})\b(?:\s*\([^)]{{0,40}}\))?\s*:")),
            list_marker: compile(r"(?:^|\s)(?:\d{1,2}[.)]|[-•*●▪◦])\s+"),
            no_known_allergies: compile(
                r"(?i)\b(?:NKDA|NKA|no known (?:drug |medication )?allerg(?:ies|y))\b",
            ),
            vitals: compile(concat!(
                r"(?i)\b(?:(?:BP|blood pressure)\s*:?\s*\d{2,3}/\d{2,3}(?:\s*mm ?Hg)?",
                r"|(?:HR|pulse|heart rate)\s*:?\s*\d{2,3}(?:\s*(?:bpm|/min))?",
                r"|(?:temp|temperature)\s*:?\s*\d{2,3}(?:\.\d)?\s*°?\s*[FC]?",
                r"|(?:RR|resp(?:iratory)? rate)\s*:?\s*\d{1,2}",
                r"|(?:SpO2|O2 sat(?:uration)?)\s*:?\s*\d{2,3}\s*%",
                r"|(?:weight|wt)\s*:?\s*\d{2,3}(?:\.\d)?\s*(?:kg|lbs?))"
            )),
            encounter_dates: compile(
                r"(?i)\b(?:date of (?:admission|discharge|visit|service)|(?:admission|discharge|visit) date)\s*:\s*[A-Za-z0-9,/\- ]{4,30}?\d{2,4}\b",
            ),
            injection: compile(
                r"(?i)\b(?:ignore|disregard) (?:all |any )?(?:previous|prior|above|earlier|the) instructions\b|\bsystem prompt\b",
            ),
        }
    })
}

/// Which section a heading phrase opens (None for headings that only end a body).
fn section_of(phrase: &str) -> Option<&'static str> {
    SECTION_PHRASES
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| p.eq_ignore_ascii_case(phrase)))
        .map(|(section, _)| *section)
}

/// True if the match looks like a heading: followed by a colon (the regex), and written in
/// capitals or title case (not "the medications: ..." mid-sentence).
fn is_heading(phrase: &str) -> bool {
    phrase
        .split_whitespace()
        .filter(|word| word.len() > 3)
        .all(|word| word.starts_with(|c: char| c.is_uppercase()))
}

pub(super) fn summary(document: &Document<'_>) -> Vec<Item> {
    let p = patterns();
    let mut items: Vec<Item> = Vec::new();
    for passage in document.passages {
        let text = passage.text;
        let headings: Vec<(Range<usize>, &str)> = p
            .heading
            .captures_iter(text)
            .filter_map(|caps| {
                let whole = caps.get(0)?;
                let phrase = caps.get(1)?.as_str();
                is_heading(phrase).then_some((whole.range(), phrase))
            })
            .collect();
        for (index, (range, phrase)) in headings.iter().enumerate() {
            let Some(section) = section_of(phrase) else {
                continue;
            };
            let end = headings
                .get(index + 1)
                .map_or(text.len(), |(next, _)| next.start)
                .min(range.end + MAX_BODY);
            let mut end = end.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            for item in body_items(text, range.end..end, section) {
                let quote = &text[item.clone()];
                if p.no_known_allergies.is_match(quote) || p.injection.is_match(quote) {
                    continue;
                }
                let reading = quote.trim_end_matches(['.', ',', ';', ':']).to_string();
                items.push(Item::found(section, passage, quote, reading));
            }
        }
        for found in p.no_known_allergies.find_iter(text) {
            let range = sentence_around(passage, found.range(), 120);
            let quote = &text[range];
            items.push(Item::found(
                "Allergies",
                passage,
                quote,
                "No known allergies".to_string(),
            ));
        }
        for found in p.vitals.find_iter(text) {
            let quote = found.as_str().trim_end();
            items.push(Item::found(
                "Vital Signs",
                passage,
                quote,
                quote.to_string(),
            ));
        }
        for found in p.encounter_dates.find_iter(text) {
            let quote = found.as_str().trim_end();
            items.push(Item::found("Encounters", passage, quote, quote.to_string()));
        }
    }
    let items = dedup(items);
    // Sections in the summary's order, at most MAX_ITEMS each, a not-found line when empty.
    let mut ordered = Vec::new();
    for heading in HEADINGS {
        let mine: Vec<Item> = items
            .iter()
            .filter(|item| item.section == heading.name)
            .take(MAX_ITEMS)
            .cloned()
            .collect();
        if mine.is_empty() {
            ordered.push(Item::not_found(heading.name, heading.empty.to_string()));
        } else {
            ordered.extend(mine);
        }
    }
    ordered
}

/// The items of a heading's body `range` of `text`, as byte ranges of `text`.
fn body_items(text: &str, range: Range<usize>, section: &str) -> Vec<Range<usize>> {
    let body = &text[range.clone()];
    let p = patterns();
    let markers: Vec<Range<usize>> = p.list_marker.find_iter(body).map(|m| m.range()).collect();
    let mut pieces: Vec<Range<usize>> = Vec::new();
    if markers.len() >= 2 || markers.first().is_some_and(|m| m.start == 0) {
        for (index, marker) in markers.iter().enumerate() {
            let end = markers.get(index + 1).map_or(body.len(), |next| next.start);
            pieces.push(marker.end..end);
        }
    } else if body.contains(';') || (section == "Allergies" && body.contains(',')) {
        let mut start = 0;
        for (at, c) in body.char_indices() {
            if c == ';' || (section == "Allergies" && c == ',') {
                pieces.push(start..at);
                start = at + 1;
            }
        }
        pieces.push(start..body.len());
    } else {
        pieces = crate::text::sentences(body);
    }
    pieces
        .into_iter()
        .filter_map(|piece| {
            let slice = &body[piece.clone()];
            let trimmed = slice.trim();
            if trimmed.is_empty() || !trimmed.chars().any(char::is_alphanumeric) {
                return None;
            }
            let start = piece.start + (slice.len() - slice.trim_start().len());
            let end = start + trimmed.len();
            let local = if trimmed.len() > MAX_ITEM {
                window(
                    body,
                    start..start + MAX_ITEM.min(trimmed.len()) / 2,
                    MAX_ITEM,
                )
            } else {
                start..end
            };
            Some(range.start + local.start..range.start + local.end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Passage;

    fn passage(text: &str) -> Passage<'_> {
        Passage {
            chunk_id: "c1",
            ordinal: 0,
            page: 2,
            text,
        }
    }

    #[test]
    fn lists_items_under_headings() {
        let text = "Discharge Summary. DISCHARGE MEDICATIONS: 1. Lisinopril 10 mg daily 2. Metformin 500 mg twice daily Allergies: NKDA Diagnoses: Community-acquired pneumonia; Type 2 diabetes mellitus Follow-up: see GP in 2 weeks. BP 132/84 mmHg, HR 88.";
        let passages = [passage(text)];
        let document = Document {
            title: "",
            format: "pdf",
            passages: &passages,
            original: None,
        };
        let items = summary(&document);
        let texts: Vec<(&str, &str)> = items
            .iter()
            .map(|item| (item.section.as_str(), item.text.as_str()))
            .collect();
        assert!(
            texts.contains(&("Medications", "Lisinopril 10 mg daily")),
            "{texts:?}"
        );
        assert!(texts.contains(&("Medications", "Metformin 500 mg twice daily")));
        assert!(texts.contains(&("Allergies", "No known allergies")));
        assert!(texts.contains(&("Problems", "Community-acquired pneumonia")));
        assert!(texts.contains(&("Problems", "Type 2 diabetes mellitus")));
        assert!(texts.contains(&("Vital Signs", "BP 132/84 mmHg")));
        assert!(!texts.iter().any(|(_, t)| t.contains("see GP")));
        for item in &items {
            if let Some(quote) = &item.quote {
                assert!(text.contains(quote.as_str()));
                assert_eq!(item.page, Some(2));
            }
        }
    }
}
