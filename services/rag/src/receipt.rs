//! Answer receipts: what an answer was made from, precisely enough to check it later and to
//! regenerate it ([`replay`]).
//!
//! A receipt names the model file (SHA-256), the chat template (SHA-256), the sampling
//! parameters and seed, the prompt (SHA-256 of the rendered chat), every source chunk with the
//! SHA-256 of its text, the index versions at answer time and the SHA-256 of the generated
//! text. It carries the question (needed to rebuild the prompt) but no source text and no
//! answer text: the store holds those, and a receipt can be filed without copying documents.
//!
//! Replay rebuilds the prompt from the chunks *as stored now*, so it also proves that the
//! sources did not change: a changed chunk fails its content hash, a deleted one is missing.
//! The same text comes back when the model, template, sources and parameters are the same and
//! the arithmetic is too: candle's CPU kernels give the same result for the same thread count
//! and instruction set, so replay on another machine can in rare near-ties pick another token.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vellum_models::{GenerationParams, Generator, ModelIdentity};
use vellum_store::{ChunkId, DocumentId, DocumentState, ReadScope, Store, StoreStats};

use crate::answer::Source;
use crate::prompt::build_answer_messages_with_history;
use crate::{Error, Result};

/// Version of the receipt format; a reader refuses other versions.
pub const RECEIPT_VERSION: u32 = 1;

/// A source as the receipt records it: where it is, and the hash of what the model saw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptSource {
    /// The number the model cited it by.
    pub n: usize,
    /// The chunk.
    pub chunk_id: ChunkId,
    /// Its document.
    pub document_id: DocumentId,
    /// The page, from 1.
    pub page: u32,
    /// Hex SHA-256 of the chunk text.
    pub content_sha256: String,
}

/// The versions of the indexes an answer was retrieved from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexVersions {
    /// Ready documents in the catalog.
    pub num_documents: u64,
    /// Chunks of ready documents.
    pub num_chunks: u64,
    /// Opstamp of the last Tantivy commit.
    pub fulltext_opstamp: u64,
    /// Version of the LanceDB table.
    pub vectors_version: u64,
}

impl From<StoreStats> for IndexVersions {
    fn from(stats: StoreStats) -> Self {
        IndexVersions {
            num_documents: stats.num_documents,
            num_chunks: stats.num_chunks,
            fulltext_opstamp: stats.fulltext_opstamp,
            vectors_version: stats.vectors_version,
        }
    }
}

/// Everything an answer was made from (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnswerReceipt {
    /// [`RECEIPT_VERSION`].
    pub version: u32,
    /// Seconds since the Unix epoch when the answer was made.
    pub created_unix: u64,
    /// The question, trimmed, as it went into the prompt.
    pub question: String,
    /// The model that generated (or would have generated) the answer.
    pub model: ModelIdentity,
    /// Sampling parameters and seed.
    pub params: GenerationParams,
    /// Retrieval mode (`bm25`, `vector`, `hybrid`) and depth that chose the sources.
    pub retrieval_mode: String,
    /// Sources asked for.
    pub retrieval_k: usize,
    /// Index versions at answer time.
    pub index: IndexVersions,
    /// The sources in prompt order.
    pub sources: Vec<ReceiptSource>,
    /// Hex SHA-256 of the rendered chat prompt; empty when no text was generated.
    pub prompt_sha256: String,
    /// Hex SHA-256 of the generated text (before citation clean-up); empty when no text was
    /// generated.
    pub answer_sha256: String,
    /// True when retrieval found nothing relevant and the model did not run.
    pub no_relevant_sources: bool,
    /// The earlier turns of the conversation that went into the prompt (none for a single
    /// question; absent in receipts from before conversations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<crate::answer::PriorTurn>,
}

impl AnswerReceipt {
    /// Parses a receipt, refusing other format versions.
    pub fn from_json(json: &str) -> Result<AnswerReceipt> {
        let receipt: AnswerReceipt = serde_json::from_str(json)
            .map_err(|err| Error::InvalidInput(format!("not an answer receipt: {err}")))?;
        if receipt.version != RECEIPT_VERSION {
            return Err(Error::InvalidInput(format!(
                "receipt format version {} is not supported (this build reads version \
                 {RECEIPT_VERSION})",
                receipt.version
            )));
        }
        Ok(receipt)
    }
}

/// Returns the hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Returns the receipt's view of `sources`.
pub(crate) fn receipt_sources(sources: &[Source]) -> Vec<ReceiptSource> {
    sources
        .iter()
        .map(|source| ReceiptSource {
            n: source.n,
            chunk_id: source.chunk_id.clone(),
            document_id: source.document_id.clone(),
            page: source.page,
            content_sha256: source.content_sha256.clone(),
        })
        .collect()
}

/// Returns the current time in seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// What happened to one source at replay.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// The chunk is stored with the same text.
    Same,
    /// The chunk is stored but its text hash differs.
    Changed,
    /// The chunk (or its document) is no longer stored.
    Missing,
}

/// One source's replay check.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCheck {
    /// The source number.
    pub n: usize,
    /// The chunk.
    pub chunk_id: ChunkId,
    /// What was found.
    pub status: SourceStatus,
}

/// The result of [`replay`].
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The model file's SHA-256 equals the receipt's.
    pub model_matches: bool,
    /// The chat template's SHA-256 equals the receipt's.
    pub template_matches: bool,
    /// Each source, in prompt order.
    pub sources: Vec<SourceCheck>,
    /// The rebuilt prompt hashes to the receipt's `prompt_sha256`.
    pub prompt_matches: bool,
    /// The regenerated text hashes to the receipt's `answer_sha256`.
    pub text_matches: bool,
    /// The regenerated text (empty when generation was not attempted).
    pub regenerated_text: String,
    /// Why nothing was regenerated, when that is the case.
    pub not_replayed: Option<String>,
}

impl ReplayReport {
    /// True when everything matched and the same text came back.
    pub fn is_match(&self) -> bool {
        self.model_matches
            && self.template_matches
            && self
                .sources
                .iter()
                .all(|source| source.status == SourceStatus::Same)
            && self.prompt_matches
            && self.text_matches
    }
}

/// Regenerates the answer a receipt describes, from the chunks stored now, and compares.
///
/// Generation is attempted only when the model and every source match (otherwise the text
/// could not be the same, and the report says why). `on_token` receives the text as it comes.
pub fn replay(
    store: &Store,
    scope: &ReadScope,
    generator: &dyn Generator,
    receipt: &AnswerReceipt,
    on_token: &mut dyn FnMut(&str),
) -> Result<ReplayReport> {
    let identity = generator.identity();
    let mut report = ReplayReport {
        model_matches: identity.file_sha256 == receipt.model.file_sha256
            && identity.name == receipt.model.name
            && identity.requantized_to_q8_0 == receipt.model.requantized_to_q8_0,
        template_matches: identity.template_sha256 == receipt.model.template_sha256,
        sources: Vec::with_capacity(receipt.sources.len()),
        prompt_matches: false,
        text_matches: false,
        regenerated_text: String::new(),
        not_replayed: None,
    };

    let mut sources = Vec::with_capacity(receipt.sources.len());
    for recorded in &receipt.sources {
        let stored = stored_source(store, scope, recorded)?;
        let status = match &stored {
            None => SourceStatus::Missing,
            Some(source) if source.content_sha256 == recorded.content_sha256 => SourceStatus::Same,
            Some(_) => SourceStatus::Changed,
        };
        report.sources.push(SourceCheck {
            n: recorded.n,
            chunk_id: recorded.chunk_id.clone(),
            status,
        });
        sources.extend(stored);
    }

    if receipt.no_relevant_sources {
        // Nothing was generated; the receipt only proves what retrieval found.
        report.prompt_matches = receipt.prompt_sha256.is_empty();
        report.text_matches = receipt.answer_sha256.is_empty();
        report.not_replayed = Some("no text was generated for this question".into());
        return Ok(report);
    }
    if !report.model_matches {
        report.not_replayed = Some(format!(
            "the configured model {} (SHA-256 {}) is not the receipt's {} (SHA-256 {})",
            identity.name, identity.file_sha256, receipt.model.name, receipt.model.file_sha256
        ));
        return Ok(report);
    }
    if let Some(changed) = report
        .sources
        .iter()
        .find(|source| source.status != SourceStatus::Same)
    {
        report.not_replayed = Some(format!(
            "source [{}] (chunk {}) is {}",
            changed.n,
            changed.chunk_id,
            match changed.status {
                SourceStatus::Changed => "changed since the answer",
                _ => "no longer stored",
            }
        ));
        return Ok(report);
    }

    let messages =
        build_answer_messages_with_history(&receipt.question, &sources, &receipt.history);
    report.prompt_matches = sha256_hex(&generator.render_chat(&messages)?) == receipt.prompt_sha256;
    // The same output with or without the shared system prompt (GenerationParams docs).
    let params = GenerationParams {
        share_system_prompt: true,
        ..receipt.params.clone()
    };
    let generation = generator.generate(&messages, &params, on_token)?;
    report.text_matches = sha256_hex(&generation.text) == receipt.answer_sha256;
    report.regenerated_text = generation.text;
    Ok(report)
}

/// Returns the source as stored now, numbered as recorded, or `None` if it is gone.
fn stored_source(
    store: &Store,
    scope: &ReadScope,
    recorded: &ReceiptSource,
) -> Result<Option<Source>> {
    let Some(document) = store.get_document(&recorded.document_id)? else {
        return Ok(None);
    };
    // A document the caller may no longer read looks like a missing one.
    if document.state != DocumentState::Ready
        || !scope.permits(&document.collection, &document.labels)
    {
        return Ok(None);
    }
    let chunk = store
        .document_chunks(scope, &recorded.document_id)?
        .into_iter()
        .find(|chunk| chunk.chunk_id == recorded.chunk_id);
    Ok(chunk.map(|chunk| Source {
        n: recorded.n,
        content_sha256: sha256_hex(&chunk.text),
        chunk_id: chunk.chunk_id,
        document_id: chunk.document_id,
        title: document.title.clone(),
        source_path: document.source_path.clone(),
        page: chunk.page,
        text: chunk.text,
        score: 0.0,
    }))
}
