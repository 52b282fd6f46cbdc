//! Fuzzes the ccda extractor alone (no format detection), on the calling thread.
//!
//! `extract_as` catches parser panics and returns `Err` (the production behaviour), so this
//! target only reports what `catch_unwind` cannot stop: hangs (`-timeout`), memory blow-ups
//! (`-rss_limit_mb` / `-malloc_limit_mb`), stack overflows and aborts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_extract::extract::{extract_as, ExtractLimits, Format};

fuzz_target!(
    // libfuzzer-sys installs a panic hook that aborts on every panic, even one that is caught.
    // vellum-extract catches parser panics on purpose (they become `Error::Panicked`), so put
    // back a hook that lets them unwind; it is silent to keep the fuzzer fast. A panic that
    // escapes `catch_unwind` still aborts in libfuzzer-sys's wrapper and is reported.
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| {
        let limits = ExtractLimits {
            max_file_bytes: 1 << 20,
            max_pages: 200,
            max_zip_uncompressed_bytes: 16 << 20,
            max_zip_entries: 500,
        };
        let _ = extract_as(data, Format::Ccda, &limits);
    }
);
