//! Runs the contract brief on every document of a chunks dump and prints one JSON line per
//! document: `{"file": ..., "items": [...]}`. Timings go to stderr.
//!
//! Usage: `cargo run --release -p vellum-brief --example cuad_briefs -- CHUNKS.jsonl > briefs.jsonl`
//! where each line of CHUNKS.jsonl is `{"file", "title", "format", "chunks": [{"chunk_id",
//! "ordinal", "page", "text"}]}` (the shape of /work/handoff/dump_chunks.py's output).

use std::io::{BufRead, BufReader, Write};
use std::time::Instant;

use serde::Deserialize;
use vellum_brief::{contract, Document, Passage};

#[derive(Deserialize)]
struct Dump {
    file: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    format: String,
    chunks: Vec<Chunk>,
}

#[derive(Deserialize)]
struct Chunk {
    chunk_id: String,
    ordinal: u32,
    page: u32,
    text: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: cuad_briefs CHUNKS.jsonl")?;
    let reader = BufReader::new(std::fs::File::open(&path)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut total_ms = 0.0;
    let mut count = 0;
    let mut slowest = (0.0_f64, String::new());
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let dump: Dump = serde_json::from_str(&line)?;
        let passages: Vec<Passage<'_>> = dump
            .chunks
            .iter()
            .map(|c| Passage {
                chunk_id: &c.chunk_id,
                ordinal: c.ordinal,
                page: c.page,
                text: &c.text,
            })
            .collect();
        let document = Document {
            title: &dump.title,
            format: &dump.format,
            passages: &passages,
            original: None,
        };
        let started = Instant::now();
        let items = contract::brief(&document);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let pages = passages.iter().map(|p| p.page).max().unwrap_or(0);
        eprintln!("{ms:8.2} ms  {pages:4} pages  {}", dump.file);
        total_ms += ms;
        count += 1;
        if ms > slowest.0 {
            slowest = (ms, dump.file.clone());
        }
        let record = serde_json::json!({ "file": dump.file, "items": items });
        writeln!(out, "{record}")?;
    }
    eprintln!(
        "{count} documents, {total_ms:.1} ms total, {:.2} ms mean, slowest {:.2} ms ({})",
        if count > 0 {
            total_ms / count as f64
        } else {
            0.0
        },
        slowest.0,
        slowest.1
    );
    Ok(())
}
