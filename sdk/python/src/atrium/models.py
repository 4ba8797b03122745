"""The typed objects the client answers (each keeps the server's whole JSON in ``raw``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ._model import Record, field

# The schema name of each class is checked against the server's OpenAPI document by the test
# suite: every declared field must be a property of that schema.


@dataclass(repr=False)
class Workspace(Record):
    """A workspace."""

    schema = "Workspace"
    name: str = field(default="")
    description: str = field(default="")
    anonymous_read: bool = field(default=False)
    created_at: Optional[int] = field()


@dataclass(repr=False)
class Experiment(Record):
    """An experiment."""

    schema = "Experiment"
    id: int = field(default=0)
    name: str = field(default="")
    lifecycle_stage: str = field(default="")
    artifact_location: str = field(default="")
    tags: Dict[str, str] = field(default={})

    @property
    def experiment_id(self) -> int:
        """The id (MLflow's name for it)."""
        return self.id


@dataclass(repr=False)
class Run(Record):
    """A run with its params, latest metrics and tags."""

    schema = "Run"
    shown = ("id", "name", "status", "metrics")
    id: str = field(default="")
    experiment_id: int = field(default=0)
    name: str = field(default="")
    status: str = field(default="")
    start_time: Optional[int] = field()
    end_time: Optional[int] = field()
    params: Dict[str, str] = field(default={})
    metrics: Dict[str, Any] = field(default={})
    tags: Dict[str, str] = field(default={})
    parent_run_id: Optional[str] = field()

    @property
    def run_id(self) -> str:
        """The id (MLflow's name for it)."""
        return self.id

    @property
    def values(self) -> Dict[str, Any]:
        """Each metric's latest value (``metrics`` holds value, step and timestamp)."""
        return {k: (m.get("value") if isinstance(m, dict) else m) for k, m in self.metrics.items()}


@dataclass(repr=False)
class DatasetVersion(Record):
    """A dataset version: its schema, row count and (when asked) a preview."""

    schema = "DatasetVersion"
    shown = ("name", "version", "rows")
    name: str = field(default="")
    version: int = field(default=0)
    rows: int = field(default=0)
    ref: str = field(default="")
    columns: Any = field()
    digest: str = field(default="")


@dataclass(repr=False)
class Job(Record):
    """A job (train, command, sweep, automl, batch-score, pipeline)."""

    schema = "Job"
    shown = ("id", "name", "type", "state", "run_id")
    id: str = field(default="")
    name: str = field(default="")
    type: str = field(default="")
    state: str = field(default="")
    target: str = field(default="")
    run_id: Optional[str] = field()
    error: Optional[str] = field()
    attempts: int = field(default=0)
    created_at: Optional[int] = field()
    ended_at: Optional[int] = field()
    spec: Dict[str, Any] = field(default={})
    progress: Optional[Dict[str, Any]] = field()
    replica: Optional[str] = field()

    @property
    def done(self) -> bool:
        """Whether the job has ended (Completed, Failed or Canceled)."""
        return self.state in ("Completed", "Failed", "Canceled")


@dataclass(repr=False)
class Trial(Record):
    """One trial of a sweep or AutoML job's leaderboard."""

    shown = ("trial", "state", "value", "params")
    trial: int = field(json="id", default=0)
    state: str = field(default="")
    value: Optional[float] = field()
    run_id: Optional[str] = field()
    params: Dict[str, Any] = field(default={})
    error: Optional[str] = field()


@dataclass(repr=False)
class Leaderboard(Record):
    """A sweep or AutoML job's leaderboard: its trials, best first."""

    schema = "Trials"
    #: The server documents the board as free-form (flattened into the answer).
    undocumented = ("primary_metric", "goal", "best", "counts")
    shown = ("primary_metric", "goal", "best")
    primary_metric: str = field(default="")
    goal: str = field(default="")
    best: Optional[Dict[str, Any]] = field()
    counts: Dict[str, int] = field(default={})

    @property
    def trials(self) -> List[Trial]:
        """The trials, best first."""
        return [Trial.from_json(t) for t in self.raw.get("trials") or []]

    @property
    def job(self) -> Job:
        """The sweep's job."""
        return Job.from_json(self.raw.get("job") or {})

    def to_pandas(self) -> Any:
        """The trials as a DataFrame: trial, state, value, run_id and one column per param."""
        pd = _pandas()
        rows = []
        for t in self.trials:
            row = {"trial": t.trial, "state": t.state, "value": t.value, "run_id": t.run_id}
            row.update({f"params.{k}": v for k, v in t.params.items()})
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass(repr=False)
class RegisteredModel(Record):
    """A registered model with its aliases and latest version."""

    schema = "Model"
    shown = ("name", "latest_version", "aliases")
    name: str = field(default="")
    description: Optional[str] = field()
    latest_version: Optional[int] = field()
    aliases: Dict[str, int] = field(default={})
    tags: Dict[str, str] = field(default={})


@dataclass(repr=False)
class ModelVersion(Record):
    """A version of a registered model, with its lineage and files."""

    schema = "ModelVersion"
    shown = ("name", "version", "run_id", "aliases")
    name: str = field(default="")
    version: int = field(default=0)
    run_id: Optional[str] = field()
    description: Optional[str] = field()
    aliases: List[str] = field(default=[])
    tags: Dict[str, str] = field(default={})
    files: Optional[List[Dict[str, Any]]] = field()
    ref: str = field(default="")
    dataset: Optional[str] = field()
    job_id: Optional[str] = field()

    @property
    def uri(self) -> str:
        """``models:/name/version``."""
        return f"models:/{self.name}/{self.version}"


@dataclass(repr=False)
class Endpoint(Record):
    """An endpoint: its deployments, traffic split and mirror."""

    schema = "EndpointView"
    shown = ("name", "traffic", "deployments")
    name: str = field(default="")
    description: Optional[str] = field()
    auth_mode: str = field(default="")
    traffic: Dict[str, int] = field(default={})
    mirror: Dict[str, int] = field(default={})
    deployments: List[Dict[str, Any]] = field(default=[])
    key: Optional[str] = field()
    scoring_uri: Optional[str] = field()


@dataclass(repr=False)
class Environment(Record):
    """An environment version (a Python request and its requirements)."""

    schema = "EnvironmentVersion"
    shown = ("name", "version", "python", "requirements")
    name: str = field(default="")
    version: int = field(default=0)
    python: Optional[str] = field()
    requirements: List[str] = field(default=[])
    hash: str = field(default="")
    ref: str = field(default="")


@dataclass(repr=False)
class ComputeTarget(Record):
    """A compute target (a target plugin with its granted host and secrets)."""

    schema = "ComputeView"
    shown = ("name", "component", "health")
    name: str = field(default="")
    component: Any = field()
    host: Optional[str] = field()
    config: Any = field()
    health: Any = field()
    pools: Any = field()


@dataclass(repr=False)
class Pipeline(Record):
    """A pipeline version with its inputs, outputs and steps."""

    schema = "PipelineView"
    shown = ("name", "version", "reference")
    name: str = field(default="")
    version: int = field(default=0)
    reference: str = field(default="")
    created: Optional[bool] = field()
    inputs: Any = field()
    outputs: Any = field()
    steps: Any = field()


@dataclass(repr=False)
class PipelineRun(Record):
    """A pipeline run with its steps."""

    schema = "RunView"
    shown = ("id", "pipeline", "state")
    id: str = field(default="")
    pipeline: Any = field()
    state: str = field(default="")
    run_id: Optional[str] = field()
    error: Optional[str] = field()
    steps: Any = field()
    inputs: Any = field()
    outputs: Any = field()


@dataclass(repr=False)
class Schedule(Record):
    """A schedule of pipeline runs."""

    schema = "ScheduleView"
    shown = ("name", "describe", "enabled")
    name: str = field(default="")
    describe: str = field(default="")
    enabled: bool = field(default=True)
    next: List[str] = field(default=[])
    definition: Any = field()


@dataclass(repr=False)
class Component(Record):
    """A component version (a Wasm plugin) of the workspace."""

    schema = "Component"
    shown = ("name", "version", "kind")
    name: str = field(default="")
    version: str = field(default="")
    kind: str = field(default="")
    digest: str = field(default="")
    builtin: bool = field(default=False)


@dataclass(repr=False)
class Secret(Record):
    """A secret's metadata (never its value)."""

    schema = "Secret"
    shown = ("name", "version")
    name: str = field(default="")
    version: int = field(default=0)
    created_at: Optional[int] = field()
    updated_at: Optional[int] = field()


@dataclass(repr=False)
class RoleAssignment(Record):
    """A user's role on a workspace."""

    schema = "RoleAssignment"
    shown = ("user", "role")
    user: str = field(default="")
    role: str = field(default="")
    workspace: Optional[str] = field()


@dataclass(repr=False)
class AuditEntry(Record):
    """One entry of an audit log."""

    schema = "AuditEntry"
    shown = ("actor", "action", "object", "result")
    actor: str = field(default="")
    action: str = field(default="")
    object: str = field(default="")
    result: str = field(default="")
    at: Optional[int] = field()


@dataclass(repr=False)
class Datastore(Record):
    """A datastore: a storage component with its config grants."""

    schema = "Datastore"
    shown = ("name", "component", "default")
    name: str = field(default="")
    component: str = field(default="")
    version: str = field(default="")
    default: bool = field(default=False)
    grants: Any = field()


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("this needs pandas: pip install 'atrium[pandas]'") from e
    return pandas
