//! Outlook `.msg` messages (MS-OXMSG: an OLE2 compound file): headers, the plain-text body
//! (else the HTML body), and every attachment, recursively.
//!
//! Properties are streams named `__substg1.0_TTTTYYYY` (tag, type: `001F` UTF-16LE,
//! `001E` 8-bit, `0102` binary). Attachments are storages `__attach_version1.0_#N`, holding the
//! file in `37010102`, or an embedded message in the storage `3701000D` (read like the outer
//! one). Each attachment that Vellum can read (PDF, DOCX, HTML, e-mail, text, another .msg)
//! becomes further pages, headed "Attachment: NAME"; one it cannot read is listed in the
//! metadata with the reason. Nesting is limited (`MAX_DEPTH`), and so is the total number of
//! bytes read from streams, so a hostile compound file cannot expand without end.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::extract::{
    detect_format, extract_format, too_many_pages, ExtractLimits, ExtractedDocument, Format,
    PdfPasswords,
};

/// Deepest nesting of embedded messages and attachments followed.
const MAX_DEPTH: usize = 5;

/// Tells an Outlook message from other OLE2 files: its root holds property streams.
pub(crate) fn looks_like_msg(bytes: &[u8]) -> bool {
    let marker: Vec<u8> = "__substg1.0_"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    bytes
        .windows(marker.len())
        .any(|window| window == marker.as_slice())
}

/// Reads streams of one compound file, counting bytes against a budget.
struct Reader<F> {
    file: cfb::CompoundFile<F>,
    budget: u64,
}

impl<F: Read + std::io::Seek> Reader<F> {
    fn stream(&mut self, path: &Path) -> Result<Option<Vec<u8>>> {
        if !self.file.is_stream(path) {
            return Ok(None);
        }
        let mut stream = self
            .file
            .open_stream(path)
            .map_err(|error| malformed(&error))?;
        let len = stream.len();
        if len > self.budget {
            return Err(Error::TooLarge {
                reason: format!(
                    "Outlook message streams add up to more than the {} MB limit",
                    self.budget >> 20
                ),
            });
        }
        self.budget -= len;
        let mut bytes = Vec::new();
        stream
            .by_ref()
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|error| malformed(&error))?;
        Ok(Some(bytes))
    }

    /// A string property: UTF-16LE (`001F`) or 8-bit (`001E`, read as Windows-1252/UTF-8).
    fn string(&mut self, storage: &Path, tag: &str) -> Result<Option<String>> {
        if let Some(bytes) = self.stream(&storage.join(format!("__substg1.0_{tag}001F")))? {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            let text = String::from_utf16_lossy(&units);
            return Ok(Some(text.trim_end_matches('\0').to_string()));
        }
        if let Some(bytes) = self.stream(&storage.join(format!("__substg1.0_{tag}001E")))? {
            let text = String::from_utf8_lossy(&bytes);
            return Ok(Some(text.trim_end_matches('\0').to_string()));
        }
        Ok(None)
    }

    fn children(&self, storage: &Path) -> Vec<(String, bool)> {
        match self.file.read_storage(storage) {
            Ok(entries) => entries
                .map(|entry| (entry.name().to_string(), entry.is_storage()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

pub(crate) fn extract_msg(
    bytes: &[u8],
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
) -> Result<ExtractedDocument> {
    extract_msg_at_depth(bytes, limits, passwords, 0)
}

fn extract_msg_at_depth(
    bytes: &[u8],
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
    depth: usize,
) -> Result<ExtractedDocument> {
    let file = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(|error| malformed(&error))?;
    let mut reader = Reader {
        file,
        budget: limits.max_zip_uncompressed_bytes,
    };
    let mut pages = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut unreadable = Vec::new();
    let title = read_message(
        &mut reader,
        Path::new("/"),
        limits,
        passwords,
        depth,
        &mut pages,
        &mut metadata,
        &mut unreadable,
    )?;
    if !unreadable.is_empty() {
        metadata.insert("attachments_not_indexed".to_string(), unreadable.join("; "));
    }
    if pages.len() > limits.max_pages {
        return Err(too_many_pages(Format::OutlookMsg, pages.len(), limits));
    }
    Ok(ExtractedDocument {
        format: Format::OutlookMsg,
        title,
        pages,
        metadata,
    })
}

/// Reads the message stored at `storage` (the root, or an embedded message): its header and
/// body become one page, its attachments more. Returns the subject.
#[allow(clippy::too_many_arguments)]
fn read_message<F: Read + std::io::Seek>(
    reader: &mut Reader<F>,
    storage: &Path,
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
    depth: usize,
    pages: &mut Vec<String>,
    metadata: &mut BTreeMap<String, String>,
    unreadable: &mut Vec<String>,
) -> Result<Option<String>> {
    let subject = reader.string(storage, "0037")?;
    let sender_name = reader.string(storage, "0C1A")?;
    let sender_address = reader.string(storage, "0C1F")?;
    let to = reader.string(storage, "0E04")?;
    let cc = reader.string(storage, "0E03")?;
    let body = match reader.string(storage, "1000")? {
        Some(body) if !body.trim().is_empty() => body,
        _ => match reader.stream(&storage.join("__substg1.0_10130102"))? {
            Some(html) => crate::extract::html::html_to_text(&String::from_utf8_lossy(&html)).1,
            None => String::new(),
        },
    };
    let from = match (&sender_name, &sender_address) {
        (Some(name), Some(address)) if !address.is_empty() => format!("{name} <{address}>"),
        (Some(name), _) => name.clone(),
        (None, Some(address)) => address.clone(),
        (None, None) => String::new(),
    };
    if depth == 0 {
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value.as_ref().filter(|value| !value.trim().is_empty()) {
                metadata.insert(key.to_string(), value.clone());
            }
        };
        put("from", &Some(from.clone()));
        put("to", &to);
        put("cc", &cc);
        put("subject", &subject);
    }
    let mut page = String::new();
    for (label, value) in [
        ("From", Some(from)),
        ("To", to),
        ("Cc", cc),
        ("Subject", subject.clone()),
    ] {
        if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
            page.push_str(&format!("{label}: {value}\n"));
        }
    }
    page.push('\n');
    page.push_str(&body);
    pages.push(page);

    let mut attachments: Vec<String> = reader
        .children(storage)
        .into_iter()
        .filter(|(name, is_storage)| *is_storage && name.starts_with("__attach_version1.0_#"))
        .map(|(name, _)| name)
        .collect();
    attachments.sort();
    for attachment in attachments {
        if pages.len() > limits.max_pages {
            return Err(too_many_pages(Format::OutlookMsg, pages.len(), limits));
        }
        let path: PathBuf = storage.join(&attachment);
        let name = match reader.string(&path, "3707")? {
            Some(name) if !name.is_empty() => name,
            _ => reader
                .string(&path, "3704")?
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| attachment.clone()),
        };
        let embedded = path.join("__substg1.0_3701000D");
        if reader.file.is_storage(&embedded) {
            if depth + 1 >= MAX_DEPTH {
                unreadable.push(format!(
                    "{name}: messages nested more than {MAX_DEPTH} deep"
                ));
                continue;
            }
            let before = pages.len();
            read_message(
                reader,
                &embedded,
                limits,
                passwords,
                depth + 1,
                pages,
                metadata,
                unreadable,
            )?;
            if let Some(first) = pages.get_mut(before) {
                first.insert_str(0, &format!("Attachment: {name} (message)\n\n"));
            }
            continue;
        }
        let Some(data) = reader.stream(&path.join("__substg1.0_37010102"))? else {
            unreadable.push(format!("{name}: no data"));
            continue;
        };
        match extract_attachment(&data, &name, limits, passwords, depth + 1) {
            Ok(document) => {
                for (index, text) in document.pages.into_iter().enumerate() {
                    let header = if index == 0 {
                        format!("Attachment: {name}\n\n")
                    } else {
                        format!("Attachment: {name}, page {}\n\n", index + 1)
                    };
                    pages.push(header + &text);
                }
            }
            Err(error) => unreadable.push(format!("{name}: {error}")),
        }
    }
    Ok(subject)
}

/// Extracts an attachment with the extractor its content calls for (a nested .msg included).
fn extract_attachment(
    data: &[u8],
    name: &str,
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
    depth: usize,
) -> Result<ExtractedDocument> {
    if depth >= MAX_DEPTH {
        return Err(Error::TooLarge {
            reason: format!("attachments nested more than {MAX_DEPTH} deep"),
        });
    }
    match detect_format(data, Some(name))? {
        Format::OutlookMsg => extract_msg_at_depth(data, limits, passwords, depth),
        format => extract_format(data, format, limits, passwords),
    }
}

fn malformed(error: &std::io::Error) -> Error {
    Error::Malformed {
        format: Format::OutlookMsg,
        reason: format!("damaged compound file: {error}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn put(file: &mut cfb::CompoundFile<Cursor<Vec<u8>>>, path: &str, bytes: &[u8]) {
        let mut stream = file
            .create_stream(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    /// Writes a small .msg the way Outlook lays it out: subject, sender, body, a text
    /// attachment and an embedded message with its own attachment.
    pub(crate) fn sample_msg() -> Vec<u8> {
        let mut file =
            cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap_or_else(|e| panic!("{e}"));
        put(
            &mut file,
            "/__substg1.0_0037001F",
            &utf16("Settlement draft"),
        );
        put(&mut file, "/__substg1.0_0C1A001F", &utf16("Jane Counsel"));
        put(
            &mut file,
            "/__substg1.0_0C1F001F",
            &utf16("jane@firm.example"),
        );
        put(
            &mut file,
            "/__substg1.0_0E04001F",
            &utf16("Opposing Counsel"),
        );
        put(
            &mut file,
            "/__substg1.0_1000001F",
            &utf16("Please find the revised settlement terms attached."),
        );
        file.create_storage("/__attach_version1.0_#00000000")
            .unwrap_or_else(|e| panic!("{e}"));
        put(
            &mut file,
            "/__attach_version1.0_#00000000/__substg1.0_3707001F",
            &utf16("terms.txt"),
        );
        put(
            &mut file,
            "/__attach_version1.0_#00000000/__substg1.0_37010102",
            b"Clause 4: the payment is due within thirty days.",
        );
        file.create_storage("/__attach_version1.0_#00000001")
            .unwrap_or_else(|e| panic!("{e}"));
        put(
            &mut file,
            "/__attach_version1.0_#00000001/__substg1.0_3707001F",
            &utf16("Earlier thread"),
        );
        let inner = "/__attach_version1.0_#00000001/__substg1.0_3701000D";
        file.create_storage(inner).unwrap_or_else(|e| panic!("{e}"));
        put(
            &mut file,
            &format!("{inner}/__substg1.0_0037001E"),
            b"Re: first offer",
        );
        put(
            &mut file,
            &format!("{inner}/__substg1.0_1000001F"),
            &utf16("The first offer was rejected on Monday."),
        );
        file.create_storage(format!("{inner}/__attach_version1.0_#00000000"))
            .unwrap_or_else(|e| panic!("{e}"));
        put(
            &mut file,
            &format!("{inner}/__attach_version1.0_#00000000/__substg1.0_3707001F"),
            &utf16("offer.eml"),
        );
        put(
            &mut file,
            &format!("{inner}/__attach_version1.0_#00000000/__substg1.0_37010102"),
            b"From: a@example.com\r\nSubject: Offer\r\n\r\nWe offer forty thousand.",
        );
        file.flush().unwrap_or_else(|e| panic!("{e}"));
        file.into_inner().into_inner()
    }

    #[test]
    fn message_attachments_and_embedded_messages_become_pages() {
        let bytes = sample_msg();
        assert!(looks_like_msg(&bytes));
        let document = extract_msg(&bytes, &ExtractLimits::default(), &PdfPasswords::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(document.title.as_deref(), Some("Settlement draft"));
        assert_eq!(
            document.metadata.get("from").map(String::as_str),
            Some("Jane Counsel <jane@firm.example>")
        );
        assert_eq!(document.pages.len(), 4, "{:#?}", document.pages);
        assert!(document.pages[0].contains("Subject: Settlement draft"));
        assert!(document.pages[0].contains("revised settlement terms"));
        assert!(document.pages[1].starts_with("Attachment: terms.txt\n\nClause 4"));
        assert!(document.pages[2].starts_with("Attachment: Earlier thread (message)"));
        assert!(document.pages[2].contains("first offer was rejected"));
        assert!(document.pages[3].starts_with("Attachment: offer.eml"));
        assert!(document.pages[3].contains("forty thousand"));
    }
}
