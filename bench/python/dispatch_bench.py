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
    ap.add_argument("--ray-env")
    ap.add_argument("--sweep-trials", type=int, default=0,
                    help="also time an N-trial sweep of iris on local and on each engine")
    a = ap.parse_args()
    read_env = lambda p: dict(l.split("=", 1) for l in open(p).read().splitlines() if "=" in l)
    slurm = read_env(a.slurm_env) if a.slurm_env else None
    ray = read_env(a.ray_env) if a.ray_env else None
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
        if ray:
            call(f"{ws}/secrets/ray-token", token, "PUT", {"value": ray["RAY_TOKEN"]})
            call(f"{ws}/compute/ray", token, "PUT", {
                "component": "target-ray", "secrets": ["ray-token"], "allow_private": True,
                "cpus": 1, "config": {"url": ray["RAY_URL"], "token_secret": "ray-token"}})
            computes.append("ray")
        def atrium_job(compute):
            t0 = time.perf_counter()
            j = call(f"{ws}/jobs", token, "POST", dict(spec, compute=compute))
            while j["state"] not in ("Completed", "Failed", "Canceled"):
                time.sleep(0.002)
                j = call(f"{ws}/jobs/{j['id']}", token)
            t1 = time.perf_counter()
            if j["state"] != "Completed":
                raise SystemExit(f"job ended {j['state']}: {j.get('error')}")
            return (t1 - t0) * 1000, j["started_at"] - j["created_at"]

        # an engine's own job runs right after each of Atrium's on it (interleaved, so the
        # engine's drift over a run affects both alike)
        peers = {"slurm": ("sbatch (Slurm's CLI, no Atrium)", lambda: sbatch_job(slurm)),
                 "ray": ("Ray Jobs API (no Atrium)", lambda: ray_job(ray))}
        for compute in computes:
            total, queue, peer = [], [], []
            for i in range(a.jobs + 2):
                ms, q = atrium_job(compute)
                p = peers[compute][1]() if compute in peers else None
                if i >= 2:  # two warm-up jobs
                    total.append(ms)
                    queue.append(q)
                    if p is not None:
                        peer.append(p)
            print(json.dumps({
                "compute": compute, "jobs": a.jobs,
                "submit_to_completed_ms": {"median": round(statistics.median(total), 1),
                                           "p90": round(pct(total, 0.9), 1)},
                "queued_to_started_ms": {"median": statistics.median(queue),
                                         "p90": pct(queue, 0.9)},
            }), flush=True)
            if peer:
                print(json.dumps({
                    "compute": peers[compute][0], "jobs": a.jobs,
                    "submit_to_completed_ms": {"median": round(statistics.median(peer), 1),
                                               "p90": round(pct(peer, 0.9), 1)},
                    "atrium_overhead_ms_median_of_pairs": round(statistics.median(
                        [x - y for x, y in zip(total, peer)]), 1),
                }), flush=True)
        if a.sweep_trials:
            targets = ["local"] + (["slurm"] if slurm else []) + (["ray"] if ray else [])
            for compute in targets:
                sweep_wall(ws, token, compute, a.sweep_trials, base, data)
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


def sbatch_job(env):
    """The same trivial job through Slurm's own CLI: sbatch, then its end seen over slurmrestd
    (polled every 2 ms); milliseconds."""
    jwt = slurm_jwt(env["SLURM_JWT_KEY_B64"], env.get("SLURM_USER", "root"))
    run_env = dict(os.environ, SLURM_CONF=env["SLURM_CONF"])
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
    if state != "COMPLETED":
        raise SystemExit(f"sbatch job ended {state}")
    return (time.perf_counter() - t0) * 1000


def ray_job(env):
    """The same trivial job through Ray's Jobs API (what `ray job submit` calls), polled every
    2 ms; milliseconds."""
    hdr = {"Authorization": f"Bearer {env['RAY_TOKEN']}", "Content-Type": "application/json"}
    t0 = time.perf_counter()
    req = urllib.request.Request(f"{env['RAY_URL']}/api/jobs/", method="POST", headers=hdr,
                                 data=json.dumps({"entrypoint": "true", "entrypoint_num_cpus": 1}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        sid = json.loads(r.read())["submission_id"]
    while True:
        req = urllib.request.Request(f"{env['RAY_URL']}/api/jobs/{sid}", headers=hdr)
        with urllib.request.urlopen(req, timeout=30) as r:
            state = json.loads(r.read())["status"]
        if state in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(0.002)
    if state != "SUCCEEDED":
        raise SystemExit(f"ray job ended {state}")
    return (time.perf_counter() - t0) * 1000


def sweep_wall(ws, token, compute, trials, base, data):
    """Wall time of an N-trial random sweep of iris (2 at once) from submit to Completed."""
    iris = os.path.join(os.path.dirname(__file__), "../../tests/data/iris.csv")
    try:
        call(f"{ws}/datasets/iris/versions/1", token)
    except Exception:
        req = urllib.request.Request(f"{ws}/datasets/iris/versions", data=open(iris, "rb").read(),
                                     method="POST")
        req.add_header("Authorization", f"Bearer {token}")
        urllib.request.urlopen(req, timeout=60).read()
    spec = {"type": "sweep", "name": f"bench-{compute}", "sweep": {
        "trial": {"type": "train", "train": {
            "dataset": "iris", "target": "target", "task": "classification", "epochs": 30,
            "batch_size": 16, "validation_split": 0.2, "seed": 1,
            "model": {"family": "mlp", "hidden": [16]},
            "optimizer": {"kind": "adam", "lr": "${{search_space.lr}}"}}},
        "search_space": {"lr": {"kind": "loguniform", "low": 1e-3, "high": 1e-1}},
        "objective": {"primary_metric": "val_accuracy", "goal": "maximize"},
        "sampler": "random", "seed": 7,
        "limits": {"max_total_trials": trials, "max_concurrent_trials": 2}}}
    if compute != "local":
        spec["compute"] = compute
    t0 = time.perf_counter()
    j = call(f"{ws}/jobs", token, "POST", spec)
    while j["state"] not in ("Completed", "Failed", "Canceled"):
        time.sleep(0.05)
        j = call(f"{ws}/jobs/{j['id']}", token)
    wall = time.perf_counter() - t0
    if j["state"] != "Completed":
        raise SystemExit(f"sweep on {compute} ended {j['state']}: {j.get('error')}")
    print(json.dumps({"sweep_on": compute, "trials": trials, "max_concurrent": 2,
                      "wall_s": round(wall, 2)}), flush=True)


if __name__ == "__main__":
    main()
