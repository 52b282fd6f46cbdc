//! The Tantivy full-text index over chunks (BM25).
//!
//! One Tantivy document per chunk. Schema (changing it needs a re-index; `open` refuses an
//! index with another schema):
//!
//! | field         | options            | why                                              |
//! |---------------|--------------------|--------------------------------------------------|
//! | `chunk_id`    | STRING \| STORED   | returned with hits                               |
//! | `document_id` | STRING \| STORED   | deletions by term                                |
//! | `collection`  | STRING \| STORED   | the collection filter (a term-set clause)        |
//! | `page`        | u64 STORED         | returned with hits                               |
//! | `ordinal`     | u64 STORED         | returned with hits                               |
//! | `title`       | TEXT (`en`)        | the document's title, repeated on every chunk    |
//! | `text`        | TEXT (`en`) STORED | the chunk's text                                 |
//!
//! Analyzer `en`: simple tokenizer, drop tokens over 40 bytes, lowercase, ASCII folding,
//! English stop words, English (Porter) stemmer.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};
use tantivy::{
    Index, IndexBuilder, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError,
    Term,
};

use crate::error::{Error, Result};
use crate::types::{ChunkId, DocumentId, NewChunk, NewDocument, StoredChunk};

/// Name under which the English analyzer is registered.
const ENGLISH_ANALYZER: &str = "en";
/// Tokens longer than this many bytes are dropped (base64 blobs, URLs glued together).
const MAX_TOKEN_BYTES: usize = 40;
/// Memory budget of the index writer, shared by its threads.
const WRITER_HEAP_BYTES: usize = 50_000_000;
/// Weight of title matches relative to text matches; 1.0 until retrieval evaluation says
/// otherwise.
const TITLE_BOOST: f32 = 1.0;

/// Fields of the chunk index.
#[derive(Debug, Clone, Copy)]
struct ChunkFields {
    chunk_id: Field,
    document_id: Field,
    collection: Field,
    page: Field,
    ordinal: Field,
    title: Field,
    text: Field,
}

impl ChunkFields {
    fn build_schema() -> (Schema, ChunkFields) {
        let mut builder = Schema::builder();
        let english_indexing = TextFieldIndexing::default()
            .set_tokenizer(ENGLISH_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let english_text = TextOptions::default().set_indexing_options(english_indexing);
        let fields = ChunkFields {
            chunk_id: builder.add_text_field("chunk_id", STRING | STORED),
            document_id: builder.add_text_field("document_id", STRING | STORED),
            collection: builder.add_text_field("collection", STRING | STORED),
            page: builder.add_u64_field("page", STORED),
            ordinal: builder.add_u64_field("ordinal", STORED),
            title: builder.add_text_field("title", english_text.clone()),
            text: builder.add_text_field("text", english_text.set_stored()),
        };
        (builder.build(), fields)
    }
}

/// A chunk found by BM25, before the catalog adds its document's title and state.
#[derive(Debug, Clone)]
pub(crate) struct FulltextHit {
    pub(crate) chunk: StoredChunk,
    pub(crate) score: f32,
}

/// The Tantivy index with its single writer and a manually reloaded reader.
pub(crate) struct FulltextIndex {
    path: PathBuf,
    index: Index,
    fields: ChunkFields,
    /// Created on the first write, so that searches (`vellum search` while another process
    /// ingests) never take Tantivy's single-writer lock.
    writer: Mutex<Option<IndexWriter>>,
    reader: IndexReader,
    query_parser: QueryParser,
}

impl FulltextIndex {
    /// Opens or creates the index in `path` (which must exist); the writer lock is taken on
    /// the first write.
    pub(crate) fn open(path: &Path) -> Result<FulltextIndex> {
        let tantivy_error = |operation: &'static str| {
            move |source| Error::Fulltext {
                path: path.to_path_buf(),
                operation,
                source,
            }
        };
        let (schema, fields) = ChunkFields::build_schema();
        let directory = MmapDirectory::open(path).map_err(|source| Error::Fulltext {
            path: path.to_path_buf(),
            operation: "open directory",
            source: std::io::Error::other(source).into(),
        })?;
        let index = IndexBuilder::new()
            .schema(schema)
            .open_or_create(directory)
            .map_err(tantivy_error("open index"))?;
        index
            .tokenizers()
            .register(ENGLISH_ANALYZER, english_analyzer(path)?);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_error("open reader"))?;
        let mut query_parser = QueryParser::for_index(&index, vec![fields.text, fields.title]);
        query_parser.set_field_boost(fields.title, TITLE_BOOST);
        // OR semantics (the parser's default): BM25 ranks partial matches, which matters for
        // natural-language questions where most words are absent from the best chunk.
        Ok(FulltextIndex {
            path: path.to_path_buf(),
            index,
            fields,
            writer: Mutex::new(None),
            reader,
            query_parser,
        })
    }

    fn tantivy_error(&self, operation: &'static str) -> impl FnOnce(TantivyError) -> Error + '_ {
        move |source| Error::Fulltext {
            path: self.path.clone(),
            operation,
            source,
        }
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Option<IndexWriter>>> {
        let mut guard = self.writer.lock().map_err(|_| Error::Poisoned {
            name: "fulltext writer",
        })?;
        if guard.is_none() {
            let writer = self
                .index
                .writer(WRITER_HEAP_BYTES)
                .map_err(|source| match source {
                    TantivyError::LockFailure(..) => Error::FulltextLocked {
                        path: self.path.clone(),
                    },
                    source => Error::Fulltext {
                        path: self.path.clone(),
                        operation: "create writer",
                        source,
                    },
                })?;
            // A process killed inside a commit can leave files the last good meta.json does not
            // name (e.g. `<segment>.<opstamp>.del`); the next commit may want the same name and
            // would fail with FileAlreadyExists. Tantivy registers each file as managed before
            // writing it, so collecting garbage now removes exactly those leftovers.
            writer
                .garbage_collect_files()
                .wait()
                .map_err(self.tantivy_error("remove files left by an interrupted commit"))?;
            *guard = Some(writer);
        }
        Ok(guard)
    }

    /// Runs `work` with the writer, creating it first if needed.
    fn with_writer<R>(&self, work: impl FnOnce(&mut IndexWriter) -> Result<R>) -> Result<R> {
        let mut guard = self.lock_writer()?;
        match guard.as_mut() {
            Some(writer) => work(writer),
            None => Err(Error::Poisoned {
                name: "fulltext writer",
            }),
        }
    }

    /// Deletes every chunk of `delete_ids`, adds the chunks of `documents`, commits and reloads
    /// the reader. Deletions are queued first, so a document both deleted and added (a stale
    /// version being rewritten) ends up present once. On failure the uncommitted operations are
    /// rolled back.
    pub(crate) fn replace_and_commit(
        &self,
        delete_ids: &[DocumentId],
        documents: &[(NewDocument, Vec<NewChunk>)],
    ) -> Result<u64> {
        let committed = self.with_writer(|writer| {
            let staged = self.stage(writer, delete_ids, documents);
            match staged.and_then(|()| writer.commit().map_err(self.tantivy_error("commit"))) {
                Ok(opstamp) => Ok(opstamp),
                Err(error) => {
                    if let Err(rollback_error) = writer.rollback() {
                        tracing::warn!(path = %self.path.display(), error = %rollback_error,
                            "full-text rollback after a failed commit also failed");
                    }
                    Err(error)
                }
            }
        })?;
        self.reader
            .reload()
            .map_err(self.tantivy_error("reload reader"))?;
        Ok(committed)
    }

    fn stage(
        &self,
        writer: &IndexWriter,
        delete_ids: &[DocumentId],
        documents: &[(NewDocument, Vec<NewChunk>)],
    ) -> Result<()> {
        for id in delete_ids {
            writer.delete_term(Term::from_field_text(self.fields.document_id, id.as_str()));
        }
        for (document, chunks) in documents {
            for chunk in chunks {
                let mut tantivy_document = TantivyDocument::default();
                tantivy_document.add_text(self.fields.chunk_id, chunk.chunk_id.as_str());
                tantivy_document.add_text(self.fields.document_id, document.id.as_str());
                tantivy_document.add_text(self.fields.collection, &document.collection);
                tantivy_document.add_u64(self.fields.page, u64::from(chunk.page));
                tantivy_document.add_u64(self.fields.ordinal, u64::from(chunk.ordinal));
                tantivy_document.add_text(self.fields.title, &document.title);
                tantivy_document.add_text(self.fields.text, &chunk.text);
                writer
                    .add_document(tantivy_document)
                    .map_err(self.tantivy_error("add document"))?;
            }
        }
        Ok(())
    }

    /// Deletes every chunk of the given documents, commits and reloads the reader.
    pub(crate) fn delete_and_commit(&self, delete_ids: &[DocumentId]) -> Result<u64> {
        self.replace_and_commit(delete_ids, &[])
    }

    /// Returns the top `limit` chunks for a user query, restricted to `collections` when given.
    /// Never fails on query syntax: operators it cannot parse are dropped.
    pub(crate) fn search(
        &self,
        query: &str,
        collections: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<FulltextHit>> {
        let query = neutralize_query_syntax(query);
        if query.trim().is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        if collections.is_some_and(|names| names.is_empty()) {
            return Ok(Vec::new());
        }
        // The lenient parser never fails; the errors it returns describe what it skipped.
        let (text_query, _skipped) = self.query_parser.parse_query_lenient(&query);
        let query: Box<dyn Query> = match collections {
            None => text_query,
            Some(names) => {
                let terms = names
                    .iter()
                    .map(|name| Term::from_field_text(self.fields.collection, name));
                // Score 0 so the filter does not shift BM25 scores.
                let collection_filter =
                    ConstScoreQuery::new(Box::new(TermSetQuery::new(terms)), 0.0);
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, text_query),
                    (Occur::Must, Box::new(collection_filter)),
                ]))
            }
        };
        let searcher = self.reader.searcher();
        let top_docs = searcher
            .search(&query, &TopDocs::with_limit(limit).order_by_score())
            .map_err(self.tantivy_error("search"))?;
        let mut hits = Vec::with_capacity(top_docs.len());
        for (score, address) in top_docs {
            let stored: TantivyDocument = searcher
                .doc(address)
                .map_err(self.tantivy_error("read stored chunk"))?;
            hits.push(FulltextHit {
                chunk: self.stored_chunk(&stored)?,
                score,
            });
        }
        Ok(hits)
    }

    fn stored_chunk(&self, stored: &TantivyDocument) -> Result<StoredChunk> {
        let text_field = |field: Field, name: &str| -> Result<String> {
            stored
                .get_first(field)
                .and_then(|value| value.as_str().map(str::to_string))
                .ok_or_else(|| self.corrupt(format!("stored chunk lacks {name}")))
        };
        let number_field = |field: Field, name: &str| -> Result<u32> {
            stored
                .get_first(field)
                .and_then(|value| value.as_u64())
                .and_then(|value| u32::try_from(value).ok())
                .ok_or_else(|| self.corrupt(format!("stored chunk lacks a valid {name}")))
        };
        Ok(StoredChunk {
            chunk_id: ChunkId(text_field(self.fields.chunk_id, "chunk_id")?),
            document_id: DocumentId(text_field(self.fields.document_id, "document_id")?),
            collection: text_field(self.fields.collection, "collection")?,
            ordinal: number_field(self.fields.ordinal, "ordinal")?,
            page: number_field(self.fields.page, "page")?,
            text: text_field(self.fields.text, "text")?,
        })
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Fulltext {
            path: self.path.clone(),
            operation: "read stored chunk",
            source: TantivyError::InternalError(detail),
        }
    }

    /// Returns (document id, chunk id) of every chunk in the index (for consistency checks;
    /// reads every stored document).
    pub(crate) fn chunk_keys(&self) -> Result<Vec<(String, String)>> {
        let searcher = self.reader.searcher();
        let addresses = searcher
            .search(&AllQuery, &DocSetCollector)
            .map_err(self.tantivy_error("list chunks"))?;
        let mut keys = Vec::with_capacity(addresses.len());
        for address in addresses {
            let stored: TantivyDocument = searcher
                .doc(address)
                .map_err(self.tantivy_error("read stored chunk"))?;
            let chunk = self.stored_chunk(&stored)?;
            keys.push((chunk.document_id.0, chunk.chunk_id.0));
        }
        Ok(keys)
    }

    /// Returns the opstamp of the last commit.
    pub(crate) fn commit_opstamp(&self) -> Result<u64> {
        let metas = self
            .index
            .load_metas()
            .map_err(self.tantivy_error("read index metadata"))?;
        Ok(metas.opstamp)
    }

    /// Merges all segments into one and removes files no longer used.
    pub(crate) fn merge_segments(&self) -> Result<()> {
        self.with_writer(|writer| {
            let segment_ids = self
                .index
                .searchable_segment_ids()
                .map_err(self.tantivy_error("list segments"))?;
            if segment_ids.len() > 1 {
                // The merge policy may be merging some of these segments in the background
                // right now; tantivy then refuses or abandons our merge without harm to the
                // index, and the background merge does part of the job. Not worth failing
                // `optimize` for.
                if let Err(error) = writer.merge(&segment_ids).wait() {
                    tracing::warn!(path = %self.path.display(), %error,
                        num_segments = segment_ids.len(), "full-text segment merge skipped");
                }
            }
            writer
                .garbage_collect_files()
                .wait()
                .map_err(self.tantivy_error("collect garbage files"))?;
            Ok(())
        })?;
        self.reader
            .reload()
            .map_err(self.tantivy_error("reload reader"))
    }
}

/// Builds the `en` analyzer described in the module documentation.
fn english_analyzer(path: &Path) -> Result<TextAnalyzer> {
    let stop_words = StopWordFilter::new(Language::English).ok_or_else(|| Error::Fulltext {
        path: path.to_path_buf(),
        operation: "build analyzer",
        source: TantivyError::InternalError("tantivy has no English stop-word list".into()),
    })?;
    Ok(TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(stop_words)
        .filter(Stemmer::new(Language::English))
        .build())
}

/// Replaces query-syntax characters that only make sense to someone who knows our schema
/// (field prefixes `field:`, ranges, boosts, fuzziness, wildcards, escapes) with spaces, so
/// user text such as `ratio: 3:1` or `what is 5*3?` searches its words instead of naming
/// fields or matching everything. Quotes (phrases), `+`/`-` and parentheses are kept; the
/// lenient parser copes with unbalanced ones.
fn neutralize_query_syntax(query: &str) -> String {
    query
        .chars()
        .map(|character| match character {
            ':' | '*' | '^' | '~' | '\\' | '[' | ']' | '{' | '}' | '<' | '>' | '=' | '!' => ' ',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tantivy::tokenizer::TokenStream;

    use super::*;

    #[test]
    fn neutralize_keeps_words_and_phrases() {
        assert_eq!(neutralize_query_syntax("ratio: 3:1"), "ratio  3 1");
        assert_eq!(
            neutralize_query_syntax("\"gene expression\""),
            "\"gene expression\""
        );
        assert_eq!(
            neutralize_query_syntax("collection:other *"),
            "collection other  "
        );
    }

    #[test]
    fn english_analyzer_stems_folds_and_drops_stop_words() -> Result<()> {
        let mut analyzer = english_analyzer(Path::new("unused"))?;
        let mut stream = analyzer.token_stream("The Café's running quickly");
        let mut tokens = Vec::new();
        while let Some(token) = stream.next() {
            tokens.push(token.text.clone());
        }
        assert_eq!(tokens, vec!["cafe", "s", "run", "quick"]);
        Ok(())
    }
}
