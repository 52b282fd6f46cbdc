//! The quarantine: files that could not be indexed, with their reason.

use rusqlite::{params, OptionalExtension, Row};

use super::{Catalog, NOW_RFC3339};
use crate::error::Result;
use crate::types::{NewQuarantine, QuarantineRecord};

impl Catalog {
    /// Records (or updates) a rejected file.
    pub(crate) fn quarantine(&self, entry: &NewQuarantine<'_>) -> Result<()> {
        let connection = self.lock()?;
        connection
            .execute(
                &format!(
                    "INSERT INTO quarantine (collection, source_path, sha256, kind, reason, \
                     quarantined_at) VALUES (?1, ?2, ?3, ?4, ?5, {NOW_RFC3339}) \
                     ON CONFLICT (collection, source_path) DO UPDATE SET sha256 = excluded.sha256, \
                     kind = excluded.kind, reason = excluded.reason, \
                     quarantined_at = excluded.quarantined_at"
                ),
                params![
                    entry.collection,
                    entry.source_path,
                    entry.sha256,
                    entry.kind,
                    entry.reason
                ],
            )
            .map_err(self.sql_error("record quarantined file"))?;
        Ok(())
    }

    /// Forgets a source's quarantine entry (it was indexed, or its file is gone).
    pub(crate) fn release_quarantine(&self, collection: &str, source_path: &str) -> Result<()> {
        let connection = self.lock()?;
        connection
            .execute(
                "DELETE FROM quarantine WHERE collection = ?1 AND source_path = ?2",
                params![collection, source_path],
            )
            .map_err(self.sql_error("release quarantined file"))?;
        Ok(())
    }

    /// Returns the quarantine entry of one source.
    pub(crate) fn quarantine_entry(
        &self,
        collection: &str,
        source_path: &str,
    ) -> Result<Option<QuarantineRecord>> {
        let connection = self.lock()?;
        connection
            .query_row(
                "SELECT collection, source_path, sha256, kind, reason, quarantined_at \
                 FROM quarantine WHERE collection = ?1 AND source_path = ?2",
                params![collection, source_path],
                quarantine_record,
            )
            .optional()
            .map_err(self.sql_error("look up quarantined file"))
    }

    /// Returns the quarantine, optionally of some collections, sorted by collection and path.
    pub(crate) fn list_quarantine(
        &self,
        collections: Option<&[String]>,
    ) -> Result<Vec<QuarantineRecord>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare(
                "SELECT collection, source_path, sha256, kind, reason, quarantined_at \
                 FROM quarantine ORDER BY collection, source_path",
            )
            .map_err(self.sql_error("prepare quarantine listing"))?;
        let rows = statement
            .query_map([], quarantine_record)
            .map_err(self.sql_error("list quarantine"))?;
        let mut records = Vec::new();
        for row in rows {
            let record = row.map_err(self.sql_error("list quarantine"))?;
            if collections.is_none_or(|names| names.contains(&record.collection)) {
                records.push(record);
            }
        }
        Ok(records)
    }
}

fn quarantine_record(row: &Row<'_>) -> rusqlite::Result<QuarantineRecord> {
    Ok(QuarantineRecord {
        collection: row.get(0)?,
        source_path: row.get(1)?,
        sha256: row.get(2)?,
        kind: row.get(3)?,
        reason: row.get(4)?,
        quarantined_at: row.get(5)?,
    })
}
