//! Data at rest (review issue 15, finding 2): the data folder holds the full text of privileged
//! documents (catalog, Tantivy, LanceDB), the password hashes (auth.sqlite and its -wal), the
//! audit keys and the TLS key, so no other local user may read any of it.
//!
//! Against the real binary, because the finding is about the process: `vellum ingest` of real
//! corpus files and one `vellum serve` into a fresh data folder, then every file and folder must
//! be owner-only, and the user `nobody` must fail to read the catalog and auth.sqlite-wal. The
//! start-up check: `vellum serve` refuses a data folder others can enter, and says what to run.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{shared_dir, vellum_command};

/// A `vellum serve` child, killed when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a started `vellum serve` did first: printed its address, or exited.
enum Start {
    Listening(Server),
    Exited { code: Option<i32>, stderr: String },
}

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default")
}

/// Starts `vellum serve` and waits until it listens or exits (stderr collected either way).
fn start_serve(data_dir: &Path, extra: &[&str]) -> (Start, mpsc::Receiver<String>) {
    let mut child = vellum_command(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--no-generation"])
        .arg("--policies")
        .arg(policies())
        .args(extra)
        .env(
            "VELLUM_ADMIN_PASSWORD",
            "admin password for the data-at-rest test",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn vellum serve: {err}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let (listening_tx, listening_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening on https://") {
                let _ = listening_tx.send(address.to_string());
            }
        }
    });
    let (stderr_tx, stderr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[vellum serve] {line}");
            let _ = stderr_tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if listening_rx
            .recv_timeout(Duration::from_millis(100))
            .is_ok()
        {
            return (Start::Listening(Server { child }), stderr_rx);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Give the reader thread a moment to drain stderr after the exit.
            std::thread::sleep(Duration::from_millis(200));
            let stderr: Vec<String> = stderr_rx.try_iter().collect();
            return (
                Start::Exited {
                    code: status.code(),
                    stderr: stderr.join("\n"),
                },
                stderr_rx,
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "vellum serve neither listened nor exited within 120 s"
        );
    }
}

/// Copies a CUAD contract (plain text) and a PACER court e-mail into a fresh folder.
fn corpus_files(dir: &Path) -> PathBuf {
    let corpora = shared_dir().join("corpora");
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap_or_else(|err| panic!("{err}"));
    let contract = corpora.join(
        "legal-cuad-contracts/txt/WatchitMediaInc_20061201_8-K_EX-10.1_4148672_EX-10.1_Content License Agreement.txt",
    );
    let email = corpora.join("email-court-notices-pacer/nef/almd_1.eml");
    for (from, name) in [(&contract, "license.txt"), (&email, "notice.eml")] {
        std::fs::copy(from, docs.join(name))
            .unwrap_or_else(|err| panic!("{}: {err}", from.display()));
    }
    docs
}

/// A temporary folder that other users may traverse (0755), like a home or /srv: otherwise
/// the test's own 0700 temp folder would hide a careless data folder and prove nothing.
fn traversable_work_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|err| panic!("chmod work dir: {err}"));
    work
}

fn ingest(data_dir: &Path, docs: &Path) {
    let output = vellum_command(data_dir)
        .arg("ingest")
        .arg(docs)
        .args(["--collection", "matter-1234"])
        .output()
        .unwrap_or_else(|err| panic!("vellum ingest: {err}"));
    assert!(
        output.status.success(),
        "vellum ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every path under `root` (itself included) with its permission bits; symlinks are skipped
/// (their own mode means nothing).
fn walk(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        if meta.file_type().is_symlink() {
            continue;
        }
        found.push((path.clone(), meta.permissions().mode() & 0o7777));
        if meta.is_dir() {
            for entry in
                std::fs::read_dir(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            {
                pending.push(
                    entry
                        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
                        .path(),
                );
            }
        }
    }
    found.sort();
    found
}

fn ls_l_r(dir: &Path) -> String {
    let output = Command::new("ls")
        .arg("-laR")
        .arg(dir)
        .output()
        .unwrap_or_else(|err| panic!("ls: {err}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `cat FILE` as the user nobody: Some(output) when a way to switch users exists, None when
/// neither runuser nor setpriv can (not root, or not installed).
fn cat_as_nobody(file: &Path) -> Option<std::process::Output> {
    let tries: [(&str, &[&str]); 2] = [
        ("runuser", &["-u", "nobody", "--", "cat"]),
        (
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "cat",
            ],
        ),
    ];
    for (program, args) in tries {
        let Ok(output) = Command::new(program).args(args).arg(file).output() else {
            continue;
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The switch itself failed (not root, no such user): try the next way.
        if !output.status.success()
            && (stderr.contains("may not be used by non-root")
                || stderr.contains("Operation not permitted")
                || stderr.contains("user nobody does not exist"))
        {
            continue;
        }
        return Some(output);
    }
    None
}

#[test]
fn a_fresh_data_folder_is_private_to_its_owner() {
    let work = traversable_work_dir();
    let docs = corpus_files(work.path());
    let data_dir = work.path().join("data");
    ingest(&data_dir, &docs);
    let (start, _stderr) = start_serve(&data_dir, &[]);
    let server = match start {
        Start::Listening(server) => server,
        Start::Exited { code, stderr } => {
            panic!("vellum serve on a fresh data folder exited ({code:?}): {stderr}")
        }
    };

    // While the server runs: the SQLite write-ahead logs are there, as an attacker finds them.
    let listing = ls_l_r(&data_dir);
    println!(
        "ls -laR of a fresh data folder (vellum ingest, then vellum serve running):\n{listing}"
    );
    for name in [
        "catalog.sqlite",
        "auth.sqlite",
        "auth.sqlite-wal",
        "audit",
        "audit-keys",
        "tls/key.pem",
        "fulltext",
        "vectors",
    ] {
        assert!(
            data_dir.join(name).exists(),
            "{name} missing in the data folder:\n{listing}"
        );
    }
    // Both checks run before anything is asserted, so a failure reports all it found.
    let open_to_others: Vec<String> = walk(&data_dir)
        .into_iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{mode:04o} {}", path.display()))
        .collect();

    // Root ignores permissions, so prove it as another user too.
    let control = work.path().join("control.txt");
    std::fs::write(&control, "readable by anyone\n").unwrap_or_else(|err| panic!("{err}"));
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|err| panic!("{err}"));
    let mut read_by_nobody = Vec::new();
    match cat_as_nobody(&control) {
        None => eprintln!(
            "SKIPPED: the check as user nobody (needs root and runuser or setpriv); only the \
             mode bits were checked"
        ),
        Some(output) => {
            assert!(
                output.status.success(),
                "control: nobody cannot read a world-readable file, so the check proves \
                 nothing: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            for name in ["auth.sqlite-wal", "auth.sqlite", "catalog.sqlite"] {
                let file = data_dir.join(name);
                let output = cat_as_nobody(&file).unwrap_or_else(|| panic!("no runuser now"));
                let stderr = String::from_utf8_lossy(&output.stderr);
                println!(
                    "as nobody: cat {name}: exit {:?}, {} bytes read, {}",
                    output.status.code(),
                    output.stdout.len(),
                    stderr.trim()
                );
                if output.status.success()
                    || !output.stdout.is_empty()
                    || !stderr.contains("Permission denied")
                {
                    read_by_nobody.push(format!("{name} ({} bytes)", output.stdout.len()));
                }
            }
        }
    }
    assert!(
        open_to_others.is_empty() && read_by_nobody.is_empty(),
        "{} path(s) in the data folder are open to group or others:\n{}\n\
         the user nobody read: {read_by_nobody:?}",
        open_to_others.len(),
        open_to_others.join("\n")
    );
    drop(server);
}

#[test]
fn serve_refuses_a_data_folder_others_can_enter() {
    let work = traversable_work_dir();
    let docs = corpus_files(work.path());
    let data_dir = work.path().join("data");
    ingest(&data_dir, &docs);
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|err| panic!("chmod: {err}"));

    let (start, _stderr) = start_serve(&data_dir, &[]);
    match start {
        Start::Listening(_) => {
            panic!("vellum serve started on a data folder that other users can read (0755)")
        }
        Start::Exited { code, stderr } => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!("chmod 700 {}", data_dir.display())),
                "the refusal must say what to run: {stderr}"
            );
            assert!(stderr.contains("--allow-shared-data-dir"), "{stderr}");
        }
    }

    // Other commands only warn, loudly.
    let output = vellum_command(&data_dir)
        .args(["documents"])
        .output()
        .unwrap_or_else(|err| panic!("vellum documents: {err}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("chmod 700"),
        "{stderr}"
    );

    // An explicit opt-in serves anyway, with the warning.
    let (start, stderr_lines) = start_serve(&data_dir, &["--allow-shared-data-dir"]);
    let Start::Listening(server) = start else {
        panic!("vellum serve --allow-shared-data-dir did not start")
    };
    drop(server);
    // The reader thread forwards the last lines after the exit.
    std::thread::sleep(Duration::from_millis(300));
    let stderr: Vec<String> = stderr_lines.try_iter().collect();
    assert!(
        stderr.iter().any(|line| line.contains("chmod 700")),
        "{stderr:?}"
    );

    // After the chmod the user was told to run, serve starts without the opt-in.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|err| panic!("chmod: {err}"));
    let (start, _) = start_serve(&data_dir, &[]);
    assert!(
        matches!(start, Start::Listening(_)),
        "vellum serve refused a 0700 data folder"
    );
}
