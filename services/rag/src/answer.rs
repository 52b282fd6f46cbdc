//! `ask`: retrieve, put the best chunks into the prompt as numbered sources, generate (streamed),
//! then check the answer's citations against those sources.

use serde::{Deserialize, Serialize};
use vellum_models::{Generation, GenerationParams, Generator};
use vellum_store::{ChunkId, DocumentId};

use crate::citations::{check_citations, sentences};
use crate::lead::{lead_quotes, LeadQuote};
use crate::prompt::build_answer_messages_with_history;
use crate::receipt::{receipt_sources, sha256_hex, unix_now, AnswerReceipt, RECEIPT_VERSION};
use crate::retrieve::{RetrievalOptions, Retriever};
use crate::support::{cited_numbers, is_supported};
use crate::{Error, Result};

/// What Vellum says when nothing relevant was retrieved, instead of letting the model guess.
pub const NO_RELEVANT_SOURCES: &str =
    "No relevant passages were found in the documents you can read, so there is no grounded answer.";

/// How to answer.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Retrieval settings; `k` is the number of sources put into the prompt.
    pub retrieval: RetrievalOptions,
    /// Sampling settings for the generator.
    pub generation: GenerationParams,
    /// Below this cosine similarity for the best chunk, the sources count as not relevant and
    /// no answer is generated. Only applies when the vector engine took part.
    pub min_similarity: f32,
    /// Earlier turns of the conversation, oldest first: the last [`MAX_HISTORY_TURNS`] go
    /// into the prompt (so a follow-up question can say "it"), and the previous question
    /// joins the retrieval query.
    pub history: Vec<PriorTurn>,
    /// How many sentences of the sources the answer leads with, quoted verbatim (0: none).
    pub lead_quotes: usize,
    /// Whether the model writes after the quotes. Without it the answer is the quoted
    /// sentences alone: no model runs, in well under a second.
    pub generate: bool,
}

/// What the answer says when no source sentence could be quoted and none of the model's
/// sentences is supported by the sources it cites.
pub const NO_SUPPORTED_ANSWER: &str = "The sources found do not state an answer in a sentence \
that could be quoted, and the model's draft was not supported by them; read the sources below.";

/// How many earlier turns a follow-up question carries into the prompt.
pub const MAX_HISTORY_TURNS: usize = 3;

/// How much of an earlier answer goes into the prompt (characters).
pub const MAX_HISTORY_ANSWER_CHARS: usize = 600;

/// An earlier question of the conversation and the answer it got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PriorTurn {
    pub question: String,
    pub answer: String,
}

/// The turns of `history` that go into a prompt: the last few, answers shortened.
pub fn prompt_history(history: &[PriorTurn]) -> Vec<PriorTurn> {
    let start = history.len().saturating_sub(MAX_HISTORY_TURNS);
    history[start..]
        .iter()
        .map(|turn| PriorTurn {
            question: turn.question.trim().to_string(),
            answer: turn
                .answer
                .trim()
                .chars()
                .take(MAX_HISTORY_ANSWER_CHARS)
                .collect(),
        })
        .collect()
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            retrieval: RetrievalOptions {
                k: 5,
                ..RetrievalOptions::default()
            },
            generation: GenerationParams {
                max_tokens: 256,
                ..GenerationParams::default()
            },
            min_similarity: 0.2,
            history: Vec::new(),
            lead_quotes: 2,
            generate: true,
        }
    }
}

/// A numbered source given to the model.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The number the model cites it by, from 1.
    pub n: usize,
    /// The chunk.
    pub chunk_id: ChunkId,
    /// Its document.
    pub document_id: DocumentId,
    /// The document's title (may be empty).
    pub title: String,
    /// The document's source path.
    pub source_path: String,
    /// The page the chunk is on, from 1.
    pub page: u32,
    /// The chunk's text as given to the model.
    pub text: String,
    /// SHA-256 of the chunk text, so a reader can prove what the model saw.
    pub content_sha256: String,
    /// The retrieval score.
    pub score: f32,
}

/// A grounded answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The question asked.
    pub question: String,
    /// The answer: the quoted lead sentences, then the model's sentences that the sources they
    /// cite support (invalid markers removed).
    pub text: String,
    /// The sentences of the sources the answer leads with, chosen by the embedder.
    pub quotes: Vec<LeadQuote>,
    /// The model's sentences left out of `text`: they cited no source, or said more than the
    /// sources they cite.
    pub unsupported_sentences: Vec<String>,
    /// The model's text as generated.
    pub raw_text: String,
    /// The numbered sources the model was given.
    pub sources: Vec<Source>,
    /// Source numbers the answer cites.
    pub cited: Vec<usize>,
    /// Citation markers that pointed to no source (removed from `text`).
    pub invalid_citations: Vec<String>,
    /// Sentences of `text` that cite no source (none, once the support check has run; kept for
    /// clients that mark them).
    pub uncited_sentences: Vec<String>,
    /// True when retrieval found nothing relevant and no text was generated.
    pub no_relevant_sources: bool,
    /// Token counts and timings, when the model ran.
    pub generation: Option<Generation>,
    /// What the answer was made from; `vellum replay` regenerates it from this.
    pub receipt: AnswerReceipt,
}

/// Answers `question` from the documents `retriever` can see; `on_token` receives the text as
/// it is generated.
pub fn ask(
    retriever: &Retriever<'_>,
    generator: &dyn Generator,
    question: &str,
    options: &AskOptions,
    on_token: &mut dyn FnMut(&str),
) -> Result<Answer> {
    ask_with(
        retriever,
        generator,
        question,
        options,
        &mut |_, _| Ok(()),
        on_token,
    )
}

/// [`ask`], with a hook that sees the numbered sources and the receipt so far (model, prompt
/// hash, sources) after retrieval and before the model runs. An error from the hook stops the
/// answer there: the server writes its audit record of what is about to be read in it, and
/// fails closed if it cannot.
pub fn ask_with(
    retriever: &Retriever<'_>,
    generator: &dyn Generator,
    question: &str,
    options: &AskOptions,
    before_generation: &mut dyn FnMut(&[Source], &AnswerReceipt) -> Result<()>,
    on_token: &mut dyn FnMut(&str),
) -> Result<Answer> {
    let question = question.trim();
    if question.is_empty() {
        return Err(Error::InvalidInput("the question is empty".into()));
    }
    // Index versions before retrieval: a commit landing during the search can only make the
    // recorded versions older than what was read, never newer.
    let index = retriever.store().stats()?.into();
    let history = prompt_history(&options.history);
    // A follow-up ("and when does it end?") is searched together with the question before it.
    let query = match history.last() {
        Some(previous) => format!("{} {question}", previous.question),
        None => question.to_string(),
    };
    let retrieved = retriever.search(&query, &options.retrieval)?;
    let best_similarity = retrieved
        .iter()
        .filter_map(|chunk| chunk.similarity)
        .fold(None, |best: Option<f32>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        });
    let is_relevant = !retrieved.is_empty()
        && best_similarity.is_none_or(|similarity| similarity >= options.min_similarity);
    let sources: Vec<Source> = retrieved
        .into_iter()
        .enumerate()
        .map(|(idx, chunk)| Source {
            n: idx + 1,
            content_sha256: sha256_hex(&chunk.hit.chunk.text),
            chunk_id: chunk.hit.chunk.chunk_id,
            document_id: chunk.hit.chunk.document_id,
            title: chunk.hit.title,
            source_path: chunk.hit.source_path,
            page: chunk.hit.chunk.page,
            text: chunk.hit.chunk.text,
            score: chunk.score,
        })
        .collect();
    let mut receipt = AnswerReceipt {
        version: RECEIPT_VERSION,
        created_unix: unix_now(),
        question: question.to_string(),
        model: generator.identity(),
        params: options.generation.clone(),
        retrieval_mode: options.retrieval.mode.as_str().to_string(),
        retrieval_k: options.retrieval.k,
        index,
        sources: Vec::new(),
        prompt_sha256: String::new(),
        answer_sha256: String::new(),
        no_relevant_sources: !is_relevant,
        history: history.clone(),
    };
    if !is_relevant {
        receipt.sources = receipt_sources(&sources);
        return Ok(Answer {
            question: question.to_string(),
            text: NO_RELEVANT_SOURCES.to_string(),
            quotes: Vec::new(),
            unsupported_sentences: Vec::new(),
            raw_text: String::new(),
            sources: Vec::new(),
            cited: Vec::new(),
            invalid_citations: Vec::new(),
            uncited_sentences: Vec::new(),
            no_relevant_sources: true,
            generation: None,
            receipt,
        });
    }
    let quotes = lead_quotes(
        retriever.embedder(),
        question,
        &sources,
        options.lead_quotes,
    )?;
    let messages = build_answer_messages_with_history(question, &sources, &history);
    receipt.prompt_sha256 = sha256_hex(&generator.render_chat(&messages)?);
    receipt.sources = receipt_sources(&sources);
    before_generation(&sources, &receipt)?;
    if !options.generate {
        let text = compose(&quotes, &[]);
        let check = check_citations(&text, sources.len());
        return Ok(Answer {
            question: question.to_string(),
            text: check.text,
            quotes,
            unsupported_sentences: Vec::new(),
            raw_text: String::new(),
            sources,
            cited: check.cited,
            invalid_citations: Vec::new(),
            uncited_sentences: Vec::new(),
            no_relevant_sources: false,
            generation: None,
            receipt,
        });
    }
    // The system prompt is Vellum's own constant: its keys and values may be kept for the next
    // answer (time to first token), which tells a timing observer nothing about anyone's data.
    let params = GenerationParams {
        share_system_prompt: true,
        ..options.generation.clone()
    };
    let generation = generator.generate(&messages, &params, on_token)?;
    receipt.answer_sha256 = sha256_hex(&generation.text);
    let check = check_citations(&generation.text, sources.len());
    let (supported, unsupported_sentences) = support_check(&check.text, &sources);
    let text = compose(&quotes, &supported);
    let final_check = check_citations(&text, sources.len());
    // The quotes are cited whole, though a quote may hold several sentences ("… Inc. The
    // …"); only the prose is checked sentence by sentence.
    let prose_check = check_citations(&supported.join(" "), sources.len());
    Ok(Answer {
        question: question.to_string(),
        text: final_check.text,
        quotes,
        unsupported_sentences,
        raw_text: generation.text.clone(),
        sources,
        cited: final_check.cited,
        invalid_citations: check.invalid,
        uncited_sentences: prose_check.uncited_sentences,
        no_relevant_sources: false,
        generation: Some(generation),
        receipt,
    })
}

/// Splits the model's text into the sentences the sources they cite support, and the rest.
fn support_check(text: &str, sources: &[Source]) -> (Vec<String>, Vec<String>) {
    let mut supported = Vec::new();
    let mut unsupported = Vec::new();
    for sentence in sentences(text) {
        let evidence: Vec<&str> = cited_numbers(&sentence)
            .into_iter()
            .filter_map(|n| sources.iter().find(|source| source.n == n))
            .map(|source| source.text.as_str())
            .collect();
        if !evidence.is_empty() && is_supported(&sentence, &evidence) {
            supported.push(sentence);
        } else if !unsupported.contains(&sentence) {
            // A small model repeats itself; each left-out sentence is listed once.
            unsupported.push(sentence);
        }
    }
    (supported, unsupported)
}

/// The answer's text: each lead quote on its own line with its marker, then the supported
/// prose (a supported sentence that only repeats a quote is left out).
fn compose(quotes: &[LeadQuote], supported: &[String]) -> String {
    let mut text = String::new();
    for quote in quotes {
        text.push_str(&format!("\u{201c}{}\u{201d} [{}]\n", quote.text, quote.n));
    }
    let prose: Vec<&str> = supported
        .iter()
        .map(String::as_str)
        .filter(|sentence| {
            !quotes
                .iter()
                .any(|quote| sentence.contains(quote.text.trim_end_matches('.')))
        })
        .collect();
    if !prose.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&prose.join(" "));
    }
    if text.trim().is_empty() {
        return NO_SUPPORTED_ANSWER.to_string();
    }
    text.trim_end().to_string()
}
