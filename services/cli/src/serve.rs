//! `vellum serve`: merges the settings, opens the stores, models, users and policies, makes or
//! loads the TLS certificate, then runs the server.

use std::io::Write;

use anyhow::{Context as _, Result};
use vellum_auth::AuthStore;
use vellum_server::{FileConfig, Overrides, ServerConfig, Service};

use crate::cli::ServeArgs;
use crate::context::Context;

pub fn serve(ctx: &Context, args: ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None => {
            let path = ctx.data_dir.join("vellum.toml");
            if path.is_file() {
                FileConfig::read(&path)?
            } else {
                FileConfig::default()
            }
        }
    };
    let overrides = Overrides {
        listen: args.listen,
        policies: args.policies,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        session_hours: args.session_hours,
        max_upload_mb: args.max_upload_mb,
        workers: args.workers,
    };
    let config = ServerConfig::resolve(overrides, file)?;

    let embedder = ctx.embedder()?;
    let store = ctx.open_store(&embedder)?;
    let auth = AuthStore::open(&ctx.data_dir)
        .context("opening the user database")?
        .with_session_seconds(config.session_hours.saturating_mul(3600));
    // The first start creates `admin`: with VELLUM_ADMIN_PASSWORD if set (then it is never
    // printed), else with a generated password printed once.
    let admin_password = std::env::var("VELLUM_ADMIN_PASSWORD").ok();
    if let Some(generated) = auth.ensure_admin(admin_password.as_deref())? {
        eprintln!(
            "Created the user `admin` with the one-time password {generated}\n\
             Change it now: vellum user passwd admin --password-stdin"
        );
    }
    let service =
        Service::new(store, Box::new(embedder), auth, &config.policies).with_context(|| {
            format!(
                "loading the Cedar policies in {} (--policies / VELLUM_POLICIES)",
                config.policies.display()
            )
        })?;
    let tls = vellum_server::tls::load(&config, &ctx.data_dir).context("setting up TLS")?;
    if tls.created_self_signed {
        eprintln!(
            "Made a self-signed certificate: {}",
            tls.cert_path.display()
        );
    }
    eprintln!(
        "TLS certificate {} (SHA-256 {}){}",
        tls.cert_path.display(),
        tls.fingerprint_sha256,
        if tls.client_certificates_required {
            "; client certificates required"
        } else {
            ""
        }
    );
    eprintln!(
        "Policies: {} ({} rules)",
        config.policies.display(),
        service.policy_ids().len()
    );
    vellum_server::serve(&config, service, tls, |address| {
        // On stdout, one line, for scripts and tests to find the port.
        println!("listening on https://{address}");
        let _ = std::io::stdout().flush();
    })
    .context("running the HTTPS server")
}
