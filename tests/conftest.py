"""Shared fixtures: a seeded test database, isolated instance homes, PostgreSQL helpers.

The suite runs twice in CI: on SQLite, and on PostgreSQL with ``DATABASE_URL`` set; the
``default`` database (pytest-django's test database) follows that choice.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connections

import registry as ln
from demo import synthetic
from registry import instances

pytest_plugins = ["tests.s3"]
PG_SERVER = os.environ.get("CELLREGISTRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
N_ARTIFACTS = 1000


def on_postgres() -> bool:
    """True when the suite runs against PostgreSQL."""
    return "postgresql" in connections.settings["default"]["ENGINE"]


def _pg_admin() -> psycopg.Connection:
    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)


def pg_available() -> bool:
    """Whether the PostgreSQL server of the test machine answers."""
    try:
        with _pg_admin():
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN201
    """The test database holds the synthetic registry (1,000 artifacts) for every test."""
    with django_db_blocker.unblock():
        synthetic.build(n_artifacts=N_ARTIFACTS, seed=0)


@pytest.fixture(autouse=True)
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own CELLREGISTRY_HOME (instances.toml, embedded instance, cache)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CELLREGISTRY_HOME", str(home))
    monkeypatch.delenv("CELLREGISTRY_INSTANCE", raising=False)
    monkeypatch.setenv("CELLREGISTRY_USER", "testuser")
    return home


@pytest.fixture
def isolated_instances(django_db_blocker) -> Iterator[None]:  # noqa: ANN001
    """Let a test create and connect instances; afterwards the default alias and the set of
    aliases are as before, and the instances' connections are closed."""
    saved_default = dict(connections.settings["default"])
    aliases_before = set(connections.settings)
    with django_db_blocker.unblock():
        yield
    for alias in set(connections.settings) - aliases_before:
        for conn in connections.all(initialized_only=True):
            if conn.alias == alias:
                conn.close()
                del connections[alias]
        del connections.settings[alias]
        settings.DATABASES.pop(alias, None)
    if connections.settings["default"].get("NAME") != saved_default.get("NAME"):
        for conn in connections.all(initialized_only=True):
            if conn.alias == "default":
                conn.close()
                del connections["default"]
    connections.settings["default"] = saved_default
    settings.DATABASES["default"] = saved_default
    instances.select(None)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database URL (dropped afterwards); skips without a server."""
    if not pg_available():
        pytest.skip(f"no PostgreSQL server at {PG_SERVER}")
    name = f"cellregistry_t_{uuid.uuid4().hex[:10]}"
    yield f"{PG_SERVER}/{name}"
    connections.close_all()
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh(request: pytest.FixtureRequest, isolated_instances: None, tmp_path: Path) -> ln.DB:
    """A new, empty instance (the default one during the test) on the suite's database kind
    (SQLite, or PostgreSQL with ``DATABASE_URL``)."""
    if on_postgres():
        url = request.getfixturevalue("pg_database")
    else:
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    return ln.init("fresh", db=url)
