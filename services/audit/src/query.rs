//! Reading the log back for people: all records, filtered exports, and "who searched for X"
//! by HMAC. These read without verifying; run [`crate::verify`] for integrity.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{io_err, AuditError, Result};
use crate::record::{decode, DecodeError, HmacKey, Record, RecordKind};
use crate::verify::list_segments;

/// Which records an export keeps (all conditions must hold).
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Inclusive.
    pub since: Option<OffsetDateTime>,
    /// Exclusive.
    pub until: Option<OffsetDateTime>,
    pub principal: Option<String>,
    /// Matches the resource, any chunk read, or the `document_id` detail.
    pub document: Option<String>,
    pub action: Option<String>,
    /// Also return the signed checkpoints.
    pub include_checkpoints: bool,
}

impl ExportFilter {
    pub fn matches(&self, record: &Record) -> bool {
        if record.kind == RecordKind::Checkpoint && !self.include_checkpoints {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(time) = OffsetDateTime::parse(&record.time, &Rfc3339) else {
                return false;
            };
            if self.since.is_some_and(|since| time < since)
                || self.until.is_some_and(|until| time >= until)
            {
                return false;
            }
        }
        if let Some(principal) = &self.principal {
            if record.principal.as_ref() != Some(principal) {
                return false;
            }
        }
        if let Some(action) = &self.action {
            if record.action.as_ref() != Some(action) {
                return false;
            }
        }
        if let Some(document) = &self.document {
            if !record.mentions_document(document) {
                return false;
            }
        }
        true
    }
}

/// Parses an RFC 3339 time (for filters given on a command line).
pub fn parse_time(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| AuditError::Config(format!("{text:?} is not an RFC 3339 time: {e}")))
}

/// A record with its hash, as exports show it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedRecord {
    #[serde(flatten)]
    pub record: Record,
    pub hash: String,
}

/// Every record of the log, in order. Each line's own hash is checked (an edited line is an
/// error); the chain is not (that is `verify`'s job).
pub fn read_records(dir: &Path) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for_each_record(dir, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

fn for_each_record(dir: &Path, mut f: impl FnMut(Record) -> Result<()>) -> Result<()> {
    let segments = list_segments(dir).map_err(io_err(dir))?;
    if segments.is_empty() {
        return Err(AuditError::Config(format!(
            "no audit segments in {}",
            dir.display()
        )));
    }
    for (_, path) in segments {
        read_segment(&path, &mut f)?;
    }
    Ok(())
}

fn read_segment(path: &PathBuf, f: &mut impl FnMut(Record) -> Result<()>) -> Result<()> {
    let mut reader = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut line = Vec::new();
    let mut line_no = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io_err(path))? == 0 {
            return Ok(());
        }
        line_no += 1;
        let bad = |message: &str| AuditError::Record {
            segment: path.clone(),
            line: line_no,
            message: message.to_string(),
        };
        let Some(body) = line.strip_suffix(b"\n") else {
            return Err(bad("incomplete last line (cut mid-record)"));
        };
        let record = decode(body).map_err(|e| match e {
            DecodeError::NoHash => bad("no hash: not a record"),
            DecodeError::HashMismatch => bad("the line does not match its hash (edited)"),
            DecodeError::Malformed(m) => bad(&format!("not a record: {m}")),
        })?;
        f(record)?;
    }
}

/// The records `filter` keeps, in log order.
pub fn export(dir: &Path, filter: &ExportFilter) -> Result<Vec<ExportedRecord>> {
    let mut out = Vec::new();
    for_each_record(dir, |record| {
        if filter.matches(&record) {
            let hash = record.hash.clone();
            out.push(ExportedRecord { record, hash });
        }
        Ok(())
    })?;
    Ok(out)
}

/// The records whose query is `text` (matched by HMAC under `key`, so the log never needs the
/// text itself).
pub fn search_by_query(dir: &Path, key: &HmacKey, text: &str) -> Result<Vec<ExportedRecord>> {
    let wanted = key.digest(text);
    let mut out = Vec::new();
    for_each_record(dir, |record| {
        if record
            .query
            .as_ref()
            .is_some_and(|q| q.hmac_sha256 == wanted)
        {
            let hash = record.hash.clone();
            out.push(ExportedRecord { record, hash });
        }
        Ok(())
    })?;
    Ok(out)
}
