//! Ask (streamed) and summarize: retrieval filtered inside the indexes, then the model, one
//! generation at a time.

use vellum_audit::{actions, AuditEvent, ChunkRead};
use vellum_authz::Action;
use vellum_models::{CancelFlag, GenerationParams, Generator, StopReason};
use vellum_rag::{
    Answer, AskOptions, PriorTurn, RetrievalOptions, Retriever, Summary, SummaryOptions,
    SummaryProgress,
};
use vellum_rag::{AnswerReceipt, ItemStatus, SummaryKind};

use crate::service::{
    audit_decision, checked_text, content_sha256, view, Caller, Service, ServiceError,
    ServiceResult,
};
use crate::types::{
    AnswerView, AskRequest, HistoryTurn, ProseView, QuoteView, SourceView, SummarizeRequest,
    SummaryItemView, SummaryView,
};

/// A receipt as the audit log keeps it: without the question (the record has it as an HMAC).
fn audit_receipt(receipt: &AnswerReceipt) -> serde_json::Value {
    let mut value = serde_json::to_value(receipt).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("question");
    }
    value
}

/// A receipt as a client gets it: only what that client may see. The full receipt, with the
/// store-wide index versions (document and chunk counts, which move when anyone uploads or
/// deletes in any matter) and the engine's address, stays in the audit record, from which an
/// auditor can replay the answer.
fn client_receipt(receipt: &AnswerReceipt) -> ServiceResult<serde_json::Value> {
    let mut value = serde_json::to_value(receipt)
        .map_err(|err| ServiceError::Internal(format!("receipt to JSON: {err}")))?;
    if let Some(object) = value.as_object_mut() {
        object.remove("index");
        if let Some(model) = object.get_mut("model").and_then(|m| m.as_object_mut()) {
            let engine = model
                .get("engine")
                .and_then(|engine| engine.as_str())
                .unwrap_or_default();
            // `remote <url>`: the URL may carry an internal host name or credentials.
            if engine.starts_with("remote") {
                model.insert("engine".into(), "remote".into());
            }
        }
    }
    Ok(value)
}

/// What `POST /v1/ask` streams, in this order: sources once, tokens, the answer once.
#[derive(Debug)]
pub enum AskEvent {
    /// The numbered sources given to the model (before the first token).
    Sources(Vec<SourceView>),
    /// The next piece of generated text.
    Token(String),
    /// The finished answer with its citation check and receipt (boxed: it is large, the
    /// token events are many and small).
    Answer(Box<AnswerView>),
}

/// Earlier turns a client sent with a question: at most 20, each question 1-4096 characters
/// and each answer at most 16,384.
fn checked_history(history: &[HistoryTurn]) -> ServiceResult<Vec<PriorTurn>> {
    if history.len() > 20 {
        return Err(ServiceError::BadRequest(
            "history holds at most 20 earlier turns (only the last 3 are used)".into(),
        ));
    }
    history
        .iter()
        .map(|turn| {
            let question = checked_text(&turn.question, "an earlier question")?;
            if turn.answer.chars().count() > 16_384 {
                return Err(ServiceError::BadRequest(
                    "an earlier answer is longer than 16384 characters".into(),
                ));
            }
            Ok(PriorTurn {
                question: question.to_string(),
                answer: turn.answer.clone(),
            })
        })
        .collect()
}

impl Service {
    pub(crate) fn generator(&self) -> ServiceResult<&dyn Generator> {
        self.generator.as_deref().ok_or_else(|| {
            ServiceError::Unavailable(
                "no generation model is loaded on this server; search still works".into(),
            )
        })
    }

    /// Answers a question from the passages the caller may ask about. `emit` receives the
    /// events as they happen; the call returns when the answer is complete.
    ///
    /// Audit: before the model sees anything (and before the sources are sent), one `ask`
    /// record lists the chunks given to it with their SHA-256 and the receipt so far (model,
    /// template, sampling, prompt hash); if it cannot be written, nothing is generated or
    /// sent. When the answer is complete, an `ask.answer` record adds the answer's hash; if
    /// that one fails, the final `answer` event is replaced by an error.
    pub fn ask(
        &self,
        caller: &Caller,
        request: &AskRequest,
        emit: &mut dyn FnMut(AskEvent),
    ) -> ServiceResult<()> {
        self.ask_cancellable(caller, request, &CancelFlag::default(), emit)
    }

    /// [`Self::ask`], stopping the model at the next token once `cancel` is raised (the
    /// client went away). Each user may have [`crate::limits::GENERATION_PER_USER`] answers
    /// and summaries running or waiting; past that, or past the server's total, the request is
    /// refused with 429 instead of queueing.
    pub fn ask_cancellable(
        &self,
        caller: &Caller,
        request: &AskRequest,
        cancel: &CancelFlag,
        emit: &mut dyn FnMut(AskEvent),
    ) -> ServiceResult<()> {
        let defaults = AskOptions::default().generation;
        self.ask_detailed(caller, request, &defaults, cancel, emit)
            .map(|_| ())
    }

    /// [`Self::ask_cancellable`] with sampling settings (`generation`'s temperature and seed;
    /// `max_tokens` and `cancel` come from the request) that also returns the whole answer
    /// (the CLI prints source paths and timings and writes the full receipt). Authorized,
    /// limited and audited the same way.
    pub fn ask_detailed(
        &self,
        caller: &Caller,
        request: &AskRequest,
        generation: &GenerationParams,
        cancel: &CancelFlag,
        emit: &mut dyn FnMut(AskEvent),
    ) -> ServiceResult<Answer> {
        let mut event = self.audit_event(caller, actions::ASK);
        if let Some(question) = self.sensitive(&request.question) {
            event = event.query(question);
        }
        let mut sources_recorded = false;
        let result = self
            .generation_limits
            .acquire(&caller.principal.name)
            .and_then(|_permit| {
                self.ask_unaudited(
                    caller,
                    request,
                    generation,
                    cancel,
                    emit,
                    &mut sources_recorded,
                    &event,
                )
            });
        match result {
            // Already recorded (sources before generation, answer after).
            Ok(answer) => Ok(answer),
            // Failed before the sources were recorded: record the failure now.
            Err(err) if !sources_recorded => self.audited(event, Err(err)),
            Err(err) => {
                let failure = event.detail("stage", "generation");
                self.audited(failure, Err(err))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ask_unaudited(
        &self,
        caller: &Caller,
        request: &AskRequest,
        generation: &GenerationParams,
        cancel: &CancelFlag,
        emit: &mut dyn FnMut(AskEvent),
        sources_recorded: &mut bool,
        event: &AuditEvent,
    ) -> ServiceResult<Answer> {
        let question = checked_text(&request.question, "question")?;
        let k = request.k.unwrap_or(5);
        if !(1..=20).contains(&k) {
            return Err(ServiceError::BadRequest("k must be 1-20".into()));
        }
        let max_tokens = request.max_tokens.unwrap_or(256);
        if !(1..=1024).contains(&max_tokens) {
            return Err(ServiceError::BadRequest("max_tokens must be 1-1024".into()));
        }
        let history = checked_history(&request.history)?;
        let generator = self.generator()?;
        let scope = self.read_scope(caller, Action::Ask, request.collections.as_deref())?;
        // One document: it must be readable (else not found), and both engines search only it.
        let documents = match &request.document_id {
            Some(id) => {
                let mut probe = event.clone();
                Some(vec![self.readable(caller, id, &mut probe)?.id.0])
            }
            None => None,
        };
        let defaults = AskOptions::default();
        let options = AskOptions {
            retrieval: RetrievalOptions {
                mode: request.mode.unwrap_or_default().into(),
                k,
                num_candidates: (k * 10).max(vellum_rag::FUSION_DEPTH),
                filter: vellum_store::SearchFilter {
                    collections: None,
                    documents,
                },
                ..RetrievalOptions::default()
            },
            generation: GenerationParams {
                max_tokens,
                cancel: cancel.clone(),
                ..generation.clone()
            },
            history,
            generate: request.generate.unwrap_or(true),
            ..defaults
        };
        let retriever = Retriever::new(&self.store, self.query_embedder(), &scope);
        let _slot = self.metrics.generation_slot();
        // The turn is taken after retrieval (which runs in parallel with other answers) and
        // held until the model is done.
        let mut turn = None;
        // Both callbacks emit; they never run at the same time.
        let emit = std::cell::RefCell::new(emit);
        let answer = vellum_rag::ask_with(
            &retriever,
            generator,
            question,
            &options,
            &mut |sources, receipt| {
                let reads = sources
                    .iter()
                    .map(|source| ChunkRead {
                        chunk_id: source.chunk_id.0.clone(),
                        document_id: source.document_id.0.clone(),
                        sha256: source.content_sha256.clone(),
                    })
                    .collect();
                let record = event
                    .clone()
                    .reads(reads)
                    .receipt(audit_receipt(receipt))
                    .detail("stage", "sources");
                self.record(record)
                    .map_err(|err| vellum_rag::Error::Stopped(err.to_string()))?;
                *sources_recorded = true;
                (*emit.borrow_mut())(AskEvent::Sources(
                    sources
                        .iter()
                        .map(|source| SourceView {
                            n: source.n,
                            document_id: source.document_id.0.clone(),
                            title: source.title.clone(),
                            page: source.page,
                            chunk_id: source.chunk_id.0.clone(),
                            text: source.text.clone(),
                            content_sha256: source.content_sha256.clone(),
                            score: source.score,
                        })
                        .collect(),
                ));
                turn = Some(self.generation_turn.take());
                Ok(())
            },
            &mut |token| (*emit.borrow_mut())(AskEvent::Token(token.to_string())),
        )?;
        drop(turn);
        let emit = emit.into_inner();
        if answer.no_relevant_sources {
            emit(AskEvent::Sources(Vec::new()));
        }
        // The answer is recorded before its final event leaves.
        let mut done = AuditEvent {
            reads: Vec::new(),
            ..event.clone()
        }
        .receipt(audit_receipt(&answer.receipt));
        done.action = "ask.answer".into();
        let cancelled = answer
            .generation
            .as_ref()
            .is_some_and(|generation| generation.stop_reason == StopReason::Cancelled);
        done.outcome = if answer.no_relevant_sources {
            "no_relevant_sources".into()
        } else if cancelled {
            "cancelled".into()
        } else {
            "ok".into()
        };
        self.record(done)?;
        let receipt = client_receipt(&answer.receipt)?;
        emit(AskEvent::Answer(Box::new(AnswerView {
            text: answer.text.clone(),
            quotes: answer
                .quotes
                .iter()
                .map(|quote| QuoteView {
                    n: quote.n,
                    text: quote.text.clone(),
                    page: quote.page,
                })
                .collect(),
            unsupported_sentences: answer.unsupported_sentences.clone(),
            cited: answer.cited.clone(),
            invalid_citations: answer.invalid_citations.clone(),
            uncited_sentences: answer.uncited_sentences.clone(),
            no_relevant_sources: answer.no_relevant_sources,
            prompt_tokens: answer
                .generation
                .as_ref()
                .map_or(0, |generation| generation.num_prompt_tokens),
            generated_tokens: answer
                .generation
                .as_ref()
                .map_or(0, |generation| generation.num_generated_tokens),
            receipt,
        })));
        Ok(answer)
    }

    /// Summarizes a whole document (every chunk, map-reduce). Not readable: not found; readable
    /// but not summarizable: forbidden.
    pub fn summarize(
        &self,
        caller: &Caller,
        request: &SummarizeRequest,
    ) -> ServiceResult<SummaryView> {
        self.summarize_cancellable(caller, request, &CancelFlag::default())
    }

    /// [`Self::summarize`], stopping the model once `cancel` is raised; limited per user like
    /// [`Self::ask_cancellable`].
    pub fn summarize_cancellable(
        &self,
        caller: &Caller,
        request: &SummarizeRequest,
        cancel: &CancelFlag,
    ) -> ServiceResult<SummaryView> {
        let summary = self.summarize_detailed(caller, request, cancel, &mut |_| {})?;
        Ok(summary_view(summary))
    }

    /// [`Self::summarize_cancellable`] returning the whole summary, with progress (the CLI's
    /// bar); authorized, limited and audited the same way.
    pub fn summarize_detailed(
        &self,
        caller: &Caller,
        request: &SummarizeRequest,
        cancel: &CancelFlag,
        progress: &mut dyn FnMut(SummaryProgress),
    ) -> ServiceResult<Summary> {
        let mut event = self.audit_event(caller, actions::SUMMARIZE);
        // Only the prose step runs a model, so only it takes a generation permit.
        let result = if request.prose.unwrap_or(false) {
            self.generation_limits
                .acquire(&caller.principal.name)
                .and_then(|_permit| {
                    self.summarize_unaudited(caller, request, cancel, progress, &mut event)
                })
        } else {
            self.summarize_unaudited(caller, request, cancel, progress, &mut event)
        };
        self.audited(event, result)
    }

    fn summarize_unaudited(
        &self,
        caller: &Caller,
        request: &SummarizeRequest,
        cancel: &CancelFlag,
        progress: &mut dyn FnMut(SummaryProgress),
        event: &mut AuditEvent,
    ) -> ServiceResult<Summary> {
        let record = self.readable(caller, &request.document_id, event)?;
        let decision = self.decide(caller, Action::Summarize, &record);
        event.decision = Some(audit_decision(&decision));
        if !decision.allowed {
            return Err(ServiceError::Forbidden);
        }
        let max_tokens = request.max_tokens.unwrap_or(200);
        if !(16..=1024).contains(&max_tokens) {
            return Err(ServiceError::BadRequest(
                "max_tokens must be 16-1024".into(),
            ));
        }
        let kind = match request.kind.as_deref() {
            None => None,
            Some(name) => Some(SummaryKind::parse(name).ok_or_else(|| {
                ServiceError::BadRequest(
                    "kind must be contract, clinical, email, filing or general".into(),
                )
            })?),
        };
        let prose = request.prose.unwrap_or(false);
        let defaults = SummaryOptions::default();
        let options = SummaryOptions {
            kind,
            prose,
            generation: GenerationParams {
                max_tokens,
                cancel: cancel.clone(),
                ..defaults.generation.clone()
            },
        };
        let scope = self.read_scope(
            caller,
            Action::Summarize,
            Some(std::slice::from_ref(&record.collection)),
        )?;
        // Only the prose step runs the model, so only it waits for a generation turn.
        let generator = if prose { Some(self.generator()?) } else { None };
        let _slot = prose.then(|| self.metrics.generation_slot());
        let _turn = prose.then(|| self.generation_turn.take());
        let summary = vellum_rag::summarize(
            &self.store,
            &scope,
            generator,
            &record.id,
            &options,
            progress,
        )?;
        // What the summary discloses (and the model saw): the chunks its items quote.
        event.reads = summary
            .quoted_chunks
            .iter()
            .map(|chunk| ChunkRead {
                chunk_id: chunk.chunk_id.0.clone(),
                document_id: chunk.document_id.0.clone(),
                sha256: content_sha256(&chunk.text),
            })
            .collect();
        event
            .detail
            .insert("kind".into(), summary.kind.as_str().into());
        Ok(summary)
    }
}

/// The API's view of a summary.
pub fn summary_view(summary: Summary) -> SummaryView {
    SummaryView {
        document: view(&summary.document),
        kind: summary.kind.as_str().to_string(),
        kind_detected: summary.kind_detected,
        items: summary
            .items
            .into_iter()
            .map(|item| SummaryItemView {
                section: item.section,
                status: match item.status {
                    ItemStatus::Found => "found".into(),
                    ItemStatus::NotFound => "not_found".into(),
                },
                quote: item.quote,
                page: item.page,
                chunk_id: item.chunk_id,
                text: item.text,
            })
            .collect(),
        prose: summary.prose.map(|prose| ProseView {
            text: prose.text,
            dropped_sentences: prose.dropped_sentences,
        }),
        text: summary.text,
        num_chunks: summary.num_chunks,
    }
}
