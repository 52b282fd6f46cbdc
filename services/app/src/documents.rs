//! A document's contents for a reader: the original file (the web app renders PDFs itself, to
//! show a cited passage on its page) and the indexed chunks (for every other format). Both are
//! reads of the document, decided and recorded like `GET /v1/documents/{id}`.

use std::path::PathBuf;

use vellum_audit::{actions, ChunkRead};
use vellum_authz::Action;
use vellum_store::DocumentId;

use crate::service::{content_sha256, view, Caller, Service, ServiceError, ServiceResult};
use crate::types::{ChunkView, DocumentView};

/// The original file of a readable document.
#[derive(Debug)]
pub struct DocumentFile {
    pub document: DocumentView,
    /// Where the server keeps it (never sent to clients).
    pub path: PathBuf,
    /// Its media type, from the format the extractor recognized.
    pub content_type: &'static str,
}

/// The media type of a document format (the extractor's format names).
fn content_type(format: &str) -> &'static str {
    match format {
        "pdf" => "application/pdf",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "html" => "text/html; charset=utf-8",
        "email" | "eml" => "message/rfc822",
        "xml" | "ccda" => "application/xml",
        "text" | "txt" | "markdown" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl Service {
    /// The original file of document `id`, if the caller may read it (a missing and an
    /// unreadable document are both [`ServiceError::NotFound`]). Recorded as a read of the
    /// document with `part = file`.
    pub fn document_file(&self, caller: &Caller, id: &str) -> ServiceResult<DocumentFile> {
        let mut event = self
            .audit_event(caller, actions::DOCUMENT_READ)
            .detail("part", "file");
        let result = self.readable(caller, id, &mut event).and_then(|record| {
            let path = PathBuf::from(&record.source_path);
            if !path.is_file() {
                // Ingested from a folder whose file has since moved: the text is still
                // searchable, the original is not here to show.
                return Err(ServiceError::Unprocessable {
                    kind: "original_missing".into(),
                    reason: "the original file is no longer where it was ingested from; its \
                             indexed text is still available"
                        .into(),
                });
            }
            Ok(DocumentFile {
                content_type: content_type(&record.format),
                document: view(&record),
                path,
            })
        });
        self.audited(event, result)
    }

    /// The indexed chunks of document `id` in order, if the caller may read it. The record
    /// lists every chunk returned with the SHA-256 of its text, as a search's does.
    pub fn document_chunks(&self, caller: &Caller, id: &str) -> ServiceResult<Vec<ChunkView>> {
        let mut event = self
            .audit_event(caller, actions::DOCUMENT_READ)
            .detail("part", "chunks");
        let result = self.readable(caller, id, &mut event).and_then(|record| {
            let scope = self.read_scope(
                caller,
                Action::Read,
                Some(std::slice::from_ref(&record.collection)),
            )?;
            Ok(self
                .store
                .document_chunks(&scope, &DocumentId(id.to_string()))?)
        });
        if let Ok(chunks) = &result {
            event = event.reads(
                chunks
                    .iter()
                    .map(|chunk| ChunkRead {
                        chunk_id: chunk.chunk_id.0.clone(),
                        document_id: chunk.document_id.0.clone(),
                        sha256: content_sha256(&chunk.text),
                    })
                    .collect(),
            );
        }
        let result = result.map(|chunks| {
            chunks
                .into_iter()
                .map(|chunk| ChunkView {
                    chunk_id: chunk.chunk_id.0,
                    page: chunk.page,
                    ordinal: chunk.ordinal,
                    text: chunk.text,
                })
                .collect()
        });
        self.audited(event, result)
    }
}
