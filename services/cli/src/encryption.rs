//! Is the data folder encrypted at rest? It holds the full text of every document, so on a
//! stolen disk it is readable unless the block device under it is dm-crypt (LUKS). Linux tells
//! through /proc/self/mountinfo (which device a folder is mounted from) and /sys (the device
//! mapper's stack: `dm/uuid` is `CRYPT-…` for a dm-crypt mapping, `slaves/` the layers below, so
//! ext4 on LVM on LUKS counts too). Nothing is guessed: a folder on tmpfs, overlay or a network
//! file system is reported as "cannot tell", which `require_encrypted_storage` refuses too.

use std::path::{Path, PathBuf};

/// What was found about the folder's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// On a dm-crypt mapping (`mapping`: its name, `kind`: e.g. `LUKS2`), at some layer.
    Encrypted {
        device: String,
        mapping: String,
        kind: String,
    },
    /// On a block device with no dm-crypt layer.
    Plain { device: String },
    /// Not on a block device, or the kernel did not say.
    Unknown { reason: String },
}

impl Storage {
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Storage::Encrypted { .. })
    }

    /// The start-up line.
    pub fn describe(&self, data_dir: &Path) -> String {
        let dir = data_dir.display();
        match self {
            Storage::Encrypted {
                device,
                mapping,
                kind,
            } => format!(
                "storage: {dir} is on {device}, encrypted at rest (dm-crypt {kind} mapping \
                 {mapping})"
            ),
            Storage::Plain { device } => format!(
                "storage: {dir} is on {device}, NOT encrypted at rest: documents are readable \
                 from a stolen disk; put the data folder on LUKS (docs/deploy.md)"
            ),
            Storage::Unknown { reason } => {
                format!("storage: cannot tell whether {dir} is encrypted at rest ({reason})")
            }
        }
    }
}

/// Describes the data folder's storage, and with `required` (`require_encrypted_storage`)
/// refuses anything but dm-crypt, before anything is created in it.
pub fn check_data_folder(data_dir: &Path, required: bool) -> anyhow::Result<String> {
    let storage = Probe::default().storage_of(data_dir);
    let line = storage.describe(data_dir);
    if required && !storage.is_encrypted() {
        anyhow::bail!(
            "{line}\nrequire_encrypted_storage is set, so Vellum will not keep documents there: \
             move the data folder (--data-dir) onto a LUKS volume (docs/deploy.md, \"Encryption \
             at rest\"), or remove the setting"
        );
    }
    Ok(line)
}

/// Where the kernel's answers are read from: `/` normally, a prepared folder in tests.
pub struct Probe {
    pub mountinfo: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe {
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// One line of mountinfo: where, which device number, which source.
struct Mount {
    point: PathBuf,
    device_number: String,
    fs_type: String,
    source: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options [optional…] - type source super
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            Some(Mount {
                device_number: (*fields.get(2)?).to_string(),
                point: PathBuf::from(unescape(fields.get(4)?)),
                fs_type: after.next()?.to_string(),
                source: unescape(after.next()?),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
            {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The folder itself if it exists, else its nearest existing parent (a first start has not
/// created it yet; it will be created there).
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .find_map(|candidate| std::fs::canonicalize(candidate).ok())
}

impl Probe {
    pub fn storage_of(&self, data_dir: &Path) -> Storage {
        match existing_ancestor(data_dir) {
            Some(folder) => self.storage_of_resolved(&folder),
            None => Storage::Unknown {
                reason: "the folder and its parents cannot be read".into(),
            },
        }
    }

    /// For an absolute, canonical folder.
    fn storage_of_resolved(&self, folder: &Path) -> Storage {
        let unknown = |reason: String| Storage::Unknown { reason };
        let mountinfo = match std::fs::read_to_string(&self.mountinfo) {
            Ok(text) => text,
            Err(err) => return unknown(format!("cannot read {}: {err}", self.mountinfo.display())),
        };
        // The last mount whose point is the longest prefix: later mounts hide earlier ones.
        let mounts = parse_mountinfo(&mountinfo);
        let Some(mount) = mounts
            .iter()
            .filter(|m| folder.starts_with(&m.point))
            .max_by_key(|m| m.point.components().count())
        else {
            return unknown("no mount found for it".into());
        };
        // The device number of the mount, unless it is anonymous (btrfs, overlay, tmpfs): then
        // the source, when it names a device node.
        let number = if !mount.device_number.starts_with("0:") {
            Some(mount.device_number.clone())
        } else {
            self.device_number_of_node(&mount.source)
        };
        let Some(number) = number else {
            return unknown(format!(
                "it is on {} ({}), not a block device",
                mount.source, mount.fs_type
            ));
        };
        let block = self.sys.join("dev/block").join(&number);
        if !block.exists() {
            return unknown(format!(
                "{} ({number}) is not in {}",
                mount.source,
                self.sys.join("dev/block").display()
            ));
        }
        match self.crypt_layer(&block, 0) {
            Some((mapping, kind)) => Storage::Encrypted {
                device: mount.source.clone(),
                mapping,
                kind,
            },
            None => Storage::Plain {
                device: mount.source.clone(),
            },
        }
    }

    /// `major:minor` of a device node such as /dev/mapper/data.
    fn device_number_of_node(&self, source: &str) -> Option<String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let relative = source.strip_prefix("/dev/")?;
        let metadata = std::fs::metadata(self.dev.join(relative)).ok()?;
        if !metadata.file_type().is_block_device() {
            return None;
        }
        let rdev = metadata.rdev();
        // glibc's major()/minor() encoding.
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        Some(format!("{major}:{minor}"))
    }

    /// The dm-crypt mapping at or below this block device, if any (`dm/uuid` `CRYPT-LUKS2-…`).
    fn crypt_layer(&self, block: &Path, depth: usize) -> Option<(String, String)> {
        // Stacks are a few layers deep; the bound stops a malformed /sys from looping.
        if depth > 8 {
            return None;
        }
        if let Ok(uuid) = std::fs::read_to_string(block.join("dm/uuid")) {
            if let Some(rest) = uuid.trim().strip_prefix("CRYPT-") {
                let kind = rest.split('-').next().unwrap_or("crypt").to_string();
                let name = std::fs::read_to_string(block.join("dm/name"))
                    .map(|name| name.trim().to_string())
                    .unwrap_or_default();
                return Some((name, kind));
            }
        }
        let slaves = std::fs::read_dir(block.join("slaves")).ok()?;
        slaves.filter_map(Result::ok).find_map(|slave| {
            let below = self.sys.join("class/block").join(slave.file_name());
            self.crypt_layer(&below, depth + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up /proc and /sys (the device mapper is not available on the test machines, so a
    /// real LUKS volume cannot be made here): LVM on LUKS under /srv, plain ext4 under /, tmpfs.
    fn fake_machine() -> (tempfile::TempDir, Probe) {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let r = root.path();
        let write = |path: &str, text: &str| {
            let path = r.join(path);
            std::fs::create_dir_all(path.parent().unwrap_or(r)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        };
        write(
            "mountinfo",
            "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             40 27 253:1 / /srv rw,relatime - ext4 /dev/mapper/vg-data rw\n\
             41 27 0:30 / /run/scratch rw - tmpfs tmpfs rw\n",
        );
        // vg-data (dm-1, LVM) sits on luks-root (dm-0, dm-crypt) which sits on vdb.
        write("sys/dev/block/253:1/dm/uuid", "LVM-abc\n");
        write("sys/dev/block/253:1/dm/name", "vg-data\n");
        write("sys/dev/block/253:1/slaves/dm-0", "");
        write(
            "sys/class/block/dm-0/dm/uuid",
            "CRYPT-LUKS2-1234-luks-root\n",
        );
        write("sys/class/block/dm-0/dm/name", "luks-root\n");
        write("sys/dev/block/254:0/size", "100\n");
        let probe = Probe {
            mountinfo: r.join("mountinfo"),
            sys: r.join("sys"),
            dev: r.join("dev"),
        };
        (root, probe)
    }

    #[test]
    fn luks_under_lvm_is_encrypted_plain_disk_is_not_tmpfs_is_unknown() {
        let (_root, probe) = fake_machine();
        assert_eq!(
            probe.storage_of_resolved(Path::new("/srv/vellum")),
            Storage::Encrypted {
                device: "/dev/mapper/vg-data".into(),
                mapping: "luks-root".into(),
                kind: "LUKS2".into()
            }
        );
        assert_eq!(
            probe.storage_of_resolved(Path::new("/var/lib/vellum")),
            Storage::Plain {
                device: "/dev/vda".into()
            }
        );
        assert!(matches!(
            probe.storage_of_resolved(Path::new("/run/scratch/vellum")),
            Storage::Unknown { .. }
        ));
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape(r"/mnt/my\040data"), "/mnt/my data");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }

    /// This machine, for real: whatever it says, it says it in words and never panics.
    #[test]
    fn this_machine_is_described() {
        let storage = Probe::default().storage_of(Path::new("/tmp/not-yet-created/data"));
        assert!(storage
            .describe(Path::new("/tmp/x"))
            .starts_with("storage: "));
    }
}
