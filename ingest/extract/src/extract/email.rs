//! E-mail (.eml, RFC 5322): headers into metadata, the body as page 1, and each text
//! attachment (or attached message) as a further page introduced by `Attachment: <name>`.
//! An mbox file (several messages, each after a `From ` separator line) gives one page per
//! message, each opening with its From/To/Date/Subject lines.

use std::collections::BTreeMap;

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

use crate::error::{Error, Result};
use crate::extract::{html, too_many_pages, ExtractLimits, ExtractedDocument, Format};

/// Headers of which at least one must appear for text to be taken as an e-mail.
const TELLING_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "received",
    "return-path",
    "message-id",
    "delivered-to",
    "mime-version",
    "reply-to",
    "sender",
    "cc",
    "envelope-to",
    "x-mailer",
];

/// How many header lines detection reads before deciding.
const MAX_SNIFFED_HEADER_LINES: usize = 300;

/// How deep attached messages (message/rfc822) are followed for their text.
const MAX_ATTACHED_MESSAGE_DEPTH: usize = 3;

/// Tells whether text starts like an e-mail: an optional mbox `From ` line, then a block of
/// `Name: value` header lines (with folded continuations) of which at least two are headers
/// and at least one is a header mail always has (From, Date, Received...).
pub(crate) fn looks_like_email(text: &str) -> bool {
    let mut lines = text.lines().peekable();
    if lines.peek().is_some_and(|line| line.starts_with("From ")) {
        lines.next();
    }
    let mut num_headers = 0usize;
    let mut has_telling_header = false;
    for line in lines.take(MAX_SNIFFED_HEADER_LINES) {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if num_headers == 0 {
                return false;
            }
            continue;
        }
        let Some((name, _value)) = line.split_once(':') else {
            return false;
        };
        let is_header_name = !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b':');
        if !is_header_name {
            return false;
        }
        num_headers += 1;
        has_telling_header |= TELLING_HEADERS
            .iter()
            .any(|telling| name.eq_ignore_ascii_case(telling));
    }
    num_headers >= 2 && has_telling_header
}

/// Extracts an e-mail message, or every message of an mbox file.
pub(crate) fn extract_email(bytes: &[u8], limits: &ExtractLimits) -> Result<ExtractedDocument> {
    if is_mbox(bytes) {
        return extract_mbox(bytes, limits);
    }
    let raw = strip_mbox_from_line(bytes);
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| Error::Malformed {
            format: Format::Email,
            reason: "no e-mail headers found".to_string(),
        })?;
    let mut metadata = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
            metadata.insert(key.to_string(), value);
        }
    };
    put("from", message.from().map(format_address));
    put("to", message.to().map(format_address));
    put("cc", message.cc().map(format_address));
    put("date", message.date().map(|date| date.to_rfc3339()));
    put("subject", message.subject().map(str::to_string));
    put("message_id", message.message_id().map(str::to_string));

    let mut pages = vec![body_text(&message)];
    let mut attachment_names = Vec::new();
    collect_attachments(&message, 0, &mut pages, &mut attachment_names);
    if pages.len() > limits.max_pages {
        return Err(too_many_pages(Format::Email, pages.len(), limits));
    }
    if !attachment_names.is_empty() {
        metadata.insert("attachments".to_string(), attachment_names.join(", "));
    }
    Ok(ExtractedDocument {
        format: Format::Email,
        title: message.subject().map(str::to_string),
        pages,
        metadata,
    })
}

/// Tells an mbox (a `From ` line first and another one after a blank line) from one message.
fn is_mbox(bytes: &[u8]) -> bool {
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
    bytes.starts_with(b"From ") && (contains(b"\n\nFrom ") || contains(b"\r\n\r\nFrom "))
}

/// Extracts an mbox: one page per message (headers, body, text attachments).
fn extract_mbox(bytes: &[u8], limits: &ExtractLimits) -> Result<ExtractedDocument> {
    let mut pages = Vec::new();
    for message in mail_parser::mailbox::mbox::MessageIterator::new(std::io::Cursor::new(bytes)) {
        let Ok(message) = message else {
            continue;
        };
        let Some(parsed) = MessageParser::default().parse(message.contents()) else {
            continue;
        };
        if pages.len() >= limits.max_pages {
            return Err(Error::TooLarge {
                reason: format!(
                    "mbox has more than {} messages, the page limit",
                    limits.max_pages
                ),
            });
        }
        let mut page = String::new();
        let headers = [
            ("From", parsed.from().map(format_address)),
            ("To", parsed.to().map(format_address)),
            ("Date", parsed.date().map(|date| date.to_rfc3339())),
            ("Subject", parsed.subject().map(str::to_string)),
        ];
        for (name, value) in headers {
            if let Some(value) = value {
                page.push_str(&format!("{name}: {value}\n"));
            }
        }
        page.push('\n');
        page.push_str(&body_text(&parsed));
        let mut attachment_pages = Vec::new();
        collect_attachments(&parsed, 0, &mut attachment_pages, &mut Vec::new());
        for attachment in attachment_pages {
            page.push_str("\n\n");
            page.push_str(&attachment);
        }
        pages.push(page);
    }
    if pages.is_empty() {
        return Err(Error::Malformed {
            format: Format::Email,
            reason: "mbox without a readable message".to_string(),
        });
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("messages".to_string(), pages.len().to_string());
    Ok(ExtractedDocument {
        format: Format::Email,
        title: None,
        pages,
        metadata,
    })
}

/// Drops the `From sender date` separator line an mbox export puts before the headers; it is
/// not a header and would hide the real ones from the parser.
fn strip_mbox_from_line(bytes: &[u8]) -> &[u8] {
    if bytes.starts_with(b"From ") {
        if let Some(newline) = bytes.iter().position(|byte| *byte == b'\n') {
            return bytes.get(newline + 1..).unwrap_or_default();
        }
    }
    bytes
}

/// Formats an address header as `Name <address>, ...`.
fn format_address(address: &Address<'_>) -> String {
    address
        .iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(name), Some(email)) if !name.is_empty() => format!("{name} <{email}>"),
            (_, Some(email)) => email.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        })
        .filter(|formatted| !formatted.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message's body as text: the text/plain parts, else the HTML parts converted to text.
fn body_text(message: &Message<'_>) -> String {
    let part_ids = if message.text_body.is_empty() {
        &message.html_body
    } else {
        &message.text_body
    };
    part_ids
        .iter()
        .filter_map(|id| message.part(*id))
        .filter_map(|part| match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            PartType::Html(markup) => Some(html::html_to_text(markup).1),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Appends a page per text attachment and per attached message (its body, recursively up to
/// a small depth); records every attachment's name.
fn collect_attachments(
    message: &Message<'_>,
    depth: usize,
    pages: &mut Vec<String>,
    attachment_names: &mut Vec<String>,
) {
    for id in &message.attachments {
        if message.text_body.contains(id) || message.html_body.contains(id) {
            continue;
        }
        let Some(part) = message.part(*id) else {
            continue;
        };
        let name = part.attachment_name().map(str::to_string);
        let text = match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            PartType::Html(markup) => Some(html::html_to_text(markup).1),
            PartType::Message(attached) if depth < MAX_ATTACHED_MESSAGE_DEPTH => {
                let label = name
                    .clone()
                    .or_else(|| attached.subject().map(str::to_string));
                let page_name = label.unwrap_or_else(|| "attached message".to_string());
                attachment_names.push(page_name.clone());
                pages.push(format!(
                    "Attachment: {page_name}\n\n{}",
                    body_text(attached)
                ));
                collect_attachments(attached, depth + 1, pages, attachment_names);
                continue;
            }
            _ => None,
        };
        let display_name = name.unwrap_or_else(|| "unnamed".to_string());
        attachment_names.push(display_name.clone());
        if let Some(text) = text {
            pages.push(format!("Attachment: {display_name}\n\n{text}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "From: \"Ann Lee\" <ann@example.com>\r\n\
        To: bob@example.com, Carl <carl@example.com>\r\n\
        Subject: Filing =?UTF-8?Q?r=C3=A9sum=C3=A9?=\r\n\
        Date: Fri, 15 Mar 2019 06:54:26 -0700\r\n\
        Message-ID: <abc@example.com>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"XX\"\r\n\
        \r\n\
        --XX\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        \r\n\
        Body line.\r\n\
        --XX\r\n\
        Content-Type: text/plain; name=\"notes.txt\"\r\n\
        Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
        \r\n\
        Attached notes.\r\n\
        --XX\r\n\
        Content-Type: image/png; name=\"x.png\"\r\n\
        Content-Disposition: attachment; filename=\"x.png\"\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        iVBORw0KGgo=\r\n\
        --XX--\r\n";

    #[test]
    fn headers_body_and_text_attachments() {
        let document = extract_email(MULTIPART.as_bytes(), &ExtractLimits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(document.title.as_deref(), Some("Filing résumé"));
        assert_eq!(
            document.metadata.get("from").map(String::as_str),
            Some("Ann Lee <ann@example.com>")
        );
        assert_eq!(
            document.metadata.get("to").map(String::as_str),
            Some("bob@example.com, Carl <carl@example.com>")
        );
        assert_eq!(document.pages.len(), 2, "{:?}", document.pages);
        assert!(document.pages[0].contains("Body line."));
        assert!(document.pages[1].starts_with("Attachment: notes.txt\n\nAttached notes."));
        assert_eq!(
            document.metadata.get("attachments").map(String::as_str),
            Some("notes.txt, x.png")
        );
    }

    #[test]
    fn html_only_body_is_converted() {
        let mail = "From: a@example.com\nSubject: s\nContent-Type: text/html\n\n\
                    <html><body><nav>menu</nav><p>Hello <b>there</b></p></body></html>";
        let document = extract_email(mail.as_bytes(), &ExtractLimits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            crate::extract::normalize_page_text(&document.pages[0]),
            "Hello there"
        );
    }

    #[test]
    fn mbox_gives_a_page_per_message() {
        let mbox = "From a@example.com Mon Jan  1 00:00:00 2024\nFrom: a@example.com\nSubject: one\n\nFirst body\n\n\
                    From b@example.com Tue Jan  2 00:00:00 2024\nFrom: b@example.com\nSubject: two\n\nSecond body\n";
        let document = extract_email(mbox.as_bytes(), &ExtractLimits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(document.pages.len(), 2, "{:?}", document.pages);
        assert!(document.pages[0].starts_with("From: a@example.com\nSubject: one\n\nFirst body"));
        assert!(document.pages[1].contains("Second body"));
        assert_eq!(
            document.metadata.get("messages").map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn mbox_from_line_is_skipped() {
        let mail = "From jm@example.org  Wed May 16 00:40:34 2001\nReturn-Path: <jm@example.org>\n\
                    Subject: hi\n\nbody";
        assert!(looks_like_email(mail));
        let document = extract_email(mail.as_bytes(), &ExtractLimits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(document.title.as_deref(), Some("hi"));
    }
}
