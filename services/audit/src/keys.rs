//! The log's two secrets, kept in their own folder (never in the log folder): the Ed25519
//! signing key for checkpoints and the HMAC key for sensitive strings. Both are created on the
//! first start, as 64 hex digits in owner-only (0600) files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{io_err, AuditError, Result};
use crate::record::HmacKey;

pub const SIGNING_KEY_FILE: &str = "audit-signing.key";
pub const HMAC_KEY_FILE: &str = "audit-hmac.key";
/// The public half, for auditors (`vellum audit public-key` prints it too).
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

pub(crate) struct Keys {
    pub signing: SigningKey,
    pub hmac: HmacKey,
}

/// Loads both keys; creates the missing ones only when `may_create` (a log that already has
/// records must keep its keys: a new signing key would orphan its checkpoints).
pub(crate) fn load_or_create(key_dir: &Path, may_create: bool) -> Result<Keys> {
    let signing = SigningKey::from_bytes(&secret(key_dir, SIGNING_KEY_FILE, may_create)?);
    let hmac = HmacKey(secret(key_dir, HMAC_KEY_FILE, may_create)?);
    let public = public_key_hex(&signing.verifying_key());
    let public_path = key_dir.join(PUBLIC_KEY_FILE);
    if fs::read_to_string(&public_path)
        .ok()
        .as_deref()
        .map(str::trim)
        != Some(public.as_str())
    {
        fs::write(&public_path, format!("{public}\n")).map_err(io_err(&public_path))?;
    }
    Ok(Keys { signing, hmac })
}

fn secret(key_dir: &Path, name: &str, may_create: bool) -> Result<[u8; 32]> {
    let path = key_dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => parse_32(&text).ok_or_else(|| {
            AuditError::Key(format!("{} does not hold 64 hex digits", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !may_create {
                return Err(AuditError::Key(format!(
                    "{} is missing but the audit log already has records; restore the key \
                     (a new one could not sign on to the existing chain)",
                    path.display()
                )));
            }
            create(&path)
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn create(path: &PathBuf) -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuditError::Key(format!("no randomness: {e}")))?;
    // create_new: two processes starting at once must not each write a different key.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(io_err(path))?;
            return parse_32(&text)
                .ok_or_else(|| AuditError::Key(format!("{} is malformed", path.display())));
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        crate::log::sync_dir(parent)?;
    }
    Ok(bytes)
}

fn parse_32(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// The public key as this crate prints and reads it: 64 lowercase hex digits.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parses a public key: 64 hex digits (an `ed25519:` prefix is accepted), or the path of a file
/// holding them (such as `audit-signing.pub`).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let text = text.trim();
    let inline = text.strip_prefix("ed25519:").unwrap_or(text);
    let bytes = match parse_32(inline) {
        Some(bytes) => bytes,
        None => {
            let from_file = fs::read_to_string(text).map_err(|e| {
                AuditError::Key(format!(
                    "{text:?} is neither 64 hex digits nor a readable key file ({e})"
                ))
            })?;
            let from_file = from_file.trim();
            parse_32(from_file.strip_prefix("ed25519:").unwrap_or(from_file)).ok_or_else(|| {
                AuditError::Key(format!("{text} does not hold a 64-hex-digit public key"))
            })?
        }
    };
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| AuditError::Key(format!("not an Ed25519 public key: {e}")))
}

/// Reads the public key from a key folder (from the signing key, so it cannot disagree), or
/// from a file given directly.
pub fn read_public_key(path: &Path) -> Result<String> {
    if path.is_dir() {
        let signing = path.join(SIGNING_KEY_FILE);
        if signing.is_file() {
            let text = fs::read_to_string(&signing).map_err(io_err(&signing))?;
            let seed = parse_32(&text).ok_or_else(|| {
                AuditError::Key(format!("{} does not hold 64 hex digits", signing.display()))
            })?;
            return Ok(public_key_hex(
                &SigningKey::from_bytes(&seed).verifying_key(),
            ));
        }
        let public = path.join(PUBLIC_KEY_FILE);
        return read_public_key(&public);
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    Ok(public_key_hex(&parse_public_key(text.trim())?))
}

/// Reads an HMAC key file (64 hex digits), for `search_by_query`.
pub fn load_hmac_key(path: &Path) -> Result<HmacKey> {
    let path = if path.is_dir() {
        path.join(HMAC_KEY_FILE)
    } else {
        path.to_path_buf()
    };
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    parse_32(&text)
        .map(HmacKey)
        .ok_or_else(|| AuditError::Key(format!("{} does not hold 64 hex digits", path.display())))
}
