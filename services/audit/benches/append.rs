//! Append cost: one record (a realistic `search` with 8 chunk reads) with the background
//! fsync (default, every 50 ms) and with an fsync inside every append; 8 threads appending at
//! once; and verification speed. On the disk under the system temp folder.
//!
//! `cargo bench -p vellum-audit --bench append`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vellum_audit::{actions, outcomes, AuditConfig, AuditEvent, AuditLog, ChunkRead};

fn search_event(log: &AuditLog, i: u64) -> AuditEvent {
    let reads = (0..8)
        .map(|c| ChunkRead {
            chunk_id: format!("doc-{}#{c}", i % 97),
            document_id: format!("doc-{}", i % 97),
            sha256: "ab".repeat(32),
        })
        .collect();
    AuditEvent::new(actions::SEARCH, outcomes::OK)
        .principal("alice")
        .address("10.0.0.7")
        .decision(true, vec!["policy0".into()])
        .query(log.sensitive("merger agreement indemnification cap"))
        .reads(reads)
        .detail("k", "8")
        .detail("status", "200")
}

fn open(dir: &std::path::Path, fsync_interval: Duration) -> AuditLog {
    let mut config = AuditConfig::new(dir.join("log"), dir.join("keys"));
    config.fsync_interval = fsync_interval;
    AuditLog::open(config).expect("open")
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    for (name, interval) in [
        ("fsync_every_50ms", Duration::from_millis(50)),
        ("fsync_each_append", Duration::ZERO),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = open(tmp.path(), interval);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                log.append(search_event(&log, i)).expect("append")
            })
        });
        log.close().expect("close");
    }
    group.finish();
}

/// 8 threads, 2,000 appends each: records per second; then the latency distribution of
/// 8 x 5,000 appends (printed: p50, p99, p99.9, max).
fn concurrent(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_8_threads");
    group.throughput(Throughput::Elements(16_000));
    group.sample_size(10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(open(tmp.path(), Duration::from_millis(50)));
    let run = |per_thread: u64| -> Vec<Duration> {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let started = Instant::now();
                            log.append(search_event(&log, t * 100_000 + i))
                                .expect("append");
                            started.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect()
    };
    group.bench_function("fsync_every_50ms", |b| b.iter(|| run(2_000)));
    group.finish();
    let mut latencies = run(5_000);
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "append latency, 8 threads x 5000 (checkpoint every 1000): p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

fn verify(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(tmp.path(), Duration::from_millis(50));
    for i in 0..20_000 {
        log.append(search_event(&log, i)).expect("append");
    }
    let public = log.public_key_hex();
    log.close().expect("close");
    let dir = tmp.path().join("log");
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(20_000));
    group.sample_size(10);
    group.bench_function("20k_records", |b| {
        b.iter(|| {
            let report = vellum_audit::verify(&dir, &public).expect("key");
            assert!(report.is_intact());
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = append, concurrent, verify
}
criterion_main!(benches);
