"""Environments, compute targets, pipelines and schedules, components, secrets, roles, audit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import atrium
from conftest import unique

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"


def test_environments_create_identical_list_get(client, tmp_path):
    name = unique("sk")
    e1 = client.environments.create(name, ["scikit-learn==1.9.1"], python=">=3.11")
    assert e1.version == 1 and e1.ref == f"{name}:1"
    same = client.environments.create(name, ["scikit-learn==1.9.1"], python=">=3.11")
    assert same.version == 1
    req = tmp_path / "requirements.txt"
    req.write_text("scikit-learn==1.9.1\nnumpy>=2\n")
    e2 = client.environments.create(name, file=req)
    assert e2.version == 2 and "numpy>=2" in e2.requirements
    assert client.environments.get(name).version == 2
    assert [e.version for e in client.environments.versions(name)] in ([2, 1], [1, 2])
    assert "atrium-mlflow" in [e.name for e in client.environments.list()]
    with pytest.raises(atrium.InvalidArgument) as e:
        client.environments.create(name, ["-e ."])
    assert "pip options" in e.value.message


def test_compute_targets_list_and_refusals(client):
    assert client.compute.list() == []
    with pytest.raises(atrium.AtriumError):
        client.compute.create(unique("slurm"), "no-such-component", config={})
    with pytest.raises(atrium.NotFound):
        client.compute.get(unique("nope"))


def _engine_env(var: str) -> dict:
    path = os.environ.get(var)
    if not path:
        pytest.fail(f"{var} is not set: scripts/test.sh starts the engine and sets it")
    return dict(line.split("=", 1) for line in Path(path).read_text().splitlines() if "=" in line)


def test_a_compute_target_on_slurm_runs_a_command_job(client):
    env = _engine_env("ATRIUM_TEST_SLURM_ENV")
    key = unique("slurm-key")
    client.secrets.set(key, env["SLURM_JWT_KEY_B64"])
    name = unique("slurm")
    t = client.compute.create(name, "target-slurm", secrets=[key], allow_private=True, cpus=1,
                              config={"url": env["SLURM_URL"], "jwt_key_secret": key,
                                      "partition": env["SLURM_PARTITION"]})
    assert t.name == name and t.host == env["SLURM_URL"].split("//", 1)[1]
    assert client.compute.get(name).name == name
    assert name in [x.name for x in client.compute.list()]
    job = client.jobs.submit(atrium.command("echo hello from slurm", compute=name, name="sdk-on-slurm"))
    done = client.jobs.wait(job.id, timeout=240)
    assert done.target == name and "hello from slurm" in client.jobs.logs(done.id)
    client.compute.delete(name)
    with pytest.raises(atrium.NotFound):
        client.compute.get(name)


def test_a_pipeline_published_run_and_waited(client):
    name = unique("sdk-pipe")
    spec = {
        "name": name,
        "inputs": {"word": {"type": "string", "default": "hello"}},
        "outputs": {"shout": "${{parent.jobs.shout.outputs.loud}}"},
        "jobs": {
            "shout": {
                "type": "command",
                "command": "echo ${{parent.inputs.word}}-world > $ATRIUM_OUTPUTS/loud",
                "outputs": {"loud": {"type": "string"}},
            },
        },
    }
    p = client.pipelines.publish(spec)
    assert p.name == name and p.version == 1
    assert client.pipelines.publish(spec).version == 1
    assert name in [x.name for x in client.pipelines.list()]
    assert client.pipelines.get(name).version == 1
    plan = client.pipelines.plan(name)
    assert "shout" in str(plan)
    run = client.pipelines.run(name, {"word": "hey"})
    done = client.pipelines.wait(run.id, timeout=120)
    assert done.state == "Completed"
    assert "hey-world" in str(done.outputs)
    assert run.id in [r.id for r in client.pipelines.runs(pipeline=name)]
    again = client.pipelines.rerun(run.id, from_step="shout", inputs={"word": "ho"})
    assert "ho-world" in str(client.pipelines.wait(again.id, timeout=120).outputs)
    assert [p.version for p in client.pipelines.versions(name)] == [1]
    with pytest.raises(atrium.InvalidArgument):
        client.pipelines.publish({"name": unique("bad"), "jobs": {"x": {"type": "nope"}}})


def test_schedules_create_disable_enable_delete(client):
    pipe = unique("sdk-sched-pipe")
    client.pipelines.publish({"name": pipe, "jobs": {"a": {"type": "command", "command": "true"}}})
    name = unique("nightly")
    s = client.schedules.create(name, pipe, cron="0 2 * * *", time_zone="Europe/Berlin")
    assert s.name == name and s.enabled and len(s.next) >= 1
    hourly = client.schedules.create(unique("hourly"), f"{pipe}@latest",
                                     trigger={"type": "recurrence", "frequency": "hour", "interval": 1})
    assert hourly.enabled
    with pytest.raises(atrium.InvalidArgument):
        client.schedules.create(unique("bad"), pipe, cron="not a cron")
    assert name in [x.name for x in client.schedules.list()]
    assert client.schedules.disable(name).enabled is False
    assert client.schedules.enable(name).enabled is True
    client.schedules.delete(name)
    with pytest.raises(atrium.NotFound):
        client.schedules.get(name)


def test_components_push_a_built_wasm_with_its_manifest(client):
    wasm = PLUGINS / "target/wasm32-wasip2/release/scorer_digits.wasm"
    manifest = PLUGINS / "examples/scorer-digits/plugin.toml"
    name = unique("digits")
    c = client.components.push(name, "1.0.0", wasm, manifest)
    assert c.name == name and c.version == "1.0.0"
    assert client.components.push(name, "1.0.0", wasm, manifest.read_text()).version == "1.0.0"
    assert (name, "1.0.0") in [(x.name, x.version) for x in client.components.list()]
    assert client.components.get(name, "1.0.0").name == name
    with pytest.raises(atrium.InvalidArgument):
        client.components.push(unique("junk"), "1.0.0", b"not wasm", manifest)
    client.components.delete(name, "1.0.0")
    with pytest.raises(atrium.NotFound):
        client.components.get(name, "1.0.0")


def test_secrets_set_list_names_never_values(client):
    name = unique("API_KEY").upper().replace("-", "_")
    s = client.secrets.set(name, "s3cr3t")
    assert s.name == name and s.version == 1
    assert client.secrets.set(name, "rotated").version == 2
    assert name in client.secrets.names()
    assert "s3cr3t" not in str(client.secrets.get(name).raw) and "rotated" not in str(client.secrets.list())
    client.secrets.delete(name)
    assert name not in client.secrets.names()


def test_roles_and_audit(client, reader):
    me = reader.whoami()
    user = me["user"]
    assert {"user": user, "role": "Reader"} in [{"user": r.user, "role": r.role} for r in client.roles.list()]
    # a Reader reads, and is refused writes with 403 and the API's code
    assert reader.experiments.list() is not None
    with pytest.raises(atrium.PermissionDenied) as e:
        reader.experiments.create(unique("nope"))
    assert e.value.status == 403 and e.value.code == "PERMISSION_DENIED"
    with pytest.raises(atrium.PermissionDenied):
        reader.secrets.set("X", "y")
    with pytest.raises(atrium.PermissionDenied):
        reader.roles.assign(user, "Owner")
    entries = client.audit.list(actor=user, result="denied")
    assert entries and all(e.actor == user and e.result == "denied" for e in entries)
    assert client.audit.list(host=True, max_results=5)
    other = unique("bob")
    client.users.create(other)
    client.roles.assign(other, "Contributor")
    client.roles.remove(other)
    assert other not in [r.user for r in client.roles.list()]


def test_a_datastore_serves_an_experiment_and_becomes_the_default(client):
    name = unique("archive")
    ds = client.datastores.create(name, "storage-fs", {"root": "/data"})
    assert ds.name == name and ds.component == "storage-fs" and not ds.default
    assert name in [d.name for d in client.datastores.list()]
    exp = client.experiments.create(unique("sdk-ds-exp"), artifact_datastore=name)
    run = client.runs.create(exp.id)
    client.runs.upload_artifact(run.run_id, "kept.txt", b"on the archive")
    assert client.runs.download_artifact(run.run_id, "kept.txt") == b"on the archive"
    with pytest.raises(atrium.InvalidState):
        client.datastores.delete(name)  # it serves an experiment
    before = next(d.name for d in client.datastores.list() if d.default)
    other = unique("second")
    client.datastores.create(other, "storage-fs", {"root": "/data"})
    assert client.datastores.set_default(other).default is True
    assert client.datastores.get(other).default and not client.datastores.get(before).default
    client.datastores.set_default(before)
    with pytest.raises(atrium.InvalidArgument):
        client.datastores.create(unique("bad"), "storage-fs", {"root": "/data"}, bogus_grant=1)
