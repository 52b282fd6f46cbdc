//! What kind of document this is, from its format and its words.

use crate::{Document, Kind};

/// The kind of summary that fits `document` (a flag may override it).
pub fn detect_kind(document: &Document<'_>) -> Kind {
    match document.format {
        "ccda" => return Kind::Clinical,
        "email" | "msg" => return Kind::Email,
        _ => {}
    }
    Kind::General
}
