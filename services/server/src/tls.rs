//! The TLS side of `vellum serve`: rustls with the ring provider, TLS 1.3 and 1.2 only (rustls
//! has no older versions to turn off), a configured certificate or a self-signed one made on
//! first start, and optional client certificates (mTLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::ServerConfig;

/// A TLS set-up problem; names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The TLS configuration and what to tell the operator about it.
pub struct TlsSetup {
    pub config: rustls::ServerConfig,
    /// The certificate file in use.
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate (DER), colon-separated hex, for clients to pin.
    pub fingerprint_sha256: String,
    /// True when this start made the self-signed certificate.
    pub created_self_signed: bool,
    /// True when clients must present a certificate.
    pub client_certificates_required: bool,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("cert_path", &self.cert_path)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .finish_non_exhaustive()
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Builds the server's TLS configuration from `config`, making `<data_dir>/tls/cert.pem` and
/// `key.pem` (self-signed for localhost and this host's name) when no certificate is configured
/// and none was made before.
pub fn load(config: &ServerConfig, data_dir: &Path) -> Result<TlsSetup, TlsError> {
    let (cert_path, key_path, created) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        _ => {
            let dir = data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            let created = if cert.is_file() && key.is_file() {
                false
            } else {
                make_self_signed(&dir, &cert, &key)?;
                true
            };
            (cert, key, created)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|err| file_error(&cert_path, format!("cannot read certificates: {err}")))?
        .collect::<Result<_, _>>()
        .map_err(|err| file_error(&cert_path, format!("bad PEM: {err}")))?;
    let Some(leaf) = certs.first() else {
        return Err(file_error(&cert_path, "no certificate in the file"));
    };
    let fingerprint_sha256 = Sha256::digest(leaf.as_ref())
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|err| file_error(&key_path, format!("cannot read the private key: {err}")))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &config.tls_client_ca {
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_path).map_err(|err| {
                file_error(ca_path, format!("cannot read CA certificates: {err}"))
            })?;
            for ca in cas {
                let ca = ca.map_err(|err| file_error(ca_path, format!("bad PEM: {err}")))?;
                roots.add(ca).map_err(|err| {
                    file_error(ca_path, format!("unusable CA certificate: {err}"))
                })?;
            }
            if roots.is_empty() {
                return Err(file_error(ca_path, "no CA certificate in the file"));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|err| file_error(ca_path, err))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let tls = builder.with_single_cert(certs, key)?;
    Ok(TlsSetup {
        config: tls,
        cert_path,
        fingerprint_sha256,
        created_self_signed: created,
        client_certificates_required: config.tls_client_ca.is_some(),
    })
}

fn make_self_signed(dir: &Path, cert: &Path, key: &Path) -> Result<(), TlsError> {
    // Owner-only: the folder holds the private key.
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
    folder.create(dir).map_err(|err| file_error(dir, err))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|name| name == host) {
            names.push(host.to_string());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|err| TlsError::SelfSigned(err.to_string()))?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, certified.cert.pem()).map_err(|err| file_error(cert, err))?;
    Ok(())
}

/// Writes a file only its owner can read (created so; never world-readable for a moment).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(|err| file_error(path, err))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|err| file_error(path, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};

    fn config() -> ServerConfig {
        ServerConfig::resolve(Overrides::default(), FileConfig::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn first_start_makes_a_self_signed_certificate_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = load(&config(), dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(first.created_self_signed);
        assert_eq!(first.fingerprint_sha256.len(), 32 * 3 - 1);
        let second = load(&config(), dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!second.created_self_signed);
        assert_eq!(first.fingerprint_sha256, second.fingerprint_sha256);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_missing_configured_certificate_names_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = config();
        config.tls_cert = Some(dir.path().join("nope.pem"));
        config.tls_key = Some(dir.path().join("nope.key"));
        let err = load(&config, dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("nope.pem"), "{err}");
    }
}
