//! Runs the patient-record summary over a chunk dump (one JSON line per document, as written by
//! dump_chunks.py: source_path, file, title, format, chunks[{chunk_id, ordinal, page, text}]),
//! loading each original from its source_path. Prints `{"file":..., "items":[...]}` lines;
//! timing goes to stderr.
//!
//! cargo run --release -p vellum-brief --example ccda_summaries -- CHUNKS.jsonl

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use vellum_brief::{clinical, Document, Passage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: ccda_summaries CHUNKS.jsonl")?;
    let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut times: Vec<Duration> = Vec::new();
    for line in reader.lines() {
        let record: Value = serde_json::from_str(&line?)?;
        let format = record["format"].as_str().unwrap_or_default();
        if format != "ccda" {
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
        let items = clinical::summary(&document);
        times.push(started.elapsed());
        let line = serde_json::json!({ "file": file, "items": items });
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
