//! Builds the plugins workspace (`plugins/`, built-ins and test fixtures) for wasm32-wasip2 and
//! embeds the built-in components in the binary, as wasmtime's test-programs do: the host and
//! its plugins always come from the same sources.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in plugins registered in every workspace: (crate dir, wasm file stem).
const BUILTINS: &[(&str, &str)] = &[
    ("storage-fs", "storage_fs"),
    ("sampler-random", "sampler_random"),
    ("sampler-grid", "sampler_grid"),
    ("sampler-tpe", "sampler_tpe"),
    ("stop-bandit", "stop_bandit"),
    ("stop-median", "stop_median"),
    ("stop-truncation", "stop_truncation"),
    ("stop-asha", "stop_asha"),
    ("scorer-tabular", "scorer_tabular"),
];

fn main() {
    let host = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/storage-fs",
        "plugins/sampler-random",
        "plugins/sampler-grid",
        "plugins/sampler-tpe",
        "plugins/stop-bandit",
        "plugins/stop-median",
        "plugins/stop-truncation",
        "plugins/stop-asha",
        "plugins/scorer-tabular",
        "plugins/strategy-core",
        "plugins/fixtures",
        "plugins/examples",
        "sdk/src",
        "sdk/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = plugins.join("target");
    build_plugins(&plugins, &target_dir);
    let out_dir = target_dir.join("wasm32-wasip2").join("release");
    let mut src = String::from(
        "/// Built-in components, compiled from `plugins/` by the build script.\npub static BUILTINS: &[Builtin] = &[\n",
    );
    for (dir, stem) in BUILTINS {
        let wasm = out_dir.join(format!("{stem}.wasm"));
        let manifest = plugins.join(dir).join("plugin.toml");
        assert!(wasm.exists(), "{} was not built", wasm.display());
        src.push_str(&format!(
            "    Builtin {{ name: {dir:?}, manifest: include_str!({:?}), wasm: include_bytes!({:?}) }},\n",
            manifest.display().to_string(),
            wasm.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin.rs");
    std::fs::write(out, src).unwrap();
    println!("cargo:rustc-env=ATRIUM_PLUGINS_OUT={}", out_dir.display());
}

fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // a clean environment: the outer build's variables (flags, target, features) must not leak
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let k_str = k.to_string_lossy();
        let keep = matches!(
            k_str.as_ref(),
            "PATH"
                | "HOME"
                | "CARGO_HOME"
                | "RUSTUP_HOME"
                | "RUSTUP_TOOLCHAIN"
                | "TMPDIR"
                | "CARGO_MAKEFLAGS"
        ) || k_str.starts_with("CARGO_NET_")
            || k_str.starts_with("CARGO_HTTP_")
            || k_str.starts_with("CARGO_REGISTRIES_");
        if keep {
            cmd.env(k, v);
        }
    }
    let status = cmd
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(plugins)
        .status()
        .expect("run cargo for the plugins");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed; is the target installed? \
         `rustup target add wasm32-wasip2` (scripts/setup.sh does it)"
    );
}
