//! The structured sections: parties, agreement / effective / expiration dates, renewal term,
//! notice period to stop a renewal, governing law.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::dates::{find_dates, number_value, SimpleDate};
use super::{clause_around, Sentence, Units};
use crate::Item;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

/// How far into the document the preamble (parties, date) may be: the title page, a cover
/// sheet or a table of contents come first in many filings.
const PREAMBLE_SENTENCES: usize = 60;

pub(crate) fn items(units: &Units<'_>) -> Vec<Item> {
    let agreement = agreement_date(units);
    let effective = effective_date(units, agreement.as_ref());
    let start = effective
        .as_ref()
        .and_then(|e| e.date)
        .or(agreement.as_ref().and_then(|a| a.date));
    let renewal = renewal_term(units);
    vec![
        parties(units),
        agreement.map(|a| a.item).unwrap_or_else(|| {
            Item::not_found("Agreement Date", "No agreement date found.".into())
        }),
        effective.map(|e| e.item).unwrap_or_else(|| {
            Item::not_found("Effective Date", "No effective date found.".into())
        }),
        expiration_date(units, start),
        renewal
            .clone()
            .unwrap_or_else(|| Item::not_found("Renewal Term", "No renewal term found.".into())),
        notice_to_terminate_renewal(units),
        governing_law(units),
    ]
}

/// A found date item and its value.
struct DateItem {
    item: Item,
    date: Option<SimpleDate>,
}

// ------------------------------------------------------------------ parties

/// The preamble's "between ... and ..." / "by and among ..." sentence.
static BETWEEN: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(?:between|among|by and between|by and among)\b"));

/// A defined-term parenthetical: `("Anixa")`, `(the "Company")`, `(hereinafter "PPG")`.
static DEFINED: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\((?:[^()"“”]{0,60}?)["“”]([^"“”()]{1,60})["“”][^()]{0,80}\)"#));

/// Where a party's name ends and its description starts: ", a Delaware corporation".
static DESCRIPTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i),?\s+(?:an?|its|having|with|whose|located|organized|incorporated|existing|acting|on behalf|together with|residing|c/o|hereinafter|dba|d/b/a)\s|,\s+(?:[A-Z][a-z]+\s+)?(?:corporation|company|limited)\b|,?\s+(?:of\s+)?\d",
    )
});

/// What separates one party from the next in a preamble.
static JOINER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(?:and|between|among)\b:?\s"));

/// Company-form endings, for names written without a defined term.
static ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:[A-Z][\w&.'-]*\s+){0,6}?[A-Z][\w&.'-]*,?\s+(?:Inc|LLC|L\.L\.C|Ltd|Limited|Corp|Corporation|Company|L\.P|LP|LLP|GmbH|AG|S\.A|N\.A|plc|PLC|B\.V|N\.V|S\.p\.A|Pty|AB|A/S)\b\.?",
    )
});

/// Defined terms in a preamble that name things, not parties.
static NOT_A_PARTY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)agreement|date|effective|term\b|territory|amendment|plan|exhibit|schedule|products?\b|services?\b|program|act\b",
    )
});

/// Where the preamble ends: the recitals or the first numbered article.
static PREAMBLE_END: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:WHEREAS|Whereas|RECITALS|Recitals|W\s?I\s?T\s?N\s?E\s?S\s?S\s?E\s?T\s?H|WITNESSES|NOW,? THEREFORE|BACKGROUND|The parties agree)",
    )
});

/// How many leading passages may hold the preamble (a cover page or contents come first).
const PREAMBLE_PASSAGES: usize = 12;

fn parties(units: &Units<'_>) -> Item {
    let mut names: Vec<String> = Vec::new();
    let mut evidence: Option<(usize, Range<usize>)> = None;
    for (index, passage) in units.passages.iter().enumerate().take(PREAMBLE_PASSAGES) {
        let text = passage.text;
        for keyword in BETWEEN.find_iter(text) {
            // The window: from the keyword to the recitals (or a generous limit).
            let mut end = (keyword.end() + 1500).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let window = &text[keyword.end()..end];
            let window = PREAMBLE_END
                .find(window)
                .map_or(window, |m| &window[..m.start()]);
            let (found, span) = names_in(window);
            if found.is_empty() {
                continue;
            }
            let offset = keyword.end();
            if evidence.is_none() {
                evidence = span.map(|r| (index, offset + r.start..offset + r.end));
            }
            add_names(&mut names, &found);
            // A preamble cut by a chunk boundary continues in the next passage.
            if names.len() >= 2 {
                break;
            }
        }
        if names.len() >= 2 {
            break;
        }
        if evidence.is_some() && names.len() == 1 && index + 1 < units.passages.len() {
            // Look for the second party at the start of the next passage.
            if let Some(next) = units.passages.get(index + 1) {
                let head = next.text.get(..next.text.len().min(1200)).unwrap_or("");
                let head = PREAMBLE_END.find(head).map_or(head, |m| &head[..m.start()]);
                add_names(&mut names, &names_in(head).0);
            }
            break;
        }
    }
    match evidence {
        Some((index, range)) if names.len() >= 2 => {
            let passage = &units.passages[index];
            Item::found("Parties", passage, &passage.text[range], names.join("; "))
        }
        _ => Item::not_found("Parties", "No parties found in the preamble.".into()),
    }
}

/// Adds the names not already listed (nor part of a listed name: "Merger Corp." of "PSS
/// Merger Corp.").
fn add_names(names: &mut Vec<String>, found: &[&str]) {
    for name in found {
        let lower = name.to_lowercase();
        if plausible_name(name) && !names.iter().any(|n| n.to_lowercase().contains(&lower)) {
            names.push((*name).to_string());
        }
    }
}

/// The party names in a preamble window, and the span from the first name to the last
/// defined term (or name).
fn names_in(window: &str) -> (Vec<&str>, Option<Range<usize>>) {
    let mut names: Vec<&str> = Vec::new();
    let mut span: Option<Range<usize>> = None;
    let mut cursor = 0;
    for caps in DEFINED.captures_iter(window) {
        let (Some(whole), Some(term)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        let before = &window[cursor..whole.start()];
        cursor = whole.end();
        if NOT_A_PARTY.is_match(term.as_str()) {
            continue;
        }
        let name = party_name(before);
        if !plausible_name(name) {
            continue;
        }
        let start = name.as_ptr() as usize - window.as_ptr() as usize;
        span = Some(span.map_or(start..whole.end(), |s| s.start..whole.end()));
        names.push(name);
        if names.len() >= 12 {
            break;
        }
    }
    if names.len() < 2 {
        // Names written without defined terms: company-form endings.
        let mut by_form: Vec<&str> = Vec::new();
        let mut form_span: Option<Range<usize>> = None;
        for m in ENTITY.find_iter(window) {
            if !plausible_name(m.as_str()) {
                continue;
            }
            form_span = Some(form_span.map_or(m.range(), |s| s.start..m.end()));
            by_form.push(m.as_str().trim_end_matches(','));
        }
        if by_form.len() > names.len() {
            return (by_form, form_span);
        }
    }
    (names, span)
}

/// The party name in `before` (the text between the previous party's defined term and this
/// one's). Either the name comes first (": CORAL GOLD RESOURCES LTD., a company ...") or the
/// previous party's description does (", a Delaware corporation, ... and ebix.com, Inc.").
fn party_name(before: &str) -> &str {
    let mut text = before.trim();
    loop {
        let stripped = LEAD.find(text).map_or(text, |m| &text[m.end()..]);
        if stripped.len() == text.len() {
            break;
        }
        text = stripped;
    }
    let name_first = DESCRIPTION.find(text).map_or(text, |m| &text[..m.start()]);
    let name = if plausible_name(name_first) {
        name_first
    } else {
        let after_joiner = JOINER
            .find_iter(text)
            .last()
            .map_or("", |m| text[m.end()..].trim_start());
        DESCRIPTION
            .find(after_joiner)
            .map_or(after_joiner, |m| &after_joiner[..m.start()])
    };
    name.trim().trim_end_matches(',').trim()
}

/// Punctuation and joiners before a name: ", and", "AND:", ":".
static LEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:[,;:&]|(?i:and|between|among)\b:?)\s*"));

/// A name starts with a capital or a figure ("2205925 Ontario Limited"), or is one word
/// with a capital inside ("ebix.com, Inc.", "mPhase"); it is not a description ("a Delaware
/// corporation", "Delaware Corporation") nor a piece of a sentence.
fn plausible_name(name: &str) -> bool {
    let name = name.trim();
    let words: Vec<&str> = name.split_whitespace().collect();
    let Some(first) = words.first() else {
        return false;
    };
    let capitalised = first.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit())
        || first.chars().skip(1).any(|c| c.is_uppercase() || c == '.');
    capitalised
        && words.len() <= 12
        && !matches!(*first, "A" | "An")
        && !NOT_A_NAME.is_match(name)
        && !is_jurisdiction_form(&words)
}

/// Words that do not occur in a party's name but do in the sentences around it.
static NOT_A_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:hereinafter|referred|is|are|with|by|on\s+behalf|shall|will|owns|operates|provide|affiliates\s+listed)\b|\.\s+(?:The|This|It|Each|In)\s|^\W|^\(?\d+[.)]\s",
    )
});

/// "Delaware Corporation", "Kentucky corporation": a jurisdiction and a company form.
fn is_jurisdiction_form(words: &[&str]) -> bool {
    let [place @ .., form] = words else {
        return false;
    };
    let form = form.trim_end_matches(['.', ',']).to_ascii_lowercase();
    matches!(form.as_str(), "corporation" | "company" | "partnership")
        && !place.is_empty()
        && place.len() <= 2
        && normalise_jurisdiction(&place.join(" ")).is_some()
}

// ------------------------------------------------------------------ dates

/// Words that introduce the contract's own date in its preamble.
static DATE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:dated|made|entered\s+into|executed|effective|as\s+of|agreement\s+date|day\s+of)\b|\bdate\s*:",
    )
});

fn agreement_date(units: &Units<'_>) -> Option<DateItem> {
    let preamble: Vec<&Sentence<'_>> = units
        .sentences
        .iter()
        .filter(|s| s.passage < PREAMBLE_PASSAGES && !s.lower.contains("whereas"))
        .take(PREAMBLE_SENTENCES)
        .collect();
    // The date after a dating cue ("dated as of", "made this 5th day of"), else the first
    // date of the title page ("AGENCY AGREEMENT May 25, 2016").
    let cued = preamble.iter().find_map(|sentence| {
        let cue = DATE_CUE.find(sentence.text)?;
        let dates = contract_dates(sentence.text);
        dates
            .iter()
            .find(|(r, _)| r.start >= cue.start())
            .or_else(|| dates.first())
            .map(|(r, d)| (*sentence, r.clone(), *d))
    });
    let title = || {
        preamble
            .iter()
            .filter(|s| s.passage < 2)
            .find_map(|sentence| {
                contract_dates(sentence.text)
                    .into_iter()
                    .next()
                    .map(|(r, d)| (*sentence, r, d))
            })
    };
    let (sentence, range, date) = cued.or_else(title)?;
    let quote = sentence.range.start + range.start..sentence.range.start + range.end;
    Some(DateItem {
        item: units.found("Agreement Date", sentence, quote, date.to_string()),
        date: Some(date),
    })
}

/// The dates of `text` that can be the contract's own date: not an end date ("until
/// February 28, 2004") and not the filing stamp ("Source: IPASS INC, 8-K, 12/3/2018").
fn contract_dates(text: &str) -> Vec<(Range<usize>, SimpleDate)> {
    find_dates(text)
        .into_iter()
        .filter(|(r, _)| {
            let lead = before(text, r.start, 40);
            !END_WORD.is_match(lead) && !FILING_STAMP.is_match(lead)
        })
        .collect()
}

/// The EDGAR stamp on each page of a filed exhibit.
static FILING_STAMP: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)source:|\b(?:8-k|10-k|10-q|s-1|20-f|f-1|10-ka|8-ka)\b|filed|period\s+ended")
});

/// `"Effective Date"` defined, or the agreement said to be effective / to commence on a date.
static EFFECTIVE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)effective\s+date|\beffective\s+(?:as\s+of|on|from|upon)\b|\b(?:shall|will)\s+(?:commence|begin|become\s+effective)\b|\bcommencement\s+date\b|\bcommencing\s+(?:on|as\s+of)\b"#,
    )
});

/// An effective date defined by reference to the preamble date.
static EFFECTIVE_IS_PREAMBLE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:effective|commence|begin)[^.]{0,60}\b(?:date\s+(?:first\s+)?(?:written|set\s+forth|stated)\s+above|date\s+hereof|date\s+of\s+this\s+agreement)",
    )
});

fn effective_date(units: &Units<'_>, agreement: Option<&DateItem>) -> Option<DateItem> {
    for sentence in &units.sentences {
        let Some(cue) = EFFECTIVE_CUE.find(sentence.text) else {
            continue;
        };
        let dates = contract_dates(sentence.text);
        // The date closest to the cue, within the same clause.
        let near = dates
            .iter()
            .filter(|(r, _)| {
                r.start.abs_diff(cue.start()) < 120 || r.end.abs_diff(cue.start()) < 60
            })
            .min_by_key(|(r, _)| r.start.abs_diff(cue.end()));
        if let Some((range, date)) = near {
            // In the preamble the date is the quote; in a clause of its own ("This Agreement
            // shall commence on 1 January 1998") the clause is.
            let quote = if DATE_CUE.is_match(sentence.text) || BETWEEN.is_match(sentence.text) {
                sentence.range.start + range.start..sentence.range.start + range.end
            } else {
                clause_around(
                    units.passages[sentence.passage].text,
                    &sentence.range,
                    sentence.range.start + range.start,
                )
            };
            return Some(DateItem {
                item: units.found("Effective Date", sentence, quote, date.to_string()),
                date: Some(*date),
            });
        }
    }
    // "effective as of the date first written above": the preamble's date.
    if let Some(agreement) = agreement {
        for sentence in &units.sentences {
            if let Some(m) = EFFECTIVE_IS_PREAMBLE.find(sentence.text) {
                let range = clause_around(
                    units.passages[sentence.passage].text,
                    &sentence.range,
                    sentence.range.start + m.start(),
                );
                let text = agreement
                    .date
                    .map_or_else(|| agreement.item.text.clone(), |d| d.to_string());
                return Some(DateItem {
                    item: units.found("Effective Date", sentence, range, text),
                    date: agreement.date,
                });
            }
        }
        // Nothing says otherwise: a contract takes effect on its date.
        return Some(DateItem {
            item: Item {
                section: "Effective Date".into(),
                ..agreement.item.clone()
            },
            date: agreement.date,
        });
    }
    None
}

/// A sentence that sets the agreement's (initial) term.
static TERM_SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:initial\s+term|term\s+of\s+(?:this|the)\s+(?:agreement|contract)|the\s+term\s+(?:shall|will|is)|(?:this|the)\s+(?:agreement|contract|amendment)\s+(?:shall|will|is)\s+(?:\w+\s+){0,4}?(?:expire|terminate|continue|remain|be\s+in\s+(?:full\s+)?(?:force|effect)|end|be\s+effective|become\s+effective|be\s+for|take\s+effect|in\s+effect|commence|extend)|contract\s+period|duration\s+of\s+this|termination\s+date|expiration\s+date|term\s+of\s+execution|term\s+of\s+this\s+\w+\s+(?:shall|will|is)|(?:shall|will)\s+(?:\w+\s+){0,3}?(?:expire|continue\s+in\s+(?:full\s+)?(?:force|effect)|be\s+effective\s+until|continue\s+until|extend\s+until))",
    )
});

/// Sentences that mention the term but set something else: survival, confidentiality,
/// restrictive covenants, licences, definitions of other periods.
static NOT_TERM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)confidential|surviv|calendar\s+(?:quarter|year|month)|solicit|licen[cs]e|warrant|compet|invoice|insurance|breach|bankrupt|insolv|thereafter\s+for|(?:years?|months?)\s+thereafter|^\W*(?:\(\w+\)\s*)?during\s+the\s+term|after\s+(?:the\s+)?(?:termination|expiration)|following\s+(?:the\s+)?(?:termination|expiration)",
    )
});

/// "expire on December 31, 2024", "until February 28, 2025", "through December 31, 2012".
static END_WORD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:\b(?:expire|expiring|expires|terminate|terminates|end|ends|ending|until|through|conclud\w*|to|including)\s+(?:on\s+|at\s+)?(?:the\s+)?(?:(?:earlier|later)\s+of:?\s+(?:\(\w+\)\s+)?)?|\b(?:termination|expiration|expiry)\s+date\s*:?\s*)$",
    )
});

/// "for a period of five (5) years", "is 5 years from", "for one year", "until one (1) year".
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:for|of|be|is|until)\s+(?:a\s+(?:period|term)\s+of\s+|an\s+initial\s+(?:period|term)\s+of\s+|at\s+least\s+a\s+period\s+of\s+)?([a-z]+(?:-[a-z]+)?|\d+)\s*(?:\([\dIl]+\)\s*)?(?:full\s+)?(?:calendar\s+|contract\s+|processing\s+)?(years?|months?)\b",
    )
});

/// "the fifth (5th) anniversary of the Effective Date", "the seventh anniversary of the date
/// hereof".
static ANNIVERSARY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b([a-z]+|\d+)(?:st|nd|rd|th)?\s*(?:\(\d+(?:st|nd|rd|th)?\)\s*)?(?:year\s+)?anniversary\s+of\s+the\s+(?:effective\s+date|commencement\s+date|date\s+hereof|date\s+of\s+this\s+agreement)",
    )
});

/// "until the end of 2006".
static YEAR_END: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\buntil\s+the\s+end\s+of\s+(\d{4})\b"));

/// A term that runs until someone terminates it.
static PERPETUAL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:in\s+perpetuity|perpetual(?:ly)?|indefinitely|until\s+(?:terminated|either\s+party\s+(?:terminates|gives|informs|provides))|unless\s+and\s+until\s+terminated|(?:end|terminate)s?\s+(?:only\s+)?when\s+terminated|not\s+be\s+terminable)",
    )
});

/// The term counts from an event, not from the effective date ("from the Launch Date").
static OTHER_START: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:from|after|following)\s+(?:the\s+)?(?:launch|first|date\s+of\s+(?:first|launch|delivery|installation|acceptance)|completion|receipt|rfcs|reseller|initial\s+commercial)",
    )
});

/// The expiry a term sentence states, and how sure the reading is (3: a date written or
/// computed from the start date; 2: perpetual; 1: a duration from an unknown start).
fn term_value(text: &str, start: Option<SimpleDate>) -> Option<(u32, String)> {
    if let Some((_, date)) = find_dates(text)
        .into_iter()
        .find(|(r, _)| END_WORD.is_match(before(text, r.start, 40)))
    {
        return Some((3, date.to_string()));
    }
    if let Some(year) = YEAR_END
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<i32>().ok())
    {
        return Some((3, format!("12/31/{year}")));
    }
    if let Some(years) = ANNIVERSARY
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| number_value(m.as_str()))
    {
        return Some(match start {
            Some(s) => (3, s.plus_months(years * 12).to_string()),
            None => (1, format!("{years} years after the term starts")),
        });
    }
    if let Some(caps) = DURATION.captures(text) {
        let n = caps.get(1).and_then(|m| number_value(m.as_str()));
        let unit = caps.get(2).map(|m| m.as_str().to_ascii_lowercase());
        let months = match (n, unit) {
            (Some(n), Some(unit)) if unit.starts_with("year") => Some(n * 12),
            (Some(n), Some(_)) => Some(n),
            _ => None,
        };
        if let Some(m) = months {
            return Some(match (start, OTHER_START.is_match(text)) {
                (Some(s), false) => (3, s.plus_months(m).to_string()),
                _ => (1, format!("{m} months after the term starts")),
            });
        }
    }
    if PERPETUAL.is_match(text) {
        return Some((2, "perpetual".to_string()));
    }
    None
}

fn expiration_date(units: &Units<'_>, start: Option<SimpleDate>) -> Item {
    const SECTION: &str = "Expiration Date";
    let mut best: Option<(u32, &Sentence<'_>, String)> = None;
    for sentence in &units.sentences {
        if !TERM_SENTENCE.is_match(sentence.text) || NOT_TERM.is_match(sentence.text) {
            continue;
        }
        let Some((sureness, value)) = term_value(sentence.text, start) else {
            continue;
        };
        // The initial term outranks a renewal term, and a "Term" section other mentions.
        let mut score = sureness * 2;
        if sentence.lower.contains("initial term") || sentence.lower.contains("term of this") {
            score += 1;
        }
        if sentence.heading.contains("term") {
            score += 1;
        }
        if sentence.lower.contains("renew") && !sentence.lower.contains("initial term") {
            score = score.saturating_sub(2);
        }
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, sentence, value));
        }
    }
    match best {
        Some((_, sentence, value)) => {
            let range = clause_around(
                units.passages[sentence.passage].text,
                &sentence.range,
                sentence.range.start,
            );
            units.found(SECTION, sentence, range, value)
        }
        None => Item::not_found(SECTION, "No expiration date or term found.".into()),
    }
}

/// Up to `n` bytes of `text` before `end`, cut at a character boundary.
fn before(text: &str, end: usize, n: usize) -> &str {
    let mut start = end.saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..end).unwrap_or("")
}

// ------------------------------------------------------------------ renewal

static RENEWAL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:automatic(?:ally)?\s+(?:be\s+)?(?:renew|extend)\w*|(?:shall|will|may)\s+(?:automatically\s+)?(?:be\s+)?(?:renew|extend)\w*\s+(?:for|on|beyond|upon|thereafter)|renew(?:ed|al)?\s+(?:for|on)\s+(?:an?\s+)?(?:successive|additional|further|consecutive|another|subsequent)|(?:option|right)\s+to\s+(?:renew|extend)|(?:successive|additional|consecutive)\s+(?:\w+\s+)?(?:\(\d+\)\s+)?(?:year|month)s?\s*(?:terms?|periods?|renewal)|evergreen|renewal\s+terms?\b)",
    )
});

/// "successive one (1) year", "additional five (5) years", "another 5 years".
static RENEWAL_LENGTH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(successive|additional|consecutive|further|another|subsequent)?\s*([a-z]+(?:-[a-z]+)?|\d+)\s*(?:\(\d+\)\s*)?[\s-]?(years?|months?)\b",
    )
});

fn renewal_term(units: &Units<'_>) -> Option<Item> {
    for sentence in &units.sentences {
        let Some(m) = RENEWAL.find(sentence.text) else {
            continue;
        };
        // "renewal" of insurance, a permit or a purchase order is no renewal of the contract.
        if sentence.lower.contains("insurance") || sentence.lower.contains("policy") {
            continue;
        }
        let after = &sentence.text[m.start()..];
        let length = RENEWAL_LENGTH.captures_iter(after).find_map(|c| {
            let n = c.get(2).and_then(|n| number_value(n.as_str()))?;
            let unit = c.get(3)?.as_str().to_ascii_lowercase();
            let unit = if unit.starts_with("year") {
                "year"
            } else {
                "month"
            };
            let successive = c.get(1).is_some_and(|w| {
                matches!(
                    w.as_str().to_ascii_lowercase().as_str(),
                    "successive" | "consecutive"
                )
            });
            Some(if successive {
                format!("successive {n} {unit}")
            } else {
                format!("{n} {unit}")
            })
        });
        let text = length.unwrap_or_else(|| "renews (length not stated in this sentence)".into());
        let range = clause_around(
            units.passages[sentence.passage].text,
            &sentence.range,
            sentence.range.start + m.start(),
        );
        return Some(units.found("Renewal Term", sentence, range, text));
    }
    None
}

/// "at least sixty (60) days prior to the expiration", "six months before the end of".
static NOTICE_BEFORE_END: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b([a-z]+(?:\s+hundred(?:\s+(?:and\s+)?[a-z]+)?)?|\d+)\s*(?:\(\d+\)\s*)?(?:calendar\s+|business\s+)?(days?|months?)['’]?\s*(?:(?:prior\s+)?(?:written\s+)?notice\s+)?(?:prior\s+to|before|in\s+advance\s+of|preceding)\s+(?:the\s+)?(?:end|expir\w*|terminat\w*|conclusion|anniversary|renewal|then|current|initial|scheduled)",
    )
});

static NOTICE_OF: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:at\s+least|no\s+(?:later|less)\s+than|not\s+less\s+than|upon|giving|gives|provides?)\s+([a-z]+(?:\s+hundred(?:\s+(?:and\s+)?[a-z]+)?)?|\d+)\s*(?:\(\d+\)\s*)?(?:calendar\s+|business\s+)?(days?|months?)['’]?\s*(?:prior\s+|advance\s+)?(?:written\s+)?notice",
    )
});

fn notice_to_terminate_renewal(units: &Units<'_>) -> Item {
    const SECTION: &str = "Notice Period To Terminate Renewal";
    for sentence in &units.sentences {
        let lower = &sentence.lower;
        let about_renewal = lower.contains("renew")
            || lower.contains("then-current term")
            || lower.contains("then current term")
            || lower.contains("extension");
        if !about_renewal {
            continue;
        }
        let hit = NOTICE_BEFORE_END
            .captures(sentence.text)
            .or_else(|| NOTICE_OF.captures(sentence.text));
        let Some(caps) = hit else { continue };
        let (Some(whole), Some(n), Some(unit)) = (caps.get(0), caps.get(1), caps.get(2)) else {
            continue;
        };
        let value = spelled_number(n.as_str()).or_else(|| {
            // "sixty (60) days": the figure in brackets.
            let figures: String = whole
                .as_str()
                .chars()
                .skip_while(|c| *c != '(')
                .skip(1)
                .take_while(|c| c.is_ascii_digit())
                .collect();
            figures.parse().ok()
        });
        let Some(value) = value else { continue };
        let unit = if unit.as_str().to_ascii_lowercase().starts_with("month") {
            "months"
        } else {
            "days"
        };
        let range = clause_around(
            units.passages[sentence.passage].text,
            &sentence.range,
            sentence.range.start + whole.start(),
        );
        return units.found(SECTION, sentence, range, format!("{value} {unit}"));
    }
    Item::not_found(SECTION, "No notice period to stop a renewal found.".into())
}

/// "sixty", "one hundred eighty", "90".
fn spelled_number(words: &str) -> Option<u32> {
    let lower = words.to_ascii_lowercase();
    if let Some((hundreds, rest)) = lower.split_once(" hundred") {
        let h = number_value(hundreds.trim())?;
        let rest = rest.trim().trim_start_matches("and").trim();
        let tail = if rest.is_empty() { 0 } else { tens(rest)? };
        return Some(h * 100 + tail);
    }
    number_value(&lower).or_else(|| tens(&lower))
}

fn tens(word: &str) -> Option<u32> {
    match word {
        "fourteen" => Some(14),
        "twenty" => Some(20),
        "thirty" => Some(30),
        "forty" | "fourty" => Some(40),
        "forty-five" => Some(45),
        "fifty" => Some(50),
        "sixty" => Some(60),
        "seventy" => Some(70),
        "seventy-five" => Some(75),
        "eighty" => Some(80),
        "ninety" => Some(90),
        "twenty-one" => Some(21),
        _ => number_value(word),
    }
}

// ------------------------------------------------------------------ governing law

/// "governed by ... the laws of", "construed in accordance with ... law".
static GOVERNED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:govern(?:ed|s|ing)?|constru(?:ed|e)|interpreted|enforced|subject\s+to|in\s+accordance\s+with|controlled\s+by|application\s+of)\b[^.]{0,160}?\blaws?\b|\blaws?\s+of\s+[^.]{0,80}?\s(?:shall|will)\s+govern",
    )
});

/// Jurisdictions and the name CUAD's answers use for them.
const JURISDICTIONS: &[(&str, &str)] = &[
    ("new york", "New York"),
    ("delaware", "Delaware"),
    ("california", "California"),
    ("texas", "Texas"),
    ("florida", "Florida"),
    ("illinois", "Illinois"),
    ("new jersey", "New Jersey"),
    ("massachusetts", "Massachusetts"),
    ("pennsylvania", "Pennsylvania"),
    ("ohio", "Ohio"),
    ("georgia", "Georgia"),
    ("michigan", "Michigan"),
    ("minnesota", "Minnesota"),
    ("missouri", "Missouri"),
    ("maryland", "Maryland"),
    ("west virginia", "West Virginia"),
    ("virginia", "Virginia"),
    ("north carolina", "North Carolina"),
    ("south carolina", "South Carolina"),
    ("north dakota", "North Dakota"),
    ("south dakota", "South Dakota"),
    ("washington", "Washington"),
    ("district of columbia", "District of Columbia"),
    ("oregon", "Oregon"),
    ("nevada", "Nevada"),
    ("arizona", "Arizona"),
    ("colorado", "Colorado"),
    ("utah", "Utah"),
    ("indiana", "Indiana"),
    ("wisconsin", "Wisconsin"),
    ("tennessee", "Tennessee"),
    ("kentucky", "Kentucky"),
    ("alabama", "Alabama"),
    ("louisiana", "Louisiana"),
    ("mississippi", "Mississippi"),
    ("arkansas", "Arkansas"),
    ("kansas", "Kansas"),
    ("oklahoma", "Oklahoma"),
    ("iowa", "Iowa"),
    ("nebraska", "Nebraska"),
    ("connecticut", "Connecticut"),
    ("rhode island", "Rhode Island"),
    ("new hampshire", "New Hampshire"),
    ("vermont", "Vermont"),
    ("maine", "Maine"),
    ("new mexico", "New Mexico"),
    ("idaho", "Idaho"),
    ("montana", "Montana"),
    ("wyoming", "Wyoming"),
    ("alaska", "Alaska"),
    ("hawaii", "Hawaii"),
    ("puerto rico", "Puerto Rico"),
    ("ontario", "Ontario, Canada"),
    ("british columbia", "British Columbia, Canada"),
    ("alberta", "Alberta, Canada"),
    ("quebec", "Quebec, Canada"),
    ("nova scotia", "Nova Scotia, Canada"),
    ("manitoba", "Manitoba, Canada"),
    ("saskatchewan", "Saskatchewan, Canada"),
    ("new brunswick", "New Brunswick, Canada"),
    ("england and wales", "England and Wales"),
    ("england", "England and Wales"),
    ("english", "England and Wales"),
    ("scotland", "Scotland"),
    ("northern ireland", "Northern Ireland"),
    ("ireland", "Ireland"),
    ("people's republic of china", "People's Republic of China"),
    ("prc", "People's Republic of China"),
    ("hong kong", "Hong Kong"),
    ("china", "People's Republic of China"),
    ("singapore", "Singapore"),
    ("japan", "Japan"),
    ("korea", "Korea"),
    ("taiwan", "Taiwan"),
    ("india", "India"),
    ("israel", "Israel"),
    ("germany", "Germany"),
    ("france", "France"),
    ("switzerland", "Switzerland"),
    ("netherlands", "Netherlands"),
    ("belgium", "Belgium"),
    ("luxembourg", "Luxembourg"),
    ("sweden", "Sweden"),
    ("denmark", "Denmark"),
    ("norway", "Norway"),
    ("finland", "Finland"),
    ("italy", "Italy"),
    ("spain", "Spain"),
    ("austria", "Austria"),
    ("cayman islands", "Cayman Islands"),
    ("bermuda", "Bermuda"),
    ("british virgin islands", "British Virgin Islands"),
    ("papua new guinea", "Papua New Guinea"),
    ("australia", "Australia"),
    ("new south wales", "New South Wales, Australia"),
    ("new zealand", "New Zealand"),
    ("colombia", "Colombia"),
    ("mexico", "Mexico"),
    ("brazil", "Brazil"),
    ("argentina", "Argentina"),
    ("chile", "Chile"),
    ("south africa", "South Africa"),
    ("canada", "Canada"),
    ("united kingdom", "United Kingdom"),
    ("united states", "United States"),
];

static JURISDICTION: LazyLock<Regex> = LazyLock::new(|| {
    // Longest names first, so "West Virginia" wins over "Virginia".
    let mut names: Vec<&str> = JURISDICTIONS.iter().map(|(k, _)| *k).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let alternatives: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
    re(&format!(r"(?i)\b(?:{})\b", alternatives.join("|")))
});

/// The canonical name of the first jurisdiction named in `text` ("the State of New York" ->
/// "New York"; "English law" -> "England and Wales"; "Province of Ontario" -> "Ontario,
/// Canada"). A US state wins over "United States" ("the laws of the State of Illinois and the
/// United States of America").
pub fn normalise_jurisdiction(text: &str) -> Option<String> {
    let mut first_country = None;
    for m in JURISDICTION.find_iter(text) {
        let key = m.as_str().to_lowercase();
        let Some((_, name)) = JURISDICTIONS.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        if matches!(*name, "United States" | "Canada" | "United Kingdom") {
            first_country.get_or_insert(*name);
            continue;
        }
        // "Washington" is also a city; "Georgia" a country; accept them, they are rare in
        // governing-law clauses otherwise.
        return Some((*name).to_string());
    }
    first_country.map(str::to_string)
}

/// A party's place of incorporation, not the contract's law.
static CORPORATE_LAW: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:organi[sz]ed|incorporated|existing|formed|registered|duly\s+qualified)\s+(?:and\s+existing\s+)?under\s+the\s+laws",
    )
});

fn governing_law(units: &Units<'_>) -> Item {
    const SECTION: &str = "Governing Law";
    let mut best: Option<(u32, &Sentence<'_>, usize, String)> = None;
    for sentence in &units.sentences {
        let heading = sentence.heading.contains("governing law")
            || sentence.heading.contains("applicable law")
            || sentence.heading.contains("choice of law");
        let Some(m) = GOVERNED.find(sentence.text) else {
            continue;
        };
        // Courts and venue are not the law that governs.
        let law_part = &sentence.text[m.start()..];
        let Some(name) = normalise_jurisdiction(law_part) else {
            continue;
        };
        let mut score = 1;
        if ["govern", "constru", "interpret"]
            .iter()
            .any(|w| sentence.lower.contains(w))
        {
            score += 2;
        }
        // "a corporation organized under the laws of Delaware" describes a party.
        if CORPORATE_LAW.is_match(sentence.text) && !sentence.lower.contains("govern") {
            continue;
        }
        if heading {
            score += 1;
        }
        if sentence.lower.contains("conflict") {
            score += 1;
        }
        if best.as_ref().is_none_or(|(s, ..)| score > *s) {
            best = Some((score, sentence, sentence.range.start + m.start(), name));
        }
    }
    match best {
        Some((score, sentence, at, name)) if score >= 2 => {
            let range = clause_around(units.passages[sentence.passage].text, &sentence.range, at);
            units.found(SECTION, sentence, range, name)
        }
        _ => Item::not_found(SECTION, "No governing-law clause found.".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdictions_normalise() {
        let n = |s| normalise_jurisdiction(s);
        assert_eq!(
            n("the laws of the State of New York"),
            Some("New York".into())
        );
        assert_eq!(
            n("THE LAWS OF THE STATE OF DELAWARE WITHOUT GIVING EFFECT"),
            Some("Delaware".into())
        );
        assert_eq!(
            n("in accordance with English law"),
            Some("England and Wales".into())
        );
        assert_eq!(
            n("the laws of the province of Ontario, Canada"),
            Some("Ontario, Canada".into())
        );
        assert_eq!(
            n("the laws of the State of Illinois and the United States of America"),
            Some("Illinois".into())
        );
        assert_eq!(n("the laws of West Virginia"), Some("West Virginia".into()));
        assert_eq!(
            n("the laws of the People's Republic of China"),
            Some("People's Republic of China".into())
        );
        assert_eq!(n("the laws of Kansas"), Some("Kansas".into()));
        assert_eq!(n("no place here"), None);
    }

    #[test]
    fn spelled_numbers() {
        assert_eq!(spelled_number("one hundred eighty"), Some(180));
        assert_eq!(spelled_number("sixty"), Some(60));
        assert_eq!(spelled_number("90"), Some(90));
    }
}
