//! Extraction in a child process with CPU-time, memory and wall-clock limits.
//!
//! `catch_unwind` stops a parser's panic but not an endless loop, a stack overflow (which
//! aborts the process), an `abort()` or a memory blow-up. So the ingest pipeline never parses
//! an untrusted file in its own process: [`Sandbox::extract`] starts a worker (the `vellum`
//! binary's hidden `__extract-worker` mode, or the `vellum-extract-worker` binary of this
//! crate), sends it the file's bytes on stdin, and reads the result as JSON from its stdout.
//!
//! The worker limits itself with `setrlimit` before it reads a byte: address space
//! (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`), no files written (`RLIMIT_FSIZE` 0), no core
//! dumps. The parent kills it when the wall-clock timeout passes. Whatever happens to the
//! worker becomes an [`Error`] that names the reason ("timeout after 30 s", "needed more than
//! 2048 MB of memory", "parser overflowed its stack"), and the caller's process goes on.
//!
//! Protocol: stdin = one JSON [`Request`] line, then exactly `Request::len` bytes of file;
//! stdout = one JSON [`Response`]. One process per file, so one file's limits never add up
//! with another's and no parser state survives a hostile input.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::extract::{extract_with_passwords, ExtractLimits, ExtractedDocument, PdfPasswords};

/// Largest response (JSON of the extracted text) read from a worker. Extracted text is at
/// most a few times the file size; a worker that writes more is treated as broken.
const MAX_RESPONSE_BYTES: u64 = 1 << 30;
/// How often the parent checks whether the worker has finished.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Stderr kept from a dead worker to explain its death.
const STDERR_TAIL_BYTES: u64 = 64 * 1024;

/// Limits of one worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxLimits {
    /// Wall-clock time before the worker is killed.
    pub timeout: Duration,
    /// CPU seconds the worker may use (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Address space the worker may map (`RLIMIT_AS`), in bytes.
    pub memory_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            timeout: Duration::from_secs(60),
            cpu_seconds: 60,
            memory_bytes: 2 << 30,
        }
    }
}

/// What the parent sends before the file's bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The file's name (tells Markdown from plain text), if known.
    pub file_name: Option<String>,
    /// Number of file bytes that follow the request line.
    pub len: u64,
    /// Extraction limits (pages, zip sizes...).
    pub limits: ExtractLimits,
    /// CPU seconds for `RLIMIT_CPU`.
    pub cpu_seconds: u64,
    /// Bytes for `RLIMIT_AS`.
    pub memory_bytes: u64,
    /// Passwords to try on encrypted PDFs.
    #[serde(default)]
    pub pdf_passwords: PdfPasswords,
}

/// What the worker answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// The extracted document.
    Ok(ExtractedDocument),
    /// Why the file could not be extracted.
    Err(Error),
}

/// The sandbox itself could not work (the worker would not start, or spoke nonsense): not
/// the file's fault, so the caller should stop rather than blame every file.
#[derive(Debug, thiserror::Error)]
#[error("the extraction worker {program} failed: {reason}")]
pub struct SandboxError {
    /// The worker program.
    pub program: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// Starts worker processes to extract files, one per file.
#[derive(Debug, Clone)]
pub struct Sandbox {
    program: PathBuf,
    args: Vec<OsString>,
    limits: SandboxLimits,
}

impl Sandbox {
    /// A sandbox whose worker is `program args...` (a process that calls [`worker_main`]).
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, limits: SandboxLimits) -> Self {
        Sandbox {
            program: program.into(),
            args,
            limits,
        }
    }

    /// Returns the worker's limits.
    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Extracts `bytes` in a fresh worker. The outer error is the sandbox failing; the inner
    /// one is the file's (including a worker killed by a limit or crashed by the file).
    pub fn extract(
        &self,
        bytes: &[u8],
        file_name: Option<&str>,
        limits: &ExtractLimits,
    ) -> std::result::Result<Result<ExtractedDocument>, SandboxError> {
        self.extract_with_passwords(bytes, file_name, limits, &PdfPasswords::default())
    }

    /// [`Sandbox::extract`], trying `passwords` on encrypted PDFs (sent to the worker on its
    /// stdin, never on its command line, where other users could read them).
    pub fn extract_with_passwords(
        &self,
        bytes: &[u8],
        file_name: Option<&str>,
        limits: &ExtractLimits,
        passwords: &PdfPasswords,
    ) -> std::result::Result<Result<ExtractedDocument>, SandboxError> {
        let sandbox_error = |reason: String| SandboxError {
            program: self.program.clone(),
            reason,
        };
        let request = Request {
            file_name: file_name.map(str::to_string),
            len: bytes.len() as u64,
            limits: limits.clone(),
            cpu_seconds: self.limits.cpu_seconds,
            memory_bytes: self.limits.memory_bytes,
            pdf_passwords: passwords.clone(),
        };
        let mut header = serde_json::to_vec(&request)
            .map_err(|error| sandbox_error(format!("cannot encode the request: {error}")))?;
        header.push(b'\n');

        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_BACKTRACE", "0")
            .spawn()
            .map_err(|error| sandbox_error(format!("cannot start it: {error}")))?;
        let started = Instant::now();

        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(stdin), Some(stdout), Some(stderr)) => (stdin, stdout, stderr),
                _ => {
                    kill(&mut child);
                    return Err(sandbox_error("its pipes were not opened".into()));
                }
            };
        let outcome = std::thread::scope(|scope| {
            // Writing, reading and waiting run side by side: a worker that stops reading or
            // fills its stdout pipe must not block the parent past the timeout.
            let writer = scope.spawn(move || {
                let mut stdin = stdin;
                // A worker that dies early closes the pipe; its exit status tells why.
                let _ = stdin
                    .write_all(&header)
                    .and_then(|()| stdin.write_all(bytes));
            });
            let reader = scope.spawn(move || {
                let mut out = Vec::new();
                let read = stdout.take(MAX_RESPONSE_BYTES + 1).read_to_end(&mut out);
                read.map(|_| out)
            });
            let err_reader = scope.spawn(move || {
                let mut err = Vec::new();
                let _ = std::io::copy(&mut stderr.take(u64::MAX), &mut TailWriter::new(&mut err));
                err
            });
            let status = wait_with_timeout(&mut child, self.limits.timeout);
            let _ = writer.join();
            let out = reader.join();
            let err = err_reader.join().unwrap_or_default();
            (status, out, err)
        });
        let (status, out, err) = outcome;
        let elapsed = started.elapsed();
        let status = match status {
            Ok(Some(status)) => status,
            Ok(None) => {
                return Ok(Err(Error::Timeout {
                    seconds: self.limits.timeout.as_secs_f64(),
                }))
            }
            Err(error) => return Err(sandbox_error(format!("cannot wait for it: {error}"))),
        };
        let out = match out {
            Ok(Ok(out)) => out,
            _ => return Err(sandbox_error("its output could not be read".into())),
        };
        if status.success() {
            if out.len() as u64 > MAX_RESPONSE_BYTES {
                return Ok(Err(Error::TooLarge {
                    reason: format!("extracted text is over {} MB", MAX_RESPONSE_BYTES >> 20),
                }));
            }
            return match serde_json::from_slice::<Response>(&out) {
                Ok(Response::Ok(document)) => Ok(Ok(document)),
                Ok(Response::Err(error)) => Ok(Err(error)),
                Err(error) => Err(sandbox_error(format!(
                    "its answer is not valid ({error}); is {} an extraction worker?",
                    self.program.display()
                ))),
            };
        }
        tracing::debug!(
            ?status,
            elapsed_ms = elapsed.as_millis() as u64,
            "extraction worker died"
        );
        Ok(Err(explain_death(status, &err, &self.limits)))
    }
}

/// Waits for the child; `Ok(None)` means it was killed at the timeout.
pub(crate) fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            kill(child);
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn kill(child: &mut Child) {
    // Already gone is fine; reap it so no zombie is left.
    let _ = child.kill();
    let _ = child.wait();
}

/// Turns a worker's abnormal exit into a reason a person understands.
fn explain_death(status: ExitStatus, stderr: &[u8], limits: &SandboxLimits) -> Error {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(stderr);
    let memory_mb = limits.memory_bytes >> 20;
    if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        return Error::TooLarge {
            reason: format!("extraction needed more than {memory_mb} MB of memory"),
        };
    }
    if stderr.contains("has overflowed its stack") {
        return Error::Crashed {
            reason: "the parser overflowed its stack (a deeply nested or cyclic file)".into(),
        };
    }
    match status.signal() {
        // SIGXCPU at the soft limit, SIGKILL at the hard one.
        Some(24) => Error::Timeout {
            seconds: limits.cpu_seconds as f64,
        },
        Some(signal) => Error::Crashed {
            reason: format!(
                "the parser was killed by signal {signal} ({})",
                signal_name(signal)
            ),
        },
        None => Error::Crashed {
            reason: format!(
                "the parser exited with status {}{}",
                status.code().unwrap_or(-1),
                last_line(&stderr)
                    .map(|line| format!(": {line}"))
                    .unwrap_or_default()
            ),
        },
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => "illegal instruction",
        6 => "abort",
        7 => "bus error",
        8 => "arithmetic error",
        9 => "killed, probably the CPU-time limit",
        11 => "segmentation fault",
        _ => "unexpected signal",
    }
}

/// Keeps the last `STDERR_TAIL_BYTES` of what is written (a hostile file can make a parser
/// print without end).
struct TailWriter<'a> {
    buffer: &'a mut Vec<u8>,
}

impl<'a> TailWriter<'a> {
    fn new(buffer: &'a mut Vec<u8>) -> Self {
        TailWriter { buffer }
    }
}

impl Write for TailWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        let limit = STDERR_TAIL_BYTES as usize;
        if self.buffer.len() > 2 * limit {
            let excess = self.buffer.len() - limit;
            self.buffer.drain(..excess);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The worker's side: call it from a binary's `main` (or a hidden subcommand) and return its
/// exit code. Reads a [`Request`] and the file from stdin, limits itself, extracts, and
/// writes a [`Response`] to stdout.
pub fn worker_main() -> ExitCode {
    match serve_one() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Only reached when the protocol itself fails: the parent reports it.
            let _ = writeln!(std::io::stderr(), "vellum extraction worker: {message}");
            ExitCode::from(2)
        }
    }
}

fn serve_one() -> std::result::Result<(), String> {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // The request line is small; read it byte by byte so no file bytes are buffered away.
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => return Err("stdin closed before the request".into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(error) => return Err(format!("cannot read the request: {error}")),
        }
        if line.len() > 1 << 20 {
            return Err("request line too long".into());
        }
    }
    let request: Request =
        serde_json::from_slice(&line).map_err(|error| format!("bad request: {error}"))?;
    apply_rlimits(&request)?;

    let response = match read_file(&mut stdin, request.len, request.memory_bytes)? {
        Ok(bytes) => {
            match extract_with_passwords(
                &bytes,
                request.file_name.as_deref(),
                &request.limits,
                &request.pdf_passwords,
            ) {
                Ok(document) => Response::Ok(document),
                Err(error) => Response::Err(error),
            }
        }
        Err(error) => Response::Err(error),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &response)
        .map_err(|error| format!("cannot write the answer: {error}"))?;
    stdout
        .flush()
        .map_err(|error| format!("cannot write the answer: {error}"))
}

/// Reads the file's bytes. A file that does not fit the memory limit is the file's fault
/// (inner error); a short read is the protocol's (outer error).
fn read_file(
    stdin: &mut impl Read,
    len: u64,
    memory_bytes: u64,
) -> std::result::Result<Result<Vec<u8>>, String> {
    let too_large = || Error::TooLarge {
        reason: format!(
            "extraction needed more than {} MB of memory",
            memory_bytes >> 20
        ),
    };
    let mut bytes = Vec::new();
    let Ok(capacity) = usize::try_from(len) else {
        return Ok(Err(too_large()));
    };
    if bytes.try_reserve_exact(capacity).is_err() {
        return Ok(Err(too_large()));
    }
    match stdin.take(len).read_to_end(&mut bytes) {
        Ok(read) if read as u64 == len => Ok(Ok(bytes)),
        Ok(read) => Err(format!("expected {len} file bytes, got {read}")),
        Err(error) if error.kind() == std::io::ErrorKind::OutOfMemory => Ok(Err(too_large())),
        Err(error) => Err(format!("cannot read the file: {error}")),
    }
}

fn apply_rlimits(request: &Request) -> std::result::Result<(), String> {
    use rlimit::Resource;
    let set = |resource: Resource, soft: u64, hard: u64| {
        resource
            .set(soft, hard)
            .map_err(|error| format!("cannot set {}: {error}", resource.as_name()))
    };
    // Soft CPU limit sends SIGXCPU (reported as a timeout); the hard one, a second later,
    // SIGKILLs a worker that ignores it.
    set(
        Resource::CPU,
        request.cpu_seconds,
        request.cpu_seconds.saturating_add(1),
    )?;
    set(Resource::AS, request.memory_bytes, request.memory_bytes)?;
    set(Resource::FSIZE, 0, 0)?;
    set(Resource::CORE, 0, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_writer_keeps_the_end() {
        let mut buffer = Vec::new();
        let mut writer = TailWriter::new(&mut buffer);
        for _ in 0..10_000 {
            writer.write_all(b"0123456789abcdef").unwrap();
        }
        writer.write_all(b"THE END").unwrap();
        assert!(buffer.len() <= 2 * STDERR_TAIL_BYTES as usize);
        assert!(buffer.ends_with(b"THE END"));
    }

    #[test]
    fn deaths_are_explained() {
        use std::os::unix::process::ExitStatusExt;
        let limits = SandboxLimits::default();
        let oom = explain_death(
            ExitStatus::from_raw(6),
            b"memory allocation of 123 bytes failed\n",
            &limits,
        );
        assert!(oom.to_string().contains("2048 MB"), "{oom}");
        let stack = explain_death(
            ExitStatus::from_raw(11),
            b"thread 'x' has overflowed its stack\n",
            &limits,
        );
        assert!(
            stack.to_string().contains("overflowed its stack"),
            "{stack}"
        );
        let cpu = explain_death(ExitStatus::from_raw(24), b"", &limits);
        assert!(matches!(cpu, Error::Timeout { .. }), "{cpu}");
    }
}
