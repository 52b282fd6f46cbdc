//! `vellum bundle keygen|sign|verify` end to end: the real binary on a bundle-like folder (the
//! binary itself, the repository's policy sets, the config template), then on tampered copies
//! (exit 1, stderr names the file), plus the config template that deploy/bundle.sh ships.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs vellum with a data folder that is open to others and a models folder that does not
/// exist: a bundle command that looked at either would warn or fail.
fn vellum(scratch: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vellum"))
        .arg("--data-dir")
        .arg(scratch.join("shared-data"))
        .arg("--models-dir")
        .arg(scratch.join("no-models"))
        .args(args)
        .env_remove("VELLUM_BUNDLE_PUBLIC_KEY")
        .env_remove("VELLUM_BUNDLE_SECRET_KEY")
        .output()
        .unwrap_or_else(|e| panic!("run vellum: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn keygen_sign_verify_and_tamper() {
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let scratch = scratch.path();
    let shared = scratch.join("shared-data");
    fs::create_dir(&shared).unwrap_or_else(|e| panic!("{e}"));
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    // keygen: the public key on stdout, the secret only in its 0600 file.
    let prefix = scratch.join("keys/release");
    fs::create_dir_all(scratch.join("keys")).unwrap_or_else(|e| panic!("{e}"));
    let out = vellum(scratch, &["bundle", "keygen", "--out", &path_arg(&prefix)]);
    assert!(out.status.success(), "keygen: {}", text(&out.stderr));
    let secret_file = scratch.join("keys/release.key");
    let public_file = scratch.join("keys/release.pub");
    let secret = fs::read_to_string(&secret_file).unwrap_or_else(|e| panic!("{e}"));
    let public = fs::read_to_string(&public_file).unwrap_or_else(|e| panic!("{e}"));
    let (secret, public) = (secret.trim(), public.trim());
    assert_eq!(public.len(), 64);
    assert!(text(&out.stdout).contains(public), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains(secret) && !text(&out.stderr).contains(secret));
    // A second keygen must not replace the key: bad input, exit 2.
    let again = vellum(scratch, &["bundle", "keygen", "--out", &path_arg(&prefix)]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));

    // A bundle-like folder: this binary, the policy sets, the config template.
    let bundle = scratch.join("vellum-0.1.0");
    fs::create_dir_all(bundle.join("bin")).unwrap_or_else(|e| panic!("{e}"));
    fs::copy(env!("CARGO_BIN_EXE_vellum"), bundle.join("bin/vellum"))
        .unwrap_or_else(|e| panic!("{e}"));
    copy_tree(&Path::new(REPO).join("policies"), &bundle.join("policies"));
    fs::copy(
        Path::new(REPO).join("deploy/vellum.toml.example"),
        bundle.join("vellum.toml.example"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let dir = path_arg(&bundle);
    let out = vellum(
        scratch,
        &[
            "bundle",
            "sign",
            &dir,
            "--secret-key",
            &path_arg(&secret_file),
        ],
    );
    assert!(out.status.success(), "sign: {}", text(&out.stderr));
    assert!(bundle.join("MANIFEST").is_file() && bundle.join("MANIFEST.sig").is_file());

    // Verifies with the key inline and as its file; nothing about the data folder is said.
    for key in [public.to_string(), path_arg(&public_file)] {
        let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", &key]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "verify: {}", text(&out.stderr));
        assert!(stdout.contains("bundle verified"), "{stdout}");
        assert!(stdout.contains(public), "{stdout}");
        assert!(
            !text(&out.stderr).contains("WARNING"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(fs::read_dir(&shared).map(|d| d.count()).ok(), Some(0));

    // One flipped byte in the binary: exit 1, the file named.
    let binary = bundle.join("bin/vellum");
    let original = fs::read(&binary).unwrap_or_else(|e| panic!("{e}"));
    let mut tampered = original.clone();
    if let Some(byte) = tampered.get_mut(original.len() / 2) {
        *byte ^= 0x01;
    }
    fs::write(&binary, &tampered).unwrap_or_else(|e| panic!("{e}"));
    let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", public]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NOT verified") && stderr.contains("bin/vellum: changed"),
        "{stderr}"
    );
    fs::write(&binary, &original).unwrap_or_else(|e| panic!("{e}"));

    // A policy file removed, then a file added: each named.
    let policy = first_file(&bundle.join("policies/default"));
    let rel = policy
        .strip_prefix(&bundle)
        .map(path_arg)
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = fs::read(&policy).unwrap_or_else(|e| panic!("{e}"));
    fs::remove_file(&policy).unwrap_or_else(|e| panic!("{e}"));
    let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", public]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{rel}: missing")),
        "{}",
        text(&out.stderr)
    );
    fs::write(&policy, kept).unwrap_or_else(|e| panic!("{e}"));
    fs::write(bundle.join("bin/vellum-helper"), b"#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
    let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", public]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bin/vellum-helper: extra"),
        "{}",
        text(&out.stderr)
    );
    fs::remove_file(bundle.join("bin/vellum-helper")).unwrap_or_else(|e| panic!("{e}"));

    // Back to intact; then another key: the signature fails, MANIFEST named.
    let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", public]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let other_prefix = path_arg(&scratch.join("keys/other"));
    let out = vellum(scratch, &["bundle", "keygen", "--out", &other_prefix]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let other = format!("{other_prefix}.pub");
    let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", &other]);
    let stderr = text(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("MANIFEST: the signature does not verify"),
        "{:?} {stderr}",
        out.status
    );

    // Input that is not a key, or no folder: exit 2.
    let out = vellum(scratch, &["bundle", "verify", &dir, "--public-key", "abcd"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let missing = path_arg(&scratch.join("no-such-bundle"));
    let out = vellum(
        scratch,
        &["bundle", "verify", &missing, "--public-key", public],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

fn first_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no file in {}", dir.display()))
}

/// deploy/vellum.toml.example parses and resolves as `vellum serve --config` reads it, as
/// shipped and with every commented-out setting (`#key = ...`, `#[section]`) switched on.
#[test]
fn the_config_template_parses_with_and_without_its_commented_settings() {
    use vellum_server::{FileConfig, Overrides, ServerConfig};
    let path = Path::new(REPO).join("deploy/vellum.toml.example");
    let shipped = FileConfig::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        shipped.policies.as_deref(),
        Some(Path::new("/usr/share/vellum/policies/default"))
    );
    ServerConfig::resolve(Overrides::default(), shipped).unwrap_or_else(|e| panic!("{e}"));

    let template = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut switched_on = 0;
    let all_on: String = template
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => {
                switched_on += 1;
                format!("{rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(switched_on >= 15, "only {switched_on} commented settings");
    let all = FileConfig::parse(&all_on).unwrap_or_else(|e| panic!("{e}\n{all_on}"));
    assert!(all.tls.is_some() && all.audit.is_some());
    ServerConfig::resolve(Overrides::default(), all).unwrap_or_else(|e| panic!("{e}"));
}
