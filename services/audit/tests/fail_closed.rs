//! Fail closed: a record that cannot be written makes `append` fail, and the log refuses every
//! later record until reopened; the chain on disk stays verifiable throughout. Also: torn-line
//! recovery, restarts, concurrency, and a tampered log refused at open.

mod common;
#[path = "common/mount_namespace.rs"]
mod mount_namespace;

// The injected failures need `AuditLog::redirect_writes_for_tests`, which only test builds have.
#[cfg(not(feature = "test-hooks"))]
compile_error!(
    "these tests need vellum-audit's `test-hooks` feature: run them with `cargo test --workspace` \
     (vellum-server's dev-dependencies turn it on) or `--features vellum-audit/test-hooks`"
);

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{realistic_event, small_config, Rng};
use vellum_audit::{
    actions, outcomes, read_records, verify, AuditError, AuditEvent, AuditLog, ProblemKind,
    PUBLIC_KEY_FILE,
};

fn public_key(keys: &Path) -> String {
    fs::read_to_string(keys.join(PUBLIC_KEY_FILE)).unwrap()
}

fn event(i: usize) -> AuditEvent {
    AuditEvent::new(actions::SEARCH, outcomes::OK)
        .principal("alice")
        .detail("i", i.to_string())
}

/// Appends fail after an injected write failure, later appends too, and a reopen recovers.
fn check_injected_failure(inject: impl FnOnce(&Path) -> File, expected_errno: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    let segment = dir.join("segment-00000001.jsonl");
    log.redirect_writes_for_tests(inject(&segment));
    match log.append(event(10)) {
        Err(AuditError::Io { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(expected_errno), "{source}")
        }
        other => panic!("append into a failing file returned {other:?}"),
    }
    assert!(log.failure().is_some());
    assert!(matches!(log.append(event(11)), Err(AuditError::Failed(_))));
    assert!(matches!(log.checkpoint(), Err(AuditError::Failed(_))));
    assert!(log.close().is_err(), "close must report the failure");
    // Nothing half-written: the log verifies; records 11 and 12 are not in it.
    let report = verify(&dir, &public_key(&keys)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    log.append(event(12)).unwrap();
    log.close().unwrap();
    let report = verify(&dir, &public_key(&keys)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    let is = |r: &vellum_audit::Record, i: &str| r.detail.get("i").map(String::as_str) == Some(i);
    let records = read_records(&dir).unwrap();
    assert!(records.iter().any(|r| is(r, "12")));
    assert!(!records.iter().any(|r| is(r, "10") || is(r, "11")));
}

#[test]
fn full_device_fails_closed() {
    // /dev/full: a real device whose writes fail with ENOSPC, as on a full disk.
    check_injected_failure(
        |_| OpenOptions::new().write(true).open("/dev/full").unwrap(),
        28,
    );
}

#[test]
fn read_only_file_fails_closed() {
    // A handle opened read-only: writes fail with EBADF, whoever runs the test (root ignores
    // permission bits, not the mode a file was opened with).
    check_injected_failure(|segment| File::open(segment).unwrap(), 9);
}

#[test]
fn read_only_folder_fails_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    // A log folder that is a file: creating segments fails for everyone, root included.
    fs::write(&dir, b"not a folder").unwrap();
    assert!(AuditLog::open(small_config(&dir, &keys, 1000)).is_err());
    fs::remove_file(&dir).unwrap();
    fs::create_dir(&dir).unwrap();
    let probe = tmp.path().join("probe");
    fs::write(&probe, b"").unwrap();
    if fs::metadata(&probe).unwrap().uid() == 0 {
        println!("running as root: permission bits do not apply; the read-only cases above and full_and_read_only_filesystem_fail_closed cover it");
        return;
    }
    let mut perms = fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o500);
    fs::set_permissions(&dir, perms).unwrap();
    let result = AuditLog::open(small_config(&dir, &keys, 1000));
    assert!(result.is_err(), "open in a read-only folder must fail");
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount(args: &[&str], target: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(target)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A real full disk (a 64 KiB tmpfs), then room again, then a read-only file system. Runs in a
/// private mount namespace (see `mount_namespace`): it fails where none can be made, unless
/// `VELLUM_ALLOW_NO_MOUNT=1` says to report it as not run.
#[test]
fn full_and_read_only_filesystem_fail_closed() {
    if !mount_namespace::enter("full_and_read_only_filesystem_fail_closed") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    mount(&["-t", "tmpfs", "-o", "size=64k", "tmpfs"], &mnt)
        .unwrap_or_else(|reason| panic!("mount -t tmpfs in the namespace failed: {reason}"));
    let _guard = Mount(mnt.clone());
    let dir = mnt.join("audit");
    let keys = tmp.path().join("keys");
    let log = AuditLog::open(small_config(&dir, &keys, 50)).unwrap();
    let mut rng = Rng::new(1);
    let mut ok = 0;
    let error = loop {
        match log.append(realistic_event(&log, &mut rng).detail("pad", "x".repeat(900))) {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok < 10_000, "64 KiB never filled up");
    };
    println!("tmpfs of 64 KiB: {ok} records, then: {error}");
    assert!(
        matches!(&error, AuditError::Io { source, .. } if source.raw_os_error() == Some(28)),
        "{error:?}"
    );
    assert!(matches!(log.append(event(0)), Err(AuditError::Failed(_))));
    drop(log);
    // What is on the full disk is whole: no torn line, the chain verifies.
    let report = verify(&dir, &public_key(&keys)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(
        report.events as usize,
        ok + 1,
        "start event + the appended ones"
    );
    // Room again: reopen and go on.
    mount(&["-o", "remount,size=1m"], &mnt).unwrap();
    let log = AuditLog::open(small_config(&dir, &keys, 50)).unwrap();
    log.append(event(1)).unwrap();
    log.close().unwrap();
    let report = verify(&dir, &public_key(&keys)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.unsigned_tail, 0);
    // A read-only file system: the log cannot even open.
    mount(&["-o", "remount,ro"], &mnt).unwrap();
    match AuditLog::open(small_config(&dir, &keys, 50)) {
        Err(e) => println!("read-only tmpfs: open failed as it must: {e}"),
        Ok(_) => panic!("opened a log on a read-only file system"),
    }
}

const TORN: &[u8] = b"{\"seq\":9,\"time\":\"2026-";

#[test]
fn torn_last_line_is_reported_then_recovered_explicitly() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    for i in 0..5 {
        log.append(event(i)).unwrap();
    }
    drop(log);
    // A crash mid-write: half a line at the end.
    let segment = dir.join("segment-00000001.jsonl");
    OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(TORN)
        .unwrap();
    let report = verify(&dir, &public_key(&keys)).unwrap();
    let problem = report.problem.expect("a torn line is a problem for verify");
    assert_eq!(problem.kind, ProblemKind::TornLine);
    // start, checkpoint, 5 events, stop, checkpoint: the torn line is where record 9 begins.
    assert_eq!(problem.seq, Some(9));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    log.close().unwrap();
    let report = verify(&dir, &public_key(&keys)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    let records = read_records(&dir).unwrap();
    let start = records
        .iter()
        .rev()
        .find(|r| r.action.as_deref() == Some(actions::AUDIT_START))
        .unwrap();
    assert_eq!(start.detail["torn_line_bytes"], TORN.len().to_string());
    assert_eq!(start.detail["unsigned_records_found"], "0");
}

#[test]
fn tampered_log_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    log.append(event(0).principal("alice")).unwrap();
    log.close().unwrap();
    let segment = dir.join("segment-00000001.jsonl");
    let text = fs::read_to_string(&segment)
        .unwrap()
        .replacen("alice", "alicf", 1);
    fs::write(&segment, text).unwrap();
    match AuditLog::open(small_config(&dir, &keys, 1000)) {
        Err(AuditError::Tampered { problem, .. }) => {
            assert_eq!(problem.kind, ProblemKind::HashMismatch);
            assert_eq!(problem.seq, Some(2));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a tampered log"),
    }
}

#[test]
fn second_writer_is_refused_and_missing_keys_are_not_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    assert!(matches!(
        AuditLog::open(small_config(&dir, &keys, 1000)),
        Err(AuditError::Locked(_))
    ));
    assert!(AuditLog::open(small_config(&dir, &dir, 1000)).is_err());
    log.close().unwrap();
    fs::remove_file(keys.join(vellum_audit::SIGNING_KEY_FILE)).unwrap();
    assert!(matches!(
        AuditLog::open(small_config(&dir, &keys, 1000)),
        Err(AuditError::Key(_))
    ));
}

#[test]
fn many_threads_one_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = Arc::new(AuditLog::open(small_config(&dir, &keys, 100)).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                (0..300)
                    .map(|_| log.append(realistic_event(&log, &mut rng)).unwrap().0)
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 2400);
    log.shutdown().unwrap();
    assert!(matches!(log.append(event(0)), Err(AuditError::Closed)));
    drop(log);
    let report = verify(&dir, &public_key(&keys)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.events, 2402, "start + 2400 + stop");
    assert!(report.segments >= 2);
}

#[test]
fn plain_queries_only_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    let q = log.sensitive("secret merger");
    assert_eq!(q.plain, None);
    log.append(event(0).query(q)).unwrap();
    log.close().unwrap();
    let raw: String = fs::read_dir(&dir)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(!raw.contains("secret merger"));
    let hmac = vellum_audit::load_hmac_key(&keys).unwrap();
    let found = vellum_audit::search_by_query(&dir, &hmac, "secret merger").unwrap();
    assert_eq!(found.len(), 1);
    assert!(vellum_audit::search_by_query(&dir, &hmac, "secret merger ")
        .unwrap()
        .is_empty());

    let mut config = small_config(&dir, &keys, 1000);
    config.store_plain_queries = true;
    let log = AuditLog::open(config).unwrap();
    assert_eq!(log.sensitive("x").plain.as_deref(), Some("x"));
}
