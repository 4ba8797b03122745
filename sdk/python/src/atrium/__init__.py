"""Atrium's Python SDK: ``atrium.Client()`` for a workspace, builders of job specs
(``atrium.train``, ``atrium.command``, ``atrium.sweep``, ...) and the API's errors as exceptions."""

from .client import Client
from .errors import (AlreadyExists, AtriumError, ConnectionFailed, InvalidArgument, InvalidState,
                     JobFailed, NotFound, PermissionDenied, PluginFailed, ServerError,
                     Unauthenticated, Unavailable)
from .models import (AuditEntry, Component, ComputeTarget, Datastore, DatasetVersion, Endpoint, Environment,
                     Experiment, Job, Leaderboard, ModelVersion, Pipeline, PipelineRun,
                     RegisteredModel, RoleAssignment, Run, Schedule, Secret, Trial, Workspace)
from .specs import (automl, batch_score, choice, command, loguniform, normal, placeholder,
                    randint, sweep, train, uniform)

__version__ = "0.1.0"

__all__ = [
    "Client", "AtriumError", "NotFound", "AlreadyExists", "InvalidArgument", "InvalidState",
    "Unauthenticated", "PermissionDenied", "PluginFailed", "Unavailable", "ServerError",
    "ConnectionFailed", "JobFailed", "AuditEntry", "Component", "ComputeTarget", "Datastore",
    "DatasetVersion",
    "Endpoint", "Environment", "Experiment", "Job", "Leaderboard", "ModelVersion", "Pipeline",
    "PipelineRun", "RegisteredModel", "RoleAssignment", "Run", "Schedule", "Secret", "Trial",
    "Workspace", "train", "command", "sweep", "automl", "batch_score", "placeholder", "choice",
    "uniform", "loguniform", "randint", "normal",
]
