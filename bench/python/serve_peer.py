"""MLflow side of the serving benchmark (bench/python/serve_bench.py runs it): trains the peer
model and logs it, so that `mlflow models serve` can serve it.

Trains scikit-learn's MLPClassifier(hidden_layer_sizes=(128,)) behind a StandardScaler in a
Pipeline on the digits CSV (adam, learning rate 0.01, batch 64, 20 epochs, seed 0: the same
settings as the Atrium train job), logs it with mlflow.sklearn.log_model (pyfunc flavor
included) to a local file store (MLFLOW_ALLOW_FILE_STORE=true: MLflow 3.17 refuses the file
store without it), and prints one JSON object:
{"model_uri": ..., "tracking_uri": ..., "train_accuracy": ..., "fit_s": ...}.

Usage: serve_peer.py '{"csv": PATH, "target": "target", "store": DIR, "epochs": 20}'
"""
import json
import os
import sys
import time
import warnings

import numpy as np


def main():
    args = json.loads(sys.argv[1])
    # MLflow 3.17 refuses the file store (maintenance mode) unless told otherwise
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    df = pd.read_csv(args["csv"])
    y = df[args["target"]].to_numpy(dtype=np.int64)
    x = df.drop(columns=[args["target"]]).astype(np.float64)
    model = Pipeline([
        ("scale", StandardScaler()),
        ("mlp", MLPClassifier(hidden_layer_sizes=(128,), solver="adam", learning_rate_init=0.01,
                              batch_size=64, max_iter=args.get("epochs", 20), random_state=0)),
    ])
    start = time.perf_counter()
    model.fit(x, y)
    fit_s = time.perf_counter() - start
    acc = float((model.predict(x) == y).mean())

    tracking_uri = "file:" + args["store"]
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serve-bench")
    signature = mlflow.models.infer_signature(x.head(5), model.predict(x.head(5)))
    with mlflow.start_run() as run:
        # MLflow 3.17 saves with skops by default, which refuses the fitted MLP's optimizer
        # object unless it is named as trusted
        info = mlflow.sklearn.log_model(
            model, name="model", signature=signature, input_example=x.head(1),
            skops_trusted_types=["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"])
    print(json.dumps({"model_uri": info.model_uri, "run_id": run.info.run_id,
                      "tracking_uri": tracking_uri, "train_accuracy": acc, "fit_s": fit_s}),
          flush=True)


if __name__ == "__main__":
    main()
