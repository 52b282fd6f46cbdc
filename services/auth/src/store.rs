//! `auth.sqlite`: users, login sessions and API keys.
//!
//! ```sql
//! users    (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, password_hash TEXT NOT NULL,
//!           roles TEXT NOT NULL, groups TEXT NOT NULL,           -- JSON arrays of names
//!           disabled INTEGER NOT NULL, must_change_password INTEGER NOT NULL,
//!           created_at INTEGER NOT NULL)                         -- Unix seconds
//! sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
//!           secret_sha256 BLOB NOT NULL, created_at INTEGER NOT NULL,
//!           expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL)
//! api_keys (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
//!           name TEXT NOT NULL, secret_sha256 BLOB NOT NULL, created_at INTEGER NOT NULL,
//!           revoked_at INTEGER,
//!           expires_at INTEGER)                                  -- schema 2; NULL: expired
//! ```
//!
//! Schema 2 gave keys an expiry: keys made before it expire [`DEFAULT_KEY_DAYS`] after the
//! upgrade, so no key lives forever.
//!
//! One connection behind a mutex: logins and key checks are a few indexed reads each (the
//! argon2 verification, ~20 ms, runs outside the lock).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::password::{generate_password, hash_password, verify_password};
use crate::token::{Credential, CredentialKind};

/// How long a login session lasts (8 hours: a working day).
pub const DEFAULT_SESSION_SECONDS: u64 = 8 * 60 * 60;

/// How long a new API key lasts unless its creator says otherwise (`key_days` in the server's
/// settings).
pub const DEFAULT_KEY_DAYS: u32 = 90;

/// The longest an API key may last.
pub const MAX_KEY_DAYS: u32 = 365;

const SCHEMA_VERSION: i64 = 2;

const DAY_SECONDS: u64 = 24 * 60 * 60;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user's row id.
    pub user_id: i64,
    /// The user's name.
    pub name: String,
    /// Roles (e.g. `admin`, `attorney`, `clinician`), as authorization policies see them.
    pub roles: Vec<String>,
    /// Groups (e.g. a matter team or a department), as authorization policies see them.
    pub groups: Vec<String>,
    /// `session` or `api_key`.
    pub via: String,
    /// The public id of the session or key used (for logs and audit; not a secret).
    pub credential_id: String,
    /// The account still has a password it was given (the first-start admin's printed one, or
    /// an administrator's reset) and must choose its own before anything else.
    #[serde(default)]
    pub must_change_password: bool,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    /// Set for generated passwords: the user should choose their own.
    pub must_change_password: bool,
    /// Unix seconds.
    pub created_at: u64,
}

/// What `add_user` takes.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// The public id: the key starts with `vk_<id>_`.
    pub id: String,
    /// The owner.
    pub user: String,
    /// What the key is for.
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; `None` while the key is valid.
    pub revoked_at: Option<u64>,
    /// Unix seconds: the key stops working then.
    pub expires_at: u64,
}

/// A key just created: `key` is shown once and never stored.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    pub key: String,
    pub info: ApiKeyInfo,
}

/// A successful login.
#[derive(Debug, Clone, Serialize)]
pub struct LoginSession {
    /// The bearer token (`vs_…`), shown once.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub principal: Principal,
}

/// The identity database of one data folder.
#[derive(Debug)]
pub struct AuthStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    session_seconds: u64,
    key_days: u32,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Names of users, roles and groups: lowercase letters, digits, `.`, `_`, `-`, `@`; 1-64
/// characters, starting with a letter or digit. Policies and logs can then quote them safely.
fn validate_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        });
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {name:?} is not valid: use 1-64 lowercase letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// The columns [`user_row`] reads, in its order.
const USER_COLUMNS: &str = "name, roles, groups, disabled, must_change_password, created_at";

/// A [`UserInfo`] from a row of [`USER_COLUMNS`].
fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserInfo> {
    Ok(UserInfo {
        name: row.get(0)?,
        roles: from_json(&row.get::<_, String>(1)?),
        groups: from_json(&row.get::<_, String>(2)?),
        disabled: row.get(3)?,
        must_change_password: row.get(4)?,
        created_at: row.get::<_, i64>(5)?.max(0) as u64,
    })
}

fn to_json(names: &[String]) -> Result<String> {
    serde_json::to_string(names).map_err(|err| Error::Database(err.to_string()))
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A hash to verify against when the user does not exist, so that a login for an unknown name
/// takes as long as one with a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("no user has this password").unwrap_or_default())
}

/// Brings the database up to [`SCHEMA_VERSION`] (from 0: new), in one transaction.
/// IMMEDIATE: a second process opening the same folder at the same moment waits (busy
/// timeout), then finds the version already raised and does nothing.
fn migrate(conn: &Connection) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // Read inside the transaction: another process may have migrated meanwhile.
    let mut version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < 1 {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
                 password_hash TEXT NOT NULL, roles TEXT NOT NULL, groups TEXT NOT NULL,
                 disabled INTEGER NOT NULL, must_change_password INTEGER NOT NULL,
                 created_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS sessions (
                 id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                 secret_sha256 BLOB NOT NULL, created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS api_keys (
                 id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                 name TEXT NOT NULL, secret_sha256 BLOB NOT NULL,
                 created_at INTEGER NOT NULL, revoked_at INTEGER);",
        )?;
        version = 1;
    }
    if version < 2 {
        // Keys made before expiry existed get the default lifetime from now: keys that never
        // expired were how a stolen key became permanent.
        let expires_at = now() + u64::from(DEFAULT_KEY_DAYS) * DAY_SECONDS;
        tx.execute_batch("ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;")?;
        tx.execute(
            "UPDATE api_keys SET expires_at = ?1 WHERE expires_at IS NULL",
            params![expires_at as i64],
        )?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    tx.commit()?;
    Ok(())
}

impl AuthStore {
    /// Opens (creating if needed) `auth.sqlite` in `data_dir`.
    ///
    /// The folder is created 0700 and the file 0600 before SQLite writes anything: the file and
    /// the -wal/-shm files SQLite makes with the main file's mode hold password hashes.
    pub fn open(data_dir: &Path) -> Result<AuthStore> {
        /// Creates `path` owner-only, or takes group and other access off an existing one.
        fn owner_only(path: &Path, create: bool) -> std::io::Result<()> {
            #[cfg(unix)]
            {
                use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
                if create {
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
                }
                match std::fs::metadata(path) {
                    Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                        let mode = meta.permissions().mode() & 0o700;
                        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    }
                    Ok(_) => Ok(()),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(err) => Err(err),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = (path, create);
                Ok(())
            }
        }
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
        folder
            .create(data_dir)
            .map_err(|err| Error::Database(format!("{}: {err}", data_dir.display())))?;
        let path = data_dir.join("auth.sqlite");
        let sidecar = |suffix: &str| {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let (wal, shm) = (sidecar("-wal"), sidecar("-shm"));
        // Also leftovers of an older vellum, which made them 0644.
        for (file, create) in [(&path, true), (&wal, false), (&shm, false)] {
            owner_only(file, create)
                .map_err(|err| Error::Database(format!("{}: {err}", file.display())))?;
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )?;
        // SQLite copies the main file's mode to the files it creates; make sure regardless.
        for file in [&wal, &shm] {
            owner_only(file, false)
                .map_err(|err| Error::Database(format!("{}: {err}", file.display())))?;
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Database(format!(
                "{} has schema version {version}; this vellum reads up to {SCHEMA_VERSION}",
                path.display()
            )));
        }
        if version < SCHEMA_VERSION {
            migrate(&conn)?;
        }
        Ok(AuthStore {
            path,
            conn: Mutex::new(conn),
            session_seconds: DEFAULT_SESSION_SECONDS,
            key_days: DEFAULT_KEY_DAYS,
        })
    }

    /// Sets how many days new API keys last unless their creator asks for fewer (1 to
    /// [`MAX_KEY_DAYS`]; outside that range it is clamped).
    pub fn with_key_days(mut self, days: u32) -> AuthStore {
        self.key_days = days.clamp(1, MAX_KEY_DAYS);
        self
    }

    /// How many days new API keys last by default.
    pub fn key_days(&self) -> u32 {
        self.key_days
    }

    /// Sets how long new login sessions last.
    pub fn with_session_seconds(mut self, seconds: u64) -> AuthStore {
        self.session_seconds = seconds.max(1);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // SQLite rolls back a transaction a panicking holder left open.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a user.
    pub fn add_user(&self, user: &NewUser<'_>) -> Result<UserInfo> {
        validate_name("user name", user.name)?;
        for role in &user.roles {
            validate_name("role", role)?;
        }
        for group in &user.groups {
            validate_name("group", group)?;
        }
        let hash = hash_password(user.password)?;
        self.insert_user(user, &hash, false)
    }

    fn insert_user(&self, user: &NewUser<'_>, hash: &str, must_change: bool) -> Result<UserInfo> {
        let created_at = now();
        let inserted = self.conn().execute(
            "INSERT INTO users (name, password_hash, roles, groups, disabled, must_change_password, created_at)
             VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
            params![
                user.name,
                hash,
                to_json(&user.roles)?,
                to_json(&user.groups)?,
                must_change,
                created_at as i64
            ],
        );
        match inserted {
            Ok(_) => Ok(UserInfo {
                name: user.name.to_string(),
                roles: user.roles.clone(),
                groups: user.groups.clone(),
                disabled: false,
                must_change_password: must_change,
                created_at,
            }),
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::Invalid(format!(
                    "user {:?} already exists",
                    user.name
                )))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// On a database with no users, creates `admin` (role `admin`) with `password`, or with a
    /// generated one that is returned (to print once) and must be changed. Returns `None` when
    /// users already exist or the password was given.
    pub fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>> {
        let count: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
        if count > 0 {
            return Ok(None);
        }
        fn admin(password: &str) -> NewUser<'_> {
            NewUser {
                name: "admin",
                password,
                roles: vec!["admin".to_string()],
                groups: Vec::new(),
            }
        }
        match password {
            Some(password) => {
                self.add_user(&admin(password))?;
                Ok(None)
            }
            None => {
                let generated = generate_password()?;
                let hash = hash_password(&generated)?;
                self.insert_user(&admin(&generated), &hash, true)?;
                Ok(Some(generated))
            }
        }
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<UserInfo>> {
        let conn = self.conn();
        let mut statement =
            conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
        let rows = statement.query_map([], user_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Disables (or re-enables) a user. Disabling also ends their sessions; their keys stop
    /// working while the account is disabled.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET disabled = ?1 WHERE name = ?2",
            params![disabled, name],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("user {name:?}")));
        }
        if disabled {
            tx.execute(
                "UPDATE sessions SET revoked = 1 WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
                params![name],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets a user's password (chosen by the user, or by the operator) and ends their sessions
    /// and API keys: whoever held a stolen token or key is out, and the owner makes new keys.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        self.change_password(name, password, false)
    }

    /// Like [`AuthStore::set_password`] for a password someone else chose (an administrator's
    /// reset): the user must then choose their own ([`UserInfo::must_change_password`]).
    pub fn reset_password(&self, name: &str, password: &str) -> Result<()> {
        self.change_password(name, password, true)
    }

    fn change_password(&self, name: &str, password: &str, must_change: bool) -> Result<()> {
        let hash = hash_password(password)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET password_hash = ?1, must_change_password = ?2 WHERE name = ?3",
            params![hash, must_change, name],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("user {name:?}")));
        }
        tx.execute(
            "UPDATE sessions SET revoked = 1 WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            params![name],
        )?;
        tx.execute(
            "UPDATE api_keys SET revoked_at = ?1
             WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = ?2)",
            params![now() as i64, name],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// One user, or [`Error::NotFound`].
    pub fn user(&self, name: &str) -> Result<UserInfo> {
        self.conn()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                params![name],
                user_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("user {name:?}")))
    }

    /// Checks a user name and password and opens a session. Every failure is
    /// [`Error::Unauthenticated`], and an unknown user costs the same argon2 work as a wrong
    /// password. Throttling is the caller's ([`crate::Throttle`]), which knows the address.
    pub fn login(&self, name: &str, password: &str) -> Result<LoginSession> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, password_hash, roles, groups, disabled, must_change_password
                 FROM users WHERE name = ?1",
                params![name],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, bool>(4)?,
                        row.get::<_, bool>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((user_id, hash, roles, groups, disabled, must_change_password)) = row else {
            let _ = verify_password(password, dummy_hash());
            return Err(Error::Unauthenticated);
        };
        if !verify_password(password, &hash) || disabled {
            return Err(Error::Unauthenticated);
        }
        let credential = Credential::generate(CredentialKind::Session)?;
        let created_at = now();
        let expires_at = created_at + self.session_seconds;
        self.conn().execute(
            "INSERT INTO sessions (id, user_id, secret_sha256, created_at, expires_at, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            params![
                credential.id,
                user_id,
                credential.secret_digest(),
                created_at as i64,
                expires_at as i64
            ],
        )?;
        Ok(LoginSession {
            token: credential.expose(),
            expires_at,
            principal: Principal {
                user_id,
                name: name.to_string(),
                roles: from_json(&roles),
                groups: from_json(&groups),
                via: "session".to_string(),
                credential_id: credential.id.clone(),
                must_change_password,
            },
        })
    }

    /// Ends the session of a `vs_` token (idempotent; unknown tokens are ignored).
    pub fn logout(&self, bearer: &str) -> Result<()> {
        let credential = Credential::parse(bearer)?;
        if credential.kind == CredentialKind::Session {
            self.conn().execute(
                "UPDATE sessions SET revoked = 1 WHERE id = ?1",
                params![credential.id],
            )?;
        }
        Ok(())
    }

    /// Resolves a bearer token or API key to its principal, or [`Error::Unauthenticated`].
    pub fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let credential = Credential::parse(bearer)?;
        let sql = match credential.kind {
            CredentialKind::Session => {
                "SELECT s.secret_sha256, u.id, u.name, u.roles, u.groups, u.must_change_password
                 FROM sessions s
                 JOIN users u ON u.id = s.user_id
                 WHERE s.id = ?1 AND s.revoked = 0 AND s.expires_at > ?2 AND u.disabled = 0"
            }
            CredentialKind::ApiKey => {
                "SELECT k.secret_sha256, u.id, u.name, u.roles, u.groups, u.must_change_password
                 FROM api_keys k
                 JOIN users u ON u.id = k.user_id
                 WHERE k.id = ?1 AND k.revoked_at IS NULL AND k.expires_at > ?2
                   AND u.disabled = 0"
            }
        };
        let row = self
            .conn()
            .query_row(sql, params![credential.id, now() as i64], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, bool>(5)?,
                ))
            })
            .optional()?;
        let Some((digest, user_id, name, roles, groups, must_change_password)) = row else {
            return Err(Error::Unauthenticated);
        };
        if !credential.matches(&digest) {
            return Err(Error::Unauthenticated);
        }
        Ok(Principal {
            user_id,
            name,
            roles: from_json(&roles),
            groups: from_json(&groups),
            via: match credential.kind {
                CredentialKind::Session => "session",
                CredentialKind::ApiKey => "api_key",
            }
            .to_string(),
            credential_id: credential.id,
            must_change_password,
        })
    }

    /// Creates an API key for `user` that lasts the default number of days
    /// ([`AuthStore::with_key_days`]); the returned key is the only copy.
    pub fn create_key(&self, user: &str, name: &str) -> Result<CreatedKey> {
        self.create_key_for_days(user, name, self.key_days)
    }

    /// Creates an API key for `user` that lasts `days` (1 to [`MAX_KEY_DAYS`]).
    pub fn create_key_for_days(&self, user: &str, name: &str, days: u32) -> Result<CreatedKey> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(Error::Invalid(
                "a key needs a name of 1-200 characters (what it is for)".into(),
            ));
        }
        if !(1..=MAX_KEY_DAYS).contains(&days) {
            return Err(Error::Invalid(format!(
                "a key lasts 1 to {MAX_KEY_DAYS} days, not {days}"
            )));
        }
        let credential = Credential::generate(CredentialKind::ApiKey)?;
        let created_at = now();
        let expires_at = created_at + u64::from(days) * DAY_SECONDS;
        let inserted = self.conn().execute(
            "INSERT INTO api_keys (id, user_id, name, secret_sha256, created_at, expires_at)
             SELECT ?1, id, ?2, ?3, ?4, ?5 FROM users WHERE name = ?6",
            params![
                credential.id,
                name,
                credential.secret_digest(),
                created_at as i64,
                expires_at as i64,
                user
            ],
        )?;
        if inserted == 0 {
            return Err(Error::NotFound(format!("user {user:?}")));
        }
        Ok(CreatedKey {
            key: credential.expose(),
            info: ApiKeyInfo {
                id: credential.id.clone(),
                user: user.to_string(),
                name: name.to_string(),
                created_at,
                revoked_at: None,
                expires_at,
            },
        })
    }

    /// API keys, of one user or of everyone.
    pub fn list_keys(&self, user: Option<&str>) -> Result<Vec<ApiKeyInfo>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT k.id, u.name, k.name, k.created_at, k.revoked_at, k.expires_at FROM api_keys k
             JOIN users u ON u.id = k.user_id
             WHERE ?1 IS NULL OR u.name = ?1 ORDER BY k.created_at, k.id",
        )?;
        let rows = statement.query_map(params![user], |row| {
            Ok(ApiKeyInfo {
                id: row.get(0)?,
                user: row.get(1)?,
                name: row.get(2)?,
                created_at: row.get::<_, i64>(3)?.max(0) as u64,
                revoked_at: row.get::<_, Option<i64>>(4)?.map(|t| t.max(0) as u64),
                // NULL cannot remain after the migration; if it did, it would not authenticate.
                expires_at: row.get::<_, Option<i64>>(5)?.unwrap_or(0).max(0) as u64,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Revokes a key by its public id (the `vk_<id>_` part, or the whole key).
    pub fn revoke_key(&self, id: &str) -> Result<()> {
        let id = Credential::parse(id).map_or_else(|_| id.trim().to_string(), |c| c.id);
        let changed = self.conn().execute(
            "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![now() as i64, id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("active key {id:?}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, AuthStore) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = AuthStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        (dir, store)
    }

    fn alice(store: &AuthStore) {
        store
            .add_user(&NewUser {
                name: "alice",
                password: "alice's long password",
                roles: vec!["attorney".into()],
                groups: vec!["matter-1234".into()],
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn login_alice(store: &AuthStore) -> LoginSession {
        store
            .login("alice", "alice's long password")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn assert_refused(store: &AuthStore, bearer: &str) {
        assert!(matches!(
            store.authenticate(bearer),
            Err(Error::Unauthenticated)
        ));
    }

    #[test]
    fn login_then_the_token_authenticates_until_logout() {
        let (_dir, store) = store();
        alice(&store);
        let session = login_alice(&store);
        let principal = store
            .authenticate(&session.token)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(principal.name, "alice");
        assert_eq!(principal.roles, ["attorney"]);
        assert_eq!(principal.groups, ["matter-1234"]);
        assert_eq!(principal.via, "session");
        store
            .logout(&session.token)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_refused(&store, &session.token);
    }

    #[test]
    fn wrong_password_unknown_user_and_forged_token_look_the_same() {
        let (_dir, store) = store();
        alice(&store);
        for (name, password) in [
            ("alice", "wrong password!!"),
            ("mallory", "whatever password"),
        ] {
            assert!(matches!(
                store.login(name, password),
                Err(Error::Unauthenticated)
            ));
        }
        let session = login_alice(&store);
        // Same id, another secret.
        let forged = format!("{}{}", &session.token[..16], "0".repeat(64));
        assert_refused(&store, &forged);
    }

    #[test]
    fn sessions_expire() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = AuthStore::open(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_session_seconds(1);
        alice(&store);
        let session = login_alice(&store);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_refused(&store, &session.token);
    }

    #[test]
    fn api_keys_work_until_revoked_and_are_listed_without_secrets() {
        let (_dir, store) = store();
        alice(&store);
        let created = store
            .create_key("alice", "document scanner")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(created.key.starts_with(&format!("vk_{}_", created.info.id)));
        let principal = store
            .authenticate(&created.key)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (principal.name.as_str(), principal.via.as_str()),
            ("alice", "api_key")
        );
        let listed = store
            .list_keys(Some("alice"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed, vec![created.info.clone()]);
        store
            .revoke_key(&created.info.id)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_refused(&store, &created.key);
        assert!(matches!(
            store.revoke_key(&created.info.id),
            Err(Error::NotFound(_))
        ));
        // The database holds no secret.
        let bytes = std::fs::read(store.path()).unwrap_or_default();
        let secret = created.key.rsplit('_').next().unwrap_or_default();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    #[test]
    fn disabling_a_user_ends_sessions_and_suspends_keys() {
        let (_dir, store) = store();
        alice(&store);
        let session = login_alice(&store);
        let key = store
            .create_key("alice", "scanner")
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .set_disabled("alice", true)
            .unwrap_or_else(|e| panic!("{e}"));
        for bearer in [&session.token, &key.key] {
            assert_refused(&store, bearer);
        }
        assert!(matches!(
            store.login("alice", "alice's long password"),
            Err(Error::Unauthenticated)
        ));
        store
            .set_disabled("alice", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.authenticate(&key.key).is_ok());
        assert!(
            store.authenticate(&session.token).is_err(),
            "sessions stay ended"
        );
    }

    #[test]
    fn changing_a_password_ends_sessions_and_revokes_keys() {
        let (_dir, store) = store();
        alice(&store);
        let session = login_alice(&store);
        let key = store
            .create_key("alice", "scanner")
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .set_password("alice", "a brand new password")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.authenticate(&session.token).is_err());
        assert!(store.authenticate(&key.key).is_err(), "the key survived");
        assert!(store.login("alice", "alice's long password").is_err());
        assert!(store.login("alice", "a brand new password").is_ok());
        let user = store.user("alice").unwrap_or_else(|e| panic!("{e}"));
        assert!(!user.must_change_password);

        // A reset by someone else does the same, and the user must choose their own.
        let key = store
            .create_key("alice", "scanner 2")
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .reset_password("alice", "a password from the admin")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            store.authenticate(&key.key).is_err(),
            "the key survived a reset"
        );
        let user = store.user("alice").unwrap_or_else(|e| panic!("{e}"));
        assert!(user.must_change_password);
        assert!(matches!(store.user("nobody"), Err(Error::NotFound(_))));
    }

    #[test]
    fn api_keys_expire_and_say_when() {
        let (_dir, store) = store();
        alice(&store);
        let start = now();
        let default = store
            .create_key("alice", "laptop")
            .unwrap_or_else(|e| panic!("{e}"));
        let days = u64::from(DEFAULT_KEY_DAYS) * DAY_SECONDS;
        assert!((start + days..=now() + days).contains(&default.info.expires_at));
        let store = store.with_key_days(7);
        let week = store
            .create_key("alice", "a week")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(week.info.expires_at <= now() + 7 * DAY_SECONDS);
        for days in [0, MAX_KEY_DAYS + 1] {
            assert!(matches!(
                store.create_key_for_days("alice", "bad", days),
                Err(Error::Invalid(_))
            ));
        }
        // Expired (the clock moved on): refused, and listed with its expiry.
        let conn = Connection::open(store.path()).unwrap_or_else(|e| panic!("{e}"));
        conn.execute(
            "UPDATE api_keys SET expires_at = ?1 WHERE id = ?2",
            params![(start - 1) as i64, week.info.id],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_refused(&store, &week.key);
        assert!(store.authenticate(&default.key).is_ok());
        let listed = store
            .list_keys(Some("alice"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(listed
            .iter()
            .any(|k| k.id == week.info.id && k.expires_at == start - 1));
    }

    #[test]
    fn schema_1_keys_get_an_expiry_on_upgrade() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let credential =
            Credential::generate(CredentialKind::ApiKey).unwrap_or_else(|e| panic!("{e}"));
        {
            // A schema-1 database, as the previous release wrote it, with a key.
            let conn =
                Connection::open(dir.path().join("auth.sqlite")).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(
                "CREATE TABLE users (
                     id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
                     password_hash TEXT NOT NULL, roles TEXT NOT NULL, groups TEXT NOT NULL,
                     disabled INTEGER NOT NULL, must_change_password INTEGER NOT NULL,
                     created_at INTEGER NOT NULL);
                 CREATE TABLE sessions (
                     id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                     secret_sha256 BLOB NOT NULL, created_at INTEGER NOT NULL,
                     expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL);
                 CREATE TABLE api_keys (
                     id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                     name TEXT NOT NULL, secret_sha256 BLOB NOT NULL,
                     created_at INTEGER NOT NULL, revoked_at INTEGER);
                 INSERT INTO users VALUES (1, 'alice', 'x', '[]', '[]', 0, 0, 0);
                 PRAGMA user_version = 1;",
            )
            .unwrap_or_else(|e| panic!("{e}"));
            conn.execute(
                "INSERT INTO api_keys VALUES (?1, 1, 'old key', ?2, 0, NULL)",
                params![credential.id, credential.secret_digest()],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let start = now();
        let store = AuthStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let keys = store.list_keys(None).unwrap_or_else(|e| panic!("{e}"));
        let days = u64::from(DEFAULT_KEY_DAYS) * DAY_SECONDS;
        assert!(
            keys.len() == 1 && (start + days..=now() + days).contains(&keys[0].expires_at),
            "{keys:?}"
        );
        assert!(store.authenticate(&credential.expose()).is_ok());
        drop(store);
        // Opening again changes nothing.
        let store = AuthStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.list_keys(None).unwrap_or_else(|e| panic!("{e}")),
            keys
        );
    }

    #[test]
    fn first_start_creates_an_admin_once() {
        let (_dir, store) = store();
        let generated = store
            .ensure_admin(None)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_default();
        assert_eq!(generated.len(), 24);
        let session = store
            .login("admin", &generated)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(session.principal.roles, ["admin"]);
        let users = store.list_users().unwrap_or_else(|e| panic!("{e}"));
        assert!(users[0].must_change_password);
        assert_eq!(
            store.ensure_admin(None).unwrap_or_else(|e| panic!("{e}")),
            None
        );
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let (_dir, store) = store();
        alice(&store);
        for name in ["", "Alice", "a b", "-x", "x\"; DROP"] {
            let user = NewUser {
                name,
                password: "a long enough password",
                roles: vec![],
                groups: vec![],
            };
            assert!(
                matches!(store.add_user(&user), Err(Error::Invalid(_))),
                "{name:?}"
            );
        }
        let again = NewUser {
            name: "alice",
            password: "a long enough password",
            roles: vec![],
            groups: vec![],
        };
        assert!(matches!(store.add_user(&again), Err(Error::Invalid(_))));
    }
}
