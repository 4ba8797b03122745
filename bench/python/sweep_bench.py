"""Sweep benchmark driver (bench/sweep.sh runs it): the same 50-trial sweeps through `atrium
serve` and through Optuna + scikit-learn (bench/python/sweep_peer.py), in one script.

- Splits tests/data/digits.csv 80/20 with train_test_split(stratify=y, random_state=0) and
  writes both parts as CSV: Atrium gets them as two datasets (the trial template names
  `validation_dataset`), the peer reads the same files; both standardize on the training rows.
- Starts `atrium serve` on a fresh data directory with `--job-slots 1 --threads-per-slot 1`.
- For each configuration (random without early stopping, random + median, TPE + median) and
  seed, submits the sweep job and polls its leaderboard until the job ends. Wall time is
  submit → terminal state as seen by the client (polled every 20 ms) and, next to it, the
  server's own created_at → ended_at.
- Runs the peer on the same configuration and seed right after each Atrium run (alternating,
  so that load from elsewhere on the machine hits both sides), then prints the table (medians
  over the seeds).

Usage: sweep_bench.py --atrium PATH [--seeds 0,1,2] [--configs random,random-median,tpe-median]
       [--trials 50] [--epochs 20] [--sqlite-sync full|normal] [--skip-peer] [--json FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFIGS = {
    # name: (sampler, early termination)
    "random": ({"name": "random"}, None),
    "random-median": (
        {"name": "random"},
        {"policy": "median", "evaluation_interval": 1, "delay_evaluation": 5},
    ),
    "tpe-median": (
        {"name": "tpe", "options": {"n_startup_trials": 10}},
        {"policy": "median", "evaluation_interval": 1, "delay_evaluation": 5},
    ),
}


def split(digits_csv, out_dir):
    with open(digits_csv) as f:
        header = f.readline().strip().split(",")
        rows = [line.strip() for line in f if line.strip()]
    t = header.index("target")
    y = np.array([int(r.split(",")[t]) for r in rows])
    idx = np.arange(len(rows))
    tr, va = train_test_split(idx, test_size=0.2, stratify=y, random_state=0)
    paths = []
    for name, part in (("train", tr), ("val", va)):
        p = os.path.join(out_dir, f"digits-{name}.csv")
        with open(p, "w") as f:
            f.write(",".join(header) + "\n")
            for i in sorted(part):
                f.write(rows[i] + "\n")
        paths.append(p)
    return paths[0], paths[1], len(tr), len(va)


class Server:
    def __init__(self, binary, data_dir, sqlite_sync):
        os.makedirs(data_dir, exist_ok=True)
        self.log_path = os.path.join(data_dir, "server.log")
        env = dict(os.environ)
        env.pop("ATRIUM_CONFIG", None)
        env.pop("ATRIUM_DATABASE_URL", None)
        env.setdefault("ATRIUM_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
             "--job-slots", "1", "--threads-per-slot", "1", "--sqlite-sync", sqlite_sync],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "w"), env=env, text=True)
        self.url = None
        deadline = time.time() + 60
        for line in self.proc.stdout:
            if line.startswith("atrium listening on "):
                self.url = line.strip()[len("atrium listening on "):]
                break
            if time.time() > deadline:
                break
        if not self.url:
            self.proc.kill()
            raise SystemExit("atrium did not start; log:\n" + open(self.log_path).read())
        # keep draining stdout so the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.base = self.url + "/api/v1/workspaces/default"
        # the bootstrap admin token, written on first start before the listen line
        with open(os.path.join(data_dir, "admin.token")) as f:
            self.token = f.read().strip()

    def call(self, method, path, body=None, content_type="application/json"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")

    def cpu_s(self):
        """CPU time (user + system, all threads) the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def sweep_spec(config, seed, trials, epochs):
    sampler, stop = CONFIGS[config]
    sweep = {
        "trial": {"type": "train", "train": {
            "dataset": "digits-train", "validation_dataset": "digits-val",
            "target": "target", "task": "classification", "epochs": epochs, "seed": 0,
            "batch_size": "${{search_space.batch}}",
            "model": {"hidden": "${{search_space.hidden}}"},
            "optimizer": {"kind": "adam", "lr": "${{search_space.lr}}",
                          "weight_decay": "${{search_space.alpha}}"},
        }},
        "search_space": {
            "lr": {"kind": "loguniform", "low": 1e-4, "high": 1e-1},
            "alpha": {"kind": "loguniform", "low": 1e-6, "high": 1e-2},
            "hidden": {"kind": "choice", "values": [[32], [64], [128], [64, 64], [128, 64]]},
            "batch": {"kind": "choice", "values": [32, 64, 128]},
        },
        "objective": {"primary_metric": "val_accuracy", "goal": "maximize"},
        "sampler": sampler,
        "limits": {"max_total_trials": trials, "max_concurrent_trials": 1},
        "seed": seed,
    }
    if stop:
        sweep["early_termination"] = stop
    return {"type": "sweep", "name": f"bench-{config}-{seed}", "experiment": "bench",
            "sweep": sweep}


def run_atrium(server, config, seed, trials, epochs):
    spec = sweep_spec(config, seed, trials, epochs)
    cpu0 = server.cpu_s()
    start = time.perf_counter()
    job = server.call("POST", "/jobs", spec)
    jid = job["id"]
    while True:
        board = server.call("GET", f"/jobs/{jid}/trials")
        if board["job"]["state"] in ("Completed", "Failed", "Canceled"):
            break
        time.sleep(0.02)
    wall = time.perf_counter() - start
    cpu = server.cpu_s() - cpu0
    j = board["job"]
    if j["state"] != "Completed":
        raise SystemExit(f"sweep {jid} ({config}, seed {seed}) ended {j['state']}: {j.get('error')}")
    ts = board["trials"]
    completed = [t for t in ts if t["state"].lower() == "completed"]
    # time inside trials (start → end of each trial) vs the rest of the sweep
    in_trials = sum((t["ended_at"] - t["started_at"]) for t in ts
                    if t.get("started_at") and t.get("ended_at")) / 1e3
    return {
        "config": config, "seed": seed, "wall_s": wall,
        "server_wall_s": (j["ended_at"] - j["created_at"]) / 1e3,
        "cpu_s": cpu,
        "queued_s": ((j["started_at"] or j["created_at"]) - j["created_at"]) / 1e3,
        "in_trials_s": in_trials,
        "best": board["best"]["value"] if board.get("best") else None,
        "best_completed": max((t["value"] for t in completed if t["value"] is not None),
                              default=None),
        "pruned": board["counts"].get("early_terminated", 0),
        "completed": len(completed),
        "trials": len(ts),
        "epochs": sum(t.get("step") or 0 for t in ts),
    }


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--configs", default="random,random-median,tpe-median")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--sqlite-sync", default="full", choices=["full", "normal"])
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-atrium", action="store_true")
    ap.add_argument("--json", help="also write every run's figures to this file")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    configs = a.configs.split(",")
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c}; known: {', '.join(CONFIGS)}")

    tmp = tempfile.mkdtemp(prefix="atrium-sweep-bench-")
    train_csv, val_csv, ntr, nva = split(os.path.join(ROOT, "tests/data/digits.csv"), tmp)
    ours, theirs = [], []

    def peer(c, s):
        args = {"train_csv": train_csv, "val_csv": val_csv, "target": "target",
                "trials": a.trials, "epochs": a.epochs, "runs": [{"config": c, "seed": s}]}
        out = subprocess.run([sys.executable, os.path.join(HERE, "sweep_peer.py"),
                              json.dumps(args)], stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise SystemExit("the peer failed")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print("peer   " + json.dumps(r), file=sys.stderr, flush=True)
        theirs.append(r)

    server = None
    try:
        if not a.skip_atrium:
            server = Server(a.atrium, os.path.join(tmp, "data"), a.sqlite_sync)
            for name, path in (("digits-train", train_csv), ("digits-val", val_csv)):
                with open(path, "rb") as f:
                    server.call("POST", f"/datasets/{name}/versions", f.read(), "text/csv")
            # warm-up: one short sweep, so that first-use costs (compiling the components,
            # loading the datasets) are not charged to the first measured configuration
            run_atrium(server, "random", 99, 2, 2)
        # Atrium and the peer alternate run by run, so that a busy spell on the (shared)
        # machine lands on both sides rather than on one
        for c in configs:
            for s in seeds:
                if server:
                    r = run_atrium(server, c, s, a.trials, a.epochs)
                    print("atrium " + json.dumps(r), file=sys.stderr, flush=True)
                    ours.append(r)
                if not a.skip_peer:
                    peer(c, s)
    finally:
        if server:
            server.stop()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"atrium": ours, "peer": theirs}, f, indent=1)

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"digits: {ntr} train / {nva} validation rows; {a.trials} trials x <= {a.epochs} epochs; "
          f"seeds {a.seeds} (median shown); atrium --job-slots 1 --threads-per-slot 1, "
          f"sqlite_sync={a.sqlite_sync}; peer OMP/OPENBLAS threads {threads}\n")
    print("| config | atrium wall s | peer wall s | ratio | best atrium (completed) | best peer "
          "| pruned atrium / peer | epochs trained atrium / peer | ms per epoch atrium / peer "
          "(ratio) | CPU s atrium / peer (ratio) | atrium time outside trials |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in configs:
        o = [r for r in ours if r["config"] == c]
        t = [r for r in theirs if r["config"] == c]
        ow, tw = med([r["wall_s"] for r in o]), med([r["wall_s"] for r in t])
        ob, obc, tb = (med([r["best"] for r in o]), med([r["best_completed"] for r in o]),
                       med([r["best"] for r in t]))
        op, tp = med([r["pruned"] for r in o]), med([r["pruned"] for r in t])
        outside = med([r["wall_s"] - r["in_trials_s"] for r in o])
        ratio = ow / tw if o and t else float("nan")
        oe, te = med([r["epochs"] for r in o]), med([r["epochs"] for r in t])
        ope = med([r["wall_s"] / r["epochs"] * 1e3 for r in o])
        tpe_ = med([r["wall_s"] / r["epochs"] * 1e3 for r in t])
        oc, tc = med([r["cpu_s"] for r in o]), med([r["cpu_s"] for r in t])
        print(f"| {c} | {ow:.2f} | {tw:.2f} | {ratio:.2f}x | {ob:.4f} ({obc:.4f}) | {tb:.4f} "
              f"| {op:g} / {tp:g} | {oe:g} / {te:g} | {ope:.2f} / {tpe_:.2f} ({ope / tpe_:.2f}x) "
              f"| {oc:.2f} / {tc:.2f} ({oc / tc:.2f}x) | {outside:.2f} s |")
    if len(seeds) > 1:
        print("\nper seed (atrium wall s / peer wall s, best atrium / best peer):")
        for c in configs:
            cells = []
            for s in seeds:
                o = next((r for r in ours if r["config"] == c and r["seed"] == s), None)
                t = next((r for r in theirs if r["config"] == c and r["seed"] == s), None)
                cells.append(
                    f"seed {s}: {o['wall_s'] if o else float('nan'):.2f} / "
                    f"{t['wall_s'] if t else float('nan'):.2f}, "
                    f"{(o or {}).get('best') or float('nan'):.4f} / "
                    f"{(t or {}).get('best') or float('nan'):.4f}")
            print(f"- {c}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
