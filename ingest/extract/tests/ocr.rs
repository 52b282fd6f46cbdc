//! OCR of a real scanned court opinion (FreeLaw's image-only PDF) with the installed
//! Tesseract. `deploy/setup.sh` installs tesseract-ocr and poppler-utils, so a missing one is a
//! set-up failure, not a reason to skip.

use vellum_extract::ocr::{ocr_pdf, tesseract_version, OcrOptions};

mod common;
use common::corpus;

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn scanned_opinion_is_read_page_by_page() {
    let version = tesseract_version();
    assert!(
        version
            .as_deref()
            .is_some_and(|v| v.starts_with("tesseract")),
        "tesseract is not installed ({version:?}): run deploy/setup.sh"
    );
    let bytes = corpus("legal-court-documents-freelaw/image-pdf.pdf");
    let pages = ocr_pdf(&bytes, &OcrOptions::default()).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(pages.len(), 2);
    let first = squash(&pages[0]);
    for phrase in [
        "SUPREME COURT OF THE UNITED STATES",
        "TARRANT REGIONAL WATER DISTRICT",
        "CERTIORARI TO THE UNITED STATES COURT OF APPEALS",
    ] {
        assert!(first.contains(phrase), "page 1 lacks {phrase:?}: {first}");
    }
    assert!(!squash(&pages[1]).is_empty());
}

#[test]
fn a_file_that_is_not_a_pdf_fails_with_a_reason() {
    let error = ocr_pdf(b"not a pdf at all", &OcrOptions::default()).expect_err("no pages");
    assert!(error.to_string().contains("OCR failed"), "{error}");
}
