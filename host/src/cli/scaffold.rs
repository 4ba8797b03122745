//! `atrium plugin new`: a plugin crate of any kind, from the examples in `plugins/examples`
//! (which the build compiles, so a new plugin always starts from code that builds).

use std::path::{Path, PathBuf};

use super::CliError;

/// (kind, lib.rs, plugin.toml) of every example.
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "storage",
        include_str!("../../../plugins/examples/storage/src/lib.rs"),
        include_str!("../../../plugins/examples/storage/plugin.toml"),
    ),
    (
        "scorer",
        include_str!("../../../plugins/examples/scorer/src/lib.rs"),
        include_str!("../../../plugins/examples/scorer/plugin.toml"),
    ),
    (
        "sampler",
        include_str!("../../../plugins/examples/sampler/src/lib.rs"),
        include_str!("../../../plugins/examples/sampler/plugin.toml"),
    ),
    (
        "stopper",
        include_str!("../../../plugins/examples/stopper/src/lib.rs"),
        include_str!("../../../plugins/examples/stopper/plugin.toml"),
    ),
    (
        "target",
        include_str!("../../../plugins/examples/target/src/lib.rs"),
        include_str!("../../../plugins/examples/target/plugin.toml"),
    ),
];

/// The SDK of the sources this binary was built from.
const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// Writes `./NAME` with Cargo.toml, plugin.toml and src/lib.rs; returns the directory.
pub fn new_plugin(kind: &str, name: &str, sdk: Option<&Path>) -> Result<PathBuf, CliError> {
    let (_, lib, manifest) = TEMPLATES
        .iter()
        .find(|(k, _, _)| *k == kind)
        .ok_or_else(|| CliError::Usage(format!("unknown kind '{kind}'")))?;
    let valid = !name.is_empty()
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(CliError::Usage(format!(
            "invalid crate name '{name}': use a-z, 0-9, '-' and '_', starting with a letter"
        )));
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        return Err(CliError::Usage(format!("{} already exists", dir.display())));
    }
    let sdk = sdk
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SDK));
    let sdk = std::fs::canonicalize(&sdk).map_err(|e| {
        CliError::Usage(format!(
            "atrium-sdk not found at {} ({e}); pass --sdk PATH",
            sdk.display()
        ))
    })?;
    std::fs::create_dir_all(dir.join("src"))?;
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\natrium-sdk = {{ path = {:?} }}\n\n\
         # a plugin is its own workspace; release components are small and fast\n[workspace]\n\n\
         [profile.release]\nopt-level = 3\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n",
        sdk.display().to_string()
    );
    let manifest: String = manifest
        .lines()
        .map(|l| {
            if l.starts_with("name = ") {
                format!("name = \"{name}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.join("Cargo.toml"), cargo)?;
    std::fs::write(dir.join("plugin.toml"), manifest)?;
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    std::fs::write(dir.join(".gitignore"), "target/\n")?;
    Ok(dir)
}
