//! The signing key pair, as the audit log keeps its own: 64 hex digits in a file. The secret
//! file holds the 32-byte Ed25519 seed and is created owner-only (0600); the public file holds
//! the 32-byte public key. A public key may also be given inline, as its 64 hex digits.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{io_err, BundleError, Result};

/// Where `generate_key_pair` wrote the two halves, and the public key in hex.
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    pub public_key_hex: String,
}

/// Makes a new key pair: `PREFIX.key` (secret, 0600) and `PREFIX.pub`. Refuses to overwrite
/// either file: replacing a signing key by accident would orphan every bundle it signed.
pub fn generate_key_pair(prefix: &Path) -> Result<KeyPairFiles> {
    let secret_path = with_suffix(prefix, ".key");
    let public_path = with_suffix(prefix, ".pub");
    for path in [&secret_path, &public_path] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(BundleError::Key(format!(
                "{} exists already; not overwriting a key",
                path.display()
            )));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| BundleError::Key(format!("no randomness: {e}")))?;
    let signing = SigningKey::from_bytes(&seed);
    let public_hex = public_key_hex(&signing.verifying_key());

    // create_new with mode 0600: the secret is never readable by others, not even briefly.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(io_err(&secret_path))?;
    file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(&secret_path))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&public_path)
        .map_err(io_err(&public_path))?;
    file.write_all(format!("{public_hex}\n").as_bytes())
        // Explicitly: the process umask (vellum sets 077) would leave the public half 0600.
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(0o644)))
        .and_then(|()| file.sync_all())
        .map_err(io_err(&public_path))?;
    Ok(KeyPairFiles {
        secret_key: secret_path,
        public_key: public_path,
        public_key_hex: public_hex,
    })
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads a secret key file written by [`generate_key_pair`].
pub fn read_secret_key(path: &Path) -> Result<SigningKey> {
    let text = fs::read_to_string(path).map_err(|e| {
        BundleError::Key(format!(
            "cannot read the secret key {}: {e}",
            path.display()
        ))
    })?;
    let seed = parse_32(&text).ok_or_else(|| {
        BundleError::Key(format!(
            "{} does not hold a secret key (64 hex digits)",
            path.display()
        ))
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a public key: 64 hex digits (an `ed25519:` prefix is accepted), or else the path of
/// a file holding them (such as `PREFIX.pub`).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let trimmed = text.trim();
    let bytes = match parse_32(trimmed) {
        Some(bytes) => bytes,
        None => {
            let from_file = fs::read_to_string(trimmed).map_err(|e| {
                BundleError::Key(format!(
                    "{trimmed:?} is neither 64 hex digits nor a readable public key file ({e})"
                ))
            })?;
            parse_32(&from_file).ok_or_else(|| {
                BundleError::Key(format!(
                    "{trimmed} does not hold a public key (64 hex digits)"
                ))
            })?
        }
    };
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| BundleError::Key(format!("not an Ed25519 public key: {e}")))
}

/// The public key as this crate writes and prints it: 64 lowercase hex digits.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

fn parse_32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let text = text.strip_prefix("ed25519:").unwrap_or(text);
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pair_files_round_trip_and_the_secret_is_owner_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = generate_key_pair(&dir.path().join("release"))
            .unwrap_or_else(|e| panic!("keygen: {e}"));
        let mode = fs::metadata(&files.secret_key)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(&files.public_key)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let secret = read_secret_key(&files.secret_key).unwrap_or_else(|e| panic!("{e}"));
        let from_file = parse_public_key(&files.public_key.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let inline = parse_public_key(&files.public_key_hex).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secret.verifying_key(), from_file);
        assert_eq!(from_file, inline);
        // A second keygen with the same prefix must not replace the key.
        assert!(matches!(
            generate_key_pair(&dir.path().join("release")),
            Err(BundleError::Key(_))
        ));
    }

    #[test]
    fn a_malformed_public_key_is_bad_input() {
        for text in ["", "abcd", "/no/such/file", &"zz".repeat(32)] {
            let err = parse_public_key(text).err();
            assert!(
                err.as_ref().is_some_and(BundleError::is_bad_input),
                "{text:?}: {err:?}"
            );
        }
    }
}
