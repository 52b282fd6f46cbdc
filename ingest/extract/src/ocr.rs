//! OCR of scanned PDFs (no text layer) with Debian's `pdftoppm` (poppler-utils) and
//! `tesseract` (tesseract-ocr), run as child processes with a wall-clock timeout each.
//!
//! Opt-in (`vellum ingest --ocr`): OCR is slow (seconds per page) and its text is only as good
//! as the scan, so by default a scanned PDF is quarantined as "needs OCR" rather than indexed
//! empty or guessed at. The page images and texts live in a temporary folder that is removed
//! afterwards; nothing is sent anywhere. Tesseract runs single-threaded (`OMP_THREAD_LIMIT=1`):
//! ingest already extracts one file per core.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::extract::normalize_page_text;
use crate::isolate::wait_with_timeout;

/// How to OCR.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    /// Resolution the pages are rendered at (300 is Tesseract's sweet spot).
    pub dpi: u32,
    /// Tesseract language(s), e.g. `eng` or `eng+deu` (the matching tesseract-ocr-* packages
    /// must be installed).
    pub language: String,
    /// Pages OCR'd at most (the first ones); longer scans are cut and say so in the metadata.
    pub max_pages: usize,
    /// Wall-clock limit for rendering one page, and for recognising one page.
    pub timeout_per_page: Duration,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            dpi: 300,
            language: "eng".to_string(),
            max_pages: 500,
            timeout_per_page: Duration::from_secs(60),
        }
    }
}

/// The text of each page of a scanned PDF, page 1 first.
pub fn ocr_pdf(bytes: &[u8], options: &OcrOptions) -> Result<Vec<String>> {
    let work =
        tempfile::tempdir().map_err(|error| failed(format!("no temporary folder: {error}")))?;
    let input = work.path().join("input.pdf");
    std::fs::write(&input, bytes).map_err(|error| failed(format!("cannot write: {error}")))?;
    let max_pages = options.max_pages.max(1);
    let render_timeout = options.timeout_per_page * u32::try_from(max_pages).unwrap_or(u32::MAX);
    let mut render = Command::new("pdftoppm");
    render
        .arg("-r")
        .arg(options.dpi.to_string())
        .args(["-gray", "-png", "-l"])
        .arg(max_pages.to_string())
        .arg(&input)
        .arg(work.path().join("page"));
    run(
        render,
        render_timeout,
        "pdftoppm (Debian package poppler-utils)",
    )?;

    let mut images: Vec<PathBuf> = std::fs::read_dir(work.path())
        .map_err(|error| failed(format!("cannot list rendered pages: {error}")))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    // page-1.png … page-10.png: pdftoppm pads the numbers to the same width, so names sort.
    images.sort();
    if images.is_empty() {
        return Err(failed("pdftoppm rendered no page".into()));
    }
    let mut pages = Vec::with_capacity(images.len());
    for image in &images {
        pages.push(normalize_page_text(&recognise(
            image,
            work.path(),
            options,
        )?));
    }
    Ok(pages)
}

/// Returns the version line of the installed Tesseract, or `None` if it is not installed.
pub fn tesseract_version() -> Option<String> {
    let output = Command::new("tesseract").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines().next().map(|line| line.trim().to_string())
}

fn recognise(image: &Path, work: &Path, options: &OcrOptions) -> Result<String> {
    let stem = image
        .file_stem()
        .map(|stem| work.join(stem))
        .ok_or_else(|| failed("a rendered page has no name".into()))?;
    let mut command = Command::new("tesseract");
    command
        .arg(image)
        .arg(&stem)
        .arg("-l")
        .arg(&options.language)
        .env("OMP_THREAD_LIMIT", "1");
    run(
        command,
        options.timeout_per_page,
        "tesseract (Debian package tesseract-ocr)",
    )?;
    let text_file = stem.with_extension("txt");
    std::fs::read_to_string(&text_file)
        .map_err(|error| failed(format!("tesseract wrote no text: {error}")))
}

fn run(mut command: Command, timeout: Duration, what: &str) -> Result<()> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| {
            failed(format!(
                "cannot run {what}: {error}; install it to OCR scanned PDFs"
            ))
        })?;
    match wait_with_timeout(&mut child, timeout) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(failed(format!("{what} failed ({status})"))),
        Ok(None) => Err(Error::Timeout {
            seconds: timeout.as_secs_f64(),
        }),
        Err(error) => Err(failed(format!("cannot wait for {what}: {error}"))),
    }
}

fn failed(reason: String) -> Error {
    Error::NoText {
        reason: format!("scanned PDF: OCR failed: {reason}"),
    }
}
