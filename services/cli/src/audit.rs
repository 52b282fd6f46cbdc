//! `vellum audit …`: verify, export and search the audit log offline (on the server's folder or
//! a copy of it), and print the key that verifies it. The server writes the log; see
//! services/audit and docs/audit.md.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use vellum_audit::{ExportFilter, ExportedRecord, RecordKind, VerifyReport};

use crate::cli::{AuditArgs, AuditCommand};
use crate::context::Context;
use crate::render::print_json;

pub fn audit(ctx: &Context, args: AuditArgs) -> Result<()> {
    let log_dir = |path: Option<PathBuf>| {
        path.unwrap_or_else(|| ctx.data_dir.join(vellum_audit::DEFAULT_LOG_DIR))
    };
    let key_dir = || ctx.data_dir.join(vellum_audit::DEFAULT_KEY_DIR);
    match args.command {
        AuditCommand::Verify { path, public_key } => verify(ctx, &log_dir(path), &public_key),
        AuditCommand::Export {
            path,
            since,
            until,
            principal,
            document,
            action,
            checkpoints,
        } => {
            let filter = ExportFilter {
                since: since.as_deref().map(vellum_audit::parse_time).transpose()?,
                until: until.as_deref().map(vellum_audit::parse_time).transpose()?,
                principal,
                document,
                action,
                include_checkpoints: checkpoints,
            };
            let dir = log_dir(path);
            let records = vellum_audit::export(&dir, &filter)
                .with_context(|| format!("reading the audit log in {}", dir.display()))?;
            show(ctx, &records)
        }
        AuditCommand::Search {
            path,
            query_text,
            hmac_key,
        } => {
            let text = if query_text == "-" {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                query_text
            };
            let key_path = hmac_key.unwrap_or_else(|| key_dir().join(vellum_audit::HMAC_KEY_FILE));
            let key = vellum_audit::load_hmac_key(&key_path)
                .with_context(|| format!("the HMAC key ({})", key_path.display()))?;
            let dir = log_dir(path);
            let records = vellum_audit::search_by_query(&dir, &key, &text)
                .with_context(|| format!("reading the audit log in {}", dir.display()))?;
            show(ctx, &records)
        }
        AuditCommand::PublicKey { key_dir: dir } => {
            let dir = dir.unwrap_or_else(key_dir);
            let key = vellum_audit::read_public_key(&dir)
                .with_context(|| format!("no audit key in {}", dir.display()))?;
            if ctx.json {
                print_json(&serde_json::json!({ "algorithm": "ed25519", "public_key": key }))
            } else {
                println!("{key}");
                Ok(())
            }
        }
    }
}

fn verify(ctx: &Context, dir: &Path, public_key: &str) -> Result<()> {
    let report = vellum_audit::verify(dir, public_key).context("the public key")?;
    if ctx.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    match &report.problem {
        None => Ok(()),
        Some(problem) => anyhow::bail!(
            "the audit log in {} is NOT intact: {problem}",
            dir.display()
        ),
    }
}

fn print_report(report: &VerifyReport) {
    let span = match (&report.first_time, &report.last_time) {
        (Some(first), Some(last)) => format!(", {first} .. {last}"),
        _ => String::new(),
    };
    if report.is_intact() {
        println!("audit log intact: {}", report.dir.display());
    } else {
        println!(
            "audit log checked up to the first problem: {}",
            report.dir.display()
        );
    }
    println!(
        "  {} records ({} events, {} signed checkpoint(s)) in {} segment(s){span}",
        report.records, report.events, report.checkpoints, report.segments
    );
    if let Some(id) = &report.log_id {
        println!("  log id {id}");
    }
    if let (Some(last), Some(head)) = (report.last_checkpoint, report.head_checkpoint) {
        println!("  last checkpoint: record {last}; head.json: record {head}");
    }
    if report.is_intact() && report.unsigned_tail > 0 {
        println!(
            "  {} record(s) after the last checkpoint are chained but not yet signed (normal for a running server)",
            report.unsigned_tail
        );
    }
}

fn cell(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn show(ctx: &Context, records: &[ExportedRecord]) -> Result<()> {
    if ctx.json {
        return print_json(&records);
    }
    println!(
        "{:>7}  {:<20}  {:<12}  {:<15}  {:<16}  {:<18}  {:<12}  {:<9}  {:>5}  query",
        "seq", "time", "principal", "address", "action", "resource", "outcome", "decision", "reads"
    );
    for exported in records {
        let r = &exported.record;
        if r.kind == RecordKind::Checkpoint {
            println!("{:>7}  {:<20}  (signed checkpoint)", r.seq, r.time);
            continue;
        }
        let decision = r.decision.as_ref().map_or("-".to_string(), |d| {
            let verdict = if d.allowed { "allow" } else { "deny" };
            match d.policies.first() {
                Some(p) => format!("{verdict}:{p}"),
                None => verdict.to_string(),
            }
        });
        let query = r
            .query
            .as_ref()
            .map_or("-".to_string(), |q| match &q.plain {
                Some(plain) => format!("{plain:?}"),
                None => format!("hmac:{}…", q.hmac_sha256.get(..12).unwrap_or_default()),
            });
        println!(
            "{:>7}  {:<20}  {:<12}  {:<15}  {:<16}  {:<18}  {:<12}  {:<9}  {:>5}  {query}",
            r.seq,
            // To the second: the table is for reading; --json has the full time.
            r.time.get(..19).map_or(r.time.clone(), |t| format!("{t}Z")),
            cell(r.principal.as_deref()),
            cell(r.address.as_deref()),
            cell(r.action.as_deref()),
            cell(r.resource.as_deref()),
            cell(r.outcome.as_deref()),
            decision,
            r.reads.len(),
        );
    }
    eprintln!(
        "{} record(s); exports do not check the chain: run `vellum audit verify` for that",
        records.len()
    );
    Ok(())
}
