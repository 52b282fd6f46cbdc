//! `vellum backup` while another process ingests real files (40 PACER notices, two per commit), `vellum restore` into an empty
//! folder: every restored copy's three stores agree, a copy taken once the ingest is over
//! answers searches exactly as the original does, its audit log verifies with the original's
//! key, and a damaged backup is refused before anything is written.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{shared_dir, vellum_command};
use serde_json::Value;

fn run(data_dir: &Path, args: &[&str]) -> Output {
    vellum_command(data_dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("vellum {args:?}: {e}"))
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let output = run(data_dir, args);
    assert!(
        output.status.success(),
        "vellum {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// (document, chunk) of each hit, in rank order.
fn hits(data_dir: &Path, query: &str) -> Vec<(String, String)> {
    let out = ok(data_dir, &["--json", "search", query, "--k", "10"]);
    let hits: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    hits.as_array()
        .into_iter()
        .flatten()
        .map(|hit| {
            let chunk = &hit["hit"]["chunk"];
            (
                chunk["document_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                chunk["chunk_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn document_ids(data_dir: &Path) -> Vec<String> {
    let out = ok(data_dir, &["--json", "documents"]);
    let documents: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut ids: Vec<String> = documents
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|document| document["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

fn restore(backup: &Path, into: &Path) {
    let output = run(into, &["restore", backup.to_str().unwrap_or_default()]);
    assert!(
        output.status.success(),
        "restore {}: {}",
        backup.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(line) = stderr
        .lines()
        .find(|line| line.starts_with("Restored into"))
    {
        println!("{line}");
    }
    let check = ok(into, &["check"]);
    assert!(check.contains("The stores agree"), "{check}");
}

#[test]
fn backups_taken_during_an_ingest_restore_whole() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = work.path();
    let data = work.join("data");
    let notices = shared_dir().join("corpora/email-court-notices-pacer/nef");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&notices)
        .unwrap_or_else(|e| panic!("{}: {e}", notices.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 50, "{} PACER notices", files.len());
    let (first, second) = files[..50].split_at(10);
    let stage = |name: &str, files: &[PathBuf]| {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for file in files {
            let target = dir.join(file.file_name().unwrap_or_default());
            std::fs::copy(file, target).unwrap_or_else(|e| panic!("{e}"));
        }
        dir.to_str().unwrap_or_default().to_string()
    };
    let first = stage("first", first);
    let second = stage("second", second);
    ok(&data, &["ingest", &first, "-c", "first"]);
    let before = document_ids(&data);

    // The second batch commits two files at a time while backups are taken.
    let mut ingest = vellum_command(&data)
        .args(["ingest", &second, "-c", "second", "--batch-files", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut during = Vec::new();
    loop {
        let running = ingest
            .try_wait()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none();
        // Each backup is restored below: a dozen is plenty.
        if !running && !during.is_empty() || during.len() >= 12 {
            break;
        }
        let backup = work.join(format!("during-{}", during.len()));
        // With the keys: without them the restored folder's audit log cannot be continued, and
        // every command (documents, below) writes to it.
        ok(
            &data,
            &[
                "backup",
                backup.to_str().unwrap_or_default(),
                "--include-keys",
            ],
        );
        during.push((backup, running));
        if !running {
            break;
        }
    }
    let status = ingest.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the second ingest failed");
    let taken_while_running = during.iter().filter(|(_, running)| *running).count();
    println!(
        "{} backups, {taken_while_running} while the ingest ran",
        during.len()
    );
    assert!(taken_while_running > 0, "no backup overlapped the ingest");
    let after = document_ids(&data);
    for (index, (backup, _)) in during.iter().enumerate() {
        let restored = work.join(format!("restored-{index}"));
        restore(backup, &restored);
        let ids = document_ids(&restored);
        assert!(
            before.iter().all(|id| ids.contains(id)),
            "backup {index} lost documents ingested before it began"
        );
        assert!(ids.iter().all(|id| after.contains(id)), "backup {index}");
    }

    // Without the keys, restore says what is missing.
    let keyless = work.join("keyless");
    ok(&data, &["backup", keyless.to_str().unwrap_or_default()]);
    let output = run(
        &work.join("restored-keyless"),
        &["restore", keyless.to_str().unwrap_or_default()],
    );
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("holds no audit keys"));

    // Once the ingest is over, a backup is the same data folder.
    let whole = work.join("whole");
    ok(
        &data,
        &[
            "backup",
            whole.to_str().unwrap_or_default(),
            "--include-keys",
        ],
    );
    let restored = work.join("restored-whole");
    restore(&whole, &restored);
    assert_eq!(document_ids(&restored), after);
    for query in [
        "notice of electronic filing",
        "motion to dismiss",
        "bankruptcy court chapter 13 trustee",
        "order granting extension of time",
    ] {
        assert_eq!(hits(&restored, query), hits(&data, query), "{query}");
    }
    let public_key =
        std::fs::read_to_string(data.join("audit-keys").join(vellum_audit::PUBLIC_KEY_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
    let verified = ok(
        &restored,
        &["audit", "verify", "--public-key", public_key.trim()],
    );
    assert!(verified.contains("audit log intact"), "{verified}");

    // A damaged backup is refused, naming the file, and nothing is written.
    let catalog = whole.join("catalog.sqlite");
    let mut bytes = std::fs::read(&catalog).unwrap_or_else(|e| panic!("{e}"));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&catalog, bytes).unwrap_or_else(|e| panic!("{e}"));
    let target = work.join("never");
    let output = run(&target, &["restore", whole.to_str().unwrap_or_default()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("catalog.sqlite"),
        "{stderr}"
    );
    assert!(
        !target.exists(),
        "a refused restore wrote {}",
        target.display()
    );
}
