"""Jobs (builders, spec files, wait, stream, cancel), sweeps and AutoML, the registry, endpoints."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

import atrium
from conftest import DATA, unique


def test_a_train_job_from_the_builder_completes_with_metrics(client, trained):
    assert trained.state == "Completed" and trained.type == "train"
    run = client.runs.get(trained.run_id)
    assert run.status == "FINISHED"
    assert 0.0 <= run.values["val_accuracy"] <= 1.0 and run.metrics["val_accuracy"]["step"] == 8
    assert run.params["optimizer.kind"] == "adam"
    assert "trained 8 of 8 epochs" in client.jobs.logs(trained.id)
    assert client.jobs.logs(trained.id, tail=1).strip() == "job completed"
    assert any(j.id == trained.id for j in client.jobs.list(state="Completed"))


def test_stream_prints_the_log_until_the_job_ends(client, iris):
    spec = atrium.train(iris.ref, "target", model="logistic", epochs=3, lr=0.05, name="sdk-stream")
    job = client.jobs.submit(spec)
    out = io.StringIO()
    ended = client.jobs.stream(job.id, out=out)
    assert ended.state == "Completed"
    text = out.getvalue()
    for e in (1, 2, 3):
        assert f"epoch {e} loss=" in text, text
    assert text.rstrip().endswith("job completed")


def test_a_spec_file_and_a_command_job_with_code(client, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "hello.sh").write_text("echo hello from $ATRIUM_JOB_ID; echo \"$GREETING\"\n")
    spec = tmp_path / "job.toml"
    spec.write_text('type = "command"\nname = "sdk-cmd"\n[command]\ncommand = "sh hello.sh"\n'
                    'env = { GREETING = "hi there" }\n')
    job = client.jobs.submit(spec, code=code)
    done = client.jobs.wait(job.id, timeout=120)
    log = client.jobs.logs(done.id)
    assert f"hello from {job.id}" in log and "hi there" in log
    assert "code/hello.sh" in [f["path"] for f in client.runs.artifacts(done.run_id, "code")]


def test_cancel_and_a_failed_job_raise_job_failed(client):
    job = client.jobs.submit(atrium.command("sleep 60", name="sdk-sleep"))
    client.jobs.cancel(job.id)
    with pytest.raises(atrium.JobFailed) as e:
        client.jobs.wait(job.id, timeout=60)
    assert e.value.job.state == "Canceled"
    bad = client.jobs.submit(atrium.command("exit 3", name="sdk-fail"))
    with pytest.raises(atrium.JobFailed) as e:
        client.jobs.wait(bad.id, timeout=60)
    assert "status 3" in str(e.value)
    assert client.jobs.wait(bad.id, raise_on_failure=False).state == "Failed"


def test_a_bad_spec_is_refused_with_the_reason(client, iris):
    with pytest.raises(atrium.InvalidArgument) as e:
        client.jobs.submit(atrium.train(iris.ref, "no_such_column"))
    assert "no_such_column" in e.value.message
    with pytest.raises(atrium.InvalidArgument) as e:
        client.jobs.submit({"type": "train", "train": {"dataset": iris.ref}, "bogus": 1})
    assert e.value.status == 400
    with pytest.raises(atrium.NotFound):
        client.jobs.get("job-that-does-not-exist")


def test_a_sweep_leaderboard_best_and_dataframe(client, iris):
    trial = atrium.train(iris.ref, "target", epochs=3, batch_size=16,
                         hidden=atrium.placeholder("hidden"), lr=atrium.placeholder("lr"))
    trial["train"]["model"]["hidden"] = atrium.placeholder("hidden")
    spec = atrium.sweep(trial, {"lr": atrium.loguniform(3e-3, 3e-2),
                                "hidden": atrium.choice([8], [16])},
                        primary_metric="val_accuracy", goal="maximize", sampler="random",
                        max_total_trials=3, max_concurrent_trials=1, seed=1, name="sdk-sweep")
    job = client.sweeps.submit(spec)
    client.jobs.wait(job.id, timeout=300)
    board = client.sweeps.leaderboard(job.id)
    assert board.primary_metric == "val_accuracy" and len(board.trials) == 3
    values = [t.value for t in board.trials]
    assert values == sorted(values, reverse=True)
    best = client.sweeps.best(job.id)
    assert best.value == values[0] and set(best.params) == {"lr", "hidden"}
    df = client.sweeps.to_pandas(job.id)
    assert len(df) == 3 and {"trial", "value", "params.lr", "params.hidden"} <= set(df.columns)


def test_automl_builder(client):
    wine = client.datasets.upload(unique("wine-automl"), DATA / "wine.csv")
    job = client.sweeps.submit(atrium.automl(wine.ref, "target", epochs=3, max_trials=2,
                                             allowed_models=["linear"], name="sdk-automl"))
    client.jobs.wait(job.id, timeout=300)
    board = client.sweeps.leaderboard(job.id)
    assert len(board.trials) == 2 and board.best is not None


def test_register_alias_download_and_predict_a_dataframe(client, registered, tmp_path):
    name = registered.name
    assert registered.version == 1 and "champion" in registered.aliases
    v = client.models.version(f"{name}@champion")
    assert v.version == 1 and v.run_id == registered.run_id
    assert {"model.json", "model.safetensors"} <= {f["path"] for f in v.files}
    m = client.models.get(name)
    assert m.aliases.get("champion") == 1
    assert name in [x.name for x in client.models.list()]
    out = client.models.download(f"models:/{name}/1", tmp_path / "m")
    assert (out / "model.json").exists() and json.loads((out / "model.json").read_text())
    df = pd.read_csv(DATA / "iris.csv")
    pred = client.models.predict(f"models:/{name}@champion", df.drop(columns=["target"]))
    assert len(pred) == len(df) and "prediction" in pred.columns
    probs = pred[[c for c in pred.columns if c.startswith("p_")]]
    assert ((probs.sum(axis=1) - 1.0).abs() < 1e-3).all()
    accuracy = (pred["prediction"].astype(str) == df["target"].astype(str)).mean()
    assert accuracy > 0.6, accuracy
    as_json = client.models.predict(name, [dict(df.drop(columns=["target"]).iloc[0])])
    assert len(as_json["predictions"]) == 1
    with pytest.raises(atrium.InvalidArgument):
        client.models.predict(name, [{"sepal_length": 1.0}])
    v2 = client.models.register(name, dir=out, description="uploaded")
    assert v2.version == 2
    client.models.set_alias(name, "champion", 2)
    assert client.models.version(f"{name}@champion").version == 2
    client.models.delete_alias(name, "champion")
    with pytest.raises(atrium.NotFound):
        client.models.version(f"{name}@champion")


def test_endpoint_create_deploy_invoke_traffic_metrics(client, registered):
    ep = unique("sdk-ep")
    created = client.endpoints.create(ep, description="iris")
    assert created.key and created.key.startswith("atk_")
    client.endpoints.deploy(ep, "blue", f"models:/{registered.name}/1", instances=1)
    df = pd.read_csv(DATA / "iris.csv").drop(columns=["target"]).head(20)
    scored = client.endpoints.invoke(ep, df)
    assert len(scored) == 20 and "prediction" in scored.columns
    raw = client.endpoints.invoke(ep, df.head(2).to_dict(orient="records"))
    assert len(raw["predictions"]) == 2
    client.endpoints.deploy(ep, "green", f"models:/{registered.name}/1", instances=1)
    e = client.endpoints.traffic(ep, {"blue": 50, "green": 50})
    assert e.traffic == {"blue": 50, "green": 50}
    assert client.endpoints.invoke(ep, df.head(1), deployment="green").shape[0] == 1
    with pytest.raises(atrium.InvalidArgument):
        client.endpoints.traffic(ep, {"blue": 70, "green": 10})
    metrics = client.endpoints.metrics(ep)
    assert "blue" in json.dumps(metrics)
    with pytest.raises(atrium.Unauthenticated):
        client.endpoints.invoke(ep, df.head(1), key="atk_wrong")
    client.endpoints.delete(ep)
    with pytest.raises(atrium.NotFound):
        client.endpoints.get(ep)


def test_keys_updates_and_deletes(client, registered, reader):
    # endpoint key rotation: the old key stops working, the new one works
    ep = unique("sdk-keys")
    old = client.endpoints.create(ep).key
    client.endpoints.deploy(ep, "blue", f"models:/{registered.name}/1", instances=1)
    new = client.endpoints.regenerate_key(ep)
    assert new != old
    row = [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
    assert len(client.endpoints.invoke(ep, row, key=new)["predictions"]) == 1
    with pytest.raises(atrium.Unauthenticated):
        client.endpoints.invoke(ep, row, key=old)
    assert reader.endpoints.invoke(ep, row, key=reader.token)["predictions"]
    with pytest.raises(atrium.InvalidState) as e:
        client.endpoints.undeploy(ep, "blue")
    assert "move its traffic first" in e.value.message
    client.endpoints.deploy(ep, "green", f"models:/{registered.name}/1", instances=1)
    client.endpoints.traffic(ep, {"green": 100})
    client.endpoints.undeploy(ep, "blue")
    assert [d["name"] for d in client.endpoints.get(ep).deployments] == ["green"]
    client.endpoints.delete(ep)
    # a model renamed, described, a version deleted, the model deleted
    name = unique("sdk-m")
    client.models.register(name, run_id=registered.run_id)
    client.models.register(name, run_id=registered.run_id)
    m = client.models.update(name, description="two versions", tags={"team": "a"})
    assert m.description == "two versions" and m.tags == {"team": "a"}
    client.models.delete_version(f"{name}/1")
    assert [v.version for v in client.models.versions(name)] == [2]
    client.models.delete(name)
    with pytest.raises(atrium.NotFound):
        client.models.get(name)
    # experiments renamed, runs deleted; tokens listed and revoked
    exp = client.experiments.create(unique("sdk-rename"))
    renamed = client.experiments.update(exp.id, name=exp.name + "-x")
    assert renamed.name == exp.name + "-x"
    run = client.runs.create(exp.id)
    client.runs.delete(run.run_id)
    assert client.runs.get(run.run_id).raw["lifecycle_stage"] == "deleted"
    tok = client.users.create_token(description="short-lived", expires_in_secs=60)
    assert tok["id"] in [t["id"] for t in client.users.tokens()]
    client.users.revoke_token(tok["id"])
    with pytest.raises(atrium.Unauthenticated):
        atrium.Client(client.url, tok["token"]).whoami()
