"""Fault tests reuse the scale fixtures: a database and broker namespace of their own."""

from tests.scale.conftest import cluster_factory, database  # noqa: F401 - the same isolated services
