//! OCR of scanned PDFs (no text layer) with Debian's `pdfinfo` and `pdftoppm` (poppler-utils)
//! and `tesseract` (tesseract-ocr), run as child processes page by page, each with a
//! wall-clock timeout, and all of them within one overall deadline.
//!
//! Opt-in (`vellum ingest --ocr`): OCR is slow (seconds per page) and its text is only as good
//! as the scan, so by default a scanned PDF is quarantined as "needs OCR" rather than indexed
//! empty or guessed at. The page images and texts live in a temporary folder that is removed
//! afterwards; nothing is sent anywhere. Tesseract runs single-threaded (`OMP_THREAD_LIMIT=1`):
//! ingest already extracts one file per core.
//!
//! poppler and Tesseract parse the untrusted PDF (and images rendered from it), so with a
//! [`Sandbox`] ([`ocr_pdf_sandboxed`], what ingest uses) every one of them runs in the
//! extraction sandbox: the worker binary confines itself (rlimits, Landlock, seccomp) and then
//! execs the helper, which inherits all of it. It may read the system's programs, libraries and
//! shared data and write only in the temporary folder; it has no network and an empty
//! environment. The helpers are not run inside the extraction worker itself: that one may not
//! exec at all, and a C program needs paths (libraries, tessdata) that the parsers never do.
//! [`ocr_pdf`] runs them unconfined (for library callers without a worker binary), with the
//! same empty environment and timeouts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::extract::normalize_page_text;
use crate::isolate::{wait_with_timeout, ConfinedCommand, Sandbox, SandboxError};

/// Largest file a confined helper may write: a page image at 300 dpi is a few MB.
const HELPER_FILE_BYTES: u64 = 256 << 20;
/// Stdout kept from an unconfined `pdfinfo`.
const MAX_INFO_BYTES: u64 = 1 << 20;

/// How to OCR.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    /// Resolution the pages are rendered at (300 is Tesseract's sweet spot).
    pub dpi: u32,
    /// Tesseract language(s), e.g. `eng` or `eng+deu` (the matching tesseract-ocr-* packages
    /// must be installed).
    pub language: String,
    /// Pages OCR'd at most (the first ones); longer scans are cut.
    pub max_pages: usize,
    /// Wall-clock limit for rendering one page, and for recognising one page.
    pub timeout_per_page: Duration,
    /// Wall-clock limit for the whole document (ingest holds its lock meanwhile): a scan that
    /// takes longer fails with a timeout.
    pub timeout_total: Duration,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            dpi: 300,
            language: "eng".to_string(),
            max_pages: 500,
            timeout_per_page: Duration::from_secs(60),
            timeout_total: Duration::from_secs(15 * 60),
        }
    }
}

/// The text of each page of a scanned PDF, page 1 first, with the helpers run unconfined
/// (empty environment and timeouts only). Ingest uses [`ocr_pdf_sandboxed`].
pub fn ocr_pdf(bytes: &[u8], options: &OcrOptions) -> Result<OcrText> {
    match ocr_with(bytes, options, &Runner::Direct) {
        Ok(result) => result,
        // Unreachable: only the sandboxed runner fails this way.
        Err(error) => Err(failed(error.to_string())),
    }
}

/// [`ocr_pdf`] with every helper program confined by `sandbox`'s worker and under its CPU
/// and memory limits. The outer error is the sandbox failing (not the file's fault).
pub fn ocr_pdf_sandboxed(
    bytes: &[u8],
    options: &OcrOptions,
    sandbox: &Sandbox,
) -> std::result::Result<Result<OcrText>, SandboxError> {
    ocr_with(bytes, options, &Runner::Confined(sandbox))
}

/// The text of each page, and which OCR engine read it.
#[derive(Debug, Clone)]
pub struct OcrText {
    /// Page 1 first.
    pub pages: Vec<String>,
    /// Tesseract's version line (`tesseract 5.3.0`), asked of the same (confined) program that
    /// read the pages.
    pub engine: String,
}

/// Returns the version line of the installed Tesseract, or `None` if it is not installed.
/// Runs it unconfined: for set-up checks, not during ingest (Debian's tesseract links libldap,
/// which looks up the host name at start; confined, that lookup cannot leave the machine).
pub fn tesseract_version() -> Option<String> {
    let output = Command::new("tesseract").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines().next().map(|line| line.trim().to_string())
}

/// How a helper program is started.
enum Runner<'a> {
    Direct,
    Confined(&'a Sandbox),
}

/// A helper's end: `None` when it was killed at its timeout.
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn ocr_with(
    bytes: &[u8],
    options: &OcrOptions,
    runner: &Runner<'_>,
) -> std::result::Result<Result<OcrText>, SandboxError> {
    let deadline = Instant::now() + options.timeout_total;
    let work = match tempfile::tempdir() {
        Ok(work) => work,
        Err(error) => return Ok(Err(failed(format!("no temporary folder: {error}")))),
    };
    let input = work.path().join("input.pdf");
    if let Err(error) = std::fs::write(&input, bytes) {
        return Ok(Err(failed(format!("cannot write: {error}"))));
    }
    let helper = |name: &str, package: &str| {
        find_program(name).ok_or_else(|| {
            failed(format!(
                "cannot run {name} (Debian package {package}): not found on PATH; install it \
                 to OCR scanned PDFs"
            ))
        })
    };
    let programs = helper("pdfinfo", "poppler-utils").and_then(|info| {
        Ok((
            info,
            helper("pdftoppm", "poppler-utils")?,
            helper("tesseract", "tesseract-ocr")?,
        ))
    });
    let (pdfinfo, pdftoppm, tesseract) = match programs {
        Ok(programs) => programs,
        Err(error) => return Ok(Err(error)),
    };
    let step = Step {
        runner,
        work: work.path(),
        options,
        deadline,
    };

    let engine = match step.run(
        &tesseract,
        vec!["--version".into()],
        tesseract_env(),
        "tesseract --version",
    )? {
        Ok(ran) => version_line(&ran.stdout, &ran.stderr),
        Err(error) => return Ok(Err(error)),
    };
    let info = match step.run(&pdfinfo, vec![path_arg(&input)?], Vec::new(), "pdfinfo")? {
        Ok(info) => info,
        Err(error) => return Ok(Err(error)),
    };
    let pages = match page_count(&String::from_utf8_lossy(&info.stdout)) {
        Some(0) | None => return Ok(Err(failed("pdfinfo found no page".into()))),
        Some(pages) => pages.min(options.max_pages.max(1)),
    };
    let mut texts = Vec::with_capacity(pages);
    for page in 1..=pages {
        // One pdftoppm per page: each has the per-page timeout and CPU limit, instead of one
        // run for the whole document whose limits would have to grow with its length.
        let stem = work.path().join(format!("page-{page:05}"));
        let image = stem.with_extension("png");
        let render = vec![
            "-r".to_string(),
            options.dpi.to_string(),
            "-gray".into(),
            "-png".into(),
            "-f".into(),
            page.to_string(),
            "-l".into(),
            page.to_string(),
            "-singlefile".into(),
            path_arg(&input)?,
            path_arg(&stem)?,
        ];
        if let Err(error) = step.run(&pdftoppm, render, Vec::new(), "pdftoppm")? {
            return Ok(Err(error));
        }
        if !image.is_file() {
            return Ok(Err(failed(format!(
                "pdftoppm rendered no image of page {page}"
            ))));
        }
        let recognise = vec![
            path_arg(&image)?,
            path_arg(&stem)?,
            "-l".into(),
            options.language.clone(),
        ];
        if let Err(error) = step.run(&tesseract, recognise, tesseract_env(), "tesseract")? {
            return Ok(Err(error));
        }
        let text = match std::fs::read_to_string(stem.with_extension("txt")) {
            Ok(text) => text,
            Err(error) => return Ok(Err(failed(format!("tesseract wrote no text: {error}")))),
        };
        texts.push(normalize_page_text(&text));
        // Keep the temporary folder small on long scans.
        let _ = std::fs::remove_file(&image);
    }
    Ok(Ok(OcrText {
        pages: texts,
        engine,
    }))
}

/// The first line Tesseract prints for `--version` (older versions print it on stderr).
fn version_line(stdout: &[u8], stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout).into_owned() + &String::from_utf8_lossy(stderr);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("tesseract")
        .to_string()
}

/// What every helper run shares.
struct Step<'a> {
    runner: &'a Runner<'a>,
    work: &'a Path,
    options: &'a OcrOptions,
    deadline: Instant,
}

impl Step<'_> {
    /// Runs `program` with the per-page timeout, cut to what is left of the overall one.
    fn run(
        &self,
        program: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        what: &str,
    ) -> std::result::Result<Result<Ran>, SandboxError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Err(self.total_timeout()));
        }
        let timeout = self.options.timeout_per_page.min(left);
        let ran = match self.runner {
            Runner::Direct => run_direct(program, &args, &env, timeout, what),
            Runner::Confined(sandbox) => {
                let command = ConfinedCommand {
                    program: program.to_path_buf(),
                    args,
                    env,
                    read_paths: tessdata_dir().into_iter().collect(),
                    write_dir: self.work.to_path_buf(),
                    cpu_seconds: sandbox.limits().cpu_seconds,
                    memory_bytes: sandbox.limits().memory_bytes,
                    file_bytes: HELPER_FILE_BYTES,
                };
                sandbox.run_confined(&command, timeout)?.map(|output| Ran {
                    status: output.status,
                    stdout: output.stdout,
                    stderr: output.stderr,
                })
            }
        };
        Ok(match ran {
            None if timeout < self.options.timeout_per_page => Err(self.total_timeout()),
            None => Err(Error::Timeout {
                seconds: timeout.as_secs_f64(),
            }),
            Some(ran) if ran.status.success() => Ok(ran),
            Some(ran) => Err(helper_failed(what, &ran)),
        })
    }

    fn total_timeout(&self) -> Error {
        Error::Timeout {
            seconds: self.options.timeout_total.as_secs_f64(),
        }
    }
}

fn helper_failed(what: &str, ran: &Ran) -> Error {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&ran.stderr);
    let last = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| format!(": {}", line.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    let reason = match ran.status.signal() {
        // RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one.
        Some(24) | Some(9) => format!("{what} ran out of CPU time"),
        _ => format!("{what} failed ({}){last}", ran.status),
    };
    failed(reason)
}

/// Runs a helper without the sandbox: empty environment but for `env`, wall-clock timeout.
fn run_direct(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
    what: &str,
) -> Option<Ran> {
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            tracing::debug!(%error, what, "cannot start an OCR helper");
            // Reported like a failed run: 127 is the shell's "cannot run".
            use std::os::unix::process::ExitStatusExt;
            return Some(Ran {
                status: ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: error.to_string().into_bytes(),
            });
        }
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    std::thread::scope(|scope| {
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            scope.spawn(move || {
                let mut out = Vec::new();
                if let Some(pipe) = pipe {
                    use std::io::Read;
                    let _ = pipe.take(MAX_INFO_BYTES).read_to_end(&mut out);
                }
                out
            })
        };
        let out = read(stdout.map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>));
        let err = read(stderr.map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>));
        let status = wait_with_timeout(&mut child, timeout).ok().flatten();
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        status.map(|status| Ran {
            status,
            stdout,
            stderr,
        })
    })
}

/// The helpers' environment: Tesseract single-threaded, and its data folder if the parent
/// names one. Nothing else of the parent's environment is passed on.
fn tesseract_env() -> Vec<(String, String)> {
    let mut env = vec![("OMP_THREAD_LIMIT".to_string(), "1".to_string())];
    if let Some(prefix) = std::env::var_os("TESSDATA_PREFIX").and_then(|p| p.into_string().ok()) {
        env.push(("TESSDATA_PREFIX".to_string(), prefix));
    }
    env
}

/// `TESSDATA_PREFIX`, which the confined Tesseract must be able to read.
fn tessdata_dir() -> Option<PathBuf> {
    std::env::var_os("TESSDATA_PREFIX")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
}

/// `program`'s absolute path on the parent's `PATH` (the confined worker has no `PATH`).
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// The `Pages:` line of pdfinfo's report.
fn page_count(info: &str) -> Option<usize> {
    info.lines()
        .find_map(|line| line.strip_prefix("Pages:"))
        .and_then(|count| count.trim().parse().ok())
}

/// A path as a helper argument (the confined worker's protocol is JSON, so UTF-8).
fn path_arg(path: &Path) -> std::result::Result<String, SandboxError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| SandboxError {
            program: path.to_path_buf(),
            reason: "the temporary folder's path is not UTF-8 (set TMPDIR to one that is)".into(),
        })
}

fn failed(reason: String) -> Error {
    Error::NoText {
        reason: format!("scanned PDF: OCR failed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_count_reads_pdfinfo() {
        assert_eq!(
            page_count("Title: x\nPages:           12\nEncrypted: no\n"),
            Some(12)
        );
        assert_eq!(page_count("Syntax Error: garbage\n"), None);
    }
}
