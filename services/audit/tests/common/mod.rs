//! Shared by the audit tests and the benchmark: a seeded RNG and realistic events.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use vellum_audit::{actions, outcomes, AuditConfig, AuditEvent, AuditLog, ChunkRead};

/// SplitMix64: small, seeded, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.below(256)))
            .collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const USERS: &[&str] = &["alice", "bob", "carol", "dr.mendes", "vk_3f9a", "admin"];
const QUERIES: &[&str] = &[
    "merger agreement indemnification cap",
    "patient 4471 discharge summary",
    "who approved the settlement in Q3",
    "non-compete clause Delaware",
    "MRI findings left knee",
];

fn reads(rng: &mut Rng, n: usize) -> Vec<ChunkRead> {
    (0..n)
        .map(|_| {
            let doc = format!("doc-{}", rng.below(40));
            ChunkRead {
                chunk_id: format!("{doc}#{}", rng.below(200)),
                document_id: doc,
                sha256: rng.hex(32),
            }
        })
        .collect()
}

fn receipt(rng: &mut Rng) -> serde_json::Value {
    serde_json::json!({
        "model_sha256": rng.hex(32),
        "template_sha256": rng.hex(32),
        "sampling": {"temperature": 0.0, "top_p": 1.0, "seed": rng.below(1000), "max_tokens": 512}
    })
}

/// One plausible server event.
pub fn realistic_event(log: &AuditLog, rng: &mut Rng) -> AuditEvent {
    let user = rng.pick(USERS).to_string();
    let address = format!("10.0.{}.{}", rng.below(4), rng.below(250));
    let base = |action: &str, outcome: &str| {
        AuditEvent::new(action, outcome)
            .principal(user.clone())
            .address(address.clone())
    };
    match rng.below(11) {
        0..=2 => {
            let query = log.sensitive(QUERIES[rng.below(QUERIES.len())]);
            let n = 1 + rng.below(8);
            base(actions::SEARCH, outcomes::OK)
                .decision(true, vec!["policy0".into()])
                .query(query)
                .reads(reads(rng, n))
                .detail("k", n.to_string())
                .detail("mode", "hybrid")
                .detail("status", "200")
        }
        3..=4 => {
            let query = log.sensitive(QUERIES[rng.below(QUERIES.len())]);
            let r = receipt(rng);
            base(actions::ASK, outcomes::OK)
                .decision(true, vec!["policy0".into(), "matter-team".into()])
                .query(query)
                .reads(reads(rng, 4))
                .receipt(r)
                .detail("status", "200")
        }
        5 => {
            let doc = format!("doc-{}", rng.below(40));
            let r = receipt(rng);
            base(actions::SUMMARIZE, outcomes::OK)
                .resource(doc)
                .reads(reads(rng, 6))
                .receipt(r)
        }
        6 => base(actions::DOCUMENT_READ, outcomes::OK)
            .resource(format!("doc-{}", rng.below(40)))
            .reads(reads(rng, 1)),
        7 => {
            let sha = rng.hex(32);
            base(actions::DOCUMENT_UPLOAD, outcomes::OK)
                .resource(format!("doc-{}", rng.below(40)))
                .detail("document_sha256", sha)
                .detail("bytes", rng.below(5_000_000).to_string())
        }
        8 => {
            if rng.below(2) == 0 {
                base(actions::LOGIN, outcomes::OK)
            } else {
                AuditEvent::new(actions::LOGIN, outcomes::FAILED_LOGIN)
                    .address(address.clone())
                    .query(log.sensitive(&format!("{user}-typo")))
                    .detail("reason", "bad password")
            }
        }
        9 => base(actions::DOCUMENT_DELETE, outcomes::DENIED)
            .resource(format!("doc-{}", rng.below(40)))
            .decision(false, vec!["forbid-delete-non-admin".into()])
            .detail("status", "403"),
        _ => match rng.below(3) {
            0 => base(actions::KEY_CHANGE, outcomes::OK).resource(format!("vk_{}", rng.hex(4))),
            1 => base(actions::USER_CHANGE, outcomes::OK).resource("bob".to_string()),
            _ => base(actions::POLICY_RELOAD, outcomes::OK).detail("policies", "7"),
        },
    }
}

/// A config that makes many checkpoints and segments from a few hundred records.
pub fn small_config(dir: &Path, key_dir: &Path, checkpoint_every: usize) -> AuditConfig {
    let mut config = AuditConfig::new(dir, key_dir);
    config.checkpoint_every = checkpoint_every;
    config.segment_max_bytes = 16 * 1024;
    config.fsync_interval = Duration::from_millis(50);
    config
}

/// Writes a closed log of about `records` events, restarting it `restarts` times on the way.
pub fn build_log(
    dir: &Path,
    key_dir: &Path,
    seed: u64,
    records: usize,
    checkpoint_every: usize,
    restarts: usize,
) {
    let mut rng = Rng::new(seed);
    let per_run = records / (restarts + 1) + 1;
    let mut written = 0;
    for _ in 0..=restarts {
        let log = AuditLog::open(small_config(dir, key_dir, checkpoint_every)).expect("open");
        for _ in 0..per_run.min(records - written) {
            log.append(realistic_event(&log, &mut rng)).expect("append");
            written += 1;
        }
        log.close().expect("close");
    }
}
