//! Runs a test that mounts a small tmpfs (a real full disk, a real read-only file system)
//! inside a private mount namespace: the mount is invisible to the rest of the machine and
//! disappears with the process, even if the test crashes. `tests/serve.rs` includes this same
//! file.
//!
//! Such a test must never pass without having run: where no namespace can be made it fails,
//! unless `VELLUM_ALLOW_NO_MOUNT=1` says to report it as not run (it then prints `NOT RUN`).

use std::process::Command;

/// Set in the re-run child: the namespace it runs in (the `unshare` flags).
const CHILD_ENV: &str = "VELLUM_TEST_MOUNT_NAMESPACE";

/// Ways to get a mount namespace, best first: as root (CI), then as an unprivileged user
/// through a user namespace that maps the user to root (where the kernel allows it).
const UNSHARE_FLAGS: [&[&str]; 2] = [
    &["--mount", "--propagation", "private"],
    &[
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
    ],
];

/// Call first in a test that mounts. Returns `true` in the child that runs in a private
/// mount namespace (go on: mount, test). Returns `false` in the calling process once that
/// child has passed, or after printing `NOT RUN` where mounting is impossible and
/// `VELLUM_ALLOW_NO_MOUNT=1`; the test then returns. Panics when the child fails, and when no
/// namespace can be made without that variable.
pub fn enter(test_name: &str) -> bool {
    if let Some(flags) = std::env::var_os(CHILD_ENV) {
        println!(
            "{test_name}: in a private mount namespace (unshare {})",
            flags.to_string_lossy()
        );
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut failures = Vec::new();
    for flags in UNSHARE_FLAGS {
        // Can this kind of namespace be made here, and can a tmpfs be mounted in it?
        let probe = Command::new("unshare")
            .args(flags)
            .args(["--", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /tmp"])
            .output();
        match probe {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                failures.push(format!(
                    "unshare {}: {}",
                    flags.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
                continue;
            }
            Err(error) => {
                failures.push(format!("unshare (util-linux): {error}"));
                break;
            }
        }
        let status = Command::new("unshare")
            .args(flags)
            .arg("--")
            .arg(&exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, flags.join(" "))
            .status()
            .expect("run the test again under unshare");
        assert!(
            status.success(),
            "{test_name} in a private mount namespace (unshare {}) failed: {status}",
            flags.join(" ")
        );
        return false;
    }
    let message = format!(
        "{test_name} needs to mount a small tmpfs in a private mount namespace (`unshare \
         --mount` as root, or `unshare --user --map-root-user --mount`), and neither works \
         here: {}",
        failures.join("; ")
    );
    if std::env::var("VELLUM_ALLOW_NO_MOUNT").as_deref() == Ok("1") {
        println!("NOT RUN: {message}");
        eprintln!("NOT RUN: {message}");
        return false;
    }
    panic!("{message}. Set VELLUM_ALLOW_NO_MOUNT=1 to report this test as not run instead.");
}
