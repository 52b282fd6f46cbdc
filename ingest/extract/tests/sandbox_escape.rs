//! A worker built to misbehave, in the real sandbox. This test binary is its own worker: run
//! with `HOSTILE_WORKER_ARG` it calls `isolate::worker_main_with`, which goes through the real
//! worker's protocol, rlimits, Landlock and seccomp filter, and then, instead of parsing, tries
//! what an exploited parser would: read the parent's secrets (environment, a key file, a system
//! file), connect to a port the test listens on, delete, rename, create and overwrite files,
//! run a shell, raise its memory limit. Each attempt's outcome is the "document" it answers
//! with; the parent checks that every one was denied and that nothing changed on disk or on the
//! listener. The real worker binary must meanwhile still extract real files, and confined
//! helper programs (how OCR runs) must stay in their folder.
//!
//! `harness = false` (see Cargo.toml): the worker must own its stdout (the protocol) and its
//! main thread (the sandbox is entered there, as in the real worker), which libtest's runner
//! would not allow.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use vellum_extract::extract::{ExtractLimits, ExtractedDocument, Format};
use vellum_extract::isolate::{
    sandbox_support, worker_main_with, ConfinedCommand, Request, Sandbox, SandboxLimits,
};

#[allow(dead_code)] // corpus() is for the other tests
mod common;
use common::shared_dir;

/// argv[1] that makes this binary the hostile worker.
const HOSTILE_WORKER_ARG: &str = "__hostile-extract-worker";
const ADMIN_PASSWORD: &str = "hunter2-admin-password-for-the-test";
const REMOTE_API_KEY: &str = "sk-remote-key-for-the-test";
const SECRET: &str = "AUDIT-SIGNING-KEY-0123456789abcdef";
const VICTIM: &str = "matter 1234: privileged memo";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(HOSTILE_WORKER_ARG) {
        return worker_main_with(misbehave);
    }
    // What a real server holds in its environment; the worker must not see it.
    std::env::set_var("VELLUM_ADMIN_PASSWORD", ADMIN_PASSWORD);
    std::env::set_var("VELLUM_REMOTE_API_KEY", REMOTE_API_KEY);
    eprintln!("{}", sandbox_support());

    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let tests: [(&str, fn()); 3] = [
        (
            "hostile_worker_is_denied_secrets_network_and_file_changes",
            hostile_worker_is_denied_secrets_network_and_file_changes,
        ),
        (
            "confined_helpers_stay_in_their_folder",
            confined_helpers_stay_in_their_folder,
        ),
        (
            "real_files_still_extract_in_the_sandbox",
            real_files_still_extract_in_the_sandbox,
        ),
    ];
    let mut failed = 0;
    let mut ran = 0;
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|filter| name.contains(filter.as_str())) {
            continue;
        }
        ran += 1;
        let outcome = std::panic::catch_unwind(test);
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        failed += usize::from(outcome.is_err());
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        ran - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---- The hostile worker (runs confined) ----

/// The "parser" of the hostile worker: every attempt becomes one page, "NAME: denied: WHY" or
/// "NAME: ALLOWED: WHAT".
fn misbehave(bytes: &[u8], _request: &Request) -> vellum_extract::Result<ExtractedDocument> {
    let orders = String::from_utf8_lossy(bytes).into_owned();
    let get = |key: &str| {
        orders
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    let folder = PathBuf::from(get("folder"));
    let secret = PathBuf::from(get("secret"));
    let victim = PathBuf::from(get("victim"));
    let port: u16 = get("port").parse().unwrap_or(0);
    let udp_port: u16 = get("udp").parse().unwrap_or(0);
    let mut pages = Vec::new();
    let mut attempt = |name: &str, outcome: Result<String, String>| {
        pages.push(match outcome {
            Ok(what) => format!("{name}: ALLOWED: {what}"),
            Err(why) => format!("{name}: denied: {why}"),
        });
    };
    let shown = |error: std::io::Error| error.to_string();

    // (d) The parent's environment.
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    for name in ["VELLUM_ADMIN_PASSWORD", "VELLUM_REMOTE_API_KEY"] {
        attempt(
            &format!("env {name}"),
            match std::env::var(name) {
                Ok(value) => Ok(value),
                Err(error) => Err(format!("{error} (the environment holds {names:?})")),
            },
        );
    }
    // (a) Files it was never given.
    attempt(
        "read secret file",
        std::fs::read(&secret)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(shown),
    );
    attempt(
        "list folder",
        std::fs::read_dir(&folder)
            .map(|entries| format!("{} entries", entries.count()))
            .map_err(shown),
    );
    attempt(
        "read /etc/passwd",
        std::fs::read("/etc/passwd")
            .map(|bytes| format!("{} bytes", bytes.len()))
            .map_err(shown),
    );
    // (b) The network.
    attempt(
        "tcp connect",
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        )
        .map(|_| format!("connected to port {port}"))
        .map_err(shown),
    );
    attempt(
        "udp socket",
        UdpSocket::bind("127.0.0.1:0")
            .and_then(|socket| socket.send_to(b"leak", ("127.0.0.1", udp_port)))
            .map(|sent| format!("sent {sent} bytes"))
            .map_err(shown),
    );
    // (c) Changing files.
    attempt(
        "delete file",
        std::fs::remove_file(&victim)
            .map(|()| "deleted".to_string())
            .map_err(shown),
    );
    attempt(
        "rename file",
        std::fs::rename(&victim, folder.join("renamed.txt"))
            .map(|()| "renamed".to_string())
            .map_err(shown),
    );
    attempt(
        "create file",
        // Empty: RLIMIT_FSIZE 0 alone would kill a worker that writes a byte (SIGXFSZ),
        // but not one that only creates, truncates, removes or renames.
        std::fs::File::create(folder.join("dropped.txt"))
            .map(|_| "created".to_string())
            .map_err(shown),
    );
    attempt(
        "overwrite file",
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&victim)
            .map(|_| "opened for writing".to_string())
            .map_err(shown),
    );
    attempt(
        "make folder",
        std::fs::create_dir(folder.join("made"))
            .map(|()| "made".to_string())
            .map_err(shown),
    );
    // Escaping the confinement itself.
    attempt(
        "run a shell",
        std::process::Command::new("/bin/sh")
            .args(["-c", "echo escaped"])
            // Not /dev/null (Landlock would refuse that open first): the fork itself is tested.
            .stdin(std::process::Stdio::inherit())
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .map_err(shown),
    );
    attempt(
        "raise memory limit",
        rlimit::Resource::AS
            .set(rlimit::INFINITY, rlimit::INFINITY)
            .map(|()| "raised".to_string())
            .map_err(shown),
    );
    Ok(ExtractedDocument {
        format: Format::Text,
        title: None,
        pages,
        metadata: BTreeMap::new(),
    })
}

// ---- The tests (run unconfined, in the parent) ----

/// Attempts that only Landlock can deny (a read of a file the user may read).
const READS: [&str; 3] = ["read secret file", "list folder", "read /etc/passwd"];

fn hostile_worker_is_denied_secrets_network_and_file_changes() {
    let support = sandbox_support();
    let folder = tempfile::tempdir().expect("temporary folder");
    let secret = folder.path().join("audit-signing.key");
    let victim = folder.path().join("matter-1234.txt");
    std::fs::write(&secret, SECRET).expect("write the secret");
    std::fs::write(&victim, VICTIM).expect("write the victim");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let port = listener.local_addr().expect("port").port();
    let udp_port = udp.local_addr().expect("udp port").port();
    let orders = format!(
        "folder={}\nsecret={}\nvictim={}\nport={port}\nudp={udp_port}\n",
        folder.path().display(),
        secret.display(),
        victim.display()
    );

    let sandbox = Sandbox::new(
        std::env::current_exe().expect("this test binary"),
        vec![OsString::from(HOSTILE_WORKER_ARG)],
        SandboxLimits::default(),
    );
    let document = sandbox
        .extract(
            orders.as_bytes(),
            Some("attack.txt"),
            &ExtractLimits::default(),
        )
        .unwrap_or_else(|error| panic!("the sandbox failed: {error}"))
        .unwrap_or_else(|error| panic!("the hostile worker did not answer: {error}"));

    let mut allowed = Vec::new();
    for line in &document.pages {
        eprintln!("  hostile worker: {line}");
        let name = line.split(':').next().unwrap_or_default();
        if line.contains(": ALLOWED: ") {
            if READS.contains(&name) && !support.landlock_enforced() {
                eprintln!(
                    "  SKIPPED: {name:?} is not denied because this kernel has no Landlock ({:?})",
                    support.landlock
                );
            } else {
                allowed.push(line.clone());
            }
        }
    }
    assert_eq!(document.pages.len(), 14, "every attempt reports");
    assert!(
        allowed.is_empty(),
        "the hostile worker got through: {allowed:#?}"
    );
    for leaked in [ADMIN_PASSWORD, REMOTE_API_KEY, SECRET] {
        assert!(
            document.pages.iter().all(|line| !line.contains(leaked)),
            "{leaked} leaked into the answer"
        );
    }
    // Nothing changed on disk.
    assert_eq!(
        std::fs::read_to_string(&victim).ok().as_deref(),
        Some(VICTIM)
    );
    assert_eq!(
        std::fs::read_to_string(&secret).ok().as_deref(),
        Some(SECRET)
    );
    for name in ["renamed.txt", "dropped.txt", "made"] {
        assert!(!folder.path().join(name).exists(), "{name} was created");
    }
    // Nobody knocked.
    listener.set_nonblocking(true).expect("nonblocking");
    match listener.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener got a connection: {other:?}"),
    }
    udp.set_nonblocking(true).expect("nonblocking");
    let mut buffer = [0u8; 16];
    match udp.recv_from(&mut buffer) {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the UDP socket got a datagram: {other:?}"),
    }
}

/// The real worker binary.
fn real_worker(limits: SandboxLimits) -> Sandbox {
    Sandbox::new(
        env!("CARGO_BIN_EXE_vellum-extract-worker"),
        Vec::new(),
        limits,
    )
}

fn confined(program: &str, args: &[&str], write_dir: &Path) -> ConfinedCommand {
    ConfinedCommand {
        program: PathBuf::from(program),
        args: args.iter().map(|arg| arg.to_string()).collect(),
        env: vec![("OMP_THREAD_LIMIT".into(), "1".into())],
        read_paths: Vec::new(),
        write_dir: write_dir.to_path_buf(),
        cpu_seconds: 10,
        memory_bytes: 512 << 20,
        file_bytes: 1 << 20,
    }
}

fn confined_helpers_stay_in_their_folder() {
    let support = sandbox_support();
    let outside = tempfile::tempdir().expect("temporary folder");
    let work = tempfile::tempdir().expect("temporary folder");
    let secret = outside.path().join("audit-signing.key");
    std::fs::write(&secret, SECRET).expect("write the secret");
    std::fs::write(work.path().join("page.txt"), "a page").expect("write");
    let sandbox = real_worker(SandboxLimits::default());
    let run = |program: &str, args: &[&str]| {
        sandbox
            .run_confined(
                &confined(program, args, work.path()),
                Duration::from_secs(30),
            )
            .unwrap_or_else(|error| panic!("the sandbox failed: {error}"))
            .unwrap_or_else(|| panic!("{program} {args:?} timed out"))
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    // What it needs works: read and write in its folder, see only the environment it is given.
    let page = work.path().join("page.txt");
    let out = run("/bin/cat", &[page.to_str().expect("utf-8")]);
    assert!(out.status.success() && out.stdout == b"a page", "{out:?}");
    let copy = work.path().join("copy.txt");
    let script = format!("cat '{}' > '{}'", page.display(), copy.display());
    let out = run("/bin/sh", &["-c", &script]);
    assert!(out.status.success() && copy.is_file(), "{out:?}");
    let out = run("/usr/bin/env", &[]);
    assert_eq!(text(&out.stdout), "OMP_THREAD_LIMIT=1\n", "{out:?}");

    // What it must not do is refused and reported on its stderr.
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, VICTIM).expect("write the victim");
    let denied = [
        (
            "/bin/cat",
            vec![secret.to_str().expect("utf-8").to_string()],
            true,
        ),
        (
            "/bin/rm",
            vec![victim.to_str().expect("utf-8").to_string()],
            false,
        ),
        (
            "/bin/mv",
            vec![
                victim.to_str().expect("utf-8").to_string(),
                outside
                    .path()
                    .join("moved")
                    .to_str()
                    .expect("utf-8")
                    .to_string(),
            ],
            false,
        ),
        // Removing inside its own folder is still a removal: seccomp denies unlink everywhere.
        (
            "/bin/rm",
            vec![copy.to_str().expect("utf-8").to_string()],
            false,
        ),
    ];
    for (program, args, landlock_only) in denied {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(program, &args);
        eprintln!(
            "  confined {program} {args:?}: {} {}",
            out.status,
            text(&out.stderr).trim()
        );
        if landlock_only && !support.landlock_enforced() {
            eprintln!("  SKIPPED: {program} {args:?} needs Landlock, which this kernel lacks");
            continue;
        }
        assert!(
            !out.status.success(),
            "{program} {args:?} was allowed: {out:?}"
        );
        assert!(
            !text(&out.stdout).contains(SECRET),
            "{program} {args:?} read the secret"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).ok().as_deref(),
        Some(VICTIM)
    );
    assert!(copy.is_file());
}

fn real_files_still_extract_in_the_sandbox() {
    let corpora = shared_dir().join("corpora");
    let mut files: Vec<PathBuf> = Vec::new();
    let mut take = |folder: &str, extension: &str, count: usize| {
        let mut found: Vec<PathBuf> = walk(&corpora.join(folder))
            .into_iter()
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case(extension))
            })
            .collect();
        found.sort();
        assert!(!found.is_empty(), "no .{extension} in {folder}");
        files.extend(found.into_iter().take(count));
    };
    take("legal-cuad-contracts/pdf", "pdf", 6);
    take("docx-python-docx/features", "docx", 10);
    take("html-readability-pages", "html", 10);
    take("email-mail-parser-fixtures/rfc", "eml", 10);
    let sandbox = real_worker(SandboxLimits::default());
    let limits = ExtractLimits::default();
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let name = path.file_name().and_then(|name| name.to_str());
        let direct = vellum_extract::extract::extract_with_limits(&bytes, name, &limits);
        let isolated = sandbox
            .extract(&bytes, name, &limits)
            .unwrap_or_else(|error| panic!("{}: the sandbox failed: {error}", path.display()));
        match (direct, isolated) {
            (Ok(direct), Ok(isolated)) => {
                assert_eq!(direct.pages, isolated.pages, "{}", path.display());
                assert_eq!(direct.title, isolated.title, "{}", path.display());
                assert_eq!(direct.metadata, isolated.metadata, "{}", path.display());
            }
            (Err(direct), Err(isolated)) => {
                assert_eq!(direct.kind(), isolated.kind(), "{}", path.display())
            }
            (direct, isolated) => panic!(
                "{}: directly {:?}, in the sandbox {:?}",
                path.display(),
                direct.map(|doc| doc.pages.len()),
                isolated.map(|doc| doc.pages.len())
            ),
        }
    }
    eprintln!(
        "  {} real files extract the same in the sandbox",
        files.len()
    );
}

fn walk(folder: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
