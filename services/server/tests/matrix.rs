//! The authorization matrix, on the service layer (no HTTP): principals × collections × labels
//! × actions over real documents (court PDFs and PACER e-mails) ingested with the real embedder
//! and answered with the real SmolLM2, under the law-firm Cedar policies.
//!
//! The oracle is Cedar itself, asked about each document one by one. The service never asks
//! per document for searches: it turns permitted scopes into a filter inside Tantivy and
//! LanceDB. The test checks that the two agree exactly: nothing returned, counted, cited or
//! summarized that Cedar would deny (0 leaks), and everything Cedar permits reachable.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use vellum_auth::Principal;
use vellum_authz::{Action, Authorizer, PrincipalInfo, RequestContext, Resource};
use vellum_server::api::{AskRequest, ModeName, SearchRequest, SummarizeRequest};
use vellum_server::{AskEvent, Caller, Service, ServiceError, UploadFields};

/// (collection, labels, corpus file): two matters, each with a public and a privileged part.
const DOCUMENTS: &[common::DocumentSpec<'static>] = &[
    (
        "matter-1234",
        "",
        "legal-court-documents-freelaw/recap_documents/ca2_1-1.pdf",
    ),
    (
        "matter-1234",
        "privileged",
        "email-court-notices-pacer/nef/almd_1.eml",
    ),
    (
        "matter-9999",
        "",
        "legal-court-documents-freelaw/recap_documents/ca6_1-3.pdf",
    ),
    (
        "matter-9999",
        "privileged",
        "email-court-notices-pacer/nef/alsd_1.eml",
    ),
];

/// (name, roles, groups).
const USERS: &[common::UserSpec<'static>] = &[
    ("alice", &["attorney"], &["matter-1234"]),
    ("pete", &["paralegal"], &["matter-1234"]),
    (
        "walt",
        &["attorney"],
        &["matter-1234", "walled-matter-1234"],
    ),
    ("carol", &["attorney"], &["matter-9999"]),
    ("rita", &["records"], &[]),
    ("admin", &["admin"], &[]),
    ("nobody", &[], &[]),
];

struct Fixture {
    work: tempfile::TempDir,
    audit: std::sync::Arc<vellum_audit::AuditLog>,
    service: Service,
    oracle: Authorizer,
    principals: Vec<Principal>,
    /// id → (collection, labels)
    documents: BTreeMap<String, (String, Vec<String>)>,
}

fn fixture() -> Fixture {
    let setup = common::setup("law-firm", DOCUMENTS, USERS);
    Fixture {
        work: setup.work,
        audit: setup.audit,
        service: setup.service,
        oracle: Authorizer::load(&common::policies("law-firm"))
            .unwrap_or_else(|err| panic!("{err}")),
        principals: setup.principals,
        documents: setup.documents,
    }
}

impl Fixture {
    /// What Cedar says about `action` on one document, asked directly.
    fn permits(&self, principal: &Principal, action: Action, id: &str) -> bool {
        let (collection, labels) = &self.documents[id];
        self.oracle
            .is_allowed(
                &PrincipalInfo::new(
                    principal.name.clone(),
                    principal.roles.clone(),
                    principal.groups.clone(),
                ),
                action,
                &Resource::document(id, collection.clone(), labels.clone()),
                &RequestContext::default(),
            )
            .allowed
    }

    fn permitted(&self, principal: &Principal, action: Action) -> BTreeSet<String> {
        self.documents
            .keys()
            .filter(|id| self.permits(principal, action, id))
            .cloned()
            .collect()
    }
}

#[test]
fn authorization_matrix_has_no_leaks() {
    let fx = fixture();
    assert_eq!(fx.documents.len(), DOCUMENTS.len());
    let mut checks = 0usize;
    let mut leaks = 0usize;
    for principal in &fx.principals {
        let who = principal.name.as_str();
        let caller = Caller::new(principal.clone(), "192.0.2.7");
        // Search, both engines: exactly the permitted documents (k above the chunk count, so
        // every permitted chunk is reachable by the vector engine).
        let allowed_search = fx.permitted(principal, Action::Search);
        for mode in [ModeName::Vector, ModeName::Bm25, ModeName::Hybrid] {
            let response = fx
                .service
                .search(
                    &caller,
                    &SearchRequest {
                        query: "court notice appeal order judgment filed".into(),
                        mode: Some(mode),
                        k: Some(100),
                        collections: None,
                        ..Default::default()
                    },
                )
                .unwrap_or_else(|err| panic!("{who} search: {err}"));
            let found: BTreeSet<String> = response
                .results
                .iter()
                .map(|hit| hit.document_id.clone())
                .collect();
            leaks += found.difference(&allowed_search).count();
            checks += response.results.len();
            if matches!(mode, ModeName::Vector) {
                assert_eq!(found, allowed_search, "{who}: vector search vs Cedar");
            } else {
                assert!(found.is_subset(&allowed_search), "{who} {mode:?} leaked");
            }
        }

        // Listings and counts: exactly the readable documents.
        let allowed_read = fx.permitted(principal, Action::Read);
        let listed: BTreeSet<String> = fx
            .service
            .list_documents(&caller, None)
            .unwrap_or_else(|err| panic!("{err}"))
            .into_iter()
            .map(|document| document.id)
            .collect();
        assert_eq!(listed, allowed_read, "{who}: listing vs Cedar");
        let counted: u64 = fx
            .service
            .list_collections(&caller)
            .unwrap_or_else(|err| panic!("{err}"))
            .iter()
            .map(|collection| collection.num_documents)
            .sum();
        assert_eq!(counted as usize, allowed_read.len(), "{who}: counts");
        checks += 2;

        // Reads: permitted, or indistinguishable from a missing document.
        let missing = fx.service.get_document(&caller, "no-such-document");
        assert!(matches!(missing, Err(ServiceError::NotFound)));
        for id in fx.documents.keys() {
            let got = fx.service.get_document(&caller, id);
            match (fx.permits(principal, Action::Read, id), &got) {
                (true, Ok(document)) => assert_eq!(&document.id, id),
                (false, Err(ServiceError::NotFound)) => {}
                (expected, other) => {
                    panic!("{who} read {id}: expected {expected}, got {other:?}")
                }
            }
            checks += 1;
        }

        // Ask: the sources given to the model are permitted (one token is enough to see them).
        let allowed_ask = fx.permitted(principal, Action::Ask);
        let mut sources = BTreeSet::new();
        let mut events = Vec::new();
        fx.service
            .ask(
                &caller,
                &AskRequest {
                    question: "What did the court order?".into(),
                    document_id: None,
                    mode: Some(ModeName::Vector),
                    k: Some(20),
                    collections: None,
                    max_tokens: Some(1),
                    ..Default::default()
                },
                &mut |event| {
                    if let AskEvent::Sources(list) = &event {
                        sources.extend(list.iter().map(|source| source.document_id.clone()));
                    }
                    events.push(match event {
                        AskEvent::Sources(_) => "sources",
                        AskEvent::Token(_) => "token",
                        AskEvent::Answer(_) => "answer",
                    });
                },
            )
            .unwrap_or_else(|err| panic!("{who} ask: {err}"));
        assert_eq!(events.first(), Some(&"sources"), "{who}: {events:?}");
        assert_eq!(events.last(), Some(&"answer"), "{who}: {events:?}");
        leaks += sources.difference(&allowed_ask).count();
        assert!(sources.is_subset(&allowed_ask), "{who}: ask sources leaked");
        checks += 1;

        // Summaries: unreadable looks missing; readable but not summarizable is forbidden.
        for id in fx.documents.keys() {
            let request = SummarizeRequest {
                document_id: id.clone(),
                kind: None,
                prose: Some(false),
                max_tokens: Some(16),
            };
            let readable = fx.permits(principal, Action::Read, id);
            let summarizable = fx.permits(principal, Action::Summarize, id);
            match fx.service.summarize(&caller, &request) {
                Ok(summary) => {
                    assert!(readable && summarizable, "{who} summarized {id}");
                    assert_eq!(&summary.document.id, id);
                }
                Err(ServiceError::NotFound) => assert!(!readable, "{who} {id}"),
                Err(ServiceError::Forbidden) => assert!(readable && !summarizable, "{who} {id}"),
                Err(other) => panic!("{who} summarize {id}: {other}"),
            }
            checks += 1;
        }

        // Deletes are checked, not carried out (the matrix shares one store): an unreadable
        // document looks missing, a readable one the caller may not delete is forbidden.
        for id in fx.documents.keys() {
            if fx.permits(principal, Action::Delete, id) && fx.permits(principal, Action::Read, id)
            {
                continue;
            }
            match fx.service.delete_document(&caller, id) {
                Err(ServiceError::NotFound) => {
                    assert!(!fx.permits(principal, Action::Read, id), "{who} {id}")
                }
                Err(ServiceError::Forbidden) => {}
                other => panic!("{who} delete {id}: {other:?}"),
            }
            checks += 1;
        }
    }

    // Uploads last (they add documents): allowed exactly when Cedar says.
    for principal in &fx.principals {
        let who = principal.name.as_str();
        let caller = Caller::new(principal.clone(), "192.0.2.7");
        for collection in ["matter-1234", "matter-9999"] {
            for labels in ["", "privileged"] {
                let expected = fx.oracle.is_allowed(
                    &PrincipalInfo::new(
                        principal.name.clone(),
                        principal.roles.clone(),
                        principal.groups.clone(),
                    ),
                    Action::Upload,
                    &Resource::document(
                        "(new upload)",
                        collection,
                        labels.split(',').filter(|l| !l.is_empty()),
                    ),
                    &RequestContext::default(),
                );
                let fields = UploadFields {
                    collection: Some(collection.into()),
                    labels: Some(labels.into()),
                };
                // The policy decides before the file is received.
                let result = fx
                    .service
                    .begin_upload(&caller, &fields, "note.txt")
                    .and_then(|mut file| {
                        file.write(
                            format!(
                                "File note by {who} for {collection} ({labels}): hearing moved.\n"
                            )
                            .as_bytes(),
                        )?;
                        fx.service.upload(&caller, file)
                    });
                match (expected.allowed, result) {
                    (true, Ok(uploaded)) => {
                        assert!(!uploaded.duplicate);
                        assert_eq!(uploaded.document.collection, collection);
                    }
                    (false, Err(ServiceError::Forbidden)) => {}
                    (expected, other) => {
                        panic!("{who} upload {collection} {labels:?}: expected {expected}, got {other:?}")
                    }
                }
                checks += 1;
            }
        }
    }
    // The policies themselves, spelled out for the cases a reviewer would ask about.
    let by_name = |name: &str| {
        fx.principals
            .iter()
            .find(|principal| principal.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let labels_seen = |name: &str| -> BTreeSet<Vec<String>> {
        fx.permitted(by_name(name), Action::Read)
            .iter()
            .map(|id| fx.documents[id].1.clone())
            .collect()
    };
    assert_eq!(fx.permitted(by_name("alice"), Action::Read).len(), 2);
    assert_eq!(labels_seen("pete"), BTreeSet::from([Vec::new()]));
    assert!(fx.permitted(by_name("walt"), Action::Read).is_empty());
    assert!(fx.permitted(by_name("admin"), Action::Search).is_empty());
    assert!(fx.permitted(by_name("rita"), Action::Read).is_empty());
    assert!(fx.permitted(by_name("nobody"), Action::Search).is_empty());
    println!(
        "authorization matrix: {} principals × {} documents (2 matters × 2 label sets) × 7 \
         actions: {checks} checks, {leaks} leaks",
        fx.principals.len(),
        fx.documents.len()
    );
    assert_eq!(leaks, 0);

    // Every call above left a record, and the log verifies.
    fx.audit.shutdown().unwrap_or_else(|err| panic!("{err}"));
    let dir = fx.work.path().join("data/audit");
    let report = vellum_audit::verify(&dir, &fx.audit.public_key_hex())
        .unwrap_or_else(|err| panic!("verify: {err}"));
    assert!(report.is_intact(), "{report:?}");
    let records = vellum_audit::read_records(&dir).unwrap_or_else(|err| panic!("{err}"));
    let denied = records
        .iter()
        .filter(|record| record.outcome.as_deref() == Some("denied"))
        .count();
    println!(
        "audit: {} records ({} events, {denied} denied), intact",
        report.records, report.events
    );
    // At least one record per call: per principal 3 searches, 2 listings, 5 reads, 1 ask,
    // 4 summaries and 4 uploads (deletes vary).
    let calls = fx.principals.len() * (3 + 2 + 5 + 1 + 4 + 4);
    assert!(
        report.events >= calls as u64,
        "{} events for at least {calls} calls",
        report.events
    );
    assert!(denied > 0, "no denial recorded");
}
