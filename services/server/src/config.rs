//! Server settings. Each comes from, in order of precedence: a command-line flag, an
//! environment variable, the TOML file (`--config`, default `<data dir>/vellum.toml` if it
//! exists), then the built-in default. The TOML file rejects unknown keys: a misspelt
//! `client_ca` must stop the server, not silently turn client certificates off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What `vellum serve` runs with, all layers merged.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address and port to listen on (HTTPS only).
    pub listen: SocketAddr,
    /// The Cedar policies: a folder, or a set compiled into the binary (built-in `default`
    /// when none is named).
    pub policies: vellum_app::Policies,
    /// TLS certificate chain (PEM); with `tls_key`. Neither: a self-signed one in the data folder.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to; set, every client must
    /// present one (mTLS), on top of its bearer token.
    pub tls_client_ca: Option<PathBuf>,
    /// Hours a login session lasts.
    pub session_hours: u64,
    /// Days a new API key lasts unless its creator asks for fewer (1-365).
    pub key_days: u32,
    /// Largest request body accepted, in megabytes (uploads).
    pub max_upload_mb: u64,
    /// HTTP worker threads.
    pub workers: usize,
    /// The audit log's folder (`None`: `<data dir>/audit`).
    pub audit_dir: Option<PathBuf>,
    /// The audit signing and HMAC keys' folder, kept apart from the log (`None`:
    /// `<data dir>/audit-keys`).
    pub audit_key_dir: Option<PathBuf>,
    /// Keep queries in plain text in the audit log besides their HMAC (off by default).
    pub audit_plain_queries: bool,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`/`Forwarded` headers
    /// name the client; empty: the TCP peer is the client, whatever the headers say.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Free megabytes uploads must leave on the upload file system.
    pub upload_reserve_mb: u64,
    /// Refuse to start unless the data folder is on a dm-crypt (LUKS) device.
    pub require_encrypted_storage: bool,
}

/// The TOML file's shape: every key optional, unknown keys an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub policies: Option<PathBuf>,
    pub session_hours: Option<u64>,
    pub key_days: Option<u32>,
    pub max_upload_mb: Option<u64>,
    pub workers: Option<usize>,
    pub tls: Option<TlsFileConfig>,
    pub audit: Option<AuditFileConfig>,
    /// Parsed in [`ServerConfig::resolve`] (ipnet's serde feature would rebuild the HTTP
    /// client stack that shares it).
    pub trusted_proxies: Option<Vec<String>>,
    pub upload_reserve_mb: Option<u64>,
    pub require_encrypted_storage: Option<bool>,
}

/// `[audit]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFileConfig {
    pub dir: Option<PathBuf>,
    pub key_dir: Option<PathBuf>,
    pub plain_queries: Option<bool>,
}

/// `[tls]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

/// Settings given on the command line or in the environment (clap resolves flag > env).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub policies: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub session_hours: Option<u64>,
    pub key_days: Option<u32>,
    pub max_upload_mb: Option<u64>,
    pub workers: Option<usize>,
    pub audit_dir: Option<PathBuf>,
    pub audit_key_dir: Option<PathBuf>,
    pub audit_plain_queries: Option<bool>,
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    pub upload_reserve_mb: Option<u64>,
    pub require_encrypted_storage: Option<bool>,
}

/// A configuration problem, naming the file and the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Loopback only by default: exposing the service is a deliberate choice.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8443,
));
pub const DEFAULT_SESSION_HOURS: u64 = 8;
pub const DEFAULT_MAX_UPLOAD_MB: u64 = 256;
/// 1 GiB kept free for the audit log and the indexes.
pub const DEFAULT_UPLOAD_RESERVE_MB: u64 = 1024;

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|err| err.to_string().trim().to_string())
    }
}

/// Addresses (`192.0.2.7`, `::1`) or CIDR ranges (`10.0.0.0/8`).
pub fn parse_proxies(texts: Vec<String>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    texts
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "trusted_proxies: {text:?} is not an IP address or CIDR range (e.g. \
                         127.0.0.1 or 10.0.0.0/8)"
                    ))
                })
        })
        .collect()
}

impl ServerConfig {
    /// Merges the layers: overrides (flag or environment) > file > defaults.
    pub fn resolve(overrides: Overrides, file: FileConfig) -> Result<ServerConfig, ConfigError> {
        let tls = file.tls.unwrap_or_default();
        let audit = file.audit.unwrap_or_default();
        let config = ServerConfig {
            listen: overrides.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN),
            policies: vellum_app::Policies::from_setting(
                overrides.policies.or(file.policies).as_deref(),
            ),
            tls_cert: overrides.tls_cert.or(tls.cert),
            tls_key: overrides.tls_key.or(tls.key),
            tls_client_ca: overrides.tls_client_ca.or(tls.client_ca),
            session_hours: overrides
                .session_hours
                .or(file.session_hours)
                .unwrap_or(DEFAULT_SESSION_HOURS),
            key_days: overrides
                .key_days
                .or(file.key_days)
                .unwrap_or(vellum_app::DEFAULT_KEY_DAYS),
            max_upload_mb: overrides
                .max_upload_mb
                .or(file.max_upload_mb)
                .unwrap_or(DEFAULT_MAX_UPLOAD_MB),
            workers: overrides
                .workers
                .or(file.workers)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            audit_dir: overrides.audit_dir.or(audit.dir),
            audit_key_dir: overrides.audit_key_dir.or(audit.key_dir),
            audit_plain_queries: overrides
                .audit_plain_queries
                .or(audit.plain_queries)
                .unwrap_or(false),
            trusted_proxies: match overrides.trusted_proxies {
                Some(proxies) => proxies,
                None => parse_proxies(file.trusted_proxies.unwrap_or_default())?,
            },
            upload_reserve_mb: overrides
                .upload_reserve_mb
                .or(file.upload_reserve_mb)
                .unwrap_or(DEFAULT_UPLOAD_RESERVE_MB),
            require_encrypted_storage: overrides
                .require_encrypted_storage
                .or(file.require_encrypted_storage)
                .unwrap_or(false),
        };
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls cert and key go together: set both (or neither, for a self-signed certificate)"
                    .into(),
            ));
        }
        if !(1..=vellum_app::MAX_KEY_DAYS).contains(&config.key_days) {
            return Err(ConfigError::Invalid(format!(
                "key_days must be 1-{} (API keys expire; {} by default)",
                vellum_app::MAX_KEY_DAYS,
                vellum_app::DEFAULT_KEY_DAYS
            )));
        }
        if config.session_hours == 0 || config.workers == 0 || config.max_upload_mb == 0 {
            return Err(ConfigError::Invalid(
                "session_hours, workers and max_upload_mb must be at least 1".into(),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let file = FileConfig::parse(
            "listen = \"0.0.0.0:9443\"\nsession_hours = 2\n[tls]\nclient_ca = \"/etc/ca.pem\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let overrides = Overrides {
            session_hours: Some(4),
            ..Overrides::default()
        };
        let config = ServerConfig::resolve(overrides, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen.to_string(), "0.0.0.0:9443");
        assert_eq!(config.session_hours, 4);
        assert_eq!(config.tls_client_ca, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(config.max_upload_mb, DEFAULT_MAX_UPLOAD_MB);
        assert!(
            matches!(&config.policies, vellum_app::Policies::Builtin(name) if name == "default"),
            "{:?}",
            config.policies
        );
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        for text in ["sesion_hours = 2\n", "[tls]\nclient_cert_ca = \"x\"\n"] {
            let err = FileConfig::parse(text).err().unwrap_or_default();
            assert!(err.contains("unknown field"), "{err}");
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let file = FileConfig::parse("trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let config =
            ServerConfig::resolve(Overrides::default(), file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.trusted_proxies.len(), 2);
        let bad = FileConfig::parse("trusted_proxies = [\"not an address\"]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ServerConfig::resolve(Overrides::default(), bad).is_err());
        let none = ServerConfig::resolve(Overrides::default(), FileConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(none.trusted_proxies.is_empty());
    }

    #[test]
    fn api_keys_expire_after_key_days() {
        let defaults = ServerConfig::resolve(Overrides::default(), FileConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(defaults.key_days, vellum_app::DEFAULT_KEY_DAYS);
        let file = FileConfig::parse("key_days = 30\n").unwrap_or_else(|e| panic!("{e}"));
        let overrides = Overrides {
            key_days: Some(7),
            ..Overrides::default()
        };
        let config = ServerConfig::resolve(overrides, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.key_days, 7);
        for days in ["0", "366"] {
            let file = FileConfig::parse(&format!("key_days = {days}\n"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(ServerConfig::resolve(Overrides::default(), file).is_err());
        }
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let overrides = Overrides {
            tls_cert: Some("cert.pem".into()),
            ..Overrides::default()
        };
        assert!(ServerConfig::resolve(overrides, FileConfig::default()).is_err());
    }
}
