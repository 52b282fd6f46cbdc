//! The reading side of the API: export filters, query search, keys, verify's reports.

mod common;

use std::time::Duration;

use common::small_config;
use vellum_audit::{
    actions, export, outcomes, parse_time, read_public_key, verify, AuditEvent, AuditLog,
    ChunkRead, ExportFilter, ProblemKind, RecordKind,
};

#[test]
fn export_filters_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    let log_id = log.log_id().to_string();
    log.append(AuditEvent::new(actions::LOGIN, outcomes::OK).principal("alice"))
        .unwrap();
    log.append(
        AuditEvent::new(actions::SEARCH, outcomes::OK)
            .principal("alice")
            .reads(vec![ChunkRead {
                chunk_id: "d1#0".into(),
                document_id: "d1".into(),
                sha256: "00".repeat(32),
            }]),
    )
    .unwrap();
    log.close().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let middle = time::OffsetDateTime::now_utc();
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    assert_eq!(log.log_id(), log_id, "a restart continues the same log");
    let id = log
        .append(
            AuditEvent::new(actions::DOCUMENT_DELETE, outcomes::DENIED)
                .principal("bob")
                .resource("d1")
                .decision(false, vec!["forbid-delete".into()]),
        )
        .unwrap();
    // start, checkpoint, login, search, stop, checkpoint, start, checkpoint: then this one.
    assert_eq!(id.0, 8);
    log.close().unwrap();

    let all = export(&dir, &ExportFilter::default()).unwrap();
    assert!(all.iter().all(|r| r.record.kind == RecordKind::Event));
    assert_eq!(
        all.len(),
        7,
        "start, login, search, stop, start, delete, stop"
    );
    let by = |filter: ExportFilter| export(&dir, &filter).unwrap().len();
    assert_eq!(
        by(ExportFilter {
            principal: Some("alice".into()),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        by(ExportFilter {
            document: Some("d1".into()),
            ..Default::default()
        }),
        2,
        "the search that read d1 and the delete of d1"
    );
    assert_eq!(
        by(ExportFilter {
            since: Some(middle),
            action: Some(actions::DOCUMENT_DELETE.into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        by(ExportFilter {
            until: Some(middle),
            principal: Some("bob".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        by(ExportFilter {
            include_checkpoints: true,
            ..Default::default()
        }),
        11
    );
    assert!(parse_time("yesterday").is_err());
}

#[test]
fn verify_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = (tmp.path().join("log"), tmp.path().join("keys"));
    std::fs::create_dir(&dir).unwrap();
    let nothing = verify(&dir, &"22".repeat(32)).unwrap();
    assert_eq!(nothing.problem.unwrap().kind, ProblemKind::NoLog);
    let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
    let public = log.public_key_hex();
    assert_eq!(read_public_key(&keys).unwrap(), public);
    assert_eq!(
        read_public_key(&keys.join(vellum_audit::PUBLIC_KEY_FILE)).unwrap(),
        public
    );
    log.close().unwrap();
    let report = verify(&dir, &format!("ed25519:{public}")).unwrap();
    assert!(report.is_intact());
    assert_eq!(
        (report.records, report.events, report.checkpoints),
        (4, 2, 2)
    );
    // Another key: the first checkpoint is the first problem.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let report = verify(&dir, &hex::encode(other.as_bytes())).unwrap();
    let problem = report.problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::BadSignature);
    assert_eq!(problem.seq, Some(1));
    assert!(verify(&dir, "not a key").is_err());
}
