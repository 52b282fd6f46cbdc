//! The first start as an administrator meets it on an installed machine: `vellum serve` from a
//! working folder that is not the checkout (the built-in policies, no policies/ folder needed),
//! the start-up lines that say where data may go (`egress:`) and whether the data folder is
//! encrypted at rest (`storage:`), settings checked before anything is created, and a data
//! folder from a newer Vellum refused untouched.

// Shared with the other end-to-end tests; this one needs no corpus.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{listening_address, vellum_command};

const ADMIN_PASSWORD: &str = "admin password for first-start tests";

/// `vellum serve` in `work` (the current folder), run until it listens, then stopped; returns
/// its stderr.
fn serve_until_listening(work: &Path, data_dir: &Path) -> String {
    let log = work.join("serve.log");
    let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let mut child = vellum_command(data_dir)
        .current_dir(work)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-generation"])
        .env_remove("VELLUM_POLICIES")
        .env("VELLUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn vellum serve: {e}"));
    let listened = listening_address(&mut child, Duration::from_secs(120)).is_some();
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(listened, "vellum serve did not start:\n{log}");
    log
}

/// A start that must fail: its output.
fn serve_refused(work: &Path, data_dir: &Path, args: &[&str]) -> Output {
    let output = vellum_command(data_dir)
        .current_dir(work)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-generation"])
        .args(args)
        .env_remove("VELLUM_POLICIES")
        .env("VELLUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap_or_else(|e| panic!("run vellum serve: {e}"));
    assert!(
        !output.status.success(),
        "serve {args:?} started: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn serves_from_any_folder_with_the_built_in_policies() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = work.path().join("data");
    let log = serve_until_listening(work.path(), &data_dir);
    for expected in [
        "egress: none configured",
        "Policies: built-in policy set default",
        "storage: ",
    ] {
        assert!(log.contains(expected), "no {expected:?} in:\n{log}");
    }
    let format = std::fs::read_to_string(data_dir.join(vellum_store::FORMAT_FILE))
        .unwrap_or_else(|e| panic!("FORMAT: {e}"));
    assert_eq!(
        format.trim(),
        format!("vellum-data {}", vellum_store::DATA_FORMAT)
    );
    // A built-in set other than the default, by name.
    let output = serve_refused(
        work.path(),
        &work.path().join("unused"),
        &["--policies", "no-such-set"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("default, law-firm, hospital"),
        "the message lists the built-in sets: {stderr}"
    );
}

#[test]
fn a_bad_setting_stops_the_first_start_before_anything_is_created() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let broken = work.path().join("broken-policies");
    std::fs::create_dir(&broken).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        broken.join("typo.cedar"),
        "permit(principal, action, resource",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let broken = broken.display().to_string();
    let missing = work.path().join("missing.pem").display().to_string();
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "a policy folder that does not exist",
            vec!["--policies", "/nonexistent/policies"],
            "cannot read policy folder",
        ),
        (
            "a policy with a syntax error",
            vec!["--policies", &broken],
            "typo.cedar",
        ),
        (
            "a TLS certificate that is not there",
            vec!["--tls-cert", &missing, "--tls-key", &missing],
            "missing.pem",
        ),
    ];
    for (what, args, named) in cases {
        let data_dir = work.path().join("data");
        let output = serve_refused(work.path(), &data_dir, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{what}: {stderr}");
        assert!(
            !stderr.contains("one-time password"),
            "{what}: an admin was created: {stderr}"
        );
        assert!(
            !data_dir.exists(),
            "{what}: the refused start created {}",
            data_dir.display()
        );
    }
}

/// The real machine's storage: the test machines' disks are not dm-crypt (and the device
/// mapper cannot be used on them to make one), so `--require-encrypted-storage` must refuse.
#[test]
fn unencrypted_storage_is_refused_when_encryption_is_required() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = work.path().join("data");
    let probe = vellum_command(&data_dir)
        .current_dir(work.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-generation",
            "--help",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&probe.stdout).contains("--require-encrypted-storage"));
    let output = vellum_command(&data_dir)
        .current_dir(work.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--no-generation"])
        .arg("--require-encrypted-storage")
        .env("VELLUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // Should the machine's /tmp be on LUKS after all, the server starts: stop it.
            for _ in 0..600 {
                if child.try_wait()?.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("encrypted at rest (dm-crypt") {
        eprintln!("SKIPPED LOUDLY: this machine's temporary folder is on dm-crypt:\n{stderr}");
        return;
    }
    assert!(
        stderr.contains("require_encrypted_storage is set") && stderr.contains("NOT encrypted")
            || stderr.contains("cannot tell whether"),
        "{stderr}"
    );
    assert!(
        !data_dir.exists(),
        "the refused start created the data folder"
    );
}

#[test]
fn a_data_folder_from_a_newer_vellum_is_refused_untouched() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = work.path().join("data");
    std::fs::create_dir(&data_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        &data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let newer = vellum_store::DATA_FORMAT + 1;
    std::fs::write(
        data_dir.join(vellum_store::FORMAT_FILE),
        format!("vellum-data {newer}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = serve_refused(work.path(), &data_dir, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("format {newer}")) && stderr.contains("newer Vellum"),
        "{stderr}"
    );
    let cli = vellum_command(&data_dir)
        .args(["documents"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("newer Vellum"));
    let left: Vec<String> = std::fs::read_dir(&data_dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [vellum_store::FORMAT_FILE], "only the version file");
}
