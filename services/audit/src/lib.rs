//! Vellum's tamper-evident audit log.
//!
//! One JSON line per auditable event (search, ask, summarize, document read, upload, delete,
//! login, key or user change, policy reload, denial) in append-only segments. Each line carries
//! the previous line's hash and its own (a hash chain); at a fixed interval and at shutdown a
//! checkpoint (record count, head hash) signed with an Ed25519 key is appended and copied to
//! `head.json`. Queries are stored as HMAC-SHA256 under a key kept in another folder. `verify`
//! checks a copy of the folder offline and names the first bad record. See docs/audit.md.
//!
//! Main items: [`AuditLog`] (the writer; `append` fails closed), [`AuditEvent`], [`verify()`],
//! [`export`], [`search_by_query`].

mod error;
mod keys;
mod log;
mod query;
mod record;
mod verify;

pub use error::{AuditError, Result};
pub use keys::{
    load_hmac_key, parse_public_key, public_key_hex, read_public_key, HMAC_KEY_FILE,
    PUBLIC_KEY_FILE, SIGNING_KEY_FILE,
};
pub use log::{lock_holder, AuditConfig, AuditLog, DEFAULT_KEY_DIR, DEFAULT_LOG_DIR};
pub use query::{export, parse_time, read_records, search_by_query, ExportFilter, ExportedRecord};
pub use record::{
    actions, outcomes, AuditEvent, ChunkRead, Decision, HmacKey, Record, RecordId, RecordKind,
    Sensitive,
};
pub use verify::{verify, Problem, ProblemKind, VerifyReport, HEAD_FILE};

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn audit_log_is_send_and_sync() {
        assert_send_sync::<crate::AuditLog>();
    }
}
