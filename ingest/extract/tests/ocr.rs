//! OCR of a real scanned court opinion (FreeLaw's image-only PDF) with the installed
//! Tesseract. `deploy/setup.sh` installs tesseract-ocr and poppler-utils, so a missing one is a
//! set-up failure, not a reason to skip.

use std::time::Duration;

use vellum_extract::isolate::{Sandbox, SandboxLimits};
use vellum_extract::ocr::{ocr_pdf, ocr_pdf_sandboxed, tesseract_version, OcrOptions};
use vellum_extract::Error;

mod common;
use common::corpus;

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn worker() -> Sandbox {
    Sandbox::new(
        env!("CARGO_BIN_EXE_vellum-extract-worker"),
        Vec::new(),
        SandboxLimits::default(),
    )
}

fn assert_opinion(pages: &[String]) {
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
fn scanned_opinion_is_read_in_the_sandbox() {
    // pdfinfo, pdftoppm and tesseract each confined by the worker (Landlock, seccomp, rlimits).
    let bytes = corpus("legal-court-documents-freelaw/image-pdf.pdf");
    let pages = ocr_pdf_sandboxed(&bytes, &OcrOptions::default(), &worker())
        .unwrap_or_else(|err| panic!("the sandbox failed: {err}"))
        .unwrap_or_else(|err| panic!("{err}"));
    assert_opinion(&pages.pages);
    // The version is asked of the confined tesseract too (unconfined, Debian's links libldap,
    // which looks the host name up in DNS).
    assert!(pages.engine.starts_with("tesseract"), "{}", pages.engine);
}

#[test]
fn a_non_pdf_fails_in_the_sandbox_with_a_reason() {
    let error = ocr_pdf_sandboxed(b"not a pdf at all", &OcrOptions::default(), &worker())
        .unwrap_or_else(|err| panic!("the sandbox failed: {err}"))
        .expect_err("no pages");
    assert!(error.to_string().contains("OCR failed"), "{error}");
}

#[test]
fn the_whole_document_has_one_deadline() {
    let bytes = corpus("legal-court-documents-freelaw/image-pdf.pdf");
    let options = OcrOptions {
        timeout_total: Duration::from_millis(1),
        ..OcrOptions::default()
    };
    let error = ocr_pdf_sandboxed(&bytes, &options, &worker())
        .unwrap_or_else(|err| panic!("the sandbox failed: {err}"))
        .expect_err("timeout");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
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
    assert_opinion(&pages.pages);
    assert_eq!(Some(pages.engine), version);
}

#[test]
fn a_file_that_is_not_a_pdf_fails_with_a_reason() {
    let error = ocr_pdf(b"not a pdf at all", &OcrOptions::default()).expect_err("no pages");
    assert!(error.to_string().contains("OCR failed"), "{error}");
}
