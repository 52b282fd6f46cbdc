//! The SQLite catalog: which documents exist, in which state, and their chunks' text.
//!
//! The catalog is the source of truth for "is this document searchable": Tantivy and
//! LanceDB hits are kept only when the catalog says the document is `ready`.
//!
//! Schema (`PRAGMA user_version = 3`; a newer version is refused, older ones are migrated in one
//! transaction at open: 1 → 2 adds the quarantine, 2 → 3 the labels):
//!
//! ```sql
//! settings    (key TEXT PRIMARY KEY, value TEXT NOT NULL)          -- embedding_model, embedding_dim
//! collections (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)
//! documents   (id TEXT PRIMARY KEY, collection TEXT NOT NULL REFERENCES collections(name),
//!              source_path TEXT NOT NULL, title TEXT NOT NULL, sha256 TEXT NOT NULL,
//!              format TEXT NOT NULL, num_pages INTEGER NOT NULL, num_chunks INTEGER NOT NULL,
//!              state TEXT NOT NULL CHECK (state IN ('pending','ready','deleting')),
//!              ingested_at TEXT NOT NULL,            -- RFC 3339 UTC
//!              metadata TEXT NOT NULL,               -- JSON object of strings
//!              labels TEXT NOT NULL DEFAULT '')      -- normalised labels joined by ','
//! INDEX        documents_by_source ON documents(collection, source_path)
//! INDEX        documents_ready_scope ON documents(collection, labels, state) WHERE state = 'ready'
//! UNIQUE INDEX documents_ready_source ON documents(collection, source_path) WHERE state = 'ready'
//! chunks      (document_id TEXT NOT NULL REFERENCES documents(id), chunk_id TEXT NOT NULL,
//!              ordinal INTEGER NOT NULL, page INTEGER NOT NULL, text TEXT NOT NULL,
//!              PRIMARY KEY (document_id, chunk_id))
//! INDEX        chunks_by_ordinal ON chunks(document_id, ordinal)
//! quarantine  (collection, source_path, sha256, kind, reason, quarantined_at)   -- version 2
//! ```
//!
//! `documents_ready_scope` makes [`Catalog::list_scopes`] (the server asks it on every search)
//! a covering-index scan whose rows arrive already grouped (`state` is in the index only so
//! that SQLite need not read the table): about 25 ms for 200,000 documents, measured. The 2 → 3 migration copies the labels
//! of a document's `labels` metadata entry into the column and records the setting
//! `scope_migration = pending`, which stays until the store has written every chunk's scope
//! into Tantivy and LanceDB (see `Store::open`).
//!
//! (collection, source_path) cannot be unique outright: while a new version is committed the
//! old one still exists (it stays `ready`, the new one is `pending`). Only one *ready* version
//! per source is allowed, which the partial unique index enforces; the switch from old to new
//! happens in one transaction (old → `deleting`, then new → `ready`).
//!
//! The chunk key is (document_id, chunk_id) rather than chunk_id alone so that two versions of
//! a document may reuse chunk ids (e.g. content-derived ones) while both exist.
//!
//! Connection settings: WAL journal, `synchronous = FULL` (a transaction that returned is on
//! disk, so a document reported `ready` survives a power cut; ingest commits a few
//! transactions per batch, so the fsyncs cost little), foreign keys on, a busy timeout for the
//! rare second process.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

mod quarantine;
mod schema;

use schema::create_owner_only;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};
use crate::scope::{decode_labels, encode_labels, scope_key};
use crate::types::{
    ChunkId, DocumentId, DocumentRecord, DocumentState, IndexFilter, NewChunk, NewDocument,
    ScopeCount, StoreOptions, StoredChunk,
};

const DOCUMENT_COLUMNS: &str = "id, collection, source_path, title, sha256, format, num_pages, \
     num_chunks, state, ingested_at, metadata, labels";

/// SQL for a document row's scope key (see `crate::scope`): collection, U+001F, labels.
const SCOPE_SQL: &str = "(collection || char(31) || labels)";

/// SQLite expression for "now" in RFC 3339 UTC, second precision.
const NOW_RFC3339: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

/// What search needs to know about a hit's document.
#[derive(Debug, Clone)]
pub(crate) struct HitDocument {
    pub(crate) state: DocumentState,
    pub(crate) title: String,
    pub(crate) source_path: String,
}

/// One chunk of a ready document with what the full-text index needs (for rebuilding it).
#[derive(Debug, Clone)]
pub(crate) struct IndexedChunk {
    pub(crate) document_id: String,
    pub(crate) collection: String,
    pub(crate) scope: String,
    pub(crate) title: String,
    pub(crate) chunk_id: String,
    pub(crate) ordinal: u32,
    pub(crate) page: u32,
    pub(crate) text: String,
}

/// A chunk key of the catalog for consistency checks.
#[derive(Debug, Clone)]
pub(crate) struct CatalogChunkKey {
    pub(crate) document_id: String,
    pub(crate) chunk_id: String,
    pub(crate) ready: bool,
    pub(crate) scope: String,
}

/// Counters for [`crate::StoreStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatalogCounts {
    pub(crate) num_documents: u64,
    pub(crate) num_chunks: u64,
}

/// The SQLite catalog behind a mutex (one connection; statements are short).
pub(crate) struct Catalog {
    path: PathBuf,
    connection: Mutex<Connection>,
    /// The embedder the store was created with: the embedder of every collection without its
    /// own `embedder` setting (all collections written before the setting existed).
    first_embedder: String,
}

impl Catalog {
    /// Opens or creates the catalog and checks it was built for the same embedding space.
    pub(crate) fn open(path: &Path, options: &StoreOptions) -> Result<Catalog> {
        create_owner_only(path).map_err(|source| Error::DataDir {
            path: path.to_path_buf(),
            source,
        })?;
        let connection = Connection::open(path).map_err(|source| Error::Catalog {
            path: path.to_path_buf(),
            operation: "open",
            source,
        })?;
        let mut catalog = Catalog {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
            first_embedder: String::new(),
        };
        catalog.configure_and_migrate()?;
        catalog.first_embedder = catalog.check_embedding_settings(options)?;
        Ok(catalog)
    }

    /// The embedder of collections that have no `embedder` setting of their own.
    pub(crate) fn first_embedder(&self) -> &str {
        &self.first_embedder
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.connection
            .lock()
            .map_err(|_| Error::Poisoned { name: "catalog" })
    }

    fn sql_error(&self, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |source| Error::Catalog {
            path: self.path.clone(),
            operation,
            source,
        }
    }

    /// Returns the document with this id, any state.
    pub(crate) fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRecord>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"
            ))
            .map_err(self.sql_error("prepare document lookup"))?;
        let raw = statement
            .query_row([id.as_str()], RawDocument::from_row)
            .optional()
            .map_err(self.sql_error("look up document"))?;
        raw.map(|raw| raw.into_record(&self.path)).transpose()
    }

    /// Returns the document stored for a source: the ready version if there is one, else the
    /// most recently written one.
    pub(crate) fn find_document(
        &self,
        collection: &str,
        source_path: &str,
    ) -> Result<Option<DocumentRecord>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents \
                 WHERE collection = ?1 AND source_path = ?2 \
                 ORDER BY state = 'ready' DESC, rowid DESC LIMIT 1"
            ))
            .map_err(self.sql_error("prepare source lookup"))?;
        let raw = statement
            .query_row([collection, source_path], RawDocument::from_row)
            .optional()
            .map_err(self.sql_error("look up source"))?;
        raw.map(|raw| raw.into_record(&self.path)).transpose()
    }

    /// Returns the ids of every version stored for a source, any state.
    pub(crate) fn ids_for_source(
        &self,
        collection: &str,
        source_path: &str,
    ) -> Result<Vec<DocumentId>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT id FROM documents WHERE collection = ?1 AND source_path = ?2")
            .map_err(self.sql_error("prepare source versions lookup"))?;
        let ids = statement
            .query_map([collection, source_path], |row| row.get(0).map(DocumentId))
            .map_err(self.sql_error("look up source versions"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read source versions"))?;
        Ok(ids)
    }

    /// In one transaction: removes the rows of `purge_ids` (stale versions being rewritten)
    /// and inserts every document as `pending` with its chunks.
    pub(crate) fn insert_pending(
        &self,
        documents: &[(NewDocument, Vec<NewChunk>)],
        purge_ids: &[DocumentId],
    ) -> Result<()> {
        let mut connection = self.lock()?;
        let transaction = connection
            .transaction()
            .map_err(self.sql_error("begin pending insert"))?;
        delete_rows_in(&transaction, purge_ids).map_err(self.sql_error("purge stale rows"))?;
        {
            let mut insert_collection = transaction
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO collections (name, created_at) VALUES (?1, {NOW_RFC3339})"
                ))
                .map_err(self.sql_error("prepare collection insert"))?;
            let mut insert_document = transaction
                .prepare_cached(&format!(
                    "INSERT INTO documents ({DOCUMENT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', {NOW_RFC3339}, ?9, ?10)"
                ))
                .map_err(self.sql_error("prepare document insert"))?;
            let mut insert_chunk = transaction
                .prepare_cached(
                    "INSERT INTO chunks (document_id, chunk_id, ordinal, page, text) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.sql_error("prepare chunk insert"))?;
            for (document, chunks) in documents {
                let metadata = serde_json::to_string(&document.metadata).map_err(|error| {
                    Error::InvalidDocument {
                        id: document.id.clone(),
                        detail: format!("metadata cannot be encoded as JSON: {error}"),
                    }
                })?;
                let num_chunks =
                    u32::try_from(chunks.len()).map_err(|_| Error::InvalidDocument {
                        id: document.id.clone(),
                        detail: format!("{} chunks is more than the catalog counts", chunks.len()),
                    })?;
                insert_collection
                    .execute([&document.collection])
                    .map_err(self.sql_error("insert collection"))?;
                insert_document
                    .execute(params![
                        document.id.as_str(),
                        document.collection,
                        document.source_path,
                        document.title,
                        document.sha256,
                        document.format,
                        document.num_pages,
                        num_chunks,
                        metadata,
                        encode_labels(&document.labels),
                    ])
                    .map_err(self.sql_error("insert document"))?;
                for chunk in chunks {
                    insert_chunk
                        .execute(params![
                            document.id.as_str(),
                            chunk.chunk_id.as_str(),
                            chunk.ordinal,
                            chunk.page,
                            chunk.text,
                        ])
                        .map_err(self.sql_error("insert chunk"))?;
                }
            }
        }
        transaction
            .commit()
            .map_err(self.sql_error("commit pending insert"))
    }

    /// In one transaction: marks `retired_ids` as `deleting`, then `published_ids` as `ready`,
    /// so that searches see either the old versions or the new ones, never both or neither.
    pub(crate) fn publish(
        &self,
        published_ids: &[DocumentId],
        retired_ids: &[DocumentId],
    ) -> Result<()> {
        let mut connection = self.lock()?;
        let transaction = connection
            .transaction()
            .map_err(self.sql_error("begin publish"))?;
        set_state_in(&transaction, retired_ids, DocumentState::Deleting)
            .map_err(self.sql_error("retire old versions"))?;
        set_state_in(&transaction, published_ids, DocumentState::Ready)
            .map_err(self.sql_error("publish new versions"))?;
        transaction
            .commit()
            .map_err(self.sql_error("commit publish"))
    }

    /// Sets the state of the given documents.
    pub(crate) fn set_state(&self, ids: &[DocumentId], state: DocumentState) -> Result<()> {
        let connection = self.lock()?;
        set_state_in(&connection, ids, state).map_err(self.sql_error("update state"))
    }

    /// Deletes the documents' rows and their chunks' rows, in one transaction.
    pub(crate) fn delete_rows(&self, ids: &[DocumentId]) -> Result<()> {
        let mut connection = self.lock()?;
        let transaction = connection
            .transaction()
            .map_err(self.sql_error("begin row deletion"))?;
        delete_rows_in(&transaction, ids).map_err(self.sql_error("delete rows"))?;
        transaction
            .commit()
            .map_err(self.sql_error("commit row deletion"))
    }

    /// Returns ready documents of the filter's collections and scopes, sorted by source path.
    pub(crate) fn list_ready_documents(&self, filter: &IndexFilter) -> Result<Vec<DocumentRecord>> {
        if filter.matches_nothing() {
            return Ok(Vec::new());
        }
        let connection = self.lock()?;
        let mut clauses = String::new();
        let mut values: Vec<&str> = Vec::new();
        if let Some(names) = &filter.collections {
            clauses.push_str(&format!(
                " AND collection IN ({})",
                placeholders(names.len())
            ));
            values.extend(names.iter().map(String::as_str));
        }
        if let Some(scopes) = &filter.scopes {
            clauses.push_str(&format!(
                " AND {SCOPE_SQL} IN ({})",
                placeholders(scopes.len())
            ));
            values.extend(scopes.iter().map(String::as_str));
        }
        if let Some(documents) = &filter.documents {
            clauses.push_str(&format!(" AND id IN ({})", placeholders(documents.len())));
            values.extend(documents.iter().map(String::as_str));
        }
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE state = 'ready'{clauses} \
             ORDER BY source_path, collection, id"
        );
        let mut statement = connection
            .prepare(&sql)
            .map_err(self.sql_error("prepare document listing"))?;
        let raws = statement
            .query_map(params_from_iter(values), RawDocument::from_row)
            .map_err(self.sql_error("list documents"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read document listing"))?;
        raws.into_iter()
            .map(|raw| raw.into_record(&self.path))
            .collect()
    }

    /// Returns every (collection, labels) scope with ready documents and their number, sorted
    /// by collection and labels: one grouped scan of the `documents_ready_scope` index.
    pub(crate) fn list_scopes(&self) -> Result<Vec<ScopeCount>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT collection, labels, COUNT(*) FROM documents INDEXED BY \
                 documents_ready_scope WHERE state = 'ready' \
                 GROUP BY collection, labels ORDER BY collection, labels",
            )
            .map_err(self.sql_error("prepare scope listing"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(ScopeCount {
                    collection: row.get(0)?,
                    labels: decode_labels(&row.get::<_, String>(1)?),
                    num_documents: row.get(2)?,
                })
            })
            .map_err(self.sql_error("list scopes"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read scope listing"))?;
        Ok(rows)
    }

    /// Returns (document id, scope key) of every document, any state, that has labels.
    pub(crate) fn labelled_document_scopes(&self) -> Result<Vec<(DocumentId, String)>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare(&format!(
                "SELECT id, {SCOPE_SQL} FROM documents WHERE labels != '' ORDER BY 2, 1"
            ))
            .map_err(self.sql_error("prepare labelled document listing"))?;
        let rows = statement
            .query_map([], |row| Ok((DocumentId(row.get(0)?), row.get(1)?)))
            .map_err(self.sql_error("list labelled documents"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read labelled document listing"))?;
        Ok(rows)
    }

    /// Calls `visit` with every chunk of every ready document (in document order), for
    /// rebuilding the full-text index; holds the catalog lock meanwhile.
    pub(crate) fn for_each_ready_chunk(
        &self,
        mut visit: impl FnMut(IndexedChunk) -> Result<()>,
    ) -> Result<()> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare(
                "SELECT d.id, d.collection, d.labels, d.title, c.chunk_id, c.ordinal, c.page, \
                 c.text FROM documents d JOIN chunks c ON c.document_id = d.id \
                 WHERE d.state = 'ready' ORDER BY d.id, c.ordinal, c.chunk_id",
            )
            .map_err(self.sql_error("prepare chunk export"))?;
        let mut rows = statement
            .query([])
            .map_err(self.sql_error("export chunks"))?;
        while let Some(row) = rows.next().map_err(self.sql_error("export chunks"))? {
            let read = || -> rusqlite::Result<IndexedChunk> {
                let collection: String = row.get(1)?;
                let labels: String = row.get(2)?;
                Ok(IndexedChunk {
                    document_id: row.get(0)?,
                    scope: scope_key(&collection, &decode_labels(&labels)),
                    collection,
                    title: row.get(3)?,
                    chunk_id: row.get(4)?,
                    ordinal: row.get(5)?,
                    page: row.get(6)?,
                    text: row.get(7)?,
                })
            };
            visit(read().map_err(self.sql_error("export chunks"))?)?;
        }
        Ok(())
    }

    /// Returns every known collection with its number of ready documents, sorted by name.
    /// Every collection's value of the per-collection setting `name` (settings rows keyed
    /// `collection.<name>.<collection>`).
    pub(crate) fn collection_settings(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let prefix = format!("collection.{name}.");
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT key, value FROM settings WHERE substr(key, 1, ?2) = ?1")
            .map_err(self.sql_error("prepare collection settings"))?;
        let rows = statement
            .query_map(params![prefix, prefix.len() as i64], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(self.sql_error("read collection settings"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read collection settings"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(&prefix)?.to_string(), value)))
            .collect())
    }

    /// Sets (or with `None` removes) `collection`'s value of the setting `name`.
    pub(crate) fn set_collection_setting(
        &self,
        collection: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let key = format!("collection.{name}.{collection}");
        let connection = self.lock()?;
        match value {
            Some(value) => connection.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            ),
            None => connection.execute("DELETE FROM settings WHERE key = ?1", params![key]),
        }
        .map_err(self.sql_error("write a collection setting"))?;
        Ok(())
    }

    pub(crate) fn list_collections(&self) -> Result<Vec<(String, u64)>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT c.name, COUNT(d.id) FROM collections c \
                 LEFT JOIN documents d ON d.collection = c.name AND d.state = 'ready' \
                 GROUP BY c.name ORDER BY c.name",
            )
            .map_err(self.sql_error("prepare collection listing"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
            })
            .map_err(self.sql_error("list collections"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read collection listing"))?;
        Ok(rows)
    }

    /// Returns a document's chunks in ordinal order.
    pub(crate) fn document_chunks(
        &self,
        id: &DocumentId,
        collection: &str,
    ) -> Result<Vec<StoredChunk>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT chunk_id, ordinal, page, text FROM chunks WHERE document_id = ?1 \
                 ORDER BY ordinal, chunk_id",
            )
            .map_err(self.sql_error("prepare chunk listing"))?;
        let chunks = statement
            .query_map([id.as_str()], |row| {
                Ok(StoredChunk {
                    chunk_id: ChunkId(row.get(0)?),
                    document_id: id.clone(),
                    collection: collection.to_string(),
                    ordinal: row.get(1)?,
                    page: row.get(2)?,
                    text: row.get(3)?,
                })
            })
            .map_err(self.sql_error("list chunks"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("read chunk listing"))?;
        Ok(chunks)
    }

    /// Returns state, title and source path of each given document that exists.
    pub(crate) fn hit_documents(
        &self,
        ids: impl IntoIterator<Item = DocumentId>,
    ) -> Result<HashMap<DocumentId, HitDocument>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT state, title, source_path FROM documents WHERE id = ?1")
            .map_err(self.sql_error("prepare hit lookup"))?;
        let mut documents = HashMap::new();
        for id in ids {
            if documents.contains_key(&id) {
                continue;
            }
            let row = statement
                .query_row([id.as_str()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .optional()
                .map_err(self.sql_error("look up hit document"))?;
            if let Some((state, title, source_path)) = row {
                let state = parse_state(&state, &self.path)?;
                documents.insert(
                    id,
                    HitDocument {
                        state,
                        title,
                        source_path,
                    },
                );
            }
        }
        Ok(documents)
    }

    /// Returns the ids of documents left `pending` or `deleting` (by a crash or a failed
    /// commit), with their states.
    pub(crate) fn unfinished_documents(&self) -> Result<Vec<(DocumentId, DocumentState)>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare("SELECT id, state FROM documents WHERE state != 'ready' ORDER BY id")
            .map_err(self.sql_error("prepare unfinished lookup"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(self.sql_error("list unfinished documents"))?;
        let mut unfinished = Vec::new();
        for row in rows {
            let (id, state) = row.map_err(self.sql_error("list unfinished documents"))?;
            unfinished.push((DocumentId(id), parse_state(&state, &self.path)?));
        }
        Ok(unfinished)
    }

    /// Returns (document id, chunk id, ready, scope key) of every chunk of every document.
    pub(crate) fn chunk_keys(&self) -> Result<Vec<CatalogChunkKey>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare(
                "SELECT c.document_id, c.chunk_id, d.state = 'ready', d.collection, d.labels \
                 FROM chunks c JOIN documents d ON d.id = c.document_id",
            )
            .map_err(self.sql_error("prepare chunk listing"))?;
        let rows = statement
            .query_map([], |row| {
                let collection: String = row.get(3)?;
                let labels: String = row.get(4)?;
                Ok(CatalogChunkKey {
                    document_id: row.get(0)?,
                    chunk_id: row.get(1)?,
                    ready: row.get(2)?,
                    scope: scope_key(&collection, &decode_labels(&labels)),
                })
            })
            .map_err(self.sql_error("prepare chunk listing"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_error("list chunks"))
    }

    /// Returns the number of ready documents and of their chunks.
    pub(crate) fn counts(&self) -> Result<CatalogCounts> {
        let connection = self.lock()?;
        let (num_documents, num_chunks) = connection
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(num_chunks), 0) FROM documents WHERE state = 'ready'",
                [],
                |row| Ok((row.get::<_, u64>(0)?, row.get::<_, u64>(1)?)),
            )
            .map_err(self.sql_error("count documents"))?;
        Ok(CatalogCounts {
            num_documents,
            num_chunks,
        })
    }
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn set_state_in(
    connection: &Connection,
    ids: &[DocumentId],
    state: DocumentState,
) -> rusqlite::Result<()> {
    let mut statement =
        connection.prepare_cached("UPDATE documents SET state = ?1 WHERE id = ?2")?;
    for id in ids {
        statement.execute([state.as_catalog_str(), id.as_str()])?;
    }
    Ok(())
}

fn delete_rows_in(connection: &Connection, ids: &[DocumentId]) -> rusqlite::Result<()> {
    let mut delete_chunks =
        connection.prepare_cached("DELETE FROM chunks WHERE document_id = ?1")?;
    let mut delete_document = connection.prepare_cached("DELETE FROM documents WHERE id = ?1")?;
    for id in ids {
        delete_chunks.execute([id.as_str()])?;
        delete_document.execute([id.as_str()])?;
    }
    Ok(())
}

fn parse_state(value: &str, path: &Path) -> Result<DocumentState> {
    DocumentState::from_catalog_str(value).ok_or_else(|| Error::CatalogCorrupt {
        path: path.to_path_buf(),
        detail: format!("unknown document state {value:?}"),
    })
}

/// A `documents` row as SQLite returns it, before parsing state and metadata.
struct RawDocument {
    id: String,
    collection: String,
    source_path: String,
    title: String,
    sha256: String,
    format: String,
    num_pages: u32,
    num_chunks: u32,
    state: String,
    ingested_at: String,
    metadata: String,
    labels: String,
}

impl RawDocument {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<RawDocument> {
        Ok(RawDocument {
            id: row.get(0)?,
            collection: row.get(1)?,
            source_path: row.get(2)?,
            title: row.get(3)?,
            sha256: row.get(4)?,
            format: row.get(5)?,
            num_pages: row.get(6)?,
            num_chunks: row.get(7)?,
            state: row.get(8)?,
            ingested_at: row.get(9)?,
            metadata: row.get(10)?,
            labels: row.get(11)?,
        })
    }

    fn into_record(self, path: &Path) -> Result<DocumentRecord> {
        let state = parse_state(&self.state, path)?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_str(&self.metadata).map_err(|error| Error::CatalogCorrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "metadata of document {} is not a JSON object: {error}",
                    self.id
                ),
            })?;
        Ok(DocumentRecord {
            id: DocumentId(self.id),
            collection: self.collection,
            source_path: self.source_path,
            title: self.title,
            sha256: self.sha256,
            format: self.format,
            num_pages: self.num_pages,
            num_chunks: self.num_chunks,
            state,
            ingested_at: self.ingested_at,
            metadata,
            labels: decode_labels(&self.labels),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> StoreOptions {
        StoreOptions {
            embedding_dim: 4,
            embedding_model: "test-model".into(),
        }
    }

    fn new_document(id: &str, source_path: &str) -> NewDocument {
        NewDocument {
            id: DocumentId(id.into()),
            collection: "papers".into(),
            source_path: source_path.into(),
            title: "Title".into(),
            sha256: "00".into(),
            format: "txt".into(),
            num_pages: 1,
            metadata: BTreeMap::from([("author".to_string(), "Ada".to_string())]),
            labels: Vec::new(),
        }
    }

    #[test]
    fn only_one_ready_version_per_source() -> Result<()> {
        let directory = tempfile::tempdir().map_err(|source| Error::DataDir {
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let catalog = Catalog::open(&directory.path().join("catalog.sqlite"), &options())?;
        catalog.insert_pending(
            &[
                (new_document("old", "a.txt"), Vec::new()),
                (new_document("new", "a.txt"), Vec::new()),
            ],
            &[],
        )?;
        let old = DocumentId("old".into());
        let new = DocumentId("new".into());
        catalog.publish(std::slice::from_ref(&old), &[])?;
        // Publishing the second version without retiring the first violates the partial index.
        assert!(catalog.publish(std::slice::from_ref(&new), &[]).is_err());
        catalog.publish(std::slice::from_ref(&new), std::slice::from_ref(&old))?;
        let found = catalog.find_document("papers", "a.txt")?;
        assert_eq!(found.map(|record| record.id), Some(new));
        let deleting = catalog.get_document(&old)?;
        assert_eq!(
            deleting.map(|record| record.state),
            Some(DocumentState::Deleting)
        );
        Ok(())
    }

    #[test]
    fn records_round_trip_metadata_and_timestamp() -> Result<()> {
        let directory = tempfile::tempdir().map_err(|source| Error::DataDir {
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let catalog = Catalog::open(&directory.path().join("catalog.sqlite"), &options())?;
        catalog.insert_pending(&[(new_document("doc", "b.txt"), Vec::new())], &[])?;
        let record = catalog.get_document(&DocumentId("doc".into()))?;
        let record = record.ok_or(Error::DocumentNotFound {
            id: DocumentId("doc".into()),
        })?;
        assert_eq!(record.state, DocumentState::Pending);
        assert_eq!(
            record.metadata.get("author").map(String::as_str),
            Some("Ada")
        );
        // e.g. 2026-11-27T08:09:27Z
        assert_eq!(record.ingested_at.len(), 20, "{}", record.ingested_at);
        assert!(record.ingested_at.ends_with('Z'), "{}", record.ingested_at);
        Ok(())
    }
}
