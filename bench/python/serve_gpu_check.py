"""GPU inference for deployments (run by bench/gpu.sh on the GPU machine, server already up).

Registers the model a train job saved, creates an endpoint with two deployments of it — one on
the CPU, one on CUDA — pins requests to each, checks the probabilities agree, and times
single-row and 1024-row requests on both. Usage: serve_gpu_check.py SERVER_URL RUN_ID CSV
with ATRIUM_TOKEN set to an admin token (bench/gpu.sh exports the bootstrap one); the scoring
requests need none (the endpoint is auth none).
(SERVE_GPU_DEVICE=cpu tries the flow on a machine without a GPU.)
"""
import csv
import http.client
import json
import os
import statistics
import sys
import time
from urllib.parse import urlparse

base, run, data = sys.argv[1], sys.argv[2], sys.argv[3]
u = urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
token = os.environ.get("ATRIUM_TOKEN", "").strip()


def call(method, path, body=None, headers=None):
    h = {"content-type": "application/json"}
    if token:
        h["authorization"] = f"Bearer {token}"
    h.update(headers or {})
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    r = conn.getresponse()
    raw = r.read()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode(errors="replace")


WS = "/api/v1/workspaces/default"
st, v = call("POST", f"{WS}/models/gpu-smoke/versions", {"run_id": run, "path": "model"})
assert st in (200, 201), (st, v)
st, v = call("PUT", f"{WS}/endpoints/gpu-smoke", {"auth_mode": "none"})
assert st in (200, 201), (st, v)
for name, device in (("cpu", "cpu"), ("gpu", os.environ.get("SERVE_GPU_DEVICE", "cuda"))):
    st, v = call("PUT", f"{WS}/endpoints/gpu-smoke/deployments/{name}",
                 {"model": "models:/gpu-smoke/1", "device": device, "instances": 2})
    assert st == 200, (name, st, v)
st, v = call("GET", f"{WS}/endpoints/gpu-smoke")
print("deployments:", {d["name"]: d["settings"]["device"] for d in v["deployments"]}, "state:", v["state"])

with open(data) as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
feats = [c for c in header if c != "target"]
idx = [header.index(c) for c in feats]
records = [[float(r[i]) for i in idx] for r in rows]


def score(dep, batch):
    body = json.dumps({"dataframe_split": {"columns": feats, "data": batch}})
    t = time.perf_counter()
    conn.request("POST", "/endpoints/gpu-smoke/invocations", body=body,
                 headers={"content-type": "application/json", "x-atrium-deployment": dep})
    r = conn.getresponse()
    raw = r.read()
    ms = (time.perf_counter() - t) * 1000
    assert r.status == 200, (dep, r.status, raw[:300])
    assert r.getheader("x-atrium-deployment") == dep
    return ms, json.loads(raw)


_, a = score("cpu", records[:256])
_, b = score("gpu", records[:256])
same = sum(x == y for x, y in zip(a["predictions"], b["predictions"]))
diff = max(abs(pa[k] - pb[k]) for pa, pb in zip(a["probabilities"], b["probabilities"]) for k in pa)
print(f"256 rows: {same}/256 equal labels cpu vs cuda, max |p_cpu - p_cuda| = {diff:.2e}")
ok = same == 256 and diff <= 1e-4

for label, batch, n in (("1 row", records[:1], 300), ("1024 rows", records[:1024], 30)):
    for dep in ("cpu", "gpu"):
        score(dep, batch)  # warm
        times = [score(dep, batch)[0] for _ in range(n)]
        print(f"{label:>9} on {dep}: median {statistics.median(times):.3f} ms, "
              f"p90 {sorted(times)[int(0.9 * len(times)) - 1]:.3f} ms ({n} requests)")
st, m = call("GET", f"{WS}/endpoints/gpu-smoke/metrics")
print("requests by deployment:", {k: v["requests"] for k, v in m["deployments"].items() if k})
print("GPU inference check", "passed" if ok else "FAILED")
sys.exit(0 if ok else 1)
