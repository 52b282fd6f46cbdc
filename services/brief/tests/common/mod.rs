//! Where the shared corpora are, for every test of this crate: `$VELLUM_SHARED_DIR/corpora`,
//! else `../shared/corpora` beside the checkout (as deploy/test.sh sets it). A missing file
//! fails the test loudly: these tests are about real files.

use std::path::PathBuf;

/// The path of `relative` under the shared corpora; panics if it does not exist.
pub fn shared(relative: &str) -> PathBuf {
    let root = std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = root.join("corpora").join(relative);
    assert!(
        path.exists(),
        "test corpus file missing: {} (set VELLUM_SHARED_DIR)",
        path.display()
    );
    path
}
