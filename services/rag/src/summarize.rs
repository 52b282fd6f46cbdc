//! Whole-document summaries: map-reduce over *every* chunk of a document (not the top-k), so
//! nothing is left out. The map step summarizes consecutive batches of chunks that fit the
//! model's context, each partial summary citing its pages as `(p. N)`; the reduce step merges
//! partial summaries (repeatedly, if they do not fit at once) keeping those page citations.

use serde::Serialize;
use vellum_models::{ChatMessage, GenerationParams, Generator};
use vellum_store::{DocumentId, DocumentRecord, ReadScope, Store, StoredChunk};

use crate::prompt::display_name;
use crate::{Error, Result};

/// How to summarize.
#[derive(Debug, Clone)]
pub struct SummaryOptions {
    /// Sampling settings; `max_tokens` bounds each partial and the final summary.
    pub generation: GenerationParams,
    /// Tokens of document text per map step; with the prompt and the answer this must fit the
    /// model's context.
    pub batch_tokens: usize,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            generation: GenerationParams {
                max_tokens: 160,
                ..GenerationParams::default()
            },
            batch_tokens: 1500,
        }
    }
}

/// Progress reported while summarizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryProgress {
    /// Map step `done` of `total` finished.
    Map {
        /// Steps finished.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// A reduce step started, merging this many partial summaries.
    Reduce {
        /// Partial summaries merged in this step.
        num_partials: usize,
    },
}

/// A partial summary of consecutive pages.
#[derive(Debug, Clone, Serialize)]
pub struct PartialSummary {
    /// First page covered.
    pub first_page: u32,
    /// Last page covered.
    pub last_page: u32,
    /// The summary text, citing pages as `(p. N)`.
    pub text: String,
}

/// A summary of a whole document.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The document summarized.
    pub document: DocumentRecord,
    /// The final summary.
    pub text: String,
    /// The map step's partial summaries, in page order.
    pub partials: Vec<PartialSummary>,
    /// Chunks read (all of the document's).
    pub num_chunks: usize,
}

/// Summarizes the document `document_id` from all of its chunks (a document outside `scope`
/// is not found).
pub fn summarize(
    store: &Store,
    scope: &ReadScope,
    generator: &dyn Generator,
    document_id: &DocumentId,
    options: &SummaryOptions,
    progress: &mut dyn FnMut(SummaryProgress),
) -> Result<Summary> {
    let document = store
        .get_document(document_id)?
        .ok_or_else(|| Error::DocumentNotFound(document_id.to_string()))?;
    let chunks = store.document_chunks(scope, document_id)?;
    if chunks.is_empty() {
        return Err(Error::InvalidInput(format!(
            "document {document_id} has no text to summarize"
        )));
    }
    let name = display_name(&document.title, &document.source_path);
    let batches = batch_chunks(generator, &chunks, options.batch_tokens)?;
    let mut partials = Vec::with_capacity(batches.len());
    for (idx, batch) in batches.iter().enumerate() {
        let mut excerpt = String::new();
        for chunk in batch {
            excerpt.push_str(&format!("[page {}] {}\n", chunk.page, chunk.text.trim()));
        }
        let messages = vec![
            ChatMessage {
                role: "system".into(),
                content: "You summarize documents faithfully. Use only the text given. After each \
                          sentence, cite the page it comes from as (p. N)."
                    .into(),
            },
            ChatMessage {
                role: "user".into(),
                content: format!(
                    "Summarize this excerpt of the document \"{name}\" in two to four sentences, \
                     citing pages as (p. N).\n\nExcerpt:\n{excerpt}"
                ),
            },
        ];
        let generation = generator.generate(&messages, &options.generation, &mut |_| {})?;
        let first_page = batch.first().map_or(1, |c| c.page);
        let last_page = batch.last().map_or(first_page, |c| c.page);
        partials.push(PartialSummary {
            first_page,
            last_page,
            text: with_page_fallback(generation.text.trim(), first_page, last_page),
        });
        progress(SummaryProgress::Map {
            done: idx + 1,
            total: batches.len(),
        });
    }
    let text = reduce(generator, &name, &partials, options, progress)?;
    Ok(Summary {
        document,
        text,
        partials,
        num_chunks: chunks.len(),
    })
}

/// Groups consecutive chunks into batches of at most `batch_tokens` tokens (a chunk larger
/// than that forms a batch alone).
fn batch_chunks<'c>(
    generator: &dyn Generator,
    chunks: &'c [StoredChunk],
    batch_tokens: usize,
) -> Result<Vec<Vec<&'c StoredChunk>>> {
    let mut batches: Vec<Vec<&StoredChunk>> = Vec::new();
    let mut current: Vec<&StoredChunk> = Vec::new();
    let mut current_tokens = 0;
    for chunk in chunks {
        let tokens = generator.count_tokens(&chunk.text)? + 8;
        if !current.is_empty() && current_tokens + tokens > batch_tokens {
            batches.push(std::mem::take(&mut current));
            current_tokens = 0;
        }
        current.push(chunk);
        current_tokens += tokens;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

/// Merges partial summaries until one text remains.
fn reduce(
    generator: &dyn Generator,
    name: &str,
    partials: &[PartialSummary],
    options: &SummaryOptions,
    progress: &mut dyn FnMut(SummaryProgress),
) -> Result<String> {
    let mut texts: Vec<String> = partials.iter().map(|p| p.text.clone()).collect();
    if texts.len() == 1 {
        return Ok(texts.remove(0));
    }
    while texts.len() > 1 {
        let mut groups: Vec<Vec<String>> = Vec::new();
        let mut current: Vec<String> = Vec::new();
        let mut current_tokens = 0;
        for text in texts {
            let tokens = generator.count_tokens(&text)? + 4;
            if current.len() >= 2 && current_tokens + tokens > options.batch_tokens {
                groups.push(std::mem::take(&mut current));
                current_tokens = 0;
            }
            current.push(text);
            current_tokens += tokens;
        }
        if !current.is_empty() {
            groups.push(current);
        }
        let mut merged = Vec::with_capacity(groups.len());
        for group in groups {
            if group.len() == 1 {
                merged.extend(group);
                continue;
            }
            progress(SummaryProgress::Reduce {
                num_partials: group.len(),
            });
            let joined = group
                .iter()
                .enumerate()
                .map(|(i, t)| format!("Part {}: {}", i + 1, t))
                .collect::<Vec<_>>()
                .join("\n");
            let messages = vec![
                ChatMessage {
                    role: "system".into(),
                    content: "You combine partial summaries of one document into a single \
                              faithful summary. Keep every page citation (p. N) that supports a \
                              sentence you keep."
                        .into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: format!(
                        "Combine these partial summaries of \"{name}\" into one summary of at \
                         most six sentences, keeping the (p. N) citations.\n\n{joined}"
                    ),
                },
            ];
            let generation = generator.generate(&messages, &options.generation, &mut |_| {})?;
            merged.push(generation.text.trim().to_string());
        }
        texts = merged;
    }
    Ok(texts.pop().unwrap_or_default())
}

/// A partial summary that cites no page gets its page range appended, so the reduce step
/// always sees where each statement came from.
fn with_page_fallback(text: &str, first_page: u32, last_page: u32) -> String {
    if text.contains("(p.") {
        return text.to_string();
    }
    if first_page == last_page {
        format!("{text} (p. {first_page})")
    } else {
        format!("{text} (pp. {first_page}-{last_page})")
    }
}
