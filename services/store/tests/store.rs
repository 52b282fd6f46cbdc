//! Integration tests of `Store`: the three stores stay in step through commits, replacements,
//! deletions and reopening, and searches honour collection filters and readiness.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
mod common;
use common::{scoped_bm25, scoped_chunks, scoped_list, scoped_vector, SearchFilter};
use vellum_store::{
    ChunkHit, ChunkId, DocumentId, DocumentState, ErrorKind, NewChunk, NewDocument, Store,
    StoreOptions,
};

const DIM: usize = 8;
const MODEL: &str = "fake-embedder-8";

fn options(embedding_dim: usize, embedding_model: &str) -> StoreOptions {
    StoreOptions {
        embedding_dim,
        embedding_model: embedding_model.into(),
    }
}

fn open(data_dir: &Path) -> Result<Store> {
    Store::open(data_dir, options(DIM, MODEL)).context("opening the store")
}

/// A unit vector mostly along `axis`, with a little of the next axis so that vectors are not
/// all orthogonal.
fn unit_vector(axis: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; DIM];
    vector[axis % DIM] = 0.96;
    vector[(axis + 1) % DIM] = 0.28;
    vector
}

fn document(id: &str, collection: &str, source_path: &str, title: &str) -> NewDocument {
    NewDocument {
        id: DocumentId(id.into()),
        collection: collection.into(),
        source_path: source_path.into(),
        title: title.into(),
        sha256: format!("sha-of-{id}"),
        format: "txt".into(),
        num_pages: 1,
        metadata: BTreeMap::from([("origin".to_string(), "test".to_string())]),
        labels: Vec::new(),
    }
}

fn chunk(document_id: &str, ordinal: u32, text: &str, axis: usize) -> NewChunk {
    NewChunk {
        chunk_id: ChunkId(format!("{document_id}-{ordinal}")),
        ordinal,
        page: 1 + ordinal / 2,
        text: text.into(),
        vector: unit_vector(axis),
    }
}

fn all() -> SearchFilter {
    SearchFilter::default()
}

fn only(collections: &[&str]) -> SearchFilter {
    SearchFilter {
        collections: Some(collections.iter().map(|name| name.to_string()).collect()),
        ..SearchFilter::default()
    }
}

fn chunk_ids(hits: &[ChunkHit]) -> Vec<&str> {
    hits.iter().map(|hit| hit.chunk.chunk_id.as_str()).collect()
}

/// Two documents in collection `biology`, one in `physics`.
fn commit_small_corpus(store: &Store) -> Result<()> {
    store.commit_batch(vec![
        (
            document(
                "photo",
                "biology",
                "bio/photosynthesis.txt",
                "Photosynthesis",
            ),
            vec![
                chunk(
                    "photo",
                    0,
                    "Plants convert sunlight into chemical energy.",
                    0,
                ),
                chunk("photo", 1, "Chlorophyll absorbs red and blue light.", 1),
            ],
        ),
        (
            document("cells", "biology", "bio/cells.txt", "Cell biology"),
            vec![chunk(
                "cells",
                0,
                "Mitochondria are the powerhouse of the cell.",
                2,
            )],
        ),
        (
            document("optics", "physics", "phys/optics.txt", "Optics"),
            vec![chunk("optics", 0, "Light bends when it enters water.", 4)],
        ),
    ])?;
    Ok(())
}

#[test]
fn committed_chunk_is_found_by_both_searches() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;

    let bm25 = scoped_bm25(&store, "mitochondria powerhouse", &all(), 5)?;
    ensure!(
        chunk_ids(&bm25).first() == Some(&"cells-0"),
        "bm25 hits: {:?}",
        chunk_ids(&bm25)
    );
    let top = &bm25[0];
    ensure!(top.title == "Cell biology" && top.source_path == "bio/cells.txt");
    ensure!(top.chunk.collection == "biology" && top.chunk.document_id.as_str() == "cells");
    ensure!(top.score > 0.0);

    // Stemming: "converting" matches "convert".
    let stemmed = scoped_bm25(&store, "converting sunlight", &all(), 5)?;
    ensure!(
        chunk_ids(&stemmed).first() == Some(&"photo-0"),
        "{:?}",
        chunk_ids(&stemmed)
    );

    let vector = scoped_vector(&store, &unit_vector(2), &all(), 5)?;
    ensure!(
        chunk_ids(&vector).first() == Some(&"cells-0"),
        "vector hits: {:?}",
        chunk_ids(&vector)
    );
    ensure!(
        (vector[0].score - 1.0).abs() < 1e-4,
        "score of an identical vector: {}",
        vector[0].score
    );
    ensure!(vector[0].chunk.text == "Mitochondria are the powerhouse of the cell.");
    ensure!(vector[0].title == "Cell biology");
    ensure!(
        vector.windows(2).all(|pair| pair[0].score >= pair[1].score),
        "vector hits not sorted by score"
    );

    let stats = store.stats()?;
    ensure!(
        stats.num_documents == 3 && stats.num_chunks == 4,
        "{stats:?}"
    );

    let record = store
        .get_document(&DocumentId("photo".into()))?
        .context("photo is stored")?;
    ensure!(record.state == DocumentState::Ready && record.num_chunks == 2);
    ensure!(record.metadata.get("origin").map(String::as_str) == Some("test"));
    let chunks = scoped_chunks(&store, &record.id)?;
    ensure!(
        chunk_ids_of(&chunks) == ["photo-0", "photo-1"],
        "{:?}",
        chunk_ids_of(&chunks)
    );
    Ok(())
}

fn chunk_ids_of(chunks: &[vellum_store::StoredChunk]) -> Vec<&str> {
    chunks.iter().map(|chunk| chunk.chunk_id.as_str()).collect()
}

#[test]
fn collection_filter_excludes_other_collections_in_both_engines() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;

    // "light" occurs in both collections; the vector is closest to the physics chunk.
    let bm25 = scoped_bm25(&store, "light", &only(&["biology"]), 100)?;
    ensure!(!bm25.is_empty());
    ensure!(
        bm25.iter().all(|hit| hit.chunk.collection == "biology"),
        "{:?}",
        chunk_ids(&bm25)
    );
    let bm25_physics = scoped_bm25(&store, "light", &only(&["physics"]), 100)?;
    ensure!(
        chunk_ids(&bm25_physics) == ["optics-0"],
        "{:?}",
        chunk_ids(&bm25_physics)
    );

    let vector = scoped_vector(&store, &unit_vector(4), &only(&["biology"]), 100)?;
    ensure!(
        vector.len() == 3,
        "all three biology chunks: {:?}",
        chunk_ids(&vector)
    );
    ensure!(vector.iter().all(|hit| hit.chunk.collection == "biology"));
    let vector_both = scoped_vector(&store, &unit_vector(4), &only(&["biology", "physics"]), 100)?;
    ensure!(vector_both.len() == 4 && vector_both[0].chunk.chunk_id.as_str() == "optics-0");

    // A collection name needing SQL quoting is a plain value, not syntax.
    let quoted = scoped_vector(&store, &unit_vector(4), &only(&["bio' OR '1'='1"]), 100)?;
    ensure!(quoted.is_empty(), "{:?}", chunk_ids(&quoted));

    // An empty list means no collection at all.
    ensure!(scoped_bm25(&store, "light", &only(&[]), 100)?.is_empty());
    ensure!(scoped_vector(&store, &unit_vector(4), &only(&[]), 100)?.is_empty());

    let listed = scoped_list(&store, &only(&["physics"]))?;
    ensure!(listed.len() == 1 && listed[0].id.as_str() == "optics");
    let sorted: Vec<String> = scoped_list(&store, &all())?
        .into_iter()
        .map(|record| record.source_path)
        .collect();
    ensure!(
        sorted == ["bio/cells.txt", "bio/photosynthesis.txt", "phys/optics.txt"],
        "{sorted:?}"
    );
    let collections = store.list_collections()?;
    ensure!(
        collections == [("biology".to_string(), 2), ("physics".to_string(), 1)],
        "{collections:?}"
    );
    Ok(())
}

#[test]
fn recommitting_the_same_id_is_a_no_op() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;
    let before = store.stats()?;
    let original = store
        .get_document(&DocumentId("cells".into()))?
        .context("cells is stored")?;

    // Same id, different content: the stored version wins.
    let records = store.commit_batch(vec![(
        document("cells", "biology", "bio/cells.txt", "Renamed"),
        vec![chunk("cells", 0, "Ribosomes build proteins.", 3)],
    )])?;
    ensure!(
        records.len() == 1 && records[0].title == "Cell biology",
        "{records:?}"
    );
    ensure!(records[0].ingested_at == original.ingested_at);

    let after = store.stats()?;
    ensure!(
        after.fulltext_opstamp == before.fulltext_opstamp,
        "{before:?} {after:?}"
    );
    ensure!(
        after.vectors_version == before.vectors_version,
        "{before:?} {after:?}"
    );
    ensure!(after.num_chunks == before.num_chunks);
    ensure!(scoped_bm25(&store, "ribosomes", &all(), 10)?.is_empty());
    Ok(())
}

#[test]
fn new_version_replaces_the_old_one_in_all_three_stores() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;
    store.commit_batch(vec![(
        document("report-v1", "biology", "bio/report.txt", "Report"),
        vec![
            chunk("report-v1", 0, "The zebra population declined.", 5),
            chunk("report-v1", 1, "Zebra stripes confuse flies.", 6),
        ],
    )])?;
    ensure!(chunk_ids(&scoped_bm25(&store, "zebra", &all(), 10)?).len() == 2);

    let records = store.commit_batch(vec![(
        document("report-v2", "biology", "bio/report.txt", "Report, revised"),
        vec![chunk("report-v2", 0, "The yak population recovered.", 7)],
    )])?;
    ensure!(records.len() == 1 && records[0].state == DocumentState::Ready);

    ensure!(scoped_bm25(&store, "zebra", &all(), 100)?.is_empty());
    ensure!(chunk_ids(&scoped_bm25(&store, "yak", &all(), 100)?) == ["report-v2-0"]);
    let vector = scoped_vector(&store, &unit_vector(5), &all(), 100)?;
    ensure!(
        vector
            .iter()
            .all(|hit| hit.chunk.document_id.as_str() != "report-v1"),
        "{:?}",
        chunk_ids(&vector)
    );
    ensure!(
        vector.len() == 5,
        "4 corpus chunks + 1 new: {:?}",
        chunk_ids(&vector)
    );

    ensure!(store
        .get_document(&DocumentId("report-v1".into()))?
        .is_none());
    let old_chunks = scoped_chunks(&store, &DocumentId("report-v1".into()));
    ensure!(matches!(old_chunks, Err(ref error) if error.kind() == ErrorKind::NotFound));
    let current = store
        .find_document("biology", "bio/report.txt")?
        .context("the source has a document")?;
    ensure!(current.id.as_str() == "report-v2" && current.title == "Report, revised");
    ensure!(chunk_ids_of(&scoped_chunks(&store, &current.id)?) == ["report-v2-0"]);
    let stats = store.stats()?;
    ensure!(
        stats.num_documents == 4 && stats.num_chunks == 5,
        "{stats:?}"
    );
    Ok(())
}

#[test]
fn deleted_document_leaves_all_three_stores() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;
    let id = DocumentId("photo".into());
    store.delete_document(&id)?;

    ensure!(store.get_document(&id)?.is_none());
    ensure!(store
        .find_document("biology", "bio/photosynthesis.txt")?
        .is_none());
    ensure!(scoped_bm25(&store, "chlorophyll sunlight", &all(), 100)?.is_empty());
    let vector = scoped_vector(&store, &unit_vector(0), &all(), 100)?;
    ensure!(chunk_ids(&vector).len() == 2, "{:?}", chunk_ids(&vector));
    ensure!(vector.iter().all(|hit| hit.chunk.document_id != id));
    ensure!(scoped_list(&store, &all())?.len() == 2);
    let stats = store.stats()?;
    ensure!(
        stats.num_documents == 2 && stats.num_chunks == 2,
        "{stats:?}"
    );

    let again = store.delete_document(&id);
    ensure!(
        matches!(again, Err(ref error) if error.kind() == ErrorKind::NotFound),
        "{again:?}"
    );
    Ok(())
}

#[test]
fn reopened_store_keeps_its_data() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    {
        let store = open(data_dir.path())?;
        commit_small_corpus(&store)?;
        store.optimize()?;
    }
    let store = open(data_dir.path())?;
    ensure!(chunk_ids(&scoped_bm25(&store, "mitochondria", &all(), 5)?) == ["cells-0"]);
    ensure!(chunk_ids(&scoped_vector(&store, &unit_vector(4), &all(), 1)?) == ["optics-0"]);
    ensure!(scoped_list(&store, &all())?.len() == 3);
    let stats = store.stats()?;
    ensure!(
        stats.num_documents == 3 && stats.num_chunks == 4,
        "{stats:?}"
    );

    // The reopened store accepts new commits and replacements.
    store.commit_batch(vec![(
        document("optics-2", "physics", "phys/optics.txt", "Optics"),
        vec![chunk("optics-2", 0, "Prisms split white light.", 4)],
    )])?;
    ensure!(chunk_ids(&scoped_vector(&store, &unit_vector(4), &all(), 1)?) == ["optics-2-0"]);
    Ok(())
}

#[test]
fn hostile_queries_do_not_error() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;
    let hostile = [
        "AND OR ( \" : *",
        "",
        "   ",
        "\"",
        "\"unbalanced phrase",
        "title:",
        "collection:physics light",
        "a:b:c",
        "((((",
        "))",
        "-",
        "+",
        "NOT",
        "AND",
        "[1 TO",
        "{",
        "*",
        "~2",
        "^3",
        "\\",
        "light^",
        "light~",
        "'; DROP TABLE documents; --",
        "é ü 中文 🦀",
    ];
    for query in hostile {
        scoped_bm25(&store, query, &all(), 10).with_context(|| format!("query {query:?}"))?;
        scoped_bm25(&store, query, &only(&["biology"]), 10)
            .with_context(|| format!("query {query:?} with a filter"))?;
    }
    ensure!(scoped_bm25(&store, "", &all(), 10)?.is_empty());
    ensure!(scoped_bm25(&store, "light", &all(), 0)?.is_empty());
    // Field syntax is neutralised: a collection prefix cannot widen a filter.
    let widened = scoped_bm25(&store, "collection:physics light", &only(&["biology"]), 10)?;
    ensure!(widened.iter().all(|hit| hit.chunk.collection == "biology"));
    ensure!(!widened.is_empty(), "the word light still matches");
    Ok(())
}

/// A docket number is found as a whole: the chunk that holds it ranks first, and chunks that
/// only share its parts (`23`, `cv`) do not match at all.
#[test]
fn identifiers_match_as_a_whole() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    store.commit_batch(vec![
        (
            document("order", "court", "court/order.txt", "Order"),
            vec![chunk(
                "order",
                0,
                "ORDER in case 1:23-cv-00123 granting the motion to dismiss.",
                0,
            )],
        ),
        (
            document("other", "court", "court/other.txt", "Other"),
            vec![
                chunk("other", 0, "Filed 23 cv motions; see cv 23 and 1 more.", 1),
                chunk("other", 1, "Case 1:23-cv-00999, a different docket.", 2),
            ],
        ),
    ])?;
    for query in [
        "1:23-cv-00123",
        "docket 1:23-cv-00123?",
        "case no. 1:23-cv-00123",
    ] {
        let hits = scoped_bm25(&store, query, &all(), 10)?;
        ensure!(
            chunk_ids(&hits).first() == Some(&"order-0"),
            "{query}: {:?}",
            chunk_ids(&hits)
        );
        ensure!(
            !chunk_ids(&hits).contains(&"other-0"),
            "{query}: loose parts matched: {:?}",
            chunk_ids(&hits)
        );
    }
    // A quoted phrase matches its words in order only ("motions" alone does not).
    let hits = scoped_bm25(&store, "\"motion to dismiss\"", &all(), 10)?;
    ensure!(chunk_ids(&hits) == ["order-0"], "{:?}", chunk_ids(&hits));
    Ok(())
}

#[test]
fn reopening_with_another_dimension_fails_clearly() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    {
        let store = open(data_dir.path())?;
        commit_small_corpus(&store)?;
    }
    for model in [MODEL, "another-model"] {
        let error = match Store::open(data_dir.path(), options(4, model)) {
            Ok(_) => anyhow::bail!("opening with dim 4 and model {model} succeeded"),
            Err(error) => error,
        };
        ensure!(error.kind() == ErrorKind::Conflict, "{error}");
        ensure!(error.to_string().contains("re-ingest needed"), "{error}");
    }

    // Without the catalog, the vector table itself still refuses the other dimension.
    fs_remove(&data_dir.path().join("catalog.sqlite"))?;
    let error = match Store::open(data_dir.path(), options(4, MODEL)) {
        Ok(_) => anyhow::bail!("opening a dimension-8 vector table with dimension 4 succeeded"),
        Err(error) => error,
    };
    ensure!(error.kind() == ErrorKind::Conflict, "{error}");
    let message = error.to_string();
    ensure!(
        message.contains("dimension 8") && message.contains("re-ingest"),
        "{message}"
    );
    Ok(())
}

/// Another embedder of the same dimension: its vectors never meet the first one's. The old
/// collections refuse vector searches and ingest (saying how to re-embed); a new collection
/// takes the new embedder; a re-embed (interrupted, then finished) gives the old collection
/// the new embedder's vectors, and the first embedder is then refused there in turn.
#[test]
fn another_embedder_is_refused_per_collection_until_reembedded() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    {
        let store = open(data_dir.path())?;
        commit_small_corpus(&store)?;
    }
    let store = Store::open(data_dir.path(), options(DIM, "another-model"))?;
    ensure!(store.collection_embedder("biology")? == MODEL);

    let refused = |result: vellum_store::Result<Vec<ChunkHit>>, what: &str| -> Result<String> {
        let error = match result {
            Ok(hits) => anyhow::bail!("{what} succeeded: {:?}", chunk_ids(&hits)),
            Err(error) => error,
        };
        ensure!(error.kind() == ErrorKind::Conflict, "{what}: {error}");
        Ok(error.to_string())
    };
    let message = refused(
        scoped_vector(&store, &unit_vector(0), &all(), 3),
        "vector search",
    )?;
    ensure!(
        message.contains("\"biology\"")
            && message.contains(MODEL)
            && message.contains("vellum reembed biology"),
        "{message}"
    );
    refused(
        scoped_vector(&store, &unit_vector(4), &only(&["physics"]), 3),
        "vector search of physics",
    )?;
    // Full-text search does not use vectors: it goes on working.
    ensure!(!scoped_bm25(&store, "sunlight", &all(), 3)?.is_empty());
    // Ingest into an old collection is refused; nothing is written.
    let error = store
        .commit_batch(vec![(
            document("more", "biology", "bio/more.txt", "More"),
            vec![chunk("more", 0, "Leaves are green.", 3)],
        )])
        .err()
        .context("ingest into biology with another embedder succeeded")?;
    ensure!(error.kind() == ErrorKind::Conflict, "{error}");
    ensure!(store.get_document(&DocumentId("more".into()))?.is_none());

    // A new collection takes the running embedder and is searchable with it.
    store.commit_batch(vec![(
        document("tides", "oceans", "sea/tides.txt", "Tides"),
        vec![chunk("tides", 0, "The moon pulls the oceans.", 6)],
    )])?;
    ensure!(store.collection_embedder("oceans")? == "another-model");
    let hits = scoped_vector(&store, &unit_vector(6), &only(&["oceans"]), 3)?;
    ensure!(chunk_ids(&hits) == ["tides-0"], "{:?}", chunk_ids(&hits));

    // Re-embedding biology: the "new embedder" moves every vector to the next axis. The first
    // attempt fails half-way (after one document); the collection stays refused.
    let new_vector = |text: &str| {
        let axis = if text.contains("sunlight") { 5 } else { 7 };
        unit_vector(axis)
    };
    let mut calls = 0;
    let mut failing = |texts: &[&str]| {
        calls += 1;
        if calls > 1 {
            return Err("the embedder stopped".to_string());
        }
        Ok(texts.iter().map(|text| new_vector(text)).collect())
    };
    let error = store
        .reembed_collection("biology", 1, &mut failing, &mut |_| {})
        .err()
        .context("a failing re-embed succeeded")?;
    ensure!(
        error.to_string().contains("the embedder stopped"),
        "{error}"
    );
    ensure!(store.collection_embedder("biology")? == "reembedding:another-model");
    let message = refused(
        scoped_vector(&store, &unit_vector(5), &only(&["biology"]), 3),
        "search after an interrupted re-embed",
    )?;
    ensure!(message.contains("did not finish"), "{message}");

    let mut steps = Vec::new();
    let done = store.reembed_collection(
        "biology",
        1,
        &mut |texts| Ok(texts.iter().map(|text| new_vector(text)).collect()),
        &mut |progress| steps.push(progress.documents_done),
    )?;
    ensure!(steps == [1, 2], "{steps:?}");
    ensure!(
        done.documents_total == 2 && done.chunks_done == 3,
        "{done:?}"
    );
    ensure!(done.previous == "reembedding:another-model", "{done:?}");
    ensure!(store.collection_embedder("biology")? == "another-model");
    // The new vectors are the ones searched; chunk text, pages and the other stores are as
    // they were.
    let hits = scoped_vector(&store, &unit_vector(5), &only(&["biology"]), 1)?;
    ensure!(chunk_ids(&hits) == ["photo-0"], "{:?}", chunk_ids(&hits));
    ensure!(hits[0].chunk.text == "Plants convert sunlight into chemical energy.");
    ensure!(hits[0].score > 0.99, "{}", hits[0].score);
    let consistency = store.check_consistency()?;
    ensure!(consistency.is_consistent(), "{consistency:?}");
    ensure!(consistency.vector_chunks == 5, "{consistency:?}");
    drop(store);

    // The first embedder is now the stranger in biology (physics is still its own).
    let store = open(data_dir.path())?;
    refused(
        scoped_vector(&store, &unit_vector(0), &only(&["biology"]), 3),
        "the first embedder in the re-embedded collection",
    )?;
    ensure!(!scoped_vector(&store, &unit_vector(4), &only(&["physics"]), 3)?.is_empty());
    Ok(())
}

fn fs_remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let sidecar = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default()
        ));
        if sidecar.exists() {
            std::fs::remove_file(&sidecar)?;
        }
    }
    Ok(())
}

#[test]
fn invalid_batches_write_nothing() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    let mut short_vector = chunk("bad", 0, "too short", 0);
    short_vector.vector.truncate(3);
    let mut not_finite = chunk("nan", 0, "not a number", 0);
    not_finite.vector[0] = f32::NAN;
    let cases = vec![
        vec![(document("bad", "c", "bad.txt", "Bad"), vec![short_vector])],
        vec![(document("nan", "c", "nan.txt", "NaN"), vec![not_finite])],
        vec![
            (
                document("twice", "c", "one.txt", "A"),
                vec![chunk("twice", 0, "a", 0)],
            ),
            (
                document("twice", "c", "two.txt", "B"),
                vec![chunk("twice", 0, "b", 0)],
            ),
        ],
        vec![
            (
                document("first", "c", "same.txt", "A"),
                vec![chunk("first", 0, "a", 0)],
            ),
            (
                document("second", "c", "same.txt", "B"),
                vec![chunk("second", 0, "b", 0)],
            ),
        ],
        vec![(
            document("dup-chunk", "c", "dup.txt", "Dup"),
            vec![chunk("dup-chunk", 0, "a", 0), chunk("dup-chunk", 0, "b", 1)],
        )],
        vec![(document("", "c", "empty-id.txt", "Empty"), Vec::new())],
    ];
    for batch in cases {
        let ids: Vec<String> = batch.iter().map(|(doc, _)| doc.id.0.clone()).collect();
        let result = store.commit_batch(batch);
        ensure!(
            matches!(result, Err(ref error) if error.kind() == ErrorKind::Invalid),
            "batch {ids:?}: {result:?}"
        );
    }
    let stats = store.stats()?;
    ensure!(stats.num_documents == 0, "{stats:?}");
    ensure!(store.list_collections()?.is_empty());
    let wrong_query = scoped_vector(&store, &[1.0, 0.0], &all(), 5);
    ensure!(matches!(wrong_query, Err(ref error) if error.kind() == ErrorKind::Invalid));
    Ok(())
}

#[test]
fn searches_run_while_another_thread_commits() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_small_corpus(&store)?;
    std::thread::scope(|scope| -> Result<()> {
        let searcher = scope.spawn(|| -> Result<usize> {
            let mut num_searches = 0;
            for _ in 0..20 {
                // Old and new versions switch atomically: never two lamp versions at once.
                let hits = scoped_bm25(&store, "lamp", &all(), 10)?;
                ensure!(
                    hits.len() <= 1,
                    "two versions visible: {:?}",
                    chunk_ids(&hits)
                );
                let hits = scoped_vector(&store, &unit_vector(1), &only(&["physics"]), 10)?;
                let num_lamps = hits
                    .iter()
                    .filter(|hit| hit.chunk.document_id.as_str().starts_with("lamp-"))
                    .count();
                ensure!(
                    num_lamps <= 1,
                    "two versions visible: {:?}",
                    chunk_ids(&hits)
                );
                num_searches += 1;
            }
            Ok(num_searches)
        });
        for version in 0..5 {
            let id = format!("lamp-{version}");
            store.commit_batch(vec![(
                document(&id, "physics", "phys/lamp.txt", "Lamp"),
                vec![chunk(&id, 0, "A lamp emits light.", version)],
            )])?;
        }
        let num_searches = searcher
            .join()
            .map_err(|_| anyhow::anyhow!("the searching thread panicked"))??;
        ensure!(num_searches == 20);
        Ok(())
    })?;
    let lamp = scoped_bm25(&store, "lamp", &all(), 10)?;
    ensure!(chunk_ids(&lamp) == ["lamp-4-0"], "{:?}", chunk_ids(&lamp));
    Ok(())
}

/// Commits 200 documents of 2 chunks in one batch and checks every chunk is searchable.
/// Prints the commit and query times (run with `--nocapture`); no timing is asserted.
#[test]
fn batch_of_two_hundred_documents_is_fully_searchable() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    let words = [
        "protein", "gene", "cell", "virus", "enzyme", "membrane", "neuron", "tissue", "receptor",
        "antibody",
    ];
    let batch: Vec<(NewDocument, Vec<NewChunk>)> = (0..200)
        .map(|index| {
            let id = format!("doc{index:03}");
            let word = words[index % words.len()];
            let chunks = (0..2)
                .map(|ordinal| {
                    let text = format!(
                        "Study {index} part {ordinal}: the {word} binds a marker{index} in \
                         condition {ordinal}."
                    );
                    chunk(&id, ordinal, &text, index + ordinal as usize)
                })
                .collect();
            (
                document(
                    &id,
                    if index % 2 == 0 { "even" } else { "odd" },
                    &format!("{id}.txt"),
                    &id,
                ),
                chunks,
            )
        })
        .collect();

    let started = Instant::now();
    let records = store.commit_batch(batch)?;
    let commit_time = started.elapsed();
    ensure!(records.len() == 200);
    let stats = store.stats()?;
    ensure!(
        stats.num_documents == 200 && stats.num_chunks == 400,
        "{stats:?}"
    );

    let num_queries = 50;
    let started = Instant::now();
    for index in 0..num_queries {
        let hits = scoped_bm25(&store, &format!("marker{index}"), &all(), 10)?;
        ensure!(hits.len() == 2, "marker{index}: {:?}", chunk_ids(&hits));
    }
    let bm25_time = started.elapsed() / num_queries;
    let started = Instant::now();
    for index in 0..num_queries {
        let hits = scoped_vector(&store, &unit_vector(index as usize), &only(&["odd"]), 10)?;
        ensure!(hits.len() == 10 && hits.iter().all(|hit| hit.chunk.collection == "odd"));
    }
    let vector_time = started.elapsed() / num_queries;
    let started = Instant::now();
    store.optimize()?;
    let optimize_time = started.elapsed();
    ensure!(scoped_bm25(&store, "marker7", &all(), 10)?.len() == 2);
    eprintln!(
        "commit_batch(200 docs x 2 chunks): {commit_time:?}; bm25 query: {bm25_time:?}; \
         vector query (filtered): {vector_time:?}; optimize: {optimize_time:?}"
    );
    Ok(())
}

fn labelled(mut document: NewDocument, labels: &[&str]) -> NewDocument {
    document.labels = labels.iter().map(|label| label.to_string()).collect();
    document
}

fn scopes(keys: &[(&str, &[&str])]) -> SearchFilter {
    SearchFilter {
        scopes: Some(
            keys.iter()
                .map(|(collection, labels)| {
                    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
                    vellum_store::scope_key(collection, &labels)
                })
                .collect(),
        ),
        ..SearchFilter::default()
    }
}

fn source_paths(hits: &[ChunkHit]) -> Vec<&str> {
    let mut paths: Vec<&str> = hits.iter().map(|hit| hit.source_path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// `law` holds an unlabelled lease, a privileged memo and a privileged+phi record; `clinic`
/// an unlabelled note. Every chunk mentions "lease" and sits near axis 0.
fn commit_labelled_corpus(store: &Store) -> Result<()> {
    store.commit_batch(vec![
        (
            document("lease", "law", "law/lease.txt", "Lease"),
            vec![chunk("lease", 0, "The lease runs five years.", 0)],
        ),
        (
            labelled(
                document("memo", "law", "law/memo.txt", "Memo"),
                &["Privileged"],
            ),
            vec![
                chunk("memo", 0, "Privileged advice on the lease term.", 0),
                chunk("memo", 1, "More privileged lease strategy.", 1),
            ],
        ),
        (
            labelled(
                document("record", "law", "law/record.txt", "Record"),
                &["phi", " privileged ", "PHI"],
            ),
            vec![chunk(
                "record",
                0,
                "Medical record attached to the lease.",
                0,
            )],
        ),
        (
            document("note", "clinic", "clinic/note.txt", "Note"),
            vec![chunk("note", 0, "Clinic lease for the building.", 0)],
        ),
    ])?;
    Ok(())
}

#[test]
fn labels_are_normalised_stored_and_mirrored_in_metadata() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_labelled_corpus(&store)?;
    let record = store
        .get_document(&DocumentId("record".into()))?
        .context("record")?;
    ensure!(
        record.labels == ["phi", "privileged"],
        "{:?}",
        record.labels
    );
    ensure!(
        record.metadata.get("labels").map(String::as_str) == Some("phi,privileged"),
        "{:?}",
        record.metadata
    );
    ensure!(record.scope_key() == "law\u{1f}phi,privileged");
    let lease = store
        .get_document(&DocumentId("lease".into()))?
        .context("lease")?;
    ensure!(lease.labels.is_empty() && !lease.metadata.contains_key("labels"));

    // Labels given only as metadata (the old way) are kept as a restriction.
    let mut old_style = document("old", "law", "law/old.txt", "Old");
    old_style
        .metadata
        .insert("labels".into(), "Privileged".into());
    let records = store.commit_batch(vec![(old_style, vec![chunk("old", 0, "Old lease.", 0)])])?;
    ensure!(
        records[0].labels == ["privileged"],
        "{:?}",
        records[0].labels
    );

    // An invalid label rejects the batch, naming the label; nothing is written.
    let bad = labelled(
        document("bad", "law", "law/bad.txt", "Bad"),
        &["attorney client"],
    );
    let error = store
        .commit_batch(vec![(bad, vec![chunk("bad", 0, "Bad lease.", 0)])])
        .err()
        .context("an invalid label must be rejected")?;
    ensure!(error.kind() == ErrorKind::Invalid, "{error}");
    ensure!(error.to_string().contains("attorney client"), "{error}");
    ensure!(store.get_document(&DocumentId("bad".into()))?.is_none());

    // The same id with other labels is refused: a label change needs a new version id.
    let relabelled = labelled(document("lease", "law", "law/lease.txt", "Lease"), &["phi"]);
    let error = store
        .commit_batch(vec![(
            relabelled,
            vec![chunk("lease", 0, "The lease runs five years.", 0)],
        )])
        .err()
        .context("relabelling an id in place must be refused")?;
    ensure!(error.to_string().contains("label change"), "{error}");
    ensure!(store.check_consistency()?.is_consistent());
    Ok(())
}

#[test]
fn scope_filter_runs_inside_both_engines_and_listings() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    commit_labelled_corpus(&store)?;
    let query_vector = unit_vector(0);

    // Unlabelled law only: the privileged chunks are closer matches but never come back.
    let unlabelled_law = scopes(&[("law", &[])]);
    let bm25 = scoped_bm25(&store, "privileged lease", &unlabelled_law, 100)?;
    ensure!(
        source_paths(&bm25) == ["law/lease.txt"],
        "{:?}",
        source_paths(&bm25)
    );
    let vector = scoped_vector(&store, &query_vector, &unlabelled_law, 1)?;
    ensure!(
        source_paths(&vector) == ["law/lease.txt"],
        "{:?}",
        source_paths(&vector)
    );

    // Exact label sets: {privileged} does not include {phi, privileged}.
    let privileged = scopes(&[("law", &["privileged"])]);
    let bm25 = scoped_bm25(&store, "lease", &privileged, 100)?;
    ensure!(
        source_paths(&bm25) == ["law/memo.txt"],
        "{:?}",
        source_paths(&bm25)
    );
    ensure!(bm25.len() == 2);
    let vector = scoped_vector(&store, &query_vector, &privileged, 100)?;
    ensure!(
        source_paths(&vector) == ["law/memo.txt"],
        "{:?}",
        source_paths(&vector)
    );
    // The caller's label order does not matter.
    let both = scopes(&[("law", &["privileged", "phi"]), ("clinic", &[])]);
    let bm25 = scoped_bm25(&store, "lease", &both, 100)?;
    ensure!(
        source_paths(&bm25) == ["clinic/note.txt", "law/record.txt"],
        "{:?}",
        source_paths(&bm25)
    );
    let vector = scoped_vector(&store, &query_vector, &both, 100)?;
    ensure!(source_paths(&vector) == ["clinic/note.txt", "law/record.txt"]);

    // Scopes AND collections.
    let and = SearchFilter {
        collections: Some(vec!["clinic".into()]),
        ..both.clone()
    };
    ensure!(source_paths(&scoped_bm25(&store, "lease", &and, 100)?) == ["clinic/note.txt"]);
    ensure!(source_paths(&scoped_vector(&store, &query_vector, &and, 100)?) == ["clinic/note.txt"]);

    // An empty scope list means nothing; a scope of another collection's name means nothing.
    let nothing = SearchFilter {
        scopes: Some(Vec::new()),
        ..SearchFilter::default()
    };
    ensure!(scoped_bm25(&store, "lease", &nothing, 100)?.is_empty());
    ensure!(scoped_vector(&store, &query_vector, &nothing, 100)?.is_empty());
    ensure!(scoped_list(&store, &nothing)?.is_empty());
    let forged = SearchFilter {
        scopes: Some(vec!["law".into(), "law\u{1f}privileged' OR '1'='1".into()]),
        ..SearchFilter::default()
    };
    ensure!(scoped_bm25(&store, "lease", &forged, 100)?.is_empty());
    ensure!(scoped_vector(&store, &query_vector, &forged, 100)?.is_empty());
    ensure!(scoped_list(&store, &forged)?.is_empty());

    // Listings respect scopes (and collections) the same way.
    let listed: Vec<String> = scoped_list(&store, &both)?
        .into_iter()
        .map(|record| record.source_path)
        .collect();
    ensure!(
        listed == ["clinic/note.txt", "law/record.txt"],
        "{listed:?}"
    );
    let listed = scoped_list(&store, &and)?;
    ensure!(listed.len() == 1 && listed[0].source_path == "clinic/note.txt");
    ensure!(store.check_consistency()?.is_consistent());
    Ok(())
}

#[test]
fn list_scopes_counts_ready_documents_and_follows_deletes() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    ensure!(store.list_scopes()?.is_empty());
    commit_labelled_corpus(&store)?;
    let summary = |store: &Store| -> Result<Vec<(String, Vec<String>, u64)>> {
        Ok(store
            .list_scopes()?
            .into_iter()
            .map(|scope| (scope.collection, scope.labels, scope.num_documents))
            .collect())
    };
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    ensure!(
        summary(&store)?
            == [
                ("clinic".into(), vec![], 1),
                ("law".into(), vec![], 1),
                ("law".into(), strings(&["phi", "privileged"]), 1),
                ("law".into(), strings(&["privileged"]), 1),
            ],
        "{:?}",
        summary(&store)?
    );
    let scope = &store.list_scopes()?[2];
    ensure!(scope.scope_key() == "law\u{1f}phi,privileged");

    // A second privileged memo counts in its scope; deleting both removes the scope.
    store.commit_batch(vec![(
        labelled(
            document("memo2", "law", "law/memo2.txt", "Memo 2"),
            &["privileged"],
        ),
        vec![chunk("memo2", 0, "Another privileged lease memo.", 3)],
    )])?;
    ensure!(store.list_scopes()?[3].num_documents == 2);
    store.delete_document(&DocumentId("memo".into()))?;
    ensure!(store.list_scopes()?[3].num_documents == 1);
    store.delete_document(&DocumentId("memo2".into()))?;
    ensure!(
        summary(&store)?
            == [
                ("clinic".into(), vec![], 1),
                ("law".into(), vec![], 1),
                ("law".into(), strings(&["phi", "privileged"]), 1),
            ],
        "{:?}",
        summary(&store)?
    );
    let privileged = scopes(&[("law", &["privileged"])]);
    ensure!(scoped_bm25(&store, "lease", &privileged, 100)?.is_empty());
    ensure!(scoped_vector(&store, &unit_vector(0), &privileged, 100)?.is_empty());

    // A new version with other labels moves the document to its new scope.
    store.commit_batch(vec![(
        labelled(
            document("lease-v2", "law", "law/lease.txt", "Lease"),
            &["phi"],
        ),
        vec![chunk("lease-v2", 0, "The lease runs five years.", 0)],
    )])?;
    ensure!(
        summary(&store)?
            == [
                ("clinic".into(), vec![], 1),
                ("law".into(), strings(&["phi"]), 1),
                ("law".into(), strings(&["phi", "privileged"]), 1),
            ],
        "{:?}",
        summary(&store)?
    );
    ensure!(scoped_bm25(&store, "five years", &scopes(&[("law", &[])]), 100)?.is_empty());
    ensure!(
        source_paths(&scoped_bm25(
            &store,
            "five years",
            &scopes(&[("law", &["phi"])]),
            100
        )?) == ["law/lease.txt"]
    );
    drop(store);
    let store = open(data_dir.path())?;
    ensure!(summary(&store)?.len() == 3);
    ensure!(store.check_consistency()?.is_consistent());
    Ok(())
}

#[test]
fn listing_scopes_of_many_documents_is_cheap() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    // Catalog-sized, not index-sized: documents without chunks keep the test fast.
    let label_sets: [&[&str]; 4] = [&[], &["privileged"], &["phi"], &["phi", "privileged"]];
    let mut batch = Vec::new();
    for index in 0..20_000 {
        let id = format!("doc-{index}");
        // 25 and 4 are coprime: 100 scopes of 200 documents each.
        let collection = format!("matter-{}", index % 25);
        let source = format!("{collection}/{index}.txt");
        batch.push((
            labelled(
                document(&id, &collection, &source, "Doc"),
                label_sets[index % 4],
            ),
            Vec::new(),
        ));
    }
    store.commit_batch(batch)?;
    let started = Instant::now();
    let listed = store.list_scopes()?;
    let elapsed = started.elapsed();
    ensure!(listed.len() == 100, "{}", listed.len());
    ensure!(listed.iter().all(|scope| scope.num_documents == 200));
    // An index-only grouped scan: milliseconds for 20,000 documents on any machine.
    ensure!(elapsed.as_millis() < 200, "listing scopes took {elapsed:?}");
    Ok(())
}

/// Past 50,000 chunks `optimize` builds the IVF vector index; searches then still find a
/// stored vector's own chunk first, and chunks committed after the index are found before and
/// after the next `optimize` folds them in.
#[test]
fn large_tables_get_a_vector_index_that_still_finds_every_chunk() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let store = open(data_dir.path())?;
    // Deterministic pseudo-random unit vectors (xorshift), 50 documents of 1,000 chunks.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next_vector = || {
        let mut vector: Vec<f32> = (0..DIM)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        vector.iter_mut().for_each(|x| *x /= norm);
        vector
    };
    let mut probes = Vec::new();
    for doc in 0..50 {
        let id = format!("doc{doc}");
        let chunks: Vec<NewChunk> = (0..1_000)
            .map(|ordinal| {
                let vector = next_vector();
                if ordinal % 250 == 0 {
                    probes.push((format!("{id}-{ordinal}"), vector.clone()));
                }
                NewChunk {
                    chunk_id: ChunkId(format!("{id}-{ordinal}")),
                    ordinal,
                    page: 1,
                    text: format!("chunk {ordinal} of {id}"),
                    vector,
                }
            })
            .collect();
        let source = format!("big/{id}.txt");
        store.commit_batch(vec![(document(&id, "big", &source, &id), chunks)])?;
    }
    store.optimize()?;
    let indices = data_dir.path().join("vectors/chunks.lance/_indices");
    ensure!(
        indices.is_dir() && std::fs::read_dir(&indices)?.next().is_some(),
        "no vector index was built at 50,000 chunks"
    );
    for (chunk_id, vector) in &probes {
        let hits = scoped_vector(&store, vector, &all(), 5)?;
        ensure!(
            chunk_ids(&hits).first() == Some(&chunk_id.as_str()),
            "{chunk_id}: {:?}",
            chunk_ids(&hits)
        );
    }
    // A chunk committed after the index: found while unindexed, and after it is folded in.
    let late = next_vector();
    store.commit_batch(vec![(
        document("late", "big", "big/late.txt", "late"),
        vec![NewChunk {
            chunk_id: ChunkId("late-0".into()),
            ordinal: 0,
            page: 1,
            text: "late chunk".into(),
            vector: late.clone(),
        }],
    )])?;
    for round in ["before optimize", "after optimize"] {
        let hits = scoped_vector(&store, &late, &all(), 3)?;
        ensure!(
            chunk_ids(&hits).first() == Some(&"late-0"),
            "{round}: {:?}",
            chunk_ids(&hits)
        );
        store.optimize()?;
    }
    Ok(())
}
