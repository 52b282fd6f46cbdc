//! Retrieval-augmented answers for Vellum: hybrid retrieval (BM25 + vectors, fused by
//! normalised scores), grounded answers with numbered sources and checked citations, whole-document
//! summaries that extract first and then write (facts quoted by [`vellum_brief`], prose kept only
//! where the support check passes), and retrieval evaluation on BEIR-format sets.
//!
//! Main types: [`Retriever`] (search in one of three [`SearchMode`]s), [`ask`] → [`Answer`],
//! [`summarize`] → [`Summary`], [`replay`] of an [`AnswerReceipt`], and [`eval`] for
//! nDCG/recall/MRR.
//!
//! This crate never sees a principal or a policy: callers pass a resolved
//! [`vellum_store::SearchFilter`]. It does not know HTTP or terminals; streaming goes through
//! a callback.

mod answer;
mod brief;
mod citations;
mod error;
pub mod eval;
mod fusion;
mod lead;
mod prompt;
mod receipt;
mod retrieve;
pub mod support;

pub use answer::{
    ask, ask_with, prompt_history, Answer, AskOptions, PriorTurn, Source, MAX_HISTORY_TURNS,
    NO_SUPPORTED_ANSWER,
};
pub use brief::{summarize, Prose, Summary, SummaryOptions, SummaryProgress};
pub use citations::{check_citations, CitationCheck};
pub use error::{Error, Result};
pub use fusion::{
    convex_fusion, convex_fusion_by, reciprocal_rank_fusion, Fusion, DEFAULT_VECTOR_WEIGHT,
    FUSION_DEPTH, VECTOR_WEIGHT_SETTING,
};
pub use lead::{lead_quotes, LeadQuote};
pub use prompt::{build_answer_messages, build_answer_messages_with_history, SYSTEM_PROMPT};
pub use receipt::{
    replay, AnswerReceipt, IndexVersions, ReceiptSource, ReplayReport, SourceCheck, SourceStatus,
    RECEIPT_VERSION,
};
pub use retrieve::{QueryEmbedder, RetrievalOptions, RetrievedChunk, Retriever, SearchMode};
pub use vellum_brief::{Item as SummaryItem, Kind as SummaryKind, Status as ItemStatus};
