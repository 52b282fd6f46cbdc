//! The catalog's schema, its migrations and the settings checked at open (see the module
//! documentation of `catalog` for the tables).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::Catalog;
use crate::error::{Error, Result};
use crate::scope::{encode_labels, labels_from_metadata};
use crate::types::StoreOptions;

/// Version written to `PRAGMA user_version`; bump with a migration.
const CATALOG_SCHEMA_VERSION: i64 = 3;

/// Settings key whose presence means the indexes' scopes are not yet known to match the
/// catalog's labels (set by the 2 → 3 migration, cleared by the store once they do).
const SCOPE_MIGRATION_SETTING: &str = "scope_migration";

const SCHEMA_SQL: &str = "
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL REFERENCES collections(name),
    source_path TEXT NOT NULL,
    title TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    num_pages INTEGER NOT NULL,
    num_chunks INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'deleting')),
    ingested_at TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX documents_by_source ON documents(collection, source_path);
CREATE UNIQUE INDEX documents_ready_source ON documents(collection, source_path)
    WHERE state = 'ready';
CREATE TABLE chunks (
    document_id TEXT NOT NULL REFERENCES documents(id),
    chunk_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    page INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (document_id, chunk_id)
) WITHOUT ROWID;
CREATE INDEX chunks_by_ordinal ON chunks(document_id, ordinal);
";

/// Version 2: files that ingest rejected, with the reason (one row per source).
const QUARANTINE_SQL: &str = "
CREATE TABLE quarantine (
    collection TEXT NOT NULL,
    source_path TEXT NOT NULL,
    sha256 TEXT,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL,
    PRIMARY KEY (collection, source_path)
);
";

/// Version 3: each document's access labels, and an index for listing scopes.
const LABELS_SQL: &str = "
ALTER TABLE documents ADD COLUMN labels TEXT NOT NULL DEFAULT '';
CREATE INDEX documents_ready_scope ON documents(collection, labels, state)
    WHERE state = 'ready';
";

impl Catalog {
    pub(super) fn configure_and_migrate(&self) -> Result<()> {
        let mut connection = self.lock()?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(self.sql_error("set busy timeout"))?;
        // `journal_mode` returns a row, so it goes through pragma_update_and_check.
        connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(self.sql_error("enable WAL"))?;
        connection
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(self.sql_error("configure connection"))?;
        let user_version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(self.sql_error("read schema version"))?;
        if user_version == CATALOG_SCHEMA_VERSION {
            return Ok(());
        }
        if !(0..CATALOG_SCHEMA_VERSION).contains(&user_version) {
            return Err(Error::CatalogCorrupt {
                path: self.path.clone(),
                detail: format!(
                    "schema version {user_version} is not supported (this build knows version \
                     {CATALOG_SCHEMA_VERSION}); was it written by a newer vellum?"
                ),
            });
        }
        // Every step in one transaction: a crash leaves the old version, never half a migration.
        let transaction = connection
            .transaction()
            .map_err(self.sql_error("begin schema migration"))?;
        if user_version == 0 {
            transaction
                .execute_batch(SCHEMA_SQL)
                .map_err(self.sql_error("create schema"))?;
        }
        if user_version < 2 {
            transaction
                .execute_batch(QUARANTINE_SQL)
                .map_err(self.sql_error("add the quarantine table"))?;
        }
        if user_version < 3 {
            transaction
                .execute_batch(LABELS_SQL)
                .map_err(self.sql_error("add the labels column"))?;
            if user_version > 0 {
                let migrated = migrate_metadata_labels(&transaction)
                    .map_err(self.sql_error("copy labels out of document metadata"))?;
                // Existing index entries carry no scope yet, whatever their labels.
                transaction
                    .execute(
                        "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, 'pending')",
                        [SCOPE_MIGRATION_SETTING],
                    )
                    .map_err(self.sql_error("record the pending scope migration"))?;
                tracing::info!(path = %self.path.display(), labelled_documents = migrated,
                    "catalog migrated to schema version 3 (document labels)");
            }
        }
        transaction
            .pragma_update(None, "user_version", CATALOG_SCHEMA_VERSION)
            .map_err(self.sql_error("write schema version"))?;
        transaction
            .commit()
            .map_err(self.sql_error("commit schema migration"))
    }

    /// Checks that the store was built for vectors of `options.embedding_dim` (one vector
    /// table holds them all) and returns the embedder it was created with. Another embedder of
    /// the same dimension may open it: which embedder made a collection's vectors is checked
    /// per collection (`Store::check_embedders`).
    pub(super) fn check_embedding_settings(&self, options: &StoreOptions) -> Result<String> {
        let connection = self.lock()?;
        let read_setting = |key: &str| -> Result<Option<String>> {
            connection
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(self.sql_error("read settings"))
        };
        let recorded_model = read_setting("embedding_model")?;
        let recorded_dim = read_setting("embedding_dim")?;
        match (recorded_model, recorded_dim) {
            (Some(recorded_model), Some(recorded_dim)) => {
                let recorded_dim: usize =
                    recorded_dim.parse().map_err(|_| Error::CatalogCorrupt {
                        path: self.path.clone(),
                        detail: format!("embedding_dim setting {recorded_dim:?} is not a number"),
                    })?;
                if recorded_dim != options.embedding_dim {
                    return Err(Error::EmbeddingMismatch {
                        path: self.path.clone(),
                        recorded_model,
                        recorded_dim,
                        requested_model: options.embedding_model.clone(),
                        requested_dim: options.embedding_dim,
                    });
                }
                Ok(recorded_model)
            }
            (None, None) => {
                connection
                    .execute(
                        "INSERT INTO settings (key, value) VALUES ('embedding_model', ?1), \
                         ('embedding_dim', ?2)",
                        params![options.embedding_model, options.embedding_dim.to_string()],
                    )
                    .map_err(self.sql_error("write settings"))?;
                Ok(options.embedding_model.clone())
            }
            _ => Err(Error::CatalogCorrupt {
                path: self.path.clone(),
                detail: "only one of embedding_model and embedding_dim is recorded".into(),
            }),
        }
    }

    /// True while index scopes may disagree with the catalog's labels (after the 2 → 3
    /// migration, until [`Catalog::finish_scope_migration`]).
    pub(crate) fn scope_migration_pending(&self) -> Result<bool> {
        let connection = self.lock()?;
        let value: Option<String> = connection
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [SCOPE_MIGRATION_SETTING],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.sql_error("read the scope migration setting"))?;
        Ok(value.is_some())
    }

    /// Records that index scopes must be (re)written from the catalog's labels; set before an
    /// index is changed, so a crash half-way is finished at the next open.
    pub(crate) fn begin_scope_migration(&self) -> Result<()> {
        let connection = self.lock()?;
        connection
            .execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, 'pending')",
                [SCOPE_MIGRATION_SETTING],
            )
            .map_err(self.sql_error("record the pending scope migration"))?;
        Ok(())
    }

    /// Records that both indexes carry the scope of every chunk.
    pub(crate) fn finish_scope_migration(&self) -> Result<()> {
        let connection = self.lock()?;
        connection
            .execute(
                "DELETE FROM settings WHERE key = ?1",
                [SCOPE_MIGRATION_SETTING],
            )
            .map_err(self.sql_error("clear the scope migration setting"))?;
        Ok(())
    }
}

/// Copies the labels of every document's `labels` metadata entry into the `labels` column
/// (schema 2 → 3); returns how many documents have labels. Unreadable metadata is left for
/// the normal read path to report.
fn migrate_metadata_labels(connection: &Connection) -> rusqlite::Result<usize> {
    let mut select = connection
        .prepare("SELECT id, metadata FROM documents WHERE instr(metadata, '\"labels\"') > 0")?;
    let rows = select
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut update = connection.prepare("UPDATE documents SET labels = ?1 WHERE id = ?2")?;
    let mut migrated = 0;
    for (id, metadata) in rows {
        let Ok(metadata) = serde_json::from_str::<BTreeMap<String, String>>(&metadata) else {
            continue;
        };
        let labels = metadata
            .get("labels")
            .map(|value| labels_from_metadata(value))
            .unwrap_or_default();
        if !labels.is_empty() {
            update.execute(params![encode_labels(&labels), id])?;
            migrated += 1;
        }
    }
    Ok(migrated)
}

/// Creates the catalog file 0600 before SQLite opens it, so that the -wal and -shm files SQLite
/// makes with the main file's mode are owner-only too (they hold the same text). An existing
/// file and leftover -wal/-shm of an older vellum (0644) lose group and other access.
pub(super) fn create_owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            match std::fs::metadata(&name) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    let mode = meta.permissions().mode() & 0o700;
                    std::fs::set_permissions(&name, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
