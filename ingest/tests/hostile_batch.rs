//! One ingest batch over every file of `shared/corpora` (2,233 real files: malformed and
//! encrypted PDFs, clusterfuzz DOCX crashers, broken e-mail, legacy Office files, HTML...) plus
//! the hostile files that `shared/corpora/HOSTILE.md` asks the suite to generate (zip bombs,
//! billion laughs, traversal entries, wrong extensions, 50,000 pages, 100,000 messages, 1 GB,
//! odd encodings, symlink loops, odd names, unreadable files).
//!
//! Extraction runs in the real sandbox (worker processes with limits), the store is the real
//! one. The embedder is a deterministic bag-of-words hash: this test is about extraction and
//! quarantine, and the real model needs 36.5 minutes on 2 cores for these ~58,000 chunks
//! (docs/benchmarks.md). `VELLUM_HOSTILE_REAL_EMBEDDER=1` runs it with the real all-MiniLM-L6-v2 instead
//! (`deploy/hostile-batch.sh`).

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vellum_ingest::isolate::{Sandbox, SandboxLimits};
use vellum_ingest::pipeline::{self, FileOutcome, IngestEvent, IngestOptions, PassageEmbedder};
use vellum_store::{Store, StoreOptions};

const DIM: usize = 64;

/// Hashed bag of words, L2-normalised: deterministic, cheap, and similar texts get similar
/// vectors (enough for the store's invariants; not a model).
struct HashEmbedder;

impl PassageEmbedder for HashEmbedder {
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, vellum_models::Error> {
        Ok(texts
            .iter()
            .map(|text| {
                let mut vector = vec![0f32; DIM];
                for word in text.split_whitespace() {
                    let hash = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    });
                    vector[(hash % DIM as u64) as usize] += 1.0;
                }
                let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
                vector.iter_mut().for_each(|v| *v /= norm);
                vector
            })
            .collect())
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count() * 4 / 3
    }
    fn max_tokens(&self) -> usize {
        256
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The `vellum-extract-worker` binary, built by the workspace build next to this test's
/// `deps/` folder.
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let worker = profile_dir.join("vellum-extract-worker");
    assert!(
        worker.is_file(),
        "{} is missing: build the workspace (`cargo build --release --workspace --all-targets`)",
        worker.display()
    );
    worker
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        writer.write_all(content).expect("zip write");
    }
    writer.finish().expect("zip finish").into_inner()
}

const DOCX_BODY: &[u8] = b"<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>Hostile batch \
    control text</w:t></w:r></w:p></w:body></w:document>";

/// Writes the generated hostile files of HOSTILE.md into `dir`; returns the expected outcome
/// kind of some of them (file name → "indexed" or a quarantine kind).
fn generate_hostile(dir: &Path) -> BTreeMap<String, &'static str> {
    let corpora = shared_dir().join("corpora");
    let mut expected = BTreeMap::new();
    let mut write = |name: &str, bytes: &[u8], outcome: &'static str| {
        std::fs::write(dir.join(name), bytes).expect("write hostile file");
        expected.insert(name.to_string(), outcome);
    };

    // Zip bomb: 1 GiB of spaces deflated to about a megabyte.
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().large_file(true);
    writer
        .start_file("word/document.xml", options)
        .expect("zip entry");
    let block = vec![b' '; 1 << 20];
    for _ in 0..1024 {
        writer.write_all(&block).expect("zip write");
    }
    let bomb = writer.finish().expect("zip finish").into_inner();
    write("zip-bomb.docx", &bomb, "too_large");

    // A zip nested in a zip, eight levels deep, inside a DOCX.
    let mut nested = zip_of(&[("inner.txt", b"deep".as_slice())]);
    for level in 0..8 {
        nested = zip_of(&[(&format!("level{level}.zip"), nested.as_slice())]);
    }
    write(
        "nested-zips.docx",
        &zip_of(&[("word/document.xml", DOCX_BODY), ("nested.zip", &nested)]),
        "indexed",
    );

    // Billion laughs, in a DOCX and in HTML.
    let mut dtd = String::from("<!DOCTYPE d [<!ENTITY lol \"lol\">");
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
    dtd.push_str("]>");
    let laughs_xml = format!(
        "<?xml version=\"1.0\"?>{dtd}<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>Laughs \
         &lol9; here</w:t></w:r></w:p></w:body></w:document>"
    );
    write(
        "billion-laughs.docx",
        &zip_of(&[("word/document.xml", laughs_xml.as_bytes())]),
        "indexed",
    );
    write(
        "billion-laughs.html",
        format!(
            "{dtd}<html><body><p>Laughs &lol9; page with enough words to index.</p></body></html>"
        )
        .as_bytes(),
        "indexed",
    );

    // Traversal and absolute entry names.
    write(
        "traversal.docx",
        &zip_of(&[
            ("../../evil.txt", b"evil".as_slice()),
            ("/tmp/vellum-evil.txt", b"evil".as_slice()),
            ("word/document.xml", DOCX_BODY),
        ]),
        "indexed",
    );

    // Wrong extensions: detection by content.
    let pdf = std::fs::read(corpora.join("pdf-pypdf-resources/encryption/unencrypted.pdf"))
        .expect("corpus pdf");
    write("pdf-named.docx", &pdf, "indexed");
    let docx = std::fs::read(corpora.join("docx-python-docx/features/par-known-paragraphs.docx"))
        .expect("corpus docx");
    write("docx-named.pdf", &docx, "indexed");
    let html = std::fs::read(corpora.join("html-readability-pages/001/source.html")).expect("html");
    write("html-named.eml", &html, "indexed");
    write(
        "png-named.txt",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0",
        "unsupported",
    );

    // Huge counts.
    let mut pages = String::new();
    let mut offsets = Vec::new();
    let mut body = String::from("%PDF-1.4\n");
    let num_pages = 50_000;
    offsets.push(body.len());
    body.push_str("1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
    for page in 0..num_pages {
        pages.push_str(&format!("{} 0 R ", page + 3));
    }
    offsets.push(body.len());
    body.push_str(&format!(
        "2 0 obj << /Type /Pages /Count {num_pages} /Kids [{pages}] >> endobj\n"
    ));
    for page in 0..num_pages {
        offsets.push(body.len());
        body.push_str(&format!(
            "{} 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n",
            page + 3
        ));
    }
    let xref_at = body.len();
    body.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        offsets.len() + 1
    ));
    for offset in &offsets {
        body.push_str(&format!("{offset:010} 00000 n \n"));
    }
    body.push_str(&format!(
        "trailer << /Size {} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
        offsets.len() + 1
    ));
    write("50000-blank-pages.pdf", body.as_bytes(), "too_large");

    let mut mbox = String::new();
    for message in 0..100_000 {
        mbox.push_str(&format!(
            "From sender{message}@example.com Mon Jan  1 00:00:00 2024\nFrom: \
             sender{message}@example.com\nSubject: note {message}\n\nMessage {message}.\n\n"
        ));
    }
    write("100000-messages.mbox", mbox.as_bytes(), "too_large");

    let mut parts = String::from(
        "From: a@example.com\nSubject: many parts\nMIME-Version: 1.0\nContent-Type: \
         multipart/mixed; boundary=\"b\"\n\n",
    );
    for part in 0..2_000 {
        parts.push_str(&format!(
            "--b\nContent-Type: text/plain\n\nPart number {part} of the message.\n"
        ));
    }
    parts.push_str("--b--\n");
    // Inline text parts join the body: bounded by the page and size limits, so indexed.
    write("2000-parts.eml", parts.as_bytes(), "indexed");

    let mut nested_mail = String::new();
    for level in 0..1_000 {
        nested_mail.push_str(&format!(
            "From: a@example.com\nSubject: level {level}\nMIME-Version: 1.0\nContent-Type: \
             multipart/mixed; boundary=\"n{level}\"\n\n--n{level}\nContent-Type: message/rfc822\n\n"
        ));
    }
    nested_mail.push_str("From: a@example.com\nSubject: core\n\nThe innermost message.\n");
    std::fs::write(dir.join("1000-levels.eml"), nested_mail).expect("write");

    // 1 GB of text (sparse: costs no disk), above the 200 MB file limit.
    let huge = std::fs::File::create(dir.join("1gb.txt")).expect("create");
    huge.set_len(1 << 30).expect("set_len");
    expected.insert("1gb.txt".into(), "too_large");

    // Encodings.
    let text = "Encoding test: résumé naïve café, enough words to index.";
    let utf16le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let utf16le_no_bom: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16be_no_bom: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let mut write = |name: &str, bytes: &[u8], outcome: &'static str| {
        std::fs::write(dir.join(name), bytes).expect("write hostile file");
        expected.insert(name.to_string(), outcome);
    };
    write("utf16le-bom.txt", &utf16le, "indexed");
    write("utf16be-bom.txt", &utf16be, "indexed");
    write("utf16le-no-bom.txt", &utf16le_no_bom, "indexed");
    write("utf16be-no-bom.txt", &utf16be_no_bom, "indexed");
    write(
        "invalid-utf8.txt",
        b"Valid start \xC3\x28 invalid \xFF\xFE sequences then valid words again.",
        "indexed",
    );
    write(
        "nul-bytes.txt",
        b"text with\0 NUL\0 bytes inside",
        "unsupported",
    );
    write("cr-only.txt", b"line one\rline two\rline three", "indexed");
    write(
        "10mb-one-line.txt",
        "word ".repeat(2 << 20).as_bytes(),
        "indexed",
    );

    // File-system oddities.
    std::os::unix::fs::symlink("loop-b", dir.join("loop-a")).expect("symlink");
    std::os::unix::fs::symlink("loop-a", dir.join("loop-b")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("outside-link.txt")).expect("symlink");
    write(
        "name\nwith newline.txt",
        b"A file whose name has a newline.",
        "indexed",
    );
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"invalid-\xff-name.txt");
        std::fs::write(dir.join(name), b"A file whose name is not UTF-8.").expect("write");
    }
    let locked = dir.join("mode-000.txt");
    std::fs::write(&locked, b"Nobody may read this.").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000))
            .expect("chmod 000");
    }
    expected
}

#[test]
fn every_corpus_and_hostile_file_is_indexed_or_quarantined_in_one_batch() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let hostile_dir = tmp.path().join("hostile");
    std::fs::create_dir_all(&hostile_dir).expect("hostile dir");
    let expected = generate_hostile(&hostile_dir);
    let vanishing = hostile_dir.join("vanishes-before-reading.txt");
    std::fs::write(&vanishing, b"here when listed, gone when read").expect("write");

    let roots = vec![shared_dir().join("corpora"), hostile_dir.clone()];
    let listing = pipeline::collect_files(&roots).expect("list files");
    std::fs::remove_file(&vanishing).expect("remove");
    assert!(listing.files.len() > 2250, "{} files", listing.files.len());

    let real_embedder = std::env::var_os("VELLUM_HOSTILE_REAL_EMBEDDER").is_some();
    let model;
    let embedder: &dyn PassageEmbedder = if real_embedder {
        let models = std::env::var_os("VELLUM_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
        model = vellum_models::Embedder::load(&models.join("all-MiniLM-L6-v2"))
            .expect("embedding model");
        &model
    } else {
        &HashEmbedder
    };
    let store = Store::open(
        &tmp.path().join("data"),
        StoreOptions {
            embedding_dim: if real_embedder { 384 } else { DIM },
            embedding_model: if real_embedder {
                "all-MiniLM-L6-v2"
            } else {
                "hash"
            }
            .into(),
        },
    )
    .expect("store");
    let options = IngestOptions {
        collection: "everything".into(),
        sandbox: Some(Sandbox::new(
            worker_binary(),
            Vec::new(),
            SandboxLimits {
                timeout: Duration::from_secs(30),
                cpu_seconds: 30,
                memory_bytes: 1 << 30,
            },
        )),
        ..IngestOptions::default()
    };

    let started = Instant::now();
    let mut outcomes: BTreeMap<String, FileOutcome> = BTreeMap::new();
    let summary = pipeline::ingest_files(
        &store,
        embedder,
        &listing.files,
        &roots,
        &options,
        &mut |event| {
            if let IngestEvent::FileDone { path, outcome } = event {
                outcomes.insert(path.to_string(), outcome.clone());
            }
        },
    )
    .expect("the batch completes");
    let seconds = started.elapsed().as_secs_f64();

    // Every file has an outcome: indexed, or quarantined with a reason.
    assert_eq!(outcomes.len(), listing.files.len());
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (path, outcome) in &outcomes {
        let kind = match outcome {
            FileOutcome::Indexed { .. } => "indexed".to_string(),
            FileOutcome::Quarantined { kind, reason } => {
                assert!(
                    reason.len() > 10,
                    "{path}: reason {reason:?} says too little"
                );
                kind.clone()
            }
            other => panic!("{path}: unexpected outcome {other:?} in a fresh store"),
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    // Named expectations for the generated files.
    let mut wrong = Vec::new();
    for (name, want) in &expected {
        let path = hostile_dir.join(name).canonicalize().expect("canonical");
        let outcome = &outcomes[&path.display().to_string()];
        let got = match outcome {
            FileOutcome::Indexed { .. } => "indexed",
            FileOutcome::Quarantined { kind, .. } => kind.as_str(),
            _ => "other",
        };
        if got != *want {
            wrong.push(format!("{name}: expected {want}, got {outcome:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Real files from HOSTILE.md.
    let corpus_outcome = |relative: &str| {
        let path = shared_dir().join("corpora").join(relative);
        let path = path
            .canonicalize()
            .expect("canonical")
            .display()
            .to_string();
        outcomes[&path].clone()
    };
    for (relative, kind, words) in [
        (
            "legal-court-documents-freelaw/image-pdf.pdf",
            "needs_ocr",
            "--ocr",
        ),
        (
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/encryption_openpassword.pdf",
            "encrypted",
            "password",
        ),
        (
            "docx-apache-poi-subset/bug53475-password-is-pass.docx",
            "encrypted",
            "",
        ),
        (
            "legal-court-documents-freelaw/word-perfect.wpd",
            "unsupported",
            "WordPerfect",
        ),
        ("legal-court-documents-freelaw/empty.pdf", "no_text", ""),
    ] {
        match corpus_outcome(relative) {
            FileOutcome::Quarantined { kind: got, reason } => {
                assert_eq!(got, kind, "{relative}: {reason}");
                assert!(reason.contains(words), "{relative}: {reason}");
            }
            other => panic!("{relative}: {other:?}"),
        }
    }
    // The file that vanished between listing and reading.
    let vanished = hostile_dir
        .canonicalize()
        .expect("canonical")
        .join("vanishes-before-reading.txt");
    let outcome = outcomes.get(&vanished.display().to_string());
    assert!(
        matches!(outcome, Some(FileOutcome::Quarantined { kind, reason })
            if kind == "unreadable" && reason.contains("disappeared")),
        "{outcome:?}"
    );
    // Nothing escaped the work folder.
    assert!(!tmp.path().join("evil.txt").exists());
    assert!(!Path::new("/tmp/vellum-evil.txt").exists());

    // The quarantine in the catalog matches the outcomes.
    let quarantine = store
        .list_quarantine(&vellum_store::SearchFilter::default())
        .expect("quarantine");
    assert_eq!(quarantine.len(), summary.quarantined.len());
    let consistency = store.check_consistency().expect("check");
    assert!(consistency.is_consistent(), "{consistency:?}");

    let peak_rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    eprintln!(
        "hostile batch: {} files in {seconds:.1} s ({} embedder), {} chunks, outcomes {by_kind:?}, \
         peak RSS of the ingesting process {} MB (each worker is capped at 1024 MB)",
        outcomes.len(),
        if real_embedder { "real" } else { "hash" },
        summary.num_chunks,
        peak_rss_kb / 1024
    );
}
