//! Fuzzes format detection plus whichever extractor it picks, through the public entry point
//! `extract_with_limits` (which runs the parser on its own thread with a 64 MiB stack).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_extract::extract::extract_with_limits;

fuzz_target!(init: vellum_extract_fuzz::let_caught_panics_unwind(), |data: &[u8]| {
    let _ = extract_with_limits(data, None, &vellum_extract_fuzz::limits());
});
