#!/usr/bin/env bash
# Sets up a fresh machine to build and run Atrium on the embedded default (SQLite + local files):
# the wasm32-wasip2 target for plugins, uv (job environments), the built-in plugins (when
# present), and a release build.
# The plugins build alongside the host's dependencies (the host's build script embeds them and
# finds them built); see bench/RESULTS.md (build time) for where a cold build's time goes.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
./scripts/uv.sh
plugins=
if [ -f plugins/Cargo.toml ]; then
  echo "building built-in plugins (wasm32-wasip2) alongside the host"
  cargo build --release --manifest-path plugins/Cargo.toml --target wasm32-wasip2 &
  plugins=$!
fi
cargo build --release -p atrium
if [ -n "$plugins" ]; then wait "$plugins"; fi
echo "built target/release/atrium"
