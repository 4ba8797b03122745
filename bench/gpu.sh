#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle that scripts/cuda/build.sh assembled (no Rust there):
#
#   .gpu-bundle/gpu.sh [RESULTS_DIR]
#
# 1. gpu-bench: Atrium's training engine on the anchor MLPs (fp32 AdamW; plus the large one
#    with TF32), writing the initial weights and batches it used;
# 2. gpu_peer.py train: PyTorch on the identical model, start and batch sequence;
# 3. gpu_peer.py compare: the table (ms/step, ratio, loss agreement);
# 4. a smoke test of the server: `atrium serve`, a dataset, a train job with device = "cuda",
#    `job wait`, and `model predict` of the trained model.
# Every stage has its own time limit; a failing stage is reported and the next one still runs.
# Environment: GPU_BENCH_DEVICE (cuda; cpu to try the flow on a machine without a GPU),
# GPU_BENCH_ONLY (sizes, e.g. small,medium), GPU_BENCH_STEPS (override the step counts),
# SMOKE_DEVICE (cuda), PYTHON (python3), SKIP_TRAIN_BENCH (skip stages 1-3).
# 5. GPU inference for deployments: the smoke test's model registered and deployed twice (cpu and
#    cuda), probabilities compared and request latency timed on both (serve_gpu_check.py).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RES=${1:-${OUT:-$HERE/results}}
DEV=${GPU_BENCH_DEVICE:-cuda}
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
mkdir -p "$RES"
# the CUDA libraries (cuBLAS, cuRAND, NVRTC, cudart) of the machine's toolkit, if not on the
# loader path already
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  "$("$PY" -c 'import importlib.util as u, os; s = u.find_spec("nvidia"); print(os.path.join(list(s.submodule_search_locations)[0], "cu13", "lib") if s else "")' 2>/dev/null)"; do
  [ -n "$d" ] && [ -d "$d" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
status=0
stage() { echo; echo "== $*"; }
# the binaries travel xz-compressed
BIN=$WORK/bin
mkdir -p "$BIN"
for b in atrium gpu-bench; do
  if [ -f "$HERE/$b.xz" ]; then
    if command -v xz >/dev/null; then xz -dc "$HERE/$b.xz" >"$BIN/$b"
    else "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$HERE/$b.xz" "$BIN/$b"; fi
  else
    cp "$HERE/$b" "$BIN/$b"
  fi
  chmod +x "$BIN/$b"
done

stage machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
missing=$(ldd "$BIN/gpu-bench" "$BIN/atrium" | grep 'not found' | sort -u)
[ -n "$missing" ] && { echo "unresolved libraries:"; echo "$missing"; }
ldd "$BIN/gpu-bench" | grep -E 'cuda|cublas|curand|nvrtc' || true

if [ -z "${SKIP_TRAIN_BENCH:-}" ]; then
stage "Atrium (gpu-bench --device $DEV)"
args=(--device "$DEV" --out "$WORK")
[ -n "${GPU_BENCH_ONLY:-}" ] && args+=(--only "$GPU_BENCH_ONLY")
[ -n "${GPU_BENCH_STEPS:-}" ] && args+=(--steps "$GPU_BENCH_STEPS")
timeout 200 "$BIN/gpu-bench" "${args[@]}" || { echo "gpu-bench failed ($?)"; status=1; }

stage "PyTorch (gpu_peer.py train --device $DEV)"
PYTHONUNBUFFERED=1 timeout 150 "$PY" "$HERE/gpu_peer.py" train "$WORK" --device "$DEV" \
  || { echo "gpu_peer.py failed ($?)"; status=1; }
cp "$WORK"/atrium.json "$WORK"/torch.json "$RES/" 2>/dev/null

stage "comparison"
"$PY" "$HERE/gpu_peer.py" compare "$WORK" | tee "$RES/table.txt" || status=1
fi

stage "server smoke test: a train job with device = \"${SMOKE_DEVICE:-cuda}\""
(
  set -e
  cd "$WORK"
  "$PY" - <<'PY'
import random
random.seed(0)
with open("syn.csv", "w") as f:
    f.write(",".join(f"f{i}" for i in range(16)) + ",target\n")
    for _ in range(4000):
        x = [random.gauss(0, 1) for _ in range(16)]
        y = "abc"[(x[0] + x[1] > 0) + (x[2] - x[3] > 0.5)]
        f.write(",".join(f"{v:.5f}" for v in x) + f",{y}\n")
PY
  cat > job.toml <<TOML
type = "train"
name = "cuda-smoke"
experiment = "cuda"

[train]
dataset = "syn:1"
target = "target"
task = "classification"
epochs = 5
batch_size = 256
validation_split = 0.2
seed = 0
device = "${SMOKE_DEVICE:-cuda}"

[train.model]
family = "mlp"
hidden = [256, 256]

[train.optimizer]
kind = "adamw"
lr = 0.001
weight_decay = 0.01
TOML
  "$BIN/atrium" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >serve.log 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*atrium listening on \(http[^ ]*\).*/\1/p' serve.log)
    [ -n "$addr" ] && break
    sleep 0.2
  done
  [ -n "$addr" ] || { cat serve.log; exit 1; }
  export ATRIUM_SERVER=$addr
  # the bootstrap admin token (the CLI and serve_gpu_check.py send it)
  export ATRIUM_TOKEN=$(tr -d '[:space:]' <"$WORK/data/admin.token")
  "$BIN/atrium" dataset create syn --file syn.csv
  id=$("$BIN/atrium" job submit job.toml)
  timeout 60 "$BIN/atrium" job wait "$id" </dev/null || { "$BIN/atrium" job logs "$id"; exit 1; }
  "$BIN/atrium" job logs "$id" | tail -n 5
  run=$("$BIN/atrium" job show "$id" --output json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
  head -n 6 syn.csv >rows.csv
  "$BIN/atrium" model predict --run "$run" --file rows.csv
  echo
  echo "== GPU inference for deployments: the same model on a cpu and a cuda deployment"
  PYTHONUNBUFFERED=1 timeout 120 "$PY" "$HERE/serve_gpu_check.py" "$addr" "$run" syn.csv
) 2>&1 | tee "$RES/smoke.txt"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then echo "smoke test FAILED"; status=1; else echo "smoke test passed"; fi

rm -rf "$WORK"
exit $status
