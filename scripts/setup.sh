#!/usr/bin/env bash
# Sets up a fresh machine to build and run Atrium on the embedded default (SQLite + local files):
# the wasm32-wasip2 target for plugins, the built-in plugins (when present), and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
if [ -f plugins/Cargo.toml ]; then
  echo "building built-in plugins (wasm32-wasip2)"
  cargo build --release --manifest-path plugins/Cargo.toml --target wasm32-wasip2
fi
cargo build --release -p atrium
echo "built target/release/atrium"
