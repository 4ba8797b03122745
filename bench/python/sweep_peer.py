"""Optuna + scikit-learn side of the sweep benchmark (bench/python/sweep_bench.py drives it).

Optuna (RandomSampler or TPESampler with n_startup_trials=10; MedianPruner(n_warmup_steps=5)
or no pruning) drives scikit-learn's MLPClassifier, one `partial_fit` per epoch, on the same
train / validation CSVs that Atrium's trials use, standardized with a z-score fitted on the
training rows (as Atrium does). Each trial reports its validation accuracy after every epoch
(step = 1-based epoch, like Atrium's) and ends after 20 epochs or when pruned; its value is the
last epoch's accuracy. Every trial initializes with random_state=0, as Atrium's trial template
fixes the training seed to 0.

Usage: sweep_peer.py ARGS_JSON with keys train_csv, val_csv, target, trials, epochs, runs
(a list of {"config": "random" | "random-median" | "tpe-median", "seed": N}).
Prints one JSON object per run: {config, seed, wall_s, cpu_s, best, pruned, completed, epochs}
(epochs: the epochs trained over all trials).
Threads come from OMP/OPENBLAS env vars (the bench sets 1).
"""
import json
import sys
import time
import warnings

import numpy as np
import optuna
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore", category=ConvergenceWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)

# The search space, as in the Atrium sweep spec (choices of hidden layers as text, since
# Optuna's categorical values must be primitives).
HIDDEN = {"32": (32,), "64": (64,), "128": (128,), "64,64": (64, 64), "128,64": (128, 64)}
BATCHES = [32, 64, 128]


def csv(path, target):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    t = header.index(target)
    y = data[:, t].astype(np.int64)
    x = np.delete(data, t, axis=1)
    return x, y


def objective_for(xtr, ytr, xva, yva, epochs, seed):
    classes = np.unique(ytr)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        alpha = trial.suggest_float("alpha", 1e-6, 1e-2, log=True)
        hidden = trial.suggest_categorical("hidden", list(HIDDEN))
        batch = trial.suggest_categorical("batch", BATCHES)
        m = MLPClassifier(hidden_layer_sizes=HIDDEN[hidden], solver="adam",
                          learning_rate_init=lr, alpha=alpha, batch_size=batch,
                          random_state=0)
        acc = 0.0
        for epoch in range(1, epochs + 1):
            m.partial_fit(xtr, ytr, classes=classes)
            acc = float(m.score(xva, yva))
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    return objective


def run(config, seed, data, trials, epochs):
    if config == "random":
        sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    elif config == "random-median":
        sampler = optuna.samplers.RandomSampler(seed=seed)
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=5)
    elif config == "tpe-median":
        sampler = optuna.samplers.TPESampler(n_startup_trials=10, seed=seed)
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=5)
    else:
        raise SystemExit(f"unknown config {config}")
    start, cpu = time.perf_counter(), time.process_time()
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective_for(*data, epochs, seed), n_trials=trials)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    states = [t.state for t in study.trials]
    epochs_run = sum(len(t.intermediate_values) for t in study.trials)
    return {
        "config": config,
        "seed": seed,
        "wall_s": wall,
        "cpu_s": cpu,
        "best": study.best_value,
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "completed": states.count(optuna.trial.TrialState.COMPLETE),
        "epochs": epochs_run,
    }


def main():
    args = json.loads(sys.argv[1])
    xtr, ytr = csv(args["train_csv"], args["target"])
    xva, yva = csv(args["val_csv"], args["target"])
    sc = StandardScaler().fit(xtr)
    data = (sc.transform(xtr), ytr, sc.transform(xva), yva)
    for r in args["runs"]:
        out = run(r["config"], r["seed"], data, args["trials"], args["epochs"])
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
