"""The client itself: where it connects (the CLI's order), errors as exceptions, retries on
connection errors and 503 only, timeouts; and the route table against the OpenAPI document."""

from __future__ import annotations

import dataclasses
import http.server
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

import atrium
from atrium import _config, models
from atrium._routes import BODY, QUERY, ROUTES, UNDOCUMENTED


# --- where the client connects -------------------------------------------------------------

def test_resolution_follows_the_cli_order(tmp_path):
    profile = tmp_path / "cfg" / "atrium" / "config.toml"
    profile.parent.mkdir(parents=True)
    profile.write_text('default_server = "http://saved:1"\n[servers."http://saved:1"]\n'
                       'token = "from-profile"\nworkspace = "team-a"\n')
    data = tmp_path / "data"
    data.mkdir()
    (data / "admin.token").write_text("from-data-dir\n")
    tok = tmp_path / "tok"
    tok.write_text("from-file\n")
    base = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "ATRIUM_DATA_DIR": str(data)}
    r = _config.resolve(token="from-arg", environ={**base, "ATRIUM_TOKEN": "from-env"})
    assert r.token == "from-arg"
    r = _config.resolve(environ={**base, "ATRIUM_TOKEN": "from-env", "ATRIUM_TOKEN_FILE": str(tok)})
    assert (r.token, r.token_source) == ("from-env", "ATRIUM_TOKEN")
    assert _config.resolve(environ={**base, "ATRIUM_TOKEN_FILE": str(tok)}).token == "from-file"
    r = _config.resolve(environ=base)
    assert (r.server, r.workspace, r.token) == ("http://saved:1", "team-a", "from-profile")
    r = _config.resolve("http://other:2/", environ={**base, "ATRIUM_WORKSPACE": "w"})
    assert (r.server, r.workspace, r.token) == ("http://other:2", "w", "from-data-dir")
    r = _config.resolve(environ={"HOME": str(tmp_path / "nohome"), "ATRIUM_DATA_DIR": str(tmp_path / "none")})
    assert r.server == "http://127.0.0.1:8080" and r.workspace == "default" and r.token is None
    assert any("admin.token" in x for x in r.looked)
    with pytest.raises(ValueError):
        _config.resolve(environ={"ATRIUM_TOKEN_FILE": str(tmp_path / "missing")})


def test_the_client_finds_the_data_dirs_admin_token(server, tmp_path, monkeypatch):
    data = tmp_path / "atrium-data"
    data.mkdir()
    (data / "admin.token").write_text(os.environ["ATRIUM_TOKEN"] + "\n")
    monkeypatch.delenv("ATRIUM_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    c = atrium.Client(server)
    assert "atrium-data" in c.token_source
    assert c.whoami()["user"] == "admin"
    anon = atrium.Client(server, token=None, workspace="default")
    monkeypatch.setenv("ATRIUM_DATA_DIR", str(tmp_path / "none"))
    anon = atrium.Client(server)
    assert anon.token is None
    with pytest.raises(atrium.Unauthenticated) as e:
        anon.experiments.list()
    assert e.value.status == 401 and "found no API token" in str(e.value)
    assert "none/admin.token" in str(e.value)
    with pytest.raises(atrium.Unauthenticated) as e:
        atrium.Client(server, token="atk_not_a_token").whoami()
    assert "the token argument" in str(e.value)


def test_objects_print_and_keep_the_whole_answer(client):
    w = client.workspaces.get()
    assert repr(w).startswith("Workspace(name='default'")
    assert w["name"] == "default" and w.to_dict() == w.raw
    assert repr(client).startswith("Client(url=")


# --- errors, retries, timeouts ------------------------------------------------------------

class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 (with Retry-After: 0) `fail` times, then 200; counts the requests."""

    fail = 0
    seen = 0
    status = 503
    delay = 0.0

    def do_GET(self):  # noqa: N802 - the stdlib's name
        type(self).seen += 1
        if self.delay:
            time.sleep(self.delay)
        if type(self).seen <= type(self).fail:
            code = b"TEMPORARILY_UNAVAILABLE" if type(self).status == 503 else b"INTERNAL_ERROR"
            body = b'{"error_code": "' + code + b'", "message": "database unreachable"}'
            self.send_response(type(self).status)
            self.send_header("Retry-After", "0")
        else:
            body = b'{"user": "admin"}'
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def _handler(**kw):
    return type("H", (_Flaky,), {"seen": 0, **kw})


def test_503_is_retried_with_backoff_then_raised():
    h = _handler(fail=2)
    srv, url = _serve(h)
    try:
        c = atrium.Client(url, "t")
        assert c.whoami() == {"user": "admin"} and h.seen == 3
        h2 = _handler(fail=100)
        srv2, url2 = _serve(h2)
        c2 = atrium.Client(url2, "t", retries=2)
        with pytest.raises(atrium.Unavailable) as e:
            c2.whoami()
        assert h2.seen == 3 and e.value.code == "TEMPORARILY_UNAVAILABLE" and e.value.status == 503
        srv2.shutdown()
    finally:
        srv.shutdown()


def test_other_errors_are_not_retried():
    h = _handler(fail=100, status=500)
    srv, url = _serve(h)
    try:
        with pytest.raises(atrium.ServerError):
            atrium.Client(url, "t").whoami()
        assert h.seen == 1
    finally:
        srv.shutdown()


def test_connection_errors_are_retried_then_raised():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(atrium.ConnectionFailed) as e:
        atrium.Client(f"http://127.0.0.1:{port}", "t", retries=2).whoami()
    assert "cannot reach" in str(e.value) and time.monotonic() - t0 >= 0.3


def test_a_timeout_raises_connection_failed():
    h = _handler(delay=2.0)
    srv, url = _serve(h)
    try:
        with pytest.raises(atrium.ConnectionFailed) as e:
            atrium.Client(url, "t", timeout=0.3).whoami()
        assert "in time" in str(e.value)
    finally:
        srv.shutdown()


# --- the route table and the models against the OpenAPI document -------------------------

def _resolve_schema(doc, s):
    while isinstance(s, dict) and "$ref" in s:
        s = doc["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]]
    return s


def _properties(doc, s, seen=None):
    """Every property name of a schema, through $ref, allOf/anyOf/oneOf."""
    s = _resolve_schema(doc, s)
    out = set((s or {}).get("properties", {}))
    for k in ("allOf", "anyOf", "oneOf"):
        for sub in (s or {}).get(k, []):
            out |= _properties(doc, sub)
    return out


def test_every_route_of_the_sdk_is_in_the_openapi_document(client):
    doc = client.openapi()
    for name, (method, path) in ROUTES.items():
        if name in UNDOCUMENTED:
            continue
        item = doc["paths"].get(path)
        assert item is not None, f"{name}: {path} is not in the document"
        op = item.get(method.lower())
        assert op is not None, f"{name}: {method} {path} is not in the document"
        declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        missing = QUERY.get(name, set()) - declared
        assert not missing, f"{name}: query parameters {missing} are not declared ({declared})"
        path_params = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
        assert path_params == set(re.findall(r"\{(\w+)\}", path)), f"{name}: {path_params}"


def test_every_model_field_is_in_its_schema(client):
    doc = client.openapi()
    schemas = doc["components"]["schemas"]
    for cls in vars(models).values():
        if not (isinstance(cls, type) and issubclass(cls, models.Record) and cls.schema):
            continue
        assert cls.schema in schemas, f"{cls.__name__}: no schema {cls.schema}"
        props = _properties(doc, schemas[cls.schema])
        for f in dataclasses.fields(cls):
            if f.name == "raw" or f.name in cls.undocumented:
                continue
            key = f.metadata.get("json", f.name)
            assert key in props, f"{cls.__name__}.{f.name}: {key} is not a property of {cls.schema} ({sorted(props)})"


#: The class each route's answer is read into (checked against the route's response schema).
RESPONSES = {
    "workspaces.get": models.Workspace, "workspaces.put": models.Workspace,
    "experiments.get": models.Experiment, "experiments.create": models.Experiment,
    "runs.get": models.Run, "runs.create": models.Run, "runs.update": models.Run,
    "datasets.upload": models.DatasetVersion, "datasets.get": models.DatasetVersion,
    "jobs.get": models.Job, "jobs.submit": models.Job, "jobs.cancel": models.Job,
    "jobs.trials": models.Leaderboard,
    "models.get": models.RegisteredModel, "models.update": models.RegisteredModel,
    "models.register": models.ModelVersion, "models.version": models.ModelVersion,
    "endpoints.get": models.Endpoint, "endpoints.put": models.Endpoint,
    "endpoints.deploy": models.Endpoint, "endpoints.traffic": models.Endpoint,
    "environments.create": models.Environment, "environments.get": models.Environment,
    "compute.get": models.ComputeTarget, "compute.put": models.ComputeTarget,
    "pipelines.publish": models.Pipeline, "pipelines.get": models.Pipeline,
    "pipelines.run": models.PipelineRun, "pipeline_runs.get": models.PipelineRun,
    "pipeline_runs.rerun": models.PipelineRun, "pipeline_runs.cancel": models.PipelineRun,
    "schedules.put": models.Schedule, "schedules.get": models.Schedule,
    "schedules.enable": models.Schedule, "schedules.disable": models.Schedule,
    "components.push": models.Component, "components.get": models.Component,
    "datastores.put": models.Datastore, "datastores.get": models.Datastore,
    "datastores.set_default": models.Datastore,
    "secrets.put": models.Secret, "secrets.get": models.Secret,
    "roles.put": models.RoleAssignment,
}


def test_each_answer_is_read_into_the_class_of_its_schema(client):
    doc = client.openapi()
    for name, cls in RESPONSES.items():
        method, path = ROUTES[name]
        op = doc["paths"][path][method.lower()]
        refs = {
            c["schema"].get("$ref", "").rsplit("/", 1)[-1]
            for code, r in op["responses"].items() if code != "default"
            for c in r.get("content", {}).values() if isinstance(c.get("schema"), dict)
        }
        assert refs == {cls.schema}, f"{name}: answers {refs}, the SDK reads {cls.__name__} ({cls.schema})"


def test_the_installed_package_is_typed():
    import subprocess
    import sys

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(pyproject), "-p", "atrium"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues found" in r.stdout


def test_every_body_key_the_sdk_sends_is_in_the_request_schema(client):
    doc = client.openapi()
    for name, keys in BODY.items():
        method, path = ROUTES[name]
        content = doc["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
        assert "application/json" in content, f"{name} takes no JSON body ({list(content)})"
        props = _properties(doc, content["application/json"]["schema"])
        assert keys <= props, f"{name}: {sorted(keys - props)} are not in the request schema ({sorted(props)})"


def test_the_tables_name_every_body_and_query_the_client_sends():
    import ast

    import atrium.client

    tree = ast.parse(Path(atrium.client.__file__).read_text())
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in ROUTES):
            continue
        route, kws = node.args[0].value, {k.arg for k in node.keywords}
        if route in UNDOCUMENTED:
            continue
        if "json" in kws:
            assert route in BODY, f"{route} sends a JSON body the BODY table does not list"
        if "query" in kws:
            assert route in QUERY, f"{route} sends a query the QUERY table does not list"


def test_pandas_is_optional():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import atrium\n"
        "b = atrium.Leaderboard.from_json({'trials': []})\n"
        "try:\n"
        "    b.to_pandas()\n"
        "except ImportError as e:\n"
        "    print('hint:', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "pip install 'atrium[pandas]'" in r.stdout
