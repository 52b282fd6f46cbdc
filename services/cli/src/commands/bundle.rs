//! `vellum bundle keygen|sign|verify`: the offline install bundle's signed manifest (see
//! services/bundle and docs/deploy.md). These commands touch only the bundle folder and the
//! key files: no data folder, no models, no audit log.

use std::path::Path;

use anyhow::Result;
use vellum_bundle::{BundleError, BundleReport};
use vellum_server::ServiceError;

use crate::cli::{BundleArgs, BundleCommand};
use crate::context::service_error;
use crate::render::print_json;

pub fn bundle(args: BundleArgs, json: bool) -> Result<()> {
    match args.command {
        BundleCommand::Verify { dir, public_key } => verify(&dir, &public_key, json),
        BundleCommand::Sign { dir, secret_key } => sign(&dir, &secret_key, json),
        BundleCommand::Keygen { out } => keygen(&out, json),
    }
}

/// Exit code 2 for a key or folder that is not usable, 1 for a bundle that does not verify
/// (see `main.rs`).
fn failure(err: BundleError, what: String) -> anyhow::Error {
    if err.is_bad_input() {
        service_error(ServiceError::BadRequest(err.to_string()))
    } else {
        anyhow::anyhow!("{what}: {err}")
    }
}

fn verify(dir: &Path, public_key: &str, json: bool) -> Result<()> {
    let key = vellum_bundle::parse_public_key(public_key)
        .map_err(|e| failure(e, "the public key".into()))?;
    let report = vellum_bundle::verify(dir, &key)
        .map_err(|e| failure(e, format!("bundle {} NOT verified", dir.display())))?;
    if json {
        return print_report_json(dir, "verified", &report);
    }
    println!("bundle verified: {}", dir.display());
    print_report(&report, "match the signed manifest");
    Ok(())
}

fn sign(dir: &Path, secret_key: &Path, json: bool) -> Result<()> {
    let key = vellum_bundle::read_secret_key(secret_key)
        .map_err(|e| failure(e, "the secret key".into()))?;
    let report = vellum_bundle::sign(dir, &key)
        .map_err(|e| failure(e, format!("cannot sign {}", dir.display())))?;
    if json {
        return print_report_json(dir, "signed", &report);
    }
    println!("bundle signed: {}", dir.display());
    print_report(&report, "listed in MANIFEST");
    Ok(())
}

fn keygen(prefix: &Path, json: bool) -> Result<()> {
    let files = vellum_bundle::generate_key_pair(prefix)
        .map_err(|e| failure(e, "cannot make the key pair".into()))?;
    if json {
        return print_json(&serde_json::json!({
            "algorithm": "ed25519",
            "public_key": files.public_key_hex,
            "public_key_file": files.public_key,
            "secret_key_file": files.secret_key,
        }));
    }
    // The secret is never printed: it stays in its 0600 file.
    println!(
        "secret key: {} (mode 0600: keep it offline, never in a repository)",
        files.secret_key.display()
    );
    println!("public key: {}", files.public_key.display());
    println!("{}", files.public_key_hex);
    Ok(())
}

fn print_report(report: &BundleReport, what: &str) {
    println!(
        "  {} files, {:.1} MB, {what}",
        report.files,
        report.bytes as f64 / 1e6
    );
    println!("  MANIFEST sha256 {}", report.manifest_sha256);
    println!("  signed by ed25519 key {}", report.public_key);
}

fn print_report_json(dir: &Path, outcome: &str, report: &BundleReport) -> Result<()> {
    print_json(&serde_json::json!({
        "outcome": outcome,
        "dir": dir,
        "files": report.files,
        "bytes": report.bytes,
        "manifest_sha256": report.manifest_sha256,
        "public_key": report.public_key,
    }))
}
