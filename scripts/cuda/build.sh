#!/usr/bin/env bash
# Builds `atrium` and `gpu-bench` with `--features cuda` on a machine without a GPU or a CUDA
# install, and assembles the bundle that is carried to a GPU machine (which needs no Rust).
#
#   scripts/cuda/build.sh [BUNDLE_DIR]        (default: .gpu-bundle in the repository root)
#
# 1. Installs the pinned CUDA 13.0 toolkit wheels from PyPI into .cuda-toolkit/ (git-ignored):
#    nvcc + nvvm + crt headers (candle-kernels compiles its .cu files to PTX and a static lib),
#    cudart, nvrtc, cuBLAS/cuBLASLt, cuRAND (cudarc links them dynamically), CCCL headers.
#    13.0.x on purpose: the GPU machines run driver 580 (CUDA 13.0), whose JIT refuses PTX
#    from a newer nvcc.
# 2. Adds what the wheels lack for linking: unversioned .so links and a libcuda.so stub
#    (soname libcuda.so.1, every cu* symbol cudarc's driver bindings reference; the real one
#    comes with the driver on the GPU machine).
# 3. Builds in release with CUDA_COMPUTE_CAP=90 (H100/H200; there is no GPU here to detect),
#    strips and xz-compresses the binaries (86 + 51 MB stripped, ~22 MB compressed: the tree
#    that travels to the GPU machine is limited to 64 MiB) and copies bench/gpu.sh and
#    bench/python/gpu_peer.py beside them. On the GPU machine: `.gpu-bundle/gpu.sh`.
#
# Environment: CARGO_TARGET_DIR (default target/), CUDA_COMPUTE_CAP (default 90),
# ATRIUM_CUDA_TOOLKIT (default .cuda-toolkit), NICE (default 19: the build runs at low priority).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE=${1:-$ROOT/.gpu-bundle}
TK=${ATRIUM_CUDA_TOOLKIT:-$ROOT/.cuda-toolkit}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
NICE=${NICE:-19}

# The pinned wheels: CUDA 13.0 era (cuBLAS 13.1.0.3 and cuRAND 10.4.0.35 ship with 13.0 update 2).
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.1.0.3
  nvidia-curand==10.4.0.35
)

CUDA_ROOT=$TK/site/nvidia/cu13
stamp=$TK/.installed-$(printf '%s ' "${WHEELS[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "== installing CUDA 13.0 wheels into $TK"
  rm -rf "$TK/site"
  mkdir -p "$TK"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
    --only-binary=:all: --target "$TK/site" "${WHEELS[@]}"
  touch "$stamp"
fi
[ -x "$CUDA_ROOT/bin/nvcc" ] || { echo "nvcc missing under $CUDA_ROOT" >&2; exit 1; }

# unversioned names for the linker (-lcublas etc.); cudaforge looks in lib64
lib=$CUDA_ROOT/lib
for so in libcublas.so.13 libcublasLt.so.13 libcudart.so.13 libnvrtc.so.13 libcurand.so.10; do
  ln -sf "$so" "$lib/${so%%.so.*}.so"
done
ln -sfn lib "$CUDA_ROOT/lib64"

# libcuda stub: every cu* function of cudarc's driver bindings, each answering
# CUDA_ERROR_NO_DEVICE (100), so that a cuda build also runs (on the CPU) where there is no
# driver: LD_LIBRARY_PATH=.cuda-toolkit/site/nvidia/cu13/lib/stubs:... (it is named
# libcuda.so.1 there too).
if [ ! -f "$lib/stubs/libcuda.so.1" ]; then
  echo "== generating the libcuda.so link stub"
  cudarc_ver=$(grep -A1 '^name = "cudarc"' "$ROOT/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')
  (cd "$ROOT" && cargo fetch --quiet)
  sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$cudarc_ver"/src/driver/sys/mod.rs | head -1)
  mkdir -p "$lib/stubs"
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$sys" | awk '{print $4}' | sort -u \
    | awk '{print "int " $1 "(void) { return 100; }"}' >"$TK/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$lib/stubs/libcuda.so.1.tmp" "$TK/libcuda_stub.c"
  mv "$lib/stubs/libcuda.so.1.tmp" "$lib/stubs/libcuda.so.1"
  ln -sf libcuda.so.1 "$lib/stubs/libcuda.so"
fi

export PATH=$CUDA_ROOT/bin:$PATH   # cudarc runs `nvcc --version` to pick the CUDA version
export NVCC=$CUDA_ROOT/bin/nvcc     # candle-kernels (cudaforge) compiles with it
export CUDA_HOME=$CUDA_ROOT CUDA_ROOT=$CUDA_ROOT CUDA_PATH=$CUDA_ROOT   # cudarc's link search
export LIBRARY_PATH=$lib:$lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
export CARGO_TARGET_DIR=$TARGET_DIR
echo "== building (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
cd "$ROOT"
nice -n "$NICE" cargo build --release -p atrium -p atrium-bench --features atrium-bench/cuda \
  --bin atrium --bin gpu-bench

echo "== assembling $BUNDLE"
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
for b in atrium gpu-bench; do
  strip -o "$BUNDLE/$b" "$TARGET_DIR/release/$b"
done
needs=$(readelf -d "$BUNDLE/atrium" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
xz -T0 -6 "$BUNDLE/atrium" "$BUNDLE/gpu-bench"
cp bench/gpu.sh bench/python/gpu_peer.py bench/python/serve_gpu_check.py "$BUNDLE/"
chmod +x "$BUNDLE/gpu.sh"
du -sh "$BUNDLE"/*
echo "the binaries need at run time: $needs"
