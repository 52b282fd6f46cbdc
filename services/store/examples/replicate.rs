//! Builds a large store for memory and latency measurements (docs/benchmarks.md, "100,000
//! chunks") without an hour of embedding: the ready documents of one or more ingested data
//! folders (their chunk texts and their vectors, read as stored) are committed COPIES times
//! into a new store, each copy under its own collections (`<collection>-<n>`) and document ids.
//!
//! A copy is what a repeated ingest of the same files into another collection would write:
//! the same chunker and embedder give the same texts and vectors. Only the ids differ.
//!
//! usage: cargo run --release -p vellum-store --example replicate -- DEST COPIES SRC...
//! (DEST must not hold a store yet; each SRC is a data folder written by `vellum ingest`.)

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use lancedb::arrow::arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray};
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use sha2::{Digest, Sha256};
use vellum_store::{ChunkId, DocumentId, NewChunk, NewDocument, Store, StoreOptions};

/// One ready document of a source folder, with its chunks.
struct SourceDocument {
    document: NewDocument,
    chunks: Vec<NewChunk>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dest, copies, sources @ ..] = args.as_slice() else {
        bail!("usage: replicate DEST COPIES SRC...");
    };
    if sources.is_empty() {
        bail!("usage: replicate DEST COPIES SRC...");
    }
    let copies: u32 = copies.parse().context("COPIES must be a number")?;
    let dest = PathBuf::from(dest);
    if dest.join("catalog.sqlite").exists() {
        bail!("{} already holds a store", dest.display());
    }

    let mut documents = Vec::new();
    let mut options: Option<StoreOptions> = None;
    for source in sources {
        let (source_options, mut read) = read_source(Path::new(source))?;
        if let Some(known) = &options {
            if known.embedding_model != source_options.embedding_model
                || known.embedding_dim != source_options.embedding_dim
            {
                bail!("{source} was embedded with another model; its vectors cannot be mixed");
            }
        }
        options = Some(source_options);
        documents.append(&mut read);
    }
    let Some(options) = options else {
        bail!("no source");
    };
    let chunks_per_copy: usize = documents.iter().map(|doc| doc.chunks.len()).sum();
    println!(
        "{} documents, {chunks_per_copy} chunks per copy; {copies} copies = {} chunks",
        documents.len(),
        chunks_per_copy * copies as usize
    );

    let store = Store::open(&dest, options)?;
    let started = std::time::Instant::now();
    for copy in 0..copies {
        // Batches of ~2,000 chunks keep each commit's Tantivy and Lance segments moderate.
        let mut batch = Vec::new();
        let mut batch_chunks = 0;
        for source in &documents {
            let mut document = source.document.clone();
            document.collection = format!("{}-{copy}", document.collection);
            document.id = DocumentId(hex_digest(&[&document.id.0, &copy.to_string()]));
            batch_chunks += source.chunks.len();
            batch.push((document, source.chunks.clone()));
            if batch_chunks >= 2_000 {
                store.commit_batch(std::mem::take(&mut batch))?;
                batch_chunks = 0;
            }
        }
        if !batch.is_empty() {
            store.commit_batch(batch)?;
        }
        println!(
            "copy {}/{copies} committed ({:.0} s)",
            copy + 1,
            started.elapsed().as_secs_f64()
        );
    }
    store.optimize()?;
    let stats = store.stats()?;
    println!("store: {stats:?}");
    Ok(())
}

fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// Reads a data folder's ready documents from its catalog and their vectors from its Lance
/// table, both read-only.
fn read_source(dir: &Path) -> Result<(StoreOptions, Vec<SourceDocument>)> {
    let catalog = rusqlite::Connection::open_with_flags(
        dir.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .with_context(|| format!("open the catalog of {}", dir.display()))?;
    let setting = |key: &str| -> Result<String> {
        Ok(
            catalog.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })?,
        )
    };
    let options = StoreOptions {
        embedding_model: setting("embedding_model")?,
        embedding_dim: setting("embedding_dim")?.parse()?,
    };
    let vectors = read_vectors(dir, options.embedding_dim)?;

    let mut documents = Vec::new();
    let mut statement = catalog.prepare(
        "SELECT id, collection, source_path, title, sha256, format, num_pages, metadata, labels \
         FROM documents WHERE state = 'ready' ORDER BY collection, source_path",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, u32>(6)?,
            row.get::<_, String>(7)?,
            row.get::<_, String>(8)?,
        ))
    })?;
    for row in rows {
        let (id, collection, source_path, title, sha256, format, num_pages, metadata, labels) =
            row?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_str(&metadata).unwrap_or_default();
        let mut chunks = Vec::new();
        let mut chunk_rows = catalog.prepare(
            "SELECT chunk_id, ordinal, page, text FROM chunks WHERE document_id = ?1 \
             ORDER BY ordinal",
        )?;
        for chunk in chunk_rows.query_map([&id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, String>(3)?,
            ))
        })? {
            let (chunk_id, ordinal, page, text) = chunk?;
            let vector = vectors
                .get(&(id.clone(), chunk_id.clone()))
                .with_context(|| format!("{}: chunk {chunk_id} has no vector", dir.display()))?
                .clone();
            chunks.push(NewChunk {
                chunk_id: ChunkId(chunk_id),
                ordinal,
                page,
                text,
                vector,
            });
        }
        documents.push(SourceDocument {
            document: NewDocument {
                id: DocumentId(id),
                collection,
                source_path,
                title,
                sha256,
                format,
                num_pages,
                metadata,
                labels: labels
                    .split(',')
                    .filter(|label| !label.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
            chunks,
        });
    }
    Ok((options, documents))
}

/// (document id, chunk id) → vector, from the source's Lance table.
fn read_vectors(dir: &Path, dim: usize) -> Result<HashMap<(String, String), Vec<f32>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let uri = dir.join("vectors").to_string_lossy().into_owned();
    let batches = runtime.block_on(async move {
        let connection = lancedb::connect(&uri).execute().await?;
        let table = connection.open_table("chunks").execute().await?;
        table
            .query()
            .select(Select::columns(&["document_id", "chunk_id", "vector"]))
            .execute()
            .await?
            .try_collect::<Vec<_>>()
            .await
    })?;
    let mut vectors = HashMap::new();
    for batch in &batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .with_context(|| format!("no column {name}"))
        };
        let documents = column("document_id")?
            .as_any()
            .downcast_ref::<StringArray>()
            .context("document_id is not text")?;
        let chunks = column("chunk_id")?
            .as_any()
            .downcast_ref::<StringArray>()
            .context("chunk_id is not text")?;
        let lists = column("vector")?
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .context("vector is not a fixed-size list")?;
        for row in 0..batch.num_rows() {
            let values = lists.value(row);
            let values = values
                .as_any()
                .downcast_ref::<Float32Array>()
                .context("vector values are not f32")?;
            if values.len() != dim {
                bail!(
                    "a vector has {} values, the catalog says {dim}",
                    values.len()
                );
            }
            vectors.insert(
                (
                    documents.value(row).to_string(),
                    chunks.value(row).to_string(),
                ),
                values.values().to_vec(),
            );
        }
    }
    Ok(vectors)
}
