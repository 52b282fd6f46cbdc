//! Paths and the `vellum` command shared by the end-to-end tests of the binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$VELLUM_SHARED_DIR`, else `shared/` next to the checkout (it holds `corpora/`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}

/// `$VELLUM_MODELS_DIR`, else `models/` of the checkout; fails if the embedder is missing.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models"));
    assert!(
        dir.join("all-MiniLM-L6-v2/model.safetensors").is_file(),
        "models missing in {}: run deploy/fetch-models.sh",
        dir.display()
    );
    dir
}

/// `vellum --data-dir DATA --models-dir MODELS`, ready for a subcommand.
pub fn vellum_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vellum"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(models_dir());
    command
}

/// Waits for a `vellum serve` child's `listening on https://ADDR` line on its piped stdout
/// (read on a thread that keeps draining it): the address, or `None` after `timeout`.
// Only the tests that start a server use it.
#[allow(dead_code)]
pub fn listening_address(child: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening on https://") {
                let _ = sender.send(address.to_string());
            }
        }
    });
    receiver.recv_timeout(timeout).ok()
}
