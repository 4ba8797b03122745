"""The benchmark's data, deterministic, and the two seeders: MLflow's SQLite store written
directly (its REST API would take far too long for 10,000 runs and a 1,000,000-point metric) and
Atrium through its native bulk API (`POST /api/v1/workspaces/default/runs:bulk`, then
`POST .../runs/{id}/log` with 10,000 points a call for the long metric)."""

import hashlib
import json
import math
import sqlite3
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

T0 = 1_700_000_000_000  # ms
N_PARAMS = 20
N_METRICS = 10
STEPS = 3  # steps per metric of an ordinary run (0, 1, 2); the latest is step 2
OPTS = ["adam", "sgd", "rmsprop"]
BIG_KEY = "loss"
EXP_RUNS = "portal-bench"
EXP_BIG = "portal-bench-big"
BIG_NAME = "big-run"


def run_name(i):
    return f"run-{i:05d}"


def mlflow_run_id(i):
    return hashlib.md5(f"portal-bench-{i}".encode()).hexdigest()


BIG_MLFLOW_ID = hashlib.md5(b"portal-bench-big").hexdigest()


def params_of(i):
    out = {"p00": OPTS[i % 3]}
    for j in range(1, N_PARAMS):
        out[f"p{j:02d}"] = f"{((i * (j + 7) * 7919) % 10007) / 10007:.4f}"
    return out


def metric_value(i, k, s):
    return ((i * 7919 + k * 104729 + s * 15485863) % 1000003) / 1000003


def metrics_of(i):
    """(key, value, timestamp, step) of run i."""
    return [(f"m{k}", metric_value(i, k, s), T0 + i * 1000 + s * 10, s)
            for k in range(N_METRICS) for s in range(STEPS)]


def latest(i, k):
    return metric_value(i, k, STEPS - 1)


def big_value(s):
    return 2.0 / (1.0 + s / 20000.0) + 0.05 * math.sin(s * 0.37) + 0.02 * ((s * 7919) % 101) / 101


def expected_first_by_m0_desc(n_runs):
    best = max(range(n_runs), key=lambda i: latest(i, 0))
    return run_name(best)


def expected_filter_count(n_runs, threshold=0.5):
    return sum(1 for i in range(n_runs) if latest(i, 0) > threshold)


# ---------------------------------------------------------------- HTTP helpers

def http(method, url, body=None, token=None, headers=None, timeout=600):
    data = None
    h = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw and raw[:1] in b"{[" else raw


# ---------------------------------------------------------------- MLflow

def seed_mlflow(url, db_path, n_runs):
    """Creates the two experiments through the REST API (so the server fills in what it
    needs), then writes runs, params, tags, metrics and latest_metrics straight into SQLite."""
    t = time.monotonic()
    exp = http("POST", f"{url}/api/2.0/mlflow/experiments/create", {"name": EXP_RUNS})["experiment_id"]
    big_exp = http("POST", f"{url}/api/2.0/mlflow/experiments/create", {"name": EXP_BIG})["experiment_id"]
    for e in (exp, big_exp):
        # classic ML experiment (MLflow 3 otherwise infers the kind, or asks)
        http("POST", f"{url}/api/2.0/mlflow/experiments/set-experiment-tag",
             {"experiment_id": e, "key": "mlflow.experimentKind", "value": "custom_model_development"})
    c = sqlite3.connect(db_path, timeout=60)
    c.execute("PRAGMA synchronous=OFF")
    cur = c.cursor()
    run_cols = ("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                "VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', ?, ?, '', 'active', ?, ?)")
    runs, params, tags, metrics, latest_rows = [], [], [], [], []
    for i in range(n_runs):
        rid = mlflow_run_id(i)
        st = T0 + i * 1000
        runs.append((rid, run_name(i), st, st, f"/tmp/none/{rid}", int(exp)))
        params.extend((k, v, rid) for k, v in params_of(i).items())
        tags.append(("mlflow.runName", run_name(i), rid))
        tags.append(("mlflow.user", "bench", rid))
        ms = metrics_of(i)
        metrics.extend((k, v, ts, rid, s, 0) for k, v, ts, s in ms)
        latest_rows.extend((k, v, ts, s, 0, rid) for k, v, ts, s in ms if s == STEPS - 1)
    cur.executemany(run_cols, runs)
    cur.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
    cur.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
    cur.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", metrics)
    cur.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)", latest_rows)
    # the long run
    cur.execute(run_cols, (BIG_MLFLOW_ID, BIG_NAME, T0, T0 + 1_000_000, f"/tmp/none/{BIG_MLFLOW_ID}", int(big_exp)))
    cur.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                    [("mlflow.runName", BIG_NAME, BIG_MLFLOW_ID), ("mlflow.user", "bench", BIG_MLFLOW_ID)])
    cur.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                    ((BIG_KEY, big_value(s), T0 + s, BIG_MLFLOW_ID, s, 0) for s in range(1_000_000)))
    s = 999_999
    cur.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
                (BIG_KEY, big_value(s), T0 + s, s, 0, BIG_MLFLOW_ID))
    c.commit()
    c.close()
    ids = {run_name(i): mlflow_run_id(i) for i in range(n_runs)}
    return {"exp": str(exp), "big_exp": str(big_exp), "ids": ids, "big": BIG_MLFLOW_ID,
            "seconds": time.monotonic() - t}


# ---------------------------------------------------------------- Atrium

def seed_atrium(url, token, n_runs, chunk=1000, threads=2):
    t = time.monotonic()
    api = f"{url}/api/v1/workspaces/default"
    exp = http("POST", f"{url}/api/2.0/mlflow/experiments/create", {"name": EXP_RUNS}, token)["experiment_id"]
    big_exp = http("POST", f"{url}/api/2.0/mlflow/experiments/create", {"name": EXP_BIG}, token)["experiment_id"]

    def bulk(lo):
        runs = []
        for i in range(lo, min(lo + chunk, n_runs)):
            runs.append({
                "experiment_id": int(exp), "name": run_name(i), "user_id": "bench",
                "start_time": T0 + i * 1000, "status": "FINISHED",
                "params": params_of(i),
                "metrics": [{"key": k, "value": v, "timestamp": ts, "step": s} for k, v, ts, s in metrics_of(i)],
            })
        ids = http("POST", f"{api}/runs:bulk", {"runs": runs}, token)["run_ids"]
        return {run_name(lo + n): rid for n, rid in enumerate(ids)}

    ids = {}
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(bulk, range(0, n_runs, chunk)):
            ids.update(part)
    t_runs = time.monotonic() - t
    big = http("POST", f"{api}/runs:bulk", {"runs": [{
        "experiment_id": int(big_exp), "name": BIG_NAME, "user_id": "bench", "start_time": T0,
        "status": "FINISHED"}]}, token)["run_ids"][0]

    def log(lo):
        pts = [{"key": BIG_KEY, "value": big_value(s), "timestamp": T0 + s, "step": s}
               for s in range(lo, lo + 10_000)]
        http("POST", f"{api}/runs/{big}/log", {"metrics": pts}, token)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(log, range(0, 1_000_000, 10_000)))
    return {"exp": str(exp), "big_exp": str(big_exp), "ids": ids, "big": big,
            "seconds": time.monotonic() - t, "seconds_runs": t_runs}
