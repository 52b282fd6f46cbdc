//! One ingest batch over every file of `shared/corpora` (2,272 real files: malformed and
//! encrypted PDFs, clusterfuzz DOCX crashers, broken e-mail, legacy Office files, HTML...) plus
//! the hostile files that `shared/corpora/HOSTILE.md` asks the suite to generate (zip bombs,
//! billion laughs, traversal entries, wrong extensions, 50,000 pages, 100,000 messages, 1 GB,
//! odd encodings, symlink loops, odd names, unreadable files).
//!
//! Every file belongs to one class: a generated hazard, a hazard row of HOSTILE.md's table of
//! real samples, or else its corpus folder. The test asserts the outcome of every class (the
//! quarantine kind and, for generated files, words of the reason), that no worker hit the
//! wall-clock or CPU limit (`timeout`) except in a class built to hang, and prints the table
//! that docs/benchmarks.md quotes. When an extractor changes on purpose, the failure message
//! prints the whole new table: update the expectations here and the table in the docs together.
//!
//! The unreadable (mode 000) file is only a test when the ingesting process cannot bypass file
//! permissions: as root (CI) the test re-runs itself under `setpriv` without
//! `CAP_DAC_OVERRIDE`/`CAP_DAC_READ_SEARCH`, and it fails if the file is still readable.
//!
//! Extraction runs in the real sandbox (worker processes with limits), the store is the real
//! one. The embedder is a deterministic bag-of-words hash: this test is about extraction and
//! quarantine, and the real model needs 36.5 minutes on 2 cores for these ~58,000 chunks
//! (docs/benchmarks.md). `VELLUM_HOSTILE_REAL_EMBEDDER=1` runs it with the real all-MiniLM-L6-v2
//! instead (`deploy/hostile-batch.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{Cursor, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// A generated hostile file and what must become of it.
struct Generated {
    class: &'static str,
    name: OsString,
    /// `indexed` or the quarantine kind.
    kind: &'static str,
    /// Words the quarantine reason must contain (empty: any reason).
    words: &'static str,
    /// For indexed files: at most this many chunks (billion laughs must not expand).
    max_chunks: Option<u32>,
}

/// Generated classes whose files are not listed at all (symlinks are not followed).
const SYMLINK_CLASS: &str = "symlinks: a 2-link loop, a link to /etc/passwd (not followed)";
const UNREADABLE_CLASS: &str = "unreadable file (mode 000)";
const VANISHING_CLASS: &str = "file deleted between listing and reading";

/// Writes the generated hostile files of HOSTILE.md into `dir`; returns every one of them
/// with its class and expected outcome.
fn generate_hostile(dir: &Path) -> Vec<Generated> {
    let corpora = shared_dir().join("corpora");
    let mut generated = Vec::new();
    let mut expect = |class: &'static str,
                      name: &[u8],
                      kind: &'static str,
                      words: &'static str,
                      max_chunks: Option<u32>| {
        generated.push(Generated {
            class,
            name: std::ffi::OsStr::from_bytes(name).to_os_string(),
            kind,
            words,
            max_chunks,
        });
    };
    let write = |name: &[u8], bytes: &[u8]| {
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(name)), bytes)
            .expect("write hostile file");
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
    write(b"zip-bomb.docx", &bomb);
    expect("zip bomb", b"zip-bomb.docx", "too_large", "zip bomb", None);

    // A zip nested in a zip, eight levels deep, inside a DOCX: the document text is read, the
    // nested archive is never opened.
    let mut nested = zip_of(&[("inner.txt", b"deep".as_slice())]);
    for level in 0..8 {
        nested = zip_of(&[(&format!("level{level}.zip"), nested.as_slice())]);
    }
    write(
        b"nested-zips.docx",
        &zip_of(&[("word/document.xml", DOCX_BODY), ("nested.zip", &nested)]),
    );
    expect("zip bomb", b"nested-zips.docx", "indexed", "", Some(1));

    // Billion laughs, in a DOCX and in HTML: entities are not expanded, the text around them
    // is indexed (one chunk, not a billion "lol"s).
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
        b"billion-laughs.docx",
        &zip_of(&[("word/document.xml", laughs_xml.as_bytes())]),
    );
    expect(
        "billion laughs",
        b"billion-laughs.docx",
        "indexed",
        "",
        Some(1),
    );
    write(
        b"billion-laughs.html",
        format!(
            "{dtd}<html><body><p>Laughs &lol9; page with enough words to index.</p></body></html>"
        )
        .as_bytes(),
    );
    expect(
        "billion laughs",
        b"billion-laughs.html",
        "indexed",
        "",
        Some(1),
    );

    // Traversal and absolute entry names (the test also checks nothing was written there).
    write(
        b"traversal.docx",
        &zip_of(&[
            ("../../evil.txt", b"evil".as_slice()),
            ("/tmp/vellum-evil.txt", b"evil".as_slice()),
            ("word/document.xml", DOCX_BODY),
        ]),
    );
    expect(
        "zip path traversal",
        b"traversal.docx",
        "indexed",
        "",
        Some(1),
    );

    // Wrong extensions: detection by content.
    let class = "wrong extension";
    let pdf = std::fs::read(corpora.join("pdf-pypdf-resources/encryption/unencrypted.pdf"))
        .expect("corpus pdf");
    write(b"pdf-named.docx", &pdf);
    expect(class, b"pdf-named.docx", "indexed", "", None);
    let docx = std::fs::read(corpora.join("docx-python-docx/features/par-known-paragraphs.docx"))
        .expect("corpus docx");
    write(b"docx-named.pdf", &docx);
    expect(class, b"docx-named.pdf", "indexed", "", None);
    let html = std::fs::read(corpora.join("html-readability-pages/001/source.html")).expect("html");
    write(b"html-named.eml", &html);
    expect(class, b"html-named.eml", "indexed", "", None);
    write(
        b"png-named.txt",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0",
    );
    expect(class, b"png-named.txt", "unsupported", "PNG image", None);

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
    write(b"50000-blank-pages.pdf", body.as_bytes());
    expect(
        "PDF with 50,000 pages",
        b"50000-blank-pages.pdf",
        "too_large",
        "50000 pages",
        None,
    );

    let mut mbox = String::new();
    for message in 0..100_000 {
        mbox.push_str(&format!(
            "From sender{message}@example.com Mon Jan  1 00:00:00 2024\nFrom: \
             sender{message}@example.com\nSubject: note {message}\n\nMessage {message}.\n\n"
        ));
    }
    write(b"100000-messages.mbox", mbox.as_bytes());
    expect(
        "mbox with 100,000 messages",
        b"100000-messages.mbox",
        "too_large",
        "5000 messages",
        None,
    );

    let class = "e-mail: 2,000 MIME parts, 1,000 levels";
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
    write(b"2000-parts.eml", parts.as_bytes());
    expect(class, b"2000-parts.eml", "indexed", "", None);

    let mut nested_mail = String::new();
    for level in 0..1_000 {
        nested_mail.push_str(&format!(
            "From: a@example.com\nSubject: level {level}\nMIME-Version: 1.0\nContent-Type: \
             multipart/mixed; boundary=\"n{level}\"\n\n--n{level}\nContent-Type: message/rfc822\n\n"
        ));
    }
    nested_mail.push_str("From: a@example.com\nSubject: core\n\nThe innermost message.\n");
    // The parser stops descending at its depth limit; what it read is indexed.
    write(b"1000-levels.eml", nested_mail.as_bytes());
    expect(class, b"1000-levels.eml", "indexed", "", None);

    // 1 GB of text (sparse: costs no disk), above the 200 MB file limit.
    let huge = std::fs::File::create(dir.join("1gb.txt")).expect("create");
    huge.set_len(1 << 30).expect("set_len");
    expect(
        "1 GB text file",
        b"1gb.txt",
        "too_large",
        "file too large",
        None,
    );

    // Encodings.
    let class = "encodings";
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
    for (name, bytes) in [
        (b"utf16le-bom.txt".as_slice(), utf16le.as_slice()),
        (b"utf16be-bom.txt", &utf16be),
        (b"utf16le-no-bom.txt", &utf16le_no_bom),
        (b"utf16be-no-bom.txt", &utf16be_no_bom),
        (
            b"invalid-utf8.txt",
            b"Valid start \xC3\x28 invalid \xFF\xFE sequences then valid words again.",
        ),
        (b"cr-only.txt", b"line one\rline two\rline three"),
    ] {
        write(name, bytes);
        expect(class, name, "indexed", "", Some(1));
    }
    write(b"nul-bytes.txt", b"text with\0 NUL\0 bytes inside");
    expect(class, b"nul-bytes.txt", "unsupported", "NUL bytes", None);
    write(b"10mb-one-line.txt", "word ".repeat(2 << 20).as_bytes());
    expect(class, b"10mb-one-line.txt", "indexed", "", None);

    // File-system oddities. Symlinks are not followed, so they are not listed at all.
    std::os::unix::fs::symlink("loop-b", dir.join("loop-a")).expect("symlink");
    std::os::unix::fs::symlink("loop-a", dir.join("loop-b")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("outside-link.txt")).expect("symlink");
    for name in [b"loop-a".as_slice(), b"loop-b", b"outside-link.txt"] {
        expect(SYMLINK_CLASS, name, "not listed", "", None);
    }
    let class = "odd file names";
    write(
        b"name\nwith newline.txt",
        b"A file whose name has a newline.",
    );
    expect(class, b"name\nwith newline.txt", "indexed", "", Some(1));
    write(b"invalid-\xff-name.txt", b"A file whose name is not UTF-8.");
    expect(class, b"invalid-\xff-name.txt", "indexed", "", Some(1));
    write(b"mode-000.txt", b"Nobody may read this.");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("mode-000.txt"),
            std::fs::Permissions::from_mode(0o000),
        )
        .expect("chmod 000");
    }
    expect(
        UNREADABLE_CLASS,
        b"mode-000.txt",
        "unreadable",
        "Permission denied",
        None,
    );
    // Written now, deleted after listing (by the test).
    write(
        b"vanishes-before-reading.txt",
        b"here when listed, gone when read",
    );
    expect(
        VANISHING_CLASS,
        b"vanishes-before-reading.txt",
        "unreadable",
        "disappeared",
        None,
    );
    generated
}

/// A hazard row of HOSTILE.md's table of real samples: files (relative to `shared/corpora`;
/// `*` matches within one path segment, a trailing `/` takes a whole folder) and what becomes
/// of them, as `kind count` pairs in the order of [`outcome_summary`].
struct CorpusClass {
    class: &'static str,
    patterns: &'static [&'static str],
    expected: &'static str,
    /// Built to make a parser hang: a `timeout` is an acceptable outcome here.
    may_hang: bool,
}

const CORPUS_HAZARDS: &[CorpusClass] = &[
    CorpusClass {
        class: "0-byte file",
        patterns: &[
            "legal-court-documents-freelaw/empty.pdf",
            "docx-apache-poi-subset/zero-length.docx",
        ],
        expected: "no_text 2",
        may_hang: false,
    },
    CorpusClass {
        class: "decompression bomb (bomb_giant.pdf)",
        patterns: &["pdf-pdfjs-subset/bomb_giant.pdf"],
        expected: "indexed 1",
        may_hang: true,
    },
    CorpusClass {
        class: "object-graph cycles",
        patterns: &[
            "pdf-pdfjs-subset/Pages-tree-refs.pdf",
            "pdf-pdfjs-subset/operator_list_cycle.pdf",
            "pdf-pdfjs-subset/ContentStreamCycleType3insideType3.pdf",
        ],
        expected: "indexed 1, malformed 1, no_text 1",
        may_hang: false,
    },
    CorpusClass {
        class: "fuzzer crashers",
        patterns: &[
            "pdf-pdfjs-subset/poppler-*-fuzzed.pdf",
            "pdf-pdfjs-subset/GHOSTSCRIPT-698804-1-fuzzed.pdf",
            "docx-apache-poi-subset/clusterfuzz-testcase-*.docx",
            "docx-apache-poi-subset/51921-Word-Crash067.docx",
        ],
        expected: "malformed 3, no_text 1, unsupported 3",
        may_hang: false,
    },
    CorpusClass {
        class: "corrupted / truncated structure",
        patterns: &[
            "pdf-format-corpus-malformed/pdf-handbuilt-test-corpus/",
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/corruptionOneByteMissing.pdf",
            "pdf-pdfminer-samples/zen_of_python_corrupted.pdf",
            "pdf-pdfjs-subset/xref_command_missing.pdf",
            "pdf-pdfjs-subset/helloworld-bad.pdf",
            "pdf-format-corpus-malformed/govdocs1-error-pdfs/error_set_1/",
        ],
        expected: "indexed 27, malformed 14, needs_ocr 2, no_text 68, panicked 2",
        may_hang: false,
    },
    CorpusClass {
        class: "junk before the %PDF header",
        patterns: &[
            "legal-court-documents-freelaw/broken-mime.pdf",
            "legal-court-documents-freelaw/missouri.pdf",
        ],
        expected: "indexed 2",
        may_hang: false,
    },
    CorpusClass {
        class: "password-encrypted (no password list given)",
        patterns: &[
            "pdf-pypdf-resources/encryption/",
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/encryption_openpassword.pdf",
            "docx-apache-poi-subset/bug53475-password-is-pass.docx",
        ],
        expected: "indexed 11, encrypted 8",
        may_hang: false,
    },
    CorpusClass {
        class: "permissions-only encryption",
        patterns: &[
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/encryption_nocopy.pdf",
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/encryption_notextaccess.pdf",
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/encryption_noprinting.pdf",
        ],
        expected: "indexed 3",
        may_hang: false,
    },
    CorpusClass {
        class: "active content (JavaScript, video, attachments)",
        patterns: &[
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/javascript.pdf",
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/embedded_video_*.pdf",
            "pdf-format-corpus-malformed/pdfCabinetOfHorrors/fileAttachment*.pdf",
            "pdf-pdfjs-subset/attachment.pdf",
            "pdf-pdfjs-subset/encrypted-attachment.pdf",
        ],
        expected: "indexed 6, malformed 1",
        may_hang: false,
    },
    CorpusClass {
        class: "XML external entity",
        patterns: &["docx-apache-poi-subset/ExternalEntityInText.docx"],
        expected: "indexed 1",
        may_hang: false,
    },
    CorpusClass {
        class: "zip that is not a DOCX",
        patterns: &["docx-mammoth/empty.zip", "docx-mammoth/hello.zip"],
        expected: "unsupported 2",
        may_hang: false,
    },
    CorpusClass {
        class: "legacy .doc, WordPerfect",
        patterns: &[
            "docx-apache-poi-subset/legacy-doc/",
            "legal-court-documents-freelaw/word-perfect.wpd",
        ],
        expected: "unsupported 13",
        may_hang: false,
    },
    CorpusClass {
        class: "image-only scans",
        patterns: &[
            "legal-court-documents-freelaw/image-pdf.pdf",
            "legal-court-documents-freelaw/image-pdf-2.pdf",
            "pdf-pdfjs-subset/scan-bad.pdf",
        ],
        expected: "needs_ocr 2, no_text 1",
        may_hang: false,
    },
    CorpusClass {
        class: "text under redaction boxes",
        patterns: &["legal-court-documents-freelaw/x-ray/rectangles_yes*.pdf"],
        expected: "indexed 2",
        may_hang: false,
    },
    CorpusClass {
        class: "malformed e-mail",
        patterns: &["email-mail-parser-fixtures/malformed/*.eml"],
        expected: "indexed 22, no_text 1",
        may_hang: false,
    },
];

/// The rest of each corpus folder (files not in a hazard class above), as documented in
/// docs/benchmarks.md. Top-level files (HOSTILE.md, README.md) are `(top level)`.
const CORPUS_FOLDERS: &[(&str, &str)] = &[
    ("(top level)", "indexed 2"),
    ("beir-scifact", "indexed 6"),
    ("docx-apache-poi-subset", "indexed 54, no_text 7"),
    ("docx-mammoth", "indexed 18, no_text 5, unsupported 1"),
    ("docx-python-docx", "indexed 33, no_text 15"),
    ("email-court-notices-pacer", "indexed 135"),
    ("email-mail-parser-fixtures", "indexed 111, no_text 1"),
    ("email-spamassassin-testdata", "indexed 62, no_text 10"),
    ("html-readability-pages", "indexed 189"),
    ("legal-contract-summaries-tldrlegal", "indexed 8"),
    ("legal-court-documents-freelaw", "indexed 18, unsupported 3"),
    ("legal-cuad-contracts", "indexed 167"),
    ("medical-ccda-smart-samples", "indexed 43"),
    (
        "medical-hl7-ccda-examples",
        "indexed 795, no_text 83, unsupported 1",
    ),
    (
        "office-format-corpus-misc",
        "indexed 34, encrypted 2, unsupported 25",
    ),
    (
        "pdf-format-corpus-malformed",
        "indexed 15, needs_ocr 3, panicked 1, unsupported 5",
    ),
    (
        "pdf-pdfjs-subset",
        "indexed 32, encrypted 5, needs_ocr 6, no_text 4, panicked 2",
    ),
    (
        "pdf-pdfminer-samples",
        "indexed 27, malformed 2, needs_ocr 5, no_text 8, unsupported 1",
    ),
    (
        "pdf-py-pdf-sample-files",
        "indexed 36, encrypted 1, malformed 1, needs_ocr 5, unsupported 16",
    ),
    (
        "pdf-pypdf-resources",
        "indexed 53, encrypted 4, needs_ocr 5, no_text 3, panicked 1, unsupported 2",
    ),
];

/// `*` within one path segment; a pattern ending in `/` matches everything below it.
fn matches(pattern: &str, relative: &str) -> bool {
    if let Some(folder) = pattern.strip_suffix('/') {
        return relative.starts_with(&format!("{folder}/"));
    }
    fn glob(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len())
                .any(|skip| !text[..skip].contains(&b'/') && glob(rest, &text[skip..])),
            Some((first, rest)) => text.first() == Some(first) && glob(rest, &text[1..]),
        }
    }
    glob(pattern.as_bytes(), relative.as_bytes())
}

/// `indexed N` first, then each quarantine kind with its count, alphabetically.
fn outcome_summary(counts: &BTreeMap<String, usize>) -> String {
    let mut parts = Vec::new();
    if let Some(indexed) = counts.get("indexed") {
        parts.push(format!("indexed {indexed}"));
    }
    for (kind, count) in counts {
        if kind != "indexed" {
            parts.push(format!("{kind} {count}"));
        }
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// One row of the printed table.
#[derive(Default)]
struct Row {
    files: usize,
    counts: BTreeMap<String, usize>,
    expected: String,
    may_hang: bool,
}

fn outcome_kind(outcome: &FileOutcome) -> String {
    match outcome {
        FileOutcome::Indexed { .. } => "indexed".to_string(),
        FileOutcome::Quarantined { kind, .. } => kind.clone(),
        other => format!("unexpected {other:?}"),
    }
}

/// Parses an [`outcome_summary`] back into counts.
fn parse_summary(summary: &str) -> BTreeMap<String, usize> {
    summary
        .split(", ")
        .filter_map(|part| {
            let (kind, count) = part.rsplit_once(' ')?;
            Some((kind.to_string(), count.parse().ok()?))
        })
        .collect()
}

/// The classes in the order they were first named, with what their files became.
#[derive(Default)]
struct Table {
    rows: BTreeMap<String, Row>,
    order: Vec<String>,
}

impl Table {
    /// The row of `class`, created with its expectation on first use; returns its key.
    fn row(&mut self, class: &str, expected: String, may_hang: bool) -> String {
        if !self.rows.contains_key(class) {
            self.order.push(class.to_string());
            self.rows.insert(
                class.to_string(),
                Row {
                    expected,
                    may_hang,
                    ..Row::default()
                },
            );
        }
        class.to_string()
    }

    /// The Markdown table and what is wrong: a class whose outcomes differ from its
    /// expectation, or a timeout in a class not built to hang.
    fn render_and_check(
        &self,
        by_kind: &BTreeMap<String, usize>,
        timeout_seconds: u64,
    ) -> (String, Vec<String>) {
        let quarantined_only = |counts: &BTreeMap<String, usize>| {
            let quarantined: BTreeMap<String, usize> = counts
                .iter()
                .filter(|(kind, _)| *kind != "indexed")
                .map(|(kind, count)| (kind.clone(), *count))
                .collect();
            if quarantined.is_empty() {
                "-".to_string()
            } else {
                outcome_summary(&quarantined)
            }
        };
        let mut text = String::from(
            "| class | files | indexed | quarantined, by kind | timeouts |\n|---|---:|---:|---|---:|\n",
        );
        let mut problems = Vec::new();
        let mut total_timeouts = 0;
        for class in &self.order {
            let row = &self.rows[class];
            let indexed = row.counts.get("indexed").copied().unwrap_or(0);
            let timeouts = row.counts.get("timeout").copied().unwrap_or(0);
            total_timeouts += timeouts;
            text.push_str(&format!(
                "| {class} | {} | {indexed} | {} | {timeouts} |\n",
                row.files,
                quarantined_only(&row.counts)
            ));
            let got = outcome_summary(&row.counts);
            // In a class built to hang, a file may time out instead of its usual outcome.
            let hung_instead = row.may_hang && timeouts > 0 && {
                let expected = parse_summary(&row.expected);
                row.counts.iter().all(|(kind, count)| {
                    kind == "timeout" || *count <= expected.get(kind).copied().unwrap_or(0)
                })
            };
            if got != row.expected && !hung_instead {
                problems.push(format!(
                    "class {class:?}: expected {}, got {got}",
                    row.expected
                ));
            }
            if timeouts > 0 && !row.may_hang {
                problems.push(format!(
                    "class {class:?}: {timeouts} worker(s) hit the {timeout_seconds} s limit, \
                     and no file of this class is built to hang"
                ));
            }
        }
        let files: usize = by_kind.values().sum();
        text.push_str(&format!(
            "| **all** | {files} | {} | {} | {total_timeouts} |\n",
            by_kind.get("indexed").copied().unwrap_or(0),
            quarantined_only(by_kind)
        ));
        (text, problems)
    }
}

/// Whether this process can read a file nobody may read (root with `CAP_DAC_OVERRIDE` or
/// `CAP_DAC_READ_SEARCH` can).
fn bypasses_file_permissions() -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = tempfile::NamedTempFile::new().expect("probe file");
    std::fs::set_permissions(probe.path(), std::fs::Permissions::from_mode(0o000))
        .expect("chmod 000");
    std::fs::read(probe.path()).is_ok()
}

const TEST_NAME: &str = "every_corpus_and_hostile_file_is_indexed_or_quarantined_in_one_batch";
const CHILD_ENV: &str = "VELLUM_HOSTILE_WITHOUT_DAC_OVERRIDE";

#[test]
fn every_corpus_and_hostile_file_is_indexed_or_quarantined_in_one_batch() {
    if bypasses_file_permissions() {
        // Root reads a mode-000 file anyway, so the unreadable class would pass for the wrong
        // reason. Run the test again in a child that keeps uid 0 (it can still read the root-
        // owned corpus, models and build folder) but has lost the two capabilities.
        assert!(
            std::env::var_os(CHILD_ENV).is_none(),
            "the re-run under setpriv can still read a mode-000 file: the unreadable-file \
             class cannot be tested honestly here"
        );
        let caps = "-dac_override,-dac_read_search";
        let status = Command::new("setpriv")
            .arg(format!("--inh-caps={caps}"))
            .arg(format!("--bounding-set={caps}"))
            .arg("--")
            .arg(std::env::current_exe().expect("test binary"))
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .status()
            .unwrap_or_else(|error| {
                panic!(
                    "this process bypasses file permissions (root), so the mode-000 file \
                     would be read; re-running without CAP_DAC_OVERRIDE needs `setpriv` \
                     (util-linux): {error}"
                )
            });
        assert!(
            status.success(),
            "the batch without CAP_DAC_OVERRIDE failed: {status}"
        );
        return;
    }

    let tmp = tempfile::tempdir().expect("temp dir");
    let hostile_dir = tmp.path().join("hostile");
    std::fs::create_dir_all(&hostile_dir).expect("hostile dir");
    let generated = generate_hostile(&hostile_dir);
    let vanishing = hostile_dir.join("vanishes-before-reading.txt");

    let corpora = shared_dir().join("corpora");
    let roots = vec![corpora.clone(), hostile_dir.clone()];
    let listing = pipeline::collect_files(&roots).expect("list files");
    std::fs::remove_file(&vanishing).expect("remove");
    assert!(listing.files.len() > 2250, "{} files", listing.files.len());
    assert!(
        listing.unreadable.is_empty(),
        "listing errors: {:?}",
        listing.unreadable
    );

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
    let timeout = Duration::from_secs(30);
    let limits = SandboxLimits {
        timeout,
        cpu_seconds: 30,
        memory_bytes: 1 << 30,
    };
    let options = IngestOptions {
        collection: "everything".into(),
        sandbox: Some(Sandbox::new(worker_binary(), Vec::new(), limits)),
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
    let mut problems = Vec::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (path, outcome) in &outcomes {
        if let FileOutcome::Quarantined { reason, .. } = outcome {
            if reason.len() <= 10 {
                problems.push(format!("{path}: reason {reason:?} says too little"));
            }
        }
        *by_kind.entry(outcome_kind(outcome)).or_default() += 1;
    }

    // Sort every file into its class.
    let mut table = Table::default();
    let mut classified: BTreeSet<String> = BTreeSet::new();

    // Generated files: each one by name.
    let hostile_canonical = hostile_dir.canonicalize().expect("canonical");
    let mut generated_rows: Vec<(String, Vec<&Generated>)> = Vec::new();
    for file in &generated {
        match generated_rows
            .iter_mut()
            .find(|(class, _)| class == file.class)
        {
            Some((_, files)) => files.push(file),
            None => generated_rows.push((file.class.to_string(), vec![file])),
        }
    }
    for (class, files) in &generated_rows {
        let mut expected_counts: BTreeMap<String, usize> = BTreeMap::new();
        for file in files {
            if file.kind != "not listed" {
                *expected_counts.entry(file.kind.to_string()).or_default() += 1;
            }
        }
        let key = table.row(class, outcome_summary(&expected_counts), false);
        for file in files {
            let path = hostile_canonical.join(&file.name);
            let shown = path.display().to_string();
            if file.kind == "not listed" {
                if listing.files.contains(&path) || outcomes.contains_key(&shown) {
                    problems.push(format!(
                        "{shown}: a symlink was listed (links are not followed)"
                    ));
                }
                continue;
            }
            let Some(outcome) = outcomes.get(&shown) else {
                problems.push(format!("{shown}: no outcome"));
                continue;
            };
            classified.insert(shown.clone());
            let entry = table.rows.get_mut(&key).expect("row");
            entry.files += 1;
            *entry.counts.entry(outcome_kind(outcome)).or_default() += 1;
            let fine = match outcome {
                FileOutcome::Indexed { num_chunks, .. } => {
                    file.kind == "indexed" && file.max_chunks.is_none_or(|max| *num_chunks <= max)
                }
                FileOutcome::Quarantined { kind, reason } => {
                    kind == file.kind && reason.contains(file.words)
                }
                _ => false,
            };
            if !fine {
                problems.push(format!(
                    "{shown}: expected {} ({:?}, at most {:?} chunks), got {outcome:?}",
                    file.kind, file.words, file.max_chunks
                ));
            }
        }
    }
    // Nothing outside the tree was read through the link.
    if outcomes.keys().any(|path| path == "/etc/passwd") {
        problems.push("/etc/passwd was ingested through a symlink".into());
    }

    // Real samples: HOSTILE.md's hazard rows first, then the rest of each corpus folder.
    let corpora_canonical = corpora.canonicalize().expect("canonical");
    for hazard in CORPUS_HAZARDS {
        table.row(hazard.class, hazard.expected.to_string(), hazard.may_hang);
    }
    for (folder, expected) in CORPUS_FOLDERS {
        table.row(&format!("corpus {folder}"), expected.to_string(), false);
    }
    for (path, outcome) in &outcomes {
        if classified.contains(path) {
            continue;
        }
        let Ok(relative) = Path::new(path).strip_prefix(&corpora_canonical) else {
            problems.push(format!("{path}: neither a corpus nor a generated file"));
            continue;
        };
        let relative = relative.display().to_string();
        let class = match CORPUS_HAZARDS
            .iter()
            .find(|hazard| hazard.patterns.iter().any(|p| matches(p, &relative)))
        {
            Some(hazard) => hazard.class.to_string(),
            None => {
                let folder = relative
                    .split_once('/')
                    .map_or("(top level)", |(folder, _)| folder);
                table.row(
                    &format!("corpus {folder}"),
                    "(no expectation)".into(),
                    false,
                )
            }
        };
        let entry = table.rows.get_mut(&class).expect("row");
        entry.files += 1;
        *entry.counts.entry(outcome_kind(outcome)).or_default() += 1;
    }

    // The table, then the checks per class.
    let (text, class_problems) = table.render_and_check(&by_kind, timeout.as_secs());
    problems.extend(class_problems);
    eprintln!("{text}");

    // Named real files from HOSTILE.md with the words their reason must hold.
    let corpus_outcome = |relative: &str| {
        let path = corpora.join(relative);
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
            FileOutcome::Quarantined { kind: got, reason }
                if got == kind && reason.contains(words) => {}
            other => problems.push(format!(
                "{relative}: expected {kind} ({words:?}), got {other:?}"
            )),
        }
    }
    // Nothing escaped the work folder.
    assert!(!tmp.path().join("evil.txt").exists());
    assert!(!Path::new("/tmp/vellum-evil.txt").exists());
    assert!(problems.is_empty(), "{problems:#?}\n{text}");

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
