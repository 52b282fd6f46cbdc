//! Runs the patient-record summary over a chunk dump (one JSON line per document, as written by
//! dump_chunks.py: source_path, file, title, format, chunks[{chunk_id, ordinal, page, text}]),
//! loading each original from its source_path. Prints `{"file":..., "items":[...]}` lines;
//! timing goes to stderr.
//!
//! cargo run --release -p vellum-brief --example ccda_summaries -- CHUNKS.jsonl
//!
//! With `--kind auto|email|filing|general|clinical` it summarises every document of the dump
//! (not only C-CDAs) as that kind (`auto`: as detect_kind says) and adds `"kind"` to each line.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use vellum_brief::{clinical, detect_kind, summarize, Document, Kind, Passage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: ccda_summaries CHUNKS.jsonl [--kind auto|KIND]")?;
    let kind = match args.iter().position(|arg| arg == "--kind") {
        Some(at) => Some(args.get(at + 1).ok_or("--kind needs a value")?.as_str()),
        None => None,
    };
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut times: Vec<Duration> = Vec::new();
    for line in reader.lines() {
        let record: Value = serde_json::from_str(&line?)?;
        let format = record["format"].as_str().unwrap_or_default();
        if kind.is_none() && format != "ccda" {
            continue;
        }
        let file = record["file"].as_str().unwrap_or_default();
        let original = record["source_path"]
            .as_str()
            .and_then(|source| std::fs::read(source).ok());
        let chunks: Vec<(String, u32, u32, String)> = record["chunks"]
            .as_array()
            .map(|chunks| {
                chunks
                    .iter()
                    .map(|chunk| {
                        let number = |key: &str| chunk[key].as_u64().unwrap_or(0) as u32;
                        (
                            chunk["chunk_id"].as_str().unwrap_or_default().to_string(),
                            number("ordinal"),
                            number("page"),
                            chunk["text"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let passages: Vec<Passage<'_>> = chunks
            .iter()
            .map(|(chunk_id, ordinal, page, text)| Passage {
                chunk_id,
                ordinal: *ordinal,
                page: *page,
                text,
            })
            .collect();
        let document = Document {
            title: record["title"].as_str().unwrap_or_default(),
            format,
            passages: &passages,
            original: original.as_deref(),
        };
        let started = Instant::now();
        let (items, chosen) = match kind {
            None => (clinical::summary(&document), Kind::Clinical),
            Some(name) => {
                let chosen = Kind::parse(name).unwrap_or_else(|| detect_kind(&document));
                (summarize(&document, chosen), chosen)
            }
        };
        times.push(started.elapsed());
        let line = match kind {
            None => serde_json::json!({ "file": file, "items": items }),
            Some(_) => serde_json::json!({ "file": file, "kind": chosen.as_str(), "items": items }),
        };
        writeln!(out, "{line}")?;
    }
    times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let total: Duration = times.iter().sum();
        let median = times[times.len() / 2];
        eprintln!(
            "{} summaries: total {:.1} ms, median {:.2} ms, min {:.2} ms, max {:.2} ms",
            times.len(),
            total.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
