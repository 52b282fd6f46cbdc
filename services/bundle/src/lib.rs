//! Signed manifests for Vellum's offline install bundle (`deploy/bundle.sh`).
//!
//! A signed bundle folder holds, besides its own files, two files at its top:
//!
//! * `MANIFEST`: one line per file in the folder and its subfolders, in `sha256sum` format
//!   (`<64 lowercase hex digits><two spaces><path>\n`), sorted by path (byte order), paths
//!   relative to the folder with `/` between components. `MANIFEST` and `MANIFEST.sig`
//!   themselves are not listed. So `sha256sum -c MANIFEST` also checks the files (but not the
//!   signature, nor files that were added).
//! * `MANIFEST.sig`: three lines,
//!   `vellum-bundle-signature v1`, `public-key: <64 hex>` and `signature: <128 hex>`: the
//!   Ed25519 signature of the bytes `vellum-bundle-manifest v1\n` followed by the bytes of
//!   `MANIFEST` (the prefix keeps a signature made for anything else from passing as one).
//!   The public-key line only says which key signed; verification uses the key the caller
//!   trusts, never this one.
//!
//! A bundle verifies when the signature verifies with the caller's public key and the files in
//! the folder are exactly those listed, with those SHA-256 sums. Otherwise the error names the
//! first file that differs, in path order. Symbolic links, devices and other special files are
//! refused (a link could point anywhere), and so are paths that could leave the folder (`..`,
//! absolute paths) or that the format cannot carry (newlines, backslashes, non-UTF-8 names).
//! Empty folders are not recorded.

mod error;
mod keys;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub use error::{BundleError, Result};
pub use keys::{
    generate_key_pair, parse_public_key, public_key_hex, read_secret_key, KeyPairFiles,
};

use error::io_err;

/// The manifest's file name, at the top of the bundle folder.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// The signature's file name, beside the manifest.
pub const SIGNATURE_FILE: &str = "MANIFEST.sig";
/// The first line of `MANIFEST.sig`.
const SIGNATURE_HEADER: &str = "vellum-bundle-signature v1";
/// What is signed before the manifest's bytes (domain separation).
const SIGNED_PREFIX: &[u8] = b"vellum-bundle-manifest v1\n";

/// What a signed or verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    /// Files listed in the manifest.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The public key the signature verifies with (64 hex digits).
    pub public_key: String,
    /// SHA-256 of `MANIFEST`: one figure that identifies the bundle's content.
    pub manifest_sha256: String,
}

/// Writes `MANIFEST` and `MANIFEST.sig` for every file in `dir`, signed with `key`. Replaces
/// an earlier manifest and signature; refuses a folder with a symbolic link or special file.
pub fn sign(dir: &Path, key: &SigningKey) -> Result<BundleReport> {
    let files = list_files(dir)?;
    let mut manifest = String::new();
    let mut bytes = 0u64;
    for (rel, path) in &files {
        let (digest, size) = sha256_file(path)?;
        bytes += size;
        manifest.push_str(&format!("{}  {rel}\n", hex::encode(digest)));
    }
    let mut message = SIGNED_PREFIX.to_vec();
    message.extend_from_slice(manifest.as_bytes());
    let signature = key.sign(&message);
    let public_key = public_key_hex(&key.verifying_key());
    let signature_text = format!(
        "{SIGNATURE_HEADER}\npublic-key: {public_key}\nsignature: {}\n",
        hex::encode(signature.to_bytes())
    );
    let manifest_path = dir.join(MANIFEST_FILE);
    fs::write(&manifest_path, &manifest).map_err(io_err(&manifest_path))?;
    let signature_path = dir.join(SIGNATURE_FILE);
    fs::write(&signature_path, signature_text).map_err(io_err(&signature_path))?;
    Ok(BundleReport {
        files: files.len(),
        bytes,
        public_key,
        manifest_sha256: hex::encode(Sha256::digest(manifest.as_bytes())),
    })
}

/// Checks the bundle in `dir` against its signed manifest with the public key the caller
/// trusts. Errors name the first file that differs.
pub fn verify(dir: &Path, key: &VerifyingKey) -> Result<BundleReport> {
    if !dir.is_dir() {
        return Err(BundleError::NotAFolder(dir.to_path_buf()));
    }
    let signature_text = read_bundle_file(dir, SIGNATURE_FILE)?;
    let manifest_bytes = read_bundle_file(dir, MANIFEST_FILE)?;
    let signature_text =
        String::from_utf8(signature_text).map_err(|_| BundleError::MalformedSignature {
            file: SIGNATURE_FILE.into(),
            reason: "not UTF-8 text".into(),
        })?;
    let (signed_by, signature) = parse_signature(&signature_text)?;

    // The signature first: nothing in an unsigned manifest is trusted, not even its paths.
    let mut message = SIGNED_PREFIX.to_vec();
    message.extend_from_slice(&manifest_bytes);
    let given = public_key_hex(key);
    if key.verify_strict(&message, &signature).is_err() {
        let hint = match signed_by {
            Some(other) if other != given => format!(
                "{SIGNATURE_FILE} says key {other} signed it: use that key if you trust it, \
                 else the bundle was re-signed by someone else"
            ),
            _ => format!("{MANIFEST_FILE} or {SIGNATURE_FILE} was changed after signing"),
        };
        return Err(BundleError::BadSignature {
            file: MANIFEST_FILE.into(),
            given,
            hint,
        });
    }
    let listed = parse_manifest(&manifest_bytes)?;
    let present = list_files(dir)?;

    // Walk both sorted lists together so that the first difference in path order is the one
    // reported, whatever kind it is.
    let mut listed_iter = listed.iter().peekable();
    let mut present_iter = present.iter().peekable();
    let mut bytes = 0u64;
    loop {
        match (listed_iter.peek(), present_iter.peek()) {
            (None, None) => break,
            (Some((rel, _)), None) => return Err(BundleError::Missing { path: rel.clone() }),
            (None, Some((rel, _))) => {
                return Err(BundleError::Extra {
                    path: (*rel).clone(),
                })
            }
            (Some((want, expected)), Some((have, path))) => {
                match want.as_str().cmp(have.as_str()) {
                    Ordering::Less => return Err(BundleError::Missing { path: want.clone() }),
                    Ordering::Greater => {
                        return Err(BundleError::Extra {
                            path: (*have).clone(),
                        })
                    }
                    Ordering::Equal => {}
                }
                let (actual, size) = sha256_file(path)?;
                if actual != *expected {
                    return Err(BundleError::Changed {
                        path: want.clone(),
                        expected: hex::encode(expected),
                        actual: hex::encode(actual),
                    });
                }
                bytes += size;
                listed_iter.next();
                present_iter.next();
            }
        }
    }
    Ok(BundleReport {
        files: listed.len(),
        bytes,
        public_key: given,
        manifest_sha256: hex::encode(Sha256::digest(&manifest_bytes)),
    })
}

/// Reads MANIFEST or MANIFEST.sig; a missing one means the bundle is unsigned.
fn read_bundle_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(BundleError::Symlink { path: name.into() })
        }
        Ok(meta) if !meta.is_file() => {
            return Err(BundleError::NotAPlainFile { path: name.into() })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::Unsigned { file: name.into() })
        }
        Err(e) => return Err(io_err(&path)(e)),
    }
    fs::read(&path).map_err(io_err(&path))
}

/// MANIFEST.sig: the key it names (informational) and the signature.
fn parse_signature(text: &str) -> Result<(Option<String>, Signature)> {
    let malformed = |reason: &str| BundleError::MalformedSignature {
        file: SIGNATURE_FILE.into(),
        reason: reason.into(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(SIGNATURE_HEADER) {
        return Err(malformed(&format!(
            "the first line is not {SIGNATURE_HEADER:?}"
        )));
    }
    let mut public_key = None;
    let mut signature = None;
    for line in lines {
        match line.split_once(": ") {
            Some(("public-key", value)) if public_key.is_none() => {
                public_key = Some(value.to_string())
            }
            Some(("signature", value)) if signature.is_none() => {
                let bytes: [u8; 64] = hex::decode(value)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| malformed("the signature is not 128 hex digits"))?;
                signature = Some(Signature::from_bytes(&bytes));
            }
            _ => return Err(malformed(&format!("unexpected line {line:?}"))),
        }
    }
    let signature = signature.ok_or_else(|| malformed("no signature line"))?;
    Ok((public_key, signature))
}

/// The manifest's lines as (path, SHA-256), checked to be well-formed, safe and sorted.
fn parse_manifest(bytes: &[u8]) -> Result<Vec<(String, [u8; 32])>> {
    let malformed = |line: usize, reason: String| BundleError::MalformedManifest {
        file: MANIFEST_FILE.into(),
        line,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed(0, "not UTF-8 text".into()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(malformed(
            text.lines().count(),
            "the last line has no newline".into(),
        ));
    }
    let mut entries: Vec<(String, [u8; 32])> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let (digest, rel) = line
            .split_once("  ")
            .ok_or_else(|| malformed(number, "not `<sha256>  <path>`".into()))?;
        let digest: [u8; 32] = hex::decode(digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| malformed(number, "the SHA-256 is not 64 hex digits".into()))?;
        if digest_is_uppercase(line) {
            return Err(malformed(number, "the SHA-256 is not lowercase".into()));
        }
        check_path(rel)?;
        if rel == MANIFEST_FILE || rel == SIGNATURE_FILE {
            return Err(malformed(number, format!("lists {rel} itself")));
        }
        if let Some((previous, _)) = entries.last() {
            if previous.as_str() >= rel {
                return Err(malformed(
                    number,
                    format!("{rel} is out of order or listed twice"),
                ));
            }
        }
        entries.push((rel.to_string(), digest));
    }
    Ok(entries)
}

fn digest_is_uppercase(line: &str) -> bool {
    line.bytes().take(64).any(|b| b.is_ascii_uppercase())
}

/// Refuses a manifest path that could leave the folder or that the format cannot carry.
fn check_path(rel: &str) -> Result<()> {
    let refuse = |reason: &str| {
        Err(BundleError::UnsafePath {
            path: rel.into(),
            reason: reason.into(),
        })
    };
    if rel.is_empty() {
        return refuse("an empty path");
    }
    if rel.starts_with('/') {
        return refuse("an absolute path");
    }
    if rel.chars().any(|c| c.is_control() || c == '\\') {
        return refuse("a control character or backslash in the name");
    }
    if rel
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return refuse("an empty, `.` or `..` component (the path could leave the bundle)");
    }
    Ok(())
}

/// Every file under `dir` (except the top-level MANIFEST and MANIFEST.sig), keyed by its
/// relative path; refuses symbolic links, special files and names the manifest cannot carry.
fn list_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let meta = fs::metadata(dir).map_err(|_| BundleError::NotAFolder(dir.to_path_buf()))?;
    if !meta.is_dir() {
        return Err(BundleError::NotAFolder(dir.to_path_buf()));
    }
    let mut files = BTreeMap::new();
    walk(dir, "", &mut files)?;
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        entries.push(entry);
    }
    // Sorted, so that a refused entry is the same one on every run.
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(BundleError::UnsafePath {
                path: format!("{prefix}{}", name.to_string_lossy()),
                reason: "the name is not UTF-8".into(),
            });
        };
        let rel = format!("{prefix}{name}");
        if prefix.is_empty() && (name == MANIFEST_FILE || name == SIGNATURE_FILE) {
            continue;
        }
        check_path(&rel)?;
        // DirEntry::file_type does not follow symbolic links.
        let kind = entry.file_type().map_err(io_err(entry.path()))?;
        if kind.is_symlink() {
            return Err(BundleError::Symlink { path: rel });
        } else if kind.is_dir() {
            walk(&entry.path(), &format!("{rel}/"), files)?;
        } else if kind.is_file() {
            files.insert(rel, entry.path());
        } else {
            return Err(BundleError::NotAPlainFile { path: rel });
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io_err(path))?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(buffer.get(..read).unwrap_or_default());
    }
    Ok((hasher.finalize().into(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_folder_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/",
            "a\nb",
            "a\\b",
        ] {
            assert!(
                matches!(check_path(bad), Err(BundleError::UnsafePath { .. })),
                "{bad:?}"
            );
        }
        for good in ["a", "models/x.gguf", "vellum_0.1.0_amd64.deb", "a..b/c"] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn manifest_lines_must_be_sorted_lowercase_and_complete() {
        let h = "0".repeat(64);
        let ok = format!("{h}  a\n{h}  b/c\n");
        assert_eq!(parse_manifest(ok.as_bytes()).map(|v| v.len()).ok(), Some(2));
        for bad in [
            format!("{h}  b\n{h}  a\n"),
            format!("{h}  a\n{h}  a\n"),
            format!("{h}  a"),
            format!("{h} a\n"),
            format!("{}  a\n", "A".repeat(64)),
            format!("{h}  MANIFEST\n"),
            format!("{h}  ../a\n"),
        ] {
            assert!(parse_manifest(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
