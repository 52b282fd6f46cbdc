//! Fail closed: when the audit log cannot be written, requests fail with 503 (`Unavailable`)
//! and return nothing — no search results, no sources, no tokens, no document. The failure is
//! real: the log's segment writes are redirected to /dev/full, which answers every write with
//! ENOSPC, as a full disk does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vellum_audit::{AuditConfig, AuditLog};
use vellum_auth::{AuthStore, NewUser};
use vellum_ingest::pipeline::{collect_files, ingest_files, IngestOptions};
use vellum_models::{Embedder, GgufGenerator};
use vellum_server::api::{AskRequest, SearchRequest};
use vellum_server::{Caller, Service, ServiceError, ServiceParts, UploadSettings};
use vellum_store::{Store, StoreOptions};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models"))
}

fn corpora() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"))
        .join("corpora")
}

#[test]
fn nothing_is_served_without_an_audit_record() {
    let work = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let data = work.path().join("data");
    let embedder = Embedder::load(&models_dir().join("all-MiniLM-L6-v2"))
        .unwrap_or_else(|err| panic!("embedder (run deploy/fetch-models.sh): {err}"));
    let store = Store::open(
        &data,
        StoreOptions {
            embedding_dim: embedder.dim(),
            embedding_model: embedder.model_name().to_string(),
        },
    )
    .unwrap_or_else(|err| panic!("store: {err}"));
    let email = corpora().join("email-court-notices-pacer/nef/almd_1.eml");
    let listing = collect_files(&[email]).unwrap_or_else(|err| panic!("{err}"));
    let options = IngestOptions {
        collection: "matter-1234".into(),
        ..IngestOptions::default()
    };
    ingest_files(
        &store,
        &embedder,
        &listing.files,
        &[],
        &options,
        &mut |_| {},
    )
    .unwrap_or_else(|err| panic!("ingest: {err}"));
    let document = store
        .list_documents(&Default::default())
        .unwrap_or_else(|err| panic!("{err}"))
        .remove(0);
    let auth = AuthStore::open(&data).unwrap_or_else(|err| panic!("auth: {err}"));
    auth.add_user(&NewUser {
        name: "alice",
        password: "a long enough password",
        roles: vec!["admin".into()],
        groups: Vec::new(),
    })
    .unwrap_or_else(|err| panic!("{err}"));
    let key = auth
        .create_key("alice", "test")
        .unwrap_or_else(|err| panic!("{err}"));
    let caller = Caller {
        principal: auth
            .authenticate(&key.key)
            .unwrap_or_else(|err| panic!("{err}")),
        address: "192.0.2.9".into(),
    };
    let audit = Arc::new(
        AuditLog::open(AuditConfig::in_data_dir(&data)).unwrap_or_else(|err| panic!("{err}")),
    );
    let generator = GgufGenerator::load(
        &models_dir().join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap_or_else(|err| panic!("generator: {err}"));
    let service = Service::new(ServiceParts {
        store,
        embedder: Box::new(embedder),
        generator: Some(Box::new(generator)),
        auth,
        policies_dir: workspace().join("policies/default"),
        uploads: UploadSettings {
            dir: data.join("uploads"),
            max_bytes: 1 << 20,
            ingest: IngestOptions::default(),
        },
        audit: Some(audit.clone()),
    })
    .unwrap_or_else(|err| panic!("service: {err}"));
    let search = SearchRequest {
        query: "notice of electronic filing".into(),
        mode: None,
        k: Some(5),
        collections: None,
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
            mode: None,
            k: Some(3),
            collections: None,
            max_tokens: Some(8),
        },
        &mut |_| events += 1,
    );
    assert!(
        matches!(asked, Err(ServiceError::Unavailable(_))),
        "{asked:?}"
    );
    assert_eq!(events, 0, "sources or tokens left without an audit record");
    let read = service.get_document(&caller, &document.id.0);
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
