//! The one check of a collection name, for every way documents arrive (uploads, `vellum
//! ingest`, `vellum watch`). Labels have theirs in the store (`vellum_store::normalize_labels`).

use crate::service::{ServiceError, ServiceResult};

/// A collection name that passed [`CollectionName::parse`]: 1-128 characters, no control
/// characters, no `:` (names with `:` are reserved, e.g. [`crate::service::ACCOUNTS_RESOURCE`]),
/// no `/`, and none of the names the policies give a meaning of their own (`walled-<matter>` is
/// an ethical wall's group: a collection of that name would be "their matter" to everyone
/// behind the wall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionName(String);

impl CollectionName {
    /// Checks a name as a client or the command line gave it (surrounding spaces trimmed).
    pub fn parse(name: &str) -> ServiceResult<CollectionName> {
        let name = name.trim();
        let ok = !name.is_empty()
            && name.chars().count() <= 128
            && !name.chars().any(|c| c.is_control() || c == ':' || c == '/');
        if !ok {
            return Err(ServiceError::BadRequest(
                "collection must be 1-128 characters, without control characters, ':' or '/'"
                    .into(),
            ));
        }
        if let Some(reason) = vellum_authz::reserved_collection_name(name) {
            return Err(ServiceError::BadRequest(format!(
                "collection {name:?} is reserved: {reason}"
            )));
        }
        Ok(CollectionName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}
