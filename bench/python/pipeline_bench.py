"""Pipeline orchestration overhead: a 10-step chain of trivial command steps (each writes one
integer output the next reads), submitted and run to completion on one `atrium serve`, and its
fully cached rerun. Timed by the client (submit sent -> Completed seen, polled every 2 ms).
The steps' own work is each step job's started_at -> ended_at (the host's timestamps: the
command's process, its output upload); the overhead is the rest, divided by the steps.

    python3 bench/python/pipeline_bench.py --atrium target/release/atrium [--steps 10] [--runs 5]

One JSON line per case: medians and p90 in milliseconds."""

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

from dispatch_bench import call, free_port, pct


def chain(n):
    jobs = {"s0": {"type": "command", "command": "echo 0 > $ATRIUM_OUTPUTS/v",
                   "outputs": {"v": {"type": "integer"}}}}
    for i in range(1, n):
        jobs[f"s{i}"] = {"type": "command",
                         "command": f"echo $((${{{{parent.jobs.s{i-1}.outputs.v}}}} + 1)) > $ATRIUM_OUTPUTS/v",
                         "outputs": {"v": {"type": "integer"}}}
    return {"name": "bench-chain", "jobs": jobs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium", default="target/release/atrium")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    data = tempfile.mkdtemp()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen([a.atrium, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
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
        ws = base + "/api/v1/workspaces/default"
        call(ws + "/pipelines", token, "POST", chain(a.steps))

        def run(settings):
            t0 = time.perf_counter()
            r = call(ws + "/pipelines/bench-chain/runs", token, "POST", {"settings": settings})
            while True:
                v = call(ws + f"/pipeline-runs/{r['id']}", token)
                if v["state"] in ("Completed", "Failed", "Canceled"):
                    break
                time.sleep(0.002)
            wall = (time.perf_counter() - t0) * 1000
            assert v["state"] == "Completed", v
            work = 0.0
            for s in v["steps"]:
                if s["job"]:
                    j = call(ws + f"/jobs/{s['job']}", token)
                    work += j["ended_at"] - j["started_at"]
            return wall, work, [s["state"] for s in v["steps"]]

        run({})  # warm-up (and the cache's first entries)
        cases = {"uncached": {"force_rerun": True}, "cached": {}}
        for name, settings in cases.items():
            walls, overheads, works = [], [], []
            for _ in range(a.runs):
                wall, work, states = run(settings)
                if name == "cached":
                    assert all(s == "Cached" for s in states), states
                else:
                    assert all(s == "Completed" for s in states), states
                walls.append(wall)
                works.append(work)
                overheads.append((wall - work) / a.steps)
            print(json.dumps({
                "case": name, "steps": a.steps, "runs": a.runs,
                "wall_ms_median": round(statistics.median(walls), 1), "wall_ms_p90": round(pct(walls, 0.9), 1),
                "step_work_ms_median": round(statistics.median(works), 1),
                "overhead_ms_per_step_median": round(statistics.median(overheads), 2),
                "overhead_ms_per_step_p90": round(pct(overheads, 0.9), 2),
            }), flush=True)
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()
