//! `vellum serve`: merges the settings, opens the stores, models, users and policies, makes or
//! loads the TLS certificate, then runs the server.

use std::io::Write;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use vellum_audit::AuditLog;
use vellum_auth::AuthStore;
use vellum_server::{Overrides, Policies, ServerConfig, Service, ServiceParts, UploadSettings};

use crate::cli::ServeArgs;
use crate::context::Context;

pub fn serve(ctx: &Context, args: ServeArgs) -> Result<()> {
    let file = crate::context::file_config(ctx, args.config.as_deref())?;
    let overrides = Overrides {
        listen: args.listen,
        policies: ctx.policies.clone(),
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        session_hours: args.session_hours,
        key_days: args.key_days,
        max_upload_mb: args.max_upload_mb,
        workers: args.workers,
        audit_dir: args.audit_dir,
        audit_key_dir: args.audit_key_dir,
        audit_plain_queries: args.audit_plain_queries.then_some(true),
        trusted_proxies: if args.trusted_proxies.is_empty() {
            None
        } else {
            Some(vellum_server::config::parse_proxies(args.trusted_proxies)?)
        },
        upload_reserve_mb: args.upload_reserve_mb,
    };
    let config = ServerConfig::resolve(overrides, file)?;

    let started = std::time::Instant::now();
    let embedder = ctx.embedder()?;
    let embedder_seconds = started.elapsed().as_secs_f64();
    let embedder_name = embedder.model_name().to_string();
    let store = ctx.open_store(&embedder)?;
    let generator = if args.no_generation {
        None
    } else {
        let started = std::time::Instant::now();
        let generator = ctx.generator()?;
        Some((generator, started.elapsed().as_secs_f64()))
    };
    let auth = AuthStore::open(&ctx.data_dir)
        .context("opening the user database")?
        .with_session_seconds(config.session_hours.saturating_mul(3600))
        .with_key_days(config.key_days);
    // The first start creates `admin`: with VELLUM_ADMIN_PASSWORD if set (then it is never
    // printed), else with a generated password printed once.
    let admin_password = std::env::var("VELLUM_ADMIN_PASSWORD").ok();
    if let Some(generated) = auth.ensure_admin(admin_password.as_deref())? {
        eprintln!(
            "Created the user `admin` with the one-time password {generated}\n\
             Change it now: vellum user passwd admin --password-stdin"
        );
    }
    let generator_load = generator
        .as_ref()
        .map(|(generator, seconds)| (generator.model_name().to_string(), *seconds));
    // The audit log opens before anything is served; a log that fails its own verification or
    // is held by another server stops the start.
    let mut audit_config = crate::context::audit_config(&ctx.data_dir, &config);
    audit_config.holder = format!(
        "{} (pid {})",
        crate::context::SERVE_HOLDER,
        std::process::id()
    );
    let audit = Arc::new(
        AuditLog::open(audit_config.clone())
            .with_context(|| format!("opening the audit log in {}", audit_config.dir.display()))?,
    );
    eprintln!(
        "Audit log: {} (checkpoint public key {}; verify with `vellum audit verify {} --public-key KEY`)",
        audit_config.dir.display(),
        audit.public_key_hex(),
        audit_config.dir.display()
    );
    let uploads = UploadSettings {
        dir: ctx.data_dir.join("uploads"),
        max_bytes: config.max_upload_mb.saturating_mul(1 << 20),
        reserve_bytes: config.upload_reserve_mb.saturating_mul(1 << 20),
        ingest: crate::commands::extraction_options(&args.extraction)?,
    };
    // What the kernel enforces of the upload sandbox, on every start (a warning when partial).
    eprintln!("{}", vellum_ingest::isolate::sandbox_support());
    let service = Service::new(ServiceParts {
        store,
        embedder: Box::new(embedder),
        generator: generator.map(|(generator, _)| generator),
        auth,
        policies: Policies::Dir(config.policies.clone()),
        uploads,
        audit: Some(audit.clone()),
    })
    .with_context(|| {
        format!(
            "loading the Cedar policies in {} (--policies / VELLUM_POLICIES)",
            config.policies.display()
        )
    })?;
    service
        .metrics()
        .record_model_load("embedder", &embedder_name, embedder_seconds);
    match &generator_load {
        Some((name, seconds)) => {
            service
                .metrics()
                .record_model_load("generator", name, *seconds);
            eprintln!("Generation model: {name} (loaded in {seconds:.1} s)");
        }
        None => eprintln!("No generation model (--no-generation): ask and summarize answer 503"),
    }
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
    let served = vellum_server::serve(&config, service, tls, |address| {
        // On stdout, one line, for scripts and tests to find the port.
        println!("listening on https://{address}");
        let _ = std::io::stdout().flush();
    })
    .context("running the HTTPS server");
    // A final signed checkpoint, also after an error.
    audit
        .shutdown()
        .context("closing the audit log (final checkpoint)")?;
    served
}
