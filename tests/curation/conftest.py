"""Fixtures of the curation tests: instances that hold the real ontologies, made fast.

The CELLxGENE ontologies (all of the guide's: CL, UBERON, MONDO, EFO, HANCESTRO, HsapDv, MmusDv,
PATO, NCBITaxon) are imported once per session into a template database on the suite's kind of
database; each test gets its own copy (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL), as the default instance during the test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

import registry as ln
from ontologies.importers.guide import import_guide
from tests.conftest import PG_SERVER, _pg_admin, on_postgres, pg_available
from tests.curation.harness import Runner


@pytest.fixture(scope="session")
def ontology_template(
    tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any
) -> Iterator[str]:
    """The database URL of an instance with the guide's ontologies (made once per session).

    Independent of pytest-django's test database: curation tests work on instances of their own
    (``curation_db``), never on the shared synthetic registry.
    """
    folder = tmp_path_factory.mktemp("ontology-template")
    if on_postgres():
        if not pg_available():
            pytest.skip(f"no PostgreSQL server at {PG_SERVER}")
        url = f"{PG_SERVER}/cellregistry_onto_{uuid.uuid4().hex[:10]}"
    else:
        url = f"sqlite:///{folder / 'ontologies.sqlite3'}"
    saved_home = os.environ.get("CELLREGISTRY_HOME")
    os.environ["CELLREGISTRY_HOME"] = str(folder / "home")
    try:
        with django_db_blocker.unblock():
            template = ln.init("ontology-template", db=url, make_default=False)
            import_guide(using=template.alias)
            connections[template.alias].close()
    finally:
        if saved_home is None:
            os.environ.pop("CELLREGISTRY_HOME", None)
        else:
            os.environ["CELLREGISTRY_HOME"] = saved_home
    yield url
    if on_postgres():
        connections.close_all()
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def table_counts(alias: str) -> dict[str, int]:
    """The number of rows of every table of the instance behind ``alias``."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def copy_database(template_url: str, folder: Path) -> str:
    """A new database holding a copy of the template's; its URL."""
    if template_url.startswith("sqlite:///"):
        copy = folder / f"copy-{uuid.uuid4().hex[:8]}.sqlite3"
        shutil.copyfile(template_url[len("sqlite:///") :], copy)
        return f"sqlite:///{copy}"
    template = template_url.rsplit("/", 1)[1]
    name = f"cellregistry_c_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return f"{PG_SERVER}/{name}"


@pytest.fixture
def curation_db(
    ontology_template: str, isolated_instances: None, tmp_path: Path
) -> Iterator[ln.DB]:
    """A new instance with the ontologies loaded, the default instance during the test."""
    url = copy_database(ontology_template, tmp_path)
    db = ln.init("curation", db=url)
    yield db
    if url.startswith("postgresql"):
        connections.close_all()
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    """Starts curation processes; kills those left running at the end."""
    started = Runner(tmp_path)
    yield started
    started.close()


@pytest.fixture
def copies(
    ontology_template: str, isolated_instances: None, tmp_path: Path
) -> Iterator[Callable[[str], ln.DB]]:
    """Makes named instances, each a copy of the ontology template (dropped afterwards)."""
    urls = []

    def make(name: str) -> ln.DB:
        url = copy_database(ontology_template, tmp_path)
        urls.append(url)
        return ln.init(name, db=url, make_default=False)

    yield make
    connections.close_all()
    for url in urls:
        if url.startswith("postgresql"):
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
