//! One function per subcommand: open what it needs, call the library, render the result.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use vellum_authz::{Action, Authorizer, PrincipalInfo, ReadScope, RequestContext, Scope};
use vellum_ingest::extract::PdfPasswords;
use vellum_ingest::isolate::{Sandbox, SandboxLimits};
use vellum_ingest::ocr::OcrOptions;
use vellum_ingest::pipeline::{self, FileOutcome, IngestEvent, IngestOptions, TextDocument};
use vellum_ingest::watch::{WatchEvent, WatchOptions};
use vellum_models::{CancelFlag, GenerationParams};
use vellum_rag::{eval, AnswerReceipt, RetrievalOptions, Retriever, SearchMode, SummaryProgress};
use vellum_server::api::{AskRequest, SearchRequest, SummarizeRequest};
use vellum_server::AskEvent;
use vellum_store::{SearchFilter, Store};

use crate::cli::{
    AskArgs, Cli, CollectionArgs, Command, DeleteArgs, EvalArgs, ExtractArgs, IngestArgs,
    ReplayArgs, SearchArgs, SummarizeArgs, WatchArgs,
};
use crate::context::{open_store_at, service_error, Context};
use crate::render::{print_json, progress_bar, short_name, snippet};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let mut ctx = Context::new(&cli.global);
    if let Some(remote) = ctx.remote.as_mut() {
        remote.allow_plain_http = cli.global.remote_allow_http;
    }
    crate::datadir::check_at_start(&cli.command, &ctx.data_dir)?;
    match cli.command {
        Command::Ingest(args) => ingest(&ctx, args),
        Command::Watch(args) => watch_folders(&ctx, args),
        Command::Search(args) => search(&ctx, args),
        Command::Ask(args) => ask(&ctx, args),
        Command::Replay(args) => replay(&ctx, args),
        Command::Summarize(args) => summarize(&ctx, args),
        Command::Documents(args) => documents(&ctx, args),
        Command::Delete(args) => delete(&ctx, args),
        Command::Check => check(&ctx),
        Command::Eval(args) => evaluate(&ctx, args),
        Command::Models => models(&ctx),
        Command::Serve(args) => crate::serve::serve(&ctx, *args),
        Command::User(command) => crate::accounts::user(&ctx, command),
        Command::Key(command) => crate::accounts::key(&ctx, command),
        Command::Audit(args) => crate::audit::audit(&ctx, args),
    }
}

fn collections_of(args: &CollectionArgs) -> Option<Vec<String>> {
    (!args.collections.is_empty()).then(|| args.collections.clone())
}

fn ingest(ctx: &Context, args: IngestArgs) -> Result<()> {
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

fn watch_folders(ctx: &Context, args: WatchArgs) -> Result<()> {
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

fn search(ctx: &Context, args: SearchArgs) -> Result<()> {
    let mode: SearchMode = args.mode.parse()?;
    let door = ctx.front_door(false)?;
    let request = SearchRequest {
        query: args.query.clone(),
        mode: Some(mode.into()),
        k: Some(args.k),
        collections: collections_of(&args.collections),
    };
    let started = Instant::now();
    let results = door
        .service
        .search_detailed(&door.caller, &request)
        .map_err(service_error)?;
    door.close()?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if ctx.json {
        return print_json(&results);
    }
    if results.is_empty() {
        println!(
            "No results for {:?} ({} search).",
            args.query,
            mode.as_str()
        );
        return Ok(());
    }
    for (idx, result) in results.iter().enumerate() {
        println!(
            "{:>2}. {}, page {}  (score {:.4}{}{})",
            idx + 1,
            short_name(&result.hit.source_path),
            result.hit.chunk.page,
            result.score,
            result
                .bm25_rank
                .map(|r| format!(", bm25 #{r}"))
                .unwrap_or_default(),
            result
                .vector_rank
                .map(|r| format!(", vector #{r}"))
                .unwrap_or_default(),
        );
        println!("    {}", snippet(&result.hit.chunk.text, 160));
    }
    println!(
        "{} results, {} search, {:.0} ms.",
        results.len(),
        mode.as_str(),
        elapsed_ms
    );
    Ok(())
}

fn ask(ctx: &Context, args: AskArgs) -> Result<()> {
    let mode: SearchMode = args.mode.parse()?;
    let door = ctx.front_door(true)?;
    let request = AskRequest {
        question: args.question.clone(),
        mode: Some(mode.into()),
        k: Some(args.sources),
        collections: collections_of(&args.collections),
        max_tokens: Some(args.max_tokens),
    };
    let generation = GenerationParams {
        temperature: args.temperature,
        seed: args.seed,
        ..GenerationParams::default()
    };
    let stream = !ctx.json;
    let mut stdout = std::io::stdout();
    let answer = door
        .service
        .ask_detailed(
            &door.caller,
            &request,
            &generation,
            &CancelFlag::default(),
            &mut |event| {
                if let (true, AskEvent::Token(piece)) = (stream, event) {
                    let _ = write!(stdout, "{piece}");
                    let _ = stdout.flush();
                }
            },
        )
        .map_err(service_error)?;
    door.close()?;
    if let Some(path) = &args.receipt {
        let json = serde_json::to_string_pretty(&answer.receipt)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the receipt to {}", path.display()))?;
    }
    if ctx.json {
        return print_json(&answer);
    }
    if answer.no_relevant_sources {
        println!("{}", answer.text);
        return Ok(());
    }
    println!();
    if !answer.invalid_citations.is_empty() {
        println!(
            "\nNote: removed citation(s) {} that point to no source.",
            answer.invalid_citations.join(" ")
        );
    }
    if !answer.uncited_sentences.is_empty() {
        println!("\nNot supported by a citation:");
        for sentence in &answer.uncited_sentences {
            println!("  - {sentence}");
        }
    }
    println!("\nSources:");
    for source in &answer.sources {
        let marker = if answer.cited.contains(&source.n) {
            "*"
        } else {
            " "
        };
        println!(
            "{marker}[{}] {}, page {}",
            source.n,
            short_name(&source.source_path),
            source.page
        );
    }
    if let Some(generation) = &answer.generation {
        println!(
            "\n({} prompt tokens in {:.2} s, {} tokens generated in {:.2} s; * = cited)",
            generation.num_prompt_tokens,
            generation.prompt_seconds,
            generation.num_generated_tokens,
            generation.generation_seconds
        );
    }
    Ok(())
}

fn replay(ctx: &Context, args: ReplayArgs) -> Result<()> {
    let json = std::fs::read_to_string(&args.receipt)
        .with_context(|| format!("reading the receipt {}", args.receipt.display()))?;
    let receipt = AnswerReceipt::from_json(&json)
        .with_context(|| format!("reading {}", args.receipt.display()))?;
    let door = ctx.front_door(true)?;
    let stream = !ctx.json;
    let mut stdout = std::io::stdout();
    if stream {
        println!("Replaying: {}", receipt.question);
    }
    let report = door
        .service
        .replay(&door.caller, &receipt, &mut |piece| {
            if stream {
                let _ = write!(stdout, "{piece}");
                let _ = stdout.flush();
            }
        })
        .map_err(service_error)?;
    door.close()?;
    if ctx.json {
        print_json(&report)?;
    } else {
        println!();
        let yes_no = |matches: bool| if matches { "same" } else { "DIFFERENT" };
        println!("model file:    {}", yes_no(report.model_matches));
        println!("chat template: {}", yes_no(report.template_matches));
        for source in &report.sources {
            println!(
                "source [{}]:    {:?} ({})",
                source.n, source.status, source.chunk_id
            );
        }
        println!("prompt:        {}", yes_no(report.prompt_matches));
        println!("answer text:   {}", yes_no(report.text_matches));
        if let Some(reason) = &report.not_replayed {
            println!("not regenerated: {reason}");
        }
    }
    if report.is_match() {
        if !ctx.json {
            println!("MATCH: the receipt's answer was regenerated exactly.");
        }
        Ok(())
    } else {
        anyhow::bail!("replay does not match the receipt (see above)")
    }
}

fn summarize(ctx: &Context, args: SummarizeArgs) -> Result<()> {
    let door = ctx.front_door(true)?;
    let document = door
        .service
        .find_readable_document(&door.caller, &args.document)
        .map_err(service_error)
        .with_context(|| {
            format!(
                "finding {:?} (`vellum documents` lists them)",
                args.document
            )
        })?;
    let request = SummarizeRequest {
        document_id: document.id.0.clone(),
        max_tokens: Some(args.max_tokens),
    };
    let bar = progress_bar(1, "summarizing");
    let summary =
        door.service
            .summarize_detailed(
                &door.caller,
                &request,
                &CancelFlag::default(),
                &mut |p| match p {
                    SummaryProgress::Map { done, total } => {
                        bar.set_length(total as u64);
                        bar.set_position(done as u64);
                    }
                    SummaryProgress::Reduce { num_partials } => {
                        bar.set_message(format!("merging {num_partials} partial summaries"));
                    }
                },
            );
    bar.finish_and_clear();
    let summary = summary.map_err(service_error)?;
    door.close()?;
    if ctx.json {
        return print_json(&summary);
    }
    println!(
        "Summary of {} ({} pages, {} chunks read):\n",
        short_name(&document.source_path),
        document.num_pages,
        summary.num_chunks
    );
    println!("{}", summary.text);
    Ok(())
}

fn documents(ctx: &Context, args: CollectionArgs) -> Result<()> {
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

fn delete(ctx: &Context, args: DeleteArgs) -> Result<()> {
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

fn check(ctx: &Context) -> Result<()> {
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

/// `vellum eval` searches its own throwaway index of a public benchmark, never the data
/// folder: an offline tool (docs/audit.md), so Cedar is asked under a policy of its own that
/// grants search on that index, and nothing is audited.
fn evaluation_scope(store: &Store) -> Result<ReadScope> {
    let policy = "@id(\"evaluator-may-search-the-benchmark\")\n\
                  permit (principal, action == Vellum::Action::\"search\", resource);";
    let cedar = Authorizer::from_sources(&[("eval.cedar".into(), policy.into())])
        .context("the evaluation policy")?;
    let candidates: Vec<Scope> = store
        .list_scopes()?
        .into_iter()
        .map(|scope| Scope::new(scope.collection, scope.labels))
        .collect();
    Ok(cedar.read_scope(
        &PrincipalInfo::new("evaluator", Vec::<String>::new(), Vec::<String>::new()),
        Action::Search,
        &candidates,
        &RequestContext::default(),
    ))
}

fn evaluate(ctx: &Context, args: EvalArgs) -> Result<()> {
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
    let scope = evaluation_scope(&store)?;
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

fn models(ctx: &Context) -> Result<()> {
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
