//! Plugin kinds: which world each implements, what it may import, its default limits.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a plugin is for; each kind is one WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A datastore backend (`storage-plugin`).
    Storage,
    /// A scoring component for deployments (`scorer-plugin`).
    Scorer,
    /// An AutoML sampler (`sampler-plugin`).
    Sampler,
    /// An AutoML early-termination policy (`stopper-plugin`).
    Stopper,
    /// A compute target (`target-plugin`).
    Target,
}

/// Every kind, for iteration.
pub const ALL_KINDS: [Kind; 5] = [
    Kind::Storage,
    Kind::Scorer,
    Kind::Sampler,
    Kind::Stopper,
    Kind::Target,
];

impl Kind {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Storage => "storage",
            Kind::Scorer => "scorer",
            Kind::Sampler => "sampler",
            Kind::Stopper => "stopper",
            Kind::Target => "target",
        }
    }

    /// The WIT world a component of this kind targets.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Storage => "storage-plugin",
            Kind::Scorer => "scorer-plugin",
            Kind::Sampler => "sampler-plugin",
            Kind::Stopper => "stopper-plugin",
            Kind::Target => "target-plugin",
        }
    }

    /// The interface the world exports, in every plugin API version the host serves (newest
    /// first): a component exports one of them.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            Kind::Storage => &["atrium:plugin/storage@0.1.0"],
            Kind::Scorer => &["atrium:plugin/scorer@0.1.0"],
            Kind::Sampler => &["atrium:plugin/sampler@0.1.0"],
            Kind::Stopper => &[
                "atrium:plugin/early-stop@0.2.0",
                "atrium:plugin/early-stop@0.1.0",
            ],
            Kind::Target => &[
                "atrium:plugin/compute-target@0.2.0",
                "atrium:plugin/compute-target@0.1.0",
            ],
        }
    }

    /// Atrium interfaces the world imports (without version).
    pub fn atrium_imports(self) -> &'static [&'static str] {
        match self {
            Kind::Storage | Kind::Target => &["types", "log", "config", "secrets"],
            Kind::Scorer => &["types", "log", "config", "tensors", "models"],
            Kind::Sampler | Kind::Stopper => &["types", "log"],
        }
    }

    /// Whether the kind may use outbound HTTP (to granted hosts only).
    pub fn may_use_http(self) -> bool {
        matches!(self, Kind::Storage | Kind::Target)
    }

    /// Whether an import is allowed for this kind: its world's atrium interfaces, and WASI
    /// io/clocks/random/cli/filesystem (filesystem reaches only granted preopens), plus
    /// wasi:http for kinds that may call out. Never sockets.
    pub fn allows_import(self, name: &str) -> bool {
        let (iface, _version) = name.split_once('@').unwrap_or((name, ""));
        if let Some(atrium) = iface.strip_prefix("atrium:plugin/") {
            return self.atrium_imports().contains(&atrium);
        }
        let Some(wasi) = iface.strip_prefix("wasi:") else {
            return false;
        };
        let package = wasi.split('/').next().unwrap_or("");
        match package {
            "io" | "clocks" | "random" | "cli" | "filesystem" => true,
            "http" => self.may_use_http(),
            _ => false,
        }
    }

    /// Longest a single call may run before the epoch deadline interrupts it.
    pub fn default_deadline(self) -> Duration {
        match self {
            Kind::Storage => Duration::from_secs(10),
            Kind::Scorer | Kind::Sampler | Kind::Stopper => Duration::from_secs(5),
            Kind::Target => Duration::from_secs(30),
        }
    }

    /// Default linear-memory cap.
    pub fn default_memory(self) -> u64 {
        match self {
            Kind::Scorer => 256 << 20,
            _ => 128 << 20,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_KINDS
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown plugin kind '{s}': expected storage, scorer, sampler, stopper or target"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both WIT packages parse, and every kind's world in each exists, exports the kind's
    /// interface of that version and imports exactly the atrium interfaces the host allows it.
    #[test]
    fn the_wit_defines_every_world() {
        let v2 = |k: Kind| match k {
            Kind::Stopper => "early-stop-plugin",
            _ => "compute-target-plugin",
        };
        for (dir, version, kinds) in [
            ("atrium-plugin-0.1", "0.1.0", &ALL_KINDS[..]),
            (
                "atrium-plugin-0.2",
                "0.2.0",
                &[Kind::Stopper, Kind::Target][..],
            ),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../wit")
                .join(dir);
            let mut resolve = wit_parser::Resolve::default();
            let (pkg, _) = resolve.push_dir(&dir).expect("the WIT parses");
            assert_eq!(
                resolve.packages[pkg].name.to_string(),
                format!("atrium:plugin@{version}")
            );
            let iface_name = |key: &wit_parser::WorldKey| match key {
                wit_parser::WorldKey::Interface(id) => resolve.id_of(*id).unwrap(),
                wit_parser::WorldKey::Name(n) => n.clone(),
            };
            for &kind in kinds {
                let world = resolve
                    .select_world(
                        &[pkg],
                        Some(if version == "0.1.0" {
                            kind.world()
                        } else {
                            v2(kind)
                        }),
                    )
                    .unwrap_or_else(|e| panic!("{kind}: {e}"));
                let w = &resolve.worlds[world];
                let exports: Vec<String> = w.exports.keys().map(iface_name).collect();
                assert_eq!(exports.len(), 1, "{kind}");
                assert!(exports[0].ends_with(&format!("@{version}")), "{kind}");
                assert!(kind.exports().contains(&exports[0].as_str()), "{kind}");
                for key in w.imports.keys() {
                    let name = iface_name(key);
                    assert!(
                        kind.allows_import(&name),
                        "{kind} world imports {name}, which the host does not allow"
                    );
                }
            }
        }
    }

    #[test]
    fn imports_are_checked_per_kind() {
        assert!(Kind::Storage.allows_import("atrium:plugin/secrets@0.1.0"));
        assert!(!Kind::Sampler.allows_import("atrium:plugin/secrets@0.1.0"));
        assert!(Kind::Storage.allows_import("wasi:http/outgoing-handler@0.2.6"));
        assert!(!Kind::Stopper.allows_import("wasi:http/outgoing-handler@0.2.6"));
        assert!(!Kind::Storage.allows_import("wasi:sockets/tcp@0.2.6"));
        assert!(Kind::Scorer.allows_import("wasi:filesystem/preopens@0.2.6"));
        assert!(!Kind::Scorer.allows_import("evil:x/y"));
    }
}
