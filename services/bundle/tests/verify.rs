//! Sign a bundle-like folder, then break it in every way the manifest must catch: each
//! failure names the file.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer;
use vellum_bundle::{
    generate_key_pair, parse_public_key, read_secret_key, sign, verify, BundleError, KeyPairFiles,
    MANIFEST_FILE, SIGNATURE_FILE,
};

struct Fixture {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    keys: KeyPairFiles,
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A folder shaped like deploy/bundle.sh's output, signed with a throwaway key.
fn signed_bundle() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bundle = dir.path().join("vellum-bundle");
    write(
        &bundle.join("bin/vellum"),
        &[0x7f, b'E', b'L', b'F', 1, 2, 3],
    );
    write(&bundle.join("bin/vellum-extract-worker"), b"\x7fELF worker");
    write(
        &bundle.join("models/all-MiniLM-L6-v2/model.safetensors"),
        &vec![7u8; 3 << 20],
    );
    write(&bundle.join("models/SHA256SUMS"), b"abc  x\n");
    write(
        &bundle.join("policies/default/policy.cedar"),
        b"permit(principal, action, resource);\n",
    );
    write(
        &bundle.join("vellum.toml.example"),
        b"# listen = \"127.0.0.1:8443\"\n",
    );
    write(&bundle.join("README.txt"), b"offline bundle\n");
    fs::create_dir_all(bundle.join("empty")).unwrap_or_else(|e| panic!("{e}"));
    let keys = generate_key_pair(&dir.path().join("release")).unwrap_or_else(|e| panic!("{e}"));
    let secret = read_secret_key(&keys.secret_key).unwrap_or_else(|e| panic!("{e}"));
    let report = sign(&bundle, &secret).unwrap_or_else(|e| panic!("sign: {e}"));
    assert_eq!(report.files, 7);
    Fixture {
        _dir: dir,
        bundle,
        keys,
    }
}

fn check(fixture: &Fixture) -> Result<vellum_bundle::BundleReport, BundleError> {
    let key = parse_public_key(&fixture.keys.public_key_hex).unwrap_or_else(|e| panic!("{e}"));
    verify(&fixture.bundle, &key)
}

/// The error verification returned, and the file it names.
fn failure(fixture: &Fixture) -> (BundleError, String) {
    match check(fixture) {
        Ok(report) => panic!("verified although it should not have: {report:?}"),
        Err(err) => {
            let file = err.file().unwrap_or_default().to_string();
            (err, file)
        }
    }
}

#[test]
fn an_untouched_bundle_verifies_with_its_file_count() {
    let fixture = signed_bundle();
    let report = check(&fixture).unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!(report.files, 7);
    assert_eq!(report.bytes, 7 + 11 + (3 << 20) + 7 + 37 + 28 + 15);
    assert_eq!(report.public_key, fixture.keys.public_key_hex);
    // The key can also be given as the .pub file.
    let key = parse_public_key(&fixture.keys.public_key.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(verify(&fixture.bundle, &key).is_ok());
    // The manifest is plain sha256sum format, sorted by path.
    let manifest =
        fs::read_to_string(fixture.bundle.join(MANIFEST_FILE)).unwrap_or_else(|e| panic!("{e}"));
    let paths: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(_, p)| p))
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert!(paths.contains(&"models/all-MiniLM-L6-v2/model.safetensors"));
}

#[test]
fn one_changed_byte_names_the_file() {
    let fixture = signed_bundle();
    let model = fixture
        .bundle
        .join("models/all-MiniLM-L6-v2/model.safetensors");
    let mut bytes = fs::read(&model).unwrap_or_else(|e| panic!("{e}"));
    if let Some(byte) = bytes.get_mut(1 << 20) {
        *byte ^= 1;
    }
    write(&model, &bytes);
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::Changed { .. }), "{err}");
    assert_eq!(file, "models/all-MiniLM-L6-v2/model.safetensors");
    assert!(err.to_string().starts_with(&file), "{err}");
}

#[test]
fn a_deleted_file_names_the_file() {
    let fixture = signed_bundle();
    fs::remove_file(fixture.bundle.join("policies/default/policy.cedar"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::Missing { .. }), "{err}");
    assert_eq!(file, "policies/default/policy.cedar");
}

#[test]
fn an_added_file_names_the_file() {
    let fixture = signed_bundle();
    write(&fixture.bundle.join("bin/backdoor"), b"#!/bin/sh\n");
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::Extra { .. }), "{err}");
    assert_eq!(file, "bin/backdoor");
}

#[test]
fn another_key_fails_on_the_signature() {
    let fixture = signed_bundle();
    let other_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let other =
        generate_key_pair(&other_dir.path().join("other")).unwrap_or_else(|e| panic!("{e}"));
    let key = parse_public_key(&other.public_key_hex).unwrap_or_else(|e| panic!("{e}"));
    let err = verify(&fixture.bundle, &key).err();
    let Some(err) = err else {
        panic!("verified with the wrong key")
    };
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
    assert_eq!(err.file(), Some(MANIFEST_FILE));
    // It says which key did sign, so an operator can tell a wrong key from a forgery.
    assert!(
        err.to_string().contains(&fixture.keys.public_key_hex),
        "{err}"
    );

    // Re-signed by the other key (an attacker's): still refused with the trusted key.
    let secret = read_secret_key(&other.secret_key).unwrap_or_else(|e| panic!("{e}"));
    sign(&fixture.bundle, &secret).unwrap_or_else(|e| panic!("{e}"));
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
    assert_eq!(file, MANIFEST_FILE);
}

#[test]
fn a_manifest_edited_after_signing_fails_on_the_signature() {
    let fixture = signed_bundle();
    // Tamper with a file and put its new hash into the manifest, as an attacker would.
    let readme = fixture.bundle.join("README.txt");
    write(&readme, b"changed\n");
    let manifest_path = fixture.bundle.join(MANIFEST_FILE);
    let manifest = fs::read_to_string(&manifest_path).unwrap_or_else(|e| panic!("{e}"));
    let new_hash = sha256_hex(b"changed\n");
    let edited: String = manifest
        .lines()
        .map(|line| {
            if line.ends_with("  README.txt") {
                format!("{new_hash}  README.txt\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_ne!(edited, manifest);
    write(&manifest_path, edited.as_bytes());
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
    assert_eq!(file, MANIFEST_FILE);
}

#[test]
fn the_first_difference_in_path_order_is_reported() {
    let fixture = signed_bundle();
    write(&fixture.bundle.join("vellum.toml.example"), b"changed\n");
    fs::remove_file(fixture.bundle.join("bin/vellum-extract-worker"))
        .unwrap_or_else(|e| panic!("{e}"));
    write(&fixture.bundle.join("models/extra.bin"), b"x");
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::Missing { .. }), "{err}");
    assert_eq!(file, "bin/vellum-extract-worker");
}

#[test]
fn a_symbolic_link_is_refused() {
    let fixture = signed_bundle();
    std::os::unix::fs::symlink("/etc/passwd", fixture.bundle.join("models/link"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::Symlink { .. }), "{err}");
    assert_eq!(file, "models/link");
    // And signing such a folder is refused too.
    let secret = read_secret_key(&fixture.keys.secret_key).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        sign(&fixture.bundle, &secret),
        Err(BundleError::Symlink { .. })
    ));
}

#[test]
fn a_signed_path_escaping_the_folder_is_refused() {
    let fixture = signed_bundle();
    // Even a manifest that the trusted key signed may not reach outside the folder.
    let manifest = format!("{}  ../outside\n", sha256_hex(b"x"));
    let secret = read_secret_key(&fixture.keys.secret_key).unwrap_or_else(|e| panic!("{e}"));
    let mut message = b"vellum-bundle-manifest v1\n".to_vec();
    message.extend_from_slice(manifest.as_bytes());
    let signature = hex::encode(secret.sign(&message).to_bytes());
    write(&fixture.bundle.join(MANIFEST_FILE), manifest.as_bytes());
    write(
        &fixture.bundle.join(SIGNATURE_FILE),
        format!("vellum-bundle-signature v1\nsignature: {signature}\n").as_bytes(),
    );
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::UnsafePath { .. }), "{err}");
    assert_eq!(file, "../outside");
}

#[test]
fn an_unsigned_bundle_is_refused() {
    let fixture = signed_bundle();
    fs::remove_file(fixture.bundle.join(SIGNATURE_FILE)).unwrap_or_else(|e| panic!("{e}"));
    let (err, file) = failure(&fixture);
    assert!(matches!(err, BundleError::Unsigned { .. }), "{err}");
    assert_eq!(file, SIGNATURE_FILE);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
