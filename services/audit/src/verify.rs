//! Offline verification: walks every segment in order and checks each line's own hash, the
//! sequence numbers, the chain, every checkpoint's signature, and the head file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

use crate::error::Result;
use crate::keys::parse_public_key;
use crate::record::{checkpoint_message, decode, genesis_hash, DecodeError, Record, RecordKind};

/// The copy of the latest signed checkpoint, outside the segments.
pub const HEAD_FILE: &str = "head.json";
const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".jsonl";

pub(crate) fn segment_name(index: u32) -> String {
    format!("{SEGMENT_PREFIX}{index:08}{SEGMENT_SUFFIX}")
}

/// The log's segments, ordered by number.
pub(crate) fn list_segments(dir: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
        else {
            continue;
        };
        if let Ok(index) = number.parse::<u32>() {
            segments.push((index, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// What kind of damage verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// No segment files at all.
    NoLog,
    /// A file could not be read.
    Io,
    /// A segment numbering gap, or the first segment is missing.
    SegmentMissing,
    /// A line without its newline: the file was cut mid-record.
    TornLine,
    /// A line's bytes do not match its own hash: edited.
    HashMismatch,
    /// A line that is not a well-formed record.
    Malformed,
    /// A record at the wrong position: dropped, inserted, duplicated or reordered records.
    SequenceMismatch,
    /// A record whose `prev_hash` is not the previous record's hash.
    ChainBreak,
    /// Record 0 does not start the chain of its log id.
    BadGenesis,
    /// A checkpoint whose signature does not verify with the given public key.
    BadSignature,
    /// A checkpoint of another log.
    LogIdMismatch,
    /// head.json is missing.
    HeadMissing,
    /// head.json does not match the checkpoint at its position.
    HeadMismatch,
    /// The log ends before the checkpoint head.json signs: records were cut off.
    Truncated,
}

/// The first problem found, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The segment file name (or head.json).
    pub file: Option<String>,
    /// 1-based line in that file.
    pub line: Option<u64>,
    /// The record position (sequence number) expected there.
    pub seq: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line, self.seq) {
            (Some(file), Some(line), Some(seq)) => {
                write!(f, "record {seq} ({file} line {line}): ")?
            }
            (Some(file), Some(line), None) => write!(f, "{file} line {line}: ")?,
            (Some(file), None, _) => write!(f, "{file}: ")?,
            _ => {}
        }
        write!(f, "{}", self.message)
    }
}

/// What `verify` found. `problem` is the first bad thing; after it nothing is checked.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub segments: usize,
    /// Records that verified (all of them when intact).
    pub records: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub log_id: Option<String>,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// Sequence number of the last checkpoint in the segments.
    pub last_checkpoint: Option<u64>,
    /// Sequence number of the checkpoint in head.json.
    pub head_checkpoint: Option<u64>,
    /// Records after the last checkpoint: chained but not yet signed (a running or crashed
    /// server's log has some; see docs/audit.md for what that allows).
    pub unsigned_tail: u64,
    pub problem: Option<Problem>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// A torn last line that `open` may cut off (it was never completely written).
#[derive(Debug, Clone)]
pub(crate) struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// What `open` needs to continue the chain.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub next_seq: u64,
    pub last_hash: String,
    pub log_id: String,
    pub segment_index: u32,
    pub segment_path: PathBuf,
    /// Length of the last segment up to its last complete line.
    pub segment_len: u64,
    pub torn: Option<TornTail>,
}

/// Verifies the log folder `dir` against `public_key` (see [`parse_public_key`] for the
/// accepted forms). `Err` only when the key itself is unusable; damage is in the report.
pub fn verify(dir: &Path, public_key: &str) -> Result<VerifyReport> {
    let key = parse_public_key(public_key)?;
    Ok(scan(dir, &key, false).0)
}

struct Scanner<'a> {
    key: &'a VerifyingKey,
    report: VerifyReport,
    last_hash: Option<String>,
    /// Checkpoint seq -> its hash, to match head.json.
    checkpoints: HashMap<u64, String>,
}

fn problem(
    kind: ProblemKind,
    file: Option<&Path>,
    line: Option<u64>,
    seq: Option<u64>,
    message: impl Into<String>,
) -> Problem {
    Problem {
        kind,
        file: file
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        line,
        seq,
        message: message.into(),
    }
}

/// The scan behind `verify` and `open`. With `allow_torn_tail`, an incomplete last line of the
/// last segment is returned as [`TornTail`] instead of a problem.
pub(crate) fn scan(
    dir: &Path,
    key: &VerifyingKey,
    allow_torn_tail: bool,
) -> (VerifyReport, Option<Tail>) {
    let mut s = Scanner {
        key,
        report: VerifyReport {
            dir: dir.to_path_buf(),
            segments: 0,
            records: 0,
            events: 0,
            checkpoints: 0,
            log_id: None,
            first_time: None,
            last_time: None,
            last_checkpoint: None,
            head_checkpoint: None,
            unsigned_tail: 0,
            problem: None,
        },
        last_hash: None,
        checkpoints: HashMap::new(),
    };
    let tail = match s.run(dir, allow_torn_tail) {
        Ok(tail) => Some(tail),
        Err(p) => {
            s.report.problem = Some(p);
            None
        }
    };
    s.report.unsigned_tail = match s.report.last_checkpoint {
        Some(seq) => s.report.records.saturating_sub(seq + 1),
        None => s.report.records,
    };
    (s.report, tail)
}

impl Scanner<'_> {
    fn run(&mut self, dir: &Path, allow_torn_tail: bool) -> Result<Tail, Problem> {
        let segments = list_segments(dir).map_err(|e| {
            problem(
                ProblemKind::Io,
                Some(dir),
                None,
                None,
                format!("cannot list the folder: {e}"),
            )
        })?;
        if segments.is_empty() {
            return Err(problem(
                ProblemKind::NoLog,
                None,
                None,
                None,
                format!(
                    "no audit segments ({}*{}) in {}",
                    SEGMENT_PREFIX,
                    SEGMENT_SUFFIX,
                    dir.display()
                ),
            ));
        }
        self.report.segments = segments.len();
        let mut torn = None;
        let mut last_len = 0;
        for (i, (index, path)) in segments.iter().enumerate() {
            let expected = i as u32 + 1;
            if *index != expected {
                return Err(problem(
                    ProblemKind::SegmentMissing,
                    Some(path),
                    None,
                    Some(self.report.records),
                    format!(
                        "{} is missing (segments must be numbered 1, 2, 3…)",
                        segment_name(expected)
                    ),
                ));
            }
            let is_last = i + 1 == segments.len();
            let (len, t) = self.segment(path, is_last && allow_torn_tail)?;
            last_len = len;
            torn = t;
        }
        self.head(dir)?;
        // Non-empty: checked above.
        let (index, path) = segments[segments.len() - 1].clone();
        Ok(Tail {
            next_seq: self.report.records,
            last_hash: self.last_hash.clone().unwrap_or_default(),
            log_id: self.report.log_id.clone().unwrap_or_default(),
            segment_index: index,
            segment_path: path,
            segment_len: last_len,
            torn,
        })
    }

    /// Checks one segment; returns its length up to the last complete line.
    fn segment(
        &mut self,
        path: &Path,
        allow_torn: bool,
    ) -> Result<(u64, Option<TornTail>), Problem> {
        let io = |e: std::io::Error| {
            problem(
                ProblemKind::Io,
                Some(path),
                None,
                None,
                format!("cannot read: {e}"),
            )
        };
        let mut reader = BufReader::new(File::open(path).map_err(io)?);
        let mut line = Vec::new();
        let mut offset = 0u64;
        let mut line_no = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 {
                return Ok((offset, None));
            }
            line_no += 1;
            let seq = self.report.records;
            if line.last() != Some(&b'\n') {
                if allow_torn {
                    return Ok((
                        offset,
                        Some(TornTail {
                            segment: path.to_path_buf(),
                            offset,
                            bytes: line.clone(),
                        }),
                    ));
                }
                return Err(problem(
                    ProblemKind::TornLine,
                    Some(path),
                    Some(line_no),
                    Some(seq),
                    format!(
                        "the file ends in the middle of a record ({} bytes without a newline): \
                         it was truncated or cut mid-write",
                        line.len()
                    ),
                ));
            }
            self.record(&line[..line.len() - 1], path, line_no, seq)?;
            offset += n as u64;
        }
    }

    fn record(&mut self, line: &[u8], path: &Path, line_no: u64, seq: u64) -> Result<(), Problem> {
        let at =
            |kind, message: String| problem(kind, Some(path), Some(line_no), Some(seq), message);
        let record = decode(line).map_err(|e| match e {
            DecodeError::NoHash => at(
                ProblemKind::Malformed,
                "no \"hash\" member at the end of the line: edited or not a record".into(),
            ),
            DecodeError::HashMismatch => at(
                ProblemKind::HashMismatch,
                "the line does not match its own hash: the record was edited".into(),
            ),
            DecodeError::Malformed(e) => at(ProblemKind::Malformed, format!("not a record: {e}")),
        })?;
        if record.seq != seq {
            let what = if record.seq > seq {
                format!(
                    "found record {} where record {seq} belongs: records were dropped or moved",
                    record.seq
                )
            } else {
                format!(
                    "found record {} again after record {}: records were duplicated, inserted or reordered",
                    record.seq,
                    seq.saturating_sub(1)
                )
            };
            return Err(at(ProblemKind::SequenceMismatch, what));
        }
        match &self.last_hash {
            None => {
                let Some(log_id) = record.log_id.clone() else {
                    return Err(at(
                        ProblemKind::BadGenesis,
                        "record 0 carries no log id".into(),
                    ));
                };
                if record.prev_hash != genesis_hash(&log_id) {
                    return Err(at(
                        ProblemKind::BadGenesis,
                        "record 0 does not start the chain of its log id".into(),
                    ));
                }
                self.report.log_id = Some(log_id);
            }
            Some(last) => {
                if &record.prev_hash != last {
                    return Err(at(
                        ProblemKind::ChainBreak,
                        format!(
                            "prev_hash is not the hash of record {}: a record before it was \
                             dropped, inserted, replaced, or edited and re-hashed",
                            seq.saturating_sub(1)
                        ),
                    ));
                }
            }
        }
        match record.kind {
            RecordKind::Checkpoint => self.checkpoint(&record).map_err(|m| at(m.0, m.1))?,
            RecordKind::Event => {
                if record.action.as_deref().is_none_or(str::is_empty) {
                    return Err(at(
                        ProblemKind::Malformed,
                        "an event without an action".into(),
                    ));
                }
                self.report.events += 1;
            }
        }
        if self.report.first_time.is_none() {
            self.report.first_time = Some(record.time.clone());
        }
        self.report.last_time = Some(record.time);
        self.last_hash = Some(record.hash);
        self.report.records += 1;
        Ok(())
    }

    /// Checks a checkpoint's log id and signature.
    fn checkpoint(&mut self, record: &Record) -> Result<(), (ProblemKind, String)> {
        self.check_signature(record)?;
        self.checkpoints.insert(record.seq, record.hash.clone());
        self.report.checkpoints += 1;
        self.report.last_checkpoint = Some(record.seq);
        Ok(())
    }

    fn check_signature(&self, record: &Record) -> Result<(), (ProblemKind, String)> {
        let log_id = record.log_id.as_deref().unwrap_or_default();
        if self.report.log_id.as_deref() != Some(log_id) {
            return Err((
                ProblemKind::LogIdMismatch,
                format!("checkpoint of another log ({log_id:?})"),
            ));
        }
        let signature = record
            .signature
            .as_deref()
            .and_then(|s| hex::decode(s).ok())
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or((
                ProblemKind::BadSignature,
                "checkpoint without a valid signature".to_string(),
            ))?;
        let message = checkpoint_message(log_id, record.seq, &record.prev_hash, &record.time);
        self.key.verify_strict(&message, &signature).map_err(|_| {
            (
                ProblemKind::BadSignature,
                "checkpoint signature does not verify with this public key (forged, edited, or \
                 signed by another key)"
                    .to_string(),
            )
        })
    }

    /// head.json must hold one of the log's checkpoints, byte for byte (same hash).
    fn head(&mut self, dir: &Path) -> Result<(), Problem> {
        let path = dir.join(HEAD_FILE);
        let at = |kind, message: String| problem(kind, Some(&path), None, None, message);
        let text =
            match fs::read(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(at(
                    ProblemKind::HeadMissing,
                    "missing: the latest signed checkpoint cannot be checked (the log may have \
                     been cut back)"
                        .into(),
                )),
                Err(e) => return Err(at(ProblemKind::Io, format!("cannot read: {e}"))),
            };
        let line = text.strip_suffix(b"\n").unwrap_or(&text);
        let record = decode(line).map_err(|e| {
            at(
                ProblemKind::HeadMismatch,
                format!("not a valid checkpoint line ({e:?})"),
            )
        })?;
        if record.kind != RecordKind::Checkpoint {
            return Err(at(ProblemKind::HeadMismatch, "not a checkpoint".into()));
        }
        self.check_signature(&record)
            .map_err(|(kind, m)| at(kind, m))?;
        self.report.head_checkpoint = Some(record.seq);
        if record.seq >= self.report.records {
            return Err(problem(
                ProblemKind::Truncated,
                Some(&path),
                None,
                Some(self.report.records),
                format!(
                    "the log ends after {} records but the signed head checkpoint is record {}: \
                     records at the end were removed",
                    self.report.records, record.seq
                ),
            ));
        }
        if self.checkpoints.get(&record.seq) != Some(&record.hash) {
            return Err(at(
                ProblemKind::HeadMismatch,
                format!(
                    "the signed head checkpoint differs from record {} in the log",
                    record.seq
                ),
            ));
        }
        Ok(())
    }
}
