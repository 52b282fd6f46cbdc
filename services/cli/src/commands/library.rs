//! `vellum documents`, `delete` and `reembed` (through the front door), and the offline tools
//! `check`, `eval` and `models`.

use anyhow::{Context as _, Result};
use serde::Serialize;
use vellum_ingest::pipeline::{self, IngestEvent, IngestOptions, TextDocument};
use vellum_rag::{eval, Fusion, RetrievalOptions, Retriever, SearchMode};

use crate::cli::{CollectionArgs, DeleteArgs, EvalArgs, ReembedArgs};
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

pub(super) fn reembed(ctx: &Context, args: ReembedArgs) -> Result<()> {
    let door = ctx.front_door(false)?;
    let embedder = door.embedder_name.clone();
    if !ctx.json {
        eprintln!(
            "Re-embedding collection {:?} with {embedder} ...",
            args.collection
        );
    }
    let mut bar = None;
    let done = door
        .service
        .reembed_collection(&door.caller, &args.collection, &mut |progress| {
            let bar =
                bar.get_or_insert_with(|| progress_bar(progress.documents_total, "embedding"));
            bar.set_position(progress.documents_done);
        })
        .map_err(service_error)
        .with_context(|| {
            format!(
                "re-embedding collection {:?} (run the same command again to finish an \
                 interrupted re-embed)",
                args.collection
            )
        })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    door.close()?;
    if ctx.json {
        return print_json(&done);
    }
    println!(
        "Re-embedded {} documents ({} chunks) of {:?} with {embedder} (were {}).",
        done.documents_done, done.chunks_done, args.collection, done.previous
    );
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
    #[serde(skip_serializing_if = "Option::is_none")]
    tuned: Option<eval::TuneReport>,
}

/// The evaluation index's chunking (`--chunk-words`, `--chunk-overlap`).
fn chunking(args: &EvalArgs) -> vellum_ingest::chunk::ChunkOptions {
    vellum_ingest::chunk::ChunkOptions {
        max_words: args.chunk_words,
        overlap_words: args.chunk_overlap,
    }
}

/// Indexes the set's corpus into `store`: its `corpus.jsonl`, or the files of `--documents`.
fn index_corpus(
    store: &vellum_store::Store,
    embedder: &vellum_models::Embedder,
    set: &eval::BeirSet,
    args: &EvalArgs,
    collection: &str,
) -> Result<pipeline::IngestSummary> {
    if let Some(dir) = &args.documents {
        let listing = pipeline::collect_files(std::slice::from_ref(dir))?;
        let options = IngestOptions {
            collection: collection.into(),
            chunk: chunking(args),
            ..super::ingest::extraction_options(&args.extraction)?
        };
        let bar = progress_bar(listing.files.len() as u64, "indexing");
        let summary = pipeline::ingest_files(
            store,
            embedder,
            &listing.files,
            std::slice::from_ref(dir),
            &options,
            &mut |event| {
                if let IngestEvent::FileDone { .. } = event {
                    bar.inc(1);
                }
            },
        )?;
        bar.finish_and_clear();
        return Ok(summary);
    }
    if set.corpus.is_empty() {
        anyhow::bail!(
            "{} has no corpus.jsonl: name the corpus files with --documents DIR",
            args.beir.display()
        );
    }
    let documents: Vec<TextDocument> = set
        .corpus
        .iter()
        .map(|doc| TextDocument {
            source_path: doc.id.clone(),
            title: String::new(),
            pages: vec![doc.indexed_text()],
            format: "text".into(),
            metadata: Default::default(),
        })
        .collect();
    let options = IngestOptions {
        collection: collection.into(),
        chunk: chunking(args),
        ..IngestOptions::default()
    };
    let bar = progress_bar(documents.len() as u64, "indexing");
    let summary = pipeline::ingest_texts(store, embedder, documents, &options, &mut |event| {
        if let IngestEvent::FileDone { .. } = event {
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    Ok(summary)
}

pub(super) fn evaluate(ctx: &Context, args: EvalArgs) -> Result<()> {
    let set = eval::load_beir(&args.beir, &args.split)
        .with_context(|| format!("loading the BEIR set {}", args.beir.display()))?;
    // `rrf` is hybrid with the previous fusion, for comparison.
    let modes: Vec<(SearchMode, Fusion)> = args
        .modes
        .split(',')
        .map(|m| match m.trim() {
            "rrf" => Ok((SearchMode::Hybrid, Fusion::Rrf { k: 60.0 })),
            other => other.parse().map(|mode| (mode, Fusion::DEFAULT)),
        })
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
    let collection = "beir";
    let indexed = store
        .list_collections()?
        .into_iter()
        .find(|(name, _)| name == collection)
        .map_or(0, |(_, count)| count);
    let summary = if indexed > 0 {
        // An --index-dir built by an earlier run: evaluated as it is.
        eprintln!(
            "reusing the index in {} ({indexed} documents)",
            index_dir.display()
        );
        None
    } else {
        Some(index_corpus(&store, &embedder, &set, &args, collection)?)
    };
    // Its own throwaway index of a public benchmark, never the data folder: an offline tool
    // (docs/audit.md) with a proof of its own, and nothing audited.
    let scope = eval::benchmark_scope(&store)?;
    let retriever = Retriever::new(&store, &embedder, &scope);
    let base = RetrievalOptions::default();
    // Files are judged by name: `contract.pdf` is document `contract`.
    let from_files = args.documents.is_some();
    let document_of = |source: &str| -> String {
        if from_files {
            let path = std::path::Path::new(source);
            path.file_stem().map_or_else(
                || source.to_string(),
                |stem| stem.to_string_lossy().into_owned(),
            )
        } else {
            source.to_string()
        }
    };
    if let Some(path) = &args.candidates_out {
        let candidates =
            eval::collect_candidates(&retriever, &set, &base, args.candidates_depth, &document_of)?;
        let mut out = String::new();
        for query in &candidates {
            out.push_str(&serde_json::to_string(query)?);
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut reports = Vec::new();
    for (mode, fusion) in modes {
        let options = RetrievalOptions {
            fusion,
            ..base.clone()
        };
        reports.push(eval::evaluate_mapped(
            &retriever,
            &set,
            mode,
            &options,
            &document_of,
        )?);
    }
    let tuned = if args.tune {
        // The same candidates live search fuses (its default depth), retrieved once.
        let candidates =
            eval::collect_candidates(&retriever, &set, &base, args.candidates_depth, &document_of)?;
        let tuned = eval::tune(&candidates, &set);
        let held_out_loss = tuned.held_out_ndcg.1 < tuned.held_out_ndcg.0;
        if let (Some(collection), true) = (&args.apply, held_out_loss) {
            // A weight that only fits the tuning queries is not applied.
            eprintln!(
                "collection {collection:?} keeps the default: the tuned weight {:.2} did worse \
                 than the default on the held-out queries ({:.4} < {:.4})",
                tuned.vector_weight, tuned.held_out_ndcg.1, tuned.held_out_ndcg.0
            );
        } else if let Some(collection) = &args.apply {
            let door = ctx.front_door(false)?;
            door.service
                .set_fusion_weight(&door.caller, collection, Some(tuned.vector_weight))
                .map_err(service_error)?;
            door.close()?;
            eprintln!(
                "collection {collection:?} of {}: hybrid vector weight set to {:.2}",
                ctx.data_dir.display(),
                tuned.vector_weight
            );
        }
        Some(tuned)
    } else {
        None
    };
    let stats = store.stats()?;
    let report = EvalReport {
        beir: args.beir.display().to_string(),
        split: args.split.clone(),
        num_documents: stats.num_documents as usize,
        ingest_seconds: summary.as_ref().map_or(0.0, |summary| summary.seconds),
        num_chunks: stats.num_chunks,
        modes: reports,
        tuned,
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
            match r.fusion.as_deref() {
                Some(fusion) if fusion.starts_with("rrf") => "rrf",
                _ => r.mode.as_str(),
            },
            r.ndcg_at_10,
            r.recall_at_10,
            r.recall_at_100,
            r.mrr_at_10,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.num_queries
        );
    }
    if let Some(tuned) = &report.tuned {
        println!(
            "tuned vector weight {:.2} on {} queries (nDCG@10 {:.4} → {:.4}); held out {} \
             queries: default {:.4}, tuned {:.4} (bm25 {:.4}, vector {:.4})",
            tuned.vector_weight,
            tuned.tuning_queries,
            tuned.tuning_ndcg.0,
            tuned.tuning_ndcg.1,
            tuned.held_out_queries,
            tuned.held_out_ndcg.0,
            tuned.held_out_ndcg.1,
            tuned.held_out_engines.0,
            tuned.held_out_engines.1,
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
