//! What kind of document this is, from its format and its words.
//!
//! Each kind has cue phrases with weights; the first pages' passages are scored by how often
//! each cue occurs, and the best kind wins if it clearly scores (else General). Capitalised cues
//! ("ORDER", "WHEREAS") are matched as written, the others ignoring case.

use std::sync::OnceLock;

use regex::Regex;

use crate::{Document, Kind};

/// Pages read for the cues.
const PAGES: u32 = 3;
/// Least score for a kind to win.
const THRESHOLD: f64 = 4.0;

/// (kind, cue regex, weight per occurrence, most occurrences counted).
type Cue = (Kind, &'static str, f64, usize);

const CUES: &[Cue] = &[
    (Kind::Contract, r"(?i)\bagreement\b", 1.0, 5),
    (Kind::Contract, r"(?i)\bhereby agree", 3.0, 2),
    (Kind::Contract, r"\bWHEREAS\b", 3.0, 2),
    (
        Kind::Contract,
        r"(?i)\bgoverned by (?:and construed in accordance with )?the laws?\b",
        3.0,
        1,
    ),
    (Kind::Contract, r"(?i)\bIN WITNESS WHEREOF\b", 4.0, 1),
    (
        Kind::Contract,
        r"(?i)\b(?:the parties|party hereto|parties hereto|effective date)\b",
        1.0,
        4,
    ),
    (
        Kind::Contract,
        r"(?i)\b(?:licensor|licensee|distributor|franchisee|supplier|indemnif\w+)\b",
        0.5,
        4,
    ),
    (
        Kind::Filing,
        r"(?i)\bcase no\.|\bcivil action no\.|\bdocket no\.",
        3.0,
        2,
    ),
    (
        Kind::Filing,
        r"(?i)\b(?:plaintiffs?|defendants?|appellants?|appellees?|petitioners?)\b",
        1.0,
        5,
    ),
    (
        Kind::Filing,
        r"(?i)\bUNITED STATES (?:DISTRICT|BANKRUPTCY) COURT\b|\bCOURT OF APPEALS\b|\bSUPREME COURT\b",
        3.0,
        2,
    ),
    (Kind::Filing, r"\bORDER(?:ED)?\b", 2.0, 2),
    (Kind::Filing, r"(?i)\b(?:v\.|versus)\s", 1.0, 2),
    (
        Kind::Filing,
        r"(?i)\b(?:motion|judgment|counsel|honorable|judge|court)\b",
        0.5,
        6,
    ),
    (Kind::Clinical, r"(?i)\bmedications?\b", 1.5, 3),
    (Kind::Clinical, r"(?i)\ballerg(?:y|ies)\b|\bNKDA\b", 1.5, 3),
    (Kind::Clinical, r"(?i)\bdiagnos[ie]s\b", 1.0, 3),
    (Kind::Clinical, r"(?i)\bpatient\b", 1.0, 4),
    (
        Kind::Clinical,
        r"\bMRN\b|(?i)\bdate of birth\b|\bDOB\b",
        2.0,
        2,
    ),
    (
        Kind::Clinical,
        r"(?i)\bdischarge (?:summary|diagnos\w+|medications?|instructions)\b|\badmission date\b",
        2.0,
        2,
    ),
    (
        Kind::Clinical,
        r"(?i)\b(?:vital signs|blood pressure|mg (?:daily|twice)|history of present illness|problem list)\b",
        1.5,
        3,
    ),
    (
        Kind::Email,
        r"(?m)(?:^|\s)(?:From|Sent|To|Subject|Cc): ",
        1.0,
        8,
    ),
    (
        Kind::Email,
        r"(?i)\bwrote:|\bforwarded message\b|\boriginal message\b",
        2.0,
        2,
    ),
];

fn cues() -> &'static Vec<(Kind, Regex, f64, usize)> {
    static CUE_REGEXES: OnceLock<Vec<(Kind, Regex, f64, usize)>> = OnceLock::new();
    CUE_REGEXES.get_or_init(|| {
        CUES.iter()
            .filter_map(|(kind, pattern, weight, cap)| {
                Regex::new(pattern)
                    .ok()
                    .map(|regex| (*kind, regex, *weight, *cap))
            })
            .collect()
    })
}

/// The kind of summary that fits `document` (a flag may override it).
pub fn detect_kind(document: &Document<'_>) -> Kind {
    match document.format {
        "ccda" => return Kind::Clinical,
        "email" | "msg" => return Kind::Email,
        _ => {}
    }
    let first_page = document.passages.first().map_or(1, |passage| passage.page);
    let text: String = document
        .passages
        .iter()
        .filter(|passage| passage.page < first_page + PAGES)
        .map(|passage| passage.text)
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!("{} {text}", document.title);
    let mut scores: Vec<(Kind, f64)> = Vec::new();
    for (kind, regex, weight, cap) in cues() {
        let count = regex.find_iter(&text).take(*cap).count() as f64;
        match scores.iter_mut().find(|(k, _)| k == kind) {
            Some((_, score)) => *score += count * weight,
            None => scores.push((*kind, count * weight)),
        }
    }
    scores
        .into_iter()
        .filter(|(_, score)| *score >= THRESHOLD)
        .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
        .map_or(Kind::General, |(kind, _)| kind)
}
