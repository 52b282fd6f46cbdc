//! What one line of the log holds, and how a line is encoded and checked.
//!
//! A line is the record's JSON with `"hash"` as its last member. The hash is SHA-256 over a
//! domain tag and the exact bytes of the line without that member (`…,"hash":"<hex>"}` replaced
//! by `}`), so verification never depends on re-serializing JSON the same way.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const RECORD_DOMAIN: &[u8] = b"vellum-audit-record-v1\n";
const GENESIS_DOMAIN: &[u8] = b"vellum-audit-genesis-v1\n";
const CHECKPOINT_DOMAIN: &str = "vellum-audit-checkpoint-v1";
const HASH_PREFIX: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = HASH_PREFIX.len() + 64 + 2;

/// Common action names (the server may use others; they are plain strings in the log).
pub mod actions {
    pub const SEARCH: &str = "search";
    pub const ASK: &str = "ask";
    pub const SUMMARIZE: &str = "summarize";
    pub const DOCUMENT_READ: &str = "document.read";
    pub const DOCUMENT_UPLOAD: &str = "document.upload";
    pub const DOCUMENT_DELETE: &str = "document.delete";
    pub const LOGIN: &str = "login";
    pub const LOGOUT: &str = "logout";
    pub const KEY_CHANGE: &str = "key.change";
    pub const USER_CHANGE: &str = "user.change";
    pub const POLICY_RELOAD: &str = "policy.reload";
    /// Written by the log itself when it opens and closes.
    pub const AUDIT_START: &str = "audit.start";
    pub const AUDIT_STOP: &str = "audit.stop";
}

/// Common outcomes.
pub mod outcomes {
    pub const OK: &str = "ok";
    pub const DENIED: &str = "denied";
    pub const NOT_FOUND: &str = "not_found";
    pub const ERROR: &str = "error";
    pub const FAILED_LOGIN: &str = "failed_login";
}

/// The sequence number of an appended record (0-based, gapless over the whole log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub u64);

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the authorization layer decided, and which policies decided it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    #[serde(default)]
    pub policies: Vec<String>,
}

/// One chunk returned to the caller or given to the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRead {
    pub chunk_id: String,
    pub document_id: String,
    /// SHA-256 (hex) of the chunk's text as it was returned.
    pub sha256: String,
}

/// A sensitive string (a query, a typed user name): HMAC-SHA256 under the log's HMAC key, plus
/// the plain text only when `store_plain_queries` is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sensitive {
    pub hmac_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<String>,
}

/// The 256-bit HMAC key for sensitive strings.
#[derive(Clone)]
pub struct HmacKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        HmacKey(bytes)
    }

    /// HMAC-SHA256 of `text` (its exact UTF-8 bytes), hex.
    pub fn digest(&self, text: &str) -> String {
        // A 32-byte key is always a valid HMAC key; new_from_slice only fails for no key size.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn sensitive(&self, text: &str, keep_plain: bool) -> Sensitive {
        Sensitive {
            hmac_sha256: self.digest(text),
            plain: keep_plain.then(|| text.to_owned()),
        }
    }
}

/// One auditable event, as the server hands it to [`crate::AuditLog::append`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who: user name or key id; `None` before authentication.
    pub principal: Option<String>,
    /// Source address (IP, or IP:port).
    pub address: Option<String>,
    /// See [`actions`].
    pub action: String,
    /// What it acted on: a document id, collection, user, key id…
    pub resource: Option<String>,
    pub decision: Option<Decision>,
    /// See [`outcomes`].
    pub outcome: String,
    /// The query or other sensitive input, see [`crate::AuditLog::sensitive`].
    pub query: Option<Sensitive>,
    /// For reads: what was read.
    pub reads: Vec<ChunkRead>,
    /// The answer receipt (model SHA-256, template hash, sampling parameters), opaque.
    pub receipt: Option<serde_json::Value>,
    /// Non-sensitive extras: status code, k, mode, document SHA-256…
    pub detail: BTreeMap<String, String>,
}

impl AuditEvent {
    pub fn new(action: impl Into<String>, outcome: impl Into<String>) -> Self {
        AuditEvent {
            action: action.into(),
            outcome: outcome.into(),
            ..AuditEvent::default()
        }
    }

    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn decision(mut self, allowed: bool, policies: Vec<String>) -> Self {
        self.decision = Some(Decision { allowed, policies });
        self
    }

    pub fn query(mut self, query: Sensitive) -> Self {
        self.query = Some(query);
        self
    }

    pub fn reads(mut self, reads: Vec<ChunkRead>) -> Self {
        self.reads = reads;
        self
    }

    pub fn receipt(mut self, receipt: serde_json::Value) -> Self {
        self.receipt = Some(receipt);
        self
    }

    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.detail.insert(key.into(), value.into());
        self
    }
}

/// Whether a line is an event or a signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Event,
    Checkpoint,
}

/// One line of the log, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 0-based position in the whole log.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(rename = "type")]
    pub kind: RecordKind,
    /// Hash of record `seq - 1` (record 0: the genesis hash of `log_id`).
    pub prev_hash: String,
    /// Random id of this log: on record 0 and on every checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Sensitive>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ChunkRead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
    /// Checkpoints: Ed25519 signature (hex) over [`checkpoint_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// This record's own hash (hex); not part of the hashed bytes.
    #[serde(skip)]
    pub hash: String,
}

impl Record {
    pub(crate) fn event(seq: u64, time: String, prev_hash: String, event: AuditEvent) -> Record {
        Record {
            seq,
            time,
            kind: RecordKind::Event,
            prev_hash,
            log_id: None,
            principal: event.principal,
            address: event.address,
            action: Some(event.action),
            resource: event.resource,
            decision: event.decision,
            outcome: Some(event.outcome),
            query: event.query,
            reads: event.reads,
            receipt: event.receipt,
            detail: event.detail,
            signature: None,
            hash: String::new(),
        }
    }

    pub(crate) fn checkpoint(
        seq: u64,
        time: String,
        prev_hash: String,
        log_id: String,
        signature: String,
    ) -> Record {
        Record {
            seq,
            time,
            kind: RecordKind::Checkpoint,
            prev_hash,
            log_id: Some(log_id),
            principal: None,
            address: None,
            action: None,
            resource: None,
            decision: None,
            outcome: None,
            query: None,
            reads: Vec::new(),
            receipt: None,
            detail: BTreeMap::new(),
            signature: Some(signature),
            hash: String::new(),
        }
    }

    /// Whether this record names `document`: as its resource, in what it read, or as the
    /// `document_id` detail.
    pub fn mentions_document(&self, document: &str) -> bool {
        self.resource.as_deref() == Some(document)
            || self.reads.iter().any(|r| r.document_id == document)
            || self.detail.get("document_id").map(String::as_str) == Some(document)
    }
}

/// The hash the first record's `prev_hash` must carry.
pub(crate) fn genesis_hash(log_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN);
    h.update(log_id.as_bytes());
    hex::encode(h.finalize())
}

/// The bytes a checkpoint signs: the log, how many records precede it, the hash of the last one
/// (which, through the chain, commits to all of them) and the checkpoint's time.
pub(crate) fn checkpoint_message(log_id: &str, seq: u64, prev_hash: &str, time: &str) -> Vec<u8> {
    format!("{CHECKPOINT_DOMAIN}\n{log_id}\n{seq}\n{prev_hash}\n{time}\n").into_bytes()
}

fn hash_body(body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(RECORD_DOMAIN);
    h.update(body);
    hex::encode(h.finalize())
}

/// The record as one line (with `\n`), and its hash.
pub(crate) fn encode(record: &Record) -> Result<(Vec<u8>, String), serde_json::Error> {
    let mut line = serde_json::to_vec(record)?;
    let hash = hash_body(&line);
    // serde_json writes an object, so the last byte is its closing brace.
    line.pop();
    line.extend_from_slice(HASH_PREFIX);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Ok((line, hash))
}

/// Why a line failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// No well-formed `"hash"` member at the end.
    NoHash,
    /// The stored hash does not match the bytes: the line was edited.
    HashMismatch,
    /// The hash matches but the JSON is not a record.
    Malformed(String),
}

/// Checks and parses one line (without its `\n`).
pub(crate) fn decode(line: &[u8]) -> Result<Record, DecodeError> {
    if line.len() < HASH_SUFFIX_LEN + 2 {
        return Err(DecodeError::NoHash);
    }
    let split = line.len() - HASH_SUFFIX_LEN;
    let stored = &line[split + HASH_PREFIX.len()..line.len() - 2];
    if &line[split..split + HASH_PREFIX.len()] != HASH_PREFIX
        || &line[line.len() - 2..] != b"\"}"
        || !stored
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(DecodeError::NoHash);
    }
    let mut body = Vec::with_capacity(split + 1);
    body.extend_from_slice(&line[..split]);
    body.push(b'}');
    let computed = hash_body(&body);
    if computed.as_bytes() != stored {
        return Err(DecodeError::HashMismatch);
    }
    let mut record: Record =
        serde_json::from_slice(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    record.hash = computed;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let event = AuditEvent::new(actions::SEARCH, outcomes::OK)
            .principal("alice")
            .detail("k", "10");
        let record = Record::event(3, "2026-01-01T00:00:00Z".into(), "ab".repeat(32), event);
        let (line, hash) = encode(&record).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let back = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!(back.hash, hash);
        assert_eq!(back.principal.as_deref(), Some("alice"));
        let mut edited = line[..line.len() - 1].to_vec();
        let at = edited.iter().position(|&b| b == b'a').unwrap();
        edited[at] = b'b';
        assert_eq!(decode(&edited), Err(DecodeError::HashMismatch));
    }

    #[test]
    fn hmac_is_keyed_and_stable() {
        let a = HmacKey([1; 32]);
        let b = HmacKey([2; 32]);
        assert_eq!(a.digest("x"), a.digest("x"));
        assert_ne!(a.digest("x"), b.digest("x"));
        assert_eq!(a.sensitive("q", false).plain, None);
        assert_eq!(a.sensitive("q", true).plain.as_deref(), Some("q"));
    }
}
