"""Instances: init/connect/DB, instances.toml, several instances per process, read-only, errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import registry as ln
from registry import instances
from registry.errors import (
    InstanceConnectionError,
    InstanceNotFoundError,
    InvalidDatabaseURLError,
    ReadOnlyInstanceError,
)

pytestmark = pytest.mark.usefixtures("isolated_instances")


def _sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}.sqlite3"


def test_init_records_instance_and_migrates(tmp_path: Path, registry_home: Path) -> None:
    db = ln.init("mylab", db=_sqlite(tmp_path, "mylab"), storage=tmp_path / "data")
    config = tomllib.loads((registry_home / "instances.toml").read_text())
    assert config["settings"]["default"] == "mylab"
    entry = config["instances"]["mylab"]
    assert entry["db"].endswith("mylab.sqlite3")
    assert entry["storage"] == str((tmp_path / "data").resolve())
    assert entry["read_only"] is False
    assert (tmp_path / "data").is_dir()
    # the schema is there: the registries are queryable and empty
    assert db.Artifact.count() == 0
    assert db.ontologies.CellType.count() == 0
    tables = {
        row[0]
        for row in sqlite3.connect(tmp_path / "mylab.sqlite3").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"registry_artifact", "ontologies_celltype", "ontologies_artifactcelltype"} <= tables


def test_connect_makes_instance_the_default(tmp_path: Path) -> None:
    ln.init("a", db=_sqlite(tmp_path, "a"))
    ln.init("b", db=_sqlite(tmp_path, "b"))
    ln.connect("a")
    ln.ULabel(name="only in a").save()
    assert ln.ULabel.filter(name="only in a").count() == 1
    ln.connect("b")
    assert ln.ULabel.filter(name="only in a").count() == 0


def test_two_instances_open_side_by_side(tmp_path: Path) -> None:
    ln.init("first", db=_sqlite(tmp_path, "first"))
    ln.init("second", db=_sqlite(tmp_path, "second"))
    first, second = ln.DB("first"), ln.DB("second")
    assert first.alias != second.alias
    first.ULabel.create(name="alpha")
    second.ULabel.create(name="beta")
    second.ULabel.create(name="gamma")
    assert sorted(first.ULabel.values_list("name", flat=True)) == ["alpha"]
    assert sorted(second.ULabel.values_list("name", flat=True)) == ["beta", "gamma"]
    # records remember their instance: related managers query the same database
    label = first.ULabel.get(name="alpha")
    assert label._state.db == first.alias
    assert list(label.artifacts.all()) == []


def test_db_accepts_a_database_url(tmp_path: Path) -> None:
    url = _sqlite(tmp_path, "byurl")
    ln.init("byurl", db=url)
    ln.DB("byurl").ULabel.create(name="via name")
    assert ln.DB(url).ULabel.filter(name="via name").exists()


def test_postgresql_instance(pg_database: str) -> None:
    db = ln.init("pglab", db=pg_database)  # creates the database, then migrates it
    assert db.Artifact.count() == 0
    db.ULabel.create(name="on postgres")
    other = ln.DB("pglab")
    assert other.ULabel.get(name="on postgres").name == "on postgres"
    assert "postgresql" in other.config.db


def test_embedded_default_when_nothing_is_configured(
    registry_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = instances.default_instance()
    assert config.name == "default"
    assert config.db == f"sqlite:///{registry_home / 'default' / 'registry.sqlite3'}"
    assert config.storage == str(registry_home / "default" / "storage")


def test_database_url_overrides_default_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5433/lab")
    config = instances.default_instance()
    assert config.name == "default"
    assert config.db == "postgresql://u@db.example:5433/lab"


def test_instance_env_var_selects_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ln.init("envlab", db=_sqlite(tmp_path, "envlab"))
    instances.save_instance(
        instances.InstanceConfig("other", _sqlite(tmp_path, "other"), str(tmp_path))
    )
    instances.select(None)
    monkeypatch.setenv("CELLREGISTRY_INSTANCE", "other")
    assert instances.default_instance().name == "other"


def test_unknown_instance_lists_known_ones(tmp_path: Path) -> None:
    ln.init("mylab", db=_sqlite(tmp_path, "mylab"))
    with pytest.raises(InstanceNotFoundError) as info:
        ln.DB("mylba")
    message = str(info.value)
    assert "Unknown instance 'mylba'" in message
    assert "Did you mean 'mylab'" in message
    assert "Known instances: default, mylab" in message
    with pytest.raises(InstanceNotFoundError, match="Unknown instance 'nope'"):
        ln.connect("nope")


def test_unreachable_postgresql_names_host_and_port() -> None:
    with pytest.raises(InstanceConnectionError) as info:
        ln.DB("postgresql://postgres@127.0.0.1:59999/nothing_here")
    message = str(info.value)
    assert "PostgreSQL at 127.0.0.1:59999" in message
    assert "nothing_here" in message


def test_init_on_unreachable_postgresql_fails_before_recording(registry_home: Path) -> None:
    with pytest.raises(InstanceConnectionError, match="127.0.0.1:59999"):
        ln.init("broken", db="postgresql://postgres@127.0.0.1:59999/lab")
    assert "broken" not in instances.known_instances()


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "postgresql://postgres@localhost:5432/"]
)
def test_bad_database_urls(url: str) -> None:
    with pytest.raises(InvalidDatabaseURLError):
        instances.parse_database_url(url)


def test_invalid_instance_name() -> None:
    with pytest.raises(ValueError, match="Invalid instance name 'bad name'"):
        ln.init("bad name")


def test_a_sqlite_connection_has_its_pragmas(tmp_path: Path) -> None:
    """WAL, and a page cache that holds a registry of ten releases (2 MiB by default)."""
    from django.db import connections

    db = ln.init("pragmas", db=_sqlite(tmp_path, "pragmas"), storage=tmp_path / "data")
    with connections[db.alias].cursor() as cursor:
        values = []
        for pragma in ("journal_mode", "synchronous", "cache_size"):
            cursor.execute(f"PRAGMA {pragma}")
            values.append(cursor.fetchone()[0])
    assert values == ["wal", 1, -65536]  # synchronous 1: NORMAL


def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert instances.parse_database_url("sqlite:///rel.sqlite3")["NAME"] == str(
        tmp_path / "rel.sqlite3"
    )
    assert instances.parse_database_url("sqlite:////abs/x.sqlite3")["NAME"] == "/abs/x.sqlite3"
    pg = instances.parse_database_url("postgresql://me:s%40cret@h:6543/lab?sslmode=disable")
    assert (pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "me",
        "s@cret",
        "h",
        "6543",
        "lab",
    )
    assert pg["OPTIONS"] == {"connect_timeout": "10", "prepare_threshold": 5, "sslmode": "disable"}
    timeout = instances.parse_database_url("postgresql://h/lab?connect_timeout=3")
    assert timeout["OPTIONS"] == {"connect_timeout": "3", "prepare_threshold": 5}  # the URL's
    for given, value in [("none", None), ("None", None), ("0", 0)]:
        url = f"postgresql://h/lab?prepare_threshold={given}"
        assert instances.parse_database_url(url)["OPTIONS"]["prepare_threshold"] == value


class TestReadOnly:
    """A read-only instance refuses every kind of write, naming the instance."""

    @pytest.fixture
    def mirror(self, tmp_path: Path) -> ln.DB:
        url = _sqlite(tmp_path, "mirror")
        ln.init("source", db=url, make_default=False).ULabel.create(name="existing")
        ln.init("mirror", db=url, read_only=True)
        return ln.DB("mirror")

    def test_flag_is_recorded(self, mirror: ln.DB, registry_home: Path) -> None:
        assert instances.get_instance("mirror").read_only is True
        assert "read-only" in repr(mirror)

    def test_default_instance_refuses_too(self, mirror: ln.DB) -> None:
        with pytest.raises(ReadOnlyInstanceError, match="'mirror' is read-only"):
            ln.ULabel(name="via default").save()

    def test_reads_work(self, mirror: ln.DB) -> None:
        assert mirror.ULabel.get(name="existing").name == "existing"

    def test_save_refused(self, mirror: ln.DB) -> None:
        label = mirror.ULabel.get(name="existing")
        label.description = "changed"
        with pytest.raises(
            ReadOnlyInstanceError, match="Instance 'mirror' is read-only: cannot save ULabel"
        ):
            label.save()
        assert mirror.ULabel.get(name="existing").description == ""

    def test_create_refused(self, mirror: ln.DB) -> None:
        with pytest.raises(ReadOnlyInstanceError, match="'mirror' is read-only"):
            mirror.ULabel.create(name="new")
        assert not mirror.ULabel.filter(name="new").exists()

    def test_delete_refused(self, mirror: ln.DB) -> None:
        label = mirror.ULabel.get(name="existing")
        with pytest.raises(ReadOnlyInstanceError, match="cannot delete ULabel"):
            label.delete()
        with pytest.raises(ReadOnlyInstanceError, match="cannot delete ULabel records"):
            mirror.ULabel.filter(name="existing").delete()
        assert mirror.ULabel.filter(name="existing").exists()

    def test_bulk_writes_refused(self, mirror: ln.DB) -> None:
        from registry.models import ULabel

        with pytest.raises(ReadOnlyInstanceError, match="cannot update ULabel records"):
            mirror.ULabel.filter(name="existing").update(description="x")
        with pytest.raises(ReadOnlyInstanceError, match="cannot bulk-create ULabel records"):
            mirror.ULabel.bulk_create([ULabel(name="bulk")])
        label = mirror.ULabel.get(name="existing")
        with pytest.raises(ReadOnlyInstanceError, match="cannot bulk-update ULabel records"):
            mirror.ULabel.bulk_update([label], ["description"])
        assert mirror.ULabel.count() == 1

    def test_link_writes_refused(self, mirror: ln.DB) -> None:
        label = mirror.ULabel.get(name="existing")
        with pytest.raises(ReadOnlyInstanceError, match="'mirror' is read-only"):
            mirror.ULabel.get_or_create(name="another")
        with pytest.raises(ReadOnlyInstanceError, match="'mirror' is read-only"):
            label.artifacts.clear()


def test_import_is_light_and_fast() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import registry\n"
        "elapsed = time.perf_counter() - t\n"
        "heavy = [m for m in ('anndata', 'tiledbsoma', 'pyarrow', 'torch', 'pandas', 'django.db')"
        " if m in sys.modules]\n"
        "print(elapsed, ','.join(heavy))\n"
    )
    timings = []
    for _ in range(3):  # best of three: the first run may pay for a cold disk cache
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out[1:] == [], f"import registry pulled in heavy modules: {out[1:]}"
        timings.append(float(out[0]))
    assert min(timings) < 0.5, f"import registry took {min(timings):.3f} s"


def test_manage_py_unknown_instance(registry_home: Path) -> None:
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    result = subprocess.run(
        [sys.executable, str(manage), "--instance", "nope", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLREGISTRY_HOME": str(registry_home)},
    )
    assert result.returncode == 1
    assert "error: Unknown instance 'nope'. Known instances: default" in result.stderr
    assert "Traceback" not in result.stderr


def test_relative_sqlite_path_is_recorded_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ln.init("rel", db="sqlite:///rel.sqlite3")
    assert instances.get_instance("rel").db == f"sqlite:///{tmp_path / 'rel.sqlite3'}"


def test_init_without_changing_the_default(tmp_path: Path) -> None:
    ln.init("main", db=_sqlite(tmp_path, "main"))
    side = ln.init("side", db=_sqlite(tmp_path, "side"), make_default=False)
    assert side.ULabel.count() == 0
    assert instances.default_instance().name == "main"
    ln.ULabel(name="in main").save()
    assert not side.ULabel.filter(name="in main").exists()
