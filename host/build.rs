//! Builds the plugins workspace (`plugins/`, built-ins and test fixtures) for wasm32-wasip2 and
//! embeds the built-in components in the binary, as wasmtime's test-programs do: the host and
//! its plugins always come from the same sources. Also lists the SQL migrations for
//! `store::migrations` (what `sqlx::migrate!` did, without sqlx's proc-macro crates, which built
//! a second copy of SQLite, sqlx's drivers and tokio in every cold build).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in plugins registered in every workspace: (crate dir, wasm file stem).
const BUILTINS: &[(&str, &str)] = &[
    ("storage-fs", "storage_fs"),
    ("storage-s3", "storage_s3"),
    ("sampler-random", "sampler_random"),
    ("sampler-grid", "sampler_grid"),
    ("sampler-tpe", "sampler_tpe"),
    ("stop-bandit", "stop_bandit"),
    ("stop-median", "stop_median"),
    ("stop-truncation", "stop_truncation"),
    ("stop-asha", "stop_asha"),
    ("scorer-tabular", "scorer_tabular"),
    ("target-slurm", "target_slurm"),
    ("target-ray", "target_ray"),
];

fn main() {
    let host = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/storage-fs",
        "plugins/storage-s3",
        "plugins/sampler-random",
        "plugins/sampler-grid",
        "plugins/sampler-tpe",
        "plugins/stop-bandit",
        "plugins/stop-median",
        "plugins/stop-truncation",
        "plugins/stop-asha",
        "plugins/scorer-tabular",
        "plugins/target-slurm",
        "plugins/target-ray",
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
    let out_dir_env = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir_env.join("builtin.rs"), src).unwrap();
    embed_migrations(&host, &out_dir_env);
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

/// Writes `migrations.rs`: for each engine a `(version, description, sql)` table of
/// `host/migrations/<engine>/<VERSION>_<description>.sql`, sorted by version, parsed the way
/// sqlx's migration resolver parses file names (so the checksums stored by earlier builds match).
fn embed_migrations(host: &Path, out_dir: &Path) {
    let mut src = String::new();
    for (engine, konst) in [("sqlite", "SQLITE"), ("postgres", "POSTGRES")] {
        let dir = host.join("migrations").join(engine);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !path.is_file() || !name.ends_with(".sql") {
                continue;
            }
            let (version, rest) = name.split_once('_').unwrap_or_else(|| {
                panic!("migration {name}: expected <VERSION>_<description>.sql")
            });
            assert!(
                !rest.ends_with(".up.sql") && !rest.ends_with(".down.sql"),
                "migration {name}: reversible migrations are not supported, use <VERSION>_<description>.sql"
            );
            let version: i64 = version.parse().unwrap_or_else(|_| {
                panic!("migration {name}: the version prefix is not an integer")
            });
            let description = rest.trim_end_matches(".sql").replace('_', " ");
            found.push((version, description, path.canonicalize().unwrap()));
        }
        found.sort_by_key(|m| m.0);
        for w in found.windows(2) {
            assert!(
                w[0].0 != w[1].0,
                "two {engine} migrations have version {}",
                w[0].0
            );
        }
        src.push_str(&format!(
            "/// The {engine} migrations: (version, description, SQL), by version.\n\
             pub(super) const {konst}: &[(i64, &str, &str)] = &[\n"
        ));
        for (version, description, path) in found {
            src.push_str(&format!(
                "    ({version}, {description:?}, include_str!({:?})),\n",
                path.display().to_string()
            ));
        }
        src.push_str("];\n");
    }
    std::fs::write(out_dir.join("migrations.rs"), src).unwrap();
}
