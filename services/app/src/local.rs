//! What the command line needs beyond the API's calls, through the same checks and records:
//! acting as an account (`--as USER`), ingesting folders, replaying a receipt, and account
//! administration. Each asks Cedar and writes its audit record here, as the HTTP calls do.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use vellum_audit::{actions, AuditEvent, ChunkRead};
use vellum_auth::{AuthStore, Principal};
use vellum_authz::{Action, Resource};
use vellum_ingest::pipeline::{self, IngestEvent, IngestOptions, IngestSummary};
use vellum_ingest::watch::{self, WatchEvent, WatchOptions};
use vellum_rag::{AnswerReceipt, ReplayReport, SourceStatus};
use vellum_store::DocumentRecord;

use crate::service::{
    actions_extra, audit_decision, Caller, Service, ServiceError, ServiceResult, ACCOUNTS_RESOURCE,
    LOCAL_ADDRESS,
};

/// Audit action of `vellum replay`.
pub const REPLAY: &str = "answer.replay";
/// Audit action of `vellum user list` and `vellum key list`.
pub const ACCOUNT_LIST: &str = "account.list";

impl Service {
    /// The CLI acting as account `name` (`--as USER`): its roles and groups under the
    /// deployment's policies. The account must exist and be enabled; `operator` (the Unix
    /// user) is in the record.
    pub fn local_caller_as(&self, operator: &str, name: &str) -> ServiceResult<Caller> {
        let result = match self.auth.user(name) {
            Ok(user) if !user.disabled => Ok(Caller::new(
                Principal {
                    user_id: 0,
                    name: user.name,
                    roles: user.roles,
                    groups: user.groups,
                    via: "cli".into(),
                    credential_id: format!("operator:{operator}"),
                    must_change_password: false,
                },
                LOCAL_ADDRESS,
            )),
            Ok(_) | Err(vellum_auth::Error::NotFound(_)) => Err(ServiceError::Unauthenticated),
            Err(other) => Err(other.into()),
        };
        let mut event = AuditEvent::new(actions_extra::AUTHENTICATE, "ok")
            .address(LOCAL_ADDRESS.to_string())
            .detail("operator", operator.to_string())
            .detail("as", name.to_string());
        if result.is_ok() {
            event = event.principal(name.to_string());
        }
        self.audited(event, result)
    }

    /// A document the caller may read, by id, exact source path, or a unique part of its file
    /// name (`vellum summarize contract.pdf`). Missing and unreadable look the same.
    pub fn find_readable_document(
        &self,
        caller: &Caller,
        wanted: &str,
    ) -> ServiceResult<DocumentRecord> {
        let documents = self.list_document_records(caller, None)?;
        if let Some(record) = documents.iter().find(|record| record.id.0 == wanted) {
            return Ok(record.clone());
        }
        let canonical = std::fs::canonicalize(wanted)
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| wanted.to_string());
        if let Some(record) = documents.iter().find(|d| d.source_path == canonical) {
            return Ok(record.clone());
        }
        let file_name = |record: &DocumentRecord| crate::service::file_name_of(&record.source_path);
        let matches: Vec<&DocumentRecord> = documents
            .iter()
            .filter(|record| file_name(record).contains(wanted))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ServiceError::NotFound),
            many => Err(ServiceError::BadRequest(format!(
                "{} documents match {wanted:?} ({}, …); give its id or full path",
                many.len(),
                many.iter()
                    .take(3)
                    .map(|record| file_name(record))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Ingests files into a collection with labels, as `vellum ingest` does: Cedar's `upload`
    /// on the collection and labels first, then one `document.upload` record for the run with
    /// its counts.
    pub fn ingest_files(
        &self,
        caller: &Caller,
        files: &[PathBuf],
        roots: &[PathBuf],
        options: &IngestOptions,
        on_event: &mut dyn FnMut(IngestEvent<'_>),
    ) -> ServiceResult<IngestSummary> {
        let mut event = self.ingest_event(caller, options, roots);
        let result = self.may_ingest(caller, options, &mut event).and_then(|()| {
            let _turn = crate::service::take_turn(&self.ingest_turn);
            pipeline::ingest_files(
                &self.store,
                self.passage_embedder(),
                files,
                roots,
                options,
                on_event,
            )
            .map_err(ingest_error)
        });
        if let Ok(summary) = &result {
            event = with_counts(event, summary);
        }
        self.audited(event, result)
    }

    /// Follows folders (`vellum watch`) after Cedar's `upload` decision; the start and every
    /// finished pass are recorded.
    pub fn watch_folders(
        &self,
        caller: &Caller,
        roots: &[PathBuf],
        options: &IngestOptions,
        watch_options: &WatchOptions,
        stop: &AtomicBool,
        on_watch: &mut dyn FnMut(WatchEvent<'_>),
    ) -> ServiceResult<()> {
        let mut event = self.ingest_event(caller, options, roots);
        event = event.detail("stage", "watch");
        let allowed = self.may_ingest(caller, options, &mut event);
        self.audited(event.clone(), allowed)?;
        let mut failed = None;
        let result = watch::watch(
            &self.store,
            self.passage_embedder(),
            roots,
            options,
            watch_options,
            stop,
            &mut |watch_event| {
                if let WatchEvent::Synced(summary) = &watch_event {
                    let record = with_counts(event.clone(), summary).detail("stage", "sync");
                    if let Err(err) = self.record(record) {
                        failed = Some(err);
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                on_watch(watch_event);
            },
        )
        .map_err(ingest_error);
        match failed {
            Some(err) => Err(err),
            None => result,
        }
    }

    fn ingest_event(
        &self,
        caller: &Caller,
        options: &IngestOptions,
        roots: &[PathBuf],
    ) -> AuditEvent {
        self.audit_event(caller, actions::DOCUMENT_UPLOAD)
            .resource(options.collection.clone())
            .detail("labels", options.labels.join(","))
            .detail(
                "paths",
                roots
                    .iter()
                    .map(|root| root.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
    }

    fn may_ingest(
        &self,
        caller: &Caller,
        options: &IngestOptions,
        event: &mut AuditEvent,
    ) -> ServiceResult<()> {
        let labels = vellum_store::normalize_labels(&options.labels)
            .map_err(|err| ServiceError::BadRequest(err.to_string()))?;
        crate::collection::CollectionName::parse(&options.collection)?;
        let decision = self.decide_upload(caller, &options.collection, &labels);
        event.decision = Some(audit_decision(&decision));
        if decision.allowed {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Regenerates a receipt's answer from the chunks the caller may still ask about
    /// (`vellum replay`); sources outside the caller's scope count as missing. The record
    /// lists the chunks given to the model again.
    pub fn replay(
        &self,
        caller: &Caller,
        receipt: &AnswerReceipt,
        on_token: &mut dyn FnMut(&str),
    ) -> ServiceResult<ReplayReport> {
        let mut event = self.audit_event(caller, REPLAY);
        if let Some(question) = self.sensitive(&receipt.question) {
            event = event.query(question);
        }
        let result = (|| {
            let generator = self.generator()?;
            let scope = self.read_scope(caller, Action::Ask, None)?;
            Ok(vellum_rag::replay(
                &self.store,
                &scope,
                generator,
                receipt,
                on_token,
            )?)
        })();
        if let Ok(report) = &result {
            event = event.reads(
                receipt
                    .sources
                    .iter()
                    .zip(&report.sources)
                    .filter(|(_, check)| check.status == SourceStatus::Same)
                    .map(|(source, _)| ChunkRead {
                        chunk_id: source.chunk_id.0.clone(),
                        document_id: source.document_id.0.clone(),
                        sha256: source.content_sha256.clone(),
                    })
                    .collect(),
            );
        }
        self.audited(event, result)
    }

    /// Changes accounts or keys from the CLI (`vellum user …`, `vellum key …`): Cedar's
    /// `admin` on [`ACCOUNTS_RESOURCE`], then `change` on the identity store, recorded as
    /// `action` (`user.change` or `key.change`) on `target` with `operation`.
    pub fn change_accounts<T>(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        operation: &str,
        change: impl FnOnce(&AuthStore) -> vellum_auth::Result<T>,
    ) -> ServiceResult<T> {
        let mut event = self
            .audit_event(caller, action)
            .resource(target.to_string())
            .detail("operation", operation.to_string());
        let result = self
            .may_administer_accounts(caller, &mut event)
            .and_then(|()| change(&self.auth).map_err(ServiceError::from));
        self.audited(event, result)
    }

    /// Lists accounts or keys from the CLI, under the same check as [`Self::change_accounts`].
    pub fn read_accounts<T>(
        &self,
        caller: &Caller,
        what: &str,
        read: impl FnOnce(&AuthStore) -> vellum_auth::Result<T>,
    ) -> ServiceResult<T> {
        let mut event = self
            .audit_event(caller, ACCOUNT_LIST)
            .resource(what.to_string());
        let result = self
            .may_administer_accounts(caller, &mut event)
            .and_then(|()| read(&self.auth).map_err(ServiceError::from));
        self.audited(event, result)
    }

    /// Store-wide counts (documents, chunks) for a caller who may read the metrics (`admin`
    /// on `vellum:metrics`): they count every matter.
    pub fn store_stats(&self, caller: &Caller) -> ServiceResult<vellum_store::StoreStats> {
        self.may_read_metrics(caller)?;
        Ok(self.store.stats()?)
    }

    fn may_administer_accounts(
        &self,
        caller: &Caller,
        event: &mut AuditEvent,
    ) -> ServiceResult<()> {
        let decision = self.authorizer().is_allowed(
            &crate::service::principal_info(&caller.principal),
            Action::Admin,
            &Resource::collection(ACCOUNTS_RESOURCE),
            &caller.context(),
        );
        event.decision = Some(audit_decision(&decision));
        if decision.allowed {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }
}

fn with_counts(event: AuditEvent, summary: &IngestSummary) -> AuditEvent {
    event
        .detail("files", summary.num_files.to_string())
        .detail("indexed", summary.num_indexed.to_string())
        .detail("replaced", summary.num_replaced.to_string())
        .detail("pruned", summary.num_pruned.to_string())
        .detail("quarantined", summary.quarantined.len().to_string())
}

fn ingest_error(err: pipeline::PipelineError) -> ServiceError {
    match err {
        pipeline::PipelineError::Path { path, reason } => {
            ServiceError::BadRequest(format!("{}: {reason}", path.display()))
        }
        other => ServiceError::from_kind(other.kind(), other.to_string()),
    }
}
