//! What auditing costs a search, measured in one run: the same service over the same store,
//! with the audit log on (records with HMAC'd query and every returned chunk's SHA-256, written
//! before the answer, fsynced every 50 ms) and off, alternating on/off/on/off so that drift of a
//! busy machine shows up as a difference between the two "on" (or "off") rounds.
//!
//! ```text
//! cargo run --release --example audit_cost -- [SEARCHES_PER_ROUND] [THREADS]
//! ```
//! Needs the models (deploy/fetch-models.sh) and ../shared/corpora. Prints a table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use vellum_audit::{AuditConfig, AuditLog};
use vellum_auth::{AuthStore, NewUser};
use vellum_ingest::pipeline::{collect_files, ingest_files, IngestOptions};
use vellum_models::Embedder;
use vellum_server::api::{ModeName, SearchRequest};
use vellum_server::{Caller, Service, ServiceParts, UploadSettings};
use vellum_store::{Store, StoreOptions};

const QUERIES: &[&str] = &[
    "termination for convenience",
    "governing law and jurisdiction",
    "indemnification obligations",
    "notice of electronic filing",
    "limitation of liability",
    "assignment without consent",
    "joint venture agreement parties",
    "docket entry judgment",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn open_service(data: &Path, audited: bool) -> anyhow::Result<(Service, Caller)> {
    let models = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models"));
    let embedder = Embedder::load(&models.join("all-MiniLM-L6-v2"))?;
    let store = Store::open(
        data,
        StoreOptions {
            embedding_dim: embedder.dim(),
            embedding_model: embedder.model_name().to_string(),
        },
    )?;
    let auth = AuthStore::open(data)?;
    if auth.list_users()?.is_empty() {
        auth.add_user(&NewUser {
            name: "bench",
            password: "a long enough password",
            roles: vec!["admin".into()],
            groups: Vec::new(),
        })?;
    }
    let key = auth.create_key("bench", "bench")?;
    let principal = auth.authenticate(&key.key)?;
    let audit = if audited {
        Some(Arc::new(AuditLog::open(AuditConfig::in_data_dir(data))?))
    } else {
        None
    };
    let service = Service::new(ServiceParts {
        store,
        embedder: Box::new(embedder),
        generator: None,
        auth,
        policies: vellum_server::Policies::Dir(workspace().join("policies/default")),
        uploads: UploadSettings {
            dir: data.join("uploads"),
            max_bytes: 1 << 20,
            reserve_bytes: 0,
            ingest: IngestOptions::default(),
        },
        audit,
    })?;
    Ok((service, Caller::new(principal, "127.0.0.1")))
}

/// Runs `per_round` searches on `threads` threads; returns sorted latencies (ms) and seconds.
fn round(
    service: &Service,
    caller: &Caller,
    mode: ModeName,
    per_round: usize,
    threads: usize,
) -> (Vec<f64>, f64) {
    let started = Instant::now();
    let mut latencies: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in (t..per_round).step_by(threads) {
                        let request = SearchRequest {
                            query: QUERIES[i % QUERIES.len()].into(),
                            mode: Some(mode),
                            k: Some(10),
                            collections: None,
                            ..Default::default()
                        };
                        let one = Instant::now();
                        if let Err(err) = service.search(caller, &request) {
                            eprintln!("search failed: {err}");
                        }
                        mine.push(one.elapsed().as_secs_f64() * 1000.0);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    (latencies, seconds)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((p / 100.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let per_round: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(400);
    let threads: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(2);
    let corpora = std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"))
        .join("corpora");
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    {
        let (service, _) = open_service(&data, false)?;
        drop(service);
        let models = std::env::var_os("VELLUM_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("models"));
        let embedder = Embedder::load(&models.join("all-MiniLM-L6-v2"))?;
        let store = Store::open(
            &data,
            StoreOptions {
                embedding_dim: embedder.dim(),
                embedding_model: embedder.model_name().to_string(),
            },
        )?;
        let listing = collect_files(&[corpora.join("email-court-notices-pacer/nef")])?;
        let options = IngestOptions {
            collection: "notices".into(),
            ..IngestOptions::default()
        };
        let summary = ingest_files(
            &store,
            &embedder,
            &listing.files,
            &[],
            &options,
            &mut |_| {},
        )?;
        eprintln!(
            "corpus: {} PACER e-mails, {} chunks",
            summary.num_indexed, summary.num_chunks
        );
    }
    println!("| mode | audit | round | searches | threads | per second | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for mode in [ModeName::Bm25, ModeName::Hybrid] {
        for (index, audited) in [true, false, true, false].into_iter().enumerate() {
            let (service, caller) = open_service(&data, audited)?;
            // Warm-up: caches, the embedder's first call.
            let _ = round(&service, &caller, mode, 20, threads);
            let (latencies, seconds) = round(&service, &caller, mode, per_round, threads);
            println!(
                "| {mode:?} | {} | {} | {} | {threads} | {:.1} | {:.2} | {:.2} |",
                if audited { "on" } else { "off" },
                index / 2 + 1,
                latencies.len(),
                latencies.len() as f64 / seconds,
                percentile(&latencies, 50.0),
                percentile(&latencies, 99.0),
            );
        }
    }
    Ok(())
}
