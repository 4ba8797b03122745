"""Optuna side of the strategy-overhead benchmark (bench/src/sweep.rs runs it).

Optuna's ask/tell (in-memory storage) on the sweep benchmark's search space, no training: per
trial `study.ask()` and the four `suggest_*` calls; with MedianPruner(n_warmup_steps=5), up to
20 `trial.report` + `trial.should_prune` pairs on a synthetic learning curve (the same formula
as sweep.rs); then `study.tell` (PRUNED for a pruned trial). Without a pruner no reports are
made (the host makes no stop decisions without a policy either).

Usage: strategy_peer.py ARGS_JSON with keys trials, steps, window, marks. Prints one JSON
object: {config: {per_trial_ms: {mark: ms}, split_ms: {...}, stopped, best, total_s}} for
configs random, random+median, tpe, tpe+median.
"""
import json
import math
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)

HIDDEN = ["[32]", "[64]", "[128]", "[64,64]", "[128,64]"]
BATCH = ["32", "64", "128"]


def curve(lr, alpha, hidden, batch, step):
    l, a = math.log10(lr), math.log10(alpha)
    fin = (0.98 - 0.04 * (l + 2.5) ** 2 - 0.005 * (a + 4.0) ** 2
           - [0.03, 0.015, 0.0, 0.01, 0.005][HIDDEN.index(hidden)]
           - [0.0, 0.005, 0.012][BATCH.index(batch)])
    rate = 0.1 + 0.15 * (l + 4.0)
    return fin * (1.0 - math.exp(-step * rate))


def simulate(sampler, pruner, trials, steps):
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    per_trial, split = [], []
    stopped, best = 0, float("-inf")
    clock = time.perf_counter
    for _ in range(trials):
        t0 = clock()
        trial = study.ask()
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        alpha = trial.suggest_float("alpha", 1e-6, 1e-2, log=True)
        hidden = trial.suggest_categorical("hidden", HIDDEN)
        batch = trial.suggest_categorical("batch", BATCH)
        t1 = clock()
        pruned, value = False, float("nan")
        decide = 0.0
        for step in range(1, steps + 1):
            value = curve(lr, alpha, hidden, batch, step)
            if pruner is not None:
                d = clock()
                trial.report(value, step)
                p = trial.should_prune()
                decide += clock() - d
                if p:
                    pruned = True
                    break
        t2 = clock()
        if pruned:
            stopped += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            best = max(best, value)
            study.tell(trial, value)
        t3 = clock()
        per_trial.append((t1 - t0) + decide + (t3 - t2))
        split.append((t1 - t0, decide, t3 - t2))
    return per_trial, split, stopped, best


def window(v, mark, w):
    if len(v) < mark:
        return None
    part = v[max(0, mark - w):mark]
    return sum(part) / len(part) * 1e3


def main():
    args = json.loads(sys.argv[1])
    trials, steps, w, marks = args["trials"], args["steps"], args["window"], args["marks"]
    out = {}
    for name in ["random", "random+median", "tpe", "tpe+median"]:
        sampler = (optuna.samplers.TPESampler(n_startup_trials=10, seed=0) if name.startswith("tpe")
                   else optuna.samplers.RandomSampler(seed=0))
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=5) if "median" in name else None
        start = time.perf_counter()
        per_trial, split, stopped, best = simulate(sampler, pruner, trials, steps)
        total = time.perf_counter() - start
        last = marks[-1]
        out[name] = {
            "per_trial_ms": {str(m): window(per_trial, m, w) for m in marks},
            "split_ms": {
                "ask_suggest": window([s[0] for s in split], last, w),
                "report_should_prune": window([s[1] for s in split], last, w),
                "tell": window([s[2] for s in split], last, w),
            },
            "stopped": stopped,
            "best": best,
            "total_s": total,
        }
        print(f"{name}: {trials} trials in {total:.2f} s, {stopped} pruned, best {best:.4f}",
              file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
