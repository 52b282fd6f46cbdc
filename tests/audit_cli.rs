//! `vellum audit …` end to end: the real binary on a log the library wrote, then on a tampered
//! copy (exit 1, the message names the record).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use vellum_audit::{actions, outcomes, AuditConfig, AuditEvent, AuditLog, ChunkRead};

fn vellum(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vellum"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("VELLUM_AUDIT_PUBLIC_KEY")
        .output()
        .expect("run vellum")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn audit_verify_export_search_public_key() {
    let data = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig::in_data_dir(data.path())).unwrap();
    let public = log.public_key_hex();
    for i in 0..40 {
        let who = if i % 2 == 0 { "alice" } else { "bob" };
        let query = log.sensitive(if i % 5 == 0 { "merger cap" } else { "other" });
        let event = AuditEvent::new(actions::SEARCH, outcomes::OK)
            .principal(who)
            .address("10.0.0.7")
            .decision(true, vec!["policy0".into()])
            .query(query)
            .reads(vec![ChunkRead {
                chunk_id: format!("doc-{i}#0"),
                document_id: format!("doc-{i}"),
                sha256: "ab".repeat(32),
            }]);
        log.append(event).unwrap();
    }
    log.close().unwrap();

    let out = vellum(data.path(), &["audit", "public-key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), public);

    let out = vellum(data.path(), &["audit", "verify", "--public-key", &public]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("audit log intact"),
        "{}",
        text(&out.stdout)
    );

    // The key as a file works too; a wrong key fails.
    let key_file = data
        .path()
        .join("audit-keys")
        .join(vellum_audit::PUBLIC_KEY_FILE);
    let out = vellum(
        data.path(),
        &[
            "audit",
            "verify",
            "--public-key",
            key_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wrong = "11".repeat(32);
    let out = vellum(data.path(), &["audit", "verify", "--public-key", &wrong]);
    assert_eq!(out.status.code(), Some(1));

    let out = vellum(
        data.path(),
        &[
            "--json",
            "audit",
            "export",
            "--principal",
            "bob",
            "--document",
            "doc-3",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(records[0]["principal"], "bob");
    assert!(records[0]["hash"].as_str().unwrap().len() == 64);

    let out = vellum(data.path(), &["audit", "export", "--action", "search"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 41, "header + 40 rows");

    let out = vellum(
        data.path(),
        &["--json", "audit", "search", "--query-text", "merger cap"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 8);
    assert!(
        !fs::read_to_string(data.path().join("audit/segment-00000001.jsonl"))
            .unwrap()
            .contains("merger cap")
    );

    // A tampered copy: one record's principal changed.
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("audit");
    fs::create_dir(&copied).unwrap();
    for entry in fs::read_dir(data.path().join("audit")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copied.join(entry.file_name())).unwrap();
    }
    let segment = copied.join("segment-00000001.jsonl");
    let original = fs::read_to_string(&segment).unwrap();
    let tampered = original.replacen("\"principal\":\"bob\"", "\"principal\":\"eve\"", 1);
    assert_ne!(original, tampered);
    fs::write(&segment, tampered).unwrap();
    let out = vellum(
        data.path(),
        &[
            "audit",
            "verify",
            copied.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let message = text(&out.stderr);
    // start, checkpoint, then alice (seq 2), bob (seq 3): the first bob is record 3.
    assert!(message.contains("NOT intact"), "{message}");
    assert!(
        message.contains("record 3 (segment-00000001.jsonl line 4)"),
        "{message}"
    );
    assert!(message.contains("edited"), "{message}");

    // A copy cut back at a record boundary (the final checkpoint gone).
    fs::write(&segment, &original).unwrap();
    let cut: String = original
        .lines()
        .take(original.lines().count() - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&segment, cut).unwrap();
    let out = vellum(
        data.path(),
        &[
            "audit",
            "verify",
            copied.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("records at the end were removed"),
        "{}",
        text(&out.stderr)
    );
}
