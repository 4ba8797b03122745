"""Fixtures: a client of the live server the harness started (``ATRIUM_SERVER``,
``ATRIUM_TOKEN``: the bootstrap admin), a Reader of a fresh workspace, and a trained model."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import atrium

#: The repository's test datasets.
DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def server() -> str:
    url = os.environ.get("ATRIUM_SERVER")
    if not url:
        pytest.fail("ATRIUM_SERVER is not set: run these tests through tests/tests/python_sdk.rs")
    return url


@pytest.fixture(scope="session")
def client(server: str) -> atrium.Client:
    """The admin on the default workspace."""
    return atrium.Client()


@pytest.fixture(scope="session")
def iris(client: atrium.Client):
    """iris uploaded as a DataFrame (a dataset version)."""
    import pandas as pd

    return client.datasets.upload("iris", pd.read_csv(DATA / "iris.csv"))


@pytest.fixture(scope="session")
def trained(client: atrium.Client, iris):
    """A train job on iris, completed."""
    spec = atrium.train(iris.ref, "target", hidden=[16], epochs=8, batch_size=16, lr=0.02,
                        validation_split=0.2, seed=3, name="sdk-iris", experiment="sdk-iris")
    job = client.jobs.submit(spec)
    return client.jobs.wait(job.id, timeout=300)


@pytest.fixture(scope="session")
def registered(client: atrium.Client, trained):
    """The trained model registered with the alias ``champion``."""
    name = unique("sdk-iris-clf")
    return client.models.register(name, run_id=trained.run_id, aliases=["champion"])


@pytest.fixture(scope="session")
def reader(client: atrium.Client):
    """A user with the Reader role on the default workspace, as a client."""
    name = unique("ann")
    client.users.create(name)
    client.roles.assign(name, "Reader")
    token = client.users.create_token(user=name, description="sdk tests")["token"]
    return atrium.Client(client.url, token, "default")
