//! Stable, content-derived ids of documents and chunks.

use sha2::{Digest, Sha256};
use vellum_store::{ChunkId, DocumentId};

/// A document's id: stable for the same collection, path and content.
pub fn document_id(collection: &str, source_path: &str, sha256: &str) -> DocumentId {
    let digest = Sha256::digest(format!("{collection}\0{source_path}\0{sha256}").as_bytes());
    DocumentId(hex::encode(&digest[..16]))
}

/// A labelled document's id: stable for the same collection, path, content and (normalised)
/// labels. The labels are part of the id because they are part of every chunk's scope: a
/// label change is a new version that replaces the old one in all three stores. Without
/// labels it is [`document_id`], so unlabelled documents keep the ids they always had.
pub fn labelled_document_id(
    collection: &str,
    source_path: &str,
    sha256: &str,
    labels: &[String],
) -> DocumentId {
    if labels.is_empty() {
        return document_id(collection, source_path, sha256);
    }
    let digest = Sha256::digest(
        format!(
            "{collection}\0{source_path}\0{sha256}\0labels\0{}",
            labels.join(",")
        )
        .as_bytes(),
    );
    DocumentId(hex::encode(&digest[..16]))
}

/// A chunk's id: stable for the same document, position and text.
pub fn chunk_id(document_id: &DocumentId, ordinal: u32, text: &str) -> ChunkId {
    let digest = Sha256::digest(format!("{}\0{ordinal}\0{text}", document_id.as_str()).as_bytes());
    ChunkId(hex::encode(&digest[..16]))
}
