"""Job dispatch: submit -> running -> completed of a trivial command job (`true`) on each
target of one `atrium serve`, timed by the client (submit answered -> Completed seen, polled
every 2 ms) and by the host's own timestamps (created_at -> started_at: queue to dispatch).

    python3 bench/python/dispatch_bench.py --atrium target/release/atrium [--jobs 20]
        [--compute local local-process] [--slurm-env DIR/env]

With --slurm-env (the env file `scripts/engines/slurm.sh start DIR` writes) it also creates the
compute target `slurm` (built-in target-slurm) and adds two lines: Atrium's job on it, and the
same trivial job driven by Slurm's own CLI (`sbatch --wrap true`, its end seen through
slurmrestd polled every 2 ms), so the difference is Atrium's overhead over the engine's own.

One JSON line per target: medians and p90 in milliseconds."""

import base64
import hashlib
import hmac

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
    ap.add_argument("--slurm-env")
    a = ap.parse_args()
    slurm = None
    if a.slurm_env:
        slurm = dict(l.split("=", 1) for l in open(a.slurm_env).read().splitlines() if "=" in l)
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
        computes = list(a.compute)
        if slurm:
            call(f"{ws}/secrets/slurm-key", token, "PUT", {"value": slurm["SLURM_JWT_KEY_B64"]})
            call(f"{ws}/compute/slurm", token, "PUT", {
                "component": "target-slurm", "secrets": ["slurm-key"], "allow_private": True,
                "cpus": 1,
                "config": {"url": slurm["SLURM_URL"], "jwt_key_secret": "slurm-key",
                           "partition": slurm["SLURM_PARTITION"]}})
            computes.append("slurm")
        for compute in computes:
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
        if slurm:
            sbatch_peer(slurm, a.jobs)
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(data, ignore_errors=True)


def slurm_jwt(key_b64, user):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    now = int(time.time())
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps({"iat": now, "exp": now + 3600, "sun": user}).encode())
    sig = enc(hmac.new(base64.b64decode(key_b64), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def sbatch_peer(env, jobs):
    """The same trivial job through Slurm's own CLI: sbatch, then its end seen over slurmrestd."""
    jwt = slurm_jwt(env["SLURM_JWT_KEY_B64"], env.get("SLURM_USER", "root"))
    run_env = dict(os.environ, SLURM_CONF=env["SLURM_CONF"])
    total = []
    for i in range(jobs + 2):
        t0 = time.perf_counter()
        out = subprocess.run(
            ["sbatch", "--parsable", "-p", env["SLURM_PARTITION"], "-c", "1", "-o", "/dev/null",
             "--wrap", "true"], env=run_env, check=True, capture_output=True, text=True).stdout
        job = out.strip().split(";")[0]
        while True:
            req = urllib.request.Request(f"{env['SLURM_URL']}/slurm/v0.0.38/job/{job}")
            req.add_header("X-SLURM-USER-NAME", env.get("SLURM_USER", "root"))
            req.add_header("X-SLURM-USER-TOKEN", jwt)
            with urllib.request.urlopen(req, timeout=30) as r:
                state = json.loads(r.read())["jobs"][0]["job_state"]
            if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
                break
            time.sleep(0.002)
        t1 = time.perf_counter()
        if state != "COMPLETED":
            raise SystemExit(f"sbatch job ended {state}")
        if i >= 2:
            total.append((t1 - t0) * 1000)
    print(json.dumps({
        "compute": "sbatch (Slurm's CLI, no Atrium)", "jobs": jobs,
        "submit_to_completed_ms": {"median": round(statistics.median(total), 1),
                                   "p90": round(pct(total, 0.9), 1)},
    }), flush=True)


if __name__ == "__main__":
    main()
