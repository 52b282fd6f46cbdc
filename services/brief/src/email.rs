//! (to be written)

use crate::{Document, Item};

/// The items for this kind of document.
pub fn summary(_document: &Document<'_>) -> Vec<Item> {
    Vec::new()
}
