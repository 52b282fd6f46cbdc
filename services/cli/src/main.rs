//! `vellum`: the one binary. Parses the command line, opens the data folder and the models,
//! calls the library crates and renders their results for a terminal (or as JSON).
//!
//! Exit codes: 0 success, 1 error (the message says what to do next), 2 bad usage.

mod accounts;
mod audit;
mod backup;
mod cli;
mod commands;
mod context;
mod datadir;
mod encryption;
mod render;
mod serve;

use clap::Parser;

/// mimalloc instead of glibc malloc: under 50 concurrent HTTPS clients glibc's per-thread
/// arenas kept the server's RSS rising for the whole 10-minute load run (docs/benchmarks.md,
/// "HTTPS service under load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// argv[1] that makes this process an extraction worker (see `vellum_ingest::isolate`):
/// ingest starts the `vellum` binary itself in this mode, one process per untrusted file.
pub const EXTRACT_WORKER_ARG: &str = "__extract-worker";

fn main() -> std::process::ExitCode {
    // Before anything is created, by this process or the workers it starts: see datadir.rs.
    datadir::restrict_umask();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == EXTRACT_WORKER_ARG)
    {
        return vellum_ingest::isolate::worker_main();
    }
    let cli = cli::Cli::parse();
    init_tracing(cli.global.verbose);
    if let Err(err) = check_cpu() {
        eprintln!("error: {err:#}");
        return std::process::ExitCode::FAILURE;
    }
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(exit_code(&err))
        }
    }
}

/// The one mapping from the application layer's error kinds to exit codes (docs/api.md):
/// 2 bad input, 3 not found, 4 not permitted, 5 busy or unavailable (try again), 6 quarantined,
/// 1 anything else.
fn exit_code(err: &anyhow::Error) -> u8 {
    use vellum_server::ErrorKind;
    let Some(context::CliServiceError(service)) = err.downcast_ref() else {
        return 1;
    };
    match service.kind() {
        ErrorKind::Invalid | ErrorKind::Conflict | ErrorKind::TooLarge => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Unauthenticated | ErrorKind::Forbidden => 4,
        ErrorKind::Throttled | ErrorKind::Unavailable => 5,
        ErrorKind::Unprocessable => 6,
        ErrorKind::Internal => 1,
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        // Third-party crates warn about their own internals (HTML5 quirks, Lance deprecations):
        // nothing a user can act on.
        0 => "warn,html5ever=error,lance=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VELLUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The release build targets x86-64-v3 (AVX2, FMA) because candle picks its quantized SIMD
/// kernels at compile time; on an older CPU such a binary would die with SIGILL somewhere deep
/// inside a matmul. Check at start-up and say so instead.
fn check_cpu() -> anyhow::Result<()> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let has_all = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("bmi2");
        if !has_all {
            anyhow::bail!(
                "this vellum binary was built for x86-64-v3 CPUs (AVX2, FMA, BMI2) and this CPU \
                 lacks one of them; rebuild without `-C target-cpu=x86-64-v3` in .cargo/config.toml"
            );
        }
    }
    Ok(())
}
