//! `vellum documents` and `delete` (through the front door), and the offline tools `check`,
//! `eval` and `models`.

use anyhow::{Context as _, Result};
use serde::Serialize;
use vellum_ingest::pipeline::{self, IngestEvent, IngestOptions, TextDocument};
use vellum_rag::{eval, RetrievalOptions, Retriever, SearchMode};

use crate::cli::{CollectionArgs, DeleteArgs, EvalArgs};
use crate::context::{open_store_at, service_error, Context};
use crate::render::{print_json, progress_bar};

use super::collections_of;

pub(super) fn documents(ctx: &Context, args: CollectionArgs) -> Result<()> {
    let door = ctx.front_door(false)?;
    let documents = door
        .service
        .list_document_records(&door.caller, collections_of(&args).as_deref())
        .map_err(service_error)?;
    door.close()?;
    if ctx.json {
        return print_json(&documents);
    }
    for doc in &documents {
        let labels = if doc.labels.is_empty() {
            String::new()
        } else {
            format!("  [{}]", doc.labels.join(","))
        };
        println!(
            "{}  {:<10} {:>4} pages {:>5} chunks  {}{labels}",
            doc.id, doc.collection, doc.num_pages, doc.num_chunks, doc.source_path
        );
    }
    println!("{} documents.", documents.len());
    Ok(())
}

pub(super) fn delete(ctx: &Context, args: DeleteArgs) -> Result<()> {
    let door = ctx.front_door(false)?;
    for id in &args.ids {
        door.service
            .delete_document(&door.caller, id)
            .map_err(service_error)
            .with_context(|| {
                format!("deleting document {id} (`vellum documents` lists the ids)")
            })?;
        if !ctx.json {
            println!("Deleted {id}.");
        }
    }
    door.close()?;
    if ctx.json {
        return print_json(&args.ids);
    }
    Ok(())
}

#[derive(Serialize)]
struct CheckReport<'a> {
    consistent: bool,
    recovery: &'a vellum_store::RecoveryReport,
    stores: vellum_store::ConsistencyReport,
}

pub(super) fn check(ctx: &Context) -> Result<()> {
    let embedder = ctx.embedder()?;
    let store = ctx.open_store(&embedder)?;
    let stores = store.check_consistency()?;
    let report = CheckReport {
        consistent: stores.is_consistent(),
        recovery: store.recovery_report(),
        stores,
    };
    if ctx.json {
        print_json(&report)?;
    } else {
        let recovery = report.recovery;
        if !recovery.rolled_back.is_empty() || !recovery.deletions_finished.is_empty() {
            println!(
                "Recovered from an interrupted run: {} half-ingested document(s) rolled back \
                 (ingest their files again), {} deletion(s) finished.",
                recovery.rolled_back.len(),
                recovery.deletions_finished.len()
            );
        }
        let stores = &report.stores;
        println!(
            "Chunks: catalog {}, full-text index {}, vector table {}; unfinished documents {}.",
            stores.catalog_chunks,
            stores.fulltext_chunks,
            stores.vector_chunks,
            stores.unfinished_documents
        );
        for mismatch in &stores.mismatches {
            println!("  {mismatch}");
        }
    }
    if !report.consistent {
        anyhow::bail!(
            "the stores of {} disagree; re-ingest into a new data folder",
            ctx.data_dir.display()
        );
    }
    if !ctx.json {
        println!("The stores agree.");
    }
    Ok(())
}

#[derive(Serialize)]
struct EvalReport {
    beir: String,
    split: String,
    num_documents: usize,
    ingest_seconds: f64,
    num_chunks: u64,
    modes: Vec<eval::ModeReport>,
}

pub(super) fn evaluate(ctx: &Context, args: EvalArgs) -> Result<()> {
    let set = eval::load_beir(&args.beir, &args.split)
        .with_context(|| format!("loading the BEIR set {}", args.beir.display()))?;
    let modes: Vec<SearchMode> = args
        .modes
        .split(',')
        .map(|m| m.trim().parse())
        .collect::<Result<_, _>>()?;
    let embedder = ctx.embedder()?;
    let temp_dir;
    let index_dir = match &args.index_dir {
        Some(dir) => dir.clone(),
        None => {
            temp_dir = tempfile::tempdir().context("creating a temporary index folder")?;
            temp_dir.path().to_path_buf()
        }
    };
    let store = open_store_at(&index_dir, &embedder)?;
    let documents: Vec<TextDocument> = set
        .corpus
        .iter()
        .map(|doc| TextDocument {
            source_path: doc.id.clone(),
            // BEIR convention: the title is part of the indexed text, once. Also giving it as
            // the title would count its words twice in BM25 (title and text fields).
            title: String::new(),
            pages: vec![format!("{}\n{}", doc.title, doc.text)],
            format: "text".into(),
            metadata: Default::default(),
        })
        .collect();
    let options = IngestOptions {
        collection: "beir".into(),
        ..IngestOptions::default()
    };
    let bar = progress_bar(documents.len() as u64, "indexing");
    let summary = pipeline::ingest_texts(&store, &embedder, documents, &options, &mut |event| {
        if let IngestEvent::FileDone { .. } = event {
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    // Its own throwaway index of a public benchmark, never the data folder: an offline tool
    // (docs/audit.md) with a proof of its own, and nothing audited.
    let scope = eval::benchmark_scope(&store)?;
    let retriever = Retriever::new(&store, &embedder, &scope);
    let base = RetrievalOptions::default();
    let mut reports = Vec::new();
    for mode in modes {
        reports.push(eval::evaluate(&retriever, &set, mode, &base)?);
    }
    let report = EvalReport {
        beir: args.beir.display().to_string(),
        split: args.split.clone(),
        num_documents: set.corpus.len(),
        ingest_seconds: summary.seconds,
        num_chunks: summary.num_chunks,
        modes: reports,
    };
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "{} ({} split): {} documents, {} chunks indexed in {:.1} s",
        report.beir, report.split, report.num_documents, report.num_chunks, report.ingest_seconds
    );
    println!(
        "{:<8} {:>8} {:>9} {:>10} {:>8} {:>9} {:>9} {:>8}",
        "mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "p50 ms", "p99 ms", "queries"
    );
    for r in &report.modes {
        println!(
            "{:<8} {:>8.4} {:>9.4} {:>10.4} {:>8.4} {:>9.1} {:>9.1} {:>8}",
            r.mode.as_str(),
            r.ndcg_at_10,
            r.recall_at_10,
            r.recall_at_100,
            r.mrr_at_10,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.num_queries
        );
    }
    Ok(())
}

pub(super) fn models(ctx: &Context) -> Result<()> {
    let models = vellum_models::list_models(&ctx.models_dir)
        .with_context(|| format!("listing models in {}", ctx.models_dir.display()))?;
    if ctx.json {
        return print_json(&models);
    }
    if models.is_empty() {
        println!(
            "No models in {}: run deploy/fetch-models.sh to fetch the default models.",
            ctx.models_dir.display()
        );
        return Ok(());
    }
    for model in &models {
        println!(
            "{:<10} {:<40} {:>6.1} MB  sha256 {}\n           {}",
            format!("{:?}", model.kind).to_lowercase(),
            model.name,
            model.bytes as f64 / 1e6,
            model.sha256,
            model.path.display()
        );
    }
    Ok(())
}
