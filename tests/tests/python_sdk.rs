//! The Python SDK (`sdk/python`): built as a wheel by `pip wheel`, installed into
//! `sdk/python/.venv` (the machine's `python3`, 3.11 as Debian 12's) and `sdk/python/.venv-3.13`
//! (CPython 3.13, as Debian 13's), its pytest suite against a live server on each, and the
//! README's "Python SDK" script executed as it is against a fresh server.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use atrium_tests::{Backend, Server, python_env, python_env_with, root};

/// The SDK's virtualenv (the machine's `python3`) with the SDK installed from a wheel `pip
/// wheel` built (once per run).
fn sdk_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| with_wheel(python_env(REQUIREMENTS, "sdk/python/.venv")))
        .clone()
}

/// The pinned requirements of the SDK's suite.
const REQUIREMENTS: &str = "sdk/python/tests/requirements.txt";

/// CPython 3.13 (Debian 13's): pyenv's (`PYENV_ROOT`, else `~/.pyenv`), else `python3.13` on
/// `PATH` (pyenv's shims skipped: they refuse a version that is not selected).
fn python_3_13() -> PathBuf {
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        .map(|r| r.join("versions"));
    let from_pyenv = pyenv.as_deref().and_then(|dir| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("3.13"))
            })
            .map(|p| p.join("bin/python3"))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v.pop()
    });
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .filter(|d| !d.to_string_lossy().contains("/shims"))
                .map(|d| d.join("python3.13"))
                .find(|p| p.is_file())
        })
    };
    from_pyenv.or_else(on_path).unwrap_or_else(|| {
        panic!("no CPython 3.13 here (pyenv's in {pyenv:?}, or python3.13 on PATH): install one")
    })
}

/// Builds the SDK's wheel with `py`'s pip and installs it there; answers `py`.
fn with_wheel(py: PathBuf) -> PathBuf {
    // built from a copy of the sources, so no build/ or *.egg-info lands in the tree
    let src = tempfile::tempdir().unwrap();
    copy_tree(&root().join("sdk/python"), src.path());
    let wheels = tempfile::tempdir().unwrap();
    let out = Command::new(&py)
        .args([
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--no-build-isolation", "-w"])
        .arg(wheels.path())
        .arg(src.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip wheel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wheel: Vec<PathBuf> = std::fs::read_dir(wheels.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assert_eq!(wheel.len(), 1, "{wheel:?}");
    let name = wheel[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("atrium-") && name.ends_with("-py3-none-any.whl"),
        "{name}"
    );
    let ok = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--force-reinstall"])
        .arg(&wheel[0])
        .status()
        .unwrap()
        .success();
    assert!(ok, "pip install of the wheel failed");
    py
}

/// Copies the package's sources (`pyproject.toml`, `README.md`, `src/`) from `from` to `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    fn walk(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            let n = name.to_string_lossy();
            if n == "__pycache__" || n.ends_with(".egg-info") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &to.join(&name));
            } else {
                std::fs::copy(e.path(), to.join(&name)).unwrap();
            }
        }
    }
    for f in ["pyproject.toml", "README.md"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    walk(&from.join("src"), &to.join("src"));
}

/// A clean environment for the SDK: no Atrium settings of the caller's, a HOME of its own.
fn sdk_command(py: &PathBuf, home: &std::path::Path) -> Command {
    let mut cmd = Command::new(py);
    for v in [
        "ATRIUM_SERVER",
        "ATRIUM_TOKEN",
        "ATRIUM_TOKEN_FILE",
        "ATRIUM_WORKSPACE",
        "ATRIUM_DATA_DIR",
        "XDG_CONFIG_HOME",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", home);
    cmd
}

#[test]
fn the_sdk_suite_passes_against_a_live_server() {
    run_suite(&sdk_python());
}

#[test]
fn the_sdk_suite_passes_on_python_3_13() {
    let py = python_env_with(&python_3_13(), REQUIREMENTS, "sdk/python/.venv-3.13");
    let out = Command::new(&py).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3.13"),
        "{out:?}"
    );
    run_suite(&with_wheel(py));
}

/// The pytest suite with `py` against a fresh server.
fn run_suite(py: &PathBuf) {
    let s = Server::start(Backend::Sqlite);
    let home = tempfile::tempdir().unwrap();
    let out = sdk_command(py, home.path())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"])
        .arg(root().join("sdk/python/tests"))
        .current_dir(home.path())
        .env("ATRIUM_SERVER", &s.url)
        .env("ATRIUM_TOKEN", &s.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK suite failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(
        !stdout.contains("skipped"),
        "no test may be skipped: {stdout}"
    );
}

/// The first ```python block of the README's "Python SDK" section.
fn readme_script() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Python SDK")
        .nth(1)
        .expect("README has a \"Python SDK\" section");
    let section = section.split("\n## ").next().unwrap();
    let start = section
        .find("```python\n")
        .expect("the section holds a ```python block")
        + "```python\n".len();
    let len = section[start..].find("\n```").unwrap();
    section[start..start + len].to_string()
}

#[test]
fn the_readme_script_runs_as_is() {
    let py = sdk_python();
    let script = readme_script();
    assert!(script.contains("atrium.Client()"), "{script}");
    // the README's first command: a server with its data directory; the script finds the
    // admin token there as the CLI does, and runs from the repository root
    let s = Server::start(Backend::Sqlite);
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("readme_script.py");
    std::fs::write(&file, &script).unwrap();
    let out = sdk_command(&py, home.path())
        .arg(&file)
        .current_dir(root())
        .env("ATRIUM_SERVER", &s.url)
        .env("ATRIUM_DATA_DIR", &s.data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the README script failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    // what it prints: the streamed log, the leaderboard, the scored rows, the request counts
    for needle in ["job completed", "params.lr", "p_0", "{'blue': "] {
        assert!(stdout.contains(needle), "{needle} not in:\n{stdout}");
    }
}
