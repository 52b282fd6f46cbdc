//! What the fuzz targets share: the limits they extract under, and the macro that makes a
//! single-parser target (see docs/fuzzing.md).

pub use libfuzzer_sys;
pub use vellum_extract;

/// Limits small enough that the fuzzer spends its time in parsing, not in copying.
pub fn limits() -> vellum_extract::extract::ExtractLimits {
    vellum_extract::extract::ExtractLimits {
        max_file_bytes: 1 << 20,
        max_pages: 200,
        max_zip_uncompressed_bytes: 16 << 20,
        max_zip_entries: 500,
    }
}

/// libfuzzer-sys installs a panic hook that aborts on every panic, even one that is caught.
/// vellum-extract catches parser panics on purpose (they become `Error::Panicked`), so put
/// back a hook that lets them unwind; it is silent to keep the fuzzer fast. A panic that
/// escapes `catch_unwind` still aborts in libfuzzer-sys's wrapper and is reported.
pub fn let_caught_panics_unwind() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// A target that runs one extractor (no format detection) on the calling thread through
/// `extract_as`, which catches parser panics as production does: what it reports is what
/// `catch_unwind` cannot stop (hangs, memory blow-ups, stack overflows, aborts).
#[macro_export]
macro_rules! parser_target {
    ($format:ident) => {
        $crate::libfuzzer_sys::fuzz_target!(
            init: $crate::let_caught_panics_unwind(),
            |data: &[u8]| {
                let _ = $crate::vellum_extract::extract::extract_as(
                    data,
                    $crate::vellum_extract::extract::Format::$format,
                    &$crate::limits(),
                );
            }
        );
    };
}
