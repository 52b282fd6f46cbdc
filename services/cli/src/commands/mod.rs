//! One function per subcommand: open what it needs (through the application layer,
//! `vellum-app`, for anything that touches documents or accounts), call it, render the result.
//! `ingest` (ingest, watch), `query` (search, ask, replay, summarize), `library` (documents,
//! delete, check, eval, models), `bundle` (the offline bundle's signed manifest).

mod bundle;
mod ingest;
mod library;
mod query;

pub use ingest::extraction_options;

use anyhow::Result;

use crate::cli::{Cli, CollectionArgs, Command};
use crate::context::Context;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // Before the data folder is looked at: bundle commands work on an install bundle only.
    if let Command::Bundle(args) = cli.command {
        return bundle::bundle(args, cli.global.json);
    }
    let mut ctx = Context::new(&cli.global);
    if let Some(remote) = ctx.remote.as_mut() {
        remote.allow_plain_http = cli.global.remote_allow_http;
    }
    crate::datadir::check_at_start(&cli.command, &ctx.data_dir)?;
    match cli.command {
        Command::Ingest(args) => ingest::ingest(&ctx, args),
        Command::Watch(args) => ingest::watch_folders(&ctx, args),
        Command::Search(args) => query::search(&ctx, args),
        Command::Ask(args) => query::ask(&ctx, args),
        Command::Replay(args) => query::replay(&ctx, args),
        Command::Summarize(args) => query::summarize(&ctx, args),
        Command::Documents(args) => library::documents(&ctx, args),
        Command::Delete(args) => library::delete(&ctx, args),
        Command::Reembed(args) => library::reembed(&ctx, args),
        Command::Check => library::check(&ctx),
        Command::Backup(args) => crate::backup::backup(&ctx, args),
        Command::Restore(args) => crate::backup::restore(&ctx, args),
        Command::Eval(args) => library::evaluate(&ctx, args),
        Command::Models => library::models(&ctx),
        Command::Serve(args) => crate::serve::serve(&ctx, *args),
        Command::User(command) => crate::accounts::user(&ctx, command),
        Command::Key(command) => crate::accounts::key(&ctx, command),
        Command::Audit(args) => crate::audit::audit(&ctx, args),
        // Handled above, before the data folder check; kept so the match stays exhaustive.
        Command::Bundle(args) => bundle::bundle(args, ctx.json),
    }
}

pub(crate) fn collections_of(args: &CollectionArgs) -> Option<Vec<String>> {
    (!args.collections.is_empty()).then(|| args.collections.clone())
}
