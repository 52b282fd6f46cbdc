//! The data folder is private: it holds the full text of privileged documents (catalog,
//! Tantivy, LanceDB), password hashes (auth.sqlite), the audit keys and the TLS key. The process
//! creates everything owner-only (umask 077, set first thing in `main`), and every command
//! checks at start that the folder is not open to other local users: `vellum serve` refuses
//! such a folder (unless told otherwise), other commands warn.

use std::path::Path;

use anyhow::{bail, Result};

use crate::cli::Command;

/// Makes every file and folder this process (and its extraction workers and OCR children)
/// creates owner-only. Tantivy, LanceDB and SQLite create their files with the process's
/// default mode, so without this they are 0644 under the usual umask 022.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        use nix::sys::stat::{umask, Mode};
        umask(Mode::S_IRWXG | Mode::S_IRWXO);
    }
}

/// What to do about a folder other users can enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnShared {
    Refuse,
    Warn,
}

/// The start-up check for `command`: refuses (serve) or warns (everything else that opens
/// the data folder) when the data folder, or an audit folder given on the command line, is
/// open to group or others. A folder that does not exist yet is fine: vellum creates it 0700.
pub fn check_at_start(command: &Command, data_dir: &Path) -> Result<()> {
    match command {
        // Neither touches the data folder (eval builds its own index elsewhere).
        Command::Models | Command::Eval(_) => Ok(()),
        Command::Serve(args) => {
            let on_shared = if args.allow_shared_data_dir {
                OnShared::Warn
            } else {
                OnShared::Refuse
            };
            check(data_dir, "data folder", on_shared)?;
            // The defaults live inside the data folder (covered above); folders set elsewhere
            // hold the same secrets. Ones set only in vellum.toml are created 0700 by the audit
            // log but not checked here.
            for (dir, what) in [
                (&args.audit_dir, "audit log folder"),
                (&args.audit_key_dir, "audit key folder"),
            ] {
                if let Some(dir) = dir {
                    check(dir, what, on_shared)?;
                }
            }
            Ok(())
        }
        _ => check(data_dir, "data folder", OnShared::Warn),
    }
}

fn check(dir: &Path, what: &str, on_shared: OnShared) -> Result<()> {
    let Some(mode) = open_mode(dir) else {
        return Ok(());
    };
    let shown = shell_quoted(dir);
    let risk = "other local users can read the full text of the indexed documents, the \
                password hashes and the keys in it";
    match on_shared {
        OnShared::Refuse => bail!(
            "the {what} {} is open to other users (mode {mode:04o}): {risk}. Run `chmod 700 \
             {shown}`, then start again (or pass --allow-shared-data-dir if sharing it is really \
             intended)",
            dir.display()
        ),
        OnShared::Warn => {
            eprintln!(
                "WARNING: the {what} {} is open to other users (mode {mode:04o}): {risk}.\n\
                 WARNING: run `chmod 700 {shown}`.",
                dir.display()
            );
            Ok(())
        }
    }
}

/// The folder's permission bits when group or others have any access to it; None when it is
/// owner-only or missing (a folder that cannot be examined is left to the command to report).
#[cfg(unix)]
fn open_mode(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn open_mode(_dir: &Path) -> Option<u32> {
    None
}

/// The path as a shell word: bare when it only has safe characters, else single-quoted.
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|err| panic!("chmod: {err}"));
    }

    #[test]
    fn owner_only_and_missing_folders_pass() {
        let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
        chmod(dir.path(), 0o700);
        assert!(check(dir.path(), "data folder", OnShared::Refuse).is_ok());
        assert!(check(&dir.path().join("absent"), "data folder", OnShared::Refuse).is_ok());
    }

    #[test]
    fn a_folder_others_can_enter_is_refused_with_the_command_to_run() {
        let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
        for mode in [0o755, 0o750, 0o701, 0o770] {
            chmod(dir.path(), mode);
            let err = check(dir.path(), "data folder", OnShared::Refuse)
                .err()
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(&format!("chmod 700 {}", dir.path().display())),
                "{mode:o}: {err}"
            );
            assert!(check(dir.path(), "data folder", OnShared::Warn).is_ok());
        }
    }

    #[test]
    fn odd_paths_are_quoted_for_the_shell() {
        assert_eq!(
            shell_quoted(Path::new("/srv/vellum-data")),
            "/srv/vellum-data"
        );
        assert_eq!(shell_quoted(Path::new("/srv/my data")), "'/srv/my data'");
        assert_eq!(shell_quoted(Path::new("/srv/it's")), r"'/srv/it'\''s'");
    }
}
