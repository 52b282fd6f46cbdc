//! Access labels and the scope key that carries (collection, labels) into both indexes.
//!
//! A document's *scope* is its collection together with its set of access labels. Every chunk
//! is indexed with its scope's key (a Tantivy `scope` term, a LanceDB `scope` column), so an
//! authorization decision made per scope becomes a term-set clause or a prefilter inside the
//! engines instead of a filter after fetching.
//!
//! Key format: `collection` + U+001F (ASCII unit separator) + the labels sorted and joined by
//! `,`. Labels never contain `,` or U+001F (new labels are limited to `[a-z0-9_-]`; labels
//! migrated from old metadata were split at commas and have control characters replaced), so
//! the *last* U+001F in a key separates the collection (which may contain anything) from the
//! labels, and two different scopes never share a key. An unlabelled document's key is the
//! collection followed by U+001F.

use crate::error::{Error, Result};

/// Separates the collection from the labels in a scope key.
pub(crate) const SCOPE_SEPARATOR: char = '\u{1f}';
/// Separates labels in a scope key and in the catalog's `labels` column.
pub(crate) const LABEL_SEPARATOR: char = ',';
/// Longest label accepted, in bytes.
const MAX_LABEL_BYTES: usize = 64;

/// Returns the scope key of chunks of `collection` carrying `labels` (see the module
/// documentation of the format).
///
/// `labels` should be normalised ([`normalize_labels`]; the store's records and
/// [`crate::ScopeCount`] always are); they are sorted and de-duplicated here as well, so the
/// order in which a caller lists them does not matter. Letters are *not* lowercased: a
/// differently spelled label yields a key no chunk carries, which hides documents rather than
/// revealing them.
pub fn scope_key(collection: &str, labels: &[String]) -> String {
    let mut sorted: Vec<&str> = labels.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut key = String::with_capacity(
        collection.len() + 1 + sorted.iter().map(|label| label.len() + 1).sum::<usize>(),
    );
    key.push_str(collection);
    key.push(SCOPE_SEPARATOR);
    for (position, label) in sorted.iter().enumerate() {
        if position > 0 {
            key.push(LABEL_SEPARATOR);
        }
        key.push_str(label);
    }
    key
}

/// Normalises access labels: trims and lowercases each, drops empty ones, sorts and removes
/// duplicates. Fails with [`Error::InvalidLabel`] for a label with characters other than
/// `a-z`, `0-9`, `_` and `-` (after lowercasing) or longer than 64 bytes.
pub fn normalize_labels<I, S>(labels: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut normalized = Vec::new();
    for label in labels {
        let label = label.as_ref().trim().to_lowercase();
        if label.is_empty() {
            continue;
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(Error::InvalidLabel {
                label,
                detail: format!("longer than {MAX_LABEL_BYTES} bytes"),
            });
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
        {
            return Err(Error::InvalidLabel {
                label,
                detail: format!(
                    "character {bad:?} is not allowed (labels use a-z, 0-9, '_' and '-')"
                ),
            });
        }
        normalized.push(label);
    }
    normalized.sort_unstable();
    normalized.dedup();
    Ok(normalized)
}

/// Reads the comma-separated `labels` metadata entry of documents written before labels were
/// a column, exactly as the server read it then (trimmed, lowercased, sorted, de-duplicated),
/// so that migrated documents keep the labels their policies were evaluated with. Never fails:
/// control characters (which would make scope keys ambiguous) become `_`.
pub(crate) fn labels_from_metadata(value: &str) -> Vec<String> {
    let mut labels: Vec<String> = value
        .split(LABEL_SEPARATOR)
        .map(|label| {
            label
                .trim()
                .to_lowercase()
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect::<String>()
        })
        .filter(|label| !label.is_empty())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

/// Encodes normalised labels for the catalog's `labels` column (comma-joined, `''` for none).
pub(crate) fn encode_labels(labels: &[String]) -> String {
    labels.join(&LABEL_SEPARATOR.to_string())
}

/// Decodes the catalog's `labels` column.
pub(crate) fn decode_labels(value: &str) -> Vec<String> {
    value
        .split(LABEL_SEPARATOR)
        .filter(|label| !label.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[test]
    fn labels_are_trimmed_lowercased_sorted_and_deduplicated() -> Result<()> {
        let labels = normalize_labels([" PHI", "privileged", "", "phi ", "work-product_2"])?;
        assert_eq!(labels, strings(&["phi", "privileged", "work-product_2"]));
        Ok(())
    }

    #[test]
    fn labels_with_other_characters_are_rejected_by_name() {
        for bad in ["attorney client", "a,b", "é", "x\u{1f}", "a.b"] {
            let error = normalize_labels([bad]).err().map(|error| error.to_string());
            let message = error.unwrap_or_default();
            assert!(message.contains("label"), "{bad:?}: {message}");
        }
        assert!(normalize_labels(["a".repeat(65)]).is_err());
    }

    #[test]
    fn scope_keys_are_unambiguous() {
        assert_eq!(scope_key("law", &[]), "law\u{1f}");
        assert_eq!(
            scope_key("law", &strings(&["privileged", "phi"])),
            "law\u{1f}phi,privileged"
        );
        // A collection that looks like a key with labels is still another scope.
        assert_ne!(
            scope_key("law\u{1f}phi", &[]),
            scope_key("law", &strings(&["phi"]))
        );
        assert_ne!(
            scope_key("a,b", &strings(&["c"])),
            scope_key("a", &strings(&["b", "c"]))
        );
    }

    #[test]
    fn metadata_labels_are_read_as_the_server_read_them() {
        assert_eq!(
            labels_from_metadata(" Privileged, attorney client,,privileged"),
            strings(&["attorney client", "privileged"])
        );
        assert_eq!(labels_from_metadata("a\u{1f}b"), strings(&["a_b"]));
        assert_eq!(
            decode_labels(&encode_labels(&strings(&["a", "b"]))),
            strings(&["a", "b"])
        );
        assert!(decode_labels("").is_empty());
    }
}
