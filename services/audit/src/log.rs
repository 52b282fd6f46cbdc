//! The writer: one mutex-guarded segment file, a background flusher, signed checkpoints.
//!
//! Durability: `append` writes the whole line with one write(2) before it returns, so a record
//! survives a crash of the process as soon as `append` is back. The flusher thread fsyncs every
//! `fsync_interval`; a crash of the machine (power, kernel) may lose what was written in the
//! last interval. `fsync_interval = 0` fsyncs inside every `append` instead.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{io_err, AuditError, Result};
use crate::keys::{self, public_key_hex, Keys};
use crate::record::{
    actions, checkpoint_message, encode, genesis_hash, outcomes, AuditEvent, Record, RecordId,
    Sensitive,
};
use crate::verify::{self, list_segments, segment_name, HEAD_FILE};

/// Folder names under a data folder, for callers that keep the log there.
pub const DEFAULT_LOG_DIR: &str = "audit";
pub const DEFAULT_KEY_DIR: &str = "audit-keys";
const LOCK_FILE: &str = "writer.lock";

/// Where and how the log is written.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The log segments and head.json.
    pub dir: PathBuf,
    /// The signing and HMAC keys; must not be `dir` (the log alone reveals nothing).
    pub key_dir: PathBuf,
    /// Keep sensitive strings in plain text next to their HMAC (off by default).
    pub store_plain_queries: bool,
    /// A signed checkpoint after this many records…
    pub checkpoint_every: usize,
    /// …or when this much time has passed with unsigned records, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Start a new segment once the current one is this large.
    pub segment_max_bytes: u64,
    /// How often the flusher fsyncs; zero: fsync inside every append.
    pub fsync_interval: Duration,
    /// Who writes (e.g. `vellum serve (pid 42)`): kept in the writer lock file while the log is
    /// open, so another process refused with [`AuditError::Locked`] can say who holds it
    /// ([`lock_holder`]).
    pub holder: String,
}

/// Who holds the log in `dir` open for writing, as its [`AuditConfig::holder`] said; `None` if
/// nobody said (or nobody holds it).
pub fn lock_holder(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
    let holder = text.trim();
    (!holder.is_empty()).then(|| holder.to_string())
}

impl AuditConfig {
    pub fn new(dir: impl Into<PathBuf>, key_dir: impl Into<PathBuf>) -> Self {
        AuditConfig {
            dir: dir.into(),
            key_dir: key_dir.into(),
            store_plain_queries: false,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            segment_max_bytes: 64 << 20,
            fsync_interval: Duration::from_millis(50),
            holder: format!("vellum (pid {})", std::process::id()),
        }
    }

    /// `<data_dir>/audit` and `<data_dir>/audit-keys`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        AuditConfig::new(
            data_dir.join(DEFAULT_LOG_DIR),
            data_dir.join(DEFAULT_KEY_DIR),
        )
    }
}

struct Segment {
    file: File,
    path: PathBuf,
    len: u64,
}

/// A checkpoint line that is written but not yet fsynced nor in head.json.
struct PendingCheckpoint {
    seq: u64,
    line: Vec<u8>,
    file: std::io::Result<File>,
    path: PathBuf,
}

struct State {
    /// None until the first line goes into a new segment.
    segment: Option<Segment>,
    next_index: u32,
    next_seq: u64,
    last_hash: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Written but not yet fsynced.
    dirty: bool,
    failed: Option<String>,
    closed: bool,
    /// Test hook: the next writes go to this file instead of the segment.
    redirect: Option<File>,
}

struct Inner {
    config: AuditConfig,
    keys: Keys,
    public_key: String,
    log_id: String,
    state: Mutex<State>,
    wake: Condvar,
    /// Sequence number of the checkpoint in head.json (serializes head writes).
    head_written: Mutex<u64>,
    /// Held for the log's lifetime: one writer per folder.
    _lock: File,
}

/// The audit log. `Send + Sync`: share it (e.g. in an `Arc`) between request threads.
pub struct AuditLog {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

fn now() -> Result<String> {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| AuditError::Clock(e.to_string()))
}

/// fsync of a folder, so a created or renamed file's name is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Takes the writer's flock, waiting briefly before refusing: a process that forks (the
/// ingest sandbox, a test's `Command`) holds a copy of every descriptor between fork and exec,
/// so a lock just released by `close` can look held for a moment. Another writer still holding
/// it after the wait is refused with [`AuditError::Locked`].
fn acquire_writer_lock(lock: &File, dir: &Path) -> Result<()> {
    const TRIES: u32 = 50;
    for attempt in 0..TRIES {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(_) if attempt + 1 < TRIES => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break,
        }
    }
    Err(AuditError::Locked(dir.to_path_buf()))
}

impl AuditLog {
    /// Opens (or creates) the log: creates the keys on first start, verifies the existing log
    /// with its own key, cuts off (and records) a torn last line, then appends an
    /// `audit.start` event and a checkpoint.
    pub fn open(config: AuditConfig) -> Result<AuditLog> {
        if config.checkpoint_every == 0 || config.segment_max_bytes < 4096 {
            return Err(AuditError::Config(
                "checkpoint_every must be >= 1 and segment_max_bytes >= 4096".into(),
            ));
        }
        create_dir(&config.dir)?;
        create_dir(&config.key_dir)?;
        let same = fs::canonicalize(&config.dir).map_err(io_err(&config.dir))?
            == fs::canonicalize(&config.key_dir).map_err(io_err(&config.key_dir))?;
        if same {
            return Err(AuditError::Config(
                "key_dir must be a folder apart from the log folder".into(),
            ));
        }
        let lock_path = config.dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        acquire_writer_lock(&lock, &config.dir)?;
        // Who holds the log, for whoever is refused next (the lock itself is the flock).
        let mut holder_note = &lock;
        holder_note
            .set_len(0)
            .and_then(|()| holder_note.write_all(format!("{}\n", config.holder).as_bytes()))
            .map_err(io_err(&lock_path))?;
        let segments = list_segments(&config.dir).map_err(io_err(&config.dir))?;
        let fresh = segments.is_empty() && !config.dir.join(HEAD_FILE).exists();
        let keys = keys::load_or_create(&config.key_dir, fresh)?;
        let verifying = keys.signing.verifying_key();
        let mut start = AuditEvent::new(actions::AUDIT_START, outcomes::OK)
            .detail("version", env!("CARGO_PKG_VERSION"));
        let (state, log_id) = if fresh {
            let mut id = [0u8; 16];
            getrandom::fill(&mut id).map_err(|e| AuditError::Key(format!("no randomness: {e}")))?;
            let log_id = hex::encode(id);
            let state = State::new(1, 0, genesis_hash(&log_id));
            (state, log_id)
        } else {
            let (report, tail) = verify::scan(&config.dir, &verifying, true);
            let tail = match (report.problem, tail) {
                (None, Some(tail)) => tail,
                (Some(problem), _) => {
                    return Err(AuditError::Tampered {
                        dir: config.dir.clone(),
                        problem: Box::new(problem),
                    })
                }
                (None, None) => return Err(AuditError::Config("empty scan".into())),
            };
            start = start.detail("unsigned_records_found", report.unsigned_tail.to_string());
            if let Some(torn) = &tail.torn {
                // The line never finished (crash or full disk mid-write): cut it off, and say
                // so in the log itself.
                tracing::warn!(
                    segment = %torn.segment.display(),
                    offset = torn.offset,
                    bytes = torn.bytes.len(),
                    "audit log: cutting off a torn last line"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&torn.segment)
                    .map_err(io_err(&torn.segment))?;
                file.set_len(torn.offset)
                    .and_then(|()| file.sync_all())
                    .map_err(io_err(&torn.segment))?;
                let preview: String = String::from_utf8_lossy(&torn.bytes)
                    .chars()
                    .take(200)
                    .collect();
                start = start
                    .detail("torn_line_segment", torn.segment.display().to_string())
                    .detail("torn_line_offset", torn.offset.to_string())
                    .detail("torn_line_bytes", torn.bytes.len().to_string())
                    .detail("torn_line_sha256", hex::encode(Sha256::digest(&torn.bytes)))
                    .detail("torn_line_preview", preview);
            }
            let file = OpenOptions::new()
                .append(true)
                .open(&tail.segment_path)
                .map_err(io_err(&tail.segment_path))?;
            let mut state = State::new(tail.segment_index + 1, tail.next_seq, tail.last_hash);
            state.segment = Some(Segment {
                file,
                path: tail.segment_path,
                len: tail.segment_len,
            });
            (state, tail.log_id)
        };
        let inner = Arc::new(Inner {
            public_key: public_key_hex(&verifying),
            config,
            keys,
            log_id,
            state: Mutex::new(state),
            wake: Condvar::new(),
            head_written: Mutex::new(0),
            _lock: lock,
        });
        let pending = {
            let mut st = inner.lock()?;
            if fresh {
                start.detail.insert("log_created".into(), "true".into());
            }
            inner.write_event(&mut st, start, true)?;
            inner.checkpoint(&mut st)?
        };
        inner.finish_checkpoint(pending)?;
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("audit-flusher".into())
                .spawn(move || inner.flusher())
                .map_err(io_err("audit-flusher thread"))?
        };
        Ok(AuditLog {
            inner,
            flusher: Some(flusher),
        })
    }

    /// Appends one record. `Ok` once the line is written (in the kernel; fsynced within
    /// `fsync_interval`). Any `Err`: the record may be missing, so do not serve the request; the
    /// log then refuses further records until reopened.
    pub fn append(&self, event: AuditEvent) -> Result<RecordId> {
        let (id, pending) = {
            let mut st = self.inner.lock()?;
            let id = self.inner.write_event(&mut st, event, false)?;
            let pending = if st.since_checkpoint >= self.inner.config.checkpoint_every as u64 {
                Some(self.inner.checkpoint(&mut st)?)
            } else {
                None
            };
            (id, pending)
        };
        // The checkpoint's fsync and head.json happen after the lock is released, so other
        // appends do not wait for the disk.
        if let Some(pending) = pending {
            self.inner.finish_checkpoint(pending)?;
        }
        Ok(id)
    }

    /// The folder the log is written to (readers such as `verify` and `export` take it).
    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    /// The checkpoint public key, 64 hex digits (what `verify` and `vellum audit verify` take).
    pub fn public_key_hex(&self) -> String {
        self.inner.public_key.clone()
    }

    /// This log's random id.
    pub fn log_id(&self) -> &str {
        &self.inner.log_id
    }

    /// A sensitive string as the log stores it: HMAC, plus the text if `store_plain_queries`.
    pub fn sensitive(&self, text: &str) -> Sensitive {
        self.inner
            .keys
            .hmac
            .sensitive(text, self.inner.config.store_plain_queries)
    }

    /// Writes a signed checkpoint now (if anything is unsigned).
    pub fn checkpoint(&self) -> Result<()> {
        let pending = {
            let mut st = self.inner.lock()?;
            if st.failed.is_some() || st.closed {
                return Err(st.refusal());
            }
            if st.since_checkpoint == 0 {
                return Ok(());
            }
            self.inner.checkpoint(&mut st)?
        };
        self.inner.finish_checkpoint(pending)
    }

    /// Whether the log has stopped accepting records (and why).
    pub fn failure(&self) -> Option<String> {
        self.inner.lock().ok().and_then(|st| st.failed.clone())
    }

    /// Ends the log through a shared reference (when it lives in an `Arc`): an `audit.stop`
    /// event, a final checkpoint, fsync. Later appends return [`AuditError::Closed`].
    pub fn shutdown(&self) -> Result<()> {
        let result = {
            let mut st = self.inner.lock()?;
            if st.closed {
                return Ok(());
            }
            let result = if st.failed.is_some() {
                Err(st.refusal())
            } else {
                let stop = AuditEvent::new(actions::AUDIT_STOP, outcomes::OK);
                self.inner
                    .write_event(&mut st, stop, true)
                    .and_then(|_| self.inner.checkpoint(&mut st))
            };
            st.closed = true;
            result
        };
        self.inner.wake.notify_all();
        self.inner.finish_checkpoint(result?)
    }

    /// [`AuditLog::shutdown`], then waits for the flusher.
    pub fn close(mut self) -> Result<()> {
        let result = self.shutdown();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        result
    }

    /// Test hook: makes the next writes go to `file` (e.g. /dev/full, or a read-only handle) to
    /// exercise the failure path as root, whom folder permissions do not stop. Only with the
    /// `test-hooks` feature, which the workspace's test build turns on.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn redirect_writes_for_tests(&self, file: File) {
        if let Ok(mut st) = self.inner.lock() {
            st.redirect = Some(file);
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("audit log: no final checkpoint at shutdown: {e}");
        }
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

impl State {
    fn new(next_index: u32, next_seq: u64, last_hash: String) -> State {
        State {
            segment: None,
            next_index,
            next_seq,
            last_hash,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            dirty: false,
            failed: None,
            closed: false,
            redirect: None,
        }
    }

    fn refusal(&self) -> AuditError {
        match &self.failed {
            Some(reason) => AuditError::Failed(reason.clone()),
            None => AuditError::Closed,
        }
    }

    fn fail(&mut self, error: AuditError) -> AuditError {
        tracing::error!("audit log failed, refusing further records: {error}");
        self.failed = Some(error.to_string());
        error
    }
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        // A panic while holding the lock may have left a line half-written: stop.
        self.state
            .lock()
            .map_err(|_| AuditError::Failed("a thread panicked while writing".into()))
    }

    /// Writes an event; `internal` events (start/stop) may be written while closing.
    fn write_event(&self, st: &mut State, event: AuditEvent, internal: bool) -> Result<RecordId> {
        if st.failed.is_some() || (st.closed && !internal) {
            return Err(st.refusal());
        }
        if event.action.is_empty() {
            return Err(AuditError::Config("an audit event needs an action".into()));
        }
        let mut record = Record::event(st.next_seq, now()?, st.last_hash.clone(), event);
        if st.next_seq == 0 {
            record.log_id = Some(self.log_id.clone());
        }
        let id = self.write_record(st, &record)?;
        st.since_checkpoint += 1;
        if self.config.fsync_interval.is_zero() {
            self.sync(st)?;
        }
        Ok(id)
    }

    /// Writes one line (rotating the segment first if it is full). On failure the file is cut
    /// back to where the line began, and the log is marked failed.
    fn write_record(&self, st: &mut State, record: &Record) -> Result<RecordId> {
        let (line, hash) = encode(record)?;
        let full = st.segment.as_ref().is_some_and(|s| {
            s.len > 0 && s.len + line.len() as u64 > self.config.segment_max_bytes
        });
        if full || st.segment.is_none() {
            if let Err(e) = self.rotate(st) {
                return Err(st.fail(e));
            }
        }
        let State {
            segment, redirect, ..
        } = st;
        let Some(segment) = segment.as_mut() else {
            return Err(st.fail(AuditError::Failed("no open segment".into())));
        };
        let written = match redirect.as_mut() {
            Some(file) => file.write_all(&line),
            None => segment.file.write_all(&line),
        };
        if let Err(source) = written {
            // Best effort: cut a partial line off now, so the chain on disk stays whole; a line
            // that stays torn (the cut failed too) is found and recorded at the next open.
            let _ = segment.file.set_len(segment.len);
            let error = AuditError::Io {
                path: segment.path.clone(),
                source,
            };
            return Err(st.fail(error));
        }
        segment.len += line.len() as u64;
        st.next_seq += 1;
        st.last_hash = hash;
        st.dirty = true;
        Ok(RecordId(record.seq))
    }

    /// Closes the current segment (fsynced) and starts the next one.
    fn rotate(&self, st: &mut State) -> Result<()> {
        if let Some(old) = st.segment.take() {
            old.file.sync_data().map_err(io_err(&old.path))?;
        }
        let index = st.next_index;
        let path = self.config.dir.join(segment_name(index));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.config.dir)?;
        st.segment = Some(Segment { file, path, len: 0 });
        st.next_index = index + 1;
        st.dirty = false;
        Ok(())
    }

    fn sync(&self, st: &mut State) -> Result<()> {
        if let Some(segment) = &st.segment {
            if let Err(source) = segment.file.sync_data() {
                let error = AuditError::Io {
                    path: segment.path.clone(),
                    source,
                };
                return Err(st.fail(error));
            }
        }
        st.dirty = false;
        Ok(())
    }

    /// Appends a signed checkpoint; [`Inner::finish_checkpoint`] then makes it durable.
    fn checkpoint(&self, st: &mut State) -> Result<PendingCheckpoint> {
        if st.failed.is_some() {
            return Err(st.refusal());
        }
        let time = now()?;
        let message = checkpoint_message(&self.log_id, st.next_seq, &st.last_hash, &time);
        let signature = hex::encode(self.keys.signing.sign(&message).to_bytes());
        let record = Record::checkpoint(
            st.next_seq,
            time,
            st.last_hash.clone(),
            self.log_id.clone(),
            signature,
        );
        self.write_record(st, &record)?;
        st.since_checkpoint = 0;
        st.last_checkpoint = Instant::now();
        let (line, _) = encode(&record)?;
        let segment = st
            .segment
            .as_ref()
            .ok_or_else(|| AuditError::Failed("no open segment".into()))?;
        Ok(PendingCheckpoint {
            seq: record.seq,
            line,
            file: segment.file.try_clone(),
            path: segment.path.clone(),
        })
    }

    /// fsyncs the segment up to the checkpoint, then points head.json at it (never at a
    /// checkpoint that might not survive a power cut). Failure marks the log failed.
    fn finish_checkpoint(&self, pending: PendingCheckpoint) -> Result<()> {
        let PendingCheckpoint {
            seq,
            line,
            file,
            path,
        } = pending;
        let result = file
            .and_then(|f| f.sync_data())
            .map_err(io_err(path))
            .and_then(|()| {
                let mut written = self
                    .head_written
                    .lock()
                    .map_err(|_| AuditError::Failed("a thread panicked writing head".into()))?;
                // Checkpoints may finish out of order; head.json only moves forward.
                if seq > *written {
                    self.write_head(&line)?;
                    *written = seq;
                }
                Ok(())
            });
        result.map_err(|e| match self.lock() {
            Ok(mut st) => st.fail(e),
            Err(_) => e,
        })
    }

    /// head.json: written to a temporary file, fsynced, renamed over the old one.
    fn write_head(&self, line: &[u8]) -> Result<()> {
        let tmp = self.config.dir.join(format!("{HEAD_FILE}.tmp"));
        let head = self.config.dir.join(HEAD_FILE);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(line)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &head).map_err(io_err(&head))?;
        sync_dir(&self.config.dir)
    }

    /// The background thread: fsyncs written lines every `fsync_interval` and writes the
    /// time-driven checkpoints.
    fn flusher(&self) {
        let tick = if self.config.fsync_interval.is_zero() {
            self.config.checkpoint_interval.min(Duration::from_secs(1))
        } else {
            self.config.fsync_interval
        };
        let Ok(mut st) = self.lock() else { return };
        loop {
            // Checked before waiting too: `close` may have run before this thread started.
            if st.closed || st.failed.is_some() {
                return;
            }
            st = match self.wake.wait_timeout(st, tick) {
                Ok((guard, _)) => guard,
                Err(_) => return,
            };
            if st.closed || st.failed.is_some() {
                return;
            }
            if st.since_checkpoint > 0
                && st.last_checkpoint.elapsed() >= self.config.checkpoint_interval
            {
                // Errors mark the log failed; the next append reports them.
                let pending = self.checkpoint(&mut st);
                drop(st);
                if let Ok(pending) = pending {
                    let _ = self.finish_checkpoint(pending);
                }
                st = match self.lock() {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
                continue;
            }
            if !st.dirty {
                continue;
            }
            // fsync outside the lock, on a second handle of the same file, so appends go on.
            let Some(segment) = &st.segment else { continue };
            let path = segment.path.clone();
            let handle = segment.file.try_clone();
            st.dirty = false;
            drop(st);
            let result = handle.and_then(|file| file.sync_data());
            st = match self.lock() {
                Ok(guard) => guard,
                Err(_) => return,
            };
            if let Err(source) = result {
                st.fail(AuditError::Io { path, source });
                return;
            }
        }
    }
}
