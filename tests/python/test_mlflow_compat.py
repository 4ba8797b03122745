"""Compatibility tests: the real `mlflow` client against a running Atrium server.

Run by tests/tests/mlflow_compat.rs, which starts the server and sets ATRIUM_URL.
Every call the README lists as supported is exercised here.
"""

import json
import math
import os
import tempfile
import time
import unittest
import uuid

import mlflow
from mlflow.entities import RunStatus, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

BASE = os.environ["ATRIUM_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["MLFLOW_TRACKING_TOKEN"]


def api(method, path, body=None, token=ADMIN_TOKEN):
    """Calls the native API with a token; returns (status, parsed JSON)."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{BASE}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class TrackingFlow(unittest.TestCase):
    def setUp(self):
        mlflow.set_tracking_uri(BASE)
        self.client = MlflowClient(BASE)

    def tearDown(self):
        while mlflow.active_run():
            mlflow.end_run()

    def test_ordinary_training_script(self):
        name = unique("train")
        exp = mlflow.set_experiment(name)
        self.assertEqual(exp.name, name)
        # set_experiment again finds the existing one
        self.assertEqual(mlflow.set_experiment(name).experiment_id, exp.experiment_id)
        with mlflow.start_run(run_name="parent") as parent:
            mlflow.log_param("optimizer", "adam")
            mlflow.log_params({"lr": 0.001, "epochs": 3})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=4)
            mlflow.set_tag("team", "vision")
            mlflow.set_tags({"stage": "dev", "owner": "ana"})
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "notes.txt")
                with open(p, "w") as f:
                    f.write("hello artifacts")
                mlflow.log_artifact(p)
                sub = os.path.join(d, "plots")
                os.makedirs(sub)
                for i in range(2):
                    with open(os.path.join(sub, f"p{i}.csv"), "w") as f:
                        f.write(f"x,y\n{i},{i * i}\n")
                mlflow.log_artifacts(sub, artifact_path="plots")
            mlflow.log_text("some text", "texts/a.txt")
            mlflow.log_dict({"k": [1, 2, 3]}, "config.json")
            with mlflow.start_run(run_name="child", nested=True) as child:
                mlflow.log_metric("child_metric", 3.0)
            child_id = child.info.run_id
        run = self.client.get_run(parent.info.run_id)
        self.assertEqual(run.info.status, "FINISHED")
        self.assertIsNotNone(run.info.end_time)
        self.assertEqual(run.info.run_name, "parent")
        self.assertEqual(run.data.params, {"optimizer": "adam", "lr": "0.001", "epochs": "3"})
        self.assertAlmostEqual(run.data.metrics["loss"], 0.2)
        self.assertEqual(run.data.metrics["acc"], 0.9)
        self.assertEqual(run.data.tags["team"], "vision")
        self.assertEqual(run.data.tags["owner"], "ana")
        child_run = self.client.get_run(child_id)
        self.assertEqual(child_run.data.tags["mlflow.parentRunId"], parent.info.run_id)

        history = self.client.get_metric_history(parent.info.run_id, "loss")
        self.assertEqual([m.step for m in history], [0, 1, 2, 3, 4])
        self.assertAlmostEqual(history[2].value, 1 / 3)

        # artifacts: list and download, file and directory
        top = sorted(f.path for f in self.client.list_artifacts(parent.info.run_id))
        self.assertEqual(top, ["config.json", "notes.txt", "plots", "texts"])
        plots = sorted(f.path for f in self.client.list_artifacts(parent.info.run_id, "plots"))
        self.assertEqual(plots, ["plots/p0.csv", "plots/p1.csv"])
        with tempfile.TemporaryDirectory() as d:
            local = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="notes.txt", dst_path=d)
            with open(local) as f:
                self.assertEqual(f.read(), "hello artifacts")
            local_dir = self.client.download_artifacts(parent.info.run_id, "plots", d)
            self.assertEqual(sorted(os.listdir(local_dir)), ["p0.csv", "p1.csv"])
            with open(os.path.join(local_dir, "p1.csv")) as f:
                self.assertEqual(f.read(), "x,y\n1,1\n")
            cfg = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/config.json")
            self.assertEqual(cfg, {"k": [1, 2, 3]})
            self.assertEqual(mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/texts/a.txt"), "some text")

    def test_end_run_with_status(self):
        mlflow.set_experiment(unique("status"))
        run = mlflow.start_run()
        self.assertTrue(run.info.run_name)  # the server generated a name
        mlflow.end_run(status="FAILED")
        self.assertEqual(self.client.get_run(run.info.run_id).info.status, "FAILED")
        run = mlflow.start_run()
        mlflow.end_run(status=RunStatus.to_string(RunStatus.KILLED))
        self.assertEqual(self.client.get_run(run.info.run_id).info.status, "KILLED")

    def test_search_runs_with_filter_and_order(self):
        exp = mlflow.set_experiment(unique("search"))
        for i, opt in enumerate(["adam", "sgd", "adam", "rmsprop"]):
            with mlflow.start_run(run_name=f"r{i}"):
                mlflow.log_param("opt", opt)
                mlflow.log_metric("acc", 0.5 + i * 0.1)
        df = mlflow.search_runs(
            experiment_ids=[exp.experiment_id],
            filter_string="params.opt = 'adam' and metrics.acc > 0.55",
            order_by=["metrics.acc DESC"],
        )
        self.assertEqual(list(df["tags.mlflow.runName"]), ["r2"])
        runs = mlflow.search_runs(
            experiment_ids=[exp.experiment_id], order_by=["metrics.acc DESC"], output_format="list"
        )
        self.assertEqual([r.info.run_name for r in runs], ["r3", "r2", "r1", "r0"])
        runs = self.client.search_runs(
            [exp.experiment_id], "metrics.acc >= 0.6", order_by=["params.opt ASC", "metrics.acc ASC"]
        )
        self.assertEqual([r.data.params["opt"] for r in runs], ["adam", "rmsprop", "sgd"])
        # Atrium extension: OR and parentheses
        runs = self.client.search_runs(
            [exp.experiment_id], "metrics.acc > 0.55 and (params.opt = 'adam' or params.opt = 'sgd')"
        )
        self.assertEqual(sorted(r.info.run_name for r in runs), ["r1", "r2"])
        # paging
        page = self.client.search_runs([exp.experiment_id], max_results=3)
        self.assertEqual(len(page), 3)
        self.assertTrue(page.token)
        rest = self.client.search_runs([exp.experiment_id], max_results=3, page_token=page.token)
        self.assertEqual(len(rest), 1)
        # a bad filter is a clear error naming the position
        with self.assertRaises(MlflowException) as ctx:
            self.client.search_runs([exp.experiment_id], "metrics.acc >")
        self.assertIn("position", str(ctx.exception))
        self.assertEqual(ctx.exception.error_code, "INVALID_PARAMETER_VALUE")

    def test_delete_and_restore_run(self):
        exp = mlflow.set_experiment(unique("delete"))
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 1)
        rid = run.info.run_id
        self.client.delete_run(rid)
        self.assertEqual(self.client.get_run(rid).info.lifecycle_stage, "deleted")
        self.assertEqual(len(self.client.search_runs([exp.experiment_id])), 0)
        deleted = self.client.search_runs([exp.experiment_id], run_view_type=ViewType.DELETED_ONLY)
        self.assertEqual([r.info.run_id for r in deleted], [rid])
        self.client.restore_run(rid)
        self.assertEqual(self.client.get_run(rid).info.lifecycle_stage, "active")
        self.assertEqual(len(self.client.search_runs([exp.experiment_id])), 1)

    def test_search_experiments(self):
        prefix = unique("se")
        for i in range(3):
            self.client.create_experiment(f"{prefix}-{i}", tags={"idx": str(i)})
        found = self.client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"])
        self.assertEqual([e.name for e in found], [f"{prefix}-2", f"{prefix}-1", f"{prefix}-0"])
        found = self.client.search_experiments(filter_string=f"name LIKE '{prefix}%' and tags.idx = '1'")
        self.assertEqual([e.name for e in found], [f"{prefix}-1"])
        names = [e.name for e in mlflow.search_experiments()]
        self.assertIn("Default", names)
        self.assertIsNone(self.client.get_experiment_by_name(unique("missing")))
        with self.assertRaises(MlflowException) as ctx:
            self.client.create_experiment(f"{prefix}-0")
        self.assertEqual(ctx.exception.error_code, "RESOURCE_ALREADY_EXISTS")

    def test_params_are_write_once_and_batches_all_or_nothing(self):
        mlflow.set_experiment(unique("params"))
        with mlflow.start_run() as run:
            mlflow.log_param("p", "1")
            mlflow.log_param("p", "1")  # same value again is fine
            with self.assertRaises(MlflowException) as ctx:
                mlflow.log_param("p", "2")
            self.assertEqual(ctx.exception.error_code, "INVALID_PARAMETER_VALUE")
            from mlflow.entities import Metric, Param

            with self.assertRaises(MlflowException):
                self.client.log_batch(
                    run.info.run_id,
                    metrics=[Metric("should_not_exist", 1.0, 0, 0)],
                    params=[Param("p", "3")],
                )
        data = self.client.get_run(run.info.run_id).data
        self.assertNotIn("should_not_exist", data.metrics)
        self.assertEqual(data.params, {"p": "1"})

    def test_special_metric_values(self):
        mlflow.set_experiment(unique("nan"))
        with mlflow.start_run() as run:
            mlflow.log_metric("n", float("nan"))
            mlflow.log_metric("i", float("inf"), step=1)
        data = self.client.get_run(run.info.run_id).data
        self.assertTrue(math.isnan(data.metrics["n"]))
        self.assertEqual(data.metrics["i"], float("inf"))

    def test_unknown_ids_are_not_found(self):
        with self.assertRaises(MlflowException) as ctx:
            self.client.get_run("0" * 32)
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        with self.assertRaises(MlflowException) as ctx:
            self.client.get_experiment("987654")
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")


class WorkspaceSelection(unittest.TestCase):
    """MLFLOW_TRACKING_URI=http://host/ws/<name> selects another workspace."""

    def test_workspace_prefix_isolates_data(self):
        import urllib.request

        ws = unique("ws").lower()
        status, _ = api("PUT", f"/api/v1/workspaces/{ws}", {})
        self.assertEqual(status, 201)
        uri = f"{BASE}/ws/{ws}"
        mlflow.set_tracking_uri(uri)
        name = unique("isolated")
        mlflow.set_experiment(name)
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 2.0)
            mlflow.log_text("in a workspace", "w.txt")
        client = MlflowClient(uri)
        self.assertEqual(client.get_run(run.info.run_id).data.metrics["m"], 2.0)
        self.assertEqual(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/w.txt"), "in a workspace")
        # invisible from the default workspace
        default = MlflowClient(BASE)
        self.assertIsNone(default.get_experiment_by_name(name))
        with self.assertRaises(MlflowException) as ctx:
            default.get_run(run.info.run_id)
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        # and the raw artifact bytes are in the workspace datastore
        req = urllib.request.Request(f"{BASE}/api/v1/workspaces/{ws}/runs/{run.info.run_id}/artifacts/w.txt")
        req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
        with urllib.request.urlopen(req) as r:
            self.assertEqual(r.read(), b"in a workspace")
        mlflow.set_tracking_uri(BASE)


class ModelRegistry(unittest.TestCase):
    """registered-models/* and model-versions/* through the real client."""

    def setUp(self):
        mlflow.set_tracking_uri(BASE)
        mlflow.set_registry_uri(BASE)
        self.client = MlflowClient(BASE, BASE)

    def tearDown(self):
        while mlflow.active_run():
            mlflow.end_run()

    def log_model_dir(self):
        """A run with a `model/` directory holding an MLmodel file, as register_model expects."""
        mlflow.set_experiment(unique("registry"))
        with mlflow.start_run() as run:
            mlflow.log_text("artifact_path: model\nflavors: {}\n", "model/MLmodel")
            mlflow.log_text('{"dataset": "iris:1"}', "model/model.json")
        return run.info.run_id

    def test_register_model_from_a_run(self):
        run_id = self.log_model_dir()
        name = unique("reg")
        v1 = mlflow.register_model(f"runs:/{run_id}/model", name)
        self.assertEqual(v1.name, name)
        self.assertEqual(v1.version, "1")
        self.assertEqual(v1.run_id, run_id)
        self.assertEqual(v1.status, "READY")
        self.assertTrue(v1.source.endswith(f"{run_id}/artifacts/model"), v1.source)
        # a second registration is version 2 of the same model
        v2 = mlflow.register_model(f"runs:/{run_id}/model", name, tags={"k": "v"})
        self.assertEqual(v2.version, "2")
        self.assertEqual(v2.tags, {"k": "v"})
        latest = self.client.get_latest_versions(name)
        self.assertEqual([v.version for v in latest], ["2"])
        self.assertEqual(latest[0].current_stage, "None")
        # the version's files come from the registry, even once the run is deleted
        uri = self.client.get_model_version_download_uri(name, "1")
        self.assertTrue(uri.startswith("mlflow-artifacts:/_registry/"), uri)
        self.client.delete_run(run_id)
        self.assertEqual(
            mlflow.artifacts.load_text(f"{uri}/model.json"), '{"dataset": "iris:1"}'
        )
        with tempfile.TemporaryDirectory() as d:
            local = mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=d)
            # the client adds its own registered_model_meta file next to the version's files
            self.assertLessEqual({"MLmodel", "model.json"}, set(os.listdir(local)))
            with open(os.path.join(local, "model.json")) as f:
                self.assertEqual(json.load(f), {"dataset": "iris:1"})

    def test_client_registry_calls(self):
        run_id = self.log_model_dir()
        name = unique("client")
        rm = self.client.create_registered_model(name, tags={"team": "a"}, description="d0")
        self.assertEqual(rm.name, name)
        self.assertEqual(rm.tags, {"team": "a"})
        self.assertEqual(rm.description, "d0")
        with self.assertRaises(MlflowException) as ctx:
            self.client.create_registered_model(name)
        self.assertEqual(ctx.exception.error_code, "RESOURCE_ALREADY_EXISTS")
        run = self.client.get_run(run_id)
        source = f"{run.info.artifact_uri}/model"
        mv1 = self.client.create_model_version(name, source, run_id, description="first")
        mv2 = self.client.create_model_version(name, f"runs:/{run_id}/model", run_id)
        self.assertEqual((mv1.version, mv2.version), ("1", "2"))
        self.assertEqual(mv1.description, "first")
        self.assertEqual(mv1.source, source)
        # aliases
        self.client.set_registered_model_alias(name, "champion", 1)
        got = self.client.get_model_version_by_alias(name, "champion")
        self.assertEqual((got.version, got.aliases), ("1", ["champion"]))
        self.client.set_registered_model_alias(name, "champion", "2")
        self.assertEqual(self.client.get_model_version_by_alias(name, "champion").version, "2")
        self.assertEqual(self.client.get_registered_model(name).aliases, {"champion": "2"})
        with self.assertRaises(MlflowException) as ctx:
            self.client.set_registered_model_alias(name, "champion", "7")
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        with self.assertRaises(MlflowException) as ctx:
            self.client.get_model_version_by_alias(name, "ghost")
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        self.client.delete_registered_model_alias(name, "champion")
        self.assertEqual(self.client.get_registered_model(name).aliases, {})
        # tags, updates, stages
        self.client.set_registered_model_tag(name, "owner", "ana")
        self.client.delete_registered_model_tag(name, "team")
        self.assertEqual(self.client.get_registered_model(name).tags, {"owner": "ana"})
        self.client.update_registered_model(name, description="d1")
        self.assertEqual(self.client.get_registered_model(name).description, "d1")
        self.client.set_model_version_tag(name, "1", "validated", "yes")
        self.assertEqual(self.client.get_model_version(name, "1").tags, {"validated": "yes"})
        self.client.delete_model_version_tag(name, "1", "validated")
        self.assertEqual(self.client.get_model_version(name, "1").tags, {})
        self.client.update_model_version(name, "1", description="changed")
        self.assertEqual(self.client.get_model_version(name, "1").description, "changed")
        moved = self.client.transition_model_version_stage(name, "1", "Production")
        self.assertEqual(moved.current_stage, "Production")
        latest = self.client.get_latest_versions(name, stages=["Production"])
        self.assertEqual([v.version for v in latest], ["1"])
        # search, with filters and pagination
        found = self.client.search_model_versions(f"name='{name}'")
        self.assertEqual(sorted(v.version for v in found), ["1", "2"])
        found = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        self.assertEqual(len(found), 2)
        page = self.client.search_registered_models(f"name LIKE '{name[:8]}%'", max_results=1)
        self.assertEqual(len(page), 1)
        models = self.client.search_registered_models(f"name = '{name}'")
        self.assertEqual([m.name for m in models], [name])
        self.assertEqual(
            sorted(v.version for v in models[0].latest_versions), ["1", "2"]
        )
        # rename, delete
        # MlflowClient.rename_registered_model drops the server's answer: read the model back
        self.client.rename_registered_model(name, name + "-x")
        renamed = self.client.get_registered_model(name + "-x")
        self.assertEqual(sorted(v.version for v in renamed.latest_versions), ["1", "2"])
        with self.assertRaises(MlflowException) as ctx:
            self.client.get_registered_model(name)
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        self.client.delete_model_version(name + "-x", "2")
        with self.assertRaises(MlflowException) as ctx:
            self.client.get_model_version(name + "-x", "2")
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        self.assertEqual(
            [v.version for v in self.client.search_model_versions(f"name='{name}-x'")], ["1"]
        )
        self.client.delete_registered_model(name + "-x")
        with self.assertRaises(MlflowException) as ctx:
            self.client.get_registered_model(name + "-x")
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")

    def test_search_pages_through_models(self):
        prefix = unique("page")
        for i in range(3):
            self.client.create_registered_model(f"{prefix}-{i}")
        first = self.client.search_registered_models(f"name LIKE '{prefix}%'", max_results=2)
        self.assertEqual([m.name for m in first], [f"{prefix}-0", f"{prefix}-1"])
        self.assertIsNotNone(first.token)
        second = self.client.search_registered_models(
            f"name LIKE '{prefix}%'", max_results=2, page_token=first.token
        )
        self.assertEqual([m.name for m in second], [f"{prefix}-2"])
        self.assertFalse(second.token)


if __name__ == "__main__":
    unittest.main(verbosity=2)


class MlflowThree(unittest.TestCase):
    """MLflow 3: logged models (log_model -> load_model -> register), run inputs and outputs."""

    def setUp(self):
        mlflow.set_tracking_uri(BASE)
        mlflow.set_registry_uri(BASE)
        self.client = MlflowClient(BASE, BASE)

    def tearDown(self):
        while mlflow.active_run():
            mlflow.end_run()

    def test_pyfunc_log_model_round_trip_and_register(self):
        class AddOne(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):
                return [x + 1 for x in model_input]

        mlflow.set_experiment(unique("m3"))
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(name="model", python_model=AddOne())
        self.assertTrue(info.model_id.startswith("m-"), info.model_id)
        lm = self.client.get_logged_model(info.model_id)
        self.assertEqual(lm.source_run_id, run.info.run_id)
        self.assertEqual(str(lm.status), "READY")
        self.assertIn("/models/", lm.artifact_location)
        # the files went through the server, into the workspace datastore
        status, files = api(
            "GET", f"/api/v1/workspaces/default/logged-models/{info.model_id}/artifacts"
        )
        self.assertEqual(status, 200, files)
        self.assertIn("MLmodel", [f["path"] for f in files["files"]])
        loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
        self.assertEqual(list(loaded.predict([1, 2])), [2, 3])
        # the run lists the model among its outputs
        got = self.client.get_run(run.info.run_id)
        self.assertEqual([o.model_id for o in got.outputs.model_outputs], [info.model_id])
        # register the logged model; the version keeps its files and lineage
        name = unique("m3reg")
        v = mlflow.register_model(f"models:/{info.model_id}", name)
        self.assertEqual(v.version, "1")
        self.assertEqual(v.run_id, run.info.run_id)
        # (the client does not read a version's model_id; the logged model's tag lists it)
        tag = self.client.get_logged_model(info.model_id).tags["mlflow.modelVersions"]
        # the server lists the registration (the fluent client then appends its own entry, as
        # it does against mlflow server)
        self.assertIn({"name": name, "version": 1}, json.loads(tag))
        again = mlflow.pyfunc.load_model(f"models:/{name}/1")
        self.assertEqual(list(again.predict([5])), [6])
        # the MLflow 2 spelling, runs:/<run>/model, finds the logged model too
        v2 = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
        self.assertEqual(v2.version, "2")
        # copy_model_version from a models:/ source
        dst = unique("m3copy")
        c = self.client.copy_model_version(f"models:/{name}/1", dst)
        self.assertEqual((c.name, c.version), (dst, "1"))
        self.assertEqual(list(mlflow.pyfunc.load_model(f"models:/{dst}/1").predict([0])), [1])

    def test_sklearn_log_model_as_a_script_does_it(self):
        """The most common MLflow 3 call, exactly as scripts write it."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.9]])
        y = np.array([1, 0, 0, 1])
        model = LogisticRegression().fit(x, y)
        mlflow.set_experiment(unique("sk"))
        with mlflow.start_run():
            mlflow.log_param("C", 1.0)
            info = mlflow.sklearn.log_model(model, name="model", input_example=x[:1])
        loaded = mlflow.sklearn.load_model(info.model_uri)
        self.assertEqual(list(loaded.predict(x)), list(model.predict(x)))
        pyfunc = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
        self.assertEqual(list(pyfunc.predict(x)), list(model.predict(x)))
        name = unique("sk-reg")
        v = mlflow.register_model(info.model_uri, name)
        again = mlflow.sklearn.load_model(f"models:/{name}/{v.version}")
        self.assertEqual(list(again.predict(x)), list(model.predict(x)))

    def test_search_logged_models_with_metrics(self):
        exp = self.client.create_experiment(unique("m3search"))
        a = self.client.create_logged_model(exp, name="a", params={"lr": "0.1"})
        b = self.client.create_logged_model(exp, name="b", tags={"t": "x"})
        run = self.client.create_run(exp)
        self.client.log_metric(
            run.info.run_id, "acc", 0.7, model_id=a.model_id, dataset_name="val", dataset_digest="d1"
        )
        self.client.log_metric(run.info.run_id, "acc", 0.9, model_id=b.model_id)
        found = self.client.search_logged_models([exp], filter_string="metrics.acc > 0.8")
        self.assertEqual([m.name for m in found], ["b"])
        found = self.client.search_logged_models([exp], filter_string="params.lr = '0.1'")
        self.assertEqual([m.name for m in found], ["a"])
        ordered = self.client.search_logged_models(
            [exp], order_by=[{"field_name": "metrics.acc", "ascending": False}]
        )
        self.assertEqual([m.name for m in ordered], ["b", "a"])
        scoped = self.client.search_logged_models([exp], datasets=[{"dataset_name": "val"}])
        self.assertEqual([m.name for m in scoped], ["a"])
        with self.assertRaisesRegex(MlflowException, "(?i)invalid filter"):
            self.client.search_logged_models([exp], filter_string="metrics.acc >")
        self.client.delete_logged_model(a.model_id)
        with self.assertRaisesRegex(MlflowException, "not found"):
            self.client.get_logged_model(a.model_id)

    def test_log_input_dataset(self):
        import pandas as pd

        df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 0.25, 0.125]})
        ds = mlflow.data.from_pandas(df, name="train-set")
        mlflow.set_experiment(unique("m3inputs"))
        with mlflow.start_run() as run:
            mlflow.log_input(ds, context="training", tags={"split": "train"})
        got = self.client.get_run(run.info.run_id).inputs.dataset_inputs
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].dataset.name, "train-set")
        self.assertEqual(got[0].dataset.digest, ds.digest)
        tags = {t.key: t.value for t in got[0].tags}
        self.assertEqual(tags["mlflow.data.context"], "training")
        self.assertEqual(tags["split"], "train")
        self.assertIn("num_rows", got[0].dataset.profile)
        # a run can be found by the datasets it used, as MLflow searches them
        found = self.client.search_runs(
            [run.info.experiment_id], filter_string="dataset.name = 'train-set'"
        )
        self.assertEqual([r.info.run_id for r in found], [run.info.run_id])
        found = self.client.search_runs(
            [run.info.experiment_id], filter_string="dataset.context = 'eval'"
        )
        self.assertEqual(found, [])

    def test_server_version_and_unsupported_features(self):
        import urllib.request

        with urllib.request.urlopen(f"{BASE}/version") as r:
            self.assertEqual(r.read().decode(), mlflow.__version__)
        status, body = api("POST", "/api/3.0/mlflow/traces", {})
        self.assertEqual(status, 404)
        self.assertEqual(body["error_code"], "ENDPOINT_NOT_FOUND")
        self.assertIn("tracing", body["message"])


class AccessControl(unittest.TestCase):
    """The client authenticates with MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD;
    roles decide what it may do."""

    def setUp(self):
        self.saved = {k: os.environ.get(k) for k in
                      ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        self.ws = unique("acl").lower()
        status, _ = api("PUT", f"/api/v1/workspaces/{self.ws}", {})
        self.assertEqual(status, 201)
        self.uri = f"{BASE}/ws/{self.ws}"

    def tearDown(self):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        mlflow.set_tracking_uri(BASE)

    def user_with_role(self, role):
        name = unique("py").lower()
        self.assertEqual(api("POST", "/api/v1/users", {"name": name})[0], 201)
        self.assertEqual(api("PUT", f"/api/v1/workspaces/{self.ws}/roles/{name}", {"role": role})[0], 200)
        status, t = api("POST", "/api/v1/tokens", {"user": name, "description": "py"})
        self.assertEqual(status, 201)
        return name, t["token"]

    def use(self, token=None, basic=None):
        for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(k, None)
        if token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = token
        if basic:
            os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = basic

    def test_no_credentials_are_refused(self):
        self.use()
        with self.assertRaises(MlflowException) as ctx:
            MlflowClient(self.uri).search_experiments()
        self.assertEqual(ctx.exception.error_code, "UNAUTHENTICATED")

    def test_contributor_with_basic_auth_logs_runs(self):
        name, token = self.user_with_role("Contributor")
        self.use(basic=(name, token))
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(unique("basic"))
        with mlflow.start_run() as run:
            mlflow.log_param("auth", "basic")
            mlflow.log_metric("m", 1.5)
        got = MlflowClient(self.uri).get_run(run.info.run_id)
        self.assertEqual(got.data.metrics["m"], 1.5)
        # a wrong password is refused
        self.use(basic=(name, "atr_not-a-token"))
        with self.assertRaises(MlflowException) as ctx:
            MlflowClient(self.uri).get_run(run.info.run_id)
        self.assertEqual(ctx.exception.error_code, "UNAUTHENTICATED")

    def test_reader_token_reads_but_cannot_write(self):
        self.use(token=ADMIN_TOKEN)
        admin = MlflowClient(self.uri)
        exp = admin.create_experiment(unique("ro"))
        run = admin.create_run(exp)
        admin.log_metric(run.info.run_id, "m", 3.0)
        _, token = self.user_with_role("Reader")
        self.use(token=token)
        reader = MlflowClient(self.uri)
        self.assertEqual(reader.get_run(run.info.run_id).data.metrics["m"], 3.0)
        with self.assertRaises(MlflowException) as ctx:
            reader.log_metric(run.info.run_id, "m", 4.0)
        self.assertEqual(ctx.exception.error_code, "PERMISSION_DENIED")
        with self.assertRaises(MlflowException) as ctx:
            reader.create_experiment(unique("nope"))
        self.assertEqual(ctx.exception.error_code, "PERMISSION_DENIED")
        # another workspace is invisible to this token: it answers as if it did not exist
        with self.assertRaises(MlflowException) as ctx:
            MlflowClient(BASE).search_experiments()
        self.assertEqual(ctx.exception.error_code, "RESOURCE_DOES_NOT_EXIST")
        self.use(token=ADMIN_TOKEN)
        self.assertEqual(admin.get_run(run.info.run_id).data.metrics["m"], 3.0)
