//! A data directory written by the previous schema (catalog version 2, Tantivy and LanceDB
//! without `scope`, labels only in document metadata) opens, is migrated once, and then
//! filters by scope inside both engines; interrupted migrations are finished by the next open.
//!
//! The old store is written here with the engines directly, using the schemas exactly as the
//! previous code defined them (git history of services/store/src/{catalog,fulltext,vectors}.rs).

use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use lancedb::arrow::arrow_array::{
    FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt32Array,
};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema};
use tantivy::schema::{IndexRecordOption, TextFieldIndexing, TextOptions, STORED, STRING};
use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{doc, Index};
mod common;
use common::{scoped_bm25, scoped_vector, SearchFilter};
use vellum_store::{
    scope_key, ChunkHit, ChunkId, DocumentId, NewChunk, NewDocument, Store, StoreOptions,
};

const DIM: usize = 4;
const MODEL: &str = "fake-embedder-4";

/// The catalog schema of version 2 (version 1 plus the quarantine).
const V2_SQL: &str = "
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL REFERENCES collections(name),
    source_path TEXT NOT NULL,
    title TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    num_pages INTEGER NOT NULL,
    num_chunks INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'deleting')),
    ingested_at TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX documents_by_source ON documents(collection, source_path);
CREATE UNIQUE INDEX documents_ready_source ON documents(collection, source_path)
    WHERE state = 'ready';
CREATE TABLE chunks (
    document_id TEXT NOT NULL REFERENCES documents(id),
    chunk_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    page INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (document_id, chunk_id)
) WITHOUT ROWID;
CREATE INDEX chunks_by_ordinal ON chunks(document_id, ordinal);
CREATE TABLE quarantine (
    collection TEXT NOT NULL,
    source_path TEXT NOT NULL,
    sha256 TEXT,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL,
    PRIMARY KEY (collection, source_path)
);
PRAGMA user_version = 2;
";

/// One old document: id, state, metadata JSON, chunk texts (each on its own axis).
struct OldDocument {
    id: &'static str,
    state: &'static str,
    metadata: &'static str,
    chunks: &'static [&'static str],
}

const OLD_DOCUMENTS: &[OldDocument] = &[
    OldDocument {
        id: "lease",
        state: "ready",
        metadata: r#"{"origin":"scan"}"#,
        chunks: &["The lease runs five years.", "Rent is due monthly."],
    },
    OldDocument {
        id: "memo",
        // Labels as the old server read them: trimmed, lowercased, split at commas; a label
        // the new rules would reject ("work product") is kept as it was evaluated.
        state: "ready",
        metadata: r#"{"labels":" Privileged, Work Product,privileged"}"#,
        chunks: &["Privileged advice on the lease term."],
    },
    OldDocument {
        id: "record",
        state: "ready",
        metadata: r#"{"labels":"phi"}"#,
        chunks: &["Medical record mentioning the lease."],
    },
    // Left half-written by a crash: rolled back at open.
    OldDocument {
        id: "ghost",
        state: "pending",
        metadata: "{}",
        chunks: &["A ghost lease nobody finished."],
    },
];

fn axis_vector(axis: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; DIM];
    vector[axis % DIM] = 1.0;
    vector
}

/// Writes catalog, Tantivy index and LanceDB table as the previous code did.
fn write_old_store(data_dir: &Path) -> Result<()> {
    let catalog = rusqlite::Connection::open(data_dir.join("catalog.sqlite"))?;
    catalog.execute_batch(V2_SQL)?;
    catalog.execute(
        "INSERT INTO settings (key, value) VALUES ('embedding_model', ?1), ('embedding_dim', ?2)",
        [MODEL, &DIM.to_string()],
    )?;
    catalog.execute(
        "INSERT INTO collections (name, created_at) VALUES ('law', '2026-01-01T00:00:00Z')",
        [],
    )?;

    let mut schema = tantivy::schema::Schema::builder();
    let english = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("en")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let chunk_id = schema.add_text_field("chunk_id", STRING | STORED);
    let document_id = schema.add_text_field("document_id", STRING | STORED);
    let collection = schema.add_text_field("collection", STRING | STORED);
    let page = schema.add_u64_field("page", STORED);
    let ordinal = schema.add_u64_field("ordinal", STORED);
    let title = schema.add_text_field("title", english.clone());
    let text = schema.add_text_field("text", english.set_stored());
    let fulltext_dir = data_dir.join("fulltext");
    std::fs::create_dir_all(&fulltext_dir)?;
    let index = Index::create_in_dir(&fulltext_dir, schema.build())?;
    index.tokenizers().register(
        "en",
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
    let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000)?;

    let mut chunk_ids = Vec::new();
    let mut document_ids = Vec::new();
    let mut texts = Vec::new();
    let mut values = Vec::new();
    let mut axis = 0;
    for old in OLD_DOCUMENTS {
        catalog.execute(
            "INSERT INTO documents (id, collection, source_path, title, sha256, format, \
             num_pages, num_chunks, state, ingested_at, metadata) \
             VALUES (?1, 'law', ?2, ?3, '00', 'txt', 1, ?4, ?5, '2026-01-01T00:00:00Z', ?6)",
            rusqlite::params![
                old.id,
                format!("law/{}.txt", old.id),
                old.id.to_uppercase(),
                old.chunks.len(),
                old.state,
                old.metadata
            ],
        )?;
        for (position, chunk_text) in old.chunks.iter().enumerate() {
            let id = format!("{}-{position}", old.id);
            catalog.execute(
                "INSERT INTO chunks (document_id, chunk_id, ordinal, page, text) \
                 VALUES (?1, ?2, ?3, 1, ?4)",
                rusqlite::params![old.id, id, position, chunk_text],
            )?;
            writer.add_document(doc!(
                chunk_id => id.as_str(),
                document_id => old.id,
                collection => "law",
                page => 1_u64,
                ordinal => position as u64,
                title => old.id.to_uppercase(),
                text => *chunk_text,
            ))?;
            chunk_ids.push(id);
            document_ids.push(old.id);
            texts.push(*chunk_text);
            values.extend(axis_vector(axis));
            axis += 1;
        }
    }
    writer.commit()?;
    drop(writer);

    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("chunk_id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
        Field::new("collection", DataType::Utf8, false),
        Field::new("page", DataType::UInt32, false),
        Field::new("ordinal", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(item.clone(), DIM as i32),
            false,
        ),
    ]));
    let rows = chunk_ids.len();
    let ordinals: Vec<u32> = OLD_DOCUMENTS
        .iter()
        .flat_map(|old| 0..old.chunks.len() as u32)
        .collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(chunk_ids.iter())),
            Arc::new(StringArray::from_iter_values(document_ids.iter())),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                "law", rows,
            ))),
            Arc::new(UInt32Array::from_iter_values(std::iter::repeat_n(1, rows))),
            Arc::new(UInt32Array::from(ordinals)),
            Arc::new(StringArray::from_iter_values(texts.iter())),
            Arc::new(FixedSizeListArray::try_new(
                item,
                DIM as i32,
                Arc::new(Float32Array::from(values)),
                None,
            )?),
        ],
    )?;
    let vectors_dir = data_dir.join("vectors");
    std::fs::create_dir_all(&vectors_dir)?;
    let uri = vectors_dir.to_str().context("utf-8 path")?.to_string();
    tokio::runtime::Runtime::new()?.block_on(async move {
        let connection = lancedb::connect(&uri).execute().await?;
        connection.create_table("chunks", batch).execute().await?;
        lancedb::Result::Ok(())
    })?;
    Ok(())
}

fn open(data_dir: &Path) -> Result<Store> {
    Store::open(
        data_dir,
        StoreOptions {
            embedding_dim: DIM,
            embedding_model: MODEL.into(),
        },
    )
    .context("opening the store")
}

fn only_scopes(scopes: &[(&str, &[&str])]) -> SearchFilter {
    SearchFilter {
        scopes: Some(
            scopes
                .iter()
                .map(|(collection, labels)| {
                    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
                    scope_key(collection, &labels)
                })
                .collect(),
        ),
        ..SearchFilter::default()
    }
}

fn documents_of(hits: &[ChunkHit]) -> Vec<&str> {
    let mut ids: Vec<&str> = hits
        .iter()
        .map(|hit| hit.chunk.document_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Searches "lease" (every old chunk has it) and all four axes within `filter`, returning the
/// documents found by BM25 and by vector search.
fn found(store: &Store, filter: &SearchFilter) -> Result<(Vec<String>, Vec<String>)> {
    let bm25 = scoped_bm25(store, "lease", filter, 100)?;
    let mut vector = Vec::new();
    for axis in 0..DIM {
        vector.extend(scoped_vector(store, &axis_vector(axis), filter, 100)?);
    }
    let own = |ids: Vec<&str>| ids.into_iter().map(str::to_string).collect::<Vec<_>>();
    Ok((own(documents_of(&bm25)), own(documents_of(&vector))))
}

fn assert_scoped(store: &Store) -> Result<()> {
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    let (bm25, vector) = found(store, &only_scopes(&[("law", &[])]))?;
    ensure!(
        bm25 == ["lease"] && vector == ["lease"],
        "{bm25:?} {vector:?}"
    );
    let (bm25, vector) = found(
        store,
        &only_scopes(&[("law", &["privileged", "work product"])]),
    )?;
    ensure!(
        bm25 == ["memo"] && vector == ["memo"],
        "{bm25:?} {vector:?}"
    );
    let (bm25, vector) = found(store, &only_scopes(&[("law", &["phi"])]))?;
    ensure!(
        bm25 == ["record"] && vector == ["record"],
        "{bm25:?} {vector:?}"
    );
    let (bm25, vector) = found(store, &SearchFilter::default())?;
    ensure!(bm25 == strings(&["lease", "memo", "record"]), "{bm25:?}");
    ensure!(
        vector == strings(&["lease", "memo", "record"]),
        "{vector:?}"
    );
    let report = store.check_consistency()?;
    ensure!(report.is_consistent(), "{report:?}");
    ensure!(report.catalog_chunks == 4, "{report:?}");
    Ok(())
}

#[test]
fn old_store_is_migrated_on_open() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    write_old_store(data_dir.path())?;
    let format_file = data_dir.path().join(vellum_store::FORMAT_FILE);
    ensure!(!format_file.exists(), "the old format had no version file");
    let store = open(data_dir.path())?;
    ensure!(
        std::fs::read_to_string(&format_file)?
            == format!("vellum-data {}\n", vellum_store::DATA_FORMAT),
        "the migrated folder records its format"
    );
    ensure!(
        store.recovery_report().rolled_back == [DocumentId("ghost".into())],
        "{:?}",
        store.recovery_report()
    );
    let memo = store
        .get_document(&DocumentId("memo".into()))?
        .context("memo")?;
    ensure!(
        memo.labels == ["privileged", "work product"],
        "{:?}",
        memo.labels
    );
    let lease = store
        .get_document(&DocumentId("lease".into()))?
        .context("lease")?;
    ensure!(lease.labels.is_empty() && lease.metadata.contains_key("origin"));
    let scopes: Vec<(String, Vec<String>, u64)> = store
        .list_scopes()?
        .into_iter()
        .map(|scope| (scope.collection, scope.labels, scope.num_documents))
        .collect();
    ensure!(
        scopes
            == [
                ("law".to_string(), vec![], 1),
                ("law".to_string(), vec!["phi".to_string()], 1),
                (
                    "law".to_string(),
                    vec!["privileged".to_string(), "work product".to_string()],
                    1
                ),
            ],
        "{scopes:?}"
    );
    assert_scoped(&store)?;
    for leftover in ["fulltext.old", "fulltext.rebuild"] {
        ensure!(!data_dir.path().join(leftover).exists(), "{leftover} left");
    }

    // The migrated store takes new documents as a new one would.
    store.commit_batch(vec![(
        NewDocument {
            id: DocumentId("new".into()),
            collection: "law".into(),
            source_path: "law/new.txt".into(),
            title: "New".into(),
            sha256: "01".into(),
            format: "txt".into(),
            num_pages: 1,
            metadata: Default::default(),
            labels: vec!["phi".into()],
        },
        vec![NewChunk {
            chunk_id: ChunkId("new-0".into()),
            ordinal: 0,
            page: 1,
            text: "A new lease for the clinic.".into(),
            vector: axis_vector(1),
        }],
    )])?;
    let (bm25, vector) = found(&store, &only_scopes(&[("law", &["phi"])]))?;
    ensure!(
        bm25 == ["new", "record"] && vector == ["new", "record"],
        "{bm25:?} {vector:?}"
    );
    drop(store);

    // Reopening migrates nothing more and keeps everything.
    let store = open(data_dir.path())?;
    ensure!(store.check_consistency()?.is_consistent());
    ensure!(store.list_scopes()?.len() == 3);
    Ok(())
}

/// Every file under `dir` with its bytes, to show that a refused open changed nothing.
fn snapshot(dir: &Path) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            files.extend(snapshot(&entry.path())?);
        } else {
            files.push((entry.path(), std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn a_folder_from_a_newer_version_is_refused_untouched() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    write_old_store(data_dir.path())?;
    drop(open(data_dir.path())?);
    let newer = vellum_store::DATA_FORMAT + 1;
    std::fs::write(
        data_dir.path().join(vellum_store::FORMAT_FILE),
        format!("vellum-data {newer}\n"),
    )?;
    let before = snapshot(data_dir.path())?;
    let refused = match open(data_dir.path()) {
        Ok(_) => anyhow::bail!("a format-{newer} folder opened"),
        Err(err) => format!("{err:#}"),
    };
    ensure!(
        refused.contains(&format!("format {newer}")) && refused.contains("newer Vellum"),
        "{refused}"
    );
    ensure!(
        snapshot(data_dir.path())? == before,
        "the refused open changed files"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[test]
fn interrupted_migrations_are_finished_at_the_next_open() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let data = data_dir.path();
    write_old_store(data)?;
    let old_index = tempfile::tempdir()?;
    copy_dir(&data.join("fulltext"), old_index.path())?;
    drop(open(data)?);

    // A crash between the two renames of the Tantivy swap: the index is at `.old`, the
    // complete rebuilt one at `.rebuild`, no `fulltext/`.
    std::fs::rename(data.join("fulltext"), data.join("fulltext.rebuild"))?;
    copy_dir(old_index.path(), &data.join("fulltext.old"))?;
    let store = open(data)?;
    assert_scoped(&store)?;
    ensure!(!data.join("fulltext.old").exists() && !data.join("fulltext.rebuild").exists());
    drop(store);

    // A crash during a rebuild: a partial `.rebuild` next to the index is discarded.
    std::fs::create_dir_all(data.join("fulltext.rebuild"))?;
    std::fs::write(data.join("fulltext.rebuild/partial"), b"half")?;
    let store = open(data)?;
    assert_scoped(&store)?;
    ensure!(!data.join("fulltext.rebuild").exists());
    drop(store);

    // A crash after LanceDB got its column but before labelled rows got their scope: every
    // row has the unlabelled scope, and the catalog still says the migration is pending.
    let uri = data
        .join("vectors")
        .to_str()
        .context("utf-8 path")?
        .to_string();
    tokio::runtime::Runtime::new()?.block_on(async move {
        let connection = lancedb::connect(&uri).execute().await?;
        let table = connection.open_table("chunks").execute().await?;
        table
            .update()
            .column("scope", "concat(collection, '\u{1f}')")
            .execute()
            .await?;
        lancedb::Result::Ok(())
    })?;
    let catalog = rusqlite::Connection::open(data.join("catalog.sqlite"))?;
    catalog.execute(
        "INSERT INTO settings (key, value) VALUES ('scope_migration', 'pending')",
        [],
    )?;
    drop(catalog);
    let store = open(data)?;
    assert_scoped(&store)?;
    Ok(())
}
