//! PDF: lopdf parses the file, pdf-extract lays out the text of each page.
//!
//! Pages are extracted one at a time, each behind its own `catch_unwind`, so one broken page
//! (pdf-extract panics on missing page content, odd fonts...) costs that page, not the
//! document; failed pages are counted in the `pages_failed` metadata. pdf-extract's own
//! `extract_text_from_mem_by_pages` is not used because it stops silently at the first page
//! that fails, losing every later page.
//!
//! Two kinds of damage get special handling. A broken cross-reference table is rebuilt by
//! scanning for objects, as poppler does. And since pdf-extract recurses without cycle checks
//! (form XObjects drawing themselves, `/Parent` loops in the page tree) and a stack overflow
//! aborts the process, such pages are detected beforehand and skipped as failed.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId};
use pdf_extract::{output_doc_page, PlainTextOutput};

use crate::error::{Error, Result};
use crate::extract::{
    panic_message, too_many_pages, ExtractLimits, ExtractedDocument, Format, PdfPasswords,
};

/// Extracts a PDF page by page.
pub(crate) fn extract_pdf(
    bytes: &[u8],
    limits: &ExtractLimits,
    passwords: &PdfPasswords,
) -> Result<ExtractedDocument> {
    let mut opened_with = None;
    let document = match Document::load_mem(bytes) {
        Ok(document) if needs_password(&document) && !passwords.is_empty() => {
            let (document, index) = open_with_passwords(bytes, passwords)?;
            opened_with = Some(index);
            document
        }
        Ok(document) => document,
        Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword)
            if !passwords.is_empty() =>
        {
            let (document, index) = open_with_passwords(bytes, passwords)?;
            opened_with = Some(index);
            document
        }
        Err(err @ (lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword)) => {
            return Err(load_error(err))
        }
        // A broken cross-reference table is the commonest damage (truncated downloads, hand
        // edits, buggy writers); readers like poppler rebuild it by scanning for objects.
        Err(err) => match rebuild_xref(bytes) {
            Some(repaired) => Document::load_mem(&repaired).map_err(|_| load_error(err))?,
            None => return Err(load_error(err)),
        },
    };
    // lopdf decrypts on load when the empty user password opens the file (permission-only
    // protection); when it cannot, the trailer still names an /Encrypt dictionary.
    if needs_password(&document) {
        return Err(Error::Encrypted {
            reason: "PDF is encrypted and does not open without a password: no password \
                 configured opens it (add it to the PDF password list, or remove the protection) \
                 and ingest it again"
                .to_string(),
        });
    }
    let page_ids = document.get_pages();
    let page_numbers: Vec<u32> = page_ids.keys().copied().collect();
    if page_numbers.is_empty() {
        return Err(Error::Malformed {
            format: Format::Pdf,
            reason: "no pages found (broken page tree or catalog)".to_string(),
        });
    }
    if page_numbers.len() > limits.max_pages {
        return Err(too_many_pages(Format::Pdf, page_numbers.len(), limits));
    }
    let mut pages = Vec::with_capacity(page_numbers.len());
    let mut num_failed = 0usize;
    let mut num_panicked = 0usize;
    let mut first_failure: Option<String> = None;
    for page_number in &page_numbers {
        let mut page_text = String::new();
        // pdf-extract follows form XObjects recursively without cycle detection; a cycle or a
        // very deep nesting overflows the stack, which aborts the process (no unwinding).
        let nesting_problem = page_ids.get(page_number).and_then(|page_id| {
            parent_cycle(&document, *page_id)
                .or_else(|| unsafe_xobject_nesting(&document, *page_id))
        });
        if let Some(problem) = nesting_problem {
            num_failed += 1;
            first_failure.get_or_insert(format!("page {page_number}: {problem}"));
            pages.push(page_text);
            continue;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut output = PlainTextOutput::new(&mut page_text);
            output_doc_page(&document, &mut output, *page_number)
        }));
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(format!("page {page_number}: {err}")),
            Err(payload) => {
                num_panicked += 1;
                Some(format!(
                    "page {page_number}: parser crashed: {}",
                    panic_message(payload.as_ref())
                ))
            }
        };
        if let Some(failure) = failure {
            num_failed += 1;
            first_failure.get_or_insert(failure);
        }
        // Text laid out before a failure is kept: a partly readable page still helps search.
        pages.push(page_text);
    }
    if num_panicked == page_numbers.len() {
        return Err(Error::Panicked {
            format: Format::Pdf,
            message: format!(
                "no page could be read; first error: {}",
                first_failure.unwrap_or_default()
            ),
        });
    }
    if num_failed == page_numbers.len() {
        return Err(Error::Malformed {
            format: Format::Pdf,
            reason: format!(
                "no page could be read; first error: {}",
                first_failure.unwrap_or_default()
            ),
        });
    }
    let has_no_text = pages
        .iter()
        .all(|page| page.chars().all(|c| c.is_whitespace() || c.is_control()));
    if has_no_text {
        return Err(no_text_error(&document, &page_numbers));
    }
    let mut metadata = info_metadata(&document);
    if let Some(index) = opened_with {
        // Which entry, never the password itself.
        metadata.insert(
            "opened_with".to_string(),
            format!("configured PDF password #{index}"),
        );
    }
    if let Some(finding) = hidden_text(&document, &page_ids) {
        metadata.insert("hidden_text".to_string(), finding);
    }
    if num_failed > 0 {
        metadata.insert(
            "pages_failed".to_string(),
            format!(
                "{num_failed} of {}; first error: {}",
                page_numbers.len(),
                first_failure.unwrap_or_default()
            ),
        );
    }
    let title = metadata.remove("title");
    Ok(ExtractedDocument {
        format: Format::Pdf,
        title,
        pages,
        metadata,
    })
}

/// Deepest form XObject nesting pdf-extract is allowed to follow; real documents nest a few
/// levels, and each level costs pdf-extract several stack frames.
const MAX_FORM_DEPTH: usize = 32;
/// Most XObject references examined for one page before it is declared too complex.
const MAX_FORM_VISITS: usize = 100_000;

/// Returns why drawing a page would make pdf-extract recurse without end (a form XObject that
/// draws itself, directly or through others) or too deep; `None` when the page is safe.
/// Mirrors pdf-extract's lookup: a form without `/Resources` uses its caller's.
fn unsafe_xobject_nesting(document: &Document, page_id: ObjectId) -> Option<String> {
    let page = document.get_dictionary(page_id).ok()?;
    let page_resources = inherited_resources(document, page)?;
    // Each frame: the resources in effect, the form ids drawn to get there, the depth.
    let mut stack: Vec<(&Dictionary, Vec<ObjectId>, usize)> = vec![(page_resources, Vec::new(), 0)];
    let mut num_visits = 0usize;
    while let Some((resources, path, depth)) = stack.pop() {
        let Some(xobjects) = resolve_dict(document, resources.get(b"XObject").ok()) else {
            continue;
        };
        for (_, value) in xobjects.iter() {
            num_visits += 1;
            if num_visits > MAX_FORM_VISITS {
                return Some(format!("more than {MAX_FORM_VISITS} nested XObject uses"));
            }
            let (form_id, object) = match value {
                Object::Reference(id) => match document.get_object(*id) {
                    Ok(object) => (Some(*id), object),
                    Err(_) => continue,
                },
                direct => (None, direct),
            };
            let Ok(stream) = object.as_stream() else {
                continue;
            };
            let is_image = stream
                .dict
                .get(b"Subtype")
                .and_then(Object::as_name)
                .is_ok_and(|subtype| subtype == b"Image");
            if is_image {
                continue;
            }
            if let Some(id) = form_id {
                if path.contains(&id) {
                    return Some(format!(
                        "form XObject {} {} draws itself (a cycle)",
                        id.0, id.1
                    ));
                }
            }
            if depth + 1 > MAX_FORM_DEPTH {
                return Some(format!("form XObjects nested deeper than {MAX_FORM_DEPTH}"));
            }
            let form_resources =
                resolve_dict(document, stream.dict.get(b"Resources").ok()).unwrap_or(resources);
            let mut form_path = path.clone();
            form_path.extend(form_id);
            stack.push((form_resources, form_path, depth + 1));
        }
    }
    None
}

/// Returns a problem when looking up an inherited page attribute would loop: pdf-extract
/// climbs `/Parent` references recursively until it finds `/Resources` or `/MediaBox`, so a
/// cycle in the page tree (without the attribute) recurses until the stack overflows.
fn parent_cycle(document: &Document, page_id: ObjectId) -> Option<String> {
    for key in [b"Resources".as_slice(), b"MediaBox".as_slice()] {
        let mut visited = vec![page_id];
        let mut node = document.get_dictionary(page_id).ok()?;
        while node.get(key).is_err() {
            let Ok(parent_id) = node.get(b"Parent").and_then(Object::as_reference) else {
                break;
            };
            if visited.contains(&parent_id) || visited.len() > 256 {
                return Some(format!(
                    "the page tree loops (object {} {} is its own ancestor)",
                    parent_id.0, parent_id.1
                ));
            }
            visited.push(parent_id);
            let Ok(parent) = document.get_dictionary(parent_id) else {
                break;
            };
            node = parent;
        }
    }
    None
}

/// Finds a page's `/Resources`, inherited from the page tree when the page has none.
fn inherited_resources<'a>(document: &'a Document, page: &'a Dictionary) -> Option<&'a Dictionary> {
    let mut node = page;
    for _ in 0..64 {
        if let Some(resources) = resolve_dict(document, node.get(b"Resources").ok()) {
            return Some(resources);
        }
        node = resolve_dict(document, node.get(b"Parent").ok())?;
    }
    None
}

/// Follows a reference (if any) to a dictionary.
fn resolve_dict<'a>(document: &'a Document, object: Option<&'a Object>) -> Option<&'a Dictionary> {
    let (_, object) = document.dereference(object?).ok()?;
    object.as_dict().ok()
}

/// Content streams longer than this are not scanned for hidden text (time bound).
const MAX_SCANNED_CONTENT_BYTES: usize = 8 << 20;

/// Text-showing operators drawn so that a reader cannot see them, by kind.
#[derive(Default)]
struct HiddenRuns {
    invisible: usize,
    tiny: usize,
    white: usize,
    first_page: Option<u32>,
}

/// Looks for text a reader cannot see: render mode 3 (neither filled nor stroked), an
/// effective font size under 1 point (Tf size × text matrix × CTM scale), or a white fill.
/// Invisible text is normal over a scan (OCR layers use it); white or microscopic text in a
/// born-digital document is how prompt injections and keyword stuffing hide. The document is
/// labelled, not rejected: the text is still what the file says.
fn hidden_text(document: &Document, page_ids: &BTreeMap<u32, ObjectId>) -> Option<String> {
    let mut runs = HiddenRuns::default();
    for (page_number, page_id) in page_ids {
        let Ok(content) = document.get_page_content(*page_id) else {
            continue;
        };
        if content.len() > MAX_SCANNED_CONTENT_BYTES {
            continue;
        }
        let Ok(content) = lopdf::content::Content::decode(&content) else {
            continue;
        };
        let before = runs.invisible + runs.tiny + runs.white;
        scan_operations(&content.operations, &mut runs);
        if runs.invisible + runs.tiny + runs.white > before && runs.first_page.is_none() {
            runs.first_page = Some(*page_number);
        }
    }
    let first_page = runs.first_page?;
    let mut kinds = Vec::new();
    if runs.invisible > 0 {
        kinds.push(format!(
            "{} invisible (render mode 3, as OCR text layers use)",
            runs.invisible
        ));
    }
    if runs.tiny > 0 {
        kinds.push(format!("{} in a font under 1 point", runs.tiny));
    }
    if runs.white > 0 {
        kinds.push(format!("{} in white", runs.white));
    }
    Some(format!(
        "text runs a reader may not see: {}; first on page {first_page}",
        kinds.join(", ")
    ))
}

/// Graphics state that matters for visibility (saved by `q`, restored by `Q`).
#[derive(Clone, Copy)]
struct VisibilityState {
    ctm_scale: f32,
    render_mode: i64,
    font_size: f32,
    white_fill: bool,
}

fn scan_operations(operations: &[lopdf::content::Operation], runs: &mut HiddenRuns) {
    let number = |object: &Object| -> Option<f32> {
        match object {
            Object::Integer(value) => Some(*value as f32),
            Object::Real(value) => Some(*value),
            _ => None,
        }
    };
    let scale_of = |operands: &[Object]| -> Option<f32> {
        let values: Vec<f32> = operands.iter().take(4).filter_map(number).collect();
        let [a, b, c, d] = values.as_slice() else {
            return None;
        };
        Some((a * d - b * c).abs().sqrt())
    };
    let mut state = VisibilityState {
        ctm_scale: 1.0,
        render_mode: 0,
        font_size: 12.0,
        white_fill: false,
    };
    let mut saved: Vec<VisibilityState> = Vec::new();
    let mut text_matrix_scale = 1.0f32;
    for operation in operations {
        let operands = operation.operands.as_slice();
        match operation.operator.as_str() {
            "q" if saved.len() < 64 => saved.push(state),
            "Q" => state = saved.pop().unwrap_or(state),
            "cm" => {
                if let Some(scale) = scale_of(operands) {
                    state.ctm_scale *= scale;
                }
            }
            "BT" => text_matrix_scale = 1.0,
            "Tm" => text_matrix_scale = scale_of(operands).unwrap_or(1.0),
            "Tr" => {
                if let Some(Object::Integer(mode)) = operands.first() {
                    state.render_mode = *mode;
                }
            }
            "Tf" => {
                if let Some(size) = operands.get(1).and_then(number) {
                    state.font_size = size;
                }
            }
            "g" => state.white_fill = operands.first().and_then(number) == Some(1.0),
            "rg" => {
                let values: Vec<f32> = operands.iter().filter_map(number).collect();
                state.white_fill = values == [1.0, 1.0, 1.0];
            }
            "k" => {
                let values: Vec<f32> = operands.iter().filter_map(number).collect();
                state.white_fill = values == [0.0, 0.0, 0.0, 0.0];
            }
            "Tj" | "TJ" | "'" | "\"" => {
                let effective_size = (state.font_size * text_matrix_scale * state.ctm_scale).abs();
                if state.render_mode == 3 {
                    runs.invisible += 1;
                } else if effective_size < 1.0 {
                    runs.tiny += 1;
                } else if state.white_fill && state.render_mode == 0 {
                    runs.white += 1;
                }
            }
            _ => {}
        }
    }
}

/// Explains a PDF without text: pages without fonts are images (a scan needing OCR); pages
/// with fonts have text that could not be extracted (broken streams, unusual font encodings).
fn no_text_error(document: &Document, page_numbers: &[u32]) -> Error {
    let pages = document.get_pages();
    let has_fonts = page_numbers.iter().any(|page_number| {
        pages
            .get(page_number)
            .and_then(|page_id| document.get_page_fonts(*page_id).ok())
            .is_some_and(|fonts| !fonts.is_empty())
    });
    if has_fonts {
        Error::NoText {
            reason: "PDF has fonts but no text could be extracted (damaged content streams or \
                     an unsupported font encoding); re-exporting the PDF or OCR may help"
                .to_string(),
        }
    } else {
        Error::NeedsOcr {
            reason:
                "scanned PDF: no text layer, needs OCR (ingest with --ocr, which needs Tesseract)"
                    .to_string(),
        }
    }
}

/// Rebuilds a damaged PDF's cross-reference table: finds every `N G obj` at the start of a
/// line, takes the catalog from the old trailer's `/Root` (else the object with `/Catalog`),
/// and appends a fresh `xref`, `trailer` and `startxref`, as an incremental update would.
/// Returns `None` when no object or no catalog is found, or when the file is encrypted (the
/// encryption dictionary cannot be trusted from a damaged trailer).
fn rebuild_xref(bytes: &[u8]) -> Option<Vec<u8>> {
    // lopdf counts offsets from the `%PDF-` header, wherever junk before it ends.
    let header_start = find(bytes, b"%PDF-")?;
    let body = bytes.get(header_start..)?;
    if find(body, b"/Encrypt").is_some() {
        return None;
    }
    let mut offsets: BTreeMap<u32, (u16, usize)> = BTreeMap::new();
    let mut catalog = None;
    for line_start in line_starts(body) {
        let Some((id, generation, after)) = parse_object_header(body, line_start) else {
            continue;
        };
        offsets.insert(id, (generation, line_start));
        let object_end = find(body.get(after..)?, b"endobj").map_or(body.len(), |end| after + end);
        if body
            .get(after..object_end)
            .is_some_and(|object| find(object, b"/Catalog").is_some())
        {
            catalog = Some((id, generation));
        }
    }
    let root = last_reference_after(body, b"/Root").or(catalog)?;
    let info = last_reference_after(body, b"/Info");
    let size = offsets.keys().next_back()?.checked_add(1)?;
    let mut repaired = bytes.to_vec();
    repaired.push(b'\n');
    let xref_offset = repaired.len() - header_start;
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f\r\n");
    for id in 1..size {
        match offsets.get(&id) {
            Some((generation, offset)) => {
                table.push_str(&format!("{offset:010} {generation:05} n\r\n"))
            }
            None => table.push_str("0000000000 65535 f\r\n"),
        }
    }
    table.push_str(&format!(
        "trailer\n<< /Size {size} /Root {} {} R",
        root.0, root.1
    ));
    if let Some((id, generation)) = info.filter(|(id, _)| offsets.contains_key(id)) {
        table.push_str(&format!(" /Info {id} {generation} R"));
    }
    table.push_str(&format!(" >>\nstartxref\n{xref_offset}\n%%EOF\n"));
    repaired.extend_from_slice(table.as_bytes());
    Some(repaired)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Offsets where a line starts (0 and every byte after `\n` or `\r`).
fn line_starts(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| matches!(byte, b'\n' | b'\r'))
            .map(|(idx, _)| idx + 1),
    )
}

/// Parses `N G obj` at `start` (spaces allowed before it); returns id, generation and the
/// offset just after `obj`.
fn parse_object_header(bytes: &[u8], start: usize) -> Option<(u32, u16, usize)> {
    let mut pos = start;
    let skip_spaces = |pos: &mut usize| {
        while bytes
            .get(*pos)
            .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
        {
            *pos += 1;
        }
    };
    let number = |pos: &mut usize| -> Option<u64> {
        let digits_start = *pos;
        while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
            *pos += 1;
        }
        std::str::from_utf8(bytes.get(digits_start..*pos)?)
            .ok()?
            .parse()
            .ok()
    };
    skip_spaces(&mut pos);
    let id = u32::try_from(number(&mut pos)?).ok()?;
    skip_spaces(&mut pos);
    let generation = u16::try_from(number(&mut pos)?).ok()?;
    skip_spaces(&mut pos);
    if bytes.get(pos..pos + 3)? != b"obj" {
        return None;
    }
    let after = pos + 3;
    let is_delimited = bytes
        .get(after)
        .is_none_or(|byte| !byte.is_ascii_alphanumeric());
    (id > 0 && is_delimited).then_some((id, generation, after))
}

/// Finds the last `key N G R` in the file (e.g. the latest trailer's `/Root 1 0 R`).
fn last_reference_after(bytes: &[u8], key: &[u8]) -> Option<(u32, u16)> {
    let key_pos = bytes.windows(key.len()).rposition(|window| window == key)?;
    let after_key = key_pos + key.len();
    let text = std::str::from_utf8(bytes.get(after_key..(after_key + 32).min(bytes.len()))?)
        .ok()
        .or_else(|| {
            let tail = bytes.get(after_key..(after_key + 32).min(bytes.len()))?;
            let valid_len = tail.iter().take_while(|byte| byte.is_ascii()).count();
            std::str::from_utf8(tail.get(..valid_len)?).ok()
        })?;
    let mut parts = text.split_whitespace();
    let id = parts.next()?.parse().ok()?;
    let generation = parts.next()?.parse().ok()?;
    parts
        .next()
        .filter(|reference| reference.starts_with('R'))
        .map(|_| (id, generation))
}

/// True if the document is encrypted and was not decrypted on load (the empty user password
/// did not open it).
fn needs_password(document: &Document) -> bool {
    document.trailer.get(b"Encrypt").is_ok() && document.encryption_state.is_none()
}

/// Tries each configured password; returns the document and which password (from 1) opened
/// it. lopdf checks each against both the user and the owner password.
fn open_with_passwords(bytes: &[u8], passwords: &PdfPasswords) -> Result<(Document, usize)> {
    for (index, password) in passwords.0.iter().enumerate() {
        if let Ok(document) =
            Document::load_mem_with_options(bytes, LoadOptions::with_password(password))
        {
            if !needs_password(&document) {
                return Ok((document, index + 1));
            }
        }
    }
    Err(Error::Encrypted {
        reason: format!(
            "PDF is encrypted and none of the {} configured passwords opens it",
            passwords.0.len()
        ),
    })
}

/// Maps a lopdf load error to ours: decryption failures are [`Error::Encrypted`], the rest
/// [`Error::Malformed`].
fn load_error(err: lopdf::Error) -> Error {
    match err {
        lopdf::Error::Decryption(detail) => Error::Encrypted {
            reason: format!("PDF is encrypted and cannot be opened: {detail}"),
        },
        lopdf::Error::InvalidPassword => Error::Encrypted {
            reason: "PDF is encrypted and does not open without a password; remove the protection \
                 and ingest it again"
                .to_string(),
        },
        other => Error::Malformed {
            format: Format::Pdf,
            reason: other.to_string(),
        },
    }
}

/// Reads the document information dictionary (title, author, subject, dates, producer).
fn info_metadata(document: &Document) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    let info = document
        .trailer
        .get(b"Info")
        .and_then(|info| document.dereference(info))
        .and_then(|(_, info)| info.as_dict());
    let Ok(info) = info else {
        return metadata;
    };
    const FIELDS: &[(&[u8], &str)] = &[
        (b"Title", "title"),
        (b"Author", "author"),
        (b"Subject", "subject"),
        (b"Keywords", "keywords"),
        (b"CreationDate", "created"),
        (b"ModDate", "modified"),
        (b"Producer", "producer"),
    ];
    for (key, name) in FIELDS {
        let value = info
            .get(key)
            .and_then(|value| document.dereference(value))
            .ok()
            .and_then(|(_, value)| match value {
                Object::String(..) => lopdf::decode_text_string(value).ok(),
                _ => None,
            });
        if let Some(value) = value.map(|value| value.trim().replace('\0', "")) {
            if !value.is_empty() {
                metadata.insert((*name).to_string(), value);
            }
        }
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_WITHOUT_XREF: &str = "%PDF-1.4\n\
1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n\
3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
/Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n\
4 0 obj\n<< /Length 45 >>\nstream\nBT /F1 24 Tf 72 700 Td (Hello repaired) Tj ET\nendstream\nendobj\n\
5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n\
trailer\n<< /Size 6 /Root 1 0 R >>\n%%EOF\n";

    #[test]
    fn pdf_without_xref_is_repaired() {
        let document = extract_pdf(
            HELLO_WITHOUT_XREF.as_bytes(),
            &ExtractLimits::default(),
            &PdfPasswords::default(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(document.pages.len(), 1);
        assert!(
            document.pages[0].contains("Hello repaired"),
            "{:?}",
            document.pages
        );
    }

    #[test]
    fn hidden_text_is_labelled() {
        let content = "BT /F1 24 Tf 72 700 Td (Visible) Tj ET \
            BT 1 1 1 rg /F1 12 Tf 72 650 Td (White words) Tj ET \
            BT 0 g /F1 0.5 Tf 72 600 Td (Tiny words) Tj ET \
            BT 3 Tr /F1 12 Tf 72 550 Td (Invisible words) Tj ET \
            BT 0 Tr /F1 1 Tf 12 0 0 12 72 500 Tm (Scaled normal words) Tj ET";
        let pdf = HELLO_WITHOUT_XREF
            .replace(
                "<< /Length 45 >>",
                &format!("<< /Length {} >>", content.len()),
            )
            .replace("BT /F1 24 Tf 72 700 Td (Hello repaired) Tj ET", content);
        let document = extract_pdf(
            pdf.as_bytes(),
            &ExtractLimits::default(),
            &PdfPasswords::default(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let label = document
            .metadata
            .get("hidden_text")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            label,
            "text runs a reader may not see: 1 invisible (render mode 3, as OCR text layers \
             use), 1 in a font under 1 point, 1 in white; first on page 1"
        );
        let plain = extract_pdf(
            HELLO_WITHOUT_XREF.as_bytes(),
            &ExtractLimits::default(),
            &PdfPasswords::default(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert!(!plain.metadata.contains_key("hidden_text"));
    }

    #[test]
    fn self_drawing_form_xobject_is_refused_not_followed() {
        let pdf = HELLO_WITHOUT_XREF
            .replace(
                "/Resources << /Font << /F1 5 0 R >> >>",
                "/Resources << /Font << /F1 5 0 R >> /XObject << /X1 6 0 R >> >>",
            )
            .replace(
                "trailer",
                "6 0 obj\n<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Length 6 >>\nstream\n/X1 Do\nendstream\nendobj\ntrailer",
            );
        let result = extract_pdf(
            pdf.as_bytes(),
            &ExtractLimits::default(),
            &PdfPasswords::default(),
        );
        match result {
            Err(Error::Malformed { reason, .. }) => assert!(reason.contains("cycle"), "{reason}"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn page_that_is_its_own_parent_is_refused_not_followed() {
        let pdf = HELLO_WITHOUT_XREF.replace(
            "/Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
/Resources << /Font << /F1 5 0 R >> >>",
            "/Type /Page /Parent 3 0 R /Contents 4 0 R",
        );
        assert!(pdf.contains("/Parent 3 0 R"));
        let result = extract_pdf(
            pdf.as_bytes(),
            &ExtractLimits::default(),
            &PdfPasswords::default(),
        );
        match result {
            Err(Error::Malformed { reason, .. }) => assert!(reason.contains("loops"), "{reason}"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn garbage_after_header_is_malformed_not_repaired() {
        let result = extract_pdf(
            b"%PDF-1.7\nnothing here\n%%EOF",
            &ExtractLimits::default(),
            &PdfPasswords::default(),
        );
        assert!(matches!(result, Err(Error::Malformed { .. })), "{result:?}");
    }
}
