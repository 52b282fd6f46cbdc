//! The extraction sandbox with real child processes: the crate's worker binary for real
//! files and limits, and small shell scripts standing in for a worker that hangs, crashes or
//! talks nonsense (no real parser reliably does that on demand).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use vellum_extract::extract::ExtractLimits;
use vellum_extract::isolate::{Sandbox, SandboxLimits};
use vellum_extract::Error;

mod common;
use common::corpus;

fn worker() -> Sandbox {
    worker_with(SandboxLimits::default())
}

fn worker_with(limits: SandboxLimits) -> Sandbox {
    Sandbox::new(
        env!("CARGO_BIN_EXE_vellum-extract-worker"),
        Vec::new(),
        limits,
    )
}

fn shell(script: &str, timeout: Duration) -> Sandbox {
    Sandbox::new(
        "/bin/sh",
        vec![OsString::from("-c"), OsString::from(script)],
        SandboxLimits {
            timeout,
            ..SandboxLimits::default()
        },
    )
}

#[test]
fn worker_extracts_a_real_pdf_like_the_library_does() {
    let bytes = corpus("legal-cuad-contracts/pdf/ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF");
    let isolated = worker()
        .extract(&bytes, Some("contract.pdf"), &ExtractLimits::default())
        .expect("sandbox works")
        .expect("the contract extracts");
    let direct = vellum_extract::extract::extract(&bytes, Some("contract.pdf")).unwrap();
    assert_eq!(isolated.pages, direct.pages);
    assert_eq!(isolated.title, direct.title);
    assert_eq!(isolated.metadata, direct.metadata);
}

#[test]
fn file_errors_cross_the_process_boundary_intact() {
    let bytes = corpus("pdf-pypdf-resources/encryption/r2-user-password.pdf");
    let error = worker()
        .extract(&bytes, Some("r2.pdf"), &ExtractLimits::default())
        .expect("sandbox works")
        .expect_err("encrypted");
    assert!(matches!(error, Error::Encrypted { .. }), "{error}");

    let limits = ExtractLimits {
        max_pages: 1,
        ..ExtractLimits::default()
    };
    let error = worker()
        .extract(b"one\x0ctwo\x0cthree", Some("a.txt"), &limits)
        .expect("sandbox works")
        .expect_err("too many pages");
    assert!(matches!(error, Error::TooLarge { .. }), "{error}");
}

#[test]
fn memory_limit_stops_a_blow_up_and_names_it() {
    // 96 MB of text under a 64 MB address-space limit: the worker cannot even hold the file.
    let bytes = vec![b'a'; 96 << 20];
    let sandbox = worker_with(SandboxLimits {
        memory_bytes: 64 << 20,
        ..SandboxLimits::default()
    });
    let error = sandbox
        .extract(&bytes, Some("big.txt"), &ExtractLimits::default())
        .expect("sandbox works")
        .expect_err("out of memory");
    assert!(
        matches!(error, Error::TooLarge { .. }) && error.to_string().contains("64 MB of memory"),
        "{error}"
    );
}

#[test]
fn cpu_limit_stops_a_long_parse() {
    // A 30 MB single-line text: normalising it takes well over a CPU second... of a worker
    // limited to zero seconds, so the soft limit fires at the first tick.
    let bytes = "word ".repeat(6 << 20).into_bytes();
    let sandbox = worker_with(SandboxLimits {
        cpu_seconds: 0,
        ..SandboxLimits::default()
    });
    let error = sandbox
        .extract(&bytes, Some("long.txt"), &ExtractLimits::default())
        .expect("sandbox works")
        .expect_err("cpu limit");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
}

#[test]
fn a_hanging_worker_is_killed_at_the_timeout() {
    let started = Instant::now();
    let error = shell("cat >/dev/null; exec sleep 60", Duration::from_millis(500))
        .extract(b"hello", None, &ExtractLimits::default())
        .expect("sandbox works")
        .expect_err("timeout");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("timeout after 0.5 s"), "{error}");
    // Killed, not waited for (generous bound: this is about not waiting 60 s).
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_worker_that_stops_reading_does_not_block_the_parent() {
    // The worker never reads its stdin: 8 MB cannot fit the pipe, so only the timeout ends it.
    let bytes = vec![b'x'; 8 << 20];
    let error = shell("exec sleep 60", Duration::from_millis(500))
        .extract(&bytes, None, &ExtractLimits::default())
        .expect("sandbox works")
        .expect_err("timeout");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
}

#[test]
fn a_crashing_worker_is_reported_with_its_signal() {
    let error = shell("kill -SEGV $$", Duration::from_secs(30))
        .extract(b"hello", None, &ExtractLimits::default())
        .expect("sandbox works")
        .expect_err("crash");
    assert!(
        matches!(error, Error::Crashed { .. }) && error.to_string().contains("signal 11"),
        "{error}"
    );
    let error = shell(
        "echo \"thread 'x' has overflowed its stack\" >&2; kill -ABRT $$",
        Duration::from_secs(30),
    )
    .extract(b"hello", None, &ExtractLimits::default())
    .expect("sandbox works")
    .expect_err("crash");
    assert!(
        error.to_string().contains("overflowed its stack"),
        "{error}"
    );
}

#[test]
fn a_broken_sandbox_is_not_blamed_on_the_file() {
    let missing = Sandbox::new(
        "/nonexistent/vellum-worker",
        Vec::new(),
        SandboxLimits::default(),
    );
    let error = missing
        .extract(b"hello", None, &ExtractLimits::default())
        .expect_err("cannot start");
    assert!(error.to_string().contains("cannot start"), "{error}");

    let chatty = shell("cat >/dev/null; echo not json", Duration::from_secs(30));
    let error = chatty
        .extract(b"hello", None, &ExtractLimits::default())
        .expect_err("nonsense answer");
    assert!(error.to_string().contains("not valid"), "{error}");
}
