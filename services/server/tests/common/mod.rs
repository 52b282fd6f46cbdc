//! One service over real documents for the service-level tests: a temporary data folder, the
//! real embedder and SmolLM2, corpus files ingested with collections and labels, users with
//! API keys, a policy set from `policies/`, and an audit log.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vellum_audit::{AuditConfig, AuditLog};
use vellum_auth::{AuthStore, NewUser, Principal};
use vellum_ingest::pipeline::{collect_files, ingest_files, IngestOptions};
use vellum_models::{Embedder, GgufGenerator};
use vellum_server::{Service, ServiceParts, UploadSettings};
use vellum_store::{Store, StoreOptions};

pub fn workspace() -> PathBuf {
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

/// `policies/<set>`.
pub fn policies(set: &str) -> PathBuf {
    workspace().join("policies").join(set)
}

/// (collection, comma-separated labels, file under corpora/).
pub type DocumentSpec<'a> = (&'a str, &'a str, &'a str);
/// (name, roles, groups).
pub type UserSpec<'a> = (&'a str, &'a [&'a str], &'a [&'a str]);

pub struct Setup {
    pub work: tempfile::TempDir,
    pub data: PathBuf,
    pub service: Service,
    pub audit: Arc<AuditLog>,
    /// In the order of the users given.
    pub principals: Vec<Principal>,
    /// Each user's API key (`vk_…`), in the order of the users given.
    pub keys: Vec<String>,
    /// Document id → (collection, labels).
    pub documents: BTreeMap<String, (String, Vec<String>)>,
}

pub fn setup(policy_set: &str, documents: &[DocumentSpec<'_>], users: &[UserSpec<'_>]) -> Setup {
    setup_with_reserve(policy_set, documents, users, 0)
}

/// [`setup`] with uploads that must leave `reserve_bytes` free on the disk.
pub fn setup_with_reserve(
    policy_set: &str,
    documents: &[DocumentSpec<'_>],
    users: &[UserSpec<'_>],
    reserve_bytes: u64,
) -> Setup {
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
    for (collection, labels, file) in documents {
        let source = corpora().join(file);
        let folder = work.path().join("in").join(collection).join(labels);
        std::fs::create_dir_all(&folder).unwrap_or_else(|err| panic!("{err}"));
        let copy = folder.join(source.file_name().unwrap_or_default());
        std::fs::copy(&source, &copy).unwrap_or_else(|err| panic!("{}: {err}", source.display()));
        let listing =
            collect_files(std::slice::from_ref(&copy)).unwrap_or_else(|err| panic!("{err}"));
        let options = IngestOptions {
            collection: collection.to_string(),
            labels: labels
                .split(',')
                .filter(|label| !label.is_empty())
                .map(str::to_string)
                .collect(),
            ..IngestOptions::default()
        };
        let summary = ingest_files(
            &store,
            &embedder,
            &listing.files,
            &[],
            &options,
            &mut |_| {},
        )
        .unwrap_or_else(|err| panic!("ingest {file}: {err}"));
        assert_eq!(summary.num_indexed, 1, "{file}: {summary:?}");
    }
    let documents = store
        .list_documents(&everything(&store), &Default::default())
        .unwrap_or_else(|err| panic!("{err}"))
        .into_iter()
        .map(|record| {
            (
                record.id.0.clone(),
                (record.collection.clone(), record.labels.clone()),
            )
        })
        .collect();
    let auth = AuthStore::open(&data).unwrap_or_else(|err| panic!("auth: {err}"));
    let mut principals = Vec::new();
    let mut keys = Vec::new();
    for (name, roles, groups) in users {
        auth.add_user(&NewUser {
            name,
            password: "a long enough password",
            roles: roles.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap_or_else(|err| panic!("user {name}: {err}"));
        let key = auth
            .create_key(name, "tests")
            .unwrap_or_else(|err| panic!("key {name}: {err}"));
        principals.push(
            auth.authenticate(&key.key)
                .unwrap_or_else(|err| panic!("authenticate {name}: {err}")),
        );
        keys.push(key.key.clone());
    }
    let generator = GgufGenerator::load(
        &models_dir().join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap_or_else(|err| panic!("generator: {err}"));
    let audit = Arc::new(
        AuditLog::open(AuditConfig::in_data_dir(&data))
            .unwrap_or_else(|err| panic!("audit: {err}")),
    );
    let service = Service::new(ServiceParts {
        store,
        embedder: Box::new(embedder),
        generator: Some(Box::new(generator)),
        auth,
        policies: vellum_server::Policies::Dir(policies(policy_set)),
        uploads: UploadSettings {
            dir: data.join("uploads"),
            max_bytes: 1 << 20,
            reserve_bytes,
            ingest: IngestOptions::default(),
        },
        audit: Some(audit.clone()),
    })
    .unwrap_or_else(|err| panic!("service: {err}"));
    Setup {
        work,
        data,
        service,
        audit,
        principals,
        keys,
        documents,
    }
}

/// The test's own view of every document (the oracle's ground truth): Cedar asked under a
/// permit-all policy, the only way to get the store's read proof.
pub fn everything(store: &vellum_store::Store) -> vellum_store::ReadScope {
    use vellum_authz::{Action, Authorizer, PrincipalInfo, RequestContext, Scope};
    let cedar = Authorizer::from_sources(&[(
        "oracle.cedar".into(),
        "permit(principal, action, resource);".into(),
    )])
    .unwrap_or_else(|err| panic!("oracle policy: {err}"));
    let candidates: Vec<Scope> = store
        .list_scopes()
        .unwrap_or_else(|err| panic!("scopes: {err}"))
        .into_iter()
        .map(|scope| Scope::new(scope.collection, scope.labels))
        .collect();
    cedar.read_scope(
        &PrincipalInfo::new("oracle", Vec::<String>::new(), Vec::<String>::new()),
        Action::Read,
        &candidates,
        &RequestContext::default(),
    )
}
