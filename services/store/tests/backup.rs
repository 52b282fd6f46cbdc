//! `vellum_store::backup`: a copy whose indexes hold a document its catalog does not (what a
//! commit between the catalog's copy and the indexes' leaves) is repaired by
//! `Store::remove_orphans`, and a copy taken at rest opens as the same store.

use std::path::Path;

use anyhow::{ensure, Result};
use vellum_store::{ChunkId, DocumentId, NewChunk, NewDocument, Store, StoreOptions};

const DIM: usize = 4;

fn open(dir: &Path) -> Result<Store> {
    Ok(Store::open(
        dir,
        StoreOptions {
            embedding_dim: DIM,
            embedding_model: "fake-embedder-4".into(),
        },
    )?)
}

fn commit(store: &Store, id: &str, text: &str) -> Result<()> {
    store.commit_batch(vec![(
        NewDocument {
            id: DocumentId(id.into()),
            collection: "law".into(),
            source_path: format!("law/{id}.txt"),
            title: id.into(),
            sha256: format!("{:0>64}", id.len()),
            format: "txt".into(),
            num_pages: 1,
            metadata: Default::default(),
            labels: vec![],
        },
        vec![NewChunk {
            chunk_id: ChunkId(format!("{id}-0")),
            ordinal: 0,
            page: 1,
            text: text.into(),
            vector: vec![1.0, 0.0, 0.0, 0.0],
        }],
    )])?;
    Ok(())
}

#[test]
fn indexes_ahead_of_the_catalog_are_trimmed_to_it() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (data, early, late) = (
        tmp.path().join("data"),
        tmp.path().join("early"),
        tmp.path().join("late"),
    );
    let store = open(&data)?;
    commit(&store, "lease", "The lease ends in March.")?;
    std::fs::create_dir(&early)?;
    vellum_store::backup::snapshot_store(&data, &early)?;
    commit(&store, "memo", "A memo about the lease.")?;
    std::fs::create_dir(&late)?;
    vellum_store::backup::snapshot_store(&data, &late)?;
    drop(store);

    // The early catalog with the late indexes: "memo" is in Tantivy and LanceDB only.
    std::fs::copy(early.join("catalog.sqlite"), late.join("catalog.sqlite"))?;
    let restored = open(&late)?;
    ensure!(!restored.check_consistency()?.is_consistent());
    let removed = restored.remove_orphans()?;
    ensure!(removed == [DocumentId("memo".into())], "{removed:?}");
    let report = restored.check_consistency()?;
    ensure!(report.is_consistent(), "{:?}", report.mismatches);
    ensure!(report.catalog_chunks == 1);
    ensure!(
        restored.remove_orphans()?.is_empty(),
        "nothing more to trim"
    );

    // The copy taken at rest is the whole store.
    drop(restored);
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy)?;
    vellum_store::backup::snapshot_store(&data, &copy)?;
    let copied = open(&copy)?;
    let report = copied.check_consistency()?;
    ensure!(
        report.is_consistent() && report.catalog_chunks == 2,
        "{report:?}"
    );
    Ok(())
}
