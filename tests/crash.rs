//! Crash harness: `kill -9` the real `vellum` binary at random moments of ingests,
//! re-ingests of changed files, prunes and deletes of real documents, then restart and check
//! that nothing half-written is searchable and nothing reported done was lost.
//!
//! Each trial picks an operation and a kill delay from a seeded generator (the sequence of
//! operations and delays is reproducible; where in the code the kill lands also depends on
//! the machine's speed). After every trial `vellum check` must find the catalog, Tantivy and
//! LanceDB holding exactly the same chunks (it first runs the start-up recovery), every file
//! the killed run reported as indexed or replaced must be ready with the content it had, and
//! every document whose deletion was reported must stay gone.
//!
//! `VELLUM_CRASH_TRIALS` sets the number of trials (default 50); `VELLUM_CRASH_SEED` the seed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;
use common::shared_dir;

fn vellum_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = common::vellum_command(data_dir);
    command.args(args);
    command
}

fn vellum_json(data_dir: &Path, args: &[&str]) -> Value {
    let output: Output = vellum_command(data_dir, args)
        .arg("--json")
        .output()
        .expect("the vellum binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "vellum {args:?} failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}"))
}

/// xorshift64*: the harness's only source of randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a killed child managed to report before it died.
struct Run {
    /// Exited on its own (the kill came too late).
    finished: bool,
    success: bool,
    stdout: String,
    /// From the start to the exit or the kill.
    elapsed: Duration,
}

/// Runs `vellum args` and SIGKILLs it after `delay` unless it finished first. With
/// `crash_point`, the store aborts the child at that point instead (see `VELLUM_CRASH_POINT`).
fn run_and_kill(data_dir: &Path, args: &[&str], delay: Duration, crash_point: Option<&str>) -> Run {
    let mut command = vellum_command(data_dir, args);
    if let Some(point) = crash_point {
        command.env("VELLUM_CRASH_POINT", point);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the vellum binary starts");
    let started = Instant::now();
    let deadline = started + delay;
    let mut finished = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            finished = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    let (finished, success) = match finished {
        Some(status) => (true, status.success()),
        None => {
            // SIGKILL: no destructor, no flush, no cleanup runs.
            child.kill().expect("kill -9");
            let status = child.wait().expect("reap");
            (false, status.success())
        }
    };
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("read stdout");
    }
    Run {
        finished,
        success,
        stdout,
        elapsed,
    }
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read doc")))
}

/// Ready documents by source path: (id, sha256). Fails if a path is ready twice.
fn ready_documents(data_dir: &Path) -> BTreeMap<String, (String, String)> {
    let listed = vellum_json(data_dir, &["documents"]);
    let mut documents = BTreeMap::new();
    for document in listed.as_array().expect("document list") {
        let path = document["source_path"].as_str().expect("path").to_string();
        let id = document["id"].as_str().expect("id").to_string();
        let sha = document["sha256"].as_str().expect("sha").to_string();
        assert!(
            documents.insert(path.clone(), (id, sha)).is_none(),
            "{path} is ready twice"
        );
    }
    documents
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Ingest,
    ModifyAndIngest,
    Prune,
    Delete,
}

/// Every point between two stores' writes where the store can abort (see `crash_point` in
/// services/store/src/store.rs), each tried once after the random trials.
const CRASH_POINTS: [&str; 7] = [
    "commit:after-pending",
    "commit:after-fulltext",
    "commit:after-vectors",
    "commit:after-publish",
    "delete:after-mark",
    "delete:after-fulltext",
    "delete:after-vectors",
];

#[test]
fn kill_nine_at_random_points_never_loses_or_half_writes() {
    let trials: usize = std::env::var("VELLUM_CRASH_TRIALS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("VELLUM_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let mut rng = Rng(seed | 1);

    let tmp = tempfile::tempdir().expect("temp dir");
    let docs = tmp.path().join("docs");
    let stash = tmp.path().join("stash");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&docs).expect("docs dir");
    std::fs::create_dir_all(&stash).expect("stash dir");
    // Real PACER court notices (a few chunks each).
    let sources = [
        "email-court-notices-pacer/nef/almd_1.eml",
        "email-court-notices-pacer/nef/alsd_1.eml",
        "email-court-notices-pacer/nef/arwb_1.eml",
        "email-court-notices-pacer/nef/arwd_1.eml",
        "email-court-notices-pacer/nef/cacb_2.eml",
        "email-court-notices-pacer/nef/cand_2.eml",
        "email-court-notices-pacer/nef/ctb_1.eml",
        "email-court-notices-pacer/nef/dcb_1.eml",
    ];
    for source in sources {
        let from = shared_dir().join("corpora").join(source);
        let name = from.file_name().expect("file name").to_owned();
        std::fs::copy(&from, docs.join(name))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    let docs_arg = docs.to_str().expect("utf-8 path").to_string();
    let ingest_args = [
        "ingest",
        docs_arg.as_str(),
        "--batch-files",
        "2",
        "--events",
    ];
    let prune_args = [
        "ingest",
        docs_arg.as_str(),
        "--batch-files",
        "2",
        "--events",
        "--prune",
    ];

    // Calibrate: how long a whole ingest takes here (in scratch data folders). The first run
    // also pays for cold caches (model files, binaries), which made the kill delays too long
    // for the later, warm runs: take the faster of two.
    let hour = Duration::from_secs(3600);
    let mut full_run = hour;
    for attempt in ["calibrate-cold", "calibrate"] {
        let started = Instant::now();
        let calibration = run_and_kill(&tmp.path().join(attempt), &ingest_args, hour, None);
        assert!(calibration.success, "calibration ingest failed");
        full_run = full_run.min(started.elapsed());
    }
    let calibrate = tmp.path().join("calibrate");
    let started = Instant::now();
    assert!(run_and_kill(&calibrate, &ingest_args, hour, None).success);
    let no_op_run = started.elapsed();
    eprintln!(
        "crash harness: a whole ingest takes {full_run:?}, one with nothing to do {no_op_run:?}; \
         {trials} random trials and {} crash points, seed {seed:#x}",
        CRASH_POINTS.len()
    );

    // The machine's speed changes under the test (CI builds llama-cpp-python beside it): a
    // calibration under load once made the later runs finish before most kills (15 of 50
    // killed mid-run). `pace` follows the runs that did finish (their time over the expected
    // one) and creeps up after each kill, so the kills keep landing inside the runs.
    let mut pace = 1.0_f64;
    let mut killed_mid_run = 0;
    let mut rolled_back = 0;
    let mut deletions_finished = 0;
    let mut reported_ready_checked = 0;
    let mut deletions_reported = 0;
    let mut revision = 0;
    for trial in 0..trials + CRASH_POINTS.len() {
        let crash_point = trial.checked_sub(trials).map(|index| CRASH_POINTS[index]);
        let operation = match crash_point {
            Some(point) if point.starts_with("delete") => Operation::Delete,
            Some(_) => Operation::ModifyAndIngest,
            None => match rng.below(8) {
                0..=1 => Operation::Ingest,
                2..=4 => Operation::ModifyAndIngest,
                5 => Operation::Prune,
                _ => Operation::Delete,
            },
        };
        // The kill lands somewhere between half the start-up time (model load) and a bit
        // past the run's expected end; that end depends on how many files have work to do.
        let changed_files = match operation {
            Operation::ModifyAndIngest => 1 + rng.below(3),
            Operation::Ingest => sources.len(),
            Operation::Prune | Operation::Delete => 1,
        };
        let per_file = full_run.saturating_sub(no_op_run) / sources.len() as u32;
        let expected = no_op_run + per_file * changed_files as u32;
        let delay = if crash_point.is_some() {
            hour
        } else {
            expected.mul_f64(pace * (0.5 + 0.6 * rng.fraction()))
        };
        let mut expected_sha: BTreeMap<String, String> = BTreeMap::new();
        let mut delete_target = None;
        let run = match operation {
            Operation::Ingest | Operation::ModifyAndIngest | Operation::Prune => {
                if matches!(operation, Operation::ModifyAndIngest) {
                    let files = list(&docs);
                    for _ in 0..changed_files {
                        let file = &files[rng.below(files.len())];
                        revision += 1;
                        let mut text = std::fs::read(file).expect("read");
                        text.extend_from_slice(
                            format!("\nDocket revision {revision}: amended entry.\n").as_bytes(),
                        );
                        std::fs::write(file, text).expect("modify");
                    }
                }
                if matches!(operation, Operation::Prune) {
                    // Move one file out (pruned), or bring a stashed one back.
                    let stashed = list(&stash);
                    if !stashed.is_empty() && rng.below(2) == 0 {
                        let file = &stashed[rng.below(stashed.len())];
                        std::fs::rename(file, docs.join(file.file_name().expect("name")))
                            .expect("restore");
                    } else {
                        let files = list(&docs);
                        if files.len() > 2 {
                            let file = &files[rng.below(files.len())];
                            std::fs::rename(file, stash.join(file.file_name().expect("name")))
                                .expect("stash");
                        }
                    }
                }
                for file in list(&docs) {
                    let key = canonical_string(&file);
                    expected_sha.insert(key, sha256_of(&file));
                }
                let args: &[&str] = if matches!(operation, Operation::Prune) {
                    &prune_args
                } else {
                    &ingest_args
                };
                run_and_kill(&data, args, delay, crash_point)
            }
            Operation::Delete => {
                let ready = ready_documents(&data);
                if ready.is_empty() {
                    continue;
                }
                let (_, (id, _)) = ready
                    .iter()
                    .nth(rng.below(ready.len()))
                    .expect("a ready document");
                delete_target = Some(id.clone());
                run_and_kill(
                    &data,
                    &["delete", id.as_str(), "--json"],
                    delay,
                    crash_point,
                )
            }
        };
        if let Some(point) = crash_point {
            assert!(
                !run.success,
                "trial {trial}: the run did not reach crash point {point}"
            );
        } else if !run.finished {
            killed_mid_run += 1;
            pace = (pace * 1.05).min(4.0);
        } else {
            assert!(
                run.success,
                "trial {trial}: {operation:?} failed without a kill"
            );
            let observed = run.elapsed.as_secs_f64() / expected.as_secs_f64().max(1e-3);
            pace = ((pace + observed) / 2.0).clamp(0.1, 4.0);
        }

        // Restart: `check` runs the recovery, then compares the three stores.
        let check = vellum_json(&data, &["check"]);
        assert_eq!(
            check["consistent"], true,
            "trial {trial} ({operation:?}, killed after {delay:?} or at {crash_point:?}): {check:#}"
        );
        rolled_back += check["recovery"]["rolled_back"]
            .as_array()
            .map_or(0, Vec::len);
        deletions_finished += check["recovery"]["deletions_finished"]
            .as_array()
            .map_or(0, Vec::len);

        let ready = ready_documents(&data);
        // Every file the run reported as committed is ready, with the content it had.
        for line in run.stdout.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue; // the kill may cut the last line
            };
            let outcome = event["file"]["outcome"].as_str().unwrap_or_default();
            if outcome == "indexed" || outcome == "replaced" {
                let path = event["path"].as_str().expect("event path");
                let (_, sha) = ready.get(path).unwrap_or_else(|| {
                    panic!("trial {trial}: {path} was reported {outcome} but is not ready")
                });
                assert_eq!(
                    Some(sha),
                    expected_sha.get(path),
                    "trial {trial}: {path} is ready with other content than was reported"
                );
                reported_ready_checked += 1;
            }
        }
        // A reported deletion is done for good (a later ingest of the same file may index it
        // again, legitimately, so this is checked right after the trial).
        if run.finished && run.success {
            if let Some(id) = &delete_target {
                assert!(
                    ready.values().all(|(ready_id, _)| ready_id != id),
                    "trial {trial}: deleted document {id} came back"
                );
                deletions_reported += 1;
            }
            if matches!(operation, Operation::Prune) {
                for path in ready.keys() {
                    assert!(
                        expected_sha.contains_key(path),
                        "trial {trial}: {path} was pruned but is still ready"
                    );
                }
            }
        }
    }

    // Finally an uninterrupted prune-ingest: everything on disk is ready, nothing else.
    let final_run = vellum_json(&data, &["ingest", docs_arg.as_str(), "--prune"]);
    assert_eq!(
        final_run["quarantined"].as_array().map(Vec::len),
        Some(0),
        "{final_run:#}"
    );
    let check = vellum_json(&data, &["check"]);
    assert_eq!(check["consistent"], true, "{check:#}");
    let ready = ready_documents(&data);
    let on_disk: BTreeMap<String, String> = list(&docs)
        .iter()
        .map(|file| (canonical_string(file), sha256_of(file)))
        .collect();
    let ready_shas: BTreeMap<String, String> = ready
        .iter()
        .map(|(path, (_, sha))| (path.clone(), sha.clone()))
        .collect();
    assert_eq!(
        ready_shas, on_disk,
        "the final state must mirror the folder"
    );

    eprintln!(
        "crash harness: {trials} trials, {killed_mid_run} killed mid-run (pace at the end \
         {pace:.2}), {rolled_back} \
         half-written documents rolled back, {deletions_finished} interrupted deletions \
         finished, {reported_ready_checked} reported commits and {deletions_reported} reported \
         deletions verified, 0 failures"
    );
    assert!(
        rolled_back > 0 && deletions_finished > 0,
        "the crash points must leave work for the recovery"
    );
    assert!(
        killed_mid_run * 3 >= trials,
        "only {killed_mid_run} of {trials} trials were killed mid-run: the harness is not testing much"
    );
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn canonical_string(path: &Path) -> String {
    std::fs::canonicalize(path)
        .expect("canonical path")
        .display()
        .to_string()
}
