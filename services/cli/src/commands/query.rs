//! `vellum search`, `ask`, `replay` and `summarize`: through the front door.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context as _, Result};
use vellum_models::{CancelFlag, GenerationParams};
use vellum_rag::{AnswerReceipt, ItemStatus, SearchMode, SummaryProgress};
use vellum_server::api::{AskRequest, SearchRequest, SummarizeRequest};
use vellum_server::{summary_view, AskEvent};

use crate::cli::{AskArgs, ReplayArgs, SearchArgs, SummarizeArgs};
use crate::context::{service_error, Context};
use crate::render::{print_json, progress_bar, short_name, snippet};

use super::collections_of;

pub(super) fn search(ctx: &Context, args: SearchArgs) -> Result<()> {
    let mode: SearchMode = args.mode.parse()?;
    let door = ctx.front_door(false)?;
    let request = SearchRequest {
        query: args.query.clone(),
        mode: Some(mode.into()),
        k: Some(args.k),
        collections: collections_of(&args.collections),
        labels: (!args.labels.is_empty()).then(|| args.labels.clone()),
        formats: (!args.formats.is_empty()).then(|| args.formats.clone()),
        ..Default::default()
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

pub(super) fn ask(ctx: &Context, args: AskArgs) -> Result<()> {
    let mode: SearchMode = args.mode.parse()?;
    let door = ctx.front_door(true)?;
    let document_id = match &args.document {
        Some(name) => Some(
            door.service
                .find_readable_document(&door.caller, name)
                .map_err(service_error)
                .with_context(|| format!("finding {name:?} (`vellum documents` lists them)"))?
                .id
                .0,
        ),
        None => None,
    };
    let request = AskRequest {
        question: args.question.clone(),
        document_id,
        generate: Some(!args.quotes_only),
        mode: Some(mode.into()),
        k: Some(args.sources),
        collections: collections_of(&args.collections),
        max_tokens: Some(args.max_tokens),
        ..Default::default()
    };
    let generation = GenerationParams {
        temperature: args.temperature,
        seed: args.seed,
        ..GenerationParams::default()
    };
    // The model's draft is not shown: only its sentences that the sources support reach the
    // answer. The bar counts the draft's tokens meanwhile.
    let bar = progress_bar(
        u64::from(u32::try_from(args.max_tokens).unwrap_or(u32::MAX)),
        "writing",
    );
    let answer = door
        .service
        .ask_detailed(
            &door.caller,
            &request,
            &generation,
            &CancelFlag::default(),
            &mut |event| {
                if let AskEvent::Token(_) = event {
                    bar.inc(1);
                }
            },
        )
        .map_err(service_error);
    bar.finish_and_clear();
    let answer = answer?;
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
    println!("{}", answer.text);
    if !answer.invalid_citations.is_empty() {
        println!(
            "\nNote: removed citation(s) {} that point to no source.",
            answer.invalid_citations.join(" ")
        );
    }
    if !answer.unsupported_sentences.is_empty() {
        println!(
            "\nLeft out of the answer: {} sentence(s) of the model's draft that cite no source \
             or say more than the source they cite:",
            answer.unsupported_sentences.len()
        );
        for sentence in answer.unsupported_sentences.iter().take(5) {
            println!("  - {sentence}");
        }
        if answer.unsupported_sentences.len() > 5 {
            println!(
                "  … and {} more (--json lists them)",
                answer.unsupported_sentences.len() - 5
            );
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

pub(super) fn replay(ctx: &Context, args: ReplayArgs) -> Result<()> {
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

pub(super) fn summarize(ctx: &Context, args: SummarizeArgs) -> Result<()> {
    let door = ctx.front_door(args.prose)?;
    let document = door
        .service
        .find_readable_document(&door.caller, &args.document)
        .map_err(service_error)
        .with_context(|| {
            format!(
                "finding {:?} (`vellum documents` lists them; a file must be ingested first \
                 with `vellum ingest FILE`)",
                args.document
            )
        })?;
    let request = SummarizeRequest {
        document_id: document.id.0.clone(),
        kind: args.kind.clone(),
        prose: Some(args.prose),
        max_tokens: Some(args.max_tokens),
    };
    let bar = progress_bar(2, "extracting facts");
    let summary =
        door.service
            .summarize_detailed(
                &door.caller,
                &request,
                &CancelFlag::default(),
                &mut |p| match p {
                    SummaryProgress::Extracted { items, found } => {
                        bar.set_position(1);
                        bar.set_message(format!("{found} of {items} found; writing"));
                    }
                    SummaryProgress::Writing => bar.set_message("the model writes over the facts"),
                },
            );
    bar.finish_and_clear();
    let summary = summary.map_err(service_error)?;
    door.close()?;
    if ctx.json {
        return print_json(&summary_view(summary));
    }
    let found = summary
        .items
        .iter()
        .filter(|item| item.status == ItemStatus::Found)
        .count();
    println!(
        "{} summary of {} ({} pages; {found} of {} items found, each quoted with its page):\n",
        summary.kind.as_str(),
        short_name(&document.source_path),
        document.num_pages,
        summary.items.len()
    );
    println!("{}", summary.text);
    if let Some(prose) = &summary.prose {
        if !prose.dropped_sentences.is_empty() {
            println!(
                "\n({} sentence(s) of the model's prose dropped: not supported by the quoted \
                 facts. --json lists them.)",
                prose.dropped_sentences.len()
            );
        }
    }
    Ok(())
}
