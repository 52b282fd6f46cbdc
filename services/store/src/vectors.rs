//! The LanceDB vector table over chunks, driven through a private tokio runtime.
//!
//! Table `chunks` (changing it needs a re-ingest or a migration; `open` refuses a table with
//! another shape): `chunk_id Utf8, document_id Utf8, collection Utf8, page UInt32,
//! ordinal UInt32, text Utf8, vector FixedSizeList<Float32, dim>, scope Utf8` (nullable, as
//! `add_columns` makes it). `scope` is the chunk's [`crate::scope_key`], the column the scope
//! prefilter reads.
//!
//! A table from before `scope` existed is migrated when the store opens: `add_columns` with an
//! SQL expression gives every row the unlabelled scope of its collection (one commit), then one
//! `update` per label set fixes the rows of labelled documents. The catalog's
//! `scope_migration` setting is recorded before the first step and cleared after the last, so
//! a crash in between redoes the updates at the next open (they are idempotent).
//!
//! Search is a flat (exact) scan with cosine distance up to [`INDEX_MIN_ROWS`] rows. Past it,
//! [`VectorTable::optimize`] (run after every ingest) builds an IVF_FLAT index: vectors grouped
//! around √rows centroids, a query scanning the nearest sixth of them with exact distances.
//! Measured at 106,792 chunks (docs/benchmarks.md, "100,000 chunks"): a flat search took 114
//! ms and held ~150 MB while it ran; with the index 7-17 ms at 0.98 recall@50, built in 39 s.
//! Rows added later are folded into the index by the next `optimize` (LanceDB also scans the
//! rows not yet indexed, so nothing is missed meanwhile); the centroids are not retrained.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures::TryStreamExt;
use lancedb::arrow::arrow_array::{
    Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt32Array,
};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema, SchemaRef};
use lancedb::index::vector::IvfFlatIndexBuilder;
use lancedb::index::Index;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::table::{
    CompactionOptions, Duration as VersionAge, NewColumnTransform, OptimizeAction, OptimizeOptions,
};
use lancedb::{DistanceType, Table};

use crate::error::{Error, Result};
use crate::scope::{scope_key, SCOPE_SEPARATOR};
use crate::types::{ChunkId, DocumentId, IndexFilter, NewChunk, NewDocument, StoredChunk};

/// Name of the one table in the LanceDB database.
const TABLE_NAME: &str = "chunks";
/// The column holding each chunk's scope key.
const SCOPE_COLUMN: &str = "scope";
/// Document ids per `update` statement of the scope migration.
const IDS_PER_UPDATE: usize = 500;
/// Column LanceDB adds to vector-search results.
const DISTANCE_COLUMN: &str = "_distance";
/// Worker threads of the private runtime: LanceDB does its heavy lifting on its own CPU pool,
/// so these mostly wait on I/O.
const RUNTIME_WORKER_THREADS: usize = 2;
/// Threads for LanceDB's file reads (`spawn_blocking`). Tokio's default allows 512: under 45
/// concurrent searches at 100,000 chunks the pool grew to 80 threads, each keeping its own
/// allocator cache, and the server's RSS climbed past 4 GiB (docs/benchmarks.md, "100,000
/// chunks"). Searches are gated to one per core anyway.
const RUNTIME_BLOCKING_THREADS: usize = 8;
/// Rows from which the table gets an IVF index: below, a flat scan takes under ~50 ms on the
/// 2-core machines Vellum is measured on, and exact results cost nothing to keep.
pub(crate) const INDEX_MIN_ROWS: usize = 50_000;

/// IVF partitions for a table of `rows`: √rows, so a partition holds about as many vectors as
/// there are partitions (LanceDB's own default targets 8,192 rows a partition, which at
/// 100,000 rows makes 13 partitions and a search that scans almost everything).
fn index_partitions(rows: usize) -> u32 {
    ((rows as f64).sqrt().round() as u32).max(16)
}

/// Partitions a query scans: a sixth of them (0.98 recall@50 at 106,792 rows, against the
/// exact search).
fn index_probes(rows: usize) -> usize {
    (index_partitions(rows) as usize / 6).max(8)
}

/// A chunk found by vector search, before the catalog adds its document's title and state.
#[derive(Debug, Clone)]
pub(crate) struct VectorHit {
    pub(crate) chunk: StoredChunk,
    pub(crate) score: f32,
}

/// The LanceDB `chunks` table and the runtime its futures run on.
pub(crate) struct VectorTable {
    path: PathBuf,
    embedding_dim: usize,
    schema: SchemaRef,
    table: Table,
    /// False for a table written before `scope` existed, until [`VectorTable::add_scope_column`].
    has_scope_column: bool,
    /// Queries hold it shared; pruning old versions holds it exclusively, so no query reads a
    /// version whose files are being removed.
    prune_guard: RwLock<()>,
    /// Vector searches running at once, at most one per core. A flat search reads the whole
    /// vector column (about 160 MB at 100,000 chunks of 384 dimensions); 45 concurrent ones
    /// held up to 6.2 GiB (docs/benchmarks.md, "100,000 chunks") and finished no sooner,
    /// since each is CPU-bound.
    search_permits: Arc<tokio::sync::Semaphore>,
    /// IVF partitions a search scans (used only once the table has an index).
    probes: std::sync::atomic::AtomicUsize,
    /// `None` only while dropping (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl VectorTable {
    /// Opens or creates the table in the LanceDB database at `path` and checks its dimension.
    pub(crate) fn open(path: &Path, embedding_dim: usize) -> Result<VectorTable> {
        let list_length = i32::try_from(embedding_dim)
            .ok()
            .filter(|length| *length > 0)
            .ok_or_else(|| Error::InvalidInput {
                detail: format!("embedding dimension {embedding_dim} must be between 1 and 2^31"),
            })?;
        let uri = path
            .to_str()
            .ok_or_else(|| Error::InvalidInput {
                detail: format!("vector directory {} is not valid UTF-8", path.display()),
            })?
            .to_string();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKER_THREADS)
            .max_blocking_threads(RUNTIME_BLOCKING_THREADS)
            .thread_name("vellum-store-lancedb")
            .enable_all()
            .build()
            .map_err(|error| Error::Runtime {
                detail: format!("cannot start the LanceDB runtime: {error}"),
            })?;
        let schema = chunk_schema(list_length);
        let vectors_error = |operation: &'static str| {
            move |source| Error::Vectors {
                path: path.to_path_buf(),
                operation,
                source: Box::new(source),
            }
        };

        let connection = run_on(
            &runtime,
            async move { lancedb::connect(&uri).execute().await },
        )?
        .map_err(vectors_error("connect"))?;
        let table_names = {
            let connection = connection.clone();
            run_on(
                &runtime,
                async move { connection.table_names().execute().await },
            )?
            .map_err(vectors_error("list tables"))?
        };
        let table = if table_names.iter().any(|name| name == TABLE_NAME) {
            let table = {
                let connection = connection.clone();
                run_on(&runtime, async move {
                    connection.open_table(TABLE_NAME).execute().await
                })?
                .map_err(vectors_error("open table"))?
            };
            let table_schema = {
                let table = table.clone();
                run_on(&runtime, async move { table.schema().await })?
                    .map_err(vectors_error("read schema"))?
            };
            let has_scope_column = table_schema.field_with_name(SCOPE_COLUMN).is_ok();
            let legacy = without_scope(&schema);
            let expected = if has_scope_column { &schema } else { &legacy };
            check_table_schema(path, &table_schema, expected, embedding_dim)?;
            (table, has_scope_column)
        } else {
            let schema = schema.clone();
            run_on(&runtime, async move {
                connection
                    .create_empty_table(TABLE_NAME, schema)
                    .execute()
                    .await
            })?
            .map_err(vectors_error("create table"))
            .map(|table| (table, true))?
        };
        let (table, has_scope_column) = table;
        // Probes follow the table's size (the index has about √rows partitions).
        let rows = {
            let table = table.clone();
            run_on(&runtime, async move { table.count_rows(None).await })?
                .map_err(vectors_error("count rows"))?
        };
        Ok(VectorTable {
            path: path.to_path_buf(),
            embedding_dim,
            schema,
            table,
            has_scope_column,
            prune_guard: RwLock::new(()),
            search_permits: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            )),
            probes: std::sync::atomic::AtomicUsize::new(index_probes(rows)),
            runtime: Some(runtime),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let runtime = self.runtime.as_ref().ok_or_else(|| Error::Runtime {
            detail: "the LanceDB runtime is shut down".into(),
        })?;
        run_on(runtime, future)
    }

    fn vectors_error(&self, operation: &'static str) -> impl FnOnce(lancedb::Error) -> Error + '_ {
        move |source| Error::Vectors {
            path: self.path.clone(),
            operation,
            source: Box::new(source),
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::VectorsCorrupt {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    /// False if the table was written before `scope` existed and is not migrated yet.
    pub(crate) fn has_scope_column(&self) -> bool {
        self.has_scope_column
    }

    /// Adds the `scope` column, every row getting the unlabelled scope of its collection (one
    /// commit). Labelled documents must then be fixed with [`VectorTable::set_scopes`].
    pub(crate) fn add_scope_column(&mut self) -> Result<()> {
        let expression = format!(
            "concat(collection, {})",
            sql_string_literal(&SCOPE_SEPARATOR.to_string())
        );
        let table = self.table.clone();
        self.run(async move {
            table
                .add_columns()
                .transform(NewColumnTransform::SqlExpressions(vec![(
                    SCOPE_COLUMN.to_string(),
                    expression,
                )]))
                .execute()
                .await
                .map(|_| ())
        })?
        .map_err(self.vectors_error("add the scope column"))?;
        let table = self.table.clone();
        let table_schema = self
            .run(async move { table.schema().await })?
            .map_err(self.vectors_error("read schema"))?;
        check_table_schema(&self.path, &table_schema, &self.schema, self.embedding_dim)?;
        self.has_scope_column = true;
        Ok(())
    }

    /// Sets the scope of every chunk of the given documents (one `update` per scope and at
    /// most [`IDS_PER_UPDATE`] documents). Idempotent.
    pub(crate) fn set_scopes(&self, documents: &[(DocumentId, String)]) -> Result<()> {
        let mut by_scope: std::collections::BTreeMap<&str, Vec<&DocumentId>> =
            std::collections::BTreeMap::new();
        for (id, scope) in documents {
            by_scope.entry(scope.as_str()).or_default().push(id);
        }
        for (scope, ids) in by_scope {
            for ids in ids.chunks(IDS_PER_UPDATE) {
                let predicate = format!(
                    "document_id IN ({})",
                    ids.iter()
                        .map(|id| sql_string_literal(id.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let value = sql_string_literal(scope);
                let table = self.table.clone();
                self.run(async move {
                    table
                        .update()
                        .only_if(predicate)
                        .column(SCOPE_COLUMN, value)
                        .execute()
                        .await
                        .map(|_| ())
                })?
                .map_err(self.vectors_error("set chunk scopes"))?;
            }
        }
        Ok(())
    }

    /// Appends the chunks of `documents` (one LanceDB commit); no-op when there are none.
    /// Vectors must already have the table's dimension.
    pub(crate) fn append(&self, documents: &[(NewDocument, Vec<NewChunk>)]) -> Result<()> {
        let Some(batch) = self.record_batch(documents)? else {
            return Ok(());
        };
        let table = self.table.clone();
        self.run(async move { table.add(batch).execute().await.map(|_| ()) })?
            .map_err(self.vectors_error("append chunks"))
    }

    fn record_batch(
        &self,
        documents: &[(NewDocument, Vec<NewChunk>)],
    ) -> Result<Option<RecordBatch>> {
        // Arrow's `from_iter_values` wants iterators with an exact size, which `flat_map` is
        // not: collect the rows once.
        let rows: Vec<(&NewDocument, &NewChunk)> = documents
            .iter()
            .flat_map(|(document, chunks)| chunks.iter().map(move |chunk| (document, chunk)))
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(rows.len() * self.embedding_dim);
        for &(document, chunk) in &rows {
            if chunk.vector.len() != self.embedding_dim {
                return Err(Error::InvalidDocument {
                    id: document.id.clone(),
                    detail: format!(
                        "chunk {} has a vector of length {}, the store's dimension is {}",
                        chunk.chunk_id,
                        chunk.vector.len(),
                        self.embedding_dim
                    ),
                });
            }
            values.extend_from_slice(&chunk.vector);
        }
        let list_length = i32::try_from(self.embedding_dim)
            .map_err(|_| self.corrupt("embedding dimension exceeds i32"))?;
        let vectors = FixedSizeListArray::try_new(
            Arc::new(vector_item_field()),
            list_length,
            Arc::new(Float32Array::from(values)),
            None,
        )
        .map_err(|error| self.corrupt(format!("cannot build the vector column: {error}")))?;
        let scopes: Vec<String> = documents
            .iter()
            .flat_map(|(document, chunks)| {
                let scope = scope_key(&document.collection, &document.labels);
                std::iter::repeat_n(scope, chunks.len())
            })
            .collect();
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, chunk)| chunk.chunk_id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(document, _)| document.id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter()
                        .map(|(document, _)| document.collection.as_str()),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|(_, chunk)| chunk.page),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|(_, chunk)| chunk.ordinal),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, chunk)| chunk.text.as_str()),
                )),
                Arc::new(vectors),
                Arc::new(StringArray::from_iter_values(scopes.iter())),
            ],
        )
        .map_err(|error| self.corrupt(format!("cannot build a record batch: {error}")))?;
        Ok(Some(batch))
    }

    /// Deletes every chunk of the given documents (one LanceDB commit); no-op for no ids.
    pub(crate) fn delete_documents(&self, ids: &[DocumentId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let predicate = format!(
            "document_id IN ({})",
            ids.iter()
                .map(|id| sql_string_literal(id.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let table = self.table.clone();
        self.run(async move { table.delete(predicate.as_str()).await.map(|_| ()) })?
            .map_err(self.vectors_error("delete chunks"))
    }

    /// Returns the `limit` chunks nearest to `vector` by cosine distance, restricted to the
    /// filter's collections and scopes by a prefilter.
    pub(crate) fn search(
        &self,
        vector: &[f32],
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<VectorHit>> {
        if vector.len() != self.embedding_dim {
            return Err(Error::InvalidInput {
                detail: format!(
                    "query vector has length {}, the store's dimension is {}",
                    vector.len(),
                    self.embedding_dim
                ),
            });
        }
        if limit == 0 || filter.matches_nothing() {
            return Ok(Vec::new());
        }
        let filter = prefilter(filter);
        let table = self.table.clone();
        let vector = vector.to_vec();
        let _shared = self.prune_guard.read().map_err(|_| Error::Poisoned {
            name: "vector prune guard",
        })?;
        let permits = self.search_permits.clone();
        let probes = self.probes.load(std::sync::atomic::Ordering::Relaxed);
        let batches = self
            .run(async move {
                // Waiting here costs no thread: the caller's thread blocks in `run` either way.
                let _permit = permits.acquire_owned().await;
                let mut query = table
                    .query()
                    .nearest_to(vector)?
                    .nprobes(probes)?
                    .distance_type(DistanceType::Cosine)
                    .limit(limit)
                    .select(Select::columns(&[
                        "chunk_id",
                        "document_id",
                        "collection",
                        "page",
                        "ordinal",
                        "text",
                    ]));
                // `only_if` is a prefilter (LanceDB's default): the top `limit` are taken among
                // the allowed collections and scopes, not cut down from a global top `limit`.
                if let Some(filter) = filter {
                    query = query.only_if(filter);
                }
                query
                    .execute()
                    .await?
                    .try_collect::<Vec<RecordBatch>>()
                    .await
            })?
            .map_err(self.vectors_error("vector search"))?;
        let mut hits = Vec::new();
        for batch in &batches {
            self.read_hits(batch, &mut hits)?;
        }
        // Batches come in distance order, but do not rely on it across batches.
        hits.sort_by(|left, right| right.score.total_cmp(&left.score));
        hits.truncate(limit);
        Ok(hits)
    }

    fn read_hits(&self, batch: &RecordBatch, hits: &mut Vec<VectorHit>) -> Result<()> {
        let chunk_ids = self.column::<StringArray>(batch, "chunk_id")?;
        let document_ids = self.column::<StringArray>(batch, "document_id")?;
        let collections = self.column::<StringArray>(batch, "collection")?;
        let pages = self.column::<UInt32Array>(batch, "page")?;
        let ordinals = self.column::<UInt32Array>(batch, "ordinal")?;
        let texts = self.column::<StringArray>(batch, "text")?;
        let distances = self.column::<Float32Array>(batch, DISTANCE_COLUMN)?;
        let columns: [&dyn Array; 7] = [
            chunk_ids,
            document_ids,
            collections,
            pages,
            ordinals,
            texts,
            distances,
        ];
        for row in 0..batch.num_rows() {
            let has_null = columns.iter().any(|column| column.is_null(row));
            if has_null {
                return Err(self.corrupt(format!("row {row} of a search result has a null")));
            }
            hits.push(VectorHit {
                chunk: StoredChunk {
                    chunk_id: ChunkId(chunk_ids.value(row).to_string()),
                    document_id: DocumentId(document_ids.value(row).to_string()),
                    collection: collections.value(row).to_string(),
                    ordinal: ordinals.value(row),
                    page: pages.value(row),
                    text: texts.value(row).to_string(),
                },
                // Cosine distance is in [0, 2]; 1 - distance is the cosine similarity.
                score: 1.0 - distances.value(row),
            });
        }
        Ok(())
    }

    fn column<'batch, T: Array + 'static>(
        &self,
        batch: &'batch RecordBatch,
        name: &str,
    ) -> Result<&'batch T> {
        batch
            .column_by_name(name)
            .and_then(|column| column.as_any().downcast_ref::<T>())
            .ok_or_else(|| self.corrupt(format!("search result lacks a usable {name} column")))
    }

    /// Returns (document id, chunk id, scope) of every row (a full scan, for consistency
    /// checks); a missing scope reads as an empty string.
    pub(crate) fn chunk_keys(&self) -> Result<Vec<(String, String, String)>> {
        let table = self.table.clone();
        let batches = self
            .run(async move {
                table
                    .query()
                    .select(Select::columns(&["document_id", "chunk_id", SCOPE_COLUMN]))
                    .execute()
                    .await?
                    .try_collect::<Vec<RecordBatch>>()
                    .await
            })?
            .map_err(self.vectors_error("list chunks"))?;
        let mut keys = Vec::new();
        for batch in &batches {
            let document_ids = self.column::<StringArray>(batch, "document_id")?;
            let chunk_ids = self.column::<StringArray>(batch, "chunk_id")?;
            let scopes = self.column::<StringArray>(batch, SCOPE_COLUMN)?;
            for row in 0..batch.num_rows() {
                let scope = if scopes.is_null(row) {
                    String::new()
                } else {
                    scopes.value(row).to_string()
                };
                keys.push((
                    document_ids.value(row).to_string(),
                    chunk_ids.value(row).to_string(),
                    scope,
                ));
            }
        }
        Ok(keys)
    }

    /// Returns the table's version (it grows with every append, delete and compaction).
    pub(crate) fn version(&self) -> Result<u64> {
        let table = self.table.clone();
        self.run(async move { table.version().await })?
            .map_err(self.vectors_error("read version"))
    }

    /// Merges small fragments and removes files of superseded versions.
    pub(crate) fn optimize(&self) -> Result<()> {
        let table = self.table.clone();
        self.run(async move {
            table
                .optimize(OptimizeAction::Compact {
                    options: CompactionOptions::default(),
                    remap_options: None,
                })
                .await
                .map(|_| ())
        })?
        .map_err(self.vectors_error("compact"))?;
        // Old versions are only useful for time travel, which Vellum does not offer; the
        // catalog, not LanceDB, is our history. Pruning needs exclusive access (see
        // `prune_guard`). Unverified files (possibly an in-flight writer's) are kept.
        let _exclusive = self.prune_guard.write().map_err(|_| Error::Poisoned {
            name: "vector prune guard",
        })?;
        let table = self.table.clone();
        self.run(async move {
            table
                .optimize(OptimizeAction::Prune {
                    older_than: Some(VersionAge::zero()),
                    delete_unverified: Some(false),
                    error_if_tagged_old_versions: Some(false),
                })
                .await
                .map(|_| ())
        })?
        .map_err(self.vectors_error("prune old versions"))?;
        self.index_vectors()
    }

    /// Builds the IVF index once the table has [`INDEX_MIN_ROWS`] rows, and afterwards folds
    /// new rows into it.
    fn index_vectors(&self) -> Result<()> {
        let table = self.table.clone();
        let (rows, indexed) = self
            .run(async move {
                let rows = table.count_rows(None).await?;
                let indices = table.list_indices().await?;
                let indexed = indices
                    .iter()
                    .any(|index| index.columns.iter().any(|column| column == "vector"));
                Ok::<_, lancedb::Error>((rows, indexed))
            })?
            .map_err(self.vectors_error("list indexes"))?;
        if !indexed && rows < INDEX_MIN_ROWS {
            return Ok(());
        }
        let table = self.table.clone();
        if indexed {
            self.run(async move {
                table
                    .optimize(OptimizeAction::Index(OptimizeOptions::default()))
                    .await
                    .map(|_| ())
            })?
            .map_err(self.vectors_error("add new rows to the vector index"))?;
        } else {
            let started = std::time::Instant::now();
            let partitions = index_partitions(rows);
            self.run(async move {
                table
                    .create_index(
                        &["vector"],
                        Index::IvfFlat(
                            IvfFlatIndexBuilder::default()
                                .distance_type(DistanceType::Cosine)
                                .num_partitions(partitions),
                        ),
                    )
                    .execute()
                    .await
            })?
            .map_err(self.vectors_error("build the vector index"))?;
            tracing::info!(
                rows,
                partitions,
                seconds = started.elapsed().as_secs_f64(),
                "built the IVF vector index"
            );
        }
        self.probes
            .store(index_probes(rows), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for VectorTable {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which tokio forbids (by panicking)
        // when the drop happens inside another runtime's task. Every call into LanceDB has
        // completed by now, so nothing is lost by not waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` on `runtime` and blocks the calling thread until it completes.
///
/// Spawning (rather than `Runtime::block_on`) means the future is always polled by the
/// runtime's own workers, so this does not panic when the caller is itself inside an async
/// context; it does block that caller's thread, hence the contract on [`crate::Store`].
fn run_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    let handle = runtime.spawn(future);
    futures::executor::block_on(handle).map_err(|error| Error::Runtime {
        detail: format!("a LanceDB task failed: {error}"),
    })
}

fn vector_item_field() -> Field {
    Field::new("item", DataType::Float32, true)
}

fn chunk_schema(list_length: i32) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("chunk_id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
        Field::new("collection", DataType::Utf8, false),
        Field::new("page", DataType::UInt32, false),
        Field::new("ordinal", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(vector_item_field()), list_length),
            false,
        ),
        // Nullable because `add_columns` makes migrated tables' column nullable; every row
        // written has a value.
        Field::new(SCOPE_COLUMN, DataType::Utf8, true),
    ]))
}

/// The table's shape before the `scope` column existed.
fn without_scope(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|field| field.name() != SCOPE_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// The SQL prefilter for a search filter, `None` when it restricts nothing.
fn prefilter(filter: &IndexFilter) -> Option<String> {
    let in_list = |column: &str, values: &[String]| {
        format!(
            "{column} IN ({})",
            values
                .iter()
                .map(|value| sql_string_literal(value))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut clauses = Vec::new();
    if let Some(names) = &filter.collections {
        clauses.push(in_list("collection", names));
    }
    if let Some(scopes) = &filter.scopes {
        clauses.push(in_list(SCOPE_COLUMN, scopes));
    }
    if let Some(documents) = &filter.documents {
        clauses.push(in_list("document_id", documents));
    }
    (!clauses.is_empty()).then(|| clauses.join(" AND "))
}

fn check_table_schema(
    path: &Path,
    table_schema: &Schema,
    expected: &Schema,
    embedding_dim: usize,
) -> Result<()> {
    let table_dim = match table_schema
        .field_with_name("vector")
        .map(|field| field.data_type().clone())
    {
        Ok(DataType::FixedSizeList(_, length)) => usize::try_from(length).ok(),
        _ => None,
    };
    match table_dim {
        Some(table_dim) if table_dim != embedding_dim => Err(Error::VectorDimensionMismatch {
            path: path.to_path_buf(),
            table_dim,
            requested_dim: embedding_dim,
        }),
        Some(_) => {
            let shape = |schema: &Schema| {
                schema
                    .fields()
                    .iter()
                    .map(|field| (field.name().clone(), field.data_type().clone()))
                    .collect::<Vec<_>>()
            };
            if shape(table_schema) == shape(expected) {
                Ok(())
            } else {
                Err(Error::VectorsCorrupt {
                    path: path.to_path_buf(),
                    detail: format!(
                        "table {TABLE_NAME} has columns {:?}, expected {:?}",
                        shape(table_schema),
                        shape(expected)
                    ),
                })
            }
        }
        None => Err(Error::VectorsCorrupt {
            path: path.to_path_buf(),
            detail: format!("table {TABLE_NAME} has no fixed-size-list vector column"),
        }),
    }
}

/// Quotes a value as an SQL string literal for LanceDB filters (doubling single quotes).
fn sql_string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals_double_quotes() {
        assert_eq!(sql_string_literal("o'brien"), "'o''brien'");
        assert_eq!(sql_string_literal("') OR 1=1 --"), "''') OR 1=1 --'");
    }

    #[test]
    fn prefilter_ands_collections_and_scopes() {
        let filter = IndexFilter {
            collections: Some(vec!["a'b".into()]),
            scopes: Some(vec!["a'b\u{1f}phi".into(), "c\u{1f}".into()]),
            documents: Some(vec!["d1".into()]),
        };
        assert_eq!(
            prefilter(&filter).as_deref(),
            Some(
                "collection IN ('a''b') AND scope IN ('a''b\u{1f}phi', 'c\u{1f}') \
                 AND document_id IN ('d1')"
            )
        );
        assert_eq!(prefilter(&IndexFilter::default()), None);
    }

    #[test]
    fn schema_check_names_both_dimensions() {
        let table = chunk_schema(8);
        let expected = chunk_schema(4);
        let error = check_table_schema(Path::new("/v"), &table, &expected, 4);
        assert!(matches!(
            error,
            Err(Error::VectorDimensionMismatch {
                table_dim: 8,
                requested_dim: 4,
                ..
            })
        ));
    }
}
