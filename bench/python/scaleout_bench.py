"""Scale-out: two `atrium serve` replicas on one PostgreSQL against one, and the storage-s3
datastore against boto3 straight to the same SeaweedFS. In one script, on one machine:

- ingest: the same client load (P processes, each logging B batches of 100 metrics to its own
  run, with an Idempotency-Key per batch) through one replica, then spread over two;
- artifacts: a file uploaded and downloaded through Atrium (an S3 default datastore on the
  built-in storage-s3 plugin: a streamed PUT, a streamed GET hashed as it arrives) and through
  boto3 to the same bucket (upload_file, its default multipart transfer with 10 threads;
  get_object streamed and hashed the same way); best of 3;
- endpoint: requests/s of one iris deployment under wrk through one replica, then through two
  (two wrk processes, half the connections each, summed).

    bench/scaleout.sh [--atrium target/release/atrium] [--processes 8] [--batches 150]
                      [--sizes 64,256] [--seconds 10]

One JSON line per case."""

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from dispatch_bench import call, free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEY = "YXRyaXVtLXJlcGxpY2EtdGVzdC1tYXN0ZXIta2V5ISE="  # 32 bytes, base64: the replicas' shared key
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAtc"]


def psql(sql):
    subprocess.run(PG_ADMIN + [sql], check=True, stdout=subprocess.DEVNULL)


class Db:
    def __init__(self):
        self.name = f"atrium_bench_{os.getpid()}_{int(time.time() * 1000)}"
        psql(f"CREATE DATABASE {self.name}")
        self.url = f"postgres://postgres@127.0.0.1:5432/{self.name}"

    def drop(self):
        psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class Host:
    """One replica: its own data directory, the shared database and master key."""

    def __init__(self, binary, db, name):
        self.data = tempfile.mkdtemp(prefix=f"atrium-bench-{name}-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, ATRIUM_MASTER_KEY=KEY, ATRIUM_LOG="warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}",
             "--database-url", db.url, "--replica", name, "--job-slots", "1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.data, "log"), "w"), env=env)
        for _ in range(1200):
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit(f"replica {name} did not start; see {self.data}/log")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def token_of(hosts):
    for h in hosts:
        p = os.path.join(h.data, "admin.token")
        if os.path.exists(p):
            return open(p).read().strip()
    raise SystemExit("no admin token")


def start(binary, n):
    db = Db()
    hosts = [Host(binary, db, "a")]  # the first one migrates and makes the admin
    hosts += [Host(binary, db, chr(ord("a") + i)) for i in range(1, n)]
    return db, hosts, token_of(hosts)


def stop(db, hosts):
    for h in hosts:
        h.stop()
    db.drop()


# ---------------------------------------------------------------- ingest

def ingest_client(args):
    urls, token, idx, batches = args
    import http.client
    conns = [http.client.HTTPConnection(u.split("//")[1], timeout=60) for u in urls]

    def post(i, path, body, headers=None):
        c = conns[i % len(conns)]
        h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, json.dumps(body), h)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data[:200]}")
        return json.loads(data or b"{}")

    exp = post(idx, "/api/2.0/mlflow/experiments/create", {"name": f"ingest-{idx}-{uuid.uuid4().hex}"})
    run = post(idx, "/api/2.0/mlflow/runs/create",
               {"experiment_id": exp["experiment_id"], "start_time": 1})["run"]["info"]["run_id"]
    for b in range(batches):
        metrics = [{"key": f"m{k}", "value": float(b * 10 + s), "timestamp": 1000 + b, "step": b * 10 + s}
                   for k in range(10) for s in range(10)]
        post(idx + b, "/api/2.0/mlflow/runs/log-batch", {"run_id": run, "metrics": metrics},
             {"Idempotency-Key": f"{idx}-{b}"})
    return batches * 100


def ingest(binary, replicas, processes, batches):
    db, hosts, token = start(binary, replicas)
    try:
        urls = [h.url for h in hosts]
        with multiprocessing.Pool(processes) as pool:
            pool.map(ingest_client, [(urls, token, i, 2) for i in range(processes)])  # warm-up
            t0 = time.perf_counter()
            n = sum(pool.map(ingest_client, [(urls, token, i, batches) for i in range(processes)]))
            secs = time.perf_counter() - t0
        return {"case": "ingest", "replicas": replicas, "processes": processes,
                "metrics": n, "seconds": round(secs, 2), "metrics_per_s": round(n / secs)}
    finally:
        stop(db, hosts)


# ---------------------------------------------------------------- artifacts

def weed(cmd, work):
    env = dict(os.environ, SEAWEEDFS_S3_PORT="8533", SEAWEEDFS_MASTER_PORT="9533",
               SEAWEEDFS_VOLUME_PORT="9540", SEAWEEDFS_FILER_PORT="8988",
               SEAWEEDFS_ADMIN_PORT="23746")
    subprocess.run([os.path.join(ROOT, "scripts/engines/seaweedfs.sh"), cmd, work], check=True,
                   env=env, stdout=subprocess.DEVNULL)


def s3_client(env):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], aws_access_key_id=env["S3_ACCESS_KEY"],
                        aws_secret_access_key=env["S3_SECRET_KEY"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


def artifacts(binary, sizes, env):
    s3 = s3_client(env)
    bucket = f"bench-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    db, hosts, token = start(binary, 1)
    out = []
    try:
        ws = hosts[0].url + "/api/v1/workspaces/default"
        for name, key in (("s3-access-key", "S3_ACCESS_KEY"), ("s3-secret-key", "S3_SECRET_KEY")):
            call(ws + f"/secrets/{name}", token, "PUT", {"value": env[key]})
        host = env["S3_ENDPOINT"].split("//")[1]
        call(ws + "/datastores/s3", token, "PUT", {
            "component": "storage-s3", "config": {"endpoint": env["S3_ENDPOINT"], "bucket": bucket},
            "http": [host], "http_private": True, "secrets": ["s3-access-key", "s3-secret-key"],
            "default": True})
        base = hosts[0].url
        exp = call(base + "/api/2.0/mlflow/experiments/create", token, "POST", {"name": "artifacts"})
        run = call(base + "/api/2.0/mlflow/runs/create", token, "POST",
                   {"experiment_id": exp["experiment_id"], "start_time": 1})["run"]["info"]["run_id"]
        tmp = tempfile.mkdtemp()
        for mib in sizes:
            path = os.path.join(tmp, f"{mib}.bin")
            with open(path, "wb") as f:
                for _ in range(mib):
                    f.write(os.urandom(1 << 20))
            size = mib << 20
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
            import http.client
            times = {}
            for rep in range(3):
                # Atrium: streamed PUT, streamed GET
                c = http.client.HTTPConnection(base.split("//")[1], timeout=600)
                t0 = time.perf_counter()
                with open(path, "rb") as f:
                    c.request("PUT", f"/api/v1/workspaces/default/runs/{run}/artifacts/f{mib}-{rep}.bin", f,
                              {"Authorization": f"Bearer {token}", "Content-Length": str(size)})
                    r = c.getresponse()
                    body = json.loads(r.read())
                times.setdefault("atrium_up", []).append(time.perf_counter() - t0)
                assert body.get("digest") == digest, body
                t0 = time.perf_counter()
                c.request("GET", f"/api/v1/workspaces/default/runs/{run}/artifacts/f{mib}-{rep}.bin",
                          headers={"Authorization": f"Bearer {token}"})
                r = c.getresponse()
                h = hashlib.sha256()
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
                times.setdefault("atrium_down", []).append(time.perf_counter() - t0)
                assert h.hexdigest() == digest
                # boto3 straight to the store (hashing the download too, as the client above)
                t0 = time.perf_counter()
                s3.upload_file(path, bucket, f"direct/{mib}-{rep}.bin")
                times.setdefault("boto3_up", []).append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                h = hashlib.sha256()
                for chunk in s3.get_object(Bucket=bucket, Key=f"direct/{mib}-{rep}.bin")["Body"].iter_chunks(1 << 20):
                    h.update(chunk)
                times.setdefault("boto3_down", []).append(time.perf_counter() - t0)
                assert h.hexdigest() == digest
            best = {k: min(v) for k, v in times.items()}
            mbps = {k: round(mib / v, 1) for k, v in best.items()}
            out.append({"case": "artifacts", "mib": mib, "mib_per_s": mbps,
                        "upload_ratio": round(mbps["atrium_up"] / mbps["boto3_up"], 2),
                        "download_ratio": round(mbps["atrium_down"] / mbps["boto3_down"], 2)})
            print(json.dumps(out[-1]), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    finally:
        stop(db, hosts)


# ---------------------------------------------------------------- endpoint

LUA = """wrk.method = "POST"
wrk.body = '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
"""


def wrk_rps(url, lua, threads, conns, seconds):
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "-s", lua,
                          url + "/endpoints/iris/score"], capture_output=True, text=True, check=True).stdout
    rps = [l for l in out.splitlines() if l.startswith("Requests/sec:")]
    errors = [l for l in out.splitlines() if "Non-2xx" in l]
    if errors:
        raise SystemExit(f"wrk saw errors: {errors}")
    return float(rps[0].split()[1])


def endpoint(binary, replicas, seconds, env, conns=16):
    s3 = s3_client(env)
    bucket = f"bench-ep-{replicas}-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    db, hosts, token = start(binary, replicas)
    try:
        ws = hosts[0].url + "/api/v1/workspaces/default"
        for name, key in (("s3-access-key", "S3_ACCESS_KEY"), ("s3-secret-key", "S3_SECRET_KEY")):
            call(ws + f"/secrets/{name}", token, "PUT", {"value": env[key]})
        call(ws + "/datastores/s3", token, "PUT", {
            "component": "storage-s3", "config": {"endpoint": env["S3_ENDPOINT"], "bucket": bucket},
            "http": [env["S3_ENDPOINT"].split("//")[1]], "http_private": True,
            "secrets": ["s3-access-key", "s3-secret-key"], "default": True})
        iris = open(os.path.join(ROOT, "tests/data/iris.csv"), "rb").read()
        req = urllib.request.Request(ws + "/datasets/iris/versions", data=iris, method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
        urllib.request.urlopen(req).read()
        job = call(ws + "/jobs", token, "POST", {
            "type": "train", "name": "iris", "experiment": "iris",
            "train": {"dataset": "iris:1", "target": "target", "task": "classification",
                      "model": {"family": "mlp", "hidden": [16]}, "epochs": 5, "seed": 7}})
        while True:
            j = call(ws + f"/jobs/{job['id']}", token)
            if j["state"] in ("Completed", "Failed", "Canceled"):
                break
            time.sleep(0.2)
        assert j["state"] == "Completed", j
        key = call(ws + "/endpoints/iris", token, "PUT", {})["key"]
        call(ws + "/endpoints/iris/deployments/blue", token, "PUT",
             {"model": f"runs:/{j['run_id']}/model", "instances": 2})
        for h in hosts:  # warm on every replica (the change reaches the others)
            for _ in range(300):
                v = call(h.url + "/api/v1/workspaces/default/endpoints/iris", token)
                if v["state"]["blue"]["state"] == "warm":
                    break
                time.sleep(0.1)
        lua = os.path.join(tempfile.mkdtemp(), "score.lua")
        open(lua, "w").write(LUA.replace("KEY", key))
        wrk_rps(hosts[0].url, lua, 1, 4, 2)  # warm-up
        per = conns // replicas
        procs = [subprocess.Popen(["wrk", "-t1", f"-c{per}", f"-d{seconds}s", "-s", lua,
                                   h.url + "/endpoints/iris/score"], stdout=subprocess.PIPE, text=True)
                 for h in hosts]
        total = 0.0
        for p in procs:
            out, _ = p.communicate()
            if "Non-2xx" in out:
                raise SystemExit(f"wrk saw errors:\n{out}")
            total += float([l for l in out.splitlines() if l.startswith("Requests/sec:")][0].split()[1])
        return {"case": "endpoint", "replicas": replicas, "connections": conns, "seconds": seconds,
                "requests_per_s": round(total)}
    finally:
        stop(db, hosts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium", default="target/release/atrium")
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--sizes", default="64,256")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--only", default="ingest,artifacts,endpoint")
    a = ap.parse_args()
    binary = os.path.abspath(a.atrium)
    only = a.only.split(",")
    if "ingest" in only:
        for n in (1, 2):
            print(json.dumps(ingest(binary, n, a.processes, a.batches)), flush=True)
    if "artifacts" in only or "endpoint" in only:
        work = tempfile.mkdtemp(prefix="atrium-bench-s3-")
        weed("start", work)
        try:
            env = dict(l.split("=", 1) for l in open(os.path.join(work, "env")).read().split())
            if "artifacts" in only:
                artifacts(binary, [int(s) for s in a.sizes.split(",")], env)
            if "endpoint" in only:
                for n in (1, 2):
                    print(json.dumps(endpoint(binary, n, a.seconds, env)), flush=True)
        finally:
            weed("stop", work)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
