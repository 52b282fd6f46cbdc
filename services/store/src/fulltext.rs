//! The Tantivy full-text index over chunks (BM25).
//!
//! One Tantivy document per chunk. Schema (an index with another schema, such as one written
//! before `scope` existed, is rebuilt from the catalog by [`rebuild_from_catalog`] when the store
//! opens; `open` itself refuses it):
//!
//! | field         | options            | why                                              |
//! |---------------|--------------------|--------------------------------------------------|
//! | `chunk_id`    | STRING \| STORED   | returned with hits                               |
//! | `document_id` | STRING \| STORED   | deletions by term                                |
//! | `collection`  | STRING \| STORED   | the collection filter (a term-set clause)        |
//! | `scope`       | STRING \| STORED   | the scope filter ([`crate::scope_key`]); stored  |
//! |               |                    | so that `check_consistency` can compare it       |
//! | `page`        | u64 STORED         | returned with hits                               |
//! | `ordinal`     | u64 STORED         | returned with hits                               |
//! | `title`       | TEXT (`en`)        | the document's title, repeated on every chunk    |
//! | `text`        | TEXT (`en`) STORED | the chunk's text                                 |
//!
//! Analyzer `en`: simple tokenizer, drop tokens over 40 bytes, lowercase, ASCII folding,
//! English stop words, English (Porter) stemmer.
//!
//! The title is not stored, so the index cannot be rebuilt from itself; the catalog holds
//! everything a chunk document needs (title, collection, labels, chunk text), and is the
//! source of truth anyway. A rebuild writes a complete new index next to the old one
//! (`fulltext.rebuild/`) and swaps the directories by two renames (`fulltext` →
//! `fulltext.old`, `fulltext.rebuild` → `fulltext`); [`finish_interrupted_rebuild`] completes
//! or discards a swap a crash interrupted, so the store always opens one whole index.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::error::LockError;
use tantivy::directory::{Directory, MmapDirectory, INDEX_WRITER_LOCK};
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

use crate::catalog::{Catalog, IndexedChunk};
use crate::error::{Error, Result};
use crate::scope::scope_key;
use crate::types::{ChunkId, DocumentId, IndexFilter, NewChunk, NewDocument, StoredChunk};

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
    scope: Field,
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
            scope: builder.add_text_field("scope", STRING | STORED),
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
            let scope = scope_key(&document.collection, &document.labels);
            for chunk in chunks {
                self.add_chunk(
                    writer,
                    ChunkDocument {
                        chunk_id: chunk.chunk_id.as_str(),
                        document_id: document.id.as_str(),
                        collection: &document.collection,
                        scope: &scope,
                        page: chunk.page,
                        ordinal: chunk.ordinal,
                        title: &document.title,
                        text: &chunk.text,
                    },
                )?;
            }
        }
        Ok(())
    }

    fn add_chunk(&self, writer: &IndexWriter, chunk: ChunkDocument<'_>) -> Result<()> {
        let mut tantivy_document = TantivyDocument::default();
        tantivy_document.add_text(self.fields.chunk_id, chunk.chunk_id);
        tantivy_document.add_text(self.fields.document_id, chunk.document_id);
        tantivy_document.add_text(self.fields.collection, chunk.collection);
        tantivy_document.add_text(self.fields.scope, chunk.scope);
        tantivy_document.add_u64(self.fields.page, u64::from(chunk.page));
        tantivy_document.add_u64(self.fields.ordinal, u64::from(chunk.ordinal));
        tantivy_document.add_text(self.fields.title, chunk.title);
        tantivy_document.add_text(self.fields.text, chunk.text);
        writer
            .add_document(tantivy_document)
            .map_err(self.tantivy_error("add document"))?;
        Ok(())
    }

    /// Drops the writer (releasing its lock) after waiting for its background merges.
    fn close_writer(&self) -> Result<()> {
        let writer = self
            .writer
            .lock()
            .map_err(|_| Error::Poisoned {
                name: "fulltext writer",
            })?
            .take();
        if let Some(writer) = writer {
            writer
                .wait_merging_threads()
                .map_err(self.tantivy_error("wait for merges"))?;
        }
        Ok(())
    }

    /// Adds every ready chunk of the catalog (to an empty index) and commits.
    fn fill_from_catalog(&self, catalog: &Catalog) -> Result<usize> {
        self.with_writer(|writer| {
            let mut added = 0;
            catalog.for_each_ready_chunk(|chunk: IndexedChunk| {
                added += 1;
                self.add_chunk(
                    writer,
                    ChunkDocument {
                        chunk_id: &chunk.chunk_id,
                        document_id: &chunk.document_id,
                        collection: &chunk.collection,
                        scope: &chunk.scope,
                        page: chunk.page,
                        ordinal: chunk.ordinal,
                        title: &chunk.title,
                        text: &chunk.text,
                    },
                )
            })?;
            writer.commit().map_err(self.tantivy_error("commit"))?;
            Ok(added)
        })
    }

    /// Deletes every chunk of the given documents, commits and reloads the reader.
    pub(crate) fn delete_and_commit(&self, delete_ids: &[DocumentId]) -> Result<u64> {
        self.replace_and_commit(delete_ids, &[])
    }

    /// Returns the top `limit` chunks for a user query, restricted to the filter's collections,
    /// scopes and documents (term-set clauses inside the query). Never fails on query syntax: operators
    /// it cannot parse are dropped.
    pub(crate) fn search(
        &self,
        query: &str,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<FulltextHit>> {
        let query = neutralize_query_syntax(&quote_identifiers(query));
        if query.trim().is_empty() || limit == 0 || filter.matches_nothing() {
            return Ok(Vec::new());
        }
        // The lenient parser never fails; the errors it returns describe what it skipped.
        let (text_query, _skipped) = self.query_parser.parse_query_lenient(&query);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query)];
        for (field, values) in [
            (self.fields.collection, &filter.collections),
            (self.fields.scope, &filter.scopes),
            (self.fields.document_id, &filter.documents),
        ] {
            if let Some(values) = values {
                let terms = values
                    .iter()
                    .map(|value| Term::from_field_text(field, value));
                // Score 0 so the filter does not shift BM25 scores.
                let term_filter = ConstScoreQuery::new(Box::new(TermSetQuery::new(terms)), 0.0);
                clauses.push((Occur::Must, Box::new(term_filter)));
            }
        }
        let query: Box<dyn Query> = if clauses.len() == 1 {
            clauses.remove(0).1
        } else {
            Box::new(BooleanQuery::new(clauses))
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

    /// Returns (document id, chunk id, scope) of every chunk in the index (for consistency
    /// checks; reads every stored document).
    pub(crate) fn chunk_keys(&self) -> Result<Vec<(String, String, String)>> {
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
            let scope = stored
                .get_first(self.fields.scope)
                .and_then(|value| value.as_str().map(str::to_string))
                .ok_or_else(|| self.corrupt("stored chunk lacks scope".into()))?;
            keys.push((chunk.document_id.0, chunk.chunk_id.0, scope));
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

/// The fields of one chunk document.
struct ChunkDocument<'a> {
    chunk_id: &'a str,
    document_id: &'a str,
    collection: &'a str,
    scope: &'a str,
    page: u32,
    ordinal: u32,
    title: &'a str,
    text: &'a str,
}

/// `fulltext.<suffix>` next to the index directory `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Flushes a directory's entries (renames, removals) to disk.
fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error(path))
}

/// Completes or discards a rebuild that a crash interrupted; call before opening `path`.
///
/// The rebuild's steps are: build `.rebuild` completely, rename the index to `.old`, rename
/// `.rebuild` to the index, remove `.old`. So: no index but `.rebuild` and `.old` means the
/// build finished and only the second rename is missing; an index and a `.rebuild` means the
/// build did not finish (discard it); an index and an `.old` means only the cleanup is left.
pub(crate) fn finish_interrupted_rebuild(path: &Path) -> Result<()> {
    let rebuilt = sibling(path, "rebuild");
    let old = sibling(path, "old");
    let parent = path.parent().unwrap_or(Path::new("."));
    if !path.exists() {
        let replacement = if rebuilt.exists() && old.exists() {
            Some(&rebuilt)
        } else if old.exists() {
            // Cannot happen by our steps; put the old index back, it gets rebuilt again.
            Some(&old)
        } else {
            None
        };
        if let Some(replacement) = replacement {
            fs_err::rename(replacement, path).map_err(io_error(path))?;
            sync_dir(parent)?;
            tracing::warn!(path = %path.display(), "finished a full-text rebuild a crash interrupted");
        }
    }
    for leftover in [rebuilt, old] {
        if leftover.exists() {
            fs_err::remove_dir_all(&leftover).map_err(io_error(&leftover))?;
        }
    }
    Ok(())
}

/// True if `path` holds an index whose schema is not the current one (e.g. from before
/// `scope` existed), which only [`rebuild_from_catalog`] can fix.
pub(crate) fn needs_rebuild(path: &Path) -> Result<bool> {
    let directory = MmapDirectory::open(path).map_err(|source| Error::Fulltext {
        path: path.to_path_buf(),
        operation: "open directory",
        source: std::io::Error::other(source).into(),
    })?;
    let exists = Index::exists(&directory).map_err(|source| Error::Fulltext {
        path: path.to_path_buf(),
        operation: "look for an index",
        source: source.into(),
    })?;
    if !exists {
        return Ok(false);
    }
    let index = Index::open(directory).map_err(|source| Error::Fulltext {
        path: path.to_path_buf(),
        operation: "open index",
        source,
    })?;
    Ok(index.schema() != ChunkFields::build_schema().0)
}

/// Replaces the index at `path` by one built from the catalog's ready chunks, with the
/// current schema, crash-safely (see the module documentation). Holds the old index's writer
/// lock throughout, so a process still writing to it makes this fail with
/// [`Error::FulltextLocked`] instead of losing its writes. Returns the number of chunks.
pub(crate) fn rebuild_from_catalog(path: &Path, catalog: &Catalog) -> Result<usize> {
    let old_directory = MmapDirectory::open(path).map_err(|source| Error::Fulltext {
        path: path.to_path_buf(),
        operation: "open directory",
        source: std::io::Error::other(source).into(),
    })?;
    let old_lock = old_directory
        .acquire_lock(&INDEX_WRITER_LOCK)
        .map_err(|error| match error {
            LockError::LockBusy => Error::FulltextLocked {
                path: path.to_path_buf(),
            },
            LockError::IoError(source) => Error::DataDir {
                path: path.to_path_buf(),
                source: std::io::Error::other(source.to_string()),
            },
        })?;
    let rebuilt = sibling(path, "rebuild");
    if rebuilt.exists() {
        fs_err::remove_dir_all(&rebuilt).map_err(io_error(&rebuilt))?;
    }
    crate::store::create_private_dir(&rebuilt).map_err(io_error(&rebuilt))?;
    let num_chunks = {
        let index = FulltextIndex::open(&rebuilt)?;
        let num_chunks = index.fill_from_catalog(catalog)?;
        // No merge may still write into the directory once it is swapped in.
        index.close_writer()?;
        num_chunks
    };
    crate::store::crash_point("rebuild:after-build");
    let old = sibling(path, "old");
    let parent = path.parent().unwrap_or(Path::new("."));
    fs_err::rename(path, &old).map_err(io_error(path))?;
    crate::store::crash_point("rebuild:after-first-rename");
    fs_err::rename(&rebuilt, path).map_err(io_error(path))?;
    sync_dir(parent)?;
    drop(old_lock);
    drop(old_directory);
    fs_err::remove_dir_all(&old).map_err(io_error(&old))?;
    tracing::info!(path = %path.display(), num_chunks,
        "full-text index rebuilt from the catalog with the current schema");
    Ok(num_chunks)
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

/// Quotes identifiers such as docket numbers (`1:23-cv-00123`), MRNs (`MRN-00012345`),
/// clause numbers (`12.4(b)`) or file numbers (`A/2019/77`): words that hold a digit and a
/// separator between letters or digits. The analyzer splits them into parts (`1`, `23`, `cv`,
/// `00123`), and a query of loose parts matches every chunk that has a `23` somewhere; as a
/// phrase, only the chunks holding the whole identifier in order match. A query that already
/// has quotes is the user's own phrasing and is left alone.
fn quote_identifiers(query: &str) -> String {
    if query.contains('"') {
        return query.to_string();
    }
    let mut words = Vec::new();
    for word in query.split_whitespace() {
        let core = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '(' && c != ')');
        if is_identifier(core) {
            words.push(format!("\"{core}\""));
        } else {
            words.push(word.to_string());
        }
    }
    words.join(" ")
}

/// What joins an identifier's parts: `1:23-cv-00123`, `A/2019/77`, `12.4(b)`, `MRN_77`.
const IDENTIFIER_SEPARATORS: [char; 7] = ['-', ':', '/', '.', '_', '(', ')'];

/// A digit and at least two alphanumeric runs joined by [`IDENTIFIER_SEPARATORS`].
fn is_identifier(word: &str) -> bool {
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let runs = word
        .split(IDENTIFIER_SEPARATORS)
        .filter(|run| !run.is_empty())
        .count();
    has_digit
        && runs >= 2
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || IDENTIFIER_SEPARATORS.contains(&c))
}

#[cfg(test)]
mod tests {
    use tantivy::tokenizer::TokenStream;

    use super::*;

    #[test]
    fn identifiers_become_phrases() {
        assert_eq!(
            quote_identifiers("docket 1:23-cv-00123, please"),
            "docket \"1:23-cv-00123\" please"
        );
        assert_eq!(quote_identifiers("MRN-00012345"), "\"MRN-00012345\"");
        assert_eq!(quote_identifiers("clause 12.4(b)?"), "clause \"12.4(b)\"");
        // Plain words, plain numbers and the user's own quotes are left as they are.
        assert_eq!(quote_identifiers("term of 2019"), "term of 2019");
        assert_eq!(quote_identifiers("co-op rules"), "co-op rules");
        assert_eq!(quote_identifiers("\"a b\" 1-2"), "\"a b\" 1-2");
    }

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
