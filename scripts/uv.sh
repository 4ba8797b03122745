#!/usr/bin/env bash
# Installs uv, pinned, into .tools/uv (a virtualenv of its own): the host builds job
# environments with it (the host finds it there, on PATH, or at ATRIUM_UV). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
if [ -x .tools/uv/bin/uv ] && [ "$(.tools/uv/bin/uv --version | cut -d' ' -f2)" = "$UV_VERSION" ]; then
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
rm -rf .tools/uv
python3 -m venv .tools/uv
.tools/uv/bin/pip install -q "uv==$UV_VERSION"
echo "installed $(.tools/uv/bin/uv --version) at .tools/uv/bin/uv"
