//! What administrators read: the audit log (filtered, and whether its chain verifies), the
//! quarantine, and the server's figures. Each is decided by Cedar (`admin` on a resource of
//! its own: `vellum:audit`, `vellum:quarantine`, `vellum:metrics`) and recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vellum_audit::{AuditEvent, ExportFilter, RecordKind};
use vellum_authz::{Action, Resource};
use vellum_store::SearchFilter;

use crate::service::{
    audit_decision, file_name_of, principal_info, Caller, Service, ServiceError, ServiceResult,
    METRICS_RESOURCE,
};
use crate::types::CheckView;

/// The resource an administrator needs `admin` on to read the audit log.
pub const AUDIT_RESOURCE: &str = "vellum:audit";

/// The resource an administrator needs `admin` on to read the quarantine list.
pub const QUARANTINE_RESOURCE: &str = "vellum:quarantine";

/// Most records one audit query returns.
pub const MAX_AUDIT_RECORDS: usize = 1000;

/// `GET /v1/audit`'s filters (all must hold).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The principal (user name, or `operator:<unix user>`).
    pub user: Option<String>,
    /// The action (`search`, `ask`, `document.read`, `login`...).
    pub action: Option<String>,
    /// A document id: records about it or that read any of its chunks.
    pub document: Option<String>,
    /// From this time (RFC 3339, or a day `YYYY-MM-DD`), inclusive.
    pub since: Option<String>,
    /// Until this time (RFC 3339, or a day `YYYY-MM-DD`, which includes that day), exclusive.
    pub until: Option<String>,
    /// Most records returned, newest first (default 200, at most 1000).
    pub limit: Option<usize>,
}

/// One audit record as the admin pages show it. The question of a search or ask is in the
/// log only as an HMAC and is not shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordView {
    pub seq: u64,
    pub time: String,
    /// `event` or `checkpoint`.
    pub kind: String,
    pub principal: Option<String>,
    pub address: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    /// `allow` / `deny` with the policies that decided, when Cedar was asked.
    #[schema(value_type = Object)]
    pub decision: Option<serde_json::Value>,
    pub outcome: Option<String>,
    /// Chunks read (their ids and documents).
    pub reads: usize,
    pub detail: BTreeMap<String, String>,
}

/// `GET /v1/audit`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecordView>,
    /// More records matched than were returned.
    pub truncated: bool,
}

/// What `vellum audit verify` says about the running log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerifyView {
    pub ok: bool,
    pub records: u64,
    /// Records after the last signed checkpoint (a running server always has a few).
    pub unsigned_tail: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub message: String,
}

/// A file ingest refused, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineView {
    pub collection: String,
    pub file_name: String,
    pub kind: String,
    pub reason: String,
    pub quarantined_at: String,
}

/// The server's figures for its administrators.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub documents: u64,
    pub chunks: u64,
    /// Uploads being ingested or waiting for their turn.
    pub ingests_in_progress: i64,
    /// Answers and summaries generating or waiting for the model.
    pub answers_in_progress: i64,
    pub ready: bool,
    pub checks: Vec<CheckView>,
}

/// A filter time: RFC 3339, or a day (`until` a day means the end of that day).
fn filter_time(
    text: Option<&str>,
    end_of_day: bool,
) -> ServiceResult<Option<time::OffsetDateTime>> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let time = vellum_audit::parse_time(&full).map_err(|_| {
        ServiceError::BadRequest(format!(
            "{text:?} is not a time: use YYYY-MM-DD or RFC 3339 (2026-03-31T14:00:00Z)"
        ))
    })?;
    Ok(Some(if end_of_day && text.len() == 10 {
        time + time::Duration::days(1)
    } else {
        time
    }))
}

fn optional(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// Documents per re-embed step (one LanceDB commit, the store's write lock held only while it
/// is written): large enough to batch the embedder, small enough for steady progress.
const REEMBED_DOCUMENTS_PER_STEP: usize = 32;

impl Service {
    /// Whether Cedar allows `admin` on `resource`; the decision, with the policies that made
    /// it, goes into `event`.
    fn admin_decision(&self, caller: &Caller, resource: &str, event: &mut AuditEvent) -> bool {
        let decision = self.authorizer().is_allowed(
            &principal_info(&caller.principal),
            Action::Admin,
            &Resource::collection(resource),
            &caller.context(),
        );
        event.decision = Some(audit_decision(&decision));
        decision.allowed
    }

    /// Sets hybrid search's vector weight for `collection` (what `vellum eval --tune` chose on
    /// the collection's own labelled queries), or with `None` returns it to the default.
    /// Needs `admin` on the collection; audited as `collection.settings`.
    pub fn set_fusion_weight(
        &self,
        caller: &Caller,
        collection: &str,
        weight: Option<f32>,
    ) -> ServiceResult<()> {
        let mut event = self
            .audit_event(caller, "collection.settings")
            .resource(collection.to_string());
        event.detail.insert(
            vellum_rag::VECTOR_WEIGHT_SETTING.into(),
            weight.map_or_else(|| "default".into(), |weight| format!("{weight:.2}")),
        );
        let result = if weight.is_some_and(|weight| !(0.0..=1.0).contains(&weight)) {
            Err(ServiceError::BadRequest(
                "the vector weight must be between 0 and 1".into(),
            ))
        } else if !self.admin_decision(caller, collection, &mut event) {
            Err(ServiceError::Forbidden)
        } else {
            let value = weight.map(|weight| format!("{weight:.2}"));
            self.store
                .set_collection_setting(
                    collection,
                    vellum_rag::VECTOR_WEIGHT_SETTING,
                    value.as_deref(),
                )
                .map_err(ServiceError::from)
        };
        self.audited(event, result)
    }

    /// Gives `collection`'s chunks new vectors from this service's embedder, after a change of
    /// embedder (until then its vector searches and ingest are refused); `progress` hears of
    /// each step. Needs `admin` on the collection; audited as `collection.reembed`, with the
    /// embedder before and after and the chunks done.
    pub fn reembed_collection(
        &self,
        caller: &Caller,
        collection: &str,
        progress: &mut dyn FnMut(&vellum_store::ReembedProgress),
    ) -> ServiceResult<vellum_store::ReembedProgress> {
        let mut event = self
            .audit_event(caller, "collection.reembed")
            .resource(collection.to_string());
        event.detail.insert(
            "embedder".into(),
            self.store.options().embedding_model.clone(),
        );
        let result = if !self.admin_decision(caller, collection, &mut event) {
            Err(ServiceError::Forbidden)
        } else {
            let embedder = self.passage_embedder();
            self.store
                .reembed_collection(
                    collection,
                    REEMBED_DOCUMENTS_PER_STEP,
                    &mut |texts| {
                        embedder
                            .embed_passages(texts)
                            .map_err(|err| err.to_string())
                    },
                    progress,
                )
                .map_err(ServiceError::from)
        };
        if let Ok(done) = &result {
            event
                .detail
                .insert("previous".into(), done.previous.clone());
            event
                .detail
                .insert("chunks".into(), done.chunks_done.to_string());
        }
        self.audited(event, result)
    }

    fn audit_dir(&self) -> ServiceResult<(&std::path::Path, String)> {
        let log = self.audit_log().ok_or_else(|| {
            ServiceError::Unavailable("this server runs without an audit log".into())
        })?;
        Ok((log.dir(), log.public_key_hex()))
    }

    /// Audit records matching `query`, newest first.
    pub fn audit_records(&self, caller: &Caller, query: &AuditQuery) -> ServiceResult<AuditPage> {
        let mut event = self
            .audit_event(caller, "audit.read")
            .resource(AUDIT_RESOURCE.to_string());
        for (name, value) in [
            ("user", &query.user),
            ("action", &query.action),
            ("document", &query.document),
            ("since", &query.since),
            ("until", &query.until),
        ] {
            if let Some(value) = optional(value) {
                event = event.detail(name, value);
            }
        }
        let result = if self.admin_decision(caller, AUDIT_RESOURCE, &mut event) {
            self.audit_records_unaudited(query)
        } else {
            Err(ServiceError::Forbidden)
        };
        self.audited(event, result)
    }

    fn audit_records_unaudited(&self, query: &AuditQuery) -> ServiceResult<AuditPage> {
        let limit = query.limit.unwrap_or(200);
        if !(1..=MAX_AUDIT_RECORDS).contains(&limit) {
            return Err(ServiceError::BadRequest(format!(
                "limit must be 1-{MAX_AUDIT_RECORDS}"
            )));
        }
        let filter = ExportFilter {
            since: filter_time(query.since.as_deref(), false)?,
            until: filter_time(query.until.as_deref(), true)?,
            principal: optional(&query.user),
            document: optional(&query.document),
            action: optional(&query.action),
            include_checkpoints: false,
        };
        let (dir, _) = self.audit_dir()?;
        let mut records = vellum_audit::export(dir, &filter)
            .map_err(|err| ServiceError::Internal(format!("reading the audit log: {err}")))?;
        let truncated = records.len() > limit;
        records.reverse();
        records.truncate(limit);
        Ok(AuditPage {
            records: records
                .into_iter()
                .map(|exported| {
                    let record = exported.record;
                    AuditRecordView {
                        seq: record.seq,
                        time: record.time,
                        kind: match record.kind {
                            RecordKind::Checkpoint => "checkpoint".into(),
                            _ => "event".into(),
                        },
                        principal: record.principal,
                        address: record.address,
                        action: record.action,
                        resource: record.resource,
                        decision: record
                            .decision
                            .and_then(|decision| serde_json::to_value(decision).ok()),
                        outcome: record.outcome,
                        reads: record.reads.len(),
                        detail: record.detail,
                    }
                })
                .collect(),
            truncated,
        })
    }

    /// Verifies the running log's chain and signatures, as `vellum audit verify` does.
    pub fn audit_verify(&self, caller: &Caller) -> ServiceResult<AuditVerifyView> {
        let mut event = self
            .audit_event(caller, "audit.verify")
            .resource(AUDIT_RESOURCE.to_string());
        let result = if self.admin_decision(caller, AUDIT_RESOURCE, &mut event) {
            self.audit_dir().and_then(|(dir, key)| {
                let report = vellum_audit::verify(dir, &key).map_err(|err| {
                    ServiceError::Internal(format!("verifying the audit log: {err}"))
                })?;
                let message = match &report.problem {
                    None => format!(
                        "intact: {} records in {} segment(s), chain and signed checkpoints \
                         verified",
                        report.records, report.segments
                    ),
                    Some(problem) => format!("NOT intact: {problem}"),
                };
                Ok(AuditVerifyView {
                    ok: report.is_intact(),
                    records: report.records,
                    unsigned_tail: report.unsigned_tail,
                    first_time: report.first_time,
                    last_time: report.last_time,
                    message,
                })
            })
        } else {
            Err(ServiceError::Forbidden)
        };
        self.audited(event, result)
    }

    /// Files that ingest refused, with the reason.
    pub fn quarantine_list(&self, caller: &Caller) -> ServiceResult<Vec<QuarantineView>> {
        let mut event = self
            .audit_event(caller, "quarantine.list")
            .resource(QUARANTINE_RESOURCE.to_string());
        let result = if self.admin_decision(caller, QUARANTINE_RESOURCE, &mut event) {
            self.store
                .list_quarantine(&SearchFilter::default())
                .map_err(ServiceError::from)
                .map(|entries| {
                    entries
                        .into_iter()
                        .map(|entry| QuarantineView {
                            file_name: file_name_of(&entry.source_path),
                            collection: entry.collection,
                            kind: entry.kind,
                            reason: entry.reason,
                            quarantined_at: entry.quarantined_at,
                        })
                        .collect()
                })
        } else {
            Err(ServiceError::Forbidden)
        };
        self.audited(event, result)
    }

    /// Documents, chunks, work in progress and readiness (`admin` on `vellum:metrics`).
    pub fn status(&self, caller: &Caller) -> ServiceResult<StatusView> {
        let mut event = self
            .audit_event(caller, "status.read")
            .resource(METRICS_RESOURCE.to_string());
        let result = if self.admin_decision(caller, METRICS_RESOURCE, &mut event) {
            self.store.stats().map_err(ServiceError::from).map(|stats| {
                let (ingests, answers) = self.metrics.queue_depths();
                let readiness = self.readiness();
                StatusView {
                    documents: stats.num_documents,
                    chunks: stats.num_chunks,
                    ingests_in_progress: ingests,
                    answers_in_progress: answers,
                    ready: readiness.ready,
                    checks: readiness.checks,
                }
            })
        } else {
            Err(ServiceError::Forbidden)
        };
        self.audited(event, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_days_cover_the_whole_day() -> ServiceResult<()> {
        let since = filter_time(Some("2026-03-31"), false)?;
        let until = filter_time(Some("2026-03-31"), true)?;
        let (Some(since), Some(until)) = (since, until) else {
            panic!("both parse");
        };
        assert_eq!((until - since).whole_hours(), 24);
        assert!(filter_time(Some("yesterday"), false).is_err());
        assert!(filter_time(Some("  "), false)?.is_none());
        Ok(())
    }
}
