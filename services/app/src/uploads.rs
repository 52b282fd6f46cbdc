//! Uploads. [`Service::begin_upload`] decides before a byte of the file is read: the declared
//! collection and labels (form fields before the file, or query parameters) are checked, the
//! policy is asked, the caller's and the server's concurrent uploads are counted and the disk's
//! free space is checked against a reserve kept for the audit log. Only then does the handler
//! stream the file into `<uploads>/.partial/` while hashing it (never the whole file in
//! memory), stopping at the size limit or the reserve; [`Service::upload`] detects a duplicate
//! by SHA-256, moves the file into place and ingests it through the same sandboxed pipeline as
//! `vellum ingest`. A refusal at any step has its audit record.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vellum_audit::{actions, AuditEvent};
use vellum_authz::{Action, Resource};
use vellum_ingest::pipeline::{ingest_files, labelled_document_id, IngestOptions};
use vellum_store::{DocumentState, SearchFilter};

use crate::collection::CollectionName;
use crate::service::{
    audit_decision, principal_info, take_turn, view, Caller, Service, ServiceError, ServiceResult,
};
use crate::types::UploadResponse;

/// A file being received: written to a temporary file next to its final place and hashed on
/// the way. Dropped before [`Service::upload`] takes it, the partial file is removed.
pub struct IncomingFile {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
    name: String,
    /// Checked collection and labels, as the policy saw them.
    collection: String,
    labels: Vec<String>,
    decision: vellum_audit::Decision,
    /// Free bytes the upload file system must keep (for the audit log).
    reserve_bytes: u64,
    /// Bytes written since free space was last checked.
    unchecked: u64,
    _permit: crate::limits::Permit,
}

/// How often, in bytes received, free space is checked again during an upload.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

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
        self.unchecked = self.unchecked.saturating_add(bytes.len() as u64);
        if self.unchecked >= SPACE_CHECK_EVERY {
            self.unchecked = 0;
            let dir = self.file.path().parent().map(Path::to_path_buf);
            if let Some(dir) = dir {
                check_free_space(&dir, self.reserve_bytes, bytes.len() as u64)?;
            }
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|err| ServiceError::Internal(format!("writing an upload: {err}")))
    }
}

/// Refuses when writing `more` bytes would leave less than `reserve` free on `dir`'s file
/// system: a full disk stops the audit log, and with it every request.
fn check_free_space(dir: &Path, reserve: u64, more: u64) -> ServiceResult<()> {
    let free = fs4::available_space(dir)
        .map_err(|err| ServiceError::Internal(format!("free space of {}: {err}", dir.display())))?;
    if free < reserve.saturating_add(more) {
        tracing::warn!(free, reserve, dir = %dir.display(), "upload refused: disk space reserve");
        return Err(ServiceError::Unavailable(
            "the server is low on disk space, so uploads are paused (the rest keeps working); \
             an administrator must free space"
                .into(),
        ));
    }
    Ok(())
}

/// What the form (or the query string) said besides the file.
#[derive(Debug, Default, Clone)]
pub struct UploadFields {
    pub collection: Option<String>,
    pub labels: Option<String>,
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
    /// Decides an upload before its file is read: the declared collection and labels, the
    /// policy, the caller's and the server's concurrent uploads, and the disk's free space.
    /// Then starts receiving the file named `name` (as the client called it). A refusal is
    /// recorded.
    pub fn begin_upload(
        &self,
        caller: &Caller,
        fields: &UploadFields,
        name: &str,
    ) -> ServiceResult<IncomingFile> {
        let mut event = self.audit_event(caller, actions::DOCUMENT_UPLOAD);
        let result = self.begin_upload_unaudited(caller, fields, name, &mut event);
        match result {
            // The upload's record is written when it ends (Service::upload, upload_failed).
            Ok(incoming) => Ok(incoming),
            Err(err) => self.audited(event.detail("stage", "begin"), Err(err)),
        }
    }

    fn begin_upload_unaudited(
        &self,
        caller: &Caller,
        fields: &UploadFields,
        name: &str,
        event: &mut AuditEvent,
    ) -> ServiceResult<IncomingFile> {
        let collection =
            CollectionName::parse(fields.collection.as_deref().unwrap_or_default())?.into_string();
        let labels = checked_labels(fields.labels.as_deref())?;
        event.detail.insert("collection".into(), collection.clone());
        event.detail.insert("labels".into(), labels.join(","));
        let decision = self.decide_upload(caller, &collection, &labels);
        event.decision = Some(audit_decision(&decision));
        if !decision.allowed {
            self.metrics.count_ingest("denied");
            return Err(ServiceError::Forbidden);
        }
        let permit = self.upload_limits.acquire(&caller.principal.name)?;
        let partial = self.uploads.dir.join(".partial");
        std::fs::create_dir_all(&partial).map_err(|err| {
            ServiceError::Internal(format!("creating {}: {err}", partial.display()))
        })?;
        check_free_space(&partial, self.uploads.reserve_bytes, 0)?;
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
            collection,
            labels,
            decision: audit_decision(&decision),
            reserve_bytes: self.uploads.reserve_bytes,
            unchecked: 0,
            _permit: permit,
        })
    }

    /// Cedar's `upload` decision on the document as it will be: its collection and labels.
    pub(crate) fn decide_upload(
        &self,
        caller: &Caller,
        collection: &str,
        labels: &[String],
    ) -> vellum_authz::Decision {
        let resource = Resource::document("(new upload)", collection, labels.iter().cloned());
        self.authorizer().is_allowed(
            &principal_info(&caller.principal),
            Action::Upload,
            &resource,
            &caller.context(),
        )
    }

    /// The `document.upload` record of a file being received: size, collection, labels and
    /// the decision they got.
    fn upload_event(&self, caller: &Caller, incoming: &IncomingFile) -> AuditEvent {
        let mut event = self
            .audit_event(caller, actions::DOCUMENT_UPLOAD)
            .detail("bytes", incoming.size.to_string())
            .detail("collection", incoming.collection.clone())
            .detail("labels", incoming.labels.join(","));
        event.decision = Some(incoming.decision.clone());
        event
    }

    /// Labels that came after the file (a form may put its fields in any order): the upload
    /// was decided with the labels known then, so it is decided again with these, and refused
    /// (and recorded) if the policy does not allow the document as it now would be.
    pub fn relabel_upload(
        &self,
        caller: &Caller,
        incoming: &mut IncomingFile,
        labels: &str,
    ) -> ServiceResult<()> {
        let labels = checked_labels(Some(labels))?;
        let decision = self.decide_upload(caller, &incoming.collection, &labels);
        incoming.labels = labels;
        incoming.decision = audit_decision(&decision);
        if decision.allowed {
            return Ok(());
        }
        self.metrics.count_ingest("denied");
        let event = self
            .upload_event(caller, incoming)
            .detail("stage", "labels");
        self.audited(event, Err(ServiceError::Forbidden))
    }

    /// Records an upload that failed while its file was being received (too large, the disk
    /// reserve reached, a broken form); the partial file is removed.
    pub fn upload_failed(
        &self,
        caller: &Caller,
        incoming: IncomingFile,
        error: ServiceError,
    ) -> ServiceError {
        let event = self
            .upload_event(caller, &incoming)
            .detail("stage", "receive");
        drop(incoming);
        match self.audited::<()>(event, Err(error)) {
            Err(err) => err,
            Ok(()) => ServiceError::Internal("an upload failure recorded as success".into()),
        }
    }

    /// Checks the policy, detects duplicates and ingests a received file. The audit record
    /// has the file's SHA-256, size, collection, labels and the document it became.
    pub fn upload(&self, caller: &Caller, incoming: IncomingFile) -> ServiceResult<UploadResponse> {
        let mut event = self
            .upload_event(caller, &incoming)
            .detail("sha256", hex::encode(incoming.hasher.clone().finalize()));
        let result = self.upload_unaudited(caller, incoming);
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
        incoming: IncomingFile,
    ) -> ServiceResult<UploadResponse> {
        let collection = incoming.collection.clone();
        let labels = incoming.labels.clone();
        if incoming.size == 0 {
            // A well-formed request for a file that holds nothing to index.
            return Err(ServiceError::Unprocessable {
                kind: "empty".into(),
                reason: "the file is empty".into(),
            });
        }
        let sha256 = hex::encode(incoming.hasher.clone().finalize());
        let _slot = self.metrics.ingest_slot();
        let _turn = take_turn(&self.ingest_turn);
        // A duplicate is only reported when the caller may read the copy; otherwise the upload
        // becomes a document of its own (its path is unique), so nothing about the unreadable
        // copy leaks and its labels are never overwritten.
        let readable = self.read_scope(
            caller,
            Action::Read,
            Some(std::slice::from_ref(&collection)),
        )?;
        if let Some(existing) = self
            .store
            .list_documents(&readable, &SearchFilter::default())?
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
            ServiceError::from_kind(err.kind(), format!("ingesting an upload: {err}"))
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
        assert!(CollectionName::parse("matter-123").is_ok());
        assert!(CollectionName::parse("vellum:accounts").is_err());
        assert!(CollectionName::parse("a\nb").is_err());
        assert!(CollectionName::parse("  ").is_err());
        assert!(CollectionName::parse(&"x".repeat(129)).is_err());
    }
}
