"""Fixtures for scale mode: a database and a broker namespace of this run's own."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.conftest import make_settings
from tests.scale.cluster import Cluster
from tests.scale.services import pg_url, temporary_database, temporary_namespace


@pytest.fixture
def database() -> Iterator[str]:
    with temporary_database() as name:
        yield name


@pytest.fixture
def pg_settings(database: str) -> Settings:
    """The test suite's settings on this run's own PostgreSQL database."""
    return make_settings(Path(tempfile.gettempdir()), database_url=pg_url(database))


@pytest.fixture
def cluster_factory(database: str) -> Iterator[type[Cluster]]:
    made: list[Cluster] = []

    class Made(Cluster):
        def __init__(self, **kwargs: object) -> None:
            ns_cm = temporary_namespace()
            ns = ns_cm.__enter__()
            super().__init__(database, ns, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Made
    for c in made:
        c.stop()
