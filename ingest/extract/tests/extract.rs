//! Extraction on real third-party files from `shared/corpora` and on hostile inputs generated
//! here (zip bomb, billion laughs, wrong extensions, odd encodings).
//!
//! The corpora live at `<workspace root>/../shared/corpora` (or `$VELLUM_SHARED_DIR/corpora`);
//! a missing corpus fails the tests rather than skipping them.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vellum_extract::chunk::{chunk_pages, ChunkOptions};
use vellum_extract::extract::{detect_format, extract, ExtractedDocument, Format};
use vellum_extract::Error;

fn shared_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn corpus_path(relative: &str) -> PathBuf {
    let path = shared_dir().join("corpora").join(relative);
    assert!(
        path.exists(),
        "missing test corpus file {}: the shared corpora must sit at <workspace>/../shared/corpora \
         (or set VELLUM_SHARED_DIR)",
        path.display()
    );
    path
}

fn read_corpus(relative: &str) -> Vec<u8> {
    let path = corpus_path(relative);
    std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn extract_corpus(relative: &str) -> vellum_extract::Result<ExtractedDocument> {
    let name = Path::new(relative)
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string);
    extract(&read_corpus(relative), name.as_deref())
}

fn extract_ok(relative: &str) -> ExtractedDocument {
    extract_corpus(relative).unwrap_or_else(|err| panic!("{relative}: {err}"))
}

/// Collapses all whitespace to single spaces, so texts can be compared across line breaks.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Finds the pages (1-based) whose text contains `phrase`, whitespace-insensitively.
fn pages_containing(document: &ExtractedDocument, phrase: &str) -> Vec<usize> {
    let phrase = squash(phrase);
    document
        .pages
        .iter()
        .enumerate()
        .filter(|(_, page)| squash(page).contains(&phrase))
        .map(|(idx, _)| idx + 1)
        .collect()
}

// --- PDF -------------------------------------------------------------------------------------

/// The page numbers below were checked independently with poppler's `pdftotext -f N -l N`.
#[test]
fn cuad_contract_pdf_keeps_clauses_on_their_pages() {
    let document = extract_ok(
        "legal-cuad-contracts/pdf/CORALGOLDRESOURCES,LTD_05_28_2020-EX-4.1-CONSULTING AGREEMENT.PDF",
    );
    assert_eq!(document.format, Format::Pdf);
    assert_eq!(document.pages.len(), 11);
    // CUAD's "Governing Law" label for this contract (labels/master_clauses.subset.csv).
    let governing_law = "the Agreement shall be governed by and construed in accordance with the \
                         laws of the Province of British Columbia and the federal laws of Canada";
    assert_eq!(pages_containing(&document, governing_law), vec![8]);
    let change_of_control = "a Change of Control shall be deemed to have occurred when";
    assert_eq!(pages_containing(&document, change_of_control), vec![3]);
}

#[test]
fn cuad_chunks_cite_the_page_of_their_clause() {
    let document = extract_ok(
        "legal-cuad-contracts/pdf/CORALGOLDRESOURCES,LTD_05_28_2020-EX-4.1-CONSULTING AGREEMENT.PDF",
    );
    let chunks = chunk_pages(&document.pages, &ChunkOptions::default());
    let clause =
        "governed by and construed in accordance with the laws of the Province of British Columbia";
    let citing: Vec<u32> = chunks
        .iter()
        .filter(|chunk| chunk.text.contains(clause))
        .map(|chunk| chunk.page)
        .collect();
    assert!(!citing.is_empty(), "no chunk holds the whole clause");
    assert!(citing.iter().all(|page| *page == 8), "{citing:?}");
    let pages: std::collections::BTreeSet<u32> = chunks.iter().map(|chunk| chunk.page).collect();
    assert_eq!(
        pages.len(),
        11,
        "every page has text, so every page has chunks"
    );
}

#[test]
fn cuad_pdf_text_matches_the_atticus_text() {
    // The Atticus TXT is the same contract's text; most of its words must come out of the PDF.
    let stem = "CORALGOLDRESOURCES,LTD_05_28_2020-EX-4.1-CONSULTING AGREEMENT";
    let document = extract_ok(&format!("legal-cuad-contracts/pdf/{stem}.PDF"));
    let reference = String::from_utf8_lossy(&read_corpus(&format!(
        "legal-cuad-contracts/txt/{stem}.txt"
    )))
    .into_owned();
    let extracted: std::collections::HashSet<String> = document
        .pages
        .iter()
        .flat_map(|page| page.split_whitespace())
        .map(str::to_lowercase)
        .collect();
    let reference_words: Vec<String> = reference
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let found = reference_words
        .iter()
        .filter(|word| extracted.contains(*word))
        .count();
    let recall = found as f64 / reference_words.len().max(1) as f64;
    assert!(
        recall > 0.95,
        "only {recall:.3} of the Atticus words were extracted"
    );
}

#[test]
fn password_protected_pdfs_are_reported_as_encrypted() {
    for file in [
        "pdf-pypdf-resources/encryption/r2-user-password.pdf",
        "pdf-pypdf-resources/encryption/r3-user-password.pdf",
        "pdf-pypdf-resources/encryption/r4-aes-user-password.pdf",
        "pdf-pypdf-resources/crazyones-encrypted-256.pdf",
        "pdf-pypdf-resources/encrypted-file.pdf",
        "pdf-format-corpus-malformed/pdfCabinetOfHorrors/encryption_openpassword.pdf",
    ] {
        let result = extract_corpus(file);
        assert!(
            matches!(result, Err(Error::Encrypted { .. })),
            "{file}: {result:?}"
        );
    }
}

#[test]
fn pdfs_protected_only_by_an_owner_password_are_read() {
    // passwords.json: these open with an empty user password (permission flags only).
    for file in [
        "pdf-pypdf-resources/encryption/r2-owner-password.pdf",
        "pdf-pypdf-resources/encryption/r6-owner-password.pdf",
    ] {
        let document = extract_ok(file);
        assert!(!squash(&document.pages.join(" ")).is_empty(), "{file}");
    }
    let document = extract_ok("pdf-pypdf-resources/encryption/r4-owner-password.pdf");
    assert!(squash(&document.pages[0]).contains("pdf encryption test"));
}

#[test]
fn malformed_pdfs_are_errors_not_panics() {
    for file in [
        "pdf-format-corpus-malformed/pdf-handbuilt-test-corpus/T02-01_001_document-catalog-No-document-catalog.pdf",
        "pdf-format-corpus-malformed/pdf-handbuilt-test-corpus/T02-02_002_page-tree-kids-links-recursive.pdf",
        "pdf-pdfjs-subset/operator_list_cycle.pdf",
        "pdf-pdfjs-subset/poppler-742-0-fuzzed.pdf",
        "pdf-pdfjs-subset/GHOSTSCRIPT-698804-1-fuzzed.pdf",
    ] {
        let result = catch_unwind(|| extract_corpus(file));
        match result {
            Ok(Err(Error::Malformed { format, reason })) => {
                assert_eq!(format, Format::Pdf, "{file}");
                assert!(!reason.is_empty(), "{file}");
            }
            Ok(other) => panic!("{file}: expected Malformed, got {other:?}"),
            Err(_) => panic!("{file}: extract panicked"),
        }
    }
}

#[test]
fn damaged_cross_reference_table_is_rebuilt() {
    // One byte is missing, so every xref offset after it is wrong; poppler reconstructs it.
    let document =
        extract_ok("pdf-format-corpus-malformed/pdfCabinetOfHorrors/corruptionOneByteMissing.pdf");
    assert!(
        squash(&document.pages[0]).contains("This is a test document. It only contains some text.")
    );
}

#[test]
fn form_xobject_cycle_is_refused_instead_of_overflowing_the_stack() {
    // pdf-extract would recurse through this cycle until the stack overflows (an abort).
    match extract_corpus("pdf-pdfminer-samples/contrib/issue-1113-evil-xobjects.pdf") {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("cycle"), "{reason}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn scanned_pdf_needs_ocr() {
    for file in [
        "legal-court-documents-freelaw/image-pdf.pdf",
        "legal-court-documents-freelaw/image-pdf-2.pdf",
    ] {
        match extract_corpus(file) {
            Err(Error::NeedsOcr { reason }) => assert!(reason.contains("OCR"), "{file}: {reason}"),
            other => panic!("{file}: expected NeedsOcr, got {other:?}"),
        }
    }
}

#[test]
fn empty_file_with_pdf_name_has_no_text() {
    let result = extract_corpus("legal-court-documents-freelaw/empty.pdf");
    assert!(matches!(result, Err(Error::NoText { .. })), "{result:?}");
}

#[test]
fn junk_before_the_pdf_header_is_tolerated() {
    let document = extract_ok("legal-court-documents-freelaw/broken-mime.pdf");
    assert!(document.pages.len() > 1);
}

// --- DOCX ------------------------------------------------------------------------------------

#[test]
fn docx_rendered_page_breaks_become_pages() {
    let document = extract_ok("docx-python-docx/features/par-rendered-page-breaks.docx");
    assert_eq!(document.format, Format::Docx);
    let pages: Vec<String> = document.pages.iter().map(|page| squash(page)).collect();
    assert_eq!(
        pages,
        vec![
            "No page breaks Page break here>>",
            "<<followed by more text. Page break in>>",
            "<<this hyperlink and another one here>>",
            "<<with text following Two page>>",
            "<<breaks>>",
            "<<in one run.",
        ]
    );
    assert_eq!(
        document.metadata.get("author").map(String::as_str),
        Some("Steve Canny")
    );
}

#[test]
fn docx_paragraphs_and_headings() {
    let document = extract_ok("docx-python-docx/features/par-known-paragraphs.docx");
    assert_eq!(document.pages.len(), 1);
    assert_eq!(document.pages[0], "Heading Paragraph\n\nNormal paragraph");
}

#[test]
fn docx_external_entity_is_not_resolved() {
    // word/document.xml declares <!ENTITY testent SYSTEM "http://poi.apache.org/">.
    match extract_corpus("docx-apache-poi-subset/ExternalEntityInText.docx") {
        Ok(document) => {
            let text = document.pages.join("\n");
            assert!(
                !text.contains("<html"),
                "external entity content leaked: {text}"
            );
        }
        Err(err) => assert!(!matches!(err, Error::Panicked { .. }), "{err}"),
    }
}

#[test]
fn zip_that_is_not_a_docx_is_unsupported() {
    for file in ["docx-mammoth/hello.zip", "docx-mammoth/empty.zip"] {
        // Renamed to .docx, as the brief for these samples says: detection must not trust names.
        let result = extract(&read_corpus(file), Some("renamed.docx"));
        match result {
            Err(Error::Unsupported { reason }) => assert!(
                reason.contains("not a DOCX") || reason.contains("zip"),
                "{file}: {reason}"
            ),
            other => panic!("{file}: expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn legacy_doc_is_unsupported_with_advice() {
    let legacy_dir = corpus_path("docx-apache-poi-subset/legacy-doc");
    let mut num_checked = 0;
    for entry in std::fs::read_dir(&legacy_dir).unwrap_or_else(|err| panic!("{err}")) {
        let path = entry.map(|entry| entry.path()).unwrap_or_default();
        if path.extension().and_then(|ext| ext.to_str()) != Some("doc") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        match extract(&bytes, path.file_name().and_then(|name| name.to_str())) {
            Err(Error::Unsupported { reason }) => {
                assert!(reason.contains("legacy"), "{}: {reason}", path.display())
            }
            other => panic!("{}: expected Unsupported, got {other:?}", path.display()),
        }
        num_checked += 1;
    }
    assert!(num_checked >= 10, "only {num_checked} .doc files found");
}

#[test]
fn encrypted_docx_is_reported_as_encrypted() {
    let result = extract_corpus("docx-apache-poi-subset/bug53475-password-is-pass.docx");
    assert!(matches!(result, Err(Error::Encrypted { .. })), "{result:?}");
}

#[test]
fn docx_that_is_not_a_zip_is_an_error() {
    for file in [
        "docx-apache-poi-subset/clusterfuzz-testcase-minimized-POIXWPFFuzzer-4791943399604224.docx",
        "docx-apache-poi-subset/clusterfuzz-testcase-minimized-POIXWPFFuzzer-5564805011079168.docx",
        "docx-apache-poi-subset/zero-length.docx",
    ] {
        let result = catch_unwind(|| extract_corpus(file));
        assert!(matches!(result, Ok(Err(_))), "{file}: {result:?}");
    }
}

// --- HTML ------------------------------------------------------------------------------------

#[test]
fn readability_page_drops_navigation_and_scripts() {
    let document = extract_ok("html-readability-pages/001/source.html");
    assert_eq!(document.format, Format::Html);
    assert_eq!(
        document.title.as_deref(),
        Some("Get your Frontend JavaScript Code Covered | Code | Nicolas Perriault")
    );
    let text = squash(&document.pages[0]);
    // Both strings are the text of the page's <nav> elements.
    assert!(!text.contains("Home Code Photography Talks"), "{text}");
    assert!(!text.contains("Functional JavaScript for crawling the Web"));
    let scripts = extract_ok("html-readability-pages/remove-script-tags/source.html");
    let script_text = squash(&scripts.pages[0]);
    assert!(!script_text.contains("alert"), "{script_text}");
    assert!(!script_text.contains("super wrong"));
    assert!(script_text.contains("Excepteur sint occaecat cupidatat non proident"));
}

/// Reduces an HTML fragment to its words, without our extractor (a plain tag stripper).
fn words_of_markup(markup: &str) -> Vec<String> {
    let mut text = String::new();
    let mut in_tag = false;
    for c in markup.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&nbsp;", " ")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn readability_pages_keep_the_expected_main_text() {
    let root = corpus_path("html-readability-pages");
    let mut recalls = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("{err}"))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("source.html").exists())
        .collect();
    dirs.sort();
    for dir in &dirs {
        let source = std::fs::read(dir.join("source.html")).unwrap_or_default();
        let expected = std::fs::read_to_string(dir.join("expected.html")).unwrap_or_default();
        let document = extract(&source, Some("source.html"))
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
        let got: std::collections::HashSet<String> = words_of_markup(&document.pages.join(" "))
            .into_iter()
            .collect();
        let expected_words = words_of_markup(&expected);
        let found = expected_words
            .iter()
            .filter(|word| got.contains(*word))
            .count();
        recalls.push(found as f64 / expected_words.len().max(1) as f64);
    }
    let mean_recall = recalls.iter().sum::<f64>() / recalls.len().max(1) as f64;
    eprintln!(
        "readability pages: {} compared, mean recall of expected words {mean_recall:.3}",
        recalls.len()
    );
    assert!(recalls.len() >= 50);
    assert!(mean_recall > 0.95, "mean recall {mean_recall:.3}");
}

// --- E-mail ----------------------------------------------------------------------------------

#[test]
fn pacer_notice_gives_headers_and_body() {
    let document = extract_ok("email-court-notices-pacer/nef/almd_3_plain.eml");
    assert_eq!(document.format, Format::Email);
    assert_eq!(
        document.title.as_deref(),
        Some("Activity in Case 1:17-cr-00201-ABJ USA v. MANAFORT et al Status Report")
    );
    assert_eq!(
        document.metadata.get("from").map(String::as_str),
        Some("DCD_ECFNotice@dcd.uscourts.gov")
    );
    assert_eq!(
        document.metadata.get("date").map(String::as_str),
        Some("2019-03-15T09:52:59-04:00")
    );
    let body = squash(&document.pages[0]);
    assert!(body.contains("Notice of Electronic Filing"));
    // From the expected parse (almd_3_plain.json): the docket entry's description.
    assert!(body.contains("Joint STATUS REPORT"));
    assert!(body.contains("as to RICHARD W. GATES, III (Weissmann, Andrew)"));
}

#[test]
fn pacer_notices_match_their_expected_parse() {
    let nef_dir = corpus_path("email-court-notices-pacer/nef");
    let mut num_checked = 0;
    let mut num_addresses = 0usize;
    let mut missing = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&nef_dir)
        .unwrap_or_else(|err| panic!("{err}"))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().and_then(|ext| ext.to_str()) == Some("eml"))
        .collect();
    paths.sort();
    for path in paths {
        let expected: serde_json::Value = std::fs::read(path.with_extension("json"))
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .unwrap_or_else(|| panic!("{}: no expected JSON", path.display()));
        let bytes = std::fs::read(&path).unwrap_or_default();
        let document = extract(&bytes, path.file_name().and_then(|name| name.to_str()))
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(document.format, Format::Email, "{}", path.display());
        assert!(
            document.metadata.contains_key("subject"),
            "{}",
            path.display()
        );
        assert!(document.metadata.contains_key("from"), "{}", path.display());
        let all_text = squash(&format!(
            "{} {}",
            document.title.clone().unwrap_or_default(),
            document.pages.join(" ")
        ));
        let recipients = expected["email_recipients"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let lowered = all_text.to_lowercase();
        for recipient in recipients {
            for address in recipient["email_addresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let address = address.as_str().unwrap_or_default().to_lowercase();
                num_addresses += 1;
                if !lowered.contains(&address) {
                    missing.push(format!("{}: {address}", path.display()));
                }
            }
        }
        num_checked += 1;
    }
    assert!(num_checked >= 30, "only {num_checked} notices checked");
    // The expected parses are juriscraper's and carry a few of its own slips (an address glued
    // to the next name, "tmiller@fridayfirm.comJosh"), so a small share may not match.
    assert!(
        missing.len() * 50 <= num_addresses,
        "{} of {num_addresses} recipient addresses missing: {missing:#?}",
        missing.len()
    );
}

#[test]
fn mbox_style_message_with_from_line_is_an_email() {
    let document = extract_ok("email-spamassassin-testdata/nice/001");
    assert_eq!(document.format, Format::Email);
    assert!(document.metadata.contains_key("from"));
}

#[test]
fn mbox_gives_one_page_per_message() {
    let document = extract_ok("email-spamassassin-testdata/nice.mbox");
    assert_eq!(document.format, Format::Email);
    assert_eq!(document.pages.len(), 3);
    assert_eq!(
        document.metadata.get("messages").map(String::as_str),
        Some("3")
    );
    assert!(document.pages[2].contains("Subject: Wine release 20020904"));
}

#[test]
fn cjk_charsets_are_decoded() {
    let document = extract_ok("email-spamassassin-testdata/nice/cjk/gb2312.2");
    assert_eq!(document.title.as_deref(), Some("RE: 装硬碟问题"));
}

#[test]
fn malformed_emails_do_not_crash() {
    let dir = corpus_path("email-mail-parser-fixtures/malformed");
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{err}")) {
        let path = entry.map(|entry| entry.path()).unwrap_or_default();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let result = catch_unwind(AssertUnwindSafe(|| extract(&bytes, None)));
        assert!(result.is_ok(), "{} panicked", path.display());
    }
}

// --- Generated hostile inputs ----------------------------------------------------------------

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap_or_else(|err| panic!("{err}"));
        writer
            .write_all(content)
            .unwrap_or_else(|err| panic!("{err}"));
    }
    writer
        .finish()
        .map(Cursor::into_inner)
        .unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn zip_bomb_docx_is_refused_before_inflating() {
    // 600 MiB of spaces deflate to well under a megabyte; the default limit is 512 MiB.
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().large_file(true);
    writer
        .start_file("word/document.xml", options)
        .unwrap_or_else(|err| panic!("{err}"));
    let block = vec![b' '; 1 << 20];
    for _ in 0..600 {
        writer
            .write_all(&block)
            .unwrap_or_else(|err| panic!("{err}"));
    }
    let bytes = writer
        .finish()
        .map(Cursor::into_inner)
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(bytes.len() < 8 << 20, "bomb is {} bytes", bytes.len());
    let result = extract(&bytes, Some("bomb.docx"));
    assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
}

#[test]
fn billion_laughs_docx_is_not_expanded() {
    let mut dtd = String::from("<!DOCTYPE w:document [<!ENTITY lol \"lol\">");
    for level in 1..10 {
        let previous = if level == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", level - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{level} \"{}\">",
            format!("&{previous};").repeat(10)
        ));
    }
    dtd.push(']');
    dtd.push('>');
    let xml = format!(
        "<?xml version=\"1.0\"?>{dtd}<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>Safe &lol9; text</w:t></w:r></w:p></w:body></w:document>"
    );
    let bytes = zip_of(&[("word/document.xml", xml.as_bytes())]);
    let document = extract(&bytes, Some("laughs.docx")).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(squash(&document.pages[0]), "Safe text");
}

#[test]
fn zip_entry_names_with_traversal_are_harmless() {
    let body = b"<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>Body</w:t></w:r></w:p></w:body></w:document>";
    let bytes = zip_of(&[
        ("../../evil.txt", b"evil".as_slice()),
        ("/etc/evil.txt", b"evil".as_slice()),
        ("word/document.xml", body.as_slice()),
    ]);
    let document = extract(&bytes, Some("traversal.docx")).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(document.pages, vec!["Body".to_string()]);
}

#[test]
fn formats_are_detected_by_content_not_extension() {
    let pdf = read_corpus("pdf-pypdf-resources/encryption/unencrypted.pdf");
    assert_eq!(
        detect_format(&pdf, Some("report.docx")).ok(),
        Some(Format::Pdf)
    );
    let docx = read_corpus("docx-python-docx/features/par-known-paragraphs.docx");
    assert_eq!(
        detect_format(&docx, Some("report.pdf")).ok(),
        Some(Format::Docx)
    );
    let html = read_corpus("html-readability-pages/001/source.html");
    assert_eq!(
        detect_format(&html, Some("message.eml")).ok(),
        Some(Format::Html)
    );
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    assert!(matches!(
        detect_format(png, Some("notes.txt")),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn text_encodings_and_line_endings() {
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "Zeile eins\r\nZeile zwei – Ende"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    let document = extract(&utf16, Some("utf16.txt")).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        document.pages,
        vec!["Zeile eins\nZeile zwei – Ende".to_string()]
    );
    let cr_only = extract(b"one\rtwo\rthree", None).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(cr_only.pages, vec!["one\ntwo\nthree".to_string()]);
    let long_line = "word ".repeat(2_000_000);
    let long = extract(long_line.as_bytes(), None).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(long.pages.len(), 1);
    let nul = extract(b"text with\0 a NUL", Some("x.txt"));
    assert!(matches!(nul, Err(Error::Unsupported { .. })), "{nul:?}");
}

#[test]
fn markdown_by_name_and_form_feeds_split_pages() {
    let document = extract(b"# Handbook\n\nIntro.\x0cSecond page.", Some("guide.md"))
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(document.format, Format::Markdown);
    assert_eq!(document.title.as_deref(), Some("Handbook"));
    assert_eq!(document.pages.len(), 2);
    assert_eq!(document.pages[1], "Second page.");
}

// --- Every corpus file -----------------------------------------------------------------------

fn all_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            all_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// Runs extraction over every file of the shared corpora. Extraction must never panic (parser
/// panics become `Error::Panicked`); each file runs on its own thread so that a file that makes
/// a parser loop is reported instead of blocking the suite (extraction has no timeout of its
/// own; the pipeline isolates it). Prints counts per detected format and the slowest files.
#[test]
fn every_corpus_file_extracts_or_fails_cleanly() {
    const HANG_REPORT_AFTER: Duration = Duration::from_secs(120);
    let mut files = Vec::new();
    all_files(&shared_dir().join("corpora"), &mut files);
    assert!(
        files.len() > 2000,
        "only {} corpus files found",
        files.len()
    );

    let mut outcomes: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut escaped_panics = Vec::new();
    let mut unfinished = Vec::new();
    let mut timings: Vec<(Duration, PathBuf)> = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_default();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .map(str::to_string);
        let group = match detect_format(&bytes, name.as_deref()) {
            Ok(format) => format.as_str().to_string(),
            Err(err) => format!("(undetected: {})", err.kind()),
        };
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| extract(&bytes, name.as_deref())));
            // The receiver is gone only if the file was reported as unfinished.
            let _ = sender.send((
                outcome.map(|result| result.map_err(|err| err.kind())),
                started.elapsed(),
            ));
        });
        match receiver.recv_timeout(HANG_REPORT_AFTER) {
            Ok((Ok(result), elapsed)) => {
                timings.push((elapsed, path.clone()));
                let label = match result {
                    Ok(_) => "ok",
                    Err(kind) => kind,
                };
                *outcomes.entry(group).or_default().entry(label).or_default() += 1;
            }
            Ok((Err(_), _)) => escaped_panics.push(path.clone()),
            Err(_) => unfinished.push(path.clone()),
        }
    }

    timings.sort();
    eprintln!("extraction over {} corpus files:", files.len());
    for (group, counts) in &outcomes {
        eprintln!("  {group:<32} {counts:?}");
    }
    for (elapsed, path) in timings.iter().rev().take(5) {
        eprintln!("  slow: {elapsed:?} {}", path.display());
    }
    for path in &unfinished {
        eprintln!(
            "  UNFINISHED after {HANG_REPORT_AFTER:?}: {}",
            path.display()
        );
    }
    assert!(
        escaped_panics.is_empty(),
        "extract panicked (catch_unwind must turn panics into errors): {escaped_panics:?}"
    );
    for format in ["pdf", "docx", "html", "email", "text", "markdown"] {
        let num_ok = outcomes
            .get(format)
            .and_then(|counts| counts.get("ok"))
            .copied()
            .unwrap_or(0);
        assert!(num_ok > 0, "no {format} file was extracted");
    }
}

// --- C-CDA clinical documents ------------------------------------------------------------------

#[test]
fn ccda_sections_become_titled_pages() {
    let document = extract_ok("medical-ccda-smart-samples/EMERGE/Patient-142.xml");
    assert_eq!(document.format, Format::Ccda);
    assert_eq!(
        document.title.as_deref(),
        Some("Community Health and Hospitals: Health Summary")
    );
    assert_eq!(
        document.metadata.get("patient").map(String::as_str),
        Some("Betty Ortiz")
    );
    assert!(
        document.pages[0].starts_with("Allergies, Adverse Reactions & Alerts\n\n"),
        "{}",
        document.pages[0]
    );
    assert!(document.pages[0].contains("Penicillin V | NDF-RT | N0000011298"));
    // The coded entries (for machines) are not indexed, only the narrative.
    assert!(!document.pages.join("\n").contains("2.16.840.1.113883"));
}

#[test]
fn every_smart_ccda_sample_gives_narrative_sections() {
    let mut files = Vec::new();
    all_files(
        &shared_dir().join("corpora/medical-ccda-smart-samples"),
        &mut files,
    );
    let samples: Vec<PathBuf> = files
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    assert!(samples.len() >= 30, "{} samples", samples.len());
    for path in &samples {
        let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let document =
            extract(&bytes, None).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(document.format, Format::Ccda, "{}", path.display());
        assert!(
            document.pages.iter().all(|page| !page.trim().is_empty()),
            "{}: empty section page",
            path.display()
        );
    }
}

// --- Encrypted PDFs and the password list ------------------------------------------------------

#[test]
fn configured_passwords_open_encrypted_pdfs() {
    use vellum_extract::extract::{extract_with_passwords, ExtractLimits, PdfPasswords};
    let passwords = PdfPasswords(vec![
        "wrong".to_string(),
        "asdfzxcv".to_string(),
        "test".to_string(),
        "password".to_string(),
        "abc".to_string(),
    ]);
    // passwords.json of each corpus folder gives the user passwords.
    for (file, index, phrase) in [
        (
            "pdf-pypdf-resources/encryption/r2-user-password.pdf",
            2,
            "pdf encryption test",
        ),
        (
            "pdf-pypdf-resources/encryption/r3-user-password.pdf",
            2,
            "pdf encryption test",
        ),
        (
            "pdf-pypdf-resources/encryption/r4-aes-user-password.pdf",
            2,
            "pdf encryption test",
        ),
        ("pdf-pypdf-resources/encrypted-file.pdf", 3, ""),
        (
            "pdf-pypdf-resources/crazyones-encrypted-256.pdf",
            4,
            "crazy",
        ),
        // Not here: pdf-pdfjs-subset/issue6010_1.pdf, whose password "abc" lopdf 0.42 does not
        // accept (pdf.js and poppler do); it stays quarantined as encrypted.
    ] {
        let bytes = read_corpus(file);
        let document =
            extract_with_passwords(&bytes, Some("x.pdf"), &ExtractLimits::default(), &passwords)
                .unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(
            document.metadata.get("opened_with").map(String::as_str),
            Some(format!("configured PDF password #{index}").as_str()),
            "{file}"
        );
        let text = squash(&document.pages.join(" ")).to_lowercase();
        assert!(!text.is_empty() && text.contains(phrase), "{file}: {text}");
    }
    // Without the right password: encrypted, and the reason says what to do.
    let bytes = read_corpus("pdf-pypdf-resources/encrypted-file.pdf");
    let wrong = PdfPasswords(vec!["nope".to_string()]);
    match extract_with_passwords(&bytes, None, &ExtractLimits::default(), &wrong) {
        Err(Error::Encrypted { reason }) => {
            assert!(
                reason.contains("none of the 1 configured passwords"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    match extract(&bytes, None) {
        Err(Error::Encrypted { reason }) => {
            assert!(reason.contains("no password configured"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Debug output never shows a password.
    assert_eq!(format!("{passwords:?}"), "PdfPasswords(5 redacted)");
}
