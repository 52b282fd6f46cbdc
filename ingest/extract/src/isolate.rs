//! Extraction in a child process with CPU-time, memory and wall-clock limits, confined by
//! Landlock and a seccomp filter.
//!
//! `catch_unwind` stops a parser's panic but not an endless loop, a stack overflow (which
//! aborts the process), an `abort()` or a memory blow-up. So the ingest pipeline never parses
//! an untrusted file in its own process: [`Sandbox::extract`] starts a worker (the `vellum`
//! binary's hidden `__extract-worker` mode, or the `vellum-extract-worker` binary of this
//! crate), sends it the file's bytes on stdin, and reads the result as JSON from its stdout.
//!
//! The worker starts with an empty environment (no `VELLUM_ADMIN_PASSWORD`, no
//! `VELLUM_REMOTE_API_KEY`) and locks itself down before it reads a byte of the file:
//! `setrlimit` on address space (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`), file size
//! (`RLIMIT_FSIZE` 0) and core dumps; then Landlock with no rule at all (no path can be opened,
//! listed, created, removed or renamed; no TCP bind or connect; no signal out of the worker);
//! then a seccomp filter that makes network, file-changing, exec, ptrace and limit-raising
//! system calls fail with `EPERM` (it also stands in for Landlock where the kernel lacks it).
//! What is left is stdin, stdout, stderr and memory. [`sandbox_support`] says what the running
//! kernel enforces. The parent kills the worker when the wall-clock timeout passes. Whatever
//! happens to the worker becomes an [`Error`] that names the reason ("timeout after 30 s",
//! "needed more than 2048 MB of memory", "parser overflowed its stack"), and the caller's
//! process goes on.
//!
//! Protocol: stdin = one JSON [`Request`] line, then exactly `Request::len` bytes of file;
//! stdout = one JSON [`Response`]. One process per file, so one file's limits never add up
//! with another's and no parser state survives a hostile input. A request line of the form
//! `{"exec": ConfinedCommand}` instead makes the worker confine itself the same way (with
//! read access to the system's programs and libraries and write access to one folder) and
//! then exec a helper program: that is how OCR runs `pdftoppm` and `tesseract`
//! ([`Sandbox::run_confined`]).

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::OnceLock;
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
/// Stdout kept from a confined helper program (pdfinfo's report; the others print nothing).
const MAX_HELPER_OUTPUT_BYTES: u64 = 1 << 20;
/// Exit status of a worker that could not confine itself: the sandbox is broken, not the file.
const EXIT_SANDBOX_FAILED: u8 = 3;
/// Exit status of a confined worker whose helper program could not be executed.
const EXIT_EXEC_FAILED: u8 = 126;
/// The Landlock ABI whose rights the worker asks for: file system (v1-v5: truncate, refer,
/// device ioctl), TCP bind/connect (v4), abstract unix sockets and signals (v6). Newer
/// kernels enforce it fully; older ones enforce what they know (best effort).
const LANDLOCK_ABI: landlock::ABI = landlock::ABI::V6;

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
    /// The first sandbox of a process logs what the kernel enforces ([`sandbox_support`]).
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, limits: SandboxLimits) -> Self {
        log_sandbox_support_once();
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

        let run = self.run_worker(&header, bytes, self.limits.timeout, MAX_RESPONSE_BYTES)?;
        let WorkerRun::Exited { status, out, err } = run else {
            return Ok(Err(Error::Timeout {
                seconds: self.limits.timeout.as_secs_f64(),
            }));
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
        if status.code() == Some(i32::from(EXIT_SANDBOX_FAILED)) {
            return Err(sandbox_error(format!(
                "it could not confine itself{}",
                last_line(&String::from_utf8_lossy(&err))
                    .map(|line| format!(": {line}"))
                    .unwrap_or_default()
            )));
        }
        tracing::debug!(?status, "extraction worker died");
        Ok(Err(explain_death(status, &err, &self.limits)))
    }

    /// Runs a helper program (`pdftoppm`, `tesseract`) in the worker's sandbox: the worker
    /// starts with an empty environment, sets `command`'s limits, confines itself with
    /// Landlock (read and execute the system's programs and libraries and `read_paths`, write
    /// only under `write_dir`) and the seccomp filter (no network, no removing or renaming
    /// files, no ptrace), then execs the program, which inherits all of it. `Ok(None)`: it was
    /// killed when `timeout` passed.
    pub fn run_confined(
        &self,
        command: &ConfinedCommand,
        timeout: Duration,
    ) -> std::result::Result<Option<ConfinedOutput>, SandboxError> {
        let sandbox_error = |reason: String| SandboxError {
            program: self.program.clone(),
            reason,
        };
        let mut header = serde_json::to_vec(&ExecRequest {
            exec: command.clone(),
        })
        .map_err(|error| sandbox_error(format!("cannot encode the request: {error}")))?;
        header.push(b'\n');
        match self.run_worker(&header, &[], timeout, MAX_HELPER_OUTPUT_BYTES)? {
            WorkerRun::TimedOut => Ok(None),
            WorkerRun::Exited { status, out, err } => {
                if status.code() == Some(i32::from(EXIT_SANDBOX_FAILED)) {
                    return Err(sandbox_error(format!(
                        "it could not confine {}{}",
                        command.program.display(),
                        last_line(&String::from_utf8_lossy(&err))
                            .map(|line| format!(": {line}"))
                            .unwrap_or_default()
                    )));
                }
                Ok(Some(ConfinedOutput {
                    status,
                    stdout: out,
                    stderr: err,
                }))
            }
        }
    }

    /// Starts the worker with an empty environment, writes `header` and `body` to its stdin,
    /// and collects its stdout (at most `max_out` + 1 bytes) and the tail of its stderr.
    fn run_worker(
        &self,
        header: &[u8],
        body: &[u8],
        timeout: Duration,
        max_out: u64,
    ) -> std::result::Result<WorkerRun, SandboxError> {
        let sandbox_error = |reason: String| SandboxError {
            program: self.program.clone(),
            reason,
        };
        // An empty environment: the worker needs none, and the parent's holds secrets
        // (VELLUM_ADMIN_PASSWORD, VELLUM_REMOTE_API_KEY) that a compromised parser could send
        // out. RUST_BACKTRACE=0 keeps a panic's report short (the parent only wants its reason).
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| sandbox_error(format!("cannot start it: {error}")))?;

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
                let _ = stdin.write_all(header).and_then(|()| stdin.write_all(body));
            });
            let reader = scope.spawn(move || {
                let mut out = Vec::new();
                let read = stdout.take(max_out + 1).read_to_end(&mut out);
                read.map(|_| out)
            });
            let err_reader = scope.spawn(move || {
                let mut err = Vec::new();
                let _ = std::io::copy(&mut stderr.take(u64::MAX), &mut TailWriter::new(&mut err));
                err
            });
            let status = wait_with_timeout(&mut child, timeout);
            let _ = writer.join();
            let out = reader.join();
            let err = err_reader.join().unwrap_or_default();
            (status, out, err)
        });
        let (status, out, err) = outcome;
        let status = match status {
            Ok(Some(status)) => status,
            Ok(None) => return Ok(WorkerRun::TimedOut),
            Err(error) => return Err(sandbox_error(format!("cannot wait for it: {error}"))),
        };
        match out {
            Ok(Ok(out)) => Ok(WorkerRun::Exited { status, out, err }),
            _ => Err(sandbox_error("its output could not be read".into())),
        }
    }
}

/// How a worker run ended.
enum WorkerRun {
    /// Killed when the wall-clock timeout passed.
    TimedOut,
    /// Exited (or was killed by a signal) on its own.
    Exited {
        status: ExitStatus,
        out: Vec<u8>,
        err: Vec<u8>,
    },
}

/// A helper program for [`Sandbox::run_confined`], with the limits and the paths it may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfinedCommand {
    /// Absolute path of the program (the worker has no `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Files and folders it may read and execute, besides the system's programs, libraries
    /// and shared data ([`SYSTEM_READ_PATHS`]).
    pub read_paths: Vec<PathBuf>,
    /// The one folder it may write in (create, write, remove files there).
    pub write_dir: PathBuf,
    /// CPU seconds (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Address space in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Largest file it may write, in bytes (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
}

/// What a confined helper program left behind.
#[derive(Debug)]
pub struct ConfinedOutput {
    /// How it exited.
    pub status: ExitStatus,
    /// What it printed (at most 1 MB and a byte).
    pub stdout: Vec<u8>,
    /// The tail of what it printed on stderr.
    pub stderr: Vec<u8>,
}

/// Read-only (and execute) paths every confined helper program gets: programs, shared
/// libraries, the loader's cache, shared data (poppler, tesseract's tessdata, fonts) and the
/// time zone. Not `/etc` as a whole (it holds TLS keys and password hashes), not `/home`,
/// `/root`, `/var` or `/tmp`.
pub const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/fonts",
    "/var/cache/fontconfig",
];

/// `{"exec": ...}`: the request line that makes the worker run a confined helper.
#[derive(Debug, Serialize, Deserialize)]
struct ExecRequest {
    exec: ConfinedCommand,
}

/// What the running kernel enforces of the extraction sandbox, for a start-up log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxReport {
    /// File-system, TCP and signal confinement.
    pub landlock: LandlockSupport,
    /// The system-call filter.
    pub seccomp: SeccompSupport,
}

/// How much of the worker's Landlock ruleset this kernel enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LandlockSupport {
    /// Everything the worker asks for (Landlock ABI 6 or newer).
    Full {
        /// The kernel's Landlock ABI version.
        abi: u32,
    },
    /// Some of it: an older ABI.
    Partial {
        /// The kernel's Landlock ABI version.
        abi: u32,
        /// What this kernel cannot deny.
        missing: Vec<&'static str>,
    },
    /// None: paths are then guarded only by the seccomp filter (no writing, removing or
    /// renaming) and file permissions (no reading restriction at all).
    Unavailable {
        /// Why, and what to do.
        reason: String,
    },
}

/// Whether the seccomp filter can be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SeccompSupport {
    /// The kernel takes seccomp filters and this architecture has one.
    Available,
    /// Not here; the worker then refuses to run (kernel without filters) or runs with
    /// Landlock and rlimits only (an architecture without a filter table).
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl SandboxReport {
    /// Every part of the sandbox is enforced.
    pub fn is_complete(&self) -> bool {
        matches!(self.landlock, LandlockSupport::Full { .. })
            && self.seccomp == SeccompSupport::Available
    }

    /// Landlock restricts paths at all (fully or partly): a worker cannot read other files.
    pub fn landlock_enforced(&self) -> bool {
        !matches!(self.landlock, LandlockSupport::Unavailable { .. })
    }
}

impl fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("extraction sandbox: ")?;
        match &self.landlock {
            LandlockSupport::Full { abi } => write!(
                f,
                "Landlock ABI {abi} enforced (no file access, no TCP, no signals out of the worker)"
            )?,
            LandlockSupport::Partial { abi, missing } => write!(
                f,
                "Landlock ABI {abi} only PARTLY enforced (this kernel cannot deny {}; Linux 6.12+ can)",
                missing.join(", ")
            )?,
            LandlockSupport::Unavailable { reason } => write!(
                f,
                "WARNING: Landlock NOT enforced ({reason}): a parser exploited by a hostile file \
                 could read any file this user can"
            )?,
        }
        match &self.seccomp {
            SeccompSupport::Available => f.write_str(
                "; seccomp filter on (no network, no file changes, no exec, no ptrace)",
            )?,
            SeccompSupport::Unavailable { reason } => {
                write!(f, "; WARNING: no seccomp filter ({reason})")?
            }
        }
        f.write_str("; environment cleared; CPU, memory and file-size limits")
    }
}

/// What the running kernel enforces of the sandbox (probed once per process; probing
/// restricts nothing).
pub fn sandbox_support() -> SandboxReport {
    static REPORT: OnceLock<SandboxReport> = OnceLock::new();
    REPORT
        .get_or_init(|| SandboxReport {
            landlock: landlock_support(),
            seccomp: seccomp_support(),
        })
        .clone()
}

/// Logs [`sandbox_support`] once per process: info when complete, a warning otherwise.
fn log_sandbox_support_once() {
    static LOGGED: OnceLock<()> = OnceLock::new();
    LOGGED.get_or_init(|| {
        let report = sandbox_support();
        if report.is_complete() {
            tracing::info!("{report}");
        } else {
            tracing::warn!("{report}");
        }
    });
}

fn landlock_support() -> LandlockSupport {
    use landlock::{LandlockStatus, RestrictSelf, ABI};
    // With no flag and no_new_privs off, apply() only asks the kernel for its ABI version.
    let status = match RestrictSelf::default().no_new_privs(false).apply() {
        Ok(status) => status.landlock,
        Err(error) => {
            return LandlockSupport::Unavailable {
                reason: format!("cannot query it: {error}"),
            }
        }
    };
    match status {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => {
            let known = (1..=64)
                .find(|&n| ABI::from(n) == effective_abi)
                .unwrap_or(0);
            let abi = u32::try_from(kernel_abi.unwrap_or(known)).unwrap_or(0);
            let missing: Vec<&'static str> = [
                (ABI::V2, "renaming or linking across folders"),
                (ABI::V3, "truncating files"),
                (ABI::V4, "TCP connections"),
                (ABI::V5, "device ioctls"),
                (ABI::V6, "signals and abstract unix sockets"),
            ]
            .into_iter()
            .filter(|(needed, _)| effective_abi < *needed && *needed <= LANDLOCK_ABI)
            .map(|(_, what)| what)
            .collect();
            if missing.is_empty() {
                LandlockSupport::Full { abi }
            } else {
                LandlockSupport::Partial { abi, missing }
            }
        }
        LandlockStatus::NotEnabled => LandlockSupport::Unavailable {
            reason: "built into this kernel but not enabled at boot: add landlock to the lsm= \
                     kernel parameter"
                .into(),
        },
        LandlockStatus::NotImplemented => LandlockSupport::Unavailable {
            reason: "not built into this kernel (needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)"
                .into(),
        },
    }
}

fn seccomp_support() -> SeccompSupport {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return SeccompSupport::Unavailable {
            reason: format!("no filter for {}", std::env::consts::ARCH),
        };
    }
    // The kernel shows this line only when built with seccomp filters.
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status)
            if status
                .lines()
                .any(|line| line.starts_with("Seccomp_filters:")) =>
        {
            SeccompSupport::Available
        }
        Ok(status) if status.lines().any(|line| line.starts_with("Seccomp:")) => {
            SeccompSupport::Unavailable {
                reason: "this kernel has seccomp without filters (CONFIG_SECCOMP_FILTER)".into(),
            }
        }
        Ok(_) => SeccompSupport::Unavailable {
            reason: "this kernel has no seccomp".into(),
        },
        Err(error) => SeccompSupport::Unavailable {
            reason: format!("cannot read /proc/self/status: {error}"),
        },
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
        25 => "file size limit: it tried to write a file",
        // Only an architecture mismatch kills: denied calls fail with EPERM instead.
        31 => "a system call the sandbox forbids",
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
/// exit code. Reads a [`Request`] from stdin, limits and confines itself (rlimits, Landlock,
/// seccomp), reads the file, extracts, and writes a [`Response`] to stdout. Call it before the
/// process starts any thread: Landlock confines the calling thread and its future children.
pub fn worker_main() -> ExitCode {
    worker_main_with(|bytes, request| {
        extract_with_passwords(
            bytes,
            request.file_name.as_deref(),
            &request.limits,
            &request.pdf_passwords,
        )
    })
}

/// [`worker_main`] with `extract` in place of the parsers: the same protocol, limits and
/// confinement, then `extract` on the file's bytes. For tests that check the sandbox with a
/// worker built to misbehave (a binary can only run code it already holds, so this opens no
/// door that the binary's own code did not have).
#[doc(hidden)]
pub fn worker_main_with(
    extract: impl FnOnce(&[u8], &Request) -> Result<ExtractedDocument>,
) -> ExitCode {
    match serve_one(extract) {
        Ok(()) => ExitCode::SUCCESS,
        Err(WorkerFailure::Protocol(message)) => {
            // Only reached when the protocol itself fails: the parent reports it.
            let _ = writeln!(std::io::stderr(), "vellum extraction worker: {message}");
            ExitCode::from(2)
        }
        Err(WorkerFailure::Sandbox(message)) => {
            let _ = writeln!(
                std::io::stderr(),
                "vellum extraction worker: cannot confine itself: {message}"
            );
            ExitCode::from(EXIT_SANDBOX_FAILED)
        }
        Err(WorkerFailure::Exec(message)) => {
            let _ = writeln!(std::io::stderr(), "vellum extraction worker: {message}");
            ExitCode::from(EXIT_EXEC_FAILED)
        }
    }
}

/// Why a worker stopped without an answer.
enum WorkerFailure {
    /// The parent and the worker did not understand each other.
    Protocol(String),
    /// The worker could not confine itself (it then does not touch the file).
    Sandbox(String),
    /// A confined helper program could not be executed.
    Exec(String),
}

fn serve_one(
    extract: impl FnOnce(&[u8], &Request) -> Result<ExtractedDocument>,
) -> std::result::Result<(), WorkerFailure> {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // The request line is small; read it byte by byte so no file bytes are buffered away.
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => {
                return Err(WorkerFailure::Protocol(
                    "stdin closed before the request".into(),
                ))
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(error) => {
                return Err(WorkerFailure::Protocol(format!(
                    "cannot read the request: {error}"
                )))
            }
        }
        if line.len() > 1 << 20 {
            return Err(WorkerFailure::Protocol("request line too long".into()));
        }
    }
    let bad_request =
        |error: serde_json::Error| WorkerFailure::Protocol(format!("bad request: {error}"));
    let value: serde_json::Value = serde_json::from_slice(&line).map_err(bad_request)?;
    if value.get("exec").is_some() {
        let request: ExecRequest = serde_json::from_value(value).map_err(bad_request)?;
        drop(stdin);
        return exec_confined(request.exec);
    }
    let request: Request = serde_json::from_value(value).map_err(bad_request)?;
    // The request line comes from the parent; the file's bytes, which follow, may be hostile:
    // nothing of them is read before the worker is confined.
    apply_rlimits(request.cpu_seconds, request.memory_bytes, 0)
        .and_then(|()| confine(&Confinement::Extract))
        .map_err(WorkerFailure::Sandbox)?;

    let response = match read_file(&mut stdin, request.len, request.memory_bytes)
        .map_err(WorkerFailure::Protocol)?
    {
        Ok(bytes) => match extract(&bytes, &request) {
            Ok(document) => Response::Ok(document),
            Err(error) => Response::Err(error),
        },
        Err(error) => Response::Err(error),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &response)
        .map_err(|error| WorkerFailure::Protocol(format!("cannot write the answer: {error}")))?;
    stdout
        .flush()
        .map_err(|error| WorkerFailure::Protocol(format!("cannot write the answer: {error}")))
}

/// Limits and confines this process, then replaces it with the helper program, which
/// inherits the limits, the Landlock domain and the seccomp filter.
fn exec_confined(command: ConfinedCommand) -> std::result::Result<(), WorkerFailure> {
    use std::os::unix::process::CommandExt;
    if !command.program.is_absolute() {
        return Err(WorkerFailure::Protocol(format!(
            "{} is not an absolute path",
            command.program.display()
        )));
    }
    let mut read: Vec<PathBuf> = SYSTEM_READ_PATHS.iter().map(PathBuf::from).collect();
    read.extend(command.read_paths.iter().cloned());
    read.push(command.program.clone());
    apply_rlimits(
        command.cpu_seconds,
        command.memory_bytes,
        command.file_bytes,
    )
    .and_then(|()| {
        confine(&Confinement::Helper {
            read: &read,
            write: &command.write_dir,
        })
    })
    .map_err(WorkerFailure::Sandbox)?;
    let error = Command::new(&command.program)
        .args(&command.args)
        .env_clear()
        .envs(command.env.iter().map(|(key, value)| (key, value)))
        .exec();
    Err(WorkerFailure::Exec(format!(
        "cannot execute {}: {error}",
        command.program.display()
    )))
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

fn apply_rlimits(
    cpu_seconds: u64,
    memory_bytes: u64,
    file_bytes: u64,
) -> std::result::Result<(), String> {
    use rlimit::Resource;
    let set = |resource: Resource, soft: u64, hard: u64| {
        resource
            .set(soft, hard)
            .map_err(|error| format!("cannot set {}: {error}", resource.as_name()))
    };
    // Soft CPU limit sends SIGXCPU (reported as a timeout); the hard one, a second later,
    // SIGKILLs a worker that ignores it.
    set(Resource::CPU, cpu_seconds, cpu_seconds.saturating_add(1))?;
    set(Resource::AS, memory_bytes, memory_bytes)?;
    set(Resource::FSIZE, file_bytes, file_bytes)?;
    set(Resource::CORE, 0, 0)?;
    Ok(())
}

/// What a confined process may still do.
enum Confinement<'a> {
    /// The extraction worker: stdin, stdout, stderr and memory; no path at all, no new
    /// process, no exec.
    Extract,
    /// A helper program (pdftoppm, tesseract): read and execute `read`, read and write under
    /// `write`; exec allowed (it is how the helper starts), network and ptrace still denied.
    Helper {
        read: &'a [PathBuf],
        write: &'a Path,
    },
}

/// Landlock, then the seccomp filter (both set `PR_SET_NO_NEW_PRIVS`, which Landlock needs
/// without `CAP_SYS_ADMIN` and which keeps setuid programs from regaining privileges). Fails
/// only when something that should work does not; a kernel without Landlock is not a failure
/// (best effort: [`sandbox_support`] reports it loudly), one without seccomp filters is.
fn confine(confinement: &Confinement<'_>) -> std::result::Result<(), String> {
    let status =
        restrict_paths(confinement).map_err(|error| format!("cannot apply Landlock: {error}"))?;
    if !status.no_new_privs {
        return Err("cannot set no_new_privs".into());
    }
    install_syscall_filter(confinement)
}

fn restrict_paths(
    confinement: &Confinement<'_>,
) -> std::result::Result<landlock::RestrictionStatus, landlock::RulesetError> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
        Scope,
    };
    // Every file-system right is handled, so whatever no rule grants is denied; TCP bind and
    // connect are handled with no port allowed; signals and abstract unix sockets are scoped
    // to the worker's own domain.
    let ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))?
        .scope(Scope::from_all(LANDLOCK_ABI))?
        .create()?;
    let ruleset = match confinement {
        // No rule: the parsers need no file (fonts and encodings are compiled in).
        Confinement::Extract => ruleset,
        Confinement::Helper { read, write } => ruleset
            .add_rules(path_beneath_rules(
                read.iter(),
                AccessFs::from_read(LANDLOCK_ABI),
            ))?
            .add_rules(path_beneath_rules(
                [write],
                AccessFs::from_all(LANDLOCK_ABI),
            ))?,
    };
    ruleset.restrict_self()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn install_syscall_filter(confinement: &Confinement<'_>) -> std::result::Result<(), String> {
    for program in syscall_filter::build(confinement, std::process::id())? {
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|error| format!("cannot install the seccomp filter: {error}"))?;
    }
    Ok(())
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn install_syscall_filter(_: &Confinement<'_>) -> std::result::Result<(), String> {
    // No syscall table here: Landlock and the rlimits still apply, and the start-up report
    // says the filter is missing.
    Ok(())
}

/// The seccomp filters. A deny list (everything else is allowed), so the parsers and the
/// helpers keep working whatever system calls their libraries make; what it denies fails with
/// `EPERM`, so an attempt shows up as an error in the worker's answer instead of a silent kill.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod syscall_filter {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };

    use super::Confinement;

    type Rules = BTreeMap<i64, Vec<SeccompRule>>;

    /// Denied in every confinement: network, changes to the file system, other processes,
    /// raising a limit, and the kernel's administrative calls (the worker may run as root).
    const ALWAYS: &[libc::c_long] = &[
        // Network. `socket` alone stops new connections; the others stop the use of a socket
        // that leaked in.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
        // Removing, renaming, linking, creating nodes, changing modes, owners, times.
        libc::SYS_unlinkat,
        libc::SYS_renameat2,
        libc::SYS_mkdirat,
        libc::SYS_mknodat,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_truncate,
        libc::SYS_utimensat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        // Opening files by handle skips path checks (CAP_DAC_READ_SEARCH, which root has).
        libc::SYS_name_to_handle_at,
        libc::SYS_open_by_handle_at,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_mount_setattr,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        // Other processes: reading or writing their memory, stealing their descriptors.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        libc::SYS_tkill,
        // io_uring performs opens and connects that seccomp never sees.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Namespaces and administration.
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
    ];

    /// The legacy path-based calls of x86_64 (aarch64 has only the `*at` forms above).
    #[cfg(target_arch = "x86_64")]
    const ALWAYS_ARCH: &[libc::c_long] = &[
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_rmdir,
        libc::SYS_mkdir,
        libc::SYS_link,
        libc::SYS_symlink,
        libc::SYS_mknod,
        libc::SYS_chmod,
        libc::SYS_fchmodat2,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_utime,
        libc::SYS_utimes,
        libc::SYS_futimesat,
        libc::SYS_setrlimit,
        libc::SYS_iopl,
        libc::SYS_ioperm,
    ];
    /// aarch64's renameat (38), setrlimit (164) and fchmodat2 (452), which the libc crate
    /// does not name.
    #[cfg(target_arch = "aarch64")]
    const ALWAYS_ARCH: &[libc::c_long] = &[38, 164, 452];

    /// Denied to the extraction worker only: it runs no program and starts no process, and
    /// writes nothing but its stdout.
    const EXTRACT_ONLY: &[libc::c_long] =
        &[libc::SYS_execve, libc::SYS_execveat, libc::SYS_ftruncate];
    #[cfg(target_arch = "x86_64")]
    const EXTRACT_ONLY_ARCH: &[libc::c_long] = &[libc::SYS_fork, libc::SYS_vfork];
    #[cfg(target_arch = "aarch64")]
    const EXTRACT_ONLY_ARCH: &[libc::c_long] = &[];

    /// x86_64's x32 ABI reaches the same kernel code with bit 30 set in the call number; a
    /// deny list must name those numbers too (the kernel may have x32 enabled).
    #[cfg(target_arch = "x86_64")]
    const X32_BIT: i64 = 0x4000_0000;
    /// x32 numbers of the denied calls that differ from x86_64's (sendmsg, execve, ptrace,
    /// kexec_load, sendmmsg, process_vm_readv/writev, execveat).
    #[cfg(target_arch = "x86_64")]
    const X32_SPECIAL: &[(i64, bool)] = &[
        (518, false),
        (521, false),
        (528, false),
        (538, false),
        (539, false),
        (540, false),
        (520, true),
        (545, true),
    ];

    fn condition(
        arg: u8,
        len: SeccompCmpArgLen,
        op: SeccompCmpOp,
        value: u64,
    ) -> Result<SeccompRule, String> {
        SeccompCondition::new(arg, len, op, value)
            .and_then(|condition| SeccompRule::new(vec![condition]))
            .map_err(|error| format!("bad seccomp rule: {error}"))
    }

    /// Rules that deny a call only for some arguments (any rule matching denies it).
    fn conditional(confinement: &Confinement<'_>, own_pid: u32) -> Result<Rules, String> {
        use SeccompCmpArgLen::{Dword, Qword};
        let mut rules = Rules::new();
        let pid = u64::from(own_pid);
        // Signals only to itself (abort() raises SIGABRT on its own thread group).
        for call in [
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_rt_sigqueueinfo,
            libc::SYS_rt_tgsigqueueinfo,
        ] {
            rules.insert(call, vec![condition(0, Dword, SeccompCmpOp::Ne, pid)?]);
        }
        // prlimit64 with a new limit (third argument): raising a limit back, which root may.
        rules.insert(
            libc::SYS_prlimit64,
            vec![condition(2, Qword, SeccompCmpOp::Ne, 0)?],
        );
        if let Confinement::Extract = confinement {
            // Opening for writing, creating, truncating: whatever the path.
            let write_flags = [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC];
            let open_rules = |arg: u8| -> Result<Vec<SeccompRule>, String> {
                write_flags
                    .iter()
                    .map(|&flag| {
                        let flag = flag as u64;
                        condition(arg, Dword, SeccompCmpOp::MaskedEq(flag), flag)
                    })
                    .collect()
            };
            rules.insert(libc::SYS_openat, open_rules(2)?);
            #[cfg(target_arch = "x86_64")]
            {
                rules.insert(libc::SYS_open, open_rules(1)?);
                rules.insert(libc::SYS_creat, Vec::new());
            }
            // A new process (clone without CLONE_THREAD); threads stay allowed.
            let thread = libc::CLONE_THREAD as u64;
            rules.insert(
                libc::SYS_clone,
                vec![condition(0, Qword, SeccompCmpOp::MaskedEq(thread), 0)?],
            );
        }
        Ok(rules)
    }

    /// The BPF programs, in the order to install them: the calls that must look absent
    /// (`ENOSYS`, so that libc falls back to a call the deny list can inspect: clone3, whose
    /// flags are behind a pointer, makes glibc use clone; openat2 likewise), then the `EPERM`
    /// deny list. No call is in both.
    pub(super) fn build(
        confinement: &Confinement<'_>,
        own_pid: u32,
    ) -> Result<Vec<BpfProgram>, String> {
        let mut deny = conditional(confinement, own_pid)?;
        let extract = matches!(confinement, Confinement::Extract);
        let mut calls: Vec<libc::c_long> = ALWAYS.iter().chain(ALWAYS_ARCH).copied().collect();
        if extract {
            calls.extend(EXTRACT_ONLY.iter().chain(EXTRACT_ONLY_ARCH));
        }
        for call in calls {
            // An unconditional entry replaces a conditional one for the same call.
            deny.insert(call, Vec::new());
        }
        let mut absent = Rules::new();
        if extract {
            absent.insert(libc::SYS_clone3, Vec::new());
            absent.insert(libc::SYS_openat2, Vec::new());
        }
        #[cfg(target_arch = "x86_64")]
        {
            for rules in [&mut deny, &mut absent] {
                let x32: Vec<(i64, Vec<SeccompRule>)> = rules
                    .iter()
                    .map(|(call, chain)| (call | X32_BIT, chain.clone()))
                    .collect();
                rules.extend(x32);
            }
            for &(call, exec_only) in X32_SPECIAL {
                if extract || !exec_only {
                    deny.insert(call | X32_BIT, Vec::new());
                }
            }
        }
        let arch: seccompiler::TargetArch = std::env::consts::ARCH
            .try_into()
            .map_err(|error| format!("no seccomp filter for this architecture: {error}"))?;
        let compile = |rules: Rules, errno: i32| -> Result<BpfProgram, String> {
            let errno = u32::try_from(errno).map_err(|_| "bad errno".to_string())?;
            SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno),
                arch,
            )
            .and_then(BpfProgram::try_from)
            .map_err(|error| format!("cannot build the seccomp filter: {error}"))
        };
        let mut programs = Vec::with_capacity(2);
        if !absent.is_empty() {
            programs.push(compile(absent, libc::ENOSYS)?);
        }
        programs.push(compile(deny, libc::EPERM)?);
        Ok(programs)
    }
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

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn seccomp_filters_build_for_both_confinements() {
        let folder = PathBuf::from("/tmp");
        for confinement in [
            Confinement::Extract,
            Confinement::Helper {
                read: &[],
                write: &folder,
            },
        ] {
            let programs = syscall_filter::build(&confinement, 4242).unwrap();
            assert!(!programs.is_empty() && programs.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn the_report_is_loud_about_what_is_missing() {
        let none = SandboxReport {
            landlock: LandlockSupport::Unavailable {
                reason: "not built into this kernel".into(),
            },
            seccomp: SeccompSupport::Available,
        };
        assert!(!none.is_complete() && !none.landlock_enforced());
        assert!(
            none.to_string().contains("WARNING: Landlock NOT enforced"),
            "{none}"
        );
        let partial = SandboxReport {
            landlock: LandlockSupport::Partial {
                abi: 3,
                missing: vec!["TCP connections"],
            },
            seccomp: SeccompSupport::Available,
        };
        assert!(partial.landlock_enforced() && !partial.is_complete());
        assert!(partial.to_string().contains("PARTLY"), "{partial}");
        // Whatever this kernel has, the probe answers without confining the test process.
        let here = sandbox_support();
        assert!(
            here.to_string().starts_with("extraction sandbox: "),
            "{here}"
        );
        assert!(std::fs::read("/proc/self/status").is_ok());
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
