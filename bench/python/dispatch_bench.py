"""Job dispatch: submit -> running -> completed of a trivial command job (`true`) on each
target of one `atrium serve`, timed by the client (submit answered -> Completed seen, polled
every 2 ms) and by the host's own timestamps (created_at -> started_at: queue to dispatch).

    python3 bench/python/dispatch_bench.py --atrium target/release/atrium [--jobs 20]
        [--compute local local-process]

One JSON line per target: medians and p90 in milliseconds."""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, token, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium", default="target/release/atrium")
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--compute", nargs="+", default=["local", "local-process"])
    a = ap.parse_args()
    data = tempfile.mkdtemp()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen(
        [a.atrium, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        token_file = os.path.join(data, "admin.token")
        for _ in range(600):
            if os.path.exists(token_file):
                try:
                    urllib.request.urlopen(base + "/health", timeout=1)
                    break
                except Exception:
                    pass
            time.sleep(0.05)
        token = open(token_file).read().strip()
        ws = f"{base}/api/v1/workspaces/default"
        spec = {"type": "command", "command": {"command": "true"}}
        for compute in a.compute:
            total, queue = [], []
            for i in range(a.jobs + 2):
                t0 = time.perf_counter()
                j = call(f"{ws}/jobs", token, "POST", dict(spec, compute=compute))
                while j["state"] not in ("Completed", "Failed", "Canceled"):
                    time.sleep(0.002)
                    j = call(f"{ws}/jobs/{j['id']}", token)
                t1 = time.perf_counter()
                if j["state"] != "Completed":
                    raise SystemExit(f"job ended {j['state']}: {j.get('error')}")
                if i >= 2:  # two warm-up jobs
                    total.append((t1 - t0) * 1000)
                    queue.append(j["started_at"] - j["created_at"])
            print(json.dumps({
                "compute": compute, "jobs": a.jobs,
                "submit_to_completed_ms": {"median": round(statistics.median(total), 1),
                                           "p90": round(pct(total, 0.9), 1)},
                "queued_to_started_ms": {"median": statistics.median(queue),
                                         "p90": pct(queue, 0.9)},
            }), flush=True)
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
