"""Builders of job specs, in the shape of Azure ML's ``command(...)``: each returns a plain
``dict`` (the JSON spec ``POST .../jobs`` takes), so a builder's result can be printed, edited
and submitted, and a spec file or dict works just as well."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

Spec = Dict[str, Any]


def _drop_none(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _top(kind: str, name: Optional[str], experiment: Optional[str], compute: Optional[str],
         retries: Optional[int], extra: Mapping[str, Any]) -> Spec:
    return _drop_none({"type": kind, "name": name, "experiment": experiment, "compute": compute,
                       "retries": retries, **extra})


def train(dataset: str, target: str, *, task: str = "classification",
          model: Union[str, Mapping[str, Any], None] = None,
          hidden: Union[Sequence[int], str, None] = None, epochs: Optional[int] = None,
          batch_size: Optional[int] = None, lr: Optional[float] = None,
          optimizer: Union[str, Mapping[str, Any], None] = None,
          validation_split: Optional[float] = None, validation_dataset: Optional[str] = None,
          features: Optional[Sequence[str]] = None, missing: Optional[str] = None,
          seed: Optional[int] = None, early_stopping: Optional[Mapping[str, Any]] = None,
          checkpoint_every: Optional[int] = None, device: Optional[str] = None,
          name: Optional[str] = None, experiment: Optional[str] = None,
          compute: Optional[str] = None, retries: Optional[int] = None, **train_extra: Any) -> Spec:
    """A train job: a Candle model on a dataset version (``"iris:1"`` or ``"iris"``).

    `model` is a family (``"mlp"``, ``"logistic"``, ``"linear"``) or the whole model table;
    `hidden` sets an MLP's layer widths; `optimizer` a kind (``"adam"``) or the whole table,
    `lr` its learning rate. Any other keyword goes into the ``train`` table as it is.
    """
    m: Dict[str, Any] = {"family": model} if isinstance(model, str) else dict(model or {})
    if hidden is not None:
        m.setdefault("family", "mlp")
        # a placeholder string stays as it is (a sweep fills it in)
        m["hidden"] = hidden if isinstance(hidden, str) else list(hidden)
    o: Dict[str, Any] = {"kind": optimizer} if isinstance(optimizer, str) else dict(optimizer or {})
    if lr is not None:
        o.setdefault("kind", "adam")
        o["lr"] = lr
    t = _drop_none({
        "dataset": dataset, "target": target, "task": task, "epochs": epochs,
        "batch_size": batch_size, "validation_split": validation_split,
        "validation_dataset": validation_dataset,
        "features": list(features) if features is not None else None, "missing": missing,
        "seed": seed, "early_stopping": dict(early_stopping) if early_stopping else None,
        "checkpoint_every": checkpoint_every, "device": device,
        "model": m or None, "optimizer": o or None, **train_extra,
    })
    return _top("train", name, experiment, compute, retries, {"train": t})


def command(command: str, *, environment: Union[str, Mapping[str, Any], None] = None,
            env: Optional[Mapping[str, str]] = None, secrets: Optional[Sequence[str]] = None,
            timeout: Optional[int] = None, name: Optional[str] = None,
            experiment: Optional[str] = None, compute: Optional[str] = None,
            retries: Optional[int] = None, **command_extra: Any) -> Spec:
    """A command job: a shell command under tracking (``MLFLOW_RUN_ID`` set for it).

    `environment` is a workspace environment (``"sk:2"``, ``"atrium-mlflow"``) or an inline
    one (``{"requirements": [...]}``). Pass the code directory to ``jobs.submit(code=...)``.
    """
    c = _drop_none({"command": command, "env": dict(env) if env else None,
                    "timeout": timeout, **command_extra})
    extra: Dict[str, Any] = {"command": c}
    if environment is not None:
        extra["environment"] = environment if isinstance(environment, str) else dict(environment)
    if secrets:
        extra["secrets"] = list(secrets)
    return _top("command", name, experiment, compute, retries, extra)


def sweep(trial: Spec, search_space: Mapping[str, Mapping[str, Any]], *, primary_metric: str,
          goal: str = "maximize", sampler: Union[str, Mapping[str, Any], None] = None,
          early_termination: Optional[Mapping[str, Any]] = None,
          max_total_trials: Optional[int] = None, max_concurrent_trials: Optional[int] = None,
          timeout: Optional[int] = None, trial_timeout: Optional[int] = None,
          seed: Optional[int] = None, name: Optional[str] = None,
          experiment: Optional[str] = None, compute: Optional[str] = None) -> Spec:
    """A sweep over a train or command job template; ``"${{search_space.NAME}}"`` marks what
    varies in `trial` (see :func:`placeholder`), `search_space` holds the dimensions
    (:func:`choice`, :func:`uniform`, :func:`loguniform`, ...)."""
    t = {k: v for k, v in trial.items() if k not in ("name", "experiment")}
    limits = _drop_none({"max_total_trials": max_total_trials,
                         "max_concurrent_trials": max_concurrent_trials, "timeout": timeout,
                         "trial_timeout": trial_timeout})
    s = _drop_none({
        "trial": t, "search_space": {k: dict(v) for k, v in search_space.items()},
        "objective": {"primary_metric": primary_metric, "goal": goal},
        "sampler": ({"name": sampler} if isinstance(sampler, str) else dict(sampler)) if sampler else None,
        "early_termination": dict(early_termination) if early_termination else None,
        "limits": limits or None, "seed": seed,
    })
    return _top("sweep", name, experiment, compute, None, {"sweep": s})


def automl(dataset: str, target: str, *, task: str = "classification",
           primary_metric: Optional[str] = None, epochs: Optional[int] = None,
           allowed_models: Optional[Sequence[str]] = None, max_trials: Optional[int] = None,
           max_concurrent_trials: Optional[int] = None, timeout: Optional[int] = None,
           exit_score: Optional[float] = None, name: Optional[str] = None,
           experiment: Optional[str] = None, **automl_extra: Any) -> Spec:
    """An AutoML job: searches model families and hyperparameters on a dataset."""
    limits = _drop_none({"max_trials": max_trials, "max_concurrent_trials": max_concurrent_trials,
                         "timeout": timeout, "exit_score": exit_score})
    a = _drop_none({"task": task, "dataset": dataset, "target": target,
                    "primary_metric": primary_metric, "epochs": epochs,
                    "allowed_models": list(allowed_models) if allowed_models else None,
                    "limits": limits or None, **automl_extra})
    return _top("automl", name, experiment, None, None, {"automl": a})


def batch_score(model: str, dataset: str, *, output: Optional[str] = None,
                batch_size: Optional[int] = None, name: Optional[str] = None,
                experiment: Optional[str] = None) -> Spec:
    """A batch-score job: a dataset version in, a scored dataset version out."""
    b = _drop_none({"model": model, "dataset": dataset, "output": output, "batch_size": batch_size})
    return _top("batch-score", name, experiment, None, None, {"batch_score": b})


def placeholder(name: str) -> str:
    """``"${{search_space.NAME}}"``: where a sweep's trial template takes a sampled value."""
    return "${{search_space.%s}}" % name


def choice(*values: Any) -> Dict[str, Any]:
    """A dimension over the given values (any JSON)."""
    if len(values) == 1 and isinstance(values[0], (list, tuple)):
        values = tuple(values[0])
    return {"kind": "choice", "values": list(values)}


def uniform(low: float, high: float) -> Dict[str, Any]:
    """A uniform dimension on [low, high]."""
    return {"kind": "uniform", "low": low, "high": high}


def loguniform(low: float, high: float) -> Dict[str, Any]:
    """A log-uniform dimension on [low, high] (the values' bounds, both > 0)."""
    return {"kind": "loguniform", "low": low, "high": high}


def randint(high: int, low: int = 0) -> Dict[str, Any]:
    """An integer dimension on [low, high)."""
    return {"kind": "randint", "low": low, "high": high}


def normal(mu: float, sigma: float) -> Dict[str, Any]:
    """A normal dimension."""
    return {"kind": "normal", "mu": mu, "sigma": sigma}


__all__: List[str] = ["train", "command", "sweep", "automl", "batch_score", "placeholder",
                      "choice", "uniform", "loguniform", "randint", "normal"]
