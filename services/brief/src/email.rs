//! E-mail threads: one `Message` item per message (who, when, subject), the court notice's
//! transaction and docket text where it is a PACER notice, and `Attachments`.
//!
//! Ingest puts an e-mail's own headers in metadata (not in the passages) and its body on page 1;
//! each text attachment is a further page starting `Attachment: <name>`; an mbox page starts
//! with its `From:`/`To:`/`Date:`/`Subject:` lines. Forwarded and quoted messages keep their
//! header blocks inside the body ("From: ... Sent: ... To: ... Subject: ...", "On ..., X
//! wrote:"), which is what the thread items quote.

use std::sync::OnceLock;

use regex::Regex;

use crate::clinical::dedup;
use crate::{Document, Item, Passage};

/// Longest subject read from a header block.
const MAX_SUBJECT: usize = 160;

struct Patterns {
    header_block: Regex,
    wrote: Regex,
    subject_end: Regex,
    transaction: Regex,
    docket_text: Regex,
    attachment_page: Regex,
    attachment_mention: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let compile = |pattern: &str| Regex::new(pattern).unwrap_or_else(|_| unreachable!());
        Patterns {
            header_block: compile(
                r"From: (?P<from>[^\n]{1,160}?) (?:Sent|Date): (?P<date>[^\n]{4,60}?) (?:To: [^\n]{0,600}?)?Subject: ",
            ),
            wrote: compile(r"\bOn (?P<date>[A-Z][^\n]{5,60}?),? (?P<from>[^\n,]{2,80}?) wrote:"),
            subject_end: compile(
                r" (?:From|Sent|To|Cc|Date): | This is an automatic| \*\*\*|\u{feff}| Begin forwarded| (?:Hi|Hello|Dear|Good (?:morning|afternoon|evening)|Thank|Please)\b",
            ),
            transaction: compile(
                r"The following transaction was entered (?:by (?P<by>[^\n]{2,80}?) )?on (?P<date>\d{1,2}/\d{1,2}/\d{4})(?: at \d{1,2}:\d{2} [AP]M(?: [A-Z]{2,4})?)?(?: and filed on \d{1,2}/\d{1,2}/\d{4})?",
            ),
            docket_text: compile(r"Docket Text: (?P<text>[^\n]{5,400}?)(?: \(\w{2,4}\)| \d:\d{2}-[a-z]{2}-| Notice has been|$)"),
            attachment_page: compile(r"^Attachment: (?P<name>\S[^\n]{0,120}?)(?: |$)"),
            attachment_mention: compile(
                r"(?i)\(Attachments?: (?:[^()]|\([^()]*\))+\)|\battached (?:is|are|please find)\b[^.]{0,200}|\bplease find attached\b[^.]{0,200}",
            ),
        }
    })
}

/// The items of an e-mail or thread.
pub fn summary(document: &Document<'_>) -> Vec<Item> {
    let p = patterns();
    let mut messages: Vec<Item> = Vec::new();
    let mut attachments: Vec<Item> = Vec::new();
    let mut notices: Vec<Item> = Vec::new();
    for passage in document.passages {
        let text = passage.text;
        for caps in p.header_block.captures_iter(text) {
            let (Some(whole), Some(from), Some(date)) =
                (caps.get(0), caps.name("from"), caps.name("date"))
            else {
                continue;
            };
            let subject_start = whole.end();
            let rest = &text[subject_start..];
            let mut subject_len = p
                .subject_end
                .find(rest)
                .map_or(rest.len(), |m| m.start())
                .min(MAX_SUBJECT);
            while !rest.is_char_boundary(subject_len) {
                subject_len -= 1;
            }
            let subject = rest[..subject_len].trim();
            let quote = text[whole.start()..subject_start + subject_len].trim_end();
            messages.push(Item::found(
                "Message",
                passage,
                quote,
                format!(
                    "From {} on {} — subject: {}",
                    from.as_str().trim(),
                    date.as_str().trim(),
                    if subject.is_empty() {
                        "(none)"
                    } else {
                        subject
                    }
                ),
            ));
        }
        for caps in p.wrote.captures_iter(text) {
            let (Some(whole), Some(from), Some(date)) =
                (caps.get(0), caps.name("from"), caps.name("date"))
            else {
                continue;
            };
            messages.push(Item::found(
                "Message",
                passage,
                whole.as_str(),
                format!("From {} on {}", from.as_str().trim(), date.as_str().trim()),
            ));
        }
        for caps in p.transaction.captures_iter(text) {
            let (Some(whole), Some(date)) = (caps.get(0), caps.name("date")) else {
                continue;
            };
            let by = caps
                .name("by")
                .map(|by| format!(" by {}", by.as_str()))
                .unwrap_or_default();
            notices.push(Item::found(
                "Message",
                passage,
                whole.as_str(),
                format!("Court notice: transaction entered{by} on {}", date.as_str()),
            ));
        }
        for caps in p.docket_text.captures_iter(text) {
            if let Some(docket) = caps.name("text") {
                let quote = docket.as_str().trim();
                notices.push(Item::found(
                    "Docket Text",
                    passage,
                    quote,
                    quote.to_string(),
                ));
            }
        }
        if let Some(name) = p
            .attachment_page
            .captures(text)
            .and_then(|c| c.name("name"))
        {
            let quote = &text[..name.end()];
            attachments.push(Item::found(
                "Attachments",
                passage,
                quote,
                format!("Attachment: {}", name.as_str()),
            ));
        }
        for found in p.attachment_mention.find_iter(text) {
            let quote = found.as_str().trim();
            attachments.push(Item::found(
                "Attachments",
                passage,
                quote,
                quote.to_string(),
            ));
        }
    }
    let mut items = Vec::new();
    // The e-mail itself: its headers are metadata, so quote its first substantive line and
    // name it by its subject (the title).
    if let Some((passage, range)) = first_line(document.passages) {
        let subject = document.title.trim();
        let text = if subject.is_empty() {
            "The message".to_string()
        } else {
            format!("Subject: {subject}")
        };
        items.push(Item::found("Message", passage, &passage.text[range], text));
    }
    items.extend(messages);
    items.extend(notices);
    items.extend(attachments);
    if items.is_empty() {
        items.push(Item::not_found(
            "Message",
            "No message text found.".to_string(),
        ));
    }
    dedup(items)
}

/// The first sentence of the body that is not boilerplate or a header line.
fn first_line<'p>(
    passages: &'p [Passage<'p>],
) -> Option<(&'p Passage<'p>, std::ops::Range<usize>)> {
    let passage = passages.first()?;
    let text = passage.text;
    let boilerplate = [
        "Begin forwarded",
        "From:",
        "***",
        "This is an automatic",
        "[cid:",
        "Please DO NOT RESPOND",
        "Judicial Conference",
    ];
    // Court-notice (CM/ECF) boilerplate anywhere in the sentence.
    let notice = [
        "PACER",
        "CM/ECF",
        "free copy",
        "later charges",
        "one free electronic",
    ];
    crate::text::sentences(text)
        .into_iter()
        .find(|range| {
            let sentence = &text[range.clone()];
            sentence.split_whitespace().count() >= 3
                && !boilerplate.iter().any(|b| sentence.starts_with(b))
                && !notice.iter().any(|n| sentence.contains(n))
        })
        .map(|range| (passage, prefix(text, range, 200)))
}

/// `range` of `text`, cut at a space to at most `max` bytes.
pub(crate) fn prefix(
    text: &str,
    range: std::ops::Range<usize>,
    max: usize,
) -> std::ops::Range<usize> {
    if range.len() <= max {
        return range;
    }
    let mut end = range.start + max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[range.start..end]
        .rfind(' ')
        .map_or(end, |space| range.start + space);
    range.start..cut.max(range.start + 1).min(range.end)
}
