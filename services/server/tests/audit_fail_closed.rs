//! Fail closed: when the audit log cannot be written, requests fail with 503 (`Unavailable`)
//! and return nothing — no search results, no sources, no tokens, no document. The failure is
//! real: the log's segment writes are redirected to /dev/full, which answers every write with
//! ENOSPC, as a full disk does.

mod common;

use vellum_server::api::{AskRequest, SearchRequest};
use vellum_server::{Caller, ServiceError};

#[test]
fn nothing_is_served_without_an_audit_record() {
    let setup = common::setup(
        "default",
        &[(
            "matter-1234",
            "",
            "email-court-notices-pacer/nef/almd_1.eml",
        )],
        &[("alice", &["admin"], &[])],
    );
    let (service, audit, data) = (setup.service, setup.audit, setup.data);
    let document = setup.documents.keys().next().cloned().unwrap_or_default();
    let caller = Caller::new(setup.principals[0].clone(), "192.0.2.9");
    let search = SearchRequest {
        query: "notice of electronic filing".into(),
        mode: None,
        k: Some(5),
        collections: None,
        ..Default::default()
    };

    // With a working log, the search answers.
    let found = service
        .search(&caller, &search)
        .unwrap_or_else(|err| panic!("search: {err}"));
    assert!(!found.results.is_empty());

    // The disk fills up: every request now fails closed, returning nothing.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap_or_else(|err| panic!("/dev/full: {err}"));
    audit.redirect_writes_for_tests(full);
    let refused = service.search(&caller, &search);
    assert!(
        matches!(refused, Err(ServiceError::Unavailable(_))),
        "{refused:?}"
    );
    let mut events = 0;
    let asked = service.ask(
        &caller,
        &AskRequest {
            question: "Which court sent the notice?".into(),
            document_id: None,
            mode: None,
            k: Some(3),
            collections: None,
            max_tokens: Some(8),
            ..Default::default()
        },
        &mut |_| events += 1,
    );
    assert!(
        matches!(asked, Err(ServiceError::Unavailable(_))),
        "{asked:?}"
    );
    assert_eq!(events, 0, "sources or tokens left without an audit record");
    let read = service.get_document(&caller, &document);
    assert!(
        matches!(read, Err(ServiceError::Unavailable(_))),
        "{read:?}"
    );
    let listed = service.list_documents(&caller, None);
    assert!(
        matches!(listed, Err(ServiceError::Unavailable(_))),
        "{listed:?}"
    );
    let failure = audit.failure().unwrap_or_default();
    println!("audit failure, as the server logs it: {failure}");
    assert!(!failure.is_empty());

    // The log on disk still verifies: the failed records were never half-written.
    drop(service);
    let public_key = audit.public_key_hex();
    drop(audit);
    let report = vellum_audit::verify(&data.join("audit"), &public_key)
        .unwrap_or_else(|err| panic!("verify: {err}"));
    assert!(report.is_intact(), "{report:?}");
    let records =
        vellum_audit::read_records(&data.join("audit")).unwrap_or_else(|err| panic!("{err}"));
    let searches = records
        .iter()
        .filter(|record| record.action.as_deref() == Some("search"))
        .count();
    assert_eq!(
        searches, 1,
        "only the search that was answered is in the log"
    );
}
