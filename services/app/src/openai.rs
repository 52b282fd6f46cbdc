//! What the OpenAI-compatible API (`/openai/v1` in vellum-server) needs of the application layer
//! beyond [`Service::ask_detailed`]: the models a caller may use, grounded answers confined to
//! collections the caller may ask about, plain chat with the generation model (no retrieval),
//! and embeddings. Each is authorized with Cedar and audited here, like every other call; the
//! server only translates OpenAI's shapes to these calls and back.
//!
//! Authorization:
//! - a collection model (`vellum:<collection>`) needs `ask` on a permitted scope of that
//!   collection (the same [`vellum_authz::ReadScope`] `POST /v1/ask` uses); otherwise it does
//!   not exist for the caller ([`ServiceError::NotFound`]), like a document one may not read;
//! - plain chat needs `ask` on `Collection::"vellum:model"` ([`PLAIN_CHAT_RESOURCE`]), a
//!   reserved name no upload can create: no shipped policy but `default` (admins) and the CLI
//!   operator's permits it, so a deployment opts in with one Cedar rule;
//! - embeddings need `search` on at least one scope with documents: they read no document, but
//!   they are the search engine's own tool and cost CPU, so they are for people who may search.

use vellum_audit::AuditEvent;
use vellum_authz::{Action, Resource};
use vellum_models::{CancelFlag, Generation, Generator};
use vellum_rag::Answer;

pub use vellum_models::{ChatMessage, GenerationParams, StopReason};

use crate::answers::AskEvent;
use crate::service::{
    audit_decision, content_sha256, principal_info, Caller, Service, ServiceError, ServiceResult,
};
use crate::types::AskRequest;

/// The Cedar resource plain chat (the generation model without documents) is checked against:
/// `ask` on this collection name (uploads refuse collection names with `:`).
pub const PLAIN_CHAT_RESOURCE: &str = "vellum:model";

/// Inputs one embeddings request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 256;
/// Characters one embeddings input may have (the embedder reads its first 256 tokens anyway).
pub const MAX_EMBEDDING_CHARS: usize = 16_384;
/// Messages one plain chat may carry.
pub const MAX_CHAT_MESSAGES: usize = 64;
/// Characters of all messages of one plain chat together.
pub const MAX_CHAT_CHARS: usize = 65_536;

/// Audit actions of the OpenAI-compatible API besides `ask` / `ask.answer` (grounded answers
/// are recorded exactly like `POST /v1/ask`).
pub mod actions {
    /// `GET /openai/v1/models`: the models listed.
    pub const MODEL_LIST: &str = "model.list";
    /// `POST /openai/v1/embeddings`: inputs embedded.
    pub const EMBED: &str = "embed";
    /// Plain chat, written before the model runs: the prompt's hash, no reads.
    pub const CHAT: &str = "chat";
    /// Plain chat, written when the answer is complete: the answer's hash.
    pub const CHAT_ANSWER: &str = "chat.answer";
}

/// The models a caller may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCatalog {
    /// Collections with at least one scope the caller may `ask` about, sorted.
    pub collections: Vec<String>,
    /// The generation model's name, if one is loaded and the caller may chat with it without
    /// documents (`ask` on [`PLAIN_CHAT_RESOURCE`]).
    pub plain_chat: Option<String>,
    /// Whether the caller may use the embedder (`search` on at least one scope).
    pub embeddings: bool,
}

/// What an embeddings request returns.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// One L2-normalised vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Model tokens read, with the special tokens, at most the model's window per input.
    pub tokens: usize,
}

impl Service {
    /// Whether Cedar permits `caller` plain chat (`ask` on [`PLAIN_CHAT_RESOURCE`]).
    fn plain_chat_decision(&self, caller: &Caller) -> vellum_authz::Decision {
        self.authorizer().is_allowed(
            &principal_info(&caller.principal),
            Action::Ask,
            &Resource::collection(PLAIN_CHAT_RESOURCE),
            &caller.context(),
        )
    }

    /// The generation model's name, if one is loaded.
    pub fn generation_model_name(&self) -> Option<String> {
        self.generator
            .as_deref()
            .map(|generator| generator.model_name().to_string())
    }

    /// The collections the caller may ask about, whether it may chat with the plain model and
    /// use the embedder. Recorded as `model.list`.
    pub fn models(&self, caller: &Caller) -> ServiceResult<ModelCatalog> {
        let mut event = self.audit_event(caller, actions::MODEL_LIST);
        let result = self.models_unaudited(caller);
        if let Ok(catalog) = &result {
            event = event
                .detail("collections", catalog.collections.len().to_string())
                .detail("plain_chat", catalog.plain_chat.is_some().to_string())
                .detail("embeddings", catalog.embeddings.to_string());
        }
        self.audited(event, result)
    }

    fn models_unaudited(&self, caller: &Caller) -> ServiceResult<ModelCatalog> {
        let ask = self.read_scope(caller, Action::Ask, None)?;
        let mut collections: Vec<String> = ask
            .scopes()
            .iter()
            .map(|scope| scope.collection.clone())
            .collect();
        collections.sort();
        collections.dedup();
        let plain_chat = self
            .generation_model_name()
            .filter(|_| self.plain_chat_decision(caller).allowed);
        let embeddings = !self
            .read_scope(caller, Action::Search, None)?
            .scopes()
            .is_empty();
        Ok(ModelCatalog {
            collections,
            plain_chat,
            embeddings,
        })
    }

    /// [`Self::ask_detailed`] where a collection the request names must be one the caller may
    /// ask about: otherwise [`ServiceError::NotFound`] (recorded as a refused `ask`), instead of
    /// an answer that found nothing. A model named after a collection then behaves like any
    /// other resource the caller may not see. Without collections it asks everything permitted.
    pub fn ask_in_collections(
        &self,
        caller: &Caller,
        request: &AskRequest,
        generation: &GenerationParams,
        cancel: &CancelFlag,
        emit: &mut dyn FnMut(AskEvent),
    ) -> ServiceResult<Answer> {
        if let Some(wanted) = &request.collections {
            let permitted = self.read_scope(caller, Action::Ask, Some(wanted));
            let missing = match &permitted {
                Ok(scope) => wanted
                    .iter()
                    .find(|name| !scope.scopes().iter().any(|s| &s.collection == *name)),
                Err(_) => None,
            };
            if let Some(missing) = missing.cloned() {
                let mut event = self
                    .audit_event(caller, vellum_audit::actions::ASK)
                    .resource(missing);
                if let Some(question) = self.sensitive(&request.question) {
                    event = event.query(question);
                }
                return self.audited(event, Err(ServiceError::NotFound));
            }
            if let Err(err) = permitted {
                let event = self.audit_event(caller, vellum_audit::actions::ASK);
                return self.audited(event, Err(err));
            }
        }
        self.ask_detailed(caller, request, generation, cancel, emit)
    }

    /// Generates from a conversation with the generation model alone: no retrieval, no
    /// documents, no citations. Needs `ask` on [`PLAIN_CHAT_RESOURCE`]; limited per user like
    /// answers. A `chat` record (the last user message as an HMAC, the prompt's SHA-256, the
    /// model and sampling settings) is written before the model runs, and nothing is generated
    /// if it cannot be; a `chat.answer` record with the answer's SHA-256 when it is done.
    pub fn chat(
        &self,
        caller: &Caller,
        messages: &[ChatMessage],
        generation: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> ServiceResult<Generation> {
        let mut event = self
            .audit_event(caller, actions::CHAT)
            .resource(PLAIN_CHAT_RESOURCE);
        if let Some(last) = messages.iter().rev().find(|message| message.role == "user") {
            if let Some(question) = self.sensitive(&last.content) {
                event = event.query(question);
            }
        }
        let mut recorded = false;
        let result = self
            .generation_limits
            .acquire(&caller.principal.name)
            .and_then(|_permit| {
                self.chat_unaudited(
                    caller,
                    messages,
                    generation,
                    on_token,
                    &mut event,
                    &mut recorded,
                )
            });
        match result {
            Ok(generation) => Ok(generation),
            Err(err) if !recorded => self.audited(event, Err(err)),
            Err(err) => self.audited(event.detail("stage", "generation"), Err(err)),
        }
    }

    fn chat_unaudited(
        &self,
        caller: &Caller,
        messages: &[ChatMessage],
        generation: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
        event: &mut AuditEvent,
        recorded: &mut bool,
    ) -> ServiceResult<Generation> {
        let decision = self.plain_chat_decision(caller);
        event.decision = Some(audit_decision(&decision));
        if !decision.allowed {
            return Err(ServiceError::Forbidden);
        }
        check_messages(messages)?;
        if !(1..=1024).contains(&generation.max_tokens) {
            return Err(ServiceError::BadRequest("max_tokens must be 1-1024".into()));
        }
        let generator: &dyn Generator = self.generator()?;
        let prompt = generator.render_chat(messages).map_err(model_error)?;
        let prompt_tokens = generator.count_tokens(&prompt).map_err(model_error)?;
        if prompt_tokens + generation.max_tokens > generator.context_length() {
            return Err(ServiceError::BadRequest(format!(
                "the conversation takes {prompt_tokens} tokens and the answer up to {}; the \
                 model reads at most {} in all: send fewer or shorter messages, or a smaller \
                 max_tokens",
                generation.max_tokens,
                generator.context_length()
            )));
        }
        let mut identity = serde_json::to_value(generator.identity()).unwrap_or_default();
        if let Some(object) = identity.as_object_mut() {
            object.insert("messages".into(), messages.len().into());
        }
        let receipt = serde_json::json!({
            "model": identity,
            "params": generation,
            "prompt_sha256": content_sha256(&prompt),
        });
        let before = event
            .clone()
            .receipt(receipt.clone())
            .detail("stage", "prompt");
        self.record(before)?;
        *recorded = true;
        let _slot = self.metrics.generation_slot();
        let turn = self.generation_turn.take();
        let result = generator
            .generate(messages, generation, on_token)
            .map_err(model_error)?;
        drop(turn);
        let mut done = event
            .clone()
            .receipt(receipt)
            .detail("answer_sha256", content_sha256(&result.text));
        done.action = actions::CHAT_ANSWER.into();
        done.detail.insert(
            "generated_tokens".into(),
            result.num_generated_tokens.to_string(),
        );
        done.outcome = if result.stop_reason == StopReason::Cancelled {
            "cancelled".into()
        } else {
            "ok".into()
        };
        self.record(done)?;
        Ok(result)
    }

    /// Embeds texts with the embedder search uses for queries. Needs `search` on at least one
    /// scope (403 otherwise); recorded as `embed` with the number of inputs and the texts (one
    /// per line) as an HMAC, like a search query.
    pub fn embed(&self, caller: &Caller, inputs: &[String]) -> ServiceResult<Embeddings> {
        let mut event = self
            .audit_event(caller, actions::EMBED)
            .detail("inputs", inputs.len().to_string());
        if let Some(texts) = self.sensitive(&inputs.join("\n")) {
            event = event.query(texts);
        }
        let result = self.embed_unaudited(caller, inputs, &mut event);
        self.audited(event, result)
    }

    fn embed_unaudited(
        &self,
        caller: &Caller,
        inputs: &[String],
        event: &mut AuditEvent,
    ) -> ServiceResult<Embeddings> {
        if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
            return Err(ServiceError::BadRequest(format!(
                "input must hold 1-{MAX_EMBEDDING_INPUTS} texts"
            )));
        }
        if inputs
            .iter()
            .any(|text| text.chars().count() > MAX_EMBEDDING_CHARS)
        {
            return Err(ServiceError::BadRequest(format!(
                "each input may have at most {MAX_EMBEDDING_CHARS} characters"
            )));
        }
        let scope = self.read_scope(caller, Action::Search, None)?;
        event
            .detail
            .insert("permitted_scopes".into(), scope.scopes().len().to_string());
        if scope.scopes().is_empty() {
            return Err(ServiceError::Forbidden);
        }
        let window = self.passage_embedder().max_tokens();
        let mut tokens = 0;
        let mut vectors = Vec::with_capacity(inputs.len());
        for text in inputs {
            // [CLS] and [SEP] around the text; the embedder reads at most its window.
            let counted = self.passage_embedder().count_tokens(text);
            tokens += counted.saturating_add(2).min(window);
            vectors.push(self.query_embedder().embed_query(text)?);
        }
        Ok(Embeddings { vectors, tokens })
    }
}

/// A model's failure as the caller sees it, by its kind (an engine's address stays in the log).
fn model_error(err: vellum_models::Error) -> ServiceError {
    ServiceError::from_kind(err.kind(), err.to_string())
}

/// A plain chat's messages: at least one, a known role each, within the limits.
fn check_messages(messages: &[ChatMessage]) -> ServiceResult<()> {
    if messages.is_empty() || messages.len() > MAX_CHAT_MESSAGES {
        return Err(ServiceError::BadRequest(format!(
            "messages must hold 1-{MAX_CHAT_MESSAGES} messages"
        )));
    }
    if let Some(message) = messages
        .iter()
        .find(|message| !matches!(message.role.as_str(), "system" | "user" | "assistant"))
    {
        return Err(ServiceError::BadRequest(format!(
            "message role {:?} is not supported: use system, user or assistant",
            message.role
        )));
    }
    let chars: usize = messages
        .iter()
        .map(|message| message.content.chars().count())
        .sum();
    if chars > MAX_CHAT_CHARS {
        return Err(ServiceError::BadRequest(format!(
            "the messages may have at most {MAX_CHAT_CHARS} characters in all"
        )));
    }
    if messages.last().is_none_or(|message| message.role != "user") {
        return Err(ServiceError::BadRequest(
            "the last message must be the user's".into(),
        ));
    }
    Ok(())
}
