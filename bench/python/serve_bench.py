"""Serving benchmark driver (bench/serve.sh runs it): the same digits classifier served by
`mlflow models serve` (the peer) and by an Atrium online endpoint, under the same wrk load, in
one script; then Atrium's deployment density and cold start.

- Peer: bench/python/serve_peer.py trains scikit-learn's MLPClassifier((128,)) behind a
  StandardScaler on the digits CSV and logs it with mlflow.sklearn.log_model to a file store in
  a temporary directory; `mlflow models serve -m URI --workers 2 --env-manager local` serves it
  (OMP/OPENBLAS/MKL threads 1 per worker: single-row predictions gain nothing from BLAS threads
  and two workers already fill two cores).
- Atrium: `atrium serve` on a fresh data directory; digits uploaded as a dataset, a train job
  (MLP [128], adam lr 0.01, 20 epochs, batch 64, seed 0), endpoint `digits` (auth none) with
  deployment `blue` = runs:/<run>/model, 2 instances, max_concurrent_requests 256, built-in
  scorer (scorer-tabular).
- Both get the same single-row MLflow `dataframe_split` body (the first digits row); one
  request to each is checked (200, same predicted class) and printed.
- Load: wrk --latency with a Lua script POSTing that body (Content-Type: application/json), a
  2 s warm-up and then -t2 -c16 and -t1 -c1 for --seconds each; the peer first, then Atrium
  (the peer is stopped before Atrium's load starts). Requests/sec, the 50% / 99% latency lines,
  non-2xx responses and socket errors are taken from wrk's output.
- Density (Atrium): --density N endpoints d0000.. each with one 1-instance deployment of the same
  run; the host's VmRSS before and after gives MiB per idle (warm) deployment. Then the host is
  stopped (SIGTERM) and started again on the same data directory, and the first (cold: the pool
  starts on the first request) and second (warm) request to d0000 are timed.

Usage: serve_bench.py [--atrium PATH] [--seconds S] [--density N] [--json FILE]
       [--skip-peer] [--skip-atrium] [--keep]
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV_BIN = os.path.dirname(sys.executable)
DIGITS = os.path.join(ROOT, "..", "shared", "datasets", "digits.csv")
DIGITS_FALLBACK = os.path.join(ROOT, "tests", "data", "digits.csv")
TARGET = "target"
WS = "/api/v1/workspaces/default"

# every child process (its own process group), killed on exit, Ctrl-C or failure
CHILDREN = []


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    CHILDREN.append(p)
    return p


def kill(p, sig=signal.SIGTERM, wait=20):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    else:
        # the leader is gone; its group (e.g. server workers) may not be
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if p in CHILDREN:
        CHILDREN.remove(p)


def cleanup():
    for p in list(CHILDREN):
        kill(p, wait=10)


def on_signal(signum, _frame):
    raise SystemExit(f"interrupted (signal {signum})")


def http(method, url, body=None, content_type="application/json", timeout=600, headers=None):
    """One request; returns (status, body bytes)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------------------------- the peer

class Peer:
    def __init__(self, tmp, csv, seconds_to_start=300):
        store = os.path.join(tmp, "mlruns")
        p = spawn([sys.executable, os.path.join(HERE, "serve_peer.py"),
                   json.dumps({"csv": csv, "target": TARGET, "store": store, "epochs": 20})],
                  stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate()
        CHILDREN.remove(p)
        if p.returncode != 0:
            raise SystemExit("the peer's training failed")
        self.info = json.loads(out.strip().splitlines()[-1])
        print(f"peer   model {self.info['model_uri']} (train accuracy "
              f"{self.info['train_accuracy']:.4f}, fit {self.info['fit_s']:.1f} s)",
              file=sys.stderr, flush=True)
        self.port = free_port()
        self.log_path = os.path.join(tmp, "peer.log")
        env = dict(os.environ)
        env["MLFLOW_TRACKING_URI"] = self.info["tracking_uri"]
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
        env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = "1"
        self.proc = spawn(
            [os.path.join(VENV_BIN, "mlflow"), "models", "serve", "-m", self.info["model_uri"],
             "--workers", "2", "--env-manager", "local", "-p", str(self.port),
             "-h", "127.0.0.1"],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + seconds_to_start
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("mlflow models serve exited; log:\n" + open(self.log_path).read())
            try:
                if http("GET", self.url + "/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("mlflow models serve did not answer /ping; log:\n"
                                 + open(self.log_path).read())
            time.sleep(0.2)
        print(f"peer   mlflow models serve --workers 2 up on {self.url}", file=sys.stderr,
              flush=True)

    def stop(self):
        kill(self.proc)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------- Atrium

class Atrium:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        os.makedirs(data_dir, exist_ok=True)
        self.start()

    def start(self):
        self.log_path = os.path.join(self.data_dir, "server.log")
        env = dict(os.environ)
        env.pop("ATRIUM_CONFIG", None)
        env.pop("ATRIUM_DATABASE_URL", None)
        env.setdefault("ATRIUM_LOG", "warn")
        self.proc = spawn(
            [self.binary, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "a"), env=env, text=True)
        self.url = None
        t0 = time.perf_counter()
        result = {}

        def read():
            for line in self.proc.stdout:
                if line.startswith("atrium listening on "):
                    result["url"] = line.strip()[len("atrium listening on "):]
                    break
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(120)
        self.url = result.get("url")
        if not self.url:
            kill(self.proc)
            raise SystemExit("atrium did not start; log:\n" + open(self.log_path).read())
        self.start_s = time.perf_counter() - t0
        # keep draining stdout so the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.base = self.url + WS
        # the bootstrap admin token (written on first start, before the listen line); every
        # management call sends it; the scoring calls below go to auth-none endpoints
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            self.auth = {"Authorization": f"Bearer {f.read().strip()}"}

    def call(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        status, data = http(method, self.base + path, body, content_type, headers=self.auth)
        if status not in ok:
            raise SystemExit(f"atrium: {method} {WS}{path}: {status} "
                             f"{data.decode(errors='replace')}")
        return json.loads(data or b"null")

    def stop(self):
        kill(self.proc, signal.SIGTERM, wait=60)


def atrium_setup(server, csv):
    with open(csv, "rb") as f:
        server.call("POST", "/datasets/digits/versions", f.read(), "text/csv")
    job = server.call("POST", "/jobs", {"type": "train", "name": "digits", "train": {
        "dataset": "digits:1", "target": TARGET, "task": "classification",
        "model": {"family": "mlp", "hidden": [128]},
        "optimizer": {"kind": "adam", "lr": 0.01},
        "epochs": 20, "batch_size": 64, "seed": 0}})
    jid = job["id"]
    t0 = time.perf_counter()
    while True:
        j = server.call("GET", f"/jobs/{jid}")
        if j["state"] in ("Completed", "Failed", "Canceled"):
            break
        if time.perf_counter() - t0 > 900:
            raise SystemExit(f"atrium: train job {jid} did not finish: {j}")
        time.sleep(0.1)
    if j["state"] != "Completed":
        raise SystemExit(f"atrium: train job {jid} ended {j['state']}: {j.get('error')}")
    run = j["run_id"]
    print(f"atrium trained run {run} in {time.perf_counter() - t0:.1f} s", file=sys.stderr,
          flush=True)
    e = server.call("PUT", "/endpoints/digits", {"auth_mode": "none"})
    print(f"atrium PUT /endpoints/digits -> {json.dumps(e)[:300]}", file=sys.stderr, flush=True)
    d = server.call("PUT", "/endpoints/digits/deployments/blue",
                    {"model": f"runs:/{run}/model", "instances": 2,
                     "max_concurrent_requests": 256})
    print(f"atrium PUT /endpoints/digits/deployments/blue -> {json.dumps(d)[:600]}",
          file=sys.stderr, flush=True)
    return run


# ---------------------------------------------------------------------------------- the load

def request_body(csv):
    with open(csv) as f:
        header = f.readline().strip().split(",")
        row = f.readline().strip().split(",")
    t = header.index(TARGET)
    cols = [c for i, c in enumerate(header) if i != t]
    vals = [float(v) for i, v in enumerate(row) if i != t]
    body = {"dataframe_split": {"columns": cols, "data": [vals]}}
    return json.dumps(body, separators=(",", ":")), int(float(row[t]))


def predicted_class(answer):
    """The class in an MLflow-style answer: {"predictions": [label]} (a label, or a row of
    probabilities / a {"label": ...} record for scorers that answer so)."""
    p = answer["predictions"] if isinstance(answer, dict) else answer
    p = p[0]
    if isinstance(p, dict):
        for k in ("label", "prediction", "predictions", "0"):
            if k in p:
                p = p[k]
                break
    if isinstance(p, list):
        return max(range(len(p)), key=lambda i: p[i])
    return int(float(p))


def check(name, url, body):
    status, data = http("POST", url, body.encode(), "application/json", timeout=60)
    text = data.decode(errors="replace")
    print(f"{name:6} POST {url} -> {status} {text[:400]}", file=sys.stderr, flush=True)
    if status != 200:
        raise SystemExit(f"{name}: scoring request answered {status}: {text}")
    return predicted_class(json.loads(text)), text


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(s):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", s.strip())
    if not m:
        raise ValueError(f"unparsed wrk duration {s!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(out):
    r = {"requests": None, "rps": None, "p50_ms": None, "p90_ms": None, "p99_ms": None,
         "non_2xx": 0, "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([0-9.]+\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_ms"] = to_ms(m.group(2))
    for pct, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([0-9.]+\w+)\s*$", out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      map(int, m.groups())))
    return r


def wrk(url, lua, threads, conns, seconds, log=None):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
           "--timeout", "10s", "-s", lua, url]
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate()
    CHILDREN.remove(p)
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{out}\n")
    if p.returncode != 0:
        raise SystemExit(f"wrk failed ({p.returncode}):\n{out}")
    r = parse_wrk(out)
    if r["rps"] is None or r["p99_ms"] is None:
        raise SystemExit(f"could not parse wrk's output:\n{out}")
    r.update(threads=threads, connections=conns, seconds=seconds)
    return r, out


def load(name, url, lua, seconds, log):
    results = []
    wrk(url, lua, 2, 16, 2)  # warm-up, not reported
    for t, c in ((2, 16), (1, 1)):
        r, _ = wrk(url, lua, t, c, seconds, log)
        errs = sum(r["socket_errors"].values())
        print(f"{name:6} wrk -t{t} -c{c} -d{seconds}s: {r['rps']:.1f} req/s, p50 "
              f"{r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, non-2xx {r['non_2xx']}, "
              f"socket errors {errs}", file=sys.stderr, flush=True)
        results.append(r)
    return results


# ---------------------------------------------------------------------------------- density

def density(server, run, n, body, workers=8):
    rss0 = rss_mib(server.proc.pid)
    local = threading.local()

    def session():
        if not hasattr(local, "s"):
            import requests
            local.s = requests.Session()
            local.s.headers.update(server.auth)
        return local.s

    def create(i):
        s = session()
        name = f"d{i:04d}"
        r = s.put(f"{server.base}/endpoints/{name}", json={"auth_mode": "none"}, timeout=120)
        if r.status_code not in (200, 201):
            return f"PUT /endpoints/{name}: {r.status_code} {r.text}"
        r = s.put(f"{server.base}/endpoints/{name}/deployments/blue",
                  json={"model": f"runs:/{run}/model", "instances": 1}, timeout=120)
        if r.status_code != 200:
            return f"PUT /endpoints/{name}/deployments/blue: {r.status_code} {r.text}"
        return None

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        errors = [e for e in pool.map(create, range(n)) if e]
    create_s = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"atrium: {len(errors)} of {n} endpoint creations failed; first: "
                         f"{errors[0]}")
    time.sleep(1)
    rss1 = rss_mib(server.proc.pid)
    print(f"atrium created {n} endpoints in {create_s:.1f} s; VmRSS {rss0:.1f} -> {rss1:.1f} MiB",
          file=sys.stderr, flush=True)

    server.stop()
    server.start()
    rss_restart = rss_mib(server.proc.pid)
    import requests
    s = requests.Session()
    # (also opens the connection, so that it is not timed)
    e = s.get(f"{server.base}/endpoints/d0000", headers=server.auth, timeout=30).json()
    state = ((e.get("state") or {}).get("blue") or {}).get("state")
    if state != "cold":
        print(f"atrium note: d0000's deployment is '{state}' after the restart, not 'cold': "
              f"{json.dumps(e)[:400]}", file=sys.stderr, flush=True)

    def score(name):
        t = time.perf_counter()
        r = s.post(f"{server.url}/endpoints/{name}/invocations", data=body.encode(),
                   headers={"Content-Type": "application/json"}, timeout=120)
        ms = (time.perf_counter() - t) * 1e3
        if r.status_code != 200:
            raise SystemExit(f"atrium: POST /endpoints/{name}/invocations after restart: "
                             f"{r.status_code} {r.text}")
        return ms

    cold = score("d0000")
    warm = score("d0000")
    cold2 = score("d0001") if n > 1 else None
    print(f"atrium restarted in {server.start_s * 1e3:.0f} ms (VmRSS {rss_restart:.1f} MiB, all "
          f"cold); d0000 first request {cold:.1f} ms, second {warm:.2f} ms"
          + (f"; d0001 first request {cold2:.1f} ms" if cold2 is not None else ""),
          file=sys.stderr, flush=True)
    return {"n": n, "rss_before_mib": rss0, "rss_after_mib": rss1,
            "mib_per_deployment": (rss1 - rss0) / n, "create_s": create_s,
            "restart_s": server.start_s, "rss_after_restart_mib": rss_restart,
            "state_after_restart": state, "cold_ms": cold, "warm_ms": warm, "cold_second_endpoint_ms": cold2}


# ---------------------------------------------------------------------------------- main

def fmt(x, spec):
    return format(x, spec) if x is not None else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium", default=os.path.join(ROOT, "target/release/atrium"))
    ap.add_argument("--seconds", type=int, default=15, help="duration of each wrk run")
    ap.add_argument("--density", type=int, default=1000, help="idle deployments (0: skip)")
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-atrium", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    csv = DIGITS if os.path.exists(DIGITS) else DIGITS_FALLBACK
    csv = os.path.normpath(csv)
    # Ctrl-C / SIGTERM / SIGHUP end the run through the cleanup below (SIGINT too when the
    # script was started in the background, where it would otherwise be ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(cleanup)

    tmp = tempfile.mkdtemp(prefix="atrium-serve-bench-")
    lua = os.path.join(tmp, "post.lua")
    body_path = os.path.join(tmp, "body.json")
    body, label = request_body(csv)
    with open(body_path, "w") as f:
        f.write(body)
    with open(lua, "w") as f:
        f.write(f'local f = assert(io.open("{body_path}", "rb"))\n'
                'wrk.method = "POST"\n'
                'wrk.body = f:read("*a")\n'
                'f:close()\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
    wrk_log = os.path.join(tmp, "wrk.log")
    results = {"csv": csv, "row_label": label, "seconds": a.seconds, "body": json.loads(body),
               "peer": None, "atrium": None, "density": None, "check": {}}
    peer = server = None
    try:
        # both servers up, each answer checked, then the load: the peer, then Atrium
        if not a.skip_peer:
            peer = Peer(tmp, csv)
            results["peer_model"] = peer.info
        if not a.skip_atrium:
            server = Atrium(a.atrium, os.path.join(tmp, "data"))
            run = atrium_setup(server, csv)
            results["atrium_run"] = run
        classes = {}
        if peer:
            classes["peer"], results["check"]["peer"] = check(
                "peer", peer.url + "/invocations", body)
        if server:
            classes["atrium"], results["check"]["atrium"] = check(
                "atrium", server.url + "/endpoints/digits/invocations", body)
        print(f"check  row 0 (label {label}): predicted " +
              ", ".join(f"{k} {v}" for k, v in classes.items()), file=sys.stderr, flush=True)
        if len(set(classes.values())) > 1:
            raise SystemExit(f"the two servers disagree on row 0: {classes}")
        if peer:
            results["peer"] = load("peer", peer.url + "/invocations", lua, a.seconds, wrk_log)
            peer.stop()
            peer = None
        if server:
            results["atrium"] = load("atrium", server.url + "/endpoints/digits/invocations",
                                     lua, a.seconds, wrk_log)
            if a.density > 0:
                results["density"] = density(server, run, a.density, body)
    finally:
        if peer:
            peer.stop()
        if server:
            server.stop()
        cleanup()
        if a.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    at16 = next((r for r in results["atrium"] or [] if r["connections"] == 16), None)
    pe16 = next((r for r in results["peer"] or [] if r["connections"] == 16), None)
    if at16 and pe16:
        results["ratio_rps_16"] = at16["rps"] / pe16["rps"]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)

    print(f"\ndigits: one row per request (MLflow dataframe_split, {len(body)} bytes); wrk "
          f"--latency, {a.seconds} s per run after a 2 s warm-up; peer: mlflow models serve "
          f"--workers 2 --env-manager local (OMP/OPENBLAS threads 1); atrium: endpoint with "
          f"2 instances of scorer-tabular; {os.cpu_count()} CPUs, wrk on the same machine\n")
    print("| server | connections | req/s | p50 ms | p99 ms | non-2xx | socket errors |")
    print("|---|---|---|---|---|---|---|")
    for name, key in (("peer (mlflow models serve --workers 2)", "peer"),
                      ("Atrium (scorer-tabular)", "atrium")):
        for r in results[key] or []:
            print(f"| {name} | {r['connections']} | {r['rps']:.1f} | {r['p50_ms']:.3f} "
                  f"| {r['p99_ms']:.3f} | {r['non_2xx']} | {sum(r['socket_errors'].values())} |")
    print()
    if at16 and pe16:
        ratio = results["ratio_rps_16"]
        print(f"- Atrium req/s ÷ peer req/s at 16 connections: {ratio:.1f}× (bar ≥ 100×: "
              f"{'met' if ratio >= 100 else 'NOT met'})")
    if at16:
        print(f"- Atrium p99 at 16 connections: {at16['p99_ms']:.3f} ms (bar ≤ 5 ms: "
              f"{'met' if at16['p99_ms'] <= 5 else 'NOT met'})")
    d = results["density"]
    if d:
        print(f"- density: {d['n']} idle deployments (1 instance each): VmRSS "
              f"{d['rss_before_mib']:.1f} → {d['rss_after_mib']:.1f} MiB, "
              f"{d['mib_per_deployment']:.3f} MiB per deployment; created in "
              f"{d['create_s']:.1f} s")
        print(f"- after a restart ({d['restart_s'] * 1e3:.0f} ms to listening, VmRSS "
              f"{d['rss_after_restart_mib']:.1f} MiB with every endpoint cold): first request "
              f"to d0000 {d['cold_ms']:.1f} ms (cold), second {d['warm_ms']:.2f} ms (warm)"
              + (f"; first request to d0001 {d['cold_second_endpoint_ms']:.1f} ms"
                 if d["cold_second_endpoint_ms"] is not None else ""))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        cleanup()
        raise SystemExit("interrupted")
