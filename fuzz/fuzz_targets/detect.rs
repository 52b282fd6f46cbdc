//! Fuzzes format detection plus whichever extractor it picks, through the public entry point
//! `extract_with_limits` (which runs the parser on its own thread with a 64 MiB stack).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_extract::extract::{extract_with_limits, ExtractLimits};

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
        let _ = extract_with_limits(data, None, &limits);
    }
);
