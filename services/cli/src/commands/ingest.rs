//! `vellum ingest` and `vellum watch`: through the front door, with progress and events.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result};
use vellum_ingest::extract::PdfPasswords;
use vellum_ingest::isolate::{Sandbox, SandboxLimits};
use vellum_ingest::ocr::OcrOptions;
use vellum_ingest::pipeline::{self, FileOutcome, IngestEvent, IngestOptions};
use vellum_ingest::watch::{WatchEvent, WatchOptions};
use vellum_store::{SearchFilter, Store};

use crate::cli::{ExtractArgs, IngestArgs, WatchArgs};
use crate::context::{service_error, Context};
use crate::render::{print_json, progress_bar, short_name};

pub(super) fn ingest(ctx: &Context, args: IngestArgs) -> Result<()> {
    if args.report {
        let embedder = ctx.embedder()?;
        let store = ctx.open_store(&embedder)?;
        return quarantine_report(ctx, &store, &args.collection);
    }
    let door = ctx.front_door(false)?;
    let pipeline::FileListing {
        files,
        unreadable: walk_errors,
    } = pipeline::collect_files(&args.paths)?;
    let options = IngestOptions {
        collection: args.collection.clone(),
        batch_files: args.batch_files,
        prune: args.prune,
        retry_quarantined: args.retry_quarantined,
        labels: args.labels.clone(),
        ..extraction_options(&args.extraction)?
    };
    let bar = if args.events {
        indicatif::ProgressBar::hidden()
    } else {
        progress_bar(files.len() as u64, "ingesting")
    };
    let summary =
        door.service
            .ingest_files(
                &door.caller,
                &files,
                &args.paths,
                &options,
                &mut |event| match event {
                    IngestEvent::Started { num_files } => bar.set_length(num_files as u64),
                    IngestEvent::FileDone { path, outcome } => {
                        bar.inc(1);
                        bar.set_message(short_name(path));
                        if args.events {
                            print_event(path, outcome);
                        } else if let FileOutcome::Quarantined { reason, .. } = outcome {
                            bar.suspend(|| eprintln!("quarantined {path}: {reason}"));
                        }
                    }
                },
            );
    bar.finish_and_clear();
    let mut summary = summary.map_err(service_error)?;
    let stats = door.service.store_stats(&door.caller).ok();
    door.close()?;
    for (path, reason) in walk_errors {
        summary.quarantined.push(pipeline::QuarantinedFile {
            path,
            kind: "unreadable".into(),
            reason: format!("cannot list: {reason}"),
        });
    }
    if args.events {
        let line = serde_json::json!({ "summary": &summary });
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        return Ok(());
    }
    if ctx.json {
        return print_json(&summary);
    }
    println!(
        "Ingested into collection {:?} in {:.1} s: {} files read, {} new, {} replaced, {} unchanged{}; {} pages, {} chunks.",
        args.collection,
        summary.seconds,
        summary.num_files,
        summary.num_indexed,
        summary.num_replaced,
        summary.num_unchanged,
        if args.prune { format!(", {} pruned", summary.num_pruned) } else { String::new() },
        summary.num_pages,
        summary.num_chunks
    );
    if !summary.quarantined.is_empty() {
        println!("Quarantined {} file(s):", summary.quarantined.len());
        for file in &summary.quarantined {
            println!("  {}: {}", file.path, file.reason);
        }
    }
    if summary.num_still_quarantined > 0 {
        println!(
            "{} file(s) quarantined earlier are unchanged and were not tried again \
             (`vellum ingest --report` lists them; `--retry-quarantined` tries them again).",
            summary.num_still_quarantined
        );
    }
    if let Some(stats) = stats {
        println!(
            "The data folder {} now holds {} documents in {} chunks.",
            ctx.data_dir.display(),
            stats.num_documents,
            stats.num_chunks
        );
    }
    Ok(())
}

/// Ingest options with the sandbox and passwords the flags ask for.
pub fn extraction_options(args: &ExtractArgs) -> Result<IngestOptions> {
    let pdf_passwords = match &args.pdf_passwords_file {
        Some(path) => PdfPasswords::from_file(path)
            .with_context(|| format!("reading the PDF password list {}", path.display()))?,
        None => PdfPasswords::default(),
    };
    let vellum = std::env::current_exe()
        .context("cannot find the vellum binary to start extraction workers")?;
    // The small worker binary starts in ~3 ms, `vellum` itself in ~20 ms (measured: 100 runs
    // each); use the small one when it was installed next to vellum.
    let small_worker = vellum.with_file_name("vellum-extract-worker");
    let (worker, worker_args) = if small_worker.is_file() {
        (small_worker, Vec::new())
    } else {
        (vellum, vec![crate::EXTRACT_WORKER_ARG.into()])
    };
    let sandbox = Sandbox::new(
        worker,
        worker_args,
        SandboxLimits {
            timeout: Duration::from_secs(args.extract_timeout.max(1)),
            cpu_seconds: args.extract_timeout.max(1),
            memory_bytes: args.extract_memory_mb.max(64) << 20,
        },
    );
    let ocr = args.ocr.then(|| OcrOptions {
        language: args.ocr_language.clone(),
        ..OcrOptions::default()
    });
    Ok(IngestOptions {
        sandbox: Some(sandbox),
        pdf_passwords,
        ocr,
        ..IngestOptions::default()
    })
}

pub(super) fn watch_folders(ctx: &Context, args: WatchArgs) -> Result<()> {
    let door = ctx.front_door(false)?;
    let options = IngestOptions {
        collection: args.collection.clone(),
        labels: args.labels.clone(),
        ..extraction_options(&args.extraction)?
    };
    let watch_options = WatchOptions {
        debounce: Duration::from_millis(args.debounce_ms),
        ..WatchOptions::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    if !args.events {
        eprintln!(
            "Watching {} folder(s) for collection {:?}; stop with Ctrl-C.",
            args.paths.len(),
            args.collection
        );
    }
    door.service
        .watch_folders(
            &door.caller,
            &args.paths,
            &options,
            &watch_options,
            &stop,
            &mut |event| report_watch_event(args.events, &event),
        )
        .map_err(service_error)?;
    door.close()
}

fn report_watch_event(events: bool, event: &WatchEvent<'_>) {
    let line = match event {
        WatchEvent::File(IngestEvent::Started { .. }) => return,
        WatchEvent::File(IngestEvent::FileDone { path, outcome }) => {
            if events {
                print_event(path, outcome);
            } else if !matches!(outcome, FileOutcome::Unchanged) {
                eprintln!("{path}: {}", describe_outcome(outcome));
            }
            return;
        }
        WatchEvent::Synced(summary) => serde_json::json!({ "synced": summary }),
        WatchEvent::Deleted { path } => {
            serde_json::json!({ "path": path, "file": { "outcome": "deleted" } })
        }
        WatchEvent::RootUnavailable { root, reason } => {
            serde_json::json!({ "root_unavailable": root, "reason": reason })
        }
        WatchEvent::RootBack { root } => serde_json::json!({ "root_back": root }),
        WatchEvent::WatchError { message } => serde_json::json!({ "watch_error": message }),
    };
    if events {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        return;
    }
    match event {
        WatchEvent::Deleted { path } => eprintln!("{path}: deleted"),
        WatchEvent::RootUnavailable { root, reason } => {
            eprintln!("{}: unavailable: {reason}", root.display())
        }
        WatchEvent::RootBack { root } => eprintln!("{}: back; syncing it again", root.display()),
        WatchEvent::WatchError { message } => {
            eprintln!("watch error ({message}); syncing again to be safe")
        }
        _ => {}
    }
}

fn describe_outcome(outcome: &FileOutcome) -> String {
    match outcome {
        FileOutcome::Indexed { num_chunks, .. } => format!("indexed ({num_chunks} chunks)"),
        FileOutcome::Replaced { num_chunks, .. } => format!("replaced ({num_chunks} chunks)"),
        FileOutcome::Unchanged => "unchanged".into(),
        FileOutcome::Quarantined { reason, .. } => format!("quarantined: {reason}"),
        FileOutcome::StillQuarantined { reason, .. } => format!("still quarantined: {reason}"),
    }
}

/// One line of `ingest --events`: `{"path": ..., "outcome": ...}`, flushed at once.
fn print_event(path: &str, outcome: &FileOutcome) {
    let line = serde_json::json!({ "path": path, "file": outcome });
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (the reader went away) must not stop the ingest.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

fn quarantine_report(ctx: &Context, store: &Store, collection: &str) -> Result<()> {
    let filter = SearchFilter {
        collections: Some(vec![collection.to_string()]),
        documents: None,
    };
    let entries = store.list_quarantine(&filter)?;
    if ctx.json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        println!("No quarantined files in collection {collection:?}.");
        return Ok(());
    }
    println!(
        "{} quarantined file(s) in collection {collection:?} (not searchable; fix the cause and \
         run `vellum ingest --retry-quarantined` on them):",
        entries.len()
    );
    for entry in &entries {
        println!(
            "  {}  [{}, {}]\n      {}",
            entry.source_path, entry.kind, entry.quarantined_at, entry.reason
        );
    }
    Ok(())
}
