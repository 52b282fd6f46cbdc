//! Court filings: the court, the parties (caption and roles), the docket number, what is asked
//! for or ordered, and deadlines, each quoted from the passages.
//!
//! The caption block (court, parties, number) is on the first pages; relief and orders are
//! sentences anywhere with the words courts use ("ORDERED", "moves", "GRANTED"...); deadlines
//! are sentences with "due", "on or before", "within N days", "no later than".

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::clinical::{dedup, window};
use crate::email::prefix;
use crate::{Document, Item, Passage};

/// The caption is looked for on the first pages only.
const CAPTION_PAGES: u32 = 2;
/// Most items of the sentence sections.
const MAX_SENTENCES: usize = 6;
/// Longest sentence quoted.
const MAX_QUOTE: usize = 320;

struct Patterns {
    court: Regex,
    caption: Regex,
    role: Regex,
    docket: Regex,
    order: Regex,
    relief: Regex,
    deadline: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let compile = |pattern: &str| Regex::new(pattern).unwrap_or_else(|_| unreachable!());
        Patterns {
            court: compile(concat!(
                r"(?i)\b(?:(?:United States|U\.S\.) (?:District|Bankruptcy) Court|United States Court of (?:Appeals|Federal Claims)|",
                r"Supreme Court(?: of the United States)?|(?:Missouri |State )?Court of Appeals?|Circuit Court|District Court|Superior Court|Bankruptcy Court)",
                r"(?: (?:for|of) (?:the )?(?:[A-Z][A-Za-z]+ ?){1,5})?"
            )),
            caption: compile(r"\b(?:v\.|vs\.|versus)\s"),
            role: compile(
                r"\b(?:Plaintiffs?|Defendants?|Appellants?|Appellees?|Petitioners?|Respondents?|Debtors?)(?:[-–—‐](?:Appellants?|Appellees?|Petitioners?|Respondents?))?\b",
            ),
            docket: compile(concat!(
                r"(?i)\b(?:Case|Civil Action|Criminal Action|Docket|Appeal|Adv\. Proc\.)?\s*(?:No\.|Number:|Nos\.|#|:)\s*",
                r"(?P<number>\d{1,2}:\d{2}-[a-z]{2,4}-\d{3,6}(?:-[A-Z]{1,4})*|\d{2,4}-\d{2,6}(?:-[A-Z0-9]{1,4})?|[A-Z]{1,3}\d{4,8}(?:-\d{1,3})?|\d{3}[A-Z]\d{2}-\d)\b"
            )),
            order: compile(
                r"\b(?:ORDERED|ADJUDGED|DECREED|GRANTED|DENIED|AFFIRMED|REVERSED|VACATED|REMANDED|DISMISSED)\b|(?i:\b(?:we|court) (?:affirms?|reverses?|vacates?|remands?|grants?|denies?|dismisses?)\b|\bit is (?:hereby )?ordered\b|\bis (?:granted|denied)\b)",
            ),
            relief: compile(
                r"(?i)\b(?:moves?|moved|requests?|requested|prays?|seeks?|petitions?) (?:this|the) (?:court|honorable)\b|\b(?:respectfully )?(?:moves?|requests?) (?:for|that|to)\b|\bmotion (?:for|to)\b",
            ),
            deadline: compile(
                r"(?i)\b(?:due (?:on|by)|on or before|no later than|within \d{1,3} days|within (?:seven|fourteen|twenty-one|thirty|sixty|ten|five) \(?\d*\)? ?days|deadline)\b",
            ),
        }
    })
}

/// The items of a court filing.
pub fn summary(document: &Document<'_>) -> Vec<Item> {
    let p = patterns();
    let caption_passages: Vec<&Passage<'_>> = document
        .passages
        .iter()
        .filter(|passage| passage.page <= CAPTION_PAGES)
        .collect();
    let mut items = Vec::new();

    let court = caption_passages
        .iter()
        .find_map(|passage| p.court.find(passage.text).map(|m| (*passage, m.range())));
    items.push(match court {
        Some((passage, range)) => {
            let quote = trim_court(passage.text[range].trim());
            Item::found("Court", passage, quote, quote.to_string())
        }
        None => Item::not_found("Court", "No court named on the first pages.".to_string()),
    });

    let mut parties = Vec::new();
    if let Some((passage, at)) = caption_passages
        .iter()
        .find_map(|passage| p.caption.find(passage.text).map(|m| (*passage, m.range())))
    {
        let range = window(passage.text, at, 200);
        let quote = &passage.text[range];
        parties.push(Item::found(
            "Parties",
            passage,
            quote,
            format!("Caption: {quote}"),
        ));
    }
    for passage in &caption_passages {
        for role in p.role.find_iter(passage.text) {
            if let Some(name) = party_before(passage.text, role.start()) {
                let quote = &passage.text[name.start..role.end()];
                let party = passage.text[name].trim_end_matches([',', ' ', ')', ']']);
                parties.push(Item::found(
                    "Parties",
                    passage,
                    quote,
                    format!("{}: {party}", role.as_str()),
                ));
            }
        }
    }
    parties.truncate(5);
    if parties.is_empty() {
        parties.push(Item::not_found(
            "Parties",
            "No caption or party names found.".to_string(),
        ));
    }
    items.extend(parties);

    let mut dockets: Vec<Item> = Vec::new();
    for passage in &caption_passages {
        for caps in p.docket.captures_iter(passage.text) {
            if let (Some(whole), Some(number)) = (caps.get(0), caps.name("number")) {
                dockets.push(Item::found(
                    "Docket Number",
                    passage,
                    whole.as_str().trim(),
                    number.as_str().to_string(),
                ));
            }
        }
    }
    let dockets = dedup(dockets);
    if dockets.is_empty() {
        items.push(Item::not_found(
            "Docket Number",
            "No docket number found on the first pages.".to_string(),
        ));
    } else {
        items.extend(dockets.into_iter().take(3));
    }

    items.extend(sentences_matching(
        document,
        "Order",
        &p.order,
        "No order found.",
    ));
    items.extend(sentences_matching(
        document,
        "Relief Requested",
        &p.relief,
        "No request for relief found.",
    ));
    items.extend(sentences_matching(
        document,
        "Deadlines",
        &p.deadline,
        "No deadline found.",
    ));
    dedup(items)
}

/// Drops words the court pattern's tail caught from what follows ("... Circuit No. 20-1507").
fn trim_court(court: &str) -> &str {
    const NOT_COURT: &[&str] = &[
        "no", "civil", "action", "case", "chicago", "docket", "in", "re",
    ];
    let mut end = court.len();
    while let Some(space) = court[..end].rfind(' ') {
        let word = court[space + 1..end]
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !NOT_COURT.contains(&word.as_str()) {
            break;
        }
        end = space;
    }
    &court[..end]
}

/// The name before a role label ("JOHN DOE, Plaintiff"): back to the previous caption break
/// (`)`, `v.`, a line of underscores, "No. ...", a sentence end), at most 100 bytes.
fn party_before(text: &str, role_start: usize) -> Option<Range<usize>> {
    let mut from = role_start.saturating_sub(100);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let before = &text[from..role_start];
    let breaks = [
        ") ", "v. ", "versus ", "_ ", "___", ". ", "; ", "COURT ", "CIRCUIT ",
    ];
    let start = breaks
        .iter()
        .filter_map(|b| before.rfind(b).map(|at| at + b.len()))
        .max()
        .unwrap_or(0);
    // Caption style only: "NAME, Plaintiff" or "NAME ) Plaintiff".
    let raw = before[start..].trim_end();
    if !raw.ends_with([',', ')', ']']) {
        return None;
    }
    let name = raw.trim().trim_end_matches([',', ')', ']', ' ']).trim();
    let is_name = name.split_whitespace().count() <= 12
        && name.chars().filter(|c| c.is_alphabetic()).count() >= 3
        && name.starts_with(|c: char| c.is_uppercase());
    if !is_name {
        return None;
    }
    let offset = from + start + (before[start..].len() - before[start..].trim_start().len());
    Some(offset..offset + name.len())
}

/// Sentences whose words match `pattern`, in document order, at most [`MAX_SENTENCES`].
fn sentences_matching(
    document: &Document<'_>,
    section: &str,
    pattern: &Regex,
    none: &str,
) -> Vec<Item> {
    let mut items = Vec::new();
    for passage in document.passages {
        for range in crate::text::sentences(passage.text) {
            let sentence = &passage.text[range.clone()];
            let Some(hit) = pattern.find(sentence) else {
                continue;
            };
            let words = sentence.split_whitespace().count();
            if words < 4 {
                continue;
            }
            let hit = range.start + hit.start()..range.start + hit.end();
            let quote_range = if range.len() <= MAX_QUOTE {
                range
            } else {
                let around = window(passage.text, hit, MAX_QUOTE);
                prefix(passage.text, around, MAX_QUOTE)
            };
            let quote = &passage.text[quote_range];
            items.push(Item::found(section, passage, quote, quote.to_string()));
        }
    }
    let mut items = dedup(items);
    items.truncate(MAX_SENTENCES);
    if items.is_empty() {
        items.push(Item::not_found(section, none.to_string()));
    }
    items
}
