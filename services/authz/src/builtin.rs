//! The policy sets of `policies/`, compiled into the binary, so `vellum serve` starts from any
//! working folder and an installed package needs no policy files to begin with. A folder given
//! with `--policies` replaces them.

/// `(set name, [(file name, Cedar text)])`, as in `policies/<set>/`.
pub const BUILTIN_SETS: &[(&str, &[(&str, &str)])] = &[
    (
        "default",
        &[(
            "admins.cedar",
            include_str!("../../../policies/default/admins.cedar"),
        )],
    ),
    (
        "law-firm",
        &[
            (
                "accounts.cedar",
                include_str!("../../../policies/law-firm/accounts.cedar"),
            ),
            (
                "matters.cedar",
                include_str!("../../../policies/law-firm/matters.cedar"),
            ),
            (
                "privilege.cedar",
                include_str!("../../../policies/law-firm/privilege.cedar"),
            ),
            (
                "walls.cedar",
                include_str!("../../../policies/law-firm/walls.cedar"),
            ),
        ],
    ),
    (
        "hospital",
        &[
            (
                "accounts.cedar",
                include_str!("../../../policies/hospital/accounts.cedar"),
            ),
            (
                "billing.cedar",
                include_str!("../../../policies/hospital/billing.cedar"),
            ),
            (
                "break-glass.cedar",
                include_str!("../../../policies/hospital/break-glass.cedar"),
            ),
            (
                "departments.cedar",
                include_str!("../../../policies/hospital/departments.cedar"),
            ),
            (
                "phi.cedar",
                include_str!("../../../policies/hospital/phi.cedar"),
            ),
        ],
    ),
];

/// The names of the built-in sets, for messages.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_SETS.iter().map(|(name, _)| *name).collect()
}

/// The files of a built-in set, if `name` is one.
pub fn builtin_set(name: &str) -> Option<Vec<(String, String)>> {
    BUILTIN_SETS
        .iter()
        .find(|(set, _)| *set == name)
        .map(|(_, files)| {
            files
                .iter()
                .map(|(file, text)| ((*file).to_string(), (*text).to_string()))
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A policy file added to a folder of `policies/` but not here would silently be missing
    /// from the binary.
    #[test]
    fn every_file_of_the_policy_folders_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        for (set, files) in BUILTIN_SETS {
            let mut on_disk: Vec<String> = std::fs::read_dir(root.join(set))
                .unwrap_or_else(|e| panic!("policies/{set}: {e}"))
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".cedar"))
                .collect();
            on_disk.sort();
            let embedded: Vec<String> = files.iter().map(|(name, _)| name.to_string()).collect();
            assert_eq!(embedded, on_disk, "policies/{set}");
        }
    }

    #[test]
    fn every_builtin_set_loads() {
        for name in builtin_names() {
            let sources = builtin_set(name).unwrap_or_default();
            let authorizer = crate::Authorizer::from_sources(&sources)
                .unwrap_or_else(|e| panic!("built-in {name}: {e}"));
            assert!(!authorizer.policy_ids().is_empty(), "{name}");
        }
        assert!(builtin_set("nope").is_none());
    }
}
