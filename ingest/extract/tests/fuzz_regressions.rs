//! Inputs found by the fuzz targets in `fuzz/` (see docs/fuzzing.md), kept as regression tests.
//!
//! Every file in `tests/fuzz-regressions/` goes through [`extract_with_limits`] with the
//! default limits, on a thread, and must come back (Ok or Err, never a panic) within
//! [`IN_PROCESS_DEADLINE`]. A reproducer that kills the whole process (stack overflow, abort)
//! cannot run in the test process: it is listed in [`SANDBOX_ONLY`] and goes through the
//! extraction sandbox instead, which must survive it and name the cause.
//!
//! File names: `<fuzz target>-<short name>`; the target says which entry point found it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vellum_extract::extract::{extract_with_limits, ExtractLimits};
use vellum_extract::isolate::{Sandbox, SandboxLimits};

/// How long one reproducer may take in-process before the test calls it a hang.
const IN_PROCESS_DEADLINE: Duration = Duration::from_secs(60);

/// Reproducers that take the process down, with a piece of the error message the sandbox
/// must report for each (`Error::to_string()`, compared case-insensitively).
const SANDBOX_ONLY: &[(&str, &str)] = &[];

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

/// The reproducers, sorted by name (README-like files skipped).
fn reproducers() -> Vec<PathBuf> {
    let dir = regressions_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| path.extension().is_none_or(|ext| ext != "md"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_sandbox_only(name: &str) -> bool {
    SANDBOX_ONLY.iter().any(|(listed, _)| *listed == name)
}

#[test]
fn regression_folder_is_not_empty_and_lists_only_existing_files() {
    let names: Vec<String> = reproducers().iter().map(|path| file_name(path)).collect();
    assert!(
        !names.is_empty(),
        "no reproducers in {:?}",
        regressions_dir()
    );
    for (listed, _) in SANDBOX_ONLY {
        assert!(
            names.iter().any(|name| name == listed),
            "{listed} is in SANDBOX_ONLY but not in the folder"
        );
    }
}

#[test]
fn reproducers_return_in_process_without_panicking() {
    let limits = ExtractLimits::default();
    for path in reproducers() {
        let name = file_name(&path);
        if is_sandbox_only(&name) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        let (sender, receiver) = mpsc::channel();
        let limits = limits.clone();
        let started = Instant::now();
        // A detached thread: if the input hangs, the test fails at the deadline instead of
        // waiting for it.
        std::thread::Builder::new()
            .name(format!("fuzz-regression-{name}"))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(|| {
                    extract_with_limits(&bytes, None, &limits).map(|document| document.pages.len())
                });
                let _ = sender.send(outcome.map_err(|_| ()));
            })
            .expect("spawn a test thread");
        match receiver.recv_timeout(IN_PROCESS_DEADLINE) {
            Ok(Ok(result)) => {
                eprintln!(
                    "{name}: {:?} in {:.2} s",
                    result.as_ref().map_err(ToString::to_string),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Err(())) => panic!("{name}: extract_with_limits panicked"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{name}: no answer within {IN_PROCESS_DEADLINE:?} (hang)")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{name}: the extraction thread died without an answer")
            }
        }
    }
}

#[test]
fn process_killing_reproducers_are_contained_by_the_sandbox() {
    let sandbox = Sandbox::new(
        env!("CARGO_BIN_EXE_vellum-extract-worker"),
        Vec::new(),
        SandboxLimits::default(),
    );
    for (name, expected) in SANDBOX_ONLY {
        let bytes = std::fs::read(regressions_dir().join(name))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let outcome = sandbox
            .extract(&bytes, None, &ExtractLimits::default())
            .unwrap_or_else(|err| panic!("{name}: the sandbox itself failed: {err}"));
        let error = match outcome {
            Ok(document) => panic!(
                "{name}: expected the worker to die, got {} page(s)",
                document.pages.len()
            ),
            Err(error) => error,
        };
        let message = error.to_string();
        assert!(
            message.to_lowercase().contains(&expected.to_lowercase()),
            "{name}: expected an error naming {expected:?}, got {message:?}"
        );
    }
    // The other reproducers go through the sandbox too, as production does: it must work.
    for path in reproducers() {
        let name = file_name(&path);
        if is_sandbox_only(&name) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        if let Err(err) = sandbox.extract(&bytes, None, &ExtractLimits::default()) {
            panic!("{name}: the sandbox itself failed: {err}");
        }
    }
}
