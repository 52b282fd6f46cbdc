//! Conversations: a user's questions and answers kept together, so that a follow-up can build
//! on the earlier turns and the user can come back to them. Each turn is an ordinary `ask`
//! (same authorization, limits and audit records) plus a `conversation.turn` record.
//!
//! They live in `conversations.sqlite` in the data folder, one row per conversation and per
//! turn, opened on first use (the CLI never creates it). A conversation is its owner's alone:
//! anyone else's id is "not found". What a turn quoted is checked again when it is shown: a
//! source from a document the user may no longer read (deleted, relabelled, policy changed) is
//! withheld, not replayed from the stored copy.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use vellum_authz::Action;
use vellum_models::CancelFlag;
use vellum_store::{DocumentId, DocumentState};

use crate::answers::AskEvent;
use crate::collection::CollectionName;
use crate::service::{checked_text, Caller, Service, ServiceError, ServiceResult};
use crate::types::{AnswerView, AskRequest, HistoryTurn, ModeName, SourceView};

/// The file in the data folder.
pub const CONVERSATIONS_FILE: &str = "conversations.sqlite";

/// Most conversations one user keeps (the oldest must be deleted to start another).
pub const MAX_CONVERSATIONS_PER_USER: usize = 500;

/// Most turns in one conversation.
pub const MAX_TURNS: usize = 100;

/// Shown instead of a source the user may no longer read.
pub const WITHHELD_TITLE: &str = "(withheld: you can no longer read this document)";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    collections TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations(owner, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (conversation_id, ordinal)
);
";

/// `POST /v1/conversations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// The collections (matters, departments) its answers come from; empty: every collection
    /// the user may ask about.
    #[serde(default)]
    pub collections: Vec<String>,
    /// A name for it (default: the first question).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: Option<String>,
}

/// `POST /v1/conversations/{id}/ask`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationAsk {
    #[schema(min_length = 1, max_length = 4096)]
    pub question: String,
    #[serde(default)]
    pub mode: Option<ModeName>,
    /// Longest answer in tokens (default 256).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1024)]
    pub max_tokens: Option<usize>,
}

/// A conversation in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    pub collections: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// How many questions it holds.
    pub turns: usize,
}

/// One question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TurnView {
    pub question: String,
    /// When it was asked (RFC 3339, UTC).
    pub asked_at: String,
    /// Every source given to the model, cited or not.
    pub sources: Vec<SourceView>,
    pub answer: AnswerView,
}

/// A whole conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    pub collections: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub turns: Vec<TurnView>,
}

/// The conversations file, opened on first use.
#[derive(Debug, Default)]
pub(crate) struct ConversationStore {
    connection: Mutex<Option<Connection>>,
}

fn storage(err: rusqlite::Error) -> ServiceError {
    ServiceError::Internal(format!("conversations: {err}"))
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn new_id() -> ServiceResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|err| ServiceError::Internal(format!("random conversation id: {err}")))?;
    Ok(format!("cv_{}", hex::encode(bytes)))
}

impl ConversationStore {
    /// Runs `work` on the open connection (opening it in `data_dir` the first time).
    fn with<T>(
        &self,
        data_dir: &Path,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> ServiceResult<T> {
        let mut guard = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            let connection =
                Connection::open(data_dir.join(CONVERSATIONS_FILE)).map_err(storage)?;
            connection
                .execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                     PRAGMA secure_delete = ON; PRAGMA busy_timeout = 5000;",
                )
                .map_err(storage)?;
            connection.execute_batch(SCHEMA).map_err(storage)?;
            *guard = Some(connection);
        }
        match guard.as_mut() {
            Some(connection) => work(connection).map_err(storage),
            None => Err(ServiceError::Internal("conversations not open".into())),
        }
    }
}

/// A stored conversation's row.
struct Row {
    id: String,
    title: String,
    collections: Vec<String>,
    created_at: String,
    updated_at: String,
}

/// A row of `SELECT id, title, owner, collections, created_at, updated_at …`.
fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let collections: String = row.get(3)?;
    Ok(Row {
        id: row.get(0)?,
        title: row.get(1)?,
        collections: serde_json::from_str(&collections).unwrap_or_default(),
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

fn short_title(question: &str) -> String {
    let line = question.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut title: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        title.push('…');
    }
    title
}

/// The file formats a conversation exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Docx,
    Pdf,
}

/// An exported conversation, ready to download.
#[derive(Debug)]
pub struct ExportedFile {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// A safe file name (ASCII letters, digits, `-`, `_`, `.`).
    pub file_name: String,
}

fn export_model(view: &ConversationView, user: &str) -> vellum_export::ExportedConversation {
    vellum_export::ExportedConversation {
        title: view.title.clone(),
        user: user.to_string(),
        exported_at: now(),
        collections: view.collections.clone(),
        turns: view
            .turns
            .iter()
            .map(|turn| vellum_export::ExportedTurn {
                question: turn.question.clone(),
                asked_at: turn.asked_at.clone(),
                answer: turn.answer.text.clone(),
                sources: turn
                    .sources
                    .iter()
                    .map(|source| vellum_export::ExportedSource {
                        n: source.n,
                        document_title: source.title.clone(),
                        document_id: source.document_id.clone(),
                        page: source.page,
                        quote: source.text.clone(),
                        cited: turn.answer.cited.contains(&source.n),
                    })
                    .collect(),
                uncited_sentences: turn.answer.uncited_sentences.clone(),
                invalid_citations: turn.answer.invalid_citations.clone(),
            })
            .collect(),
    }
}

fn export_file_name(title: &str, extension: &str) -> String {
    let mut name: String = title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    name.truncate(60);
    if name.is_empty() {
        name = "conversation".into();
    }
    format!("{name}.{extension}")
}

impl Service {
    /// One of the caller's conversations as a DOCX or PDF file: every turn, its answer and
    /// its sources (quote, document, page; cited ones marked), with what the caller may no
    /// longer read withheld. Recorded as `conversation.export` with the format.
    pub fn export_conversation(
        &self,
        caller: &Caller,
        id: &str,
        format: ExportFormat,
    ) -> ServiceResult<ExportedFile> {
        let event = self
            .audit_event(caller, "conversation.export")
            .resource(id.to_string())
            .detail(
                "format",
                match format {
                    ExportFormat::Docx => "docx",
                    ExportFormat::Pdf => "pdf",
                },
            );
        let result = self.conversation_view(caller, id).and_then(|view| {
            let model = export_model(&view, &caller.principal.name);
            let failed = |err: vellum_export::ExportError| {
                ServiceError::from_kind(err.kind(), err.to_string())
            };
            Ok(match format {
                ExportFormat::Docx => ExportedFile {
                    bytes: vellum_export::to_docx(&model).map_err(failed)?,
                    content_type: vellum_export::DOCX_CONTENT_TYPE,
                    file_name: export_file_name(&view.title, "docx"),
                },
                ExportFormat::Pdf => ExportedFile {
                    bytes: vellum_export::to_pdf(&model).map_err(failed)?,
                    content_type: vellum_export::PDF_CONTENT_TYPE,
                    file_name: export_file_name(&view.title, "pdf"),
                },
            })
        });
        self.audited(event, result)
    }

    fn conversation_row(&self, caller: &Caller, id: &str) -> ServiceResult<Row> {
        let owner = caller.principal.name.clone();
        let id = id.to_string();
        self.conversations
            .with(self.store.data_dir(), |db| {
                db.query_row(
                    "SELECT id, title, owner, collections, created_at, updated_at \
                     FROM conversations WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                    read_row,
                )
                .optional()
            })?
            .ok_or(ServiceError::NotFound)
    }

    fn stored_turns(&self, id: &str) -> ServiceResult<Vec<TurnView>> {
        let id = id.to_string();
        let bodies = self.conversations.with(self.store.data_dir(), |db| {
            let mut statement =
                db.prepare("SELECT body FROM turns WHERE conversation_id = ?1 ORDER BY ordinal")?;
            let rows = statement.query_map(params![id], |row| row.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })?;
        bodies
            .iter()
            .map(|body| {
                serde_json::from_str(body)
                    .map_err(|err| ServiceError::Internal(format!("a stored turn: {err}")))
            })
            .collect()
    }

    /// Withholds what the caller may no longer read: a source whose document is gone or not
    /// readable now loses its text and title.
    fn withhold_unreadable(&self, caller: &Caller, turns: &mut [TurnView]) -> ServiceResult<()> {
        let mut readable: std::collections::HashMap<String, bool> = Default::default();
        for source in turns.iter_mut().flat_map(|turn| turn.sources.iter_mut()) {
            let allowed = match readable.get(&source.document_id) {
                Some(allowed) => *allowed,
                None => {
                    let allowed = self
                        .store
                        .get_document(&DocumentId(source.document_id.clone()))?
                        .filter(|record| record.state == DocumentState::Ready)
                        .is_some_and(|record| self.may(caller, Action::Read, &record));
                    readable.insert(source.document_id.clone(), allowed);
                    allowed
                }
            };
            if !allowed {
                source.title = WITHHELD_TITLE.to_string();
                source.text = String::new();
            }
        }
        Ok(())
    }

    /// The caller's conversations, most recent first.
    pub fn list_conversations(&self, caller: &Caller) -> ServiceResult<Vec<ConversationSummary>> {
        let event = self.audit_event(caller, "conversation.list");
        let owner = caller.principal.name.clone();
        let result = self.conversations.with(self.store.data_dir(), |db| {
            let mut statement = db.prepare(
                "SELECT c.id, c.title, c.owner, c.collections, c.created_at, c.updated_at, \
                 (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) \
                 FROM conversations c WHERE c.owner = ?1 ORDER BY c.updated_at DESC",
            )?;
            let rows = statement.query_map(params![owner], |row| {
                let base = read_row(row)?;
                let turns: i64 = row.get(6)?;
                Ok(ConversationSummary {
                    id: base.id,
                    title: base.title,
                    collections: base.collections,
                    created_at: base.created_at,
                    updated_at: base.updated_at,
                    turns: usize::try_from(turns).unwrap_or_default(),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        });
        self.audited(event, result)
    }

    /// Starts a conversation over some collections (names checked, not yet authorized: each
    /// question is, when it is asked).
    pub fn create_conversation(
        &self,
        caller: &Caller,
        request: &NewConversation,
    ) -> ServiceResult<ConversationView> {
        let event = self.audit_event(caller, "conversation.create");
        let result = self.create_conversation_unaudited(caller, request);
        let event = match &result {
            Ok(view) => event.resource(view.id.clone()),
            Err(_) => event,
        };
        self.audited(event, result)
    }

    fn create_conversation_unaudited(
        &self,
        caller: &Caller,
        request: &NewConversation,
    ) -> ServiceResult<ConversationView> {
        let mut collections = Vec::new();
        for name in &request.collections {
            let name = CollectionName::parse(name)?;
            collections.push(name.as_str().to_string());
        }
        collections.sort();
        collections.dedup();
        let title = match request.title.as_deref().map(str::trim) {
            Some(title) if title.chars().count() > 200 => {
                return Err(ServiceError::BadRequest(
                    "a conversation's title is at most 200 characters".into(),
                ))
            }
            Some(title) if !title.is_empty() => title.to_string(),
            _ => "New conversation".to_string(),
        };
        let id = new_id()?;
        let created = now();
        let owner = caller.principal.name.clone();
        let stored_collections = serde_json::to_string(&collections)
            .map_err(|err| ServiceError::Internal(err.to_string()))?;
        let count = self.conversations.with(self.store.data_dir(), |db| {
            let count: i64 = db.query_row(
                "SELECT COUNT(*) FROM conversations WHERE owner = ?1",
                params![owner],
                |row| row.get(0),
            )?;
            if usize::try_from(count).unwrap_or(usize::MAX) < MAX_CONVERSATIONS_PER_USER {
                db.execute(
                    "INSERT INTO conversations (id, owner, title, collections, created_at, \
                     updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![id, owner, title, stored_collections, created],
                )?;
            }
            Ok(count)
        })?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_CONVERSATIONS_PER_USER {
            return Err(ServiceError::Conflict(format!(
                "you keep {MAX_CONVERSATIONS_PER_USER} conversations, the most there may be: \
                 delete old ones to start another"
            )));
        }
        Ok(ConversationView {
            id,
            title,
            collections,
            created_at: created.clone(),
            updated_at: created,
            turns: Vec::new(),
        })
    }

    /// One of the caller's conversations with every turn (sources the caller may no longer
    /// read are withheld).
    pub fn get_conversation(&self, caller: &Caller, id: &str) -> ServiceResult<ConversationView> {
        let event = self
            .audit_event(caller, "conversation.read")
            .resource(id.to_string());
        let result = self.conversation_view(caller, id);
        self.audited(event, result)
    }

    pub(crate) fn conversation_view(
        &self,
        caller: &Caller,
        id: &str,
    ) -> ServiceResult<ConversationView> {
        let row = self.conversation_row(caller, id)?;
        let mut turns = self.stored_turns(&row.id)?;
        self.withhold_unreadable(caller, &mut turns)?;
        Ok(ConversationView {
            id: row.id,
            title: row.title,
            collections: row.collections,
            created_at: row.created_at,
            updated_at: row.updated_at,
            turns,
        })
    }

    /// Deletes one of the caller's conversations and its turns (overwritten on disk:
    /// `secure_delete`).
    pub fn delete_conversation(&self, caller: &Caller, id: &str) -> ServiceResult<()> {
        let event = self
            .audit_event(caller, "conversation.delete")
            .resource(id.to_string());
        let owner = caller.principal.name.clone();
        let target = id.to_string();
        let result = self
            .conversations
            .with(self.store.data_dir(), |db| {
                db.execute(
                    "DELETE FROM conversations WHERE id = ?1 AND owner = ?2",
                    params![target, owner],
                )
            })
            .and_then(|deleted| {
                if deleted == 0 {
                    Err(ServiceError::NotFound)
                } else {
                    Ok(())
                }
            });
        self.audited(event, result)
    }

    /// Asks the next question of a conversation: an ordinary `ask` over the conversation's
    /// collections with its earlier turns, streamed to `emit`. The turn is stored before the
    /// final `Answer` event is passed on (an answer the user saw is one they can find again).
    pub fn ask_in_conversation(
        &self,
        caller: &Caller,
        id: &str,
        request: &ConversationAsk,
        cancel: &CancelFlag,
        emit: &mut dyn FnMut(AskEvent),
    ) -> ServiceResult<()> {
        let question = checked_text(&request.question, "question")?.to_string();
        let row = self.conversation_row(caller, id)?;
        let turns = self.stored_turns(&row.id)?;
        if turns.len() >= MAX_TURNS {
            return Err(ServiceError::Conflict(format!(
                "this conversation has {MAX_TURNS} questions, the most one may hold: start a new \
                 one"
            )));
        }
        let ask = AskRequest {
            question: question.clone(),
            document_id: None,
            mode: request.mode,
            max_tokens: request.max_tokens,
            collections: (!row.collections.is_empty()).then(|| row.collections.clone()),
            history: turns
                .iter()
                .map(|turn| HistoryTurn {
                    question: turn.question.clone(),
                    answer: turn.answer.text.clone(),
                })
                .collect(),
            ..Default::default()
        };
        let asked_at = now();
        let mut sources: Vec<SourceView> = Vec::new();
        let mut answer: Option<AnswerView> = None;
        self.ask_cancellable(caller, &ask, cancel, &mut |event| match event {
            AskEvent::Answer(view) => answer = Some(*view),
            AskEvent::Sources(given) => {
                sources = given.clone();
                emit(AskEvent::Sources(given));
            }
            other => emit(other),
        })?;
        let answer =
            answer.ok_or_else(|| ServiceError::Internal("ask ended without an answer".into()))?;
        let turn = TurnView {
            question,
            asked_at,
            sources,
            answer: answer.clone(),
        };
        let event = self
            .audit_event(caller, "conversation.turn")
            .resource(row.id.clone())
            .detail("turn", (turns.len() + 1).to_string());
        let stored = self.store_turn(&row, turns.len(), &turn);
        self.audited(event, stored)?;
        emit(AskEvent::Answer(Box::new(answer)));
        Ok(())
    }

    fn store_turn(&self, row: &Row, ordinal: usize, turn: &TurnView) -> ServiceResult<()> {
        let body =
            serde_json::to_string(turn).map_err(|err| ServiceError::Internal(err.to_string()))?;
        let title = if ordinal == 0 && row.title == "New conversation" {
            short_title(&turn.question)
        } else {
            row.title.clone()
        };
        let id = row.id.clone();
        let updated = now();
        let ordinal = i64::try_from(ordinal).unwrap_or(i64::MAX);
        self.conversations.with(self.store.data_dir(), |db| {
            let transaction = db.transaction()?;
            transaction.execute(
                "INSERT INTO turns (conversation_id, ordinal, body) VALUES (?1, ?2, ?3)",
                params![id, ordinal, body],
            )?;
            transaction.execute(
                "UPDATE conversations SET title = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, title, updated],
            )?;
            transaction.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names_are_plain() {
        assert_eq!(
            export_file_name("Who are the parties? (§ 2)", "pdf"),
            "Who-are-the-parties-2.pdf"
        );
        assert_eq!(export_file_name("«»", "docx"), "conversation.docx");
    }

    #[test]
    fn titles_come_from_the_first_question() {
        assert_eq!(short_title("  What is\nthe term? "), "What is the term?");
        let long = "word ".repeat(40);
        let title = short_title(&long);
        assert!(title.ends_with('…'));
        assert_eq!(title.chars().count(), 81);
    }
}
