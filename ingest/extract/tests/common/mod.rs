//! The shared corpora, for the extraction tests.

use std::path::{Path, PathBuf};

/// `$VELLUM_SHARED_DIR`, else `shared/` next to the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The bytes of `shared/corpora/RELATIVE`; fails with the path if it is missing.
pub fn corpus(relative: &str) -> Vec<u8> {
    let path = shared_dir().join("corpora").join(relative);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
