"""``Client``: one object for a workspace, with a sub-API per capability (``client.jobs``,
``client.models``, ...). Map: ``_config`` resolves where to connect, ``_http`` sends (retries,
errors), ``_routes`` names every route, ``models`` holds the typed answers, ``specs`` builds job
specs, and the classes below turn calls into routes."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import IO, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Type, TypeVar, Union

from . import errors
from ._config import resolve
from ._http import Transport
from .models import (AuditEntry, Component, ComputeTarget, Datastore, DatasetVersion, Endpoint,
                     Environment, Experiment, Job, Leaderboard, ModelVersion, Pipeline,
                     PipelineRun, RegisteredModel, RoleAssignment, Run, Schedule, Secret,
                     Trial, Workspace, _pandas)
from ._model import Record
from .specs import _drop_none

R = TypeVar("R", bound=Record)

PathLike = Union[str, os.PathLike]


class _Api:
    """A sub-API bound to the client (and so to its workspace)."""

    def __init__(self, client: "Client") -> None:
        self._c = client

    def _p(self, **kw: Any) -> Dict[str, Any]:
        return {"ws": self._c.workspace, **kw}

    def _json(self, route: str, **kw: Any) -> Any:
        return self._c._t.json(route, **kw)

    def _paged(self, route: str, key: str, cls: Type[R], *, max_results: Optional[int] = None,
               query: Optional[Dict[str, Any]] = None,
               body: Optional[Dict[str, Any]] = None) -> List[R]:
        """Every item of a paged list (``next_page_token`` followed), read as `cls`; stops once
        `max_results` are in. The page token goes in the JSON `body` when given, else the query."""
        out: List[R] = []
        token = None
        while True:
            if body is not None:
                page = self._json(route, params=self._p(), json=_drop_none({**body, "page_token": token}))
            else:
                page = self._json(route, params=self._p(), query={**(query or {}), "page_token": token})
            out += [cls.from_json(x) for x in page.get(key, [])]
            token = page.get("next_page_token")
            if not token or (max_results and len(out) >= max_results):
                return out


def _split_ref(ref: str, sep: str = ":") -> tuple:
    name, _, version = ref.partition(sep)
    return name, version or "latest"


def _is_dataframe(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, "to_csv")


def _frame_payload(rows: Any) -> Dict[str, Any]:
    """MLflow's ``dataframe_split`` for a DataFrame, ``dataframe_records`` for a list of dicts."""
    if _is_dataframe(rows):
        return {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    if isinstance(rows, Mapping):
        if "dataframe_split" in rows or "dataframe_records" in rows:
            return dict(rows)
        return {"dataframe_records": [dict(rows)]}
    return {"dataframe_records": [dict(r) for r in rows]}


class Workspaces(_Api):
    """Workspaces: list, get, create or update, delete."""

    def list(self) -> List[Workspace]:
        """The workspaces you hold a role on (admins: all)."""
        return [Workspace.from_json(w) for w in self._json("workspaces.list")["workspaces"]]

    def get(self, name: Optional[str] = None) -> Workspace:
        """A workspace (default: the client's)."""
        return Workspace.from_json(self._json("workspaces.get", params={"ws": name or self._c.workspace}))

    def create(self, name: str, description: str = "", anonymous_read: Optional[bool] = None) -> Workspace:
        """Creates a workspace (admins) or updates it (Owner)."""
        body: Dict[str, Any] = {"description": description}
        if anonymous_read is not None:
            body["anonymous_read"] = anonymous_read
        return Workspace.from_json(self._json("workspaces.put", params={"ws": name}, json=body))

    def delete(self, name: str) -> None:
        """Deletes a workspace with everything in it."""
        self._json("workspaces.delete", params={"ws": name})


class Experiments(_Api):
    """Experiments: search with the filter language, create, update, delete, restore."""

    def list(self, filter: Optional[str] = None, order_by: Optional[Sequence[str]] = None,
             view: Optional[str] = None, max_results: Optional[int] = None) -> List[Experiment]:
        """Every experiment matching `filter` (pages followed)."""
        return self._paged("experiments.list", "experiments", Experiment, max_results=max_results, query={
            "filter": filter, "order_by": list(order_by) if order_by else None, "view": view,
            "max_results": max_results})

    def get(self, id_or_name: str) -> Experiment:
        """An experiment by id, or by name."""
        try:
            return Experiment.from_json(self._json("experiments.get", params=self._p(id=id_or_name)))
        except errors.NotFound:
            found = [e for e in self.list(filter=f"name = '{_quote(id_or_name)}'") if e.name == id_or_name]
            if not found:
                raise
            return found[0]

    def create(self, name: str, tags: Optional[Mapping[str, str]] = None,
               artifact_datastore: Optional[str] = None) -> Experiment:
        """Creates an experiment."""
        body: Dict[str, Any] = {"name": name, "tags": dict(tags or {})}
        if artifact_datastore is not None:
            body["artifact_datastore"] = artifact_datastore
        return Experiment.from_json(self._json("experiments.create", params=self._p(), json=body))

    def update(self, id: str, **changes: Any) -> Experiment:
        """Renames, tags or moves an experiment's artifacts (``name=``, ``tags=``, ...)."""
        return Experiment.from_json(self._json("experiments.update", params=self._p(id=id), json=changes))

    def delete(self, id: str) -> None:
        """Deletes an experiment (restorable)."""
        self._json("experiments.delete", params=self._p(id=id))

    def restore(self, id: str) -> Experiment:
        """Restores a deleted experiment."""
        return Experiment.from_json(self._json("experiments.restore", params=self._p(id=id)))


def _quote(s: str) -> str:
    return s.replace("'", "\\'")


class Runs(_Api):
    """Runs: search with the filter language, get, metric history, log, artifacts."""

    def search(self, experiment_ids: Union[str, Sequence[str], None] = None,
               filter: Optional[str] = None, order_by: Optional[Sequence[str]] = None,
               view: Optional[str] = None, max_results: Optional[int] = None) -> List[Run]:
        """Runs matching `filter` (e.g. ``"metrics.acc > 0.9 and params.opt = 'adam'"``)."""
        if isinstance(experiment_ids, (str, int)):
            experiment_ids = [experiment_ids]
        return self._paged("runs.search", "runs", Run, max_results=max_results, body={
            "experiment_ids": list(experiment_ids) if experiment_ids else None,
            "filter": filter, "order_by": list(order_by) if order_by else None,
            "view": view, "max_results": max_results})

    def to_pandas(self, runs: Iterable[Run]) -> Any:
        """Runs as a DataFrame: run_id, name, status, ``metrics.*``, ``params.*``, ``tags.*``."""
        pd = _pandas()
        rows = []
        for r in runs:
            row: Dict[str, Any] = {"run_id": r.run_id, "name": r.name, "status": r.status,
                                   "start_time": r.start_time}
            row.update({f"metrics.{k}": v for k, v in r.values.items()})
            row.update({f"params.{k}": v for k, v in r.params.items()})
            row.update({f"tags.{k}": v for k, v in r.tags.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def get(self, run_id: str) -> Run:
        """A run with its params, latest metrics and tags."""
        return Run.from_json(self._json("runs.get", params=self._p(id=run_id)))

    def create(self, experiment_id: str, name: Optional[str] = None,
               tags: Optional[Mapping[str, str]] = None) -> Run:
        """Creates a run."""
        body = {"experiment_id": experiment_id, "tags": dict(tags or {})}
        if name:
            body["name"] = name
        return Run.from_json(self._json("runs.create", params=self._p(), json=body))

    def log(self, run_id: str, metrics: Union[Mapping[str, float], Sequence[Mapping[str, Any]], None] = None,
            params: Optional[Mapping[str, Any]] = None, tags: Optional[Mapping[str, str]] = None,
            step: int = 0) -> None:
        """Logs metrics (``{"acc": 0.9}`` at `step`, or points ``[{key, value, step}]``), params
        and tags, all or nothing."""
        now = int(time.time() * 1000)
        if isinstance(metrics, Mapping):
            points = [{"key": k, "value": _finite(v), "step": step, "timestamp": now} for k, v in metrics.items()]
        else:
            points = [{"timestamp": now, "step": step, **p, "value": _finite(p["value"])} for p in metrics or []]
        body = {"metrics": points, "params": {k: str(v) for k, v in (params or {}).items()},
                "tags": dict(tags or {})}
        self._json("runs.log", params=self._p(id=run_id), json=body)

    def update(self, run_id: str, **changes: Any) -> Run:
        """Updates a run's ``status``, ``end_time`` or ``name``."""
        return Run.from_json(self._json("runs.update", params=self._p(id=run_id), json=changes))

    def delete(self, run_id: str) -> None:
        """Deletes a run (restorable)."""
        self._json("runs.delete", params=self._p(id=run_id))

    def metric_history(self, run_id: str, key: str, max_points: Optional[int] = None) -> List[Dict[str, Any]]:
        """A metric's points (``step``, ``value``, ``timestamp``), downsampled to `max_points`."""
        r = self._json("runs.metric", params=self._p(id=run_id, _key=key), query={"max_points": max_points})
        return r["points"]

    def artifacts(self, run_id: str, path: str = "") -> List[Dict[str, Any]]:
        """The files and directories of a run's artifact directory."""
        return self._json("artifacts.list", params=self._p(id=run_id), query={"path": path or None}).get("files", [])

    def upload_artifact(self, run_id: str, path: str, data: Union[bytes, PathLike, IO[bytes]]) -> None:
        """Uploads one artifact (streamed from a path or file object)."""
        if isinstance(data, (str, os.PathLike)):
            with open(data, "rb") as f:
                self._json("artifacts.put", params=self._p(id=run_id, _path=path), data=f)
            return
        self._json("artifacts.put", params=self._p(id=run_id, _path=path), data=data)

    def download_artifact(self, run_id: str, path: str, dest: Union[PathLike, IO[bytes], None] = None) -> Any:
        """Downloads one artifact (streamed): bytes, or written to `dest`."""
        return self._c._t.download("artifacts.get", dest, params=self._p(id=run_id, _path=path))


def _finite(v: Any) -> Any:
    f = float(v)
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "Infinity" if f > 0 else "-Infinity"
    return f


class Datasets(_Api):
    """Datasets: upload a CSV (a path, bytes or a DataFrame), versions, download (to a DataFrame)."""

    def upload(self, name: str, data: Any, delimiter: Optional[str] = None) -> DatasetVersion:
        """Uploads the next version: a CSV path, CSV bytes, a file object or a pandas DataFrame."""
        if _is_dataframe(data):
            body: Any = data.to_csv(index=False).encode()
        elif isinstance(data, (str, os.PathLike)):
            with open(data, "rb") as f:
                return self._upload(name, f, delimiter)
        else:
            body = data
        return self._upload(name, body, delimiter)

    def _upload(self, name: str, body: Any, delimiter: Optional[str]) -> DatasetVersion:
        r = self._json("datasets.upload", params=self._p(name=name), data=body,
                       query={"delimiter": delimiter}, headers={"Content-Type": "text/csv"})
        return DatasetVersion.from_json(r)

    def list(self, name: Optional[str] = None) -> List[DatasetVersion]:
        """Every dataset version (of `name` only, when given)."""
        r = self._json("datasets.list", params=self._p(), query={"name": name})
        return [DatasetVersion.from_json(d) for d in r.get("datasets", [])]

    def get(self, ref: str, preview: Optional[int] = None) -> DatasetVersion:
        """A version (``"iris:2"``, ``"iris"`` for the latest) with its schema (and `preview` rows)."""
        name, version = _split_ref(ref)
        return DatasetVersion.from_json(self._json(
            "datasets.get", params=self._p(name=name, version=version), query={"preview": preview}))

    def download(self, ref: str, dest: Union[PathLike, IO[bytes], None] = None) -> Any:
        """The version's CSV (streamed): bytes, or written to `dest`."""
        name, version = _split_ref(ref)
        if version == "latest":
            version = str(self.get(ref).version)
        return self._c._t.download("datasets.data", dest, params=self._p(name=name, version=version))

    def to_pandas(self, ref: str) -> Any:
        """The version as a pandas DataFrame."""
        pd = _pandas()
        return pd.read_csv(io.BytesIO(self.download(ref)))

    def delete(self, ref: str) -> None:
        """Deletes a version (refused while a job references it)."""
        name, version = _split_ref(ref)
        self._json("datasets.delete", params=self._p(name=name, version=version))


_ENDED = ("Completed", "Failed", "Canceled")


def _tar_dir(code: PathLike) -> bytes:
    """A tar of `code` (hidden files and ``__pycache__`` skipped)."""
    root = Path(code)
    if not root.is_dir():
        raise ValueError(f"code {root} is not a directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root)
            if any((part.startswith(".") and part not in (".gitignore", ".ignore")) or part == "__pycache__"
                   for part in rel.parts):
                continue
            if p.is_file():
                tar.add(p, arcname=str(rel), recursive=False)
    return buf.getvalue()


_MEDIA = {".toml": "application/toml", ".yaml": "application/yaml", ".yml": "application/yaml",
          ".json": "application/json"}


def _submit_spec(api: _Api, route: str, spec: Union[Mapping[str, Any], PathLike, str],
                 code: Optional[PathLike]) -> Any:
    """Posts a spec (a dict as JSON, or a TOML/YAML/JSON file as it is), as multipart with a
    tar of `code` when given."""
    if isinstance(spec, Mapping):
        text, fname, ctype = json.dumps(dict(spec), allow_nan=False).encode(), "spec.json", "application/json"
    else:
        p = Path(spec)
        if not p.is_file():
            raise ValueError(f"spec {p} is not a file")
        text, fname, ctype = p.read_bytes(), p.name, _MEDIA.get(p.suffix, "text/plain")
    if code is None:
        return api._json(route, params=api._p(), data=text, headers={"Content-Type": ctype})
    files = {"spec": (fname, text, ctype), "code": ("code.tar", _tar_dir(code), "application/x-tar")}
    return api._json(route, params=api._p(), files=files)


class Jobs(_Api):
    """Jobs: submit (a dict, a spec file, or a builder's result), get, list, wait, stream, cancel."""

    def submit(self, spec: Union[Mapping[str, Any], PathLike, str], code: Optional[PathLike] = None) -> Job:
        """Submits a job: a spec dict, or the path of a TOML/YAML/JSON spec file; `code` is a
        directory whose snapshot a command job runs in."""
        return Job.from_json(_submit_spec(self, "jobs.submit", spec, code))

    def get(self, job_id: str) -> Job:
        """A job with its live progress."""
        return Job.from_json(self._json("jobs.get", params=self._p(id=job_id)))

    def list(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Job]:
        """Jobs, newest first."""
        return [Job.from_json(j) for j in self._json("jobs.list", params=self._p(),
                                                     query={"state": state, "limit": limit})["jobs"]]

    def cancel(self, job_id: str) -> Job:
        """Cancels a job (a queued one at once, a running one between batches or by SIGTERM)."""
        return Job.from_json(self._json("jobs.cancel", params=self._p(id=job_id)))

    def logs(self, job_id: str, tail: Optional[int] = None) -> str:
        """The job's log so far (its last `tail` lines)."""
        return self._c._t.call("jobs.logs", params=self._p(id=job_id), query={"tail": tail}).text

    def stream(self, job_id: str, out: Optional[IO[str]] = None, raise_on_failure: bool = True) -> Job:
        """Prints the job's log to `out` (stdout) as it grows, until the job ends; answers the
        ended job (raises :class:`atrium.JobFailed` for Failed or Canceled)."""
        out = out or sys.stdout
        r = self._c._t.call("jobs.logs", params=self._p(id=job_id), query={"follow": True},
                            stream=True, timeout=None)
        with r:
            for chunk in r.iter_content(chunk_size=None, decode_unicode=True):
                out.write(chunk if isinstance(chunk, str) else chunk.decode(errors="replace"))
                out.flush()
        return self.wait(job_id, raise_on_failure=raise_on_failure)

    def wait(self, job_id: str, timeout: Optional[float] = None, poll: float = 0.5,
             raise_on_failure: bool = True) -> Job:
        """Waits for the job to end; answers it (raises :class:`atrium.JobFailed` when it did not
        complete, ``TimeoutError`` after `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = self.get(job_id)
            if j.done:
                if raise_on_failure and j.state != "Completed":
                    raise errors.JobFailed(f"job {j.id} ({j.name}) ended {j.state}: {j.error or 'no reason given'}", j)
                return j
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {j.state} after {timeout} s")
            time.sleep(poll)


class Sweeps(_Api):
    """Sweeps and AutoML: submit, the leaderboard (a list or a DataFrame), the best trial."""

    def submit(self, spec: Union[Mapping[str, Any], PathLike, str], code: Optional[PathLike] = None) -> Job:
        """Submits a sweep or AutoML spec (see :func:`atrium.sweep`, :func:`atrium.automl`)."""
        return self._c.jobs.submit(spec, code=code)

    def leaderboard(self, job_id: str) -> Leaderboard:
        """The leaderboard, live while the sweep runs (``.trials`` best first, ``.to_pandas()``)."""
        return Leaderboard.from_json(self._json("jobs.trials", params=self._p(id=job_id)))

    def trials(self, job_id: str) -> List[Trial]:
        """The trials, best first."""
        return self.leaderboard(job_id).trials

    def to_pandas(self, job_id: str) -> Any:
        """The leaderboard as a DataFrame."""
        return self.leaderboard(job_id).to_pandas()

    def best(self, job_id: str) -> Optional[Trial]:
        """The best trial so far (None before any trial reported)."""
        b = self.leaderboard(job_id)
        if not b.best:
            return None
        return next((t for t in b.trials if t.trial == b.best.get("trial")), None)


def _model_ref(ref: str) -> tuple:
    """``models:/NAME/3``, ``NAME@alias``, ``NAME/latest`` or ``NAME`` -> (name, version path)."""
    r = ref[len("models:/"):] if ref.startswith("models:/") else ref
    if "@" in r:
        name, alias = r.split("@", 1)
        return name, "@" + alias
    if "/" in r:
        name, version = r.rsplit("/", 1)
        return name, version
    return r, "latest"


class Models(_Api):
    """The registry: register (from a run or a directory), versions, aliases, download, predict."""

    def list(self) -> List[RegisteredModel]:
        """Registered models (with aliases and latest version)."""
        return self._paged("models.list", "models", RegisteredModel)

    def get(self, name: str) -> RegisteredModel:
        """A registered model with its versions (``.raw["versions"]``)."""
        return RegisteredModel.from_json(self._json("models.get", params=self._p(name=name)))

    def register(self, name: str, run_id: Optional[str] = None, path: str = "model", *,
                 dir: Optional[PathLike] = None, description: Optional[str] = None,
                 tags: Optional[Mapping[str, str]] = None,
                 aliases: Optional[Sequence[str]] = None) -> ModelVersion:
        """Registers the next version: a run's artifact directory (`run_id`, `path`), or the
        files of a local directory `dir` (streamed)."""
        meta = _drop_none({"description": description, "tags": dict(tags) if tags else None,
                                  "aliases": list(aliases) if aliases else None})
        if dir is None:
            if not run_id:
                raise ValueError("register needs run_id= or dir=")
            r = self._json("models.register", params=self._p(name=name),
                           json={"run_id": run_id, "path": path, **meta})
            return ModelVersion.from_json(r)
        root = Path(dir)
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]
        if not files:
            raise ValueError(f"{root} holds no files")
        handles = [open(p, "rb") for p in files]
        try:
            parts: List[Any] = [("meta", ("meta.json", json.dumps(meta).encode(), "application/json"))] if meta else []
            parts += [("file", (str(p.relative_to(root)), h, "application/octet-stream"))
                      for p, h in zip(files, handles)]
            r = self._json("models.register", params=self._p(name=name), files=parts)
        finally:
            for h in handles:
                h.close()
        return ModelVersion.from_json(r)

    def versions(self, name: str) -> List[ModelVersion]:
        """A model's versions."""
        return [ModelVersion.from_json(v) for v in self._json("models.versions", params=self._p(name=name))["versions"]]

    def version(self, ref: str) -> ModelVersion:
        """A version (``"iris-clf/2"``, ``"iris-clf@champion"``, ``"models:/iris-clf/latest"``) with its files."""
        name, v = _model_ref(ref)
        return ModelVersion.from_json(self._json("models.version", params=self._p(name=name, version=v)))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Points (or moves) an alias at a version."""
        self._json("models.set_alias", params=self._p(name=name, alias=alias), json={"version": int(version)})

    def delete_alias(self, name: str, alias: str) -> None:
        """Removes an alias."""
        self._json("models.delete_alias", params=self._p(name=name, alias=alias))

    def update(self, name: str, **changes: Any) -> RegisteredModel:
        """Renames, describes or tags a model (``name=``, ``description=``, ``tags=``)."""
        return RegisteredModel.from_json(self._json("models.update", params=self._p(name=name), json=changes))

    def delete(self, name: str) -> None:
        """Deletes a model with all its versions."""
        self._json("models.delete", params=self._p(name=name))

    def delete_version(self, ref: str) -> None:
        """Deletes a version."""
        name, v = _model_ref(ref)
        self._json("models.delete_version", params=self._p(name=name, version=v))

    def download(self, ref: str, dest: PathLike) -> Path:
        """Downloads every file of a version into the directory `dest` (streamed); answers it."""
        mv = self.version(ref)
        root = Path(dest)
        for f in mv.files or []:
            target = root / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            self._c._t.download("models.file", str(target),
                                params=self._p(name=mv.name, version=str(mv.version), _path=f["path"]))
        return root

    def predict(self, ref: str, rows: Any) -> Any:
        """Scores rows (a DataFrame, a list of dicts, or one dict) with a version on the server;
        answers a DataFrame (``prediction`` and ``p_<label>`` columns) for a DataFrame, else the
        server's ``{"predictions", "probabilities"}``."""
        name, v = _model_ref(ref)
        r = self._json("models.predict", params=self._p(name=name, version=v), json=_frame_payload(rows))
        return _predictions_frame(r, rows) if _is_dataframe(rows) else r


def _predictions_frame(r: Mapping[str, Any], like: Any) -> Any:
    pd = _pandas()
    df = pd.DataFrame({"prediction": r.get("predictions", [])}, index=like.index)
    probs = r.get("probabilities")
    if probs:
        p = pd.DataFrame(probs, index=like.index)
        p.columns = [f"p_{c}" for c in p.columns]
        df = pd.concat([df, p], axis=1)
    return df


class Endpoints(_Api):
    """Endpoints: create, deploy (warm before traffic moves), traffic, invoke, metrics."""

    def list(self) -> List[Endpoint]:
        """The workspace's endpoints."""
        return [Endpoint.from_json(e) for e in self._json("endpoints.list", params=self._p())["endpoints"]]

    def get(self, name: str) -> Endpoint:
        """An endpoint with its deployments and traffic."""
        return Endpoint.from_json(self._json("endpoints.get", params=self._p(name=name)))

    def create(self, name: str, description: Optional[str] = None, auth_mode: Optional[str] = None) -> Endpoint:
        """Creates (``.key`` holds the key, shown once) or updates an endpoint; the client keeps
        the key for :meth:`invoke`."""
        body = _drop_none({"description": description, "auth_mode": auth_mode})
        e = Endpoint.from_json(self._json("endpoints.put", params=self._p(name=name), json=body))
        if e.key:
            self._c._endpoint_keys[name] = e.key
        return e

    def regenerate_key(self, name: str) -> str:
        """Replaces the endpoint's key; answers the new one (kept for :meth:`invoke`)."""
        r = self._json("endpoints.regenerate_key", params=self._p(name=name))
        self._c._endpoint_keys[name] = r["key"]
        return r["key"]

    def deploy(self, name: str, deployment: str, model: str, *, scorer: Optional[str] = None,
               instances: Optional[int] = None,
               max_concurrent_requests: Optional[int] = None,
               request_timeout_ms: Optional[int] = None,
               scorer_config: Optional[Mapping[str, Any]] = None,
               device: Optional[str] = None) -> Endpoint:
        """Creates or updates a deployment of `model` (``models:/NAME@alias``); answers once it
        is warm. The first deployment of an endpoint takes all traffic. `scorer` is a scorer
        component, ``name`` (its latest version) or ``name@version`` (default: scorer-tabular)."""
        body = _drop_none({
            "model": model, "scorer": scorer,
            "instances": instances, "max_concurrent_requests": max_concurrent_requests,
            "request_timeout_ms": request_timeout_ms,
            "scorer_config": dict(scorer_config) if scorer_config is not None else None,
            "device": device})
        return Endpoint.from_json(self._json("endpoints.deploy", params=self._p(name=name, deployment=deployment),
                                             json=body, timeout=600))

    def undeploy(self, name: str, deployment: str) -> None:
        """Deletes a deployment."""
        self._json("endpoints.undeploy", params=self._p(name=name, deployment=deployment))

    def traffic(self, name: str, traffic: Mapping[str, int], mirror: Optional[Mapping[str, int]] = None) -> Endpoint:
        """Sets the traffic split (percent per deployment, sums to 100) and the mirror."""
        return Endpoint.from_json(self._json("endpoints.traffic", params=self._p(name=name),
                                             json={"traffic": dict(traffic), "mirror": dict(mirror or {})}))

    def delete(self, name: str) -> None:
        """Deletes an endpoint."""
        self._json("endpoints.delete", params=self._p(name=name))

    def metrics(self, name: str) -> Dict[str, Any]:
        """Request counters and latency by deployment."""
        return self._json("endpoints.metrics", params=self._p(name=name))

    def invoke(self, name: str, rows: Any, *, key: Optional[str] = None,
               deployment: Optional[str] = None) -> Any:
        """Scores rows through the endpoint (MLflow's ``/invocations``): a DataFrame gives a
        DataFrame back, a list of dicts the scorer's JSON. `key` defaults to the one
        :meth:`create` answered, else the client's token."""
        key = key or self._c._endpoint_keys.get(name) or self._c.token
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if deployment:
            headers["x-atrium-deployment"] = deployment
        r = self._c._t.call("score.invocations", params={"name": name}, json=_frame_payload(rows), headers=headers)
        out = r.json()
        return _predictions_frame(out, rows) if _is_dataframe(rows) else out

    def score(self, name: str, body: bytes, content_type: str = "application/json", *,
              key: Optional[str] = None) -> bytes:
        """Sends a raw body to the endpoint's scorer (``/score``); answers the raw answer."""
        key = key or self._c._endpoint_keys.get(name) or self._c.token
        headers = {"Content-Type": content_type}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self._c._t.call("score.raw", params={"name": name}, data=body, headers=headers).content


class Environments(_Api):
    """Environments: create a version (requirements, a requirements.txt or a pyproject), list, get."""

    def create(self, name: str, requirements: Optional[Sequence[str]] = None, *,
               python: Optional[str] = None, file: Optional[PathLike] = None,
               description: Optional[str] = None) -> Environment:
        """Creates the next version (the latest one when its content is identical). `file` is a
        ``requirements.txt`` or a ``pyproject.toml``."""
        body: Dict[str, Any] = {"name": name}
        if requirements:
            body["requirements"] = list(requirements)
        if python:
            body["python"] = python
        if description:
            body["description"] = description
        if file is not None:
            p = Path(file)
            body["pyproject_toml" if p.name == "pyproject.toml" else "requirements_txt"] = p.read_text()
        return Environment.from_json(self._json("environments.create", params=self._p(), json=body))

    def list(self) -> List[Environment]:
        """Every environment version (the built-in first)."""
        return [Environment.from_json(e) for e in self._json("environments.list", params=self._p())["environments"]]

    def get(self, ref: str) -> Environment:
        """A version: ``"sk:2"``, ``"sk"`` (latest)."""
        name, version = _split_ref(ref)
        return Environment.from_json(self._json("environments.get", params=self._p(name=name, version=version)))

    def versions(self, name: str) -> List[Environment]:
        """An environment's versions."""
        return [Environment.from_json(e) for e in self._json("environments.versions", params=self._p(name=name))["environments"]]


class Compute(_Api):
    """Compute targets: create (a target plugin, a granted host, secrets), list, get, delete."""

    def create(self, name: str, component: str, *, config: Optional[Mapping[str, str]] = None,
               version: Optional[str] = None, host: Optional[str] = None,
               secrets: Optional[Sequence[str]] = None, allow_private: Optional[bool] = None,
               cpus: Optional[float] = None, memory_mb: Optional[int] = None,
               max_jobs: Optional[int] = None, description: Optional[str] = None,
               **extra: Any) -> ComputeTarget:
        """Creates a compute target: a target plugin (``target-slurm``, ``target-ray`` or an
        upload) with its config, the one `host` it may call (default: config ``url``'s), the
        secrets it may read; `allow_private` for an engine on this machine or the local network.
        The engine is checked first."""
        body = _drop_none({"component": component, "version": version,
                                  "config": dict(config) if config else None, "host": host,
                                  "secrets": list(secrets) if secrets else None,
                                  "allow_private": allow_private, "cpus": cpus,
                                  "memory_mb": memory_mb, "max_jobs": max_jobs,
                                  "description": description, **extra})
        return ComputeTarget.from_json(self._json("compute.put", params=self._p(name=name), json=body))

    def list(self) -> List[ComputeTarget]:
        """The workspace's compute targets (the built-in ones included)."""
        return [ComputeTarget.from_json(t) for t in self._json("compute.list", params=self._p())["compute"]]

    def get(self, name: str) -> ComputeTarget:
        """A target with its engine's pools and health."""
        return ComputeTarget.from_json(self._json("compute.get", params=self._p(name=name)))

    def delete(self, name: str) -> None:
        """Deletes a target no unfinished job uses."""
        self._json("compute.delete", params=self._p(name=name))


class Pipelines(_Api):
    """Pipelines: publish a version, run, plan, runs (wait, rerun, cancel)."""

    def publish(self, spec: Union[Mapping[str, Any], PathLike, str], code: Optional[PathLike] = None) -> Pipeline:
        """Publishes a version from a spec dict or file (the same content answers its version)."""
        return Pipeline.from_json(_submit_spec(self, "pipelines.publish", spec, code))

    def list(self) -> List[Pipeline]:
        """The latest version of each pipeline."""
        return [Pipeline.from_json(p) for p in self._json("pipelines.list", params=self._p())["pipelines"]]

    def versions(self, name: str) -> List[Pipeline]:
        """A pipeline's versions, newest first."""
        return [Pipeline.from_json(p) for p in self._json("pipelines.versions", params=self._p(name=name))["pipelines"]]

    def get(self, ref: str) -> Pipeline:
        """A version (``"prep:2"``, ``"prep"`` for the latest) with its inputs, outputs, steps."""
        name, version = _split_ref(ref)
        return Pipeline.from_json(self._json("pipelines.get", params=self._p(name=name, version=version)))

    def run(self, ref: str, inputs: Optional[Mapping[str, Any]] = None, *,
            settings: Optional[Mapping[str, Any]] = None, display_name: Optional[str] = None,
            experiment: Optional[str] = None) -> PipelineRun:
        """Submits a run of a pipeline (``name``, ``name:version``)."""
        body = _drop_none({"inputs": dict(inputs) if inputs else None,
                                  "settings": dict(settings) if settings else None,
                                  "display_name": display_name, "experiment": experiment})
        return PipelineRun.from_json(self._json("pipelines.run", params=self._p(name=ref), json=body))

    def plan(self, ref: str, inputs: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Each step's cache key and whether it would hit; nothing runs."""
        return self._json("pipelines.plan", params=self._p(name=ref), json={"inputs": dict(inputs or {})})

    def runs(self, pipeline: Optional[str] = None, limit: Optional[int] = None) -> List[PipelineRun]:
        """Pipeline runs, newest first."""
        r = self._json("pipeline_runs.list", params=self._p(), query={"pipeline": pipeline, "limit": limit})
        return [PipelineRun.from_json(x) for x in r["runs"]]

    def get_run(self, run_id: str) -> PipelineRun:
        """A pipeline run with its steps."""
        return PipelineRun.from_json(self._json("pipeline_runs.get", params=self._p(id=run_id)))

    def wait(self, run_id: str, timeout: Optional[float] = None, raise_on_failure: bool = True) -> PipelineRun:
        """Waits for a pipeline run to end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = self.get_run(run_id)
            if r.state in _ENDED:
                if raise_on_failure and r.state != "Completed":
                    raise errors.JobFailed(f"pipeline run {run_id} ended {r.state}: {r.get('error') or ''}", r)
                return r
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"pipeline run {run_id} still {r.state} after {timeout} s")
            time.sleep(0.5)

    def rerun(self, run_id: str, *, from_step: Optional[str] = None, failed: bool = False,
              inputs: Optional[Mapping[str, Any]] = None) -> PipelineRun:
        """Reruns a finished pipeline run from a step, or of its failed steps."""
        body: Dict[str, Any] = {}
        if from_step:
            body["from"] = from_step
        if failed:
            body["failed"] = True
        if inputs:
            body["inputs"] = dict(inputs)
        return PipelineRun.from_json(self._json("pipeline_runs.rerun", params=self._p(id=run_id), json=body))

    def cancel(self, run_id: str) -> PipelineRun:
        """Cancels a pipeline run."""
        return PipelineRun.from_json(self._json("pipeline_runs.cancel", params=self._p(id=run_id)))


class Schedules(_Api):
    """Schedules of pipeline runs: create, list, get, enable, disable, delete."""

    def create(self, name: str, pipeline: str, *, cron: Optional[str] = None,
               trigger: Optional[Mapping[str, Any]] = None, **settings: Any) -> Schedule:
        """Creates a schedule of `pipeline` (``name@latest``, ``name:3``) on a `cron`
        expression, or on a `trigger` as the API takes it (``{"type": "recurrence",
        "frequency": "hour", "interval": 1}``); ``time_zone=``, ``inputs=``, ``catchup=``,
        ``overlap=``, ... as the API names them."""
        if (cron is None) == (trigger is None):
            raise ValueError("give one of cron= or trigger=")
        t = {"type": "cron", "expression": cron} if cron is not None else dict(trigger or {})
        body = {"pipeline": pipeline, "trigger": t, **settings}
        return Schedule.from_json(self._json("schedules.put", params=self._p(name=name), json=body))

    def list(self) -> List[Schedule]:
        """The workspace's schedules."""
        return [Schedule.from_json(s) for s in self._json("schedules.list", params=self._p())["schedules"]]

    def get(self, name: str) -> Schedule:
        """A schedule with its next and latest ticks."""
        return Schedule.from_json(self._json("schedules.get", params=self._p(name=name)))

    def enable(self, name: str) -> Schedule:
        """Enables a schedule."""
        return Schedule.from_json(self._json("schedules.enable", params=self._p(name=name)))

    def disable(self, name: str) -> Schedule:
        """Disables a schedule."""
        return Schedule.from_json(self._json("schedules.disable", params=self._p(name=name)))

    def delete(self, name: str) -> None:
        """Deletes a schedule (its runs stay)."""
        self._json("schedules.delete", params=self._p(name=name))


class Components(_Api):
    """Components (Wasm plugins): push a built ``.wasm`` with its manifest, list, get, delete."""

    def push(self, name: str, version: str, wasm: Union[PathLike, bytes],
             manifest: Union[PathLike, str]) -> Component:
        """Validates and registers a component version (the same bytes again: the same
        version). `manifest` is the path of its ``plugin.toml``, or that TOML as text."""
        data = wasm if isinstance(wasm, bytes) else Path(wasm).read_bytes()
        if isinstance(manifest, str) and not os.path.exists(manifest):
            man, mname = manifest.encode(), "plugin.toml"
        else:
            man, mname = Path(manifest).read_bytes(), Path(manifest).name
        mtype = "application/toml"
        files = {"component": (f"{name}.wasm", data, "application/wasm"), "manifest": (mname, man, mtype)}
        return Component.from_json(self._json("components.push", params=self._p(name=name, version=version), files=files))

    def list(self) -> List[Component]:
        """The workspace's components (the built-ins included)."""
        return [Component.from_json(c) for c in self._json("components.list", params=self._p())["components"]]

    def get(self, name: str, version: str) -> Component:
        """A component version."""
        return Component.from_json(self._json("components.get", params=self._p(name=name, version=version)))

    def delete(self, name: str, version: str) -> None:
        """Deletes a component version (refused while something uses it)."""
        self._json("components.delete", params=self._p(name=name, version=version))


class Datastores(_Api):
    """Datastores: create (a storage component with its config and secrets), list, default."""

    def create(self, name: str, component: str, config: Optional[Mapping[str, Any]] = None, *,
               secrets: Optional[Sequence[str]] = None, http: Optional[Sequence[str]] = None,
               default: Optional[bool] = None, **extra: Any) -> Datastore:
        """Creates a datastore (a first call checks it works)."""
        body = _drop_none({"component": component, "config": dict(config or {}),
                                  "secrets": list(secrets) if secrets else None,
                                  "http": list(http) if http else None, "default": default,
                                  **extra})
        return Datastore.from_json(self._json("datastores.put", params=self._p(name=name), json=body))

    def list(self) -> List[Datastore]:
        """The workspace's datastores."""
        return [Datastore.from_json(d) for d in self._json("datastores.list", params=self._p())["datastores"]]

    def get(self, name: str) -> Datastore:
        """A datastore."""
        return Datastore.from_json(self._json("datastores.get", params=self._p(name=name)))

    def set_default(self, name: str) -> Datastore:
        """Makes a datastore the workspace's default."""
        return Datastore.from_json(self._json("datastores.set_default", params=self._p(name=name)))

    def delete(self, name: str) -> None:
        """Deletes a datastore."""
        self._json("datastores.delete", params=self._p(name=name))


class Secrets(_Api):
    """Secrets: set, list names, metadata, delete (values are never answered)."""

    def set(self, name: str, value: str) -> Secret:
        """Creates or replaces a secret."""
        return Secret.from_json(self._json("secrets.put", params=self._p(name=name), json={"value": value}))

    def list(self) -> List[Secret]:
        """Every secret's metadata."""
        return [Secret.from_json(s) for s in self._json("secrets.list", params=self._p())["secrets"]]

    def names(self) -> List[str]:
        """The secrets' names."""
        return [s.name for s in self.list()]

    def get(self, name: str) -> Secret:
        """A secret's metadata and the datastores granted it."""
        return Secret.from_json(self._json("secrets.get", params=self._p(name=name)))

    def delete(self, name: str) -> None:
        """Deletes a secret."""
        self._json("secrets.delete", params=self._p(name=name))


class Roles(_Api):
    """Role assignments of the workspace (changes: Owner)."""

    def list(self) -> List[RoleAssignment]:
        """Who holds which role."""
        return [RoleAssignment.from_json(r) for r in self._json("roles.list", params=self._p())["roles"]]

    def assign(self, user: str, role: str) -> RoleAssignment:
        """Assigns or changes a user's role (``Reader``, ``Contributor``, ``Owner``)."""
        return RoleAssignment.from_json(self._json("roles.put", params=self._p(user=user), json={"role": role}))

    def remove(self, user: str) -> None:
        """Removes a user's role."""
        self._json("roles.delete", params=self._p(user=user))


class Audit(_Api):
    """The audit log, newest first (the workspace's: Owner; the host's: admins)."""

    def list(self, *, host: bool = False, max_results: Optional[int] = None, **filters: Any) -> List[AuditEntry]:
        """Entries matching ``actor=``, ``action=``, ``object=``, ``result=``, ``since=``, ``until=``."""
        route = "audit.host" if host else "audit.list"
        params = {} if host else self._p()
        r = self._json(route, params=params, query={"max_results": max_results, **filters})
        return [AuditEntry.from_json(e) for e in r["entries"]]


class Users(_Api):
    """Users and tokens (admins; your own tokens: anyone)."""

    def list(self) -> List[Dict[str, Any]]:
        """Every user."""
        return self._json("users.list")["users"]

    def create(self, name: str, admin: bool = False) -> Dict[str, Any]:
        """Creates a user."""
        return self._json("users.create", json={"name": name, "admin": admin})

    def get(self, name: str) -> Dict[str, Any]:
        """A user with their roles."""
        return self._json("users.get", params={"user": name})

    def delete(self, name: str) -> None:
        """Deletes a user, their tokens and roles."""
        self._json("users.delete", params={"user": name})

    def create_token(self, user: Optional[str] = None, description: str = "",
                     expires_in_secs: Optional[int] = None) -> Dict[str, Any]:
        """Creates a token (``["token"]`` is shown once)."""
        body: Dict[str, Any] = {"description": description}
        if user:
            body["user"] = user
        if expires_in_secs:
            body["expires_in_secs"] = expires_in_secs
        return self._json("tokens.create", json=body)

    def tokens(self, user: Optional[str] = None) -> List[Dict[str, Any]]:
        """Your tokens (admins: `user`'s)."""
        return self._json("tokens.list", query={"user": user})["tokens"]

    def revoke_token(self, token_id: str) -> None:
        """Revokes a token."""
        self._json("tokens.delete", params={"id": token_id})


class Client:
    """A workspace of an Atrium server.

    ``Client()`` resolves like the CLI: the arguments, then ``ATRIUM_SERVER`` /
    ``ATRIUM_TOKEN`` / ``ATRIUM_WORKSPACE``, then ``ATRIUM_TOKEN_FILE``, the CLI's saved login,
    then the data directory's ``admin.token`` (``ATRIUM_DATA_DIR`` or ``./atrium-data``).
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 workspace: Optional[str] = None, *, timeout: float = 60.0, retries: int = 5) -> None:
        r = resolve(url, token, workspace)
        #: The server's base URL.
        self.url = r.server
        #: The API token (None: anonymous).
        self.token = r.token
        #: Where the token came from.
        self.token_source = r.token_source
        #: The workspace the sub-APIs work in.
        self.workspace = r.workspace
        if r.token:
            hint = f"the client sent the token from {r.token_source}; the server refused it"
        else:
            hint = "the client found no API token; it looked at, in order: " + "; ".join(r.looked)
        self._t = Transport(r.server, r.token, timeout=timeout, retries=retries,
                            unauthenticated_hint=hint)
        self._endpoint_keys: Dict[str, str] = {}
        self.workspaces = Workspaces(self)
        self.experiments = Experiments(self)
        self.runs = Runs(self)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.sweeps = Sweeps(self)
        self.models = Models(self)
        self.endpoints = Endpoints(self)
        self.environments = Environments(self)
        self.compute = Compute(self)
        self.pipelines = Pipelines(self)
        self.schedules = Schedules(self)
        self.components = Components(self)
        self.datastores = Datastores(self)
        self.secrets = Secrets(self)
        self.roles = Roles(self)
        self.audit = Audit(self)
        self.users = Users(self)

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, workspace={self.workspace!r})"

    def with_workspace(self, workspace: str) -> "Client":
        """The same server and token on another workspace."""
        return Client(self.url, self.token, workspace, timeout=self._t.timeout, retries=self._t.retries)

    def whoami(self) -> Dict[str, Any]:
        """The caller: user, admin flag, token id, roles."""
        return self._t.json("whoami")

    def health(self) -> Dict[str, Any]:
        """The server's health."""
        return self._t.json("health")

    def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        return self._t.json("openapi")

    def gc(self, workspace: Optional[str] = None, deleted_before: Optional[int] = None) -> Dict[str, Any]:
        """Purges deleted runs and unreferenced blobs (admins)."""
        body = _drop_none({"workspace": workspace, "deleted_before": deleted_before})
        return self._t.json("gc", json=body)
