//! `vellum backup DEST` and `vellum restore SRC`: a copy of the data folder that can be taken
//! while `vellum serve` runs and ingests, and restored into an empty folder.
//!
//! The stores are copied by `vellum_store::backup` (SQLite with `VACUUM INTO`, then Tantivy and
//! LanceDB in an order that keeps every copied commit whole); the user database the same way;
//! uploads, the configuration and the audit log (its head first, then the segments, the last
//! one cut at its last complete line) as files. The audit and TLS keys only with
//! `--include-keys`: kept apart, they let whoever holds the backup forge audit checkpoints and
//! impersonate the server. `BACKUP.json` lists every file with its SHA-256; restore checks them
//! all before it writes anything, then opens the stores (which rolls back commits that were
//! in flight), drops index entries the copied catalog does not know, and checks that the three
//! stores agree.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::context::{audit_config, file_config, open_store_at, Context};

/// The manifest's name in a backup folder.
const MANIFEST: &str = "BACKUP.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    /// `vellum-backup 1`.
    kind: String,
    vellum_version: String,
    data_format: u32,
    created_unix: u64,
    includes_keys: bool,
    /// Every file, by its path relative to the backup (and to the restored data folder).
    files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    path: String,
    bytes: u64,
    sha256: String,
}

const KIND: &str = "vellum-backup 1";

pub fn backup(ctx: &Context, args: BackupArgs) -> Result<()> {
    let data_dir = &ctx.data_dir;
    if !data_dir.join("catalog.sqlite").is_file() {
        bail!(
            "no data folder to back up at {} (--data-dir / VELLUM_DATA_DIR)",
            data_dir.display()
        );
    }
    vellum_store::check_data_format(data_dir)?;
    let dest = &args.dest;
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new folder (nothing was written)",
            dest.display()
        );
    }
    // Written beside the destination and renamed at the end, so a folder named DEST is always
    // a whole backup.
    let partial = sibling(dest, ".partial")?;
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing an earlier unfinished {}", partial.display()))?;
    }
    make_private_dir(&partial)?;
    let started = std::time::Instant::now();
    let config = vellum_server::ServerConfig::resolve(
        vellum_server::Overrides::default(),
        file_config(ctx, None)?,
    )?;
    let audit = audit_config(data_dir, &config);

    eprintln!("Copying the catalog, the full-text index and the vectors…");
    vellum_store::backup::snapshot_store(data_dir, &partial)?;
    if data_dir.join("auth.sqlite").is_file() {
        vellum_store::backup::copy_sqlite(
            &data_dir.join("auth.sqlite"),
            &partial.join("auth.sqlite"),
        )?;
    }
    if data_dir.join("uploads").is_dir() {
        vellum_store::backup::copy_tree(&data_dir.join("uploads"), &partial.join("uploads"))?;
    }
    for name in ["vellum.toml", vellum_store::FORMAT_FILE] {
        if data_dir.join(name).is_file() {
            std::fs::copy(data_dir.join(name), partial.join(name))?;
        }
    }
    eprintln!("Copying the audit log…");
    copy_audit_log(&audit.dir, &partial.join("audit"))?;
    if args.include_keys {
        for (from, to) in [
            (audit.key_dir.clone(), "audit-keys"),
            (data_dir.join("tls"), "tls"),
        ] {
            if from.is_dir() {
                vellum_store::backup::copy_tree(&from, &partial.join(to))?;
            }
        }
    }
    let files = hash_tree(&partial)?;
    let bytes: u64 = files.iter().map(|file| file.bytes).sum();
    let manifest = Manifest {
        kind: KIND.into(),
        vellum_version: env!("CARGO_PKG_VERSION").into(),
        data_format: vellum_store::DATA_FORMAT,
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default(),
        includes_keys: args.include_keys,
        files,
    };
    std::fs::write(
        partial.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    sync_dir(&partial)?;
    if dest.exists() {
        std::fs::remove_dir(dest)?;
    }
    std::fs::rename(&partial, dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    record_backup(&audit, dest, &manifest, bytes);
    eprintln!(
        "Backed up {} files ({:.1} MB) to {} in {:.1} s{}",
        manifest.files.len(),
        bytes as f64 / 1e6,
        dest.display(),
        started.elapsed().as_secs_f64(),
        if args.include_keys {
            "; it holds the audit and TLS keys: store it as you store those"
        } else {
            "; without the audit and TLS keys (--include-keys): keep those apart, restore needs \
             the audit keys back in audit-keys/ before `vellum serve`"
        }
    );
    Ok(())
}

pub fn restore(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let source = &args.source;
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(source.join(MANIFEST)).with_context(|| {
            format!(
                "{} is not a Vellum backup (no {MANIFEST})",
                source.display()
            )
        })?)
        .with_context(|| format!("reading {}", source.join(MANIFEST).display()))?;
    if manifest.kind != KIND {
        bail!(
            "{}: unknown backup kind {:?}",
            source.display(),
            manifest.kind
        );
    }
    if manifest.data_format > vellum_store::DATA_FORMAT {
        bail!(
            "the backup is data format {}, from a newer Vellum ({}); this one reads format {}",
            manifest.data_format,
            manifest.vellum_version,
            vellum_store::DATA_FORMAT
        );
    }
    let data_dir = &ctx.data_dir;
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        bail!(
            "the data folder {} is not empty: restore into a new or empty folder \
             (--data-dir), nothing was written",
            data_dir.display()
        );
    }
    eprintln!(
        "Checking {} files against {MANIFEST}…",
        manifest.files.len()
    );
    for file in &manifest.files {
        let path = safe_join(source, &file.path)?;
        let (bytes, sha256) =
            hash_file(&path).with_context(|| format!("the backup is incomplete: {}", file.path))?;
        if bytes != file.bytes || sha256 != file.sha256 {
            bail!(
                "the backup is damaged: {} differs from {MANIFEST} (nothing was written)",
                file.path
            );
        }
    }
    make_private_dir(data_dir)?;
    for file in &manifest.files {
        let target = safe_join(data_dir, &file.path)?;
        if let Some(parent) = target.parent() {
            make_private_dir(parent)?;
        }
        std::fs::copy(safe_join(source, &file.path)?, &target)
            .with_context(|| format!("restoring {}", file.path))?;
    }
    eprintln!("Opening the restored stores…");
    let embedder = ctx.embedder()?;
    let store = open_store_at(data_dir, &embedder)?;
    let recovery = store.recovery_report();
    let orphans = store.remove_orphans()?;
    let report = store.check_consistency()?;
    if !report.is_consistent() {
        bail!(
            "the restored stores do not agree: {:?} (the backup folder is unchanged)",
            report.mismatches
        );
    }
    eprintln!(
        "Restored into {}: {} chunks in all three stores; {} commits in flight at backup time \
         rolled back, {} documents committed after the catalog was copied left out",
        data_dir.display(),
        report.catalog_chunks,
        recovery.rolled_back.len(),
        orphans.len()
    );
    if !manifest.includes_keys {
        eprintln!(
            "The backup holds no audit keys: copy them into {} before `vellum serve`, or the \
             audit log cannot be verified or continued",
            data_dir.join("audit-keys").display()
        );
    }
    Ok(())
}

/// Writes the backup into the audit log when no server holds it; a running server does, and
/// then the operator is told (the backup is the OS user's own copy of files they can read).
fn record_backup(config: &vellum_audit::AuditConfig, dest: &Path, manifest: &Manifest, bytes: u64) {
    let mut config = config.clone();
    config.holder = format!("vellum backup (pid {})", std::process::id());
    let event = vellum_audit::AuditEvent::new("backup", vellum_audit::outcomes::OK)
        .principal(crate::context::unix_user())
        .resource(dest.display().to_string())
        .detail("files", manifest.files.len().to_string())
        .detail("bytes", bytes.to_string())
        .detail("includes_keys", manifest.includes_keys.to_string());
    let recorded = vellum_audit::AuditLog::open(config)
        .map_err(|err| err.to_string())
        .and_then(|log| {
            log.append(event).map_err(|err| err.to_string())?;
            log.close().map_err(|err| err.to_string())
        });
    if let Err(err) = recorded {
        eprintln!("Not recorded in the audit log ({err}); record the backup by hand");
    }
}

/// The audit log's files: `head.json` first, then the segments (so the head never names a
/// record the copy lacks), the last segment cut after its last complete line (a record being
/// appended is left out, not torn). The writer's lock is not copied.
fn copy_audit_log(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    make_private_dir(to)?;
    let head = from.join("head.json");
    if head.is_file() {
        std::fs::copy(&head, to.join("head.json"))?;
    }
    let mut segments: Vec<PathBuf> = std::fs::read_dir(from)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("segment-") && name.ends_with(".jsonl"))
        })
        .collect();
    segments.sort();
    for segment in &segments {
        let mut bytes = std::fs::read(segment)?;
        if let Some(end) = bytes.iter().rposition(|&byte| byte == b'\n') {
            bytes.truncate(end + 1);
        } else {
            bytes.clear();
        }
        let name = segment.file_name().unwrap_or_default();
        std::fs::write(to.join(name), bytes)?;
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// Every plain file under `root`, relative, sorted, hashed.
fn hash_tree(root: &Path) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let relative = entry
                    .path()
                    .strip_prefix(root)?
                    .to_str()
                    .context("a file name in the data folder is not UTF-8")?
                    .to_string();
                let (bytes, sha256) = hash_file(&entry.path())?;
                files.push(FileEntry {
                    path: relative,
                    bytes,
                    sha256,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// `root/relative`, refusing a manifest path that would leave `root`.
fn safe_join(root: &Path, relative: &str) -> Result<PathBuf> {
    let path = Path::new(relative);
    if path.is_absolute()
        || path
            .components()
            .any(|part| !matches!(part, std::path::Component::Normal(_)))
    {
        bail!("{MANIFEST} names {relative:?}, which is outside the backup");
    }
    Ok(root.join(path))
}

fn sibling(path: &Path, suffix: &str) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no folder name", path.display()))?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

fn make_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}
