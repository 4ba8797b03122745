"""Workspaces, experiments and runs (search with the filter language), datasets."""

from __future__ import annotations


import pandas as pd
import pytest

import atrium
from conftest import DATA, unique


def test_workspaces_create_get_list_delete(client):
    name = unique("ws")
    w = client.workspaces.create(name, description="from the SDK")
    assert w.name == name and w.description == "from the SDK"
    assert name in [x.name for x in client.workspaces.list()]
    assert client.workspaces.get(name).description == "from the SDK"
    other = client.with_workspace(name)
    assert other.workspace == name
    assert other.experiments.create("only-here").name == "only-here"
    client.workspaces.delete(name)
    with pytest.raises(atrium.NotFound) as e:
        client.workspaces.get(name)
    assert e.value.code == "RESOURCE_DOES_NOT_EXIST" and e.value.status == 404


def test_experiments_and_runs_search_with_the_filter_language(client):
    exp = client.experiments.create(unique("sdk-exp"), tags={"team": "a"})
    assert client.experiments.get(exp.name).experiment_id == exp.experiment_id
    assert client.experiments.get(exp.experiment_id).name == exp.name
    for i, (opt, acc) in enumerate([("adam", 0.95), ("sgd", 0.80), ("adam", 0.70)]):
        r = client.runs.create(exp.experiment_id, name=f"r{i}")
        client.runs.log(r.run_id, metrics={"acc": acc}, params={"opt": opt, "i": i}, tags={"k": "v"})
        client.runs.log(r.run_id, metrics=[{"key": "loss", "value": 1.0 - acc, "step": s} for s in range(3)])
        client.runs.update(r.run_id, status="FINISHED")
    found = client.runs.search(exp.experiment_id, filter="metrics.acc > 0.75 and params.opt = 'adam'")
    assert [r.name for r in found] == ["r0"]
    assert found[0].params["opt"] == "adam" and found[0].status == "FINISHED"
    both = client.runs.search([exp.experiment_id], filter="params.opt = 'sgd' or metrics.acc < 0.75",
                              order_by=["metrics.acc DESC"])
    assert [r.name for r in both] == ["r1", "r2"]
    df = client.runs.to_pandas(client.runs.search(exp.experiment_id, order_by=["metrics.acc ASC"]))
    assert list(df["metrics.acc"]) == [0.70, 0.80, 0.95] and "params.opt" in df.columns
    hist = client.runs.metric_history(found[0].run_id, "loss")
    assert [p["step"] for p in hist] == [0, 1, 2]
    with pytest.raises(atrium.InvalidArgument) as e:
        client.runs.search(exp.experiment_id, filter="metrics.acc >")
    assert "position" in e.value.message
    client.experiments.delete(exp.experiment_id)
    assert client.experiments.restore(exp.experiment_id).lifecycle_stage == "active"


def test_artifacts_upload_list_download(client, tmp_path):
    exp = client.experiments.create(unique("sdk-art"))
    run = client.runs.create(exp.experiment_id)
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(range(256)) * 40_000)  # ~10 MB, streamed both ways
    client.runs.upload_artifact(run.run_id, "out/big.bin", src)
    client.runs.upload_artifact(run.run_id, "out/note.txt", b"hello")
    names = sorted(f["path"] for f in client.runs.artifacts(run.run_id, "out"))
    assert names == ["out/big.bin", "out/note.txt"]
    dest = tmp_path / "copy.bin"
    client.runs.download_artifact(run.run_id, "out/big.bin", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert client.runs.download_artifact(run.run_id, "out/note.txt") == b"hello"


def test_datasets_from_a_csv_and_a_dataframe_versions_and_download(client, tmp_path):
    name = unique("wine")
    v1 = client.datasets.upload(name, DATA / "wine.csv")
    assert v1.version == 1 and v1.rows == 178 and v1.ref == f"{name}:1"
    df = pd.read_csv(DATA / "wine.csv").head(50)
    v2 = client.datasets.upload(name, df)
    assert v2.version == 2 and v2.rows == 50
    assert [d.version for d in client.datasets.list(name)] == [1, 2] or [d.version for d in client.datasets.list(name)] == [2, 1]
    latest = client.datasets.get(name, preview=3)
    assert latest.version == 2 and len(latest.raw["preview"]) == 3
    back = client.datasets.to_pandas(f"{name}:2")
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)
    out = tmp_path / "v1.csv"
    client.datasets.download(f"{name}:1", out)
    assert len(pd.read_csv(out)) == 178
    client.datasets.delete(f"{name}:1")
    with pytest.raises(atrium.NotFound):
        client.datasets.get(f"{name}:1")
    with pytest.raises(atrium.InvalidArgument):
        client.datasets.upload(unique("empty"), b"")
