//! The portal's static files, embedded in the binary: vendored htmx and uPlot (see
//! `assets/vendor/VENDORED.md`) and the portal's own script and style sheet.

use std::sync::OnceLock;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The name in `/ui/assets/{name}`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// Every embedded file.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "uplot.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/uplot-1.6.32.iife.min.js"),
    },
    Asset {
        name: "uplot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/uplot-1.6.32.min.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/app.css"),
    },
];

/// The embedded file called `name`.
pub fn get(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// A short digest of all assets (FNV-1a), appended to their URLs as `?v=` so browsers may
/// cache them for good and still see a new build's files.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for a in ASSETS {
            for b in a.bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:012x}", h & 0xffff_ffff_ffff)
    })
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn vendored_files_match_their_checksums() {
        let sums = include_str!("../assets/vendor/SHA256SUMS");
        let files: &[(&str, &[u8])] = &[
            (
                "htmx-2.0.11.min.js",
                include_bytes!("../assets/vendor/htmx-2.0.11.min.js"),
            ),
            (
                "uplot-1.6.32.iife.min.js",
                include_bytes!("../assets/vendor/uplot-1.6.32.iife.min.js"),
            ),
            (
                "uplot-1.6.32.min.css",
                include_bytes!("../assets/vendor/uplot-1.6.32.min.css"),
            ),
        ];
        for (name, bytes) in files {
            let want = sums
                .lines()
                .find_map(|l| l.strip_suffix(name).map(str::trim))
                .unwrap_or_else(|| panic!("{name} not in SHA256SUMS"));
            let got: String = Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, want, "{name} differs from the vendored release");
        }
    }

    #[test]
    fn names_resolve_and_the_version_is_stable() {
        assert!(super::get("htmx.min.js").is_some());
        assert!(super::get("../Cargo.toml").is_none());
        assert_eq!(super::version(), super::version());
        assert_eq!(super::version().len(), 12);
    }
}
