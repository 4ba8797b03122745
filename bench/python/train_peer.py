"""scikit-learn / numpy side of the training benchmark (bench/src/train.rs drives it).

Reads the same files the Rust side trains on and prints one JSON object per measure:
{"measure": ..., "seconds": [...], "accuracy": ...}. Threads come from OMP/OPENBLAS env vars.
"""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def csv(path, target):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    t = header.index(target)
    y = data[:, t].astype(np.int64)
    x = np.delete(data, t, axis=1)
    return x, y


def timed(rounds, fit_predict):
    secs, acc = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        acc = fit_predict()
        secs.append(time.perf_counter() - start)
    return secs, acc


def report(measure, secs, acc):
    print(json.dumps({"measure": measure, "seconds": secs, "accuracy": acc}), flush=True)


def main():
    args = json.loads(sys.argv[1])
    rounds = args["rounds"]
    def data_prep():
        xtr, ytr = csv(args["train_csv"], args["target"])
        xva, yva = csv(args["val_csv"], args["target"])
        sc = StandardScaler().fit(xtr)
        return sc.transform(xtr), ytr, sc.transform(xva), yva

    secs = []
    for _ in range(rounds):
        start = time.perf_counter()
        xtr, ytr, xva, yva = data_prep()
        secs.append(time.perf_counter() - start)
    report("data_prep_digits", secs, None)

    def mlp_digits():
        m = MLPClassifier(hidden_layer_sizes=(128,), solver="adam", learning_rate_init=1e-3,
                          batch_size=64, max_iter=20, alpha=0.0, random_state=0,
                          n_iter_no_change=1000)
        m.fit(xtr, ytr)
        return float((m.predict(xva) == yva).mean())

    def logistic_digits():
        m = LogisticRegression(max_iter=1000)
        m.fit(xtr, ytr)
        return float((m.predict(xva) == yva).mean())

    report("mlp_digits", *timed(rounds, mlp_digits))
    report("logistic_digits", *timed(rounds, logistic_digits))

    n, d = args["synthetic_rows"], args["synthetic_width"]
    x = np.fromfile(args["synthetic_x"], dtype="<f4").reshape(n, d)
    y = np.fromfile(args["synthetic_y"], dtype=np.uint8).astype(np.int64)
    ntr = args["synthetic_train"]
    for batch in args["synthetic_batches"]:
        def one_epoch():
            m = MLPClassifier(hidden_layer_sizes=(100,), solver="adam", learning_rate_init=1e-3,
                              batch_size=batch, max_iter=1, alpha=0.0, random_state=0)
            m.fit(x[:ntr], y[:ntr])
            return float((m.predict(x[ntr:]) == y[ntr:]).mean())
        report(f"mlp_synthetic_b{batch}", *timed(max(1, rounds // 2), one_epoch))

    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((1024, 1024), dtype=np.float32)
    a @ b
    secs = []
    for _ in range(args["matmul_reps"]):
        start = time.perf_counter()
        a @ b
        secs.append(time.perf_counter() - start)
    report("matmul_1024", secs, None)


main()
