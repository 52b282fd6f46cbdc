//! Uploads: the handler streams the file into `<uploads>/.partial/` while hashing it (never
//! the whole file in memory); then [`Service::upload`] checks the policy, detects a duplicate
//! by SHA-256, moves the file into place and ingests it through the same sandboxed pipeline as
//! `vellum ingest`.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vellum_audit::{actions, AuditEvent};
use vellum_authz::{Action, Resource};
use vellum_ingest::pipeline::{ingest_files, labelled_document_id, IngestOptions};
use vellum_store::{DocumentState, SearchFilter};

use crate::api::UploadResponse;
use crate::service::{
    audit_decision, principal_info, take_turn, view, Caller, Service, ServiceError, ServiceResult,
};

/// A file being received: written to a temporary file next to its final place and hashed on
/// the way. Dropped before [`Service::upload`] takes it, the partial file is removed.
pub struct IncomingFile {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
    name: String,
}

impl std::fmt::Debug for IncomingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingFile")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl IncomingFile {
    /// Appends a piece; fails once the file passes the size limit.
    pub fn write(&mut self, bytes: &[u8]) -> ServiceResult<()> {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.max_bytes {
            return Err(ServiceError::TooLarge(format!(
                "the file is larger than this server's upload limit of {} MB (max_upload_mb)",
                self.max_bytes >> 20
            )));
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|err| ServiceError::Internal(format!("writing an upload: {err}")))
    }
}

/// What the form said besides the file.
#[derive(Debug, Default)]
pub struct UploadFields {
    pub collection: Option<String>,
    pub labels: Option<String>,
}

/// A collection name from a client: 1-128 characters, no control characters, no `:` (names
/// with `:` are reserved, e.g. [`crate::service::ACCOUNTS_RESOURCE`]).
fn checked_collection(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && !name.chars().any(|c| c.is_control() || c == ':' || c == '/');
    if ok {
        Ok(name.to_string())
    } else {
        Err(ServiceError::BadRequest(
            "collection must be 1-128 characters, without control characters, ':' or '/'".into(),
        ))
    }
}

/// Labels from a client, comma-separated: each 1-64 of `a-z 0-9 _ -` (lower-cased).
fn checked_labels(text: Option<&str>) -> ServiceResult<Vec<String>> {
    let mut labels = Vec::new();
    for label in text.unwrap_or_default().split(',') {
        let label = label.trim().to_lowercase();
        if label.is_empty() {
            continue;
        }
        let ok = label.len() <= 64
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(ServiceError::BadRequest(format!(
                "label {label:?}: use 1-64 of a-z, 0-9, '_' and '-'"
            )));
        }
        labels.push(label);
    }
    labels.sort();
    labels.dedup();
    Ok(labels)
}

/// The last component of a client's file name, reduced to safe characters.
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned
        .trim_matches(|c: char| c == '.' || c == ' ')
        .to_string();
    if cleaned.is_empty() {
        "upload".to_string()
    } else {
        cleaned
    }
}

impl Service {
    /// Starts receiving a file named `name` (as the client called it).
    pub fn begin_upload(&self, name: &str) -> ServiceResult<IncomingFile> {
        let partial = self.uploads.dir.join(".partial");
        std::fs::create_dir_all(&partial).map_err(|err| {
            ServiceError::Internal(format!("creating {}: {err}", partial.display()))
        })?;
        let file = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&partial)
            .map_err(|err| ServiceError::Internal(format!("creating an upload file: {err}")))?;
        Ok(IncomingFile {
            file,
            hasher: Sha256::new(),
            size: 0,
            max_bytes: self.uploads.max_bytes,
            name: safe_file_name(name),
        })
    }

    /// Checks the policy, detects duplicates and ingests a received file. The audit record
    /// has the file's SHA-256, size, collection, labels and the document it became.
    pub fn upload(
        &self,
        caller: &Caller,
        fields: UploadFields,
        incoming: IncomingFile,
    ) -> ServiceResult<UploadResponse> {
        let mut event = self
            .audit_event(caller, actions::DOCUMENT_UPLOAD)
            .detail("sha256", hex::encode(incoming.hasher.clone().finalize()))
            .detail("bytes", incoming.size.to_string());
        let result = self.upload_unaudited(caller, fields, incoming, &mut event);
        if let Ok(response) = &result {
            event.resource = Some(response.document.id.clone());
            event
                .detail
                .insert("duplicate".into(), response.duplicate.to_string());
        }
        self.audited(event, result)
    }

    fn upload_unaudited(
        &self,
        caller: &Caller,
        fields: UploadFields,
        incoming: IncomingFile,
        event: &mut AuditEvent,
    ) -> ServiceResult<UploadResponse> {
        let principal = &caller.principal;
        let collection = checked_collection(fields.collection.as_deref().unwrap_or_default())?;
        let labels = checked_labels(fields.labels.as_deref())?;
        if incoming.size == 0 {
            // A well-formed request for a file that holds nothing to index.
            return Err(ServiceError::Unprocessable {
                kind: "empty".into(),
                reason: "the file is empty".into(),
            });
        }
        event.detail.insert("collection".into(), collection.clone());
        event.detail.insert("labels".into(), labels.join(","));
        // The policy sees the document as it will be: its collection and labels.
        let resource = Resource::document("(new upload)", collection.clone(), labels.clone());
        let decision = self.authorizer().is_allowed(
            &principal_info(principal),
            Action::Upload,
            &resource,
            &caller.context(),
        );
        event.decision = Some(audit_decision(&decision));
        if !decision.allowed {
            self.metrics.count_ingest("denied");
            return Err(ServiceError::Forbidden);
        }
        let sha256 = hex::encode(incoming.hasher.clone().finalize());
        let _slot = self.metrics.ingest_slot();
        let _turn = take_turn(&self.ingest_turn);
        // A duplicate is only reported when the caller may read the copy; otherwise the upload
        // becomes a document of its own (its path is unique), so nothing about the unreadable
        // copy leaks and its labels are never overwritten.
        let filter = SearchFilter {
            collections: Some(vec![collection.clone()]),
            ..SearchFilter::default()
        };
        if let Some(existing) = self
            .store
            .list_documents(&filter)?
            .into_iter()
            .find(|record| {
                record.sha256 == sha256
                    && record.state == DocumentState::Ready
                    && self.may(caller, Action::Read, record)
            })
        {
            self.metrics.count_ingest("duplicate");
            return Ok(UploadResponse {
                document: view(&existing),
                duplicate: true,
            });
        }
        let path = self.keep(incoming, &sha256)?;
        let options = IngestOptions {
            collection: collection.clone(),
            labels,
            ..self.uploads.ingest.clone()
        };
        let summary = ingest_files(
            &self.store,
            self.passage_embedder(),
            std::slice::from_ref(&path),
            &[],
            &options,
            &mut |_| {},
        )
        .map_err(|err| {
            self.metrics.count_ingest("failed");
            ServiceError::Internal(format!("ingesting an upload: {err}"))
        })?;
        if let Some(rejected) = summary.quarantined.first() {
            self.metrics.count_ingest("quarantined");
            return Err(ServiceError::Unprocessable {
                kind: rejected.kind.clone(),
                reason: rejected.reason.clone(),
            });
        }
        let id = labelled_document_id(
            &collection,
            &path.display().to_string(),
            &sha256,
            &options.labels,
        );
        let record = self
            .store
            .get_document(&id)?
            .ok_or_else(|| ServiceError::Internal(format!("upload {id} not in the catalog")))?;
        self.metrics.count_ingest("indexed");
        Ok(UploadResponse {
            document: view(&record),
            duplicate: false,
        })
    }

    /// Moves a received file to `<uploads>/<sha256>/<unique>/<name>`: the path is unique per
    /// upload, so one upload never replaces another's document.
    fn keep(&self, incoming: IncomingFile, sha256: &str) -> ServiceResult<PathBuf> {
        let IncomingFile { file, name, .. } = incoming;
        let unique = file
            .path()
            .file_name()
            .map(|stem| {
                stem.to_string_lossy()
                    .trim_start_matches("upload-")
                    .to_string()
            })
            .unwrap_or_else(|| "0".into());
        let dir = self.uploads.dir.join(sha256).join(unique);
        let fail = |err: std::io::Error, what: &Path| {
            ServiceError::Internal(format!("keeping an upload in {}: {err}", what.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|err| fail(err, &dir))?;
        let path = dir.join(name);
        file.as_file().sync_all().map_err(|err| fail(err, &path))?;
        file.persist(&path).map_err(|err| fail(err.error, &path))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_folders_and_odd_characters() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(
            safe_file_name(r"C:\Users\x\brief (final).pdf"),
            "brief _final_.pdf"
        );
        assert_eq!(safe_file_name(".."), "upload");
        assert_eq!(safe_file_name(""), "upload");
        assert_eq!(safe_file_name("a\u{0}b\nc.txt"), "a_b_c.txt");
    }

    #[test]
    fn labels_are_normalized_and_checked() -> ServiceResult<()> {
        assert_eq!(
            checked_labels(Some(" PHI, privileged,phi,"))?,
            vec!["phi".to_string(), "privileged".to_string()]
        );
        assert!(checked_labels(Some("a b")).is_err());
        assert!(checked_labels(None)?.is_empty());
        Ok(())
    }

    #[test]
    fn collections_reject_reserved_and_control_characters() {
        assert!(checked_collection("matter-123").is_ok());
        assert!(checked_collection("vellum:accounts").is_err());
        assert!(checked_collection("a\nb").is_err());
        assert!(checked_collection("  ").is_err());
        assert!(checked_collection(&"x".repeat(129)).is_err());
    }
}
