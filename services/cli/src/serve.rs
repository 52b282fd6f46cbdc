//! `vellum serve`: merges the settings, opens the stores, models, users and policies, makes or
//! loads the TLS certificate, then runs the server.

use std::io::Write;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use vellum_audit::AuditLog;
use vellum_auth::AuthStore;
use vellum_server::{Overrides, ServerConfig, Service, ServiceParts, UploadSettings};

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
        require_encrypted_storage: args.require_encrypted_storage.then_some(true),
    };
    let config = ServerConfig::resolve(overrides, file)?;
    // Everything the configuration names is checked before the first start creates anything
    // (the data folder, the admin account, the audit keys): a wrong setting costs nothing.
    let (_, policies_origin) = config
        .policies
        .load()
        .with_context(|| crate::context::loading_policies(&config.policies))?;
    let given_tls = if config.tls_cert.is_some() {
        Some(vellum_server::tls::load(&config, &ctx.data_dir).context("setting up TLS")?)
    } else {
        None
    };
    vellum_store::check_data_format(&ctx.data_dir)?;
    eprintln!("{}", egress_line(ctx, args.no_generation));
    eprintln!(
        "{}",
        crate::encryption::check_data_folder(&ctx.data_dir, config.require_encrypted_storage)?
    );

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
        policies: config.policies.clone(),
        uploads,
        audit: Some(audit.clone()),
    })
    .context("starting the service")?;
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
    let tls = match given_tls {
        Some(tls) => tls,
        None => vellum_server::tls::load(&config, &ctx.data_dir).context("setting up TLS")?,
    };
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
        "Policies: {policies_origin} ({} rules)",
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

/// The start-up line that says where, if anywhere, this server sends data: only a remote
/// generation engine on another machine would; everything else stays on this one (the listen
/// address is inbound).
fn egress_line(ctx: &Context, no_generation: bool) -> String {
    match &ctx.remote {
        Some(remote) if !no_generation => match remote.outside_host() {
            // The host only: a URL may carry credentials (refused later, never printed).
            Some(host) => format!(
                "egress: remote engine {host}: questions and document passages are sent there \
                 for generation; nothing else leaves this machine"
            ),
            None => "egress: none configured (the remote engine listens on this machine's \
                     loopback)"
                .to_string(),
        },
        _ => "egress: none configured (no remote engine; Vellum opens no outbound connections)"
            .to_string(),
    }
}
