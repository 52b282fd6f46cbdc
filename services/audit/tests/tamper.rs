//! Tamper evidence, measured: real logs written by the library, 1,000 seeded random mutations
//! (every one must be caught by `verify`), and 100 untouched logs (none may be flagged).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{build_log, realistic_event, small_config, Rng};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use vellum_audit::{verify, AuditLog, ProblemKind, HEAD_FILE};

type Files = BTreeMap<String, Vec<u8>>;

fn load(dir: &Path) -> Files {
    let mut files = Files::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("segment-") || name == HEAD_FILE {
            files.insert(name, fs::read(entry.path()).unwrap());
        }
    }
    files
}

fn store(dir: &Path, files: &Files) {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

fn segments(files: &Files) -> Vec<String> {
    files
        .keys()
        .filter(|n| n.starts_with("segment-"))
        .cloned()
        .collect()
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// All lines of all segments, in order, with the segment each came from.
fn all_lines(files: &Files) -> Vec<(String, Vec<u8>)> {
    segments(files)
        .into_iter()
        .flat_map(|s| lines(&files[&s]).into_iter().map(move |l| (s.clone(), l)))
        .collect()
}

/// Writes `lines` back, each into the segment it is tagged with (segments left empty vanish).
fn put_lines(files: &mut Files, lines: &[(String, Vec<u8>)]) {
    for s in segments(files) {
        files.remove(&s);
    }
    for (segment, line) in lines {
        files
            .entry(segment.clone())
            .or_default()
            .extend_from_slice(line);
    }
}

/// What an attacker who knows the format does after editing a record: recompute its own hash.
fn rehash(mut value: Value) -> Vec<u8> {
    value.as_object_mut().unwrap().remove("hash");
    let body = serde_json::to_vec(&value).unwrap();
    let mut h = Sha256::new();
    h.update(b"vellum-audit-record-v1\n");
    h.update(&body);
    let hash = hex::encode(h.finalize());
    let mut line = body[..body.len() - 1].to_vec();
    line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
    line
}

fn parse(line: &[u8]) -> Value {
    serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(line)).unwrap()
}

fn mutate_value(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::String(s) => {
            if s.is_empty() || rng.below(2) == 0 {
                s.push('x');
            } else {
                // Change one character to another.
                let mut chars: Vec<char> = s.chars().collect();
                let i = rng.below(chars.len());
                chars[i] = if chars[i] == '0' { '1' } else { '0' };
                *s = chars.into_iter().collect();
            }
        }
        Value::Number(n) => {
            let x = n.as_u64().map(|x| x as i64 + 1 - 2 * rng.below(2) as i64);
            *v = match x {
                Some(x) if x >= 0 => Value::from(x),
                _ => Value::from(1),
            };
        }
        Value::Bool(b) => *b = !*b,
        Value::Null => *v = Value::from("x"),
        Value::Array(items) => {
            if items.is_empty() {
                items.push(Value::from("x"));
            } else {
                let i = rng.below(items.len());
                mutate_value(rng, &mut items[i]);
            }
        }
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| *k != "hash").cloned().collect();
            if keys.is_empty() {
                map.insert("x".into(), Value::from("y"));
            } else {
                let k = rng.pick(&keys).clone();
                mutate_value(rng, map.get_mut(&k).unwrap());
            }
        }
    }
}

fn is_checkpoint(line: &[u8]) -> bool {
    parse(line)["type"] == "checkpoint"
}

const KINDS: [&str; 10] = [
    "edit byte",
    "edit field + rehash",
    "drop record",
    "duplicate/insert record",
    "reorder two records",
    "truncate at random offset",
    "truncate at record boundary",
    "splice two logs",
    "delete segment",
    "tamper checkpoint",
];

struct Ctx<'a> {
    other: &'a Files,
    attacker: SigningKey,
}

fn mutate(kind: usize, rng: &mut Rng, files: &mut Files, ctx: &Ctx) {
    let mut ls = all_lines(files);
    let n = ls.len();
    match kind {
        0 => {
            let names: Vec<String> = files.keys().cloned().collect();
            let total: usize = files.values().map(Vec::len).sum();
            let mut at = rng.below(total);
            for name in names {
                let bytes = files.get_mut(&name).unwrap();
                if at < bytes.len() {
                    bytes[at] ^= 1 + rng.below(255) as u8;
                    return;
                }
                at -= bytes.len();
            }
        }
        1 => {
            if rng.below(10) == 0 {
                let mut v = parse(&files[HEAD_FILE]);
                mutate_value(rng, &mut v);
                files.insert(HEAD_FILE.into(), rehash(v));
            } else {
                let i = rng.below(n);
                let mut v = parse(&ls[i].1);
                mutate_value(rng, &mut v);
                ls[i].1 = rehash(v);
                put_lines(files, &ls);
            }
        }
        2 => {
            ls.remove(rng.below(n));
            put_lines(files, &ls);
        }
        3 => {
            let i = rng.below(n);
            let mut copy = ls[i].clone();
            if rng.below(2) == 0 {
                // A forged record: someone else's name, own hash recomputed.
                let mut v = parse(&copy.1);
                v["principal"] = Value::from("mallory");
                copy.1 = rehash(v);
            }
            let at = rng.below(n + 1);
            copy.0 = ls[at.min(n - 1)].0.clone();
            ls.insert(at, copy);
            put_lines(files, &ls);
        }
        4 => {
            let i = rng.below(n);
            let j = if rng.below(2) == 0 && i + 1 < n {
                i + 1
            } else {
                (i + 1 + rng.below(n - 1)) % n
            };
            let (a, b) = (ls[i].1.clone(), ls[j].1.clone());
            ls[i].1 = b;
            ls[j].1 = a;
            put_lines(files, &ls);
        }
        5 => {
            let names = segments(files);
            let total: usize = names.iter().map(|s| files[s].len()).sum();
            let mut at = rng.below(total);
            let drop_later = rng.below(2) == 0;
            let mut cut = false;
            for name in names {
                if cut {
                    if drop_later {
                        files.remove(&name);
                    }
                    continue;
                }
                let bytes = files.get_mut(&name).unwrap();
                if at < bytes.len() {
                    bytes.truncate(at);
                    cut = true;
                } else {
                    at -= bytes.len();
                }
            }
        }
        6 => {
            let checkpoints: Vec<usize> = (0..n - 1).filter(|&i| is_checkpoint(&ls[i].1)).collect();
            let keep = if rng.below(2) == 0 && !checkpoints.is_empty() {
                // Back to an older signed checkpoint.
                rng.pick(&checkpoints) + 1
            } else {
                rng.below(n)
            };
            let empty_segment = ls.get(keep).map(|l| l.0.clone());
            ls.truncate(keep);
            put_lines(files, &ls);
            if let Some(s) = empty_segment {
                if rng.below(2) == 0 && !files.contains_key(&s) {
                    files.insert(s, Vec::new());
                }
            }
        }
        7 => match rng.below(3) {
            0 => {
                // Another log's segment in place of one of ours.
                let ours = segments(files);
                let theirs = segments(ctx.other);
                let s = rng.pick(&ours).clone();
                let t = if theirs.contains(&s) {
                    s.clone()
                } else {
                    rng.pick(&theirs).clone()
                };
                files.insert(s, ctx.other[&t].clone());
            }
            1 => {
                // Our beginning, their end (same key, same sequence numbers).
                let theirs = all_lines(ctx.other);
                let k = 1 + rng.below(n.min(theirs.len()) - 1);
                let mut spliced: Vec<(String, Vec<u8>)> = ls[..k].to_vec();
                for (i, (_, line)) in theirs.into_iter().enumerate().skip(k) {
                    let segment = ls
                        .get(i)
                        .map_or_else(|| ls[n - 1].0.clone(), |l| l.0.clone());
                    spliced.push((segment, line));
                }
                put_lines(files, &spliced);
                if rng.below(2) == 0 {
                    files.insert(HEAD_FILE.into(), ctx.other[HEAD_FILE].clone());
                }
            }
            _ => {
                files.insert(HEAD_FILE.into(), ctx.other[HEAD_FILE].clone());
            }
        },
        8 => {
            let names = segments(files);
            let i = rng.below(names.len());
            files.remove(&names[i]);
            if rng.below(2) == 0 {
                // Close the gap by renumbering the later segments.
                for (j, name) in names.iter().enumerate().skip(i + 1) {
                    let bytes = files.remove(name).unwrap();
                    files.insert(names[j - 1].clone(), bytes);
                }
            }
        }
        _ => {
            let checkpoints: Vec<usize> = (0..n).filter(|&i| is_checkpoint(&ls[i].1)).collect();
            let in_head = rng.below(4) == 0;
            let mut v = if in_head {
                parse(&files[HEAD_FILE])
            } else {
                parse(&ls[*rng.pick(&checkpoints)].1)
            };
            match rng.below(5) {
                0 => {
                    let mut sig: Vec<char> = v["signature"].as_str().unwrap().chars().collect();
                    let i = rng.below(sig.len());
                    sig[i] = if sig[i] == 'a' { 'b' } else { 'a' };
                    v["signature"] = Value::from(sig.into_iter().collect::<String>());
                }
                1 => {
                    let seq = v["seq"].as_u64().unwrap();
                    v["seq"] = Value::from(if rng.below(2) == 0 {
                        seq + 1
                    } else {
                        seq.saturating_sub(1).max(seq ^ 1)
                    });
                }
                2 => {
                    // A valid signature, by another key.
                    v["time"] = Value::from("2030-01-01T00:00:00Z");
                    let msg = format!(
                        "vellum-audit-checkpoint-v1\n{}\n{}\n{}\n{}\n",
                        v["log_id"].as_str().unwrap(),
                        v["seq"],
                        v["prev_hash"].as_str().unwrap(),
                        v["time"].as_str().unwrap()
                    );
                    v["signature"] =
                        Value::from(hex::encode(ctx.attacker.sign(msg.as_bytes()).to_bytes()));
                }
                3 => {
                    let other = parse(&ls[*rng.pick(&checkpoints)].1);
                    if other["signature"] == v["signature"] {
                        v["time"] = Value::from("2031-01-01T00:00:00Z");
                    } else {
                        v["signature"] = other["signature"].clone();
                    }
                }
                _ => v["log_id"] = Value::from("00".repeat(16)),
            }
            if in_head {
                files.insert(HEAD_FILE.into(), rehash(v));
            } else {
                let i =
                    (0..n).find(|&i| parse(&ls[i].1)["seq"] == v["seq"] && is_checkpoint(&ls[i].1));
                let i = i.unwrap_or_else(|| *rng.pick(&checkpoints));
                ls[i].1 = rehash(v);
                put_lines(files, &ls);
            }
        }
    }
}

#[test]
fn every_mutation_is_detected_and_untouched_logs_pass() {
    let started = std::time::Instant::now();
    // On tmpfs where there is one: fsync is then free, and this test is about verification,
    // not durability (fail_closed.rs covers the disk).
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let keys = tmp.path().join("keys");
    // Four base logs of different shapes, plus another log under the same key for splicing.
    let shapes = [(300, 25, 0), (220, 40, 2), (400, 60, 1), (180, 17, 3)];
    let mut bases = Vec::new();
    for (i, &(records, every, restarts)) in shapes.iter().enumerate() {
        let dir = tmp.path().join(format!("base{i}"));
        build_log(&dir, &keys, 1000 + i as u64, records, every, restarts);
        let files = load(&dir);
        assert!(segments(&files).len() >= 2, "base log {i} has one segment");
        bases.push(files);
    }
    let other_dir = tmp.path().join("other");
    build_log(&other_dir, &keys, 77, 300, 30, 1);
    let other = load(&other_dir);
    let public = fs::read_to_string(keys.join(vellum_audit::PUBLIC_KEY_FILE)).unwrap();
    for (i, _) in bases.iter().enumerate() {
        let report = verify(&tmp.path().join(format!("base{i}")), &public).unwrap();
        assert!(report.is_intact(), "base {i}: {:?}", report.problem);
        println!(
            "base log {i}: {} records ({} checkpoints) in {} segments",
            report.records, report.checkpoints, report.segments
        );
    }

    let ctx = Ctx {
        other: &other,
        attacker: SigningKey::from_bytes(&[7; 32]),
    };
    let scratch = tmp.path().join("scratch");
    let mut rng = Rng::new(20_261_127);
    let mut detected = [0usize; 10];
    let mut tried = [0usize; 10];
    let mut by_problem: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..1000 {
        let kind = round % KINDS.len();
        let base = &bases[rng.below(bases.len())];
        let mut files = base.clone();
        // Resample until the mutation changes something.
        while &files == base {
            mutate(kind, &mut rng, &mut files, &ctx);
        }
        store(&scratch, &files);
        let report = verify(&scratch, &public).unwrap();
        tried[kind] += 1;
        match &report.problem {
            Some(problem) => {
                detected[kind] += 1;
                *by_problem.entry(format!("{:?}", problem.kind)).or_default() += 1;
            }
            None => {
                fs::remove_dir_all(tmp.path().join("undetected")).ok();
                fs::rename(&scratch, tmp.path().join("undetected")).unwrap();
                panic!("round {round}: {} went undetected", KINDS[kind]);
            }
        }
    }
    println!(
        "1000 mutations verified in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("mutation kind                  detected / tried");
    for (k, name) in KINDS.iter().enumerate() {
        println!("  {name:<28} {:>4} / {:<4}", detected[k], tried[k]);
    }
    println!(
        "  total                        {:>4} / 1000",
        detected.iter().sum::<usize>()
    );
    println!("first problem reported: {by_problem:?}");
    assert_eq!(detected.iter().sum::<usize>(), 1000);

    // 100 untouched logs: different seeds, sizes, checkpoint intervals, restarts; every fourth
    // one reopened and verified live (an unsigned tail is not an alarm).
    let mut false_alarms = 0;
    let mut live_unsigned = 0;
    for i in 0..100u64 {
        let dir = tmp.path().join(format!("clean{i}"));
        let mut r = Rng::new(i);
        let records = 5 + r.below(200);
        build_log(&dir, &keys, 5000 + i, records, 10 + r.below(60), r.below(2));
        let report = verify(&dir, &public).unwrap();
        if !report.is_intact() {
            false_alarms += 1;
            println!("false alarm on clean log {i}: {:?}", report.problem);
        }
        if i % 4 == 0 {
            let log = AuditLog::open(small_config(&dir, &keys, 1000)).unwrap();
            for _ in 0..1 + r.below(30) {
                log.append(realistic_event(&log, &mut r)).unwrap();
            }
            let report = verify(&dir, &public).unwrap();
            live_unsigned += report.unsigned_tail;
            if !report.is_intact() {
                false_alarms += 1;
                println!("false alarm on live log {i}: {:?}", report.problem);
            }
            drop(log);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "untouched logs: 100 closed + 25 live, false alarms: {false_alarms} (live logs had {live_unsigned} unsigned tail records in all)"
    );
    assert_eq!(false_alarms, 0);
    assert!(ProblemKind::NoLog != ProblemKind::Io);
    println!("tamper test took {:.1} s", started.elapsed().as_secs_f64());
}
