//! The CLI goes through the same application layer as the HTTPS API: its commands are decided
//! by Cedar and written to the audit log, as the operator (the Unix user) or as an account
//! (`--as USER` under a deployment's policies). The real binary on a real CUAD contract; the
//! records are read back from the log the binary wrote.

mod common;

use std::path::Path;
use std::process::Output;

use common::{shared_dir, vellum_command};
use vellum_audit::{read_records, AuditConfig, Record};

const CONTRACT: &str =
    "legal-cuad-contracts/pdf/MphaseTechnologiesInc_20030911_10-K_EX-10.15_1560667_EX-10.15_Co-Branding Agreement.pdf";

fn vellum(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = vellum_command(data);
    command.args(args);
    let Some(input) = stdin else {
        return command.output().expect("run vellum");
    };
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vellum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for vellum")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = vellum(data, args, None);
    assert!(
        out.status.success(),
        "vellum {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn records(data: &Path) -> Vec<Record> {
    read_records(&AuditConfig::in_data_dir(data).dir).expect("read the audit log")
}

/// The records of `action` written since `from` records.
fn written<'a>(all: &'a [Record], from: usize, action: &str) -> Vec<&'a Record> {
    all[from..]
        .iter()
        .filter(|record| record.action.as_deref() == Some(action))
        .collect()
}

fn policies(set: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(set)
        .display()
        .to_string()
}

#[test]
fn cli_commands_are_authorized_and_audited_like_api_calls() {
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    let contract = shared_dir().join("corpora").join(CONTRACT);
    let contract = contract.to_str().expect("utf-8 path");
    let operator = {
        let out = std::process::Command::new("id")
            .arg("-un")
            .output()
            .expect("id");
        format!("operator:{}", String::from_utf8_lossy(&out.stdout).trim())
    };

    // Ingest: one `document.upload` record for the run, by the operator, with its counts.
    ok(&data, &["ingest", contract, "-c", "matter-1", "--json"]);
    let all = records(&data);
    let uploads = written(&all, 0, "document.upload");
    assert_eq!(uploads.len(), 1, "{all:#?}");
    assert_eq!(uploads[0].principal.as_deref(), Some(operator.as_str()));
    assert_eq!(uploads[0].address.as_deref(), Some("local"));
    assert_eq!(uploads[0].outcome.as_deref(), Some("ok"));
    assert_eq!(uploads[0].resource.as_deref(), Some("matter-1"));
    assert_eq!(
        uploads[0].detail.get("indexed").map(String::as_str),
        Some("1")
    );
    assert!(uploads[0].decision.as_ref().is_some_and(|d| d.allowed));

    // Search: the query as an HMAC, and every returned chunk with its SHA-256.
    let before = all.len();
    let hits: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["--json", "search", "co-branding termination", "-k", "3"],
    ))
    .expect("search JSON");
    let hits = hits.as_array().expect("a list of hits");
    assert!(!hits.is_empty());
    let all = records(&data);
    let searches = written(&all, before, "search");
    assert_eq!(searches.len(), 1);
    let search = searches[0];
    assert_eq!(search.principal.as_deref(), Some(operator.as_str()));
    assert!(search.query.is_some(), "the query is kept (as an HMAC)");
    let read_ids: Vec<&str> = search.reads.iter().map(|r| r.chunk_id.as_str()).collect();
    let hit_ids: Vec<&str> = hits
        .iter()
        .filter_map(|hit| hit["hit"]["chunk"]["chunk_id"].as_str())
        .collect();
    assert_eq!(read_ids, hit_ids);

    // Users and keys: `user.change` and `key.change`, decided by Cedar (`admin` on accounts).
    let before = all.len();
    let out = vellum(
        &data,
        &[
            "user",
            "add",
            "paula",
            "--role",
            "paralegal",
            "--group",
            "matter-2",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&data, &["key", "create", "paula", "--name", "scanner"]);
    ok(&data, &["user", "disable", "paula"]);
    ok(&data, &["user", "enable", "paula"]);
    let all = records(&data);
    let users = written(&all, before, "user.change");
    let operations: Vec<&str> = users
        .iter()
        .filter_map(|r| r.detail.get("operation").map(String::as_str))
        .collect();
    assert_eq!(operations, ["create", "disable", "enable"]);
    assert!(users
        .iter()
        .all(|r| r.resource.as_deref() == Some("paula") && r.outcome.as_deref() == Some("ok")));
    let keys = written(&all, before, "key.change");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].detail.get("operation").map(String::as_str),
        Some("create")
    );

    // As a paralegal of another matter under the law-firm policies: nothing of matter-1 is
    // found or listed, the delete is refused like a missing document (exit 3), and each is in
    // the log under her name.
    let documents: serde_json::Value =
        serde_json::from_str(&ok(&data, &["--json", "documents"])).expect("documents JSON");
    let id = documents[0]["id"].as_str().expect("an id").to_string();
    let law_firm = policies("law-firm");
    let as_paula = ["--as", "paula", "--policies", law_firm.as_str()];
    let before = all.len();
    let found = ok(
        &data,
        &[
            &as_paula[..],
            &["--json", "search", "co-branding termination"],
        ]
        .concat(),
    );
    assert_eq!(found.trim(), "[]");
    let listed = ok(&data, &[&as_paula[..], &["--json", "documents"]].concat());
    assert_eq!(listed.trim(), "[]");
    let refused = vellum(&data, &[&as_paula[..], &["delete", &id]].concat(), None);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let all = records(&data);
    let paula: Vec<&Record> = all[before..]
        .iter()
        .filter(|r| r.principal.as_deref() == Some("paula"))
        .collect();
    let actions: Vec<(&str, &str)> = paula
        .iter()
        .filter_map(|r| Some((r.action.as_deref()?, r.outcome.as_deref()?)))
        .collect();
    assert!(actions.contains(&("search", "ok")), "{actions:?}");
    assert!(actions.contains(&("document.list", "ok")), "{actions:?}");
    assert!(
        actions.contains(&("document.delete", "not_found")),
        "{actions:?}"
    );
    assert!(
        paula.iter().all(|r| r.reads.is_empty()),
        "paula read nothing"
    );

    // A disabled account cannot be acted as.
    ok(&data, &["user", "disable", "paula"]);
    let out = vellum(&data, &[&as_paula[..], &["documents"]].concat(), None);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--as"));

    // The operator deletes: `document.delete`, allowed, and the document is gone.
    let before = records(&data).len();
    ok(&data, &["delete", &id]);
    let all = records(&data);
    let deletes = written(&all, before, "document.delete");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].outcome.as_deref(), Some("ok"));
    assert_eq!(deletes[0].resource.as_deref(), Some(id.as_str()));
    let listed = ok(&data, &["--json", "documents"]);
    assert_eq!(listed.trim(), "[]");

    // And the log the CLI wrote verifies.
    let public = ok(&data, &["audit", "public-key"]);
    let verified = ok(&data, &["audit", "verify", "--public-key", public.trim()]);
    assert!(verified.contains("audit log intact"), "{verified}");
}
