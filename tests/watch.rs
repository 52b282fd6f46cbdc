//! `vellum watch` end to end: the real binary follows a folder of real court e-mails as files
//! are added, changed and removed, and as the folder itself is renamed away and back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{shared_dir, vellum_command as vellum};

/// Kills the watcher when the test ends, passed or not.
struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the first JSON line that `matches`; fails after a minute.
fn expect_line(lines: &Receiver<Value>, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if matches(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no event {what} within a minute; saw {seen:#?}");
}

fn file_event(path: &Path, outcome: &'static str) -> impl Fn(&Value) -> bool {
    let path = path.display().to_string();
    move |line| line["path"] == path.as_str() && line["file"]["outcome"] == outcome
}

fn corpus(name: &str) -> PathBuf {
    shared_dir()
        .join("corpora/email-court-notices-pacer/nef")
        .join(name)
}

#[test]
fn watch_follows_additions_changes_removals_and_a_vanishing_folder() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let tmp_path = tmp.path().canonicalize().expect("canonical temp dir");
    let docs = tmp_path.join("docs");
    let data = tmp_path.join("data");
    std::fs::create_dir_all(&docs).expect("docs");
    for name in ["almd_1.eml", "alsd_1.eml"] {
        std::fs::copy(corpus(name), docs.join(name)).expect("copy");
    }

    let child = vellum(&data)
        .args([
            "watch",
            "--debounce-ms",
            "300",
            "--events",
            "--labels",
            "Privileged",
        ])
        .arg(&docs)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vellum watch starts");
    let mut watcher = Watcher(child);
    let stdout = watcher.0.stdout.take().expect("stdout");
    let (sender, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if sender.send(value).is_err() {
                    break;
                }
            }
        }
    });

    // The first sync indexes what is there.
    let synced = expect_line(&lines, "initial sync", |line| line.get("synced").is_some());
    assert_eq!(synced["synced"]["num_indexed"], 2, "{synced:#}");

    // A new file is indexed, a change replaces it, a removal deletes it.
    let added = docs.join("arwb_1.eml");
    std::fs::copy(corpus("arwb_1.eml"), &added).expect("add");
    expect_line(&lines, "new file indexed", file_event(&added, "indexed"));
    let mut text = std::fs::read(&added).expect("read");
    text.extend_from_slice(b"\nAmended: hearing moved to Courtroom 4B.\n");
    std::fs::write(&added, text).expect("change");
    expect_line(
        &lines,
        "changed file replaced",
        file_event(&added, "replaced"),
    );
    std::fs::remove_file(&added).expect("remove");
    expect_line(
        &lines,
        "removed file deleted",
        file_event(&added, "deleted"),
    );

    // The folder goes away (renamed, as an unmount would look): its documents are kept.
    let moved = tmp_path.join("docs-moved");
    std::fs::rename(&docs, &moved).expect("rename away");
    // Something must happen for the watch to look (a change elsewhere in the old tree shows
    // up as an event on the moved folder); at the latest the poll interval notices.
    std::fs::write(moved.join("touch.txt"), b"touched while away").expect("touch");
    expect_line(&lines, "root unavailable", |line| {
        line.get("root_unavailable").is_some()
    });
    std::fs::remove_file(moved.join("touch.txt")).expect("untouch");
    std::fs::rename(&moved, &docs).expect("rename back");
    expect_line(&lines, "root back", |line| line.get("root_back").is_some());
    let resync = expect_line(&lines, "re-sync", |line| line.get("synced").is_some());
    assert_eq!(resync["synced"]["num_unchanged"], 2, "{resync:#}");
    drop(watcher);

    // Afterwards: the two original documents, nothing else; the stores agree.
    let output = vellum(&data)
        .args(["documents", "--json"])
        .output()
        .expect("documents");
    assert!(output.status.success());
    let documents: Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut paths: Vec<&str> = documents
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|document| document["source_path"].as_str())
        .collect();
    paths.sort();
    let expected: Vec<String> = ["almd_1.eml", "alsd_1.eml"]
        .iter()
        .map(|name| docs.join(name).display().to_string())
        .collect();
    assert_eq!(paths, expected);
    // Every document the watch indexed carries its labels.
    for document in documents.as_array().expect("list") {
        assert_eq!(
            document["labels"],
            serde_json::json!(["privileged"]),
            "{document:#}"
        );
    }
    let check = vellum(&data).args(["check"]).output().expect("check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
